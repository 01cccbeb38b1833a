//! The UART side on a virtual clock: TX paced at the baud rate, flow
//! control holding the transmitter, THRE/TEMT, checked against the engine's
//! own record of when each byte crossed the wire.

use std::time::Duration;

use ftdi_rt::proto::{ControlRequest, DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::{ChannelEngine, Line, ModemLines, SimConfig, WireByte, WireDirection};
use ftdi_rt::{FlowControl, LineStatus};

use crate::drive::{A, T0, engine, run, setup, wire};

const MS: Duration = Duration::from_millis(1);

/// Nothing connected: what the chip sends goes nowhere.
fn open_line() -> impl ftdi_rt::sim::Device {
    |_: WireByte, _: &mut Line<'_>| {}
}

fn line_status(e: &mut ChannelEngine) -> u8 {
    let reply = e
        .handle_control(e.now(), &ControlRequest::poll_modem_status(A))
        .unwrap();
    reply.bytes()[1]
}

#[test]
fn tx_is_paced_at_the_baud_rate_back_to_back() {
    let even_two = LineProperties {
        data_bits: DataBits::Eight,
        parity: Parity::Even,
        stop_bits: StopBits::Two,
    };
    for (line, bits) in [(LineProperties::EIGHT_N_ONE, 10.0), (even_two, 12.0)] {
        let mut e = engine(open_line(), SimConfig::default());
        setup(&mut e, 115_200, 16);
        e.handle_control(T0, &ControlRequest::line_properties(A, line, false))
            .unwrap();
        let data: Vec<u8> = (0..600).map(|i| (i * 7) as u8).collect();
        let mut out = &data[..];
        run(&mut e, 0, &mut out, T0 + Duration::from_secs(1));
        assert!(out.is_empty(), "the FIFO took every byte as it drained");
        let tx = wire(&e, WireDirection::ToDevice);
        assert_eq!(tx.iter().map(|w| w.byte).collect::<Vec<_>>(), data);
        assert_eq!(tx[0].start, T0);
        assert!(
            tx.windows(2).all(|w| w[1].start == w[0].end),
            "{line}: no gaps"
        );
        let frame = bits / f64::from(e.state().baud);
        for w in &tx {
            let len = w.end.saturating_since(w.start).as_secs_f64();
            assert!((len - frame).abs() < 1e-9, "{line}: a frame of {len} s");
        }
        let total = tx[599].end.saturating_since(T0).as_secs_f64();
        assert!((total - 600.0 * frame).abs() < frame, "{line}: {total} s");
        assert_eq!(e.counters().bytes_from_host, 600);
        assert_eq!(line_status(&mut e) & 0x60, 0x60, "drained: THRE and TEMT");
    }
}

#[test]
fn the_fifo_takes_what_fits_and_thre_temt_follow_it() {
    let mut e = engine(open_line(), SimConfig::default());
    setup(&mut e, 9600, 16);
    let fifo = ftdi_rt::Chip::Ft232R.usb_to_uart_fifo();
    assert_eq!(e.write(T0, &[0u8; 1000]), fifo, "a full FIFO NAKs the rest");
    assert_eq!(
        (e.tx_queued(), e.tx_space()),
        (fifo - 1, 1),
        "one byte on the wire"
    );
    assert_eq!(line_status(&mut e) & 0x60, 0);
    // Run until the last byte leaves the FIFO for the wire.
    while e.tx_queued() > 0 {
        let t = e.poll_timeout().unwrap();
        e.handle_timeout(t);
    }
    let frame = 10e9 / f64::from(e.state().baud);
    let started = e.now().saturating_since(T0).as_nanos() as f64 / frame;
    assert!(
        (started - (fifo - 1) as f64).abs() < 0.01,
        "after {started} characters"
    );
    assert_eq!(
        line_status(&mut e) & 0x60,
        LineStatus::THRE,
        "the last byte is on the wire"
    );
    e.handle_timeout(e.now() + MS * 2);
    assert_eq!(line_status(&mut e) & 0x60, 0x60);
}

#[test]
fn rts_cts_holds_the_transmitter_until_cts() {
    let mut e = engine(open_line(), SimConfig::default());
    setup(&mut e, 115_200, 1);
    e.handle_control(T0, &ControlRequest::flow_control(A, FlowControl::RtsCts))
        .unwrap();
    e.write(T0, b"held");
    e.handle_timeout(T0 + MS * 30);
    assert!(
        wire(&e, WireDirection::ToDevice).is_empty(),
        "CTS low: nothing leaves"
    );
    assert_eq!(
        line_status(&mut e) & LineStatus::THRE,
        0,
        "the FIFO holds data"
    );
    let cts = T0 + MS * 30;
    let lines = ModemLines {
        cts: true,
        ..ModemLines::default()
    };
    e.set_modem_lines(cts, lines);
    e.handle_timeout(cts + MS * 10);
    let tx = wire(&e, WireDirection::ToDevice);
    assert_eq!(tx.iter().map(|w| w.byte).collect::<Vec<_>>(), b"held");
    assert_eq!(tx[0].start, cts, "the first byte leaves when CTS rises");
    assert_eq!(line_status(&mut e) & 0x60, 0x60);
}

#[test]
fn xoff_from_the_device_stops_tx_after_the_byte_on_the_wire_and_xon_resumes() {
    // The device sends XOFF after the first byte and XON 1 ms after the third.
    let device = |byte: WireByte, line: &mut Line<'_>| match byte.byte {
        b'0' => line.send_at(byte.end, &[0x13]),
        b'2' => line.send_at(byte.end + MS, &[0x11]),
        _ => {}
    };
    let mut e = engine(device, SimConfig::default());
    setup(&mut e, 115_200, 16);
    e.handle_control(T0, &ControlRequest::flow_control(A, FlowControl::XON_XOFF))
        .unwrap();
    e.write(T0, b"0123456789");
    e.handle_timeout(T0 + MS * 10);
    let tx = wire(&e, WireDirection::ToDevice);
    let rx = wire(&e, WireDirection::FromDevice);
    assert_eq!(tx.len(), 10);
    // XOFF arrives as byte 1 ends; byte 2 had already started with it.
    assert_eq!(rx[0].end, tx[1].end);
    assert_eq!(tx[2].start, tx[1].end);
    let xon = rx[1];
    assert_eq!(xon.byte, 0x11);
    assert_eq!(tx[3].start, xon.end, "held until XON has arrived");
}

#[test]
fn break_holds_the_transmitter_until_it_ends() {
    let mut e = engine(open_line(), SimConfig::default());
    setup(&mut e, 115_200, 16);
    let line = LineProperties::EIGHT_N_ONE;
    e.handle_control(T0, &ControlRequest::line_properties(A, line, true))
        .unwrap();
    e.write(T0, b"x");
    e.handle_timeout(T0 + MS * 5);
    assert!(wire(&e, WireDirection::ToDevice).is_empty());
    let end = T0 + MS * 5;
    e.handle_control(end, &ControlRequest::line_properties(A, line, false))
        .unwrap();
    e.handle_timeout(end + MS);
    assert_eq!(wire(&e, WireDirection::ToDevice)[0].start, end);
}
