//! Drives a [`ChannelEngine`] on a virtual clock, as a host with IN
//! transfers in flight would.

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::{ChannelEngine, Device, InPacket, SimConfig, WireDirection, WireEvent};
use ftdi_rt::{Interface, Timestamp};

/// Where virtual time starts.
pub const T0: Timestamp = Timestamp::from_nanos(1_000_000_000);
pub const A: Interface = Interface::A;

/// A chip powered up at [`T0`] with a wire record.
pub fn engine(device: impl Device, config: SimConfig) -> ChannelEngine {
    ChannelEngine::new(device, &config, T0)
        .unwrap()
        .with_wire_log(8192)
}

/// Baud rate and latency timer, at the engine's current time.
pub fn setup(e: &mut ChannelEngine, baud: u32, latency_ms: u8) {
    let now = e.now();
    let (baud, _) = ControlRequest::baud_rate(e.chip(), e.interface(), baud).unwrap();
    e.handle_control(now, &baud).unwrap();
    let latency = ControlRequest::set_latency_timer(e.interface(), latency_ms).unwrap();
    e.handle_control(now, &latency).unwrap();
}

/// Runs the engine to `end`, keeping `tokens` IN tokens outstanding (a sent
/// packet's token comes back the instant it is sent, as a reader that
/// resubmits at once gives it) and feeding `out` to the TX FIFO as it has
/// room; returns the packets in order.
pub fn run(e: &mut ChannelEngine, tokens: u32, out: &mut &[u8], end: Timestamp) -> Vec<InPacket> {
    let mut got = Vec::new();
    loop {
        let n = e.write(e.now(), out);
        *out = &out[n..];
        while let Some(p) = e.poll_packet() {
            got.push(p);
        }
        if e.in_credits() < tokens && !e.is_unplugged() {
            e.set_in_credits(e.now(), tokens);
            if e.in_credits() < tokens {
                continue; // it sent at once: collect, give the token back
            }
        }
        match e.poll_timeout().filter(|&t| t <= end) {
            Some(t) => e.handle_timeout(t),
            None => break,
        }
    }
    e.handle_timeout(end);
    while let Some(p) = e.poll_packet() {
        got.push(p);
    }
    got
}

/// [`run`] with nothing to write.
pub fn read(e: &mut ChannelEngine, tokens: u32, end: Timestamp) -> Vec<InPacket> {
    run(e, tokens, &mut &[][..], end)
}

/// The wire record's events that went `direction`.
pub fn wire(e: &ChannelEngine, direction: WireDirection) -> Vec<WireEvent> {
    e.wire_log()
        .iter()
        .filter(|w| w.direction == direction)
        .copied()
        .collect()
}

/// Every payload byte of `packets`, in order.
pub fn payload(packets: &[InPacket]) -> Vec<u8> {
    packets.iter().flat_map(|p| p.payload().to_vec()).collect()
}

/// Sends `n` bytes (0, 1, 2, ...) back as soon as the host sends anything.
pub fn burst(n: usize) -> impl Device {
    move |byte: ftdi_rt::sim::WireByte, line: &mut ftdi_rt::sim::Line<'_>| {
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        line.send_at(byte.end, &data);
    }
}

pub fn counting(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}
