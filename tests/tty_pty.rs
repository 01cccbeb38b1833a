//! The kernel tty transport on pty pairs (what CI has): transactions and
//! statistics through the kernel path, the errors a bad path or setting
//! gives, and the far side hanging up.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ftdi_rt::sim::{Frobnicator, Loopback};
use ftdi_rt::{
    DataBits, Error, FlowControl, LineProperties, LineStatus, Parity, Pinning, Port, PortConfig,
    ReplyEnd, StopBits, TransportKind,
};
use ftdi_rt_lab::PtyDevice;

/// Generous: a pty reply crosses two kworker hops, and CI machines are busy.
const DEADLINE: Duration = Duration::from_millis(50);

fn config() -> PortConfig {
    PortConfig::default().best_effort()
}

fn frobnicator() -> PtyDevice {
    PtyDevice::spawn(Frobnicator::new(Duration::from_micros(200))).unwrap()
}

fn line(data_bits: DataBits, parity: Parity, stop_bits: StopBits) -> LineProperties {
    LineProperties {
        data_bits,
        parity,
        stop_bits,
    }
}

#[test]
fn a_thousand_transactions_through_the_kernel_path() {
    let _serial = common::serial();
    common::app_realtime(Pinning::Unpinned);
    let device = frobnicator();
    let mut port = Port::open_tty(device.path(), &config()).unwrap();
    for i in 0..1000u32 {
        let req = common::request(i);
        let t = match port.transact(&req, ReplyEnd::Length(1), DEADLINE) {
            Ok(t) => t,
            Err(e) => panic!("transaction {i}: {e}\n{}", port.stats()),
        };
        assert_eq!(t.bytes(), [Frobnicator::reply_for(&req)], "transaction {i}");
        assert!(t.arrival() <= t.latency());
    }
    let s = port.stats();
    println!("{s}");
    assert_eq!((s.transactions, s.deadline_misses), (1000, 0));
    assert_eq!(s.transaction_latency.count, 1000);
    assert_eq!(s.bytes_written, 7000);
    assert!(s.bytes_received >= 1000, "{}", s.bytes_received);
    assert!(s.packets > 0);
    // A tty read carries no FTDI status.
    assert_eq!((s.status_only_packets, s.malformed_packets), (0, 0));
    assert_eq!(s.line_errors.total(), 0);
    // The realtime status is reported either way: granted, or what was refused.
    assert_eq!(s.realtime.guaranteed, s.realtime.shortfalls.is_empty());
    assert!(s.realtime.guaranteed || s.realtime.to_string().contains("BEST EFFORT"));
    assert_eq!(s.transport.kind, TransportKind::Tty);
    let path = device.path().display().to_string();
    assert!(
        s.transport.description.contains(&path),
        "{}",
        s.transport.description
    );
    assert_eq!(s.transport.actual_baud, Some(115_200));
    let notes = s.transport.notes.join("\n");
    for needle in [
        "ASYNC_LOW_LATENCY",
        "a pty has no latency timer",
        "modem lines",
    ] {
        assert!(
            notes.contains(needle),
            "{needle:?} missing from the notes:\n{notes}"
        );
    }
    assert!(s.disconnect.is_none());
}

#[test]
fn io_read_and_write_work_on_a_pty() {
    let _serial = common::serial();
    let device = PtyDevice::spawn(Loopback::new()).unwrap();
    let mut port = Port::open_tty(device.path(), &config()).unwrap();
    port.receiver()
        .set_read_timeout(Some(Duration::from_secs(2)));
    let message = b"hello through the tty flip buffer";
    Write::write_all(&mut port, message).unwrap();
    Write::flush(&mut port).unwrap();
    let mut echo = vec![0u8; message.len()];
    port.read_exact(&mut echo).unwrap();
    assert_eq!(echo, message);
    // Past the end of what was sent: the read timeout, not a hang.
    let mut more = [0u8; 1];
    port.receiver()
        .set_read_timeout(Some(Duration::from_millis(50)));
    let e = port.read(&mut more).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn settings_a_pty_can_take_and_what_it_lacks() {
    let _serial = common::serial();
    let device = PtyDevice::spawn(Loopback::new()).unwrap();
    let port = Port::open_tty(device.path(), &config()).unwrap();
    // A pty keeps any rate (it has no UART to round it).
    assert_eq!(port.set_baud_rate(9600).unwrap(), 9600);
    assert_eq!(port.transport_info().actual_baud, Some(9600));
    port.set_line_properties(line(DataBits::Eight, Parity::None, StopBits::Two))
        .unwrap();
    port.set_flow_control(FlowControl::XonXoff {
        xon: 0x01,
        xoff: 0x02,
    })
    .unwrap();
    port.set_flow_control(FlowControl::None).unwrap();
    // No modem lines, no TX line: skipped and noted, not errors.
    port.set_dtr(false).unwrap();
    port.set_rts(true).unwrap();
    port.set_break(true).unwrap();
    port.set_break(false).unwrap();
    port.purge_rx().unwrap();
    port.purge_tx().unwrap();
    port.set_event_char(None).unwrap();
    let (modem, line_status) = port.query_status().unwrap();
    assert_eq!(modem.0, 0);
    assert_eq!(line_status, LineStatus(LineStatus::THRE | LineStatus::TEMT));
    let notes = port.transport_info().notes.join("\n");
    assert!(notes.contains("break has no effect"), "{notes}");
    // Closing lifts the exclusive lock: the same pty opens again.
    drop(port);
    let port = Port::open_tty(device.path(), &config()).unwrap();
    // ...but not twice at once (tests/misuse.rs checks the message).
    match Port::open_tty(device.path(), &config()) {
        Err(Error::Busy { .. }) => {}
        other => panic!("a second open of a busy tty gave {other:?}"),
    }
    drop(port);
}

#[test]
fn paths_that_are_not_ttys_are_named() {
    let _serial = common::serial();
    match Port::open_tty("/dev/null", &config()) {
        Err(e @ Error::NotATty { .. }) => assert!(e.to_string().contains("/dev/null"), "{e}"),
        other => panic!("/dev/null gave {other:?}"),
    }
    let file = std::env::temp_dir().join(format!("ftdi-rt-not-a-tty-{}", std::process::id()));
    std::fs::write(&file, b"plain file").unwrap();
    let result = Port::open_tty(&file, &config());
    std::fs::remove_file(&file).unwrap();
    match result {
        Err(Error::NotATty { path }) => assert_eq!(path, file),
        other => panic!("a regular file gave {other:?}"),
    }
    let missing = "/dev/ftdi-rt-no-such-tty";
    match Port::open_tty(missing, &config()) {
        Err(e @ Error::Tty { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(missing), "{msg}");
            assert!(msg.contains("No such file"), "{msg}");
        }
        other => panic!("a missing path gave {other:?}"),
    }
}

#[test]
fn settings_the_tty_cannot_take_are_named() {
    let _serial = common::serial();
    let device = frobnicator();
    let one_and_a_half = line(DataBits::Eight, Parity::None, StopBits::OnePointFive);
    match Port::open_tty(device.path(), &config().with_line(one_and_a_half)) {
        Err(e @ Error::Unsupported { .. }) => {
            assert!(e.to_string().contains("stop bits 1.5"), "{e}")
        }
        other => panic!("1.5 stop bits gave {other:?}"),
    }
    match Port::open_tty(device.path(), &config().with_flow(FlowControl::DtrDsr)) {
        Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains("DTR/DSR"), "{e}"),
        other => panic!("DTR/DSR flow control gave {other:?}"),
    }

    // On an open port the refusals leave it working.
    let mut port = Port::open_tty(device.path(), &config()).unwrap();
    let e = port.set_line_properties(one_and_a_half).unwrap_err();
    assert!(matches!(e, Error::Unsupported { ref setting, .. } if setting == "stop bits 1.5"));
    // A pty forces 8 data bits and no parity: the refusal names the setting
    // and what the tty kept.
    let e = port
        .set_line_properties(line(DataBits::Seven, Parity::Even, StopBits::One))
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::SettingRejected { .. }), "{msg}");
    assert!(msg.contains("line 7E1") && msg.contains("8N1"), "{msg}");
    let e = port.set_baud_rate(0).unwrap_err();
    assert!(e.to_string().contains("baud 0"), "{e}");
    let e = port.set_event_char(Some(b'\n')).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    // The timing features that need the chip's status packets: refused
    // before anything is sent, saying what to use instead.
    let e = port
        .transact(b"?", ReplyEnd::Silence(Duration::from_millis(5)), DEADLINE)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported { setting, .. } if setting.contains("Silence")),
        "{e}"
    );
    assert!(e.to_string().contains("open_usb"), "{e}");
    let e = port.write_drained(b"?", DEADLINE).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("tcdrain"), "{e}");
    assert_eq!(port.stats().transactions, 0, "nothing was sent");
    let req = common::request(1);
    let t = port.transact(&req, ReplyEnd::Length(1), DEADLINE).unwrap();
    assert_eq!(t.bytes(), [Frobnicator::reply_for(&req)]);
}

#[test]
fn the_far_side_hanging_up_disconnects_the_port() {
    let _serial = common::serial();
    let device = frobnicator();
    let mut port = Port::open_tty(device.path(), &config()).unwrap();
    let req = common::request(7);
    port.transact(&req, ReplyEnd::Length(1), DEADLINE).unwrap();

    device.hang_up();
    let start = Instant::now();
    match port.recv_timeout(Duration::from_millis(100)) {
        Err(Error::Disconnected) => {}
        other => panic!("after a hangup the receiver got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_millis(100));
    let why = port.stats().disconnect.unwrap();
    assert!(why.contains("hung up"), "{why}");

    let start = Instant::now();
    assert!(port.transact(&req, ReplyEnd::Length(1), DEADLINE).is_err());
    assert!(port.transact(&req, ReplyEnd::Length(1), DEADLINE).is_err());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(
        port.writer().write_all(&req),
        Err(Error::Disconnected)
    ));
}
