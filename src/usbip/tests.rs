//! The device server against a fake kernel on the other end of a socket
//! pair, serving a small fake function: no vhci-hcd needed.
//!
//! Ordering, not timing, makes these deterministic: the server answers the
//! host's messages in the order they arrive, so a request that completes at
//! once, sent after one that must stay pending, proves by arriving first
//! that nothing was sent for the pending one.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::protocol::{CmdSubmit, CmdUnlink, Command, Direction, Reply, RetSubmit, RetUnlink};
use super::server::{Control, DetachReason, Server, Shared};
use crate::sim::usb::{Urb, UrbCompletion, UrbStatus, UsbFunction, UsbSpeed};
use crate::time::Timestamp;

const DEVICE_DESCRIPTOR: [u8; 18] = [
    18, 1, 0x00, 0x02, 0, 0, 0, 8, 0x03, 0x04, 0x01, 0x60, 0x00, 0x06, 1, 2, 3, 1,
];
/// What the fake sends into a pending IN URB when its timer fires.
const STATUS_PACKET: [u8; 2] = [0x01, 0x60];

/// A loopback device: OUT data on endpoint 2 comes back on IN endpoint 1;
/// GET_DESCRIPTOR(device) answers, every other control request STALLs; a
/// timer, when set, sends a status packet into a pending IN URB.
#[derive(Debug, Default)]
struct Fake {
    pending_in: VecDeque<Urb>,
    done: VecDeque<UrbCompletion>,
    fifo: Vec<u8>,
    timer: Option<Timestamp>,
    timeouts: u32,
    received: Vec<u8>,
    unplugged: bool,
}

impl Fake {
    fn complete(&mut self, id: u32, status: UrbStatus, data: Vec<u8>, actual: usize) {
        self.done.push_back(UrbCompletion {
            id,
            status,
            data,
            actual_length: actual,
        });
    }

    /// Data waiting goes into pending IN URBs.
    fn deliver(&mut self) {
        while !self.fifo.is_empty() {
            let Some(urb) = self.pending_in.pop_front() else {
                return;
            };
            let n = urb.length.min(self.fifo.len());
            let data: Vec<u8> = self.fifo.drain(..n).collect();
            self.complete(urb.id, UrbStatus::Completed, data, n);
        }
    }

    fn unplug(&mut self) {
        self.unplugged = true;
        while let Some(urb) = self.pending_in.pop_front() {
            self.complete(urb.id, UrbStatus::NoDevice, Vec::new(), 0);
        }
    }
}

impl UsbFunction for Fake {
    fn speed(&self) -> UsbSpeed {
        UsbSpeed::Full
    }

    fn submit(&mut self, _now: Timestamp, urb: Urb) {
        match (urb.endpoint, urb.dir_in) {
            (0, _) => match urb.setup {
                Some(s) if s.request_type == 0x80 && s.request == 6 && s.value == 0x0100 => {
                    let n = usize::from(s.length).min(DEVICE_DESCRIPTOR.len());
                    self.complete(
                        urb.id,
                        UrbStatus::Completed,
                        DEVICE_DESCRIPTOR[..n].to_vec(),
                        n,
                    );
                }
                _ => self.complete(urb.id, UrbStatus::Stall, Vec::new(), 0),
            },
            (_, true) => {
                self.pending_in.push_back(urb);
                self.deliver();
            }
            (_, false) => {
                let n = urb.data.len();
                self.received.extend_from_slice(&urb.data);
                self.fifo.extend_from_slice(&urb.data);
                self.complete(urb.id, UrbStatus::Completed, Vec::new(), n);
                self.deliver();
            }
        }
    }

    fn unlink(&mut self, _now: Timestamp, id: u32) -> bool {
        let Some(i) = self.pending_in.iter().position(|u| u.id == id) else {
            return false;
        };
        self.pending_in.remove(i);
        self.complete(id, UrbStatus::Cancelled, Vec::new(), 0);
        true
    }

    fn poll_completion(&mut self) -> Option<UrbCompletion> {
        self.done.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.timer
    }

    fn handle_timeout(&mut self, _now: Timestamp) {
        self.timer = None;
        self.timeouts += 1;
        if let Some(urb) = self.pending_in.pop_front() {
            self.complete(urb.id, UrbStatus::Completed, STATUS_PACKET.to_vec(), 2);
        }
    }

    fn is_unplugged(&self) -> bool {
        self.unplugged
    }
}

/// The kernel's end of the link, and the server under test.
struct Rig {
    kernel: UnixStream,
    control: Sender<Control<Fake>>,
    shared: Arc<Shared>,
    server: JoinHandle<(Fake, DetachReason)>,
    in_urbs: HashMap<u32, bool>,
    input: Vec<u8>,
}

impl Rig {
    fn start() -> Rig {
        let (kernel, device) = UnixStream::pair().unwrap();
        kernel
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let shared = Arc::new(Shared::new().unwrap());
        let (control, requests) = mpsc::channel();
        let server_shared = shared.clone();
        let server = std::thread::spawn(move || {
            Server::new(Fake::default(), device, requests, server_shared).run()
        });
        Rig {
            kernel,
            control,
            shared,
            server,
            in_urbs: HashMap::new(),
            input: Vec::new(),
        }
    }

    fn send(&mut self, cmd: Command) {
        if let Command::Submit(s) = &cmd {
            self.in_urbs.insert(s.seqnum, s.direction == Direction::In);
        }
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        self.kernel.write_all(&wire).unwrap();
    }

    fn submit(
        &mut self,
        seqnum: u32,
        endpoint: u8,
        direction: Direction,
        length: u32,
        data: &[u8],
    ) {
        self.send(Command::Submit(CmdSubmit {
            seqnum,
            devid: 1,
            direction,
            endpoint,
            transfer_flags: 0,
            transfer_buffer_length: length,
            start_frame: 0,
            interval: 0,
            setup: [0; 8],
            data: data.to_vec(),
        }));
    }

    fn control_in(&mut self, seqnum: u32, setup: [u8; 8]) {
        self.send(Command::Submit(CmdSubmit {
            seqnum,
            devid: 1,
            direction: Direction::In,
            endpoint: 0,
            transfer_flags: 0,
            transfer_buffer_length: u32::from(u16::from_le_bytes([setup[6], setup[7]])),
            start_frame: 0,
            interval: 0,
            setup,
            data: Vec::new(),
        }));
    }

    /// A request the fake refuses at once: its STALL is a barrier.
    fn barrier(&mut self, seqnum: u32) {
        self.control_in(seqnum, [0xC0, 0x90, 0, 0, 0, 0, 2, 0]);
        assert_eq!(
            self.recv(),
            stall(seqnum),
            "the barrier came back out of order"
        );
    }

    /// The next reply (10 s at most: a hang fails instead of blocking).
    fn recv(&mut self) -> Reply {
        loop {
            let in_urbs = &self.in_urbs;
            if let Some((reply, n)) =
                Reply::decode(&self.input, |s| in_urbs.get(&s).copied().unwrap_or(false)).unwrap()
            {
                self.input.drain(..n);
                return reply;
            }
            let mut buf = [0u8; 1024];
            let n = self.kernel.read(&mut buf).expect("a reply within 10 s");
            assert!(
                n > 0,
                "the server closed the link; buffered {:?}",
                self.input
            );
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    /// The server closed its end: the kernel reads end of file.
    fn expect_eof(&mut self) {
        let mut buf = [0u8; 64];
        assert_eq!(
            self.kernel.read(&mut buf).unwrap(),
            0,
            "expected end of file"
        );
    }

    fn with_fake<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Fake, Timestamp) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.control
            .send(Control::Run(Box::new(move |f: &mut Fake, now| {
                let _ = tx.send(job(f, now));
            })))
            .unwrap();
        self.shared.bell.ring();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn finish(self) -> (Fake, DetachReason) {
        drop(self.kernel);
        let out = self.server.join().unwrap();
        assert_eq!(self.shared.ending.lock().unwrap().as_ref(), Some(&out.1));
        out
    }
}

fn ret(seqnum: u32, status: i32, actual: u32, data: &[u8]) -> Reply {
    Reply::Submit(RetSubmit {
        seqnum,
        status,
        actual_length: actual,
        error_count: 0,
        data: data.to_vec(),
    })
}

fn stall(seqnum: u32) -> Reply {
    ret(seqnum, -libc::EPIPE, 0, &[])
}

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
fn garbage_from_the_host_stops_the_server_without_a_panic() {
    let mut rig = Rig::start();
    rig.kernel.write_all(&[0xAB; 48]).unwrap();
    rig.expect_eof();
    match rig.finish().1 {
        DetachReason::Failed(why) => assert!(why.contains("not USB/IP"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
