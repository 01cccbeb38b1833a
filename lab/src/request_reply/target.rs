//! Opening the port the options name, with the responder it needs.

use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig, SimHandle};
use ftdi_rt::{
    Error, MemoryLocking, Pinning, Port, PortConfig, RealtimeConfig, RealtimePolicy, Selector,
};

use super::cli::{Options, Target};
use crate::PtyDevice;

/// An open port and whatever must live as long as it.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) port: Port,
    /// The pty responder (kept alive for the port).
    _pty: Option<PtyDevice>,
    /// The simulated chip, for its own lateness.
    pub(super) chip: Option<SimHandle>,
    pub(super) label: String,
}

/// The reader's realtime settings from the options.
pub(super) fn reader_realtime(opts: &Options) -> RealtimeConfig {
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
        .with_reader_realtime(reader_realtime(opts))
}

fn frobnicator(opts: &Options) -> Frobnicator {
    Frobnicator::with_sizes(opts.request_size, opts.reply_size, opts.device_delay)
}

/// What to run when no transport is named: the first adapter, or the
/// simulated chip with a one-line notice.
pub(super) fn default_target() -> Target {
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
pub(super) fn open(target: &Target, opts: &Options) -> Result<Opened, Error> {
    let config = config(opts);
    let (port, pty, chip) = match target {
        Target::Sim => {
            let chip = SimChip::new(frobnicator(opts), SimConfig::default())?;
            let handle = chip.handle();
            (Port::open_sim(chip, &config)?, None, Some(handle))
        }
        Target::Pty => {
            let pty = PtyDevice::spawn(frobnicator(opts))?;
            (Port::open_tty(pty.path(), &config)?, Some(pty), None)
        }
        Target::Usb(selector) => (
            Port::open_usb(&selector.parse::<Selector>()?, &config)?,
            None,
            None,
        ),
        Target::Tty(path) => (Port::open_tty(path, &config)?, None, None),
    };
    let label = format!("{target}: {}", port.transport_info().description);
    Ok(Opened {
        port,
        _pty: pty,
        chip,
        label,
    })
}

/// Gives the device a moment and drops whatever it sent on open.
pub(super) fn settle(port: &mut Port) {
    std::thread::sleep(Duration::from_millis(20));
    port.receiver().discard_pending();
}
