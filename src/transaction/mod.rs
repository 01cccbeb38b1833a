//! Request/reply transactions timed against a deadline.
//!
//! [`Port::transact`](crate::Port::transact) drives a [`Transactions`], the
//! port's transaction state, with the port's receiver and writer. It discards stale input, writes the request, collects the
//! reply until [`ReplyEnd`] says it is complete, and measures the latency
//! from the moment the request was handed to the transport to the moment the
//! complete reply is in the application's hands. A reply that is not complete
//! by the deadline is a [`Error::DeadlineMissed`], counted, never silent.
//!
//! Late bytes of a missed reply must not be taken as the next reply. Input
//! that arrived before a request is discarded before it is sent. After a
//! miss, the next transaction first settles the missed reply:
//! - with [`ReplyEnd::Length`] the missing byte count is known: exactly that
//!   many bytes are discarded when they arrive, waiting up to ten deadlines
//!   for them, plus any time a registered stall source (the simulated chip,
//!   the machine) was measurably stalled meanwhile (a device that never
//!   answers costs one such wait);
//! - with a terminator or predicate the length is unknown: input is
//!   discarded until the line has been quiet for one deadline (at most ten).
//!
//! A reply later than that cannot be told from a fresh answer
//! without protocol framing; use [`ReplyEnd::Until`] with a check of your
//! protocol's sequence field for that.
//!
//! Which cause a miss has is decided in [`attribution`].

mod attribution;

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use self::attribution::Attribution;
use crate::channel::Receiver;
use crate::error::{Error, Result};
use crate::stall::StallSource;
use crate::stats::{new_latency_histogram, record};
use crate::time::{Deadline, Timestamp};

/// How a reply ends, and so how the rest of a reply that missed its
/// deadline is told apart from the next one: with [`Length`](ReplyEnd::Length)
/// the bytes still owed are known and exactly that many are discarded when
/// they arrive (waiting up to ten deadlines, plus any measured stall of a
/// registered stall source); with a terminator or a predicate, input is
/// discarded until the line has been quiet for one deadline (at most ten).
/// A reply later than that cannot be told from a fresh answer without
/// protocol framing: use [`Until`](ReplyEnd::Until) with a check of your
/// protocol's sequence field for that.
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

/// Transaction state of a port (application side only): counts, the
/// latency histogram, the reply buffer, what a missed reply still owes,
/// and the stall sources that may explain a miss.
#[derive(Debug)]
pub(crate) struct Transactions {
    count: u64,
    misses: u64,
    attribution: Attribution,
    stale_bytes: u64,
    /// Latencies of completed replies (a missed reply that never came has
    /// no latency; it is counted in `misses`).
    latency: Histogram<u64>,
    buf: Vec<u8>,
    /// The last transaction missed: settle its reply before the next request.
    resync: Option<Settle>,
}

/// What is still owed by a reply that missed its deadline.
#[derive(Clone, Copy, Debug)]
struct Settle {
    /// Bytes still to come, when the reply length is known.
    owed: Option<usize>,
    deadline: Duration,
    /// When the missed request was submitted.
    submitted: Timestamp,
}

impl Transactions {
    pub(crate) fn new(reply_capacity: usize) -> Transactions {
        Transactions {
            count: 0,
            misses: 0,
            attribution: Attribution::default(),
            stale_bytes: 0,
            latency: new_latency_histogram(),
            buf: Vec::with_capacity(reply_capacity),
            resync: None,
        }
    }

    /// Consults `source` when a deadline is missed.
    pub(crate) fn discount_stalls(&mut self, source: Arc<dyn StallSource>) {
        self.attribution.add(source);
    }

    /// Transactions attempted.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Transactions that missed their deadline.
    pub(crate) fn misses(&self) -> u64 {
        self.misses
    }

    /// Of those, the ones each stall source explains.
    pub(crate) fn explained_misses(&self) -> Vec<(String, u64)> {
        self.attribution.explained()
    }

    /// Bytes discarded as stale.
    pub(crate) fn stale_bytes(&self) -> u64 {
        self.stale_bytes
    }

    /// Latencies of completed replies.
    pub(crate) fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// One transaction: see [`Port::transact`](crate::Port::transact).
    /// `send` writes the request within the given time (the port's writer:
    /// this module knows nothing of ports).
    pub(crate) fn transact<'a>(
        &'a mut self,
        receiver: &mut Receiver,
        send: impl FnOnce(&[u8], Duration) -> Result<()>,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'a>> {
        if let Some(settle) = self.resync.take() {
            self.settle(receiver, settle)?;
        }
        self.stale_bytes += receiver.discard_pending();
        self.count += 1;
        self.buf.clear();

        let submitted = Timestamp::now();
        let outcome = self.exchange(receiver, send, request, reply, deadline, submitted);
        let owed = match reply {
            ReplyEnd::Length(n) => Some(n.saturating_sub(self.buf.len())),
            _ => None,
        };
        match outcome {
            Ok((latency, arrival)) => {
                record(&mut self.latency, latency);
                if latency > deadline {
                    // Complete but late: nothing more is owed.
                    self.misses += 1;
                    self.attribution
                        .explain(submitted, latency, deadline, Timestamp::now());
                    return Err(Error::DeadlineMissed { elapsed: latency });
                }
                Ok(Transaction {
                    reply: &self.buf,
                    latency,
                    arrival,
                })
            }
            Err(Error::TimedOut { .. }) => {
                self.misses += 1;
                self.stale_bytes += self.buf.len() as u64;
                self.resync = Some(Settle {
                    owed,
                    deadline,
                    submitted,
                });
                Err(Error::DeadlineMissed {
                    elapsed: submitted.elapsed(),
                })
            }
            Err(e) => {
                // Whatever failed, the next request must not see this reply.
                self.stale_bytes += self.buf.len() as u64;
                self.resync = Some(Settle {
                    owed,
                    deadline,
                    submitted,
                });
                Err(e)
            }
        }
    }

    /// Writes the request and collects the reply; returns (latency, arrival).
    fn exchange(
        &mut self,
        receiver: &mut Receiver,
        send: impl FnOnce(&[u8], Duration) -> Result<()>,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
        submitted: Timestamp,
    ) -> Result<(Duration, Duration)> {
        let due = Deadline::after(submitted, deadline);
        send(request, deadline)?;
        let capacity = self.buf.capacity();
        loop {
            let left = due.remaining(Timestamp::now());
            if left.is_zero() {
                return Err(Error::TimedOut {
                    operation: "reply",
                    after: deadline,
                });
            }
            let chunk = receiver.recv_timeout(left)?;
            let arrived = chunk.arrived();
            let payload = chunk.payload();
            for (i, &byte) in payload.iter().enumerate() {
                if self.buf.len() == capacity {
                    return Err(Error::ReplyTooLong { capacity });
                }
                self.buf.push(byte);
                if reply.complete(&self.buf) {
                    let now = Timestamp::now();
                    // Bytes after the end of the reply belong to nothing we asked for.
                    self.stale_bytes += (payload.len() - i - 1) as u64;
                    return Ok((
                        now.saturating_since(submitted),
                        arrived.saturating_since(submitted),
                    ));
                }
            }
        }
    }

    /// Discards the rest of a missed reply before the next request: the
    /// owed bytes if the length is known, else input until the line has been
    /// quiet for one deadline; either way for at most ten deadlines of time
    /// the device and the machine could run (measured stalls of the
    /// registered stall sources extend the wait: a reply they delayed is
    /// still a late reply, not a fresh one).
    ///
    /// When the late reply shows up, the miss is checked against the stall
    /// sources: if the reply would have been in time without one's stalls,
    /// that source (not the host) explains the miss.
    fn settle(&mut self, receiver: &mut Receiver, settle: Settle) -> Result<()> {
        let start = Timestamp::now();
        let mut owed = settle.owed;
        let mut first = true;
        while owed != Some(0) {
            let now = Timestamp::now();
            let stalled = self.attribution.stalled_within(settle.submitted, now, now);
            let limit = settle.deadline.saturating_mul(10).saturating_add(stalled);
            let left = limit.saturating_sub(now.saturating_since(start));
            let wait = match owed {
                Some(_) => left,
                None => settle.deadline.min(left),
            };
            if wait.is_zero() {
                break;
            }
            match receiver.recv_timeout(wait) {
                Ok(chunk) => {
                    let (n, arrived) = (chunk.payload().len(), chunk.arrived());
                    self.stale_bytes += n as u64;
                    owed = owed.map(|o| o.saturating_sub(n));
                    if std::mem::take(&mut first) {
                        let late = arrived.saturating_since(settle.submitted);
                        self.attribution.explain(
                            settle.submitted,
                            late,
                            settle.deadline,
                            Timestamp::now(),
                        );
                    }
                }
                // Quiet (unknown length) or the wait is over (known length).
                Err(Error::TimedOut { .. }) => break,
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
