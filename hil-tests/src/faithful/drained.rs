//! `Port::write_drained` through the real stack: the instant it returns
//! (the arrival of the status packet reporting TEMT after the bytes) against
//! the simulated chip's own record of when the last stop bit left the wire.
//! In virtual time without a kernel (`tests/timing/drained.rs`) the lag is at
//! most one latency period; here the packet also crosses usbfs, vhci-hcd and
//! USB/IP, and the case measures what that adds.

use std::time::Duration;

use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::sim::{Line, WireByte, WireDirection};
use ftdi_rt::timing::DEFAULT_TRANSPORT_SLACK;
use ftdi_rt::{Chip, Interface, PortConfig};

use super::{last_stop_bit, median, ms};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach, open_usb};

/// Write sizes: one byte, a short request, one full packet, several.
const SIZES: [usize; 4] = [1, 7, 64, 300];
/// Writes per size.
const ROUNDS: usize = 8;
/// The latency timer of the case (the incident's).
const LATENCY: Duration = Duration::from_millis(1);

/// `write-drained`: for writes of 1 to 300 bytes at 115200 Bd and a 1 ms
/// latency timer, the returned instant is never before the last stop bit and
/// at most one latency period plus the transport slack
/// ([`DEFAULT_TRANSPORT_SLACK`]) after it.
pub fn write_drained(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        // A device that only listens: the status stream is all there is.
        let sink = |_: WireByte, _: &mut Line<'_>| {};
        let builder = VirtualFtdi::builder(Chip::Ft232R)
            .device(Interface::A, sink)
            .wire_log(4096);
        let dev = attach(ctx, builder, 1)?;
        let config = PortConfig::default()
            .with_baud(115_200)
            .with_latency_timer_ms(1);
        let mut port = open_usb(&dev, &config)?;
        let bound = LATENCY + DEFAULT_TRANSPORT_SLACK;
        let mut lags = Vec::with_capacity(SIZES.len() * ROUNDS);
        for &size in &SIZES {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for round in 0..ROUNDS {
                let drained = port
                    .write_drained(&data, Duration::from_secs(2))
                    .map_err(|e| format!("write_drained({size} bytes), round {round}: {e}"))?;
                let stop = last_stop_bit(&dev, WireDirection::ToDevice)?;
                if drained < stop {
                    return Err(format!(
                        "{size} bytes, round {round}: drained reported {} before the last stop \
                         bit left the wire",
                        ms(stop.saturating_since(drained))
                    ));
                }
                let lag = drained.saturating_since(stop);
                if lag > bound {
                    return Err(format!(
                        "{size} bytes, round {round}: drained reported {} after the last stop \
                         bit, beyond the stated resolution {} (latency period + transport slack)",
                        ms(lag),
                        ms(bound)
                    ));
                }
                lags.push(lag);
            }
        }
        let min = lags.iter().min().copied().unwrap_or_default();
        let max = lags.iter().max().copied().unwrap_or_default();
        let med = median(&mut lags);
        ctx.metric(
            "write-drained",
            &[
                ("writes", lags.len().to_string()),
                ("lag_min_us", min.as_micros().to_string()),
                ("lag_median_us", med.as_micros().to_string()),
                ("lag_max_us", max.as_micros().to_string()),
            ],
        );
        Ok(format!(
            "{} writes of 1-300 bytes: drained reported {} to {} (median {}) after the last stop \
             bit, within {}",
            lags.len(),
            ms(min),
            ms(max),
            ms(med),
            ms(bound)
        ))
    };
    run().into()
}
