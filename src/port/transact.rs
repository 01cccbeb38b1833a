//! Request/reply on a port: the transaction engine driven by the port's
//! own receiver and writer, on `CLOCK_MONOTONIC`.

use std::sync::Arc;
use std::time::Duration;

use super::{Port, Writer};
use crate::channel::Receiver;
use crate::error::{Error, Result};
use crate::stall::StallSource;
use crate::time::Timestamp;
use crate::transaction::{self, Io, Received, ReplyEnd, Transaction};

impl Port {
    /// Sends `request` and collects the reply until `reply` says it is
    /// complete, within `deadline` of handing the request to the transport
    /// (the write counts). Input that arrived before the request is
    /// discarded first, and so is the rest of a reply that missed its
    /// deadline or failed, for at most this call's `deadline` (see
    /// [`ReplyEnd`] for how a reply ends and what can be told from a late
    /// one, and the crate docs' [Timeouts and
    /// deadlines](crate#timeouts-and-deadlines) for the whole model).
    /// `Duration::MAX` is no deadline.
    ///
    /// Allocates nothing; the reply borrows the port's reply buffer until the
    /// next call.
    ///
    /// # Errors
    /// [`Error::InvalidInput`], before anything
    /// is sent or counted: an empty request, a zero deadline, a
    /// [`ReplyEnd::Length`] of 0 or longer than
    /// [`PortConfig::reply_capacity`](crate::PortConfig::reply_capacity);
    /// [`Error::DeadlineMissed`] if the
    /// complete reply was not in hand by the deadline;
    /// [`Error::ReplyTooLong`];
    /// [`Error::Overflow`] if data was lost during
    /// the reply; [`Error::Disconnected`]; write errors.
    pub fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        let mut io = PortIo {
            receiver: &mut self.receiver,
            writer: &self.writer,
        };
        transaction::transact(&mut self.transactions, &mut io, request, reply, deadline)
    }

    /// Consults `source` whenever a transaction misses its deadline: a miss
    /// its stalls alone explain (the reply would have been in time without
    /// them) is counted under its name in
    /// [`Statistics::explained_misses`](crate::Statistics::explained_misses)
    /// instead of the host path's. A port on the simulated chip consults
    /// the chip's own stalls already; the lab's machine-noise probe is the
    /// other source the project ships.
    pub fn discount_stalls(&mut self, source: Arc<dyn StallSource>) {
        self.transactions.discount_stalls(source);
    }
}

/// The port's receiver and writer, as the transaction shell's [`Io`].
struct PortIo<'p> {
    receiver: &'p mut Receiver,
    writer: &'p Writer,
}

impl Io for PortIo<'_> {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn receive(&mut self, until: Timestamp, now: Timestamp) -> Received<'_> {
        let got = if until <= now {
            self.receiver.try_recv()
        } else {
            self.receiver
                .recv_timeout(until.saturating_since(now))
                .map(Some)
        };
        match got {
            Ok(Some(chunk)) => Received::Chunk(chunk.payload(), chunk.arrived(), Timestamp::now()),
            Ok(None) | Err(Error::TimedOut { .. }) => Received::Nothing,
            Err(Error::Overflow { lost_bytes }) => Received::Lost(lost_bytes),
            Err(e) => Received::Failed(e),
        }
    }

    fn send(&mut self, request: &[u8], budget: Duration) -> Result<()> {
        self.writer.write_all_within(request, budget)
    }
}
