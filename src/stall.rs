//! Stall attribution: stretches of time in which something a transaction
//! depends on could not run, so that a deadline miss they explain is not
//! blamed on the host path.
//!
//! A [`StallSource`] reports such stretches; [`Port::discount_stalls`]
//! registers one with a port, whose transaction accounting then credits a
//! miss to the source if, with its stalls taken out, the reply would have
//! been in time (counted in [`Statistics::explained_misses`] under the
//! source's [`name`](StallSource::name)). Two sources come with the
//! project: the simulated chip ([`SimHandle`]; its thread runs on the host's
//! scheduler, while silicon has its own clock and is never late), which a
//! port on it registers by itself, and the machine-noise probe of the
//! `ftdi-rt-lab` crate (a FIFO-99 thread per CPU: when even it runs late,
//! the machine itself was unavailable).
//!
//! [`StallLog`] is the lock-free interval log a source keeps: its one
//! writer records and promises, any thread reads. [`union_within`] measures
//! several sources together, counting overlapping stretches once.
//!
//! [`Port::discount_stalls`]: crate::Port::discount_stalls
//! [`Statistics::explained_misses`]: crate::Statistics::explained_misses
//! [`SimHandle`]: crate::sim::SimHandle

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::time::Timestamp;

/// Something that can be stalled, and says when it was.
///
/// Implementations read their own record (atomics, no lock the stalled
/// thread could hold) and must not block: the accounting asks after every
/// missed deadline.
pub trait StallSource: Send + Sync + fmt::Debug {
    /// What stalls, in a word or two ("machine", "simulated-chip"): the
    /// statistics count the misses this source explains under this name.
    fn name(&self) -> &str;

    /// Calls `each(start, end)` for every stretch within `[from, to]`
    /// (clipped to it) in which the source was stalled, as known at `now`;
    /// a stall still going on at `now` counts up to `now`. Stretches may
    /// overlap and come in any order.
    fn stalls_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        each: &mut dyn FnMut(Timestamp, Timestamp),
    );
}

/// Lateness below this is ordinary wakeup latency, not a stall.
pub const STALL_THRESHOLD: Duration = Duration::from_micros(100);
/// Intervals a [`StallLog`] keeps.
const SLOTS: usize = 64;

/// The last 64 stall intervals `[due, handled]` of one thread, the newest
/// merged in place, plus the time by which the thread promised to run
/// again (so a stall is visible while it lasts, before the stalled thread
/// can log it).
///
/// One writer per log (the thread it describes: the merge reads and
/// rewrites the newest slot); any thread may read. Atomics only, so the
/// writer never waits.
#[derive(Debug)]
pub struct StallLog {
    start: [AtomicU64; SLOTS],
    end: [AtomicU64; SLOTS],
    /// Slot of the newest interval.
    head: AtomicUsize,
    /// The time (ns) by which the logging thread promised to run again; past
    /// it, the thread is stalled right now (a frozen thread cannot log its
    /// own stall until it runs). `u64::MAX`: no promise (idle, nothing due).
    promised_by: AtomicU64,
}

impl Default for StallLog {
    fn default() -> Self {
        StallLog {
            promised_by: AtomicU64::new(u64::MAX),
            start: std::array::from_fn(|_| AtomicU64::new(0)),
            end: std::array::from_fn(|_| AtomicU64::new(0)),
            head: AtomicUsize::new(0),
        }
    }
}

impl StallLog {
    /// An empty log with no promise.
    pub fn new() -> StallLog {
        StallLog::default()
    }

    /// Writer: something due at `due` was handled at `handled` (lateness
    /// below [`STALL_THRESHOLD`] is not a stall and is not recorded).
    pub fn record(&self, due: Timestamp, handled: Timestamp) {
        if handled.saturating_since(due) < STALL_THRESHOLD {
            return;
        }
        let (due, handled) = (due.as_nanos(), handled.as_nanos());
        let i = self.head.load(Ordering::Relaxed);
        let (s, e) = (
            self.start[i].load(Ordering::Relaxed),
            self.end[i].load(Ordering::Relaxed),
        );
        if e != 0 && due <= e {
            // The backlog of one stall: widen the newest interval.
            self.start[i].store(s.min(due), Ordering::Relaxed);
            self.end[i].store(e.max(handled), Ordering::Relaxed);
        } else {
            let next = (i + 1) % SLOTS;
            self.start[next].store(due, Ordering::Relaxed);
            self.end[next].store(handled, Ordering::Relaxed);
            self.head.store(next, Ordering::Release);
        }
    }

    /// Writer: it will run again by `due` (plus the threshold), or, with
    /// `None`, makes no promise (it is idle, or gone).
    pub fn promise(&self, due: Option<Timestamp>) {
        let ns = due.map_or(u64::MAX, |t| t.add(STALL_THRESHOLD).as_nanos());
        self.promised_by.store(ns, Ordering::Release);
    }

    /// Another thread gave the writer work: it must run by `due` (plus the
    /// threshold) at the latest, whatever it promised.
    pub fn promise_no_later_than(&self, due: Timestamp) {
        self.promised_by
            .fetch_min(due.add(STALL_THRESHOLD).as_nanos(), Ordering::AcqRel);
    }

    /// How long the writer was stalled within `[from, to]` as known at
    /// `now`: the length of the union of its stall intervals there.
    pub fn stalled_within(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Duration {
        let mut spans = Spans::default();
        self.for_each_within(from, to, now, &mut |s, e| spans.push(s, e));
        spans.union_length()
    }

    /// Calls `each(start, end)` for the intervals overlapping `[from, to]`,
    /// clipped to it, and for the stall going on at `now` (if the writer
    /// is past its promise) as one more interval: what a [`StallSource`]
    /// built on this log reports.
    pub fn for_each_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        each: &mut dyn FnMut(Timestamp, Timestamp),
    ) {
        let (from, to, now) = (from.as_nanos(), to.as_nanos(), now.as_nanos());
        let promised = self.promised_by.load(Ordering::Acquire);
        if now > promised {
            // Stalled since the promised time (less the grace the promise had).
            let since = promised.saturating_sub(STALL_THRESHOLD.as_nanos() as u64);
            let (s, e) = (since.max(from), now.min(to));
            if e > s {
                each(Timestamp::from_nanos(s), Timestamp::from_nanos(e));
            }
        }
        for i in 0..SLOTS {
            let s = self.start[i].load(Ordering::Relaxed).max(from);
            let e = self.end[i].load(Ordering::Relaxed).min(to);
            if e > s {
                each(Timestamp::from_nanos(s), Timestamp::from_nanos(e));
            }
        }
    }
}

/// Stretches [`union_within`] takes into account: a full log (64 plus the
/// ongoing one) from each of 18 sources or per-CPU logs. Past that the
/// rest is ignored, which can only leave a miss blamed on the host path.
const MAX_SPANS: usize = 18 * (SLOTS + 1);

/// A fixed set of intervals (ns), so measuring allocates nothing.
struct Spans {
    spans: [(u64, u64); MAX_SPANS],
    n: usize,
}

impl Default for Spans {
    fn default() -> Self {
        Spans {
            spans: [(0, 0); MAX_SPANS],
            n: 0,
        }
    }
}

impl Spans {
    fn push(&mut self, start: Timestamp, end: Timestamp) {
        if self.n < MAX_SPANS {
            self.spans[self.n] = (start.as_nanos(), end.as_nanos());
            self.n += 1;
        }
    }

    /// The length of the union of the intervals (overlaps count once).
    fn union_length(&mut self) -> Duration {
        let spans = &mut self.spans[..self.n];
        spans.sort_unstable();
        let (mut total, mut reach) = (0u64, 0u64);
        for &(s, e) in spans.iter() {
            let s = s.max(reach);
            if e > s {
                total += e - s;
                reach = e;
            }
        }
        Duration::from_nanos(total)
    }
}

/// How long, within `[from, to]` and as known at `now`, at least one of
/// `sources` was stalled: the length of the union of their stretches
/// (overlapping stretches count once). No allocation.
pub fn union_within<'a>(
    sources: impl IntoIterator<Item = &'a dyn StallSource>,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Duration {
    let mut spans = Spans::default();
    for source in sources {
        source.stalls_within(from, to, now, &mut |s, e| spans.push(s, e));
    }
    spans.union_length()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Timestamp {
        Timestamp::from_nanos(us * 1000)
    }

    /// Long after every interval of the tests: nothing is ongoing.
    fn later() -> Timestamp {
        t(1_000_000)
    }

    #[derive(Debug, Default)]
    struct Named(StallLog);

    impl StallSource for Named {
        fn name(&self) -> &str {
            "test"
        }
        fn stalls_within(
            &self,
            from: Timestamp,
            to: Timestamp,
            now: Timestamp,
            each: &mut dyn FnMut(Timestamp, Timestamp),
        ) {
            self.0.for_each_within(from, to, now, each);
        }
    }

    #[test]
    fn stalls_are_merged_and_measured_within_a_window() {
        let log = StallLog::new();
        log.record(t(1000), t(1050)); // ordinary wakeup latency: ignored
        assert_eq!(log.stalled_within(t(0), t(10_000), later()), Duration::ZERO);
        log.record(t(2000), t(5000)); // a 3 ms stall...
        log.record(t(2100), t(5010)); // ...and its backlog
        assert_eq!(
            log.stalled_within(t(0), t(10_000), later()),
            Duration::from_micros(3010)
        );
        assert_eq!(
            log.stalled_within(t(4000), t(10_000), later()),
            Duration::from_micros(1010)
        );
        assert_eq!(
            log.stalled_within(t(6000), t(10_000), later()),
            Duration::ZERO
        );
    }

    #[test]
    fn a_second_stall_in_the_window_adds_up() {
        let log = StallLog::new();
        log.record(t(2000), t(5000));
        log.record(t(7000), t(8000));
        assert_eq!(
            log.stalled_within(t(0), t(10_000), later()),
            Duration::from_micros(4000)
        );
    }

    #[test]
    fn stalls_of_several_sources_count_once_where_they_overlap() {
        let (a, b) = (Named::default(), Named::default());
        a.0.record(t(1000), t(3000));
        b.0.record(t(2000), t(4000)); // overlaps a by 1 ms
        b.0.record(t(6000), t(6500));
        let sources: [&dyn StallSource; 2] = [&a, &b];
        assert_eq!(
            union_within(sources, t(0), t(10_000), later()),
            Duration::from_micros(3500)
        );
        assert_eq!(union_within([], t(0), t(10_000), later()), Duration::ZERO);
    }

    #[test]
    fn a_stall_going_on_now_is_counted_before_the_thread_can_log_it() {
        let log = StallLog::new();
        let now = t(100_000);
        log.promise(Some(t(95_000))); // due 5 ms ago
        let stalled = log.stalled_within(t(0), t(200_000), now);
        assert_eq!(stalled, Duration::from_micros(5000), "{stalled:?}");
        log.promise(None); // it ran; nothing due
        assert_eq!(log.stalled_within(t(0), now, now), Duration::ZERO);
        log.promise_no_later_than(t(160_000));
        assert_eq!(
            log.stalled_within(t(0), now, now),
            Duration::ZERO,
            "not due yet"
        );
        assert_eq!(
            log.stalled_within(t(0), t(200_000), t(170_000)),
            Duration::from_micros(10_000),
            "10 ms past the shortened promise"
        );
    }
}
