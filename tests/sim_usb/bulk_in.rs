//! Bulk IN as a host controller sees it: one pending IN URB is the host
//! issuing IN tokens.

use std::time::Duration;

use ftdi_rt::sim::usb::{UrbCompletion, UrbStatus, VirtualFtdi};
use ftdi_rt::sim::{Device, Line, Loopback, WireByte};
use ftdi_rt::{Chip, Interface, LineStatus};

use crate::host::{Host, T0, payload};

const A: Interface = Interface::A;

/// Sends `n` bytes (0, 1, 2, ...) back as soon as the host sends anything.
fn burst(n: usize) -> impl Device {
    move |byte: WireByte, line: &mut Line<'_>| {
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        line.send_at(byte.end, &data);
    }
}

fn ft232r_with(device: impl Device) -> Host {
    Host::configured(
        VirtualFtdi::builder(Chip::Ft232R)
            .device(A, device)
            .build(T0)
            .unwrap(),
    )
}

#[test]
fn an_idle_ft232r_sends_a_status_packet_per_latency_period_while_an_in_urb_is_pending() {
    for (latency_ms, want) in [(1u8, 999..=1001), (16, 62..=63)] {
        for urb_len in [64, 512] {
            let mut h = Host::ft232r();
            h.setup(A, 115_200, latency_ms);
            // Settle one period, then count one simulated second.
            h.run_for(Duration::from_millis(u64::from(latency_ms)));
            let start = h.now;
            let got = h.stream_in(A, urb_len, 1, start + Duration::from_secs(1));
            let n = got.iter().filter(|(t, _)| *t > start).count();
            assert!(
                want.contains(&n),
                "latency {latency_ms} ms, {urb_len}-byte URBs: {n} status packets in 1 s"
            );
            for pair in got.windows(2) {
                let gap = pair[1].0.saturating_since(pair[0].0);
                assert_eq!(gap, Duration::from_millis(u64::from(latency_ms)));
            }
            for (_, c) in &got {
                assert_eq!(
                    (c.status, &c.data[..]),
                    (UrbStatus::Completed, &[0x01, 0x60][..])
                );
            }
        }
    }
}

#[test]
fn without_an_in_urb_nothing_is_sent_and_data_waits_in_the_fifo() {
    let mut h = ft232r_with(Loopback::new());
    h.setup(A, 115_200, 1);
    h.submit_out(A, b"waiting");
    h.run_for(Duration::from_millis(50));
    assert_eq!(
        h.dev.counters(A).unwrap().packets,
        0,
        "no IN token, no packet"
    );
    let id = h.submit_in(A, 64);
    let (at, c) = h
        .take(id)
        .expect("the held data goes at the first IN token");
    assert_eq!(at, h.now);
    assert_eq!(c.data[..2], [0x01, 0x60]);
    assert_eq!(payload(&c.data, 64), b"waiting");
}

#[test]
fn an_unread_fifo_overruns_with_oe_once_and_keeps_the_first_bytes() {
    let mut h = ft232r_with(burst(1000));
    h.setup(A, 921_600, 1);
    h.submit_out(A, b"!");
    h.run_for(Duration::from_millis(20)); // 1000 bytes at 921600 Bd take 11 ms
    let fifo = Chip::Ft232R.uart_to_usb_fifo();
    assert_eq!(
        h.dev.counters(A).unwrap().overrun_bytes,
        (1000 - fifo) as u64
    );
    let end = h.now + Duration::from_millis(20);
    let got = h.stream_in(A, 64, 1, end);
    let data: Vec<u8> = got.iter().flat_map(|(_, c)| payload(&c.data, 64)).collect();
    assert_eq!(data, counting(fifo));
    let oe: Vec<bool> = got
        .iter()
        .filter(|(_, c)| c.data.len() > 2)
        .map(|(_, c)| c.data[1] & LineStatus::OE != 0)
        .collect();
    assert!(oe[0], "OE on the first packet after the loss");
    assert_eq!(oe.iter().filter(|&&e| e).count(), 1, "and only there");
}

/// The IN URB of `urb_len` bytes pending while the device answers a byte
/// with a burst of `n` at 3 MBd (latency 16 ms), as it is after `run`.
fn burst_into_urb(n: usize, urb_len: usize, run: Duration) -> UrbCompletion {
    let mut h = ft232r_with(burst(n));
    h.setup(A, 3_000_000, 16);
    let id = h.submit_in(A, urb_len);
    h.submit_out(A, b"!");
    h.run_for(run);
    h.take(id).expect("the IN URB completed").1
}

fn counting(n: usize) -> Vec<u8> {
    (0..n).map(|i| i as u8).collect()
}

#[test]
fn a_transfer_ends_on_a_short_packet_or_when_the_urb_is_full() {
    // 150 bytes: two full packets (62 + 62), then 26 at the latency timer.
    let c = burst_into_urb(150, 512, Duration::from_millis(20));
    assert_eq!(c.status, UrbStatus::Completed);
    assert_eq!(c.data.len(), 64 + 64 + 28);
    for header in c.data.chunks(64) {
        assert_eq!(header[0], 0x01, "every packet starts with its status");
    }
    assert_eq!(payload(&c.data, 64), counting(150));

    // A URB of two packets completes full, without waiting for a short one.
    let c = burst_into_urb(500, 128, Duration::from_millis(2));
    assert_eq!((c.status, c.actual_length), (UrbStatus::Completed, 128));
    assert_eq!(payload(&c.data, 64), counting(124));

    // Room for less than a packet: the device babbles.
    let c = burst_into_urb(500, 100, Duration::from_millis(2));
    assert_eq!((c.status, c.data.len()), (UrbStatus::Overflow, 100));
}

#[test]
fn pending_in_urbs_queue_in_order_and_only_the_head_receives() {
    let mut h = Host::ft232r();
    h.setup(A, 115_200, 1);
    let ids: Vec<u32> = (0..3).map(|_| h.submit_in(A, 512)).collect();
    h.run_for(Duration::from_millis(3));
    let order: Vec<(u32, u64)> = h
        .done
        .iter()
        .map(|(t, c)| (c.id, t.saturating_since(T0).as_millis() as u64))
        .collect();
    assert_eq!(order, [(ids[0], 1), (ids[1], 2), (ids[2], 3)]);
}

#[test]
fn an_unlinked_in_urb_leaves_its_data_for_the_next() {
    // 200 bytes at 3 MBd: three full packets go into the pending 512-byte
    // URB within a millisecond; 14 bytes wait for the 16 ms timer.
    let mut h = ft232r_with(burst(200));
    h.setup(A, 3_000_000, 16);
    let first = h.submit_in(A, 512);
    let behind = h.submit_in(A, 512);
    let out = h.submit_out(A, b"!");
    assert_eq!(h.take(out).unwrap().1.status, UrbStatus::Completed);
    h.run_for(Duration::from_millis(2));
    assert!(
        h.done.is_empty(),
        "three full packets do not complete 512 bytes"
    );
    assert!(h.unlink(behind), "a URB behind the head");
    assert!(h.unlink(first));
    assert!(!h.unlink(first), "no longer pending");
    for id in [behind, first] {
        let (_, c) = h.take(id).unwrap();
        assert_eq!((c.status, c.actual_length), (UrbStatus::Cancelled, 0));
    }
    h.run_for(Duration::from_millis(30));
    assert_eq!(
        h.dev.counters(A).unwrap().packets,
        3,
        "nothing sent without a token"
    );
    let next = h.submit_in(A, 512);
    h.run_for(Duration::from_millis(20));
    let (_, c) = h
        .take(next)
        .expect("held packets, then the rest at the timer");
    assert_eq!(c.data.len(), 3 * 64 + 16);
    assert_eq!(payload(&c.data, 64), counting(200));
}
