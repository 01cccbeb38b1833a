//! The threaded simulated chip: [`SimChip`], what a host (or
//! [`Port::open_sim`](crate::Port::open_sim)) sees over USB, and
//! [`SimHandle`], fault injection and inspection while it runs. Both are a
//! thin shell around a [`ChannelEngine`] that a thread of its own drives on
//! real time ([`super::shell`]).

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::bus::{Bus, Command, HostIn, HostOut};
use super::device::{Device, ModemLines};
use super::engine::ChannelEngine;
use super::registers::ChipState;
use super::shell::{ChipThread, ChipWiring};
use super::transfer::{InPacket, TransferError};
use super::{SimConfig, SimCounters};
use crate::error::Result;
use crate::lock::lock;
use crate::proto::{Chip, ControlRequest, Interface, LineStatus};
use crate::realtime::{self, RealtimeStatus};
use crate::stall::StallSource;
use crate::stats::LatencySummary;
use crate::time::Timestamp;

/// IN transfers the simulated bus can hold completed but not yet taken.
const IN_RING_SLOTS: usize = 64;

/// A simulated FTDI chip, as the host sees it over USB.
///
/// Open a [`Port`](crate::Port) on it with `Port::open_sim`, or drive the USB
/// side directly ([`control`](SimChip::control), [`bulk_out`](SimChip::bulk_out),
/// [`submit_in`](SimChip::submit_in), [`next_in`](SimChip::next_in)) to test
/// at the packet level. Dropping it stops the chip's thread.
#[derive(Debug)]
pub struct SimChip {
    pub(crate) host_in: HostIn,
    pub(crate) host_out: HostOut,
    handle: SimHandle,
    chip: Chip,
    interface: Interface,
    max_packet_size: usize,
    realtime: RealtimeStatus,
}

impl SimChip {
    /// Powers up a simulated chip wired to `device`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) for a max packet size outside 8..=512, the
    /// realtime error if the config requires realtime and it is refused, or
    /// an I/O error creating the eventfds or the thread.
    pub fn new<D: Device>(device: D, config: SimConfig) -> Result<SimChip> {
        let engine = ChannelEngine::new(device, &config, Timestamp::now())?;
        let max_packet_size = engine.max_packet_size();
        let tx_capacity = config.chip.usb_to_uart_fifo();
        let bus = Arc::new(Bus::new(*engine.state(), tx_capacity)?);
        let (in_tx, in_rx) = rtrb::RingBuffer::new(IN_RING_SLOTS);
        let (out_tx, out_rx) = rtrb::RingBuffer::new(tx_capacity);
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let chip_thread = ChipThread::new(
            engine,
            ChipWiring {
                in_ring: in_tx,
                out_ring: out_rx,
                commands: cmd_rx,
                bus: bus.clone(),
            },
        );
        let (thread, realtime) =
            realtime::spawn("ftdi-rt-sim-chip", &config.realtime, move |startup| {
                startup.ready();
                chip_thread.run();
            })?;
        let handle = SimHandle {
            bus: bus.clone(),
            commands: cmd_tx.clone(),
            socket: Arc::new(Mutex::new(None)),
            identity: (config.chip, config.interface, max_packet_size),
        };
        Ok(SimChip {
            host_in: HostIn {
                ring: in_rx,
                bus: bus.clone(),
            },
            host_out: HostOut {
                out: Mutex::new(out_tx),
                commands: cmd_tx,
                bus,
                thread: Some(thread),
            },
            handle,
            chip: config.chip,
            interface: config.interface,
            max_packet_size,
            realtime,
        })
    }

    /// The simulated chip family.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The interface the host talks to.
    pub fn interface(&self) -> Interface {
        self.interface
    }

    /// Bulk max packet size.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// How the chip's thread runs.
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// A handle for fault injection and inspection that outlives ownership
    /// changes (keep one before handing the chip to a port).
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// A control transfer; `data` receives an IN request's reply.
    ///
    /// # Errors
    /// [`TransferError::Stall`] where a real chip would refuse the request,
    /// [`TransferError::NoDevice`] after an unplug, or a timeout.
    pub fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> std::result::Result<usize, TransferError> {
        self.host_out.control(request, data, timeout)
    }

    /// A bulk-OUT transfer: returns when the chip's FIFO accepted every byte.
    ///
    /// # Errors
    /// [`TransferError::TimedOut`] with the bytes accepted so far, or
    /// [`TransferError::NoDevice`].
    pub fn bulk_out(
        &self,
        data: &[u8],
        timeout: Duration,
    ) -> std::result::Result<usize, TransferError> {
        self.host_out.bulk_out(data, timeout)
    }

    /// Hands the two host ends to a port (the handle stays with the caller's clones).
    pub(crate) fn into_host_ends(self) -> (HostIn, HostOut) {
        (self.host_in, self.host_out)
    }

    /// Puts `transfers` more bulk-IN transfers (one max packet each) in flight.
    pub fn submit_in(&self, transfers: u32) {
        self.host_in.submit(transfers);
    }

    /// Takes the next completed bulk-IN transfer, waiting up to `timeout`
    /// (`Ok(None)` if none completed), and resubmits it.
    ///
    /// # Errors
    /// [`TransferError::NoDevice`] once the chip is unplugged and nothing
    /// completed remains.
    pub fn next_in(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<Option<InPacket>, TransferError> {
        self.host_in.next(timeout)
    }
}

/// Fault injection and inspection of a running simulated chip. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SimHandle {
    bus: Arc<Bus>,
    commands: mpsc::Sender<Command>,
    /// The USB port the chip is plugged into: after an unplug, the chip
    /// [`replug`](SimHandle::replug)ged in its place waits here for the
    /// port that resumes to take it.
    socket: Arc<Mutex<Option<SimChip>>>,
    /// What the chip is, as a replugged one must match: family, interface
    /// and max packet size (its serial number is always [`SIM_SERIAL`](super::SIM_SERIAL)).
    identity: (Chip, Interface, usize),
}

impl SimHandle {
    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            self.bus.wake_chip();
        }
    }

    /// Unplugs the device now: pending and later transfers fail.
    pub fn unplug(&self) {
        self.unplug_at(Timestamp::now());
    }

    /// Unplugs the device at `at`.
    pub fn unplug_at(&self, at: Timestamp) {
        self.send(Command::UnplugAt(at));
    }

    /// Plugs `chip` back in where this (unplugged) chip was: the same
    /// device coming back, with its registers at their power-on defaults
    /// (build it with the same [`SimConfig`] and a device model). A port
    /// opened with [`PortConfig::with_resume`](crate::PortConfig::with_resume)
    /// on the unplugged chip finds it, re-applies its settings and resumes;
    /// keep `chip.handle()` first to inspect or unplug the new chip.
    /// Plugging in another chip before a port took the last one replaces it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) if this chip is
    /// still plugged in, or if `chip` is not the same device (another
    /// family, interface or max packet size).
    pub fn replug(&self, chip: SimChip) -> Result<()> {
        if !self.is_unplugged() {
            return Err(crate::Error::InvalidInput(
                "the simulated chip is still plugged in: unplug it (SimHandle::unplug) before \
                 plugging it back"
                    .into(),
            ));
        }
        let identity = (chip.chip, chip.interface, chip.max_packet_size);
        if identity != self.identity {
            return Err(crate::Error::InvalidInput(format!(
                "not the same device: a {} interface {} with {}-byte packets was unplugged, \
                 a {} interface {} with {}-byte packets plugged back; build it with the same \
                 SimConfig",
                self.identity.0,
                self.identity.1,
                self.identity.2,
                identity.0,
                identity.1,
                identity.2
            )));
        }
        *lock(&self.socket) = Some(chip);
        Ok(())
    }

    /// The chip plugged back in ([`replug`](SimHandle::replug)), taken
    /// out of the socket by the port that resumes on it.
    pub(crate) fn take_replugged(&self) -> Option<SimChip> {
        lock(&self.socket).take()
    }

    /// What a replugged chip must match, for the port's log.
    pub(crate) fn identity(&self) -> String {
        let (chip, interface, _) = self.identity;
        format!(
            "the simulated {chip} (serial {:?}) interface {interface}",
            super::SIM_SERIAL
        )
    }

    /// Sets these line-status error bits (OE, PE, FE, BI, FIFO error) on the
    /// next packet that carries data.
    pub fn inject_line_error(&self, errors: LineStatus) {
        self.send(Command::InjectLineError(errors));
    }

    /// Freezes the chip's thread for `duration`, as a busy host or a
    /// hypervisor preempting its CPU would: the stall shows in
    /// [`lateness`](SimHandle::lateness) and [`stalled_within`](SimHandle::stalled_within),
    /// and transactions it delays count as misses the simulated chip
    /// explains (`"simulated-chip"`), not host misses.
    pub fn stall_for(&self, duration: Duration) {
        self.send(Command::Stall(duration));
    }

    /// Changes the chip's modem inputs (a change makes the chip send a packet).
    pub fn set_modem_lines(&self, lines: ModemLines) {
        self.send(Command::SetModemLines(lines));
    }

    /// The chip's registers as of the last control request.
    pub fn state(&self) -> ChipState {
        *lock(&self.bus.state)
    }

    /// How late the chip's thread handled its events, published every
    /// 50 ms: chip lateness, not host latency.
    pub fn lateness(&self) -> LatencySummary {
        LatencySummary::from_histogram(&lock(&self.bus.lateness))
    }

    /// What the chip has done so far.
    pub fn counters(&self) -> SimCounters {
        self.bus.counters.read()
    }

    /// How long the chip's own thread was stalled (events handled more than
    /// 100 µs after they were due) within `[from, to]`: the part of a delay
    /// that silicon, with its own clock, would not have caused.
    pub fn stalled_within(&self, from: Timestamp, to: Timestamp) -> Duration {
        self.bus.stalls.stalled_within(from, to, Timestamp::now())
    }

    /// Whether the device has been unplugged.
    pub fn is_unplugged(&self) -> bool {
        self.bus.is_unplugged()
    }
}

/// The chip's own stalls, so a port does not blame them on the host path
/// ([`Port::open_sim`](crate::Port::open_sim) registers its chip's).
impl StallSource for SimHandle {
    fn name(&self) -> &str {
        "simulated-chip"
    }

    fn stalls_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        each: &mut dyn FnMut(Timestamp, Timestamp),
    ) {
        self.bus.stalls.for_each_within(from, to, now, each);
    }
}
