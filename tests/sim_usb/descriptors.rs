//! Descriptors as the host reads them: lengths, totals, endpoint addresses,
//! strings, and wLength truncation.

use ftdi_rt::sim::usb::{UrbStatus, UsbSpeed, VirtualFtdi};
use ftdi_rt::{Chip, Interface};

use crate::host::{Host, T0};

const DEVICE: u8 = 1;
const CONFIG: u8 = 2;
const STRING: u8 = 3;
const QUALIFIER: u8 = 6;
const OTHER_SPEED: u8 = 7;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn host(chip: Chip) -> Host {
    Host::new(VirtualFtdi::builder(chip).build(T0).unwrap())
}

/// An endpoint descriptor's address, attributes and max packet size.
type Endpoint = (u8, u8, u16);

/// The configuration descriptor walked as a host parser does: by bLength.
/// Returns the interface descriptors and the endpoints.
fn parse_config(d: &[u8]) -> (Vec<[u8; 9]>, Vec<Endpoint>) {
    assert_eq!(usize::from(le16(d, 2)), d.len(), "wTotalLength");
    let (mut interfaces, mut endpoints) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < d.len() {
        let len = usize::from(d[at]);
        assert!(len >= 2 && at + len <= d.len(), "descriptor at {at}");
        match d[at + 1] {
            2 | 7 => assert_eq!((len, at), (9, 0), "the configuration comes first"),
            4 => {
                assert_eq!(len, 9);
                interfaces.push(d[at..at + 9].try_into().unwrap());
            }
            5 => {
                assert_eq!(len, 7);
                endpoints.push((d[at + 2], d[at + 3], le16(d, at + 4)));
            }
            other => panic!("unexpected descriptor type {other}"),
        }
        at += len;
    }
    (interfaces, endpoints)
}

#[test]
fn device_descriptors_are_those_of_the_chips() {
    for (chip, pid, ep0, speed) in [
        (Chip::Ft232R, 0x6001, 8, UsbSpeed::Full),
        (Chip::Ft2232H, 0x6010, 64, UsbSpeed::High),
        (Chip::Ft4232H, 0x6011, 64, UsbSpeed::High),
    ] {
        let mut h = host(chip);
        assert_eq!(h.speed(), speed, "{chip}");
        let d = h.descriptor(DEVICE, 0, 18).unwrap();
        assert_eq!(d.len(), 18);
        assert_eq!((d[0], d[1], le16(&d, 2)), (18, DEVICE, 0x0200), "{chip}");
        assert_eq!((d[4], d[5], d[6], d[7]), (0, 0, 0, ep0), "{chip}");
        assert_eq!((le16(&d, 8), le16(&d, 10)), (0x0403, pid), "{chip}");
        assert_eq!(le16(&d, 12), chip.bcd_device(), "{chip}");
        assert_eq!((d[14], d[15], d[16], d[17]), (1, 2, 3, 1), "{chip}");
        // What a driver identifies the chip by.
        assert_eq!(Chip::detect(le16(&d, 12), d[16]), Some(chip));
    }
}

#[test]
fn configuration_lists_every_interface_with_its_bulk_endpoints() {
    for (chip, total, mps) in [
        (Chip::Ft232R, 32, 64),
        (Chip::Ft2232H, 55, 512),
        (Chip::Ft4232H, 101, 512),
    ] {
        let mut h = host(chip);
        // Linux reads the 9-byte header first, then wTotalLength.
        let head = h.descriptor(CONFIG, 0, 9).unwrap();
        assert_eq!((head.len(), le16(&head, 2)), (9, total), "{chip}");
        let d = h.descriptor(CONFIG, 0, total).unwrap();
        let (interfaces, endpoints) = parse_config(&d);
        assert_eq!(d[4], chip.channels(), "bNumInterfaces");
        assert_eq!(d[5], 1, "bConfigurationValue");
        assert_eq!(interfaces.len(), usize::from(chip.channels()));
        for (i, iface) in interfaces.iter().enumerate() {
            assert_eq!(usize::from(iface[2]), i, "bInterfaceNumber");
            assert_eq!((iface[3], iface[4]), (0, 2), "alt 0, two endpoints");
            assert_eq!((iface[5], iface[6], iface[7]), (0xFF, 0xFF, 0xFF));
        }
        let want: Vec<Endpoint> = chip
            .interfaces()
            .iter()
            .flat_map(|i| [(i.endpoint_in(), 2, mps), (i.endpoint_out(), 2, mps)])
            .collect();
        assert_eq!(endpoints, want, "{chip}");
    }
    // The endpoint addresses spelled out for the largest chip.
    let mut h = host(Chip::Ft4232H);
    let d = h.descriptor(CONFIG, 0, 255).unwrap();
    let addresses: Vec<u8> = parse_config(&d).1.iter().map(|e| e.0).collect();
    assert_eq!(addresses, [0x81, 0x02, 0x83, 0x04, 0x85, 0x06, 0x87, 0x08]);
}

#[test]
fn strings_are_utf16le_under_langid_0409() {
    let utf16 = |s: &str| -> Vec<u8> {
        let mut d = vec![0, STRING];
        d.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        d[0] = d.len() as u8;
        d
    };
    for (chip, product) in [
        (Chip::Ft232R, "FT232R USB UART"),
        (Chip::Ft2232H, "Dual RS232-HS"),
        (Chip::Ft4232H, "Quad RS232-HS"),
    ] {
        let mut h = host(chip);
        assert_eq!(h.descriptor(STRING, 0, 255).unwrap(), [4, 3, 0x09, 0x04]);
        assert_eq!(h.descriptor(STRING, 1, 255).unwrap(), utf16("FTDI"));
        assert_eq!(h.descriptor(STRING, 2, 255).unwrap(), utf16(product));
        assert_eq!(h.descriptor(STRING, 3, 255).unwrap(), utf16("FTSIM001"));
        assert_eq!(h.descriptor(STRING, 4, 255), Err(UrbStatus::Stall));
    }
    let custom = VirtualFtdi::builder(Chip::Ft232R).serial_number("RIG-Ä2");
    let mut h = Host::new(custom.build(T0).unwrap());
    assert_eq!(h.descriptor(STRING, 3, 255).unwrap(), utf16("RIG-Ä2"));
    let blank = VirtualFtdi::builder(Chip::Ft232R).serial_number("");
    let mut h = Host::new(blank.build(T0).unwrap());
    assert_eq!(h.descriptor(STRING, 3, 255).unwrap(), [2, STRING]);
    let none = VirtualFtdi::builder(Chip::Ft4232H).without_serial_number();
    let mut h = Host::new(none.build(T0).unwrap());
    assert_eq!(h.descriptor(DEVICE, 0, 18).unwrap()[16], 0, "iSerialNumber");
    assert_eq!(h.descriptor(STRING, 3, 255), Err(UrbStatus::Stall));
    let too_long = VirtualFtdi::builder(Chip::Ft232R).serial_number("x".repeat(127));
    assert!(too_long.build(T0).is_err());
}

#[test]
fn wlength_cuts_every_descriptor_and_a_longer_one_gets_it_whole() {
    let mut h = host(Chip::Ft232R);
    // The kernel's first look at a full-speed device: 8 or 64 bytes.
    assert_eq!(h.descriptor(DEVICE, 0, 8).unwrap().len(), 8);
    assert_eq!(h.descriptor(DEVICE, 0, 64).unwrap().len(), 18);
    assert_eq!(h.descriptor(CONFIG, 0, 4).unwrap().len(), 4);
    assert_eq!(h.descriptor(CONFIG, 0, 1024).unwrap().len(), 32);
    assert_eq!(h.descriptor(STRING, 2, 2).unwrap(), [32, STRING]);
    assert_eq!(h.descriptor(STRING, 0, 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn high_speed_chips_describe_their_other_speed() {
    let mut h = host(Chip::Ft2232H);
    assert_eq!(
        h.descriptor(QUALIFIER, 0, 10).unwrap(),
        [10, QUALIFIER, 0x00, 0x02, 0, 0, 0, 64, 1, 0]
    );
    let other = h.descriptor(OTHER_SPEED, 0, 255).unwrap();
    assert_eq!(other[1], OTHER_SPEED);
    assert!(parse_config(&other).1.iter().all(|e| e.2 == 64));

    // An H chip on a full-speed port.
    let fs = VirtualFtdi::builder(Chip::Ft4232H).max_packet_size(64);
    let mut h = Host::new(fs.build(T0).unwrap());
    assert_eq!(h.speed(), UsbSpeed::Full);
    let config = h.descriptor(CONFIG, 0, 255).unwrap();
    assert!(parse_config(&config).1.iter().all(|e| e.2 == 64));
    let other = h.descriptor(OTHER_SPEED, 0, 255).unwrap();
    assert!(parse_config(&other).1.iter().all(|e| e.2 == 512));

    // A full-speed-only chip refuses both (USB 2.0 §9.6.2).
    let mut h = host(Chip::Ft232R);
    assert_eq!(h.descriptor(QUALIFIER, 0, 10), Err(UrbStatus::Stall));
    assert_eq!(h.descriptor(OTHER_SPEED, 0, 255), Err(UrbStatus::Stall));
    assert_eq!(h.descriptor(CONFIG, 1, 255), Err(UrbStatus::Stall));
    assert_eq!(h.descriptor(0x0F, 0, 255), Err(UrbStatus::Stall), "BOS");
}

#[test]
fn builds_that_cannot_be_a_real_chip_are_refused() {
    assert!(VirtualFtdi::builder(Chip::Ft232H).build(T0).is_err());
    let r512 = VirtualFtdi::builder(Chip::Ft232R).max_packet_size(512);
    assert!(r512.build(T0).is_err());
    let odd = VirtualFtdi::builder(Chip::Ft2232H).max_packet_size(100);
    assert!(odd.build(T0).is_err());
    let no_b =
        VirtualFtdi::builder(Chip::Ft232R).device(Interface::B, ftdi_rt::sim::Loopback::new());
    let err = no_b.build(T0).unwrap_err().to_string();
    assert!(err.contains("no interface B"), "{err}");
}
