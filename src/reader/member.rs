//! One port as a shared [`Reader`](super::Reader) serves it: its inbound
//! and pipeline behind an object-safe trait, so ports of every transport sit
//! in one list on the reader thread.

use std::os::fd::RawFd;
use std::time::Duration;

use super::Pipeline;
use crate::realtime::memory::{HotRegions, MemoryLease, MemoryLocking, MemoryStatus, lock_regions};
use crate::time::Timestamp;
use crate::transport::{Inbound, LinkLost};

/// What the shared reader does with one port. Every method runs on the
/// reader thread; [`turn`](Member::turn) and
/// [`after_wait`](Member::after_wait) are the hot path (no allocation, no lock).
pub(crate) trait Member: Send + 'static {
    /// Slow path, when the port joins: prefaults and locks its hot memory
    /// as `locking` asks, puts its inbound transfers in flight. A port
    /// hosted before its configuration (libusb) only starts serving its
    /// commands here; [`arm`](Member::arm) does the rest.
    fn join(&mut self, locking: MemoryLocking) -> Result<MemoryStatus, LinkLost>;

    /// Slow path, for a port that joined before its configuration: takes
    /// its pipeline, locks its hot memory, puts its inbound transfers in flight.
    fn arm(
        &mut self,
        pipeline: Pipeline,
        locking: MemoryLocking,
    ) -> Result<MemoryStatus, LinkLost> {
        let _ = (pipeline, locking);
        Err(LinkLost(
            "this port was not hosted on the shared reader".into(),
        ))
    }

    /// The descriptor whose readiness means a turn has work.
    fn readiness(&self) -> RawFd;

    /// Whether the port lives in the reader's libusb context: its
    /// completions arrive through the context's events, which the reader
    /// handles once for all such ports, so each of them gets a turn after.
    fn in_context(&self) -> bool {
        false
    }

    /// One bounded turn: what the inbound has completed, without waiting,
    /// through the pipeline. Returns how many completions it handed over
    /// (zero: the inbound is drained and re-armed for its next edge).
    fn turn(&mut self) -> Result<usize, LinkLost>;

    /// The pipeline's housekeeping (stall count, pending loss notice).
    fn after_wait(&mut self, now: Timestamp);

    /// How long the reader may sleep before this port needs
    /// [`after_wait`](Member::after_wait).
    fn poll_interval(&self) -> Duration;

    /// Slow path, when the port leaves or its link is lost: ends its
    /// stream with `why` (lost link: first, so the application wakes at
    /// once), cancels and drains what is in flight, unlocks its pages.
    fn leave(&mut self, why: String);
}

/// A port's reader-thread state.
#[derive(Debug)]
pub(crate) struct Served<I: Inbound> {
    inbound: I,
    /// `None` once the port has left (a port that resumes took it back).
    pipeline: Option<Pipeline>,
    readiness: RawFd,
    lease: MemoryLease,
    left: bool,
}

impl<I: Inbound> Served<I> {
    /// Wraps a port's halves; `Err` says why this transport cannot share a reader.
    pub(crate) fn new(inbound: I, pipeline: Pipeline) -> Result<Served<I>, (&'static str, I)> {
        match inbound.readiness() {
            Ok(readiness) => Ok(Served {
                inbound,
                pipeline: Some(pipeline),
                readiness,
                lease: MemoryLease::default(),
                left: false,
            }),
            Err(why) => Err((why, inbound)),
        }
    }
}

impl<I: Inbound> Member for Served<I> {
    fn join(&mut self, locking: MemoryLocking) -> Result<MemoryStatus, LinkLost> {
        // The same order as a reader of its own: small state first, the
        // channel ring (the largest) last.
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Err(LinkLost("the port has left the reader".into()));
        };
        let mut regions = HotRegions::default();
        pipeline.hot_state(&mut regions);
        self.inbound.hot_memory(&mut regions);
        pipeline.hot_ring(&mut regions);
        let (lease, memory) = lock_regions(locking, &regions);
        self.lease = lease;
        self.inbound.start()?;
        pipeline.started(Timestamp::now());
        Ok(memory)
    }

    fn readiness(&self) -> RawFd {
        self.readiness
    }

    #[inline]
    fn turn(&mut self) -> Result<usize, LinkLost> {
        let mut n = 0;
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(0);
        };
        let waited = self.inbound.wait(Duration::ZERO, |c| {
            n += 1;
            pipeline.on_completion(c);
        });
        if let Err(LinkLost(why)) = waited {
            // At once, before the reader drains the transport.
            pipeline.link_lost(why.clone());
            return Err(LinkLost(why));
        }
        Ok(n)
    }

    #[inline]
    fn after_wait(&mut self, now: Timestamp) {
        if let Some(pipeline) = self.pipeline.as_mut() {
            pipeline.after_wait(now);
        }
    }

    fn poll_interval(&self) -> Duration {
        self.pipeline
            .as_ref()
            .map_or(Duration::from_secs(1), Pipeline::poll_interval)
    }

    fn leave(&mut self, why: String) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let Some(mut pipeline) = self.pipeline.take() else {
            return;
        };
        // A lost link of a port that resumes is no end of its stream.
        if !pipeline.is_lost() {
            pipeline.close(why);
        }
        self.inbound.shutdown();
        // While the buffers are still allocated (they drop with `self`).
        self.lease.release();
        pipeline.hand_back();
    }
}

impl<I: Inbound> Drop for Served<I> {
    fn drop(&mut self) {
        self.leave("the shared reader stopped".into());
    }
}
