//! What kind of failure an [`Error`] is, for code that reacts to the class
//! rather than the variant ([`Error::kind`]), its OS error code
//! ([`Error::os_error`]), and the `io::Error` conversions, which keep the kind
//! both ways.

use std::io;

use super::{Error, RealtimeError};

/// The class of an [`Error`], as [`Error::kind`] gives it: what a program
/// does about it (retry, reopen, ask for a grant, fix its input) depends on
/// this, not on the variant. More kinds may come, so a `match` needs a `_`
/// arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The device is gone or the port was closed: reopen it.
    Disconnected,
    /// Another program (or port) holds the device.
    Busy,
    /// The user lacks a permission or grant (usbfs access, realtime priority).
    PermissionDenied,
    /// No such device or path.
    NotFound,
    /// An argument or a configuration value no call could satisfy.
    InvalidInput,
    /// A blocking operation (receive, write, control request) ran out of time.
    TimedOut,
    /// A transaction's reply was not complete by its deadline.
    DeadlineMissed,
    /// Data did not fit: the channel was full, or a reply outgrew its buffer.
    Overflow,
    /// The transport, device or machine cannot do what was asked.
    Unsupported,
    /// Not a failure: a port that resumes after an unplug got its device
    /// back ([`Error::Resumed`]); receive again.
    Resumed,
    /// Anything else (a USB or OS failure without a kind of its own).
    Other,
}

impl ErrorKind {
    /// The closest [`io::ErrorKind`] (`Overflow` and `Other` have none
    /// closer than [`io::ErrorKind::Other`]).
    pub fn to_io(self) -> io::ErrorKind {
        match self {
            ErrorKind::Disconnected => io::ErrorKind::NotConnected,
            ErrorKind::Busy => io::ErrorKind::ResourceBusy,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::NotFound => io::ErrorKind::NotFound,
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::TimedOut | ErrorKind::DeadlineMissed => io::ErrorKind::TimedOut,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            // std's read helpers (read_exact, read_to_end) retry on it.
            ErrorKind::Resumed => io::ErrorKind::Interrupted,
            ErrorKind::Overflow | ErrorKind::Other => io::ErrorKind::Other,
        }
    }

    /// The kind of an `io::Error` that is not one of ours.
    fn of_io(e: &io::Error) -> ErrorKind {
        // A device node whose device is gone answers ENODEV or ENXIO, which
        // std has no stable kind for.
        if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ENXIO)) {
            return ErrorKind::Disconnected;
        }
        match e.kind() {
            io::ErrorKind::NotConnected
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => ErrorKind::Disconnected,
            io::ErrorKind::ResourceBusy => ErrorKind::Busy,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Other,
        }
    }
}

impl Error {
    /// The class of this error (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Disconnected => ErrorKind::Disconnected,
            Error::Resumed { .. } => ErrorKind::Resumed,
            Error::Overflow { .. } | Error::ReplyTooLong { .. } => ErrorKind::Overflow,
            Error::DeadlineMissed { .. } => ErrorKind::DeadlineMissed,
            Error::TimedOut { .. } => ErrorKind::TimedOut,
            Error::Baud(_)
            | Error::LatencyTimer(_)
            | Error::InvalidConfig(_)
            | Error::LatencyBudget(_)
            | Error::InvalidInput(_)
            | Error::NotATty { .. } => ErrorKind::InvalidInput,
            Error::Realtime(e) => match e {
                RealtimeError::SchedFifoDenied { .. } | RealtimeError::MemoryLockDenied { .. } => {
                    ErrorKind::PermissionDenied
                }
                _ => ErrorKind::InvalidInput,
            },
            Error::Unsupported { .. }
            | Error::SettingRejected { .. }
            | Error::Stall { .. }
            | Error::UsbUnavailable { .. } => ErrorKind::Unsupported,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Usb { .. } | Error::Transfer { .. } => ErrorKind::Other,
            Error::Tty { source, .. } | Error::Io(source) => ErrorKind::of_io(source),
        }
    }

    /// The operating system's error code (`errno`) behind this error, if
    /// there is one (an OS call failed: [`Error::Io`], [`Error::Tty`]).
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Error::Tty { source, .. } | Error::Io(source) => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// An `io::Error` of the error's kind ([`ErrorKind::to_io`]) that
    /// carries it, so `From<io::Error>` gives back the same variant; an
    /// [`Error::Io`] is unwrapped.
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(inner) => inner,
            other => io::Error::new(other.kind().to_io(), other),
        }
    }
}

impl From<io::Error> for Error {
    /// An `io::Error` that carries one of ours (made by `From<Error> for
    /// io::Error`) gives it back; any other becomes [`Error::Io`], whose
    /// [`kind`](Error::kind) follows the `io::Error`'s.
    fn from(e: io::Error) -> Error {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            // Not reached (checked above); kept whole rather than lost.
            Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
            None => Error::Io(io::Error::from(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn samples() -> Vec<Error> {
        vec![
            Error::Disconnected,
            Error::Overflow { lost_bytes: 3 },
            Error::DeadlineMissed {
                elapsed: Duration::from_millis(2),
            },
            Error::TimedOut {
                operation: "write",
                after: Duration::from_millis(1),
            },
            Error::Busy {
                device: "tty /dev/pts/9".into(),
            },
            Error::PermissionDenied {
                device: "FT232R".into(),
            },
            Error::NotFound {
                wanted: "serial \"X\"".into(),
                found: vec![],
            },
            Error::InvalidInput("empty request".into()),
            Error::InvalidConfig("reply capacity".into()),
            Error::LatencyBudget(crate::timing::BudgetBelowFloor {
                budget: Duration::from_millis(1),
                floor: Duration::from_micros(2690),
                wire: Duration::from_micros(694),
                flush: Duration::from_millis(1),
                usb: Duration::from_millis(1),
            }),
            Error::Unsupported {
                setting: "latency timer".into(),
                transport: "a pty".into(),
                reason: "no timer".into(),
            },
            Error::ReplyTooLong { capacity: 4 },
            Error::Usb {
                operation: "open",
                reason: "pipe".into(),
            },
            Error::Resumed {
                gap: Duration::from_millis(300),
            },
        ]
    }

    #[test]
    fn every_error_survives_a_round_trip_through_io_error_with_its_kind() {
        for e in samples() {
            let (text, kind) = (e.to_string(), e.kind());
            let io: io::Error = e.into();
            assert_eq!(io.kind(), kind.to_io(), "{text}");
            let back = Error::from(io);
            assert_eq!(back.kind(), kind, "{text}");
            assert_eq!(back.to_string(), text);
            assert!(!matches!(back, Error::Io(_)), "{text} came back as Io");
        }
    }

    #[test]
    fn kinds_name_the_class() {
        let kinds: Vec<ErrorKind> = samples().iter().map(Error::kind).collect();
        use ErrorKind::*;
        assert_eq!(
            kinds,
            [
                Disconnected,
                Overflow,
                DeadlineMissed,
                TimedOut,
                Busy,
                PermissionDenied,
                NotFound,
                InvalidInput,
                InvalidInput,
                InvalidInput,
                Unsupported,
                Overflow,
                Other,
                Resumed
            ]
        );
    }

    #[test]
    fn os_errors_keep_their_code_and_kind() {
        let e = Error::from(io::Error::from_raw_os_error(libc::EBUSY));
        assert_eq!(
            (e.kind(), e.os_error()),
            (ErrorKind::Busy, Some(libc::EBUSY))
        );
        let e = Error::from(io::Error::from_raw_os_error(libc::ENODEV));
        assert_eq!(e.kind(), ErrorKind::Disconnected);
        let e = Error::Tty {
            path: "/dev/ttyUSB0".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            (e.kind(), e.os_error()),
            (ErrorKind::PermissionDenied, Some(libc::EACCES))
        );
        assert_eq!(Error::Disconnected.os_error(), None);
        // A plain io::Error keeps its kind through Error and back.
        let io: io::Error = Error::from(io::Error::from(io::ErrorKind::NotConnected)).into();
        assert_eq!(io.kind(), io::ErrorKind::NotConnected);
    }

    #[test]
    fn debug_keeps_the_how_to_fix_text() {
        let e = Error::PermissionDenied {
            device: "FT232R".into(),
        };
        assert_eq!(format!("{e:?}"), e.to_string());
        let e = Error::Tty {
            path: "/dev/ttyUSB0".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        let debug = format!("{e:?}");
        assert!(debug.starts_with(&e.to_string()), "{debug}");
        assert!(debug.contains("caused by"), "{debug}");
    }
}
