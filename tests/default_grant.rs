//! The default needs SCHED_FIFO alone: an unprivileged user granted only
//! CAP_SYS_NICE, under the smallest common default memlock limit (64 KiB), opens a port
//! with the default, required realtime setup; the reader locks what fits,
//! prefaults the rest, says so, and takes no page fault while data streams.
//! Whole-process locking under the same grant is refused with a message
//! that names the grant it needs.
//!
//! The test re-runs this binary as `nobody` (uid 65534) holding CAP_SYS_NICE
//! and nothing else, under `prlimit --memlock=65536` (`setpriv` and
//! `prlimit` from util-linux): what `setcap cap_sys_nice+ep` gives a binary
//! on a kernel whose default memlock limit is 64 KiB. (An rtprio limit is
//! the other way to grant SCHED_FIFO; raising one needs CAP_SYS_RESOURCE,
//! which root lacks on this machine.) Setting that up needs root, as CI runs:
//! the test runs with the `realtime-tests` feature and is reported ignored
//! otherwise.

use std::process::Command;
use std::time::Duration;

use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
use ftdi_rt::{Error, MemoryLocking, Port, PortConfig, RealtimeConfig, RealtimeError};

const MEMLOCK_LIMIT: usize = 64 * 1024;

#[test]
#[cfg_attr(
    not(feature = "realtime-tests"),
    ignore = "needs root to drop to CAP_SYS_NICE alone (setpriv): run with --features realtime-tests"
)]
fn the_default_needs_sched_fifo_alone() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("prlimit")
        .arg(format!("--memlock={MEMLOCK_LIMIT}"))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .args([
            "--inh-caps=-all,+sys_nice",
            "--ambient-caps=-all,+sys_nice",
            "--",
        ])
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "as_an_unprivileged_user",
            "--nocapture",
        ])
        .output()
        .expect("run prlimit and setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the unprivileged run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the unprivileged run did not run:\n{text}"
    );
}

fn streamer(byte: WireByte, line: &mut Line<'_>) {
    static BURST: [u8; 4096] = [0x55; 4096];
    if byte.byte == b'!' {
        line.send_at(byte.end, &BURST);
    }
}

#[test]
#[ignore = "run by the_default_needs_sched_fifo_alone as nobody with CAP_SYS_NICE alone and memlock 64 KiB"]
fn as_an_unprivileged_user() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    // CAP_SYS_NICE (bit 23) and nothing else: no CAP_IPC_LOCK.
    assert!(
        status.lines().any(|l| l == "CapEff:\t0000000000800000"),
        "must run with CAP_SYS_NICE alone:\n{status}"
    );

    // Required SCHED_FIFO, default memory locking: must open.
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    let config = PortConfig::default().with_baud(921_600);
    let mut port = Port::open_sim(chip, &config).expect("the default opens with rtprio alone");
    let rt = port.realtime().clone();
    println!("reader: {rt}");
    assert!(rt.guaranteed, "{rt}");
    assert_eq!(rt.fifo_priority, Some(80));
    let m = &rt.memory;
    assert_eq!(m.locking, MemoryLocking::HotPath);
    assert!(m.locked_bytes > 0, "{m}");
    assert!(m.locked_bytes <= MEMLOCK_LIMIT, "{m}");
    assert!(
        m.hot_path_bytes > MEMLOCK_LIMIT,
        "the ring alone is larger: {m}"
    );
    let why = m
        .not_locked
        .as_deref()
        .expect("the status says what is not locked");
    assert!(why.contains("RLIMIT_MEMLOCK is 64 KiB"), "{why}");
    // The stack (locked first) is locked whole.
    assert!(m.regions[0].what == "stack", "{m:?}");

    // Prefaulted, so no fault while 32 KiB stream after a short warm-up.
    let burst = |port: &mut Port| {
        port.write_all(b"!").unwrap();
        let mut got = 0;
        while got < 4096 {
            match port.recv_timeout(Duration::from_millis(500)) {
                Ok(chunk) => got += chunk.payload().len(),
                Err(Error::TimedOut { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
    };
    burst(&mut port);
    let before = port.stats().reader_page_faults.unwrap().total;
    for _ in 0..8 {
        burst(&mut port);
    }
    let during = port.stats().reader_page_faults.unwrap().total.since(before);
    println!("reader faults during 32 KiB: {during:?}");
    assert_eq!(during, ftdi_rt::PageFaults::default());
    drop(port);

    // Whole-process locking needs more than this grant, and says which.
    let chip = SimChip::new(streamer, SimConfig::default()).unwrap();
    let config = PortConfig::default().with_reader_realtime(
        RealtimeConfig::default().with_memory_locking(MemoryLocking::WholeProcess),
    );
    match Port::open_sim(chip, &config) {
        Err(Error::Realtime(e @ RealtimeError::MemoryLockDenied { .. })) => {
            let msg = e.to_string();
            println!("whole process: {msg}");
            assert!(msg.contains("cap_ipc_lock"), "{msg}");
            assert!(msg.contains("memlock unlimited"), "{msg}");
        }
        other => panic!("expected MemoryLockDenied, got {other:?}"),
    }
}
