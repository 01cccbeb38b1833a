//! The port: what an application opens, receives from, writes to and
//! configures — the same type on every transport.
//!
//! A [`Port`] is a [`Receiver`] (the application end of the channel from the
//! realtime reader) plus a [`Link`] (writes and settings, `&self`), plus the
//! reader thread it owns. [`Port::split`] hands out both halves at once so
//! one thread can write while another receives.

mod config;
mod link;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::PortConfig;
pub use link::Link;

use crate::channel::{self, Chunk, Receiver, Shared};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::reader::{self, Pipeline, ReaderHandle};
use crate::realtime::RealtimeStatus;
use crate::sim::SimChip;
use crate::stats::{Counters, LatencySummary, LineErrorCounts, Statistics};
use crate::transaction::Transactions;
use crate::transport::ftdi::FtdiOutbound;
use crate::transport::sim::{SimInbound, SimPipe};
use crate::transport::{Inbound, Outbound};

/// An open serial port with a realtime reader behind it.
///
/// Receive with [`recv_timeout`](Port::recv_timeout), [`try_recv`](Port::try_recv),
/// `io::Read`, or by polling its file descriptor (it implements [`AsFd`] and
/// [`mio::event::Source`]); write with `io::Write` or the [`Link`] methods,
/// which `Port` dereferences to; run request/reply exchanges with
/// [`transact`](Port::transact); read the figures with [`stats`](Port::stats).
///
/// Dropping the port stops the reader (cancelling its transfers and waiting
/// for them), then releases the device.
#[derive(Debug)]
pub struct Port {
    pub(crate) receiver: Receiver,
    pub(crate) link: Link,
    pub(crate) transactions: Transactions,
    channel: Arc<Shared>,
    realtime: RealtimeStatus,
    reader: ReaderHandle,
}

impl Port {
    /// Opens a port on a simulated chip (see [`crate::sim`]): no hardware
    /// needed, same reader, channel and accounting as with an adapter.
    ///
    /// # Errors
    /// A configuration the chip refuses (baud out of range, ...), or the
    /// reader's realtime setup being refused (see [`PortConfig::best_effort`]).
    pub fn open_sim(chip: SimChip, config: &PortConfig) -> Result<Port> {
        config.validate()?;
        if config.interface != chip.interface() {
            return Err(Error::InvalidConfig(format!(
                "the simulated chip models interface {}, the config asks for {}",
                chip.interface(),
                config.interface
            )));
        }
        let (kind, interface, max_packet_size) =
            (chip.chip(), chip.interface(), chip.max_packet_size());
        let handle = chip.handle();
        let (host_in, host_out) = chip.into_host_ends();
        let description = format!("simulated {kind} interface {interface}");
        let pipe = SimPipe::new(
            host_out,
            handle,
            description,
            max_packet_size,
            config.transfers_in_flight,
        );
        let outbound = FtdiOutbound::new(pipe, kind, interface, config.control_timeout);
        let notes = outbound.initialize()?;
        let wake = Arc::new(Doorbell::new()?);
        let inbound = SimInbound {
            host: host_in,
            wake: wake.clone(),
            in_flight: config.transfers_in_flight as u32,
            max_packet_size,
        };
        Port::assemble(
            inbound,
            Box::new(outbound),
            notes,
            wake,
            config,
            "ftdi-rt-reader",
        )
    }

    /// Opens a port on a kernel tty (`/dev/ttyUSB0`, `/dev/ttyACM0`, a pty):
    /// the baseline to compare the userspace driver against, and the fallback
    /// for ports that are not FTDI. Same API, same reader, same accounting;
    /// received bytes carry no FTDI status.
    ///
    /// # Errors
    /// [`Error::NotATty`], [`Error::Tty`] (missing path, busy, permission),
    /// [`Error::Unsupported`]/[`Error::SettingRejected`] naming a setting the
    /// tty cannot take, or the reader's realtime setup being refused.
    pub fn open_tty(path: impl AsRef<std::path::Path>, config: &PortConfig) -> Result<Port> {
        config.validate()?;
        crate::transport::tty::open(path.as_ref(), config)
    }

    /// Opens an FTDI adapter through the userspace libusb driver: detaches
    /// ftdi_sio from the interface (re-attached on close), configures the
    /// chip, and starts the realtime reader with
    /// [`PortConfig::transfers_in_flight`] single-packet transfers in flight.
    ///
    /// # Errors
    /// [`Error::UsbUnavailable`] (no usbfs), [`Error::NotFound`] listing what
    /// was found, [`Error::PermissionDenied`] (install the udev rule),
    /// [`Error::Busy`], a setting the chip refuses, or the reader's realtime
    /// setup being refused.
    pub fn open_usb(selector: &crate::Selector, config: &PortConfig) -> Result<Port> {
        config.validate()?;
        crate::transport::usb::open(selector, config)
    }

    /// The common second half of every `open_*`: applies the settings, builds
    /// the channel and starts the reader.
    pub(crate) fn assemble<I: Inbound>(
        inbound: I,
        outbound: Box<dyn Outbound>,
        notes: Vec<String>,
        wake: Arc<Doorbell>,
        config: &PortConfig,
        thread_name: &str,
    ) -> Result<Port> {
        let counters = Arc::new(Counters::default());
        counters.latency_timer_ms.store(
            config.latency_timer_ms,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut info = outbound.info();
        info.notes.extend(notes);
        let link = Link {
            outbound,
            counters: counters.clone(),
            write_timeout: config.write_timeout,
            info: Mutex::new(info),
        };
        link.apply_config(config)?;
        let (sender, receiver, shared) = channel::channel(config.channel_capacity)?;
        let pipeline = Pipeline::new(sender, counters, inbound.framing());
        let (reader, realtime) =
            reader::spawn(inbound, pipeline, config.reader, wake, thread_name)?;
        Ok(Port {
            receiver,
            link,
            transactions: Transactions::new(config.reply_capacity),
            channel: shared,
            realtime,
            reader,
        })
    }

    /// Takes the next chunk, waiting up to `timeout`. See [`Receiver::recv_timeout`].
    ///
    /// # Errors
    /// [`Error::TimedOut`], [`Error::Overflow`], [`Error::Disconnected`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&Chunk> {
        self.receiver.recv_timeout(timeout)
    }

    /// Takes the next chunk if one is there. See [`Receiver::try_recv`].
    ///
    /// # Errors
    /// [`Error::Overflow`], [`Error::Disconnected`].
    pub fn try_recv(&mut self) -> Result<Option<&Chunk>> {
        self.receiver.try_recv()
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The writing and configuring half.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Both halves at once: receive on one thread while others write.
    pub fn split(&mut self) -> (&mut Receiver, &Link) {
        (&mut self.receiver, &self.link)
    }

    /// Attributes deadline misses that a machine stall measured by `probe`
    /// explains (see [`NoiseProbe`](crate::NoiseProbe)); they are counted in
    /// [`Statistics::platform_late_misses`] instead of the host path's.
    pub fn watch_platform(&mut self, probe: &crate::NoiseProbe) {
        self.transactions.platform = Some(probe.shared());
    }

    /// How the reader thread runs (guaranteed realtime or best effort).
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// Everything measured so far.
    pub fn stats(&self) -> Statistics {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.link.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
        Statistics {
            transactions: self.transactions.count,
            deadline_misses: self.transactions.misses,
            chip_late_misses: self.transactions.chip_late_misses,
            platform_late_misses: self.transactions.platform_late_misses,
            transaction_latency: LatencySummary::from_histogram(&self.transactions.latency),
            delivery_latency: LatencySummary::from_histogram(self.receiver.delivery_latency()),
            packets: load(&c.packets),
            status_only_packets: load(&c.status_only),
            malformed_packets: load(&c.malformed),
            bytes_received: load(&c.payload_bytes),
            bytes_delivered: self.receiver.received().1,
            bytes_written: load(&c.bytes_written),
            line_errors: LineErrorCounts {
                overrun: load(&c.overrun),
                parity: load(&c.parity),
                framing: load(&c.framing),
                breaks: load(&c.breaks),
            },
            modem_changes: load(&c.modem_changes),
            overflows: load(&self.channel.overflow_chunks),
            overflow_bytes: load(&self.channel.overflow_bytes),
            stalls: load(&c.stalls),
            stale_bytes: self.transactions.stale_bytes,
            realtime: self.realtime.clone(),
            reader_page_faults: self.reader.page_faults(),
            transport: self.link.transport_info(),
            chip_lateness: self
                .link
                .outbound
                .chip_lateness()
                .map(|h| LatencySummary::from_histogram(&h)),
            disconnect: c.disconnect.get().cloned(),
            transaction_histogram: self.transactions.latency.clone(),
            delivery_histogram: self.receiver.delivery_latency().clone(),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // The reader first: it cancels and drains its transfers while the
        // device is still claimed; the Link (and the device) go after.
        self.reader.stop();
    }
}

impl std::ops::Deref for Port {
    type Target = Link;
    /// A port writes and configures through its [`Link`].
    fn deref(&self) -> &Link {
        &self.link
    }
}

impl io::Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.receiver.read(buf)
    }
}

impl io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.link.write(buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Writes complete when the device has accepted the bytes.
        Ok(())
    }
}

impl io::Write for &Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(Link::write(self, buf)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Port {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.receiver.as_fd()
    }
}

impl AsRawFd for Port {
    fn as_raw_fd(&self) -> RawFd {
        self.receiver.as_raw_fd()
    }
}

impl mio::event::Source for Port {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.receiver.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.receiver.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.receiver.deregister(registry)
    }
}
