//! What a reply that did not complete still owes the next call, and the
//! limits on how long the next call waits for it (see the timeout model in
//! the `transaction` module docs).

use std::time::Duration;

use crate::time::Timestamp;

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
