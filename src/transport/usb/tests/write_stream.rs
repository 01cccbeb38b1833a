//! The write-behind OUT stream through the event loop, against the fake
//! transfer set: two transfers in flight, byte order, failures reported for
//! the bytes they cost, control requests ordered after earlier writes.

use std::sync::Arc;
use std::time::Duration;

use super::fake::{FakeTransfers, OUT_BUFFER, State};
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::{ControlRequest, Interface};
use crate::transport::ftdi::WriteError;
use crate::transport::usb::event_loop::{DRAIN_LIMIT, EventLoop, Transfers};
use crate::transport::usb::mailbox::{Client, mailbox};

const T: Duration = Duration::from_millis(100);
/// Nothing to wait for: the test plays the device between calls.
const NOW: Duration = Duration::ZERO;

/// A loop whose write queue holds two transfers' worth, as on a device.
fn event_loop() -> (EventLoop<FakeTransfers>, Client) {
    let wake = Arc::new(Doorbell::new().unwrap());
    let (client, server) = mailbox(wake.clone(), 2 * OUT_BUFFER, Duration::ZERO).unwrap();
    (EventLoop::new(FakeTransfers::new(1), server, wake), client)
}

fn turn(l: &mut EventLoop<FakeTransfers>) {
    l.turn(Duration::ZERO, &mut |_| {}).unwrap();
}

/// Bytes that show their position.
fn stream(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn two_transfers_stay_in_flight_and_the_bytes_go_out_in_order() {
    let (mut l, client) = event_loop();
    let data = stream(3 * OUT_BUFFER + 100);
    let mut written = client.write(&data, T).unwrap();
    assert_eq!(written, 2 * OUT_BUFFER, "the queue's worth, at once");
    turn(&mut l);
    let fake = l.transfers();
    assert_eq!(fake.submitted_out, [0, 1], "both in flight");
    assert_eq!(
        fake.outs[0].timeout_ms, 0,
        "none: flow control may hold them"
    );
    // The queue is free again while both are on the bus: the next write
    // returns at once too.
    written += client.write(&data[written..], T).unwrap();
    assert_eq!(written, data.len());
    turn(&mut l);
    assert_eq!(l.transfers().submitted_out, [0, 1], "no third transfer");
    assert_eq!(
        client.flush(NOW),
        Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }))
    );

    let mut sent = Vec::new();
    for k in [0, 1, 0, 1] {
        let out = &mut l.transfers().outs[k];
        sent.extend_from_slice(&out.data);
        let n = out.data.len();
        out.finish(Ok(n));
        // Reaped and refilled in the same turn.
        turn(&mut l);
    }
    assert_eq!(l.transfers().submitted_out, [0, 1, 0, 1]);
    assert_eq!(sent, data, "every byte, in order, once");
    assert_eq!(client.flush(NOW), Ok(()));
}

#[test]
fn a_failed_transfer_cancels_the_one_behind_it_and_the_next_write_reports_the_loss() {
    let (mut l, client) = event_loop();
    let data = stream(2 * OUT_BUFFER);
    assert_eq!(client.write(&data, T), Ok(data.len()));
    turn(&mut l);
    assert_eq!(client.write(b"queued behind", T), Ok(13));
    // The device took 100 bytes of the first, then the write timed out.
    l.transfers().outs[0].finish(Err(TransferError::TimedOut { transferred: 100 }));
    turn(&mut l);
    let fake = l.transfers();
    assert_eq!(fake.out_cancels, [1], "the transfer behind it");
    assert_eq!(fake.submitted_out, [0, 1], "nothing more went out");
    assert!(fake.outs.iter().all(|t| t.state == State::Idle));

    let lost = (data.len() + 13 - 100) as u64;
    let failure = WriteError::Earlier {
        error: TransferError::TimedOut { transferred: 100 },
        lost,
    };
    assert_eq!(
        client.write(b"fresh", T),
        Err(failure),
        "this call queued nothing"
    );
    // Reported once; the stream resumes with the next write.
    assert_eq!(client.write(b"fresh", T), Ok(5));
    turn(&mut l);
    let fake = l.transfers();
    assert_eq!(fake.submitted_out, [0, 1, 0]);
    assert_eq!(fake.outs[0].data, b"fresh");
    fake.outs[0].finish(Ok(5));
    turn(&mut l);
    assert_eq!(client.flush(NOW), Ok(()));
}

#[test]
fn a_flush_reports_an_unplug_of_bytes_in_flight() {
    let (mut l, client) = event_loop();
    assert_eq!(client.write(b"abc", T), Ok(3));
    turn(&mut l);
    l.transfers().outs[0].finish(Err(TransferError::NoDevice));
    turn(&mut l);
    assert_eq!(
        client.flush(NOW),
        Err(WriteError::Earlier {
            error: TransferError::NoDevice,
            lost: 3
        })
    );
}

#[test]
fn a_refused_submission_fails_the_stream_with_its_bytes() {
    let (mut l, client) = event_loop();
    l.transfers()
        .submit_out_errors
        .push_back(TransferError::NoDevice);
    assert_eq!(client.write(b"abc", T), Ok(3));
    turn(&mut l);
    assert!(l.transfers().submitted_out.is_empty());
    assert_eq!(
        client.write(b"d", T),
        Err(WriteError::Earlier {
            error: TransferError::NoDevice,
            lost: 3
        })
    );
}

#[test]
fn a_setting_goes_out_while_written_bytes_are_held() {
    let (mut l, client) = event_loop();
    assert_eq!(client.write(b"abc", T), Ok(3));
    // The request that releases flow control must not wait behind them.
    let request = ControlRequest::modem_control(Interface::A, Some(true), None);
    let call = client.send_control(request, T).unwrap();
    turn(&mut l);
    assert_eq!(l.transfers().outs[0].state, State::Pending);
    assert_eq!(l.transfers().requests, [request]);
    l.transfers().control.finish(Ok(0));
    turn(&mut l);
    assert_eq!(call.wait().map(|(n, _)| n), Ok(0));
}

#[test]
fn a_purge_drops_queued_and_in_flight_bytes_and_goes_out_after_them() {
    let (mut l, client) = event_loop();
    let data = stream(3 * OUT_BUFFER);
    assert_eq!(client.write(&data, T), Ok(2 * OUT_BUFFER));
    turn(&mut l);
    assert_eq!(client.write(&data[2 * OUT_BUFFER..], T), Ok(OUT_BUFFER));
    l.transfers().cancel_is_ignored = true; // they come back later
    let purge = ControlRequest::purge_tx(Interface::A);
    let call = client.send_control(purge, T).unwrap();
    turn(&mut l);
    let fake = l.transfers();
    assert_eq!(fake.out_cancels, [0, 1], "both in flight, once each");
    assert!(fake.requests.is_empty(), "not before they are back");
    // The first went through before the cancel landed; the second did not.
    fake.outs[0].finish(Ok(OUT_BUFFER));
    fake.outs[1].finish(Err(TransferError::Cancelled));
    turn(&mut l);
    assert_eq!(l.transfers().requests, [purge]);
    assert_eq!(l.transfers().submitted_out, [0, 1], "the queue was dropped");
    l.transfers().control.finish(Ok(0));
    turn(&mut l);
    assert_eq!(call.wait().map(|(n, _)| n), Ok(0));
    assert_eq!(client.flush(NOW), Ok(()), "a purge is no failure");
    assert_eq!(client.write(b"after", T), Ok(5));
    turn(&mut l);
    assert_eq!(l.transfers().outs[0].data, b"after");
}

#[test]
fn a_lost_link_fails_writes_before_the_application_hears_of_it() {
    let (mut l, client) = event_loop();
    l.arm_in().unwrap();
    l.transfers().fail_in(0, TransferError::NoDevice);
    assert!(l.turn(Duration::ZERO, &mut |_| {}).is_err());
    assert_eq!(
        client.write(b"x", T),
        Err(WriteError::Now(TransferError::Cancelled))
    );
}

#[test]
fn shutdown_settles_what_was_in_flight_and_a_flush_then_fails() {
    let (mut l, client) = event_loop();
    assert_eq!(client.write(b"abc", T), Ok(3));
    turn(&mut l);
    l.shutdown();
    assert!(!l.transfers().any_pending());
    assert!(client.flush(NOW).is_err(), "the bytes never went out");
}

#[test]
fn a_close_sends_what_was_written_before_it() {
    let (mut l, client) = event_loop();
    l.transfers().auto_out = Some(Ok(0)); // the device takes each at once
    assert_eq!(client.write(b"last words", T), Ok(10));
    // Closed before the loop ever turned with the bytes queued.
    l.shutdown();
    assert_eq!(l.transfers().outs[0].data, b"last words");
    assert_eq!(client.flush(NOW), Ok(()), "every byte settled, none lost");
}

#[test]
fn a_close_waits_for_held_bytes_at_most_the_drain_limit() {
    let (mut l, client) = event_loop();
    assert_eq!(client.write(b"held", T), Ok(4));
    turn(&mut l);
    let start = l.transfers().now;
    l.shutdown();
    let waited = l.transfers().now.saturating_since(start);
    assert!(
        (DRAIN_LIMIT..DRAIN_LIMIT + Duration::from_millis(20)).contains(&waited),
        "{waited:?} of virtual time"
    );
    assert!(!l.transfers().any_pending(), "then cancelled");
}
