//! What the reader thread counts: relaxed atomics, each independent, that
//! the application reads when it asks for statistics.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::proto::{LineStatus, ModemStatus};
use crate::timing::FlightRecorder;

/// One event count. Relaxed: readers only need an eventually consistent
/// total, and the reader thread never waits for anyone.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Counts `n` more.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` more, stopping at `u64::MAX` (totals of durations).
    pub(crate) fn add_saturating(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(n))
            });
    }

    /// The total so far.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters the reader thread updates (and the writer's byte count).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) packets: Counter,
    pub(crate) status_only: Counter,
    pub(crate) malformed: Counter,
    pub(crate) payload_bytes: Counter,
    pub(crate) modem_changes: Counter,
    pub(crate) overrun: Counter,
    pub(crate) parity: Counter,
    pub(crate) framing: Counter,
    pub(crate) breaks: Counter,
    pub(crate) stalls: Counter,
    pub(crate) bytes_written: Counter,
    /// The latency timer in force (ms), for stall detection; written by the port.
    pub(crate) latency_timer_ms: AtomicU8,
    /// Latest modem-status and line-status bytes seen (0 until the first packet).
    pub(crate) modem: AtomicU8,
    pub(crate) line: AtomicU8,
    /// Why the stream ended (or, on a port that resumes, why the link was
    /// first lost); set once, off the hot path.
    pub(crate) disconnect: OnceLock<String>,
    /// The link is lost and the port waits for the device to come back
    /// (resume): writes and settings fail fast with `Disconnected`. Set by
    /// the reader when it loses the link, cleared by the port's watcher
    /// once the settings are back on the device.
    pub(crate) link_down: AtomicBool,
    /// Times the port resumed after an unplug.
    pub(crate) resumes: Counter,
    /// Total time (ns) the link was down before those resumes.
    pub(crate) resume_gap_ns: Counter,
    /// One character's time on the wire (ns) at the line settings in force,
    /// 0 while unknown; written by the writer.
    pub(crate) char_time_ns: AtomicU64,
    /// The last packets the reader saw, for the timing features.
    pub(crate) flight: FlightRecorder,
}

impl Counters {
    /// Counts the error bits of one data packet (the kernel counts errors only
    /// for packets that carry data, to avoid over-reporting).
    #[inline]
    pub(crate) fn count_line_errors(&self, line: LineStatus) {
        if line.overrun() {
            self.overrun.add(1);
        }
        if line.parity_error() {
            self.parity.add(1);
        }
        if line.framing_error() {
            self.framing.add(1);
        }
        if line.break_interrupt() {
            self.breaks.add(1);
        }
    }

    pub(crate) fn latest_status(&self) -> (ModemStatus, LineStatus) {
        (
            ModemStatus(self.modem.load(Ordering::Relaxed)),
            LineStatus(self.line.load(Ordering::Relaxed)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_errors_are_counted_per_kind() {
        let c = Counters::default();
        c.count_line_errors(LineStatus(
            LineStatus::OE | LineStatus::FE | LineStatus::THRE,
        ));
        c.count_line_errors(LineStatus(LineStatus::PE));
        assert_eq!(c.overrun.get(), 1);
        assert_eq!(c.framing.get(), 1);
        assert_eq!(c.parity.get(), 1);
        assert_eq!(c.breaks.get(), 0);
    }
}
