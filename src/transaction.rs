//! Request/reply transactions timed against a deadline.
//!
//! [`Port::transact`] discards stale input, writes the request, collects the
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
//!   for them, plus any time the simulated chip or the machine was measurably
//!   stalled meanwhile (a device that never answers costs one such wait);
//! - with a terminator or predicate the length is unknown: input is
//!   discarded until the line has been quiet for one deadline (at most ten).
//!
//! A reply later than that cannot be told from a fresh answer
//! without protocol framing; use [`ReplyEnd::Until`] with a check of your
//! protocol's sequence field for that.

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
    /// Misses the simulated chip's own stalls explain (zero on real devices).
    pub(crate) chip_late_misses: u64,
    /// Misses a machine stall measured by the noise probe explains.
    pub(crate) platform_late_misses: u64,
    /// The noise probe watched, if any.
    pub(crate) platform: Option<std::sync::Arc<crate::noise::ProbeShared>>,
    pub(crate) stale_bytes: u64,
    /// Latencies of completed replies (a missed reply that never came has
    /// no latency; it is counted in `misses`).
    pub(crate) latency: Histogram<u64>,
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
            chip_late_misses: 0,
            platform_late_misses: 0,
            platform: None,
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
        if let Some(settle) = self.transactions.resync.take() {
            self.settle(settle)?;
        }
        self.transactions.stale_bytes += self.receiver.discard_pending();
        self.transactions.count += 1;
        self.transactions.buf.clear();

        let submitted = Timestamp::now();
        let outcome = self.exchange(request, reply, deadline, submitted);
        let tx = &mut self.transactions;
        let owed = match reply {
            ReplyEnd::Length(n) => Some(n.saturating_sub(tx.buf.len())),
            _ => None,
        };
        match outcome {
            Ok((latency, arrival)) => {
                tx.latency
                    .saturating_record((latency.as_nanos() as u64).max(1));
                if latency > deadline {
                    // Complete but late: nothing more is owed.
                    tx.misses += 1;
                    self.attribute(submitted, latency, deadline);
                    return Err(Error::DeadlineMissed { elapsed: latency });
                }
                Ok(Transaction {
                    reply: &self.transactions.buf,
                    latency,
                    arrival,
                })
            }
            Err(Error::TimedOut { .. }) => {
                tx.misses += 1;
                tx.stale_bytes += tx.buf.len() as u64;
                tx.resync = Some(Settle {
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
                tx.stale_bytes += tx.buf.len() as u64;
                tx.resync = Some(Settle {
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

    /// How long, within `[from, to]`, the simulated chip was stalled, the
    /// machine was (noise probe), and either (their union).
    fn stalls_within(&self, from: Timestamp, to: Timestamp) -> (Duration, Duration, Duration) {
        use crate::stall_log::union_within;
        let chip = self.link.outbound.chip_stall_log();
        let platform = self
            .transactions
            .platform
            .as_deref()
            .map_or(&[][..], |p| &p.stalls[..]);
        (
            union_within(chip, from, to),
            union_within(platform, from, to),
            // The chip's log first, so it is never the one left out.
            union_within(chip.into_iter().chain(platform), from, to),
        )
    }

    /// Tells what explains a miss whose reply took `late`: stalls of the
    /// simulated chip, machine stalls the noise probe measured, or neither
    /// (the host path). Stalls explain a miss only if, taken out of the
    /// transaction's time, they bring it within the deadline; where chip and
    /// machine stalls are needed together, the larger part names the cause.
    fn attribute(&mut self, submitted: Timestamp, late: Duration, deadline: Duration) {
        let (chip_time, platform_time, both) = self.stalls_within(submitted, submitted.add(late));
        let tx = &mut self.transactions;
        if late.saturating_sub(chip_time) <= deadline {
            tx.chip_late_misses += 1;
        } else if late.saturating_sub(platform_time) <= deadline {
            tx.platform_late_misses += 1;
        } else if late.saturating_sub(both) <= deadline {
            if chip_time > platform_time {
                tx.chip_late_misses += 1;
            } else {
                tx.platform_late_misses += 1;
            }
        }
    }

    /// Discards the rest of a missed reply before the next request: the
    /// owed bytes if the length is known, else input until the line has been
    /// quiet for one deadline; either way for at most ten deadlines of time
    /// the device and the machine could run (measured stalls of the
    /// simulated chip and of the machine extend the wait: a reply they
    /// delayed is still a late reply, not a fresh one).
    ///
    /// When the late reply shows up, the miss is checked against the
    /// simulated chip's stalls: if the reply would have been in time without
    /// them, the chip (not the host) explains the miss.
    fn settle(&mut self, settle: Settle) -> Result<()> {
        let start = Timestamp::now();
        let mut owed = settle.owed;
        let mut first = true;
        while owed != Some(0) {
            let stalled = self.stalls_within(settle.submitted, Timestamp::now()).2;
            let limit = settle.deadline * 10 + stalled;
            let left = limit.saturating_sub(start.elapsed());
            let wait = match owed {
                Some(_) => left,
                None => settle.deadline.min(left),
            };
            if wait.is_zero() {
                break;
            }
            match self.receiver.recv_timeout(wait) {
                Ok(chunk) => {
                    let (n, arrived) = (chunk.payload().len(), chunk.arrived());
                    self.transactions.stale_bytes += n as u64;
                    owed = owed.map(|o| o.saturating_sub(n));
                    if std::mem::take(&mut first) {
                        let late = arrived.saturating_since(settle.submitted);
                        self.attribute(settle.submitted, late, settle.deadline);
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
