//! `ftdi-rt info <selector>` / `ftdi-rt info --sim`: one adapter's
//! descriptors, EEPROM (read only, decoded), latency timer, modem and line
//! status.
//!
//! The descriptors come from sysfs (nothing opened). The rest needs the
//! chip: the adapter is opened through the userspace driver (ftdi_sio is
//! detached from that interface and re-attached on exit), the EEPROM read
//! word by word, and nothing written to it. Opening configures the UART as
//! every ftdi-rt port does (1 ms latency timer, 115200 8N1), so the latency
//! timer shown for the open port is ftdi-rt's; the kernel driver's, which
//! the adapter goes back to, is read from sysfs before opening.

use std::process::ExitCode;

use ftdi_rt::proto::{EEPROM_WORDS_93C46, Eeprom};
use ftdi_rt::sim::{Loopback, SimChip, SimConfig};
use ftdi_rt::{Port, PortConfig, Selector};
use serde::Serialize;

use crate::print_json;
use crate::sysfs::{self, Sys, UsbAdapter};

/// Options of `info`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The adapter: serial number, bus-port path (1-1.2), index, or empty
    /// for the first.
    #[arg(conflicts_with = "sim")]
    selector: Option<String>,
    /// The simulated FT232R instead of an adapter (no hardware needed).
    #[arg(long)]
    sim: bool,
}

#[derive(Serialize, Default)]
struct Report {
    transport: String,
    descriptors: Option<UsbAdapter>,
    /// ftdi_sio's latency timer per tty, read from sysfs before opening.
    kernel_latency_timer_ms: Vec<(String, u8)>,
    eeprom: Option<EepromReport>,
    eeprom_error: Option<String>,
    latency_timer_ms: Option<u8>,
    latency_timer_error: Option<String>,
    modem: Option<Modem>,
    status_error: Option<String>,
}

#[derive(Serialize)]
struct EepromReport {
    vendor_id: String,
    product_id: String,
    release: String,
    manufacturer: Option<String>,
    product: Option<String>,
    serial: Option<String>,
    max_power_ma: u16,
    self_powered: bool,
    remote_wakeup: bool,
    checksum_ok: bool,
    size_bytes: usize,
}

#[derive(Serialize)]
struct Modem {
    cts: bool,
    dsr: bool,
    ri: bool,
    dcd: bool,
    /// The line status byte's flags that are set.
    line: Vec<&'static str>,
}

/// Shows one adapter; exit status 0, or 2 if it cannot be found or opened.
pub(crate) fn run(args: &Args, json: bool) -> ExitCode {
    let report = if args.sim {
        sim_report()
    } else {
        adapter_report(args.selector.as_deref().unwrap_or(""))
    };
    match report {
        Ok(report) => {
            if json {
                print_json(&report);
            } else {
                print!("{}", text(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn config() -> PortConfig {
    // Reading a few registers needs no realtime guarantee.
    PortConfig::default().best_effort()
}

fn sim_report() -> Result<Report, ftdi_rt::Error> {
    let chip = SimChip::new(Loopback::new(), SimConfig::default())?;
    let port = Port::open_sim(chip, &config())?;
    Ok(chip_report(&port, Report::default()))
}

fn adapter_report(selector: &str) -> Result<Report, ftdi_rt::Error> {
    let selector: Selector = selector.parse()?;
    let sys = Sys::from_env();
    let adapters = sysfs::ftdi_adapters(&sys);
    let found = adapters.iter().enumerate().find(|(i, a)| match &selector {
        Selector::First => *i == 0,
        Selector::Index(n) => i == n,
        Selector::Serial(s) => a.serial.as_deref() == Some(s.as_str()),
        Selector::Path { bus, ports } => {
            let ports: Vec<String> = ports.iter().map(u8::to_string).collect();
            a.path == format!("{bus}-{}", ports.join("."))
        }
    });
    let Some((_, adapter)) = found else {
        let usb = sysfs::usb_presence(&sys);
        let why = if usb.sysfs_bus {
            format!("{} FTDI adapter(s) present", adapters.len())
        } else {
            "this machine has no USB; try ftdi-rt info --sim".to_string()
        };
        return Err(ftdi_rt::Error::InvalidConfig(format!(
            "no adapter matches {selector} ({why}; ftdi-rt list shows them)"
        )));
    };
    let kernel_latency_timer_ms = adapter
        .interfaces
        .iter()
        .filter_map(|i| i.tty.clone())
        .filter_map(|tty| sysfs::kernel_latency_timer(&sys, tty))
        .collect();
    let by_path: Selector = adapter.path.parse()?;
    let port = Port::open_usb(&by_path, &config())?;
    Ok(chip_report(
        &port,
        Report {
            descriptors: Some(adapter.clone()),
            kernel_latency_timer_ms,
            ..Report::default()
        },
    ))
}

/// What the open port's chip says.
fn chip_report(port: &Port, mut report: Report) -> Report {
    let writer = port.writer();
    report.transport = port.transport_info().description;
    match writer.read_eeprom(EEPROM_WORDS_93C46 as u16) {
        Ok(words) => match Eeprom::decode(&words) {
            Ok(e) => report.eeprom = Some(eeprom_report(&e)),
            Err(e) => report.eeprom_error = Some(e.to_string()),
        },
        Err(e) => report.eeprom_error = Some(e.to_string()),
    }
    match writer.read_latency_timer() {
        Ok(ms) => report.latency_timer_ms = Some(ms),
        Err(e) => report.latency_timer_error = Some(e.to_string()),
    }
    match writer.query_status() {
        Ok((modem, line)) => {
            let flags = [
                (line.data_ready(), "DR"),
                (line.overrun(), "OE"),
                (line.parity_error(), "PE"),
                (line.framing_error(), "FE"),
                (line.break_interrupt(), "BI"),
                (line.0 & ftdi_rt::LineStatus::THRE != 0, "THRE"),
                (line.0 & ftdi_rt::LineStatus::TEMT != 0, "TEMT"),
                (line.0 & ftdi_rt::LineStatus::FIFO_ERROR != 0, "FIFO_ERROR"),
            ];
            report.modem = Some(Modem {
                cts: modem.cts(),
                dsr: modem.dsr(),
                ri: modem.ri(),
                dcd: modem.dcd(),
                line: flags.iter().filter(|f| f.0).map(|f| f.1).collect(),
            });
        }
        Err(e) => report.status_error = Some(e.to_string()),
    }
    report
}

fn eeprom_report(e: &Eeprom) -> EepromReport {
    EepromReport {
        vendor_id: format!("{:04x}", e.vendor_id),
        product_id: format!("{:04x}", e.product_id),
        release: format!("{:04x}", e.release),
        manufacturer: e.manufacturer.clone(),
        product: e.product.clone(),
        serial: e.serial.clone(),
        max_power_ma: e.max_power_ma,
        self_powered: e.self_powered,
        remote_wakeup: e.remote_wakeup,
        checksum_ok: e.checksum_ok,
        size_bytes: e.size_bytes,
    }
}

fn text(r: &Report) -> String {
    let mut out = format!("transport        {}\n", r.transport);
    match &r.descriptors {
        Some(d) => out.push_str(&format!(
            "descriptors      {:04x}:{:04x} bcdDevice {:04x} ({}), \"{}\" \"{}\" serial {}, usb {}, {}\n",
            d.vendor_id,
            d.product_id,
            d.bcd_device,
            d.chip.as_deref().unwrap_or("unknown chip"),
            d.manufacturer.as_deref().unwrap_or(""),
            d.product.as_deref().unwrap_or(""),
            d.serial.as_deref().unwrap_or("(none)"),
            d.path,
            d.dev_node,
        )),
        None => out.push_str("descriptors      none: the simulated chip sits below USB\n"),
    }
    for (tty, ms) in &r.kernel_latency_timer_ms {
        out.push_str(&format!("ftdi_sio         {tty}: latency_timer {ms} ms\n"));
    }
    match (&r.eeprom, &r.eeprom_error) {
        (Some(e), _) => {
            let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            out.push_str(&format!(
                "eeprom           {}:{} release {}, {} bytes, checksum {}\n",
                e.vendor_id,
                e.product_id,
                e.release,
                e.size_bytes,
                if e.checksum_ok { "ok" } else { "BAD" }
            ));
            out.push_str(&format!("  manufacturer   {}\n", s(&e.manufacturer)));
            out.push_str(&format!("  product        {}\n", s(&e.product)));
            out.push_str(&format!("  serial         {}\n", s(&e.serial)));
            out.push_str(&format!(
                "  power          {} mA, {}{}\n",
                e.max_power_ma,
                if e.self_powered {
                    "self-powered"
                } else {
                    "bus-powered"
                },
                if e.remote_wakeup {
                    ", remote wakeup"
                } else {
                    ""
                }
            ));
        }
        (None, Some(err)) => out.push_str(&format!("eeprom           not read: {err}\n")),
        (None, None) => {}
    }
    match (r.latency_timer_ms, &r.latency_timer_error) {
        (Some(ms), _) => out.push_str(&format!(
            "latency timer    {ms} ms (as ftdi-rt set it on open)\n"
        )),
        (None, Some(err)) => out.push_str(&format!("latency timer    not read: {err}\n")),
        (None, None) => {}
    }
    match (&r.modem, &r.status_error) {
        (Some(m), _) => out.push_str(&format!(
            "modem lines      CTS {} DSR {} RI {} DCD {}\nline status      {}\n",
            on(m.cts),
            on(m.dsr),
            on(m.ri),
            on(m.dcd),
            if m.line.is_empty() {
                "(none set)".to_string()
            } else {
                m.line.join(" ")
            }
        )),
        (None, Some(err)) => out.push_str(&format!("status           not read: {err}\n")),
        (None, None) => {}
    }
    out
}

fn on(level: bool) -> &'static str {
    if level { "on" } else { "off" }
}
