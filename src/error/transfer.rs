//! How a USB transfer fails, on every FTDI transport (libusb and the
//! simulated chip alike), and the one conversion into the crate's [`Error`].
//!
//! Modelled on nusb's `TransferError`: the kinds a caller can act on
//! (stall, unplug, timeout with partial progress, cancellation, a protocol
//! fault) and the raw code for everything else. The transports produce it;
//! the FTDI layer (`transport::ftdi`) turns it into an [`Error`] that names
//! the operation, and for a stalled control request the request itself.
//!
//! Here, beside [`Error`], rather than in `transport`: the crate's error
//! wraps it ([`Error::Transfer`]), so keeping the type with the errors keeps
//! the two modules from depending on each other.

use std::time::Duration;

use super::Error;
use crate::proto::ControlRequest;

/// How a USB transfer (control, bulk IN or bulk OUT) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The transfer was cancelled, or never submitted, because the port's
    /// reader stopped (the port is closing, or the link was lost).
    #[error("the transfer was cancelled (the port's reader stopped)")]
    Cancelled,
    /// The device answered STALL: it refused the request, or the endpoint is halted.
    #[error("the device answered STALL")]
    Stall,
    /// The device is gone (unplugged, or reset by the host).
    #[error("the device is gone (unplugged)")]
    NoDevice,
    /// The transfer failed on the bus (a CRC, bit-stuffing or timeout error
    /// at the protocol level); often the first sign of an unplug or a bad cable.
    #[error("the transfer failed on the bus (USB protocol error; check the cable)")]
    Fault,
    /// The device sent more data than the transfer asked for.
    #[error("the device sent more data than asked for (babble)")]
    Overflow,
    /// The transfer did not complete in time; `transferred` bytes went
    /// through before it was cut short.
    #[error("timed out after {transferred} bytes")]
    TimedOut {
        /// Bytes transferred before the timeout.
        transferred: usize,
    },
    /// Any other failure: libusb's transfer status (positive) or error code
    /// (negative).
    #[error("libusb reported code {0} ({name})", name = libusb_code_name(*.0))]
    Unknown(i32),
}

/// What a failed transfer was doing, for the crate error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// A control request.
    Control(ControlRequest),
    /// A bulk-OUT write.
    Write,
}

impl Operation {
    /// The operation in words, as [`Error::TimedOut`] and [`Error::Transfer`] name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Control(_) => "control request",
            Operation::Write => "write",
        }
    }
}

impl TransferError {
    /// The crate error for this failure of `operation`, which was given
    /// `timeout`. A STALL of a control request names the request; an unplug
    /// or a stopped reader is [`Error::Disconnected`].
    pub(crate) fn into_error(self, operation: Operation, timeout: Duration) -> Error {
        match (self, operation) {
            (TransferError::Stall, Operation::Control(request)) => Error::Stall { request },
            (TransferError::NoDevice | TransferError::Cancelled, _) => Error::Disconnected,
            (TransferError::TimedOut { .. }, _) => Error::TimedOut {
                operation: operation.name(),
                after: timeout,
            },
            (source, _) => Error::Transfer {
                operation: operation.name(),
                source,
            },
        }
    }
}

/// libusb's name for a transfer status (positive) or error code (negative),
/// from libusb.h; static strings, so formatting allocates nothing extra.
fn libusb_code_name(code: i32) -> &'static str {
    match code {
        1 => "LIBUSB_TRANSFER_ERROR",
        2 => "LIBUSB_TRANSFER_TIMED_OUT",
        3 => "LIBUSB_TRANSFER_CANCELLED",
        4 => "LIBUSB_TRANSFER_STALL",
        5 => "LIBUSB_TRANSFER_NO_DEVICE",
        6 => "LIBUSB_TRANSFER_OVERFLOW",
        -1 => "LIBUSB_ERROR_IO",
        -2 => "LIBUSB_ERROR_INVALID_PARAM",
        -3 => "LIBUSB_ERROR_ACCESS",
        -4 => "LIBUSB_ERROR_NO_DEVICE",
        -5 => "LIBUSB_ERROR_NOT_FOUND",
        -6 => "LIBUSB_ERROR_BUSY",
        -7 => "LIBUSB_ERROR_TIMEOUT",
        -8 => "LIBUSB_ERROR_OVERFLOW",
        -9 => "LIBUSB_ERROR_PIPE",
        -10 => "LIBUSB_ERROR_INTERRUPTED",
        -11 => "LIBUSB_ERROR_NO_MEM",
        -12 => "LIBUSB_ERROR_NOT_SUPPORTED",
        -99 => "LIBUSB_ERROR_OTHER",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Interface;

    const T: Duration = Duration::from_millis(250);

    #[test]
    fn a_stalled_control_request_names_the_request() {
        let request = ControlRequest::purge_rx(Interface::A);
        match TransferError::Stall.into_error(Operation::Control(request), T) {
            Error::Stall { request: r } => assert_eq!(r, request),
            other => panic!("expected Error::Stall, got {other:?}"),
        }
    }

    #[test]
    fn a_stalled_write_keeps_its_operation_and_kind() {
        match TransferError::Stall.into_error(Operation::Write, T) {
            Error::Transfer { operation, source } => {
                assert_eq!(operation, "write");
                assert_eq!(source, TransferError::Stall);
            }
            other => panic!("expected Error::Transfer, got {other:?}"),
        }
    }

    #[test]
    fn unplug_and_cancellation_are_disconnects_and_timeouts_keep_the_timeout() {
        for e in [TransferError::NoDevice, TransferError::Cancelled] {
            assert!(matches!(
                e.into_error(Operation::Write, T),
                Error::Disconnected
            ));
        }
        let e = TransferError::TimedOut { transferred: 3 }
            .into_error(Operation::Control(ControlRequest::reset(Interface::A)), T);
        assert!(
            matches!(e, Error::TimedOut { operation: "control request", after } if after == T),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_codes_are_named() {
        assert_eq!(
            TransferError::Unknown(-42).to_string(),
            "libusb reported code -42 (unknown code)"
        );
        assert_eq!(
            TransferError::Unknown(-6).to_string(),
            "libusb reported code -6 (LIBUSB_ERROR_BUSY)"
        );
        let e = TransferError::Fault.into_error(Operation::Write, T);
        assert_eq!(
            e.to_string(),
            "USB write failed: the transfer failed on the bus (USB protocol error; check the cable)"
        );
    }
}
