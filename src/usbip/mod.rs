//! A USB device model plugged into the local Linux kernel through USB/IP.
//!
//! [`AttachedDevice::attach`] takes any [`UsbFunction`] (such as the
//! simulated FTDI chip of [`crate::sim::usb`]), attaches one end of a
//! `UnixStream` pair to a free port of the kernel's vhci-hcd (the USB/IP
//! virtual host controller, `modprobe vhci-hcd`) and serves the other end
//! from a thread of its own. The kernel then enumerates the device like any
//! USB device: `ftdi_sio` binds and `/dev/ttyUSB0` appears, usbfs and libusb
//! see it, and a program that only knows a tty can be tested against a chip
//! with real timing and injected faults. Attaching needs root (vhci-hcd's
//! sysfs files are root-only).
//!
//! The server keeps the device's semantics on the bus: an IN URB stays
//! pending until the device has something to send (a pending IN URB is the
//! host controller issuing IN tokens), unlinks cancel pending URBs, and
//! unplugging closes the link so the host sees a disconnect.
//!
//! Written here rather than taken from the `usbip` crate (0.9), which
//! answers each URB before it reads the next (an IN URB cannot stay
//! pending), acknowledges unlinks without cancelling anything, and panics on
//! a URB that arrives without its `OP_REQ_IMPORT` handshake, which a sysfs
//! attach never sends.
//!
//! The pieces: [`protocol`] is the wire format (sans-IO, usable on its own),
//! the server thread serves one device, and [`AttachedDevice`] is the
//! handle: port and bus id, fault injection on the server thread
//! ([`AttachedDevice::with_function`]), unplug and replug, and the server's
//! own lateness.
//!
//! [`UsbFunction`]: crate::sim::usb::UsbFunction

mod attached;
mod error;
pub mod protocol;
mod server;
#[cfg(test)]
mod tests;
mod vhci;

pub use attached::{AttachOptions, AttachedDevice, KthreadPriority};
pub use error::UsbipError;
pub use server::DetachReason;
