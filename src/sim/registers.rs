//! The simulated chip's configuration registers and how it answers control
//! requests: the same requests a host sends to silicon, decoded by
//! [`ControlRequest::decode`], kept as chip state, and STALLed where a real
//! chip would refuse them.

use crate::proto::{
    Chip, ControlRequest, Divisor, EEPROM_WORDS_93C46, EepromImage, FlowControl, Interface,
    LineProperties, Request, baud_divisor, decode_divisor,
};

/// The serial number in the simulated chip's EEPROM.
pub const SIM_SERIAL: &str = "FTSIM001";

/// The simulated chip's settings, as the host last set them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipState {
    /// SET_BAUDRATE wValue as received.
    pub baud_value: u16,
    /// SET_BAUDRATE wIndex as received.
    pub baud_index: u16,
    /// The divisor the chip decoded from them.
    pub divisor: Divisor,
    /// The baud rate the UART runs at (rounded).
    pub baud: u32,
    /// Data bits, parity, stop bits.
    pub line: LineProperties,
    /// TX held low (break).
    pub break_on: bool,
    /// Flow control mode.
    pub flow: FlowControl,
    /// DTR output.
    pub dtr: bool,
    /// RTS output.
    pub rts: bool,
    /// Latency timer in ms (16 at power-on, as on silicon).
    pub latency_timer_ms: u8,
    /// Event character, if enabled.
    pub event_char: Option<u8>,
    /// Error character, if enabled (stored, not applied: see the module docs).
    pub error_char: Option<u8>,
    /// Bit mode (0 = UART).
    pub bitmode: u8,
    /// How many RESET requests arrived.
    pub resets: u32,
    /// The configuration EEPROM (read-only: READ_EEPROM answers from it,
    /// writes are not modelled).
    pub(crate) eeprom: [u16; EEPROM_WORDS_93C46],
}

/// The EEPROM a chip of this family leaves the factory with (FTDI's IDs
/// and strings; the FT232R's internal 93C46 layout for every family),
/// with [`SIM_SERIAL`] as its serial number.
fn factory_eeprom(chip: Chip) -> [u16; EEPROM_WORDS_93C46] {
    let (pid, product) = match chip {
        Chip::Ft232R => (0x6001, "FT232R USB UART"),
        Chip::Ft2232H => (0x6010, "Dual RS232-HS"),
        Chip::Ft4232H => (0x6011, "Quad RS232-HS"),
        Chip::Ft232H => (0x6014, "Single RS232-HS"),
        _ => (0x6001, chip.name()),
    };
    EepromImage::new(0x0403, pid, chip.bcd_device())
        .strings("FTDI", product)
        .serial(Some(SIM_SERIAL))
        .words()
}

impl ChipState {
    /// The state after power-on: 9600 Bd 8N1, no flow control, DTR/RTS low,
    /// latency timer 16 ms, event and error characters off.
    pub(crate) fn power_on(chip: Chip) -> ChipState {
        let (value, index) = match baud_divisor(chip, Interface::A, 9600) {
            Ok(d) => (d.value, d.index),
            // 9600 Bd is exact on every FTDI clock; keep a sane fallback anyway.
            Err(_) => (0x4138, 0),
        };
        let divisor = decode_divisor(chip, value, index).unwrap_or(Divisor {
            base_hz: 3_000_000,
            eighths: 2500,
        });
        ChipState {
            baud_value: value,
            baud_index: index,
            divisor,
            baud: divisor.actual(),
            line: LineProperties::EIGHT_N_ONE,
            break_on: false,
            flow: FlowControl::None,
            dtr: false,
            rts: false,
            latency_timer_ms: 16,
            event_char: None,
            error_char: None,
            bitmode: 0,
            resets: 0,
            eeprom: factory_eeprom(chip),
        }
    }
}

/// What a handled request means for the rest of the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing beyond the register change.
    None,
    /// Empty the UART-to-USB FIFO.
    PurgeRx,
    /// Empty the USB-to-UART FIFO.
    PurgeTx,
    /// RESET: purge both and re-read the registers.
    Reset,
    /// Character timing changed (baud or line settings).
    Timing,
    /// DTR or RTS changed.
    ModemControl,
    /// Answer a POLL_MODEM_STATUS with the engine's live status.
    PollModemStatus,
    /// Answer an IN request with these bytes.
    Reply([u8; 2], usize),
}

/// The chip STALLs the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stall;

/// Which port numbers reach the modelled interface, which reach another real
/// interface of the chip (accepted, not modelled), and which do not exist.
enum Target {
    Modelled,
    OtherInterface,
}

fn target(chip: Chip, modelled: Interface, port: u8) -> Result<Target, Stall> {
    // Port 0 is the legacy single-channel form the kernel uses for AM/BM/R.
    if port == 0 || u16::from(port) == modelled.port() {
        Ok(Target::Modelled)
    } else if port <= chip.channels() {
        Ok(Target::OtherInterface)
    } else {
        Err(Stall)
    }
}

impl ChipState {
    /// Applies one control request. Requests the chip does not know, and
    /// values it does not support, STALL.
    pub(crate) fn handle(
        &mut self,
        chip: Chip,
        modelled: Interface,
        request: &ControlRequest,
    ) -> Result<Effect, Stall> {
        let decoded = request.decode().map_err(|_| Stall)?;
        if let Request::ReadEeprom { word } = decoded {
            // A 93C46 has 6 address bits: higher ones are not wired.
            let value = self.eeprom[usize::from(word) % EEPROM_WORDS_93C46];
            return Ok(Effect::Reply(value.to_le_bytes(), 2));
        }
        let port = match decoded {
            Request::Reset { port }
            | Request::PurgeRx { port }
            | Request::PurgeTx { port }
            | Request::ModemControl { port, .. }
            | Request::FlowControl { port, .. }
            | Request::LineProperties { port, .. }
            | Request::PollModemStatus { port }
            | Request::EventChar { port, .. }
            | Request::ErrorChar { port, .. }
            | Request::SetLatencyTimer { port, .. }
            | Request::GetLatencyTimer { port }
            | Request::SetBitmode { port, .. }
            | Request::ReadPins { port } => port,
            Request::ReadEeprom { .. } => 0,
            Request::BaudRate { index, .. } => {
                if chip.has_channel_byte() {
                    (index & 0xFF) as u8
                } else {
                    0
                }
            }
        };
        if let Target::OtherInterface = target(chip, modelled, port)? {
            return Ok(match decoded {
                Request::PollModemStatus { .. } => Effect::Reply([0x01, 0x60], 2),
                Request::GetLatencyTimer { .. } => Effect::Reply([16, 0], 1),
                _ => Effect::None,
            });
        }
        Ok(match decoded {
            Request::Reset { .. } => {
                // Per the SIO reset semantics: flow control off, event char
                // disabled, both FIFOs purged, DTR and RTS cleared; baud and
                // data format are kept.
                self.flow = FlowControl::None;
                self.event_char = None;
                self.dtr = false;
                self.rts = false;
                self.resets += 1;
                Effect::Reset
            }
            Request::PurgeRx { .. } => Effect::PurgeRx,
            Request::PurgeTx { .. } => Effect::PurgeTx,
            Request::ModemControl { dtr, rts, .. } => {
                if let Some(dtr) = dtr {
                    self.dtr = dtr;
                }
                // With RTS/CTS on, the chip drives RTS itself and ignores the host.
                if let (Some(rts), false) = (rts, self.flow == FlowControl::RtsCts) {
                    self.rts = rts;
                }
                Effect::ModemControl
            }
            Request::FlowControl { flow, .. } => {
                self.flow = flow;
                Effect::None
            }
            Request::BaudRate { value, index } => {
                let divisor = decode_divisor(chip, value, index).map_err(|_| Stall)?;
                self.baud_value = value;
                self.baud_index = index;
                self.divisor = divisor;
                self.baud = divisor.actual();
                Effect::Timing
            }
            Request::LineProperties { line, break_on, .. } => {
                self.line = line;
                self.break_on = break_on;
                Effect::Timing
            }
            Request::PollModemStatus { .. } => Effect::PollModemStatus,
            Request::EventChar { ch, .. } => {
                self.event_char = ch;
                Effect::None
            }
            Request::ErrorChar { ch, .. } => {
                self.error_char = ch;
                Effect::None
            }
            Request::SetLatencyTimer { ms, .. } => {
                // The AM has no latency timer; 0 ms is outside the chip's range.
                if !chip.has_latency_timer() || ms == 0 {
                    return Err(Stall);
                }
                self.latency_timer_ms = ms;
                Effect::None
            }
            Request::GetLatencyTimer { .. } => {
                if !chip.has_latency_timer() {
                    return Err(Stall);
                }
                Effect::Reply([self.latency_timer_ms, 0], 1)
            }
            Request::SetBitmode { mode, .. } => {
                // Back to UART is accepted by every chip with bit modes; the
                // bit-bang and MPSSE modes themselves are not modelled.
                if mode != 0 || chip == Chip::Am {
                    return Err(Stall);
                }
                self.bitmode = 0;
                Effect::None
            }
            // Not modelled.
            _ => return Err(Stall),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DataBits, Parity, StopBits};

    fn r() -> ChipState {
        ChipState::power_on(Chip::Ft232R)
    }

    #[test]
    fn power_on_matches_silicon_defaults() {
        let s = r();
        assert_eq!(s.latency_timer_ms, 16);
        assert_eq!(s.baud, 9600);
        assert_eq!(s.line, LineProperties::EIGHT_N_ONE);
        assert_eq!((s.dtr, s.rts, s.event_char), (false, false, None));
    }

    #[test]
    fn baud_is_decoded_as_the_chip_would() {
        let mut s = r();
        let (req, div) = ControlRequest::baud_rate(Chip::Ft232R, Interface::A, 115_200).unwrap();
        assert_eq!(
            s.handle(Chip::Ft232R, Interface::A, &req),
            Ok(Effect::Timing)
        );
        assert_eq!(s.baud, div.actual);
        assert_eq!(s.baud, 115_385);
    }

    #[test]
    fn requests_a_chip_refuses_stall() {
        let mut s = ChipState::power_on(Chip::Am);
        let lat = ControlRequest::set_latency_timer(Interface::A, 1).unwrap();
        assert_eq!(
            s.handle(Chip::Am, Interface::A, &lat),
            Err(Stall),
            "AM has no latency timer"
        );
        let mut s = r();
        let mut zero = lat;
        zero.value = 0;
        assert_eq!(s.handle(Chip::Ft232R, Interface::A, &zero), Err(Stall));
        let bogus = ControlRequest {
            request_type: 0x40,
            request: 0x42,
            value: 0,
            index: 1,
            length: 0,
        };
        assert_eq!(s.handle(Chip::Ft232R, Interface::A, &bogus), Err(Stall));
        let port3 = ControlRequest::reset(Interface::C);
        assert_eq!(
            s.handle(Chip::Ft232R, Interface::A, &port3),
            Err(Stall),
            "no channel C on an R"
        );
        assert_eq!(
            s.handle(Chip::Ft4232H, Interface::A, &port3),
            Ok(Effect::None),
            "channel C exists on a 4232H but is not modelled"
        );
    }

    #[test]
    fn the_eeprom_reads_back_word_by_word() {
        let mut s = r();
        let words: Vec<u16> = (0..EEPROM_WORDS_93C46 as u16)
            .map(
                |w| match s.handle(Chip::Ft232R, Interface::A, &ControlRequest::read_eeprom(w)) {
                    Ok(Effect::Reply(b, 2)) => u16::from_le_bytes(b),
                    other => panic!("word {w}: {other:?}"),
                },
            )
            .collect();
        let e = crate::proto::Eeprom::decode(&words).unwrap();
        assert_eq!(e.serial.as_deref(), Some(SIM_SERIAL));
        assert_eq!(e.product.as_deref(), Some("FT232R USB UART"));
        assert!(e.checksum_ok);
    }

    #[test]
    fn line_flow_chars_and_reset() {
        let mut s = r();
        let line = LineProperties {
            data_bits: DataBits::Seven,
            parity: Parity::Even,
            stop_bits: StopBits::Two,
        };
        let c = Chip::Ft232R;
        let a = Interface::A;
        s.handle(c, a, &ControlRequest::line_properties(a, line, true))
            .unwrap();
        s.handle(
            c,
            a,
            &ControlRequest::flow_control(a, FlowControl::XON_XOFF),
        )
        .unwrap();
        s.handle(c, a, &ControlRequest::event_char(a, Some(b'\n')))
            .unwrap();
        s.handle(c, a, &ControlRequest::error_char(a, Some(b'?')))
            .unwrap();
        s.handle(
            c,
            a,
            &ControlRequest::modem_control(a, Some(true), Some(true)),
        )
        .unwrap();
        assert_eq!(
            (s.line, s.break_on, s.flow),
            (line, true, FlowControl::XON_XOFF)
        );
        assert_eq!(
            (s.event_char, s.error_char, s.dtr, s.rts),
            (Some(b'\n'), Some(b'?'), true, true)
        );
        assert_eq!(s.handle(c, a, &ControlRequest::reset(a)), Ok(Effect::Reset));
        assert_eq!(
            (s.flow, s.event_char, s.dtr, s.rts),
            (FlowControl::None, None, false, false)
        );
        assert_eq!(s.line, line, "reset keeps the data format");
    }
}
