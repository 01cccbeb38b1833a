//! Baud pacing: the chip sends at the baud rate, so a stream through a
//! loopback comes back at the wire's rate (10 bits a byte in 8N1), neither
//! faster (QEMU's emulation moves bytes as fast as it can) nor much slower
//! (the host path keeping up at 3 MBd).

use std::time::Duration;

use ftdi_rt::PortConfig;
use ftdi_rt::sim::Loopback;

use crate::checks::{echo_streaming, pattern};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// How far the measured throughput may be from the wire's.
const TOLERANCE: f64 = 0.02;
/// Wire time each rate streams for.
const WINDOW: Duration = Duration::from_millis(500);

/// `baud-pacing`: a loopback stream at 115200 Bd and 3 MBd comes back
/// intact at the wire's rate, within 2 %.
pub fn baud_pacing(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        let mut port = open_usb(&dev, &PortConfig::default())?;
        let mut seen = Vec::new();
        for baud in [115_200u32, 3_000_000] {
            let actual = port
                .link()
                .set_baud_rate(baud)
                .map_err(|e| format!("baud {baud}: {e}"))?;
            // 8N1: start, 8 data, stop.
            let wire_bytes_per_s = f64::from(actual) / 10.0;
            let len = (wire_bytes_per_s * WINDOW.as_secs_f64()) as usize;
            let took = echo_streaming(&mut port, &pattern(len, 3), WINDOW * 4)
                .map_err(|e| format!("{baud} Bd: {e}"))?;
            let measured = len as f64 / took.as_secs_f64();
            let off = measured / wire_bytes_per_s - 1.0;
            ctx.metric(
                "baud-pacing",
                &[
                    ("baud", baud.to_string()),
                    ("actual_baud", actual.to_string()),
                    ("bytes", len.to_string()),
                    ("bytes_per_s", format!("{measured:.0}")),
                    ("wire_bytes_per_s", format!("{wire_bytes_per_s:.0}")),
                    ("off_percent", format!("{:.2}", off * 100.0)),
                ],
            );
            if off.abs() > TOLERANCE {
                return Err(format!(
                    "at {baud} Bd (actual {actual}) {len} bytes came back at {measured:.0} B/s, \
                     {:+.2} % from the wire's {wire_bytes_per_s:.0} B/s (limit ±{:.0} %)",
                    off * 100.0,
                    TOLERANCE * 100.0
                ));
            }
            seen.push(format!(
                "{baud} Bd: {measured:.0} B/s ({:+.2} %)",
                off * 100.0
            ));
        }
        Ok(format!(
            "loopback throughput at the wire's rate: {}",
            seen.join(", ")
        ))
    };
    run().into()
}
