//! Opening a device: selection, the interface's endpoints, detaching
//! ftdi_sio, claiming, and giving it all back on close.

use super::list::{DeviceInfo, Selector, UsbId, context, enumerate};
use crate::error::{Error, Result};
use crate::proto::{Chip, Interface};

/// A claimed FTDI interface. Dropping it releases the interface and
/// re-attaches ftdi_sio if it was attached before, so `/dev/ttyUSBn` returns.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) handle: rusb::DeviceHandle<rusb::Context>,
    pub(crate) info: DeviceInfo,
    pub(crate) chip: Chip,
    pub(crate) interface: Interface,
    pub(crate) ep_in: u8,
    pub(crate) ep_out: u8,
    pub(crate) max_packet_size: usize,
    /// ftdi_sio was bound before we detached it.
    reattach: bool,
}

impl Claimed {
    /// Clears a halt on the bulk-IN endpoint (a synchronous ioctl; it does
    /// not run libusb's event loop).
    pub(crate) fn clear_in_halt(&self) -> rusb::Result<()> {
        self.handle.clear_halt(self.ep_in)
    }

    pub(crate) fn description(&self) -> String {
        format!("{} interface {}", self.info, self.interface)
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
    let chip = info.chip.ok_or_else(|| Error::Unsupported {
        setting: format!("bcdDevice {:#06x}", info.bcd_device),
        transport: info.to_string(),
        reason: "this FTDI release number is not a known UART chip".into(),
    })?;
    if interface.number() >= chip.channels() {
        return Err(Error::InvalidConfig(format!(
            "the {chip} has {} channel(s); there is no interface {interface}",
            chip.channels()
        )));
    }
    let handle = device
        .open()
        .map_err(|e| open_error(e, &info, "opening the device"))?;
    let (ep_in, ep_out, max_packet_size) = endpoints(&device, interface)?;

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

/// The interface's bulk endpoints and the IN endpoint's max packet size,
/// read from the descriptor (64 on full speed, 512 on high speed; a zero
/// wMaxPacketSize, seen on misprogrammed EEPROMs, counts as 64 as the
/// kernel does).
fn endpoints(
    device: &rusb::Device<rusb::Context>,
    interface: Interface,
) -> Result<(u8, u8, usize)> {
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
    let mut ep_in = None;
    let mut ep_out = None;
    for ep in alt.endpoint_descriptors() {
        if ep.transfer_type() != rusb::TransferType::Bulk {
            continue;
        }
        match ep.direction() {
            rusb::Direction::In => ep_in = Some((ep.address(), usize::from(ep.max_packet_size()))),
            rusb::Direction::Out => ep_out = Some(ep.address()),
        }
    }
    match (ep_in, ep_out) {
        (Some((addr_in, mps)), Some(addr_out)) => {
            // Bulk packets are at most 512 bytes on any speed we support.
            let mps = if mps == 0 { 64 } else { mps.min(512) };
            Ok((addr_in, addr_out, mps))
        }
        _ => Err(Error::Usb {
            operation: "reading the endpoint descriptors",
            reason: format!("interface {number} lacks a bulk IN/OUT endpoint pair"),
        }),
    }
}
