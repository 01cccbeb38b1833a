//! Flow control and modem lines, with the optional RTS→CTS and DTR→DSR
//! jumpers.

use super::*;

/// Polls GET_MODEM_STATUS until `read` of it is `level` (up to 500 ms).
fn poll_shows(port: &Port, read: fn(ModemStatus) -> bool, level: bool) -> bool {
    wait_until(Duration::from_millis(500), Duration::from_millis(5), || {
        let (modem, _) = port.query_status().expect("poll the modem status");
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
/// a short write is taken but nothing goes out; a write larger than any
/// FTDI TX FIFO plus the driver's write queue (ftdi-rt's USB path queues up
/// to 12 KiB behind the chip) times out instead of hanging; after
/// `release`, everything the chip accepted comes out, in order and complete.
fn hold_then_release(port: &mut Port, input: &str, release: impl FnOnce(&Writer)) {
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
    let big = checks::pattern(64 * 1024, 3);
    let before = port.stats().bytes_written;
    let start = Instant::now();
    let outcome = port.write_all(&big);
    let took = start.elapsed();
    let accepted = (port.stats().bytes_written - before) as usize;
    assert!(
        matches!(outcome, Err(Error::TimedOut { .. })),
        "a 64 KiB write while {input} holds TX: expected TimedOut, got {outcome:?} \
         ({accepted} bytes accepted)"
    );
    assert!(
        took < HOLD_WRITE_TIMEOUT + Duration::from_secs(1),
        "the held write took {took:?} to time out (write timeout {HOLD_WRITE_TIMEOUT:?})"
    );
    say!(
        "  TX held: nothing came back; a 64 KiB write timed out after {took:?} with \
         {accepted} bytes taken (chip TX FIFO and driver queue)"
    );
    release(port.writer());
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

/// DTR/DSR flow control (jumper DTR#→DSR#). The jumper is checked first
/// (DSR follows DTR), and without flow control a deasserted DSR does not
/// stop TX. With DTR/DSR flow control and DTR low: nothing is sent, a write
/// larger than the TX FIFO times out; DTR high: the held bytes arrive, all
/// of them, in order. If the chip turns out to drive DTR itself in this mode
/// (DSR stays asserted after `set_dtr(false)`), the hold cannot be produced
/// through the jumper: that is reported, and only the data path is checked.
#[test]
#[cfg_attr(
    not(feature = "hardware-jumpers"),
    ignore = "needs an adapter with TXD-RXD, RTS#-CTS# and DTR#-DSR# wired: build with --features hardware-jumpers (hil-tests/README.md)"
)]
fn dtr_dsr_flow_control_holds_and_releases_tx() {
    let rig = common::rig("dtr_dsr_flow_control_holds_and_releases_tx");
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
        hold_then_release(&mut port, "DSR", |writer| {
            writer.set_dtr(true).expect("DTR on");
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
#[cfg_attr(
    not(feature = "hardware-jumpers"),
    ignore = "needs an adapter with TXD-RXD, RTS#-CTS# and DTR#-DSR# wired: build with --features hardware-jumpers (hil-tests/README.md)"
)]
fn rts_cts_flow_control_lets_data_through() {
    let rig = common::rig("rts_cts_flow_control_lets_data_through");
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
            hold_then_release(&mut port, "CTS", |writer| {
                writer.set_rts(true).expect("RTS on");
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
#[cfg_attr(
    not(feature = "hardware-tests"),
    ignore = "needs an FTDI adapter with TXD wired to RXD: build with --features hardware-tests and name it in FTDI_RT_HIL_DEVICE (hil-tests/README.md)"
)]
fn xon_xoff_flow_control_lets_ordinary_data_through() {
    let rig = common::rig("xon_xoff_flow_control_lets_ordinary_data_through");
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
#[cfg_attr(
    not(feature = "hardware-jumpers"),
    ignore = "needs an adapter with TXD-RXD, RTS#-CTS# and DTR#-DSR# wired: build with --features hardware-jumpers (hil-tests/README.md)"
)]
fn modem_lines_show_in_poll_and_packet_headers() {
    let rig = common::rig("modem_lines_show_in_poll_and_packet_headers");
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
            fn(&Writer, bool) -> ftdi_rt::Result<()>,
            fn(ModemStatus) -> bool,
        );
        let jumpers: [Jumper; 2] = [
            ("DTR", "DSR", Writer::set_dtr, ModemStatus::dsr),
            ("RTS", "CTS", Writer::set_rts, ModemStatus::cts),
        ];
        for (output, input, set, read) in jumpers {
            for level in [false, true] {
                set(port.writer(), level).unwrap_or_else(|e| panic!("set {output} {level}: {e}"));
                assert!(
                    poll_shows(&port, read, level),
                    "query_status: {input} is not {level} 500 ms after {output} was set {level} \
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
