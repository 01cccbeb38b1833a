//! UART channels (USB interfaces) and their endpoint/port numbering.

use std::fmt;
use std::str::FromStr;

/// One UART channel of a chip. Single-channel chips only have `A`.
///
/// The numbering is fixed across all families (docs/ftdi-protocol.md §1,
/// "Endpoints and wIndex per channel"): channel A is USB interface 0 with
/// bulk IN 0x81 / OUT 0x02, and is addressed as port 1 in vendor requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Interface {
    /// Channel A (interface 0, port 1). The only one on single-channel chips.
    #[default]
    A,
    /// Channel B (interface 1, port 2).
    B,
    /// Channel C (interface 2, port 3); four-channel chips only.
    C,
    /// Channel D (interface 3, port 4); four-channel chips only.
    D,
}

impl Interface {
    /// All four channels in order.
    pub const ALL: [Interface; 4] = [Interface::A, Interface::B, Interface::C, Interface::D];

    /// The USB interface number, 0..=3.
    pub const fn number(self) -> u8 {
        match self {
            Interface::A => 0,
            Interface::B => 1,
            Interface::C => 2,
            Interface::D => 3,
        }
    }

    /// The bulk IN (device-to-host) endpoint address: 0x81, 0x83, 0x85, 0x87.
    ///
    /// libftdi and pyftdi name this one `out_ep` (the chip's point of view);
    /// here the name follows USB direction (docs/ftdi-protocol.md §1).
    pub const fn endpoint_in(self) -> u8 {
        0x81 + 2 * self.number()
    }

    /// The bulk OUT (host-to-device) endpoint address: 0x02, 0x04, 0x06, 0x08.
    pub const fn endpoint_out(self) -> u8 {
        0x02 + 2 * self.number()
    }

    /// The channel selector carried in vendor requests' wIndex, 1..=4
    /// (`FTDI_SIO_CHANNEL_A..D`).
    pub const fn port(self) -> u16 {
        self.number() as u16 + 1
    }

    /// The channel with USB interface number `n`, or `None` if `n > 3`.
    pub const fn from_number(n: u8) -> Option<Interface> {
        match n {
            0 => Some(Interface::A),
            1 => Some(Interface::B),
            2 => Some(Interface::C),
            3 => Some(Interface::D),
            _ => None,
        }
    }

    /// The channel letter.
    const fn letter(self) -> &'static str {
        match self {
            Interface::A => "A",
            Interface::B => "B",
            Interface::C => "C",
            Interface::D => "D",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letter())
    }
}

/// Error returned by [`Interface::from_str`] for anything other than a single
/// letter `A`..`D` (either case).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid FTDI interface {0:?}: expected one of A, B, C, D")]
pub struct ParseInterfaceError(pub String);

impl FromStr for Interface {
    type Err = ParseInterfaceError;

    /// Parses `"A"`..`"D"`, case-insensitively. No surrounding whitespace is
    /// accepted: this parses configuration values, and silently trimming
    /// would hide quoting mistakes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "A" | "a" => Ok(Interface::A),
            "B" | "b" => Ok(Interface::B),
            "C" | "c" => Ok(Interface::C),
            "D" | "d" => Ok(Interface::D),
            _ => Err(ParseInterfaceError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering() {
        let expect = [
            (0, 0x81, 0x02, 1),
            (1, 0x83, 0x04, 2),
            (2, 0x85, 0x06, 3),
            (3, 0x87, 0x08, 4),
        ];
        for (i, (n, ep_in, ep_out, port)) in expect.into_iter().enumerate() {
            let itf = Interface::ALL[i];
            assert_eq!(itf.number(), n);
            assert_eq!(itf.endpoint_in(), ep_in);
            assert_eq!(itf.endpoint_out(), ep_out);
            assert_eq!(itf.port(), port);
            assert_eq!(Interface::from_number(n), Some(itf));
        }
        assert_eq!(Interface::from_number(4), None);
        assert_eq!(Interface::from_number(255), None);
        assert_eq!(Interface::default(), Interface::A);
    }

    #[test]
    fn parse_and_display() {
        for itf in Interface::ALL {
            let s = itf.to_string();
            assert_eq!(s.parse::<Interface>(), Ok(itf));
            assert_eq!(s.to_lowercase().parse::<Interface>(), Ok(itf));
        }
        for bad in ["", "E", "AB", " A", "a ", "0", "1", "é"] {
            let err = bad.parse::<Interface>().unwrap_err();
            assert_eq!(err, ParseInterfaceError(bad.to_owned()));
            assert!(err.to_string().contains("A, B, C, D"));
        }
    }
}
