//! What a reply that did not complete still owes the next call: how an
//! exchange gives up (a miss, a failure, a cancelled async call) and leaves
//! it owed, and how the next call settles it: stale input pays it, the wait
//! for the rest is bounded (see the timeout model in the `transaction`
//! module docs).

use std::time::Duration;

use super::{Exchange, Failure, Outcome, Phase};
use crate::time::Timestamp;
use crate::transaction::ReplyEnd;

/// The rest of a reply that did not complete: how to recognise its end,
/// and what is known about the miss (for attribution).
#[derive(Clone, Copy, Debug)]
pub(super) struct Owed {
    /// Bytes still to come when the length is known (`None`: a terminator
    /// or predicate, settled by a quiet line instead).
    pub(super) bytes: Option<usize>,
    /// When the failed request was handed over: stalls since then extend
    /// the wait for its rest.
    pub(super) since: Timestamp,
    /// Quiet since: the last byte of it seen, or when the exchange ended.
    pub(super) quiet_since: Timestamp,
    /// The failed exchange's deadline (the quiet period is at most this).
    pub(super) deadline: Duration,
    /// A silence-framed reply's quiet time: a quiet line that long ends its
    /// rest (instead of the deadlines' rule).
    pub(super) quiet: Option<Duration>,
    /// A deadline miss not yet credited to a cause (misses only; a reply
    /// that failed otherwise is settled but never attributed).
    pub(super) missed: Option<Missed>,
}

/// A deadline miss whose cause is still to be decided.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Missed {
    /// When the request was handed to the transport.
    pub(crate) submitted: Timestamp,
    /// Its deadline.
    pub(crate) deadline: Duration,
}

impl Owed {
    /// `n` bytes of the missing reply arrived, the last at `at`.
    pub(super) fn pay(&mut self, n: usize, at: Timestamp) {
        self.bytes = self.bytes.map(|owed| owed.saturating_sub(n));
        self.quiet_since = self.quiet_since.max(at);
    }

    /// `n` bytes were lost at this point of the stream: had they been
    /// reply bytes, they will never come.
    pub(super) fn lost(&mut self, n: u64) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.bytes = self.bytes.map(|owed| owed.saturating_sub(n));
    }

    /// Whether nothing more is expected at `now`, given a quiet period of `quiet`.
    pub(super) fn settled(&self, now: Timestamp, quiet: Duration) -> bool {
        match self.bytes {
            Some(owed) => owed == 0,
            None => now >= self.quiet_since.add(quiet),
        }
    }
}

/// The longest a call settles the rest of a failed reply before it sends,
/// whatever its deadline and whatever stalls were measured meanwhile: a
/// call with no deadline (`Duration::MAX`) after a reply the device never
/// sent must still send its request.
pub(crate) const MAX_SETTLE: Duration = Duration::from_secs(10);

/// The longest quiet line that settling a reply of unknown length waits
/// for: after a failed reply, a second of silence ends it, whatever the
/// deadlines (two calls with no deadline would otherwise wait forever).
pub(crate) const MAX_QUIET: Duration = Duration::from_secs(1);

/// Drain and Settle: stale input, and the wait for what is owed.
impl Exchange<'_, '_> {
    /// Stale input (Drain, Settle): counted, and paid against what a
    /// missed reply owed; its first byte decides the miss's cause.
    pub(super) fn discard(&mut self, now: Timestamp, payload: &[u8], arrived: Timestamp) {
        if payload.is_empty() {
            return;
        }
        let engine = &mut *self.engine;
        engine.stale(payload.len());
        if let Some(owed) = &mut engine.owed {
            owed.pay(payload.len(), arrived);
            if let Some(missed) = owed.missed.take() {
                engine.attribute(missed, arrived, now);
            }
        }
        self.after_payment(now);
    }

    /// After stale input or a loss: a settled reply ends the wait.
    pub(super) fn after_payment(&mut self, now: Timestamp) {
        if let Phase::Settle { .. } = self.phase
            && self.owed_settled(now)
        {
            self.engine.owed = None;
            self.phase = Phase::Drain;
        }
    }

    /// Nothing more is pending: settle what is owed, or send.
    pub(super) fn after_drain(&mut self, now: Timestamp) {
        if self.owed_settled(now) {
            self.engine.owed = None;
            self.phase = Phase::Send;
            return;
        }
        let bound = self.settle_bound(now);
        if now >= bound {
            self.abandon_owed(now);
            self.phase = Phase::Send;
        } else {
            self.phase = Phase::Settle { bound };
        }
    }

    /// Until when settling may wait, as known at `now`: this call's own
    /// deadline from its start, plus the time a registered stall source
    /// (the simulated chip, the machine) was measurably stalled since the
    /// failed request went out (a reply such a stall delays is still the
    /// old reply, and the deadline is time the device and the machine
    /// could run); never more than [`MAX_SETTLE`] from the start, so a call
    /// with no deadline, or a stall without end, still sends its request.
    pub(super) fn settle_bound(&self, now: Timestamp) -> Timestamp {
        let base = self.started.add(self.deadline.min(MAX_SETTLE));
        let Some(owed) = self.engine.owed else {
            return base;
        };
        let stalled = self.engine.attribution.stalled_within(owed.since, now, now);
        base.add(stalled)
            .min(self.started.add(MAX_SETTLE))
            .max(base)
    }

    /// Until when to wait in Settle: the bound, or sooner, when the line
    /// will have been quiet long enough (unknown length).
    pub(super) fn settle_until(&self, bound: Timestamp) -> Timestamp {
        match self.engine.owed {
            Some(
                owed @ Owed {
                    bytes: None,
                    quiet_since,
                    ..
                },
            ) => bound.min(quiet_since.add(self.quiet(&owed))),
            _ => bound,
        }
    }

    /// How long the line must be quiet for a reply of unknown length to
    /// count as over: a silence-framed reply's own quiet time, else the
    /// shorter of the two calls' deadlines; at most [`MAX_QUIET`].
    pub(super) fn quiet(&self, owed: &Owed) -> Duration {
        owed.quiet
            .unwrap_or(owed.deadline.min(self.deadline))
            .min(MAX_QUIET)
    }

    pub(super) fn owed_settled(&self, now: Timestamp) -> bool {
        self.engine
            .owed
            .is_none_or(|owed| owed.settled(now, self.quiet(&owed)))
    }

    /// The rest of the missed reply did not come within this call's bound:
    /// counted, and no longer expected. A miss still unexplained is judged
    /// with what is known: its reply was not complete by `now`.
    pub(super) fn abandon_owed(&mut self, now: Timestamp) {
        let engine = &mut *self.engine;
        if let Some(owed) = engine.owed.take() {
            engine.tally.unsettled = engine.tally.unsettled.saturating_add(1);
            self.abandoned = true;
            if let Some(missed) = owed.missed {
                engine.attribute(missed, now, now);
            }
        }
    }

    /// The caller stopped waiting (an async transaction's future was
    /// dropped) at `now`: a request already handed over is given up as a
    /// failed one, its reply owed to the next call; before that, nothing
    /// was sent and nothing is owed.
    #[cfg(feature = "tokio")]
    pub(crate) fn cancel(&mut self, now: Timestamp) {
        match self.phase {
            Phase::Sending { .. } | Phase::Collect { .. } => {
                let received = self.engine.buf.len();
                self.give_up(now, Failure::Transport, received);
            }
            Phase::Drain | Phase::Settle { .. } | Phase::Send => {
                self.phase = Phase::Done(Outcome::Failed(Failure::Transport));
            }
            Phase::Done(_) => {}
        }
    }

    /// Ends the exchange without a reply at `now`: what was received is
    /// stale, and the rest of the reply (`consumed` bytes of it accounted
    /// for) is owed to the next call; the line counts as quiet from `now`.
    pub(super) fn give_up(&mut self, now: Timestamp, failure: Failure, consumed: usize) {
        let engine = &mut *self.engine;
        engine.stale(engine.buf.len());
        let bytes = match self.reply {
            ReplyEnd::Length(n) => Some(n.saturating_sub(consumed)),
            _ => None,
        };
        let since = match self.phase {
            Phase::Sending { submitted } | Phase::Collect { submitted, .. } => submitted,
            _ => now,
        };
        let quiet = match self.reply {
            ReplyEnd::Silence(quiet) => Some(quiet),
            _ => None,
        };
        engine.owed = Some(Owed {
            bytes,
            since,
            quiet_since: now,
            deadline: self.deadline,
            quiet,
            missed: None,
        });
        self.phase = Phase::Done(Outcome::Failed(failure));
    }
}
