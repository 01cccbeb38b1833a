//! The simulated chip's packet stream, checked at the USB level against the
//! rules real FTDI silicon follows (ftdi-protocol.md §4.2, §5).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftdi_rt::proto::{ControlRequest, DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::{
    Device, InPacket, Line, Loopback, ModemLines, SimChip, SimConfig, TransferError, WireByte,
};
use ftdi_rt::{Chip, FlowControl, Interface, LineStatus, Timestamp};

const T: Duration = Duration::from_secs(2);
const A: Interface = Interface::A;

fn setup(chip: &SimChip, baud: u32, latency_ms: u8) {
    let (baud_req, _) = ControlRequest::baud_rate(chip.chip(), A, baud).unwrap();
    chip.control(baud_req, &mut [], T).unwrap();
    let lat = ControlRequest::set_latency_timer(A, latency_ms).unwrap();
    chip.control(lat, &mut [], T).unwrap();
}

/// Reads packets until `until` says stop or `timeout` passes without one.
fn collect(
    chip: &mut SimChip,
    timeout: Duration,
    mut until: impl FnMut(&[InPacket]) -> bool,
) -> Vec<(InPacket, Timestamp)> {
    let mut out: Vec<(InPacket, Timestamp)> = Vec::new();
    loop {
        match chip.next_in(timeout).unwrap() {
            Some(p) => {
                out.push((p, Timestamp::now()));
                let packets: Vec<InPacket> = out.iter().map(|(p, _)| *p).collect();
                if until(&packets) {
                    return out;
                }
            }
            None => return out,
        }
    }
}

fn payload(p: &InPacket) -> &[u8] {
    &p.bytes()[2..]
}

#[test]
fn idle_chip_sends_status_only_packets_every_latency_period() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    for latency_ms in [1u8, 4] {
        let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
        setup(&chip, 115_200, latency_ms);
        chip.submit_in(4);
        // Let the first packets settle, then time one second.
        collect(&mut chip, T, |p| p.len() >= 3);
        let start = Timestamp::now();
        let packets = collect(&mut chip, T, |_| start.elapsed() >= Duration::from_secs(1));
        let n = packets.len();
        let span = packets[n - 1].1.saturating_since(packets[0].1);
        let period = span.as_secs_f64() / (n - 1) as f64;
        let want = f64::from(latency_ms) / 1000.0;
        assert!(
            (period - want).abs() <= want * 0.10,
            "latency {latency_ms} ms: mean period {:.3} ms over {n} packets",
            period * 1e3
        );
        for (p, _) in &packets {
            // Reserved bit 0 of the modem byte is 1; THRE|TEMT when idle.
            assert_eq!(p.bytes(), [0x01, 0x60], "idle packets are status-only");
        }
    }
}

#[test]
fn the_power_on_latency_timer_is_16_ms() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    let mut lat = [0u8; 1];
    let n = chip
        .control(ControlRequest::get_latency_timer(A), &mut lat, T)
        .unwrap();
    assert_eq!((n, lat[0]), (1, 16));
    assert_eq!(chip.handle().state().latency_timer_ms, 16);
}

fn check_full_packets_under_load(config: SimConfig, baud: u32, bytes: usize) {
    // The device streams a burst as fast as the baud rate allows while the
    // host keeps IN transfers in flight (the chip never has to hold data).
    // This test is about packet sizes, not host scheduling: read from a
    // realtime thread with plenty of transfers in flight so the host keeps up
    // even while parallel tests load the CPUs.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(burst_device(bytes), config).unwrap();
    let mps = chip.max_packet_size();
    setup(&chip, baud, 16);
    chip.submit_in(32);
    chip.bulk_out(b"!", T).unwrap();
    let deadline = Timestamp::now().add(Duration::from_secs(20));
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while got.len() < bytes {
        assert!(
            Timestamp::now() < deadline,
            "only {} of {bytes} bytes arrived; chip: {:?}",
            got.len(),
            chip.handle().counters()
        );
        let Some(p) = chip.next_in(T).unwrap() else {
            continue;
        };
        assert!(
            p.bytes().len() <= mps,
            "packet of {} bytes on a {mps}-byte endpoint",
            p.bytes().len()
        );
        if !payload(&p).is_empty() {
            sizes.push(payload(&p).len());
            got.extend_from_slice(payload(&p));
        }
    }
    let want: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    assert_eq!(got, want, "every byte, in order");
    let (last, full) = sizes.split_last().unwrap();
    assert!(
        full.iter().all(|&s| s == mps - 2),
        "payload sizes under load: {sizes:?}"
    );
    assert!(*last <= mps - 2);
    assert_eq!(chip.handle().counters().overrun_bytes, 0);
}

#[test]
fn a_busy_full_speed_chip_sends_62_byte_payloads() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    // 62 bytes take 0.6 ms at 1 MBd: the FIFO fills long before the 16 ms timer.
    check_full_packets_under_load(SimConfig::default(), 1_000_000, 62 * 40 + 17);
}

#[test]
fn a_busy_high_speed_chip_sends_510_byte_payloads() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let config = SimConfig::default().with_chip(Chip::Ft232H);
    check_full_packets_under_load(config, 6_000_000, 510 * 8 + 100);
}

/// A device that records when each host byte finished on the wire.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(WireByte, Timestamp)>>>);

impl Device for Recorder {
    fn on_byte(&mut self, byte: WireByte, _line: &mut Line<'_>) {
        self.0.lock().unwrap().push((byte, Timestamp::now()));
    }
}

#[test]
fn bulk_out_is_paced_at_the_baud_rate() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    for (line, bits) in [
        (LineProperties::EIGHT_N_ONE, 10.0),
        (
            LineProperties {
                data_bits: DataBits::Eight,
                parity: Parity::Even,
                stop_bits: StopBits::Two,
            },
            12.0,
        ),
    ] {
        let rec = Recorder::default();
        let chip = SimChip::new(rec.clone(), SimConfig::default()).unwrap();
        setup(&chip, 115_200, 1);
        chip.control(ControlRequest::line_properties(A, line, false), &mut [], T)
            .unwrap();
        let n = 600;
        let start = Timestamp::now();
        chip.bulk_out(&vec![0x55; n], Duration::from_secs(5))
            .unwrap();
        while rec.0.lock().unwrap().len() < n {
            std::thread::sleep(Duration::from_millis(5));
        }
        let log = rec.0.lock().unwrap();
        let want = n as f64 * bits / 115_385.0;
        let wire = log[n - 1]
            .0
            .end
            .saturating_since(log[0].0.start)
            .as_secs_f64();
        let real = log[n - 1].1.saturating_since(start).as_secs_f64();
        assert!(
            (wire - want).abs() <= want * 0.10,
            "{line}: wire time {wire:.4} s, want {want:.4} s"
        );
        assert!(
            (real - want).abs() <= want * 0.10,
            "{line}: real time {real:.4} s, want {want:.4} s"
        );
    }
}

/// Sends `burst` bytes (0, 1, 2, ...) to the host as soon as the host sends anything.
fn burst_device(burst: usize) -> impl Device {
    move |byte: WireByte, line: &mut Line<'_>| {
        let data: Vec<u8> = (0..burst).map(|i| i as u8).collect();
        line.send_at(byte.end, &data);
    }
}

#[test]
fn an_unread_fifo_overruns_sets_oe_and_loses_bytes_as_the_chip_would() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(burst_device(1000), SimConfig::default()).unwrap();
    let fifo = Chip::Ft232R.uart_to_usb_fifo();
    setup(&chip, 921_600, 1);
    // No IN transfer in flight: the host is not reading.
    chip.bulk_out(b"!", T).unwrap();
    std::thread::sleep(Duration::from_millis(60)); // 1000 bytes at 921600 Bd take 11 ms
    chip.submit_in(4);
    let packets = collect(&mut chip, T, |p| {
        p.last().is_some_and(|p| p.bytes().len() == 2)
    });
    let data: Vec<u8> = packets
        .iter()
        .flat_map(|(p, _)| payload(p).to_vec())
        .collect();
    assert_eq!(data.len(), fifo, "only the FIFO's worth survives");
    assert_eq!(
        data,
        (0..fifo).map(|i| i as u8).collect::<Vec<_>>(),
        "the first bytes, in order"
    );
    let first_data = packets
        .iter()
        .find(|(p, _)| !payload(p).is_empty())
        .unwrap();
    assert_ne!(
        first_data.0.bytes()[1] & LineStatus::OE,
        0,
        "OE on the packet after the loss"
    );
    let later_oe = packets
        .iter()
        .filter(|(p, _)| p.bytes()[1] & LineStatus::OE != 0)
        .count();
    assert_eq!(later_oe, 1, "OE is reported once");
    assert_eq!(chip.handle().counters().overrun_bytes, (1000 - fifo) as u64);
}

#[test]
fn unplug_fails_pending_and_later_transfers() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 16);
    chip.submit_in(4);
    let handle = chip.handle();
    let t0 = Timestamp::now();
    handle.unplug_at(t0.add(Duration::from_millis(30)));
    // Pending IN transfers fail when the device goes (before any 16 ms heartbeat, at most one).
    let mut result = chip.next_in(T);
    while let Ok(Some(_)) = result {
        result = chip.next_in(T);
    }
    assert_eq!(result.unwrap_err(), TransferError::NoDevice);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "the failure is prompt"
    );
    assert!(handle.is_unplugged());
    assert_eq!(
        chip.next_in(T).unwrap_err(),
        TransferError::NoDevice,
        "later IN transfers fail"
    );
    assert_eq!(chip.bulk_out(b"x", T).unwrap_err(), TransferError::NoDevice);
    assert_eq!(
        chip.control(ControlRequest::reset(A), &mut [], T)
            .unwrap_err(),
        TransferError::NoDevice
    );
}

#[test]
fn requests_a_real_chip_refuses_stall() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let chip = SimChip::new(Loopback::new(), SimConfig::default().with_chip(Chip::Am)).unwrap();
    let lat = ControlRequest::set_latency_timer(A, 1).unwrap();
    assert_eq!(
        chip.control(lat, &mut [], T).unwrap_err(),
        TransferError::Stall
    );
    let bogus = ControlRequest {
        request_type: 0x40,
        request: 0x33,
        value: 0,
        index: 1,
        length: 0,
    };
    assert_eq!(
        chip.control(bogus, &mut [], T).unwrap_err(),
        TransferError::Stall
    );
}

#[test]
fn event_char_flushes_early_but_not_as_the_first_byte() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    // 16 ms latency: without the event char the reply would wait ~16 ms.
    let device = |byte: WireByte, line: &mut Line<'_>| {
        if byte.byte == b'a' {
            line.send_at(byte.end, b"\nxy");
        } else {
            line.send_at(byte.end, b"xy\n");
        }
    };
    let mut chip = SimChip::new(device, SimConfig::default()).unwrap();
    setup(&chip, 115_200, 16);
    chip.control(ControlRequest::event_char(A, Some(b'\n')), &mut [], T)
        .unwrap();
    chip.submit_in(2);
    collect(&mut chip, T, |p| p.len() >= 3); // past the first heartbeats
    for (trigger, early) in [(b'b', true), (b'a', false)] {
        let sent = Timestamp::now();
        chip.bulk_out(&[trigger], T).unwrap();
        let packets = collect(&mut chip, T, |p| p.iter().any(|p| !payload(p).is_empty()));
        let (p, at) = packets.last().unwrap();
        let waited = at.saturating_since(sent);
        if early {
            assert_eq!(payload(p), b"xy\n", "flushed at the event char");
            assert!(
                waited < Duration::from_millis(8),
                "event char flush took {waited:?}"
            );
        } else {
            assert_eq!(
                payload(p),
                b"\nxy",
                "an event char in first position does not flush"
            );
            assert!(
                waited >= Duration::from_millis(8),
                "flushed after only {waited:?}"
            );
        }
    }
}

#[test]
fn modem_line_changes_send_a_packet_and_line_errors_are_reported() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 50);
    chip.submit_in(2);
    collect(&mut chip, T, |p| p.len() >= 2);
    let handle = chip.handle();
    let sent = Timestamp::now();
    handle.set_modem_lines(ModemLines {
        cts: true,
        dcd: true,
        ..Default::default()
    });
    let p = chip.next_in(T).unwrap().unwrap();
    assert!(
        sent.elapsed() < Duration::from_millis(25),
        "a line change does not wait for the timer"
    );
    assert_eq!(p.bytes()[0], 0x01 | 0x10 | 0x80);
    handle.inject_line_error(LineStatus(LineStatus::PE | LineStatus::FE));
    chip.bulk_out(b"z", T).unwrap();
    let packets = collect(&mut chip, T, |p| p.iter().any(|p| !payload(p).is_empty()));
    let data = &packets.last().unwrap().0;
    assert_eq!(payload(data), b"z");
    assert_eq!(
        data.bytes()[1] & (LineStatus::PE | LineStatus::FE),
        LineStatus::PE | LineStatus::FE
    );
}

#[test]
fn rts_cts_flow_control_holds_the_transmitter() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let rec = Recorder::default();
    let chip = SimChip::new(rec.clone(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 1);
    chip.control(
        ControlRequest::flow_control(A, FlowControl::RtsCts),
        &mut [],
        T,
    )
    .unwrap();
    chip.bulk_out(b"held", T).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(rec.0.lock().unwrap().is_empty(), "CTS low: nothing leaves");
    let mut status = [0u8; 2];
    chip.control(ControlRequest::poll_modem_status(A), &mut status, T)
        .unwrap();
    assert_eq!(
        status[1] & LineStatus::THRE,
        0,
        "the FIFO holds data: THRE clear"
    );
    chip.handle().set_modem_lines(ModemLines {
        cts: true,
        ..Default::default()
    });
    let deadline = Timestamp::now().add(Duration::from_secs(2));
    while rec.0.lock().unwrap().len() < 4 && Timestamp::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent: Vec<u8> = rec.0.lock().unwrap().iter().map(|(b, _)| b.byte).collect();
    assert_eq!(sent, b"held");
    chip.control(ControlRequest::poll_modem_status(A), &mut status, T)
        .unwrap();
    assert_eq!(status[1] & 0x60, 0x60, "all sent: THRE and TEMT");
}

#[test]
fn the_chip_records_its_own_lateness() {
    let _serial = common::serial();
    // Realtime like the chip: a test thread preempted while holding a
    // recorder's lock would stall the chip thread behind it.
    common::app_realtime(ftdi_rt::Pinning::Unpinned);
    let mut chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    setup(&chip, 115_200, 1);
    chip.submit_in(4);
    collect(&mut chip, T, |p| p.len() >= 200);
    std::thread::sleep(Duration::from_millis(60));
    let lateness = chip.handle().lateness();
    assert!(lateness.len() >= 100, "{} lateness samples", lateness.len());
}
