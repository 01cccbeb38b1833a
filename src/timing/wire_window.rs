//! When the bytes of a received chunk crossed the wire, estimated from its
//! arrival time, its length and the chip's packet rules.
//!
//! The chip sends a packet when its buffer is full, when the event
//! character arrives, when a modem line changes, or when the latency timer
//! `L` expires since the previous packet (docs/ftdi-protocol.md §4.2, §5).
//! With IN transfers in flight (the reader keeps them) a packet therefore
//! leaves at most `L` after the one before it, and every byte it carries
//! ended its stop bit after that previous packet left: the first byte began
//! at most `L + c` (c: one character time) before the packet was sent, and
//! the last stop bit ended no later than the send. The packet reached the
//! reader at most the transport slack after it was sent. So every bit of
//! the chunk crossed the wire in
//! `[arrived - slack - max(L + c, n·c), arrived]`:
//! that is the [`WireWindow`]. Computing it is a handful of integer
//! operations on the application side; the reader does nothing extra.

use std::time::Duration;

use crate::proto::LineProperties;
use crate::time::Timestamp;

/// How late a packet may reach the reader's timestamp after the chip sent
/// it, as [`Port::wire_clock`](crate::Port::wire_clock) assumes: one USB
/// full-speed frame (the bus schedule plus a realtime reader's wakeup fit
/// in it; widen it with [`WireClock::with_transport_slack`] if the
/// delivery tail measured on your host is longer).
pub const DEFAULT_TRANSPORT_SLACK: Duration = Duration::from_millis(1);

/// One character's time on the wire at `baud` with `line` (start bit, data,
/// parity, stop bits), rounded up to the nanosecond; `None` for 0 Bd.
pub fn character_time(baud: u32, line: LineProperties) -> Option<Duration> {
    if baud == 0 {
        return None;
    }
    let half_bits = u64::from(line.frame_half_bits());
    let ns = (half_bits * 1_000_000_000).div_ceil(2 * u64::from(baud));
    Some(Duration::from_nanos(ns))
}

/// What a port knows about the timing of its line: character time, latency
/// timer, and how late a packet may reach the reader after the chip sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireClock {
    char_time: Duration,
    latency: Duration,
    slack: Duration,
}

impl WireClock {
    /// A clock for characters of `char_time` and a latency timer of
    /// `latency`, with no transport slack (packets reach the reader the
    /// instant the chip sends them: the virtual-time case).
    pub const fn new(char_time: Duration, latency: Duration) -> WireClock {
        WireClock {
            char_time,
            latency,
            slack: Duration::ZERO,
        }
    }

    /// The clock of a line at `baud` with `line` and a latency timer of
    /// `latency_ms`; `None` for 0 Bd.
    pub fn for_line(baud: u32, line: LineProperties, latency_ms: u8) -> Option<WireClock> {
        let c = character_time(baud, line)?;
        Some(WireClock::new(
            c,
            Duration::from_millis(u64::from(latency_ms)),
        ))
    }

    /// The longest a packet can take from the chip to the reader's timestamp
    /// (USB scheduling plus the reader's wakeup); windows open that much
    /// earlier.
    #[must_use]
    pub const fn with_transport_slack(mut self, slack: Duration) -> WireClock {
        self.slack = slack;
        self
    }

    /// One character on the wire.
    pub const fn char_time(&self) -> Duration {
        self.char_time
    }

    /// The latency timer.
    pub const fn latency(&self) -> Duration {
        self.latency
    }

    /// The transport slack.
    pub const fn transport_slack(&self) -> Duration {
        self.slack
    }

    /// `n` characters back to back on the wire (saturating).
    pub fn wire_time(&self, n: usize) -> Duration {
        self.char_time
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Where the `payload_len` bytes of a packet that reached the reader at
    /// `arrived` crossed the wire.
    #[inline]
    pub fn window(&self, arrived: Timestamp, payload_len: usize) -> WireWindow {
        let reach = self
            .latency
            .saturating_add(self.char_time)
            .max(self.wire_time(payload_len))
            .saturating_add(self.slack);
        WireWindow {
            earliest: Timestamp::from_nanos(
                arrived
                    .as_nanos()
                    .saturating_sub(u64::try_from(reach.as_nanos()).unwrap_or(u64::MAX)),
            ),
            latest: arrived,
        }
    }
}

/// The interval in which every start and stop bit of a chunk's bytes
/// crossed the wire (see the module docs for the rule and its assumption:
/// IN transfers in flight, so the chip never holds data for lack of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireWindow {
    /// No bit of these bytes crossed before this.
    pub earliest: Timestamp,
    /// No bit of these bytes crossed after this.
    pub latest: Timestamp,
}

impl WireWindow {
    /// The width of the window: how uncertain the estimate is.
    pub fn uncertainty(&self) -> Duration {
        self.latest - self.earliest
    }

    /// Whether `t` lies in the window (both ends included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DataBits, Parity, StopBits};

    #[test]
    fn character_times() {
        let c = character_time(9600, LineProperties::EIGHT_N_ONE).unwrap();
        assert_eq!(c, Duration::from_nanos(1_041_667));
        let e1 = LineProperties {
            data_bits: DataBits::Eight,
            parity: Parity::Even,
            stop_bits: StopBits::One,
        };
        let c = character_time(19_200, e1).unwrap();
        assert_eq!(c, Duration::from_nanos(572_917));
        assert_eq!(character_time(0, e1), None);
    }

    #[test]
    fn window_reaches_back_one_period_and_a_character() {
        let clock = WireClock::new(Duration::from_micros(100), Duration::from_millis(1))
            .with_transport_slack(Duration::from_micros(50));
        let at = Timestamp::from_nanos(10_000_000);
        let w = clock.window(at, 3);
        assert_eq!(w.latest, at);
        assert_eq!(w.uncertainty(), Duration::from_micros(1150));
        // A long packet reaches back its own wire time.
        let w = clock.window(at, 62);
        assert_eq!(w.uncertainty(), Duration::from_micros(6250));
        // Near the start of the clock it saturates instead of wrapping.
        let w = clock.window(Timestamp::from_nanos(5), 1);
        assert_eq!(w.earliest, Timestamp::from_nanos(0));
        assert!(w.contains(Timestamp::from_nanos(3)));
    }
}
