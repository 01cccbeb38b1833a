//! A simulated FTDI chip that behaves like silicon at the USB-packet level.
//!
//! Use it to run everything above the USB layer — the realtime reader, header
//! stripping, the channel, deadline accounting, transactions, the examples —
//! without hardware: [`Port::open_sim`](crate::Port::open_sim) drives it
//! through exactly the reader code that drives a real adapter.
//!
//! What it models (FT232R by default, any [`Chip`] on request, including the
//! 512-byte high-speed packets of the H parts):
//! - the control requests a host sends, decoded and kept as chip state
//!   ([`ChipState`]): the baud rate decoded from the divisor as the chip
//!   decodes it, line properties, flow control, DTR/RTS, latency timer (16 ms
//!   at power-on), event and error characters; requests a real chip refuses
//!   STALL ([`TransferError::Stall`]);
//! - bulk IN as the chip produces it: a packet when a full payload is
//!   buffered, on the event character (not as the first byte), on a modem-line
//!   change, or when the latency timer expires — a 2-byte status-only packet
//!   when there is no data; only while the host has IN transfers in flight;
//!   OE and lost bytes when the UART-to-USB FIFO overflows; THRE/TEMT as real
//!   chips report them; PE/FE/BI by injection;
//! - bulk OUT paced at the baud rate (start, data, parity and stop bits);
//!   with RTS/CTS, DTR/DSR or XON/XOFF flow control holding the transmitter;
//! - the device at the far end, which you supply ([`Device`]); [`Loopback`]
//!   and [`Frobnicator`] ship with the crate;
//! - faults: unplug at a chosen time, line errors, modem-line changes ([`SimHandle`]).
//!
//! It runs on real `CLOCK_MONOTONIC` time in its own thread (SCHED_FIFO when
//! permitted), processing events at their ideal times. When that thread wakes
//! late, the lateness is recorded ([`SimHandle::lateness`], and
//! `Statistics::chip_lateness` on a port) so chip lateness is never mistaken
//! for host latency.
//!
//! Not modelled: bit-bang/MPSSE modes, EEPROM, the error character's effect,
//! automatic RTS under RTS/CTS, USB frame timing (packets leave when due, not
//! on 1 ms frame boundaries), channels other than the one opened.
//!
//! # A device model of your own
//! A device is anything that implements [`Device`], including a closure. This
//! one answers every `?` with `!` after 300 µs of "processing":
//! ```no_run
//! use std::time::Duration;
//! use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
//! use ftdi_rt::{Port, PortConfig, ReplyEnd};
//!
//! let device = |byte: WireByte, line: &mut Line<'_>| {
//!     if byte.byte == b'?' {
//!         line.send_at(byte.end + Duration::from_micros(300), b"!");
//!     }
//! };
//! let chip = SimChip::new(device, SimConfig::default())?;
//! let mut port = Port::open_sim(chip, &PortConfig::default())?;
//! let reply = port.transact(b"?", ReplyEnd::Length(1), Duration::from_millis(5))?;
//! assert_eq!(reply.bytes(), b"!");
//! # Ok::<(), ftdi_rt::Error>(())
//! ```

mod bus;
mod device;
mod engine;
mod registers;
#[cfg(feature = "usbip")]
pub mod usb;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hdrhistogram::Histogram;

pub use bus::{InPacket, MAX_PACKET, TransferError};
pub use device::{Device, Frobnicator, Line, Loopback, ModemLines, WireByte};
pub use registers::ChipState;

pub(crate) use bus::{HostIn, HostOut};
// The pty responder (crate::pty) runs the same device models on a DeviceSide of its own.
pub(crate) use device::DeviceSide;

use self::bus::{Bus, Command};
use self::engine::{ChipWiring, Engine};
use crate::error::{Error, Result};
use crate::proto::{Chip, ControlRequest, Interface, LineStatus};
use crate::reader::REALTIME_STACK_BYTES;
use crate::realtime::{
    Pinning, RealtimeConfig, RealtimePolicy, RealtimeStatus, make_current_thread_realtime,
};
use crate::time::Timestamp;

/// IN transfers the simulated bus can hold completed but not yet taken.
const IN_RING_SLOTS: usize = 64;

/// How a simulated chip is built.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct SimConfig {
    /// The chip family (default FT232R).
    pub chip: Chip,
    /// The interface the host opens (default A).
    pub interface: Interface,
    /// Bulk max packet size; `None` uses the chip's native size (64 or 512).
    /// Set 64 to model an H chip on a full-speed port.
    pub max_packet_size: Option<usize>,
    /// How the chip's own thread runs. Default: SCHED_FIFO 90, unpinned, no
    /// memory locking, best effort (the chip's lateness is measured either way).
    pub realtime: RealtimeConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            chip: Chip::Ft232R,
            interface: Interface::A,
            max_packet_size: None,
            realtime: RealtimeConfig::default()
                .with_priority(90)
                .with_pinning(Pinning::Unpinned)
                .with_lock_memory(false)
                .with_policy(RealtimePolicy::BestEffort),
        }
    }
}

impl SimConfig {
    /// Sets the chip family.
    pub fn with_chip(mut self, chip: Chip) -> Self {
        self.chip = chip;
        self
    }
    /// Sets the interface.
    pub fn with_interface(mut self, interface: Interface) -> Self {
        self.interface = interface;
        self
    }
    /// Sets the bulk max packet size.
    pub fn with_max_packet_size(mut self, size: usize) -> Self {
        self.max_packet_size = Some(size);
        self
    }
    /// Sets how the chip thread runs.
    pub fn with_realtime(mut self, realtime: RealtimeConfig) -> Self {
        self.realtime = realtime;
        self
    }
}

/// Counts of what the simulated chip did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Bulk-IN packets sent.
    pub packets: u64,
    /// Of those, status-only.
    pub status_only: u64,
    /// Payload bytes sent to the host.
    pub bytes_to_host: u64,
    /// Bytes accepted from the host by bulk OUT.
    pub bytes_from_host: u64,
    /// Bytes lost because the UART-to-USB FIFO was full.
    pub overrun_bytes: u64,
}

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
    /// [`Error::InvalidConfig`] for a max packet size outside 8..=512, the
    /// realtime error if the config requires realtime and it is refused, or
    /// an I/O error creating the eventfds or the thread.
    pub fn new<D: Device>(device: D, config: SimConfig) -> Result<SimChip> {
        let max_packet_size = config
            .max_packet_size
            .unwrap_or(config.chip.default_max_packet_size());
        if !(8..=MAX_PACKET).contains(&max_packet_size) {
            return Err(Error::InvalidConfig(format!(
                "simulated max packet size {max_packet_size} is outside 8..={MAX_PACKET}"
            )));
        }
        if u16::from(config.interface.number()) >= u16::from(config.chip.channels()) {
            return Err(Error::InvalidConfig(format!(
                "the {} has no interface {}",
                config.chip, config.interface
            )));
        }
        let bus = Arc::new(Bus::new(ChipState::power_on(config.chip))?);
        let (in_tx, in_rx) = rtrb::RingBuffer::new(IN_RING_SLOTS);
        let (out_tx, out_rx) = rtrb::RingBuffer::new(config.chip.usb_to_uart_fifo());
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let engine = Engine::new(
            config.chip,
            config.interface,
            max_packet_size,
            Box::new(device),
            ChipWiring {
                in_ring: in_tx,
                out_fifo: out_rx,
                commands: cmd_rx,
                bus: bus.clone(),
            },
        );
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let realtime = config.realtime;
        let thread = std::thread::Builder::new()
            .name("ftdi-rt-sim-chip".into())
            .stack_size(REALTIME_STACK_BYTES)
            .spawn(move || match make_current_thread_realtime(&realtime) {
                Ok(status) => {
                    let _ = ready_tx.send(Ok(status));
                    engine.run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })?;
        let realtime = match ready_rx.recv() {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e.into());
            }
            Err(_) => {
                return Err(Error::Io(std::io::Error::other(
                    "the simulated chip's thread died",
                )));
            }
        };
        let handle = SimHandle {
            bus: bus.clone(),
            commands: cmd_tx.clone(),
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

    /// Sets these line-status error bits (OE, PE, FE, BI, FIFO error) on the
    /// next packet that carries data.
    pub fn inject_line_error(&self, errors: LineStatus) {
        self.send(Command::InjectLineError(errors));
    }

    /// Freezes the chip's thread for `duration`, as a busy host or a
    /// hypervisor preempting its CPU would: the stall shows in
    /// [`lateness`](SimHandle::lateness) and [`stalled_within`](SimHandle::stalled_within),
    /// and transactions it delays count as chip-late, not host, misses.
    pub fn stall_for(&self, duration: Duration) {
        self.send(Command::Stall(duration));
    }

    /// Changes the chip's modem inputs (a change makes the chip send a packet).
    pub fn set_modem_lines(&self, lines: ModemLines) {
        self.send(Command::SetModemLines(lines));
    }

    /// The chip's registers as of the last control request.
    pub fn state(&self) -> ChipState {
        *self.bus.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How late the chip's thread handled its events (ns), published every
    /// 50 ms: chip lateness, not host latency.
    pub fn lateness(&self) -> Histogram<u64> {
        self.bus
            .lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the chip has done so far.
    pub fn counters(&self) -> SimCounters {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.bus.counters;
        SimCounters {
            packets: c.packets.load(Relaxed),
            status_only: c.status_only.load(Relaxed),
            bytes_to_host: c.bytes_to_host.load(Relaxed),
            bytes_from_host: c.bytes_from_host.load(Relaxed),
            overrun_bytes: c.overrun_bytes.load(Relaxed),
        }
    }

    /// How long the chip's own thread was stalled (events handled more than
    /// 100 µs after they were due) within `[from, to]`: the part of a delay
    /// that silicon, with its own clock, would not have caused.
    pub fn stalled_within(&self, from: Timestamp, to: Timestamp) -> Duration {
        self.bus.stalls.stalled_within(from, to)
    }

    pub(crate) fn stall_log(&self) -> &crate::stall_log::StallLog {
        &self.bus.stalls
    }

    /// Whether the device has been unplugged.
    pub fn is_unplugged(&self) -> bool {
        self.bus.is_unplugged()
    }
}

#[cfg(test)]
mod tests;
