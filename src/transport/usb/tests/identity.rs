//! Adapter identities on fabricated listings (no USB here): distinct,
//! cloned and blank serial numbers, unreadable devices.

use super::super::identity::{Identity, IdentityWarning};
use super::super::list::{DeviceInfo, mark_shared_identities};
use crate::proto::{Chip, Interface};

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
