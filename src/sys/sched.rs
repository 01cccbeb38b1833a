//! Scheduling: thread ids, CPU affinity, timer slack, and the limits and
//! capabilities that decide what realtime setup a process may have.

use std::io;

/// The calling thread's kernel thread id (the `tid` of `/proc/self/task/<tid>`).
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and always succeeds.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// `RLIMIT_RTPRIO` soft limit (the highest SCHED_FIFO priority an unprivileged
/// process may take).
pub(crate) fn rtprio_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    syscall!(
        // SAFETY: `lim` is a valid, writable rlimit.
        unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) }
    )?;
    Ok(lim.rlim_cur)
}

/// The CPUs the calling thread may run on, as a bit set (CPUs 0..1024).
pub(crate) fn current_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    syscall!(
        // SAFETY: `set` is writable and its size is passed; pid 0 means the calling thread.
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
    )?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_ISSET stays inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The CPUs this process may use: the calling thread's mask the first time
/// any thread asks (before anything here pins a thread), so a `taskset` the
/// process was started under is respected while a pinning a thread inherited
/// from its creator is not mistaken for the process's set. Allocates once.
pub(crate) fn process_cpus() -> io::Result<&'static [usize]> {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    if let Some(cpus) = CPUS.get() {
        return Ok(cpus);
    }
    let cpus = current_affinity()?;
    Ok(CPUS.get_or_init(|| cpus))
}

/// Lets the calling thread run on exactly `cpus`.
pub(crate) fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_SET stays inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    syscall!(
        // SAFETY: `set` is a valid mask of the size passed; pid 0 = this thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }
    )
    .map(drop)
}

/// Lets the calling thread run on every CPU of [`process_cpus`] (a thread
/// inherits its creator's pinning, so "unpinned" must be set).
pub(crate) fn unpin() -> io::Result<()> {
    set_affinity(process_cpus()?)
}

/// The CPU the calling thread runs on right now.
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes no arguments.
    let cpu = unsafe { libc::sched_getcpu() };
    (cpu >= 0).then_some(cpu as usize)
}

/// Sets the calling thread's timer slack (how late the kernel may fire its
/// timers to batch wakeups; 50 µs by default for normal threads).
pub(crate) fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    syscall!(
        // SAFETY: PR_SET_TIMERSLACK takes an integer; the unused arguments are zero.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) }
    )
    .map(drop)
}

/// Whether the effective capability set holds `cap` (a CAP_* number), read
/// from `/proc/self/status` so no capability library is needed. Allocates.
pub(crate) fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// CAP_IPC_LOCK: may lock memory beyond RLIMIT_MEMLOCK.
pub(crate) const CAP_IPC_LOCK: u32 = 14;

// --- scheduling of other threads (the USB/IP front end) ---

/// Puts thread `pid` (any thread, e.g. a kernel thread found in /proc)
/// under `SCHED_FIFO` at `priority`, or `SCHED_OTHER` for `None` (its nice
/// value unchanged). Needs CAP_SYS_NICE.
#[cfg(feature = "usbip")]
pub(crate) fn set_scheduler_of(pid: libc::pid_t, priority: Option<u8>) -> io::Result<()> {
    let (policy, priority) = match priority {
        Some(p) => (libc::SCHED_FIFO, libc::c_int::from(p)),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: priority,
    };
    syscall!(
        // SAFETY: `param` is a valid sched_param that lives across the call; the
        // kernel checks the pid and the priority and reports errors through errno.
        unsafe { libc::sched_setscheduler(pid, policy, &param) }
    )
    .map(drop)
}

/// The scheduling policy (`SCHED_*`) and realtime priority of thread `pid`.
#[cfg(feature = "usbip")]
pub(crate) fn scheduler_of(pid: libc::pid_t) -> io::Result<(libc::c_int, libc::c_int)> {
    let policy = syscall!(
        // SAFETY: sched_getscheduler takes a pid only.
        unsafe { libc::sched_getscheduler(pid) }
    )?;
    let mut param = libc::sched_param { sched_priority: 0 };
    syscall!(
        // SAFETY: `param` is a valid, writable sched_param.
        unsafe { libc::sched_getparam(pid, &mut param) }
    )?;
    Ok((policy, param.sched_priority))
}
