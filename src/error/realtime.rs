//! Why a realtime setup was refused ([`crate::realtime`]), with how to grant it.
//!
//! Here, beside [`Error`](crate::Error), rather than in `realtime`: the
//! crate's error wraps it, and `realtime` reports errors of its own, so
//! keeping the type with the errors keeps the two modules from depending on
//! each other.

/// A part of the realtime setup was refused. Each message says how to grant it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RealtimeError {
    /// `sched_setscheduler(SCHED_FIFO)` failed.
    #[error(
        "SCHED_FIFO priority {priority} was refused ({reason}; RLIMIT_RTPRIO is {rtprio_limit}). \
         This is the one grant the default needs (the reader locks only its own hot path, \
         within RLIMIT_MEMLOCK). Grant it in one of these ways: give the binary the \
         capability with `sudo setcap cap_sys_nice+ep <binary>`; or allow your user realtime \
         priority with a line `<user> - rtprio 99` in /etc/security/limits.d/99-realtime.conf \
         (log in again afterwards; LimitRTPRIO=99 for a systemd service; --cap-add SYS_NICE \
         in a container); or run as root. Or opt in to best-effort mode \
         (RealtimePolicy::BestEffort, `--best-effort` in the examples), which the statistics \
         record"
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
    /// `mlockall` ([`MemoryLocking::WholeProcess`](crate::MemoryLocking::WholeProcess)) was refused or would
    /// exhaust RLIMIT_MEMLOCK.
    #[error(
        "locking the whole process (mlockall, MemoryLocking::WholeProcess) was refused: \
         {reason}. Grant it with `sudo setcap cap_sys_nice,cap_ipc_lock+ep <binary>`, or a line \
         `<user> - memlock unlimited` in /etc/security/limits.d/99-realtime.conf (log in \
         again; LimitMEMLOCK=infinity for a service), or run as root; or use the default \
         MemoryLocking::HotPath, which locks only the reader's own memory and needs no grant \
         beyond SCHED_FIFO"
    )]
    MemoryLockDenied {
        /// What went wrong.
        reason: String,
    },
    /// The priority is outside 1..=99.
    #[error("SCHED_FIFO priority must be 1..=99, got {0}")]
    InvalidPriority(u8),
}
