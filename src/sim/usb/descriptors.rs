//! The descriptors a simulated FTDI chip reports, laid out as silicon with
//! its factory EEPROM reports them (USB 2.0 §9.6).
//!
//! Per chip (docs/ftdi-protocol.md §1 for VID, PID, bcdDevice, channels and packet
//! sizes): FT232R — full speed, control endpoint of 8 bytes, "FT232R USB
//! UART", bus powered with remote wakeup, 90 mA, as `lsusb -v` shows a
//! factory FT232RL; FT2232H and FT4232H — high speed, "Dual RS232-HS" and
//! "Quad RS232-HS" (the names a blank EEPROM reports, which tools such as
//! OpenOCD match on), bus powered. Manufacturer "FTDI". Every interface is
//! vendor-specific (class, subclass and protocol 0xFF) with its bulk IN and
//! OUT endpoint (0x81/0x02, 0x83/0x04, ...), interval 0. The high-speed
//! chips also answer DEVICE_QUALIFIER and OTHER_SPEED_CONFIGURATION; a
//! full-speed-only device STALLs them, as USB 2.0 §9.6.2 requires.

use super::UsbSpeed;
use crate::proto::{Chip, Interface};

/// bDescriptorType values (USB 2.0 table 9-5).
pub(super) const DEVICE: u8 = 1;
pub(super) const CONFIGURATION: u8 = 2;
pub(super) const STRING: u8 = 3;
const INTERFACE: u8 = 4;
const ENDPOINT: u8 = 5;
pub(super) const DEVICE_QUALIFIER: u8 = 6;
pub(super) const OTHER_SPEED_CONFIGURATION: u8 = 7;

/// USB vendor ID of FTDI.
const VID: u16 = 0x0403;
/// String descriptor indices.
const MANUFACTURER: u8 = 1;
const PRODUCT: u8 = 2;
const SERIAL_NUMBER: u8 = 3;
/// bmAttributes bit: the device supports remote wakeup.
const REMOTE_WAKEUP: u8 = 0x20;
/// The longest string a descriptor can carry (bLength is one byte).
pub(super) const MAX_STRING_UNITS: usize = (255 - 2) / 2;

/// What differs between the modelled chips on the bus.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChipUsb {
    pid: u16,
    product: &'static str,
    ep0_size: u8,
    attributes: u8,
    /// bMaxPower, in units of 2 mA.
    max_power: u8,
}

/// The chips [`VirtualFtdi`](super::VirtualFtdi) models, `None` for others.
pub(super) fn chip_usb(chip: Chip) -> Option<ChipUsb> {
    Some(match chip {
        Chip::Ft232R => ChipUsb {
            pid: 0x6001,
            product: "FT232R USB UART",
            ep0_size: 8,
            attributes: 0x80 | REMOTE_WAKEUP,
            max_power: 45,
        },
        Chip::Ft2232H => ChipUsb {
            pid: 0x6010,
            product: "Dual RS232-HS",
            ep0_size: 64,
            attributes: 0x80,
            max_power: 50,
        },
        Chip::Ft4232H => ChipUsb {
            pid: 0x6011,
            product: "Quad RS232-HS",
            ep0_size: 64,
            attributes: 0x80,
            max_power: 50,
        },
        _ => return None,
    })
}

/// Every descriptor the device answers GET_DESCRIPTOR with.
#[derive(Clone, Debug)]
pub(super) struct Descriptors {
    device: [u8; 18],
    configuration: Vec<u8>,
    other_speed: Option<Vec<u8>>,
    qualifier: Option<[u8; 10]>,
    /// Index 0: the LANGID list; then manufacturer, product, serial number.
    strings: Vec<Vec<u8>>,
}

impl Descriptors {
    /// The descriptors of `chip` connected at `speed` (its bulk endpoints
    /// sized for that speed), with `serial` as iSerialNumber (none: 0).
    pub(super) fn new(chip: Chip, speed: UsbSpeed, serial: Option<&str>) -> Option<Descriptors> {
        let usb = chip_usb(chip)?;
        let [vid_lo, vid_hi] = VID.to_le_bytes();
        let [pid_lo, pid_hi] = usb.pid.to_le_bytes();
        let [bcd_lo, bcd_hi] = chip.bcd_device().to_le_bytes();
        let device = [
            18,
            DEVICE,
            0x00,
            0x02, // bcdUSB 2.00
            0,
            0,
            0, // class, subclass, protocol: per interface
            usb.ep0_size,
            vid_lo,
            vid_hi,
            pid_lo,
            pid_hi,
            bcd_lo,
            bcd_hi,
            MANUFACTURER,
            PRODUCT,
            if serial.is_some() { SERIAL_NUMBER } else { 0 },
            1, // bNumConfigurations
        ];
        let (this, other) = match speed {
            UsbSpeed::Full => (64, 512),
            UsbSpeed::High => (512, 64),
        };
        let configuration = config_descriptor(CONFIGURATION, chip, &usb, this);
        let dual_speed = chip.is_high_speed();
        let other_speed =
            dual_speed.then(|| config_descriptor(OTHER_SPEED_CONFIGURATION, chip, &usb, other));
        let qualifier = dual_speed.then_some([
            10,
            DEVICE_QUALIFIER,
            0x00,
            0x02,
            0,
            0,
            0,
            usb.ep0_size,
            1,
            0,
        ]);
        let mut strings = vec![
            vec![4, STRING, 0x09, 0x04],
            string("FTDI"),
            string(usb.product),
        ];
        if let Some(serial) = serial {
            strings.push(string(serial));
        }
        Some(Descriptors {
            device,
            configuration,
            other_speed,
            qualifier,
            strings,
        })
    }

    /// The descriptor of type `kind` and `index`, or `None` (STALL).
    pub(super) fn get(&self, kind: u8, index: u8) -> Option<&[u8]> {
        match (kind, index) {
            (DEVICE, 0) => Some(&self.device),
            (CONFIGURATION, 0) => Some(&self.configuration),
            (OTHER_SPEED_CONFIGURATION, 0) => self.other_speed.as_deref(),
            (DEVICE_QUALIFIER, 0) => self.qualifier.as_ref().map(|q| &q[..]),
            (STRING, i) => self.strings.get(usize::from(i)).map(Vec::as_slice),
            _ => None,
        }
    }

    /// Whether the configuration offers remote wakeup (bmAttributes bit 5).
    pub(super) fn remote_wakeup_capable(&self) -> bool {
        self.configuration[7] & REMOTE_WAKEUP != 0
    }
}

/// A configuration (or other-speed configuration) descriptor with every
/// interface of `chip` and its two bulk endpoints of `max_packet` bytes.
fn config_descriptor(kind: u8, chip: Chip, usb: &ChipUsb, max_packet: u16) -> Vec<u8> {
    let interfaces = chip.interfaces();
    let total = 9 + interfaces.len() * (9 + 7 + 7);
    let [total_lo, total_hi] = (total as u16).to_le_bytes();
    let mut d = vec![
        9,
        kind,
        total_lo,
        total_hi,
        interfaces.len() as u8,
        1, // bConfigurationValue
        0, // iConfiguration
        usb.attributes,
        usb.max_power,
    ];
    let [mps_lo, mps_hi] = max_packet.to_le_bytes();
    for &interface in interfaces {
        d.extend_from_slice(&[
            9,
            INTERFACE,
            interface.number(),
            0, // bAlternateSetting
            2, // bNumEndpoints
            0xFF,
            0xFF,
            0xFF,
            PRODUCT, // iInterface: the product string, as the chips report it
        ]);
        for address in endpoints(interface) {
            d.extend_from_slice(&[7, ENDPOINT, address, 0x02, mps_lo, mps_hi, 0]);
        }
    }
    d
}

/// The bulk IN and OUT endpoint addresses of `interface`, IN first.
fn endpoints(interface: Interface) -> [u8; 2] {
    [interface.endpoint_in(), interface.endpoint_out()]
}

/// A string descriptor: UTF-16LE after the two header bytes.
fn string(s: &str) -> Vec<u8> {
    let mut d = vec![0, STRING];
    for unit in s.encode_utf16().take(MAX_STRING_UNITS) {
        d.extend_from_slice(&unit.to_le_bytes());
    }
    d[0] = d.len() as u8;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_utf16le_with_their_length() {
        assert_eq!(string("Aé"), [6, 3, b'A', 0, 0xE9, 0]);
        assert_eq!(string(""), [2, 3]);
        let long = "x".repeat(300);
        assert_eq!(string(&long).len(), 2 + 2 * MAX_STRING_UNITS);
    }

    #[test]
    fn only_the_modelled_chips_have_descriptors() {
        for &chip in Chip::ALL {
            let modelled = matches!(chip, Chip::Ft232R | Chip::Ft2232H | Chip::Ft4232H);
            assert_eq!(chip_usb(chip).is_some(), modelled, "{chip}");
        }
    }

    #[test]
    fn a_full_speed_only_chip_has_no_qualifier() {
        let d = Descriptors::new(Chip::Ft232R, UsbSpeed::Full, None).unwrap();
        assert!(d.get(DEVICE_QUALIFIER, 0).is_none());
        assert!(d.get(OTHER_SPEED_CONFIGURATION, 0).is_none());
        assert!(d.get(STRING, 3).is_none(), "no serial number string");
        assert_eq!(d.get(DEVICE, 0).unwrap()[16], 0, "iSerialNumber 0");
        assert!(d.remote_wakeup_capable());
    }
}
