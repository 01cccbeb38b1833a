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
}

impl Shared {
    pub(crate) fn new() -> io::Result<Shared> {
        Ok(Shared {
            bell: Doorbell::new()?,
            closed: AtomicBool::new(false),
            lost_at_close: AtomicU64::new(0),
            overflow_chunks: Counter::default(),
            overflow_bytes: Counter::default(),
        })
    }

    /// Sender side, once: no more chunks will come.
    pub(crate) fn close(&self, lost_unreported: u64) {
        self.lost_at_close.store(lost_unreported, Ordering::Relaxed);
        self.closed.store(true, Ordering::Release);
        // A closing channel must wake a sleeper whatever the flag says.
        self.bell.ring_always();
    }
}
