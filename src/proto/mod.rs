//! The sans-IO FTDI protocol core.
//!
//! Everything a transport needs to speak to an FTDI USB-UART, with no I/O,
//! no threads and no allocation on the packet path, so it can be shared by
//! the real USB transport, the simulated chip and the tests:
//!
//! - [`Chip`] and [`Interface`]: chip families (identified by `bcdDevice`)
//!   and their channels, endpoints and per-family facts.
//! - [`baud_divisor`] / [`decode_divisor`]: the baud divisor, chosen as
//!   libftdi chooses it (except in three narrow windows where libftdi's
//!   choice fails the 3 % rule and the nearest rate passes) and encoded per
//!   the Linux driver's wIndex rule.
//! - [`ControlRequest`]: every vendor request a UART driver sends, and
//!   [`ControlRequest::decode`] to turn one back into a [`Request`].
//! - [`packets`]: splitting a bulk-IN transfer into [`Packet`]s, each with
//!   its [`ModemStatus`] / [`LineStatus`] header.
//! - [`LineProperties`], [`FlowControl`]: line configuration values.
//!
//! Facts are cited from `docs/ftdi-protocol.md`, by section, which names the
//! primary source of each.
#![forbid(unsafe_code)]

mod baud;
mod chip;
mod interface;
mod line;
mod packet;
mod request;
mod status;

pub use baud::{
    BAUD_TOLERANCE_PERCENT, BaudDivisor, BaudError, Divisor, InvalidDivisor, baud_divisor,
    choose_divisor, decode_divisor, nearest_divisor,
};
pub use chip::Chip;
pub use interface::{Interface, ParseInterfaceError};
pub use line::{DataBits, FlowControl, LineProperties, Parity, StopBits};
pub use packet::{MalformedPacket, Packet, Packets, packets};
pub use request::{
    ControlRequest, LatencyTimerError, REQUEST_TYPE_IN, REQUEST_TYPE_OUT, Request,
    SIO_GET_LATENCY_TIMER, SIO_MODEM_CTRL, SIO_POLL_MODEM_STATUS, SIO_READ_PINS, SIO_RESET,
    SIO_SET_BAUD_RATE, SIO_SET_BITMODE, SIO_SET_DATA, SIO_SET_ERROR_CHAR, SIO_SET_EVENT_CHAR,
    SIO_SET_FLOW_CTRL, SIO_SET_LATENCY_TIMER, UnknownRequest,
};
pub use status::{LineStatus, ModemStatus};
