//! When the chip sends bulk-IN packets and what they hold (AN232B-04,
//! docs/ftdi-protocol.md §4.2, §5), on a virtual clock.

use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::{Line, Loopback, ModemLines, SimConfig, WireByte, WireDirection};
use ftdi_rt::{Chip, LineStatus, Timestamp};

use crate::drive::{A, T0, burst, counting, engine, payload, read, run, setup, wire};

const MS: Duration = Duration::from_millis(1);

#[test]
fn an_idle_chip_sends_a_status_packet_every_latency_period() {
    for latency in [1u8, 4, 16] {
        let mut e = engine(Loopback::new(), SimConfig::default());
        setup(&mut e, 115_200, latency);
        let packets = read(&mut e, 4, T0 + Duration::from_secs(1));
        let period = MS * u32::from(latency);
        assert_eq!(
            packets.len(),
            1000 / usize::from(latency),
            "latency {latency} ms"
        );
        for (k, p) in packets.iter().enumerate() {
            assert_eq!(p.sent_at(), T0 + period * (k as u32 + 1));
            // Reserved bit 0 of the modem byte is 1; THRE|TEMT when idle.
            assert_eq!(p.bytes(), [0x01, 0x60]);
        }
    }
}

#[test]
fn the_power_on_latency_timer_is_16_ms() {
    let mut e = engine(Loopback::new(), SimConfig::default());
    let reply = e
        .handle_control(T0, &ControlRequest::get_latency_timer(A))
        .unwrap();
    assert_eq!(reply.bytes(), [16]);
    let packets = read(&mut e, 1, T0 + MS * 40);
    let at: Vec<Timestamp> = packets.iter().map(|p| p.sent_at()).collect();
    assert_eq!(at, [T0 + MS * 16, T0 + MS * 32]);
}

#[test]
fn in_tokens_bound_what_the_chip_sends() {
    let mut e = engine(Loopback::new(), SimConfig::default());
    setup(&mut e, 115_200, 1);
    e.set_in_credits(T0, 2);
    e.handle_timeout(T0 + MS * 10);
    let mut sent = Vec::new();
    while let Some(p) = e.poll_packet() {
        sent.push(p.sent_at());
    }
    assert_eq!(sent, [T0 + MS, T0 + MS * 2], "one packet per token");
    assert_eq!(e.in_credits(), 0);
    assert_eq!(
        e.poll_timeout(),
        None,
        "idle with a flush waiting for a token"
    );
    // The due flush goes the instant a token comes.
    e.set_in_credits(T0 + MS * 10, 1);
    assert_eq!(e.poll_packet().map(|p| p.sent_at()), Some(T0 + MS * 10));
}

#[test]
fn events_keep_their_times_when_the_driver_runs_late() {
    let run_with = |late: bool| {
        let mut e = engine(Loopback::new(), SimConfig::default());
        setup(&mut e, 115_200, 1);
        e.set_in_credits(T0, 100);
        e.write(T0, b"hello, late world");
        let end = T0 + MS * 30;
        if late {
            e.handle_timeout(end);
        } else {
            while let Some(t) = e.poll_timeout().filter(|&t| t <= end) {
                e.handle_timeout(t);
            }
        }
        let mut packets = Vec::new();
        while let Some(p) = e.poll_packet() {
            packets.push((p.sent_at(), p.bytes().to_vec()));
        }
        (packets, e.wire_log().iter().copied().collect::<Vec<_>>())
    };
    let (on_time, wire_on_time) = run_with(false);
    let (late, wire_late) = run_with(true);
    assert_eq!(on_time.len(), 30);
    assert_eq!(late, on_time, "same packets at the same ideal times");
    assert_eq!(wire_late, wire_on_time);
}

fn check_full_packets_under_load(config: SimConfig, baud: u32, bytes: usize) {
    let mut e = engine(burst(bytes), config);
    let max_payload = e.max_packet_size() - 2;
    setup(&mut e, baud, 16);
    let packets = run(&mut e, 32, &mut &b"!"[..], T0 + Duration::from_secs(1));
    assert_eq!(payload(&packets), counting(bytes), "every byte, in order");
    let sizes: Vec<usize> = packets
        .iter()
        .map(|p| p.payload().len())
        .filter(|&n| n > 0)
        .collect();
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|&n| n == max_payload), "{sizes:?}");
    assert_eq!(*last, bytes % max_payload);
    // A full packet leaves the instant its last byte's stop bit ends.
    let rx = wire(&e, WireDirection::FromDevice);
    let first_full = packets.iter().find(|p| !p.is_status_only()).unwrap();
    assert_eq!(first_full.sent_at(), rx[max_payload - 1].end);
    assert_eq!(e.counters().overrun_bytes, 0);
}

#[test]
fn a_busy_full_speed_chip_sends_62_byte_payloads() {
    check_full_packets_under_load(SimConfig::default(), 1_000_000, 62 * 40 + 17);
}

#[test]
fn a_busy_high_speed_chip_sends_510_byte_payloads() {
    let config = SimConfig::default().with_chip(Chip::Ft232H);
    check_full_packets_under_load(config, 6_000_000, 510 * 8 + 100);
}

#[test]
fn an_unread_fifo_overruns_sets_oe_once_and_keeps_the_first_bytes() {
    let mut e = engine(burst(1000), SimConfig::default());
    let fifo = Chip::Ft232R.uart_to_usb_fifo();
    setup(&mut e, 921_600, 1);
    // No IN token: the host is not reading while 1000 bytes arrive (11 ms).
    assert!(run(&mut e, 0, &mut &b"!"[..], T0 + MS * 20).is_empty());
    assert_eq!(e.counters().overrun_bytes, (1000 - fifo) as u64);
    let packets = read(&mut e, 4, T0 + MS * 40);
    assert_eq!(
        payload(&packets),
        counting(fifo),
        "the first bytes, in order"
    );
    let oe: Vec<bool> = packets
        .iter()
        .filter(|p| !p.is_status_only())
        .map(|p| p.bytes()[1] & LineStatus::OE != 0)
        .collect();
    assert!(oe[0], "OE on the first packet after the loss");
    assert_eq!(oe.iter().filter(|&&e| e).count(), 1, "and only there");
}

#[test]
fn the_event_char_flushes_at_once_but_not_as_the_first_byte() {
    let device = |byte: WireByte, line: &mut Line<'_>| {
        let reply: &[u8] = if byte.byte == b'a' { b"\nxy" } else { b"xy\n" };
        line.send_at(byte.end, reply);
    };
    let mut e = engine(device, SimConfig::default());
    setup(&mut e, 115_200, 16);
    e.handle_control(T0, &ControlRequest::event_char(A, Some(b'\n')))
        .unwrap();
    // The latency timer last ran out at T0 + 16 ms: the next expiry is at 32.
    read(&mut e, 2, T0 + MS * 16);
    let packets = run(&mut e, 2, &mut &b"b"[..], T0 + MS * 20);
    let newline = wire(&e, WireDirection::FromDevice)[2];
    assert_eq!(newline.byte, b'\n');
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].payload(), b"xy\n");
    assert_eq!(
        packets[0].sent_at(),
        newline.end,
        "flushed by the event char"
    );

    let packets = run(&mut e, 2, &mut &b"a"[..], T0 + MS * 40);
    let data: Vec<_> = packets.iter().filter(|p| !p.is_status_only()).collect();
    assert_eq!(
        data[0].payload(),
        b"\nxy",
        "a leading event char does not flush"
    );
    assert_eq!(
        data[0].sent_at(),
        newline.end + MS * 16,
        "it waits for the timer"
    );
}

#[test]
fn a_modem_line_change_sends_at_once_and_errors_mark_the_next_data_packet() {
    let mut e = engine(Loopback::new(), SimConfig::default());
    setup(&mut e, 115_200, 50);
    e.set_in_credits(T0, 1);
    let changed = T0 + MS * 7;
    let lines = ModemLines {
        cts: true,
        dcd: true,
        ..ModemLines::default()
    };
    e.set_modem_lines(changed, lines);
    let p = e
        .poll_packet()
        .expect("a line change does not wait for the timer");
    assert_eq!((p.sent_at(), p.bytes()[0]), (changed, 0x01 | 0x10 | 0x80));
    assert_eq!(e.modem_lines(), lines);

    e.inject_line_error(LineStatus(LineStatus::PE | LineStatus::FE));
    let packets = run(&mut e, 1, &mut &b"z"[..], T0 + MS * 100);
    let marked: Vec<_> = packets
        .iter()
        .filter(|p| p.bytes()[1] & LineStatus::ERROR_MASK != 0)
        .collect();
    assert_eq!(marked.len(), 1, "only the packet that carries data");
    assert_eq!(marked[0].payload(), b"z");
    assert_eq!(marked[0].bytes()[1] & 0x0C, LineStatus::PE | LineStatus::FE);
}
