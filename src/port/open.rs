//! Opening a port: each transport opens its device and returns its parts;
//! here, and only here, they become a port (settings applied, channel,
//! pipeline and reader thread started), the same way for every transport.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Port, PortConfig, Writer};
use crate::channel;
use crate::error::Result;
use crate::reader::{self, Pipeline, PortReader};
use crate::stats::Counters;
use crate::transaction::Engine;
use crate::transport::usb::Selector;
use crate::transport::{self, Inbound, Parts};

impl Port {
    /// Opens an FTDI adapter through the userspace libusb driver: detaches
    /// ftdi_sio from the interface (re-attached on close), configures the
    /// chip, and starts the realtime reader with
    /// [`PortConfig::transfers_in_flight`] single-packet transfers in flight.
    /// With [`PortConfig::with_reader`] the port joins that shared
    /// [`Reader`](crate::Reader) instead: it opens its device in the reader's
    /// libusb context, sharing the device handle with the device's other
    /// channels open on that reader, and the reader serves it from the
    /// first control request on.
    ///
    /// # Errors
    /// [`Error::UsbUnavailable`](crate::Error::UsbUnavailable) (no usbfs),
    /// [`Error::NotFound`](crate::Error::NotFound) listing what was found,
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) (install
    /// the udev rule), [`Error::Busy`](crate::Error::Busy), a setting the
    /// chip refuses, or the reader's realtime setup being refused.
    pub fn open_usb(selector: &Selector, config: &PortConfig) -> Result<Port> {
        let config = &config.resolved()?;
        // On a shared reader: its libusb context, its thread from the first
        // control request on.
        let host = config
            .reader
            .as_ref()
            .map(|r| r as &dyn transport::usb::UsbHost);
        let parts = transport::usb::open(selector, &config.open_options(), host)?;
        Port::assemble(parts, config)
    }

    /// Opens a port on a kernel tty (`/dev/ttyUSB0`, `/dev/ttyACM0`, a pty):
    /// the baseline to compare the userspace driver against, and the fallback
    /// for ports that are not FTDI. Same API, same reader, same accounting;
    /// received bytes carry no FTDI status.
    ///
    /// # Errors
    /// [`Error::NotATty`](crate::Error::NotATty), [`Error::Tty`](crate::Error::Tty)
    /// (missing path, busy, permission),
    /// [`Error::Unsupported`](crate::Error::Unsupported)/[`Error::SettingRejected`](crate::Error::SettingRejected)
    /// naming a setting the tty cannot take, or the reader's realtime setup
    /// being refused.
    pub fn open_tty(path: impl AsRef<Path>, config: &PortConfig) -> Result<Port> {
        let config = &config.resolved()?;
        let parts = transport::tty::open(path.as_ref(), &config.open_options())?;
        Port::assemble(parts, config)
    }

    /// Opens a port on a simulated chip (see [`crate::sim`]; feature `sim`):
    /// no hardware needed, same reader, channel and accounting as with an
    /// adapter. Misses the chip's own stalls explain are counted apart
    /// (under `"simulated-chip"` in [`Statistics::explained_misses`](crate::Statistics::explained_misses)).
    ///
    /// # Errors
    /// A configuration the chip refuses (another interface, baud out of
    /// range, ...), or the reader's realtime setup being refused (see
    /// [`PortConfig::best_effort`]).
    #[cfg(feature = "sim")]
    pub fn open_sim(chip: crate::sim::SimChip, config: &PortConfig) -> Result<Port> {
        let config = &config.resolved()?;
        let stalls = chip.handle();
        let parts = transport::sim::open(chip, &config.open_options())?;
        let mut port = Port::assemble(parts, config)?;
        // Silicon has its own clock and is never late; the simulation's
        // thread can be, and that is not the host path's doing.
        port.discount_stalls(Arc::new(stalls));
        Ok(port)
    }

    /// The common second half of every `open_*`: applies the settings, builds
    /// the channel and starts the port's own reader, or joins the shared one
    /// the config names.
    fn assemble<I: Inbound>(parts: Parts<I>, config: &PortConfig) -> Result<Port> {
        let Parts {
            inbound,
            outbound,
            wake,
            notes,
            thread_name,
        } = parts;
        let counters = Arc::new(Counters::default());
        counters
            .latency_timer_ms
            .store(config.latency_timer_ms, Ordering::Relaxed);
        let mut info = outbound.info();
        info.notes.extend(notes);
        info.notes.extend(config.budget_note());
        let writer = Writer::new(outbound, counters.clone(), config.write_timeout, info);
        writer.apply_config(config)?;
        let (sender, receiver, shared) = channel::channel(config.channel_capacity)?;
        let pipeline = Pipeline::new(sender, counters, inbound.framing());
        let (reader, realtime) = match &config.reader {
            None => {
                let (own, realtime) = reader::spawn(
                    inbound,
                    pipeline,
                    &config.reader_realtime,
                    wake,
                    thread_name,
                )?;
                (PortReader::Own(own), realtime)
            }
            Some(shared_reader) => {
                let description = writer.transport_info().description;
                let (member, memory) = shared_reader.attach(inbound, pipeline, &description)?;
                let mut realtime = shared_reader.realtime().clone();
                realtime.memory.absorb(memory);
                (PortReader::Shared(member), realtime)
            }
        };
        Ok(Port {
            reader,
            receiver,
            writer: Arc::new(writer),
            transactions: Engine::new(config.reply_capacity),
            last_miss: None,
            channel: shared,
            realtime,
        })
    }
}
