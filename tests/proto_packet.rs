//! Bulk-IN transfer splitting: the header at every max-packet boundary, the
//! status-only and malformed cases, and robustness on arbitrary input.

use ftdi_rt::proto::{LineStatus, MalformedPacket, ModemStatus, Packet, packets};
use proptest::prelude::*;

/// The transfer minus the two header bytes at every `mps` boundary, by
/// position: the reference the iterator is checked against.
fn strip_headers(transfer: &[u8], mps: usize) -> Vec<u8> {
    let mps = if mps == 0 { 64 } else { mps };
    transfer
        .iter()
        .enumerate()
        .filter(|&(i, _)| i % mps >= 2)
        .map(|(_, &b)| b)
        .collect()
}

#[test]
fn full_speed_512_byte_transfer_has_eight_headers() {
    let mut t = Vec::new();
    for i in 0..8u8 {
        t.extend_from_slice(&[0x11 | (i << 4), 0x60]);
        t.extend(std::iter::repeat_n(i, 62));
    }
    let got: Vec<Packet<'_>> = packets(&t, 64).map(Result::unwrap).collect();
    assert_eq!(got.len(), 8);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.modem, ModemStatus(0x11 | ((i as u8) << 4)));
        assert_eq!(p.line, LineStatus(0x60));
        assert_eq!(p.payload, &[i as u8; 62][..]);
        assert!(!p.is_status_only());
    }
    assert_eq!(strip_headers(&t, 64).len(), 8 * 62);
}

#[test]
fn high_speed_transfer() {
    let mut t = vec![0u8; 4096];
    for chunk in t.chunks_mut(512) {
        chunk[0] = 0x01;
        chunk[1] = 0x62;
    }
    let got: Vec<_> = packets(&t, 512).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(got.len(), 8);
    assert!(
        got.iter()
            .all(|p| p.payload.len() == 510 && p.line.overrun())
    );
}

#[test]
fn heartbeat_and_short_tail() {
    // A lone heartbeat.
    let hb = [0x01, 0x60];
    let p = packets(&hb, 64).next().unwrap().unwrap();
    assert!(p.is_status_only());
    assert_eq!(p.payload, &[] as &[u8]);
    // A full packet followed by a heartbeat (2-byte last chunk).
    let mut t = vec![0x01, 0x60];
    t.extend([b'x'; 62]);
    t.extend([0x31, 0x60]);
    let got: Vec<_> = packets(&t, 64).map(Result::unwrap).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].modem, ModemStatus(0x31));
    assert!(got[1].is_status_only());
    // A 1-byte tail is malformed and reported with its offset.
    t.truncate(65);
    let got: Vec<_> = packets(&t, 64).collect();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ok());
    assert_eq!(got[1], Err(MalformedPacket { offset: 64, len: 1 }));
    assert!(got[1].unwrap_err().to_string().contains("offset 64"));
}

#[test]
fn zero_max_packet_size_means_64() {
    let t = vec![0xAA; 200];
    let a: Vec<_> = packets(&t, 0).collect();
    let b: Vec<_> = packets(&t, 64).collect();
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn invariants(
        transfer in prop::collection::vec(any::<u8>(), 0..4096),
        mps in prop_oneof![0usize..=4, Just(64), Just(512), 0usize..=1024],
    ) {
        let it = packets(&transfer, mps);
        let expected_len = it.len();
        let eff = if mps == 0 { 64 } else { mps };
        prop_assert_eq!(expected_len, transfer.len().div_ceil(eff));

        let mut payload = Vec::new();
        let mut offset = 0;
        let mut count = 0;
        for (i, item) in it.enumerate() {
            count += 1;
            let chunk_len = eff.min(transfer.len() - offset);
            // Only the last chunk may be short.
            if i + 1 < expected_len {
                prop_assert_eq!(chunk_len, eff);
            }
            match item {
                Ok(p) => {
                    prop_assert_eq!(p.modem, ModemStatus(transfer[offset]));
                    prop_assert_eq!(p.line, LineStatus(transfer[offset + 1]));
                    prop_assert_eq!(p.payload.len(), chunk_len - 2);
                    prop_assert_eq!(p.is_status_only(), chunk_len == 2);
                    // Borrowed from the transfer, not copied.
                    prop_assert!(std::ptr::eq(p.payload.as_ptr(), transfer[offset + 2..].as_ptr()));
                    payload.extend_from_slice(p.payload);
                }
                Err(e) => {
                    prop_assert_eq!(e, MalformedPacket { offset, len: chunk_len });
                    prop_assert!(chunk_len < 2);
                }
            }
            offset += chunk_len;
        }
        prop_assert_eq!(count, expected_len);
        prop_assert_eq!(offset, transfer.len());
        prop_assert_eq!(payload, strip_headers(&transfer, mps));
    }

    #[test]
    fn never_panics_and_is_fused(transfer in prop::collection::vec(any::<u8>(), 0..600), mps in any::<usize>()) {
        let mut it = packets(&transfer, mps);
        while it.next().is_some() {}
        prop_assert!(it.next().is_none());
        prop_assert_eq!(it.len(), 0);
    }
}
