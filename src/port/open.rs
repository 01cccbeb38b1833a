//! Opening a port: each transport opens its device and returns its parts;
//! here, and only here, they become a port (settings applied, channel,
//! pipeline and reader thread started), the same way for every transport.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::resume::{self, Resumable, Resume, Serving};
use super::{Port, PortConfig, Writer};
use crate::channel;
use crate::error::{Error, Result};
use crate::reader::{self, Pipeline, PortReader};
use crate::stats::Counters;
use crate::transaction::Engine;
use crate::transport::usb::Selector;
use crate::transport::{self, Inbound, Parts, Reopen};

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
        let options = config.open_options();
        if !config.resume {
            let parts = transport::usb::open(selector, &options, host)?;
            return Port::assemble(parts, config, None::<transport::usb::UsbReopen>);
        }
        if config.reader.is_some() {
            // Before the device is touched (ftdi_sio stays attached).
            return Err(crate::Error::Unsupported {
                setting: "resume (PortConfig::with_resume) with a shared reader".into(),
                transport: "the libusb transport".into(),
                reason: "a libusb port on a shared reader cannot resume yet (its event loop \
                         lives on the reader); open it with its own reader, or without resume"
                    .into(),
            });
        }
        // The identity before the device is opened: that is what comes back.
        let identity = transport::usb::identify(selector, &options)?;
        let reopen =
            transport::usb::UsbReopen::new(identity, config.interface, config.usb_ids.clone());
        let parts = transport::usb::open(selector, &options, None)?;
        Port::assemble(parts, config, Some(reopen))
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
        if config.resume {
            return Err(Error::Unsupported {
                setting: "resume after an unplug (PortConfig::with_resume)".into(),
                transport: format!("the kernel tty {}", path.as_ref().display()),
                reason: "a tty node can come back under another name, and the kernel resets \
                         its settings; open the adapter with Port::open_usb, which finds it \
                         again by its identity"
                    .into(),
            });
        }
        let parts = transport::tty::open(path.as_ref(), &config.open_options())?;
        Port::assemble(parts, config, None::<NoReopen>)
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
        let reopen = config
            .resume
            .then(|| transport::sim::SimReopen::new(chip.handle()));
        let parts = transport::sim::open(chip, &config.open_options())?;
        let mut port = Port::assemble(parts, config, reopen)?;
        // Silicon has its own clock and is never late; the simulation's
        // thread can be, and that is not the host path's doing.
        port.discount_stalls(Arc::new(stalls));
        Ok(port)
    }

    /// The common second half of every `open_*`: applies the settings, builds
    /// the channel and starts the port's own reader, or joins the shared one
    /// the config names; with `reopen` (a port that resumes), its watcher.
    fn assemble<I: Inbound, R: Reopen<Inbound = I>>(
        parts: Parts<I>,
        config: &PortConfig,
        reopen: Option<R>,
    ) -> Result<Port> {
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
        let mut pipeline = Pipeline::new(sender, counters, inbound.framing());
        let watch = reopen.is_some().then(|| resume::arm(&mut pipeline));
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
        let writer = Arc::new(writer);
        let reader = match (reopen, watch) {
            (Some(reopen), Some(watch)) => {
                let resume = Resume {
                    reopen,
                    config: config.clone(),
                    writer: writer.clone(),
                };
                Serving::Resumable(Resumable::start(reader, watch, resume)?)
            }
            _ => Serving::Fixed(reader),
        };
        Ok(Port {
            reader,
            receiver,
            writer,
            transactions: Engine::new(config.reply_capacity)
                .with_arrival_jitter(config.arrival_jitter),
            last_miss: None,
            channel: shared,
            realtime,
        })
    }
}

/// The reopener of a transport that cannot resume (a kernel tty): a type
/// for `assemble`'s `None`, never made.
enum NoReopen {}

impl Reopen for NoReopen {
    type Inbound = transport::tty::TtyInbound;

    fn poll(
        &mut self,
        _: &transport::OpenOptions,
    ) -> Result<Option<Parts<transport::tty::TtyInbound>>> {
        match *self {}
    }

    fn waits_for(&self) -> String {
        match *self {}
    }
}
