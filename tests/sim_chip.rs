//! Real-time smoke tests of the threaded simulated chip (`SimChip`): that the
//! shell around the engine moves control requests, OUT bytes, IN tokens and
//! packets between the host's threads and the chip's, and measures its own
//! lateness. What the chip does and when is tested on a virtual clock in
//! `tests/sim_engine/`; nothing here asserts on the wall clock (timeouts
//! only bound how long a failure takes to show).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftdi_rt::proto::ControlRequest;
use ftdi_rt::sim::{
    Device, InPacket, Line, Loopback, ModemLines, SimChip, SimConfig, TransferError, WireByte,
};
use ftdi_rt::{Chip, FlowControl, Interface};

const T: Duration = Duration::from_secs(2);
const A: Interface = Interface::A;

fn setup(chip: &SimChip, baud: u32, latency_ms: u8) {
    let (baud_req, _) = ControlRequest::baud_rate(chip.chip(), A, baud).unwrap();
    chip.control(baud_req, &mut [], T).unwrap();
    let lat = ControlRequest::set_latency_timer(A, latency_ms).unwrap();
    chip.control(lat, &mut [], T).unwrap();
}

/// Reads packets until `until` holds for what arrived, or `limit` packets
/// arrived without it (a failure).
fn read_until(
    chip: &mut SimChip,
    limit: usize,
    mut until: impl FnMut(&[InPacket]) -> bool,
) -> Vec<InPacket> {
    let mut got = Vec::new();
    while got.len() < limit {
        let packet = chip.next_in(T).unwrap().expect("a packet within 2 s");
        got.push(packet);
        if until(&got) {
            return got;
        }
    }
    panic!("not seen in {limit} packets: {got:?}");
}

fn payload(packets: &[InPacket]) -> Vec<u8> {
    packets.iter().flat_map(|p| p.payload().to_vec()).collect()
}

#[test]
fn bytes_go_out_and_come_back_through_the_chip_thread() {
    let _serial = common::serial();
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 1);
    chip.submit_in(4);
    let idle = read_until(&mut chip, 1000, |p| p.len() >= 3);
    assert!(idle.iter().all(|p| p.bytes() == [0x01, 0x60]), "{idle:?}");
    assert_eq!(chip.bulk_out(b"hello", T), Ok(5));
    let got = read_until(&mut chip, 1000, |p| payload(p).len() >= 5);
    assert_eq!(payload(&got), b"hello");
    let counters = chip.handle().counters();
    assert_eq!((counters.bytes_from_host, counters.bytes_to_host), (5, 5));
    assert!(counters.status_only >= 3);
}

#[test]
fn control_requests_reach_the_chip_and_refusals_stall() {
    let _serial = common::serial();
    let chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    let mut lat = [0u8; 1];
    let n = chip
        .control(ControlRequest::get_latency_timer(A), &mut lat, T)
        .unwrap();
    assert_eq!((n, lat[0]), (1, 16), "16 ms at power-on");
    setup(&chip, 115_200, 3);
    let state = chip.handle().state();
    assert_eq!((state.baud, state.latency_timer_ms), (115_385, 3));

    let am = SimChip::new(Loopback::new(), SimConfig::default().with_chip(Chip::Am)).unwrap();
    let lat = ControlRequest::set_latency_timer(A, 1).unwrap();
    assert_eq!(am.control(lat, &mut [], T), Err(TransferError::Stall));
}

/// A device that records the bytes the host sent.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u8>>>);

impl Device for Recorder {
    fn on_byte(&mut self, byte: WireByte, _line: &mut Line<'_>) {
        self.0.lock().unwrap().push(byte.byte);
    }
}

#[test]
fn bulk_out_never_has_more_outstanding_than_the_chips_fifo() {
    let _serial = common::serial();
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let rec = Recorder::default();
    let chip = SimChip::new(rec.clone(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 16);
    let flow = ControlRequest::flow_control(A, FlowControl::RtsCts);
    chip.control(flow, &mut [], T).unwrap();
    // CTS low: the FIFO (128 bytes) fills and the rest is NAKed.
    let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let fifo = Chip::Ft232R.usb_to_uart_fifo();
    assert_eq!(
        chip.bulk_out(&data, Duration::from_millis(50)),
        Err(TransferError::TimedOut { transferred: fifo })
    );
    let mut status = [0u8; 2];
    chip.control(ControlRequest::poll_modem_status(A), &mut status, T)
        .unwrap();
    assert_eq!(status[1] & 0x60, 0, "the FIFO holds data");
    assert!(rec.0.lock().unwrap().is_empty(), "nothing left");
    chip.handle().set_modem_lines(ModemLines {
        cts: true,
        ..ModemLines::default()
    });
    assert_eq!(chip.bulk_out(&data[fifo..], T), Ok(200 - fifo));
    // Poll (not sleep) until the device saw all of it, or fail after 2 s.
    let deadline = ftdi_rt::Timestamp::now() + T;
    while rec.0.lock().unwrap().len() < 200 && ftdi_rt::Timestamp::now() < deadline {
        chip.control(ControlRequest::poll_modem_status(A), &mut status, T)
            .unwrap();
    }
    assert_eq!(*rec.0.lock().unwrap(), data);
}

#[test]
fn unplug_fails_pending_and_later_transfers() {
    let _serial = common::serial();
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 16);
    chip.submit_in(4);
    let handle = chip.handle();
    handle.unplug();
    let mut result = chip.next_in(T);
    while let Ok(Some(_)) = result {
        result = chip.next_in(T);
    }
    assert_eq!(result.unwrap_err(), TransferError::NoDevice);
    assert!(handle.is_unplugged());
    assert_eq!(chip.next_in(T).unwrap_err(), TransferError::NoDevice);
    assert_eq!(chip.bulk_out(b"x", T).unwrap_err(), TransferError::NoDevice);
    assert_eq!(
        chip.control(ControlRequest::reset(A), &mut [], T)
            .unwrap_err(),
        TransferError::NoDevice
    );
}

#[test]
fn the_chip_thread_records_its_own_lateness() {
    let _serial = common::serial();
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 1);
    chip.submit_in(4);
    let handle = chip.handle();
    // The histogram is published every 50 ms; each packet is one event
    // handled (and measured) by the thread. Read until it shows.
    read_until(&mut chip, 5000, |p| {
        p.len() >= 100 && handle.lateness().count >= 100
    });
}
