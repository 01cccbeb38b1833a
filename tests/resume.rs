//! Devices that come back (`PortConfig::with_resume`) on the simulated
//! chip: an unplug is `Disconnected` in the stream, the same chip plugged
//! back (`SimHandle::replug`, registers at power-on defaults) is found by
//! the port's watcher, every setting goes back on it, and the stream
//! carries `Resumed` with the gap's length; the statistics count it.
//! Ordering and plumbing only: nothing here asserts on the wall clock
//! (timeouts only bound how long a failure takes to show).

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ftdi_rt::sim::{Frobnicator, ModemLines, SimChip, SimConfig, SimHandle};
use ftdi_rt::{
    DataBits, Error, ErrorKind, FlowControl, LineProperties, Parity, Pinning, Port, PortConfig,
    Reader, ReplyEnd, StopBits,
};

/// Generous: these tests check what happens, not when.
const DEADLINE: Duration = Duration::from_secs(2);
/// How long a failure may take to show.
const PATIENCE: Duration = Duration::from_secs(20);

fn chip() -> (SimChip, SimHandle) {
    let chip = SimChip::new(
        Frobnicator::new(Duration::from_micros(100)),
        SimConfig::default(),
    )
    .unwrap();
    let handle = chip.handle();
    // DSR asserted, so DTR/DSR flow control lets the chip send.
    handle.set_modem_lines(ModemLines {
        cts: true,
        dsr: true,
        ..ModemLines::default()
    });
    (chip, handle)
}

/// A port on a fresh chip, opened with resume, and the chip's handle.
fn resuming_port() -> (Port, SimHandle) {
    let (chip, handle) = chip();
    let config = PortConfig::default().best_effort().with_resume(true);
    (Port::open_sim(chip, &config).unwrap(), handle)
}

fn exchange(port: &mut Port, salt: u32, n: u32) {
    common::exchange(port, salt, n, DEADLINE);
}

/// Receives until an error, skipping data; the error.
fn next_event(port: &mut Port) -> Error {
    let give_up = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < give_up, "no event within {PATIENCE:?}");
        match port.recv_timeout(Duration::from_millis(200)) {
            Ok(_) | Err(Error::TimedOut { .. }) => {}
            Err(e) => return e,
        }
    }
}

/// Settings away from the chip's power-on defaults (latency 16 ms, 9600 Bd,
/// 8N1, no flow control, no event character, DTR and RTS as reset leaves them).
fn change_settings(port: &Port) {
    port.set_baud_rate(57_600).unwrap();
    port.set_line_properties(LineProperties {
        data_bits: DataBits::Eight,
        parity: Parity::Even,
        stop_bits: StopBits::Two,
    })
    .unwrap();
    port.set_flow_control(FlowControl::DtrDsr).unwrap();
    port.set_latency_timer(2).unwrap();
    port.set_event_char(Some(b'\n')).unwrap();
    port.set_error_char(Some(0xEE)).unwrap();
    port.set_dtr(false).unwrap();
    port.set_rts(true).unwrap();
}

/// The chip's registers hold what the port set.
fn assert_settings_on(chip: &SimHandle, port: &Port) {
    let state = chip.state();
    assert_eq!(state.baud, port.writer().baud_rate(), "baud");
    assert!(state.baud.abs_diff(57_600) < 57_600 / 33, "{}", state.baud);
    assert_eq!(state.line, port.writer().line_properties(), "line");
    assert_eq!(state.flow, FlowControl::DtrDsr, "flow");
    assert_eq!(state.latency_timer_ms, 2, "latency timer");
    assert_eq!(state.event_char, Some(b'\n'), "event char");
    assert_eq!(state.error_char, Some(0xEE), "error char");
    assert!(!state.dtr, "DTR");
    assert!(state.rts, "RTS");
}

/// Unplugs `old`, checks the port notices and fails fast while the device
/// is gone, plugs a fresh chip back, and waits for the port to resume on
/// it; the new chip's handle and the gap.
fn unplug_and_replug(port: &mut Port, old: &SimHandle) -> (SimHandle, Duration) {
    old.unplug();
    assert!(matches!(next_event(port), Error::Disconnected));
    // While it is gone: writes, settings and transactions fail with
    // Disconnected (not a timeout).
    assert!(matches!(port.write_all(b"x"), Err(Error::Disconnected)));
    assert!(matches!(port.set_baud_rate(9600), Err(Error::Disconnected)));
    assert!(matches!(
        port.transact(&common::request(0), ReplyEnd::Length(1), DEADLINE),
        Err(Error::Disconnected)
    ));
    let (fresh, handle) = chip();
    assert_eq!(handle.state().latency_timer_ms, 16, "power-on default");
    old.replug(fresh).unwrap();
    let gap = match next_event(port) {
        Error::Resumed { gap } => gap,
        other => panic!("expected Resumed, got {other}"),
    };
    (handle, gap)
}

#[test]
fn an_unplugged_port_resumes_on_the_same_chip_with_every_setting() {
    let _serial = common::serial();
    let (mut port, handle) = resuming_port();
    change_settings(&port);
    assert_settings_on(&handle, &port);
    exchange(&mut port, 1, 20);

    let (second, gap) = unplug_and_replug(&mut port, &handle);
    assert!(gap > Duration::ZERO);
    let stats = port.stats();
    assert_eq!(stats.resumes, 1);
    assert_eq!(stats.resume_gap, gap);
    assert!(stats.disconnect.is_some());
    assert_settings_on(&second, &port);
    assert!(second.state().resets >= 1, "opened like a new device");
    exchange(&mut port, 2, 20);

    // And again: the port now watches the second chip.
    let (third, gap2) = unplug_and_replug(&mut port, &second);
    let stats = port.stats();
    assert_eq!(stats.resumes, 2);
    assert_eq!(stats.resume_gap, gap + gap2);
    assert_settings_on(&third, &port);
    exchange(&mut port, 3, 20);
    assert!(
        stats.to_string().contains("resumed          2 times"),
        "{stats}"
    );
}

#[test]
fn a_port_on_a_shared_reader_resumes_on_the_same_reader() {
    let _serial = common::serial();
    let reader = Reader::new(&common::realtime(80, Pinning::Unpinned)).unwrap();
    let config = PortConfig::default()
        .best_effort()
        .with_reader(&reader)
        .with_resume(true);
    let (first, handle) = chip();
    let mut port = Port::open_sim(first, &config).unwrap();
    let (bystander_chip, _) = chip();
    let mut bystander = Port::open_sim(bystander_chip, &config).unwrap();
    change_settings(&port);
    exchange(&mut port, 1, 10);
    let (second, _) = unplug_and_replug(&mut port, &handle);
    assert_eq!(reader.ports(), 2, "the same reader serves it again");
    assert_settings_on(&second, &port);
    exchange(&mut port, 2, 10);
    exchange(&mut bystander, 3, 10);
    assert_eq!(port.stats().resumes, 1);
    assert_eq!(bystander.stats().resumes, 0);
}

#[test]
fn a_transaction_in_flight_fails_with_disconnected_and_the_next_after_resume_works() {
    let _serial = common::serial();
    let (mut port, handle) = resuming_port();
    exchange(&mut port, 1, 5);
    let sent_before = handle.counters().bytes_from_host;
    let req = common::request(7);
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            // The Frobnicator answers one byte: this waits for a second
            // one that never comes, until the unplug ends it.
            port.transact(&req, ReplyEnd::Length(2), Duration::from_secs(30))
                .map(|t| t.bytes().to_vec())
        });
        let give_up = Instant::now() + PATIENCE;
        // The request is in the chip: the transaction is collecting.
        while handle.counters().bytes_from_host < sent_before + 7 {
            assert!(
                Instant::now() < give_up,
                "the request never reached the chip"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        handle.unplug();
        let result = waiting.join().unwrap();
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    });
    let (fresh, new_handle) = chip();
    handle.replug(fresh).unwrap();
    // No receive in between: the transaction passes over both events.
    let give_up = Instant::now() + PATIENCE;
    while port.stats().resumes == 0 {
        assert!(Instant::now() < give_up, "the port did not resume");
        std::thread::sleep(Duration::from_millis(5));
    }
    exchange(&mut port, 2, 10);
    assert_eq!(new_handle.state().latency_timer_ms, 1, "the port's setting");
}

#[test]
fn the_events_wake_a_poll_loop_and_come_once_each() {
    let _serial = common::serial();
    let (mut port, handle) = resuming_port();
    let mut poll = mio::Poll::new().unwrap();
    let mut events = mio::Events::with_capacity(4);
    let fd = port.receiver().as_raw_fd();
    poll.registry()
        .register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(0),
            mio::Interest::READABLE,
        )
        .unwrap();
    let mut seen = Vec::new();
    let mut replugged = None;
    let give_up = Instant::now() + PATIENCE;
    handle.unplug();
    while seen.len() < 2 {
        assert!(Instant::now() < give_up, "saw only {seen:?}");
        poll.poll(&mut events, Some(Duration::from_millis(500)))
            .unwrap();
        // Drain until empty, as the receiver's docs ask.
        loop {
            match port.try_recv() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => seen.push(e.kind()),
            }
        }
        if seen == [ErrorKind::Disconnected] && replugged.is_none() {
            let (fresh, new_handle) = chip();
            handle.replug(fresh).unwrap();
            replugged = Some(new_handle);
        }
    }
    assert_eq!(seen, [ErrorKind::Disconnected, ErrorKind::Resumed]);
    exchange(&mut port, 1, 5);
}

#[test]
fn dropping_the_port_while_the_device_is_gone_stops_the_watcher() {
    let _serial = common::serial();
    let (mut port, handle) = resuming_port();
    handle.unplug();
    assert!(matches!(next_event(&mut port), Error::Disconnected));
    drop(port);
    // Nobody takes a chip plugged in now: a watcher that survived its port
    // would open it within a few of its 100 ms scans.
    let (fresh, new_handle) = chip();
    handle.replug(fresh).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(new_handle.state().resets, 0, "nothing opened the new chip");
}

#[test]
fn without_resume_an_unplug_ends_the_stream_and_a_replug_changes_nothing() {
    let _serial = common::serial();
    let (first, handle) = chip();
    let mut port = Port::open_sim(first, &PortConfig::default().best_effort()).unwrap();
    exchange(&mut port, 1, 3);
    handle.unplug();
    assert!(matches!(next_event(&mut port), Error::Disconnected));
    let (fresh, new_handle) = chip();
    handle.replug(fresh).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            port.recv_timeout(Duration::from_millis(100)),
            Err(Error::Disconnected)
        ));
    }
    assert_eq!(new_handle.state().resets, 0);
    assert_eq!(port.stats().resumes, 0);
}

#[test]
fn replug_refuses_a_chip_still_plugged_in_or_another_device() {
    let (_first, handle) = chip();
    let (fresh, _) = chip();
    assert!(matches!(handle.replug(fresh), Err(Error::InvalidInput(_))));
    handle.unplug();
    let give_up = Instant::now() + PATIENCE;
    while !handle.is_unplugged() {
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(1));
    }
    let other = SimChip::new(
        Frobnicator::new(Duration::from_micros(100)),
        SimConfig::default().with_chip(ftdi_rt::Chip::Ft2232H),
    )
    .unwrap();
    let e = handle.replug(other).unwrap_err();
    assert!(e.to_string().contains("not the same device"), "{e}");
}

#[test]
fn a_tty_cannot_resume() {
    let e = Port::open_tty("/dev/null", &PortConfig::default().with_resume(true)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}
