//! The TX-drained instant ([`DrainWatch`]): after the last stop bit, by at
//! most one latency period plus the chip-to-reader delay.

use std::time::Duration;

use ftdi_rt::proto::LineProperties;
use ftdi_rt::sim::WireDirection;
use ftdi_rt::timing::DrainWatch;

use crate::rig::{Rig, T0, open_line};

#[test]
fn drained_lies_after_the_last_stop_bit_within_a_latency_period() {
    let delay = Duration::from_micros(125);
    let mut worst = Duration::ZERO;
    let mut cases = 0;
    for baud in [9600, 115_200, 1_000_000] {
        for latency_ms in [1u8, 2, 16] {
            for len in [1usize, 8, 100, 600] {
                let mut rig = Rig::new(
                    open_line(),
                    baud,
                    LineProperties::EIGHT_N_ONE,
                    latency_ms,
                    delay,
                );
                // Start mid-period, at a phase that differs per case.
                let phase = Duration::from_micros(rig.random(16_000) + 3_000);
                let submitted = T0 + phase;
                rig.run(&mut &[][..], submitted, |_| false);
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = &data[..];
                // Hand the bytes over as the FIFO takes them; the write
                // completes when the last one is taken, and the sequence
                // number is read then, as Port::write_drained does.
                let end = T0 + Duration::from_secs(5);
                loop {
                    rig.run(&mut out, rig.e.now(), |_| false);
                    if out.is_empty() {
                        break;
                    }
                    let t = rig.e.poll_timeout().unwrap();
                    rig.run(&mut &[][..], t, |_| false);
                }
                let watch =
                    DrainWatch::new(submitted, len, rig.char_time(), rig.packets.len() as u64);
                let mut drained = None;
                rig.run(&mut &[][..], end, |p| {
                    drained = watch.on_packet(p);
                    drained.is_some()
                });
                let drained = drained.expect("a TEMT report within 5 s");
                let last = rig.wire(WireDirection::ToDevice).last().unwrap().end;
                let bound = rig.latency() + delay;
                assert!(
                    drained >= last,
                    "{baud} Bd, {latency_ms} ms, {len} B: drained {drained} before the last stop bit {last}"
                );
                assert!(
                    drained - last <= bound,
                    "{baud} Bd, {latency_ms} ms, {len} B: drained {:?} after the last stop bit",
                    drained - last
                );
                if latency_ms == 1 {
                    worst = worst.max(drained - last);
                }
                cases += 1;
            }
        }
    }
    println!(
        "write_drained: {cases} cases, at a 1 ms latency timer and up to {delay:?} USB delay the \
         report came at most {worst:?} after the last stop bit"
    );
}

#[test]
fn a_long_write_is_not_drained_while_its_bytes_are_on_the_wire() {
    // 50 bytes at 9600 Bd take 52 ms, with a heartbeat every millisecond
    // meanwhile (TEMT clear in each): only the first one after the last
    // stop bit counts.
    let mut rig = Rig::new(
        open_line(),
        9600,
        LineProperties::EIGHT_N_ONE,
        1,
        Duration::ZERO,
    );
    let submitted = T0 + Duration::from_millis(10);
    rig.run(&mut &[][..], submitted, |_| false);
    let data = [0x55u8; 50];
    let mut out = &data[..];
    rig.run(&mut out, submitted, |_| false);
    assert!(out.is_empty());
    let watch = DrainWatch::new(
        submitted,
        data.len(),
        rig.char_time(),
        rig.packets.len() as u64,
    );
    let mut drained = None;
    rig.run(&mut &[][..], T0 + Duration::from_secs(1), |p| {
        drained = watch.on_packet(p);
        drained.is_some()
    });
    let last = rig.wire(WireDirection::ToDevice).last().unwrap().end;
    assert!(drained.unwrap() >= last);
    assert!(drained.unwrap() - last <= Duration::from_millis(1));
}
