//! The TX-drained instant as a sans-IO decision: which status report proves
//! that the bytes of a write have left the wire.
//!
//! Every bulk-IN packet carries the line-status byte, whose TEMT bit says
//! the transmitter is empty: nothing in the TX FIFO and nothing being
//! shifted out (docs/ftdi-protocol.md §4.1). A TEMT report proves the write
//! drained only if it describes the chip *after* it had the bytes. Two
//! rules keep older reports out:
//! - the reader processed it after the write completed (its flight-recorder
//!   sequence number is at least the one taken then), and
//! - it arrived no earlier than the bytes could possibly have finished:
//!   submission plus their wire time. A report sent before the chip had the
//!   bytes but delivered late would need a USB delay longer than the whole
//!   frame's wire time to pass both.
//!
//! Resolution: the chip reports at least once per latency period `L` while
//! an IN transfer is pending, and a packet it sends reaches the reader after
//! the transport delay `d`, so the accepted report arrives at most `L + d`
//! after the last stop bit (the virtual-time tests check this against the
//! simulated chip's wire record). FTDI's protocol refuses a latency timer
//! of 0, so `L` is at least 1 ms.

use std::time::Duration;

use super::recorder::PacketRecord;
use crate::time::Timestamp;

/// Watches the status stream for the report that a write has drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainWatch {
    earliest: Timestamp,
    from_seq: u64,
}

impl DrainWatch {
    /// A write of `bytes` bytes of `char_time` each, handed over at
    /// `submitted`; `from_seq` is the flight recorder's next sequence number
    /// taken once the write completed.
    pub fn new(submitted: Timestamp, bytes: usize, char_time: Duration, from_seq: u64) -> Self {
        let wire = char_time.saturating_mul(u32::try_from(bytes).unwrap_or(u32::MAX));
        DrainWatch {
            earliest: submitted + wire,
            from_seq,
        }
    }

    /// The earliest instant the bytes could have left the wire; no report
    /// before it is accepted.
    pub fn earliest(&self) -> Timestamp {
        self.earliest
    }

    /// The first sequence number a report may have.
    pub fn from_seq(&self) -> u64 {
        self.from_seq
    }

    /// The drained instant, if `packet` proves it: the packet's arrival.
    pub fn on_packet(&self, packet: &PacketRecord) -> Option<Timestamp> {
        (packet.seq >= self.from_seq
            && packet.arrived >= self.earliest
            && packet.transmitter_empty())
        .then_some(packet.arrived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{LineStatus, ModemStatus};

    fn packet(seq: u64, at_us: u64, line: u8) -> PacketRecord {
        PacketRecord {
            seq,
            arrived: Timestamp::from_nanos(at_us * 1000),
            payload_len: 0,
            status: Some((ModemStatus(1), LineStatus(line))),
        }
    }

    #[test]
    fn only_a_fresh_temt_report_counts() {
        let w = DrainWatch::new(
            Timestamp::from_nanos(1_000_000),
            10,
            Duration::from_micros(100),
            5,
        );
        assert_eq!(w.earliest(), Timestamp::from_nanos(2_000_000));
        // Processed before the write completed.
        assert_eq!(w.on_packet(&packet(4, 3000, 0x60)), None);
        // Too early for ten characters to have left.
        assert_eq!(w.on_packet(&packet(5, 1500, 0x60)), None);
        // Still sending.
        assert_eq!(w.on_packet(&packet(6, 2500, 0x00)), None);
        // THRE alone: the last byte is still shifting out.
        assert_eq!(w.on_packet(&packet(7, 2600, 0x20)), None);
        assert_eq!(
            w.on_packet(&packet(8, 2700, 0x60)),
            Some(Timestamp::from_nanos(2_700_000))
        );
        // No status (a tty) never counts.
        let mut tty = packet(9, 3000, 0x60);
        tty.status = None;
        assert_eq!(w.on_packet(&tty), None);
    }

    #[test]
    fn huge_writes_saturate() {
        let w = DrainWatch::new(Timestamp::from_nanos(1), usize::MAX, Duration::MAX, 0);
        assert_eq!(w.earliest(), Timestamp::from_nanos(u64::MAX));
    }
}
