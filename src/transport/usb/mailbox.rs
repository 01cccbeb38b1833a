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
//! thread. So application threads put bytes and [`Command`]s into wait-free
//! rings and ring the event loop's doorbell. The only lock here is the
//! client's, held by application threads alone.
//!
//! # Writes: a stream, written behind
//! Written bytes go into the byte ring, which is the OUT stream's queue: the
//! loop moves them into bulk-OUT transfers whenever one is free, up to
//! [`OUT_TRANSFERS`](super::OUT_TRANSFERS) in flight, so the chip's TX FIFO
//! is refilled while the previous transfer's bytes are still going out. A
//! write returns as soon as its bytes are queued; it waits, up to its
//! timeout, only while the queue is full, and a timeout concerns exactly the
//! bytes it did not queue. Queued bytes stay queued until the device takes
//! them: OUT transfers have no timeout, as the kernel's write URBs have
//! none, so flow control may hold them as long as it likes. The stream's
//! progress is two counters the loop publishes: bytes *settled* (taken by
//! the device, or dropped) and bytes *accepted* (taken by the device).
//! [`Client::flush`] waits until every queued byte has settled; closing
//! the port lets the queue go out first (bounded: see the loop's shutdown).
//!
//! A failed OUT transfer (STALL, unplug, a bus error) *fails the stream*:
//! the loop cancels the OUT transfers behind it and drops every byte queued
//! until the application has been told, so nothing goes out after a hole.
//! The next write or flush reports the failure ([`WriteError::Earlier`]),
//! with the count of queued bytes the device did not take; then the stream
//! resumes. A purge of the chip's TX buffer (or a chip reset) drops what is
//! queued here too, without failing the stream.
//!
//! # Control requests: call and reply
//! Every command carries a sequence number; a [`Reply`] answers one. Control
//! requests do not wait for bytes queued before them (flow control would
//! hold a request that releases it): a setting that must follow the bytes
//! written before it comes after a flush. A caller that gives up (its
//! timeout plus a grace period passed without an answer) marks its command
//! abandoned: the loop then skips it if it has not started it, and the late
//! reply is dropped by the next call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::lock::lock;
use crate::proto::ControlRequest;
use crate::realtime::memory::HotRegions;
use crate::time::{Deadline, Timestamp};
use crate::transport::ftdi::WriteError;

/// The largest control data stage a reply carries (GET_MODEM_STATUS needs 2 bytes).
pub(crate) const CONTROL_DATA: usize = 8;

/// Commands queued at most (the client sends one at a time; abandoned ones can linger).
const COMMAND_SLOTS: usize = 8;
/// Replies held at most: one per queued command, plus the control transfer
/// the loop may have taken from the queue.
const REPLY_SLOTS: usize = COMMAND_SLOTS + 1;

/// How long a caller waits for an answer beyond its own timeout. libusb
/// times the transfer out itself and the loop answers then; this only
/// guards against a loop that never answers.
pub(crate) const REPLY_GRACE: Duration = Duration::from_secs(1);

/// A control request for the event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) seq: u64,
    pub(crate) request: ControlRequest,
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
    /// Rung by the loop when a reply is ready, the stream moved, or it stopped.
    to_app: Doorbell,
    /// Stream bytes the loop is done with: taken by the device or dropped.
    settled: AtomicU64,
    /// Stream bytes the device took.
    accepted: AtomicU64,
    /// Set by the loop when an OUT transfer failed; cleared by the client
    /// once it has reported the failure and the stream has settled.
    failed: AtomicBool,
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
    /// The failure that failed the stream (one at a time: see [`Shared::failed`]).
    failures: rtrb::Consumer<TransferError>,
    next_seq: u64,
    /// Stream bytes queued so far.
    queued: u64,
}

/// The event loop's side.
#[derive(Debug)]
pub(crate) struct Server {
    commands: rtrb::Consumer<Command>,
    bytes: rtrb::Consumer<u8>,
    replies: rtrb::Producer<Reply>,
    failures: rtrb::Producer<TransferError>,
    /// The loop's own copies of the published counters (it alone writes them).
    settled: u64,
    accepted: u64,
    shared: Arc<Shared>,
}

/// A mailbox whose write queue holds `queue_bytes`; callers wait `grace`
/// beyond their timeout for a control request's answer.
pub(crate) fn mailbox(
    to_loop: Arc<Doorbell>,
    queue_bytes: usize,
    grace: Duration,
) -> std::io::Result<(Client, Server)> {
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(COMMAND_SLOTS);
    let (byte_tx, byte_rx) = rtrb::RingBuffer::new(queue_bytes.max(1));
    let (reply_tx, reply_rx) = rtrb::RingBuffer::new(REPLY_SLOTS);
    let (failure_tx, failure_rx) = rtrb::RingBuffer::new(1);
    let shared = Arc::new(Shared {
        stopped: AtomicBool::new(false),
        abandoned: AtomicU64::new(0),
        to_app: Doorbell::new()?,
        settled: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        failed: AtomicBool::new(false),
    });
    Ok((
        Client {
            inner: Mutex::new(ClientRings {
                commands: cmd_tx,
                bytes: byte_tx,
                replies: reply_rx,
                failures: failure_rx,
                next_seq: 1,
                queued: 0,
            }),
            shared: shared.clone(),
            to_loop,
            grace,
        },
        Server {
            commands: cmd_rx,
            bytes: byte_rx,
            replies: reply_tx,
            failures: failure_tx,
            settled: 0,
            accepted: 0,
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

    /// Queues what of `data` fits the write queue, waiting up to `timeout`
    /// for room; returns how many bytes were queued. The device takes them
    /// later: [`flush`](Self::flush) waits for that.
    ///
    /// # Errors
    /// [`WriteError::Earlier`] if the stream failed since the last call
    /// (nothing of `data` is queued then); [`WriteError::Now`] with
    /// `TimedOut` if the queue stayed full (nothing queued), `Cancelled` once
    /// the loop stopped or lost the device.
    pub(crate) fn write(&self, data: &[u8], timeout: Duration) -> Result<usize, WriteError> {
        if data.is_empty() {
            return Ok(0);
        }
        let deadline = Deadline::from_now(timeout);
        let mut rings = lock(&self.inner);
        let shared = &*self.shared;
        self.report_failure(&mut rings, deadline)?;
        let room = shared.to_app.wait_until(Some(deadline), || {
            let ready = shared.stopped.load(Ordering::Acquire)
                || shared.failed.load(Ordering::Acquire)
                || !rings.bytes.is_full();
            ready.then_some(())
        });
        if shared.stopped.load(Ordering::Acquire) {
            return Err(WriteError::Now(TransferError::Cancelled));
        }
        self.report_failure(&mut rings, deadline)?;
        if !matches!(room, Ok(Some(()))) {
            return Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }));
        }
        let (taken, _) = rings.bytes.push_partial_slice(data);
        let n = taken.len();
        rings.queued += n as u64;
        self.to_loop.ring();
        Ok(n)
    }

    /// Waits up to `timeout` until the device has taken every byte queued.
    ///
    /// # Errors
    /// As [`write`](Self::write): a failure of the stream, a timeout, or the
    /// loop stopped with bytes still queued.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), WriteError> {
        let deadline = Deadline::from_now(timeout);
        let mut rings = lock(&self.inner);
        let shared = &*self.shared;
        let queued = rings.queued;
        let settled = shared.to_app.wait_until(Some(deadline), || {
            let ready = shared.stopped.load(Ordering::Acquire)
                || shared.failed.load(Ordering::Acquire)
                || shared.settled.load(Ordering::Acquire) >= queued;
            ready.then_some(())
        });
        self.report_failure(&mut rings, deadline)?;
        if shared.settled.load(Ordering::Acquire) >= queued {
            return Ok(());
        }
        if shared.stopped.load(Ordering::Acquire) {
            return Err(WriteError::Now(TransferError::Cancelled));
        }
        debug_assert!(!matches!(settled, Ok(Some(()))));
        Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }))
    }

    /// If the stream failed: waits (until `deadline` plus the grace period)
    /// for the loop to drop what is queued, clears the failure and returns
    /// it with the count of queued bytes the device did not take.
    fn report_failure(
        &self,
        rings: &mut ClientRings,
        deadline: Deadline,
    ) -> Result<(), WriteError> {
        let shared = &*self.shared;
        if !shared.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let Ok(error) = rings.failures.pop() else {
            // Set before the record is pushed; it follows at once.
            return Err(WriteError::Now(TransferError::TimedOut { transferred: 0 }));
        };
        let queued = rings.queued;
        let left = deadline.remaining(Timestamp::now());
        let until = Deadline::from_now(left.saturating_add(self.grace));
        let _ = shared.to_app.wait_until(Some(until), || {
            let ready = shared.stopped.load(Ordering::Acquire)
                || shared.settled.load(Ordering::Acquire) >= queued;
            ready.then_some(())
        });
        let lost = queued.saturating_sub(shared.accepted.load(Ordering::Acquire));
        // Everything queued before the failure was reported has settled (or
        // the loop stopped): the stream starts afresh.
        shared.failed.store(false, Ordering::Release);
        self.to_loop.ring();
        Err(WriteError::Earlier { error, lost })
    }

    /// The first half of [`control`](Self::control): queued, not yet answered.
    pub(super) fn send_control(
        &self,
        request: ControlRequest,
        timeout: Duration,
    ) -> Result<Call<'_>, TransferError> {
        let mut rings = lock(&self.inner);
        let deadline = Deadline::from_now(timeout.saturating_add(self.grace));
        let shared = &*self.shared;
        if shared.stopped.load(Ordering::Acquire) {
            return Err(TransferError::Cancelled);
        }
        // Room for the command. Only commands abandoned while the loop was
        // stuck can take it; the loop answers (and so rings) when it skips
        // one. Every reply in the ring now answers an earlier call: stale, dropped.
        // A failed wait (the eventfd) counts as no room: the call gives up.
        let room = shared.to_app.wait_until(Some(deadline), || {
            while rings.replies.pop().is_ok() {}
            let free = !rings.commands.is_full();
            (shared.stopped.load(Ordering::Acquire) || free).then_some(())
        });
        if shared.stopped.load(Ordering::Acquire) {
            return Err(TransferError::Cancelled);
        }
        if !matches!(room, Ok(Some(()))) {
            return Err(TransferError::TimedOut { transferred: 0 });
        }
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
        self.close();
        while self.commands.pop().is_ok() {}
    }

    /// The link is lost: from now on every call fails at once (before the
    /// application hears of the loss, so a write after it never succeeds);
    /// [`stop`](Self::stop) follows.
    pub(crate) fn close(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.to_app.ring_always();
    }

    /// The next control request, if any, left queued until
    /// [`pop_command`](Self::pop_command). Commands whose caller gave up
    /// are answered as cancelled and skipped, so nothing goes out that the
    /// caller was told did not.
    pub(crate) fn peek_command(&mut self) -> Option<Command> {
        loop {
            let command = *self.commands.peek().ok()?;
            if command.seq <= self.shared.abandoned.load(Ordering::Acquire) {
                let _ = self.commands.pop();
                self.reply(command.seq, Err(TransferError::Cancelled), &[]);
                continue;
            }
            return Some(command);
        }
    }

    /// Takes the command [`peek_command`](Self::peek_command) returned.
    pub(crate) fn pop_command(&mut self) {
        let _ = self.commands.pop();
    }

    /// The next control request, taken, if the control transfer is free.
    #[cfg(test)]
    pub(crate) fn next_command(&mut self, control_idle: bool) -> Option<Command> {
        let command = self.peek_command()?;
        control_idle.then(|| {
            self.pop_command();
            command
        })
    }

    /// Answers a control request.
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

    /// Write bytes queued and not yet in a transfer.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.bytes.slots()
    }

    /// Moves queued bytes into an OUT transfer's buffer; returns how many.
    pub(crate) fn take_bytes(&mut self, out: &mut [u8]) -> usize {
        let (filled, _) = self.bytes.pop_partial_slice(out);
        let n = filled.len();
        if n > 0 {
            // Room in the queue for a writer waiting on it.
            self.shared.to_app.ring();
        }
        n
    }

    /// The stream failed and the application has not been told yet: no
    /// byte may go out.
    pub(crate) fn stream_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Drops every queued byte (the stream failed, or a purge); they count
    /// as settled.
    pub(crate) fn drop_queued(&mut self) {
        let n = self.bytes.slots();
        if let Ok(chunk) = self.bytes.read_chunk(n) {
            chunk.commit_all();
        }
        if n > 0 {
            self.settle(0, n);
        }
    }

    /// An OUT transfer (or a drop) is done with `accepted` bytes the device
    /// took and `dropped` it did not.
    pub(crate) fn settle(&mut self, accepted: usize, dropped: usize) {
        self.accepted += accepted as u64;
        self.settled += (accepted + dropped) as u64;
        // `accepted` first: a client that sees `settled` reads a current one.
        self.shared.accepted.store(self.accepted, Ordering::Release);
        self.shared.settled.store(self.settled, Ordering::Release);
        self.shared.to_app.ring();
    }

    /// Fails the stream with `error`, unless it has failed already.
    pub(crate) fn fail(&mut self, error: TransferError) {
        if self.shared.failed.load(Ordering::Acquire) {
            return;
        }
        // The client clears the flag only after taking the record, so the
        // one-slot ring is empty here.
        let _ = self.failures.push(error);
        self.shared.failed.store(true, Ordering::Release);
        self.shared.to_app.ring();
    }
}
