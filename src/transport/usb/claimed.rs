//! A claimed FTDI interface: the open device handle and what the transfers
//! need to know about it. Shared (`Arc`) by the transfer set, which keeps it
//! open while any transfer exists. The handle itself may be shared too: the
//! channels of one device on a shared reader claim their interfaces on one
//! handle (`shared_context`), which closes with the last of them.

use std::sync::Arc;

use rusb::UsbContext;

use super::descriptor::BulkEndpoints;
use super::detached::DetachedInterface;
use super::lease::{InterfaceLease, SharedHandle};
use crate::exit::Registration;
use crate::proto::{Chip, Interface};

/// A claimed FTDI interface. Dropping it releases the interface and
/// re-attaches ftdi_sio if it was attached before, so `/dev/ttyUSBn` returns.
/// While ftdi_sio is detached, the interface is on the exit path's list
/// (`crate::exit`), so that a signal gives it back too.
///
/// The handle (and the libusb context it owns) is private: from here on
/// only the transfer set reaches libusb, through the raw pointers, and
/// nothing offers a synchronous transfer, whose libusb call would run the
/// event loop on the caller's thread (see `transfers`, "Why this is sound").
#[derive(Debug)]
pub(crate) struct Claimed {
    /// Shared with `detached`, which may release the interface on a signal,
    /// and with the other channels of the device on a shared reader.
    handle: SharedHandle,
    /// The device in words (`DeviceInfo`'s description).
    pub(crate) name: String,
    pub(crate) chip: Chip,
    pub(crate) interface: Interface,
    pub(crate) ep_in: u8,
    pub(crate) ep_out: u8,
    /// The bulk-IN endpoint's, checked to suit the FTDI framing.
    pub(crate) max_packet_size: usize,
    /// ftdi_sio was bound before we detached it: the interface to give
    /// back, and its entry on the exit path's list.
    detached: Option<(Arc<DetachedInterface>, Registration)>,
    /// On a shared handle: this port's hold on the interface, given up after
    /// the release (a field drops after `drop`).
    _lease: Option<InterfaceLease>,
}

impl Claimed {
    /// Claims `interface` on `handle` (`reattach`: ftdi_sio was detached
    /// from it and goes back on drop; `lease`: the interface's hold on a
    /// shared handle). On failure the value drops: releasing an unclaimed
    /// interface is a harmless no-op, and ftdi_sio is re-attached.
    pub(super) fn claim(
        handle: SharedHandle,
        name: String,
        chip: Chip,
        interface: Interface,
        endpoints: BulkEndpoints,
        reattach: bool,
        lease: Option<InterfaceLease>,
    ) -> rusb::Result<Claimed> {
        let detached = reattach.then(|| {
            let entry = Arc::new(DetachedInterface::new(
                handle.clone(),
                interface.number(),
                name.clone(),
            ));
            let registration = Registration::new(entry.clone());
            (entry, registration)
        });
        let claimed = Claimed {
            handle,
            name,
            chip,
            interface,
            ep_in: endpoints.ep_in,
            ep_out: endpoints.ep_out,
            max_packet_size: endpoints.max_packet_size,
            detached,
            _lease: lease,
        };
        claimed.handle.claim_interface(interface.number())?;
        Ok(claimed)
    }

    pub(crate) fn description(&self) -> String {
        format!("{} interface {}", self.name, self.interface)
    }

    /// The interface has been given back to its kernel driver (a signal:
    /// see `detached`): the transfer set submits nothing more.
    pub(crate) fn released(&self) -> bool {
        self.detached
            .as_ref()
            .is_some_and(|(entry, _)| entry.released())
    }

    /// The libusb device handle, for the transfer set.
    pub(crate) fn raw_handle(&self) -> *mut rusb::ffi::libusb_device_handle {
        self.handle.as_raw()
    }

    /// The libusb context the handle belongs to, for the transfer set.
    pub(crate) fn raw_context(&self) -> *mut rusb::ffi::libusb_context {
        self.handle.context().as_raw()
    }

    /// The libusb context the handle belongs to.
    pub(crate) fn context(&self) -> &rusb::Context {
        self.handle.context()
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        // Dropping the registration releases the interface and re-attaches
        // ftdi_sio, unless a signal's exit path already took it over.
        if self.detached.take().is_none() {
            let number = self.interface.number();
            if let Err(e) = self.handle.release_interface(number) {
                log::debug!("releasing interface {number}: {e}");
            }
        }
    }
}
