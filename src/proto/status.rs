//! The two status bytes that open every bulk-IN packet and the
//! GET_MODEM_STATUS reply (docs/ftdi-protocol.md §4.1).

use std::fmt;

/// Byte 0 of a bulk-IN packet: the modem input lines.
///
/// Bits 0-3 are reserved; bit 0 reads as 1 on silicon (the kernel header
/// says it "must be 1" and QEMU sends `lines | 1`; libftdi's doc comment
/// claims 0, which the other sources contradict).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ModemStatus(pub u8);

impl ModemStatus {
    /// Clear To Send.
    pub const CTS: u8 = 0x10;
    /// Data Set Ready.
    pub const DSR: u8 = 0x20;
    /// Ring Indicator.
    pub const RI: u8 = 0x40;
    /// Data Carrier Detect (RLSD).
    pub const DCD: u8 = 0x80;

    /// The reserved bit that silicon always sets.
    const RESERVED_ONE: u8 = 0x01;

    /// CTS is asserted.
    pub const fn cts(self) -> bool {
        self.0 & Self::CTS != 0
    }

    /// DSR is asserted.
    pub const fn dsr(self) -> bool {
        self.0 & Self::DSR != 0
    }

    /// RI is asserted.
    pub const fn ri(self) -> bool {
        self.0 & Self::RI != 0
    }

    /// DCD is asserted.
    pub const fn dcd(self) -> bool {
        self.0 & Self::DCD != 0
    }

    /// Only the four line bits (`& 0xF0`). Compare these, not the raw byte,
    /// to detect line changes: the kernel does the same, since the reserved
    /// bits carry no meaning.
    pub const fn lines(self) -> u8 {
        self.0 & 0xF0
    }

    /// Builds the byte a chip would send for these line levels, including
    /// the reserved bit 0 = 1 that silicon sets.
    pub const fn from_lines(cts: bool, dsr: bool, ri: bool, dcd: bool) -> ModemStatus {
        let mut b = Self::RESERVED_ONE;
        if cts {
            b |= Self::CTS;
        }
        if dsr {
            b |= Self::DSR;
        }
        if ri {
            b |= Self::RI;
        }
        if dcd {
            b |= Self::DCD;
        }
        ModemStatus(b)
    }
}

impl fmt::Display for ModemStatus {
    /// Lists the asserted lines, e.g. `CTS|DSR`, or `-` if none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(
            f,
            self.0,
            &[
                (Self::CTS, "CTS"),
                (Self::DSR, "DSR"),
                (Self::RI, "RI"),
                (Self::DCD, "DCD"),
            ],
        )
    }
}

/// Byte 1 of a bulk-IN packet: the UART line status register.
///
/// The error bits describe the packet they arrive in, not one byte of it
/// (docs/ftdi-protocol.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LineStatus(pub u8);

impl LineStatus {
    /// Data ready.
    pub const DR: u8 = 0x01;
    /// Overrun error: received data was lost before this packet.
    pub const OE: u8 = 0x02;
    /// Parity error.
    pub const PE: u8 = 0x04;
    /// Framing error.
    pub const FE: u8 = 0x08;
    /// Break interrupt.
    pub const BI: u8 = 0x10;
    /// Transmitter holding register empty.
    pub const THRE: u8 = 0x20;
    /// Transmitter empty (holding and shift registers).
    pub const TEMT: u8 = 0x40;
    /// Error in the receiver FIFO.
    pub const FIFO_ERROR: u8 = 0x80;
    /// The receive-error bits `OE|PE|FE|BI` (0x1E), the kernel's
    /// `FTDI_RS_ERR_MASK`. `FIFO_ERROR` is not included, as in the kernel:
    /// it summarises the others rather than adding information.
    pub const ERROR_MASK: u8 = Self::OE | Self::PE | Self::FE | Self::BI;

    /// DR is set.
    pub const fn data_ready(self) -> bool {
        self.0 & Self::DR != 0
    }

    /// OE is set.
    pub const fn overrun(self) -> bool {
        self.0 & Self::OE != 0
    }

    /// PE is set.
    pub const fn parity_error(self) -> bool {
        self.0 & Self::PE != 0
    }

    /// FE is set.
    pub const fn framing_error(self) -> bool {
        self.0 & Self::FE != 0
    }

    /// BI is set.
    pub const fn break_interrupt(self) -> bool {
        self.0 & Self::BI != 0
    }

    /// THRE is set.
    pub const fn thr_empty(self) -> bool {
        self.0 & Self::THRE != 0
    }

    /// TEMT is set: everything written has left the chip.
    pub const fn tx_empty(self) -> bool {
        self.0 & Self::TEMT != 0
    }

    /// The FIFO error bit is set.
    pub const fn fifo_error(self) -> bool {
        self.0 & Self::FIFO_ERROR != 0
    }

    /// Any of [`LineStatus::ERROR_MASK`] is set.
    pub const fn has_error(self) -> bool {
        self.0 & Self::ERROR_MASK != 0
    }
}

impl fmt::Display for LineStatus {
    /// Lists the set flags, e.g. `DR|THRE|TEMT`, or `-` if none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(
            f,
            self.0,
            &[
                (Self::DR, "DR"),
                (Self::OE, "OE"),
                (Self::PE, "PE"),
                (Self::FE, "FE"),
                (Self::BI, "BI"),
                (Self::THRE, "THRE"),
                (Self::TEMT, "TEMT"),
                (Self::FIFO_ERROR, "FIFO_ERROR"),
            ],
        )
    }
}

/// Writes the names of the set flags joined by `|`, or `-` when none is set.
fn write_flags(f: &mut fmt::Formatter<'_>, bits: u8, names: &[(u8, &str)]) -> fmt::Result {
    let mut first = true;
    for &(bit, name) in names {
        if bits & bit != 0 {
            if !first {
                f.write_str("|")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    if first {
        f.write_str("-")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modem_bits() {
        assert_eq!(ModemStatus::CTS, 0x10);
        assert_eq!(ModemStatus::DSR, 0x20);
        assert_eq!(ModemStatus::RI, 0x40);
        assert_eq!(ModemStatus::DCD, 0x80);
        for b in 0..=u8::MAX {
            let m = ModemStatus(b);
            assert_eq!(m.cts(), b & 0x10 != 0);
            assert_eq!(m.dsr(), b & 0x20 != 0);
            assert_eq!(m.ri(), b & 0x40 != 0);
            assert_eq!(m.dcd(), b & 0x80 != 0);
            assert_eq!(m.lines(), b & 0xF0);
            let rebuilt = ModemStatus::from_lines(m.cts(), m.dsr(), m.ri(), m.dcd());
            assert_eq!(rebuilt.0, m.lines() | 0x01);
        }
        assert_eq!(
            ModemStatus::from_lines(false, false, false, false),
            ModemStatus(0x01)
        );
        assert_eq!(
            ModemStatus::from_lines(true, true, true, true),
            ModemStatus(0xF1)
        );
        assert_eq!(
            ModemStatus::from_lines(true, false, false, true),
            ModemStatus(0x91)
        );
    }

    #[test]
    fn line_bits() {
        assert_eq!(LineStatus::ERROR_MASK, 0x1E);
        for b in 0..=u8::MAX {
            let l = LineStatus(b);
            assert_eq!(l.data_ready(), b & 0x01 != 0);
            assert_eq!(l.overrun(), b & 0x02 != 0);
            assert_eq!(l.parity_error(), b & 0x04 != 0);
            assert_eq!(l.framing_error(), b & 0x08 != 0);
            assert_eq!(l.break_interrupt(), b & 0x10 != 0);
            assert_eq!(l.thr_empty(), b & 0x20 != 0);
            assert_eq!(l.tx_empty(), b & 0x40 != 0);
            assert_eq!(l.fifo_error(), b & 0x80 != 0);
            assert_eq!(l.has_error(), b & 0x1E != 0);
        }
        // FIFO_ERROR, DR, THRE and TEMT alone are not receive errors.
        assert!(!LineStatus(0x80 | 0x01 | 0x20 | 0x40).has_error());
    }

    #[test]
    fn display_lists_flags() {
        assert_eq!(ModemStatus(0x01).to_string(), "-");
        assert_eq!(ModemStatus(0x31).to_string(), "CTS|DSR");
        assert_eq!(ModemStatus(0xF0).to_string(), "CTS|DSR|RI|DCD");
        assert_eq!(LineStatus(0).to_string(), "-");
        assert_eq!(LineStatus(0x60).to_string(), "THRE|TEMT");
        assert_eq!(
            LineStatus(0xFF).to_string(),
            "DR|OE|PE|FE|BI|THRE|TEMT|FIFO_ERROR"
        );
    }
}
