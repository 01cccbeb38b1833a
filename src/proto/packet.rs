//! Splitting one bulk-IN transfer into the chip's packets.
//!
//! The chip opens every max-packet-size chunk of a transfer with two status
//! bytes ([`ModemStatus`], [`LineStatus`]), so a 512-byte transfer on a
//! 64-byte endpoint holds 8 headers and at most 496 payload bytes. A chunk
//! of exactly 2 bytes is a status-only packet (the latency-timer heartbeat);
//! only the last chunk of a transfer can be short. This is how the kernel's
//! `ftdi_process_read_urb`, libftdi, pyftdi and QEMU all walk a transfer
//! (docs/ftdi-protocol.md §4.2).
//!
//! The iterator borrows the transfer buffer: no copy, no allocation.

use std::iter::FusedIterator;

use super::status::{LineStatus, ModemStatus};

/// The endpoint size assumed when the descriptor says 0, as the kernel does
/// for misprogrammed FT232R EEPROMs (`ftdi_set_max_packet_size`, §1).
const FALLBACK_MAX_PACKET_SIZE: usize = 64;

/// Iterates over the packets in `transfer`, one bulk-IN transfer as received,
/// for an endpoint whose wMaxPacketSize is `max_packet_size`.
///
/// - `max_packet_size == 0` is treated as 64, like the kernel.
/// - `max_packet_size == 1` makes every chunk 1 byte long, so every byte is
///   reported as [`MalformedPacket`] (no real endpoint is that small).
/// - `max_packet_size == 2` makes every chunk a status-only packet.
/// - An empty transfer yields nothing.
///
/// Never panics, whatever the input.
pub fn packets(transfer: &[u8], max_packet_size: usize) -> Packets<'_> {
    let max_packet_size = if max_packet_size == 0 {
        FALLBACK_MAX_PACKET_SIZE
    } else {
        max_packet_size
    };
    Packets {
        rest: transfer,
        offset: 0,
        max_packet_size,
    }
}

/// Iterator returned by [`packets`].
#[derive(Clone, Debug)]
pub struct Packets<'a> {
    /// The part of the transfer not yet yielded.
    rest: &'a [u8],
    /// Offset of `rest` within the transfer, for error reports.
    offset: usize,
    /// Chunk size, never 0.
    max_packet_size: usize,
}

/// One packet: the two status bytes and the data that followed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Status byte 0: modem lines.
    pub modem: ModemStatus,
    /// Status byte 1: line status. Its error bits apply to this packet's
    /// payload as a whole (§4.2).
    pub line: LineStatus,
    /// The data bytes, borrowed from the transfer. Empty for a status-only
    /// packet.
    pub payload: &'a [u8],
}

impl Packet<'_> {
    /// True for a packet with no data: the 2-byte heartbeat the chip sends
    /// every latency period, or on a modem-line change.
    pub const fn is_status_only(&self) -> bool {
        self.payload.is_empty()
    }
}

/// A chunk too short to hold the two status bytes. Only the last chunk of a
/// transfer can be short, so this means a 1-byte tail (the kernel drops such
/// packets as malformed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed FTDI packet: {len} byte(s) at offset {offset}, a packet needs 2 status bytes")]
pub struct MalformedPacket {
    /// Offset of the chunk in the transfer.
    pub offset: usize,
    /// Length of the chunk (less than 2).
    pub len: usize,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>, MalformedPacket>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let take = self.max_packet_size.min(self.rest.len());
        let (chunk, rest) = self.rest.split_at(take);
        let offset = self.offset;
        self.rest = rest;
        self.offset += take;
        Some(match *chunk {
            [modem, line, ref payload @ ..] => Ok(Packet {
                modem: ModemStatus(modem),
                line: LineStatus(line),
                payload,
            }),
            _ => Err(MalformedPacket {
                offset,
                len: chunk.len(),
            }),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(self.max_packet_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Packets<'_> {}

impl FusedIterator for Packets<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_transfer_yields_nothing() {
        assert_eq!(packets(&[], 64).count(), 0);
        assert_eq!(packets(&[], 0).len(), 0);
    }

    #[test]
    fn headers_at_every_boundary() {
        // Two full 4-byte chunks and a 3-byte tail.
        let t = [
            0x11, 0x60, b'a', b'b', 0x01, 0x62, b'c', b'd', 0x31, 0x00, b'e',
        ];
        let got: Vec<_> = packets(&t, 4).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Packet {
                modem: ModemStatus(0x11),
                line: LineStatus(0x60),
                payload: b"ab"
            }
        );
        assert_eq!(
            got[1],
            Packet {
                modem: ModemStatus(0x01),
                line: LineStatus(0x62),
                payload: b"cd"
            }
        );
        assert_eq!(
            got[2],
            Packet {
                modem: ModemStatus(0x31),
                line: LineStatus(0x00),
                payload: b"e"
            }
        );
    }

    #[test]
    fn status_only_and_malformed() {
        let t = [0x01, 0x60];
        let got: Vec<_> = packets(&t, 64).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap().is_status_only());

        let t = [0x01, 0x60, b'x', 0x01];
        let got: Vec<_> = packets(&t, 3).collect();
        assert_eq!(got[0].unwrap().payload, b"x");
        assert_eq!(got[1], Err(MalformedPacket { offset: 3, len: 1 }));
    }

    #[test]
    fn tiny_packet_sizes() {
        let t = [1, 2, 3];
        let got: Vec<_> = packets(&t, 1).collect();
        assert_eq!(
            got,
            (0..3)
                .map(|offset| Err(MalformedPacket { offset, len: 1 }))
                .collect::<Vec<_>>()
        );
        let t = [1, 2, 3, 4];
        assert!(packets(&t, 2).all(|p| p.unwrap().is_status_only()));
        // 0 means 64.
        let t = [0u8; 130];
        assert_eq!(packets(&t, 0).len(), 3);
    }

    #[test]
    fn exact_size_and_fused() {
        let t = [0u8; 512];
        let mut it = packets(&t, 64);
        assert_eq!(it.len(), 8);
        it.next();
        assert_eq!(it.len(), 7);
        for _ in 0..7 {
            assert!(it.next().is_some());
        }
        assert_eq!(it.len(), 0);
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    }
}
