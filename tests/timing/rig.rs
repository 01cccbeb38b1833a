//! Drives a [`ChannelEngine`] on a virtual clock as the reader does, and
//! turns its packets into the flight-recorder records the timing pieces
//! take, with a chip-to-reader delay per packet.

use std::time::Duration;

use ftdi_rt::proto::{ControlRequest, LineProperties};
use ftdi_rt::sim::{ChannelEngine, Device, SimConfig, WireDirection, WireEvent};
use ftdi_rt::timing::{PacketRecord, character_time};
use ftdi_rt::{Interface, Timestamp};

/// Where virtual time starts.
pub const T0: Timestamp = Timestamp::from_nanos(1_000_000_000);
/// IN transfers the reader keeps in flight.
const TOKENS: u32 = 4;

/// A chip on a virtual clock plus the reader's view of its packets.
pub struct Rig {
    pub e: ChannelEngine,
    /// Packets so far, as the reader recorded them.
    pub packets: Vec<PacketRecord>,
    /// Largest chip-to-reader delay given to a packet.
    pub max_delay: Duration,
    rng: u64,
}

impl Rig {
    /// A chip powered up at [`T0`] with `device` on its UART, at `baud`
    /// with `line` and a latency timer of `latency_ms`; packets reach the
    /// reader up to `max_delay` after the chip sent them.
    pub fn new(
        device: impl Device,
        baud: u32,
        line: LineProperties,
        latency_ms: u8,
        max_delay: Duration,
    ) -> Rig {
        let mut e = ChannelEngine::new(device, &SimConfig::default(), T0)
            .unwrap()
            .with_wire_log(1 << 16);
        let a = Interface::A;
        let (req, _) = ControlRequest::baud_rate(e.chip(), a, baud).unwrap();
        e.handle_control(T0, &req).unwrap();
        e.handle_control(T0, &ControlRequest::line_properties(a, line, false))
            .unwrap();
        let lat = ControlRequest::set_latency_timer(a, latency_ms).unwrap();
        e.handle_control(T0, &lat).unwrap();
        e.set_in_credits(T0, TOKENS);
        Rig {
            e,
            packets: Vec::new(),
            max_delay,
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(baud) ^ u64::from(latency_ms),
        }
    }

    /// A deterministic pseudo-random number in `0..n`.
    pub fn random(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    /// One character's time at the chip's current settings.
    pub fn char_time(&self) -> Duration {
        let s = self.e.state();
        character_time(s.baud, s.line).unwrap()
    }

    /// The latency timer.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(u64::from(self.e.state().latency_timer_ms))
    }

    /// Runs to `end` (keeping the IN transfers in flight, feeding `out` to
    /// the TX FIFO as it has room), recording each packet and handing it to
    /// `on`; stops early when `on` returns true.
    pub fn run(
        &mut self,
        out: &mut &[u8],
        end: Timestamp,
        mut on: impl FnMut(&PacketRecord) -> bool,
    ) -> bool {
        loop {
            let n = self.e.write(self.e.now(), out);
            *out = &out[n..];
            while let Some(p) = self.e.poll_packet() {
                let delay = Duration::from_nanos(
                    self.random(u64::try_from(self.max_delay.as_nanos()).unwrap() + 1),
                );
                // The reader's timestamps never go back.
                let last = self.packets.last().map_or(T0, |p| p.arrived);
                let record = PacketRecord {
                    seq: self.packets.len() as u64,
                    arrived: (p.sent_at() + delay).max(last),
                    payload_len: p.payload().len() as u16,
                    status: Some((
                        ftdi_rt::ModemStatus(p.bytes()[0]),
                        ftdi_rt::LineStatus(p.bytes()[1]),
                    )),
                };
                self.packets.push(record);
                if on(&record) {
                    return true;
                }
            }
            if self.e.in_credits() < TOKENS {
                self.e.set_in_credits(self.e.now(), TOKENS);
                continue;
            }
            match self.e.poll_timeout().filter(|&t| t <= end) {
                Some(t) => self.e.handle_timeout(t),
                None => break,
            }
        }
        self.e.handle_timeout(end);
        false
    }

    /// The wire record's events that went `direction`.
    pub fn wire(&self, direction: WireDirection) -> Vec<WireEvent> {
        self.e
            .wire_log()
            .iter()
            .filter(|w| w.direction == direction)
            .copied()
            .collect()
    }
}

/// Nothing connected: what the chip sends goes nowhere.
pub fn open_line() -> impl Device {
    |_: ftdi_rt::sim::WireByte, _: &mut ftdi_rt::sim::Line<'_>| {}
}

/// A device that, when the host's first byte has crossed, sends each
/// `(start offset, byte)` of `schedule` starting at that offset after the
/// byte's stop bit (later if the line is still busy with the byte before).
pub fn scheduled(schedule: Vec<(Duration, u8)>) -> impl Device {
    let mut fired = false;
    move |byte: ftdi_rt::sim::WireByte, line: &mut ftdi_rt::sim::Line<'_>| {
        if !fired {
            fired = true;
            for &(offset, b) in &schedule {
                line.send_at(byte.end + offset, &[b]);
            }
        }
    }
}
