//! Bulk OUT as a host controller sees it: an OUT URB completes when the
//! chip's TX FIFO has taken its last packet, paced by the UART.

use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::usb::{UrbStatus, VirtualFtdi};
use ftdi_rt::sim::{ModemLines, WireDirection};
use ftdi_rt::{Chip, FlowControl, Interface, Timestamp};

use crate::host::{Host, T0};

const A: Interface = Interface::A;

/// One 8N1 character at the chip's actual baud rate (FT232R: 115385 Bd for
/// 115200), in ns.
fn frame_ns(h: &Host) -> f64 {
    10e9 / f64::from(h.dev.state(A).unwrap().baud)
}

fn frames(h: &Host, from: Timestamp, to: Timestamp) -> f64 {
    to.saturating_since(from).as_nanos() as f64 / frame_ns(h)
}

#[test]
fn out_urbs_complete_paced_at_the_baud_rate() {
    let dev = VirtualFtdi::builder(Chip::Ft232R)
        .wire_log(4096)
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    h.setup(A, 115_200, 16);
    let t0 = h.now;
    let data: Vec<u8> = (0..1000).map(|i| i as u8).collect();
    let ids: Vec<u32> = (0..3).map(|_| h.submit_out(A, &data)).collect();
    h.run_for(Duration::from_millis(400));
    let at: Vec<Timestamp> = ids
        .iter()
        .map(|&id| {
            let (t, c) = h.take(id).expect("every OUT URB completes");
            assert_eq!((c.status, c.actual_length), (UrbStatus::Completed, 1000));
            t
        })
        .collect();

    // The wire: 3000 characters back to back from the first submission.
    let log = h.dev.wire_log(A).unwrap();
    let tx: Vec<_> = log
        .iter()
        .filter(|e| e.direction == WireDirection::ToDevice)
        .collect();
    assert_eq!(tx.len(), 3000);
    assert_eq!(tx[0].start, t0, "the first byte leaves at once");
    assert!(tx.windows(2).all(|w| w[1].start == w[0].end), "no gaps");
    let sent: Vec<u8> = tx.iter().map(|e| e.byte).collect();
    assert_eq!(&sent[..1000], &data[..]);
    let drained = frames(&h, t0, tx[2999].end);
    assert!(
        (drained - 3000.0).abs() < 1.0,
        "3000 bytes took {drained:.2} characters"
    );

    // The first URB completes when the FIFO (128 bytes) takes its last
    // packet (40 bytes): with 88 bytes still queued, 872 characters in.
    let first = frames(&h, t0, at[0]);
    assert!(
        (first - 871.0).abs() < 1.0,
        "first completion after {first:.2} characters"
    );
    // From then on each 1000-byte URB takes 1000 characters.
    for pair in at.windows(2) {
        let step = frames(&h, pair[0], pair[1]);
        assert!((step - 1000.0).abs() < 1.0, "{step:.2} characters per URB");
    }
}

#[test]
fn a_full_fifo_naks_the_out_urb_until_it_drains() {
    let dev = VirtualFtdi::builder(Chip::Ft232R)
        .wire_log(256)
        .build(T0)
        .unwrap();
    let mut h = Host::configured(dev);
    h.setup(A, 115_200, 16);
    h.vendor(ControlRequest::flow_control(A, FlowControl::RtsCts))
        .unwrap();
    let id = h.submit_out(A, &[0x55; 200]);
    h.run_for(Duration::from_millis(100));
    assert!(
        h.take(id).is_none(),
        "CTS low: 128 bytes fill the FIFO, the rest waits"
    );
    assert_eq!(h.dev.counters(A).unwrap().bytes_from_host, 128);
    assert!(h.dev.wire_log(A).unwrap().is_empty(), "nothing left");
    let status = h.vendor(ControlRequest::poll_modem_status(A)).unwrap();
    assert_eq!(status, [0x01, 0x00], "THRE and TEMT clear");

    let cts = h.now;
    let lines = ModemLines {
        cts: true,
        ..ModemLines::default()
    };
    h.set_modem_lines(A, lines);
    // Ten characters later the FIFO has room for ten bytes, not for a packet.
    h.run_for(Duration::from_nanos(10 * 86_667));
    assert_eq!(
        h.dev.counters(A).unwrap().bytes_from_host,
        128,
        "packets go in whole"
    );
    h.run_for(Duration::from_millis(100));
    let (t, c) = h.take(id).expect("completes once the FIFO drains");
    assert_eq!((c.status, c.actual_length), (UrbStatus::Completed, 200));
    // The third packet (64 bytes) fits once 64 characters have left, the
    // last (8 bytes) once 8 more have: the 72nd leaves 71 characters in.
    let waited = frames(&h, cts, t);
    assert!((waited - 71.0).abs() < 1.0, "{waited:.2} characters");
    let status = h.vendor(ControlRequest::poll_modem_status(A)).unwrap();
    assert_eq!(status, [0x11, 0x60], "CTS; all sent");
}
