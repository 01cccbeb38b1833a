//! Issue 16 wired into `Port::transact` on the simulated chip (real time:
//! the reader and the chip's thread run on the wall clock): Modbus RTU
//! replies framed by `ReplyEnd::Silence(t3.5)` at 9600 Bd, silence times the
//! latency timer cannot resolve refused, and a missed deadline's breakdown
//! and flight record in `Port::last_miss`. Only what holds whatever the
//! machine's load is asserted: framing, refusal, plumbing (timing bounds are
//! checked in virtual time, in the engine's tests and `tests/timing/`).

mod common;

use std::time::Duration;

use ftdi_rt::proto::{DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
use ftdi_rt::timing::{character_time, modbus_rtu_gaps};
use ftdi_rt::{Error, Pinning, Port, PortConfig, ReplyEnd};

const RTU: LineProperties = LineProperties {
    data_bits: DataBits::Eight,
    parity: Parity::Even,
    stop_bits: StopBits::One,
};

fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

/// A slave answering any 8-byte request with `count` bytes (the request's
/// last data byte) after 2 ms, with a one-character gap (legal, under
/// t1.5) before its CRC: a framer splitting inside gaps breaks the CRC.
fn slave() -> impl ftdi_rt::sim::Device {
    let mut request = Vec::with_capacity(8);
    move |byte: WireByte, line: &mut Line<'_>| {
        request.push(byte.byte);
        if request.len() < 8 {
            return;
        }
        let count = request[5];
        let mut body = vec![request[0], 0x03, count];
        body.extend((0..count).map(|i| i.wrapping_mul(7)));
        let crc = crc16(&body);
        let begin = byte.end + Duration::from_millis(2);
        let c = line.frame_time();
        line.send_at(begin, &body);
        line.send_at(begin + c * (body.len() as u32 + 1), &crc);
        request.clear();
    }
}

fn port(baud: u32) -> Port {
    port_with(baud, Duration::ZERO)
}

/// A port at `baud` whose silence framing allows for `jitter`.
fn port_with(baud: u32, jitter: Duration) -> Port {
    let chip = SimChip::new(slave(), SimConfig::default()).unwrap();
    let config = PortConfig::default()
        .with_baud(baud)
        .with_line(RTU)
        .with_latency_timer_ms(1)
        .with_arrival_jitter(jitter)
        .with_reader_realtime(common::realtime(80, Pinning::LastCpu));
    Port::open_sim(chip, &config).unwrap()
}

fn request(count: u8) -> Vec<u8> {
    let mut r = vec![0x11, 0x03, 0, 0, 0, count];
    r.extend(crc16(&r));
    r
}

#[test]
fn modbus_rtu_replies_are_framed_by_t3_5_of_silence_at_9600_bd() {
    let _serial = common::serial();
    let mut port = port(9600);
    let c = character_time(9600, RTU).unwrap();
    let (t35, _) = modbus_rtu_gaps(9600, c);
    for count in [1u8, 4, 20] {
        let t = port
            .transact(
                &request(count),
                ReplyEnd::Silence(t35),
                Duration::from_secs(2),
            )
            .unwrap();
        let reply = t.bytes();
        let n = reply.len();
        assert_eq!(n, 3 + usize::from(count) + 2, "one whole frame");
        assert_eq!(crc16(&reply[..n - 2]), reply[n - 2..], "not split inside");
        // The end was proven no earlier than t3.5 plus one character after
        // the frame's last data packet; the frame took 2 ms + its wire time.
        assert!(
            t.arrival() >= Duration::from_millis(2) + c * n as u32 + t35,
            "{t:?}"
        );
        assert!(t.latency() >= t.arrival());
    }
    assert_eq!(port.stats().deadline_misses, 0);
    assert!(port.last_miss().is_none());
}

#[test]
fn an_allowed_arrival_jitter_raises_the_silence_floor_at_19200_bd() {
    let _serial = common::serial();
    let c = character_time(19_200, RTU).unwrap();
    let (t35, _) = modbus_rtu_gaps(19_200, c);
    // t3.5 at 19200 Bd (2.005 ms) is just above a 1 ms timer's 2 ms floor
    // (framed in virtual time in tests/timing/silence.rs and through the
    // rig's real stack in its `silence-framing` case). Allowing 1 ms of
    // arrival jitter raises the floor to 2 × 2 ms: t3.5 is refused, naming
    // the floor, and a longer quiet time frames the reply whole.
    let mut port = port_with(19_200, Duration::from_millis(1));
    let e = port
        .transact(&request(1), ReplyEnd::Silence(t35), Duration::from_secs(2))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("at least 4ms")),
        "{e}"
    );
    assert_eq!(port.stats().transactions, 0, "nothing was sent");
    let t = port
        .transact(
            &request(4),
            ReplyEnd::Silence(Duration::from_millis(5)),
            Duration::from_secs(2),
        )
        .unwrap();
    let reply = t.bytes();
    let n = reply.len();
    assert_eq!(n, 3 + 4 + 2, "one whole frame");
    assert_eq!(crc16(&reply[..n - 2]), reply[n - 2..], "not split inside");
}

#[test]
fn a_silence_the_latency_timer_cannot_resolve_is_refused_with_the_floor() {
    let _serial = common::serial();
    let mut port = port(9600);
    let e = port
        .transact(
            &request(1),
            ReplyEnd::Silence(Duration::from_millis(1)),
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("at least 2ms")),
        "{e}"
    );
    assert_eq!(port.stats().transactions, 0, "nothing was sent");
    let e = port
        .transact(
            &request(1),
            ReplyEnd::Silence(Duration::ZERO),
            Duration::from_secs(1),
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
}

#[test]
fn a_miss_leaves_its_breakdown_and_flight_record() {
    let _serial = common::serial();
    let mut port = port(9600);
    // The reply (3 + 40 + 2 bytes, about 52 ms on the wire) cannot be
    // whole 20 ms after the request; its first bytes are there by then.
    let e = port
        .transact(
            &request(40),
            ReplyEnd::Length(45),
            Duration::from_millis(20),
        )
        .unwrap_err();
    let Error::DeadlineMissed { elapsed } = e else {
        panic!("{e}")
    };
    let miss = port.last_miss().expect("the miss is kept").clone();
    assert_eq!(miss.elapsed, elapsed);
    assert!(miss.reply_len > 0 && miss.reply_len < 45, "{miss}");
    let b = miss.breakdown.expect("a reply packet came: it breaks down");
    assert_eq!(b.total, elapsed, "{b}");
    assert!(b.wire > Duration::ZERO);
    assert!(!miss.around().is_empty());
    assert!(miss.around().iter().any(|p| p.payload_len > 0));
    assert!(miss.to_string().contains("chip wait"), "{miss}");
}
