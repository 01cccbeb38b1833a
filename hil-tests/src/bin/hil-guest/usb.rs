//! Cases that drive ftdi-rt's userspace USB driver against QEMU's emulated
//! FT232BM, and the same request/reply loop over the kernel path.

use std::path::Path;
use std::time::{Duration, Instant};

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::{Chip, Error, LineProperties, Parity, Port, PortConfig, Selector, StopBits};
use ftdi_rt_hil::checks;
use ftdi_rt_hil::guest::{Ctx, Outcome, is_char_device, wait_until};
use ftdi_rt_hil::proto::{FROB_REQUEST_LEN, Mode};

/// ftdi_sio's interface in the guest (one emulated device on xHCI port 1).
const INTERFACE: &str = "/sys/bus/usb/devices/1-1:1.0";

fn open_usb() -> Result<Port, String> {
    Port::open_usb(&Selector::First, &PortConfig::default()).map_err(|e| format!("open_usb: {e}"))
}

fn bound_driver() -> Option<String> {
    std::fs::read_link(Path::new(INTERFACE).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Waits until ftdi_sio is bound again and its tty is back.
fn wait_for_ftdi_sio(tty: &str) -> Result<Duration, String> {
    let start = Instant::now();
    wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        bound_driver().as_deref() == Some("ftdi_sio") && is_char_device(tty)
    })
    .ok_or_else(|| format!("ftdi_sio not re-attached ({tty} missing) 5 s after close"))?;
    Ok(start.elapsed())
}

pub fn usb_list(_ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let found = ftdi_rt::list(&[]).map_err(|e| format!("list: {e}"))?;
        let [dev] = found.as_slice() else {
            return Err(format!("expected one FTDI device, found {found:?}"));
        };
        if (dev.vendor_id, dev.product_id, dev.chip) != (0x0403, 0x6001, Some(Chip::Bm)) {
            return Err(format!("unexpected device {dev}"));
        }
        if dev.manufacturer.as_deref() != Some("QEMU") || dev.path() != "1-1" {
            return Err(format!("unexpected strings or path: {dev:?}"));
        }
        Ok(format!("found {dev}"))
    };
    run().into()
}

pub fn usb_open(ctx: &mut Ctx) -> Outcome {
    let tty = ctx.tty_path.clone();
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        if bound_driver().as_deref() != Some("ftdi_sio") {
            return Err("ftdi_sio is not bound before the open".into());
        }
        let port = open_usb()?;
        // Detached while open: the interface is claimed through usbfs (the
        // kernel shows that as the "usbfs" driver), ftdi_sio is gone, no tty.
        let while_open = bound_driver();
        if while_open.as_deref() != Some("usbfs") {
            return Err(format!(
                "interface bound to {while_open:?} while the port is open, expected usbfs"
            ));
        }
        if Path::new(&tty).exists() {
            return Err(format!("{tty} still present while the port is open"));
        }
        let info = port.transport_info();
        if (info.chip, info.max_packet_size, info.actual_baud)
            != (Some(Chip::Bm), Some(64), Some(115_385))
        {
            return Err(format!("unexpected transport info {info:?}"));
        }
        let realtime = port.realtime().to_string();
        drop(port);
        let back = wait_for_ftdi_sio(&tty)?;
        // What QEMU recorded of the configuration sequence.
        ctx.expect_trace("baud", "usb_serial_set_baud", "baud rate 115384");
        ctx.expect_trace(
            "line",
            "usb_serial_set_data",
            "parity N, data bits 8, stop bits 1",
        );
        ctx.expect_trace(
            "latency",
            "usb_serial_handle_control",
            "got control 0x4009, value 0x1",
        );
        ctx.expect_trace(
            "modem",
            "usb_serial_handle_control",
            "got control 0x4001, value 0x303",
        );
        ctx.expect_trace(
            "purge-rx",
            "usb_serial_handle_control",
            "got control 0x4000, value 0x2",
        );
        ctx.expect_trace("flow-off", "usb_serial_set_flow_control", "flow control 0");
        ctx.expect_trace("bitmode", "usb_serial_unsupported_control", "0x400b");
        Ok(format!(
            "detached ftdi_sio, claimed via usbfs, configured ({}; reader {realtime}); ftdi_sio back {} ms after close",
            info.notes.join("; "),
            back.as_millis()
        ))
    };
    run(ctx).into()
}

pub fn usb_echo(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        ctx.ctl()?.set_mode(Mode::Echo)?;
        let mut port = open_usb()?;
        let sizes = [1, 2, 61, 62, 63, 64, 124, 125, 200, 496, 1000, 4096];
        let mut report = String::new();
        for (baud, traced) in [
            (9600, "9600"),
            (115_200, "115384"),
            (1_000_000, "1000000"),
            (3_000_000, "3000000"),
        ] {
            port.set_baud_rate(baud)
                .map_err(|e| format!("set {baud} Bd: {e}"))?;
            ctx.expect_trace(
                &format!("baud-{baud}"),
                "usb_serial_set_baud",
                &format!("baud rate {traced}"),
            );
            report =
                checks::echo_bursts(&mut port, &sizes).map_err(|e| format!("at {baud} Bd: {e}"))?;
        }
        // Line settings QEMU models: 7E1 and 8O2; mark parity and 1.5 stop
        // bits it STALLs, which must come back as a clear error, not a hang.
        for line in [
            LineProperties::new(ftdi_rt::DataBits::Seven, Parity::Even, StopBits::One),
            LineProperties::new(ftdi_rt::DataBits::Eight, Parity::Odd, StopBits::Two),
        ] {
            port.set_line_properties(line)
                .map_err(|e| format!("{line}: {e}"))?;
        }
        ctx.expect_trace(
            "line-7e1",
            "usb_serial_set_data",
            "parity E, data bits 7, stop bits 1",
        );
        ctx.expect_trace(
            "line-8o2",
            "usb_serial_set_data",
            "parity O, data bits 8, stop bits 2",
        );
        match port.set_line_properties(LineProperties::new(
            ftdi_rt::DataBits::Eight,
            Parity::Mark,
            StopBits::One,
        )) {
            Err(Error::Stall { .. }) => {}
            other => {
                return Err(format!(
                    "mark parity: expected a STALL error, got {other:?}"
                ));
            }
        }
        port.set_line_properties(LineProperties::EIGHT_N_ONE)
            .map_err(|e| e.to_string())?;
        checks::echo(
            &mut port,
            b"still alive after a STALL",
            Duration::from_secs(2),
        )?;
        let s = port.stats();
        Ok(format!(
            "{report} at 9600, 115200, 1M and 3M Bd; {} packets, {} status-only",
            s.packets, s.status_only_packets
        ))
    };
    run(ctx).into()
}

/// The request/reply loop over the userspace driver and over the kernel
/// path on the same emulated chip, idle and with a hog per vCPU.
pub fn compare(ctx: &mut Ctx) -> Outcome {
    let tty = ctx.tty_path.clone();
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let n: usize = ctx.param("compare.n", 2000);
        let deadline = Duration::from_micros(ctx.param("compare.deadline_us", 3500));
        let delay_us: u64 = ctx.param("frob.delay_us", 200);
        ctx.ctl()?.set_mode(Mode::Frob { delay_us })?;
        let request = |i: usize| checks::pattern(FROB_REQUEST_LEN, i as u8);
        let reply = |req: &[u8]| vec![Frobnicator::reply_for(req)];
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut summary = Vec::new();
        for hogs in [0, cpus] {
            let load = if hogs == 0 { "idle" } else { "hog" };
            let _hogs = ftdi_rt_lab::CpuHogs::start(hogs).map_err(|e| format!("CPU hogs: {e}"))?;
            for path in ["usb", "tty"] {
                let mut port = if path == "usb" {
                    open_usb()?
                } else {
                    wait_for_ftdi_sio(&tty)?;
                    let port = Port::open_tty(&tty, &PortConfig::default())
                        .map_err(|e| format!("open_tty: {e}"))?;
                    check_fair_baseline(&tty, &port)?;
                    port
                };
                let r = checks::request_reply(&mut port, n, deadline, request, reply)?;
                if r.wrong > 0 {
                    return Err(format!("{path} {load}: {} wrong replies", r.wrong));
                }
                let mut m = r.metric();
                m.insert(0, ("load", load.to_string()));
                m.insert(0, ("path", path.to_string()));
                ctx.metric("compare", &m);
                summary.push(format!(
                    "{path}/{load} p99 {} us, {} missed",
                    r.percentile(99.0),
                    r.misses
                ));
            }
        }
        Ok(summary.join("; "))
    };
    run(ctx).into()
}

/// The kernel path as a fair baseline: on ftdi_sio (root in the guest) the
/// tty transport must have set the latency timer to 1 ms (and with it
/// ASYNC_LOW_LATENCY); anything it could not set would be in the notes.
fn check_fair_baseline(tty: &str, port: &Port) -> Result<(), String> {
    let name = Path::new(tty)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let sysfs = format!("/sys/bus/usb-serial/devices/{name}/latency_timer");
    let latency = std::fs::read_to_string(&sysfs).map_err(|e| format!("{sysfs}: {e}"))?;
    let notes = port.transport_info().notes;
    if latency.trim() != "1"
        || notes
            .iter()
            .any(|n| n.contains("latency") || n.contains("LOW_LATENCY"))
    {
        return Err(format!(
            "kernel path not at its best: {sysfs} = {}, notes {notes:?}",
            latency.trim()
        ));
    }
    Ok(())
}

/// Unplug mid-stream: Disconnected promptly, no hang; replug; reopen works.
pub fn usb_unplug(ctx: &mut Ctx) -> Outcome {
    let tty = ctx.tty_path.clone();
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        ctx.ctl()?.set_mode(Mode::Echo)?;
        let mut port = open_usb()?;
        let ctl = ctx.ctl()?;
        let (gap, bytes) = checks::stream_until_disconnected(&mut port, || {
            // The runner closes the device's socket at once, so QEMU unplugs it.
            let _ = ctl.unplug(0, 1000);
        })?;
        let why = port.stats().disconnect.unwrap_or_default();
        if gap > Duration::from_millis(100) {
            return Err(format!(
                "Disconnected came {gap:?} after the last data (limit 100 ms)"
            ));
        }
        let write_after = port.write_all(b"x");
        if write_after.is_ok() {
            return Err("a write after the unplug succeeded".into());
        }
        drop(port);
        // Replug: the runner reconnects after 1 s; the device re-enumerates.
        wait_for_ftdi_sio(&tty).or_else(|_| wait_for_ftdi_sio(&tty))?;
        ctx.ctl()?.set_mode(Mode::Echo)?;
        let mut port = open_usb()?;
        checks::echo(&mut port, b"back after replug", Duration::from_secs(2))?;
        drop(port);
        wait_for_ftdi_sio(&tty)?;
        ctx.metric(
            "usb-unplug",
            &[
                ("bytes", bytes.to_string()),
                (
                    "disconnected_after_last_data_ms",
                    gap.as_millis().to_string(),
                ),
            ],
        );
        Ok(format!(
            "{bytes} bytes streamed; Disconnected {} ms after the last data ({why}); write failed ({}); replug, reopen, echo ok",
            gap.as_millis(),
            write_after.err().map(|e| e.to_string()).unwrap_or_default()
        ))
    };
    run(ctx).into()
}
