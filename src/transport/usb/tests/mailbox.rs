//! The mailbox alone: sequence numbers, stale replies, the stopped state,
//! the write queue, abandoned commands. The test plays the event loop.

use std::sync::Arc;
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::{ControlRequest, Interface};
use crate::transport::ftdi::WriteError;
use crate::transport::usb::mailbox::{Client, Command, Server, libusb_timeout_ms, mailbox};

const T: Duration = Duration::from_secs(5);

/// A mailbox whose byte ring holds `bytes`, with no grace period, and the
/// loop's doorbell.
fn pair(bytes: usize) -> (Client, Server, Arc<Doorbell>) {
    let wake = Arc::new(Doorbell::new().unwrap());
    let (client, server) = mailbox(wake.clone(), bytes, Duration::ZERO).unwrap();
    (client, server, wake)
}

fn next(server: &mut Server) -> Option<Command> {
    server.next_command(true)
}

#[test]
fn replies_are_matched_by_sequence_number() {
    let (client, mut server, wake) = pair(16);
    let request = ControlRequest::poll_modem_status(Interface::A);
    let call = client.send_control(request, T).unwrap();
    assert!(
        wake.wait(Some(Duration::ZERO)).unwrap(),
        "the loop was rung"
    );
    let cmd = next(&mut server).unwrap();
    assert_eq!(cmd.request, request);
    assert_eq!(cmd.seq, 1);
    // An answer to another command is not this call's.
    server.reply(cmd.seq + 7, Ok(1), &[0xee]);
    server.reply(cmd.seq, Ok(2), &[0x11, 0x60]);
    let (n, data) = call.wait().unwrap();
    assert_eq!(&data[..n], [0x11, 0x60]);

    let call = client.send_control(request, T).unwrap();
    assert_eq!(next(&mut server).unwrap().seq, 2, "numbers increase");
    server.reply(2, Err(TransferError::Stall), &[]);
    assert_eq!(call.wait(), Err(TransferError::Stall));
}

#[test]
fn a_late_reply_to_a_call_that_gave_up_is_dropped() {
    let (client, mut server, _wake) = pair(16);
    let request = ControlRequest::reset(Interface::A);
    let first = client
        .send_control(request, Duration::from_millis(1))
        .unwrap();
    let cmd = next(&mut server).unwrap();
    // The loop took it but answers too late.
    assert_eq!(
        first.wait(),
        Err(TransferError::TimedOut { transferred: 0 })
    );
    server.reply(cmd.seq, Ok(0), &[]);

    let second = client.send_control(request, T).unwrap();
    let cmd2 = next(&mut server).unwrap();
    assert_eq!(cmd2.seq, cmd.seq + 1);
    server.reply(cmd2.seq, Err(TransferError::Stall), &[]);
    assert_eq!(second.wait(), Err(TransferError::Stall), "not the stale Ok");
}

#[test]
fn a_stopped_mailbox_cancels_waiting_and_later_calls() {
    let (client, mut server, _wake) = pair(16);
    let request = ControlRequest::reset(Interface::A);
    let call = client.send_control(request, T).unwrap();
    // Stopped from the loop's thread while the caller waits (or before it
    // starts to: either way it must not wait out its timeout).
    let stopper = std::thread::spawn(move || {
        server.stop();
        server
    });
    assert_eq!(call.wait(), Err(TransferError::Cancelled));
    let mut server = stopper.join().unwrap();
    assert_eq!(client.control(request, T), Err(TransferError::Cancelled));
    assert_eq!(
        client.write(b"x", T),
        Err(WriteError::Now(TransferError::Cancelled))
    );
    assert_eq!(next(&mut server), None, "stopping dropped what was queued");
}

#[test]
fn a_write_larger_than_the_queue_is_taken_in_part_and_returns_at_once() {
    let (client, mut server, wake) = pair(8);
    assert_eq!(client.write(b"0123456789abcdef", T), Ok(8));
    assert!(
        wake.wait(Some(Duration::ZERO)).unwrap(),
        "the loop was rung"
    );
    assert_eq!(server.queued_bytes(), 8);
    let mut out = [0u8; 64];
    assert_eq!(server.take_bytes(&mut out[..5]), 5);
    assert_eq!(&out[..5], b"01234");
    assert_eq!(
        client.write(b"", T),
        Ok(0),
        "nothing to send, nothing queued"
    );
    assert_eq!(client.write(b"ghijklmn", T), Ok(5), "what fits");
    assert_eq!(server.take_bytes(&mut out), 8);
    assert_eq!(&out[..8], b"567ghijk");
    assert_eq!(next(&mut server), None, "writes are no commands");
}

#[test]
fn a_full_queue_holds_the_writer_until_the_loop_takes_bytes() {
    let (client, mut server, _wake) = pair(8);
    assert_eq!(client.write(b"01234567", T), Ok(8));
    assert_eq!(
        client.write(b"x", Duration::from_millis(1)),
        Err(WriteError::Now(TransferError::TimedOut { transferred: 0 })),
        "no room before the timeout"
    );
    let writer = std::thread::spawn(move || {
        let n = client.write(b"fresh", T);
        (client, n)
    });
    let mut out = [0u8; 8];
    assert_eq!(server.take_bytes(&mut out), 8);
    let (_client, n) = writer.join().unwrap();
    assert_eq!(n, Ok(5));
    assert_eq!(server.take_bytes(&mut out), 5);
    assert_eq!(&out[..5], b"fresh");
}

#[test]
fn a_flush_waits_until_every_queued_byte_has_settled() {
    let (client, mut server, _wake) = pair(8);
    assert_eq!(client.flush(Duration::ZERO), Ok(()), "nothing queued");
    assert_eq!(client.write(b"abc", T), Ok(3));
    assert_eq!(
        client.flush(Duration::from_millis(1)),
        Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }))
    );
    let flusher = std::thread::spawn(move || {
        let r = client.flush(T);
        (client, r)
    });
    let mut out = [0u8; 8];
    assert_eq!(server.take_bytes(&mut out), 3);
    server.settle(3, 0);
    let (_client, r) = flusher.join().unwrap();
    assert_eq!(r, Ok(()));
}

#[test]
fn a_failed_stream_is_reported_once_with_its_lost_bytes_then_resumes() {
    let (client, mut server, _wake) = pair(16);
    assert_eq!(client.write(b"0123456789", T), Ok(10));
    let mut out = [0u8; 16];
    assert_eq!(server.take_bytes(&mut out[..6]), 6);
    // The device took 2 of the 6 in flight, then stalled.
    server.settle(2, 4);
    server.fail(TransferError::Stall);
    server.fail(TransferError::NoDevice); // a second failure is the same event
    assert!(server.stream_failed());
    server.drop_queued();
    assert_eq!(
        client.write(b"next", T),
        Err(WriteError::Earlier {
            error: TransferError::Stall,
            lost: 8
        }),
        "nothing of this call queued"
    );
    assert!(!server.stream_failed(), "reported: the stream resumes");
    assert_eq!(server.queued_bytes(), 0);
    assert_eq!(client.write(b"next", T), Ok(4));
    assert!(client.flush(Duration::ZERO).is_err(), "not yet sent");
    assert_eq!(server.take_bytes(&mut out), 4);
    server.settle(4, 0);
    assert_eq!(client.flush(T), Ok(()), "no failure is reported twice");
}

#[test]
fn libusb_timeouts_round_up_and_are_never_zero() {
    assert_eq!(libusb_timeout_ms(Duration::ZERO), 1);
    assert_eq!(libusb_timeout_ms(Duration::from_micros(1)), 1);
    assert_eq!(libusb_timeout_ms(Duration::from_micros(1500)), 2);
    assert_eq!(libusb_timeout_ms(Duration::from_secs(1)), 1000);
    assert_eq!(libusb_timeout_ms(Duration::MAX), u32::MAX);
}

#[test]
fn a_huge_timeout_does_not_overflow() {
    let (client, server, _wake) = pair(8);
    assert_eq!(client.write(b"x", Duration::MAX), Ok(1));
    assert_eq!(server.queued_bytes(), 1);
    assert_eq!(
        client.flush(Duration::ZERO),
        Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }))
    );
}
