//! Vendor control requests: building them and decoding them back.
//!
//! Every request is vendor type with the *device* as recipient (0x40 OUT,
//! 0xC0 IN); the channel travels only in wIndex (docs/ftdi-protocol.md §2). The
//! port is `interface.port()` (1..=4) on every request, as libftdi sends it,
//! except SET_BAUDRATE whose wIndex also carries divisor bits (§3.1).

use super::baud::{BaudDivisor, BaudError, baud_divisor};
use super::chip::Chip;
use super::interface::Interface;
use super::line::{DataBits, FlowControl, LineProperties, Parity, StopBits};

/// bRequest: reset the channel, or purge one of its FIFOs (by wValue).
pub const SIO_RESET: u8 = 0x00;
/// bRequest: set DTR/RTS.
pub const SIO_MODEM_CTRL: u8 = 0x01;
/// bRequest: set flow control.
pub const SIO_SET_FLOW_CTRL: u8 = 0x02;
/// bRequest: set the baud divisor.
pub const SIO_SET_BAUD_RATE: u8 = 0x03;
/// bRequest: set data bits, parity, stop bits and break.
pub const SIO_SET_DATA: u8 = 0x04;
/// bRequest: read the two status bytes.
pub const SIO_POLL_MODEM_STATUS: u8 = 0x05;
/// bRequest: set the event character.
pub const SIO_SET_EVENT_CHAR: u8 = 0x06;
/// bRequest: set the error replacement character.
pub const SIO_SET_ERROR_CHAR: u8 = 0x07;
/// bRequest: set the latency timer.
pub const SIO_SET_LATENCY_TIMER: u8 = 0x09;
/// bRequest: read the latency timer.
pub const SIO_GET_LATENCY_TIMER: u8 = 0x0A;
/// bRequest: set the bit mode (mode 0 returns to UART).
pub const SIO_SET_BITMODE: u8 = 0x0B;
/// bRequest: read the pins' instantaneous levels.
pub const SIO_READ_PINS: u8 = 0x0C;

/// bmRequestType for host-to-device requests: vendor, device, OUT.
pub const REQUEST_TYPE_OUT: u8 = 0x40;
/// bmRequestType for device-to-host requests: vendor, device, IN.
pub const REQUEST_TYPE_IN: u8 = 0xC0;

/// SIO_RESET wValue: reset the channel.
const RESET_SIO: u16 = 0;
/// SIO_RESET wValue 1: purge the host-to-UART (TX) FIFO. The chip-side name
/// is "PURGE_RX" (the chip receives from USB); libftdi calls it TCOFLUSH.
const RESET_PURGE_TX: u16 = 1;
/// SIO_RESET wValue 2: purge the UART-to-host (RX) FIFO (chip-side
/// "PURGE_TX", libftdi TCIFLUSH).
const RESET_PURGE_RX: u16 = 2;

/// SET_DATA wValue bit 14: hold TX low (break).
const BREAK_BIT: u16 = 1 << 14;
/// Event/error char wValue bit 8: enable the character.
const CHAR_ENABLE: u16 = 1 << 8;

/// SET_FLOW_CTRL wIndex high byte per protocol.
const FLOW_NONE: u16 = 0x00;
const FLOW_RTS_CTS: u16 = 0x01;
const FLOW_DTR_DSR: u16 = 0x02;
const FLOW_XON_XOFF: u16 = 0x04;

/// One USB control transfer's setup packet, with no data stage contents:
/// OUT requests have no data, IN requests read `length` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ControlRequest {
    /// bmRequestType: [`REQUEST_TYPE_OUT`] or [`REQUEST_TYPE_IN`].
    pub request_type: u8,
    /// bRequest, one of the `SIO_*` constants.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
    /// wLength: 0 for OUT requests, the reply size for IN requests.
    pub length: u16,
}

impl ControlRequest {
    /// An OUT request with no data stage.
    const fn out(request: u8, value: u16, index: u16) -> ControlRequest {
        ControlRequest {
            request_type: REQUEST_TYPE_OUT,
            request,
            value,
            index,
            length: 0,
        }
    }

    /// An IN request reading `length` bytes.
    const fn input(request: u8, index: u16, length: u16) -> ControlRequest {
        ControlRequest {
            request_type: REQUEST_TYPE_IN,
            request,
            value: 0,
            index,
            length,
        }
    }

    /// True if the request reads data from the device (bmRequestType bit 7).
    pub const fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }

    /// Reset the channel: flow control off, event char disabled, both FIFOs
    /// purged, DTR/RTS cleared; baud and framing are kept (kernel header).
    pub const fn reset(interface: Interface) -> ControlRequest {
        Self::out(SIO_RESET, RESET_SIO, interface.port())
    }

    /// Discard data the chip has received from the UART but not yet sent to
    /// the host (wValue 2). libftdi's old `purge_rx_buffer` sent 1 and
    /// flushed the other FIFO; the naming is reversed between sources (§2).
    pub const fn purge_rx(interface: Interface) -> ControlRequest {
        Self::out(SIO_RESET, RESET_PURGE_RX, interface.port())
    }

    /// Discard data written by the host but not yet transmitted (wValue 1).
    pub const fn purge_tx(interface: Interface) -> ControlRequest {
        Self::out(SIO_RESET, RESET_PURGE_TX, interface.port())
    }

    /// Drive DTR and/or RTS. `None` leaves that line alone (its enable bit,
    /// 8 for DTR and 9 for RTS, stays clear), so both lines can be set in one
    /// request as libftdi, pyftdi and the kernel do.
    pub const fn modem_control(
        interface: Interface,
        dtr: Option<bool>,
        rts: Option<bool>,
    ) -> ControlRequest {
        let mut value = 0;
        if let Some(level) = dtr {
            value |= 0x0100 | level as u16;
        }
        if let Some(level) = rts {
            value |= 0x0200 | ((level as u16) << 1);
        }
        Self::out(SIO_MODEM_CTRL, value, interface.port())
    }

    /// Set flow control. The protocol goes in wIndex's high byte; for
    /// XON/XOFF wValue is `xoff << 8 | xon` (§2).
    pub const fn flow_control(interface: Interface, flow: FlowControl) -> ControlRequest {
        let (proto, value) = match flow {
            FlowControl::None => (FLOW_NONE, 0),
            FlowControl::RtsCts => (FLOW_RTS_CTS, 0),
            FlowControl::DtrDsr => (FLOW_DTR_DSR, 0),
            FlowControl::XonXoff { xon, xoff } => {
                (FLOW_XON_XOFF, ((xoff as u16) << 8) | xon as u16)
            }
        };
        Self::out(SIO_SET_FLOW_CTRL, value, (proto << 8) | interface.port())
    }

    /// Set the baud rate: the divisor from [`baud_divisor`], returned too so
    /// the caller knows the rate actually in effect.
    pub fn baud_rate(
        chip: Chip,
        interface: Interface,
        baud: u32,
    ) -> Result<(ControlRequest, BaudDivisor), BaudError> {
        let divisor = baud_divisor(chip, interface, baud)?;
        Ok((
            Self::out(SIO_SET_BAUD_RATE, divisor.value, divisor.index),
            divisor,
        ))
    }

    /// Set framing and break. wValue bits 0-7 data bits, 8-10 parity, 11-13
    /// stop bits, 14 break (§2). A break is this same request with
    /// `break_on` set, and ends by resending it with `break_on` clear.
    pub const fn line_properties(
        interface: Interface,
        line: LineProperties,
        break_on: bool,
    ) -> ControlRequest {
        let mut value = line.data_bits.bits() as u16
            | (line.parity.code() << 8)
            | (line.stop_bits.code() << 11);
        if break_on {
            value |= BREAK_BIT;
        }
        Self::out(SIO_SET_DATA, value, interface.port())
    }

    /// Read the modem and line status bytes (2 bytes, same layout as a
    /// bulk-IN header). The only way to see CTS/DSR/RI/DCD without IN traffic.
    pub const fn poll_modem_status(interface: Interface) -> ControlRequest {
        Self::input(SIO_POLL_MODEM_STATUS, interface.port(), 2)
    }

    /// Set (`Some`) or disable (`None`) the event character, whose arrival
    /// flushes the chip's buffer early: wValue `ch | enable << 8`.
    pub const fn event_char(interface: Interface, ch: Option<u8>) -> ControlRequest {
        Self::out(SIO_SET_EVENT_CHAR, char_value(ch), interface.port())
    }

    /// Set (`Some`) or disable (`None`) the character substituted for bytes
    /// received with a parity error: wValue `ch | enable << 8`.
    pub const fn error_char(interface: Interface, ch: Option<u8>) -> ControlRequest {
        Self::out(SIO_SET_ERROR_CHAR, char_value(ch), interface.port())
    }

    /// Set the latency timer, 1..=255 ms. 0 is refused, as libftdi does.
    /// The AM has no latency timer (see [`Chip::has_latency_timer`]).
    pub fn set_latency_timer(
        interface: Interface,
        ms: u8,
    ) -> Result<ControlRequest, LatencyTimerError> {
        if ms == 0 {
            return Err(LatencyTimerError);
        }
        Ok(Self::out(
            SIO_SET_LATENCY_TIMER,
            ms as u16,
            interface.port(),
        ))
    }

    /// Read the latency timer (1 byte, in ms).
    pub const fn get_latency_timer(interface: Interface) -> ControlRequest {
        Self::input(SIO_GET_LATENCY_TIMER, interface.port(), 1)
    }

    /// SET_BITMODE mode 0, mask 0: back to plain UART operation, undoing any
    /// bit-bang/MPSSE mode a previous user left behind.
    pub const fn uart_mode(interface: Interface) -> ControlRequest {
        Self::out(SIO_SET_BITMODE, 0, interface.port())
    }

    /// Decode a raw request back into what it asks for (used by the
    /// simulated chip and by tests; no I/O).
    ///
    /// Strict: the direction and wLength must match the request, the port
    /// (wIndex low byte) must be 0..=4, and every field must be one a chip
    /// defines; anything else is [`UnknownRequest`]. Two leniencies follow
    /// real drivers: a disabled event/error char may carry a character (libftdi
    /// sends one), which decodes to `None`; and SET_BAUDRATE is not checked
    /// here because its meaning depends on the chip (use
    /// [`decode_divisor`](super::decode_divisor)).
    pub fn decode(&self) -> Result<Request, UnknownRequest> {
        let unknown = Err(UnknownRequest(*self));
        let port = (self.index & 0xFF) as u8;
        let index_hi = self.index >> 8;
        if port > 4 && self.request != SIO_SET_BAUD_RATE {
            return unknown;
        }
        let expect_len: u16 = match self.request {
            SIO_POLL_MODEM_STATUS => 2,
            SIO_GET_LATENCY_TIMER | SIO_READ_PINS => 1,
            _ => 0,
        };
        let expect_type = if expect_len == 0 {
            REQUEST_TYPE_OUT
        } else {
            REQUEST_TYPE_IN
        };
        if self.request_type != expect_type || self.length != expect_len {
            return unknown;
        }
        // Only SET_FLOW_CTRL and SET_BAUDRATE use wIndex's high byte.
        if index_hi != 0 && !matches!(self.request, SIO_SET_FLOW_CTRL | SIO_SET_BAUD_RATE) {
            return unknown;
        }
        let v = self.value;
        let request = match self.request {
            SIO_RESET => match v {
                RESET_SIO => Request::Reset { port },
                RESET_PURGE_RX => Request::PurgeRx { port },
                RESET_PURGE_TX => Request::PurgeTx { port },
                _ => return unknown,
            },
            SIO_MODEM_CTRL => {
                // A level bit without its enable bit is never sent by any
                // driver and is ambiguous, so it is rejected.
                if v & !0x0303 != 0
                    || (v & 0x01 != 0 && v & 0x0100 == 0)
                    || (v & 0x02 != 0 && v & 0x0200 == 0)
                {
                    return unknown;
                }
                let dtr = if v & 0x0100 != 0 {
                    Some(v & 0x01 != 0)
                } else {
                    None
                };
                let rts = if v & 0x0200 != 0 {
                    Some(v & 0x02 != 0)
                } else {
                    None
                };
                Request::ModemControl { port, dtr, rts }
            }
            SIO_SET_FLOW_CTRL => {
                let flow = match (index_hi, v) {
                    (FLOW_NONE, 0) => FlowControl::None,
                    (FLOW_RTS_CTS, 0) => FlowControl::RtsCts,
                    (FLOW_DTR_DSR, 0) => FlowControl::DtrDsr,
                    (FLOW_XON_XOFF, _) => FlowControl::XonXoff {
                        xon: (v & 0xFF) as u8,
                        xoff: (v >> 8) as u8,
                    },
                    _ => return unknown,
                };
                Request::FlowControl { port, flow }
            }
            SIO_SET_BAUD_RATE => Request::BaudRate {
                value: v,
                index: self.index,
            },
            SIO_SET_DATA => {
                let data_bits = match v & 0xFF {
                    7 => DataBits::Seven,
                    8 => DataBits::Eight,
                    _ => return unknown,
                };
                let (Some(parity), Some(stop_bits)) = (
                    Parity::from_code((v >> 8) & 7),
                    StopBits::from_code((v >> 11) & 7),
                ) else {
                    return unknown;
                };
                if v & 0x8000 != 0 {
                    return unknown;
                }
                let line = LineProperties {
                    data_bits,
                    parity,
                    stop_bits,
                };
                Request::LineProperties {
                    port,
                    line,
                    break_on: v & BREAK_BIT != 0,
                }
            }
            SIO_POLL_MODEM_STATUS if v == 0 => Request::PollModemStatus { port },
            SIO_SET_EVENT_CHAR | SIO_SET_ERROR_CHAR => {
                if v & !0x01FF != 0 {
                    return unknown;
                }
                let ch = if v & CHAR_ENABLE != 0 {
                    Some((v & 0xFF) as u8)
                } else {
                    None
                };
                if self.request == SIO_SET_EVENT_CHAR {
                    Request::EventChar { port, ch }
                } else {
                    Request::ErrorChar { port, ch }
                }
            }
            SIO_SET_LATENCY_TIMER if v <= 0xFF => Request::SetLatencyTimer { port, ms: v as u8 },
            SIO_GET_LATENCY_TIMER if v == 0 => Request::GetLatencyTimer { port },
            SIO_SET_BITMODE => Request::SetBitmode {
                port,
                mode: (v >> 8) as u8,
                mask: (v & 0xFF) as u8,
            },
            SIO_READ_PINS if v == 0 => Request::ReadPins { port },
            _ => return unknown,
        };
        Ok(request)
    }
}

/// wValue for SET_EVENT_CHAR / SET_ERROR_CHAR.
const fn char_value(ch: Option<u8>) -> u16 {
    match ch {
        Some(c) => c as u16 | CHAR_ENABLE,
        None => 0,
    }
}

/// [`ControlRequest::set_latency_timer`] was asked for 0 ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("latency timer must be 1..=255 ms, got 0")]
pub struct LatencyTimerError;

/// What a control request asks for, decoded.
///
/// `port` is the wIndex low byte: 0 is the legacy single-channel form the
/// kernel uses on AM/BM/R, 1..=4 are channels A..D.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Reset the channel.
    Reset {
        /// Channel selector.
        port: u8,
    },
    /// Purge the UART-to-host FIFO (wValue 2).
    PurgeRx {
        /// Channel selector.
        port: u8,
    },
    /// Purge the host-to-UART FIFO (wValue 1).
    PurgeTx {
        /// Channel selector.
        port: u8,
    },
    /// Drive DTR/RTS; `None` leaves a line unchanged.
    ModemControl {
        /// Channel selector.
        port: u8,
        /// New DTR level, if changed.
        dtr: Option<bool>,
        /// New RTS level, if changed.
        rts: Option<bool>,
    },
    /// Set flow control.
    FlowControl {
        /// Channel selector.
        port: u8,
        /// The protocol.
        flow: FlowControl,
    },
    /// Set the baud divisor. Raw, because where the port and the divisor's
    /// high bits sit in wIndex depends on the chip
    /// (see [`decode_divisor`](super::decode_divisor)).
    BaudRate {
        /// wValue.
        value: u16,
        /// wIndex.
        index: u16,
    },
    /// Set framing and break.
    LineProperties {
        /// Channel selector.
        port: u8,
        /// The framing.
        line: LineProperties,
        /// TX held low.
        break_on: bool,
    },
    /// Read the two status bytes.
    PollModemStatus {
        /// Channel selector.
        port: u8,
    },
    /// Set or disable the event character.
    EventChar {
        /// Channel selector.
        port: u8,
        /// The character, or `None` if disabled.
        ch: Option<u8>,
    },
    /// Set or disable the error replacement character.
    ErrorChar {
        /// Channel selector.
        port: u8,
        /// The character, or `None` if disabled.
        ch: Option<u8>,
    },
    /// Set the latency timer.
    SetLatencyTimer {
        /// Channel selector.
        port: u8,
        /// The value sent, which may be 0: the decoder reports what was sent,
        /// and a chip model decides whether to STALL.
        ms: u8,
    },
    /// Read the latency timer.
    GetLatencyTimer {
        /// Channel selector.
        port: u8,
    },
    /// Set the bit mode.
    SetBitmode {
        /// Channel selector.
        port: u8,
        /// Mode (wValue high byte): 0 = UART, 1 = async bit-bang, 2 = MPSSE, ...
        mode: u8,
        /// Pin direction mask (wValue low byte).
        mask: u8,
    },
    /// Read the pins.
    ReadPins {
        /// Channel selector.
        port: u8,
    },
}

/// A control request that is not one [`ControlRequest::decode`] knows, or
/// has a field no chip defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown or malformed FTDI control request: bmRequestType {:#04x}, bRequest {:#04x}, \
     wValue {:#06x}, wIndex {:#06x}, wLength {}",
    .0.request_type, .0.request, .0.value, .0.index, .0.length
)]
pub struct UnknownRequest(pub ControlRequest);
