//! Putting a thread under `SCHED_FIFO`, pinned to one CPU, with what it
//! touches kept resident.
//!
//! Every realtime thread of the crate starts through [`spawn`], which calls
//! [`make_current_thread_realtime`] before the thread's body runs and hands
//! the caller the [`RealtimeStatus`]; applications may call the latter on
//! their own receiving thread too (the example loop does). By default every part is required and a refusal
//! is an error that says how to grant it; [`RealtimePolicy::BestEffort`] takes
//! what it can get and records the shortfall in [`RealtimeStatus`], which the
//! statistics carry, so a best-effort run is never mistaken for a guaranteed one.
//!
//! Memory: by default a thread locks only its own hot path
//! ([`MemoryLocking::HotPath`]), so the one grant the default needs is
//! `SCHED_FIFO` (CAP_SYS_NICE or an rtprio limit); `mlockall` is the explicit
//! [`MemoryLocking::WholeProcess`].

pub(crate) mod memory;
mod spawn;

use std::cell::RefCell;
use std::fmt;

use thread_priority::{
    NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

pub use self::memory::{HotRegion, MemoryLocking, MemoryStatus};
use self::memory::{HotRegions, MemoryLease, lock_regions};
pub use self::spawn::{RtThread, Startup, spawn};
pub use crate::error::RealtimeError;
use crate::sys;

/// What to do when part of the realtime setup is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RealtimePolicy {
    /// Every part must succeed, or opening fails with a [`RealtimeError`].
    #[default]
    Required,
    /// Take what is granted, run anyway, and record what is missing.
    BestEffort,
    /// A plain SCHED_OTHER thread on any CPU, memory not locked: the
    /// baseline to compare against (recorded as not guaranteed). A policy
    /// or pinning inherited from a realtime creator is undone.
    Disabled,
}

/// Which CPU the thread is pinned to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pinning {
    /// The highest-numbered CPU this process may use (CPU 0 usually takes
    /// most device interrupts and housekeeping). "May use" is the process's
    /// CPU set, not a pinning the calling thread inherited.
    #[default]
    LastCpu,
    /// This CPU.
    Cpu(usize),
    /// Not pinned: the scheduler may place the thread on any CPU the process
    /// may use (an inherited pinning is undone).
    Unpinned,
}

/// How a realtime thread is set up.
///
/// Defaults: `SCHED_FIFO` priority 80, pinned to the last CPU, the hot path's
/// memory locked ([`MemoryLocking::HotPath`]), every part required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct RealtimeConfig {
    /// `SCHED_FIFO` priority, 1..=99.
    pub priority: u8,
    /// CPU pinning.
    pub pinning: Pinning,
    /// How memory is kept resident (default: lock the hot path only; the
    /// whole process is [`MemoryLocking::WholeProcess`]).
    pub memory_locking: MemoryLocking,
    /// Required or best effort.
    pub policy: RealtimePolicy,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            priority: 80,
            pinning: Pinning::LastCpu,
            memory_locking: MemoryLocking::HotPath,
            policy: RealtimePolicy::Required,
        }
    }
}

impl RealtimeConfig {
    /// Sets the `SCHED_FIFO` priority (1..=99).
    pub const fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the CPU pinning.
    pub const fn with_pinning(mut self, pinning: Pinning) -> Self {
        self.pinning = pinning;
        self
    }
    /// Sets how memory is kept resident.
    pub const fn with_memory_locking(mut self, locking: MemoryLocking) -> Self {
        self.memory_locking = locking;
        self
    }
    /// Shorthand kept from before issue 17: `true` is the default
    /// [`MemoryLocking::HotPath`], `false` is [`MemoryLocking::Off`]. It no
    /// longer means `mlockall`; for that, use
    /// `with_memory_locking(MemoryLocking::WholeProcess)`.
    pub const fn with_lock_memory(mut self, lock: bool) -> Self {
        self.memory_locking = if lock {
            MemoryLocking::HotPath
        } else {
            MemoryLocking::Off
        };
        self
    }
    /// Sets the policy for refusals.
    pub const fn with_policy(mut self, policy: RealtimePolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// What a realtime setup actually obtained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RealtimeStatus {
    /// Everything that was asked for took effect: the guaranteed mode.
    pub guaranteed: bool,
    /// The `SCHED_FIFO` priority in force, if any.
    pub fifo_priority: Option<u8>,
    /// The CPU the thread is pinned to (checked after pinning), if any.
    pub cpu: Option<usize>,
    /// What was kept resident and how (bytes locked, by kind).
    pub memory: MemoryStatus,
    /// What best-effort mode could not obtain, in words (empty when guaranteed).
    pub shortfalls: Vec<String>,
}

impl fmt::Display for RealtimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fifo_priority {
            Some(p) => write!(f, "SCHED_FIFO {p}")?,
            None => write!(f, "SCHED_OTHER")?,
        }
        match self.cpu {
            Some(cpu) => write!(f, ", CPU {cpu}")?,
            None => write!(f, ", unpinned")?,
        }
        write!(f, ", {}", self.memory)?;
        if self.guaranteed {
            write!(f, " (guaranteed)")
        } else {
            write!(f, " (BEST EFFORT: {})", self.shortfalls.join("; "))
        }
    }
}

/// Stack below the current frame that [`MemoryLocking::HotPath`] locks: the
/// reader's deepest per-packet call chain (libusb's event handling included)
/// uses a few KiB; the rest is margin. [`sys::mem::prefault_stack`] touches more.
pub(crate) const STACK_LOCK_BYTES: usize = 32 * 1024;

/// At most this much of the stack above the current frame is locked (the
/// callers' frames, the TLS and the thread descriptor glibc keeps at the top
/// of a thread's stack; a main thread's arguments and environment).
const STACK_ABOVE_LOCK_MAX: usize = 64 * 1024;

thread_local! {
    /// The calling thread's locked stack pages, released when it exits.
    static STACK_LEASE: RefCell<Option<MemoryLease>> = const { RefCell::new(None) };
}

/// The part of the calling thread's stack its hot path uses.
fn stack_region() -> HotRegions {
    let mut regions = HotRegions::default();
    let marker = 0u8;
    let sp = std::hint::black_box(&marker) as *const u8 as usize;
    if let Ok((low, high)) = sys::mem::current_stack() {
        let start = sp.saturating_sub(STACK_LOCK_BYTES).max(low);
        let end = high.min(sp.saturating_add(STACK_ABOVE_LOCK_MAX));
        regions.add_range("stack", start, end.saturating_sub(start));
    }
    regions
}

/// Makes the calling thread realtime as `config` asks: the whole process
/// locked if asked, then `SCHED_FIFO`, then pinned, then its stack
/// prefaulted (and, by default, the top of it locked) and its timer slack
/// set to 1 ns. [`RealtimeStatus::memory`] says what was locked.
///
/// # Errors
/// With [`RealtimePolicy::Required`], the first refused part as a
/// [`RealtimeError`] whose message says how to grant it. With
/// [`RealtimePolicy::BestEffort`] it does not fail; the status lists the
/// shortfalls.
pub fn make_current_thread_realtime(
    config: &RealtimeConfig,
) -> Result<RealtimeStatus, RealtimeError> {
    // Learn the process's CPU set before this thread is pinned.
    let _ = sys::sched::process_cpus();
    if !(1..=99).contains(&config.priority) {
        return Err(RealtimeError::InvalidPriority(config.priority));
    }
    let required = config.policy == RealtimePolicy::Required;
    let mut status = RealtimeStatus::default();
    if config.policy == RealtimePolicy::Disabled {
        // Threads inherit their creator's policy and affinity: reset both.
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(0u8.try_into().unwrap_or_default()),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
        );
        let _ = sys::sched::unpin();
        STACK_LEASE.with(|l| *l.borrow_mut() = None);
        status.memory.locking = MemoryLocking::Off;
        status
            .shortfalls
            .push("realtime disabled by configuration (SCHED_OTHER)".into());
        return Ok(status);
    }
    let note = |status: &mut RealtimeStatus, err: RealtimeError| {
        if required {
            Err(err)
        } else {
            status.shortfalls.push(err.to_string());
            Ok(())
        }
    };

    let mut locking = config.memory_locking;
    if locking == MemoryLocking::WholeProcess {
        match lock_memory() {
            Ok(()) => memory::note_whole_process_locked(),
            Err(e) => {
                note(&mut status, e)?;
                // Best effort: the hot path at least.
                locking = MemoryLocking::HotPath;
            }
        }
    }
    match set_fifo(config.priority) {
        Ok(()) => status.fifo_priority = Some(config.priority),
        Err(e) => note(&mut status, e)?,
    }
    match pin(config.pinning) {
        Ok(cpu) => status.cpu = cpu,
        Err(e) => note(&mut status, e)?,
    }
    sys::mem::prefault_stack();
    let (lease, memory) = lock_regions(locking, &stack_region());
    // Replacing an earlier lease releases it after the new one holds the pages.
    STACK_LEASE.with(|l| *l.borrow_mut() = Some(lease));
    status.memory = memory;
    // A SCHED_FIFO thread already gets zero slack; this also tightens a
    // best-effort thread's sleeps.
    let _ = sys::sched::set_timer_slack_ns(1);
    status.guaranteed = status.shortfalls.is_empty();
    Ok(status)
}

/// The memory locking a reader uses for its buffers under `config`.
pub(crate) fn effective_locking(config: &RealtimeConfig, status: &RealtimeStatus) -> MemoryLocking {
    if config.policy == RealtimePolicy::Disabled {
        MemoryLocking::Off
    } else {
        status.memory.locking
    }
}

fn lock_memory() -> Result<(), RealtimeError> {
    // With MCL_FUTURE every later allocation counts against RLIMIT_MEMLOCK;
    // under a finite limit a later allocation could fail and abort the
    // process, so a finite limit without CAP_IPC_LOCK counts as refused.
    let privileged = sys::sched::has_capability(sys::sched::CAP_IPC_LOCK);
    if let (false, Ok(Some(limit))) = (privileged, sys::mem::memlock_limit()) {
        return Err(RealtimeError::MemoryLockDenied {
            reason: format!(
                "RLIMIT_MEMLOCK is {} KiB and the process lacks CAP_IPC_LOCK",
                limit / 1024
            ),
        });
    }
    sys::mem::lock_all_memory().map_err(|e| RealtimeError::MemoryLockDenied {
        reason: e.to_string(),
    })
}

fn set_fifo(priority: u8) -> Result<(), RealtimeError> {
    let denied = |reason: String| RealtimeError::SchedFifoDenied {
        priority,
        reason,
        rtprio_limit: sys::sched::rtprio_limit().unwrap_or(0),
    };
    let prio = ThreadPriority::Crossplatform(
        priority
            .try_into()
            .map_err(|_| RealtimeError::InvalidPriority(priority))?,
    );
    set_thread_priority_and_policy(
        thread_native_id(),
        prio,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| match e {
        thread_priority::Error::OS(errno) => {
            denied(std::io::Error::from_raw_os_error(errno).to_string())
        }
        other => denied(other.to_string()),
    })?;
    // Check that it took: some sandboxes accept the call and ignore it.
    match thread_priority::unix::thread_schedule_policy() {
        Ok(ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo)) => Ok(()),
        Ok(other) => Err(denied(format!("the policy is {other:?} after setting it"))),
        Err(e) => Err(denied(e.to_string())),
    }
}

fn pin(pinning: Pinning) -> Result<Option<usize>, RealtimeError> {
    let allowed = sys::sched::process_cpus()
        .map(<[usize]>::to_vec)
        .unwrap_or_default();
    let cpu = match pinning {
        Pinning::Unpinned => {
            return sys::sched::unpin()
                .map(|()| None)
                .map_err(|e| RealtimeError::PinningFailed {
                    cpu: 0,
                    reason: format!("widening the affinity to every CPU failed: {e}"),
                    allowed,
                });
        }
        Pinning::Cpu(cpu) => cpu,
        Pinning::LastCpu => match allowed.last() {
            Some(&cpu) => cpu,
            None => {
                return Err(RealtimeError::PinningFailed {
                    cpu: 0,
                    reason: "sched_getaffinity returned no CPU".into(),
                    allowed,
                });
            }
        },
    };
    let failed = |reason: &str, allowed: Vec<usize>| RealtimeError::PinningFailed {
        cpu,
        reason: reason.into(),
        allowed,
    };
    if !allowed.contains(&cpu) {
        return Err(failed(
            "the CPU is not in this process's affinity mask",
            allowed,
        ));
    }
    if let Err(e) = sys::sched::set_affinity(&[cpu]) {
        return Err(failed(
            &format!("sched_setaffinity was refused: {e}"),
            allowed,
        ));
    }
    // Some sandboxes accept the call and ignore it: read the mask back.
    match sys::sched::current_affinity() {
        Ok(now) if now == [cpu] => {}
        Ok(now) => {
            return Err(failed(
                &format!("the mask is {now:?} after pinning"),
                allowed,
            ));
        }
        Err(e) => return Err(failed(&e.to_string(), allowed)),
    }
    // Migration happens before sched_setaffinity returns; confirm it.
    match sys::sched::current_cpu() {
        Some(now) if now == cpu => Ok(Some(cpu)),
        other => Err(failed(&format!("still running on CPU {other:?}"), allowed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_effort_never_fails_and_reports_itself() {
        let cfg = RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_lock_memory(false)
            .with_pinning(Pinning::Unpinned);
        let status = std::thread::spawn(move || make_current_thread_realtime(&cfg))
            .join()
            .unwrap()
            .unwrap();
        // Either SCHED_FIFO was granted (root) and the mode is guaranteed, or
        // the refusal is recorded; never a silent half state.
        assert_eq!(status.guaranteed, status.shortfalls.is_empty());
        assert_eq!(status.guaranteed, status.fifo_priority == Some(80));
        assert!(status.to_string().contains(if status.guaranteed {
            "guaranteed"
        } else {
            "BEST EFFORT"
        }));
    }

    #[test]
    fn disabled_undoes_an_inherited_realtime_policy_and_pinning() {
        let rt = RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_lock_memory(false)
            .with_pinning(Pinning::Cpu(0));
        std::thread::spawn(move || {
            let parent = make_current_thread_realtime(&rt).unwrap();
            // A thread created by a realtime, pinned thread inherits both...
            std::thread::spawn(move || {
                let cfg = RealtimeConfig::default().with_policy(RealtimePolicy::Disabled);
                let status = make_current_thread_realtime(&cfg).unwrap();
                assert!(!status.guaranteed);
                // ...and Disabled gives them back.
                assert_eq!(
                    thread_priority::unix::thread_schedule_policy().unwrap(),
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)
                );
                if parent.cpu.is_some() {
                    assert_eq!(
                        sys::sched::current_affinity().unwrap(),
                        (0..std::thread::available_parallelism().map_or(1, |n| n.get()))
                            .collect::<Vec<_>>()
                    );
                }
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }

    #[test]
    fn invalid_priority_is_an_error() {
        let cfg = RealtimeConfig::default().with_priority(0);
        assert_eq!(
            make_current_thread_realtime(&cfg),
            Err(RealtimeError::InvalidPriority(0))
        );
    }

    #[test]
    fn pinning_to_a_cpu_outside_the_mask_says_which_are_allowed() {
        let err = pin(Pinning::Cpu(4000)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("CPU 4000"), "{msg}");
        assert!(msg.contains("may use CPUs"), "{msg}");
    }

    #[test]
    fn refusal_messages_say_how_to_grant() {
        let e = RealtimeError::SchedFifoDenied {
            priority: 80,
            reason: "EPERM".into(),
            rtprio_limit: 0,
        };
        let msg = e.to_string();
        for needle in ["setcap cap_sys_nice+ep", "rtprio", "root", "best-effort"] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
        // The default needs SCHED_FIFO alone: no memory grant is suggested.
        assert!(!msg.contains("ipc_lock"), "{msg}");
        assert!(!msg.contains("memlock"), "{msg}");
        let msg = RealtimeError::MemoryLockDenied {
            reason: "EPERM".into(),
        }
        .to_string();
        for needle in ["mlockall", "cap_ipc_lock", "memlock unlimited", "HotPath"] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
    }

    #[test]
    fn the_default_locks_the_top_of_the_stack_and_says_so() {
        let cfg = RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_pinning(Pinning::Unpinned);
        let status = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || make_current_thread_realtime(&cfg))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        let m = &status.memory;
        assert_eq!(m.locking, MemoryLocking::HotPath);
        let stack = m.regions.iter().find(|r| r.what == "stack").unwrap();
        assert!(stack.bytes >= STACK_LOCK_BYTES, "{m:?}");
        assert!(
            stack.bytes <= STACK_LOCK_BYTES + STACK_ABOVE_LOCK_MAX + 4096,
            "{m:?}"
        );
        // Well inside the smallest default RLIMIT_MEMLOCK (64 KiB) or refused
        // for a reason the status gives.
        assert!(
            m.locked_bytes == m.hot_path_bytes || m.not_locked.is_some(),
            "{m:?}"
        );
        assert!(status.to_string().contains("hot path"), "{status}");
    }
}
