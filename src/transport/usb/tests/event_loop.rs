//! The event loop's reap, resubmit, retry and loss logic, and its answers
//! through the mailbox, against the fake transfer set (single-threaded, in
//! virtual time).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::fake::{FakeTransfers, State};
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::{ControlRequest, Interface};
use crate::transport::LinkLost;
use crate::transport::usb::event_loop::{
    DRAIN_LIMIT, EventLoop, FIRST_BACK_OFF, Polled, RETRY_LIMIT, Transfers, WAIT_FAILURE_LIMIT,
};
use crate::transport::usb::mailbox::{Client, mailbox};

const T: Duration = Duration::from_millis(100);

/// A loop on `ins` fake IN transfers, with the client end of its mailbox.
fn event_loop(ins: usize) -> (EventLoop<FakeTransfers>, Client) {
    let wake = Arc::new(Doorbell::new().unwrap());
    let (client, server) = mailbox(wake.clone(), 64, Duration::ZERO).unwrap();
    (
        EventLoop::new(FakeTransfers::new(ins), server, wake),
        client,
    )
}

/// One turn; returns what it delivered.
fn turn(l: &mut EventLoop<FakeTransfers>) -> Result<Vec<Vec<u8>>, LinkLost> {
    let mut got = Vec::new();
    l.turn(Duration::ZERO, &mut |c| got.push(c.data.to_vec()))?;
    Ok(got)
}

#[test]
fn in_transfers_are_delivered_in_submission_order_and_resubmitted() {
    let (mut l, _client) = event_loop(3);
    assert!(
        l.transfers().submitted_in.is_empty(),
        "nothing before arming"
    );
    l.arm_in().unwrap();
    assert_eq!(l.transfers().submitted_in, [0, 1, 2]);

    // The second finishes first: nothing may overtake the first.
    l.transfers().complete_in(1, b"\x01\x60B");
    assert_eq!(turn(&mut l).unwrap(), Vec::<Vec<u8>>::new());
    l.transfers().complete_in(0, b"\x01\x60A");
    assert_eq!(
        turn(&mut l).unwrap(),
        [b"\x01\x60A".to_vec(), b"\x01\x60B".to_vec()]
    );
    assert_eq!(
        l.transfers().submitted_in,
        [0, 1, 2, 0, 1],
        "resubmitted in order"
    );
    assert_eq!(l.transfers().pending_ins(), 3);

    // The ring goes on: 2, then 0, then 1.
    for (i, byte) in [(2, b'C'), (0, b'D'), (1, b'E')] {
        l.transfers().complete_in(i, &[0x01, 0x60, byte]);
    }
    let got = turn(&mut l).unwrap();
    assert_eq!(got.iter().map(|d| d[2]).collect::<Vec<_>>(), b"CDE");
    assert_eq!(l.lost(), None);
}

#[test]
fn timeouts_and_babble_are_resubmitted_without_delivering_or_counting() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    for _ in 0..(RETRY_LIMIT + 3) {
        l.transfers()
            .fail_in(0, TransferError::TimedOut { transferred: 0 });
        assert!(turn(&mut l).unwrap().is_empty());
        l.transfers().fail_in(0, TransferError::Overflow);
        assert!(turn(&mut l).unwrap().is_empty());
    }
    assert_eq!(
        l.transfers().submitted_in.len(),
        1 + 2 * (RETRY_LIMIT as usize + 3)
    );
    assert_eq!(l.transfers().clear_halts, 0);
    assert_eq!(l.lost(), None);
}

#[test]
fn a_stall_is_cleared_once_per_event_and_retried_then_the_link_is_lost() {
    let (mut l, _client) = event_loop(2);
    l.arm_in().unwrap();
    for event in 1..=RETRY_LIMIT {
        // A halted endpoint fails every transfer in flight: one event.
        l.transfers().fail_in(0, TransferError::Stall);
        l.transfers().fail_in(1, TransferError::Stall);
        turn(&mut l).unwrap();
        assert_eq!(
            l.transfers().clear_halts,
            event as usize,
            "one clear per event"
        );
        assert_eq!(l.transfers().pending_ins(), 2, "both retried");
    }
    l.transfers().fail_in(0, TransferError::Stall);
    let LinkLost(why) = turn(&mut l).unwrap_err();
    assert_eq!(
        why,
        format!("the bulk-IN endpoint keeps stalling: gave up after {RETRY_LIMIT} retries")
    );
    assert_eq!(
        l.transfers().pending_ins(),
        1,
        "the failed one is not resubmitted"
    );
}

#[test]
fn a_completion_between_failures_resets_the_count() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    for round in 0..3 {
        for _ in 0..RETRY_LIMIT {
            l.transfers().fail_in(0, TransferError::Fault);
            turn(&mut l).unwrap();
        }
        l.transfers().complete_in(0, b"\x01\x60x");
        assert_eq!(turn(&mut l).unwrap().len(), 1, "round {round}");
    }
    for _ in 0..RETRY_LIMIT {
        l.transfers().fail_in(0, TransferError::Fault);
        turn(&mut l).unwrap();
    }
    l.transfers().fail_in(0, TransferError::Fault);
    let LinkLost(why) = turn(&mut l).unwrap_err();
    assert!(why.contains("USB protocol errors"), "{why}");
    assert_eq!(
        l.transfers().clear_halts,
        0,
        "protocol errors clear no halt"
    );
}

#[test]
fn an_unplug_loses_the_link_at_once_after_delivering_what_came_before() {
    let (mut l, _client) = event_loop(2);
    l.arm_in().unwrap();
    l.transfers().complete_in(0, b"\x01\x60last");
    l.transfers().fail_in(1, TransferError::NoDevice);
    let mut got = Vec::new();
    let lost = l.turn(Duration::ZERO, &mut |c| got.push(c.data.to_vec()));
    assert_eq!(got, [b"\x01\x60last".to_vec()]);
    assert_eq!(lost, Err(LinkLost("the device was unplugged".into())));
    assert_eq!(
        l.transfers().submitted_in,
        [0, 1, 0],
        "what completed before the loss was seen is resubmitted, the failed one is not"
    );
    // Every later turn reports the same loss without touching the set.
    assert!(turn(&mut l).is_err());
}

#[test]
fn a_failed_resubmission_loses_the_link() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    l.transfers().complete_in(0, b"\x01\x60");
    l.transfers()
        .submit_in_errors
        .push_back(TransferError::NoDevice);
    assert_eq!(
        turn(&mut l).unwrap_err(),
        LinkLost("the device was unplugged".into())
    );

    let (mut l, _client) = event_loop(1);
    l.transfers()
        .submit_in_errors
        .push_back(TransferError::Unknown(-6));
    let LinkLost(why) = l.arm_in().unwrap_err();
    assert!(why.contains("LIBUSB_ERROR_BUSY"), "{why}");
}

#[test]
fn a_hang_up_on_a_libusb_descriptor_is_an_unplug() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    l.transfers()
        .polls
        .push_back(Ok(Polled { device_gone: true }));
    assert_eq!(
        turn(&mut l).unwrap_err(),
        LinkLost("the device was unplugged".into())
    );
}

#[test]
fn failed_waits_back_off_doubling_and_lose_the_link_after_the_bound() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    // A transient failure, then success: the count starts again.
    l.transfers()
        .polls
        .push_back(Err(io::Error::from_raw_os_error(libc::ENOMEM)));
    turn(&mut l).unwrap();
    turn(&mut l).unwrap();
    assert_eq!(l.transfers().back_offs, [FIRST_BACK_OFF]);

    // A persistent failure, alternating between ppoll and libusb.
    l.transfers().back_offs.clear();
    let fail = |l: &mut EventLoop<FakeTransfers>, n: u32| {
        if n.is_multiple_of(2) {
            let e = io::Error::from_raw_os_error(libc::EINVAL);
            l.transfers().polls.push_back(Err(e));
        } else {
            l.transfers()
                .events
                .push_back(Err(TransferError::Unknown(-1)));
        }
    };
    for n in 1..WAIT_FAILURE_LIMIT {
        fail(&mut l, n);
        turn(&mut l).unwrap();
    }
    let expected: Vec<Duration> = (0..WAIT_FAILURE_LIMIT - 1)
        .map(|n| FIRST_BACK_OFF * (1 << n))
        .collect();
    assert_eq!(
        l.transfers().back_offs,
        expected,
        "1, 2, 4, 8 ms: never a spin"
    );
    fail(&mut l, 0);
    let LinkLost(why) = turn(&mut l).unwrap_err();
    assert!(
        why.starts_with(&format!(
            "waiting for USB events failed {WAIT_FAILURE_LIMIT} times in a row (last: ppoll failed: "
        )),
        "{why}"
    );
    // A completion that arrives with a failed wait is still delivered.
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    l.transfers().complete_in(0, b"\x01\x60z");
    l.transfers().events.push_back(Err(TransferError::Fault));
    assert_eq!(turn(&mut l).unwrap(), [b"\x01\x60z".to_vec()]);
}

#[test]
fn control_requests_are_answered_through_the_mailbox() {
    let (mut l, client) = event_loop(1);
    let request = ControlRequest::poll_modem_status(Interface::A);
    let call = client
        .send_control(request, Duration::from_micros(2500))
        .unwrap();
    turn(&mut l).unwrap();
    assert_eq!(l.transfers().requests, [request]);
    assert_eq!(l.transfers().control.timeout_ms, 3, "rounded up, never 0");
    l.transfers().control.data = vec![0x31, 0x60];
    l.transfers().control.finish(Ok(2));
    turn(&mut l).unwrap();
    let (n, data) = call.wait().unwrap();
    assert_eq!(&data[..n], [0x31, 0x60]);

    // A refused request comes back as the transfer's own error.
    let call = client.send_control(request, T).unwrap();
    turn(&mut l).unwrap();
    l.transfers().control.finish(Err(TransferError::Stall));
    turn(&mut l).unwrap();
    assert_eq!(call.wait(), Err(TransferError::Stall));
    assert_eq!(
        l.lost(),
        None,
        "a stalled control request is not a lost link"
    );
}

#[test]
fn a_command_whose_caller_gave_up_is_not_sent() {
    let (mut l, client) = event_loop(1);
    let reset = ControlRequest::reset(Interface::A);
    // Nobody turns the loop: the caller gives up (zero grace in these tests).
    assert_eq!(
        client.control(reset, Duration::from_millis(1)),
        Err(TransferError::TimedOut { transferred: 0 })
    );
    let request = ControlRequest::poll_modem_status(Interface::A);
    let call = client.send_control(request, T).unwrap();
    turn(&mut l).unwrap();
    assert_eq!(
        l.transfers().requests,
        [request],
        "the abandoned one was skipped"
    );
    l.transfers().control.finish(Ok(0));
    turn(&mut l).unwrap();
    assert_eq!(call.wait().map(|(n, _)| n), Ok(0));
}

#[test]
fn shutdown_cancels_drains_answers_and_stops_the_mailbox() {
    let (mut l, client) = event_loop(2);
    l.arm_in().unwrap();
    let call = client
        .send_control(ControlRequest::reset(Interface::A), T)
        .unwrap();
    turn(&mut l).unwrap();
    assert_eq!(l.transfers().control.state, State::Pending);
    l.shutdown();
    assert_eq!(l.transfers().cancels, 1);
    assert!(!l.transfers().any_pending());
    assert_eq!(call.wait(), Err(TransferError::Cancelled));
    assert_eq!(
        client.control(ControlRequest::reset(Interface::A), T),
        Err(TransferError::Cancelled),
        "a stopped loop answers nothing"
    );
    l.shutdown();
    assert_eq!(l.transfers().cancels, 1, "idempotent");
}

#[test]
fn a_transfer_that_never_comes_back_is_waited_for_at_most_the_drain_limit() {
    let (mut l, _client) = event_loop(1);
    l.arm_in().unwrap();
    l.transfers().cancel_is_ignored = true;
    let start = l.transfers().now;
    l.shutdown();
    let waited = l.transfers().now.saturating_since(start);
    assert!(
        (DRAIN_LIMIT..DRAIN_LIMIT + Duration::from_millis(20)).contains(&waited),
        "{waited:?} of virtual time"
    );
    assert_eq!(
        l.transfers().pending_ins(),
        1,
        "left for the set to leak, not free"
    );
}

#[test]
fn a_turn_on_a_shared_reader_neither_waits_nor_handles_events() {
    let (mut l, _client) = event_loop(2);
    l.arm_in().unwrap();
    // The shared reader waits and lets libusb reap; the port's turn must not.
    l.transfers()
        .polls
        .push_back(Err(io::Error::other("a turn must not wait")));
    l.transfers().events.push_back(Err(TransferError::Fault));
    l.transfers().complete_in(0, b"\x01\x60A");
    l.transfers().complete_in(1, b"\x01\x60B");
    let mut got = Vec::new();
    let n = l.turn_ready(&mut |c| got.push(c.data.to_vec())).unwrap();
    assert_eq!(n, 2);
    assert_eq!(got, [b"\x01\x60A".to_vec(), b"\x01\x60B".to_vec()]);
    // Resubmitted: they complete only in a later event handling, so the
    // next turn has nothing (a turn is bounded by what is in flight).
    assert_eq!(l.turn_ready(&mut |_| {}).unwrap(), 0);
    assert_eq!(l.transfers().submitted_in, [0, 1, 0, 1]);
    assert_eq!(l.transfers().polls.len(), 1, "no wait");
    assert_eq!(l.transfers().events.len(), 1, "no event handling");
}

#[test]
fn an_unplug_seen_in_a_shared_turn_loses_the_link() {
    let (mut l, _client) = event_loop(2);
    l.arm_in().unwrap();
    // libusb completes a vanished device's transfers with NO_DEVICE.
    l.transfers().fail_in(0, TransferError::NoDevice);
    let lost = l.turn_ready(&mut |_| {}).unwrap_err();
    assert_eq!(lost, LinkLost("the device was unplugged".into()));
    assert!(l.lost().is_some());
}
