//! Silence-framed replies (Modbus RTU's t3.5, LIN response windows) as a
//! sans-IO decision: the reply has ended once the line has provably been
//! quiet for a given time.
//!
//! The proof comes from packets, never from a bare timer. A packet that
//! carries data arrived after its last byte's stop bit, so the line can
//! only have gone quiet before that arrival. A later status-only packet is
//! the chip saying "nothing arrived since my previous packet" — but a byte
//! whose start bit began within one character time before it would not be
//! in it yet. So at a status-only packet arriving at `s`, after the last
//! data packet arrived at `d`, the line has been quiet for at least
//! `s - d - c - j` (c: one character time, j: the spread of the delays
//! from chip to reader's timestamp). The framer ends the reply when that
//! reaches the quiet time asked for. It never ends a reply inside a gap
//! shorter than the quiet time (the bound never exceeds the true gap).
//!
//! Resolution: while an IN transfer is pending the chip sends a packet
//! every latency period `L`, so the last data packet arrives up to `L`
//! after the last stop bit, and the proving status packet up to `L` after
//! the earliest instant it could prove the silence: the end is decided
//! between `quiet + c` and `quiet + c + 2L + 2j` after the last stop bit,
//! plus the deciding packet's own delivery delay (its arrival is the
//! decision's timestamp).
//! Two frames separated by a gap `g_out` are always split, and a frame with
//! inner gaps below `g_in` never is, by a quiet time between `g_in` and
//! `g_out - 2L - 2j`; [`gap_threshold`] picks one or says why there is none
//! (for Modbus RTU on a 1 ms latency timer: fine at 9600 Bd, impossible at
//! 19200 Bd, where 2 character times are shorter than 2 ms).

use std::time::Duration;

use crate::time::Timestamp;

/// Decides where silence-framed replies end, packet by packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilenceFramer {
    quiet: Duration,
    char_time: Duration,
    jitter: Duration,
    /// Arrival of the last packet that carried data, while a reply is open.
    last_data: Option<Timestamp>,
}

/// A reply (or frame) that silence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SilenceEnd {
    /// Arrival of its last data packet: its last stop bit was no later.
    pub last_data: Timestamp,
    /// Arrival of the status-only packet that proved the silence.
    pub decided: Timestamp,
    /// The silence that packet proved (at least the quiet time asked for).
    pub proven_quiet: Duration,
}

impl SilenceFramer {
    /// Ends a reply after `quiet` of proven silence on a line whose
    /// characters take `char_time`.
    pub const fn new(quiet: Duration, char_time: Duration) -> SilenceFramer {
        SilenceFramer {
            quiet,
            char_time,
            jitter: Duration::ZERO,
            last_data: None,
        }
    }

    /// How much the delay from the chip to the reader's timestamp can
    /// differ between two packets (0 in virtual time; the reader's wakeup
    /// jitter on a real host).
    #[must_use]
    pub const fn with_arrival_jitter(mut self, jitter: Duration) -> SilenceFramer {
        self.jitter = jitter;
        self
    }

    /// The quiet time that ends a reply.
    pub const fn quiet(&self) -> Duration {
        self.quiet
    }

    /// Whether data has arrived that no silence has ended yet.
    pub const fn in_reply(&self) -> bool {
        self.last_data.is_some()
    }

    /// The earliest arrival at which a status-only packet could end the
    /// open reply: a waiter may sleep until then, but only a packet decides.
    pub fn earliest_end(&self) -> Option<Timestamp> {
        let need = self
            .quiet
            .saturating_add(self.char_time)
            .saturating_add(self.jitter);
        self.last_data.map(|d| d + need)
    }

    /// Feeds one packet (in arrival order): `payload_len` 0 for a
    /// status-only packet. Returns the end of the open reply if this packet
    /// proves it.
    pub fn on_packet(&mut self, arrived: Timestamp, payload_len: usize) -> Option<SilenceEnd> {
        if payload_len > 0 {
            self.last_data = Some(arrived);
            return None;
        }
        let last_data = self.last_data?;
        let proven = arrived
            .saturating_since(last_data)
            .saturating_sub(self.char_time)
            .saturating_sub(self.jitter);
        if proven < self.quiet {
            return None;
        }
        self.last_data = None;
        Some(SilenceEnd {
            last_data,
            decided: arrived,
            proven_quiet: proven,
        })
    }

    /// Forgets the open reply (a new request starts).
    pub fn reset(&mut self) {
        self.last_data = None;
    }
}

/// Why no quiet time can tell frames apart on this line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "silence framing cannot split frames {frame_gap:?} apart without also splitting \
     inside gaps of {inner_gap:?}: packet timing blurs a gap by up to {blur:?} \
     (two latency periods plus twice the arrival jitter); frames need to be at least \
     {needed:?} apart, or use a shorter latency timer"
)]
pub struct SilenceInfeasible {
    /// The gap between frames to split at.
    pub frame_gap: Duration,
    /// The longest gap inside a frame.
    pub inner_gap: Duration,
    /// How much the packet timing blurs a gap.
    pub blur: Duration,
    /// The shortest frame gap that could be split.
    pub needed: Duration,
}

/// A quiet time that splits frames separated by at least `frame_gap` and
/// never splits inside a frame whose gaps are shorter than `inner_gap`, on
/// a latency timer of `latency` with `jitter` of arrival-time spread: the
/// middle of the range that works.
///
/// # Errors
/// [`SilenceInfeasible`] when the range is empty.
pub fn gap_threshold(
    frame_gap: Duration,
    inner_gap: Duration,
    latency: Duration,
    jitter: Duration,
) -> Result<Duration, SilenceInfeasible> {
    let blur = latency.saturating_add(jitter).saturating_mul(2);
    let needed = inner_gap.saturating_add(blur);
    if frame_gap < needed {
        return Err(SilenceInfeasible {
            frame_gap,
            inner_gap,
            blur,
            needed,
        });
    }
    let top = frame_gap - blur;
    Ok(inner_gap + (top - inner_gap) / 2)
}

/// Modbus RTU's inter-frame gap (t3.5) and longest inner gap (t1.5) for
/// characters of `char_time` (11 bits each: 8 data, parity or a second stop
/// bit); above 19200 Bd the specification fixes them at 1750 µs and 750 µs.
pub fn modbus_rtu_gaps(baud: u32, char_time: Duration) -> (Duration, Duration) {
    if baud > 19_200 {
        (Duration::from_micros(1750), Duration::from_micros(750))
    } else {
        (char_time * 7 / 2, char_time * 3 / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Duration = Duration::from_micros(100);

    fn at(us: u64) -> Timestamp {
        Timestamp::from_nanos(us * 1000)
    }

    #[test]
    fn ends_only_on_a_status_packet_that_proves_the_silence() {
        let mut f = SilenceFramer::new(Duration::from_micros(350), C);
        assert_eq!(f.on_packet(at(100), 0), None, "no reply open yet");
        assert_eq!(f.on_packet(at(1000), 3), None);
        assert!(f.in_reply());
        assert_eq!(f.earliest_end(), Some(at(1450)));
        // 440 µs after the data, minus one character: 340 µs, not enough.
        assert_eq!(f.on_packet(at(1440), 0), None);
        // More data restarts the count.
        assert_eq!(f.on_packet(at(1500), 1), None);
        assert_eq!(f.on_packet(at(1900), 0), None);
        let end = f.on_packet(at(1950), 0).unwrap();
        assert_eq!(
            (end.last_data, end.decided, end.proven_quiet),
            (at(1500), at(1950), Duration::from_micros(350))
        );
        assert!(!f.in_reply());
        assert_eq!(f.on_packet(at(5000), 0), None, "ended once");
    }

    #[test]
    fn jitter_is_held_against_the_proof() {
        let mut f = SilenceFramer::new(Duration::from_micros(350), C)
            .with_arrival_jitter(Duration::from_micros(50));
        f.on_packet(at(1000), 1);
        assert_eq!(f.on_packet(at(1490), 0), None);
        assert!(f.on_packet(at(1500), 0).is_some());
    }

    #[test]
    fn thresholds_for_modbus() {
        let ms = Duration::from_millis(1);
        // 9600 Bd, 11-bit characters.
        let c = Duration::from_nanos(1_145_834);
        let (t35, t15) = modbus_rtu_gaps(9600, c);
        let q = gap_threshold(t35, t15, ms, Duration::ZERO).unwrap();
        assert!(q >= t15 && q + 2 * ms <= t35, "{q:?}");
        // 19200 Bd: two characters are 1.15 ms, less than two periods.
        let c = Duration::from_nanos(572_917);
        let (t35, t15) = modbus_rtu_gaps(19_200, c);
        let e = gap_threshold(t35, t15, ms, Duration::ZERO).unwrap_err();
        assert_eq!(e.needed, t15 + 2 * ms);
        assert!(e.to_string().contains("shorter latency timer"), "{e}");
        assert_eq!(
            modbus_rtu_gaps(115_200, c),
            (Duration::from_micros(1750), Duration::from_micros(750))
        );
    }
}
