//! Thin, safe wrappers over the Linux system calls the crate needs.
//!
//! Every `libc` call outside the libusb transfer code lives here, behind the
//! [`syscall!`] helper (mio's pattern), so the rest of the crate is safe Rust.
//! Nothing in this module allocates except where a doc comment says so; the
//! realtime reader and the channel call into it on the hot path.
//!
//! One concept per file, as mio's `sys/unix`: this file has the clock, the
//! eventfd and `ppoll` (what every wait is made of); [`sched`] scheduling and
//! CPU affinity, [`mem`] memory locking and page faults, [`fd`] plain
//! descriptor I/O, [`tty`] terminal ioctls, [`signal`] the exit path's signal handler, [`epoll`] the shared reader's
//! wait, `reactor` registration with tokio (feature `tokio`). Nothing here
//! imports the rest of the crate: times are plain `CLOCK_MONOTONIC` nanoseconds.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

// Turns the return value of a `libc` call into `io::Result`: negative is
// `io::Error::last_os_error()`. The call site writes the `unsafe` block and
// the comment that argues it is sound inside the parentheses, right above
// the block, so each argument sits next to the call it is about (and
// clippy's undocumented_unsafe_blocks checks every one of them).
macro_rules! syscall {
    ($call:expr) => {{
        let res = $call;
        if res < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

pub(crate) mod epoll;
pub(crate) mod fd;
pub(crate) mod mem;
#[cfg(feature = "tokio")]
pub(crate) mod reactor;
pub(crate) mod sched;
pub(crate) mod signal;
pub(crate) mod tty;

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
        let fd = syscall!(
            // SAFETY: eventfd takes plain integer arguments.
            unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }
        )?;
        // SAFETY: eventfd just returned this descriptor and nothing else owns it.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the descriptor readable. Never blocks; a saturated counter is
    /// already readable, so `EAGAIN` is success.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        let _ = syscall!(
            // SAFETY: writes the 8 bytes of `one`, which lives across the call, to our own fd.
            unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) }
        );
    }

    /// Resets the counter; returns whether it was signalled.
    pub(crate) fn drain(&self) -> bool {
        let mut value: u64 = 0;
        syscall!(
            // SAFETY: reads at most 8 bytes into `value`, which is 8 bytes and writable.
            unsafe { libc::read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8) }
        )
        .is_ok()
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
    match syscall!(
        // SAFETY: `fds` is a valid slice of pollfd for its length; `ts_ptr` is null or points
        // to `ts`, which outlives the call; a null sigmask keeps the current mask.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                ts_ptr,
                std::ptr::null(),
            )
        }
    ) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}
