//! Request/reply transactions timed against a deadline.
//!
//! [`Port::transact`] discards stale input, writes the request, collects the
//! reply until [`ReplyEnd`] says it is complete, and measures the latency
//! from the moment the request was handed to the transport to the moment the
//! complete reply is in the application's hands. A reply that is not complete
//! by the deadline is a [`Error::DeadlineMissed`], counted, never silent.
//!
//! Late bytes of a missed reply must not be taken as the next reply. Two
//! guards do that: input that arrived before a request is discarded before it
//! is sent, and after a miss the next transaction first waits until the line
//! has been quiet for one deadline (discarding what arrives). A device that
//! answers later than that cannot be told apart from a fresh answer without
//! protocol framing; use [`ReplyEnd::Until`] with a check of your protocol's
//! sequence field for that.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::{Error, Result};
use crate::port::Port;
use crate::stats::new_latency_histogram;
use crate::time::Timestamp;

/// How a reply ends.
#[derive(Clone, Copy)]
pub enum ReplyEnd<'a> {
    /// Exactly this many bytes.
    Length(usize),
    /// Up to and including this byte.
    Terminator(u8),
    /// When this returns true for the bytes so far (checked after each byte).
    Until(&'a dyn Fn(&[u8]) -> bool),
}

impl std::fmt::Debug for ReplyEnd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyEnd::Length(n) => write!(f, "Length({n})"),
            ReplyEnd::Terminator(b) => write!(f, "Terminator({b:#04x})"),
            ReplyEnd::Until(_) => f.write_str("Until(..)"),
        }
    }
}

impl ReplyEnd<'_> {
    fn complete(&self, reply: &[u8]) -> bool {
        match *self {
            ReplyEnd::Length(n) => reply.len() >= n,
            ReplyEnd::Terminator(t) => reply.last() == Some(&t),
            ReplyEnd::Until(done) => done(reply),
        }
    }
}

/// A completed transaction: the reply and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Transaction<'a> {
    reply: &'a [u8],
    latency: Duration,
    arrival: Duration,
}

impl Transaction<'_> {
    /// The reply bytes.
    pub fn bytes(&self) -> &[u8] {
        self.reply
    }

    /// From handing the request to the transport to the complete reply in
    /// the application's hands.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// From handing the request over to the reader seeing the reply's last
    /// packet (the part of the latency before the application woke).
    pub fn arrival(&self) -> Duration {
        self.arrival
    }
}

/// Transaction state of a port (application side only).
#[derive(Debug)]
pub(crate) struct Transactions {
    pub(crate) count: u64,
    pub(crate) misses: u64,
    pub(crate) stale_bytes: u64,
    /// Latencies of completed replies (a missed reply that never came has
    /// no latency; it is counted in `misses`).
    pub(crate) latency: Histogram<u64>,
    buf: Vec<u8>,
    /// The last transaction missed: wait for quiet before the next request.
    resync: Option<Duration>,
}

impl Transactions {
    pub(crate) fn new(reply_capacity: usize) -> Transactions {
        Transactions {
            count: 0,
            misses: 0,
            stale_bytes: 0,
            latency: new_latency_histogram(),
            buf: Vec::with_capacity(reply_capacity),
            resync: None,
        }
    }
}

impl Port {
    /// Sends `request` and collects the reply until `reply` says it is
    /// complete, within `deadline` of handing the request over.
    ///
    /// Allocates nothing; the reply borrows the port's reply buffer until the
    /// next call.
    ///
    /// # Errors
    /// [`Error::DeadlineMissed`] if the complete reply was not in hand by the
    /// deadline; [`Error::ReplyTooLong`]; [`Error::Overflow`] if data was lost
    /// during the reply; [`Error::Disconnected`]; write errors.
    pub fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        if let Some(quiet) = self.transactions.resync.take() {
            self.wait_for_quiet(quiet)?;
        }
        self.transactions.stale_bytes += self.receiver.discard_pending();
        self.transactions.count += 1;
        self.transactions.buf.clear();

        let submitted = Timestamp::now();
        let outcome = self.exchange(request, reply, deadline, submitted);
        let tx = &mut self.transactions;
        match outcome {
            Ok((latency, arrival)) => {
                tx.latency
                    .saturating_record((latency.as_nanos() as u64).max(1));
                if latency > deadline {
                    tx.misses += 1;
                    tx.resync = Some(deadline);
                    return Err(Error::DeadlineMissed { elapsed: latency });
                }
                Ok(Transaction {
                    reply: &tx.buf,
                    latency,
                    arrival,
                })
            }
            Err(Error::TimedOut { .. }) => {
                tx.misses += 1;
                tx.resync = Some(deadline);
                Err(Error::DeadlineMissed {
                    elapsed: submitted.elapsed(),
                })
            }
            Err(e) => {
                // Whatever failed, the next request must not see this reply.
                tx.resync = Some(deadline);
                Err(e)
            }
        }
    }

    /// Writes the request and collects the reply; returns (latency, arrival).
    fn exchange(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
        submitted: Timestamp,
    ) -> Result<(Duration, Duration)> {
        self.link.write_all_within(request, deadline)?;
        let capacity = self.transactions.buf.capacity();
        loop {
            let left = deadline.saturating_sub(submitted.elapsed());
            if left.is_zero() {
                return Err(Error::TimedOut {
                    operation: "reply",
                    after: deadline,
                });
            }
            let chunk = self.receiver.recv_timeout(left)?;
            let arrived = chunk.arrived();
            let payload = chunk.payload();
            let buf = &mut self.transactions.buf;
            for (i, &byte) in payload.iter().enumerate() {
                if buf.len() == capacity {
                    return Err(Error::ReplyTooLong { capacity });
                }
                buf.push(byte);
                if reply.complete(buf) {
                    let now = Timestamp::now();
                    // Bytes after the end of the reply belong to nothing we asked for.
                    self.transactions.stale_bytes += (payload.len() - i - 1) as u64;
                    return Ok((
                        now.saturating_since(submitted),
                        arrived.saturating_since(submitted),
                    ));
                }
            }
        }
    }

    /// Discards input until the line has been quiet for `quiet` (at most ten
    /// such periods), so a late reply cannot pass for the next one.
    fn wait_for_quiet(&mut self, quiet: Duration) -> Result<()> {
        let start = Timestamp::now();
        while start.elapsed() < quiet * 10 {
            match self.receiver.recv_timeout(quiet) {
                Ok(chunk) => self.transactions.stale_bytes += chunk.payload().len() as u64,
                Err(Error::TimedOut { .. }) => return Ok(()),
                Err(Error::Overflow { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_ends() {
        assert!(ReplyEnd::Length(2).complete(b"ab"));
        assert!(!ReplyEnd::Length(3).complete(b"ab"));
        assert!(ReplyEnd::Terminator(b'\n').complete(b"ok\n"));
        assert!(!ReplyEnd::Terminator(b'\n').complete(b"ok"));
        let starts_and_ends = |r: &[u8]| r.len() >= 2 && r[0] == 0x02 && r[r.len() - 1] == 0x03;
        assert!(ReplyEnd::Until(&starts_and_ends).complete(&[0x02, 7, 0x03]));
        assert!(!ReplyEnd::Until(&starts_and_ends).complete(&[0x02, 7]));
    }
}
