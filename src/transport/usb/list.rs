//! Finding FTDI devices: enumeration, the device description, selectors.

use std::fmt;
use std::str::FromStr;

use rusb::UsbContext;

use super::identity::{Identity, IdentityWarning, Listed, identity_of, shared_identity_warnings};
use super::libusb::context;
use super::transfers::raw_bcd_device;
use crate::error::{Error, Result};
use crate::proto::{Chip, Interface};

/// FTDI's USB vendor ID.
pub const FTDI_VID: u16 = 0x0403;

/// A vendor/product ID pair to accept besides FTDI's (for adapters with a
/// custom VID/PID in their EEPROM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UsbId {
    /// Vendor ID.
    pub vendor: u16,
    /// Product ID.
    pub product: u16,
}

/// One FTDI device found on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The chip, detected from bcdDevice (`None`: an unknown release number).
    pub chip: Option<Chip>,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Product ID.
    pub product_id: u16,
    /// bcdDevice.
    pub bcd_device: u16,
    /// Manufacturer string, if readable.
    pub manufacturer: Option<String>,
    /// Product string, if readable.
    pub product: Option<String>,
    /// Serial number string, if readable.
    pub serial: Option<String>,
    /// USB bus number.
    pub bus: u8,
    /// Port numbers from the root hub down (`bus-p1.p2...`, as in sysfs).
    pub port_path: Vec<u8>,
    /// Device address on the bus.
    pub address: u8,
    /// UART channels (interfaces).
    pub channels: u8,
    /// Whether the device could be opened to read its strings (false
    /// usually means the udev rule is missing).
    pub accessible: bool,
    /// Set by [`list`] when another listed adapter has the same serial
    /// number, or also none: the serial number cannot tell them apart, and
    /// [`identity`](DeviceInfo::identity) falls back to the port path.
    pub identity_warning: Option<IdentityWarning>,
}

impl DeviceInfo {
    /// The bus-port path as sysfs writes it, e.g. `1-1.2`.
    pub fn path(&self) -> String {
        let ports: Vec<String> = self.port_path.iter().map(u8::to_string).collect();
        format!("{}-{}", self.bus, ports.join("."))
    }
}

impl DeviceInfo {
    /// The identity of channel `interface` of this adapter: its serial
    /// number if it has one no other listed adapter shares, else its port
    /// path ([`identity_warning`](Self::identity_warning) says why).
    pub fn identity(&self, interface: Interface) -> Identity {
        identity_of(
            self.serial.as_deref(),
            self.identity_warning.is_some(),
            self.bus,
            &self.port_path,
            interface,
        )
    }

    /// The identities of all its channels.
    pub fn identities(&self) -> Vec<Identity> {
        Interface::ALL
            .iter()
            .take(usize::from(self.channels.max(1)))
            .map(|&i| self.identity(i))
            .collect()
    }
}

/// Sets [`DeviceInfo::identity_warning`] on every adapter of a listing that
/// shares its serial number, or the lack of one, with another.
pub(crate) fn mark_shared_identities(devices: &mut [DeviceInfo]) {
    let listed: Vec<Listed<'_>> = devices
        .iter()
        .map(|d| Listed {
            serial: d.serial.as_deref(),
            accessible: d.accessible,
        })
        .collect();
    let paths: Vec<String> = devices.iter().map(DeviceInfo::path).collect();
    let warnings = shared_identity_warnings(&listed, &paths);
    for (device, warning) in devices.iter_mut().zip(warnings) {
        device.identity_warning = warning;
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chip = self
            .chip
            .map_or("unknown FTDI chip".to_string(), |c| c.to_string());
        write!(
            f,
            "{chip} {:04x}:{:04x} at {}",
            self.vendor_id,
            self.product_id,
            self.path()
        )?;
        if let Some(serial) = &self.serial {
            write!(f, " serial {serial}")?;
        }
        if let Some(product) = &self.product {
            write!(f, " ({product})")?;
        }
        if !self.accessible {
            write!(f, " [no permission]")?;
        }
        if let Some(warning) = &self.identity_warning {
            write!(f, " [warning: {warning}]")?;
        }
        Ok(())
    }
}

/// Which device to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selector {
    /// The first one found (ordered by bus and port path).
    #[default]
    First,
    /// The one with this serial number.
    Serial(String),
    /// The one at this bus and port path (`1-1.2`).
    Path {
        /// Bus number.
        bus: u8,
        /// Port numbers from the root hub down.
        ports: Vec<u8>,
    },
    /// The n-th one found (0-based, same order as [`list`]).
    Index(usize),
}

impl Selector {
    pub(crate) fn matches(&self, index: usize, info: &DeviceInfo) -> bool {
        match self {
            Selector::First => index == 0,
            Selector::Serial(s) => info.serial.as_deref() == Some(s.as_str()),
            Selector::Path { bus, ports } => info.bus == *bus && &info.port_path == ports,
            Selector::Index(i) => index == *i,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::First => f.write_str("the first device"),
            Selector::Serial(s) => write!(f, "serial number {s:?}"),
            Selector::Path { bus, ports } => {
                let ports: Vec<String> = ports.iter().map(u8::to_string).collect();
                write!(f, "bus-port path {bus}-{}", ports.join("."))
            }
            Selector::Index(i) => write!(f, "index {i}"),
        }
    }
}

impl FromStr for Selector {
    type Err = Error;

    /// `""`/`first`, an index (`0`, `index:2`), a bus-port path (`1-1.2`,
    /// `path:1-1.2`), or a serial number (`FT1ABC`, `serial:1234`).
    /// Surrounding whitespace (a newline from a file or an environment
    /// variable) is not part of it; a prefix with nothing after it
    /// (`serial:`, `path:`, `index:`) is refused rather than read as the
    /// first device, which could open the wrong adapter.
    fn from_str(s: &str) -> Result<Selector> {
        let s = s.trim();
        let bad = || {
            Error::InvalidConfig(format!(
                "device selector {s:?}: expected an index, a bus-port path like 1-1.2, or a serial number"
            ))
        };
        let prefixed = ["serial:", "index:", "path:"]
            .into_iter()
            .find_map(|prefix| Some((prefix, s.strip_prefix(prefix)?.trim())));
        if let Some((prefix, "")) = prefixed {
            return Err(Error::InvalidConfig(format!(
                "device selector {s:?}: nothing after {prefix:?}; give the value \
                 (e.g. serial:FT1ABCDE, path:1-1.2, index:0), or \"first\" for the first adapter"
            )));
        }
        if let Some(("serial:", rest)) = prefixed {
            return Ok(Selector::Serial(rest.to_string()));
        }
        if let Some(("index:", rest)) = prefixed {
            return rest.parse().map(Selector::Index).map_err(|_| bad());
        }
        let path = prefixed.map(|(_, rest)| rest);
        let text = path.unwrap_or(s);
        if path.is_none() && (text.is_empty() || text == "first") {
            return Ok(Selector::First);
        }
        if let Some((bus, ports)) = text.split_once('-') {
            let parsed = bus.parse::<u8>().ok().zip(
                ports
                    .split('.')
                    .map(|p| p.parse::<u8>().ok())
                    .collect::<Option<Vec<_>>>(),
            );
            if let Some((bus, ports)) = parsed {
                return Ok(Selector::Path { bus, ports });
            }
            if path.is_some() {
                return Err(bad());
            }
        }
        if path.is_none() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Selector::Index).map_err(|_| bad());
        }
        if path.is_some() {
            return Err(bad());
        }
        Ok(Selector::Serial(text.to_string()))
    }
}

/// Lists FTDI devices (VID 0x0403) and devices with the extra IDs given,
/// ordered by bus and port path. Adapters that share a serial number, or
/// all lack one, carry an [`IdentityWarning`] (also logged as a warning).
///
/// # Errors
/// [`Error::UsbUnavailable`] when libusb cannot initialise (no usbfs).
pub fn list(extra_ids: &[UsbId]) -> Result<Vec<DeviceInfo>> {
    let ctx = context()?;
    let devices: Vec<DeviceInfo> = enumerate(&ctx, extra_ids)?
        .into_iter()
        .map(|(_, info)| info)
        .collect();
    for device in &devices {
        if let Some(warning) = &device.identity_warning {
            log::warn!("FTDI adapter at {}: {warning}", device.path());
        }
    }
    Ok(devices)
}

/// Every matching device with its description, in a stable order.
pub(crate) fn enumerate(
    ctx: &rusb::Context,
    extra_ids: &[UsbId],
) -> Result<Vec<(rusb::Device<rusb::Context>, DeviceInfo)>> {
    let devices = ctx.devices().map_err(|e| Error::Usb {
        operation: "listing devices",
        reason: e.to_string(),
    })?;
    let mut found = Vec::new();
    for device in devices.iter() {
        let Ok(desc) = device.device_descriptor() else {
            continue;
        };
        let (vid, pid) = (desc.vendor_id(), desc.product_id());
        let wanted = vid == FTDI_VID
            || extra_ids
                .iter()
                .any(|id| id.vendor == vid && id.product == pid);
        if !wanted {
            continue;
        }
        let Some(bcd) = raw_bcd_device(&device) else {
            continue;
        };
        let chip = Chip::detect(bcd, desc.serial_number_string_index().unwrap_or(0));
        let mut info = DeviceInfo {
            chip,
            vendor_id: vid,
            product_id: pid,
            bcd_device: bcd,
            manufacturer: None,
            product: None,
            serial: None,
            bus: device.bus_number(),
            port_path: device.port_numbers().unwrap_or_default(),
            address: device.address(),
            channels: chip.map_or(1, Chip::channels),
            accessible: false,
            identity_warning: None,
        };
        if let Ok(handle) = device.open() {
            info.accessible = true;
            info.manufacturer = handle.read_manufacturer_string_ascii(&desc).ok();
            info.product = handle.read_product_string_ascii(&desc).ok();
            info.serial = handle.read_serial_number_string_ascii(&desc).ok();
        }
        found.push((device, info));
    }
    found.sort_by(|a, b| (a.1.bus, &a.1.port_path).cmp(&(b.1.bus, &b.1.port_path)));
    let mut infos: Vec<DeviceInfo> = found.iter().map(|(_, info)| info.clone()).collect();
    mark_shared_identities(&mut infos);
    for ((_, info), marked) in found.iter_mut().zip(infos) {
        info.identity_warning = marked.identity_warning;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!("".parse::<Selector>().unwrap(), Selector::First);
        assert_eq!("2".parse::<Selector>().unwrap(), Selector::Index(2));
        assert_eq!("index:3".parse::<Selector>().unwrap(), Selector::Index(3));
        assert_eq!(
            "1-1.2".parse::<Selector>().unwrap(),
            Selector::Path {
                bus: 1,
                ports: vec![1, 2]
            }
        );
        assert_eq!(
            "path:3-4".parse::<Selector>().unwrap(),
            Selector::Path {
                bus: 3,
                ports: vec![4]
            }
        );
        assert_eq!(
            "FT1ABCDE".parse::<Selector>().unwrap(),
            Selector::Serial("FT1ABCDE".into())
        );
        assert_eq!(
            "serial:1234".parse::<Selector>().unwrap(),
            Selector::Serial("1234".into())
        );
        assert!("path:nope".parse::<Selector>().is_err());
    }

    // Issue 13 item 7: no guessing from an empty value, no stray whitespace.
    #[test]
    fn empty_values_are_refused_and_whitespace_is_trimmed() {
        for s in ["path:", "serial:", "index:", "serial:  ", " path:\n"] {
            match s.parse::<Selector>() {
                Err(Error::InvalidConfig(msg)) => assert!(msg.contains("nothing after"), "{msg}"),
                other => panic!("{s:?} parsed as {other:?}"),
            }
        }
        assert_eq!(
            "FT1ABCDE\n".parse::<Selector>().unwrap(),
            Selector::Serial("FT1ABCDE".into())
        );
        assert_eq!(
            "  serial: 1234 \r\n".parse::<Selector>().unwrap(),
            Selector::Serial("1234".into())
        );
        assert_eq!(
            "\tpath:3-4\n".parse::<Selector>().unwrap(),
            Selector::Path {
                bus: 3,
                ports: vec![4]
            }
        );
        assert_eq!(" 2\n".parse::<Selector>().unwrap(), Selector::Index(2));
        assert_eq!(" first ".parse::<Selector>().unwrap(), Selector::First);
    }

    #[test]
    fn device_info_reads_well() {
        let info = DeviceInfo {
            chip: Some(Chip::Ft232R),
            vendor_id: 0x0403,
            product_id: 0x6001,
            bcd_device: 0x0600,
            manufacturer: Some("FTDI".into()),
            product: Some("FT232R USB UART".into()),
            serial: Some("A1B2C3".into()),
            bus: 1,
            port_path: vec![1, 2],
            address: 5,
            channels: 1,
            accessible: true,
            identity_warning: None,
        };
        assert_eq!(info.path(), "1-1.2");
        assert_eq!(
            info.to_string(),
            "FT232R 0403:6001 at 1-1.2 serial A1B2C3 (FT232R USB UART)"
        );
        assert!(
            Selector::Path {
                bus: 1,
                ports: vec![1, 2]
            }
            .matches(3, &info)
        );
        assert!(Selector::Serial("A1B2C3".into()).matches(3, &info));
        assert!(!Selector::First.matches(1, &info));
    }

    #[test]
    fn listing_finds_only_ftdi_devices_or_says_why_it_cannot() {
        // These machines have no usbfs; on one with USB this lists devices,
        // and nothing but FTDI's vendor ID (no extra IDs were given).
        match list(&[]) {
            Ok(devices) => {
                for d in &devices {
                    assert_eq!(d.vendor_id, FTDI_VID, "{d}");
                }
            }
            Err(e) => assert!(e.to_string().contains("USB is not available"), "{e}"),
        }
    }
}
