//! A wakeup between two threads that costs the ringer a system call only when
//! the other side is asleep.
//!
//! The waiter announces it is about to sleep ([`Doorbell::arm`]), checks its
//! condition once more, then blocks on the eventfd. The ringer makes the
//! condition true, then calls [`Doorbell::ring`], which writes the eventfd only
//! if the waiter announced itself. The SeqCst fences on both sides form a
//! Dekker handshake: at least one side sees the other's write, so a wakeup is
//! never lost, and a busy waiter costs the ringer nothing but an atomic load.
//! Used between the reader and the application, the reader and the simulated
//! chip, and the application and the libusb event loop. [`Doorbell::wait_until`]
//! is the whole waiter side in one call: check, arm, check again, sleep.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

use crate::sys::EventFd;
use crate::time::{Deadline, Timestamp};

/// An eventfd plus the "waiter may be asleep" flag.
#[derive(Debug)]
pub(crate) struct Doorbell {
    efd: EventFd,
    waiting: AtomicBool,
}

impl Doorbell {
    /// A doorbell whose first ring always signals (the waiter may already be
    /// blocked in a poll loop that never called `arm`).
    pub(crate) fn new() -> io::Result<Doorbell> {
        Ok(Doorbell {
            efd: EventFd::new()?,
            waiting: AtomicBool::new(true),
        })
    }

    /// Ringer side, after making the condition true. Never blocks.
    #[inline]
    pub(crate) fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::AcqRel) {
            self.efd.signal();
        }
    }

    /// Ringer side: signal whatever the flag says (closing, stopping).
    pub(crate) fn ring_always(&self) {
        self.waiting.store(false, Ordering::Relaxed);
        self.efd.signal();
    }

    /// Waiter side, before sleeping: clear stale signals and announce the
    /// sleep. The caller must check its condition again before blocking.
    ///
    /// The drain is unconditional. Skipping it when the flag is still set
    /// looks cheaper but is wrong: a ringer can clear the flag, be preempted,
    /// and write its signal after the waiter re-armed, leaving a signal that
    /// no later `arm` would drain, so every wait returns at once and the
    /// waiter spins (`a_late_signal_is_drained_by_the_next_arm`).
    #[inline]
    pub(crate) fn arm(&self) {
        self.efd.drain();
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Waiter side, for a waiter that watches the eventfd edge-triggered
    /// (the shared reader's epoll) and never blocks on it: announces the
    /// sleep without draining. There a signal left in the counter wakes
    /// nothing (only a new write makes an edge, whatever the counter holds),
    /// so the read [`arm`](Self::arm) spends on every wait is saved.
    #[inline]
    pub(crate) fn arm_edge_triggered(&self) {
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Waiter side: block until rung or `timeout` passes (`None`: forever).
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.efd.wait(timeout)
    }

    /// Waiter side, the whole protocol: returns what `ready` finds as soon
    /// as it finds something, or `None` once `deadline` has passed (with no
    /// deadline it waits as long as it takes). `ready` is called once more
    /// after announcing the sleep, so a ring between its first call and the
    /// sleep is never lost; the ringer must make the condition true before
    /// ringing.
    ///
    /// # Errors
    /// Only if waiting on the eventfd fails (out of kernel memory).
    pub(crate) fn wait_until<T>(
        &self,
        deadline: Option<Deadline>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> io::Result<Option<T>> {
        loop {
            if let Some(found) = ready() {
                return Ok(Some(found));
            }
            self.arm();
            if let Some(found) = ready() {
                return Ok(Some(found));
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.remaining(Timestamp::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            self.wait(left)?;
        }
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.efd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    /// The interleaving that made an earlier "skip the drain" version spin:
    /// the ringer clears the flag, the waiter re-arms, then the signal lands.
    #[test]
    fn a_late_signal_is_drained_by_the_next_arm() {
        let bell = Doorbell::new().unwrap();
        bell.arm();
        assert!(
            bell.waiting.swap(false, Ordering::AcqRel),
            "the ringer takes the flag..."
        );
        bell.arm(); // ...the waiter arms again before the ringer signals...
        bell.efd.signal(); // ...and the signal lands.
        assert!(
            bell.wait(Some(Duration::ZERO)).unwrap(),
            "one spurious wakeup is fine"
        );
        bell.arm();
        let start = std::time::Instant::now();
        assert!(
            !bell.wait(Some(Duration::from_millis(50))).unwrap(),
            "a stale signal would make the waiter spin"
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn wait_until_returns_what_is_ready_or_none_at_the_deadline() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let value = Arc::new(AtomicU64::new(0));
        // Ready at once: no wait.
        value.store(7, Ordering::Release);
        let got = bell
            .wait_until(Some(Deadline::from_now(Duration::ZERO)), || {
                Some(value.load(Ordering::Acquire)).filter(|&v| v > 0)
            })
            .unwrap();
        assert_eq!(got, Some(7));
        // Never ready: None once the deadline has passed, not before.
        value.store(0, Ordering::Release);
        let deadline = Deadline::from_now(Duration::from_millis(5));
        let got = bell
            .wait_until(Some(deadline), || {
                Some(value.load(Ordering::Acquire)).filter(|&v| v > 0)
            })
            .unwrap();
        assert_eq!(got, None);
        assert!(deadline.is_past(Timestamp::now()));
        // Made ready by another thread, which rings after setting it.
        let (b, v) = (bell.clone(), value.clone());
        let ringer = std::thread::spawn(move || {
            v.store(42, Ordering::Release);
            b.ring();
        });
        let got = bell
            .wait_until(None, || {
                Some(value.load(Ordering::Acquire)).filter(|&v| v > 0)
            })
            .unwrap();
        assert_eq!(got, Some(42));
        ringer.join().unwrap();
    }

    #[test]
    fn a_waiter_is_never_left_asleep() {
        let bell = Arc::new(Doorbell::new().unwrap());
        let value = Arc::new(AtomicU64::new(0));
        const N: u64 = 100_000;
        let (b, v) = (bell.clone(), value.clone());
        let ringer = std::thread::spawn(move || {
            for i in 1..=N {
                v.store(i, Ordering::Release);
                b.ring();
            }
        });
        let mut seen = 0;
        while seen < N {
            let now = value.load(Ordering::Acquire);
            if now > seen {
                seen = now;
                continue;
            }
            bell.arm();
            if value.load(Ordering::Acquire) > seen {
                continue;
            }
            assert!(
                bell.wait(Some(Duration::from_secs(5))).unwrap(),
                "lost wakeup at {seen}"
            );
        }
        ringer.join().unwrap();
    }

    #[test]
    fn an_edge_triggered_waiter_sees_every_ring_after_arming_without_a_drain() {
        use crate::sys::epoll::{Epoll, NO_EVENT};
        let bell = Doorbell::new().unwrap();
        let epoll = Epoll::new().unwrap();
        epoll
            .add(std::os::fd::AsRawFd::as_raw_fd(&bell.as_fd()), 7)
            .unwrap();
        let mut events = [NO_EVENT; 4];
        let zero = Some(Duration::ZERO);
        for round in 0..3 {
            bell.arm_edge_triggered();
            assert_eq!(epoll.wait(&mut events, zero).unwrap(), 0, "round {round}");
            bell.ring();
            // The counter was never drained: the ring still makes an edge.
            assert_eq!(epoll.wait(&mut events, zero).unwrap(), 1, "round {round}");
            bell.ring();
            assert_eq!(
                epoll.wait(&mut events, zero).unwrap(),
                0,
                "not armed: the ringer does not signal"
            );
        }
    }
}
