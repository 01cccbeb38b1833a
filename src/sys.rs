//! Thin, safe wrappers over the Linux system calls the crate needs.
//!
//! Every `libc` call outside the libusb transfer code lives here, behind the
//! [`syscall!`] helper (mio's pattern), so the rest of the crate is safe Rust.
//! Nothing in this module allocates except where a doc comment says so; the
//! realtime reader and the channel call into it on the hot path.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Calls a `libc` function and turns a negative return into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract;
        // the comment at the call site says why.
        let res = unsafe { libc::$fn($($arg),*) };
        if res < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Reads `CLOCK_MONOTONIC` in nanoseconds (vDSO, no system call on x86_64).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An `eventfd(2)` counter used as a wakeup: the writer adds 1, the reader drains.
///
/// Non-blocking and close-on-exec. It is the file descriptor the application
/// polls, so it must never block the realtime thread that signals it.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes plain integer arguments.
        let fd = syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))?;
        // SAFETY: eventfd just returned this descriptor and nothing else owns it.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable. Never blocks; a saturated counter is
    /// already readable, so `EAGAIN` is success.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call, to our own fd.
        let _ = syscall!(write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8));
    }

    /// Resets the counter; returns whether it was signalled.
    pub(crate) fn drain(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into `value`, which is 8 bytes and writable.
        syscall!(read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8)).is_ok()
    }

    /// Blocks until signalled or `timeout` passes; `None` waits forever.
    /// Returns whether it was signalled (the counter is left as it was).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let mut fds = [pollfd(self.0.as_fd(), libc::POLLIN)];
        Ok(poll(&mut fds, timeout)? > 0)
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Builds a `pollfd` entry for [`poll`].
pub(crate) fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// `ppoll(2)` with nanosecond timeout resolution (plain `poll` rounds to
/// milliseconds, which is the whole latency budget here). `EINTR` counts as a
/// timeout so callers simply loop.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid slice of pollfd for its length; `ts_ptr` is null or points
    // to `ts`, which outlives the call; a null sigmask keeps the current mask.
    match syscall!(ppoll(
        fds.as_mut_ptr(),
        fds.len() as libc::nfds_t,
        ts_ptr,
        std::ptr::null()
    )) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)`: no page of this process may be
/// swapped out or lazily faulted in behind the realtime thread's back.
pub(crate) fn lock_all_memory() -> io::Result<()> {
    // SAFETY: mlockall takes a flag word only.
    syscall!(mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE)).map(drop)
}

/// `RLIMIT_MEMLOCK` soft limit in bytes; `None` means unlimited.
pub(crate) fn memlock_limit() -> io::Result<Option<u64>> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    syscall!(getrlimit(libc::RLIMIT_MEMLOCK, &mut lim))?;
    Ok((lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur))
}

/// `RLIMIT_RTPRIO` soft limit (the highest SCHED_FIFO priority an unprivileged
/// process may take).
pub(crate) fn rtprio_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    syscall!(getrlimit(libc::RLIMIT_RTPRIO, &mut lim))?;
    Ok(lim.rlim_cur)
}

/// The CPUs the calling thread may run on, as a bit set (CPUs 0..1024).
pub(crate) fn current_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed; pid 0 means the calling thread.
    syscall!(sched_getaffinity(
        0,
        std::mem::size_of::<libc::cpu_set_t>(),
        &mut set
    ))?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_ISSET stays inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
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
    // SAFETY: PR_SET_TIMERSLACK takes an integer; the unused arguments are zero.
    syscall!(prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0)).map(drop)
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

/// Bytes of stack [`prefault_stack`] touches; realtime threads are spawned
/// with a larger stack than this.
pub(crate) const PREFAULT_STACK_BYTES: usize = 256 * 1024;

/// Touches the top [`PREFAULT_STACK_BYTES`] of the current thread's stack so
/// the pages are resident before the realtime loop starts (with `mlockall`
/// they then stay): the first call into a deep function must not page-fault.
#[inline(never)]
pub(crate) fn prefault_stack() {
    let mut block = [0u8; PREFAULT_STACK_BYTES];
    // black_box makes the zeroing observable, so every page is written.
    std::hint::black_box(&mut block);
}
