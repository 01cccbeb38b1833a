//! What the driver derives from a device's descriptors, as pure functions of
//! the descriptor fields: the chip and its channel count, the interface's
//! bulk endpoint pair, and a max packet size the FTDI framing can work with.
//! Device data is untrusted input: each function refuses what it cannot use
//! with an error that names the value. Fuzzed by `fuzz/fuzz_targets/descriptors.rs`.

use crate::error::{Error, Result};
use crate::proto::{Chip, Interface};

/// The smallest bulk max packet size accepted: USB 2.0 allows 8, 16, 32 or
/// 64 bytes at full speed, 512 at high speed (§5.8.3). Below 8 no packet has
/// room for the FTDI framing's 2 status bytes plus a useful payload, and a
/// real FTDI chip never reports it.
pub(crate) const MIN_MAX_PACKET_SIZE: usize = 8;
/// The largest: a high-speed bulk packet. FTDI chips go no faster.
pub(crate) const MAX_MAX_PACKET_SIZE: usize = 512;

/// The fields of one endpoint descriptor the driver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndpointFields {
    /// bEndpointAddress: bit 7 is the direction (1 = IN).
    pub(crate) address: u8,
    /// bmAttributes: bits 0..2 are the transfer type (2 = bulk).
    pub(crate) attributes: u8,
    /// wMaxPacketSize as the descriptor has it.
    pub(crate) max_packet_size: u16,
}

impl EndpointFields {
    fn is_bulk(self) -> bool {
        self.attributes & 0x03 == 0x02
    }

    fn is_in(self) -> bool {
        self.address & 0x80 != 0
    }
}

/// An interface's bulk endpoints, as the transfers need them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BulkEndpoints {
    pub(crate) ep_in: u8,
    pub(crate) ep_out: u8,
    /// The bulk-IN endpoint's max packet size, in
    /// [`MIN_MAX_PACKET_SIZE`]..=[`MAX_MAX_PACKET_SIZE`].
    pub(crate) max_packet_size: usize,
}

/// The UART chip a device with this bcdDevice and iSerialNumber is, checked
/// to have `interface`. `device` names the device in errors.
pub(crate) fn uart_chip(
    bcd_device: u16,
    i_serial_number: u8,
    interface: Interface,
    device: &str,
) -> Result<Chip> {
    let chip = Chip::detect(bcd_device, i_serial_number).ok_or_else(|| Error::Unsupported {
        setting: format!("bcdDevice {bcd_device:#06x}"),
        transport: device.to_string(),
        reason: "this FTDI release number is not a known UART chip".into(),
    })?;
    if interface.number() >= chip.channels() {
        return Err(Error::InvalidConfig(format!(
            "the {chip} has {} channel(s); there is no interface {interface}",
            chip.channels()
        )));
    }
    Ok(chip)
}

/// The first bulk IN and the first bulk OUT endpoint of interface `number`
/// (given its endpoint descriptors), with the IN endpoint's max packet size
/// checked by [`max_packet_size`].
pub(crate) fn bulk_endpoints(number: u8, endpoints: &[EndpointFields]) -> Result<BulkEndpoints> {
    let bulk = || endpoints.iter().filter(|e| e.is_bulk());
    match (bulk().find(|e| e.is_in()), bulk().find(|e| !e.is_in())) {
        (Some(ep_in), Some(ep_out)) => Ok(BulkEndpoints {
            ep_in: ep_in.address,
            ep_out: ep_out.address,
            max_packet_size: max_packet_size(ep_in.max_packet_size)?,
        }),
        _ => Err(Error::Usb {
            operation: "reading the endpoint descriptors",
            reason: format!("interface {number} lacks a bulk IN/OUT endpoint pair"),
        }),
    }
}

/// The packet size the FTDI framing splits bulk-IN transfers by, from
/// wMaxPacketSize. Bits 11..12 (extra transactions per microframe) mean
/// nothing for bulk and are ignored, as the kernel does; 0, seen on
/// misprogrammed EEPROMs, counts as 64 as the kernel does. Anything else
/// outside [`MIN_MAX_PACKET_SIZE`]..=[`MAX_MAX_PACKET_SIZE`] is refused: with
/// 1 to 7 every packet would be dropped as malformed, and above 512 the
/// framing would split the stream in the wrong places.
pub(crate) fn max_packet_size(w_max_packet_size: u16) -> Result<usize> {
    let size = usize::from(w_max_packet_size & 0x07ff);
    if size == 0 {
        return Ok(64);
    }
    if (MIN_MAX_PACKET_SIZE..=MAX_MAX_PACKET_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(Error::Usb {
            operation: "reading the endpoint descriptors",
            reason: format!(
                "the bulk-IN endpoint's wMaxPacketSize is {size} bytes; the FTDI framing \
                 (2 status bytes opening every packet) works with {MIN_MAX_PACKET_SIZE} to \
                 {MAX_MAX_PACKET_SIZE} bytes. This is not an FTDI chip's descriptor: check \
                 the device (or the USB IDs passed in PortConfig::usb_ids)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(address: u8, attributes: u8, max_packet_size: u16) -> EndpointFields {
        EndpointFields {
            address,
            attributes,
            max_packet_size,
        }
    }

    #[test]
    fn max_packet_sizes_below_8_and_above_512_are_refused_by_value() {
        for bad in [1u16, 2, 3, 7, 513, 1023, 1024] {
            let e = max_packet_size(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("wMaxPacketSize is {bad} bytes")), "{e}");
            assert!(e.contains("8 to 512"), "{e}");
        }
        for good in [8u16, 16, 32, 64, 512] {
            assert_eq!(max_packet_size(good).unwrap(), usize::from(good));
        }
        assert_eq!(max_packet_size(0).unwrap(), 64, "the kernel's reading of 0");
        // High-bandwidth bits do not inflate the size (0x0840 is 64 + bits).
        assert_eq!(max_packet_size(0x0840).unwrap(), 64);
        assert!(
            max_packet_size(0x1804).is_err(),
            "4 bytes, whatever bits 11..12 say"
        );
    }

    #[test]
    fn the_first_bulk_pair_is_chosen_and_other_types_are_skipped() {
        let eps = [
            ep(0x83, 0x03, 8),   // interrupt IN
            ep(0x81, 0x02, 64),  // bulk IN
            ep(0x02, 0x02, 64),  // bulk OUT
            ep(0x84, 0x02, 512), // a second bulk IN
        ];
        assert_eq!(
            bulk_endpoints(0, &eps).unwrap(),
            BulkEndpoints {
                ep_in: 0x81,
                ep_out: 0x02,
                max_packet_size: 64
            }
        );
        let e = bulk_endpoints(1, &eps[..2]).unwrap_err().to_string();
        assert!(
            e.contains("interface 1 lacks a bulk IN/OUT endpoint pair"),
            "{e}"
        );
        let e = bulk_endpoints(0, &[ep(0x81, 0x02, 4), ep(0x02, 0x02, 64)]).unwrap_err();
        assert!(e.to_string().contains("wMaxPacketSize is 4 bytes"), "{e}");
    }

    #[test]
    fn chips_are_detected_and_their_channels_checked() {
        assert_eq!(
            uart_chip(0x0600, 3, Interface::A, "dev").unwrap(),
            Chip::Ft232R
        );
        assert_eq!(
            uart_chip(0x0800, 3, Interface::D, "dev").unwrap(),
            Chip::Ft4232H
        );
        let e = uart_chip(0x0600, 3, Interface::B, "dev").unwrap_err();
        assert!(e.to_string().contains("no interface B"), "{e}");
        let e = uart_chip(0x0a00, 3, Interface::A, "dev").unwrap_err();
        assert!(e.to_string().contains("bcdDevice 0x0a00"), "{e}");
    }
}
