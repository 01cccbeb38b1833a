//! Issue 13: the public API under bad input and misuse — no panic, no hang,
//! nothing unaccounted. Each test pins one item of the issue through the
//! public API, on the simulated chip or a pty (no hardware).
//!
//! Calls that must not hang run on a helper thread, and the test waits for
//! them with a generous bound (`HANG`): that bound detects a hang, it does
//! not measure anything (the timing rules themselves are checked in virtual
//! time, in `src/transaction/engine/tests.rs`).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, Line, SimChip, SimConfig, WireByte};
use ftdi_rt::{Error, Port, PortConfig, ReplyEnd};

/// Far beyond anything these calls should take: a call still running then hangs.
const HANG: Duration = Duration::from_secs(20);

/// Runs `f` on a thread; fails the test if it has not returned within [`HANG`].
fn without_hanging<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match result.recv_timeout(HANG) {
        Ok(value) => value,
        Err(_) => panic!("{what} did not return within {HANG:?}: it hangs"),
    }
}

fn sim_port(device: impl ftdi_rt::sim::Device, config: &PortConfig) -> Port {
    let chip = SimChip::new(device, SimConfig::default()).unwrap();
    Port::open_sim(chip, config).unwrap()
}

fn config() -> PortConfig {
    PortConfig::default().best_effort()
}

/// Echoes every byte; answers `!` with 100 bytes of 0x42 and `?` with "ok\n".
fn talker(byte: WireByte, line: &mut Line<'_>) {
    match byte.byte {
        b'!' => line.send_at(byte.end, &[0x42; 100]),
        b'?' => line.send_at(byte.end, b"ok\n"),
        other => line.send_at(byte.end, &[other]),
    }
}

// Item 1: `Duration::MAX` as "no deadline".
#[test]
fn a_deadline_of_duration_max_means_no_deadline() {
    let _serial = common::serial();
    let mut port = sim_port(talker, &config().with_reply_capacity(4));
    let t = port
        .transact(b"?", ReplyEnd::Terminator(b'\n'), Duration::MAX)
        .unwrap();
    assert_eq!(t.bytes(), b"ok\n");
    // A failed call with no deadline, then the next one settles it.
    let e = port
        .transact(b"!", ReplyEnd::Terminator(0), Duration::MAX)
        .unwrap_err();
    assert!(matches!(e, Error::ReplyTooLong { capacity: 4 }), "{e}");
    let (port, reply) = without_hanging("the call after a failed one", move || {
        let reply = port
            .transact(b"?", ReplyEnd::Terminator(b'\n'), Duration::from_secs(1))
            .map(|t| t.bytes().to_vec());
        (port, reply)
    });
    assert_eq!(reply.unwrap(), b"ok\n");
    drop(port);
}

// Item 2: the rest of a reply that overflowed the buffer is stale, counted.
#[test]
fn the_rest_of_an_overflowed_reply_is_counted_as_stale() {
    let _serial = common::serial();
    let mut port = sim_port(talker, &config().with_reply_capacity(4));
    let e = port
        .transact(b"!", ReplyEnd::Terminator(0), Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(e, Error::ReplyTooLong { capacity: 4 }), "{e}");
    let t = port
        .transact(
            b"?",
            ReplyEnd::Terminator(b'\n'),
            Duration::from_millis(200),
        )
        .unwrap();
    assert_eq!(t.bytes(), b"ok\n");
    let s = port.stats();
    assert_eq!(
        s.stale_bytes, 100,
        "all 100 bytes of the overflowed reply\n{s}"
    );
}

/// Ignores its first request; answers every later one like the frobnicator.
fn ignores_the_first_request() -> impl ftdi_rt::sim::Device {
    let mut seen = 0u32;
    let mut frob = Frobnicator::new(Duration::from_micros(100));
    move |byte: WireByte, line: &mut Line<'_>| {
        seen += 1;
        if seen > 7 {
            ftdi_rt::sim::Device::on_byte(&mut frob, byte, line);
        }
    }
}

// Item 3: settling a missed reply is bounded by the new call's own deadline.
#[test]
fn settling_a_missed_reply_is_bounded_by_the_new_calls_deadline() {
    let _serial = common::serial();
    let mut port = sim_port(ignores_the_first_request(), &config());
    let e = port
        .transact(b"1234567", ReplyEnd::Length(1), Duration::from_secs(1))
        .unwrap_err();
    assert!(matches!(e, Error::DeadlineMissed { .. }), "{e}");
    // The old code held this call for ten of the previous deadlines (10 s)
    // waiting for a reply that never comes; now settling gives up within
    // this call's own 50 ms (the bound itself is pinned in virtual time by
    // the engine's unit tests), counts the reply as unsettled, and sends.
    let (port, reply) = without_hanging("the call after a miss", move || {
        let reply = port
            .transact(b"abcdefg", ReplyEnd::Length(1), Duration::from_millis(50))
            .map(|t| t.bytes().to_vec());
        (port, reply)
    });
    assert_eq!(reply.unwrap(), [Frobnicator::reply_for(b"abcdefg")]);
    let s = port.stats();
    assert_eq!(s.unsettled_replies, 1, "the missed reply was given up\n{s}");
    assert_eq!((s.transactions, s.deadline_misses), (2, 1), "{s}");
}

// Item 4: absurd capacities are refused at validation, with the range.
#[test]
fn absurd_capacities_are_refused_with_the_allowed_range() {
    let _serial = common::serial();
    let configs = [
        ("channel", config().with_channel_capacity(usize::MAX)),
        ("channel", config().with_channel_capacity(1 << 32)),
        ("reply", config().with_reply_capacity(usize::MAX)),
        ("reply", config().with_reply_capacity(1 << 40)),
        ("transfers", config().with_transfers_in_flight(usize::MAX)),
    ];
    for (what, config) in configs {
        let chip = SimChip::new(Frobnicator::new(Duration::ZERO), SimConfig::default()).unwrap();
        match Port::open_sim(chip, &config) {
            Err(Error::InvalidConfig(msg)) => {
                assert!(msg.contains(what), "{msg}");
                assert!(msg.contains("..="), "the allowed range is named: {msg}");
            }
            Err(e) => panic!("{what}: expected InvalidConfig, got {e}"),
            Ok(_) => panic!("{what}: opened with an absurd capacity"),
        }
    }
}

// Items 5 and 6: lengths the buffer cannot hold, a zero deadline and an
// empty request are invalid input, refused up front and not counted.
#[test]
fn impossible_requests_are_refused_up_front_and_not_counted() {
    let _serial = common::serial();
    let mut port = sim_port(talker, &config().with_reply_capacity(16));
    let d = Duration::from_millis(50);
    for (request, end, deadline) in [
        (&b"x"[..], ReplyEnd::Length(0), d),
        (b"x", ReplyEnd::Length(17), d),
        (b"x", ReplyEnd::Length(usize::MAX), d),
        (b"x", ReplyEnd::Length(1), Duration::ZERO),
        (b"", ReplyEnd::Length(1), d),
    ] {
        let e = port.transact(request, end, deadline).unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput(_)),
            "{request:?} {end:?} {deadline:?}: {e}"
        );
    }
    let s = port.stats();
    assert_eq!((s.transactions, s.deadline_misses), (0, 0), "{s}");
    assert_eq!(s.bytes_written, 0, "nothing was sent");
    // The largest reply that fits still works.
    let t = port.transact(b"x", ReplyEnd::Length(1), d).unwrap();
    assert_eq!(t.bytes(), b"x");
}

// Item 9: an error that went through io::Error converts back to itself.
#[test]
fn io_write_after_an_unplug_gives_disconnected() {
    let _serial = common::serial();
    let chip = SimChip::new(Frobnicator::new(Duration::ZERO), SimConfig::default()).unwrap();
    let handle = chip.handle();
    let mut port = Port::open_sim(chip, &config()).unwrap();
    handle.unplug();
    while !handle.is_unplugged() {
        std::thread::yield_now();
    }
    // A function that holds `&mut Port` with io::Write in scope calls the
    // trait's write_all, whose io::Error the `?` turns back into ours.
    fn send(port: &mut Port) -> ftdi_rt::Result<()> {
        use std::io::Write;
        port.write_all(b"x")?;
        port.flush()?;
        Ok(())
    }
    let e = send(&mut port).unwrap_err();
    assert!(matches!(e, Error::Disconnected), "{e:?}");
}

// Item 11: dropping a port does not wait out a simulated chip stall.
#[test]
fn dropping_a_port_does_not_wait_out_a_chip_stall() {
    let _serial = common::serial();
    let chip = SimChip::new(Frobnicator::new(Duration::ZERO), SimConfig::default()).unwrap();
    let handle = chip.handle();
    let port = Port::open_sim(chip, &config()).unwrap();
    handle.stall_for(Duration::MAX);
    without_hanging("dropping the port", move || drop(port));
}

// Item 8: a tty another port holds is busy.
#[test]
fn a_tty_that_is_already_open_is_busy() {
    let _serial = common::serial();
    let device = ftdi_rt_lab::PtyDevice::spawn(Frobnicator::new(Duration::ZERO)).unwrap();
    let _first = Port::open_tty(device.path(), &config()).unwrap();
    match Port::open_tty(device.path(), &config()) {
        Err(Error::Busy { device: name }) => {
            assert!(
                name.contains(&device.path().display().to_string()),
                "{name}"
            )
        }
        Err(e) => panic!("expected Busy, got {e:?}"),
        Ok(_) => panic!("opened a tty twice"),
    }
}

// Item 10: a setting with no effect says so in its return value.
#[test]
fn the_latency_timer_on_a_pty_is_unsupported_and_zero_is_refused() {
    let _serial = common::serial();
    let device = ftdi_rt_lab::PtyDevice::spawn(Frobnicator::new(Duration::ZERO)).unwrap();
    let port = Port::open_tty(device.path(), &config()).unwrap();
    match port.set_latency_timer(0) {
        Err(Error::LatencyTimer(_)) => {}
        other => panic!("latency timer 0 on a tty: {other:?}"),
    }
    match port.set_latency_timer(1) {
        Err(e @ Error::Unsupported { .. }) => {
            assert_eq!(e.kind(), ftdi_rt::ErrorKind::Unsupported);
            assert!(e.to_string().contains("pty has no latency timer"), "{e}");
        }
        other => panic!("latency timer on a pty: {other:?}"),
    }
    // On the simulated chip it takes effect.
    let chip = SimChip::new(talker, SimConfig::default()).unwrap();
    let handle = chip.handle();
    let sim = Port::open_sim(chip, &config()).unwrap();
    sim.set_latency_timer(2).unwrap();
    assert_eq!(handle.state().latency_timer_ms, 2);
}

// Item 13: statistics of a port with no completed transaction do not read
// as a perfect run of zeros.
#[test]
fn statistics_without_transactions_say_so() {
    let _serial = common::serial();
    let port = sim_port(talker, &config());
    let text = port.stats().to_string();
    assert!(text.contains("no completed transactions"), "{text}");
    assert!(!text.contains("p50=0.0µs"), "{text}");
}

// Item 13: README's open, without USB (or without that adapter), fails with
// a message that says what to do, in `{:?}` too (what `main` prints).
#[test]
fn opening_usb_here_says_what_to_do() {
    let _serial = common::serial();
    let selector: ftdi_rt::Selector = "no-such-adapter-ftdi-rt-test".parse().unwrap();
    let e = match Port::open_usb(&selector, &config()) {
        Err(e) => e,
        Ok(_) => panic!("opened an adapter with a made-up serial number"),
    };
    let debug = format!("{e:?}");
    assert!(!debug.starts_with("Other error"), "{debug}");
    match e.kind() {
        // No usbfs (this machine): says what libusb needs and the alternative.
        ftdi_rt::ErrorKind::Unsupported => {
            assert!(debug.contains("/dev/bus/usb"), "{debug}");
            assert!(debug.contains("Port::open_sim"), "{debug}");
        }
        // USB but no such adapter: says what was found and how to look.
        ftdi_rt::ErrorKind::NotFound => assert!(debug.contains("no-such-adapter"), "{debug}"),
        other => panic!("{other:?}: {debug}"),
    }
    assert_eq!(debug, e.to_string(), "Debug keeps the how-to-fix text");
}

// Item 14: packet sizes the FTDI framing cannot work with are refused when
// the chip is made (the USB path's descriptor check has its unit test in
// src/transport/usb/descriptor.rs).
#[test]
fn max_packet_sizes_the_framing_cannot_use_are_refused() {
    for bad in [0, 1, 2, 7, 513, usize::MAX] {
        let config = SimConfig::default().with_max_packet_size(bad);
        match SimChip::new(Frobnicator::new(Duration::ZERO), config) {
            Err(Error::InvalidConfig(msg)) => assert!(msg.contains("8..="), "{msg}"),
            Err(e) => panic!("{bad}: {e}"),
            Ok(_) => panic!("{bad}-byte packets accepted"),
        }
    }
}

// Item 8, from another program: a tty another process holds an flock on
// (here util-linux `flock -s`, holding it while its `cat` runs) is busy too.
#[test]
fn a_tty_another_program_locks_is_busy() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let _serial = common::serial();
    let device = ftdi_rt_lab::PtyDevice::spawn(Frobnicator::new(Duration::ZERO)).unwrap();
    let Ok(mut holder) = Command::new("flock")
        .arg("-s")
        .arg(device.path())
        .arg("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        panic!("util-linux flock(1) is needed for this test");
    };
    // `cat` runs only once the lock is held: its echo says it is.
    let mut stdin = holder.stdin.take().unwrap();
    let mut stdout = BufReader::new(holder.stdout.take().unwrap());
    stdin.write_all(b"locked\n").unwrap();
    let mut echo = String::new();
    stdout.read_line(&mut echo).unwrap();
    assert_eq!(echo, "locked\n");
    let opened = Port::open_tty(device.path(), &config());
    drop(stdin);
    holder.wait().unwrap();
    match opened {
        Err(Error::Busy { .. }) => {}
        Err(e) => panic!("expected Busy, got {e:?}"),
        Ok(_) => panic!("opened a tty another program holds"),
    }
    // Released: it opens.
    Port::open_tty(device.path(), &config()).unwrap();
}
