//! A claimed FTDI interface: the open device handle and what the transfers
//! need to know about it. Shared (`Arc`) by the transfer set, which keeps it
//! open while any transfer exists. The handle itself may be shared too: the
//! channels of one device on a shared reader claim their interfaces on one
//! handle (`shared_context`), which closes with the last of them.

use rusb::UsbContext;

use super::descriptor::BulkEndpoints;
use super::shared_context::{InterfaceLease, SharedHandle};
use crate::proto::{Chip, Interface};

/// A claimed FTDI interface. Dropping it releases the interface and
/// re-attaches ftdi_sio if it was attached before, so `/dev/ttyUSBn` returns.
///
/// The handle (and the libusb context it owns) is private: from here on
/// only the transfer set reaches libusb, through the raw pointers, and
/// nothing offers a synchronous transfer, whose libusb call would run the
/// event loop on the caller's thread (see `transfers`, "Why this is sound").
#[derive(Debug)]
pub(crate) struct Claimed {
    handle: SharedHandle,
    /// The device in words (`DeviceInfo`'s description).
    pub(crate) name: String,
    pub(crate) chip: Chip,
    pub(crate) interface: Interface,
    pub(crate) ep_in: u8,
    pub(crate) ep_out: u8,
    /// The bulk-IN endpoint's, checked to suit the FTDI framing.
    pub(crate) max_packet_size: usize,
    /// ftdi_sio was bound before we detached it.
    reattach: bool,
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
        let claimed = Claimed {
            handle,
            name,
            chip,
            interface,
            ep_in: endpoints.ep_in,
            ep_out: endpoints.ep_out,
            max_packet_size: endpoints.max_packet_size,
            reattach,
            _lease: lease,
        };
        claimed.handle.claim_interface(interface.number())?;
        Ok(claimed)
    }

    pub(crate) fn description(&self) -> String {
        format!("{} interface {}", self.name, self.interface)
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
        let number = self.interface.number();
        if let Err(e) = self.handle.release_interface(number) {
            log::debug!("releasing interface {number}: {e}");
        }
        if self.reattach {
            match self.handle.attach_kernel_driver(number) {
                Ok(()) => log::debug!("ftdi_sio re-attached to interface {number}"),
                Err(e) => log::warn!(
                    "could not re-attach ftdi_sio to {} interface {number}: {e}; replug the adapter to get /dev/ttyUSB back",
                    self.name
                ),
            }
        }
    }
}
