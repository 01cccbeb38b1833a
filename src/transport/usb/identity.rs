//! What names one channel of one adapter across unplug and replug, and the
//! listing's warning when two adapters cannot be told apart.
//!
//! The serial number is the identity that survives a replug into another
//! port, so it comes first; an adapter without one (blank EEPROM) is named
//! by where it is plugged (bus and port path), which survives a replug into
//! the same port. Cheap adapters often ship with the same serial number
//! (a cloned EEPROM) or none at all: then the serial number names no single
//! device, and [`list`](super::list) says so on each device concerned
//! ([`DeviceInfo::identity_warning`](super::DeviceInfo::identity_warning));
//! such devices are named by their port path too. The listing applies the
//! rules here to its `DeviceInfo`s (`list.rs`); this file knows nothing of them.

use std::fmt;

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
pub(crate) fn usable_serial(serial: Option<&str>) -> Option<&str> {
    serial.filter(|s| !s.trim().is_empty())
}

/// The identity of channel `interface` of an adapter with `serial` at
/// `bus`-`port_path`: the serial number when it has one that names it alone
/// (`clash`: another adapter shares it, or its lack), else the port path.
pub(crate) fn identity_of(
    serial: Option<&str>,
    clash: bool,
    bus: u8,
    port_path: &[u8],
    interface: Interface,
) -> Identity {
    match usable_serial(serial) {
        Some(serial) if !clash => Identity::Serial {
            serial: serial.to_string(),
            interface,
        },
        _ => Identity::PortPath {
            bus,
            port_path: port_path.to_vec(),
            interface,
        },
    }
}

/// What [`shared_identity_warnings`] needs of a listed adapter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listed<'a> {
    /// Its serial number as read (`None`: none, or unreadable).
    pub(crate) serial: Option<&'a str>,
    /// Whether its strings could be read at all.
    pub(crate) accessible: bool,
}

/// For each adapter of a listing (paths in `paths`, same order), the
/// warning if it shares its serial number, or the lack of one, with
/// another. An adapter that could not be opened has no known serial number,
/// not a blank one, and is left out.
pub(crate) fn shared_identity_warnings(
    listed: &[Listed<'_>],
    paths: &[String],
) -> Vec<Option<IdentityWarning>> {
    listed
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if !d.accessible {
                return None;
            }
            let serial = usable_serial(d.serial);
            let others: Vec<String> = listed
                .iter()
                .zip(paths)
                .enumerate()
                .filter(|&(j, (o, _))| j != i && o.accessible && usable_serial(o.serial) == serial)
                .map(|(_, (_, path))| path.clone())
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
        .collect()
}
