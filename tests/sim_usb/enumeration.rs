//! Enumeration, the standard requests, and FTDI vendor requests routed to
//! the channel wIndex names.

use std::time::Duration;

use ftdi_rt::proto::{ControlRequest, LineProperties};
use ftdi_rt::sim::Loopback;
use ftdi_rt::sim::usb::{UrbStatus, VirtualFtdi};
use ftdi_rt::{Chip, FlowControl, Interface};

use crate::host::{Host, T0, payload};

const A: Interface = Interface::A;

#[test]
fn linux_enumeration_and_ftdi_sio_probe_and_open() {
    let mut h = Host::new(VirtualFtdi::builder(Chip::Ft232R).build(T0).unwrap());
    // usbcore: first look, address, descriptors, strings, configuration.
    assert_eq!(h.descriptor(1, 0, 64).unwrap().len(), 18);
    h.standard_out(0x00, 5, 7, 0).unwrap();
    assert_eq!(h.dev.address(), 7);
    assert_eq!(h.descriptor(1, 0, 18).unwrap().len(), 18);
    let total = u16::from_le_bytes(h.descriptor(2, 0, 9).unwrap()[2..4].try_into().unwrap());
    assert_eq!(h.descriptor(2, 0, total).unwrap().len(), usize::from(total));
    for index in 0..=3 {
        h.descriptor(3, index, 255).unwrap();
    }
    assert_eq!(h.standard_in(0x80, 8, 0, 0, 1).unwrap(), [0]);
    h.standard_out(0x00, 9, 1, 0).unwrap();
    assert_eq!(h.standard_in(0x80, 8, 0, 0, 1).unwrap(), [1]);

    // ftdi_sio's port probe: latency timer read and written back (wIndex 0
    // on an FT232R), then the CBUS configuration from the EEPROM, which
    // STALLs (no EEPROM: ftdi_sio logs "GPIO initialisation failed: -32").
    let get_latency = |index| ControlRequest {
        index,
        ..ControlRequest::get_latency_timer(A)
    };
    assert_eq!(h.vendor(get_latency(0)).unwrap(), [16]);
    let mut set16 = ControlRequest::set_latency_timer(A, 16).unwrap();
    set16.index = 0;
    h.vendor(set16).unwrap();
    let read_eeprom = ControlRequest {
        request_type: 0xC0,
        request: 0x90,
        value: 0,
        index: 0x14 / 2,
        length: 2,
    };
    assert_eq!(h.vendor(read_eeprom), Err(UrbStatus::Stall));

    // ftdi_open: reset, termios (data, baud, flow), then DTR and RTS.
    let chip = Chip::Ft232R;
    h.vendor(ControlRequest::reset(A)).unwrap();
    h.vendor(ControlRequest::line_properties(
        A,
        LineProperties::EIGHT_N_ONE,
        false,
    ))
    .unwrap();
    h.vendor(ControlRequest::baud_rate(chip, A, 115_200).unwrap().0)
        .unwrap();
    h.vendor(ControlRequest::flow_control(A, FlowControl::RtsCts))
        .unwrap();
    h.vendor(ControlRequest::modem_control(A, Some(true), Some(true)))
        .unwrap();
    let state = h.dev.state(A).unwrap();
    assert_eq!(
        (state.baud, state.flow, state.dtr),
        (115_385, FlowControl::RtsCts, true)
    );
    assert!(!state.rts, "RTS is the chip's own under RTS/CTS");
    assert_eq!(state.resets, 1);
    // GET_MODEM_STATUS, also with the kernel's longer or the SIO's shorter wLength.
    let mut status = ControlRequest::poll_modem_status(A);
    assert_eq!(h.vendor(status).unwrap(), [0x01, 0x60]);
    status.length = 64;
    assert_eq!(h.vendor(status).unwrap(), [0x01, 0x60]);
    status.length = 1;
    assert_eq!(h.vendor(status).unwrap(), [0x01]);
}

#[test]
fn standard_requests_follow_chapter_9() {
    let mut h = Host::new(VirtualFtdi::builder(Chip::Ft232R).build(T0).unwrap());
    // Address state: interface and bulk-endpoint requests are errors, bulk URBs STALL.
    assert_eq!(h.standard_in(0x81, 0, 0, 0, 2), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x82, 0, 0, 0x81, 2), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x82, 0, 0, 0x00, 2).unwrap(), [0, 0]);
    let id = h.submit_in(A, 64);
    assert_eq!(h.take(id).unwrap().1.status, UrbStatus::Stall);
    h.standard_out(0x00, 9, 1, 0).unwrap();

    // Device status and remote wakeup (the FT232R offers it).
    assert_eq!(h.standard_in(0x80, 0, 0, 0, 2).unwrap(), [0, 0]);
    h.standard_out(0x00, 3, 1, 0).unwrap();
    assert_eq!(h.standard_in(0x80, 0, 0, 0, 2).unwrap(), [2, 0]);
    h.standard_out(0x00, 1, 1, 0).unwrap();
    assert_eq!(h.standard_in(0x80, 0, 0, 0, 2).unwrap(), [0, 0]);
    assert_eq!(
        h.standard_out(0x00, 3, 2, 0),
        Err(UrbStatus::Stall),
        "TEST_MODE"
    );

    // Interfaces and endpoints that exist, and ones that do not.
    assert_eq!(h.standard_in(0x81, 0, 0, 0, 2).unwrap(), [0, 0]);
    assert_eq!(h.standard_in(0x81, 0, 0, 1, 2), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x82, 0, 0, 0x81, 2).unwrap(), [0, 0]);
    assert_eq!(h.standard_in(0x82, 0, 0, 0x02, 2).unwrap(), [0, 0]);
    assert_eq!(h.standard_in(0x82, 0, 0, 0x83, 2), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x82, 0, 0, 0x01, 2), Err(UrbStatus::Stall));
    h.standard_out(0x02, 1, 0, 0x81).unwrap(); // CLEAR_FEATURE(ENDPOINT_HALT)
    assert_eq!(h.standard_out(0x02, 3, 0, 0x81), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x81, 10, 0, 0, 1).unwrap(), [0]);
    h.standard_out(0x01, 11, 0, 0).unwrap();
    assert_eq!(h.standard_out(0x01, 11, 1, 0), Err(UrbStatus::Stall));
    assert_eq!(h.standard_out(0x00, 9, 2, 0), Err(UrbStatus::Stall));
    assert_eq!(
        h.standard_in(0xA1, 1, 0, 0, 7),
        Err(UrbStatus::Stall),
        "class"
    );
    assert_eq!(h.standard_out(0x00, 7, 0x0100, 0), Err(UrbStatus::Stall));

    // The H chips are not remote-wakeup capable.
    let mut h = Host::configured(VirtualFtdi::builder(Chip::Ft2232H).build(T0).unwrap());
    assert_eq!(h.standard_out(0x00, 3, 1, 0), Err(UrbStatus::Stall));
    assert_eq!(h.standard_in(0x81, 0, 0, 1, 2).unwrap(), [0, 0]);
    assert_eq!(h.standard_in(0x82, 0, 0, 0x83, 2).unwrap(), [0, 0]);
    assert_eq!(h.standard_in(0x82, 0, 0, 0x85, 2), Err(UrbStatus::Stall));
}

#[test]
fn vendor_requests_reach_the_channel_windex_names() {
    let dev = VirtualFtdi::builder(Chip::Ft4232H).build(T0).unwrap();
    let mut h = Host::configured(dev);
    let chip = Chip::Ft4232H;
    for (i, &interface) in Interface::ALL.iter().enumerate() {
        let latency = 3 * (i as u8 + 1);
        let baud = [9600, 57_600, 115_200, 1_000_000][i];
        h.setup(interface, baud, latency);
    }
    for (i, &interface) in Interface::ALL.iter().enumerate() {
        let state = h.dev.state(interface).unwrap();
        assert_eq!(state.latency_timer_ms, 3 * (i as u8 + 1), "{interface}");
        let want =
            ControlRequest::baud_rate(chip, interface, [9600, 57_600, 115_200, 1_000_000][i]);
        assert_eq!(state.baud, want.unwrap().1.actual, "{interface}");
        let got = h
            .vendor(ControlRequest::get_latency_timer(interface))
            .unwrap();
        assert_eq!(got, [3 * (i as u8 + 1)]);
    }
    // Port 0 is A; port 5 does not exist.
    let mut port0 = ControlRequest::get_latency_timer(A);
    port0.index = 0;
    assert_eq!(h.vendor(port0).unwrap(), [3]);
    let mut port5 = port0;
    port5.index = 5;
    assert_eq!(h.vendor(port5), Err(UrbStatus::Stall));
    // The EEPROM is not a channel's: its wIndex is a word address.
    let eeprom = ControlRequest {
        request_type: 0xC0,
        request: 0x90,
        value: 0,
        index: 1,
        length: 2,
    };
    assert_eq!(h.vendor(eeprom), Err(UrbStatus::Stall));
    // Resetting C touches nothing else.
    h.vendor(ControlRequest::reset(Interface::C)).unwrap();
    let resets: Vec<u32> = Interface::ALL
        .iter()
        .map(|&i| h.dev.state(i).unwrap().resets)
        .collect();
    assert_eq!(resets, [0, 0, 1, 0]);
}

#[test]
fn an_ft232r_takes_port_0_or_1_and_refuses_others() {
    let mut h = Host::ft232r();
    let mut r = ControlRequest::set_latency_timer(A, 5).unwrap();
    for (port, ok) in [(0, true), (1, true), (2, false), (4, false)] {
        r.index = port;
        assert_eq!(h.vendor(r).is_ok(), ok, "port {port}");
    }
    assert!(h.dev.state(Interface::B).is_err());
}

#[test]
fn channels_are_independent_on_the_bus() {
    let dev = VirtualFtdi::builder(Chip::Ft4232H)
        .device(Interface::B, Loopback::new())
        .device(Interface::D, Loopback::new())
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    h.setup(A, 115_200, 1);
    h.setup(Interface::B, 3_000_000, 16);
    h.setup(Interface::D, 115_200, 1);
    // Write to B only, read A and B.
    h.submit_out(Interface::B, b"only on B");
    let end = h.now + Duration::from_millis(100);
    let mut a = h.stream_in(A, 512, 1, end);
    let b_id = h.submit_in(Interface::B, 512);
    let (_, b) = h.take(b_id).expect("B's echo waited in its FIFO");
    assert_eq!(payload(&b.data, 512), b"only on B");
    assert!(
        a.iter().all(|(_, c)| c.data == [0x01, 0x60]),
        "A only heard silence"
    );
    // A at 1 ms sent 100 heartbeats in 100 ms; B at 16 ms sent none (no IN pending).
    a.retain(|(t, _)| *t > T0);
    assert_eq!(a.len(), 100);
    let counters = |i| h.dev.counters(i).unwrap();
    assert_eq!(counters(Interface::B).bytes_from_host, 9);
    assert_eq!(counters(Interface::D).bytes_from_host, 0);
    assert_eq!(counters(Interface::C).packets, 0);
}

#[test]
fn the_device_can_move_to_the_front_ends_thread() {
    fn send<T: Send>(_: &T) {}
    let dev = VirtualFtdi::builder(Chip::Ft4232H)
        .device(Interface::C, Loopback::with_handshake_jumpers())
        .build(T0)
        .unwrap();
    send(&dev);
    let h = std::thread::spawn(move || Host::configured(dev).dev.configuration());
    assert_eq!(h.join().unwrap(), 1);
}
