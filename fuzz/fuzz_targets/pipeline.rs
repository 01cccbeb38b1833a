//! Fuzz the reader pipeline: arbitrary bulk-IN completions, an arbitrary max
//! packet size and channel capacity, through `Pipeline::on_completion` into
//! the channel and out of the application's `Receiver`.
//!
//! Run with `cargo fuzz run pipeline -s none` (stable toolchain). Checked:
//! nothing panics, and the byte accounting is exact: the application gets
//! every payload byte in order, except runs the channel dropped, each
//! reported as `Error::Overflow { lost_bytes }` at its place in the stream;
//! the counters agree with `proto::packets` read independently.
//!
//! Input: max packet size (2 bytes, any value: 0 means 64, above 512 the
//! pipeline must still cope), channel capacity (1 byte, 1..=16 chunks), then
//! operations: `0|1 len bytes..` a completion of `len * 5` bytes, `2` the end
//! of a reader turn, `3 k` the application takes up to `k` chunks.
#![no_main]

use ftdi_rt::Error;
use ftdi_rt::fuzz_support::{PipelineCounts, PipelineHarness};
use ftdi_rt::proto::packets;
use libfuzzer_sys::fuzz_target;

/// The application's view: what it must still receive, and where it is.
struct Expected {
    payload: Vec<u8>,
    at: usize,
}

impl Expected {
    /// Takes up to `limit` receive results; true once the stream ended.
    fn receive(&mut self, h: &mut PipelineHarness, limit: usize) -> bool {
        for _ in 0..limit {
            match h.receiver().try_recv() {
                Ok(Some(chunk)) => {
                    let got = chunk.payload();
                    assert!(!got.is_empty(), "empty chunks are never handed out");
                    let end = self.at + got.len();
                    assert!(end <= self.payload.len(), "more bytes than were sent");
                    assert_eq!(got, &self.payload[self.at..end], "bytes out of order");
                    self.at = end;
                }
                Ok(None) => return false,
                Err(Error::Overflow { lost_bytes }) => {
                    assert!(lost_bytes > 0, "a loss notice reports a loss");
                    let lost = usize::try_from(lost_bytes).unwrap();
                    assert!(self.at + lost <= self.payload.len(), "lost more than sent");
                    self.at += lost;
                }
                Err(Error::Disconnected) => return true,
                Err(e) => panic!("unexpected receive error: {e}"),
            }
        }
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, cap, ops @ ..] = data else {
        return;
    };
    let mut input: &[u8] = ops;
    let mps = usize::from(u16::from_le_bytes([*a, *b]));
    let capacity = usize::from(cap % 16) + 1;
    let Ok(mut h) = PipelineHarness::new(mps, capacity) else {
        return;
    };
    let mut expected = Expected {
        payload: Vec::new(),
        at: 0,
    };
    let mut counts = PipelineCounts::default();
    while let [op, rest @ ..] = input {
        input = rest;
        match op % 4 {
            0 | 1 => {
                let [len, rest @ ..] = input else { break };
                let n = (usize::from(*len) * 5).min(rest.len());
                let (transfer, rest) = rest.split_at(n);
                input = rest;
                for packet in packets(transfer, mps) {
                    match packet {
                        Ok(p) => {
                            counts.packets += 1;
                            if p.is_status_only() {
                                counts.status_only += 1;
                            }
                            counts.payload_bytes += p.payload.len() as u64;
                            expected.payload.extend_from_slice(p.payload);
                        }
                        Err(_) => counts.malformed += 1,
                    }
                }
                h.complete(transfer);
            }
            2 => h.after_wait(),
            _ => {
                let [k, rest @ ..] = input else { break };
                input = rest;
                assert!(!expected.receive(&mut h, usize::from(*k)), "ended early");
            }
        }
    }
    assert_eq!(h.counts(), counts);
    h.close();
    // Everything still in the channel, then the end: a bounded number of steps.
    let steps = expected.payload.len() + 2 * capacity + 4;
    assert!(expected.receive(&mut h, steps), "the stream did not end");
    assert_eq!(expected.at, expected.payload.len(), "bytes unaccounted for");
});
