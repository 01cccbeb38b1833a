//! The crate's error type.
//!
//! One enum for every operation, so `?` composes across opening, configuring,
//! receiving and transactions. Each message says what went wrong and, where
//! the user can act, what to do. Variants that can occur on the hot path
//! ([`Error::Overflow`], [`Error::Disconnected`], [`Error::Resumed`], [`Error::TimedOut`],
//! [`Error::DeadlineMissed`]) carry no heap data, so returning them never allocates.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

mod kind;
mod realtime;
mod transfer;

pub use self::kind::ErrorKind;
pub use self::realtime::RealtimeError;
pub(crate) use self::transfer::Operation;
pub use self::transfer::TransferError;
use crate::proto::{BaudError, ControlRequest, LatencyTimerError};

/// Shorthand for `Result<T, ftdi_rt::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ftdi-rt.
///
/// `{:?}` prints the same message as `{}` (what went wrong and how to fix
/// it), so `fn main() -> Result<(), ftdi_rt::Error>` shows the fix too;
/// match on the variant for the details.
///
/// [`kind`](Error::kind) gives its class ([`ErrorKind`]) and
/// [`os_error`](Error::os_error) the `errno` behind it, if any. An `Error`
/// turned into an [`io::Error`] (by the `io::Read`/`io::Write`
/// implementations) has the kind's [`io::ErrorKind`] and comes back as
/// itself through `From<io::Error>`, so `?` across the two keeps the
/// variant (`Disconnected` stays `Disconnected`).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device is gone (unplugged, reset, or a fatal transfer error) or the
    /// port was closed. Everything received before is still delivered first.
    /// The reason is in [`Statistics::disconnect`](crate::Statistics::disconnect).
    ///
    /// On a port opened with [`PortConfig::with_resume`](crate::PortConfig::with_resume)
    /// an unplug is reported once at its point of the stream and the stream
    /// goes on: writes and settings fail with this error until the device
    /// is back, then [`Error::Resumed`] marks the point where it came back.
    #[error("the device is disconnected (see Statistics::disconnect for why)")]
    Disconnected,

    /// Not a failure: the device came back after an unplug and the port
    /// resumed by itself, every setting re-applied (only on a port opened
    /// with [`PortConfig::with_resume`](crate::PortConfig::with_resume)).
    /// Reported once, at its point of the stream (after the
    /// [`Error::Disconnected`] of the unplug); what follows was received
    /// from the device that came back. Bytes in flight when the link was
    /// lost are gone. Its kind is [`ErrorKind::Resumed`], which
    /// `io::Read` reports as [`io::ErrorKind::Interrupted`], so
    /// `read_exact` and friends go on by themselves.
    #[error("the device came back after {gap:?} and the port resumed with its settings")]
    Resumed {
        /// How long the device was gone: from the reader seeing the link
        /// lost to the new device's transfers in flight.
        gap: Duration,
    },

    /// The channel to the application was full and the reader dropped data
    /// rather than block: `lost_bytes` bytes are missing at this point of the
    /// stream. Receive faster, or open with a larger channel capacity.
    #[error(
        "{lost_bytes} received bytes were dropped because the application did not keep up \
         (channel full); receive more often or raise PortConfig::channel_capacity"
    )]
    Overflow {
        /// How many payload bytes were lost at this point of the stream.
        lost_bytes: u64,
    },

    /// A request/reply transaction did not complete within its deadline.
    /// Late bytes of this reply are discarded before the next request.
    #[error("deadline missed: no complete reply after {elapsed:?}")]
    DeadlineMissed {
        /// Time from submitting the request to giving up.
        elapsed: Duration,
    },

    /// A blocking operation ran out of time.
    #[error("{operation} timed out after {after:?}")]
    TimedOut {
        /// What timed out ("receive", "write", "control request", ...).
        operation: &'static str,
        /// The timeout that expired.
        after: Duration,
    },

    /// The requested baud rate cannot be produced closely enough by the chip.
    #[error(transparent)]
    Baud(#[from] BaudError),

    /// Latency timer 0 ms was requested.
    #[error(transparent)]
    LatencyTimer(#[from] LatencyTimerError),

    /// The realtime setup of the reader thread was refused; the message says
    /// how to grant it, or how to opt in to best-effort mode.
    #[error(transparent)]
    Realtime(#[from] RealtimeError),

    /// The transport cannot do what the setting asks (for example 1.5 stop
    /// bits on a kernel tty).
    #[error("{setting} is not supported by {transport}: {reason}")]
    Unsupported {
        /// The setting, e.g. "stop bits 1.5".
        setting: String,
        /// The transport, e.g. "the kernel tty /dev/ttyUSB0".
        transport: String,
        /// Why, and what to use instead.
        reason: String,
    },

    /// A setting was rejected by the device or the kernel.
    #[error("{setting} was rejected: {reason}")]
    SettingRejected {
        /// The setting, e.g. "baud 7372800".
        setting: String,
        /// What the device or kernel said.
        reason: String,
    },

    /// The device answered a control request with STALL (it does not support it).
    #[error("the device rejected control request {request:?} (STALL)")]
    Stall {
        /// The request that stalled.
        request: ControlRequest,
    },

    /// libusb could not be initialised (no usbfs: not Linux, a container
    /// without /dev/bus/usb, or a kernel without USB support).
    #[error(
        "USB is not available on this machine ({reason}); libusb needs /dev/bus/usb. \
         In a container, pass the bus through (e.g. --device /dev/bus/usb); \
         without an adapter, use the simulated chip (Port::open_sim) instead"
    )]
    UsbUnavailable {
        /// What libusb said.
        reason: String,
    },

    /// No FTDI device matched the selector. `found` lists what is there.
    #[error("no FTDI device matches {wanted}; found: {}", describe_found(.found))]
    NotFound {
        /// The selector, in words.
        wanted: String,
        /// One line per device that was found.
        found: Vec<String>,
    },

    /// The current user may not open the USB device.
    #[error(
        "permission denied opening {device}. Install the udev rule shipped with ftdi-rt: \
         `sudo install -m 0644 udev/60-ftdi-rt.rules /etc/udev/rules.d/ && sudo udevadm control \
         --reload && sudo udevadm trigger --subsystem-match=usb` (remove an older \
         /etc/udev/rules.d/99-ftdi-rt.rules), then replug the adapter. It gives the user logged \
         in at the seat access at once; over ssh or for a service, also add the user to the \
         `dialout` group (`sudo usermod -aG dialout $USER`, then log in again). Check with \
         `getfacl /dev/bus/usb/BBB/DDD` (README, \"Permissions: the udev rule\")"
    )]
    PermissionDenied {
        /// The device, in words.
        device: String,
    },

    /// Another process (or driver, or port of this one) holds the
    /// interface or the tty.
    #[error(
        "{device} is busy: another program (or another port in this one) holds it. Close \
         the other program (find it with `fuser -v /dev/bus/usb/*/*` or `lsof /dev/ttyUSB*`)"
    )]
    Busy {
        /// The device, in words.
        device: String,
    },

    /// A USB operation failed.
    #[error("USB {operation} failed: {reason}")]
    Usb {
        /// What was being done.
        operation: &'static str,
        /// libusb's error text.
        reason: String,
    },

    /// A USB transfer of a port failed in a way that is neither a timeout,
    /// an unplug nor a refused control request (those have their own
    /// variants): a protocol error on the bus, a babbling device, a halted
    /// bulk-OUT endpoint, or a libusb code.
    #[error("USB {operation} failed: {source}")]
    Transfer {
        /// What was being done ("write", "control request").
        operation: &'static str,
        /// How the transfer failed.
        #[source]
        source: TransferError,
    },

    /// The path exists but is not a terminal device.
    #[error("{} is not a tty (a serial device such as /dev/ttyUSB0 or a pty is needed)", .path.display())]
    NotATty {
        /// The path given.
        path: PathBuf,
    },

    /// Opening or using a tty failed.
    #[error("tty {}: {source}", .path.display())]
    Tty {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A reply did not fit the transaction buffer.
    #[error(
        "reply longer than the {capacity}-byte transaction buffer; raise PortConfig::reply_capacity"
    )]
    ReplyTooLong {
        /// The buffer size.
        capacity: usize,
    },

    /// A latency budget below what the line and the bus allow (new in issue 16).
    #[error(transparent)]
    LatencyBudget(#[from] crate::timing::BudgetBelowFloor),

    /// A configuration value is invalid; the message names the allowed range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An argument no call could satisfy (an empty request, a zero
    /// deadline, a reply length the reply buffer cannot hold); refused
    /// before anything was sent or counted. The message says what to use.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// An operating-system error.
    #[error(transparent)]
    Io(io::Error),
}

impl fmt::Debug for Error {
    /// The message, as `Display` gives it (the how-to-fix text included),
    /// then the chain of sources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

fn describe_found(found: &[String]) -> String {
    if found.is_empty() {
        "nothing (is the adapter plugged in? check `lsusb -d 0403:`)".into()
    } else {
        found.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_path_errors_are_small_and_convert_to_io_kinds() {
        let e: io::Error = Error::Disconnected.into();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
        let e: io::Error = Error::TimedOut {
            operation: "receive",
            after: Duration::from_millis(5),
        }
        .into();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            Error::Overflow { lost_bytes: 62 }.to_string(),
            "62 received bytes were dropped because the application did not keep up \
             (channel full); receive more often or raise PortConfig::channel_capacity"
        );
    }

    #[test]
    fn not_found_lists_what_was_found() {
        let e = Error::NotFound {
            wanted: "serial \"X\"".into(),
            found: vec!["FT232R A1 on 1-2".into()],
        };
        assert!(e.to_string().contains("FT232R A1 on 1-2"));
        let e = Error::NotFound {
            wanted: "first".into(),
            found: vec![],
        };
        assert!(e.to_string().contains("lsusb"));
    }

    #[test]
    fn permission_error_says_how_to_install_the_udev_rule() {
        let msg = Error::PermissionDenied {
            device: "FT232R".into(),
        }
        .to_string();
        let rule = "udev/60-ftdi-rt.rules";
        assert!(msg.contains(rule), "{msg}");
        // The file the message names is the one the repository ships.
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(rule)
                .is_file()
        );
        for needle in ["udevadm trigger", "dialout", "getfacl", "replug"] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
    }
}
