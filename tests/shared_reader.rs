//! Many ports on one shared [`Reader`]: each keeps its own stream,
//! statistics and transactions; a port that leaves or loses its link does
//! not disturb the others; every transport that can share does (simulated
//! chip, kernel tty), and libusb says it cannot, before touching a device.

mod common;

use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig, SimHandle};
use ftdi_rt::{Error, Pinning, Port, PortConfig, Reader, Selector};
use ftdi_rt_lab::PtyDevice;

/// Generous: these tests check what arrives, not when (the timing is the
/// many_ports example's business).
const DEADLINE: Duration = Duration::from_secs(1);

fn reader() -> Reader {
    Reader::new(&common::realtime(80, Pinning::Unpinned)).unwrap()
}

fn sim_port(config: &PortConfig) -> (Port, SimHandle) {
    let device = Frobnicator::new(Duration::from_micros(100));
    let chip = SimChip::new(device, SimConfig::default()).unwrap();
    let handle = chip.handle();
    (Port::open_sim(chip, config).unwrap(), handle)
}

/// `n` transactions on `port`, each request different (`salt` apart from
/// other ports'), each reply checked.
fn exchange(port: &mut Port, salt: u32, n: u32) {
    common::exchange(port, salt, n, DEADLINE);
}

#[test]
fn ports_on_one_reader_keep_their_own_streams_and_figures() {
    let _serial = common::serial();
    let reader = reader();
    let config = PortConfig::default().best_effort().with_reader(&reader);
    let mut ports: Vec<(Port, SimHandle)> = (0..4).map(|_| sim_port(&config)).collect();
    assert_eq!(reader.ports(), 4);
    // All four at once, each from its own thread: their replies must never
    // cross over, whatever order the reader serves them in.
    std::thread::scope(|s| {
        for (salt, (port, _)) in ports.iter_mut().enumerate() {
            s.spawn(move || exchange(port, salt as u32, 200));
        }
    });
    for (port, _) in &ports {
        let s = port.stats();
        assert_eq!(s.transactions, 200, "{s}");
        assert_eq!(s.bytes_written, 200 * 7);
        assert!(s.bytes_received >= 200, "{}", s.bytes_received);
        // The reader's status is the shared one, with this port's memory.
        assert_eq!(s.realtime.fifo_priority, reader.realtime().fifo_priority);
        assert!(s.realtime.memory.hot_path_bytes > reader.realtime().memory.hot_path_bytes);
        assert!(port.reader_cpu_time().is_some());
    }
    assert_eq!(
        ports[0].0.reader_cpu_time().is_some(),
        reader.cpu_time().is_some()
    );
}

#[test]
fn a_port_that_leaves_or_is_unplugged_disturbs_no_other() {
    let _serial = common::serial();
    let reader = reader();
    let config = PortConfig::default().best_effort().with_reader(&reader);
    let (mut a, _) = sim_port(&config);
    let (mut b, b_chip) = sim_port(&config);
    let (c, _) = sim_port(&config);
    exchange(&mut b, 1, 10);

    // Unplugged: its own stream ends, with the reason; the reader drops it.
    b_chip.unplug();
    match b.recv_timeout(Duration::from_secs(5)) {
        Err(Error::Disconnected) => {}
        other => panic!("after an unplug the port got {other:?}"),
    }
    assert!(b.stats().disconnect.unwrap().contains("unplugged"));
    exchange(&mut a, 0, 50);
    assert_eq!(reader.ports(), 2, "the lost port left, the others stayed");

    // Closed: the reader has let go of it when drop returns.
    drop(c);
    assert_eq!(reader.ports(), 1);
    exchange(&mut a, 0, 50);
    drop(b);
    assert_eq!(reader.ports(), 1);
    assert!(a.stats().disconnect.is_none());
}

#[test]
fn the_reader_lives_while_a_port_needs_it() {
    let _serial = common::serial();
    let reader = reader();
    let (mut port, _) = sim_port(&PortConfig::default().best_effort().with_reader(&reader));
    // The application's handle goes; the port's own keeps the thread.
    drop(reader);
    exchange(&mut port, 3, 20);
}

#[test]
fn tty_ports_share_a_reader_with_simulated_ones() {
    let _serial = common::serial();
    let reader = reader();
    let config = PortConfig::default().best_effort().with_reader(&reader);
    let devices: Vec<PtyDevice> = (0..2)
        .map(|_| PtyDevice::spawn(Frobnicator::new(Duration::from_micros(100))).unwrap())
        .collect();
    let mut ttys: Vec<Port> = devices
        .iter()
        .map(|d| Port::open_tty(d.path(), &config).unwrap())
        .collect();
    let (mut sim, _) = sim_port(&config);
    assert_eq!(reader.ports(), 3);
    for (salt, port) in ttys.iter_mut().enumerate() {
        exchange(port, salt as u32, 100);
    }
    exchange(&mut sim, 9, 100);

    // A pty's far side hanging up ends that port only.
    devices[0].hang_up();
    match ttys[0].recv_timeout(Duration::from_secs(5)) {
        Err(Error::Disconnected) => {}
        other => panic!("after a hangup the port got {other:?}"),
    }
    exchange(&mut ttys[1], 1, 20);
    exchange(&mut sim, 9, 20);
}

#[test]
fn a_usb_port_on_a_reader_fails_as_one_of_its_own_where_libusb_cannot_start() {
    // libusb ports share the reader's libusb context, created with the first
    // of them: where libusb cannot initialise (no usbfs, as on CI machines)
    // that is the error, as for a port of its own, and the reader is intact.
    let _serial = common::serial();
    let reader = reader();
    let shared = Port::open_usb(
        &Selector::First,
        &PortConfig::default().with_reader(&reader),
    );
    let own = Port::open_usb(&Selector::First, &PortConfig::default());
    match (&shared, &own) {
        (Err(Error::UsbUnavailable { .. }), Err(Error::UsbUnavailable { .. })) => {}
        // A machine with USB: both find the same thing (an adapter or none).
        (Err(Error::NotFound { .. }), Err(Error::NotFound { .. })) => {}
        (Ok(_), Ok(_)) => return,
        _ => panic!("on a reader {shared:?}, on its own {own:?}"),
    }
    assert_eq!(reader.ports(), 0);
    let (mut sim, _) = sim_port(&PortConfig::default().best_effort().with_reader(&reader));
    exchange(&mut sim, 1, 5);
    assert_eq!(reader.ports(), 1, "the reader still serves");
}

#[test]
fn a_reader_handle_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Reader>();
    send_sync::<PortConfig>();
}
