//! What crosses the simulated chip's USB side, whoever drives it: the bulk-IN
//! packets the chip sends and the ways a transfer to it can fail (the
//! crate-wide [`TransferError`]).

use crate::time::Timestamp;

/// Largest packet the simulation carries (a high-speed bulk packet).
pub const MAX_PACKET: usize = 512;

/// One bulk-IN packet as the chip sent it.
#[derive(Clone, Copy)]
pub struct InPacket {
    pub(crate) len: u16,
    pub(crate) data: [u8; MAX_PACKET],
    pub(crate) sent_at: Timestamp,
}

impl Default for InPacket {
    fn default() -> Self {
        InPacket {
            len: 0,
            data: [0; MAX_PACKET],
            sent_at: Timestamp::default(),
        }
    }
}

impl InPacket {
    /// The packet's bytes: two status bytes, then the payload.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }

    /// The payload: the packet without its two status bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[2.min(self.len as usize)..]
    }

    /// Whether the packet carries status only (no payload).
    pub fn is_status_only(&self) -> bool {
        self.len <= 2
    }

    /// When the chip put it on the bus (its ideal time: chip lateness excluded).
    pub fn sent_at(&self) -> Timestamp {
        self.sent_at
    }
}

impl std::fmt::Debug for InPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPacket")
            .field("bytes", &self.bytes())
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// How a transfer to the simulated chip failed: the crate-wide type, which
/// the libusb driver reports too (the chip produces `Stall`, `NoDevice` and
/// `TimedOut`).
pub use crate::error::TransferError;
