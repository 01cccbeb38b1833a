//! Fuzz `ftdi_rt::proto::packets`: any bytes, any max packet size.
//!
//! Run with `cargo fuzz run packets -s none` (stable toolchain; with ASan,
//! `cargo +nightly fuzz run packets`).
//! The first two input bytes choose max_packet_size (0..=1023, where 0 means
//! 64); the rest is the transfer.
#![no_main]

use ftdi_rt::proto::packets;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mps, transfer) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b]) % 1024), rest),
        _ => return,
    };
    let effective = if mps == 0 { 64 } else { mps };

    let it = packets(transfer, mps);
    assert_eq!(it.len(), transfer.len().div_ceil(effective));

    // Concatenated payloads equal the transfer minus the two header bytes at
    // every max-packet boundary, and only a short last chunk can be malformed.
    let mut expected = transfer
        .iter()
        .enumerate()
        .filter(|&(i, _)| i % effective >= 2)
        .map(|(_, b)| *b);
    let mut offset = 0;
    for item in it {
        let chunk_len = effective.min(transfer.len() - offset);
        match item {
            Ok(packet) => {
                assert_eq!(packet.payload.len() + 2, chunk_len);
                assert_eq!(packet.modem.0, transfer[offset]);
                assert_eq!(packet.line.0, transfer[offset + 1]);
                for &b in packet.payload {
                    assert_eq!(Some(b), expected.next());
                }
            }
            Err(e) => {
                assert!(chunk_len < 2);
                assert_eq!((e.offset, e.len), (offset, chunk_len));
            }
        }
        offset += chunk_len;
    }
    assert_eq!(offset, transfer.len());
    assert_eq!(expected.next(), None);
});
