//! Latency histograms (kept on the application side, never shared with the
//! realtime thread) and their summaries.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency a histogram records exactly (60 s); larger values saturate.
const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

/// A nanosecond histogram, 3 significant figures, 1 ns to 60 s. Allocates
/// once here; recording never allocates.
pub(crate) fn new_latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(e) => unreachable!("static histogram bounds rejected: {e}"),
    }
}

/// Records `latency` (at least 1 ns, at most the histogram's 60 s).
#[inline]
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record(ns.max(1));
}

/// Each recorded latency with how many samples it stands for, in
/// increasing order (values within the histogram's 3 significant figures
/// share a bucket).
pub(crate) fn recorded(histogram: &Histogram<u64>) -> impl Iterator<Item = (Duration, u64)> + '_ {
    histogram.iter_recorded().map(|v| {
        (
            Duration::from_nanos(v.value_iterated_to()),
            v.count_at_value(),
        )
    })
}

/// Percentiles of a latency histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl LatencySummary {
    /// Summarises a nanosecond histogram.
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        LatencySummary {
            count: h.len(),
            min: Duration::from_nanos(h.min()),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: Duration::from_nanos(h.max()),
        }
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(
            f,
            "n={} p50={:.1}µs p90={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
            self.count,
            us(self.p50),
            us(self.p90),
            us(self.p99),
            us(self.p999),
            us(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_percentiles() {
        let mut h = new_latency_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 1000);
        let within = |d: Duration, us: f64| (d.as_secs_f64() * 1e6 - us).abs() <= us * 0.002;
        assert!(within(s.p50, 500.0), "{s}");
        assert!(within(s.p99, 990.0), "{s}");
        assert!(within(s.max, 1000.0), "{s}");
        assert_eq!(
            LatencySummary::from_histogram(&new_latency_histogram()).count,
            0
        );
    }

    #[test]
    fn recorded_values_come_with_their_counts() {
        let mut h = new_latency_histogram();
        record(&mut h, Duration::from_micros(5));
        record(&mut h, Duration::from_micros(5));
        record(&mut h, Duration::from_millis(2));
        record(&mut h, Duration::ZERO); // counted as 1 ns
        record(&mut h, Duration::MAX); // saturates at 60 s
        let all: Vec<(Duration, u64)> = recorded(&h).collect();
        assert_eq!(all.iter().map(|&(_, n)| n).sum::<u64>(), 5);
        let over_1ms: u64 = all
            .iter()
            .filter(|&&(d, _)| d > Duration::from_millis(1))
            .map(|&(_, n)| n)
            .sum();
        assert_eq!(over_1ms, 2);
        let (value, count) = all.iter().copied().find(|&(_, n)| n == 2).unwrap();
        assert!(
            value.abs_diff(Duration::from_micros(5)) < Duration::from_nanos(10),
            "{value:?}"
        );
        assert_eq!(count, 2);
    }
}
