//! What can go wrong attaching a device to vhci-hcd, and how to fix it.

use std::io;
use std::path::PathBuf;

use crate::realtime::RealtimeError;

/// An attach, detach or server failure. Each message says how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbipError {
    /// The vhci-hcd module is not loaded (its sysfs directory is missing).
    #[error(
        "vhci-hcd is not loaded: {path} does not exist. Load it with `sudo modprobe vhci-hcd` \
         (Debian and Ubuntu ship it in the kernel image package; the kernel option is \
         CONFIG_USBIP_VHCI_HCD)"
    )]
    VhciMissing {
        /// The directory that was looked for.
        path: PathBuf,
    },

    /// Writing a vhci-hcd sysfs file was refused.
    #[error(
        "no permission to write {path}: attaching or detaching a device through vhci-hcd needs \
         root; run as root (e.g. with sudo)"
    )]
    PermissionDenied {
        /// The sysfs file.
        path: PathBuf,
    },

    /// Every vhci-hcd root-hub port of the needed kind is in use.
    #[error(
        "no free vhci-hcd port for a {speed} device: all {total} USB 2.0 ports are in use \
         ({path}); detach one (write its port number to the controller's `detach` file, or \
         `usbip detach -p N`)"
    )]
    NoFreePort {
        /// The device's speed, in words.
        speed: &'static str,
        /// How many ports of that kind exist.
        total: usize,
        /// The status file that was read.
        path: PathBuf,
    },

    /// The kernel refused the attach request.
    #[error(
        "the kernel refused to attach the device on vhci-hcd port {port} (wrote {line:?} to \
         {path}): {source}; `dmesg | tail` says why"
    )]
    AttachRefused {
        /// The port that was asked for.
        port: u32,
        /// What was written: "port sockfd devid speed".
        line: String,
        /// The attach file.
        path: PathBuf,
        /// What the write returned.
        #[source]
        source: io::Error,
    },

    /// A vhci-hcd sysfs file could not be read or written.
    #[error("{path}: {source}")]
    Sysfs {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },

    /// The socket pair, the server thread or its wakeup could not be created.
    #[error("setting up the device server failed: {0}")]
    Setup(#[source] io::Error),

    /// The device server's realtime setup was refused and the options
    /// require it.
    #[error("the device server thread: {0}")]
    Realtime(#[from] RealtimeError),

    /// The device is not attached (unplugged, detached by the host, or the
    /// server stopped).
    #[error("the device is not attached: {0}")]
    NotAttached(String),

    /// The kernel did not let go of the port after the device was unplugged.
    #[error(
        "vhci-hcd port {port} still shows the device {after_ms} ms after it was unplugged; \
         writing {port} to the controller's detach file did not free it either"
    )]
    DetachStuck {
        /// The port.
        port: u32,
        /// How long was waited.
        after_ms: u64,
    },
}

impl UsbipError {
    /// The error for a failed write of a sysfs file: permission errors say
    /// that root is needed.
    pub(crate) fn from_write(path: PathBuf, e: io::Error) -> UsbipError {
        if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
            UsbipError::PermissionDenied { path }
        } else {
            UsbipError::Sysfs { path, source: e }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_how_to_fix() {
        let missing = UsbipError::VhciMissing {
            path: "/sys/devices/platform/vhci_hcd.0".into(),
        };
        assert!(missing.to_string().contains("modprobe vhci-hcd"));
        let denied = UsbipError::from_write(
            "/sys/devices/platform/vhci_hcd.0/attach".into(),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(denied.to_string().contains("needs root"), "{denied}");
        let other = UsbipError::from_write("x".into(), io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(other, UsbipError::Sysfs { .. }));
    }
}
