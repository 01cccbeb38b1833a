//! Hardware-in-the-loop cases on a real FTDI adapter, through ftdi-rt's
//! userspace driver (`Port::open_usb`).
//!
//! The rig: the adapter's TXD wired to its RXD, so everything sent comes
//! back; optionally the handshake jumpers RTS#→CTS# and DTR#→DSR#. See
//! `hil-tests/README.md` for the wiring, permissions and realtime set-up.
//!
//! ```text
//! FTDI_RT_HIL_DEVICE=<serial|bus-port> cargo test --release -p ftdi-rt-hil --features hardware-tests --test real_adapter -- --test-threads=1
//! ```
//!
//! * Feature `hardware-tests` builds the cases to run; without it (as in
//!   `cargo test --workspace`) they are reported ignored, with the reason.
//! * `FTDI_RT_HIL_DEVICE` names the adapter, parsed by `ftdi_rt::Selector`:
//!   a serial number (`FT1ABCDE`; `serial:1234` if it is all digits) or a
//!   bus-port path (`1-1.2`). With the feature on and no adapter named, every
//!   case fails and says what to set.
//! * Feature `hardware-jumpers`: RTS→CTS and DTR→DSR are wired; adds the
//!   hardware flow-control and modem-line cases.
//! * Feature `hardware-unplug`: adds the prompted unplug case (someone must
//!   unplug and replug the adapter when asked, within 60 s each).
//!
//! `--test-threads=1`: there is one adapter. Every case opens its own port
//! and closes it (dropping the port re-attaches ftdi_sio); a lock in
//! `common` also keeps cases from overlapping, but only one thread keeps the
//! output in order. Every case runs under a watchdog, so a hang fails the
//! case instead of stalling the run.
//!
//! Every port is opened with `PortConfig::default()`: the realtime reader is
//! required, and opening fails with an error that says how to grant it
//! (`setcap cap_sys_nice,cap_ipc_lock+ep` on the test binary, limits.conf,
//! or root). The timing cases depend on it and the 3 MBd bursts need a
//! reader that keeps up, so no case falls back to best effort.
//!
//! Output goes through `say!`, which writes to stderr directly: libtest
//! captures `eprintln!`, and the prompts and measurements must show in a
//! normal run.

#[path = "../common/mod.rs"]
mod common;
mod handshake;
mod lines;

use std::time::{Duration, Instant};

use common::{Adapter, find_listed, median, say, wait_until, wire_time};
use std::sync::Arc;

use ftdi_rt::{
    Chip, DataBits, Error, FlowControl, LineProperties, ModemStatus, Parity, Port, PortConfig,
    RealtimeConfig, ReplyEnd, Selector, StopBits, Writer,
};
use ftdi_rt_hil::checks;
use ftdi_rt_lab::{CpuHogs, NoiseProbe};

/// Burst sizes: around the 62-byte payload of a 64-byte full-speed packet
/// (61..64, 124, 125), the 496 bytes of one 8-packet transfer, and bursts
/// that span many packets and transfers (and the 510-byte payload of the
/// high-speed chips).
const BURST_SIZES: [usize; 12] = [1, 2, 61, 62, 63, 64, 124, 125, 200, 496, 1000, 4096];

/// The baud rates of the burst case.
const BURST_BAUDS: [u32; 4] = [9600, 115_200, 1_000_000, 3_000_000];

/// Request/reply under stress: transactions, and the deadline of each.
const STRESS_TRANSACTIONS: usize = 5000;
const STRESS_DEADLINE: Duration = Duration::from_micros(3500);
/// The stress loop's request length (the incident's requests are 7 bytes).
const STRESS_REQUEST_LEN: usize = 7;

/// Single-byte round trips per latency-timer setting.
const LATENCY_TRIES: usize = 50;

/// Write timeout while a flow-control case holds the transmitter: long
/// enough for USB, short enough to keep the case quick.
const HOLD_WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the unplug case waits for each human step.
const HUMAN_WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Helpers on an open port.

/// Receives until nothing has arrived for `quiet` (or `limit` has passed).
fn collect_until_quiet(port: &mut Port, quiet: Duration, limit: Duration) -> Vec<u8> {
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return got;
        }
        match port.recv_timeout(quiet.min(left)) {
            Ok(chunk) => got.extend_from_slice(chunk.payload()),
            Err(Error::TimedOut { .. }) => return got,
            Err(Error::Overflow { lost_bytes }) => {
                panic!("{lost_bytes} received bytes dropped: the channel overflowed")
            }
            Err(e) => panic!("receiving after {} bytes: {e}", got.len()),
        }
    }
}

/// After a failed echo: drop what the chip still holds and what is still
/// on its way, so the next check starts clean.
fn settle(port: &mut Port) {
    let _ = port.purge_tx();
    let _ = collect_until_quiet(port, Duration::from_millis(100), Duration::from_secs(10));
    let _ = port.purge_rx();
    port.receiver().discard_pending();
}

/// The round-trip time of single-byte echoes, `n` of them, back to back.
fn round_trips(port: &mut Port, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let byte = [0x40 + (i % 32) as u8];
            let t = port
                .transact(&byte, ReplyEnd::Length(1), Duration::from_millis(500))
                .unwrap_or_else(|e| panic!("single-byte echo {i}: {e}"));
            assert_eq!(t.bytes(), byte, "single-byte echo {i}");
            t.latency()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The kernel driver bound to the adapter's first interface (`None`: unbound).
fn interface_driver(bus_port: &str) -> Option<String> {
    std::fs::read_link(format!("/sys/bus/usb/devices/{bus_port}:1.0/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// The adapter as `ftdi_rt::list` shows it; panics with the listing if absent.
fn listed(adapter: &Adapter) -> ftdi_rt::DeviceInfo {
    let found = ftdi_rt::list(&[]).unwrap_or_else(|e| panic!("ftdi_rt::list: {e}"));
    find_listed(&adapter.selector, &found).unwrap_or_else(|| {
        let all: Vec<String> = found.iter().map(ToString::to_string).collect();
        panic!(
            "{} is not among the FTDI devices found: {all:?} (a device marked [no permission] \
             needs the udev rule; its serial number cannot be read without it)",
            adapter.selector
        )
    })
}

// ---------------------------------------------------------------------------
// The cases.

/// `ftdi_rt::list` shows the named adapter, readable (udev rule in place);
/// it opens with the realtime reader; GET_MODEM_STATUS answers.
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn adapter_is_listed_and_opens() {
    let rig = common::rig("adapter_is_listed_and_opens");
    rig.run(Duration::from_secs(30), |adapter| {
        let info = listed(adapter);
        say!("  listed: {info}");
        assert!(
            info.accessible,
            "{info}: cannot be opened to read its strings; install the udev rule \
             (hil-tests/README.md, Permissions)"
        );
        let port = adapter.open();
        let t = port.transport_info();
        say!(
            "  actual baud {:?}, {:?} transfers in flight, notes {:?}",
            t.actual_baud,
            t.transfers_in_flight,
            t.notes
        );
        assert!(port.realtime().guaranteed, "reader: {}", port.realtime());
        let (modem, line) = port.query_status().expect("GET_MODEM_STATUS");
        say!("  modem status {modem}, line status {line:?}");
    });
}

/// All 256 byte values come back unchanged at 115200 8N1, without line errors.
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn echo_of_all_256_byte_values() {
    let rig = common::rig("echo_of_all_256_byte_values");
    rig.run(Duration::from_secs(30), |adapter| {
        let mut port = adapter.open();
        let all: Vec<u8> = (0..=255).collect();
        checks::echo(&mut port, &all, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("256 byte values: {e}"));
        let s = port.stats();
        assert_eq!(s.line_errors.total(), 0, "line errors: {:?}", s.line_errors);
        say!(
            "  256 byte values came back intact ({} packets, {} status-only)",
            s.packets,
            s.status_only_packets
        );
    });
}

/// Bursts of 1 to 4096 bytes, across packet and transfer boundaries, come
/// back intact at 9600, 115200, 1 M and 3 M Bd. Each burst's time limit is
/// twice its wire time plus 1 s (4096 bytes at 9600 Bd: ~4.3 s on the wire).
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn bursts_across_packet_boundaries_at_9600_115200_1m_3m_baud() {
    let rig = common::rig("bursts_across_packet_boundaries_at_9600_115200_1m_3m_baud");
    rig.run(Duration::from_secs(180), |adapter| {
        let mut port = adapter.open();
        let mut failures = Vec::new();
        for baud in BURST_BAUDS {
            let actual = port
                .set_baud_rate(baud)
                .unwrap_or_else(|e| panic!("set {baud} Bd: {e}"));
            let errors_before = port.stats().line_errors;
            let mut largest = None;
            for (k, &n) in BURST_SIZES.iter().enumerate() {
                let data = checks::pattern(n, k as u8);
                let limit =
                    wire_time(n, actual, LineProperties::EIGHT_N_ONE) * 2 + Duration::from_secs(1);
                match checks::echo_streaming(&mut port, &data, limit) {
                    Ok(took) => largest = Some((n, took)),
                    Err(e) => {
                        failures.push(format!("{baud} Bd (actual {actual}), {n} bytes: {e}"));
                        settle(&mut port);
                    }
                }
            }
            let errors = port.stats().line_errors;
            let (n, took) = largest.unwrap_or_default();
            say!(
                "  {baud} Bd (actual {actual}): {n} bytes back in {:.1} ms (wire time {:.1} ms); \
                 overruns {}, framing {}",
                ms(took),
                ms(wire_time(n, actual, LineProperties::EIGHT_N_ONE)),
                errors.overrun - errors_before.overrun,
                errors.framing - errors_before.framing,
            );
        }
        assert!(
            failures.is_empty(),
            "bursts that failed:\n{}",
            failures.join("\n")
        );
    });
}

/// The latency timer: the median single-byte echo round trip (50 tries, back
/// to back) with the timer at 1 ms is fast (< 5 ms) and at 16 ms much slower
/// (> 8 ms): the chip holds a short reply until its timer expires.
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn latency_timer_1ms_answers_much_faster_than_16ms() {
    let rig = common::rig("latency_timer_1ms_answers_much_faster_than_16ms");
    rig.run(Duration::from_secs(60), |adapter| {
        let mut port = adapter.open();
        if port.transport_info().chip == Some(Chip::Am) {
            // No latency timer to compare: what can be checked is that the
            // port says so instead of pretending to set it.
            port.set_latency_timer(16).expect("a skipped setting is not an error");
            let notes = port.transport_info().notes;
            assert!(
                notes.iter().any(|n| n.contains("has no latency timer")),
                "the FT232AM has no latency timer, and the notes must say so: {notes:?}"
            );
            say!("  the FT232AM has no latency timer; the port notes it");
            return;
        }
        let mut medians = Vec::new();
        for timer_ms in [1u8, 16] {
            port.set_latency_timer(timer_ms)
                .unwrap_or_else(|e| panic!("latency timer {timer_ms} ms: {e}"));
            std::thread::sleep(Duration::from_millis(50));
            round_trips(&mut port, 3); // warm-up
            let mut rtts = round_trips(&mut port, LATENCY_TRIES);
            let med = median(&mut rtts);
            say!(
                "  latency timer {timer_ms:>2} ms: round trip median {:.2} ms (min {:.2}, max {:.2}, n {})",
                ms(med),
                ms(rtts[0]),
                ms(rtts[rtts.len() - 1]),
                rtts.len()
            );
            medians.push(med);
        }
        port.set_latency_timer(1).expect("latency timer back to 1 ms");
        let (fast, slow) = (medians[0], medians[1]);
        assert!(
            fast < Duration::from_millis(5),
            "latency timer 1 ms: median round trip {:.2} ms, expected < 5 ms",
            ms(fast)
        );
        assert!(
            slow > Duration::from_millis(8),
            "latency timer 16 ms: median round trip {:.2} ms, expected > 8 ms (is the timer set?)",
            ms(slow)
        );
    });
}

/// The request/reply loop under CPU stress: one SCHED_OTHER hog per CPU, a
/// NoiseProbe watched by the port (misses a machine stall explains are
/// counted apart), 5000 transactions of a 7-byte request whose loopback
/// reply is the request itself, deadline 3.5 ms at 115200 Bd. Asserted:
/// no host-path miss (`Statistics::host_misses() == 0`) and no wrong reply.
/// The loop runs on a SCHED_FIFO 70 thread (below the reader's 80), as an
/// application with a deadline would; that is required too.
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn request_reply_under_cpu_stress_misses_no_deadline() {
    let rig = common::rig("request_reply_under_cpu_stress_misses_no_deadline");
    rig.run(Duration::from_secs(180), |adapter| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let probe = Arc::new(
            NoiseProbe::start()
                .unwrap_or_else(|e| panic!("the noise probe needs SCHED_FIFO 99: {e}")),
        );
        let app = RealtimeConfig::default()
            .with_priority(70)
            .with_lock_memory(false);
        let app_status = ftdi_rt::make_current_thread_realtime(&app)
            .unwrap_or_else(|e| panic!("the loop's thread (SCHED_FIFO 70): {e}"));
        let mut port = adapter.open();
        port.discount_stalls(probe.clone());
        let request = |i: usize| checks::pattern(STRESS_REQUEST_LEN, i as u8);
        let reply = |req: &[u8]| req.to_vec();
        // Warm-up, idle, not counted.
        checks::request_reply(&mut port, 50, STRESS_DEADLINE, request, reply)
            .unwrap_or_else(|e| panic!("warm-up: {e}"));
        let before = port.stats();
        let hogs = CpuHogs::start(cpus).expect("start CPU hogs");
        let r = checks::request_reply(
            &mut port,
            STRESS_TRANSACTIONS,
            STRESS_DEADLINE,
            request,
            reply,
        )
        .unwrap_or_else(|e| panic!("under stress: {e}"));
        drop(hogs);
        let after = port.stats();
        let misses = after.deadline_misses - before.deadline_misses;
        let platform = after.explained_by("machine") - before.explained_by("machine");
        let host = misses.saturating_sub(platform);
        say!(
            "  {} transactions, {cpus} hogs, deadline {} us: p50 {} us, p99 {} us, p99.9 {} us, \
             max {} us",
            r.n,
            STRESS_DEADLINE.as_micros(),
            r.percentile(50.0),
            r.percentile(99.0),
            r.percentile(99.9),
            r.latencies_us.last().copied().unwrap_or(0)
        );
        say!("  misses {misses}: {host} host path, {platform} explained by machine stalls");
        say!("  machine noise: {}", probe.summary());
        say!("  loop thread {app_status}; reader {}", port.realtime());
        assert_eq!(
            r.wrong, 0,
            "{} replies were not the request echoed",
            r.wrong
        );
        assert_eq!(
            after.host_misses() - before.host_misses(),
            0,
            "{host} deadline misses of the host path under stress (of {misses}; machine noise: {})",
            probe.summary()
        );
    });
}

/// Closing re-attaches ftdi_sio (when it was bound before opening; while
/// open the interface belongs to usbfs), and the adapter reopens and echoes,
/// three times over.
#[test]
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn close_reattaches_ftdi_sio_and_reopen_works() {
    let rig = common::rig("close_reattaches_ftdi_sio_and_reopen_works");
    rig.run(Duration::from_secs(60), |adapter| {
        let bus_port = listed(adapter).path();
        let before = interface_driver(&bus_port);
        say!("  {bus_port}:1.0 is bound to {before:?} before opening");
        for round in 1..=3 {
            let mut port = adapter.open();
            let during = interface_driver(&bus_port);
            assert_eq!(
                during.as_deref(),
                Some("usbfs"),
                "round {round}: while open, {bus_port}:1.0 is bound to {during:?}"
            );
            checks::echo(&mut port, b"open, echo, close", Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            drop(port);
            let back = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                interface_driver(&bus_port) == before
            });
            assert!(
                back,
                "round {round}: 5 s after closing, {bus_port}:1.0 is bound to {:?}, before \
                 opening it was {before:?}",
                interface_driver(&bus_port)
            );
        }
        say!("  opened, echoed and closed 3 times; the driver binding came back each time");
    });
}

/// Unplug during streaming (prompted; feature `hardware-unplug`): while echo
/// traffic streams, the person at the machine unplugs the adapter. The
/// stream must end with `Disconnected` within 100 ms of the last data, a
/// write afterwards must fail, closing must not hang; after the replug the
/// adapter is listed again, reopens and echoes.
#[test]
#[cfg_attr(
    not(feature = "hardware-unplug"),
    ignore = "prompts someone at the machine to unplug and replug the adapter: build with --features hardware-unplug (hil-tests/README.md)"
)]
fn unplug_during_streaming_disconnects_then_reopen_works() {
    let rig = common::rig("unplug_during_streaming_disconnects_then_reopen_works");
    rig.run(Duration::from_secs(240), |adapter| {
        let mut port = adapter.open();
        checks::echo(&mut port, b"before the unplug", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("before the unplug: {e}"));
        say!(
            "\n>>> unplug the adapter now ({}); waiting up to {} s\n",
            adapter.selector,
            HUMAN_WAIT.as_secs()
        );
        // stream_until_disconnected gives up after 20 s; three rounds make 60 s.
        let mut outcome = None;
        for round in 1..=3 {
            match checks::stream_until_disconnected(&mut port, || {}) {
                Ok(done) => {
                    outcome = Some(done);
                    break;
                }
                Err(e) if e.starts_with("no Disconnected within") => {
                    say!("  still connected after {} s ...", round * 20);
                }
                Err(e) => panic!("while streaming: {e}"),
            }
        }
        let (gap, bytes) = outcome.unwrap_or_else(|| {
            panic!(
                "no Disconnected within {} s: the adapter was not unplugged, or the unplug went \
                 unnoticed",
                HUMAN_WAIT.as_secs()
            )
        });
        let why = port.stats().disconnect.unwrap_or_default();
        say!(
            "  Disconnected {:.1} ms after the last data; {bytes} bytes streamed before ({why})",
            ms(gap)
        );
        assert!(
            gap <= Duration::from_millis(100),
            "Disconnected came {gap:?} after the last data (limit 100 ms)"
        );
        let write = port.write_all(b"x");
        assert!(write.is_err(), "a write after the unplug succeeded");
        let closing = Instant::now();
        drop(port);
        let closed = closing.elapsed();
        assert!(
            closed < Duration::from_secs(5),
            "closing the port of an unplugged adapter took {closed:?}"
        );
        say!("  write after the unplug failed ({write:?}); closed in {closed:?}");

        let same_port = if matches!(adapter.selector, Selector::Path { .. }) {
            " into the same USB port (it is named by its bus-port path)"
        } else {
            ""
        };
        say!(
            "\n>>> plug it back in{same_port}; waiting up to {} s\n",
            HUMAN_WAIT.as_secs()
        );
        let back = wait_until(HUMAN_WAIT, Duration::from_millis(250), || {
            ftdi_rt::list(&[])
                .ok()
                .and_then(|found| find_listed(&adapter.selector, &found))
                .is_some_and(|d| d.accessible)
        });
        assert!(
            back,
            "{} did not come back (listed and accessible) within {} s",
            adapter.selector,
            HUMAN_WAIT.as_secs()
        );
        // udev may still be settling permissions and ftdi_sio binding it.
        let start = Instant::now();
        let mut port = loop {
            match Port::open_usb(&adapter.selector, &PortConfig::default()) {
                Ok(port) => break port,
                Err(e @ Error::Realtime(_)) => panic!("reopen: {e}"),
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    panic!("reopen after the replug: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        checks::echo(&mut port, b"back after the replug", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("after the replug: {e}"));
        say!(
            "  back: reopened {} after {:?} and echoed",
            port.transport_info().description,
            start.elapsed()
        );
    });
}
