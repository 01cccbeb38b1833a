//! The server's protocol semantics, against the fake kernel.

use std::time::Duration;

use super::super::protocol::{CmdSubmit, CmdUnlink, Command, Direction, Reply, RetUnlink};
use super::super::server::{Control, DetachReason};
use super::*;
use crate::time::Timestamp;

#[test]
fn control_requests_complete_with_data_or_stall() {
    let mut rig = Rig::start();
    rig.control_in(1, [0x80, 6, 0x00, 0x01, 0, 0, 64, 0]);
    assert_eq!(rig.recv(), ret(1, 0, 18, &DEVICE_DESCRIPTOR));
    rig.control_in(2, [0x80, 6, 0x00, 0x01, 0, 0, 8, 0]);
    assert_eq!(rig.recv(), ret(2, 0, 8, &DEVICE_DESCRIPTOR[..8]));
    rig.barrier(3);
    assert_eq!(rig.finish().1, DetachReason::HostDetached);
}

#[test]
fn an_in_urb_stays_pending_until_the_device_has_data() {
    let mut rig = Rig::start();
    rig.submit(10, 1, Direction::In, 64, &[]);
    rig.barrier(11); // nothing came for URB 10 before it
    rig.with_fake(|f, _| {
        f.fifo.extend_from_slice(b"late");
        f.deliver();
    });
    assert_eq!(rig.recv(), ret(10, 0, 4, b"late"));
    assert_eq!(rig.finish().1, DetachReason::HostDetached);
}

#[test]
fn out_data_reaches_the_device_and_loops_back() {
    let mut rig = Rig::start();
    rig.submit(1, 1, Direction::In, 64, &[]);
    rig.submit(2, 2, Direction::Out, 5, b"hello");
    assert_eq!(rig.recv(), ret(2, 0, 5, &[]), "OUT carries no data back");
    assert_eq!(rig.recv(), ret(1, 0, 5, b"hello"));
    let (fake, _) = rig.finish();
    assert_eq!(fake.received, b"hello");
}

#[test]
fn unlinking_a_pending_urb_cancels_it_without_a_ret_submit() {
    let mut rig = Rig::start();
    rig.submit(20, 1, Direction::In, 64, &[]);
    rig.send(Command::Unlink(CmdUnlink {
        seqnum: 21,
        devid: 1,
        victim: 20,
    }));
    assert_eq!(
        rig.recv(),
        Reply::Unlink(RetUnlink {
            seqnum: 21,
            status: -libc::ECONNRESET
        })
    );
    // Data now has no URB to go to: nothing may arrive for URB 20.
    rig.with_fake(|f, _| f.fifo.extend_from_slice(b"kept"));
    rig.barrier(22);
    rig.submit(23, 1, Direction::In, 64, &[]);
    rig.with_fake(|f, _| f.deliver());
    assert_eq!(
        rig.recv(),
        ret(23, 0, 4, b"kept"),
        "the data waits for the next URB"
    );
    rig.finish();
}

#[test]
fn a_partly_accepted_out_urb_reports_its_length_before_the_unlink() {
    let mut rig = Rig::start();
    rig.submit(70, 4, Direction::Out, 8, b"12345678");
    rig.barrier(71); // nothing for URB 70: it waits for FIFO space
    rig.send(Command::Unlink(CmdUnlink {
        seqnum: 72,
        devid: 1,
        victim: 70,
    }));
    assert_eq!(
        rig.recv(),
        ret(70, -libc::ECONNRESET, 3, &[]),
        "3 bytes went out"
    );
    assert_eq!(
        rig.recv(),
        Reply::Unlink(RetUnlink {
            seqnum: 72,
            status: 0
        })
    );
    let (fake, _) = rig.finish();
    assert_eq!(fake.received, b"123");
}

#[test]
fn unlinking_a_completed_urb_answers_status_zero_after_its_completion() {
    let mut rig = Rig::start();
    rig.submit(30, 1, Direction::In, 64, &[]);
    rig.submit(31, 2, Direction::Out, 3, b"abc");
    assert_eq!(rig.recv(), ret(31, 0, 3, &[]));
    assert_eq!(rig.recv(), ret(30, 0, 3, b"abc"));
    rig.send(Command::Unlink(CmdUnlink {
        seqnum: 32,
        devid: 1,
        victim: 30,
    }));
    assert_eq!(
        rig.recv(),
        Reply::Unlink(RetUnlink {
            seqnum: 32,
            status: 0
        })
    );
    rig.finish();
}

#[test]
fn a_due_timeout_runs_and_its_lateness_is_measured() {
    let mut rig = Rig::start();
    rig.submit(40, 1, Direction::In, 64, &[]);
    rig.barrier(41);
    rig.with_fake(|f, now| f.timer = Some(now + Duration::from_millis(2)));
    assert_eq!(rig.recv(), ret(40, 0, 2, &STATUS_PACKET));
    let shared = rig.shared.clone();
    let (fake, _) = rig.finish();
    assert_eq!(fake.timeouts, 1);
    assert_eq!(
        shared.lateness.lock().unwrap().len(),
        1,
        "one timeout handled, one lateness sample"
    );
}

#[test]
fn a_timeout_that_fell_due_before_the_server_started_is_not_its_lateness() {
    // As after a replug: the function's timer fell due while unplugged.
    let ten_s_ago =
        Timestamp::from_nanos(Timestamp::now().as_nanos().saturating_sub(10_000_000_000));
    let mut rig = Rig::start_with(Fake {
        timer: Some(ten_s_ago),
        ..Fake::default()
    });
    rig.barrier(1);
    let shared = rig.shared.clone();
    let (fake, _) = rig.finish();
    assert_eq!(fake.timeouts, 1, "the stale timeout is handled at once");
    let late = shared.lateness.lock().unwrap();
    assert_eq!(late.len(), 1);
    assert!(
        late.max() < 5_000_000_000,
        "the 10 s while nobody served the device counted as lateness: {} ns",
        late.max()
    );
}

#[test]
fn a_message_written_a_byte_at_a_time_is_served_whole() {
    let mut rig = Rig::start();
    let mut wire = Vec::new();
    Command::Submit(CmdSubmit {
        seqnum: 50,
        devid: 1,
        direction: Direction::Out,
        endpoint: 2,
        transfer_flags: 0,
        transfer_buffer_length: 7,
        start_frame: 0,
        interval: 0,
        setup: [0; 8],
        data: b"piece by".to_vec()[..7].to_vec(),
    })
    .encode(&mut wire);
    for b in &wire {
        rig.kernel.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(rig.recv(), ret(50, 0, 7, &[]));
    let (fake, _) = rig.finish();
    assert_eq!(fake.received, b"piece b");
}

#[test]
fn an_unplugged_function_delivers_what_it_queued_then_the_link_closes() {
    let mut rig = Rig::start();
    rig.submit(60, 1, Direction::In, 64, &[]);
    rig.barrier(61);
    rig.with_fake(|f, _| f.unplug());
    assert_eq!(rig.recv(), ret(60, -libc::ENODEV, 0, &[]));
    rig.expect_eof();
    let (fake, reason) = rig.finish();
    assert!(fake.unplugged);
    assert_eq!(reason, DetachReason::FunctionUnplugged);
}

#[test]
fn unplug_from_the_handle_closes_the_link() {
    let mut rig = Rig::start();
    rig.barrier(1);
    rig.control.send(Control::Unplug).unwrap();
    rig.shared.bell.ring_always();
    rig.expect_eof();
    assert_eq!(rig.finish().1, DetachReason::Unplugged);
}

#[test]
fn urbs_of_a_closed_link_are_unlinked_in_the_function() {
    let mut rig = Rig::start();
    rig.submit(80, 1, Direction::In, 64, &[]);
    rig.submit(81, 1, Direction::In, 64, &[]);
    rig.barrier(82);
    let (fake, reason) = rig.finish();
    assert_eq!(reason, DetachReason::HostDetached);
    assert!(
        fake.pending_in.is_empty(),
        "after a replug, data must not go into URBs of the old link: {:?}",
        fake.pending_in
    );
}

#[test]
fn garbage_from_the_host_stops_the_server_without_a_panic() {
    let mut rig = Rig::start();
    rig.kernel.write_all(&[0xAB; 48]).unwrap();
    rig.expect_eof();
    match rig.finish().1 {
        DetachReason::Failed(why) => assert!(why.contains("not USB/IP"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The server with the real device model: what enumeration asks, and an IN
/// URB that the chip answers with a status packet when its latency timer
/// expires, then with data looped back from an OUT.
#[test]
fn the_virtual_ftdi_enumerates_and_streams_through_the_server() {
    use crate::proto::{Chip, Interface};
    use crate::sim::Loopback;
    use crate::sim::usb::VirtualFtdi;

    let chip = VirtualFtdi::builder(Chip::Ft232R)
        .device(Interface::A, Loopback::new())
        .serial_number("USBIP001")
        .build(Timestamp::now())
        .unwrap();
    let mut rig = Rig::start_with(chip);
    rig.control_in(1, [0x80, 6, 0x00, 0x01, 0, 0, 18, 0]);
    let Reply::Submit(device) = rig.recv() else {
        panic!("expected the device descriptor")
    };
    assert_eq!(
        (device.seqnum, device.status, device.data.len()),
        (1, 0, 18)
    );
    assert_eq!(
        &device.data[8..14],
        &[0x03, 0x04, 0x01, 0x60, 0x00, 0x06],
        "0403:6001 bcd 0600"
    );
    rig.send(Command::Submit(CmdSubmit {
        seqnum: 2,
        devid: 1,
        direction: Direction::Out,
        endpoint: 0,
        transfer_flags: 0,
        transfer_buffer_length: 0,
        start_frame: 0,
        interval: 0,
        setup: [0x00, 9, 1, 0, 0, 0, 0, 0], // SET_CONFIGURATION 1
        data: Vec::new(),
    }));
    assert_eq!(rig.recv(), ret(2, 0, 0, &[]));
    // Bulk IN on endpoint 1: nothing to send, so the chip answers with a
    // status-only packet once its latency timer (16 ms at power-on) expires.
    rig.submit(3, 1, Direction::In, 64, &[]);
    let Reply::Submit(status) = rig.recv() else {
        panic!("expected a RET_SUBMIT")
    };
    assert_eq!((status.seqnum, status.status, status.data.len()), (3, 0, 2));
    // Data out on endpoint 2 comes back on endpoint 1 after its header.
    rig.submit(4, 2, Direction::Out, 2, b"hi");
    let mut looped = Vec::new();
    for seq in 5..50 {
        rig.submit(seq, 1, Direction::In, 64, &[]);
        loop {
            match rig.recv() {
                Reply::Submit(r) if r.seqnum == seq => {
                    assert_eq!(r.status, 0);
                    looped.extend_from_slice(&r.data[2..]);
                    break;
                }
                Reply::Submit(r) if r.seqnum == 4 => {
                    assert_eq!((r.status, r.actual_length), (0, 2))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if looped.len() >= 2 {
            break;
        }
    }
    assert_eq!(looped, b"hi");
    let (chip, reason) = rig.finish();
    assert_eq!(reason, DetachReason::HostDetached);
    assert_eq!(chip.serial_number(), Some("USBIP001"));
}
