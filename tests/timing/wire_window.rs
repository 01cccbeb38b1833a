//! The wire-time window of every received chunk contains the true times
//! its bytes crossed the wire.

use std::time::Duration;

use ftdi_rt::proto::{DataBits, LineProperties, Parity, StopBits};
use ftdi_rt::sim::WireDirection;
use ftdi_rt::timing::WireClock;

use crate::rig::{Rig, T0, scheduled};

#[test]
fn every_byte_crossed_inside_its_chunks_window() {
    let e1 = LineProperties {
        data_bits: DataBits::Eight,
        parity: Parity::Even,
        stop_bits: StopBits::One,
    };
    let delay = Duration::from_micros(125);
    let mut widest = Duration::ZERO;
    let mut late_edge = Duration::ZERO;
    let mut bytes = 0;
    for baud in [9600u32, 19_200, 1_000_000] {
        for latency_ms in [1u8, 4, 16] {
            for line in [LineProperties::EIGHT_N_ONE, e1] {
                // Bursts of 1..=200 bytes with gaps of 0..=30 ms between.
                let mut schedule = Vec::new();
                let mut seed = u64::from(baud) * 31 + u64::from(latency_ms);
                let mut t = Duration::from_micros(500);
                for burst in 0..40u64 {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let n = 1 + (seed >> 33) % 200;
                    for i in 0..n {
                        schedule.push((t, (burst * 7 + i) as u8));
                    }
                    t += Duration::from_micros((seed >> 20) % 30_000);
                }
                let mut rig = Rig::new(scheduled(schedule.clone()), baud, line, latency_ms, delay);
                let end = T0 + Duration::from_secs(60);
                rig.run(&mut &[0xAAu8][..], end, |_| false);
                let clock =
                    WireClock::new(rig.char_time(), rig.latency()).with_transport_slack(delay);
                let rx = rig.wire(WireDirection::FromDevice);
                assert_eq!(rx.len(), schedule.len(), "every byte was sent");
                let mut next = 0;
                for p in rig.packets.iter().filter(|p| p.payload_len > 0) {
                    let n = usize::from(p.payload_len);
                    let w = clock.window(p.arrived, n);
                    for ev in &rx[next..next + n] {
                        assert!(
                            w.contains(ev.start) && w.contains(ev.end),
                            "{baud} Bd {latency_ms} ms {line}: byte {:?}..{:?} outside {w:?}",
                            ev.start,
                            ev.end
                        );
                    }
                    widest = widest.max(w.uncertainty());
                    if latency_ms == 1 && baud == 1_000_000 {
                        late_edge = late_edge.max(w.latest - rx[next + n - 1].end);
                    }
                    next += n;
                }
                assert_eq!(next, rx.len(), "every byte was delivered");
                bytes += next;
            }
        }
    }
    println!(
        "wire window: {bytes} bytes, each inside its chunk's window; widest window {widest:?}; \
         at 1 MBd and a 1 ms latency timer the last stop bit came at most {late_edge:?} before \
         the window's end"
    );
}
