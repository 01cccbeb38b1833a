//! Fuzz what opening derives from a device's descriptors: the chip from
//! bcdDevice and iSerialNumber, its channel count against the interface
//! asked for, the bulk endpoint pair and the max packet size the FTDI
//! framing will split by.
//!
//! Run with `cargo fuzz run descriptors -s none` (stable toolchain). Checked:
//! nothing panics; a device is accepted exactly when an independent reading
//! of the same fields says it is usable, with the values that reading gives;
//! a refused max packet size is named in the error.
//!
//! Input: bcdDevice (2 bytes), iSerialNumber, interface (A..D), then
//! endpoint descriptors of 4 bytes each (address, attributes, wMaxPacketSize
//! little-endian).
#![no_main]

use ftdi_rt::fuzz_support::{describe_device, framing_packet_size};
use ftdi_rt::{Chip, Interface};
use libfuzzer_sys::fuzz_target;

/// The max packet size a bulk endpoint's wMaxPacketSize gives, by the rules
/// (USB 2.0 §5.8.3, the kernel's reading of 0), or `Err(size)` if refused.
fn packet_size(w: u16) -> Result<usize, usize> {
    match usize::from(w & 0x07ff) {
        0 => Ok(64),
        n @ 8..=512 => Ok(n),
        n => Err(n),
    }
}

fuzz_target!(|data: &[u8]| {
    let [b0, b1, i_serial, ifc, rest @ ..] = data else {
        return;
    };
    let bcd = u16::from_le_bytes([*b0, *b1]);
    let interface = [Interface::A, Interface::B, Interface::C, Interface::D][usize::from(ifc % 4)];
    let endpoints: Vec<[u8; 4]> = rest
        .chunks_exact(4)
        .take(32)
        .map(|e| [e[0], e[1], e[2], e[3]])
        .collect();

    let result = describe_device(bcd, *i_serial, interface, &endpoints);

    let chip = Chip::detect(bcd, *i_serial).filter(|c| interface.number() < c.channels());
    let is_bulk = |e: &&[u8; 4]| e[1] & 0x03 == 0x02;
    let ep_in = endpoints.iter().filter(is_bulk).find(|e| e[0] & 0x80 != 0);
    let ep_out = endpoints.iter().filter(is_bulk).find(|e| e[0] & 0x80 == 0);
    let size = ep_in.map(|e| packet_size(u16::from_le_bytes([e[2], e[3]])));
    match (&result, chip, ep_in.zip(ep_out), size) {
        (Ok(d), Some(chip), Some((i, o)), Some(Ok(n))) => {
            assert_eq!(d.chip, chip);
            assert_eq!((d.ep_in, d.ep_out, d.max_packet_size), (i[0], o[0], n));
            assert!((8..=512).contains(&d.max_packet_size));
        }
        (Err(e), Some(_), Some(_), Some(Err(n))) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("wMaxPacketSize is {n} bytes")),
                "{msg}"
            );
            assert!(msg.contains("8 to 512"), "{msg}");
        }
        (Err(e), None, _, _) | (Err(e), _, None, _) => assert!(!e.to_string().is_empty()),
        (result, chip, pair, size) => {
            panic!("{result:?} disagrees with chip {chip:?}, pair {pair:?}, size {size:?}")
        }
    }
    assert_eq!(framing_packet_size(bcd).ok(), packet_size(bcd).ok());
});
