//! A latency budget instead of knobs: from the time a request/reply may
//! take, choose the latency timer, the event character and the IN
//! transfers in flight, say what that costs, and refuse a budget below
//! what the line and the bus physically allow. A pure function: no port,
//! no clock.
//!
//! The worst case of one exchange on an FTDI chip is
//! - the wire time of request and reply (their characters back to back),
//! - the chip's flush: a reply that ends with a terminator the chip knows
//!   as its event character is sent at once (AN232B-04: not when it is the
//!   first byte in the buffer, so only for replies of two bytes or more), a
//!   reply that fills its last packet too; anything else waits for the
//!   latency timer, up to one period,
//! - the USB schedule: one frame (1 ms) on a full-speed chip, one
//!   microframe (125 µs) on a high-speed one, the bound a host controller's
//!   schedule gives.
//!
//! The floor is that sum at the shortest timer the chip allows (1 ms).

use std::time::Duration;

/// The latency timer the chips allow at most; longer periods only make the
/// heartbeat (and with it stall detection and the drained instant) coarser,
/// so the choice stops at the chip's power-on value.
const LONGEST_CHOSEN_MS: u8 = 16;
/// One USB frame (full speed) and microframe (high speed).
const FRAME_FS: Duration = Duration::from_millis(1);
const FRAME_HS: Duration = Duration::from_micros(125);

/// What one exchange looks like, for [`plan_latency`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyShape {
    /// Request length in bytes.
    pub request_len: usize,
    /// Longest reply in bytes.
    pub reply_len: usize,
    /// The byte every reply ends with, if any (a line terminator, a frame
    /// end): it becomes the chip's event character.
    pub terminator: Option<u8>,
}

impl Default for ReplyShape {
    /// The smallest exchange: nothing sent, one byte back, no terminator.
    fn default() -> Self {
        ReplyShape {
            request_len: 0,
            reply_len: 1,
            terminator: None,
        }
    }
}

/// What [`plan_latency`] chose and what it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyPlan {
    /// The latency timer (ms).
    pub latency_timer_ms: u8,
    /// The event character (the reply's terminator, when it can flush).
    pub event_char: Option<u8>,
    /// Bulk-IN transfers to keep in flight.
    pub transfers_in_flight: usize,
    /// The physical floor: wire time + chip flush at the shortest timer + USB.
    pub floor: Duration,
    /// The worst case with these choices (at most the budget).
    pub expected_worst: Duration,
    /// Status packets the chip sends per second on an idle line (one per
    /// latency period).
    pub status_packets_per_sec: u32,
    /// Times the reader thread wakes per second on an idle line (once per
    /// completed packet).
    pub reader_wakeups_per_sec: u32,
}

impl std::fmt::Display for LatencyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "latency timer {} ms, event char {}, {} transfers in flight; floor {:?}, \
             worst case {:?}; idle cost {} status packets/s, {} reader wakeups/s",
            self.latency_timer_ms,
            self.event_char
                .map_or_else(|| "off".to_string(), |c| format!("{c:#04x}")),
            self.transfers_in_flight,
            self.floor,
            self.expected_worst,
            self.status_packets_per_sec,
            self.reader_wakeups_per_sec
        )
    }
}

/// A latency budget below the physical floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "latency budget {budget:?} is below the floor of {floor:?} (wire time {wire:?} + chip \
     flush {flush:?} + USB {usb:?}); allow at least the floor, shorten the exchange, \
     raise the baud rate or end replies with a terminator"
)]
pub struct BudgetBelowFloor {
    /// The budget asked for.
    pub budget: Duration,
    /// The floor.
    pub floor: Duration,
    /// Its wire-time part.
    pub wire: Duration,
    /// Its chip-flush part.
    pub flush: Duration,
    /// Its USB part.
    pub usb: Duration,
}

/// Chooses the latency timer, event character and transfers in flight for
/// exchanges shaped like `shape` on a line of `char_time` characters, on a
/// high-speed chip or not, so that each fits `budget`.
///
/// # Errors
/// [`BudgetBelowFloor`] when even the shortest settings cannot.
pub fn plan_latency(
    budget: Duration,
    char_time: Duration,
    high_speed: bool,
    shape: &ReplyShape,
) -> Result<LatencyPlan, BudgetBelowFloor> {
    let chars = shape.request_len.saturating_add(shape.reply_len);
    let wire = char_time.saturating_mul(u32::try_from(chars).unwrap_or(u32::MAX));
    let (usb, payload) = if high_speed {
        (FRAME_HS, 510)
    } else {
        (FRAME_FS, 62)
    };
    // The event character flushes only from the second byte in the buffer.
    let event_char = shape.terminator.filter(|_| shape.reply_len >= 2);
    let fills_packets = shape.reply_len > 0 && shape.reply_len.is_multiple_of(payload);
    let timer_bound = event_char.is_none() && !fills_packets;
    let flush_at = |ms: u8| {
        if timer_bound {
            Duration::from_millis(u64::from(ms))
        } else {
            Duration::ZERO
        }
    };
    let floor = wire.saturating_add(flush_at(1)).saturating_add(usb);
    if budget < floor {
        return Err(BudgetBelowFloor {
            budget,
            floor,
            wire,
            flush: flush_at(1),
            usb,
        });
    }
    let latency_timer_ms = if timer_bound {
        let spare = budget - wire.saturating_add(usb);
        let ms = spare.as_millis().clamp(1, u128::from(LONGEST_CHOSEN_MS));
        u8::try_from(ms).unwrap_or(LONGEST_CHOSEN_MS)
    } else {
        LONGEST_CHOSEN_MS
    };
    // A transfer per packet of the longest reply plus one, so the chip never
    // waits for an IN token in the middle of a reply; at least the default 4.
    let packets = shape.reply_len.div_ceil(payload);
    let transfers_in_flight = packets.saturating_add(1).clamp(4, 32);
    let per_sec = 1000 / u32::from(latency_timer_ms);
    Ok(LatencyPlan {
        latency_timer_ms,
        event_char,
        transfers_in_flight,
        floor,
        expected_worst: wire
            .saturating_add(flush_at(latency_timer_ms))
            .saturating_add(usb),
        status_packets_per_sec: per_sec,
        reader_wakeups_per_sec: per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C115K: Duration = Duration::from_nanos(86_806);
    const MS: Duration = Duration::from_millis(1);

    fn shape(request_len: usize, reply_len: usize, terminator: Option<u8>) -> ReplyShape {
        ReplyShape {
            request_len,
            reply_len,
            terminator,
        }
    }

    #[test]
    fn the_incident_fits_at_a_1_ms_timer() {
        // 7-byte request, 1-byte reply, 3.5 ms, 115200 Bd, FT232R.
        let p = plan_latency(3500 * MS / 1000, C115K, false, &shape(7, 1, None)).unwrap();
        assert_eq!((p.latency_timer_ms, p.event_char), (1, None));
        assert_eq!(p.floor, C115K * 8 + 2 * MS);
        assert_eq!(p.expected_worst, p.floor);
        assert_eq!(
            (p.status_packets_per_sec, p.reader_wakeups_per_sec),
            (1000, 1000)
        );
        assert_eq!(p.transfers_in_flight, 4);
    }

    #[test]
    fn a_loose_budget_buys_a_longer_timer_and_fewer_wakeups() {
        let p = plan_latency(10 * MS, C115K, false, &shape(7, 1, None)).unwrap();
        assert_eq!(p.latency_timer_ms, 8);
        assert!(p.expected_worst <= 10 * MS);
        assert_eq!(p.status_packets_per_sec, 125);
        let p = plan_latency(Duration::MAX, C115K, false, &shape(7, 1, None)).unwrap();
        assert_eq!(p.latency_timer_ms, 16);
    }

    #[test]
    fn a_terminator_becomes_the_event_char_and_removes_the_timer() {
        let p = plan_latency(3 * MS, C115K, false, &shape(4, 12, Some(b'\n'))).unwrap();
        assert_eq!((p.event_char, p.latency_timer_ms), (Some(b'\n'), 16));
        assert_eq!(p.floor, C115K * 16 + MS);
        // A one-byte reply cannot flush on its own terminator.
        let p = plan_latency(3 * MS, C115K, false, &shape(4, 1, Some(b'\n'))).unwrap();
        assert_eq!(p.event_char, None);
    }

    #[test]
    fn below_the_floor_is_refused_with_the_floor() {
        let e = plan_latency(MS, C115K, false, &shape(7, 1, None)).unwrap_err();
        assert_eq!(e.floor, C115K * 8 + 2 * MS);
        assert!(e.to_string().contains("below the floor"), "{e}");
        // High speed: a microframe instead of a frame.
        let p = plan_latency(2 * MS, C115K, true, &shape(7, 1, None)).unwrap();
        assert_eq!(p.floor, C115K * 8 + MS + Duration::from_micros(125));
    }

    #[test]
    fn long_replies_get_a_transfer_per_packet() {
        let p = plan_latency(Duration::from_secs(1), C115K, false, &shape(1, 620, None)).unwrap();
        assert_eq!(p.transfers_in_flight, 11);
        // 620 = 10 full packets: sent as they fill, no timer wait.
        assert_eq!(p.floor, C115K * 621 + MS);
        // Sizes and durations at their limits saturate instead of overflowing.
        let huge = shape(usize::MAX, usize::MAX, None);
        let e = plan_latency(Duration::from_secs(1), Duration::MAX, false, &huge).unwrap_err();
        assert_eq!(e.floor, Duration::MAX);
    }
}
