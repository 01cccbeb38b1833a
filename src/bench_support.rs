//! Entry points for the benchmarks in `benches/` (feature `__bench`, not
//! part of the API: no semver promise).
//!
//! The channel's sending end is crate-private; this exposes the exact code
//! the reader runs per completed transfer — `Pipeline::on_completion`
//! (deframing, status, push) — and the receiving end, so one thread can
//! measure both without a device.

use std::sync::Arc;

use crate::channel::{self, Receiver};
use crate::reader::Pipeline;
use crate::stats::Counters;
use crate::time::Timestamp;
use crate::transport::{Completion, Framing};

/// The reader's per-transfer work and the application's receive, on one thread.
#[derive(Debug)]
pub struct StripAndChannel {
    pipeline: Pipeline,
    receiver: Receiver,
}

impl StripAndChannel {
    /// A pipeline for `max_packet_size`-byte packets into a `capacity`-chunk channel.
    ///
    /// # Errors
    /// The channel's eventfd could not be created.
    pub fn new(max_packet_size: usize, capacity: usize) -> std::io::Result<StripAndChannel> {
        let (sender, receiver, _) = channel::channel(capacity)?;
        let framing = Framing::Ftdi { max_packet_size };
        Ok(StripAndChannel {
            pipeline: Pipeline::new(sender, Arc::new(Counters::default()), framing),
            receiver,
        })
    }

    /// Runs each transfer through the pipeline as one completion (as the
    /// reader does when several completed during one wait), then takes every
    /// chunk produced; returns the payload bytes received.
    pub fn run(&mut self, transfers: &[&[u8]]) -> usize {
        for transfer in transfers {
            self.pipeline.on_completion(Completion {
                data: transfer,
                at: Timestamp::now(),
            });
        }
        let mut n = 0;
        while let Ok(Some(chunk)) = self.receiver.try_recv() {
            n += chunk.payload().len();
        }
        n
    }
}
