//! The transport seam: what the reader thread drives, and what the port
//! writes and configures through.
//!
//! A transport comes in two halves:
//! - [`Inbound`], moved into the realtime reader thread: it waits for
//!   completed inbound transfers and hands their bytes, timestamped, to the
//!   shared [`Pipeline`](crate::reader::Pipeline). [`Framing`] says whether the
//!   bytes are FTDI packets (2-byte header every max packet) or raw tty bytes,
//!   so deframing, status tracking and the channel are written once above the seam.
//! - [`Outbound`], kept by the application-side port: writes and settings.
//!   The two FTDI transports (libusb and the simulated chip) share
//!   [`ftdi::FtdiOutbound`], which turns settings into `proto::ControlRequest`s;
//!   each only supplies a [`ftdi::ControlPipe`] (control and bulk-OUT transfers).
//!   Both report a failed transfer as the one [`TransferError`](crate::TransferError),
//!   which the FTDI layer turns into the crate's error.
//!
//! Construction runs one way: each transport's `open` takes the
//! [`OpenOptions`] it needs and returns its [`Parts`]; it never sees the
//! port. Only `crate::port` assembles a port from parts (channel, pipeline,
//! reader thread, settings), the same way for every transport.
//!
//! ```text
//!            Inbound::wait ──► Pipeline ──► channel ──► application
//!   libusb ─┤ (transfer ring)    (proto::packets, status, stalls)
//!   sim ────┤ (chip's IN ring)
//!   tty ────┘ (read(2) on the tty fd; Framing::Raw)
//! ```

pub(crate) mod ftdi;
#[cfg(feature = "sim")]
pub(crate) mod sim;
pub(crate) mod tty;
pub(crate) mod usb;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::Result;
use crate::proto::{FlowControl, Interface, LineProperties, LineStatus, ModemStatus};
use crate::realtime::memory::HotRegions;
use crate::stats::TransportInfo;
use crate::time::Timestamp;

/// What a transport needs to open: the part of the port's configuration
/// that concerns the device (the port keeps the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenOptions {
    /// The rate a tty is opened at (the port sets it again with the rest
    /// of the line settings; opening at it avoids a glitch at another rate).
    pub(crate) baud: u32,
    /// The channel of a multi-channel chip.
    pub(crate) interface: Interface,
    /// Bulk-IN transfers kept in flight (FTDI transports).
    pub(crate) transfers_in_flight: usize,
    /// Timeout of each control request (FTDI transports).
    pub(crate) control_timeout: Duration,
    /// Vendor/product IDs accepted besides FTDI's (libusb).
    pub(crate) usb_ids: Vec<usb::UsbId>,
}

/// An opened transport, ready to be assembled into a port.
///
/// A shared [`Reader`](crate::Reader) serves several inbounds on one
/// thread; it depends on an inbound only through the [`Inbound`] trait
/// (its [`readiness`](Inbound::readiness) descriptor), and stops serving
/// one through its own command mailbox, not the `wake` doorbell.
#[derive(Debug)]
pub(crate) struct Parts<I> {
    /// The reader-thread half.
    pub(crate) inbound: I,
    /// The application half.
    pub(crate) outbound: Box<dyn Outbound>,
    /// The doorbell the inbound's `wait` also listens to, so stopping the
    /// reader interrupts a wait at once.
    pub(crate) wake: Arc<Doorbell>,
    /// What opening noted (steps the device declined).
    pub(crate) notes: Vec<String>,
    /// The reader thread's name.
    pub(crate) thread_name: &'static str,
}

/// Finds the device a port was opened on again after an unplug, for a
/// port that resumes (`PortConfig::with_resume`). Runs on the port's
/// watcher thread (normal priority), never on the reader.
pub(crate) trait Reopen: Send + 'static {
    /// The inbound half the transport opens.
    type Inbound: Inbound;

    /// Looks once: the reopened device's parts (reset, as after `open`)
    /// if the same device is back, `None` if not yet.
    ///
    /// # Errors
    /// The device is back but could not be opened (permissions not set
    /// yet, busy, ...); the watcher logs it and looks again.
    fn poll(&mut self, options: &OpenOptions) -> Result<Option<Parts<Self::Inbound>>>;

    /// The device it waits for, for the log (`serial "FT1" channel A`).
    fn waits_for(&self) -> String;
}

/// One completed inbound transfer as the reader thread sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion<'a> {
    /// The transfer's bytes (FTDI: headers included).
    pub(crate) data: &'a [u8],
    /// When the reader thread saw it complete.
    pub(crate) at: Timestamp,
}

/// How the bytes of a [`Completion`] are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// FTDI bulk-IN: a 2-byte status header opens every max packet.
    Ftdi {
        /// The bulk-IN endpoint's wMaxPacketSize.
        max_packet_size: usize,
    },
    /// Plain bytes (a kernel tty), no status.
    Raw,
}

/// The inbound side stopped for good; the reason is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkLost(pub(crate) String);

/// A transport whose reader-thread half already lives on a shared reader
/// (a libusb port there: its event loop had to be on the reader thread
/// before the chip was configured). The reader's own guard, opaque here so
/// that transports do not depend on the reader; dropping it takes the port
/// off the reader.
pub(crate) struct Hosted(pub(crate) Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hosted(..)")
    }
}

/// The reader-thread half of a transport.
pub(crate) trait Inbound: Send + 'static {
    /// How completions are framed.
    fn framing(&self) -> Framing;

    /// On the reader thread, before [`start`](Inbound::start): write through
    /// the fresh buffers this transport owns, so they are resident, and
    /// report every range the reader touches per completion (its buffers and
    /// the shared state it writes) so that they can be locked. The struct
    /// itself lives on the reader's stack, which is locked separately.
    fn hot_memory(&mut self, regions: &mut HotRegions);

    /// On the reader thread, before its loop: put the inbound transfers in flight.
    fn start(&mut self) -> std::result::Result<(), LinkLost>;

    /// Waits up to `timeout` for completed inbound transfers, or for the
    /// port's wakeup, and hands each completion to `deliver` in order, then
    /// re-arms it. Must not allocate or take a lock another thread can hold.
    fn wait<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        deliver: F,
    ) -> std::result::Result<(), LinkLost>;

    /// For a shared [`Reader`](crate::Reader): the descriptor that turns
    /// readable when [`wait`](Inbound::wait) has something to hand over (a
    /// new edge with each arrival after a `wait` that found nothing), so
    /// one thread can wait on many inbounds through epoll and give the
    /// ready ones a `wait` with a zero timeout. `Err` says why this
    /// transport cannot share a reader (shown to the user).
    fn readiness(&self) -> std::result::Result<RawFd, &'static str>;

    /// If this half already lives on a shared reader ([`Hosted`]): the
    /// guard of its place there, taken out (the reader then only hands it
    /// the port's pipeline). Other transports have no such place.
    fn take_hosted(&mut self) -> Option<Hosted> {
        None
    }

    /// On the reader thread, last: cancel what is in flight and wait until
    /// nothing is pending, so buffers can be freed.
    fn shutdown(&mut self);
}

/// A setting the application can change while the port is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    Baud(u32),
    Line(LineProperties),
    Flow(FlowControl),
    ModemLines {
        dtr: Option<bool>,
        rts: Option<bool>,
    },
    LatencyTimer(u8),
    EventChar(Option<u8>),
    ErrorChar(Option<u8>),
    Break(bool),
    PurgeRx,
    PurgeTx,
}

/// What applying a setting did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Done as asked.
    Done,
    /// A baud rate was set; the device runs at this rate.
    Baud(u32),
    /// Not applicable on this transport; the note says why (kept in the statistics).
    Skipped(String),
}

/// The application-side half of a transport.
pub(crate) trait Outbound: Send + Sync + 'static {
    /// Writes what it can of `data` within `timeout`: returns the bytes taken
    /// (by the device, or on libusb into the write-behind queue that
    /// [`flush`](Self::flush) waits for); bytes taken before a timeout are a
    /// short write, not an error.
    fn write(&self, data: &[u8], timeout: Duration) -> Result<usize>;

    /// Waits up to `timeout` until the device has taken every byte written,
    /// and reports a failure of bytes earlier writes queued. Transports whose
    /// writes complete on the device (the simulated chip) or in the kernel's
    /// buffer (a tty) have nothing to wait for.
    fn flush(&self, _timeout: Duration) -> Result<()> {
        Ok(())
    }

    /// Applies one setting.
    fn apply(&self, setting: Setting) -> Result<Applied>;

    /// Asks the device for its modem and line status now.
    fn query_status(&self) -> Result<(ModemStatus, LineStatus)>;

    /// What this transport is connected to.
    fn info(&self) -> TransportInfo;

    /// Reads one word of the chip's configuration EEPROM.
    fn read_eeprom_word(&self, _word: u16) -> Result<u16> {
        Err(crate::error::Error::Unsupported {
            setting: "reading the EEPROM".into(),
            transport: self.info().description,
            reason: "only the FTDI transports (libusb, simulated chip) reach the chip's EEPROM"
                .into(),
        })
    }

    /// Reads the chip's latency timer (ms).
    fn read_latency_timer(&self) -> Result<u8> {
        Err(crate::error::Error::Unsupported {
            setting: "reading the latency timer from the chip".into(),
            transport: self.info().description,
            reason: "on a kernel tty, read /sys/bus/usb-serial/devices/ttyUSB*/latency_timer"
                .into(),
        })
    }
}

impl std::fmt::Debug for dyn Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("info", &self.info())
            .finish()
    }
}
