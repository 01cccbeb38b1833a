//! A simulated FTDI adapter plugged into this machine's kernel.
//!
//! ```text
//! sudo modprobe vhci-hcd
//! cargo build --release --example virtual_adapter --features usbip
//! sudo target/release/examples/virtual_adapter                       # FT232R, loopback with jumpers
//! sudo target/release/examples/virtual_adapter --chip ft4232h --channel A=frob:200 --channel B=loopback
//! sudo target/release/examples/virtual_adapter --unplug-after 5 --replug-after 2 --line-error fe --every 1
//! ```
//!
//! The chip is ftdi-rt's simulated one (`ftdi_rt::sim::usb::VirtualFtdi`):
//! descriptors, vendor requests, latency timer, status packets, baud pacing
//! and a device model wired to each channel's UART. It is attached to the
//! local kernel through USB/IP (vhci-hcd) and served from a `SCHED_FIFO` 90
//! thread, so the kernel enumerates it like an adapter on a USB port:
//! ftdi_sio creates `/dev/ttyUSBn` for each channel, libusb and ftdi-rt's
//! userspace driver see it. Any program, even one that only knows a tty, can
//! then be tested against a chip with real timing and injected faults.
//!
//! Runs until Ctrl-C, then unplugs the device. Needs root (vhci-hcd's sysfs
//! files are root-only) and the vhci-hcd module.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use ftdi_rt::sim::usb::{VirtualFtdi, VirtualFtdiBuilder};
use ftdi_rt::sim::{Frobnicator, Loopback};
use ftdi_rt::usbip::{AttachOptions, AttachedDevice};
use ftdi_rt::{Chip, Interface, LineStatus, Timestamp};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ChipArg {
    Ft232r,
    Ft2232h,
    Ft4232h,
}

impl ChipArg {
    fn chip(self) -> Chip {
        match self {
            ChipArg::Ft232r => Chip::Ft232R,
            ChipArg::Ft2232h => Chip::Ft2232H,
            ChipArg::Ft4232h => Chip::Ft4232H,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LineErrorArg {
    /// Overrun (OE).
    Oe,
    /// Parity error (PE).
    Pe,
    /// Framing error (FE).
    Fe,
    /// Break (BI).
    Bi,
}

/// What is wired to a channel's UART.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    /// TX wired to RX, no handshake jumpers.
    Loopback,
    /// TX to RX, RTS→CTS and DTR→DSR.
    Jumpers,
    /// The frobnicator: 7-byte request, 1-byte reply after a delay (µs).
    Frob(u64),
    /// Nothing connected.
    None,
}

/// `A=loopback`, `B=jumpers`, `C=frob:200`, `D=none`.
fn parse_channel(s: &str) -> Result<(Interface, Model), String> {
    let (ch, model) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected CHANNEL=MODEL, e.g. A=loopback"))?;
    let interface = match ch.trim().to_ascii_uppercase().as_str() {
        "A" => Interface::A,
        "B" => Interface::B,
        "C" => Interface::C,
        "D" => Interface::D,
        other => return Err(format!("channel {other:?}: expected A, B, C or D")),
    };
    let model = match model.trim() {
        "loopback" => Model::Loopback,
        "jumpers" => Model::Jumpers,
        "none" => Model::None,
        m => match m.strip_prefix("frob:").map(str::parse::<u64>) {
            Some(Ok(us)) if us <= 10_000_000 => Model::Frob(us),
            _ => {
                return Err(format!(
                    "model {m:?}: expected loopback, jumpers, frob:<delay µs> or none"
                ));
            }
        },
    };
    Ok((interface, model))
}

/// A simulated FTDI adapter attached to the local kernel through vhci-hcd.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Options {
    /// The chip.
    #[arg(long, value_enum, default_value = "ft232r")]
    chip: ChipArg,
    /// What is wired to a channel: CHANNEL=loopback|jumpers|frob:<µs>|none
    /// (repeatable). Channels not named get a loopback with jumpers.
    #[arg(long = "channel", value_parser = parse_channel)]
    channels: Vec<(Interface, Model)>,
    /// The serial number the chip reports.
    #[arg(long, default_value = "FTVIRT01")]
    serial: String,
    /// Raise vhci-hcd's vhci_rx/vhci_tx threads to this SCHED_FIFO priority
    /// (they play the host controller's interrupt); default: leave them.
    #[arg(long)]
    vhci_priority: Option<u8>,
    /// Unplug the device this many seconds after it is attached.
    #[arg(long)]
    unplug_after: Option<f64>,
    /// Plug it back in this many seconds after the unplug.
    #[arg(long, requires = "unplug_after")]
    replug_after: Option<f64>,
    /// Inject this line error on channel A's next data packet...
    #[arg(long, value_enum)]
    line_error: Option<LineErrorArg>,
    /// ...every this many seconds.
    #[arg(long, default_value_t = 1.0, requires = "line_error")]
    every: f64,
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("{s} s: {e}"))
}

fn build(opts: &Options) -> Result<VirtualFtdi, String> {
    let chip = opts.chip.chip();
    let mut builder: VirtualFtdiBuilder = VirtualFtdi::builder(chip).serial_number(&opts.serial);
    for n in 0..chip.channels() {
        let interface = [Interface::A, Interface::B, Interface::C, Interface::D][usize::from(n)];
        let model = opts
            .channels
            .iter()
            .rev()
            .find(|(i, _)| *i == interface)
            .map_or(Model::Jumpers, |(_, m)| *m);
        builder = match model {
            Model::Loopback => builder.device(interface, Loopback::new()),
            Model::Jumpers => builder.device(interface, Loopback::with_handshake_jumpers()),
            Model::Frob(us) => {
                builder.device(interface, Frobnicator::new(Duration::from_micros(us)))
            }
            Model::None => builder,
        };
    }
    if let Some((i, _)) = opts
        .channels
        .iter()
        .find(|(i, _)| i.number() >= chip.channels())
    {
        return Err(format!("the {chip} has no channel {i}"));
    }
    builder.build(Timestamp::now()).map_err(|e| e.to_string())
}

fn show(dev: &AttachedDevice<VirtualFtdi>) -> Result<(), String> {
    let bus_id = dev
        .wait_for_bus_id(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let channels = dev
        .with_function(|f, _| f.chip().channels())
        .map_err(|e| e.to_string())?;
    // ftdi_sio binds after enumeration: give it a moment to create the ttys.
    let start = Instant::now();
    let mut ttys = dev.ttys();
    while ttys.len() < usize::from(channels) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        ttys = dev.ttys();
    }
    println!(
        "attached on vhci-hcd port {} as USB device {bus_id} (/sys/bus/usb/devices/{bus_id})",
        dev.port().map_or("?".into(), |p| p.to_string())
    );
    for (interface, tty) in &ttys {
        println!("  channel {}: /dev/{tty}", (b'A' + interface) as char);
    }
    if ttys.is_empty() {
        println!("  no tty nodes: is ftdi_sio loaded? (`modprobe ftdi_sio`)");
    }
    Ok(())
}

fn run(opts: &Options, stop: &AtomicBool) -> Result<(), String> {
    let function = build(opts)?;
    let options = AttachOptions::default().with_kthread_priority(opts.vhci_priority);
    let mut dev = AttachedDevice::attach(function, options).map_err(|e| e.to_string())?;
    println!("device server: {}", dev.server_realtime());
    for k in dev.kthreads() {
        println!("  {} (pid {}): {:?}", k.name, k.pid, k.outcome);
    }
    show(&dev)?;
    let started = Instant::now();
    let mut unplug_at = opts
        .unplug_after
        .map(secs)
        .transpose()?
        .map(|d| started + d);
    let mut replug_at = None;
    let every = secs(opts.every)?.max(Duration::from_millis(1));
    let mut next_error = started + every;
    println!("Ctrl-C unplugs the device and exits.");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
        let now = Instant::now();
        if let Some(reason) = dev.detached()
            && replug_at.is_none()
        {
            println!("detached: {reason}");
            break;
        }
        if unplug_at.is_some_and(|t| now >= t) {
            unplug_at = None;
            dev.unplug().map_err(|e| e.to_string())?;
            println!("unplugged");
            replug_at = opts.replug_after.map(secs).transpose()?.map(|d| now + d);
            if replug_at.is_none() {
                break;
            }
        }
        if replug_at.is_some_and(|t| now >= t) {
            replug_at = None;
            dev.replug().map_err(|e| e.to_string())?;
            println!("replugged");
            show(&dev)?;
        }
        if let Some(kind) = opts.line_error
            && now >= next_error
            && dev.port().is_some()
        {
            next_error = now + every;
            let bits = match kind {
                LineErrorArg::Oe => LineStatus::OE,
                LineErrorArg::Pe => LineStatus::PE,
                LineErrorArg::Fe => LineStatus::FE,
                LineErrorArg::Bi => LineStatus::BI,
            };
            let injected = dev
                .with_function(move |f, _| f.inject_line_error(Interface::A, LineStatus(bits)))
                .map_err(|e| e.to_string())?;
            injected.map_err(|e| e.to_string())?;
        }
    }
    let late = dev.lateness();
    dev.unplug().map_err(|e| e.to_string())?;
    println!(
        "unplugged; device server lateness over {} timeouts: p99 {} µs, max {} µs",
        late.count,
        late.p99.as_micros(),
        late.max.as_micros()
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::init();
    let opts = Options::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed)) {
        eprintln!("warning: Ctrl-C will not unplug cleanly ({e})");
    }
    match run(&opts, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtual_adapter: {e}");
            ExitCode::FAILURE
        }
    }
}
