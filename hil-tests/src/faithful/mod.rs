//! Faithful-device cases of the timing tier: what QEMU's emulated FT232BM
//! cannot show, checked through the guest's real kernel stack (vhci-hcd,
//! usbcore, usbfs, ftdi_sio) against ftdi-rt's simulated chip. Every case
//! attaches its own device, asserts what a real chip does, and unplugs it.
//!
//! * [`heartbeat`]: status-only packets at 1 and 16 ms, and what the
//!   latency timer does to a round trip;
//! * [`flush`]: the event character flushes a short packet early;
//! * [`pacing`]: bytes move at the wire's rate both ways at 115200 Bd (3 MBd
//!   measured and reported: the rig cannot carry it);
//! * [`errors`]: injected line errors arrive with their bytes; an
//!   application that stops reading loses bytes only where it is told;
//! * [`unplug`]: a vhci detach mid-stream is `Disconnected` within 100 ms,
//!   and the replugged device works;
//! * [`resume`]: a port opened with resume survives a vhci detach and
//!   comes back by itself, settings re-applied, when the same adapter does;
//! * [`multichannel`]: on an FT4232H, ftdi-rt claims channel B while
//!   ftdi_sio keeps A, C and D;
//! * [`reattach`]: a process holding channel B and killed by SIGTERM or
//!   SIGINT gives it back to ftdi_sio;
//! * [`drained`]: `Port::write_drained` against the chip's record of the
//!   last stop bit;
//! * [`silence`]: Modbus RTU replies framed by `ReplyEnd::Silence(t3.5)`,
//!   against the chip's record of the reply's last stop bit.
//!
//! Time in these cases is the guest's (virtual under icount), so the bounds
//! are tight and the results repeat from boot to boot.

use std::time::{Duration, Instant};

use ftdi_rt::sim::WireDirection;
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::{Interface, Port, Timestamp};

use crate::vdev::VirtualDevice;

pub mod drained;
pub mod errors;
pub mod flush;
pub mod heartbeat;
pub mod multichannel;
pub mod pacing;
pub mod reattach;
pub mod resume;
pub mod silence;
pub mod unplug;

/// Writes `data` and times until it has all come back (a loopback device).
///
/// # Errors
/// A write or receive error, or not all back within `limit`.
pub fn echo_time(port: &mut Port, data: &[u8], limit: Duration) -> Result<Duration, String> {
    port.receiver().discard_pending();
    let t0 = Instant::now();
    port.write_all(data)
        .map_err(|e| format!("write {} bytes: {e}", data.len()))?;
    let mut got = 0;
    while got < data.len() {
        let left = limit.saturating_sub(t0.elapsed());
        let chunk = port
            .recv_timeout(left)
            .map_err(|e| format!("{got} of {} bytes back: {e}", data.len()))?;
        got += chunk.payload().len();
    }
    Ok(t0.elapsed())
}

/// When the last byte that went `direction` on channel A ended its stop
/// bit, by the chip's wire log (the case must have enabled it).
///
/// # Errors
/// The device is gone, or the log holds no such byte.
pub fn last_stop_bit(
    dev: &VirtualDevice<VirtualFtdi>,
    direction: WireDirection,
) -> Result<Timestamp, String> {
    dev.device()
        .with_function(move |chip, _now| {
            chip.wire_log(Interface::A)
                .ok()
                .and_then(|log| log.last(direction).map(|e| e.end))
        })
        .map_err(|e| format!("reading the wire log: {e}"))?
        .ok_or_else(|| format!("the wire log holds no byte going {direction:?}"))
}

/// The median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds with three decimals, for messages.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
