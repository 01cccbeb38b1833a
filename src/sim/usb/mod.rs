//! The simulated chip as a USB device: what a host controller sees.
//!
//! [`UsbFunction`] is the seam between a USB device model and whatever
//! carries its traffic to a host (the USB/IP front end in [`crate::usbip`],
//! or a test that plays the host controller itself). It is sans-IO: the
//! front end hands in URBs, unlinks and the current time, and takes out
//! completions and the time it must call back; the function never reads a
//! clock, sleeps, or owns a thread.
//!
//! The model is the one silicon follows on the bus: a pending IN URB is the
//! host controller issuing IN tokens, so a device sends only while one is
//! pending; an OUT URB completes when the device has accepted its bytes
//! (NAKs until then); a control URB carries its setup packet.

mod bulk;
mod descriptors;
mod standard;
mod virtual_ftdi;

pub use virtual_ftdi::{DEFAULT_SERIAL_NUMBER, NoSuchInterface, VirtualFtdi, VirtualFtdiBuilder};

use crate::time::Timestamp;

/// The speed the device connects at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsbSpeed {
    /// 12 Mbit/s (FT232R, FT232BM, FT2232C/D): 64-byte bulk packets.
    Full,
    /// 480 Mbit/s (FT2232H, FT4232H, FT232H): 512-byte bulk packets.
    High,
}

/// The 8-byte setup packet that opens a control transfer (USB 2.0 §9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupPacket {
    /// bmRequestType: direction, type, recipient.
    pub request_type: u8,
    /// bRequest.
    pub request: u8,
    /// wValue.
    pub value: u16,
    /// wIndex.
    pub index: u16,
    /// wLength: bytes in the data stage.
    pub length: u16,
}

impl SetupPacket {
    /// Decodes the packet as it travels on the wire (little-endian fields).
    pub fn from_bytes(b: [u8; 8]) -> SetupPacket {
        SetupPacket {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
            length: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// Encodes the packet as it travels on the wire.
    pub fn to_bytes(self) -> [u8; 8] {
        let [v0, v1] = self.value.to_le_bytes();
        let [i0, i1] = self.index.to_le_bytes();
        let [l0, l1] = self.length.to_le_bytes();
        [self.request_type, self.request, v0, v1, i0, i1, l0, l1]
    }

    /// Whether the data stage goes device to host.
    pub fn is_in(self) -> bool {
        self.request_type & 0x80 != 0
    }
}

/// One USB request block the host submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urb {
    /// The host's identifier (USB/IP's seqnum), unique among pending URBs.
    pub id: u32,
    /// Endpoint number, 0..=15 (0: the default control pipe).
    pub endpoint: u8,
    /// Direction of the data stage: device to host.
    pub dir_in: bool,
    /// Control transfers only: the setup packet.
    pub setup: Option<SetupPacket>,
    /// IN: how many bytes the host can take (the transfer buffer's length).
    /// OUT: `data.len()`.
    pub length: usize,
    /// OUT data (empty for IN).
    pub data: Vec<u8>,
}

/// How a URB ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrbStatus {
    /// Completed; IN data (possibly short) is in the completion.
    Completed,
    /// The endpoint STALLed (a control request the device refuses).
    Stall,
    /// Unlinked by the host before it completed.
    Cancelled,
    /// The device is gone (unplugged).
    NoDevice,
    /// The device sent more than the URB could hold (babble).
    Overflow,
}

/// A finished URB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrbCompletion {
    /// The id of the URB it finishes.
    pub id: u32,
    /// How it ended.
    pub status: UrbStatus,
    /// IN data (empty for OUT).
    pub data: Vec<u8>,
    /// Bytes transferred: `data.len()` for IN, bytes accepted for OUT.
    pub actual_length: usize,
}

/// A USB device function, driven by a host-controller front end.
///
/// The front end calls [`submit`](UsbFunction::submit) and
/// [`unlink`](UsbFunction::unlink) as the host asks, calls
/// [`handle_timeout`](UsbFunction::handle_timeout) no later than
/// [`poll_timeout`](UsbFunction::poll_timeout) says, and after every call
/// drains [`poll_completion`](UsbFunction::poll_completion). `now` never goes
/// backwards between calls.
pub trait UsbFunction {
    /// The speed the device connects at.
    fn speed(&self) -> UsbSpeed;

    /// The host submits a URB. It completes later through `poll_completion`
    /// (a control request or an OUT the device can take at once completes
    /// before this returns).
    fn submit(&mut self, now: Timestamp, urb: Urb);

    /// The host cancels a pending URB. Returns whether it was pending; if so
    /// its completion, with [`UrbStatus::Cancelled`], is queued. Data an IN
    /// URB had not yet completed with stays in the device for the next one.
    fn unlink(&mut self, now: Timestamp, id: u32) -> bool;

    /// The next finished URB, in the order they finished.
    fn poll_completion(&mut self) -> Option<UrbCompletion>;

    /// When the function next needs [`handle_timeout`](UsbFunction::handle_timeout);
    /// `None` when nothing is scheduled.
    fn poll_timeout(&self) -> Option<Timestamp>;

    /// Advances the device's own clock to `now`: everything scheduled up to
    /// then happens, at its own time.
    fn handle_timeout(&mut self, now: Timestamp);

    /// The device has been unplugged: the front end disconnects it from the
    /// host once the completions it queued are delivered.
    fn is_unplugged(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_packet_round_trips_little_endian() {
        let bytes = [0xC0, 0x05, 0x34, 0x12, 0x02, 0x00, 0x02, 0x00];
        let p = SetupPacket::from_bytes(bytes);
        assert_eq!((p.value, p.index, p.length), (0x1234, 2, 2));
        assert!(p.is_in());
        assert_eq!(p.to_bytes(), bytes);
    }
}
