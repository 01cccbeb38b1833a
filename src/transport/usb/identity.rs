//! What names one channel of one adapter across unplug and replug, and the
//! listing's warning when two adapters cannot be told apart.
//!
//! The serial number is the identity that survives a replug into another
//! port, so it comes first; an adapter without one (blank EEPROM) is named
//! by where it is plugged (bus and port path), which survives a replug into
//! the same port. Cheap adapters often ship with the same serial number
//! (a cloned EEPROM) or none at all: then the serial number names no single
//! device, and [`list`](super::list) says so on each device concerned
//! ([`DeviceInfo::identity_warning`]); such devices are named by their port
//! path too.

use std::fmt;

use super::list::DeviceInfo;
use crate::proto::Interface;

/// One channel of one adapter, as it can be found again after a replug.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Identity {
    /// A serial number no other listed adapter has, and the channel:
    /// survives moving the adapter to another USB port.
    Serial {
        /// The serial number (from the adapter's EEPROM).
        serial: String,
        /// The channel.
        interface: Interface,
    },
    /// No serial number to go by: the bus, the port path from the root hub
    /// down, and the channel. Survives a replug into the same port only.
    PortPath {
        /// USB bus number.
        bus: u8,
        /// Port numbers from the root hub down.
        port_path: Vec<u8>,
        /// The channel.
        interface: Interface,
    },
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Serial { serial, interface } => {
                write!(f, "serial {serial:?} channel {interface}")
            }
            Identity::PortPath {
                bus,
                port_path,
                interface,
            } => {
                let ports: Vec<String> = port_path.iter().map(u8::to_string).collect();
                write!(f, "port {bus}-{} channel {interface}", ports.join("."))
            }
        }
    }
}

/// Why a listed adapter's serial number cannot identify it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityWarning {
    /// It has no serial number (or a blank one), and neither do the
    /// adapters at these paths (`1-1.2`): each is identified by where it is
    /// plugged in, so moving one to another port makes it a new device.
    BlankSerial {
        /// The bus-port paths of the other adapters without a serial number.
        others: Vec<String>,
    },
    /// The adapters at these paths carry the same serial number (a cloned
    /// EEPROM): each is identified by where it is plugged in instead.
    /// Program distinct serial numbers (FT_Prog, ftdi_eeprom) to tell them
    /// apart wherever they are plugged.
    SharedSerial {
        /// The serial number they share.
        serial: String,
        /// The bus-port paths of the other adapters with it.
        others: Vec<String>,
    },
}

impl fmt::Display for IdentityWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityWarning::BlankSerial { others } => write!(
                f,
                "no serial number, like the adapter(s) at {}: identified by its USB port, \
                 so moving it to another port makes it a different device; program a serial \
                 number (FT_Prog, ftdi_eeprom) to tell them apart",
                others.join(", ")
            ),
            IdentityWarning::SharedSerial { serial, others } => write!(
                f,
                "serial number {serial:?} is also on the adapter(s) at {} (cloned EEPROM): \
                 identified by its USB port instead; program distinct serial numbers \
                 (FT_Prog, ftdi_eeprom) to tell them apart",
                others.join(", ")
            ),
        }
    }
}

/// The serial number, if it names anything (not blank).
fn usable_serial(info: &DeviceInfo) -> Option<&str> {
    info.serial.as_deref().filter(|s| !s.trim().is_empty())
}

impl DeviceInfo {
    /// The identity of channel `interface` of this adapter: its serial
    /// number if it has one no other listed adapter shares, else its port
    /// path ([`identity_warning`](Self::identity_warning) says why).
    pub fn identity(&self, interface: Interface) -> Identity {
        match (usable_serial(self), &self.identity_warning) {
            (Some(serial), None) => Identity::Serial {
                serial: serial.to_string(),
                interface,
            },
            _ => Identity::PortPath {
                bus: self.bus,
                port_path: self.port_path.clone(),
                interface,
            },
        }
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

/// Sets [`DeviceInfo::identity_warning`] on every device of a listing that
/// shares its serial number, or the lack of one, with another. A device
/// that could not be opened has no known serial number, not a blank one,
/// and is left out.
pub(crate) fn mark_shared_identities(devices: &mut [DeviceInfo]) {
    let warnings: Vec<Option<IdentityWarning>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.accessible {
                return None;
            }
            let serial = usable_serial(d);
            let others: Vec<String> = devices
                .iter()
                .enumerate()
                .filter(|&(j, o)| j != i && o.accessible && usable_serial(o) == serial)
                .map(|(_, o)| o.path())
                .collect();
            if others.is_empty() {
                return None;
            }
            Some(match serial {
                None => IdentityWarning::BlankSerial { others },
                Some(serial) => IdentityWarning::SharedSerial {
                    serial: serial.to_string(),
                    others,
                },
            })
        })
        .collect();
    for (device, warning) in devices.iter_mut().zip(warnings) {
        device.identity_warning = warning;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Chip;

    fn device(serial: Option<&str>, port: u8, chip: Chip) -> DeviceInfo {
        DeviceInfo {
            chip: Some(chip),
            vendor_id: 0x0403,
            product_id: 0x6011,
            bcd_device: 0x0800,
            manufacturer: Some("FTDI".into()),
            product: None,
            serial: serial.map(String::from),
            bus: 1,
            port_path: vec![1, port],
            address: port,
            channels: chip.channels(),
            accessible: true,
            identity_warning: None,
        }
    }

    #[test]
    fn distinct_serials_identify_each_channel_wherever_it_is_plugged() {
        let mut listing = [
            device(Some("FT4ABC"), 1, Chip::Ft4232H),
            device(Some("FT4ABD"), 2, Chip::Ft4232H),
        ];
        mark_shared_identities(&mut listing);
        assert!(listing.iter().all(|d| d.identity_warning.is_none()));
        let ids = listing[0].identities();
        assert_eq!(ids.len(), 4);
        assert_eq!(
            ids[1],
            Identity::Serial {
                serial: "FT4ABC".into(),
                interface: Interface::B
            }
        );
        assert_eq!(ids[1].to_string(), "serial \"FT4ABC\" channel B");
        // Moved to another port: the same identity.
        let mut moved = listing[0].clone();
        moved.port_path = vec![3];
        assert_eq!(moved.identity(Interface::B), ids[1]);
    }

    #[test]
    fn cloned_serials_are_warned_about_and_fall_back_to_the_port() {
        let mut listing = [
            device(Some("A50285BI"), 1, Chip::Ft232R),
            device(Some("A50285BI"), 2, Chip::Ft232R),
            device(Some("UNIQUE1"), 3, Chip::Ft232R),
        ];
        mark_shared_identities(&mut listing);
        assert_eq!(
            listing[0].identity_warning,
            Some(IdentityWarning::SharedSerial {
                serial: "A50285BI".into(),
                others: vec!["1-1.2".into()]
            })
        );
        let warning = listing[1].identity_warning.as_ref().unwrap().to_string();
        assert!(
            warning.contains("1-1.1") && warning.contains("cloned"),
            "{warning}"
        );
        assert!(listing[2].identity_warning.is_none());
        assert_eq!(
            listing[1].identity(Interface::A),
            Identity::PortPath {
                bus: 1,
                port_path: vec![1, 2],
                interface: Interface::A
            }
        );
        assert_eq!(
            listing[1].identity(Interface::A).to_string(),
            "port 1-1.2 channel A"
        );
        assert!(matches!(
            listing[2].identity(Interface::A),
            Identity::Serial { .. }
        ));
    }

    #[test]
    fn blank_serials_are_warned_about_and_identified_by_port() {
        let mut listing = [
            device(None, 1, Chip::Ft2232H),
            device(Some("  "), 2, Chip::Ft2232H),
            device(Some("FT2XYZ"), 3, Chip::Ft2232H),
        ];
        mark_shared_identities(&mut listing);
        assert_eq!(
            listing[0].identity_warning,
            Some(IdentityWarning::BlankSerial {
                others: vec!["1-1.2".into()]
            })
        );
        assert!(matches!(
            listing[1].identity_warning,
            Some(IdentityWarning::BlankSerial { .. })
        ));
        assert!(listing[2].identity_warning.is_none());
        assert!(matches!(
            listing[1].identity(Interface::B),
            Identity::PortPath { .. }
        ));
        assert_eq!(listing[0].identities().len(), 2);
    }

    #[test]
    fn a_lone_blank_serial_is_no_clash_and_unreadable_ones_are_left_out() {
        let mut alone = [
            device(None, 1, Chip::Ft232R),
            device(Some("S1"), 2, Chip::Ft232R),
        ];
        mark_shared_identities(&mut alone);
        assert!(alone.iter().all(|d| d.identity_warning.is_none()));
        // Still named by its port: it has no serial to go by.
        assert!(matches!(
            alone[0].identity(Interface::A),
            Identity::PortPath { .. }
        ));

        // No permission to read the strings: serial unknown, not blank.
        let mut unreadable = [device(None, 1, Chip::Ft232R), device(None, 2, Chip::Ft232R)];
        unreadable[1].accessible = false;
        mark_shared_identities(&mut unreadable);
        assert!(unreadable.iter().all(|d| d.identity_warning.is_none()));
    }
}
