//! The far end of the simulated serial line: a device model the user supplies.
//!
//! The chip calls the model with every byte the host sent, when that byte's
//! stop bit has left the TX pin. The model answers through [`Line`]: reply
//! bytes at the times it chooses (paced at the line's baud rate from there),
//! and the modem lines the chip sees (CTS, DSR, RI, DCD).

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Timestamp;

/// One byte the host sent, as it went over the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireByte {
    /// The byte.
    pub byte: u8,
    /// When its start bit began.
    pub start: Timestamp,
    /// When its last stop bit ended: the earliest a device can have it.
    pub end: Timestamp,
}

/// The modem inputs of the chip, driven by the device (or by jumpers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModemLines {
    /// Clear To Send.
    pub cts: bool,
    /// Data Set Ready.
    pub dsr: bool,
    /// Ring Indicator.
    pub ri: bool,
    /// Data Carrier Detect.
    pub dcd: bool,
}

/// A byte on its way from the device to the chip's RX pin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// When its start bit begins at the chip.
    pub(crate) start: Timestamp,
    /// When its stop bit ends at the chip.
    pub(crate) at: Timestamp,
    pub(crate) byte: u8,
}

/// The device's side of the line, owned by the chip engine.
#[derive(Debug)]
pub(crate) struct DeviceSide {
    /// Scheduled bytes, in arrival order.
    pub(crate) incoming: VecDeque<Arrival>,
    /// The device's TX line is busy until then.
    pub(crate) busy_until: Timestamp,
    /// One character at the chip's current baud rate and line settings.
    pub(crate) frame: Duration,
    pub(crate) modem: ModemLines,
    pub(crate) modem_changed: bool,
    pub(crate) dtr: bool,
    pub(crate) rts: bool,
}

impl DeviceSide {
    pub(crate) fn new(frame: Duration) -> DeviceSide {
        DeviceSide {
            // Room for a few seconds of replies at any realistic rate without
            // growing on the chip thread.
            incoming: VecDeque::with_capacity(16 * 1024),
            busy_until: Timestamp::default(),
            frame,
            modem: ModemLines::default(),
            modem_changed: false,
            dtr: false,
            rts: false,
        }
    }
}

/// What a device model can do in response to the host: send bytes, move
/// modem lines, and read the host's DTR/RTS.
#[derive(Debug)]
pub struct Line<'a> {
    side: &'a mut DeviceSide,
    now: Timestamp,
}

impl<'a> Line<'a> {
    pub(crate) fn new(side: &'a mut DeviceSide, now: Timestamp) -> Line<'a> {
        Line { side, now }
    }

    /// Sends `bytes` to the chip, the first starting at `start` (or when the
    /// device's TX line is free, if later), each taking one character time.
    pub fn send_at(&mut self, start: Timestamp, bytes: &[u8]) {
        let mut t = start.max(self.side.busy_until);
        for &byte in bytes {
            let start = t;
            t = t.add(self.side.frame);
            self.side.incoming.push_back(Arrival { start, at: t, byte });
        }
        self.side.busy_until = t;
    }

    /// Sends `bytes` starting now.
    pub fn send(&mut self, bytes: &[u8]) {
        self.send_at(self.now, bytes);
    }

    /// Sets the chip's modem inputs; a change makes the chip send a packet.
    pub fn set_modem_lines(&mut self, lines: ModemLines) {
        if lines != self.side.modem {
            self.side.modem = lines;
            self.side.modem_changed = true;
        }
    }

    /// The chip's modem inputs as they are.
    pub fn modem_lines(&self) -> ModemLines {
        self.side.modem
    }

    /// The host's DTR output.
    pub fn dtr(&self) -> bool {
        self.side.dtr
    }

    /// The host's RTS output.
    pub fn rts(&self) -> bool {
        self.side.rts
    }

    /// One character at the current baud rate and line settings.
    pub fn frame_time(&self) -> Duration {
        self.side.frame
    }

    /// The simulation time of the event being handled.
    pub fn now(&self) -> Timestamp {
        self.now
    }
}

/// A device model driven without a simulated chip: whatever carries the
/// bytes (a pty, a socket) hands each one that reaches the device to
/// [`receive`](DeviceEnd::receive), and takes the bytes the model sends
/// when they are due ([`next_due`](DeviceEnd::next_due),
/// [`take_due`](DeviceEnd::take_due)).
///
/// The model sees no pacing unless a frame time is given, and no modem
/// lines from the host (nothing calls `on_modem_control`).
pub struct DeviceEnd {
    device: Box<dyn Device>,
    side: DeviceSide,
}

impl std::fmt::Debug for DeviceEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceEnd")
            .field("queued", &self.side.incoming.len())
            .finish_non_exhaustive()
    }
}

impl DeviceEnd {
    /// Runs `device`, each byte it sends taking `frame` (zero: a link with
    /// no baud pacing, such as a pty).
    pub fn new<D: Device>(device: D, frame: Duration) -> DeviceEnd {
        DeviceEnd {
            device: Box::new(device),
            side: DeviceSide::new(frame),
        }
    }

    /// A byte reached the device (at `byte.end`): the model answers.
    pub fn receive(&mut self, byte: WireByte) {
        self.device
            .on_byte(byte, &mut Line::new(&mut self.side, byte.end));
    }

    /// When the next byte the model sent is due, if it sent any.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.side.incoming.front().map(|next| next.at)
    }

    /// The next byte the model sent, if it is due by `now`.
    pub fn take_due(&mut self, now: Timestamp) -> Option<u8> {
        if self.next_due()? > now {
            return None;
        }
        self.side.incoming.pop_front().map(|arrival| arrival.byte)
    }
}

/// A device model: what is wired to the simulated chip's UART.
///
/// Runs wherever the chip's engine runs (the chip's thread, or a USB
/// front end's); it should not block or allocate per byte.
/// Any `FnMut(WireByte, &mut Line)` closure is a device.
pub trait Device: Send + 'static {
    /// A byte the host sent has finished on the wire.
    fn on_byte(&mut self, byte: WireByte, line: &mut Line<'_>);

    /// The host changed DTR or RTS. Does nothing by default.
    fn on_modem_control(&mut self, dtr: bool, rts: bool, line: &mut Line<'_>) {
        let _ = (dtr, rts, line);
    }
}

impl<F> Device for F
where
    F: FnMut(WireByte, &mut Line<'_>) + Send + 'static,
{
    fn on_byte(&mut self, byte: WireByte, line: &mut Line<'_>) {
        self(byte, line)
    }
}

/// TX wired to RX: every byte comes back, arriving as it finishes on the
/// wire. Optionally with the handshake jumpers RTS→CTS and DTR→DSR.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loopback {
    jumpers: bool,
}

impl Loopback {
    /// TX to RX only.
    pub fn new() -> Loopback {
        Loopback { jumpers: false }
    }

    /// TX to RX, RTS to CTS and DTR to DSR.
    pub fn with_handshake_jumpers() -> Loopback {
        Loopback { jumpers: true }
    }
}

impl Device for Loopback {
    fn on_byte(&mut self, byte: WireByte, line: &mut Line<'_>) {
        line.send_at(byte.start, &[byte.byte]);
    }

    fn on_modem_control(&mut self, dtr: bool, rts: bool, line: &mut Line<'_>) {
        if self.jumpers {
            let lines = ModemLines {
                cts: rts,
                dsr: dtr,
                ..line.modem_lines()
            };
            line.set_modem_lines(lines);
        }
    }
}

/// The incident's device: takes fixed-size requests and answers each with
/// fixed-size reply after a processing delay.
///
/// The reply is [`Frobnicator::reply_for`] of the request, repeated to the
/// reply length, so a test can tell which request a reply belongs to.
#[derive(Clone, Debug)]
pub struct Frobnicator {
    request_len: usize,
    reply_len: usize,
    delay: Duration,
    buf: [u8; Frobnicator::MAX_REQUEST],
    filled: usize,
}

impl Frobnicator {
    /// Longest request this model accepts.
    pub const MAX_REQUEST: usize = 256;

    /// 7-byte requests, 1-byte replies, `delay` of processing after the
    /// request's last stop bit.
    pub fn new(delay: Duration) -> Frobnicator {
        Frobnicator::with_sizes(7, 1, delay)
    }

    /// Requests of `request_len` bytes (1..=256), replies of `reply_len` bytes.
    pub fn with_sizes(request_len: usize, reply_len: usize, delay: Duration) -> Frobnicator {
        Frobnicator {
            request_len: request_len.clamp(1, Self::MAX_REQUEST),
            reply_len: reply_len.max(1),
            delay,
            buf: [0; Self::MAX_REQUEST],
            filled: 0,
        }
    }

    /// The reply byte for a request: the wrapping sum of its bytes. The
    /// virtual HIL rig's responder uses the same rule.
    pub fn reply_for(request: &[u8]) -> u8 {
        request.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
    }
}

impl Device for Frobnicator {
    fn on_byte(&mut self, byte: WireByte, line: &mut Line<'_>) {
        self.buf[self.filled] = byte.byte;
        self.filled += 1;
        if self.filled == self.request_len {
            self.filled = 0;
            let reply = Frobnicator::reply_for(&self.buf[..self.request_len]);
            let at = byte.end.add(self.delay);
            for _ in 0..self.reply_len {
                line.send_at(at, &[reply]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side() -> DeviceSide {
        DeviceSide::new(Duration::from_micros(100))
    }

    #[test]
    fn bytes_are_paced_one_frame_apart_from_when_the_line_is_free() {
        let mut s = side();
        let t0 = Timestamp::from_nanos(1_000_000);
        let mut line = Line::new(&mut s, t0);
        line.send_at(t0, b"ab");
        line.send_at(t0, b"c"); // queued behind "ab"
        let at: Vec<u64> = s.incoming.iter().map(|a| a.at.as_nanos()).collect();
        assert_eq!(at, [1_100_000, 1_200_000, 1_300_000]);
        let start: Vec<u64> = s.incoming.iter().map(|a| a.start.as_nanos()).collect();
        assert_eq!(start, [1_000_000, 1_100_000, 1_200_000]);
    }

    #[test]
    fn a_device_end_hands_out_each_reply_byte_when_it_is_due() {
        let t0 = Timestamp::from_nanos(1_000_000);
        let mut end = DeviceEnd::new(Frobnicator::new(Duration::from_micros(200)), Duration::ZERO);
        assert_eq!(end.next_due(), None);
        for (i, &b) in [1u8, 2, 3, 4, 5, 6, 7].iter().enumerate() {
            let at = t0.add(Duration::from_micros(i as u64));
            end.receive(WireByte {
                byte: b,
                start: at,
                end: at,
            });
        }
        let due = t0.add(Duration::from_micros(6 + 200));
        assert_eq!(end.next_due(), Some(due));
        assert_eq!(end.take_due(t0), None, "not before it is due");
        assert_eq!(
            end.take_due(due),
            Some(Frobnicator::reply_for(&[1, 2, 3, 4, 5, 6, 7]))
        );
        assert_eq!(end.take_due(due), None);
    }

    #[test]
    fn loopback_returns_each_byte_as_it_ends_on_the_wire() {
        let mut s = side();
        let t0 = Timestamp::from_nanos(5_000_000);
        let wb = WireByte {
            byte: 0x5A,
            start: t0,
            end: t0.add(Duration::from_micros(100)),
        };
        Loopback::new().on_byte(wb, &mut Line::new(&mut s, wb.end));
        assert_eq!(s.incoming.len(), 1);
        assert_eq!(s.incoming[0].at, wb.end);
        assert_eq!(s.incoming[0].byte, 0x5A);
    }

    #[test]
    fn jumpers_mirror_rts_to_cts_and_dtr_to_dsr() {
        let mut s = side();
        let mut dev = Loopback::with_handshake_jumpers();
        dev.on_modem_control(true, false, &mut Line::new(&mut s, Timestamp::default()));
        assert_eq!(
            s.modem,
            ModemLines {
                cts: false,
                dsr: true,
                ..Default::default()
            }
        );
        assert!(s.modem_changed);
    }

    #[test]
    fn frobnicator_answers_each_request_after_its_delay() {
        let mut s = side();
        let mut dev = Frobnicator::new(Duration::from_micros(200));
        let t0 = Timestamp::from_nanos(10_000_000);
        for (i, b) in [1u8, 2, 3, 4, 5, 6, 7].into_iter().enumerate() {
            let end = t0.add(Duration::from_micros(100 * (i as u64 + 1)));
            dev.on_byte(
                WireByte {
                    byte: b,
                    start: end,
                    end,
                },
                &mut Line::new(&mut s, end),
            );
        }
        assert_eq!(s.incoming.len(), 1);
        assert_eq!(s.incoming[0].byte, 28);
        // last stop bit at t0+700µs, +200µs processing, +100µs on the wire
        assert_eq!(s.incoming[0].at, t0.add(Duration::from_micros(1000)));
        assert_eq!(Frobnicator::reply_for(&[200, 100]), 44);
    }
}
