//! The latency timer, through the real stack: an idle chip sends a 2-byte
//! status-only packet every latency period while the host keeps an IN
//! transfer pending (about 1000 a second at 1 ms, 62.5 at 16 ms); a short
//! reply waits for the timer, so a round trip at 16 ms is much slower than
//! at 1 ms (the "FTDI is slow" reports behind `low_latency`).

use std::time::{Duration, Instant};

use ftdi_rt::sim::Loopback;
use ftdi_rt::{Port, PortConfig};

use super::{echo_time, median, ms};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// Status-only packets counted over `window` of idle.
fn idle_heartbeats(port: &mut Port, window: Duration) -> u64 {
    // Let a latency-timer change take effect and in-flight packets land.
    std::thread::sleep(Duration::from_millis(50));
    port.receiver().discard_pending();
    let before = port.stats().status_only_packets;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let n = port.stats().status_only_packets - before;
    // Scale to the window actually slept (a sleep can end late).
    (n as f64 * window.as_secs_f64() / t0.elapsed().as_secs_f64()).round() as u64
}

/// `status-heartbeat`: about 1000 status-only packets per idle second at
/// 1 ms, about 62 at 16 ms, reaching ftdi-rt's reader.
pub fn status_heartbeat(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        let mut port = open_usb(&dev, &PortConfig::default().with_latency_timer_ms(1))?;
        let window = Duration::from_secs(1);
        let at_1 = idle_heartbeats(&mut port, window);
        port.set_latency_timer(16)
            .map_err(|e| format!("latency timer 16 ms: {e}"))?;
        let at_16 = idle_heartbeats(&mut port, window);
        ctx.metric(
            "status-heartbeat",
            &[
                ("per_s_at_1ms", at_1.to_string()),
                ("per_s_at_16ms", at_16.to_string()),
            ],
        );
        // 1000/s and 62.5/s, within 3 % (the first and last period of a
        // window may or may not fall in it).
        if !(970..=1030).contains(&at_1) {
            return Err(format!(
                "{at_1} status-only packets per idle second at 1 ms, expected ~1000"
            ));
        }
        if !(60..=65).contains(&at_16) {
            return Err(format!(
                "{at_16} status-only packets per idle second at 16 ms, expected ~62"
            ));
        }
        Ok(format!(
            "{at_1} status-only packets per idle second at 1 ms, {at_16} at 16 ms; {}",
            dev.describe()
        ))
    };
    run().into()
}

/// Round trips of one byte through a loopback at the current latency timer.
fn one_byte_round_trips(port: &mut Port, n: usize) -> Result<Vec<Duration>, String> {
    (0..n)
        .map(|i| echo_time(port, &[i as u8], Duration::from_millis(100)))
        .collect()
}

/// `latency-timer-rtt`: a one-byte echo waits for the latency timer: its
/// median round trip at 16 ms is several times that at 1 ms.
pub fn latency_timer_rtt(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        let mut port = open_usb(&dev, &PortConfig::default().with_latency_timer_ms(1))?;
        let med_1 = median(&mut one_byte_round_trips(&mut port, 50)?);
        port.set_latency_timer(16)
            .map_err(|e| format!("latency timer 16 ms: {e}"))?;
        let med_16 = median(&mut one_byte_round_trips(&mut port, 50)?);
        ctx.metric(
            "latency-timer-rtt",
            &[
                ("median_us_at_1ms", med_1.as_micros().to_string()),
                ("median_us_at_16ms", med_16.as_micros().to_string()),
            ],
        );
        // One byte is 87 µs on the wire at 115200 Bd: at 1 ms the reply
        // waits at most a period, at 16 ms a sizeable part of one.
        if med_1 >= Duration::from_micros(2500) {
            return Err(format!(
                "median one-byte round trip at 1 ms is {}, expected < 2.5 ms",
                ms(med_1)
            ));
        }
        if med_16 <= Duration::from_millis(5) || med_16 < med_1 * 4 {
            return Err(format!(
                "median one-byte round trip at 16 ms is {} against {} at 1 ms: the latency timer \
                 should hold a short reply for several ms",
                ms(med_16),
                ms(med_1)
            ));
        }
        Ok(format!(
            "median one-byte round trip {} at 1 ms, {} at 16 ms",
            ms(med_1),
            ms(med_16)
        ))
    };
    run().into()
}
