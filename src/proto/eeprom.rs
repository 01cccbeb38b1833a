//! The configuration EEPROM: its identity fields and strings, decoded
//! read-only, and an image builder for the simulated chip.
//!
//! Words are read one at a time with READ_EEPROM (0x90, wIndex = word
//! address; docs/ftdi-protocol.md §2). The layout below is the one the
//! BM, R and H families share for what is decoded here (libftdi's
//! `ftdi_eeprom_decode`, ftdi.c, reads the same offsets):
//!
//! | byte | meaning |
//! |---|---|
//! | 0x02..0x07 | idVendor, idProduct, bcdDevice (little-endian words) |
//! | 0x08 | bmAttributes of the configuration (bit 6 self-powered, bit 5 remote wakeup) |
//! | 0x09 | bMaxPower, in 2 mA units |
//! | 0x0E, 0x0F | manufacturer string: byte offset (masked to the EEPROM size), length in bytes |
//! | 0x10, 0x11 | product string: offset, length |
//! | 0x12, 0x13 | serial number string: offset, length |
//! | last word | checksum |
//!
//! Each string is stored as a USB string descriptor (bLength, 0x03,
//! UTF-16LE), which the chip serves as is. The checksum starts at 0xAAAA
//! and, for every word but the last, is XORed with the word and rotated
//! left by one bit.

use std::fmt;

/// Words in a 93C46 EEPROM (128 bytes), the FT232R's internal size.
pub const EEPROM_WORDS_93C46: usize = 64;

/// USB descriptor type of a string descriptor.
const STRING_DESCRIPTOR: u8 = 0x03;
/// Where [`EepromImage`] starts placing strings: after the FT232R's
/// CBUS configuration (bytes 0x14..0x17).
const STRINGS_START: usize = 0x18;

/// What the EEPROM says about the device (read-only view).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Eeprom {
    /// idVendor the chip enumerates with.
    pub vendor_id: u16,
    /// idProduct.
    pub product_id: u16,
    /// bcdDevice as stored (the chip may report its own instead).
    pub release: u16,
    /// The configuration says self-powered.
    pub self_powered: bool,
    /// The configuration allows remote wakeup.
    pub remote_wakeup: bool,
    /// Maximum bus current, mA.
    pub max_power_ma: u16,
    /// Manufacturer string (`None`: length 0).
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Serial number string.
    pub serial: Option<String>,
    /// The stored checksum matches the contents.
    pub checksum_ok: bool,
    /// Size of the image, bytes.
    pub size_bytes: usize,
}

/// Why an EEPROM image cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EepromError {
    /// Every word is 0xFFFF: the chip runs on its built-in defaults.
    #[error(
        "the EEPROM is blank (all 0xFFFF): the chip uses its built-in defaults and has no serial number"
    )]
    Blank,
    /// The image is not a 93C46/56/66 size.
    #[error("an EEPROM image of {words} words: expected 64, 128 or 256")]
    Size {
        /// Words given.
        words: usize,
    },
    /// A string pointer leads outside the image or to no string descriptor.
    #[error("the {which} string pointer (offset {offset:#04x}, length {length}) is invalid")]
    BadString {
        /// Which string.
        which: &'static str,
        /// Its byte offset.
        offset: usize,
        /// Its length in bytes.
        length: usize,
    },
}

impl Eeprom {
    /// Decodes an image read word by word.
    ///
    /// # Errors
    /// [`EepromError`]: a blank EEPROM, an odd size, or a string pointer
    /// outside the image (a bad checksum is not an error: see
    /// [`checksum_ok`](Eeprom::checksum_ok)).
    pub fn decode(words: &[u16]) -> Result<Eeprom, EepromError> {
        if !matches!(words.len(), 64 | 128 | 256) {
            return Err(EepromError::Size { words: words.len() });
        }
        if words.iter().all(|&w| w == 0xFFFF) {
            return Err(EepromError::Blank);
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let string = |which: &'static str, at: usize| -> Result<Option<String>, EepromError> {
            let offset = usize::from(bytes[at]) & (bytes.len() - 1);
            let length = usize::from(bytes[at + 1]);
            if length == 0 {
                return Ok(None);
            }
            let bad = EepromError::BadString {
                which,
                offset,
                length,
            };
            let Some(desc) = bytes.get(offset..offset + length) else {
                return Err(bad);
            };
            if length < 2 || length % 2 != 0 || desc[1] != STRING_DESCRIPTOR {
                return Err(bad);
            }
            let units: Vec<u16> = desc[2..]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            Ok(Some(String::from_utf16_lossy(&units)))
        };
        Ok(Eeprom {
            vendor_id: words[1],
            product_id: words[2],
            release: words[3],
            self_powered: bytes[8] & 0x40 != 0,
            remote_wakeup: bytes[8] & 0x20 != 0,
            max_power_ma: u16::from(bytes[9]) * 2,
            manufacturer: string("manufacturer", 0x0E)?,
            product: string("product", 0x10)?,
            serial: string("serial number", 0x12)?,
            checksum_ok: checksum(&words[..words.len() - 1]) == words[words.len() - 1],
            size_bytes: bytes.len(),
        })
    }
}

impl fmt::Display for Eeprom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        write!(
            f,
            "{:04x}:{:04x} release {:04x}, \"{}\" \"{}\" serial {}, {} mA{}{}, checksum {}",
            self.vendor_id,
            self.product_id,
            self.release,
            s(&self.manufacturer),
            s(&self.product),
            s(&self.serial),
            self.max_power_ma,
            if self.self_powered {
                ", self-powered"
            } else {
                ""
            },
            if self.remote_wakeup {
                ", remote wakeup"
            } else {
                ""
            },
            if self.checksum_ok { "ok" } else { "BAD" },
        )
    }
}

/// The EEPROM checksum of `words` (all but the checksum word).
fn checksum(words: &[u16]) -> u16 {
    words
        .iter()
        .fold(0xAAAA_u16, |sum, &w| (sum ^ w).rotate_left(1))
}

/// Builds an EEPROM image (for the simulated chip, and tests): a 93C46
/// laid out as an FT232R's, bus-powered, 90 mA.
#[derive(Clone, Debug)]
#[must_use]
pub struct EepromImage {
    vendor_id: u16,
    product_id: u16,
    release: u16,
    manufacturer: String,
    product: String,
    serial: Option<String>,
}

impl EepromImage {
    /// An image with these identity fields and strings.
    pub fn new(vendor_id: u16, product_id: u16, release: u16) -> EepromImage {
        EepromImage {
            vendor_id,
            product_id,
            release,
            manufacturer: String::new(),
            product: String::new(),
            serial: None,
        }
    }

    /// Sets the manufacturer and product strings.
    pub fn strings(mut self, manufacturer: &str, product: &str) -> Self {
        self.manufacturer = manufacturer.into();
        self.product = product.into();
        self
    }

    /// Sets (or with `None` leaves out) the serial number.
    pub fn serial(mut self, serial: Option<&str>) -> Self {
        self.serial = serial.map(str::to_string);
        self
    }

    /// The image's words, checksum included. Strings that do not fit in
    /// the 128 bytes are cut short, as the EEPROM tools refuse to write
    /// them whole.
    pub fn words(&self) -> [u16; EEPROM_WORDS_93C46] {
        let mut bytes = [0u8; EEPROM_WORDS_93C46 * 2];
        bytes[2..4].copy_from_slice(&self.vendor_id.to_le_bytes());
        bytes[4..6].copy_from_slice(&self.product_id.to_le_bytes());
        bytes[6..8].copy_from_slice(&self.release.to_le_bytes());
        bytes[8] = 0x80; // bus-powered (bit 7 is always set)
        bytes[9] = 45; // 90 mA
        let end = bytes.len() - 2;
        let mut at = STRINGS_START;
        let strings = [
            (0x0E, Some(self.manufacturer.as_str())),
            (0x10, Some(self.product.as_str())),
            (0x12, self.serial.as_deref()),
        ];
        for (pointer, text) in strings {
            let Some(text) = text.filter(|t| !t.is_empty()) else {
                continue;
            };
            if end - at < 4 {
                break;
            }
            let units: Vec<u16> = text.encode_utf16().collect();
            let room = (end - at).saturating_sub(2) / 2;
            let units = &units[..units.len().min(room)];
            let length = 2 + 2 * units.len();
            // The FTDI tools set bit 7 of the offset; it is masked on reading.
            bytes[pointer] = 0x80 | at as u8;
            bytes[pointer + 1] = length as u8;
            bytes[at] = length as u8;
            bytes[at + 1] = STRING_DESCRIPTOR;
            for (i, u) in units.iter().enumerate() {
                bytes[at + 2 + 2 * i..at + 4 + 2 * i].copy_from_slice(&u.to_le_bytes());
            }
            at += length;
        }
        let mut words = [0u16; EEPROM_WORDS_93C46];
        for (w, pair) in words.iter_mut().zip(bytes.chunks_exact(2)) {
            *w = u16::from_le_bytes([pair[0], pair[1]]);
        }
        words[EEPROM_WORDS_93C46 - 1] = checksum(&words[..EEPROM_WORDS_93C46 - 1]);
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ft232r() -> EepromImage {
        EepromImage::new(0x0403, 0x6001, 0x0600)
            .strings("FTDI", "FT232R USB UART")
            .serial(Some("FT1ABCDE"))
    }

    #[test]
    fn an_image_decodes_to_what_was_put_in() {
        let e = Eeprom::decode(&ft232r().words()).unwrap();
        assert_eq!(
            (e.vendor_id, e.product_id, e.release),
            (0x0403, 0x6001, 0x0600)
        );
        assert_eq!(e.manufacturer.as_deref(), Some("FTDI"));
        assert_eq!(e.product.as_deref(), Some("FT232R USB UART"));
        assert_eq!(e.serial.as_deref(), Some("FT1ABCDE"));
        assert_eq!(e.max_power_ma, 90);
        assert!(!e.self_powered && !e.remote_wakeup);
        assert!(e.checksum_ok);
        assert_eq!(e.size_bytes, 128);
    }

    #[test]
    fn a_changed_word_fails_the_checksum() {
        let mut words = ft232r().words();
        words[2] ^= 1;
        let e = Eeprom::decode(&words).unwrap();
        assert!(!e.checksum_ok);
        assert_eq!(e.product_id, 0x6000);
    }

    #[test]
    fn no_serial_and_blank_and_bad_pointers() {
        let e = Eeprom::decode(&ft232r().serial(None).words()).unwrap();
        assert_eq!(e.serial, None);
        assert_eq!(Eeprom::decode(&[0xFFFF; 64]), Err(EepromError::Blank));
        assert_eq!(
            Eeprom::decode(&[0; 10]),
            Err(EepromError::Size { words: 10 })
        );
        let mut words = ft232r().words();
        // The product string's length now runs past the end of the image.
        words[0x10 / 2] = 0x7E | (0x40 << 8);
        assert!(matches!(
            Eeprom::decode(&words),
            Err(EepromError::BadString {
                which: "product",
                ..
            })
        ));
    }

    #[test]
    fn long_strings_are_cut_to_fit() {
        let long = "x".repeat(200);
        let e = Eeprom::decode(&ft232r().strings(&long, &long).words()).unwrap();
        assert!(e.checksum_ok);
        let total: usize = [&e.manufacturer, &e.product, &e.serial]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| 2 + 2 * s.len()))
            .sum();
        assert!(total <= 128 - STRINGS_START - 2, "{total}");
    }
}
