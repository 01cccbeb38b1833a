//! Hardware-in-the-loop cases on a real FTDI adapter, through ftdi-rt's
//! userspace driver (`Port::open_usb`).
//!
//! The rig: the adapter's TXD wired to its RXD, so everything sent comes
//! back; optionally the handshake jumpers RTS#→CTS# and DTR#→DSR#. See
//! `hil-tests/README.md` for the wiring, permissions and realtime set-up.
//!
//! ```text
//! FTDI_RT_HIL_DEVICE=<serial|bus-port> cargo test --release -p ftdi-rt-hil --test real_adapter -- --test-threads=1
//! ```
//!
//! * `FTDI_RT_HIL_DEVICE` names the adapter, parsed by `ftdi_rt::Selector`:
//!   a serial number (`FT1ABCDE`; `serial:1234` if it is all digits) or a
//!   bus-port path (`1-1.2`). Unset: every case is skipped and says so.
//! * `FTDI_RT_HIL_JUMPERS=1`: RTS→CTS and DTR→DSR are wired; enables the
//!   hardware flow-control and modem-line cases.
//! * `FTDI_RT_HIL_UNPLUG=1`: enables the prompted unplug case (someone must
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
//! captures `eprintln!`, and the skip notices, prompts and measurements must
//! show in a normal run.

mod common;

use std::time::{Duration, Instant};

use common::{Adapter, find_listed, median, say, wait_until, wire_time};
use ftdi_rt::{
    Chip, DataBits, Error, FlowControl, LineProperties, Link, ModemStatus, Parity, Port,
    PortConfig, RealtimeConfig, ReplyEnd, Selector, StopBits,
};
use ftdi_rt_hil::checks::{self, Hogs};

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

/// Echo in which only the bits under `mask` must match (0x7F with 7 data bits).
fn echo_masked(port: &mut Port, data: &[u8], mask: u8, limit: Duration) -> Result<(), String> {
    port.receiver().discard_pending();
    port.write_all(data)
        .map_err(|e| format!("write {} bytes: {e}", data.len()))?;
    let start = Instant::now();
    let mut got = Vec::with_capacity(data.len());
    while got.len() < data.len() {
        match port.recv_timeout(limit.saturating_sub(start.elapsed())) {
            Ok(chunk) => got.extend_from_slice(chunk.payload()),
            Err(Error::TimedOut { .. }) => {
                return Err(format!(
                    "{} of {} bytes came back within {limit:?}",
                    got.len(),
                    data.len()
                ));
            }
            Err(e) => return Err(format!("after {} of {} bytes: {e}", got.len(), data.len())),
        }
    }
    if got.len() > data.len() {
        return Err(format!(
            "{} bytes too many came back",
            got.len() - data.len()
        ));
    }
    match got.iter().zip(data).position(|(a, b)| a & mask != b & mask) {
        None => Ok(()),
        Some(i) => Err(format!(
            "byte {i}: sent {:#04x}, got {:#04x} (compared under mask {mask:#04x})",
            data[i], got[i]
        )),
    }
}

/// Polls GET_MODEM_STATUS until `read` of it is `level` (up to 500 ms).
fn poll_shows(port: &Port, read: fn(ModemStatus) -> bool, level: bool) -> bool {
    wait_until(Duration::from_millis(500), Duration::from_millis(5), || {
        let (modem, _) = port.poll_status().expect("poll the modem status");
        read(modem) == level
    })
}

/// Waits until the status header of the packets the reader receives shows
/// `read` = `level` (with the latency timer at 1 ms an idle chip sends a
/// status-only packet every millisecond, and one at once on a line change).
fn headers_show(port: &Port, read: fn(ModemStatus) -> bool, level: bool) -> bool {
    wait_until(Duration::from_millis(500), Duration::from_millis(1), || {
        read(port.latest_status().0) == level
    })
}

/// With flow control holding the transmitter (`input` deasserted):
/// a short write is taken into the chip's TX FIFO but nothing goes out; a
/// write larger than any FTDI TX FIFO times out instead of hanging; after
/// `release`, everything the chip accepted comes out, in order and complete.
fn hold_then_release(port: &mut Port, input: &str, release: impl FnOnce(&Link)) {
    port.receiver().discard_pending();
    let held: &[u8] = b"held by flow control";
    port.write_all(held).unwrap_or_else(|e| {
        panic!(
            "a {}-byte write must fit the chip's TX FIFO while {input} holds TX: {e}",
            held.len()
        )
    });
    match port.recv_timeout(Duration::from_millis(300)) {
        Err(Error::TimedOut { .. }) => {}
        Ok(chunk) => panic!(
            "{} bytes came back while {input} was deasserted: flow control did not hold TX",
            chunk.payload().len()
        ),
        Err(e) => panic!("while TX was held: {e}"),
    }
    let big = checks::pattern(16 * 1024, 3);
    let before = port.stats().bytes_written;
    let start = Instant::now();
    let outcome = port.write_all(&big);
    let took = start.elapsed();
    let accepted = (port.stats().bytes_written - before) as usize;
    assert!(
        matches!(outcome, Err(Error::TimedOut { .. })),
        "a 16 KiB write while {input} holds TX: expected TimedOut, got {outcome:?} \
         ({accepted} bytes accepted)"
    );
    assert!(
        took < HOLD_WRITE_TIMEOUT + Duration::from_secs(1),
        "the held write took {took:?} to time out (write timeout {HOLD_WRITE_TIMEOUT:?})"
    );
    say!(
        "  TX held: nothing came back; a 16 KiB write timed out after {took:?} with \
         {accepted} bytes in the chip's TX FIFO"
    );
    release(port.link());
    let mut want = held.to_vec();
    want.extend_from_slice(&big[..accepted]);
    let baud = port.transport_info().actual_baud.unwrap_or(115_200);
    let limit =
        wire_time(want.len(), baud, LineProperties::EIGHT_N_ONE) * 2 + Duration::from_secs(2);
    let got = collect_until_quiet(port, Duration::from_millis(300), limit);
    if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "after the release, byte {at} is {:#04x}, expected {:#04x}",
            got[at], want[at]
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "after the release {} bytes came out; expected the {} held bytes plus the {accepted} \
         the driver counted as accepted (Statistics::bytes_written)",
        got.len(),
        held.len()
    );
    say!(
        "  released: all {} held bytes came out in order",
        want.len()
    );
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
fn adapter_is_listed_and_opens() {
    let Some(rig) = common::rig("adapter_is_listed_and_opens") else {
        return;
    };
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
        let (modem, line) = port.poll_status().expect("GET_MODEM_STATUS");
        say!("  modem status {modem}, line status {line:?}");
    });
}

/// All 256 byte values come back unchanged at 115200 8N1, without line errors.
#[test]
fn echo_of_all_256_byte_values() {
    let Some(rig) = common::rig("echo_of_all_256_byte_values") else {
        return;
    };
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
fn bursts_across_packet_boundaries_at_9600_115200_1m_3m_baud() {
    let Some(rig) = common::rig("bursts_across_packet_boundaries_at_9600_115200_1m_3m_baud") else {
        return;
    };
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

/// Every line setting: 7/8 data bits × none/odd/even/mark/space parity ×
/// 1/1.5/2 stop bits. Each is set and a pattern of all byte values echoed
/// (with 7 data bits only the low 7 bits are compared). A setting the chip
/// refuses with a STALL is a finding, reported, not a failure; the port must
/// work after it. What loopback cannot show: that the framing on the wire
/// is what a third party expects (TX and RX share the setting).
#[test]
fn every_line_setting_echoes_or_is_reported_as_rejected() {
    let Some(rig) = common::rig("every_line_setting_echoes_or_is_reported_as_rejected") else {
        return;
    };
    rig.run(Duration::from_secs(120), |adapter| {
        let mut port = adapter.open();
        let all: Vec<u8> = (0..=255).collect();
        let (mut passed, mut rejected, mut failures, mut with_errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for data_bits in [DataBits::Seven, DataBits::Eight] {
            for parity in [
                Parity::None,
                Parity::Odd,
                Parity::Even,
                Parity::Mark,
                Parity::Space,
            ] {
                for stop_bits in [StopBits::One, StopBits::OnePointFive, StopBits::Two] {
                    let line = LineProperties::new(data_bits, parity, stop_bits);
                    match port.set_line_properties(line) {
                        Ok(()) => {}
                        Err(Error::Stall { .. }) => {
                            rejected.push(line.to_string());
                            continue;
                        }
                        Err(e) => {
                            failures.push(format!("{line}: setting it failed: {e}"));
                            continue;
                        }
                    }
                    let mask = if data_bits == DataBits::Seven {
                        0x7F
                    } else {
                        0xFF
                    };
                    let before = port.stats().line_errors;
                    match echo_masked(&mut port, &all, mask, Duration::from_secs(2)) {
                        Ok(()) => passed.push(line.to_string()),
                        Err(e) => {
                            failures.push(format!("{line}: {e}"));
                            settle(&mut port);
                        }
                    }
                    let after = port.stats().line_errors;
                    if after.total() > before.total() {
                        with_errors.push(format!(
                            "{line} (PE {}, FE {}, OE {})",
                            after.parity - before.parity,
                            after.framing - before.framing,
                            after.overrun - before.overrun
                        ));
                    }
                }
            }
        }
        say!("  echoed: {}", passed.join(" "));
        say!(
            "  rejected by the chip (STALL): {}",
            if rejected.is_empty() {
                "none".to_string()
            } else {
                rejected.join(" ")
            }
        );
        if !with_errors.is_empty() {
            say!(
                "  FINDING: line errors reported in loopback: {}",
                with_errors.join(", ")
            );
        }
        port.set_line_properties(LineProperties::EIGHT_N_ONE)
            .expect("back to 8N1");
        checks::echo(&mut port, b"8N1 again", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("after all line settings, 8N1: {e}"));
        assert!(
            failures.is_empty(),
            "line settings that failed:\n{}",
            failures.join("\n")
        );
    });
}

/// DTR/DSR flow control (jumper DTR#→DSR#). The jumper is checked first
/// (DSR follows DTR), and without flow control a deasserted DSR does not
/// stop TX. With DTR/DSR flow control and DTR low: nothing is sent, a write
/// larger than the TX FIFO times out; DTR high: the held bytes arrive, all
/// of them, in order. If the chip turns out to drive DTR itself in this mode
/// (DSR stays asserted after `set_dtr(false)`), the hold cannot be produced
/// through the jumper: that is reported, and only the data path is checked.
#[test]
fn dtr_dsr_flow_control_holds_and_releases_tx() {
    let Some(rig) = common::rig_with_jumpers("dtr_dsr_flow_control_holds_and_releases_tx") else {
        return;
    };
    rig.run(Duration::from_secs(60), |adapter| {
        let mut port =
            adapter.open_with(&PortConfig::default().with_write_timeout(HOLD_WRITE_TIMEOUT));
        assert!(
            poll_shows(&port, ModemStatus::dsr, true),
            "DSR is not asserted with DTR asserted: is the DTR#→DSR# jumper in place?"
        );
        port.set_dtr(false).expect("DTR off");
        assert!(
            poll_shows(&port, ModemStatus::dsr, false),
            "DSR stays asserted with DTR off: is the DTR#→DSR# jumper in place?"
        );
        checks::echo(
            &mut port,
            b"no flow control: DSR is ignored",
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("without flow control, DSR deasserted: {e}"));
        port.set_flow_control(FlowControl::DtrDsr)
            .expect("DTR/DSR flow control");
        std::thread::sleep(Duration::from_millis(20));
        if poll_shows(&port, ModemStatus::dsr, true) {
            say!(
                "  FINDING: with DTR/DSR flow control on, DSR is asserted although DTR was set \
                 off: this chip drives DTR itself, so the jumper cannot hold TX"
            );
            checks::echo(&mut port, b"DTR/DSR flow control", Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("DTR/DSR flow control on: {e}"));
            return;
        }
        hold_then_release(&mut port, "DSR", |link| {
            link.set_dtr(true).expect("DTR on");
        });
        port.set_flow_control(FlowControl::None)
            .expect("flow control off");
        checks::echo(&mut port, b"after the hold", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("after the hold: {e}"));
    });
}

/// RTS/CTS flow control (jumper RTS#→CTS#). The jumper is checked first
/// (CTS follows RTS), and without flow control a deasserted CTS does not
/// stop TX. With RTS/CTS on, the chip drives RTS from its receive buffer
/// (ftdi_sio.h: RTS set by the host is ignored in this mode), so data flows:
/// 4096-byte bursts at 115200 and 3 MBd come back intact and the overrun
/// count is reported. Then `set_rts(false)`: if the chip ignores it (CTS
/// stays asserted) data still flows; if it obeys, TX must hold until
/// `set_rts(true)` as in the DTR/DSR case. What loopback cannot produce: a
/// far end that deasserts CTS on its own while the chip drives RTS.
#[test]
fn rts_cts_flow_control_lets_data_through() {
    let Some(rig) = common::rig_with_jumpers("rts_cts_flow_control_lets_data_through") else {
        return;
    };
    rig.run(Duration::from_secs(60), |adapter| {
        let mut port =
            adapter.open_with(&PortConfig::default().with_write_timeout(HOLD_WRITE_TIMEOUT));
        assert!(
            poll_shows(&port, ModemStatus::cts, true),
            "CTS is not asserted with RTS asserted: is the RTS#→CTS# jumper in place?"
        );
        port.set_rts(false).expect("RTS off");
        assert!(
            poll_shows(&port, ModemStatus::cts, false),
            "CTS stays asserted with RTS off: is the RTS#→CTS# jumper in place?"
        );
        checks::echo(
            &mut port,
            b"no flow control: CTS is ignored",
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("without flow control, CTS deasserted: {e}"));
        port.set_rts(true).expect("RTS on");
        port.set_flow_control(FlowControl::RtsCts)
            .expect("RTS/CTS flow control");
        for baud in [115_200, 3_000_000] {
            let actual = port
                .set_baud_rate(baud)
                .unwrap_or_else(|e| panic!("set {baud} Bd: {e}"));
            let before = port.stats().line_errors.overrun;
            let data = checks::pattern(4096, 9);
            let limit = wire_time(data.len(), actual, LineProperties::EIGHT_N_ONE) * 2
                + Duration::from_secs(1);
            let took = checks::echo_streaming(&mut port, &data, limit)
                .unwrap_or_else(|e| panic!("RTS/CTS at {baud} Bd: {e}"));
            say!(
                "  RTS/CTS at {baud} Bd: 4096 bytes back in {:.1} ms, overruns {}",
                ms(took),
                port.stats().line_errors.overrun - before
            );
        }
        port.set_baud_rate(115_200).expect("115200 Bd");
        port.set_rts(false).expect("RTS off");
        std::thread::sleep(Duration::from_millis(20));
        if poll_shows(&port, ModemStatus::cts, true) {
            say!(
                "  set_rts(false) under RTS/CTS: ignored, the chip drives RTS (CTS stays asserted)"
            );
            checks::echo(&mut port, b"RTS driven by the chip", Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("RTS/CTS after set_rts(false): {e}"));
        } else {
            say!("  set_rts(false) under RTS/CTS: obeyed (CTS deasserted); TX must hold");
            hold_then_release(&mut port, "CTS", |link| {
                link.set_rts(true).expect("RTS on");
            });
        }
        port.set_flow_control(FlowControl::None)
            .expect("flow control off");
        port.set_rts(true).expect("RTS on");
        checks::echo(&mut port, b"after RTS/CTS", Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("after RTS/CTS: {e}"));
    });
}

/// XON/XOFF flow control (no jumpers needed). Asserted: with XON/XOFF on,
/// data without the XON (0x11) and XOFF (0x13) characters echoes intact,
/// short and as a 4096-byte burst. Observed and reported, not asserted: in
/// loopback the XOFF the chip sends reaches its own receiver, as one from
/// the far end would; whether that pauses TX, whether the character reaches
/// the host, and whether switching flow control off resumes TX are chip
/// behaviour. Not testable in loopback: an XOFF/XON pair from an
/// independent far end, and the XOFF the chip sends when its receive buffer
/// fills (the reader always drains it). Afterwards the port must work again,
/// or at the latest after reopening (opening resets the chip).
#[test]
fn xon_xoff_flow_control_lets_ordinary_data_through() {
    let Some(rig) = common::rig("xon_xoff_flow_control_lets_ordinary_data_through") else {
        return;
    };
    rig.run(Duration::from_secs(60), |adapter| {
        const XON: u8 = 0x11;
        const XOFF: u8 = 0x13;
        let mut port = adapter.open();
        port.set_flow_control(FlowControl::XON_XOFF)
            .expect("XON/XOFF flow control");
        let plain = |data: Vec<u8>| -> Vec<u8> {
            data.into_iter()
                .filter(|b| *b != XON && *b != XOFF)
                .collect()
        };
        let values = plain((0..=255).collect());
        checks::echo(&mut port, &values, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("XON/XOFF on, 254 byte values: {e}"));
        let burst = plain(checks::pattern(4096, 5));
        let limit = wire_time(burst.len(), 115_200, LineProperties::EIGHT_N_ONE) * 2
            + Duration::from_secs(1);
        checks::echo_streaming(&mut port, &burst, limit)
            .unwrap_or_else(|e| panic!("XON/XOFF on, {}-byte burst: {e}", burst.len()));
        say!("  XON/XOFF on: ordinary data echoes intact");

        // Observed: XOFF through the loop.
        port.receiver().discard_pending();
        let mut probe = vec![XOFF];
        probe.extend_from_slice(b"after XOFF");
        let written = port.write_all(&probe);
        let held = collect_until_quiet(
            &mut port,
            Duration::from_millis(300),
            Duration::from_secs(2),
        );
        say!(
            "  observed: wrote XOFF + {:?} ({written:?}); came back with XON/XOFF on: {held:02x?}",
            "after XOFF"
        );
        port.set_flow_control(FlowControl::None)
            .expect("flow control off");
        let after = collect_until_quiet(
            &mut port,
            Duration::from_millis(300),
            Duration::from_secs(2),
        );
        say!("  observed: then with flow control off: {after:02x?}");
        settle(&mut port);
        if let Err(e) = checks::echo(&mut port, b"flow control off", Duration::from_secs(2)) {
            say!("  observed: the port did not echo after flow control off ({e}); reopening");
            drop(port);
            let mut port = adapter.open();
            checks::echo(&mut port, b"after reopening", Duration::from_secs(2))
                .unwrap_or_else(|e| panic!("after XON/XOFF and reopening: {e}"));
        }
    });
}

/// Modem lines (jumpers): `set_dtr(false/true)` is seen as DSR and
/// `set_rts(false/true)` as CTS, both by GET_MODEM_STATUS (`poll_status`)
/// and in the status header of the packets (`latest_status`), and
/// `Statistics::modem_changes` counts the (at least four) changes.
#[test]
fn modem_lines_show_in_poll_and_packet_headers() {
    let Some(rig) = common::rig_with_jumpers("modem_lines_show_in_poll_and_packet_headers") else {
        return;
    };
    rig.run(Duration::from_secs(30), |adapter| {
        let port = adapter.open();
        // Let the first packets arrive so the count starts from a known state.
        assert!(
            headers_show(&port, ModemStatus::dsr, true)
                && headers_show(&port, ModemStatus::cts, true),
            "after opening (DTR and RTS asserted) the packet headers do not show DSR and CTS \
             ({}): are the jumpers in place?",
            port.latest_status().0
        );
        let changes_before = port.stats().modem_changes;
        /// An output, the input it is wired to, how to set the one and read the other.
        type Jumper = (
            &'static str,
            &'static str,
            fn(&Link, bool) -> ftdi_rt::Result<()>,
            fn(ModemStatus) -> bool,
        );
        let jumpers: [Jumper; 2] = [
            ("DTR", "DSR", Link::set_dtr, ModemStatus::dsr),
            ("RTS", "CTS", Link::set_rts, ModemStatus::cts),
        ];
        for (output, input, set, read) in jumpers {
            for level in [false, true] {
                set(port.link(), level).unwrap_or_else(|e| panic!("set {output} {level}: {e}"));
                assert!(
                    poll_shows(&port, read, level),
                    "poll_status: {input} is not {level} 500 ms after {output} was set {level} \
                     (is the {output}#→{input}# jumper in place?)"
                );
                assert!(
                    headers_show(&port, read, level),
                    "packet headers: {input} is not {level} 500 ms after {output} was set {level} \
                     (latest {})",
                    port.latest_status().0
                );
                say!("  {output} {level} → {input} {level} (poll and packet headers)");
            }
        }
        let changes = port.stats().modem_changes - changes_before;
        assert!(
            changes >= 4,
            "Statistics::modem_changes rose by {changes}, expected at least 4"
        );
        say!("  Statistics::modem_changes counted {changes} changes (4 made)");
    });
}

/// The latency timer: the median single-byte echo round trip (50 tries, back
/// to back) with the timer at 1 ms is fast (< 5 ms) and at 16 ms much slower
/// (> 8 ms): the chip holds a short reply until its timer expires.
#[test]
fn latency_timer_1ms_answers_much_faster_than_16ms() {
    let Some(rig) = common::rig("latency_timer_1ms_answers_much_faster_than_16ms") else {
        return;
    };
    rig.run(Duration::from_secs(60), |adapter| {
        let mut port = adapter.open();
        if port.transport_info().chip == Some(Chip::Am) {
            say!("SKIPPED: the FT232AM has no latency timer");
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
fn request_reply_under_cpu_stress_misses_no_deadline() {
    let Some(rig) = common::rig("request_reply_under_cpu_stress_misses_no_deadline") else {
        return;
    };
    rig.run(Duration::from_secs(180), |adapter| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let probe = ftdi_rt::NoiseProbe::start()
            .unwrap_or_else(|e| panic!("the noise probe needs SCHED_FIFO 99: {e}"));
        let app = RealtimeConfig::default()
            .with_priority(70)
            .with_lock_memory(false);
        let app_status = ftdi_rt::make_current_thread_realtime(&app)
            .unwrap_or_else(|e| panic!("the loop's thread (SCHED_FIFO 70): {e}"));
        let mut port = adapter.open();
        port.watch_platform(&probe);
        let request = |i: usize| checks::pattern(STRESS_REQUEST_LEN, i as u8);
        let reply = |req: &[u8]| req.to_vec();
        // Warm-up, idle, not counted.
        checks::request_reply(&mut port, 50, STRESS_DEADLINE, request, reply)
            .unwrap_or_else(|e| panic!("warm-up: {e}"));
        let before = port.stats();
        let hogs = Hogs::start(cpus);
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
        let platform = after.platform_late_misses - before.platform_late_misses;
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
fn close_reattaches_ftdi_sio_and_reopen_works() {
    let Some(rig) = common::rig("close_reattaches_ftdi_sio_and_reopen_works") else {
        return;
    };
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

/// Unplug during streaming (prompted; `FTDI_RT_HIL_UNPLUG=1`): while echo
/// traffic streams, the person at the machine unplugs the adapter. The
/// stream must end with `Disconnected` within 100 ms of the last data, a
/// write afterwards must fail, closing must not hang; after the replug the
/// adapter is listed again, reopens and echoes.
#[test]
fn unplug_during_streaming_disconnects_then_reopen_works() {
    let Some(rig) =
        common::rig_with_unplug("unplug_during_streaming_disconnects_then_reopen_works")
    else {
        return;
    };
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
