//! Header stripping plus channel push/pop, on one core.
//!
//! Each iteration runs completed transfers through the reader's pipeline
//! (`proto::packets`, status tracking, one chunk pushed per packet, one
//! wakeup per completion) and takes every chunk out of the channel: the whole
//! per-packet CPU cost of the hot path except the thread switch.
//! Throughput is payload bytes.
//!
//! - `stream-*`: 8 single-packet completions, then the consumer drains
//!   (a busy stream: the consumer finds data waiting).
//! - `pingpong-*`: one single-packet completion, then the consumer drains
//!   and finds the ring empty, arming the eventfd; the next push must signal
//!   it. Two system calls per packet: the cost of a consumer that sleeps
//!   between packets.
//!
//! Run: `cargo bench --bench channel`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ftdi_rt::bench_support::StripAndChannel;

/// One full packet of `mps` bytes with the usual idle header (0x01 0x60).
fn packet(mps: usize, seed: usize) -> Vec<u8> {
    let mut p = vec![0x01, 0x60];
    p.extend((0..mps - 2).map(|i| (i + seed) as u8));
    p
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("strip+push+pop");
    for (name, mps, batch) in [
        ("stream-hs-512B", 512, 8),
        ("stream-fs-64B", 64, 8),
        ("pingpong-hs-512B", 512, 1),
        ("pingpong-fs-64B", 64, 1),
    ] {
        let packets: Vec<Vec<u8>> = (0..batch).map(|i| packet(mps, i)).collect();
        let transfers: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        let payload = ((mps - 2) * batch) as u64;
        let mut path = StripAndChannel::new(mps, 1024).expect("eventfd");
        group.throughput(Throughput::Bytes(payload));
        group.bench_function(name, |b| {
            b.iter(|| {
                let n = path.run(black_box(&transfers));
                assert_eq!(n as u64, payload);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
