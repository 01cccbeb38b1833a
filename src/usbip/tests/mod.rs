//! The device server against a fake kernel on the other end of a socket
//! pair, serving a small fake function (or the real FTDI model): no
//! vhci-hcd needed. `server` tests the protocol's semantics, `handle` the
//! attach handle on a fake sysfs.
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

use super::protocol::{CmdSubmit, Command, Direction, Reply, RetSubmit};
use super::server::{Control, DetachReason, Server, Shared};
use crate::sim::usb::{Urb, UrbCompletion, UrbStatus, UsbFunction, UsbSpeed};
use crate::time::Timestamp;

pub(super) const DEVICE_DESCRIPTOR: [u8; 18] = [
    18, 1, 0x00, 0x02, 0, 0, 0, 8, 0x03, 0x04, 0x01, 0x60, 0x00, 0x06, 1, 2, 3, 1,
];
/// What the fake sends into a pending IN URB when its timer fires.
pub(super) const STATUS_PACKET: [u8; 2] = [0x01, 0x60];

/// A loopback device: OUT data on endpoint 2 comes back on IN endpoint 1;
/// GET_DESCRIPTOR(device) answers, every other control request STALLs; a
/// timer, when set, sends a status packet into a pending IN URB. Endpoint 4
/// is a full FIFO: it accepts the first 3 bytes of an OUT and NAKs the rest.
#[derive(Debug, Default)]
pub(super) struct Fake {
    pub(super) pending_in: VecDeque<Urb>,
    pub(super) done: VecDeque<UrbCompletion>,
    pub(super) fifo: Vec<u8>,
    pub(super) timer: Option<Timestamp>,
    pub(super) timeouts: u32,
    pub(super) received: Vec<u8>,
    pub(super) unplugged: bool,
    /// The OUT URB on endpoint 4, held after 3 bytes.
    pub(super) stuck_out: Option<Urb>,
}

impl Fake {
    pub(super) fn complete(&mut self, id: u32, status: UrbStatus, data: Vec<u8>, actual: usize) {
        self.done.push_back(UrbCompletion {
            id,
            status,
            data,
            actual_length: actual,
        });
    }

    /// Data waiting goes into pending IN URBs.
    pub(super) fn deliver(&mut self) {
        while !self.fifo.is_empty() {
            let Some(urb) = self.pending_in.pop_front() else {
                return;
            };
            let n = urb.length.min(self.fifo.len());
            let data: Vec<u8> = self.fifo.drain(..n).collect();
            self.complete(urb.id, UrbStatus::Completed, data, n);
        }
    }

    pub(super) fn unplug(&mut self) {
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
            (4, false) => {
                self.received.extend(urb.data.iter().take(3));
                self.stuck_out = Some(urb);
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
        if self.stuck_out.as_ref().is_some_and(|u| u.id == id) {
            let accepted = self.stuck_out.take().map_or(0, |u| u.data.len().min(3));
            self.complete(id, UrbStatus::Cancelled, Vec::new(), accepted);
            return true;
        }
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
pub(super) struct Rig<F = Fake> {
    pub(super) kernel: UnixStream,
    pub(super) control: Sender<Control<F>>,
    pub(super) shared: Arc<Shared>,
    pub(super) server: JoinHandle<(F, DetachReason)>,
    pub(super) in_urbs: HashMap<u32, bool>,
    pub(super) input: Vec<u8>,
}

impl Rig<Fake> {
    pub(super) fn start() -> Rig {
        Rig::start_with(Fake::default())
    }
}

impl<F: UsbFunction + Send + 'static> Rig<F> {
    pub(super) fn start_with(fake: F) -> Rig<F> {
        let (kernel, device) = UnixStream::pair().unwrap();
        kernel
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let shared = Arc::new(Shared::new().unwrap());
        let (control, requests) = mpsc::channel();
        let server_shared = shared.clone();
        let server =
            std::thread::spawn(move || Server::new(fake, device, requests, server_shared).run());
        Rig {
            kernel,
            control,
            shared,
            server,
            in_urbs: HashMap::new(),
            input: Vec::new(),
        }
    }

    pub(super) fn send(&mut self, cmd: Command) {
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

    pub(super) fn control_in(&mut self, seqnum: u32, setup: [u8; 8]) {
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
    pub(super) fn barrier(&mut self, seqnum: u32) {
        self.control_in(seqnum, [0xC0, 0x90, 0, 0, 0, 0, 2, 0]);
        assert_eq!(
            self.recv(),
            stall(seqnum),
            "the barrier came back out of order"
        );
    }

    /// The next reply (10 s at most: a hang fails instead of blocking).
    pub(super) fn recv(&mut self) -> Reply {
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
    pub(super) fn expect_eof(&mut self) {
        let mut buf = [0u8; 64];
        assert_eq!(
            self.kernel.read(&mut buf).unwrap(),
            0,
            "expected end of file"
        );
    }

    pub(super) fn with_fake<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut F, Timestamp) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.control
            .send(Control::Run(Box::new(move |f: &mut F, now| {
                let _ = tx.send(job(f, now));
            })))
            .unwrap();
        self.shared.bell.ring();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    pub(super) fn finish(self) -> (F, DetachReason) {
        drop(self.kernel);
        let out = self.server.join().unwrap();
        assert_eq!(self.shared.ending.lock().unwrap().as_ref(), Some(&out.1));
        out
    }
}

pub(super) fn ret(seqnum: u32, status: i32, actual: u32, data: &[u8]) -> Reply {
    Reply::Submit(RetSubmit {
        seqnum,
        status,
        actual_length: actual,
        error_count: 0,
        data: data.to_vec(),
    })
}

pub(super) fn stall(seqnum: u32) -> Reply {
    ret(seqnum, -libc::EPIPE, 0, &[])
}

mod handle;
mod server;
