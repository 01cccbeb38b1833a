//! The event character: with the latency timer at 16 ms a short reply
//! normally waits for the timer, but a packet ending in the event character
//! leaves at once.

use std::time::Duration;

use ftdi_rt::PortConfig;
use ftdi_rt::sim::Loopback;

use super::{echo_time, median, ms};
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// The event character the case uses.
const EVENT: u8 = b'\n';

/// `event-char`: at latency 16 ms, "hello\n" comes back about as fast as
/// the wire allows, "hello!" only when the timer expires.
pub fn event_char(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        let config = PortConfig::default()
            .with_latency_timer_ms(16)
            .with_event_char(Some(EVENT));
        let mut port = open_usb(&dev, &config)?;
        let limit = Duration::from_millis(100);
        let mut with_event = Vec::new();
        let mut without = Vec::new();
        for _ in 0..10 {
            with_event.push(echo_time(&mut port, b"hello\n", limit)?);
            without.push(echo_time(&mut port, b"hello!", limit)?);
        }
        let slowest_event = *with_event.iter().max().unwrap_or(&Duration::ZERO);
        let med_event = median(&mut with_event);
        let med_plain = median(&mut without);
        ctx.metric(
            "event-char",
            &[
                (
                    "median_us_with_event_char",
                    med_event.as_micros().to_string(),
                ),
                (
                    "max_us_with_event_char",
                    slowest_event.as_micros().to_string(),
                ),
                ("median_us_without", med_plain.as_micros().to_string()),
            ],
        );
        // Six bytes are 0.52 ms on the wire at 115200 Bd.
        if slowest_event >= Duration::from_millis(3) {
            return Err(format!(
                "a reply ending in the event character took up to {}: it was not flushed early",
                ms(slowest_event)
            ));
        }
        if med_plain <= Duration::from_millis(5) {
            return Err(format!(
                "a reply without the event character came back in {} (median) at latency 16 ms: \
                 the chip did not hold it for the timer",
                ms(med_plain)
            ));
        }
        Ok(format!(
            "\"hello\\n\" back in {} (median, max {}), \"hello!\" in {} at latency 16 ms",
            ms(med_event),
            ms(slowest_event),
            ms(med_plain)
        ))
    };
    run().into()
}
