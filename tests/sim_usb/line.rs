//! The far side of the UART through the USB device: the frobnicator's
//! exchange, line errors, modem lines, and the wire record.

use std::time::Duration;

use ftdi_rt::sim::usb::{UrbStatus, VirtualFtdi};
use ftdi_rt::sim::{Frobnicator, Loopback, ModemLines, WireDirection};
use ftdi_rt::{Chip, Interface, LineStatus};

use crate::host::{Host, T0, payload};

const A: Interface = Interface::A;

#[test]
fn the_frobnicator_answers_a_7_byte_request_within_wire_time_and_a_latency_period() {
    let delay = Duration::from_micros(200);
    let dev = VirtualFtdi::builder(Chip::Ft232R)
        .device(A, Frobnicator::new(delay))
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    h.setup(A, 115_200, 1);
    h.run_until(T0 + Duration::from_micros(5_300));
    let request = [1u8, 2, 3, 4, 5, 6, 7];
    let sent = h.now;
    let out = h.submit_out(A, &request);
    assert_eq!(
        h.take(out).unwrap().1.status,
        UrbStatus::Completed,
        "7 bytes fit the FIFO"
    );
    let got = h.stream_in(A, 64, 2, sent + Duration::from_millis(5));
    let replies: Vec<_> = got.iter().filter(|(_, c)| c.data.len() > 2).collect();
    assert_eq!(replies.len(), 1);
    let (at, c) = replies[0];
    assert_eq!(payload(&c.data, 64), [Frobnicator::reply_for(&request)]);
    // 7 characters out, 200 µs in the device, 1 character back, then the
    // next 1 ms latency-timer tick.
    let frame = Duration::from_nanos(86_667);
    let on_chip = sent + frame * 8 + delay;
    assert!(
        *at >= on_chip && *at <= on_chip + Duration::from_millis(1),
        "reply at {at}"
    );
}

#[test]
fn line_errors_and_modem_lines_reach_the_host() {
    let dev = VirtualFtdi::builder(Chip::Ft2232H)
        .device(Interface::B, Loopback::new())
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    let b = Interface::B;
    h.setup(b, 115_200, 50);
    h.dev
        .inject_line_error(b, LineStatus(LineStatus::PE | LineStatus::FE))
        .unwrap();
    h.submit_out(b, b"z");
    let id = h.submit_in(b, 512);
    h.run_for(Duration::from_millis(60));
    let (_, c) = h.take(id).unwrap();
    assert_eq!(payload(&c.data, 512), b"z");
    assert_eq!(
        c.data[1] & (LineStatus::PE | LineStatus::FE),
        LineStatus::PE | LineStatus::FE
    );

    let id = h.submit_in(b, 512);
    h.run_for(Duration::from_millis(10));
    assert!(h.take(id).is_none(), "nothing before the 50 ms timer");
    let lines = ModemLines {
        cts: true,
        dcd: true,
        ..ModemLines::default()
    };
    let changed = h.now;
    h.set_modem_lines(b, lines);
    let (at, c) = h
        .take(id)
        .expect("a line change does not wait for the timer");
    assert_eq!((at, c.data[0]), (changed, 0x01 | 0x10 | 0x80));
    assert!(
        h.dev
            .inject_line_error(Interface::C, LineStatus(0))
            .is_err()
    );
}

#[test]
fn the_wire_record_has_both_directions_with_frame_times() {
    let dev = VirtualFtdi::builder(Chip::Ft232R)
        .device(A, Loopback::new())
        .wire_log(16)
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    h.setup(A, 9600, 16);
    let sent = h.now;
    h.submit_out(A, b"ab");
    h.run_for(Duration::from_millis(5));
    let log = h.dev.wire_log(A).unwrap();
    let events: Vec<(WireDirection, u8)> = log.iter().map(|e| (e.direction, e.byte)).collect();
    use WireDirection::{FromDevice, ToDevice};
    assert_eq!(
        events,
        [
            (ToDevice, b'a'),
            (FromDevice, b'a'),
            (ToDevice, b'b'),
            (FromDevice, b'b')
        ]
    );
    let e: Vec<_> = log.iter().collect();
    // 9600 Bd 8N1: 10 bits of 104.17 µs.
    assert_eq!(e[0].start, sent);
    assert_eq!(
        e[0].end.saturating_since(e[0].start),
        Duration::from_nanos(1_041_667)
    );
    assert_eq!(
        (e[1].start, e[1].end),
        (e[0].start, e[0].end),
        "the loopback's echo"
    );
    assert_eq!(e[2].start, e[0].end);
}
