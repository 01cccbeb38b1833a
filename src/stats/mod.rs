//! Counters, latency histograms and the statistics snapshot.
//!
//! The reader thread only bumps relaxed atomics in [`Counters`]; histograms
//! are recorded on the application side (delivery in the [`Receiver`],
//! transactions in the port), so no histogram is ever shared with the
//! realtime thread. [`Statistics`] is a snapshot assembled on demand.
//!
//! [`Receiver`]: crate::Receiver

mod counters;
mod latency;

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

pub(crate) use self::counters::{Counter, Counters};
pub use self::latency::LatencySummary;
pub(crate) use self::latency::{new_latency_histogram, record, recorded};
use crate::proto::Chip;
use crate::realtime::RealtimeStatus;

/// Page faults of one thread (new in issue 17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct Statistics {
    /// Request/reply transactions attempted.
    pub transactions: u64,
    /// Transactions that missed their deadline.
    pub deadline_misses: u64,
    /// Of those, the ones a registered stall source explains, per source
    /// (its [`StallSource::name`](crate::stall::StallSource::name), in the
    /// order the sources were registered): the reply would have been in
    /// time without that source's stalls. The simulated chip's own source
    /// (`"simulated-chip"`) is registered by [`Port::open_sim`]; others with
    /// [`Port::discount_stalls`]. The rest are [`host_misses`](Self::host_misses).
    ///
    /// [`Port::open_sim`]: crate::Port::open_sim
    /// [`Port::discount_stalls`]: crate::Port::discount_stalls
    pub explained_misses: Vec<(String, u64)>,
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
    /// Bytes transactions discarded: input that arrived before a request
    /// (noise, late replies), bytes after a reply's end, and the bytes of
    /// replies that missed their deadline or failed.
    pub stale_bytes: u64,
    /// Replies that missed their deadline (or failed) whose rest the next
    /// transaction gave up waiting for: the owed bytes, or a quiet line,
    /// did not come within that transaction's own deadline, so it sent its
    /// request anyway. Bytes of such a reply arriving later cannot be told
    /// from the new reply (see [`ReplyEnd`](crate::ReplyEnd)).
    pub unsettled_replies: u64,
    /// How the reader thread runs: guaranteed realtime or best effort, and
    /// what memory it locked.
    pub realtime: RealtimeStatus,
    /// The reader thread's page faults (new in issue 17; `None` where
    /// `/proc/self/task` cannot be read).
    pub reader_page_faults: Option<ReaderPageFaults>,
    /// What the port is connected to.
    pub transport: TransportInfo,
    /// Why the stream ended, once it has (on a port that resumes: why the
    /// link was first lost).
    pub disconnect: Option<String>,
    /// Times the port came back by itself after an unplug
    /// ([`PortConfig::with_resume`](crate::PortConfig::with_resume)).
    pub resumes: u64,
    /// The time the link was down, summed over those resumes (each gap
    /// from the reader seeing the link lost to the new device's transfers
    /// in flight, its settings re-applied).
    pub resume_gap: Duration,
    /// The raw transaction latencies (ns), behind the accessors below.
    pub(crate) transaction_histogram: Histogram<u64>,
    /// The raw delivery latencies (ns), behind the accessors below.
    pub(crate) delivery_histogram: Histogram<u64>,
}

impl Statistics {
    /// Misses of the host path: all misses minus those a stall source explains.
    pub fn host_misses(&self) -> u64 {
        let explained: u64 = self.explained_misses.iter().map(|(_, n)| n).sum();
        self.deadline_misses.saturating_sub(explained)
    }

    /// The misses the stall source called `name` explains (0 if no source
    /// of that name is registered).
    pub fn explained_by(&self, name: &str) -> u64 {
        self.explained_misses
            .iter()
            .filter(|(source, _)| source == name)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every completed transaction's latency, as (latency, number of
    /// transactions) in increasing order; values within 0.1 % share an
    /// entry. For plots and tail counts beyond [`transaction_latency`](Self::transaction_latency).
    pub fn transaction_latencies(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        recorded(&self.transaction_histogram)
    }

    /// Every delivered chunk's delivery latency, as (latency, number of
    /// chunks) in increasing order; values within 0.1 % share an entry.
    pub fn delivery_latencies(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        recorded(&self.delivery_histogram)
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
        write!(
            f,
            "transactions     {} ({} missed: {} host",
            self.transactions,
            self.deadline_misses,
            self.host_misses()
        )?;
        for (source, n) in &self.explained_misses {
            write!(f, ", {n} {source} stalls")?;
        }
        writeln!(f, ")")?;
        // Percentiles of nothing would print as zeros and read as a perfect run.
        if self.transaction_latency.count == 0 {
            writeln!(f, "  latency        no completed transactions")?;
        } else {
            writeln!(f, "  latency        {}", self.transaction_latency)?;
        }
        if self.delivery_latency.count == 0 {
            writeln!(f, "delivery         nothing received")?;
        } else {
            writeln!(f, "delivery         {}", self.delivery_latency)?;
        }
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
            "overflows        {} ({} bytes), stalls {}, stale bytes {}, unsettled replies {}",
            self.overflows,
            self.overflow_bytes,
            self.stalls,
            self.stale_bytes,
            self.unsettled_replies
        )?;
        if let Some(why) = &self.disconnect {
            writeln!(f, "disconnected     {why}")?;
        }
        if self.resumes > 0 {
            writeln!(
                f,
                "resumed          {} times, {:?} without the device in all",
                self.resumes, self.resume_gap
            )?;
        }
        for note in &self.transport.notes {
            writeln!(f, "note             {note}")?;
        }
        Ok(())
    }
}
