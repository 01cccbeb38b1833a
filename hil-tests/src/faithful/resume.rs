//! A device that comes back, through the guest's real USB stack: a port
//! opened with `PortConfig::with_resume` survives a vhci detach and
//! resumes by itself when the same adapter (same serial number) is plugged
//! back in, power-cycled, with every setting the port had put back on it.

use std::time::{Duration, Instant};

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::{Chip, Error, Interface, Port, PortConfig, ReplyEnd, Timestamp};

use super::ms;
use crate::guest::{Ctx, Outcome, wait_until};
use crate::virtual_ftdi::{attach_ft232r, open_usb};

/// vhci-hcd's detach file: writing a port number drops that port's device.
const VHCI_DETACH: &str = "/sys/devices/platform/vhci_hcd.0/detach";
/// The far end's processing time.
const DEVICE_DELAY: Duration = Duration::from_micros(200);
/// Generous: this case checks that transactions work, not how fast.
const DEADLINE: Duration = Duration::from_millis(100);
/// Transactions before the unplug and after the resume.
const TRANSACTIONS: u32 = 50;
/// The longest the case waits for an event (guest time).
const PATIENCE: Duration = Duration::from_secs(30);

/// The settings the port moves away from the chip's power-on defaults
/// (9600 Bd, latency timer 16 ms, no event character, DTR and RTS off).
const BAUD: u32 = 57_600;
const LATENCY_MS: u8 = 2;
const EVENT_CHAR: u8 = b'\n';

fn request(i: u32) -> [u8; 7] {
    let b = i.to_le_bytes();
    [0xA5, b[0], b[1], b[2], b[3], 0x5A, (i % 7) as u8]
}

fn exchange(port: &mut Port, salt: u32) -> Result<(), String> {
    for i in 0..TRANSACTIONS {
        let req = request(salt * 1000 + i);
        let t = port
            .transact(&req, ReplyEnd::Length(1), DEADLINE)
            .map_err(|e| format!("transaction {i}: {e}"))?;
        if t.bytes() != [Frobnicator::reply_for(&req)] {
            return Err(format!("transaction {i}: wrong reply {:?}", t.bytes()));
        }
    }
    Ok(())
}

/// Receives until an error (data is skipped); the error and when.
fn next_event(port: &mut Port) -> Result<(Error, Instant), String> {
    let t0 = Instant::now();
    while t0.elapsed() < PATIENCE {
        match port.recv_timeout(Duration::from_millis(200)) {
            Ok(_) | Err(Error::TimedOut { .. }) => {}
            Err(e) => return Ok((e, Instant::now())),
        }
    }
    Err(format!("no event within {PATIENCE:?}"))
}

/// The chip's registers against the port's settings.
fn check_registers(
    dev: &crate::vdev::VirtualDevice<VirtualFtdi>,
    port: &Port,
    when: &str,
) -> Result<String, String> {
    let state = dev
        .device()
        .with_function(|chip, _| chip.state(Interface::A))
        .map_err(|e| format!("{when}: reading the chip: {e}"))?
        .map_err(|e| format!("{when}: {e}"))?;
    let want_baud = port.writer().baud_rate();
    let got = (
        state.baud,
        state.latency_timer_ms,
        state.event_char,
        state.dtr,
        state.rts,
    );
    let want = (want_baud, LATENCY_MS, Some(EVENT_CHAR), false, true);
    if got != want {
        return Err(format!(
            "{when}: the chip has (baud, latency ms, event char, DTR, RTS) {got:?}, the port \
             set {want:?}"
        ));
    }
    Ok(format!(
        "baud {} latency {} ms event {:#04x} DTR off RTS on",
        state.baud, state.latency_timer_ms, EVENT_CHAR
    ))
}

/// `vhci-resume`: an FT232R opened with resume, settings moved away from
/// the defaults, transactions; a vhci detach is `Disconnected` in the
/// stream and writes fail at once; the same adapter (same serial number,
/// registers at power-on defaults) plugged back in is found by the port's
/// watcher, and the port resumes by itself: `Resumed` with the gap, one
/// resume counted, the chip's registers equal the port's settings, and
/// transactions work again.
pub fn vhci_resume(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let mut dev = attach_ft232r(ctx, Frobnicator::new(DEVICE_DELAY))?;
        let mut port = open_usb(&dev, &PortConfig::default().with_resume(true))?;
        port.set_baud_rate(BAUD).map_err(|e| e.to_string())?;
        port.set_latency_timer(LATENCY_MS)
            .map_err(|e| e.to_string())?;
        port.set_event_char(Some(EVENT_CHAR))
            .map_err(|e| e.to_string())?;
        port.set_dtr(false).map_err(|e| e.to_string())?;
        port.set_rts(true).map_err(|e| e.to_string())?;
        check_registers(&dev, &port, "before the unplug")?;
        exchange(&mut port, 1).map_err(|e| format!("before the unplug: {e}"))?;

        let vhci_port = dev.device().port().ok_or("the device has no vhci port")?;
        let detached_at = Instant::now();
        std::fs::write(VHCI_DETACH, vhci_port.to_string())
            .map_err(|e| format!("writing {vhci_port} to {VHCI_DETACH}: {e}"))?;
        let (event, lost_at) = next_event(&mut port)?;
        if !matches!(event, Error::Disconnected) {
            return Err(format!("after the detach: {event}, not Disconnected"));
        }
        let noticed = lost_at.duration_since(detached_at);
        let t0 = Instant::now();
        let write = port.write_all(b"gone");
        let write_took = t0.elapsed();
        if !matches!(write, Err(Error::Disconnected)) {
            return Err(format!("a write while the device is gone: {write:?}"));
        }
        // The function comes back once the device server has ended.
        wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
            dev.function_mut().is_some()
        })
        .ok_or("the device server did not end within 5 s of the detach")?;

        // The same adapter, power-cycled: a new chip, same serial number.
        let fresh = VirtualFtdi::builder(Chip::Ft232R)
            .device(Interface::A, Frobnicator::new(DEVICE_DELAY))
            .build(Timestamp::now())
            .map_err(|e| format!("building the replugged chip: {e}"))?;
        let power_on = fresh
            .state(Interface::A)
            .map_err(|e| e.to_string())?
            .latency_timer_ms;
        *dev.function_mut().ok_or("the detached device's function")? = fresh;
        let replugged_at = Instant::now();
        let enumerated = dev.replug_enumerated()?;
        let (event, resumed_at) = next_event(&mut port)?;
        let Error::Resumed { gap } = event else {
            return Err(format!("after the replug: {event}, not Resumed"));
        };
        let after_replug = resumed_at.duration_since(replugged_at);
        let stats = port.stats();
        if stats.resumes != 1 || stats.resume_gap != gap {
            return Err(format!(
                "statistics: {} resumes, gap {:?} (the event said {gap:?})",
                stats.resumes, stats.resume_gap
            ));
        }
        let registers = check_registers(&dev, &port, "after the resume")?;
        exchange(&mut port, 2).map_err(|e| format!("after the resume: {e}"))?;
        ctx.metric(
            "vhci-resume",
            &[
                ("gap_us", gap.as_micros().to_string()),
                (
                    "disconnected_after_detach_us",
                    noticed.as_micros().to_string(),
                ),
                ("write_in_gap_us", write_took.as_micros().to_string()),
                (
                    "enumerated_after_replug_us",
                    enumerated.as_micros().to_string(),
                ),
                (
                    "resumed_after_replug_us",
                    after_replug.as_micros().to_string(),
                ),
                ("power_on_latency_ms", power_on.to_string()),
                ("resumes", stats.resumes.to_string()),
            ],
        );
        Ok(format!(
            "{TRANSACTIONS} transactions; Disconnected {} after the detach, a write in the gap \
             failed in {}; replugged power-cycled (latency timer {power_on} ms), enumerated in \
             {}, resumed {} after the replug with a gap of {}; 1 resume counted; chip after: \
             {registers}; {TRANSACTIONS} transactions again",
            ms(noticed),
            ms(write_took),
            ms(enumerated),
            ms(after_replug),
            ms(gap)
        ))
    };
    run().into()
}
