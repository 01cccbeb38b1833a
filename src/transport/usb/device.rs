//! Opening a device: selection, the interface's endpoints, detaching
//! ftdi_sio, claiming, and giving it all back on close.

use std::sync::Arc;

use super::claimed::Claimed;
use super::descriptor::{BulkEndpoints, EndpointFields, bulk_endpoints, uart_chip};
use super::libusb::context;
use super::list::{DeviceInfo, Selector, UsbId, enumerate};
use super::transfers::SharedContext;
use crate::error::{Error, Result};
use crate::proto::Interface;

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
/// detaches ftdi_sio from the interface if bound, and claims it. On a
/// `shared` context the device's handle is the one another channel's port
/// opened there, if any.
pub(crate) fn open_and_claim(
    selector: &Selector,
    extra_ids: &[UsbId],
    interface: Interface,
    shared: Option<&SharedContext>,
) -> Result<Claimed> {
    let ctx = match shared {
        Some(shared) => shared.context().clone(),
        None => context()?,
    };
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
    let (handle, lease) = match shared {
        None => {
            let handle = device
                .open()
                .map_err(|e| open_error(e, &info, "opening the device"))?;
            (Arc::new(handle), None)
        }
        Some(shared) => match shared.open(&device, interface) {
            Ok(Some((handle, lease))) => (handle, Some(lease)),
            // usbfs would let the shared handle claim it twice.
            Ok(None) => {
                return Err(Error::Busy {
                    device: format!("{info} interface {interface} (open on this reader already)"),
                });
            }
            Err(e) => return Err(open_error(e, &info, "opening the device")),
        },
    };
    let endpoints = endpoints(&device, interface)?;

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
    Claimed::claim(
        handle,
        info.to_string(),
        chip,
        interface,
        endpoints,
        reattach,
        lease,
    )
    .map_err(|e| open_error(e, &info, "claiming the interface"))
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
