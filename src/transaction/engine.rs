//! The request/reply state machine, sans I/O: it never reads a clock,
//! never waits and never touches the channel or the device. The caller
//! (the shell in `super`, or a test on a virtual clock) passes in the time
//! and what arrived, and asks what to do next, in the manner of
//! quinn-proto's `Connection` (`handle_event`, `poll_timeout`,
//! `handle_timeout`, `poll_transmit`).
//!
//! One call of [`Port::transact`](crate::Port::transact) is one
//! [`Exchange`], which goes through these phases:
//!
//! ```text
//!   Drain ──(nothing pending)──► Settle ──(owed bytes in / quiet / bound)──┐
//!     │  ▲                                                                 │
//!     │  └─────────────────────────────────────────────────────────────────┘
//!     └──(nothing owed)──► Send ──► Collect ──► Done
//! ```
//!
//! - **Drain**: everything that already arrived is stale (it came before
//!   the request); what a missed reply still owed is paid from it first.
//! - **Settle**: the rest of a missed reply is awaited, for at most this
//!   call's own deadline (plus measured stalls, [`MAX_SETTLE`] in all):
//!   the owed bytes when the length is known, else until the line has been
//!   quiet (the shorter of the two deadlines, at most [`MAX_QUIET`]). What
//!   does not come in time is given up and counted ([`Tally::unsettled`]),
//!   not waited for.
//! - **Send**: the request goes out; the deadline runs from here.
//! - **Collect**: bytes go into the reply buffer until [`ReplyEnd`] says the
//!   reply is complete, the buffer is full, data is lost, or the deadline
//!   passes.
//!
//! With [`ReplyEnd::Silence`] the reply's end is decided by a
//! [`SilenceFramer`] fed every packet while collecting: data packets and
//! status-only ones (empty payloads to [`Exchange::on_chunk`], with their
//! arrival), so the shell receives packet by packet then
//! ([`Exchange::by_packets`]). A miss leaves its times
//! ([`Exchange::missed`]) for the shell to break down.
//!
//! [`MAX_SETTLE`]: owed::MAX_SETTLE
//! [`MAX_QUIET`]: owed::MAX_QUIET

mod check;
mod owed;

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use self::check::check_call;
pub(crate) use self::owed::Missed;
use self::owed::Owed;
use super::attribution::Attribution;
use super::{MissTimes, ReplyEnd};
use crate::error::{Error, Result};
use crate::stall::StallSource;
use crate::stats::{new_latency_histogram, record};
use crate::time::Timestamp;
use crate::timing::SilenceFramer;

/// What the engine has counted, for the port's statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Requests handed to the transport.
    pub(crate) transactions: u64,
    /// Of those, replies not complete by their deadline.
    pub(crate) misses: u64,
    /// Bytes discarded: input before a request, the rest of a chunk after
    /// a reply's end, replies that failed or missed.
    pub(crate) stale_bytes: u64,
    /// Failed or missed replies whose rest the next call gave up on
    /// (the owed bytes, or the quiet line, did not come within its deadline).
    pub(crate) unsettled: u64,
}

/// A port's transactions: the reply buffer, the counts, the latency
/// histogram, the stall sources that may explain a miss, and what a reply
/// that did not complete may still send. Everything is allocated here,
/// once; an exchange allocates nothing.
#[derive(Debug)]
pub(crate) struct Engine {
    buf: Vec<u8>,
    capacity: usize,
    tally: Tally,
    /// Latencies of completed replies, late ones included (a missed reply
    /// that never came has no latency; it is counted in `misses`).
    latency: Histogram<u64>,
    attribution: Attribution,
    /// The last exchange ended without a complete reply: its rest may still come.
    owed: Option<Owed>,
    /// One character's time on the line, for silence framing.
    char_time: Duration,
    /// The spread of packet arrival delays silence framing allows for
    /// (`PortConfig::arrival_jitter`).
    arrival_jitter: Duration,
}

/// The largest reply buffer a port may have (16 MiB): replies of
/// request/reply protocols are far smaller, and the buffer is allocated at open.
pub(crate) const MAX_REPLY_CAPACITY: usize = 1 << 24;

impl Engine {
    /// An engine with a reply buffer of `capacity` bytes (validated by the
    /// port's configuration: 1..=[`MAX_REPLY_CAPACITY`]).
    pub(crate) fn new(capacity: usize) -> Engine {
        Engine {
            buf: Vec::with_capacity(capacity),
            capacity,
            tally: Tally::default(),
            latency: new_latency_histogram(),
            attribution: Attribution::default(),
            owed: None,
            char_time: Duration::ZERO,
            arrival_jitter: Duration::ZERO,
        }
    }

    /// Silence framing allows for packets stamped up to `jitter` late.
    #[must_use]
    pub(crate) fn with_arrival_jitter(mut self, jitter: Duration) -> Engine {
        self.arrival_jitter = jitter;
        self
    }

    /// The arrival jitter silence framing allows for.
    pub(crate) fn arrival_jitter(&self) -> Duration {
        self.arrival_jitter
    }

    /// The line's character time (the shell sets it before each exchange:
    /// the baud rate may have changed).
    pub(crate) fn set_char_time(&mut self, char_time: Duration) {
        self.char_time = char_time;
    }

    /// Consults `source` when a deadline is missed.
    pub(crate) fn discount_stalls(&mut self, source: Arc<dyn StallSource>) {
        self.attribution.add(source);
    }

    /// The counts so far.
    pub(crate) fn tally(&self) -> Tally {
        self.tally
    }

    /// Of the misses, those each stall source explains.
    pub(crate) fn explained_misses(&self) -> Vec<(String, u64)> {
        self.attribution.explained()
    }

    /// Latencies of completed replies.
    pub(crate) fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Begins one exchange at `now`, after checking what no exchange could
    /// satisfy.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty request, a zero deadline, a
    /// [`ReplyEnd::Length`] of 0 or longer than the reply buffer. Nothing
    /// is counted then.
    pub(crate) fn start<'e, 'r>(
        &'e mut self,
        now: Timestamp,
        request_len: usize,
        reply: ReplyEnd<'r>,
        deadline: Duration,
    ) -> Result<Exchange<'e, 'r>> {
        check_call(request_len, reply, deadline, self.capacity)?;
        self.buf.clear();
        let framer = match reply {
            ReplyEnd::Silence(quiet) => Some(
                SilenceFramer::new(quiet, self.char_time).with_arrival_jitter(self.arrival_jitter),
            ),
            _ => None,
        };
        Ok(Exchange {
            engine: self,
            reply,
            deadline,
            started: now,
            phase: Phase::Drain,
            error: None,
            request_len,
            framer,
            missed: None,
            abandoned: false,
        })
    }

    /// Credits a miss to the stall source that explains it, if any, given
    /// that its reply was not complete until `complete` (or, if it never
    /// came, still was not at that time).
    fn attribute(&mut self, missed: Missed, complete: Timestamp, now: Timestamp) {
        let late = complete.saturating_since(missed.submitted);
        self.attribution
            .explain(missed.submitted, late, missed.deadline, now);
    }

    /// Counts `n` discarded bytes.
    fn stale(&mut self, n: usize) {
        self.tally.stale_bytes = self.tally.stale_bytes.saturating_add(n as u64);
    }
}

/// Where an exchange is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Taking what already arrived (stale; pays what a missed reply owed).
    Drain,
    /// Waiting for the rest of a missed reply, at most until `bound`.
    Settle { bound: Timestamp },
    /// The request is to be handed to the transport.
    Send,
    /// The transport has the request.
    Sending { submitted: Timestamp },
    /// Collecting the reply, due at `due`.
    Collect {
        submitted: Timestamp,
        due: Timestamp,
    },
    /// Finished: the reply (latency, arrival) or why not.
    Done(Outcome),
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Complete {
        latency: Duration,
        arrival: Duration,
    },
    Failed(Failure),
}

/// An exchange's failure, without heap data (so `Phase` stays `Copy`);
/// the transport's [`Error`] is kept apart until [`Exchange::finish`].
#[derive(Clone, Copy, Debug)]
enum Failure {
    Missed {
        elapsed: Duration,
    },
    TooLong,
    Lost {
        bytes: u64,
    },
    /// The transport's error, kept in `Exchange::error`.
    Transport,
}

/// What the shell does next for an [`Exchange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Receive: hand every chunk to [`Exchange::on_chunk`] (a loss to
    /// [`Exchange::on_loss`]) as it comes, and call [`Exchange::on_timeout`]
    /// once `until` has passed with nothing. A `until` not after the
    /// current time means: take what is already there, without waiting.
    Receive { until: Timestamp },
    /// Call [`Exchange::poll_transmit`], write the request within the time
    /// it gives, then [`Exchange::on_sent`] or [`Exchange::on_error`].
    Send,
    /// Finished: [`Exchange::finish`].
    Done,
}

/// One request/reply exchange in progress (see the module docs).
#[derive(Debug)]
pub(crate) struct Exchange<'e, 'r> {
    engine: &'e mut Engine,
    reply: ReplyEnd<'r>,
    deadline: Duration,
    started: Timestamp,
    phase: Phase,
    /// The transport's error that ended the exchange.
    error: Option<Error>,
    request_len: usize,
    /// Decides the end of a [`ReplyEnd::Silence`] reply.
    framer: Option<SilenceFramer>,
    /// The times of a missed deadline.
    missed: Option<MissTimes>,
    /// A previous reply's rest was given up before this request went out
    /// (settling is bounded): it may still come, ahead of this reply.
    abandoned: bool,
}

impl<'e> Exchange<'e, '_> {
    /// Whether the shell must hand over every packet (status-only ones as
    /// empty chunks) rather than chunks: collecting a silence-framed reply.
    pub(crate) fn by_packets(&self) -> bool {
        self.framer.is_some() && matches!(self.phase, Phase::Collect { .. })
    }

    /// The times of the deadline this exchange missed, if it did.
    pub(crate) fn missed(&self) -> Option<MissTimes> {
        self.missed
    }

    /// What to do next, and (receiving) until when: the time the exchange
    /// next needs waking with [`on_timeout`](Exchange::on_timeout) if
    /// nothing arrives.
    pub(crate) fn next(&self) -> Next {
        match self.phase {
            Phase::Drain => Next::Receive {
                until: self.started,
            },
            Phase::Settle { bound } => Next::Receive {
                until: self.settle_until(bound),
            },
            Phase::Collect { due, .. } => Next::Receive { until: due },
            Phase::Send | Phase::Sending { .. } => Next::Send,
            Phase::Done(_) => Next::Done,
        }
    }

    /// The request is handed to the transport at `now`: returns the time
    /// the write may take (the deadline runs from here, the write inside
    /// it), or `None` if the exchange is not at that point.
    pub(crate) fn poll_transmit(&mut self, now: Timestamp) -> Option<Duration> {
        let Phase::Send = self.phase else {
            return None;
        };
        let engine = &mut *self.engine;
        engine.tally.transactions = engine.tally.transactions.saturating_add(1);
        self.phase = Phase::Sending { submitted: now };
        Some(self.deadline)
    }

    /// The transport took the whole request.
    pub(crate) fn on_sent(&mut self, now: Timestamp) {
        if let Phase::Sending { submitted } = self.phase {
            self.phase = Phase::Collect {
                submitted,
                due: submitted.add(self.deadline),
            };
            // A write that used up the deadline leaves nothing to wait for.
            self.check_due(now);
        }
    }

    /// A chunk: `payload` (possibly empty: a status-only packet) that the
    /// reader saw arrive at `arrived`, handed over at `now`.
    pub(crate) fn on_chunk(&mut self, now: Timestamp, payload: &[u8], arrived: Timestamp) {
        match self.phase {
            Phase::Drain | Phase::Settle { .. } => self.discard(now, payload, arrived),
            Phase::Collect { submitted, .. } => self.collect(now, payload, arrived, submitted),
            Phase::Send | Phase::Sending { .. } | Phase::Done(_) => {}
        }
    }

    /// `bytes` were lost at this point of the stream (the channel was full).
    pub(crate) fn on_loss(&mut self, now: Timestamp, bytes: u64) {
        match self.phase {
            Phase::Drain | Phase::Settle { .. } => {
                if let Some(owed) = &mut self.engine.owed {
                    owed.lost(bytes);
                }
                self.after_payment(now);
            }
            Phase::Collect { .. } => {
                // Lost bytes of this reply will never come: the reply fails
                // here, and what it still owes shrinks by them.
                let received = self.engine.buf.len();
                let lost = usize::try_from(bytes).unwrap_or(usize::MAX);
                self.give_up(now, Failure::Lost { bytes }, received.saturating_add(lost));
            }
            Phase::Send | Phase::Sending { .. } | Phase::Done(_) => {}
        }
    }

    /// Nothing arrived until `now` (see [`Next::Receive`]).
    pub(crate) fn on_timeout(&mut self, now: Timestamp) {
        match self.phase {
            // Everything that had arrived is taken.
            Phase::Drain => self.after_drain(now),
            Phase::Settle { bound } => {
                if self.owed_settled(now) {
                    self.engine.owed = None;
                    self.phase = Phase::Drain;
                } else if now >= bound {
                    // Stalls measured meanwhile move the bound; none: give up.
                    let bound = self.settle_bound(now);
                    if now >= bound {
                        self.abandon_owed(now);
                        self.phase = Phase::Drain;
                    } else {
                        self.phase = Phase::Settle { bound };
                    }
                }
            }
            Phase::Collect { .. } => self.check_due(now),
            Phase::Send | Phase::Sending { .. } | Phase::Done(_) => {}
        }
    }

    /// The transport failed (receiving: the device is gone; writing: the
    /// error of the write). A write that ran out of time is a missed
    /// deadline; anything else ends the exchange with `error`.
    pub(crate) fn on_error(&mut self, now: Timestamp, error: Error) {
        match self.phase {
            Phase::Sending { submitted } => {
                if let Error::TimedOut { .. } = error {
                    // The write took the whole deadline: a miss, and the
                    // device may still answer the part of it it got.
                    self.miss(now, submitted);
                    return;
                }
                let received = self.engine.buf.len();
                self.give_up(now, Failure::Transport, received);
            }
            Phase::Collect { .. } => {
                let received = self.engine.buf.len();
                self.give_up(now, Failure::Transport, received);
            }
            // Before anything was sent: nothing to settle or count.
            Phase::Drain | Phase::Settle { .. } | Phase::Send => {
                self.phase = Phase::Done(Outcome::Failed(Failure::Transport));
            }
            Phase::Done(_) => return,
        }
        if let Error::Disconnected = error {
            // The device that owed the rest is gone; one that comes back
            // (a port that resumes) owes nothing.
            self.engine.owed = None;
        }
        self.error = Some(error);
    }

    /// The result, once [`next`](Exchange::next) says [`Next::Done`]:
    /// the reply borrows the engine's buffer.
    ///
    /// # Errors
    /// [`Error::DeadlineMissed`], [`Error::ReplyTooLong`],
    /// [`Error::Overflow`], or the transport's error.
    pub(crate) fn finish(self) -> Result<super::Transaction<'e>> {
        let outcome = match self.phase {
            Phase::Done(outcome) => outcome,
            // Finished early (only a misused engine does this): what was
            // under way counts as missed.
            _ => Outcome::Failed(Failure::Missed {
                elapsed: Duration::ZERO,
            }),
        };
        match outcome {
            Outcome::Complete { latency, arrival } => Ok(super::Transaction {
                reply: &self.engine.buf,
                latency,
                arrival,
            }),
            Outcome::Failed(Failure::Missed { elapsed }) => Err(Error::DeadlineMissed { elapsed }),
            Outcome::Failed(Failure::TooLong) => Err(Error::ReplyTooLong {
                capacity: self.engine.capacity,
            }),
            Outcome::Failed(Failure::Lost { bytes }) => Err(Error::Overflow { lost_bytes: bytes }),
            Outcome::Failed(Failure::Transport) => Err(self.error.unwrap_or(Error::Disconnected)),
        }
    }

    fn collect(
        &mut self,
        now: Timestamp,
        payload: &[u8],
        arrived: Timestamp,
        submitted: Timestamp,
    ) {
        if self.abandoned && arrived < self.answerable_from(submitted) {
            // Bytes that reached the host before this request could have
            // crossed the wire cannot answer it: with a previous reply
            // given up on, they are its late rest (a device answers in
            // order), never this reply.
            self.engine.stale(payload.len());
            self.check_due(now);
            return;
        }
        for (i, &byte) in payload.iter().enumerate() {
            if self.engine.buf.len() == self.engine.capacity {
                // The rest of this chunk belongs to the reply too: consumed
                // (stale), and no longer owed.
                let consumed = self.engine.buf.len() + (payload.len() - i);
                self.engine.stale(payload.len() - i);
                self.give_up(now, Failure::TooLong, consumed);
                return;
            }
            self.engine.buf.push(byte);
            if self.reply.complete(&self.engine.buf) {
                // Bytes after the reply's end belong to nothing we asked for.
                self.engine.stale(payload.len() - i - 1);
                self.complete(now, arrived, submitted);
                return;
            }
        }
        // A silence-framed reply ends at the packet proving the quiet line
        // (only one arriving after the request counts: the line before it
        // says nothing about the reply).
        if let Some(framer) = &mut self.framer
            && arrived >= submitted
            && let Some(end) = framer.on_packet(arrived, payload.len())
        {
            self.complete(now, end.decided, submitted);
            return;
        }
        self.check_due(now);
    }

    /// The earliest time a reply to this request can reach the host: once
    /// the request has crossed the wire (written from `submitted` on, one
    /// character time a byte). With no character time known (a kernel
    /// tty), the submission itself.
    fn answerable_from(&self, submitted: Timestamp) -> Timestamp {
        let chars = u32::try_from(self.request_len).unwrap_or(u32::MAX);
        submitted.add(self.engine.char_time.saturating_mul(chars))
    }

    fn complete(&mut self, now: Timestamp, arrived: Timestamp, submitted: Timestamp) {
        let latency = now.saturating_since(submitted);
        let arrival = arrived.saturating_since(submitted);
        let engine = &mut *self.engine;
        record(&mut engine.latency, latency);
        if latency > self.deadline {
            // Complete but late: a miss with nothing more owed.
            engine.tally.misses = engine.tally.misses.saturating_add(1);
            engine.attribute(
                Missed {
                    submitted,
                    deadline: self.deadline,
                },
                now,
                now,
            );
            self.missed = Some(MissTimes {
                submitted,
                taken: now,
                request_len: self.request_len,
                reply_len: engine.buf.len(),
                elapsed: latency,
            });
            self.phase = Phase::Done(Outcome::Failed(Failure::Missed { elapsed: latency }));
        } else {
            self.phase = Phase::Done(Outcome::Complete { latency, arrival });
        }
    }

    /// Collecting, at `now`: past the deadline is a miss.
    fn check_due(&mut self, now: Timestamp) {
        if let Phase::Collect { submitted, due } = self.phase
            && now >= due
        {
            self.miss(now, submitted);
        }
    }

    fn miss(&mut self, now: Timestamp, submitted: Timestamp) {
        let engine = &mut *self.engine;
        engine.tally.misses = engine.tally.misses.saturating_add(1);
        let received = engine.buf.len();
        let missed = Missed {
            submitted,
            deadline: self.deadline,
        };
        self.missed = Some(MissTimes {
            submitted,
            taken: now,
            request_len: self.request_len,
            reply_len: received,
            elapsed: now.saturating_since(submitted),
        });
        self.give_up(
            now,
            Failure::Missed {
                elapsed: now.saturating_since(submitted),
            },
            received,
        );
        if let Some(owed) = &mut self.engine.owed {
            owed.missed = Some(missed);
        }
    }
}

#[cfg(test)]
mod tests;
