//! A libusb port on a shared reader, and the reader's libusb context.
//!
//! Unlike a sim or tty port, a libusb port joins before its chip is
//! configured: only the reader thread may handle the shared context's events
//! (`transport::usb::SharedContext`), so the port's event loop moves here
//! as soon as it is built and serves the reset and the settings from here
//! ([`UsbMember::join`]). The port's pipeline arrives afterwards
//! ([`UsbMember::arm`]), and only then are its IN transfers put in flight, as
//! on a reader of its own.
//!
//! Per wakeup the reader lets libusb reap for the whole context once
//! ([`ContextEvents::handle_events`]); then each libusb port's turn takes its
//! own finished transfers, in order, without waiting
//! (`EventLoop::turn_ready`): at most the transfers it has in flight, since
//! a resubmitted transfer completes only in a later event handling.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::Pipeline;
use super::member::Member;
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::realtime::memory::{HotRegions, MemoryLease, MemoryLocking, MemoryStatus, lock_regions};
use crate::time::Timestamp;
use crate::transport::LinkLost;
use crate::transport::usb::{EventLoop, SharedContext, TransferSet};

/// Housekeeping interval of a port that is still being configured (its
/// pipeline, which knows the latency timer, comes later).
const OPENING_TICK: Duration = Duration::from_millis(10);

/// A context whose events the shared reader handles for its members: the
/// reader's libusb context (a trait so that the reader's loop is tested
/// without USB).
pub(crate) trait ContextEvents: Send + Sync + std::fmt::Debug {
    /// On the reader thread, once: makes it the thread that handles the
    /// events. Returns whether it is.
    fn claim(&self) -> bool;
    /// The descriptors to wait on, with the `poll` events wanted (slow path).
    fn pollfds(&self) -> Vec<libc::pollfd>;
    /// Reaps what completed, runs the callbacks, without waiting.
    fn handle_events(&self) -> Result<(), TransferError>;
}

impl ContextEvents for SharedContext {
    fn claim(&self) -> bool {
        self.claim_events()
    }

    fn pollfds(&self) -> Vec<libc::pollfd> {
        SharedContext::pollfds(self)
    }

    #[inline]
    fn handle_events(&self) -> Result<(), TransferError> {
        SharedContext::handle_events(self, Duration::ZERO)
    }
}

/// A libusb port's reader-thread state on a shared reader.
#[derive(Debug)]
pub(crate) struct UsbMember {
    event_loop: Box<EventLoop<TransferSet>>,
    /// The loop's doorbell: rung by the application's writes and requests.
    wake: Arc<Doorbell>,
    /// Set by [`arm`](Member::arm), once the chip is configured.
    pipeline: Option<Pipeline>,
    lease: MemoryLease,
    left: bool,
}

impl UsbMember {
    /// The member for a freshly built loop (nothing in flight yet).
    pub(crate) fn new(event_loop: EventLoop<TransferSet>, wake: Arc<Doorbell>) -> UsbMember {
        UsbMember {
            event_loop: Box::new(event_loop),
            wake,
            pipeline: None,
            lease: MemoryLease::default(),
            left: false,
        }
    }
}

impl Member for UsbMember {
    fn join(&mut self, _locking: MemoryLocking) -> Result<MemoryStatus, LinkLost> {
        // Serving the mailbox needs nothing locked yet: the port is being
        // configured, and its hot memory is known once it is armed.
        match self.event_loop.lost() {
            Some(why) => Err(LinkLost(why.to_string())),
            None => Ok(MemoryStatus::default()),
        }
    }

    fn arm(
        &mut self,
        pipeline: Pipeline,
        locking: MemoryLocking,
    ) -> Result<MemoryStatus, LinkLost> {
        let pipeline = self.pipeline.insert(pipeline);
        // As on a reader of its own: small state first, the ring last.
        let mut regions = HotRegions::default();
        pipeline.hot_state(&mut regions);
        self.event_loop.hot_memory(&mut regions);
        pipeline.hot_ring(&mut regions);
        let (lease, memory) = lock_regions(locking, &regions);
        self.lease = lease;
        if let Some(why) = self.event_loop.lost() {
            return Err(LinkLost(why.to_string()));
        }
        self.event_loop.arm_in()?;
        Ok(memory)
    }

    fn readiness(&self) -> RawFd {
        self.wake.as_fd().as_raw_fd()
    }

    fn in_context(&self) -> bool {
        true
    }

    #[inline]
    fn turn(&mut self) -> Result<usize, LinkLost> {
        match &mut self.pipeline {
            Some(pipeline) => self
                .event_loop
                .turn_ready(&mut |c| pipeline.on_completion(c)),
            // Not armed: no IN transfer in flight, only commands to serve.
            None => self.event_loop.turn_ready(&mut |_| {}),
        }
    }

    #[inline]
    fn after_wait(&mut self, now: Timestamp) {
        if let Some(pipeline) = &mut self.pipeline {
            pipeline.after_wait(now);
        }
    }

    fn poll_interval(&self) -> Duration {
        self.pipeline
            .as_ref()
            .map_or(OPENING_TICK, Pipeline::poll_interval)
    }

    fn leave(&mut self, why: String) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        if let Some(pipeline) = &mut self.pipeline {
            pipeline.close(why);
        }
        // On this thread, the context's only event handler: the drain lets
        // libusb give back every cancelled transfer.
        self.event_loop.shutdown();
        self.lease.release();
    }
}

impl Drop for UsbMember {
    fn drop(&mut self) {
        self.leave("the shared reader stopped".into());
    }
}
