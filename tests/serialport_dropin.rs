//! The drop-in for serialport users: `ftdi_rt::new(..)` and
//! `serialport::SerialPort` on a port, on the simulated chip (with the
//! handshake jumpers, so modem lines are observable) and on a pty; and the
//! owned halves of `Port::into_split`.
//!
//! Nothing here asserts on the wall clock: timeouts only bound how long a
//! failure takes to show.

mod common;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use ftdi_rt::serialport::{self as sp, ClearBuffer, SerialPort};
use ftdi_rt::sim::{Frobnicator, Loopback, SimChip, SimConfig};
use ftdi_rt::{OwnedReceiver, OwnedWriter, Port};
use ftdi_rt_lab::PtyDevice;

/// Bounds a wait for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(5);

/// The chip runs at the nearest rate its divisor gives (within 3 %).
fn assert_baud_near(actual: u32, asked: u32) {
    assert!(
        actual.abs_diff(asked) * 100 <= asked * 3,
        "{actual} Bd is not within 3 % of {asked} Bd"
    );
}

fn sim_port(timeout: Duration) -> Port {
    let chip = SimChip::new(Loopback::with_handshake_jumpers(), SimConfig::default()).unwrap();
    ftdi_rt::new("sim", 115_200)
        .timeout(timeout)
        .best_effort()
        .open_sim(chip)
        .unwrap()
}

/// Reads exactly `n` bytes (the read timeout bounds each read).
fn read_n(port: &mut dyn Read, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    port.read_exact(&mut got).unwrap();
    got
}

/// Waits until `bytes_to_read` says `n` (the loopback's bytes arrive one
/// wire time apart).
fn wait_queued(port: &dyn SerialPort, n: u32) {
    let start = Instant::now();
    while port.bytes_to_read().unwrap() < n {
        assert!(start.elapsed() < PATIENCE, "{n} bytes never queued");
        std::thread::yield_now();
    }
    assert_eq!(port.bytes_to_read().unwrap(), n);
}

#[test]
fn settings_round_trip_through_the_trait() {
    let _serial = common::serial();
    let mut port: Box<dyn SerialPort> = Box::new(sim_port(Duration::from_millis(500)));
    assert!(port.name().unwrap().contains("simulated"));
    assert_baud_near(port.baud_rate().unwrap(), 115_200);
    assert_eq!(port.data_bits().unwrap(), sp::DataBits::Eight);
    assert_eq!(port.parity().unwrap(), sp::Parity::None);
    assert_eq!(port.stop_bits().unwrap(), sp::StopBits::One);
    assert_eq!(port.flow_control().unwrap(), sp::FlowControl::None);

    port.set_baud_rate(9600).unwrap();
    port.set_data_bits(sp::DataBits::Seven).unwrap();
    port.set_parity(sp::Parity::Even).unwrap();
    port.set_stop_bits(sp::StopBits::Two).unwrap();
    port.set_flow_control(sp::FlowControl::Software).unwrap();
    assert_baud_near(port.baud_rate().unwrap(), 9600);
    assert_eq!(port.data_bits().unwrap(), sp::DataBits::Seven);
    assert_eq!(port.parity().unwrap(), sp::Parity::Even);
    assert_eq!(port.stop_bits().unwrap(), sp::StopBits::Two);
    assert_eq!(port.flow_control().unwrap(), sp::FlowControl::Software);

    let e = port.set_data_bits(sp::DataBits::Five).unwrap_err();
    assert_eq!(e.kind(), sp::ErrorKind::InvalidInput);
    assert_eq!(port.data_bits().unwrap(), sp::DataBits::Seven, "unchanged");

    port.set_timeout(Duration::from_millis(20)).unwrap();
    assert_eq!(port.timeout(), Duration::from_millis(20));
}

#[test]
fn modem_lines_and_break_reach_the_chip() {
    let _serial = common::serial();
    let mut port = sim_port(Duration::from_millis(500));
    let port: &mut dyn SerialPort = &mut port;
    // The jumpers wire RTS to CTS and DTR to DSR.
    for level in [false, true, false] {
        port.write_request_to_send(level).unwrap();
        port.write_data_terminal_ready(!level).unwrap();
        assert_eq!(port.read_clear_to_send().unwrap(), level);
        assert_eq!(port.read_data_set_ready().unwrap(), !level);
    }
    assert!(!port.read_ring_indicator().unwrap());
    assert!(!port.read_carrier_detect().unwrap());
    port.set_break().unwrap();
    port.clear_break().unwrap();
    assert_eq!(port.bytes_to_write().unwrap(), 0);
}

#[test]
fn data_counting_clearing_and_the_read_timeout() {
    let _serial = common::serial();
    let mut port = sim_port(Duration::from_millis(500));
    port.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut port, 5), b"hello");
    assert_eq!(SerialPort::bytes_to_read(&port).unwrap(), 0);

    port.write_all(b"abcdef").unwrap();
    wait_queued(&port, 6);
    assert_eq!(read_n(&mut port, 2), b"ab");
    assert_eq!(SerialPort::bytes_to_read(&port).unwrap(), 4);
    SerialPort::clear(&port, ClearBuffer::Input).unwrap();
    assert_eq!(SerialPort::bytes_to_read(&port).unwrap(), 0);

    SerialPort::set_timeout(&mut port, Duration::from_millis(10)).unwrap();
    let e = port.read(&mut [0; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    // What comes after a clear is kept.
    port.write_all(b"xy").unwrap();
    SerialPort::set_timeout(&mut port, Duration::from_millis(500)).unwrap();
    assert_eq!(read_n(&mut port, 2), b"xy");
    SerialPort::clear(&port, ClearBuffer::All).unwrap();
}

#[test]
fn a_clone_writes_and_configures_the_same_port() {
    let _serial = common::serial();
    let mut port = sim_port(Duration::from_millis(500));
    let mut clone = SerialPort::try_clone(&port).unwrap();
    let writer = std::thread::spawn(move || {
        clone.write_all(b"from the clone").unwrap();
        clone.set_baud_rate(57_600).unwrap();
        let e = clone.read(&mut [0; 1]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("into_split"), "{e}");
        clone
    });
    assert_eq!(read_n(&mut port, 14), b"from the clone");
    let clone = writer.join().unwrap();
    assert_baud_near(SerialPort::baud_rate(&port).unwrap(), 57_600);
    assert_eq!(
        clone.baud_rate().unwrap(),
        SerialPort::baud_rate(&port).unwrap()
    );
    // The clone outlives the port and still writes (the reader is gone).
    drop(port);
    let mut clone = clone;
    clone.write_all(b"still here").unwrap();
}

#[test]
fn the_builder_opens_a_tty_by_path() {
    let _serial = common::serial();
    let device = PtyDevice::spawn(Frobnicator::new(Duration::from_micros(200))).unwrap();
    let path = device.path().to_str().unwrap().to_string();
    let mut port = ftdi_rt::new(path, 115_200)
        .timeout(Duration::from_secs(2))
        .best_effort()
        .open()
        .unwrap();
    let request = common::request(7);
    port.write_all(&request).unwrap();
    assert_eq!(
        read_n(&mut port, 1),
        [Frobnicator::reply_for(&request)],
        "the frobnicator's answer"
    );
    assert_eq!(port.baud_rate().unwrap(), 115_200);
    // A pty has no modem lines: an error, not a panic.
    let _ = port.read_clear_to_send();
}

#[test]
fn a_bad_selector_is_an_error_with_the_reason() {
    let e = ftdi_rt::new("1-x", 115_200).open().unwrap_err();
    assert!(!e.to_string().is_empty());
}

fn assert_send_static<T: Send + 'static>() {}

#[test]
fn owned_halves_are_send_and_static() {
    assert_send_static::<OwnedReceiver>();
    assert_send_static::<OwnedWriter>();
}

#[test]
fn owned_halves_work_on_separate_threads() {
    let _serial = common::serial();
    let (mut rx, tx) = sim_port(Duration::from_secs(2)).into_split();
    let receiving = std::thread::spawn(move || {
        let got = read_n(&mut rx, 10);
        (rx, got)
    });
    let writing = {
        let tx = tx.clone();
        std::thread::spawn(move || tx.write_all(b"0123456789"))
    };
    writing.join().unwrap().unwrap();
    let (mut rx, got) = receiving.join().unwrap();
    assert_eq!(got, b"0123456789");

    // The writer goes first: the receiver still runs (times out, not
    // disconnected).
    drop(tx);
    let e = rx.recv_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(matches!(e, ftdi_rt::Error::TimedOut { .. }), "{e}");
    drop(rx);
}

#[test]
fn dropping_the_receiver_first_leaves_the_writer_working() {
    let _serial = common::serial();
    let (rx, tx) = sim_port(Duration::from_secs(2)).into_split();
    drop(rx);
    tx.write_all(b"nobody listens").unwrap();
    tx.set_baud_rate(9600).unwrap();
    assert_baud_near(tx.baud_rate(), 9600);
}

#[test]
fn owned_halves_on_a_shared_reader_leave_it_to_the_others() {
    let _serial = common::serial();
    let reader = ftdi_rt::Reader::new(&common::realtime(80, ftdi_rt::Pinning::Unpinned)).unwrap();
    let config = ftdi_rt::PortConfig::default()
        .best_effort()
        .with_reader(&reader);
    let open = || {
        let chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
        Port::open_sim(chip, &config).unwrap()
    };
    let (mut rx, tx) = open().into_split();
    let mut other = open();
    assert_eq!(reader.ports(), 2);
    rx.set_read_timeout(Some(PATIENCE));
    tx.write_all(b"split").unwrap();
    assert_eq!(read_n(&mut rx, 5), b"split");
    // Dropping the receiving half takes its port off the reader; the other
    // port is still served.
    drop(rx);
    assert_eq!(reader.ports(), 1);
    other.receiver().set_read_timeout(Some(PATIENCE));
    other.write_all(b"still served").unwrap();
    assert_eq!(read_n(&mut other, 12), b"still served");
    drop(tx);
}
