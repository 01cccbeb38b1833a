//! State the two ends of the channel share: the doorbell and the loss counters.
//!
//! Only atomics and an eventfd: nothing here can block the realtime side.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::doorbell::Doorbell;
use crate::stats::Counter;

#[derive(Debug)]
pub(crate) struct Shared {
    /// Rung by the sender when the receiver may be asleep; its eventfd is the
    /// file descriptor the application polls.
    pub(crate) bell: Doorbell,
    /// The sender is gone (unplug, fatal error, or the port closed).
    pub(crate) closed: AtomicBool,
    /// Bytes dropped that no later chunk could carry before the close.
    pub(crate) lost_at_close: AtomicU64,
    /// Chunks dropped because the ring was full (statistics).
    pub(crate) overflow_chunks: Counter,
    /// Bytes dropped because the ring was full (statistics).
    pub(crate) overflow_bytes: Counter,
    /// Payload bytes the sender put into the ring.
    pub(crate) pushed_bytes: Counter,
    /// Payload bytes the receiver took out of it (handed out, read or
    /// discarded). `pushed - taken` is what waits for the application.
    pub(crate) taken_bytes: Counter,
    /// A request, from any handle of the port, to drop what was received
    /// up to now: the `pushed_bytes` total at the time of the request.
    /// The receiver honours it on its next receive (it alone may pop).
    pub(crate) discard_until: AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> io::Result<Shared> {
        Ok(Shared {
            bell: Doorbell::new()?,
            closed: AtomicBool::new(false),
            lost_at_close: AtomicU64::new(0),
            overflow_chunks: Counter::default(),
            overflow_bytes: Counter::default(),
            pushed_bytes: Counter::default(),
            taken_bytes: Counter::default(),
            discard_until: AtomicU64::new(0),
        })
    }

    /// Payload bytes in the ring that the application has not taken yet
    /// (a snapshot: the reader may be adding more).
    pub(crate) fn queued_bytes(&self) -> u64 {
        // Taken first: the pushed total read after it can only be larger,
        // so the difference is never negative for long; saturate anyway.
        // A pending discard counts as taken already.
        let taken = self
            .taken_bytes
            .get()
            .max(self.discard_until.load(Ordering::Relaxed));
        self.pushed_bytes.get().saturating_sub(taken)
    }

    /// Asks the receiver to drop everything received so far.
    pub(crate) fn request_discard(&self) {
        self.discard_until
            .fetch_max(self.pushed_bytes.get(), Ordering::Relaxed);
    }

    /// Sender side, once: no more chunks will come.
    pub(crate) fn close(&self, lost_unreported: u64) {
        self.lost_at_close.store(lost_unreported, Ordering::Relaxed);
        self.closed.store(true, Ordering::Release);
        // A closing channel must wake a sleeper whatever the flag says.
        self.bell.ring_always();
    }
}
