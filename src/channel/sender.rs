//! The realtime end of the channel.

use std::sync::Arc;

use super::chunk::{CHUNK_CAPACITY, Chunk, Mark};
use super::shared::Shared;
use crate::proto::{LineStatus, ModemStatus};
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;

/// Pushes chunks from the reader thread. Never blocks, never allocates, takes
/// no lock: a full ring drops the chunk and records the loss, which the next
/// chunk that fits carries to the application as [`Error::Overflow`](crate::Error::Overflow).
#[derive(Debug)]
pub(crate) struct Sender {
    ring: rtrb::Producer<Chunk>,
    shared: Arc<Shared>,
    /// Bytes dropped since the last chunk that made it into the ring.
    pending_lost: u64,
    closed: bool,
}

impl Sender {
    pub(crate) fn new(ring: rtrb::Producer<Chunk>, shared: Arc<Shared>) -> Sender {
        Sender {
            ring,
            shared,
            pending_lost: 0,
            closed: false,
        }
    }

    /// Publishes `payload` (at most [`CHUNK_CAPACITY`] bytes) with its status
    /// and arrival time. Returns false if the ring was full and it was dropped.
    /// The receiver is woken by [`notify`](Sender::notify), once per batch.
    #[inline]
    pub(crate) fn push(
        &mut self,
        payload: &[u8],
        status: Option<(ModemStatus, LineStatus)>,
        arrived: Timestamp,
    ) -> bool {
        debug_assert!(payload.len() <= CHUNK_CAPACITY);
        match self.ring.write_chunk(1) {
            Ok(mut slots) => {
                slots.as_mut_slices().0[0].fill(payload, status, arrived, self.pending_lost);
                slots.commit_all();
                self.pending_lost = 0;
                self.shared.pushed_bytes.add(payload.len() as u64);
                true
            }
            Err(_) => {
                self.pending_lost += payload.len() as u64;
                self.shared.overflow_chunks.add(1);
                self.shared.overflow_bytes.add(payload.len() as u64);
                false
            }
        }
    }

    /// Publishes an event of a port that resumes ([`Mark`]) at its point of
    /// the stream, with any loss before it, and wakes the receiver.
    /// Returns false if the ring was full (the caller tries again later).
    pub(crate) fn push_mark(&mut self, mark: Mark, at: Timestamp) -> bool {
        let Ok(mut slots) = self.ring.write_chunk(1) else {
            return false;
        };
        let chunk = &mut slots.as_mut_slices().0[0];
        chunk.fill(&[], None, at, self.pending_lost);
        chunk.mark = mark;
        slots.commit_all();
        self.pending_lost = 0;
        self.shared.bell.ring_always();
        true
    }

    /// Reports the state shared with the receiver (doorbell, loss counters,
    /// the ring's indices): small, written on every push.
    pub(crate) fn hot_state(&self, regions: &mut HotRegions) {
        regions.add("channel state", &*self.shared);
        regions.add("channel state", self.ring.buffer());
    }

    /// Writes through every free slot of the ring (rtrb allocates them
    /// uninitialised, so none may be resident yet) and reports them. Before
    /// the first push only.
    pub(crate) fn hot_ring(&mut self, regions: &mut HotRegions) {
        regions.prefault_ring("channel ring", &mut self.ring, Chunk::default());
    }

    /// Free slots (tests use this to push without counting losses).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.ring.slots()
    }

    /// Wakes the receiver if it may be asleep (after a batch of pushes).
    #[inline]
    pub(crate) fn notify(&self) {
        self.shared.bell.ring();
    }

    /// If data was dropped and nothing has carried the news yet, pushes an
    /// empty marker chunk so the application learns of the loss without
    /// waiting for more data. Called once per reader-loop turn.
    #[inline]
    pub(crate) fn flush_loss(&mut self) {
        if self.pending_lost == 0 {
            return;
        }
        if let Ok(mut slots) = self.ring.write_chunk(1) {
            slots.as_mut_slices().0[0].fill(&[], None, Timestamp::now(), self.pending_lost);
            slots.commit_all();
            self.pending_lost = 0;
            self.shared.bell.ring();
        }
    }

    /// Ends the stream; the receiver drains what is queued, then sees
    /// [`Error::Disconnected`](crate::Error::Disconnected).
    pub(crate) fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.shared.close(self.pending_lost);
            self.pending_lost = 0;
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.close();
    }
}
