//! The reader takes no page fault while data streams through it, after a
//! short warm-up, whether it locks only its hot path (the default) or the
//! whole process (`mlockall`).
//!
//! The warm-up is deliberately short (one 4 KiB burst, about 70 of the
//! channel ring's 1024 slots), and the measured stream is 64 KiB (about 1060
//! packets, so the ring wraps): a reader that did not prefault its ring
//! would fault on each of the ~125 ring pages it first writes during the
//! stream, and this test would fail.
//!
//! One test in this file because `mlockall` is process-wide and outlives the
//! port: the targeted mode runs first (on a port's own reader, then on a
//! shared one), the whole-process mode after it.
//! It opens with the required realtime setup and expects everything locked,
//! which needs root (or CAP_SYS_NICE and CAP_IPC_LOCK): it runs with the
//! `realtime-tests` feature (as CI does) and is reported ignored otherwise.

use std::time::Duration;

use ftdi_rt::sim::{Line, Loopback, SimChip, SimConfig, WireByte};
use ftdi_rt::{MemoryLocking, PageFaults, Port, PortConfig, Reader, RealtimeConfig};
use ftdi_rt_lab::PtyDevice;

/// Bytes streamed per trigger; a static table so the device allocates nothing.
static BURST: [u8; 4096] = {
    let mut s = [0u8; 4096];
    let mut i = 0;
    while i < s.len() {
        s[i] = (i % 253) as u8;
        i += 1;
    }
    s
};

/// Sends BURST each time the host sends `!`.
fn streamer(byte: WireByte, line: &mut Line<'_>) {
    if byte.byte == b'!' {
        line.send_at(byte.end, &BURST);
    }
}

/// Triggers one burst and receives it. Bytes the simulated chip loses to a
/// FIFO overrun (its thread can be descheduled on a loaded 2-vCPU VM) end
/// the burst early; data integrity is tests/hot_path.rs's subject, not this
/// file's.
fn burst(port: &mut Port) -> usize {
    port.write_all(b"!").unwrap();
    let mut got = 0;
    while got < BURST.len() {
        match port.recv_timeout(Duration::from_millis(500)) {
            Ok(chunk) => got += chunk.payload().len(),
            Err(ftdi_rt::Error::TimedOut { .. }) => break,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
    got
}

fn reader_faults(port: &Port) -> PageFaults {
    port.stats()
        .reader_page_faults
        .expect("/proc/self/task is readable here")
        .total
}

/// Streams 64 KiB after a 4 KiB warm-up, on a reader of the port's own or a
/// shared [`Reader`]; returns the reader's faults during the 64 KiB and
/// prints what was locked.
fn stream_64k(locking: MemoryLocking, shared: bool) -> PageFaults {
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    // Required (the default policy): the test runs as root, as CI does.
    // 921600 Bd: a burst is ~45 ms; the chip's 256-byte FIFO covers a 2.8 ms
    // stall of its thread.
    let realtime = RealtimeConfig::default().with_memory_locking(locking);
    let mut config = PortConfig::default()
        .with_baud(921_600)
        .with_reader_realtime(realtime);
    let reader = shared.then(|| Reader::new(&realtime).unwrap());
    if let Some(reader) = &reader {
        config = config.with_reader(reader);
    }
    let mut port = Port::open_sim(chip, &config).unwrap();
    let memory = port.realtime().memory.clone();
    println!("{locking:?} (sim): {memory}");
    for r in &memory.regions {
        println!("    {:<18} {:>7} bytes", r.what, r.bytes);
    }
    assert_eq!(memory.locking, locking);
    assert_eq!(
        memory.locked_bytes, memory.hot_path_bytes,
        "as root everything is locked: {memory}"
    );
    // The channel ring (1024 chunks of ~536 bytes) is part of the hot path.
    let ring = memory
        .regions
        .iter()
        .find(|r| r.what == "channel ring")
        .expect("the ring is reported");
    assert!(ring.bytes >= 1024 * 530, "{memory:?}");

    burst(&mut port); // warm-up: code paths, lazily initialised state
    let before = reader_faults(&port);
    let streamed: usize = (0..16).map(|_| burst(&mut port)).sum();
    let during = reader_faults(&port).since(before);
    let stats = port.stats();
    assert!(streamed >= 60 * 1024, "{streamed} bytes streamed: {stats}");
    println!("{locking:?} (sim): reader faults during 64 KiB: {during:?}");
    println!("{stats}");
    during
}

#[test]
#[cfg_attr(
    not(feature = "realtime-tests"),
    ignore = "needs SCHED_FIFO and unlimited mlock (root): run with --features realtime-tests"
)]
fn the_reader_takes_no_page_fault_after_warm_up_in_either_locking_mode() {
    let hot_path = stream_64k(MemoryLocking::HotPath, false);
    let shared = stream_64k(MemoryLocking::HotPath, true);

    // The kernel tty path locks its read buffer instead of transfer buffers.
    let device = PtyDevice::spawn(Loopback::new()).unwrap();
    let config = PortConfig::default().with_reader_realtime(RealtimeConfig::default());
    let port = Port::open_tty(device.path(), &config).unwrap();
    let memory = &port.realtime().memory;
    println!("HotPath (tty): {memory}");
    for r in &memory.regions {
        println!("    {:<18} {:>7} bytes", r.what, r.bytes);
    }
    assert!(memory.regions.iter().any(|r| r.what == "read buffer"));
    assert_eq!(memory.locked_bytes, memory.hot_path_bytes, "{memory}");
    drop(port);

    let whole = stream_64k(MemoryLocking::WholeProcess, false);
    assert_eq!(
        hot_path,
        PageFaults::default(),
        "the reader faulted while 64 KiB streamed (hot-path locking)"
    );
    assert_eq!(
        shared,
        PageFaults::default(),
        "the shared reader faulted while 64 KiB streamed (hot-path locking)"
    );
    assert_eq!(
        whole,
        PageFaults::default(),
        "the reader faulted while 64 KiB streamed (whole-process locking)"
    );
}
