//! The hand-over: the opening thread serves control requests and writes
//! before the reader exists, the reader takes the loop over by value, and
//! only then are IN transfers submitted.

use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeTransfers;
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::{ControlRequest, Interface};
use crate::realtime::memory::HotRegions;
use crate::transport::usb::event_loop::{EventLoop, Polled};
use crate::transport::usb::inbound::UsbInbound;
use crate::transport::usb::mailbox::{Client, mailbox};
use crate::transport::{Inbound, LinkLost};

/// Long enough never to expire in a passing run; a failing one waits it out.
const T: Duration = Duration::from_secs(10);

/// A libusb transport on `fake`, its loop already serving on the opening thread.
fn opening(mut fake: FakeTransfers) -> (UsbInbound<FakeTransfers>, Client) {
    let wake = Arc::new(Doorbell::new().unwrap());
    fake.block_on = Some(wake.clone());
    let (client, server) = mailbox(wake.clone(), 64, Duration::ZERO).unwrap();
    let event_loop = EventLoop::new(fake, server, wake.clone());
    (UsbInbound::start(event_loop, wake, 64).unwrap(), client)
}

fn answering(ins: usize) -> FakeTransfers {
    let mut fake = FakeTransfers::new(ins);
    fake.auto_control = Some((Ok(2), vec![0x11, 0x60]));
    fake.auto_out = Some(Ok(5));
    fake
}

#[test]
fn control_requests_and_writes_are_served_before_the_reader_takes_over() {
    let (mut inbound, client) = opening(answering(3));
    let request = ControlRequest::poll_modem_status(Interface::A);
    let (n, data) = client.control(request, T).unwrap();
    assert_eq!(&data[..n], [0x11, 0x60]);
    assert_eq!(client.write(b"hello", T), Ok(5), "queued");
    assert_eq!(client.flush(T), Ok(()), "and taken by the device");
    assert!(
        inbound.event_loop().is_none(),
        "still on the opening thread"
    );

    // The reader's first call takes the loop over; nothing is in flight yet.
    inbound.hot_memory(&mut HotRegions::default());
    let fake = inbound.event_loop().expect("taken over").transfers();
    assert!(fake.hot_memory_reported);
    assert_eq!(fake.requests, [request]);
    assert_eq!(fake.outs[0].data, b"hello");
    assert!(
        fake.submitted_in.is_empty(),
        "no IN transfer before configuration"
    );

    inbound.start().unwrap();
    let fake = inbound.event_loop().unwrap().transfers();
    assert_eq!(fake.submitted_in, [0, 1, 2]);

    // From now on the reader's turns serve the same mailbox.
    let caller = std::thread::spawn(move || {
        let reply = client.control(ControlRequest::reset(Interface::A), T);
        (client, reply)
    });
    while !caller.is_finished() {
        inbound
            .wait(Duration::from_millis(10), |_| {
                panic!("no IN data was staged")
            })
            .unwrap();
    }
    let (client, reply) = caller.join().unwrap();
    assert_eq!(reply.map(|(n, _)| n), Ok(2));
    inbound.shutdown();
    assert_eq!(
        client.control(request, T),
        Err(TransferError::Cancelled),
        "a shut-down loop answers nothing"
    );
}

#[test]
fn a_transport_dropped_before_the_reader_started_stops_its_loop() {
    let (inbound, client) = opening(answering(2));
    assert!(
        client
            .control(ControlRequest::reset(Interface::A), T)
            .is_ok()
    );
    drop(inbound);
    assert_eq!(
        client.control(ControlRequest::reset(Interface::A), T),
        Err(TransferError::Cancelled)
    );
}

#[test]
fn an_unplug_while_opening_fails_the_callers_and_the_reader_start() {
    let mut fake = FakeTransfers::new(2);
    fake.polls.push_back(Ok(Polled { device_gone: true }));
    let (mut inbound, client) = opening(fake);
    // Whether the request got submitted before the loss was seen or not, the
    // caller learns at once, not after its timeout.
    assert_eq!(
        client.control(ControlRequest::reset(Interface::A), T),
        Err(TransferError::Cancelled)
    );
    assert_eq!(
        inbound.start(),
        Err(LinkLost("the device was unplugged".into()))
    );
    let fake = inbound.event_loop().unwrap().transfers();
    assert!(fake.submitted_in.is_empty());
    assert_eq!(
        fake.cancels, 1,
        "the loop was shut down when the loss was seen"
    );
}
