//! The device server: one thread that owns a [`UsbFunction`] and serves
//! vhci-hcd on one end of a socket pair.
//!
//! It sleeps in `ppoll` on the socket and a doorbell (jobs from the
//! handle) with the timeout the function asks for, and on every wakeup:
//! runs the jobs, advances the function's clock if its timeout is due
//! (measuring how late that is), reads what arrived, decodes every whole
//! message (a read may end anywhere), hands URBs and unlinks to the
//! function, and writes every completion back. Before any call that passes
//! a time, a due timeout is handled first, so the function sees time in
//! order.
//!
//! Unlinks follow the kernel's usbip-host (`stub_rx.c`, `stub_tx.c`) and
//! what vhci-hcd expects (`vhci_rx.c`): an unlinked URB that was still
//! pending gets no `RET_SUBMIT`, only a `RET_UNLINK` with `-ECONNRESET`
//! carrying the unlink's seqnum (a `RET_SUBMIT` after that, for a URB vhci
//! no longer knows, would make it drop the connection); a URB that had
//! already completed has had its `RET_SUBMIT`, and the unlink is answered
//! with status 0. One addition: an OUT URB the device had partly accepted
//! when it was cancelled gets its `RET_SUBMIT` (`-ECONNRESET` and the bytes
//! accepted) before the `RET_UNLINK`, since a `RET_UNLINK` carries no length
//! and a real host controller reports what went out.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::protocol::{CmdSubmit, CmdUnlink, Command, Direction, Reply, RetSubmit, RetUnlink};
use crate::doorbell::Doorbell;
use crate::sim::usb::{SetupPacket, Urb, UrbCompletion, UrbStatus, UsbFunction};
use crate::stats::new_latency_histogram;
use crate::sys;
use crate::time::Timestamp;

/// A closure run on the server thread with the function and the time.
pub(crate) type Job<F> = Box<dyn FnOnce(&mut F, Timestamp) + Send>;

/// What the handle asks of the server.
pub(crate) enum Control<F> {
    /// Run a job.
    Run(Job<F>),
    /// Stop serving and close the socket: the host sees the device vanish.
    Unplug,
}

/// Why a device is no longer attached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetachReason {
    /// [`AttachedDevice::unplug`](super::AttachedDevice::unplug) (or dropping the handle).
    Unplugged,
    /// The function reported itself unplugged; what it had queued was delivered first.
    FunctionUnplugged,
    /// The host closed the connection (someone wrote the port to vhci-hcd's
    /// `detach`, or vhci-hcd gave up on the link).
    HostDetached,
    /// The server failed: the text says how.
    Failed(String),
}

impl std::fmt::Display for DetachReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DetachReason::Unplugged => write!(f, "unplugged through the handle"),
            DetachReason::FunctionUnplugged => write!(f, "the device unplugged itself"),
            DetachReason::HostDetached => {
                write!(f, "the host detached it (vhci-hcd closed the link)")
            }
            DetachReason::Failed(why) => write!(f, "the device server failed: {why}"),
        }
    }
}

/// State the server shares with its handle.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Rung after a [`Control`] is sent.
    pub(crate) bell: Doorbell,
    /// How late `handle_timeout` ran, in ns, published every 50 ms.
    pub(crate) lateness: Mutex<Histogram<u64>>,
    /// Set once when the server stops.
    pub(crate) ending: Mutex<Option<DetachReason>>,
}

impl Shared {
    pub(crate) fn new() -> io::Result<Shared> {
        Ok(Shared {
            bell: Doorbell::new()?,
            lateness: Mutex::new(new_latency_histogram()),
            ending: Mutex::new(None),
        })
    }
}

/// How often the lateness histogram is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Bytes read from the socket per `read`.
const READ_CHUNK: usize = 64 * 1024;

/// A URB the host submitted and the function has not finished.
#[derive(Clone, Copy, Debug)]
struct Pending {
    dir_in: bool,
    length: usize,
    /// The seqnum of a `CMD_UNLINK` waiting for this URB's cancellation.
    unlink: Option<u32>,
}

/// The server's state; [`Server::run`] is the thread's body.
pub(crate) struct Server<F> {
    function: F,
    stream: UnixStream,
    control: Receiver<Control<F>>,
    shared: Arc<Shared>,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already written.
    written: usize,
    pending: HashMap<u32, Pending>,
    lateness: Histogram<u64>,
    last_publish: Timestamp,
    /// When this server took the function.
    started: Timestamp,
}

impl<F: UsbFunction> Server<F> {
    pub(crate) fn new(
        function: F,
        stream: UnixStream,
        control: Receiver<Control<F>>,
        shared: Arc<Shared>,
    ) -> Server<F> {
        Server {
            function,
            stream,
            control,
            shared,
            input: Vec::with_capacity(2 * READ_CHUNK),
            output: Vec::with_capacity(READ_CHUNK),
            written: 0,
            pending: HashMap::with_capacity(64),
            lateness: new_latency_histogram(),
            last_publish: Timestamp::now(),
            started: Timestamp::now(),
        }
    }

    /// Serves until unplugged, detached or failed; returns the function and
    /// why it stopped (also published in [`Shared::ending`]). The socket is
    /// closed on return.
    pub(crate) fn run(mut self) -> (F, DetachReason) {
        let reason = match self.stream.set_nonblocking(true) {
            Ok(()) => self.serve(),
            Err(e) => DetachReason::Failed(format!("socket: {e}")),
        };
        self.forget_host();
        self.publish(true);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Ok(mut ending) = self.shared.ending.lock() {
            *ending = Some(reason.clone());
        }
        (self.function, reason)
    }

    fn serve(&mut self) -> DetachReason {
        loop {
            if let Err(e) = self.flush() {
                return e;
            }
            if self.function.is_unplugged() && self.written == self.output.len() {
                return DetachReason::FunctionUnplugged;
            }
            self.shared.bell.arm();
            if let Some(stop) = self.run_jobs() {
                return stop;
            }
            let timeout = self
                .function
                .poll_timeout()
                .map(|due| due.saturating_since(Timestamp::now()));
            let out_pending = self.written < self.output.len();
            let sock_events = libc::POLLIN | if out_pending { libc::POLLOUT } else { 0 };
            let mut fds = [
                sys::pollfd(self.stream.as_fd(), sock_events),
                sys::pollfd(self.shared.bell.as_fd(), libc::POLLIN),
            ];
            if let Err(e) = sys::poll(&mut fds, timeout) {
                return DetachReason::Failed(format!("ppoll: {e}"));
            }
            if let Some(stop) = self.run_jobs() {
                return stop;
            }
            self.advance(Timestamp::now());
            self.drain_completions();
            if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && let Err(stop) = self.receive()
            {
                return stop;
            }
            self.publish(false);
        }
    }

    /// The link is gone, and with it every URB the host had submitted: the
    /// function must not keep them (after a replug it would send data into
    /// URBs of a connection that no longer exists). They are unlinked, and
    /// what they complete with goes nowhere.
    fn forget_host(&mut self) {
        let now = Timestamp::now();
        self.advance(now);
        let ids: Vec<u32> = self.pending.keys().copied().collect();
        for id in ids {
            self.function.unlink(now, id);
        }
        while self.function.poll_completion().is_some() {}
        self.pending.clear();
        self.input.clear();
        self.output.clear();
        self.written = 0;
    }

    /// Runs the queued jobs; `Some` if asked to unplug.
    fn run_jobs(&mut self) -> Option<DetachReason> {
        loop {
            match self.control.try_recv() {
                Ok(Control::Run(job)) => {
                    let now = Timestamp::now();
                    self.advance(now);
                    job(&mut self.function, now);
                    self.drain_completions();
                }
                Ok(Control::Unplug) => return Some(DetachReason::Unplugged),
                // The handle is gone without unplugging: nobody can stop us
                // later, so stop now.
                Err(TryRecvError::Disconnected) => return Some(DetachReason::Unplugged),
                Err(TryRecvError::Empty) => return None,
            }
        }
    }

    /// Handles the function's timeout if it is due at `now`, recording how late.
    fn advance(&mut self, now: Timestamp) {
        if let Some(due) = self.function.poll_timeout()
            && due <= now
        {
            self.function.handle_timeout(now);
            // Time due before this server started (an event that fell due
            // while the device was unplugged) is not this server's lateness.
            let late = now
                .saturating_since(due.max(self.started))
                .as_nanos()
                .min(u128::from(u64::MAX)) as u64;
            self.lateness.saturating_record(late.max(1));
        }
    }

    /// Reads everything available and serves every whole message.
    fn receive(&mut self) -> Result<(), DetachReason> {
        let mut chunk = [0u8; 4096];
        loop {
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return Err(DetachReason::HostDetached),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    if self.input.len() >= READ_CHUNK {
                        self.serve_input()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_hangup(&e) => return Err(DetachReason::HostDetached),
                Err(e) => return Err(DetachReason::Failed(format!("read: {e}"))),
            }
        }
        self.serve_input()
    }

    fn serve_input(&mut self) -> Result<(), DetachReason> {
        let mut used = 0;
        loop {
            match Command::decode(&self.input[used..]) {
                Ok(Some((command, n))) => {
                    used += n;
                    let now = Timestamp::now();
                    self.advance(now);
                    match command {
                        Command::Submit(s) => self.submit(now, s),
                        Command::Unlink(u) => self.unlink(now, u),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(DetachReason::Failed(format!(
                        "the host sent something that is not USB/IP: {e}"
                    )));
                }
            }
        }
        self.input.drain(..used);
        Ok(())
    }

    fn submit(&mut self, now: Timestamp, s: CmdSubmit) {
        let dir_in = s.direction == Direction::In;
        let length = if dir_in {
            s.transfer_buffer_length as usize
        } else {
            s.data.len()
        };
        // A seqnum still pending would make two URBs indistinguishable: the
        // old one can never be answered, so it is dropped from the books.
        self.pending.insert(
            s.seqnum,
            Pending {
                dir_in,
                length,
                unlink: None,
            },
        );
        let urb = Urb {
            id: s.seqnum,
            endpoint: s.endpoint,
            dir_in,
            setup: (s.endpoint == 0).then(|| SetupPacket::from_bytes(s.setup)),
            length,
            data: s.data,
        };
        self.function.submit(now, urb);
        self.drain_completions();
    }

    fn unlink(&mut self, now: Timestamp, u: CmdUnlink) {
        let Some(victim) = self.pending.get_mut(&u.victim) else {
            // Already completed: its RET_SUBMIT is ahead of this in the stream.
            self.queue(Reply::Unlink(RetUnlink {
                seqnum: u.seqnum,
                status: 0,
            }));
            return;
        };
        victim.unlink = Some(u.seqnum);
        self.function.unlink(now, u.victim);
        self.drain_completions();
        // A function that denies knowing a URB the host still waits for can
        // never complete it: answer the unlink as a cancellation.
        if let Some(p) = self.pending.remove(&u.victim) {
            log::warn!(
                "usbip: the device forgot URB {} ({} {} bytes); answered its unlink as cancelled",
                u.victim,
                if p.dir_in { "IN" } else { "OUT" },
                p.length
            );
            self.queue(Reply::Unlink(RetUnlink {
                seqnum: u.seqnum,
                status: -libc::ECONNRESET,
            }));
        }
    }

    fn drain_completions(&mut self) {
        while let Some(c) = self.function.poll_completion() {
            self.answer(c);
        }
    }

    /// Queues the messages that answer a completion, checked against what
    /// the host submitted (the kernel drops the link on an IN reply longer
    /// than the URB, so a device model's bug must not reach it).
    fn answer(&mut self, c: UrbCompletion) {
        let Some(urb) = self.pending.remove(&c.id) else {
            log::warn!(
                "usbip: the device completed URB {} that is not pending",
                c.id
            );
            return;
        };
        // Cancelled whole: the RET_UNLINK alone gives the URB back. An OUT
        // the device had partly accepted is answered with a RET_SUBMIT
        // first, because a RET_UNLINK carries no length and the host must
        // learn what went out; vhci gives the URB back from the RET_SUBMIT
        // (with the unlink's status) and then finds the RET_UNLINK's URB
        // already given back, which it accepts.
        if let (UrbStatus::Cancelled, Some(unlink)) = (c.status, urb.unlink)
            && (urb.dir_in || c.actual_length == 0)
        {
            self.queue(Reply::Unlink(RetUnlink {
                seqnum: unlink,
                status: -libc::ECONNRESET,
            }));
            return;
        }
        let mut status = status_code(c.status);
        let (data, actual) = if urb.dir_in {
            let mut data = c.data;
            if data.len() > urb.length {
                log::warn!(
                    "usbip: the device returned {} bytes for a {}-byte IN URB {}; truncated",
                    data.len(),
                    urb.length,
                    c.id
                );
                data.truncate(urb.length);
                status = -libc::EOVERFLOW;
            }
            let n = data.len();
            (data, n)
        } else {
            (Vec::new(), c.actual_length.min(urb.length))
        };
        self.queue(Reply::Submit(RetSubmit {
            seqnum: c.id,
            status,
            actual_length: actual as u32,
            error_count: 0,
            data,
        }));
        // Completed while its unlink was being handled (or cancelled after
        // part of it went out): the unlink was too late to cancel it whole,
        // which status 0 tells, after the RET_SUBMIT as usbip-host orders them.
        if let Some(unlink) = urb.unlink {
            self.queue(Reply::Unlink(RetUnlink {
                seqnum: unlink,
                status: 0,
            }));
        }
    }

    fn queue(&mut self, reply: Reply) {
        reply.encode(&mut self.output);
    }

    /// Writes what it can without blocking.
    fn flush(&mut self) -> Result<(), DetachReason> {
        while self.written < self.output.len() {
            match (&self.stream).write(&self.output[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_hangup(&e) => return Err(DetachReason::HostDetached),
                Err(e) => return Err(DetachReason::Failed(format!("write: {e}"))),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(())
    }

    fn publish(&mut self, force: bool) {
        let now = Timestamp::now();
        if !force && now.saturating_since(self.last_publish) < PUBLISH_EVERY {
            return;
        }
        if let Ok(mut shared) = self.shared.lateness.try_lock()
            && shared.add(&self.lateness).is_ok()
        {
            self.lateness.reset();
            self.last_publish = now;
        }
    }
}

/// The peer went away.
fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ESHUTDOWN)
    )
}

/// The URB status the host sees (a negative Linux errno), as a host
/// controller reports each outcome.
pub(crate) fn status_code(status: UrbStatus) -> i32 {
    match status {
        UrbStatus::Completed => 0,
        UrbStatus::Stall => -libc::EPIPE,
        UrbStatus::Cancelled => -libc::ECONNRESET,
        UrbStatus::NoDevice => -libc::ENODEV,
        UrbStatus::Overflow => -libc::EOVERFLOW,
    }
}
