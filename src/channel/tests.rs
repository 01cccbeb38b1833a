//! Tests of the channel on its own (no reader, no device).

use std::io::Read;
use std::thread;
use std::time::Duration;

use super::*;
use crate::error::Error;
use crate::proto::{LineStatus, ModemStatus};
use crate::time::Timestamp;

/// Pushes and wakes the receiver, as the reader does per completion.
fn push(
    tx: &mut Sender,
    payload: &[u8],
    status: Option<(ModemStatus, LineStatus)>,
    at: Timestamp,
) -> bool {
    let pushed = tx.push(payload, status, at);
    tx.notify();
    pushed
}

fn status() -> Option<(ModemStatus, LineStatus)> {
    Some((
        ModemStatus(0x11),
        LineStatus(LineStatus::THRE | LineStatus::TEMT),
    ))
}

#[test]
fn chunks_arrive_in_order_with_status_and_time() {
    let (mut tx, mut rx, _) = channel(8).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"abc", status(), t));
    assert!(push(&mut tx, b"de", None, t));
    let c = rx.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(c.payload(), b"abc");
    assert_eq!(c.arrived(), t);
    assert_eq!(c.modem_status(), Some(ModemStatus(0x11)));
    assert!(!c.has_line_error());
    let c = rx.try_recv().unwrap().unwrap();
    assert_eq!(c.payload(), b"de");
    assert_eq!(c.line_status(), None);
    assert!(rx.try_recv().unwrap().is_none());
    assert_eq!((rx.delivered_chunks(), rx.delivered_bytes()), (2, 5));
    assert_eq!(rx.delivery_latency().count, 2);
}

#[test]
fn a_full_ring_drops_and_reports_the_loss_where_it_happened() {
    let (mut tx, mut rx, shared) = channel(2).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"A", None, t));
    assert!(push(&mut tx, b"B", None, t));
    assert!(!push(&mut tx, b"CCC", None, t), "third chunk must not fit");
    assert_eq!(rx.recv_timeout(Duration::ZERO).unwrap().payload(), b"A");
    // A handed-out chunk keeps its slot until the next receive.
    assert!(!push(&mut tx, b"-", None, t), "A still holds its slot");
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"B");
    assert!(push(&mut tx, b"D", None, t));
    match rx.try_recv() {
        Err(Error::Overflow { lost_bytes }) => assert_eq!(lost_bytes, 4),
        other => panic!("expected Overflow, got {other:?}"),
    }
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"D");
    assert_eq!(shared.overflow_chunks.get(), 2);
}

#[test]
fn a_loss_with_no_later_data_is_still_reported() {
    let (mut tx, mut rx, _) = channel(1).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"A", None, t));
    assert!(!push(&mut tx, b"BB", None, t));
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"A");
    tx.flush_loss(); // the ring is still full (A is held): the notice waits
    assert!(rx.try_recv().unwrap().is_none());
    tx.flush_loss();
    assert!(matches!(
        rx.try_recv(),
        Err(Error::Overflow { lost_bytes: 2 })
    ));
    assert!(
        rx.try_recv().unwrap().is_none(),
        "the marker carries no data"
    );
}

#[test]
fn closing_delivers_everything_then_disconnected_and_reports_final_loss() {
    let (mut tx, mut rx, _) = channel(1).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"last", None, t));
    assert!(!push(&mut tx, b"lost", None, t));
    tx.close();
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"last");
    assert!(matches!(
        rx.try_recv(),
        Err(Error::Overflow { lost_bytes: 4 })
    ));
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)),
        Err(Error::Disconnected)
    ));
    assert!(
        matches!(rx.try_recv(), Err(Error::Disconnected)),
        "stays disconnected"
    );
}

#[test]
fn dropping_the_sender_wakes_a_blocked_receiver_at_once() {
    let (tx, mut rx, _) = channel(4).unwrap();
    let start = Timestamp::now();
    let h = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(tx);
    });
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(10)),
        Err(Error::Disconnected)
    ));
    assert!(start.elapsed() < Duration::from_secs(5));
    h.join().unwrap();
}

#[test]
fn recv_timeout_times_out() {
    let (_tx, mut rx, _) = channel(4).unwrap();
    let start = Timestamp::now();
    let err = rx.recv_timeout(Duration::from_millis(30)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TimedOut {
                operation: "receive",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn the_fd_becomes_readable_when_a_chunk_arrives() {
    use std::os::fd::AsFd;
    let (mut tx, mut rx, _) = channel(4).unwrap();
    assert!(rx.try_recv().unwrap().is_none());
    let readable = |rx: &Receiver| {
        let mut fds = [crate::sys::pollfd(rx.as_fd(), libc::POLLIN)];
        crate::sys::poll(&mut fds, Some(Duration::ZERO)).unwrap() == 1
    };
    assert!(!readable(&rx), "empty and drained: not readable");
    push(&mut tx, b"x", None, Timestamp::now());
    assert!(readable(&rx));
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"x");
    assert!(rx.try_recv().unwrap().is_none());
    assert!(!readable(&rx), "an empty try_recv clears the readiness");
}

#[test]
fn io_read_splits_and_joins_chunks() {
    let (mut tx, mut rx, _) = channel(8).unwrap();
    let t = Timestamp::now();
    push(&mut tx, b"hello ", None, t);
    push(&mut tx, b"world", None, t);
    let mut buf = [0u8; 4];
    assert_eq!(rx.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"hell");
    // A chunk-wise receive after a partial read returns the rest of the chunk.
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"o ");
    let mut rest = Vec::new();
    tx.close();
    let err = rx.read_to_end(&mut rest).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(rest, b"world");
}

#[test]
fn mio_reports_data_and_the_drain_rule_rearms() {
    use mio::{Events, Interest, Poll, Token};
    let (mut tx, mut rx, _) = channel(64).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut rx, Token(7), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let producer = thread::spawn(move || {
        for i in 0..200u8 {
            while tx.slots() == 0 {
                thread::yield_now();
            }
            assert!(push(&mut tx, &[i], None, Timestamp::now()));
            if i % 50 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let mut got = Vec::new();
    while got.len() < 200 {
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(
            !events.is_empty(),
            "poll timed out with {} of 200 bytes",
            got.len()
        );
        loop {
            match rx.try_recv() {
                Ok(Some(c)) => got.extend_from_slice(c.payload()),
                Ok(None) => break,
                Err(Error::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    producer.join().unwrap();
    assert_eq!(got, (0..200u8).collect::<Vec<_>>());
}

/// Hammers the sleep/wake handshake: a lost wakeup would hang a receive
/// until its timeout, which fails the test.
#[test]
fn no_wakeup_is_lost_under_stress() {
    let (mut tx, mut rx, _) = channel(4).unwrap();
    const N: u32 = 200_000;
    let producer = thread::spawn(move || {
        let mut next = 0u32;
        while next < N {
            if tx.slots() > 0 {
                assert!(push(&mut tx, &next.to_le_bytes(), None, Timestamp::now()));
                next += 1;
            } else {
                std::hint::spin_loop();
            }
            if next.is_multiple_of(1000) {
                thread::yield_now();
            }
        }
    });
    for expect in 0..N {
        let c = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("lost wakeup");
        assert_eq!(c.payload(), expect.to_le_bytes());
    }
    producer.join().unwrap();
}

#[test]
fn resume_events_come_once_each_in_order_after_a_loss_and_keep_the_stream_open() {
    let (mut tx, mut rx, _) = channel(3).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"ab", None, t));
    assert!(push(&mut tx, b"cd", None, t));
    assert!(push(&mut tx, b"ef", None, t));
    assert!(!push(&mut tx, b"lost", None, t), "the ring is full");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap().payload(),
        b"ab"
    );
    assert_eq!(rx.try_recv().unwrap().unwrap().payload(), b"cd");
    assert!(
        tx.push_mark(Mark::LinkLost, t),
        "carries the loss before it"
    );
    assert!(
        !tx.push_mark(Mark::Resumed { gap_ns: 1_500 }, t),
        "no room yet"
    );
    // A discard keeps the events: they are not data.
    assert_eq!(rx.discard_pending(), 2);
    assert!(tx.push_mark(Mark::Resumed { gap_ns: 1_500 }, t));
    assert!(matches!(
        rx.try_recv(),
        Err(Error::Overflow { lost_bytes: 4 })
    ));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(
        rx.try_recv(),
        Err(Error::Resumed { gap }) if gap == Duration::from_nanos(1_500)
    ));
    assert!(rx.try_recv().unwrap().is_none(), "each once, and open");
    assert!(push(&mut tx, b"gh", None, t));
    let mut buf = [0; 4];
    assert_eq!(rx.read(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"gh");
}

#[test]
fn a_resume_event_reads_as_interrupted_which_read_exact_passes_over() {
    let (mut tx, mut rx, _) = channel(8).unwrap();
    let t = Timestamp::now();
    assert!(push(&mut tx, b"ab", None, t));
    assert!(tx.push_mark(Mark::Resumed { gap_ns: 7 }, t));
    assert!(push(&mut tx, b"cd", None, t));
    let mut buf = [0; 4];
    rx.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcd");
}
