//! `epoll(7)` for the shared reader: one wait over every port's readiness
//! descriptor, edge-triggered, into an event buffer the caller owns (so it
//! can be prefaulted and locked with the rest of the hot path).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

/// One slot of the buffer [`Epoll::wait`] fills.
pub(crate) type EpollEvent = libc::epoll_event;

/// An empty event, to fill a buffer with.
pub(crate) const NO_EVENT: EpollEvent = libc::epoll_event { events: 0, u64: 0 };

/// The token an event carries (what [`Epoll::add`] was given).
pub(crate) fn token(event: &EpollEvent) -> u64 {
    // A copy: the struct is packed on x86_64, so no reference to the field.
    event.u64
}

impl Epoll {
    /// A new, close-on-exec epoll instance.
    pub(crate) fn new() -> io::Result<Epoll> {
        let fd = syscall!(
            // SAFETY: epoll_create1 takes a plain flag.
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }
        )?;
        // SAFETY: epoll_create1 just returned this descriptor and nothing else owns it.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for readability, edge-triggered: an event per new
    /// arrival, none while the descriptor merely stays readable.
    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        syscall!(
            // SAFETY: `event` is a valid epoll_event that outlives the call; the
            // kernel checks `fd` (EBADF if it is not open).
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }
        )
        .map(drop)
    }

    /// Watches `fd` for the `poll(2)` events `poll_events` names (`POLLIN`,
    /// `POLLOUT`; errors and hang-ups always), edge-triggered, as libusb
    /// lists its descriptors.
    pub(crate) fn add_polled(&self, fd: RawFd, poll_events: i16, token: u64) -> io::Result<()> {
        let mut events = libc::EPOLLET as u32;
        if poll_events & libc::POLLIN != 0 {
            events |= libc::EPOLLIN as u32;
        }
        if poll_events & libc::POLLOUT != 0 {
            events |= libc::EPOLLOUT as u32;
        }
        let mut event = libc::epoll_event { events, u64: token };
        syscall!(
            // SAFETY: as in `add`.
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) }
        )
        .map(drop)
    }

    /// Stops watching `fd` (before it is closed).
    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut unused = NO_EVENT;
        syscall!(
            // SAFETY: the event argument is ignored for DEL but must be non-null
            // before Linux 2.6.9; `unused` outlives the call.
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut unused) }
        )
        .map(drop)
    }

    /// Waits up to `timeout` (`None`: without limit; rounded up to whole
    /// milliseconds, zero stays zero) and fills `events`; returns how many.
    /// `EINTR` counts as a timeout (0), so callers simply loop.
    pub(crate) fn wait(
        &self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let ms = timeout.map_or(-1, |t| {
            let ms = t.as_nanos().div_ceil(1_000_000);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        });
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        match syscall!(
            // SAFETY: `events` is a valid, writable buffer of at least `max` entries
            // that outlives the call.
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, ms) }
        ) {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::EventFd;
    use std::os::fd::AsFd;

    #[test]
    fn an_edge_per_arrival_with_its_token() {
        let epoll = Epoll::new().unwrap();
        let bell = EventFd::new().unwrap();
        epoll.add(bell.as_fd().as_raw_fd(), 7).unwrap();
        let mut events = [NO_EVENT; 4];
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        bell.signal();
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
        assert_eq!(token(&events[0]), 7);
        // Still readable, but no new arrival: edge-triggered, no event.
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        epoll.delete(bell.as_fd().as_raw_fd()).unwrap();
        bell.signal();
        assert_eq!(
            epoll
                .wait(&mut events, Some(Duration::from_millis(1)))
                .unwrap(),
            0
        );
    }
}
