//! Serial line configuration shared by every transport: character framing
//! and flow control.
//!
//! These are plain values; [`ControlRequest`](super::ControlRequest) turns
//! them into SET_DATA / SET_FLOW_CTRL requests.

use std::fmt;

/// Data bits per character. FTDI UARTs only do 7 or 8 (the kernel: "All FTDI
/// UART chips are limited to CS7/8", docs/ftdi-protocol.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DataBits {
    /// 7 data bits.
    Seven,
    /// 8 data bits.
    #[default]
    Eight,
}

impl DataBits {
    /// The number of bits, as SET_DATA's wValue bits 0-7 carry it.
    pub const fn bits(self) -> u8 {
        match self {
            DataBits::Seven => 7,
            DataBits::Eight => 8,
        }
    }
}

/// Parity bit mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
    /// Parity bit always 1.
    Mark,
    /// Parity bit always 0.
    Space,
}

impl Parity {
    /// The code in SET_DATA's wValue bits 8-10 (docs/ftdi-protocol.md §2).
    pub const fn code(self) -> u16 {
        match self {
            Parity::None => 0,
            Parity::Odd => 1,
            Parity::Even => 2,
            Parity::Mark => 3,
            Parity::Space => 4,
        }
    }

    /// Inverse of [`Parity::code`]; `None` for the undefined codes 5..=7.
    pub const fn from_code(code: u16) -> Option<Parity> {
        match code {
            0 => Some(Parity::None),
            1 => Some(Parity::Odd),
            2 => Some(Parity::Even),
            3 => Some(Parity::Mark),
            4 => Some(Parity::Space),
            _ => None,
        }
    }

    /// The conventional one-letter name (`N`, `O`, `E`, `M`, `S`).
    const fn letter(self) -> &'static str {
        match self {
            Parity::None => "N",
            Parity::Odd => "O",
            Parity::Even => "E",
            Parity::Mark => "M",
            Parity::Space => "S",
        }
    }
}

/// Stop bits per character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StopBits {
    /// One stop bit.
    #[default]
    One,
    /// One and a half stop bits.
    OnePointFive,
    /// Two stop bits.
    Two,
}

impl StopBits {
    /// The code in SET_DATA's wValue bits 11-13 (docs/ftdi-protocol.md §2).
    pub const fn code(self) -> u16 {
        match self {
            StopBits::One => 0,
            StopBits::OnePointFive => 1,
            StopBits::Two => 2,
        }
    }

    /// Inverse of [`StopBits::code`]; `None` for the undefined codes 3..=7.
    pub const fn from_code(code: u16) -> Option<StopBits> {
        match code {
            0 => Some(StopBits::One),
            1 => Some(StopBits::OnePointFive),
            2 => Some(StopBits::Two),
            _ => None,
        }
    }

    /// Length in half bits (2, 3 or 4), so 1.5 stays an integer.
    const fn half_bits(self) -> u32 {
        match self {
            StopBits::One => 2,
            StopBits::OnePointFive => 3,
            StopBits::Two => 4,
        }
    }
}

/// Character framing: data bits, parity and stop bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LineProperties {
    /// Data bits per character.
    pub data_bits: DataBits,
    /// Parity mode.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
}

impl LineProperties {
    /// Line properties from their three parts.
    pub const fn new(data_bits: DataBits, parity: Parity, stop_bits: StopBits) -> LineProperties {
        LineProperties {
            data_bits,
            parity,
            stop_bits,
        }
    }

    /// 8 data bits, no parity, 1 stop bit: the default almost everywhere.
    pub const EIGHT_N_ONE: LineProperties = LineProperties {
        data_bits: DataBits::Eight,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };

    /// Length of one character on the wire, in half bit times: start bit +
    /// data + parity + stop (8N1 = 20, 8E2 = 24, 7N1.5 = 19).
    ///
    /// Half bits because 1.5 stop bits must not be rounded: deadline and
    /// throughput arithmetic multiplies this by the bit time.
    pub const fn frame_half_bits(self) -> u32 {
        let start = 2;
        let data = 2 * self.data_bits.bits() as u32;
        let parity = match self.parity {
            Parity::None => 0,
            _ => 2,
        };
        start + data + parity + self.stop_bits.half_bits()
    }
}

impl fmt::Display for LineProperties {
    /// The conventional short form: `8N1`, `7E2`, `8N1.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stop = match self.stop_bits {
            StopBits::One => "1",
            StopBits::OnePointFive => "1.5",
            StopBits::Two => "2",
        };
        write!(
            f,
            "{}{}{}",
            self.data_bits.bits(),
            self.parity.letter(),
            stop
        )
    }
}

/// Flow control, performed by the chip itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FlowControl {
    /// No flow control.
    #[default]
    None,
    /// Hardware handshake on RTS#/CTS#.
    RtsCts,
    /// Hardware handshake on DTR#/DSR#.
    DtrDsr,
    /// Software flow control with the given XON and XOFF characters.
    XonXoff {
        /// The character that resumes transmission.
        xon: u8,
        /// The character that pauses transmission.
        xoff: u8,
    },
}

impl FlowControl {
    /// XON/XOFF with the customary DC1 (0x11) / DC3 (0x13) characters.
    pub const XON_XOFF: FlowControl = FlowControl::XonXoff {
        xon: 0x11,
        xoff: 0x13,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(data_bits: DataBits, parity: Parity, stop_bits: StopBits) -> LineProperties {
        LineProperties::new(data_bits, parity, stop_bits)
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(LineProperties::EIGHT_N_ONE.frame_half_bits(), 20);
        assert_eq!(LineProperties::default(), LineProperties::EIGHT_N_ONE);
        assert_eq!(
            lp(DataBits::Eight, Parity::Even, StopBits::Two).frame_half_bits(),
            24
        );
        assert_eq!(
            lp(DataBits::Seven, Parity::None, StopBits::OnePointFive).frame_half_bits(),
            19
        );
        assert_eq!(
            lp(DataBits::Seven, Parity::Mark, StopBits::One).frame_half_bits(),
            20
        );
    }

    #[test]
    fn display() {
        assert_eq!(LineProperties::EIGHT_N_ONE.to_string(), "8N1");
        assert_eq!(
            lp(DataBits::Seven, Parity::Even, StopBits::Two).to_string(),
            "7E2"
        );
        assert_eq!(
            lp(DataBits::Eight, Parity::None, StopBits::OnePointFive).to_string(),
            "8N1.5"
        );
        assert_eq!(
            lp(DataBits::Eight, Parity::Odd, StopBits::One).to_string(),
            "8O1"
        );
        assert_eq!(
            lp(DataBits::Eight, Parity::Mark, StopBits::One).to_string(),
            "8M1"
        );
        assert_eq!(
            lp(DataBits::Eight, Parity::Space, StopBits::One).to_string(),
            "8S1"
        );
    }

    #[test]
    fn codes_round_trip() {
        for p in [
            Parity::None,
            Parity::Odd,
            Parity::Even,
            Parity::Mark,
            Parity::Space,
        ] {
            assert_eq!(Parity::from_code(p.code()), Some(p));
        }
        for s in [StopBits::One, StopBits::OnePointFive, StopBits::Two] {
            assert_eq!(StopBits::from_code(s.code()), Some(s));
        }
        assert_eq!(Parity::from_code(5), None);
        assert_eq!(StopBits::from_code(3), None);
    }

    #[test]
    fn xon_xoff_default_chars() {
        assert_eq!(
            FlowControl::XON_XOFF,
            FlowControl::XonXoff {
                xon: 0x11,
                xoff: 0x13
            }
        );
        assert_eq!(FlowControl::default(), FlowControl::None);
    }
}
