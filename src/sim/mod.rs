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
//! The model itself is [`ChannelEngine`], one channel of a chip as a sans-IO
//! state machine: it takes `now` with every input and says when it next
//! needs to run, so tests drive it on a virtual clock. Two shells drive it:
//! - [`SimChip`] runs one on real `CLOCK_MONOTONIC` time in its own thread
//!   (SCHED_FIFO when permitted), processing events at their ideal times.
//!   When that thread wakes late, the lateness is recorded
//!   ([`SimHandle::lateness`]) and its stalls logged ([`SimHandle`] is a
//!   [`StallSource`](crate::StallSource), which a port on the chip consults
//!   by itself), so chip lateness is never mistaken for host latency.
//! - `usb::VirtualFtdi` (feature `usbip`) runs one per interface behind a
//!   USB device model (descriptors, standard requests, URBs) for a USB front
//!   end such as USB/IP.
//!
//! The engine also keeps, on request, its own record of when each byte
//! crossed the wire ([`WireLog`]): the truth timing features are checked against.
//!
//! The same device models can run without a chip: [`DeviceEnd`] feeds one
//! the bytes that reach it and queues what it sends (the lab's pty
//! responder runs them on the kernel tty path that way).
//!
//! Not modelled: bit-bang/MPSSE modes, EEPROM, the error character's effect,
//! automatic RTS under RTS/CTS, USB frame timing (packets leave when due, not
//! on 1 ms frame boundaries); on [`SimChip`], channels other than the one
//! opened.
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
mod chip;
mod device;
mod engine;
mod registers;
mod shell;
mod transfer;
#[cfg(feature = "usbip")]
pub mod usb;
mod wire_log;

pub use chip::{SimChip, SimHandle};
pub use device::{Device, DeviceEnd, Frobnicator, Line, Loopback, ModemLines, WireByte};
pub use engine::{ChannelEngine, ControlReply};
pub use registers::{ChipState, SIM_SERIAL};
pub use transfer::{InPacket, MAX_PACKET, TransferError};
pub use wire_log::{WireDirection, WireEvent, WireLog};

pub(crate) use bus::{HostIn, HostOut};

use crate::proto::{Chip, Interface};
use crate::realtime::{Pinning, RealtimeConfig, RealtimePolicy};

/// How a simulated chip (one channel) is built.
#[derive(Clone, Copy, Debug)]
#[must_use]
#[non_exhaustive]
pub struct SimConfig {
    /// The chip family (default FT232R).
    pub chip: Chip,
    /// The interface the host opens (default A).
    pub interface: Interface,
    /// Bulk max packet size; `None` uses the chip's native size (64 or 512).
    /// Set 64 to model an H chip on a full-speed port.
    pub max_packet_size: Option<usize>,
    /// How [`SimChip`]'s own thread runs (the engine alone ignores it).
    /// Default: SCHED_FIFO 90, unpinned, no memory locking, best effort (the
    /// chip's lateness is measured either way).
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
#[non_exhaustive]
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
