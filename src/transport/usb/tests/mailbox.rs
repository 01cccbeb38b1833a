//! The mailbox alone: sequence numbers, stale replies, the stopped state,
//! partial writes, abandoned commands. The test plays the event loop.

use std::sync::Arc;
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::{ControlRequest, Interface};
use crate::transport::usb::mailbox::{
    Client, Command, Request, Server, libusb_timeout_ms, mailbox,
};

const T: Duration = Duration::from_secs(5);
const GAVE_UP: Result<usize, TransferError> = Err(TransferError::TimedOut { transferred: 0 });

/// A mailbox whose byte ring holds `bytes`, with no grace period, and the
/// loop's doorbell.
fn pair(bytes: usize) -> (Client, Server, Arc<Doorbell>) {
    let wake = Arc::new(Doorbell::new().unwrap());
    let (client, server) = mailbox(wake.clone(), bytes, Duration::ZERO).unwrap();
    (client, server, wake)
}

fn next(server: &mut Server) -> Option<Command> {
    server.next_command(true, true)
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
    assert_eq!(cmd.request, Request::Control(request));
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
    assert_eq!(client.write(b"x", T), Err(TransferError::Cancelled));
    assert_eq!(next(&mut server), None, "stopping dropped what was queued");
}

#[test]
fn a_write_larger_than_the_byte_ring_is_sent_in_part() {
    let (client, mut server, _wake) = pair(8);
    let call = client.send_write(b"0123456789abcdef", T).unwrap();
    let cmd = next(&mut server).unwrap();
    assert_eq!(cmd.request, Request::Write { len: 8 });
    let mut out = [0u8; 64];
    assert_eq!(server.take_bytes(8, &mut out), 8);
    assert_eq!(&out[..8], b"01234567");
    server.reply(cmd.seq, Ok(8), &[]);
    assert_eq!(call.wait().map(|(n, _)| n), Ok(8));
    assert_eq!(
        client.write(b"", T),
        Ok(0),
        "nothing to send, nothing queued"
    );
    assert_eq!(next(&mut server), None);
}

#[test]
fn a_write_behind_an_abandoned_one_waits_for_room_and_goes_out_alone() {
    let (client, mut server, _wake) = pair(8);
    // The loop is stuck: the first write fills the ring and is given up.
    assert_eq!(client.write(b"stale!!!", Duration::from_millis(1)), GAVE_UP);
    let writer = std::thread::spawn(move || {
        let n = client.write(b"fresh", T);
        (client, n)
    });
    // The loop comes back: it skips the abandoned command (dropping its
    // bytes and answering it), which frees the ring for the waiting writer.
    let cmd = loop {
        if let Some(cmd) = next(&mut server) {
            break cmd;
        }
        std::thread::yield_now();
    };
    assert_eq!(cmd.request, Request::Write { len: 5 });
    let mut out = [0u8; 8];
    assert_eq!(server.take_bytes(5, &mut out), 5);
    assert_eq!(&out[..5], b"fresh");
    server.reply(cmd.seq, Ok(5), &[]);
    let (_client, n) = writer.join().unwrap();
    assert_eq!(n, Ok(5));
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
    let (client, mut server, _wake) = pair(8);
    let call = client.send_write(b"x", Duration::MAX).unwrap();
    let cmd = next(&mut server).unwrap();
    assert_eq!(cmd.timeout_ms, u32::MAX);
    server.reply(cmd.seq, Ok(1), &[]);
    assert_eq!(call.wait().map(|(n, _)| n), Ok(1));
}
