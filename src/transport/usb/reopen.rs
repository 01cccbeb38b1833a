//! Finding an adapter again after an unplug, for a port that resumes: by
//! its [`Identity`] (serial number and channel, else port path and
//! channel), with one enumeration per look. The port's watcher calls it
//! periodically while the device is gone (see `crate::port`'s resume
//! module for why a scan and not hotplug callbacks).

use super::identity::Identity;
use super::libusb::context;
use super::list::{Selector, UsbId, enumerate};
use super::{TransferSet, UsbInbound, open};
use crate::error::{Error, Result};
use crate::proto::Interface;
use crate::transport::{OpenOptions, Parts, Reopen};

/// The identity of the adapter `selector` picks now (before a port that
/// resumes opens it), so that the same one can be found again.
///
/// # Errors
/// As opening: no usbfs, nothing the selector picks.
pub(crate) fn identify(selector: &Selector, options: &OpenOptions) -> Result<Identity> {
    let found = enumerate(&context()?, &options.usb_ids)?;
    found
        .iter()
        .enumerate()
        .find(|(i, (_, info))| selector.matches(*i, info))
        .map(|(_, (_, info))| info.identity(options.interface))
        .ok_or_else(|| Error::NotFound {
            wanted: selector.to_string(),
            found: found.iter().map(|(_, info)| info.to_string()).collect(),
        })
}

/// Looks for the adapter with one identity.
#[derive(Debug)]
pub(crate) struct UsbReopen {
    identity: Identity,
    interface: Interface,
    usb_ids: Vec<UsbId>,
}

impl UsbReopen {
    /// Looks for channel `interface` of the adapter with `identity`.
    pub(crate) fn new(identity: Identity, interface: Interface, usb_ids: Vec<UsbId>) -> UsbReopen {
        UsbReopen {
            identity,
            interface,
            usb_ids,
        }
    }
}

impl Reopen for UsbReopen {
    type Inbound = UsbInbound<TransferSet>;

    fn poll(&mut self, options: &OpenOptions) -> Result<Option<Parts<Self::Inbound>>> {
        let found = enumerate(&context()?, &self.usb_ids)?;
        let Some((_, info)) = found
            .iter()
            .find(|(_, info)| info.identity(self.interface) == self.identity)
        else {
            return Ok(None);
        };
        // That very device: by where it is plugged in now.
        let here = Selector::Path {
            bus: info.bus,
            ports: info.port_path.clone(),
        };
        drop(found);
        // Resume is refused on a shared reader: the port has its own.
        match open(&here, options, None) {
            Ok(parts) => Ok(Some(parts)),
            // Gone again between the look and the open.
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn waits_for(&self) -> String {
        self.identity.to_string()
    }
}
