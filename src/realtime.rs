//! Putting a thread under `SCHED_FIFO`, pinned to one CPU, with memory locked.
//!
//! The reader thread calls [`make_current_thread_realtime`] before it touches
//! the device; applications may call it on their own receiving thread too
//! (the example loop does). By default every part is required and a refusal
//! is an error that says how to grant it; [`RealtimePolicy::BestEffort`] takes
//! what it can get and records the shortfall in [`RealtimeStatus`], which the
//! statistics carry, so a best-effort run is never mistaken for a guaranteed one.

use std::fmt;

use thread_priority::{
    NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

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
/// Defaults: `SCHED_FIFO` priority 80, pinned to the last CPU, memory locked,
/// every part required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct RealtimeConfig {
    /// `SCHED_FIFO` priority, 1..=99.
    pub priority: u8,
    /// CPU pinning.
    pub pinning: Pinning,
    /// Lock all current and future memory of the process (`mlockall`).
    pub lock_memory: bool,
    /// Required or best effort.
    pub policy: RealtimePolicy,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            priority: 80,
            pinning: Pinning::LastCpu,
            lock_memory: true,
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
    /// Sets whether memory is locked.
    pub const fn with_lock_memory(mut self, lock: bool) -> Self {
        self.lock_memory = lock;
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
pub struct RealtimeStatus {
    /// Everything that was asked for took effect: the guaranteed mode.
    pub guaranteed: bool,
    /// The `SCHED_FIFO` priority in force, if any.
    pub fifo_priority: Option<u8>,
    /// The CPU the thread is pinned to (checked after pinning), if any.
    pub cpu: Option<usize>,
    /// Whether `mlockall` succeeded.
    pub memory_locked: bool,
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
        if self.memory_locked {
            write!(f, ", memory locked")?;
        }
        if self.guaranteed {
            write!(f, " (guaranteed)")
        } else {
            write!(f, " (BEST EFFORT: {})", self.shortfalls.join("; "))
        }
    }
}

/// A part of the realtime setup was refused. Each message says how to grant it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    /// `sched_setscheduler(SCHED_FIFO)` failed.
    #[error(
        "SCHED_FIFO priority {priority} was refused ({reason}; RLIMIT_RTPRIO is {rtprio_limit}). \
         Grant it in one of these ways: run as root; give the binary the capability with \
         `sudo setcap cap_sys_nice,cap_ipc_lock+ep <binary>`; or allow your user realtime \
         priority with a line `<user> - rtprio 99` in /etc/security/limits.d/99-realtime.conf \
         (log in again afterwards; in a container add --cap-add SYS_NICE). \
         Or opt in to best-effort mode (RealtimePolicy::BestEffort, `--best-effort` in the \
         examples), which the statistics record"
    )]
    SchedFifoDenied {
        /// The priority asked for.
        priority: u8,
        /// What the OS said.
        reason: String,
        /// The current RLIMIT_RTPRIO soft limit.
        rtprio_limit: u64,
    },
    /// Pinning to the CPU failed or did not take.
    #[error(
        "could not pin the thread to CPU {cpu}: {reason}. This process may use CPUs {allowed:?} \
         (see `taskset -p $$` and the cgroup's cpuset); choose one of those"
    )]
    PinningFailed {
        /// The CPU asked for.
        cpu: usize,
        /// What went wrong.
        reason: String,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// `mlockall` was refused or would exhaust RLIMIT_MEMLOCK.
    #[error(
        "locking memory (mlockall) was refused: {reason}. Grant it with \
         `sudo setcap cap_sys_nice,cap_ipc_lock+ep <binary>`, or a line \
         `<user> - memlock unlimited` in /etc/security/limits.d/99-realtime.conf (log in again), \
         or run as root; or turn it off with RealtimeConfig::with_lock_memory(false) \
         (page faults may then delay the reader)"
    )]
    MemoryLockDenied {
        /// What went wrong.
        reason: String,
    },
    /// The priority is outside 1..=99.
    #[error("SCHED_FIFO priority must be 1..=99, got {0}")]
    InvalidPriority(u8),
}

/// Makes the calling thread realtime as `config` asks: memory locked, then
/// `SCHED_FIFO`, then pinned, then its stack prefaulted and its timer slack
/// set to 1 ns.
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
    let _ = sys::process_cpus();
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
        let _ = sys::unpin();
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

    if config.lock_memory {
        match lock_memory() {
            Ok(()) => status.memory_locked = true,
            Err(e) => note(&mut status, e)?,
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
    sys::prefault_stack();
    // A SCHED_FIFO thread already gets zero slack; this also tightens a
    // best-effort thread's sleeps.
    let _ = sys::set_timer_slack_ns(1);
    status.guaranteed = status.shortfalls.is_empty();
    Ok(status)
}

fn lock_memory() -> Result<(), RealtimeError> {
    // With MCL_FUTURE every later allocation counts against RLIMIT_MEMLOCK;
    // under a finite limit a later allocation could fail and abort the
    // process, so a finite limit without CAP_IPC_LOCK counts as refused.
    let privileged = sys::has_capability(sys::CAP_IPC_LOCK);
    if let (false, Ok(Some(limit))) = (privileged, sys::memlock_limit()) {
        return Err(RealtimeError::MemoryLockDenied {
            reason: format!(
                "RLIMIT_MEMLOCK is {} KiB and the process lacks CAP_IPC_LOCK",
                limit / 1024
            ),
        });
    }
    sys::lock_all_memory().map_err(|e| RealtimeError::MemoryLockDenied {
        reason: e.to_string(),
    })
}

fn set_fifo(priority: u8) -> Result<(), RealtimeError> {
    let denied = |reason: String| RealtimeError::SchedFifoDenied {
        priority,
        reason,
        rtprio_limit: sys::rtprio_limit().unwrap_or(0),
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
    let allowed = sys::process_cpus()
        .map(<[usize]>::to_vec)
        .unwrap_or_default();
    let cpu = match pinning {
        Pinning::Unpinned => {
            return sys::unpin()
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
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        return Err(failed("sched_setaffinity was refused", allowed));
    }
    // core_affinity drops errno and reports only a bool; read the mask back.
    match sys::current_affinity() {
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
    match sys::current_cpu() {
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
                        sys::current_affinity().unwrap(),
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
        for needle in ["setcap cap_sys_nice", "rtprio", "root", "best-effort"] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
    }
}
