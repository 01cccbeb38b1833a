//! Stretches of time a thread ran late, for telling causes of a miss apart.
//!
//! Two things log here: the simulated chip (its thread runs on the host's
//! scheduler; silicon has its own clock and is never late, so its stalls must
//! not be blamed on the host path) and the [`NoiseProbe`](crate::NoiseProbe)
//! (a FIFO-99 thread per CPU: when even it runs late, the machine itself was
//! unavailable). Atomics only: the logging thread never waits. The
//! transaction layer asks how much of a late transaction a log explains.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::time::Timestamp;

/// Lateness below this is ordinary wakeup latency, not a stall.
pub(crate) const STALL_THRESHOLD: Duration = Duration::from_micros(100);
const SLOTS: usize = 64;

/// The last [`SLOTS`] stall intervals `[due, handled]`, newest merged in place.
/// One writer per log: the merge reads and rewrites the newest slot.
#[derive(Debug)]
pub(crate) struct StallLog {
    start: [AtomicU64; SLOTS],
    end: [AtomicU64; SLOTS],
    /// Slot of the newest interval.
    head: AtomicUsize,
    /// The time (ns) by which the logging thread promised to run again; past
    /// it, the thread is stalled right now (a frozen thread cannot log its
    /// own stall until it runs). `u64::MAX`: no promise (idle, nothing due).
    expect_by: AtomicU64,
}

impl Default for StallLog {
    fn default() -> Self {
        StallLog {
            expect_by: AtomicU64::new(u64::MAX),
            start: std::array::from_fn(|_| AtomicU64::new(0)),
            end: std::array::from_fn(|_| AtomicU64::new(0)),
            head: AtomicUsize::new(0),
        }
    }
}

impl StallLog {
    /// Chip side: an event due at `due` was handled at `handled`.
    pub(crate) fn record(&self, due: Timestamp, handled: Timestamp) {
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

    /// Logging thread: it will run again by `due` (plus the threshold), or,
    /// with `None`, makes no promise.
    pub(crate) fn expect(&self, due: Option<Timestamp>) {
        let ns = due.map_or(u64::MAX, |t| t.add(STALL_THRESHOLD).as_nanos());
        self.expect_by.store(ns, Ordering::Release);
    }

    /// Another thread gave the logging thread work: it must run by `due`
    /// (plus the threshold) at the latest.
    pub(crate) fn expect_no_later_than(&self, due: Timestamp) {
        self.expect_by
            .fetch_min(due.add(STALL_THRESHOLD).as_nanos(), Ordering::AcqRel);
    }

    /// How long the logging thread was stalled within `[from, to]`: the
    /// length of the union of its stall intervals there.
    pub(crate) fn stalled_within(&self, from: Timestamp, to: Timestamp) -> Duration {
        union_within([self], from, to)
    }

    /// Copies the intervals overlapping `[from, to]`, clipped to it, into
    /// `out`, with the stall going on now (if any) as one more interval.
    fn clipped(&self, from: u64, to: u64, now: u64, out: &mut [(u64, u64)], n: &mut usize) {
        let promised = self.expect_by.load(Ordering::Acquire);
        if now > promised && *n < out.len() {
            // Stalled since the promised time (less the grace the promise had).
            let since = promised.saturating_sub(STALL_THRESHOLD.as_nanos() as u64);
            let (s, e) = (since.max(from), now.min(to));
            if e > s {
                out[*n] = (s, e);
                *n += 1;
            }
        }
        for i in 0..SLOTS {
            let s = self.start[i].load(Ordering::Relaxed).max(from);
            let e = self.end[i].load(Ordering::Relaxed).min(to);
            if e > s && *n < out.len() {
                out[*n] = (s, e);
                *n += 1;
            }
        }
    }
}

/// Logs [`union_within`] can combine (one per CPU of the noise probe, plus
/// the simulated chip's).
pub(crate) const MAX_LOGS: usize = 17;

/// The length of the union, within `[from, to]`, of the stall intervals of
/// several logs (overlapping stretches count once; logs past [`MAX_LOGS`]
/// are ignored). No allocation.
pub(crate) fn union_within<'a>(
    logs: impl IntoIterator<Item = &'a StallLog>,
    from: Timestamp,
    to: Timestamp,
) -> Duration {
    let (from, to) = (from.as_nanos(), to.as_nanos());
    let now = Timestamp::now().as_nanos();
    let mut spans = [(0u64, 0u64); MAX_LOGS * SLOTS];
    let mut n = 0;
    for log in logs.into_iter().take(MAX_LOGS) {
        log.clipped(from, to, now, &mut spans, &mut n);
    }
    let spans = &mut spans[..n];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Timestamp {
        Timestamp::from_nanos(us * 1000)
    }

    #[test]
    fn stalls_are_merged_and_measured_within_a_window() {
        let log = StallLog::default();
        log.record(t(1000), t(1050)); // ordinary wakeup latency: ignored
        assert_eq!(log.stalled_within(t(0), t(10_000)), Duration::ZERO);
        log.record(t(2000), t(5000)); // a 3 ms stall...
        log.record(t(2100), t(5010)); // ...and its backlog
        assert_eq!(
            log.stalled_within(t(0), t(10_000)),
            Duration::from_micros(3010)
        );
        assert_eq!(
            log.stalled_within(t(4000), t(10_000)),
            Duration::from_micros(1010)
        );
        assert_eq!(log.stalled_within(t(6000), t(10_000)), Duration::ZERO);
    }

    #[test]
    fn a_second_stall_in_the_window_adds_up() {
        let log = StallLog::default();
        log.record(t(2000), t(5000));
        log.record(t(7000), t(8000));
        assert_eq!(
            log.stalled_within(t(0), t(10_000)),
            Duration::from_micros(4000)
        );
    }

    #[test]
    fn stalls_of_several_logs_count_once_where_they_overlap() {
        let (a, b) = (StallLog::default(), StallLog::default());
        a.record(t(1000), t(3000));
        b.record(t(2000), t(4000)); // overlaps a by 1 ms
        b.record(t(6000), t(6500));
        assert_eq!(
            union_within([&a, &b], t(0), t(10_000)),
            Duration::from_micros(3500)
        );
    }

    #[test]
    fn a_stall_going_on_now_is_counted_before_the_thread_can_log_it() {
        let log = StallLog::default();
        let now = Timestamp::now();
        log.expect(Some(Timestamp::from_nanos(now.as_nanos() - 5_000_000))); // due 5 ms ago
        let stalled = log.stalled_within(t(0), now.add(Duration::from_secs(1)));
        assert!(stalled >= Duration::from_millis(4), "{stalled:?}");
        log.expect(None); // it ran; nothing due
        assert_eq!(log.stalled_within(t(0), Timestamp::now()), Duration::ZERO);
        log.expect_no_later_than(Timestamp::now().add(Duration::from_secs(60)));
        assert_eq!(
            log.stalled_within(t(0), Timestamp::now()),
            Duration::ZERO,
            "not due yet"
        );
    }
}
