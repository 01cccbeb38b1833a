//! The timing features through a whole port on the simulated chip (real
//! time: the reader thread and the chip's thread run on the wall clock).
//! Timing bounds are checked in virtual time (`tests/timing/`); here only
//! what holds whatever the machine's load: ordering and plumbing.

mod common;

use std::time::Duration;

use ftdi_rt::sim::{Line, Loopback, SimChip, SimConfig, WireByte};
use ftdi_rt::timing::character_time;
use ftdi_rt::{LineProperties, LineStatus, Pinning, Port, PortConfig, Timestamp};

fn config() -> PortConfig {
    PortConfig::default()
        .with_baud(115_200)
        .with_reader_realtime(common::realtime(80, Pinning::LastCpu))
}

#[test]
fn write_drained_returns_a_temt_report_after_the_wire_time() {
    let _serial = common::serial();
    let chip = SimChip::new(|_: WireByte, _: &mut Line<'_>| {}, SimConfig::default()).unwrap();
    let mut port = Port::open_sim(chip, &config()).unwrap();
    let c = character_time(115_200, LineProperties::EIGHT_N_ONE).unwrap();
    for len in [1usize, 64, 300] {
        let data = vec![0x5Au8; len];
        let before = Timestamp::now();
        let drained = port.write_drained(&data, Duration::from_secs(2)).unwrap();
        assert!(drained >= before + c * len as u32, "{len} B: too early");
        // The report it returned is in the flight record, with TEMT.
        let record = port.flight_record();
        let report = record.iter().find(|p| p.arrived == drained).unwrap();
        assert!(report.transmitter_empty());
        let (_, line) = port.query_status().unwrap();
        assert_ne!(line.0 & LineStatus::TEMT, 0, "the chip agrees it drained");
    }
}

#[test]
fn write_drained_times_out_while_flow_control_holds_the_transmitter() {
    let _serial = common::serial();
    // RTS/CTS with CTS never asserted: the bytes never leave.
    let chip = SimChip::new(|_: WireByte, _: &mut Line<'_>| {}, SimConfig::default()).unwrap();
    let config = config().with_flow(ftdi_rt::FlowControl::RtsCts);
    let mut port = Port::open_sim(chip, &config).unwrap();
    let e = port
        .write_drained(&[1, 2, 3], Duration::from_millis(30))
        .unwrap_err();
    assert!(matches!(e, ftdi_rt::Error::TimedOut { .. }), "{e}");
}

#[test]
fn chunks_carry_a_wire_window_and_the_recorder_sees_every_packet() {
    let _serial = common::serial();
    let chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    let mut port = Port::open_sim(chip, &config()).unwrap();
    let clock = port.wire_clock().expect("the baud rate is known");
    assert_eq!(
        clock.char_time(),
        character_time(
            port.transport_info().actual_baud.unwrap(),
            LineProperties::EIGHT_N_ONE
        )
        .unwrap()
    );
    let sent = Timestamp::now();
    port.write_all(b"hello").unwrap();
    let mut got = 0;
    while got < 5 {
        let chunk = port.recv_timeout(Duration::from_secs(2)).unwrap();
        let w = chunk.wire_window(&clock);
        assert_eq!(w.latest, chunk.arrived());
        assert!(w.earliest < w.latest);
        // Looped back bytes cannot have crossed before they were written
        // minus the window's reach.
        assert!(w.latest >= sent);
        got += chunk.payload().len();
    }
    let record = port.flight_record();
    assert!(!record.is_empty());
    assert!(
        record
            .windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && w[1].arrived >= w[0].arrived)
    );
    let data: usize = record.iter().map(|p| usize::from(p.payload_len)).sum();
    assert!(data >= 5 || record.len() == ftdi_rt::timing::DEFAULT_FLIGHT_RECORDS);
}

#[test]
fn watch_packets_drives_a_silence_framer_and_leaves_the_data_queued() {
    let _serial = common::serial();
    let chip = SimChip::new(Loopback::new(), SimConfig::default()).unwrap();
    let mut port = Port::open_sim(chip, &config()).unwrap();
    let c = port.wire_clock().unwrap().char_time();
    let from = port.next_packet_seq();
    port.write_all(b"hello").unwrap();
    let mut framer = ftdi_rt::timing::SilenceFramer::new(Duration::from_millis(2), c);
    let end = port
        .watch_packets(from, Duration::from_secs(2), |p| {
            framer.on_packet(p.arrived, usize::from(p.payload_len))
        })
        .unwrap();
    assert!(end.decided - end.last_data >= Duration::from_millis(2) + c);
    let mut got = Vec::new();
    while let Some(chunk) = port.try_recv().unwrap() {
        got.extend_from_slice(chunk.payload());
    }
    assert_eq!(got, b"hello");
    // Nothing more comes: watching for data times out.
    let e = port
        .watch_packets(port.next_packet_seq(), Duration::from_millis(20), |p| {
            (p.payload_len > 0).then_some(())
        })
        .unwrap_err();
    assert!(matches!(e, ftdi_rt::Error::TimedOut { .. }), "{e}");
}
