//! Unplug, requests a real chip refuses, and configurations no chip has.

use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::{ChannelEngine, Loopback, SimConfig, TransferError};
use ftdi_rt::{Chip, Interface};

use crate::drive::{A, T0, engine, read, setup};

const MS: Duration = Duration::from_millis(1);

#[test]
fn unplug_at_a_time_keeps_what_was_sent_before_and_refuses_everything_after() {
    let mut e = engine(Loopback::new(), SimConfig::default());
    setup(&mut e, 115_200, 1);
    e.unplug_at(T0 + MS * 30);
    e.unplug_at(T0 + MS * 40); // the earlier time wins
    let packets = read(&mut e, 4, T0 + MS * 100);
    // 1..=30 ms: at the unplug's own instant, what is due still goes first.
    assert_eq!(packets.len(), 30);
    assert_eq!(packets[29].sent_at(), T0 + MS * 30);
    assert!(e.is_unplugged());
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(e.write(T0 + MS * 100, b"x"), 0);
    let reset = ControlRequest::reset(A);
    assert_eq!(
        e.handle_control(T0 + MS * 100, &reset),
        Err(TransferError::NoDevice)
    );
    e.set_in_credits(T0 + MS * 100, 1);
    assert_eq!(e.in_credits(), 0);
    assert!(e.poll_packet().is_none());
}

#[test]
fn requests_a_real_chip_refuses_stall() {
    let am = SimConfig::default().with_chip(Chip::Am);
    let mut e = engine(Loopback::new(), am);
    let latency = ControlRequest::set_latency_timer(A, 1).unwrap();
    assert_eq!(
        e.handle_control(T0, &latency),
        Err(TransferError::Stall),
        "AM"
    );
    let mut e = engine(Loopback::new(), SimConfig::default());
    let bogus = ControlRequest {
        request_type: 0x40,
        request: 0x33,
        value: 0,
        index: 1,
        length: 0,
    };
    assert_eq!(e.handle_control(T0, &bogus), Err(TransferError::Stall));
    let mut zero = latency;
    zero.value = 0;
    assert_eq!(e.handle_control(T0, &zero), Err(TransferError::Stall));
    assert_eq!(
        e.state().latency_timer_ms,
        16,
        "a refused request changes nothing"
    );
}

#[test]
fn configurations_no_chip_has_are_refused() {
    let tiny = SimConfig::default().with_max_packet_size(4);
    assert!(ChannelEngine::new(Loopback::new(), &tiny, T0).is_err());
    let huge = SimConfig::default().with_max_packet_size(1024);
    assert!(ChannelEngine::new(Loopback::new(), &huge, T0).is_err());
    let no_b = SimConfig::default().with_interface(Interface::B);
    let err = ChannelEngine::new(Loopback::new(), &no_b, T0).unwrap_err();
    assert!(err.to_string().contains("no interface B"), "{err}");
    let b = SimConfig::default()
        .with_chip(Chip::Ft2232H)
        .with_interface(Interface::B);
    let e = ChannelEngine::new(Loopback::new(), &b, T0).unwrap();
    assert_eq!((e.interface(), e.max_packet_size()), (Interface::B, 512));
}

#[test]
fn a_device_sending_in_the_past_cannot_turn_the_clock_back() {
    // It answers "x\n" to each byte, claiming to have sent it at time 0.
    let device = |_: ftdi_rt::sim::WireByte, line: &mut ftdi_rt::sim::Line<'_>| {
        line.send_at(ftdi_rt::Timestamp::from_nanos(0), b"x\n");
    };
    let mut e = engine(device, SimConfig::default());
    setup(&mut e, 115_200, 16);
    let newline = ControlRequest::event_char(A, Some(b'\n'));
    e.handle_control(T0, &newline).unwrap();
    let packets = crate::drive::run(&mut e, 1, &mut &b"a"[..], T0 + MS * 5);
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].payload(), b"x\n");
    // The reply reaches the chip when the device gives it, as "a" ends.
    let sent = crate::drive::wire(&e, ftdi_rt::sim::WireDirection::ToDevice)[0];
    assert_eq!(packets[0].sent_at(), sent.end);
}
