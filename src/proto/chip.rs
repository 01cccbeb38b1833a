//! FTDI chip families and the per-family facts the driver depends on.
//!
//! Everything here is keyed on the chip *family*, which is identified by the
//! device descriptor's `bcdDevice`, never by the PID (PIDs are EEPROM-
//! programmable; docs/ftdi-protocol.md §1).

use std::fmt;

use super::interface::Interface;

/// An FTDI USB-UART chip family.
///
/// Non-exhaustive because FTDI keeps shipping families (the HP and HA parts
/// arrived long after libftdi's chip list froze).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chip {
    /// FT232AM / FT245AM: restricted baud fractions, no latency timer.
    Am,
    /// FT232BM / FT245BM.
    Bm,
    /// FT2232C/D: two full-speed channels.
    Ft2232C,
    /// FT232R / FT245R.
    Ft232R,
    /// FT2232H: two high-speed channels.
    Ft2232H,
    /// FT4232H: four high-speed channels.
    Ft4232H,
    /// FT232H: one high-speed channel.
    Ft232H,
    /// FT-X series (FT201X, FT230X, FT231X, FT234XD, ...).
    FtX,
    /// FT2233HP (USB-C PD, two channels).
    Ft2233Hp,
    /// FT4233HP (USB-C PD, four channels).
    Ft4233Hp,
    /// FT2232HP (two channels).
    Ft2232Hp,
    /// FT4232HP (four channels).
    Ft4232Hp,
    /// FT233HP (USB-C PD, one channel).
    Ft233Hp,
    /// FT232HP (one channel).
    Ft232Hp,
    /// FT4232HA (automotive, four channels).
    Ft4232HA,
}

impl Chip {
    /// Every variant, in `bcdDevice` order, for tests and property loops.
    pub const ALL: &'static [Chip] = &[
        Chip::Am,
        Chip::Bm,
        Chip::Ft2232C,
        Chip::Ft232R,
        Chip::Ft2232H,
        Chip::Ft4232H,
        Chip::Ft232H,
        Chip::FtX,
        Chip::Ft2233Hp,
        Chip::Ft4233Hp,
        Chip::Ft2232Hp,
        Chip::Ft4232Hp,
        Chip::Ft233Hp,
        Chip::Ft232Hp,
        Chip::Ft4232HA,
    ];

    /// Identifies the family from the device descriptor.
    ///
    /// The table is the Linux driver's `ftdi_determine_type()` (the most
    /// complete one; docs/ftdi-protocol.md §1, §9.1). An FT232BM whose EEPROM has
    /// `iSerialNumber == 0` reports `bcdDevice` 0x0200 like an AM; libftdi
    /// resolves that ambiguity by calling it a BM, and so do we. (The kernel
    /// additionally probes the latency timer, which an AM lacks; a transport
    /// that wants that extra certainty can do the probe itself.)
    ///
    /// Returns `None` for anything else, including the pre-AM SIO
    /// (`bcdDevice` < 0x0200), which speaks a different protocol.
    pub fn detect(bcd_device: u16, i_serial_number: u8) -> Option<Chip> {
        Some(match bcd_device {
            0x0200 if i_serial_number == 0 => Chip::Bm,
            0x0200 => Chip::Am,
            0x0400 => Chip::Bm,
            0x0500 => Chip::Ft2232C,
            0x0600 => Chip::Ft232R,
            0x0700 => Chip::Ft2232H,
            0x0800 => Chip::Ft4232H,
            0x0900 => Chip::Ft232H,
            0x1000 => Chip::FtX,
            0x2800 => Chip::Ft2233Hp,
            0x2900 => Chip::Ft4233Hp,
            0x3000 => Chip::Ft2232Hp,
            0x3100 => Chip::Ft4232Hp,
            0x3200 => Chip::Ft233Hp,
            0x3300 => Chip::Ft232Hp,
            0x3600 => Chip::Ft4232HA,
            _ => return None,
        })
    }

    /// The marketing name of the family ("FT232R", "FT-X", ...).
    pub const fn name(self) -> &'static str {
        match self {
            Chip::Am => "FT232AM",
            Chip::Bm => "FT232BM",
            Chip::Ft2232C => "FT2232C",
            Chip::Ft232R => "FT232R",
            Chip::Ft2232H => "FT2232H",
            Chip::Ft4232H => "FT4232H",
            Chip::Ft232H => "FT232H",
            Chip::FtX => "FT-X",
            Chip::Ft2233Hp => "FT2233HP",
            Chip::Ft4233Hp => "FT4233HP",
            Chip::Ft2232Hp => "FT2232HP",
            Chip::Ft4232Hp => "FT4232HP",
            Chip::Ft233Hp => "FT233HP",
            Chip::Ft232Hp => "FT232HP",
            Chip::Ft4232HA => "FT4232HA",
        }
    }

    /// The canonical `bcdDevice` of the family (docs/ftdi-protocol.md §1).
    ///
    /// For [`Chip::Bm`] this is 0x0400; the 0x0200 alias of a BM without a
    /// serial number is handled by [`Chip::detect`].
    pub const fn bcd_device(self) -> u16 {
        match self {
            Chip::Am => 0x0200,
            Chip::Bm => 0x0400,
            Chip::Ft2232C => 0x0500,
            Chip::Ft232R => 0x0600,
            Chip::Ft2232H => 0x0700,
            Chip::Ft4232H => 0x0800,
            Chip::Ft232H => 0x0900,
            Chip::FtX => 0x1000,
            Chip::Ft2233Hp => 0x2800,
            Chip::Ft4233Hp => 0x2900,
            Chip::Ft2232Hp => 0x3000,
            Chip::Ft4232Hp => 0x3100,
            Chip::Ft233Hp => 0x3200,
            Chip::Ft232Hp => 0x3300,
            Chip::Ft4232HA => 0x3600,
        }
    }

    /// Number of UART channels (= USB interfaces): 1, 2 or 4.
    ///
    /// HP/HA counts follow the part names (docs/ftdi-protocol.md §1 notes the
    /// kernel's PID comments for 0x6044/0x6045 look like a copy-paste slip).
    pub const fn channels(self) -> u8 {
        match self {
            Chip::Am | Chip::Bm | Chip::Ft232R | Chip::Ft232H | Chip::FtX => 1,
            Chip::Ft233Hp | Chip::Ft232Hp => 1,
            Chip::Ft2232C | Chip::Ft2232H | Chip::Ft2233Hp | Chip::Ft2232Hp => 2,
            Chip::Ft4232H | Chip::Ft4233Hp | Chip::Ft4232Hp | Chip::Ft4232HA => 4,
        }
    }

    /// True for the USB 2.0 high-speed parts (H, HP and HA).
    ///
    /// These are also the parts with the 120 MHz baud clock, which is why
    /// the baud code keys the 12 MHz divisor base on this.
    pub const fn is_high_speed(self) -> bool {
        !matches!(
            self,
            Chip::Am | Chip::Bm | Chip::Ft2232C | Chip::Ft232R | Chip::FtX
        )
    }

    /// The UART baud clock: 120 MHz on high-speed parts, else 48 MHz
    /// (the kernel's "Hi-speed - baud clock runs at 120MHz", §1).
    pub const fn baud_clock_hz(self) -> u32 {
        if self.is_high_speed() {
            120_000_000
        } else {
            48_000_000
        }
    }

    /// The fastest rate the chip can generate: divisor 1 on the fastest
    /// divisor base, i.e. 3 MBd (48 MHz / 16) or 12 MBd (120 MHz / 10).
    pub const fn max_baud_rate(self) -> u32 {
        if self.is_high_speed() {
            12_000_000
        } else {
            3_000_000
        }
    }

    /// The bulk endpoints' wMaxPacketSize when the chip runs at its native
    /// speed: 512 for high-speed parts, 64 for full-speed parts.
    ///
    /// Only a fallback: an H part on a full-speed port uses 64, and an EEPROM
    /// can misprogram it, so a transport must read the endpoint descriptor
    /// (docs/ftdi-protocol.md §1, "Max packet size").
    pub const fn default_max_packet_size(self) -> usize {
        if self.is_high_speed() { 512 } else { 64 }
    }

    /// Bytes the chip buffers from the UART before the host reads them;
    /// once full, further received bytes are lost (an overrun, `OE`).
    ///
    /// FTDI datasheets name these buffers inconsistently (pyftdi's
    /// `FIFO_SIZES` comment: "the FTDI datasheets contradict themselves"),
    /// some calling the UART-to-host buffer "TX" (the chip transmits to the
    /// host) and some "RX" (the UART receives into it). The figures here are
    /// the UART-to-host direction as we read them. The HP parts have no
    /// published figure; they are assumed to match the FT4232H (2 KiB).
    pub const fn uart_to_usb_fifo(self) -> usize {
        match self {
            Chip::Am => 128,
            Chip::Bm | Chip::Ft2232C => 384,
            Chip::Ft232R => 256,
            Chip::Ft2232H => 4096,
            Chip::Ft4232H => 2048,
            Chip::Ft232H => 1024,
            Chip::FtX => 512,
            // No published figure for HP parts: assumed like the FT4232H.
            Chip::Ft2233Hp
            | Chip::Ft4233Hp
            | Chip::Ft2232Hp
            | Chip::Ft4232Hp
            | Chip::Ft233Hp
            | Chip::Ft232Hp => 2048,
            Chip::Ft4232HA => 2048,
        }
    }

    /// Bytes the chip accepts from USB before it NAKs bulk OUT.
    ///
    /// Same caveat as [`Chip::uart_to_usb_fifo`]: the datasheets contradict
    /// themselves about which buffer is which, and HP parts are assumed to
    /// match the FT4232H.
    pub const fn usb_to_uart_fifo(self) -> usize {
        match self {
            Chip::Am | Chip::Bm | Chip::Ft2232C | Chip::Ft232R => 128,
            Chip::Ft2232H => 4096,
            Chip::Ft4232H => 2048,
            Chip::Ft232H => 1024,
            Chip::FtX => 512,
            // No published figure for HP parts: assumed like the FT4232H.
            Chip::Ft2233Hp
            | Chip::Ft4233Hp
            | Chip::Ft2232Hp
            | Chip::Ft4232Hp
            | Chip::Ft233Hp
            | Chip::Ft232Hp => 2048,
            Chip::Ft4232HA => 2048,
        }
    }

    /// Whether SET/GET_LATENCY_TIMER work: every family except the AM
    /// (AN232B-04 lists R, C and BM; the kernel refuses it on SIO/AM, §5).
    pub const fn has_latency_timer(self) -> bool {
        !matches!(self, Chip::Am)
    }

    /// Whether the SET_BAUDRATE wIndex carries the channel in its low byte,
    /// i.e. `wIndex = (hi << 8) | port` rather than `wIndex = hi`.
    ///
    /// This follows the Linux driver since 6.1 (`priv->channel != 0`,
    /// docs/ftdi-protocol.md §3.1): FT2232C, FT-X and every H/HP/HA part. libftdi
    /// differs for FT2232C and FT-X (it sends plain `hi`); the kernel commit
    /// a146cc4d notes FT-X accepts either selector.
    pub const fn has_channel_byte(self) -> bool {
        !matches!(self, Chip::Am | Chip::Bm | Chip::Ft232R)
    }

    /// The channels this chip has, `A` up to [`Chip::channels`].
    pub fn interfaces(self) -> &'static [Interface] {
        let all: &'static [Interface; 4] = &Interface::ALL;
        match self.channels() {
            1 => &all[..1],
            2 => &all[..2],
            _ => &all[..],
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_round_trips_every_family() {
        for &chip in Chip::ALL {
            // A nonzero iSerialNumber so the 0x0200 BM alias does not apply.
            assert_eq!(Chip::detect(chip.bcd_device(), 3), Some(chip), "{chip}");
        }
    }

    #[test]
    fn bm_without_serial_number_reports_0x0200() {
        assert_eq!(Chip::detect(0x0200, 0), Some(Chip::Bm));
        assert_eq!(Chip::detect(0x0200, 1), Some(Chip::Am));
        assert_eq!(Chip::detect(0x0400, 0), Some(Chip::Bm));
    }

    #[test]
    fn unknown_bcd_device_is_none() {
        for bcd in [
            0x0000, 0x0100, 0x01ff, 0x0300, 0x0a00, 0x2700, 0x3400, 0x3700, 0xffff,
        ] {
            assert_eq!(Chip::detect(bcd, 1), None, "{bcd:#06x}");
        }
    }

    #[test]
    fn all_is_complete_and_distinct() {
        assert_eq!(Chip::ALL.len(), 15);
        for (i, a) in Chip::ALL.iter().enumerate() {
            for b in &Chip::ALL[i + 1..] {
                assert_ne!(a, b);
                assert_ne!(a.bcd_device(), b.bcd_device());
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn per_family_facts() {
        for &chip in Chip::ALL {
            let hs = chip.is_high_speed();
            assert_eq!(
                chip.baud_clock_hz(),
                if hs { 120_000_000 } else { 48_000_000 }
            );
            assert_eq!(chip.default_max_packet_size(), if hs { 512 } else { 64 });
            assert_eq!(chip.interfaces().len(), usize::from(chip.channels()));
            assert_eq!(chip.interfaces()[0], Interface::A);
            assert_eq!(chip.to_string(), chip.name());
            assert!(chip.uart_to_usb_fifo() >= 128 && chip.usb_to_uart_fifo() >= 128);
            if hs {
                assert!(chip.has_channel_byte(), "{chip}");
            }
        }
        assert!(!Chip::Am.has_latency_timer());
        assert!(Chip::Bm.has_latency_timer());
        assert!(!Chip::Ft232R.has_channel_byte());
        assert!(Chip::Ft2232C.has_channel_byte());
        assert!(Chip::FtX.has_channel_byte());
        assert_eq!(Chip::Ft4232HA.channels(), 4);
        assert_eq!(Chip::Ft232Hp.channels(), 1);
        assert_eq!(Chip::FtX.name(), "FT-X");
        assert_eq!(Chip::Ft232R.uart_to_usb_fifo(), 256);
        assert_eq!(Chip::Ft232R.usb_to_uart_fifo(), 128);
    }
}
