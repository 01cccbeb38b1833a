//! Errors that must reach the application with the data they concern:
//! line errors the chip reports in a packet's status byte, and bytes the
//! host dropped because the application stopped reading.

use std::time::Duration;

use ftdi_rt::sim::Loopback;
use ftdi_rt::{Error, Interface, LineStatus, PortConfig};

use crate::checks::pattern;
use crate::guest::{Ctx, Outcome};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// `line-errors`: an overrun, parity, framing and break error injected in
/// the chip each arrive flagged on the chunk that holds the byte they came
/// with, the next byte arrives clean, and the statistics count each once.
pub fn line_errors(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        let mut port = open_usb(&dev, &PortConfig::default())?;
        let kinds = [
            (LineStatus::OE, "overrun"),
            (LineStatus::PE, "parity"),
            (LineStatus::FE, "framing"),
            (LineStatus::BI, "break"),
        ];
        for (k, &(bit, name)) in kinds.iter().enumerate() {
            dev.device()
                .with_function(move |chip, _now| {
                    chip.inject_line_error(Interface::A, LineStatus(bit))
                })
                .map_err(|e| format!("injecting {name}: {e}"))?
                .map_err(|e| format!("injecting {name}: {e}"))?;
            let flagged = 0xA0 + k as u8;
            port.receiver().discard_pending();
            port.write_all(&[flagged])
                .map_err(|e| format!("write: {e}"))?;
            let chunk = port
                .recv_timeout(Duration::from_millis(100))
                .map_err(|e| format!("the byte sent after injecting {name}: {e}"))?;
            let status = chunk
                .line_status()
                .ok_or("a USB chunk without its status byte")?;
            if chunk.payload() != [flagged] || status.0 & bit == 0 {
                return Err(format!(
                    "after injecting {name}: chunk {:02x?} with line status {:#04x}, expected \
                     [{flagged:#04x}] flagged {bit:#04x}",
                    chunk.payload(),
                    status.0
                ));
            }
            port.write_all(&[0x55]).map_err(|e| format!("write: {e}"))?;
            let clean = port
                .recv_timeout(Duration::from_millis(100))
                .map_err(|e| format!("the byte after the {name} byte: {e}"))?;
            if clean.has_line_error() {
                return Err(format!(
                    "the byte after the {name} byte is flagged too: {:?}",
                    clean.line_status()
                ));
            }
        }
        let counts = port.stats().line_errors;
        let seen = [counts.overrun, counts.parity, counts.framing, counts.breaks];
        if seen != [1, 1, 1, 1] {
            return Err(format!(
                "statistics count overrun/parity/framing/break {seen:?}, expected one each"
            ));
        }
        Ok(
            "OE, PE, FE and BI each arrived on the chunk with their byte and were counted once"
                .into(),
        )
    };
    run().into()
}

/// `app-stops-reading`: while the application does not read, the reader
/// keeps draining the chip and drops what the channel cannot hold; reading
/// again, every byte is either received in order or reported lost at its
/// place in the stream (`Error::Overflow`), and the counts agree.
pub fn app_stops_reading(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let dev = attach_ft232r(ctx, Loopback::new())?;
        // A small channel: at 115200 Bd and a 1 ms latency timer a chunk is
        // about 11 bytes, so 16 chunks fill in 16 ms. (The rate is one the
        // rig's reader keeps up with: the chip must not overrun, so that every
        // loss is the channel's.)
        let config = PortConfig::default().with_channel_capacity(16);
        let mut port = open_usb(&dev, &config)?;
        let sent = pattern(5_000, 9);
        // Written while nobody reads (0.43 s on the wire): the loopback
        // returns it at the wire rate into the reader, which must drop.
        port.write_all(&sent).map_err(|e| format!("write: {e}"))?;
        std::thread::sleep(Duration::from_millis(50));
        let mut at = 0usize;
        let mut lost_total = 0u64;
        let mut received = 0usize;
        loop {
            match port.recv_timeout(Duration::from_millis(100)) {
                Ok(chunk) => {
                    if chunk.line_status().is_some_and(|l| l.overrun()) {
                        return Err(format!(
                            "the chip overran (OE) at stream offset {at}: the reader did not keep \
                             up with 115200 Bd"
                        ));
                    }
                    let p = chunk.payload();
                    let want = sent.get(at..at + p.len()).ok_or_else(|| {
                        format!(
                            "{} bytes more than were sent arrived",
                            at + p.len() - sent.len()
                        )
                    })?;
                    if p != want {
                        let first = p.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                        return Err(format!(
                            "{} bytes at stream offset {at} differ from what was sent from byte \
                             {first} on (line status {:?}, {lost_total} reported lost before): a \
                             loss went unreported",
                            p.len(),
                            chunk.line_status()
                        ));
                    }
                    at += p.len();
                    received += p.len();
                }
                Err(Error::Overflow { lost_bytes }) => {
                    lost_total += lost_bytes;
                    at += usize::try_from(lost_bytes).map_err(|e| e.to_string())?;
                }
                Err(Error::TimedOut { .. }) => break,
                Err(e) => return Err(format!("receiving: {e}")),
            }
        }
        let stats = port.stats();
        ctx.metric(
            "app-stops-reading",
            &[
                ("sent", sent.len().to_string()),
                ("received", received.to_string()),
                ("lost", lost_total.to_string()),
                ("overflows", stats.overflows.to_string()),
            ],
        );
        if at != sent.len() {
            return Err(format!(
                "{received} bytes received and {lost_total} reported lost account for {at} of \
                 the {} sent",
                sent.len()
            ));
        }
        if lost_total == 0 || stats.overflows == 0 || stats.overflow_bytes != lost_total {
            return Err(format!(
                "expected a counted loss: {lost_total} bytes reported lost, statistics \
                 {} overflows of {} bytes",
                stats.overflows, stats.overflow_bytes
            ));
        }
        Ok(format!(
            "{received} of {} bytes received in order, {lost_total} reported lost where they \
             were dropped ({} overflows counted)",
            sent.len(),
            stats.overflows
        ))
    };
    run().into()
}
