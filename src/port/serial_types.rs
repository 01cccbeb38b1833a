//! Between the `serialport` crate's settings and errors and ftdi-rt's: the
//! translation the drop-in ([`serialport::SerialPort`] on a port, and
//! [`crate::new`]) is built on.
//!
//! Some values exist on one side only: serialport has 5 and 6 data bits,
//! FTDI chips do not; FTDI chips have mark and space parity, 1.5 stop bits
//! and DTR/DSR flow control, serialport's enums do not. Those are errors
//! that name the value, never a silent substitute.

use std::io;

use serialport as sp;

use crate::error::Error;
use crate::proto::{DataBits, FlowControl, Parity, StopBits};

/// The XON/XOFF characters serialport's software flow control means
/// (DC1/DC3, as termios uses).
const XON: u8 = 0x11;
const XOFF: u8 = 0x13;

/// An error with serialport's `InvalidInput` kind.
pub(crate) fn invalid(description: String) -> sp::Error {
    sp::Error::new(sp::ErrorKind::InvalidInput, description)
}

/// An error for something a handle cannot do, with what to do instead.
pub(crate) fn unsupported(description: &str) -> sp::Error {
    sp::Error::new(
        sp::ErrorKind::Io(io::ErrorKind::Unsupported),
        description.to_string(),
    )
}

pub(crate) fn data_bits_from(bits: sp::DataBits) -> Result<DataBits, sp::Error> {
    match bits {
        sp::DataBits::Seven => Ok(DataBits::Seven),
        sp::DataBits::Eight => Ok(DataBits::Eight),
        other => Err(invalid(format!(
            "{other} data bits: FTDI chips (and ftdi-rt) support 7 or 8 data bits"
        ))),
    }
}

pub(crate) fn data_bits_to(bits: DataBits) -> sp::DataBits {
    match bits {
        DataBits::Seven => sp::DataBits::Seven,
        DataBits::Eight => sp::DataBits::Eight,
    }
}

pub(crate) fn parity_from(parity: sp::Parity) -> Parity {
    match parity {
        sp::Parity::None => Parity::None,
        sp::Parity::Odd => Parity::Odd,
        sp::Parity::Even => Parity::Even,
    }
}

pub(crate) fn parity_to(parity: Parity) -> Result<sp::Parity, sp::Error> {
    match parity {
        Parity::None => Ok(sp::Parity::None),
        Parity::Odd => Ok(sp::Parity::Odd),
        Parity::Even => Ok(sp::Parity::Even),
        other => Err(invalid(format!(
            "the port uses {other:?} parity, which serialport::Parity cannot express; \
             read it with Port::writer().line_properties()"
        ))),
    }
}

pub(crate) fn stop_bits_from(bits: sp::StopBits) -> StopBits {
    match bits {
        sp::StopBits::One => StopBits::One,
        sp::StopBits::Two => StopBits::Two,
    }
}

pub(crate) fn stop_bits_to(bits: StopBits) -> Result<sp::StopBits, sp::Error> {
    match bits {
        StopBits::One => Ok(sp::StopBits::One),
        StopBits::Two => Ok(sp::StopBits::Two),
        StopBits::OnePointFive => Err(invalid(
            "the port uses 1.5 stop bits, which serialport::StopBits cannot express; \
             read it with Port::writer().line_properties()"
                .into(),
        )),
    }
}

pub(crate) fn flow_from(flow: sp::FlowControl) -> FlowControl {
    match flow {
        sp::FlowControl::None => FlowControl::None,
        sp::FlowControl::Software => FlowControl::XonXoff {
            xon: XON,
            xoff: XOFF,
        },
        sp::FlowControl::Hardware => FlowControl::RtsCts,
    }
}

pub(crate) fn flow_to(flow: FlowControl) -> Result<sp::FlowControl, sp::Error> {
    match flow {
        FlowControl::None => Ok(sp::FlowControl::None),
        FlowControl::RtsCts => Ok(sp::FlowControl::Hardware),
        FlowControl::XonXoff {
            xon: XON,
            xoff: XOFF,
        } => Ok(sp::FlowControl::Software),
        other => Err(invalid(format!(
            "the port uses {other:?} flow control, which serialport::FlowControl cannot express; \
             read it with Port::writer().flow_control()"
        ))),
    }
}

/// ftdi-rt's errors as serialport's: the message is kept whole (it says
/// what went wrong and how to fix it); the kind is serialport's nearest.
impl From<Error> for sp::Error {
    fn from(e: Error) -> sp::Error {
        let description = e.to_string();
        let kind = match &e {
            Error::Disconnected | Error::NotFound { .. } => sp::ErrorKind::NoDevice,
            Error::InvalidConfig(_)
            | Error::Baud(_)
            | Error::LatencyTimer(_)
            | Error::Unsupported { .. }
            | Error::SettingRejected { .. } => sp::ErrorKind::InvalidInput,
            _ => sp::ErrorKind::Io(io::Error::from(e).kind()),
        };
        sp::Error::new(kind, description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_where_both_sides_have_them() {
        for bits in [sp::DataBits::Seven, sp::DataBits::Eight] {
            assert_eq!(data_bits_to(data_bits_from(bits).unwrap()), bits);
        }
        for parity in [sp::Parity::None, sp::Parity::Odd, sp::Parity::Even] {
            assert_eq!(parity_to(parity_from(parity)).unwrap(), parity);
        }
        for stop in [sp::StopBits::One, sp::StopBits::Two] {
            assert_eq!(stop_bits_to(stop_bits_from(stop)).unwrap(), stop);
        }
        for flow in [
            sp::FlowControl::None,
            sp::FlowControl::Software,
            sp::FlowControl::Hardware,
        ] {
            assert_eq!(flow_to(flow_from(flow)).unwrap(), flow);
        }
    }

    #[test]
    fn values_one_side_lacks_are_named_errors() {
        let e = data_bits_from(sp::DataBits::Five).unwrap_err();
        assert_eq!(e.kind(), sp::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("7 or 8"), "{e}");
        assert!(
            parity_to(Parity::Mark)
                .unwrap_err()
                .to_string()
                .contains("Mark")
        );
        assert!(
            stop_bits_to(StopBits::OnePointFive)
                .unwrap_err()
                .to_string()
                .contains("1.5")
        );
        assert!(flow_to(FlowControl::DtrDsr).is_err());
    }

    #[test]
    fn errors_keep_their_message_and_nearest_kind() {
        let e = sp::Error::from(Error::Disconnected);
        assert_eq!(e.kind(), sp::ErrorKind::NoDevice);
        assert_eq!(e.to_string(), Error::Disconnected.to_string());
        let e = sp::Error::from(Error::InvalidConfig("baud 0".into()));
        assert_eq!(e.kind(), sp::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("baud 0"));
    }
}
