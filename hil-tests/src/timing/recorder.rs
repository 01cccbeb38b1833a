//! Folding a contender's transactions into one HDR histogram, and the row
//! and histogram lines made from it.
//!
//! Every transaction counts, misses included: a miss is recorded at the time
//! the loop gave up on it (at least the deadline) or at its late reply's
//! arrival, so the percentiles never look better than what happened; a
//! percentile above the miss rate reads "at least this long".

use std::time::Duration;

use hdrhistogram::Histogram;

use super::row::{HistLine, RowKey, TimingRow};

/// The largest latency the histogram tells apart (longer ones saturate).
const MAX_TRACKED_US: u64 = 60_000_000;
/// Bin width of the histogram lines the guest prints.
pub const HIST_BIN_US: u64 = 50;

/// One contender's latencies under one load.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
    misses: u64,
    wrong: u64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder: 1 µs .. 60 s at three significant digits.
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            hist: Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
                .expect("constant histogram bounds are valid"),
            misses: 0,
            wrong: 0,
        }
    }

    /// Records one transaction: how long it took, and whether it missed.
    pub fn record(&mut self, latency: Duration, missed: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us, missed);
    }

    /// As [`record`](Self::record), in whole microseconds.
    pub fn record_us(&mut self, us: u64, missed: bool) {
        self.hist.saturating_record(us.clamp(1, MAX_TRACKED_US));
        self.misses += u64::from(missed);
    }

    /// Counts a reply that came in time but was not the expected answer
    /// (also recorded with [`record`](Self::record)).
    pub fn wrong_reply(&mut self) {
        self.wrong += 1;
    }

    /// Adds `other`'s transactions, misses and wrong replies to these.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.misses += other.misses;
        self.wrong += other.wrong;
    }

    /// Transactions recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Deadline misses.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Wrong replies.
    pub fn wrong(&self) -> u64 {
        self.wrong
    }

    /// The row for `key`.
    pub fn row(&self, key: RowKey) -> TimingRow {
        let q = |q: f64| self.hist.value_at_quantile(q);
        TimingRow {
            key,
            n: self.count(),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: self.hist.max(),
            misses: self.misses,
        }
    }

    /// The histogram line for `key`, in bins of `bin_us` µs (at least 1).
    pub fn hist_line(&self, key: RowKey, bin_us: u64) -> HistLine {
        let bin_us = bin_us.max(1);
        let mut bins: Vec<(u64, u64)> = Vec::new();
        for v in self.hist.iter_recorded() {
            let lo = v.value_iterated_to() / bin_us * bin_us;
            match bins.last_mut() {
                Some((last, c)) if *last == lo => *c += v.count_at_value(),
                _ => bins.push((lo, v.count_at_value())),
            }
        }
        HistLine { key, bin_us, bins }
    }
}

#[cfg(test)]
mod tests {
    use super::super::row::{Contender, Kernel, Load, Vhci};
    use super::*;

    fn key() -> RowKey {
        RowKey {
            kernel: Kernel::Rt,
            load: Load::Kwork,
            path: Contender::Tty,
            vhci: Vhci::Other,
        }
    }

    #[test]
    fn misses_count_in_the_percentiles_at_their_recorded_time() {
        let mut r = LatencyRecorder::new();
        for _ in 0..980 {
            r.record(Duration::from_micros(1998), false);
        }
        for _ in 0..20 {
            r.record(Duration::from_micros(3600), true);
        }
        let row = r.row(key());
        assert_eq!((row.n, row.misses), (1000, 20));
        assert_eq!(row.p50_us, 1998);
        assert_eq!(row.p90_us, 1998);
        // 2 % missed: p99 is at least the give-up time, within the
        // histogram's resolution (2 µs at this magnitude).
        assert!((3600..=3602).contains(&row.p99_us), "{row}");
        assert!((3600..=3602).contains(&row.max_us), "{row}");
    }

    #[test]
    fn histogram_bins_hold_every_transaction() {
        let mut r = LatencyRecorder::new();
        for us in [10, 20, 49, 50, 1999, 2001, 2049] {
            r.record_us(us, false);
        }
        r.record_us(0, true); // clamped to 1 µs, still counted
        let h = r.hist_line(key(), 50);
        assert_eq!(h.total(), 8);
        assert_eq!(h.bins, vec![(0, 4), (50, 1), (1950, 1), (2000, 2)]);
        assert_eq!((r.misses(), r.count()), (1, 8));
    }
}
