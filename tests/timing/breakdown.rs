//! The miss breakdown against the simulated chip's truth: its bounds hold
//! around the real chip wait and the real delivery delay.

use std::time::Duration;

use ftdi_rt::proto::LineProperties;
use ftdi_rt::sim::{Line, WireByte, WireDirection};
use ftdi_rt::timing::{ExchangeTimes, WireClock, miss_breakdown};

use crate::rig::{Rig, T0};

#[test]
fn the_bounds_hold_around_the_true_chip_wait_and_delivery_delay() {
    let think = Duration::from_micros(500);
    for late in [
        Duration::ZERO,
        Duration::from_micros(2500),
        Duration::from_millis(7),
    ] {
        for phase_us in [0u64, 250, 600, 950] {
            // Answers one byte `think` after the 7th request byte.
            let mut seen = 0;
            let device = move |byte: WireByte, line: &mut Line<'_>| {
                seen += 1;
                if seen == 7 {
                    line.send_at(byte.end + think, &[0x42]);
                }
            };
            let mut rig = Rig::new(
                device,
                115_200,
                LineProperties::EIGHT_N_ONE,
                1,
                Duration::ZERO,
            );
            let submitted = T0 + Duration::from_micros(10_000 + phase_us);
            rig.run(&mut &[][..], submitted, |_| false);
            rig.run(
                &mut &[1u8, 2, 3, 4, 5, 6, 7][..],
                submitted + Duration::from_millis(20),
                |_| false,
            );
            // The reply's packet reached the reader `late` after the chip sent it.
            let reply = rig.packets.iter().position(|p| p.payload_len > 0).unwrap();
            let sent = rig.packets[reply].arrived;
            rig.packets[reply].arrived = sent + late;
            let taken = sent + late + Duration::from_micros(30);
            let clock = WireClock::new(rig.char_time(), rig.latency());
            let x = ExchangeTimes {
                submitted,
                request_len: 7,
                reply_len: 1,
                taken,
                record: &rig.packets[..=reply],
            };
            let b = miss_breakdown(&x, &clock).unwrap();
            let stop = rig.wire(WireDirection::FromDevice)[0].end;
            let chip_wait = sent - stop;
            assert!(
                b.chip_wait_max >= chip_wait,
                "{b}: chip waited {chip_wait:?}"
            );
            assert!(b.usb_to_reader_min <= late, "{b}: delivery took {late:?}");
            assert!(
                b.usb_to_reader_min + rig.latency() >= late,
                "{b}: a late delivery of {late:?} shows"
            );
            assert_eq!(b.reader_to_app, Duration::from_micros(30));
            assert_eq!(b.total, taken - submitted);
            if phase_us == 600 {
                println!("breakdown, delivery {late:?} late: {b}");
            }
        }
    }
}
