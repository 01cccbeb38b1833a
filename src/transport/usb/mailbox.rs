//! How application threads hand writes and control requests to the event loop.
//!
//! The event loop ([`super::event_loop`]) starts before the chip is
//! configured and is the only code that touches libusb's transfers; every
//! control request and write, from the first reset to the last setting, goes
//! through here. A transfer submitted from another thread would take
//! libusb's per-transfer and flying-list locks, which the reader also takes
//! while reaping, and a synchronous call could even run the event loop
//! itself, completing the reader's IN transfers on a normal-priority thread.
//! Either way the reader could end up waiting behind a preempted application
//! thread. So application threads put a [`Command`] (and, for a write, its
//! bytes) into wait-free rings and ring the event loop's doorbell; the loop
//! submits the transfer and answers with a [`Reply`] when it completes. The
//! only lock here is the client's, held by application threads alone.
//!
//! Every command carries a sequence number; a reply answers one. A caller
//! that gives up (its timeout plus a grace period passed without an answer)
//! marks its command abandoned: the loop then skips it if it has not started
//! it, and the late reply is dropped by the next call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::lock::lock;
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::time::Deadline;

/// The largest control data stage a reply carries (GET_MODEM_STATUS needs 2 bytes).
pub(crate) const CONTROL_DATA: usize = 8;

/// Commands queued at most (the client sends one at a time; abandoned ones can linger).
const COMMAND_SLOTS: usize = 8;
/// Replies held at most: one per queued command, plus the OUT and the
/// control transfer the loop may have taken from the queue.
const REPLY_SLOTS: usize = COMMAND_SLOTS + 2;

/// How long a caller waits for an answer beyond its own timeout. libusb
/// times the transfer out itself and the loop answers then; this only
/// guards against a loop that never answers.
pub(crate) const REPLY_GRACE: Duration = Duration::from_secs(1);

/// What the event loop is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Send this many bytes from the byte ring as one bulk-OUT transfer.
    Write { len: usize },
    /// Run this control request.
    Control(ControlRequest),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) seq: u64,
    pub(crate) request: Request,
    /// libusb's timeout for the transfer (at least 1: 0 would mean none).
    pub(crate) timeout_ms: u32,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Reply {
    seq: u64,
    result: Result<usize, TransferError>,
    data: [u8; CONTROL_DATA],
}

#[derive(Debug)]
struct Shared {
    /// The loop has stopped for good: no command will be answered.
    stopped: AtomicBool,
    /// The highest sequence number whose caller gave up waiting.
    abandoned: AtomicU64,
    /// Rung by the loop when a reply is ready or it stopped.
    to_app: Doorbell,
}

/// The application side.
#[derive(Debug)]
pub(crate) struct Client {
    inner: Mutex<ClientRings>,
    shared: Arc<Shared>,
    /// The event loop's doorbell.
    to_loop: Arc<Doorbell>,
    grace: Duration,
}

#[derive(Debug)]
struct ClientRings {
    commands: rtrb::Producer<Command>,
    bytes: rtrb::Producer<u8>,
    replies: rtrb::Consumer<Reply>,
    next_seq: u64,
}

/// The event loop's side.
#[derive(Debug)]
pub(crate) struct Server {
    commands: rtrb::Consumer<Command>,
    bytes: rtrb::Consumer<u8>,
    replies: rtrb::Producer<Reply>,
    shared: Arc<Shared>,
}

/// A mailbox whose write bytes fit `out_capacity` (the OUT transfer's size);
/// callers wait `grace` beyond their timeout for an answer.
pub(crate) fn mailbox(
    to_loop: Arc<Doorbell>,
    out_capacity: usize,
    grace: Duration,
) -> std::io::Result<(Client, Server)> {
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(COMMAND_SLOTS);
    let (byte_tx, byte_rx) = rtrb::RingBuffer::new(out_capacity.max(1));
    let (reply_tx, reply_rx) = rtrb::RingBuffer::new(REPLY_SLOTS);
    let shared = Arc::new(Shared {
        stopped: AtomicBool::new(false),
        abandoned: AtomicU64::new(0),
        to_app: Doorbell::new()?,
    });
    Ok((
        Client {
            inner: Mutex::new(ClientRings {
                commands: cmd_tx,
                bytes: byte_tx,
                replies: reply_rx,
                next_seq: 1,
            }),
            shared: shared.clone(),
            to_loop,
            grace,
        },
        Server {
            commands: cmd_rx,
            bytes: byte_rx,
            replies: reply_tx,
            shared,
        },
    ))
}

/// libusb's timeout for a transfer the caller gives `timeout`: whole
/// milliseconds rounded up, at least 1 (libusb reads 0 as "no timeout").
pub(super) fn libusb_timeout_ms(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_micros().div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}

impl Client {
    /// Sends a control request through the event loop and waits for its
    /// reply: the data stage's length and bytes.
    pub(crate) fn control(
        &self,
        request: ControlRequest,
        timeout: Duration,
    ) -> Result<(usize, [u8; CONTROL_DATA]), TransferError> {
        self.send_control(request, timeout)?.wait()
    }

    /// Sends what of `data` fits the byte ring through the event loop;
    /// returns the bytes the device took.
    pub(crate) fn write(&self, data: &[u8], timeout: Duration) -> Result<usize, TransferError> {
        if data.is_empty() {
            return Ok(0);
        }
        self.send_write(data, timeout)?.wait().map(|(n, _)| n)
    }

    /// The first half of [`control`](Self::control): queued, not yet answered.
    pub(super) fn send_control(
        &self,
        request: ControlRequest,
        timeout: Duration,
    ) -> Result<Call<'_>, TransferError> {
        self.send(Request::Control(request), &[], timeout)
    }

    /// The first half of [`write`](Self::write).
    pub(super) fn send_write(
        &self,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Call<'_>, TransferError> {
        self.send(Request::Write { len: data.len() }, data, timeout)
    }

    /// Queues a command (and a write's bytes, as many as fit) and rings the
    /// loop. The returned call holds the client until its reply is in.
    fn send(
        &self,
        request: Request,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Call<'_>, TransferError> {
        let mut rings = lock(&self.inner);
        let deadline = Deadline::from_now(timeout.saturating_add(self.grace));
        let shared = &*self.shared;
        if shared.stopped.load(Ordering::Acquire) {
            return Err(TransferError::Cancelled);
        }
        // Room for the command, and for a write some of its bytes. Only
        // commands abandoned while the loop was stuck can take it; the loop
        // answers (and so rings) when it skips one. Every reply in the ring
        // now answers an earlier call: stale, dropped.
        let is_write = matches!(request, Request::Write { .. });
        // A failed wait (the eventfd) counts as no room: the call gives up.
        let room = shared.to_app.wait_until(Some(deadline), || {
            while rings.replies.pop().is_ok() {}
            let free = !rings.commands.is_full() && (!is_write || !rings.bytes.is_full());
            (shared.stopped.load(Ordering::Acquire) || free).then_some(())
        });
        if shared.stopped.load(Ordering::Acquire) {
            return Err(TransferError::Cancelled);
        }
        if !matches!(room, Ok(Some(()))) {
            return Err(TransferError::TimedOut { transferred: 0 });
        }
        let request = match request {
            Request::Write { .. } => {
                let (taken, _) = rings.bytes.push_partial_slice(data);
                Request::Write { len: taken.len() }
            }
            control => control,
        };
        let seq = rings.next_seq;
        rings.next_seq += 1;
        let command = Command {
            seq,
            request,
            timeout_ms: libusb_timeout_ms(timeout),
        };
        // Checked for room above, under the same lock.
        let _ = rings.commands.push(command);
        self.to_loop.ring();
        Ok(Call {
            rings,
            shared,
            seq,
            deadline,
        })
    }
}

/// A command sent and not yet answered; it holds the client (one call at a time).
pub(super) struct Call<'a> {
    rings: MutexGuard<'a, ClientRings>,
    shared: &'a Shared,
    seq: u64,
    deadline: Deadline,
}

impl Call<'_> {
    /// Waits for the answer to this command until the deadline (the caller's
    /// timeout plus the grace period); then gives the command up.
    pub(super) fn wait(mut self) -> Result<(usize, [u8; CONTROL_DATA]), TransferError> {
        let (seq, shared) = (self.seq, self.shared);
        let rings = &mut self.rings;
        // Some(Some(reply)): answered; Some(None): the loop stopped; None
        // (or a failed wait on the eventfd): no answer by the deadline.
        let outcome = shared.to_app.wait_until(Some(self.deadline), || {
            while let Ok(reply) = rings.replies.pop() {
                if reply.seq == seq {
                    return Some(Some(reply));
                }
            }
            shared.stopped.load(Ordering::Acquire).then_some(None)
        });
        match outcome {
            Ok(Some(Some(reply))) => reply.result.map(|n| (n, reply.data)),
            Ok(Some(None)) => Err(TransferError::Cancelled),
            Ok(None) | Err(_) => {
                shared.abandoned.fetch_max(seq, Ordering::AcqRel);
                Err(TransferError::TimedOut { transferred: 0 })
            }
        }
    }
}

impl Server {
    /// Reports what the loop writes here: the reply ring (prefaulted), the
    /// rings' indices and the shared state. The command and byte slots are
    /// written by the application first, so they are resident when read.
    pub(crate) fn hot_memory(&mut self, regions: &mut HotRegions) {
        regions.add("transport state", &*self.shared);
        regions.add("transport state", self.commands.buffer());
        regions.add("transport state", self.bytes.buffer());
        let empty = Reply {
            seq: 0,
            result: Ok(0),
            data: [0; CONTROL_DATA],
        };
        regions.prefault_ring("transport state", &mut self.replies, empty);
    }

    /// The loop is done: fail what is queued and wake any waiting caller.
    pub(crate) fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        while self.commands.pop().is_ok() {}
        self.shared.to_app.ring_always();
    }

    /// The next command whose transfer is free, if any. Commands whose
    /// caller gave up are answered as cancelled and skipped (a write's
    /// bytes are dropped with it), so nothing goes out that the caller was
    /// told did not.
    pub(crate) fn next_command(&mut self, out_idle: bool, control_idle: bool) -> Option<Command> {
        loop {
            let command = *self.commands.peek().ok()?;
            if command.seq <= self.shared.abandoned.load(Ordering::Acquire) {
                let _ = self.commands.pop();
                if let Request::Write { len } = command.request {
                    self.discard_bytes(len);
                }
                self.reply(command.seq, Err(TransferError::Cancelled), &[]);
                continue;
            }
            let free = match command.request {
                Request::Write { .. } => out_idle,
                Request::Control(_) => control_idle,
            };
            if !free {
                return None;
            }
            let _ = self.commands.pop();
            return Some(command);
        }
    }

    /// Moves a write's bytes into the OUT transfer buffer; returns how many.
    pub(crate) fn take_bytes(&mut self, len: usize, out: &mut [u8]) -> usize {
        let n = len.min(out.len());
        let (filled, _) = self.bytes.pop_partial_slice(&mut out[..n]);
        filled.len()
    }

    /// Drops a write's bytes that will not be sent.
    pub(crate) fn discard_bytes(&mut self, len: usize) {
        let n = len.min(self.bytes.slots());
        if let Ok(chunk) = self.bytes.read_chunk(n) {
            chunk.commit_all();
        }
    }

    /// Answers a command.
    pub(crate) fn reply(&mut self, seq: u64, result: Result<usize, TransferError>, data: &[u8]) {
        let mut reply = Reply {
            seq,
            result,
            data: [0; CONTROL_DATA],
        };
        let n = data.len().min(CONTROL_DATA);
        reply.data[..n].copy_from_slice(&data[..n]);
        // At most REPLY_SLOTS commands are unanswered, and the client
        // drains stale replies before each call, so there is room.
        let _ = self.replies.push(reply);
        self.shared.to_app.ring();
    }
}
