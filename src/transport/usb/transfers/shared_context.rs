//! One libusb context for every libusb port a shared [`Reader`](crate::Reader)
//! serves, and the device handles its ports share.
//!
//! A port of its own opens its device in a context of its own and its event
//! loop polls that context's descriptors. On a shared reader all its libusb
//! ports live in one context: the reader waits on that context's descriptors
//! once (epoll), lets libusb reap every completion of every device in one
//! call, then gives each port its bounded turn (`reader::serve`).
//!
//! Channels of one multi-channel chip (FT2232C/D/H, FT4232H) opened on the
//! same context share one device handle (one usbfs file): each channel's port
//! claims its own interface on it and gives it back (ftdi_sio re-attached) when
//! it closes; the handle closes with the last channel. Channels no port claims
//! stay on ftdi_sio.
//!
//! Who takes which lock: the table here is the application's slow path
//! (opening and closing). Event handling is the reader thread's alone, and
//! checked: [`SharedContext::handle_events`] refuses any other thread, so that
//! no completion callback of a port's transfer runs where the reader does not
//! own the transfer (see `transfers`, "Why this is sound").

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use rusb::UsbContext;

use super::super::lease::{InterfaceLease, SharedHandle};
use super::super::libusb::context;
use super::{handle_events_on, pollfds};
use crate::error::{Result, TransferError};
use crate::proto::Interface;

/// One open device in the table: the handle (weak: the ports' claims keep it
/// open) and which of its interfaces ports hold.
#[derive(Debug)]
struct OpenDevice {
    bus: u8,
    address: u8,
    handle: Weak<rusb::DeviceHandle<rusb::Context>>,
    claimed: Arc<AtomicU8>,
}

/// The context a shared reader's libusb ports live in.
#[derive(Debug)]
pub(crate) struct SharedContext {
    context: rusb::Context,
    /// Open devices, so that channels of one device share its handle.
    devices: Mutex<Vec<OpenDevice>>,
    /// The thread that handles this context's events (the reader's).
    events_thread: OnceLock<ThreadId>,
}

impl SharedContext {
    /// A new libusb context.
    ///
    /// # Errors
    /// [`Error::UsbUnavailable`](crate::Error::UsbUnavailable) when libusb
    /// cannot initialise (no usbfs).
    pub(crate) fn new() -> Result<SharedContext> {
        Ok(SharedContext {
            context: context()?,
            devices: Mutex::new(Vec::new()),
            events_thread: OnceLock::new(),
        })
    }

    /// The libusb context, to enumerate and open devices in.
    pub(crate) fn context(&self) -> &rusb::Context {
        &self.context
    }

    /// The handle of `device`: the one already open on this context if a
    /// port holds another of its interfaces, else a new one. Returns it with
    /// the lease on `interface`, or `Ok(None)` if a port on this context
    /// holds that interface already.
    ///
    /// # Errors
    /// What libusb says when the device cannot be opened.
    pub(crate) fn open(
        &self,
        device: &rusb::Device<rusb::Context>,
        interface: Interface,
    ) -> rusb::Result<Option<(SharedHandle, InterfaceLease)>> {
        let (bus, address) = (device.bus_number(), device.address());
        // A poisoned table is still a consistent list of weak handles.
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        devices.retain(|d| d.handle.strong_count() > 0);
        if let Some(open) = devices
            .iter()
            .find(|d| d.bus == bus && d.address == address)
            && let Some(handle) = open.handle.upgrade()
        {
            return Ok(InterfaceLease::take(&open.claimed, interface).map(|lease| (handle, lease)));
        }
        let handle = Arc::new(device.open()?);
        let claimed = Arc::new(AtomicU8::new(0));
        let lease = InterfaceLease::take(&claimed, interface);
        devices.push(OpenDevice {
            bus,
            address,
            handle: Arc::downgrade(&handle),
            claimed,
        });
        Ok(lease.map(|lease| (handle, lease)))
    }

    /// Makes the calling thread the one that handles this context's events
    /// (the shared reader, once, when the context is created). Returns
    /// whether it is that thread.
    pub(crate) fn claim_events(&self) -> bool {
        let me = std::thread::current().id();
        *self.events_thread.get_or_init(|| me) == me
    }

    /// The descriptors libusb wants polled now, with the events it wants
    /// (allocates: the reader's slow path, after a port joined).
    pub(crate) fn pollfds(&self) -> Vec<libc::pollfd> {
        pollfds(self.context.as_raw())
    }

    /// Lets libusb reap what completed on every device of the context and
    /// run the transfers' callbacks, waiting at most `timeout` (zero: not at
    /// all). Only on the thread that claimed the events.
    pub(crate) fn handle_events(&self, timeout: Duration) -> Result<(), TransferError> {
        if self.events_thread.get() != Some(&std::thread::current().id()) {
            // Not the reader: a callback here would race with it.
            return Err(TransferError::Unknown(rusb::constants::LIBUSB_ERROR_BUSY));
        }
        handle_events_on(&self.context, timeout)
    }
}
