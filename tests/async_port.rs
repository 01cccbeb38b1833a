//! `AsyncPort` (feature `tokio`) on the simulated chip: AsyncRead and
//! AsyncWrite through the channel's fd, readiness after queued data, the
//! async transact's accounting, that it awaits (other tasks run on a
//! current-thread runtime meanwhile), and that a cancelled one is settled.
//! Timeouts only bound how long a failure takes to show.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ftdi_rt::sim::{Frobnicator, Loopback, SimChip, SimConfig};
use ftdi_rt::{AsyncPort, Port, PortConfig, ReplyEnd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(5);

fn port(device: impl ftdi_rt::sim::Device) -> Port {
    let chip = SimChip::new(device, SimConfig::default()).unwrap();
    Port::open_sim(chip, &PortConfig::default().best_effort()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_through_tokio() {
    let mut port = AsyncPort::new(port(Loopback::new())).unwrap();
    let message: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    port.write_all(&message).await.unwrap();
    let mut got = vec![0u8; message.len()];
    timeout(PATIENCE, port.read_exact(&mut got))
        .await
        .expect("the loopback's bytes within 5 s")
        .unwrap();
    assert_eq!(got, message);
    // Nothing more is coming: a read waits (here until the timeout).
    let mut one = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(20), port.read(&mut one))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn data_queued_before_registration_is_seen() {
    let mut sync = port(Loopback::new());
    sync.write_all(b"early").unwrap();
    // Wait (blocking is fine here) until the reader has queued all of it.
    let start = std::time::Instant::now();
    while sync.receiver().queued_bytes() < 5 {
        assert!(start.elapsed() < PATIENCE);
        std::thread::yield_now();
    }
    let mut port = AsyncPort::new(sync).unwrap();
    let mut got = [0u8; 5];
    timeout(PATIENCE, port.read_exact(&mut got))
        .await
        .expect("queued bytes are readable at once")
        .unwrap();
    assert_eq!(&got, b"early");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transact_keeps_the_deadline_accounting() {
    let mut port = AsyncPort::new(port(Frobnicator::new(Duration::from_micros(200)))).unwrap();
    for i in 0..20u32 {
        let request = common::request(i);
        // Generous: the figure under test is the accounting, not the speed.
        let t = port
            .transact(&request, ReplyEnd::Length(1), Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(t.bytes(), [Frobnicator::reply_for(&request)]);
    }
    let s = port.get_ref().stats();
    assert_eq!((s.transactions, s.transaction_latency.count), (20, 20));
    assert_eq!(s.bytes_written, 20 * 7);
}

#[tokio::test(flavor = "current_thread")]
async fn transact_awaits_so_other_tasks_run_on_a_current_thread_runtime() {
    // The device takes 20 ms to answer: a transaction that blocked the
    // only thread would leave the ticker no turn until it returned.
    let mut port = AsyncPort::new(port(Frobnicator::new(Duration::from_millis(20)))).unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let request = common::request(1);
    let t = port
        .transact(&request, ReplyEnd::Length(1), Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(t.bytes(), [Frobnicator::reply_for(&request)]);
    assert!(
        ticks.load(Ordering::Relaxed) > 0,
        "the ticker never ran while the transaction waited"
    );
    ticker.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_transaction_is_settled_never_taken_for_the_next_reply() {
    let mut port = AsyncPort::new(port(Frobnicator::new(Duration::from_millis(30)))).unwrap();
    let first = common::request(1);
    // Given up on after 5 ms: the request went out, its reply comes later.
    let cancelled = timeout(
        Duration::from_millis(5),
        port.transact(&first, ReplyEnd::Length(1), Duration::from_millis(500)),
    )
    .await;
    assert!(cancelled.is_err(), "the 30 ms reply came within 5 ms");
    let second = common::request(2);
    let t = timeout(
        PATIENCE,
        port.transact(&second, ReplyEnd::Length(1), Duration::from_millis(500)),
    )
    .await
    .expect("the second transaction ends")
    .unwrap();
    assert_eq!(
        t.bytes(),
        [Frobnicator::reply_for(&second)],
        "the cancelled request's reply was taken for the next one"
    );
    let s = port.get_ref().stats();
    assert_eq!(s.stale_bytes, 1, "the first reply was settled as stale");
    assert_eq!((s.transactions, s.deadline_misses), (2, 0));
}
