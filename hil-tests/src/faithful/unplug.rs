//! Unplug mid-stream, the way the host sees a cable pulled: vhci-hcd's
//! `detach` drops the device while ftdi-rt streams through it.

use std::time::{Duration, Instant};

use ftdi_rt::PortConfig;
use ftdi_rt::sim::Loopback;

use super::ms;
use crate::checks::{echo, stream_until_disconnected};
use crate::guest::{Ctx, Outcome, wait_until};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// vhci-hcd's detach file: writing a port number drops that port's device.
const VHCI_DETACH: &str = "/sys/devices/platform/vhci_hcd.0/detach";
/// The longest the reader may take to report the loss.
const DISCONNECT_LIMIT: Duration = Duration::from_millis(100);

/// `vhci-unplug`: echo traffic streams through ftdi-rt when the host
/// detaches the device: `Disconnected` within 100 ms of the last data, a
/// write afterwards fails, closing does not hang; after a replug the port
/// opens again and echoes.
pub fn vhci_unplug(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let mut dev = attach_ft232r(ctx, Loopback::new())?;
        let mut port = open_usb(&dev, &PortConfig::default())?;
        let vhci_port = dev.device().port().ok_or("the device has no vhci port")?;
        let mut detach_result = Ok(());
        let (gap, bytes) = stream_until_disconnected(&mut port, || {
            detach_result = std::fs::write(VHCI_DETACH, vhci_port.to_string());
        })?;
        detach_result.map_err(|e| format!("writing {vhci_port} to {VHCI_DETACH}: {e}"))?;
        if gap > DISCONNECT_LIMIT {
            return Err(format!(
                "Disconnected came {} after the last data, limit {}",
                ms(gap),
                ms(DISCONNECT_LIMIT)
            ));
        }
        if port.write_all(b"after").is_ok() {
            return Err("a write after the detach succeeded".into());
        }
        let t0 = Instant::now();
        drop(port);
        let close = t0.elapsed();
        wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
            dev.device().detached().is_some()
        })
        .ok_or("the device server did not notice the detach within 5 s")?;
        let back = dev.replug()?;
        let mut port = open_usb(&dev, &PortConfig::default())?;
        let all: Vec<u8> = (0..=255).collect();
        echo(&mut port, &all, Duration::from_secs(2))
            .map_err(|e| format!("after the replug: {e}"))?;
        ctx.metric(
            "vhci-unplug",
            &[
                ("bytes", bytes.to_string()),
                (
                    "disconnected_after_last_data_us",
                    gap.as_micros().to_string(),
                ),
                ("close_us", close.as_micros().to_string()),
                ("replug_ms", back.as_millis().to_string()),
            ],
        );
        Ok(format!(
            "{bytes} bytes streamed; Disconnected {} after the last data; a write failed; closed in \
             {}; replugged in {} and echoed 256 byte values",
            ms(gap),
            ms(close),
            ms(back)
        ))
    };
    run().into()
}
