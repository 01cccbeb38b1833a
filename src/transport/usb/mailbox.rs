//! How application threads hand writes and control requests to the reader.
//!
//! Once the reader runs, it is the only thread that touches libusb. A write
//! or control transfer submitted from another thread would take libusb's
//! per-transfer and flying-list locks, which the reader also takes while
//! reaping, and a synchronous call could even run the event loop itself,
//! completing the reader's IN transfers on a normal-priority thread. Either
//! way the reader could end up waiting behind a preempted application
//! thread. So application threads put a [`Command`] (and, for a write, its
//! bytes) into wait-free rings and ring the reader's doorbell; the reader
//! submits the transfer and answers with a [`Reply`] when it completes. The
//! only lock here is the client's, held by application threads alone.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::transfers::CONTROL_DATA;
use crate::doorbell::Doorbell;
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;

/// Commands queued at most (the client sends one at a time; stale ones can linger).
const COMMAND_SLOTS: usize = 8;

/// What the reader is asked to do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Request {
    /// Send this many bytes from the byte ring as one bulk-OUT transfer.
    Write { len: usize },
    /// Run this control request.
    Control(ControlRequest),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Command {
    pub(crate) seq: u64,
    pub(crate) request: Request,
    pub(crate) timeout_ms: u32,
}

/// How a transfer failed, as the reader saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Stall,
    NoDevice,
    TimedOut {
        transferred: usize,
    },
    /// Another libusb transfer status or error code.
    Other(i32),
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Reply {
    pub(crate) seq: u64,
    pub(crate) result: Result<usize, Failure>,
    pub(crate) data: [u8; CONTROL_DATA],
}

/// Where the reader is in its life.
const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

#[derive(Debug)]
struct Shared {
    state: AtomicU8,
    /// Rung by the reader when a reply is ready or it stopped.
    to_app: Doorbell,
}

/// The application side.
#[derive(Debug)]
pub(crate) struct Client {
    inner: Mutex<ClientRings>,
    shared: Arc<Shared>,
    /// The reader's doorbell (also its stop signal).
    to_reader: Arc<Doorbell>,
}

#[derive(Debug)]
struct ClientRings {
    commands: rtrb::Producer<Command>,
    bytes: rtrb::Producer<u8>,
    replies: rtrb::Consumer<Reply>,
    next_seq: u64,
}

/// The reader side.
#[derive(Debug)]
pub(crate) struct Server {
    commands: rtrb::Consumer<Command>,
    bytes: rtrb::Consumer<u8>,
    replies: rtrb::Producer<Reply>,
    shared: Arc<Shared>,
}

/// A mailbox whose write bytes fit `out_capacity` (the OUT transfer's size).
pub(crate) fn mailbox(
    to_reader: Arc<Doorbell>,
    out_capacity: usize,
) -> std::io::Result<(Client, Server)> {
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(COMMAND_SLOTS);
    let (byte_tx, byte_rx) = rtrb::RingBuffer::new(out_capacity);
    let (reply_tx, reply_rx) = rtrb::RingBuffer::new(COMMAND_SLOTS);
    let shared = Arc::new(Shared {
        state: AtomicU8::new(NOT_STARTED),
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
            to_reader,
        },
        Server {
            commands: cmd_rx,
            bytes: byte_rx,
            replies: reply_tx,
            shared,
        },
    ))
}

/// Why a call through the mailbox did not produce a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The reader has not started: use libusb directly.
    NotStarted,
    /// The reader has stopped (unplug, fatal error, close).
    Stopped,
    /// No reply within the timeout.
    NoReply,
    /// The transfer failed.
    Failed(Failure),
}

impl Client {
    /// Whether calls must go through the reader.
    pub(crate) fn reader_started(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) != NOT_STARTED
    }

    /// Sends a control request through the reader and waits for its reply.
    pub(crate) fn control(
        &self,
        request: ControlRequest,
        timeout: Duration,
    ) -> Result<(usize, [u8; CONTROL_DATA]), CallError> {
        self.call(Request::Control(request), &[], timeout)
    }

    /// Sends `data` (what fits the OUT transfer) through the reader; returns
    /// the bytes the device took.
    pub(crate) fn write(&self, data: &[u8], timeout: Duration) -> Result<usize, CallError> {
        self.call(Request::Write { len: data.len() }, data, timeout)
            .map(|(n, _)| n)
    }

    fn call(
        &self,
        request: Request,
        data: &[u8],
        timeout: Duration,
    ) -> Result<(usize, [u8; CONTROL_DATA]), CallError> {
        let mut rings = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match self.shared.state.load(Ordering::Acquire) {
            NOT_STARTED => return Err(CallError::NotStarted),
            STOPPED => return Err(CallError::Stopped),
            _ => {}
        }
        // Replies to calls that timed out earlier are stale: drop them.
        while rings.replies.pop().is_ok() {}
        let request = match request {
            Request::Write { .. } => {
                let (taken, _) = rings.bytes.push_partial_slice(data);
                Request::Write { len: taken.len() }
            }
            other => other,
        };
        let seq = rings.next_seq;
        rings.next_seq += 1;
        // libusb times the transfer out itself; the wait below only guards
        // against a reader that never answers.
        let timeout_ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        if rings
            .commands
            .push(Command {
                seq,
                request,
                timeout_ms,
            })
            .is_err()
        {
            return Err(CallError::NoReply);
        }
        self.to_reader.ring();
        let start = Timestamp::now();
        let patience = timeout + Duration::from_secs(1);
        loop {
            while let Ok(reply) = rings.replies.pop() {
                if reply.seq == seq {
                    return reply
                        .result
                        .map(|n| (n, reply.data))
                        .map_err(CallError::Failed);
                }
            }
            if self.shared.state.load(Ordering::Acquire) == STOPPED {
                return Err(CallError::Stopped);
            }
            self.shared.to_app.arm();
            if !rings.replies.is_empty() || self.shared.state.load(Ordering::Acquire) == STOPPED {
                continue;
            }
            let left = patience.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(CallError::NoReply);
            }
            let _ = self.shared.to_app.wait(Some(left));
        }
    }
}

impl Server {
    /// Reports what the reader writes here: the reply ring (prefaulted), the
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

    /// The reader took over libusb: calls now come through the mailbox.
    pub(crate) fn start(&self) {
        self.shared.state.store(RUNNING, Ordering::Release);
    }

    /// The reader is done: fail what is queued and wake any waiting caller.
    pub(crate) fn stop(&mut self) {
        self.shared.state.store(STOPPED, Ordering::Release);
        while self.commands.pop().is_ok() {}
        self.shared.to_app.ring_always();
    }

    /// The next command whose transfer is free, if any.
    pub(crate) fn next_command(&mut self, out_idle: bool, control_idle: bool) -> Option<Command> {
        let command = *self.commands.peek().ok()?;
        let free = match command.request {
            Request::Write { .. } => out_idle,
            Request::Control(_) => control_idle,
        };
        if free {
            let _ = self.commands.pop();
            Some(command)
        } else {
            None
        }
    }

    /// Moves a write's bytes into the OUT transfer buffer; returns how many.
    pub(crate) fn take_bytes(&mut self, len: usize, out: &mut [u8]) -> usize {
        let n = len.min(out.len());
        let (filled, _) = self.bytes.pop_partial_slice(&mut out[..n]);
        filled.len()
    }

    /// Answers a command.
    pub(crate) fn reply(&mut self, seq: u64, result: Result<usize, Failure>, data: &[u8]) {
        let mut reply = Reply {
            seq,
            result,
            data: [0; CONTROL_DATA],
        };
        let n = data.len().min(CONTROL_DATA);
        reply.data[..n].copy_from_slice(&data[..n]);
        // The client drains stale replies before each call, so there is room.
        let _ = self.replies.push(reply);
        self.shared.to_app.ring();
    }
}
