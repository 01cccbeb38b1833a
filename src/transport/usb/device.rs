//! Opening a device: selection, the interface's endpoints, detaching
//! ftdi_sio, claiming, and giving it all back on close.

use rusb::UsbContext;

use super::descriptor::{BulkEndpoints, EndpointFields, bulk_endpoints, uart_chip};
use super::list::{DeviceInfo, Selector, UsbId, context, enumerate};
use crate::error::{Error, Result};
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
    handle: rusb::DeviceHandle<rusb::Context>,
    pub(crate) info: DeviceInfo,
    pub(crate) chip: Chip,
    pub(crate) interface: Interface,
    pub(crate) ep_in: u8,
    pub(crate) ep_out: u8,
    /// The bulk-IN endpoint's, checked to suit the FTDI framing.
    pub(crate) max_packet_size: usize,
    /// ftdi_sio was bound before we detached it.
    reattach: bool,
}

impl Claimed {
    pub(crate) fn description(&self) -> String {
        format!("{} interface {}", self.info, self.interface)
    }

    /// The libusb device handle, for the transfer set.
    pub(crate) fn raw_handle(&self) -> *mut rusb::ffi::libusb_device_handle {
        self.handle.as_raw()
    }

    /// The libusb context the handle belongs to, for the transfer set.
    pub(crate) fn raw_context(&self) -> *mut rusb::ffi::libusb_context {
        self.handle.context().as_raw()
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
                    self.info
                ),
            }
        }
    }
}

/// Maps a libusb error while opening or claiming to what the user should do.
fn open_error(e: rusb::Error, device: &DeviceInfo, operation: &'static str) -> Error {
    match e {
        rusb::Error::Access => Error::PermissionDenied {
            device: device.to_string(),
        },
        rusb::Error::Busy => Error::Busy {
            device: device.to_string(),
        },
        rusb::Error::NoDevice => Error::Disconnected,
        other => Error::Usb {
            operation,
            reason: other.to_string(),
        },
    }
}

/// Finds the device `selector` names, opens it, reads its endpoints,
/// detaches ftdi_sio from the interface if bound, and claims it.
pub(crate) fn open_and_claim(
    selector: &Selector,
    extra_ids: &[UsbId],
    interface: Interface,
) -> Result<Claimed> {
    let ctx = context()?;
    let found = enumerate(&ctx, extra_ids)?;
    let Some((device, info)) = found
        .iter()
        .enumerate()
        .find(|(i, (_, info))| selector.matches(*i, info))
        .map(|(_, (d, info))| (d.clone(), info.clone()))
    else {
        return Err(Error::NotFound {
            wanted: selector.to_string(),
            found: found.iter().map(|(_, info)| info.to_string()).collect(),
        });
    };
    let i_serial_number = device
        .device_descriptor()
        .map_or(0, |d| d.serial_number_string_index().unwrap_or(0));
    let chip = uart_chip(
        info.bcd_device,
        i_serial_number,
        interface,
        &info.to_string(),
    )?;
    let handle = device
        .open()
        .map_err(|e| open_error(e, &info, "opening the device"))?;
    let BulkEndpoints {
        ep_in,
        ep_out,
        max_packet_size,
    } = endpoints(&device, interface)?;

    let number = interface.number();
    // Detach only if a kernel driver is bound, and remember it (libusb's
    // auto-detach would also re-attach, but then we could not report it).
    let reattach = match handle.kernel_driver_active(number) {
        Ok(true) => {
            handle
                .detach_kernel_driver(number)
                .map_err(|e| open_error(e, &info, "detaching ftdi_sio"))?;
            true
        }
        Ok(false) | Err(rusb::Error::NotSupported) => false,
        Err(e) => return Err(open_error(e, &info, "checking for a kernel driver")),
    };
    let claimed = Claimed {
        handle,
        info,
        chip,
        interface,
        ep_in,
        ep_out,
        max_packet_size,
        reattach,
    };
    // On failure `claimed` drops: releasing an unclaimed interface is a
    // harmless no-op, and ftdi_sio is re-attached.
    claimed
        .handle
        .claim_interface(number)
        .map_err(|e| open_error(e, &claimed.info, "claiming the interface"))?;
    Ok(claimed)
}

/// The interface's bulk endpoints, read from the configuration descriptor
/// (the active one, else the first) and checked by [`bulk_endpoints`].
fn endpoints(device: &rusb::Device<rusb::Context>, interface: Interface) -> Result<BulkEndpoints> {
    let config = device
        .active_config_descriptor()
        .or_else(|_| device.config_descriptor(0))
        .map_err(|e| Error::Usb {
            operation: "reading the configuration descriptor",
            reason: e.to_string(),
        })?;
    let number = interface.number();
    let alt = config
        .interfaces()
        .find(|i| i.number() == number)
        .and_then(|i| i.descriptors().next())
        .ok_or_else(|| Error::Usb {
            operation: "reading the interface descriptor",
            reason: format!("the device has no interface {number}"),
        })?;
    let fields: Vec<EndpointFields> = alt
        .endpoint_descriptors()
        .map(|ep| EndpointFields {
            address: ep.address(),
            attributes: match ep.transfer_type() {
                rusb::TransferType::Control => 0,
                rusb::TransferType::Isochronous => 1,
                rusb::TransferType::Bulk => 2,
                rusb::TransferType::Interrupt => 3,
            },
            max_packet_size: ep.max_packet_size(),
        })
        .collect();
    bulk_endpoints(number, &fields)
}
