//! Counters, latency histograms and the statistics snapshot.
//!
//! The reader thread only bumps relaxed atomics in [`Counters`]; histograms
//! are recorded on the application side (delivery in the [`Receiver`],
//! transactions in the port), so no histogram is ever shared with the
//! realtime thread. [`Statistics`] is a snapshot assembled on demand.
//!
//! [`Receiver`]: crate::Receiver

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::proto::{Chip, LineStatus, ModemStatus};
use crate::realtime::RealtimeStatus;

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

/// Counters the reader thread updates (relaxed atomics: each is independent,
/// and readers only need eventually consistent totals).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) packets: AtomicU64,
    pub(crate) status_only: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) payload_bytes: AtomicU64,
    pub(crate) modem_changes: AtomicU64,
    pub(crate) overrun: AtomicU64,
    pub(crate) parity: AtomicU64,
    pub(crate) framing: AtomicU64,
    pub(crate) breaks: AtomicU64,
    pub(crate) stalls: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    /// The latency timer in force (ms), for stall detection; written by the port.
    pub(crate) latency_timer_ms: AtomicU8,
    /// Latest modem-status and line-status bytes seen (0 until the first packet).
    pub(crate) modem: AtomicU8,
    pub(crate) line: AtomicU8,
    /// Why the stream ended; set once, off the hot path.
    pub(crate) disconnect: OnceLock<String>,
}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts the error bits of one data packet (the kernel counts errors only
    /// for packets that carry data, to avoid over-reporting).
    #[inline]
    pub(crate) fn count_line_errors(&self, line: LineStatus) {
        if line.overrun() {
            Self::add(&self.overrun, 1);
        }
        if line.parity_error() {
            Self::add(&self.parity, 1);
        }
        if line.framing_error() {
            Self::add(&self.framing, 1);
        }
        if line.break_interrupt() {
            Self::add(&self.breaks, 1);
        }
    }

    pub(crate) fn latest_status(&self) -> (ModemStatus, LineStatus) {
        (
            ModemStatus(self.modem.load(Ordering::Relaxed)),
            LineStatus(self.line.load(Ordering::Relaxed)),
        )
    }
}

/// Percentiles of a latency histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    pub fn from_histogram(h: &Histogram<u64>) -> LatencySummary {
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

/// Page faults of one thread (new in issue 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageFaults {
    /// Minor faults: the page was in memory but not mapped yet (first touch,
    /// copy-on-write), microseconds each.
    pub minor: u64,
    /// Major faults: the page had to be read from disk or swap, milliseconds each.
    pub major: u64,
}

impl PageFaults {
    /// `self - earlier`, per kind (saturating).
    pub fn since(&self, earlier: PageFaults) -> PageFaults {
        PageFaults {
            minor: self.minor.saturating_sub(earlier.minor),
            major: self.major.saturating_sub(earlier.major),
        }
    }
}

/// The reader thread's page faults since it started (new in issue 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderPageFaults {
    /// All of them, setup included.
    pub total: PageFaults,
    /// Those taken while it made itself realtime and locked or prefaulted
    /// its memory (on purpose, before the first packet).
    pub setup: PageFaults,
}

impl ReaderPageFaults {
    /// The faults since setup: while serving packets. Any here delayed a packet.
    pub fn serving(&self) -> PageFaults {
        self.total.since(self.setup)
    }
}

/// Line errors the device reported, counted per packet with data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineErrorCounts {
    /// Overrun (OE): the chip lost data before this packet.
    pub overrun: u64,
    /// Parity error (PE).
    pub parity: u64,
    /// Framing error (FE).
    pub framing: u64,
    /// Break (BI).
    pub breaks: u64,
}

impl LineErrorCounts {
    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.overrun + self.parity + self.framing + self.breaks
    }
}

/// Which kind of transport a port runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The userspace libusb driver.
    Usb,
    /// The kernel tty path (ftdi_sio, cdc_acm, a pty, ...).
    Tty,
    /// The simulated FTDI chip.
    Sim,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Usb => "usb",
            TransportKind::Tty => "tty",
            TransportKind::Sim => "sim",
        })
    }
}

/// What a port is connected to and how it was set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportInfo {
    /// The kind of transport.
    pub kind: TransportKind,
    /// The device in words ("FT232R serial A1B2 on bus 1 port 1.2", "/dev/pts/3").
    pub description: String,
    /// The FTDI chip, when known.
    pub chip: Option<Chip>,
    /// The baud rate the device actually runs at.
    pub actual_baud: Option<u32>,
    /// Bulk-IN max packet size (FTDI transports).
    pub max_packet_size: Option<usize>,
    /// Bulk-IN transfers kept in flight (FTDI transports).
    pub transfers_in_flight: Option<usize>,
    /// Settings that could not be applied, and other things worth knowing.
    pub notes: Vec<String>,
}

/// A snapshot of everything measured on a port.
#[derive(Clone, Debug)]
pub struct Statistics {
    /// Request/reply transactions attempted.
    pub transactions: u64,
    /// Transactions that missed their deadline.
    pub deadline_misses: u64,
    /// Of those, the ones the simulated chip's own stalls explain: the reply
    /// would have been in time had the simulation not run late. Always 0 on
    /// real devices.
    pub chip_late_misses: u64,
    /// Of those, the ones a machine stall explains (the vCPU or kernel could
    /// not run even a FIFO-99 thread; measured by a [`NoiseProbe`](crate::NoiseProbe)
    /// watched with [`Port::watch_platform`](crate::Port::watch_platform)).
    pub platform_late_misses: u64,
    /// Request submission to complete reply in the application's hands.
    pub transaction_latency: LatencySummary,
    /// Packet arrival to the application taking it.
    pub delivery_latency: LatencySummary,
    /// Bulk-IN packets (or tty reads) the reader processed.
    pub packets: u64,
    /// Packets that carried only the two status bytes (heartbeats).
    pub status_only_packets: u64,
    /// Packets too short to hold a header.
    pub malformed_packets: u64,
    /// Payload bytes the reader received.
    pub bytes_received: u64,
    /// Payload bytes the application took.
    pub bytes_delivered: u64,
    /// Bytes written to the device.
    pub bytes_written: u64,
    /// Line errors reported by the device.
    pub line_errors: LineErrorCounts,
    /// Changes of CTS/DSR/RI/DCD seen in packet headers.
    pub modem_changes: u64,
    /// Chunks dropped because the application did not keep up.
    pub overflows: u64,
    /// Bytes in those chunks.
    pub overflow_bytes: u64,
    /// Gaps of more than three latency periods without any packet.
    pub stalls: u64,
    /// Bytes discarded as stale before transactions (late replies, noise).
    pub stale_bytes: u64,
    /// How the reader thread runs: guaranteed realtime or best effort, and
    /// what memory it locked.
    pub realtime: RealtimeStatus,
    /// The reader thread's page faults (new in issue 17; `None` where
    /// `/proc/self/task` cannot be read).
    pub reader_page_faults: Option<ReaderPageFaults>,
    /// What the port is connected to.
    pub transport: TransportInfo,
    /// Simulated chip only: how late the chip's own events ran (chip
    /// lateness, not host latency).
    pub chip_lateness: Option<LatencySummary>,
    /// Why the stream ended, once it has.
    pub disconnect: Option<String>,
    /// The raw transaction-latency histogram (ns).
    pub transaction_histogram: Histogram<u64>,
    /// The raw delivery-latency histogram (ns).
    pub delivery_histogram: Histogram<u64>,
}

impl Statistics {
    /// Misses of the host path: all misses minus those the simulated chip's
    /// own stalls or measured machine stalls explain.
    pub fn host_misses(&self) -> u64 {
        self.deadline_misses
            .saturating_sub(self.chip_late_misses + self.platform_late_misses)
    }
}

impl fmt::Display for Statistics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "transport        {} ({})",
            self.transport.kind, self.transport.description
        )?;
        writeln!(f, "reader           {}", self.realtime)?;
        if let Some(faults) = &self.reader_page_faults {
            let serving = faults.serving();
            writeln!(
                f,
                "reader faults    {} minor, {} major while serving ({} minor, {} major in setup)",
                serving.minor, serving.major, faults.setup.minor, faults.setup.major
            )?;
        }
        writeln!(
            f,
            "transactions     {} ({} missed: {} host, {} simulated-chip stalls, {} machine stalls)",
            self.transactions,
            self.deadline_misses,
            self.host_misses(),
            self.chip_late_misses,
            self.platform_late_misses
        )?;
        writeln!(f, "  latency        {}", self.transaction_latency)?;
        writeln!(f, "delivery         {}", self.delivery_latency)?;
        writeln!(
            f,
            "packets          {} ({} status-only, {} malformed), {} bytes in, {} out",
            self.packets,
            self.status_only_packets,
            self.malformed_packets,
            self.bytes_received,
            self.bytes_written
        )?;
        writeln!(
            f,
            "line errors      {} (OE {}, PE {}, FE {}, BI {})",
            self.line_errors.total(),
            self.line_errors.overrun,
            self.line_errors.parity,
            self.line_errors.framing,
            self.line_errors.breaks
        )?;
        writeln!(
            f,
            "overflows        {} ({} bytes), stalls {}, stale bytes {}",
            self.overflows, self.overflow_bytes, self.stalls, self.stale_bytes
        )?;
        if let Some(chip) = &self.chip_lateness {
            writeln!(f, "chip lateness    {chip}")?;
        }
        if let Some(why) = &self.disconnect {
            writeln!(f, "disconnected     {why}")?;
        }
        for note in &self.transport.notes {
            writeln!(f, "note             {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_percentiles() {
        let mut h = new_latency_histogram();
        for us in 1..=1000u64 {
            h.saturating_record(us * 1000);
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
    fn line_errors_are_counted_per_kind() {
        let c = Counters::default();
        c.count_line_errors(LineStatus(
            LineStatus::OE | LineStatus::FE | LineStatus::THRE,
        ));
        c.count_line_errors(LineStatus(LineStatus::PE));
        assert_eq!(c.overrun.load(Ordering::Relaxed), 1);
        assert_eq!(c.framing.load(Ordering::Relaxed), 1);
        assert_eq!(c.parity.load(Ordering::Relaxed), 1);
        assert_eq!(c.breaks.load(Ordering::Relaxed), 0);
    }
}
