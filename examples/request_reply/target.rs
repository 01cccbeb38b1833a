//! Opening the port the options name, with the responder it needs.

use std::time::Duration;

use ftdi_rt::pty::PtyDevice;
use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt::{
    Error, MemoryLocking, Pinning, Port, PortConfig, RealtimeConfig, RealtimePolicy, Selector,
};

use crate::cli::{Options, Target};

/// An open port and whatever must live as long as it.
pub struct Opened {
    pub port: Port,
    /// The pty responder (kept alive for the port).
    _pty: Option<PtyDevice>,
    pub label: String,
}

/// The reader's realtime settings from the options.
pub fn reader_realtime(opts: &Options) -> RealtimeConfig {
    RealtimeConfig::default()
        .with_priority(opts.reader_priority)
        .with_pinning(opts.reader_cpu.map_or(Pinning::LastCpu, Pinning::Cpu))
        .with_memory_locking(if opts.lock_whole_process {
            MemoryLocking::WholeProcess
        } else {
            MemoryLocking::HotPath
        })
        .with_policy(if opts.best_effort {
            RealtimePolicy::BestEffort
        } else {
            RealtimePolicy::Required
        })
}

fn config(opts: &Options) -> PortConfig {
    PortConfig::default()
        .with_baud(opts.baud)
        .with_latency_timer_ms(opts.latency_timer)
        .with_reader(reader_realtime(opts))
}

fn frobnicator(opts: &Options) -> Frobnicator {
    Frobnicator::with_sizes(opts.request_size, opts.reply_size, opts.device_delay)
}

/// What to run when no transport is named: the first adapter, or the
/// simulated chip with a one-line notice.
pub fn default_target() -> Target {
    match ftdi_rt::list(&[]) {
        Ok(devices) if !devices.is_empty() => {
            eprintln!(
                "using {} (--usb); pass --sim for the simulated chip",
                devices[0]
            );
            Target::Usb(String::new())
        }
        Ok(_) => {
            eprintln!(
                "no FTDI adapter found: running on the simulated FT232R with the frobnicator responder (--sim)"
            );
            Target::Sim
        }
        Err(e) => {
            let why = match e {
                Error::UsbUnavailable { reason } => format!("USB is not available here: {reason}"),
                other => other.to_string(),
            };
            eprintln!(
                "no FTDI adapter found ({why}): running on the simulated FT232R with the frobnicator responder (--sim)"
            );
            Target::Sim
        }
    }
}

/// Opens `target` as the options say.
pub fn open(target: &Target, opts: &Options) -> Result<Opened, Error> {
    let config = config(opts);
    let (port, pty) = match target {
        Target::Sim => {
            let chip = SimChip::new(frobnicator(opts), SimConfig::default())?;
            (Port::open_sim(chip, &config)?, None)
        }
        Target::Pty => {
            let pty = PtyDevice::spawn(frobnicator(opts))?;
            (Port::open_tty(pty.path(), &config)?, Some(pty))
        }
        Target::Usb(selector) => (
            Port::open_usb(&selector.parse::<Selector>()?, &config)?,
            None,
        ),
        Target::Tty(path) => (Port::open_tty(path, &config)?, None),
    };
    let label = format!("{target}: {}", port.transport_info().description);
    Ok(Opened {
        port,
        _pty: pty,
        label,
    })
}

/// Gives the device a moment and drops whatever it sent on open.
pub fn settle(port: &mut Port) {
    std::thread::sleep(Duration::from_millis(20));
    port.receiver().discard_pending();
}
