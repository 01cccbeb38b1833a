//! Where the time of a late reply went, from the flight record and the
//! line's timing: a pure function the transaction engine calls on a miss.
//!
//! Of the time from handing the request over to the application having the
//! reply, what the host can tell apart is
//! - the wire time of request and reply (their length × one character),
//! - the chip's wait before it sent the reply's last packet: at most one
//!   latency period, at most the time since the packet before it (its last
//!   stop bit came after that one was sent), and at most the time from
//!   submission plus the wire time to the packet's arrival,
//! - USB completion to the reader's timestamp: at least the amount by which
//!   the last packet came later than the latency timer allows after the
//!   one before it (a proven lower bound: the chip sends at most one period
//!   after its previous packet, so anything beyond was the bus or the reader),
//! - reader to application: from the reader's timestamp to the take,
//! - the rest: the device's own response time, the OUT transfer, and
//!   whatever of the above the bounds could not pin down.

use std::fmt;
use std::time::Duration;

use super::recorder::PacketRecord;
use super::wire_window::WireClock;
use crate::time::Timestamp;

/// One exchange, as the transaction engine saw it.
#[derive(Clone, Copy, Debug)]
pub struct ExchangeTimes<'a> {
    /// When the request was handed to the writer.
    pub submitted: Timestamp,
    /// Request length in bytes.
    pub request_len: usize,
    /// Reply bytes received.
    pub reply_len: usize,
    /// When the application had the reply (or gave up on it).
    pub taken: Timestamp,
    /// The flight record around the miss (oldest first).
    pub record: &'a [PacketRecord],
}

/// Where the time of one exchange went (see the module docs for what each
/// part is and how sure it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissBreakdown {
    /// Submission to take.
    pub total: Duration,
    /// Request and reply on the wire.
    pub wire: Duration,
    /// The chip held the reply's last bytes at most this long (latency timer).
    pub chip_wait_max: Duration,
    /// USB completion to the reader's timestamp took at least this long.
    pub usb_to_reader_min: Duration,
    /// Reader's timestamp to the application's take.
    pub reader_to_app: Duration,
    /// The device's response, the OUT transfer, and what the bounds leave open.
    pub rest: Duration,
}

impl fmt::Display for MissBreakdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} in all: wire {:?}, chip wait ≤ {:?}, USB to reader ≥ {:?}, reader to \
             application {:?}, device and the rest {:?}",
            self.total,
            self.wire,
            self.chip_wait_max,
            self.usb_to_reader_min,
            self.reader_to_app,
            self.rest
        )
    }
}

/// The breakdown of `exchange` on a line timed by `clock`; `None` if the
/// record holds no data packet between submission and take (no reply came:
/// the device's, or the record is too short to reach back).
pub fn miss_breakdown(exchange: &ExchangeTimes<'_>, clock: &WireClock) -> Option<MissBreakdown> {
    let record = exchange.record;
    let last = record.iter().rposition(|p| {
        p.payload_len > 0 && p.arrived >= exchange.submitted && p.arrived <= exchange.taken
    })?;
    let arrived = record[last].arrived;
    let total = exchange.taken - exchange.submitted;
    let wire = clock.wire_time(exchange.request_len.saturating_add(exchange.reply_len));
    let latency = clock.latency();
    let (chip_wait_max, usb_to_reader_min) = match last.checked_sub(1).map(|i| record[i]) {
        Some(prev) if prev.seq + 1 == record[last].seq => {
            let since_prev = arrived - prev.arrived;
            (
                latency.min(since_prev.saturating_add(clock.transport_slack())),
                since_prev.saturating_sub(latency),
            )
        }
        _ => (latency, Duration::ZERO),
    };
    // The reply's last stop bit came no earlier than both frames' wire time
    // after the submission, and the chip sent its packet no later than the
    // arrival minus the proven delivery delay.
    let sent_by = (arrived - exchange.submitted).saturating_sub(usb_to_reader_min);
    let chip_wait_max = chip_wait_max.min(sent_by.saturating_sub(wire));
    let reader_to_app = exchange.taken - arrived;
    let rest = total
        .saturating_sub(wire)
        .saturating_sub(chip_wait_max)
        .saturating_sub(usb_to_reader_min)
        .saturating_sub(reader_to_app);
    Some(MissBreakdown {
        total,
        wire,
        chip_wait_max,
        usb_to_reader_min,
        reader_to_app,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64, at_us: u64, len: u16) -> PacketRecord {
        PacketRecord {
            seq,
            arrived: Timestamp::from_nanos(at_us * 1000),
            payload_len: len,
            status: None,
        }
    }

    #[test]
    fn a_late_reader_shows_as_usb_to_reader() {
        let clock = WireClock::new(Duration::from_micros(100), Duration::from_millis(1));
        // Heartbeats every ms, then the reply's packet 3.5 ms after the last.
        let record = [p(0, 1000, 0), p(1, 2000, 0), p(2, 5500, 1)];
        let b = miss_breakdown(
            &ExchangeTimes {
                submitted: Timestamp::from_nanos(1_500_000),
                request_len: 7,
                reply_len: 1,
                taken: Timestamp::from_nanos(5_700_000),
                record: &record,
            },
            &clock,
        )
        .unwrap();
        assert_eq!(b.total, Duration::from_micros(4200));
        assert_eq!(b.wire, Duration::from_micros(800));
        assert_eq!(b.chip_wait_max, Duration::from_micros(700));
        assert_eq!(b.usb_to_reader_min, Duration::from_micros(2500));
        assert_eq!(b.reader_to_app, Duration::from_micros(200));
        assert_eq!(b.rest, Duration::ZERO);
        assert!(b.to_string().contains("USB to reader ≥ 2.5ms"), "{b}");
    }

    #[test]
    fn no_reply_no_breakdown() {
        let clock = WireClock::new(Duration::from_micros(100), Duration::from_millis(1));
        let record = [p(0, 1000, 0), p(1, 2000, 0)];
        let x = ExchangeTimes {
            submitted: Timestamp::from_nanos(500_000),
            request_len: 7,
            reply_len: 0,
            taken: Timestamp::from_nanos(3_000_000),
            record: &record,
        };
        assert_eq!(miss_breakdown(&x, &clock), None);
    }
}
