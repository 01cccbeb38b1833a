//! The record that travels from the reader thread to the application.

use std::fmt;

use crate::proto::{LineStatus, ModemStatus};
use crate::time::Timestamp;
use crate::timing::{WireClock, WireWindow};

/// Payload capacity of one [`Chunk`]: one high-speed packet (512 bytes minus
/// the 2 status bytes). A full-speed packet carries at most 62.
pub const CHUNK_CAPACITY: usize = 510;

/// What a chunk is: data, or one of the two events of a port that resumes
/// after an unplug, which travel in the stream (empty payload) so that
/// they reach the application at their point of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Received bytes (possibly none: a loss notice).
    #[default]
    Data,
    /// The link was lost here; the port waits for the device to come back.
    LinkLost,
    /// The device came back after this long (ns).
    Resumed { gap_ns: u64 },
}

/// The payload of one received packet (or one `read()` of a kernel tty),
/// with the status the device sent with it and the time it arrived.
///
/// Chunks live in the ring slots; the application borrows them in place
/// (`recv_timeout` / `try_recv`), so receiving copies nothing.
#[derive(Clone, Copy)]
pub struct Chunk {
    pub(crate) arrived: Timestamp,
    /// Bytes dropped between the previous chunk and this one (channel full).
    pub(crate) lost_before: u64,
    pub(crate) start: u16,
    pub(crate) end: u16,
    pub(crate) modem: ModemStatus,
    pub(crate) line: LineStatus,
    pub(crate) has_status: bool,
    pub(crate) mark: Mark,
    pub(crate) data: [u8; CHUNK_CAPACITY],
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk {
            arrived: Timestamp::default(),
            lost_before: 0,
            start: 0,
            end: 0,
            modem: ModemStatus::default(),
            line: LineStatus::default(),
            has_status: false,
            mark: Mark::Data,
            data: [0; CHUNK_CAPACITY],
        }
    }
}

impl Chunk {
    /// The received bytes (headers already stripped).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.data[self.start as usize..self.end as usize]
    }

    /// When the reader thread saw the packet complete (`CLOCK_MONOTONIC`).
    #[inline]
    pub fn arrived(&self) -> Timestamp {
        self.arrived
    }

    /// The modem-status byte of the packet; `None` on a kernel tty, which
    /// does not deliver it with the data.
    #[inline]
    pub fn modem_status(&self) -> Option<ModemStatus> {
        self.has_status.then_some(self.modem)
    }

    /// The line-status byte of the packet (overrun, parity, framing, break
    /// apply to this packet's bytes); `None` on a kernel tty.
    #[inline]
    pub fn line_status(&self) -> Option<LineStatus> {
        self.has_status.then_some(self.line)
    }

    /// The interval in which these bytes crossed the wire, estimated from
    /// the arrival time, the length and the chip's packet rules on `clock`
    /// (from [`Port::wire_clock`](crate::Port::wire_clock)); see
    /// [`WireWindow`] for what it promises.
    #[inline]
    pub fn wire_window(&self, clock: &WireClock) -> WireWindow {
        clock.window(self.arrived, self.payload().len())
    }

    /// Whether the device flagged a line error (OE, PE, FE, BI) for these bytes.
    #[inline]
    pub fn has_line_error(&self) -> bool {
        self.has_status && self.line.has_error()
    }

    /// Fills the chunk in place. `payload` must fit [`CHUNK_CAPACITY`]; the
    /// reader splits longer runs before calling this.
    #[inline]
    pub(crate) fn fill(
        &mut self,
        payload: &[u8],
        status: Option<(ModemStatus, LineStatus)>,
        arrived: Timestamp,
        lost_before: u64,
    ) {
        let len = payload.len().min(CHUNK_CAPACITY);
        self.data[..len].copy_from_slice(&payload[..len]);
        self.start = 0;
        self.end = len as u16;
        self.arrived = arrived;
        self.lost_before = lost_before;
        self.mark = Mark::Data;
        match status {
            Some((modem, line)) => {
                self.modem = modem;
                self.line = line;
                self.has_status = true;
            }
            None => self.has_status = false,
        }
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("arrived", &self.arrived)
            .field("payload", &self.payload())
            .field("modem", &self.modem_status())
            .field("line", &self.line_status())
            .finish()
    }
}
