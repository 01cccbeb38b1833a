//! The libusb event loop of one port, whichever thread runs it.
//!
//! Each [`turn`](EventLoop::turn) waits in `ppoll` on libusb's file
//! descriptors (the device's usbfs fd, libusb's event and timer fds) plus
//! the port's doorbell, then lets libusb reap without blocking. Completed IN
//! transfers are handed on in submission order and resubmitted at once;
//! completed OUT transfers settle the write stream and control transfers are
//! answered through the mailbox; queued bytes go into free OUT transfers (up
//! to all of them in flight, so the chip's TX FIFO never waits for the next
//! write) and queued control requests are submitted.
//!
//! The loop starts serving the mailbox as soon as the interface is claimed,
//! before the chip is configured, so control requests and writes have one
//! path from the first reset on. Its IN transfers are submitted only when
//! the reader takes the loop over ([`arm_in`](EventLoop::arm_in)), after the
//! configuration. Exactly one thread runs the loop at a time because it is a
//! value that moves (see `inbound`), not because of a convention.
//!
//! The loop is written against [`Transfers`], a small trait over the
//! transfer set, so that its reap, resubmit, retry and loss logic runs in
//! unit tests against a fake one (`tests/fake.rs`), without USB.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::mailbox::{CONTROL_DATA, Server};
use crate::doorbell::Doorbell;
use crate::error::TransferError;
use crate::proto::Request;
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;
use crate::transport::{Completion, LinkLost};

/// How long shutdown waits for cancelled transfers to come back.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// One wait while draining.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// Consecutive failure events on bulk IN (STALLs or protocol errors)
/// survived; one more and the link counts as lost.
pub(crate) const RETRY_LIMIT: u32 = 3;
/// Consecutive failed waits (`ppoll` or `libusb_handle_events` returning an
/// error) after which the link counts as lost.
pub(crate) const WAIT_FAILURE_LIMIT: u32 = 5;
/// The pause after the first failed wait; it doubles with each further one.
pub(crate) const FIRST_BACK_OFF: Duration = Duration::from_millis(1);

/// The reason given when the device goes away.
const UNPLUGGED: &str = "the device was unplugged";

/// What a wait saw besides readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Polled {
    /// A libusb descriptor reported an error or hang-up: on usbfs, the
    /// kernel's sign that the device is gone.
    pub(crate) device_gone: bool,
}

/// A transfer that finished: its result, when its completion was seen, and
/// its data (the bytes received, or a control request's data stage).
#[derive(Debug)]
pub(crate) struct Finished<'a> {
    pub(crate) result: Result<usize, TransferError>,
    pub(crate) at: Timestamp,
    pub(crate) data: &'a [u8],
}

/// What the event loop needs from a transfer set: `transfers::TransferSet`
/// on a real device, a fake in tests. Transfers are identified by index (IN)
/// or role (OUT, control); a `take_*` returns a finished transfer once and
/// makes it idle again.
pub(crate) trait Transfers: Send + 'static {
    /// Before any submission: write through the buffers and report what the
    /// loop touches per completion.
    fn hot_memory(&mut self, regions: &mut HotRegions);
    /// Waits up to `timeout` for libusb's descriptors or the doorbell.
    fn poll(&mut self, timeout: Duration) -> io::Result<Polled>;
    /// Lets libusb reap and run completion callbacks, without blocking.
    fn handle_events(&mut self) -> Result<(), TransferError>;
    /// The clock the loop's bounds are measured on.
    fn now(&self) -> Timestamp;
    /// Pauses the loop after a failed wait.
    fn back_off(&mut self, pause: Duration);

    /// How many bulk-IN transfers the set has.
    fn in_count(&self) -> usize;
    /// (Re)submits bulk-IN transfer `i` for one max packet.
    fn submit_in(&mut self, i: usize) -> Result<(), TransferError>;
    /// Bulk-IN transfer `i`, if it finished since it was submitted.
    fn take_in(&mut self, i: usize) -> Option<Finished<'_>>;
    /// Clears a halt (STALL) on the bulk-IN endpoint.
    fn clear_in_halt(&mut self) -> Result<(), TransferError>;

    /// How many bulk-OUT transfers the set has.
    fn out_count(&self) -> usize;
    /// OUT transfer `k` is free (not submitted, or taken since).
    fn out_idle(&self, k: usize) -> bool;
    /// Lets `fill` write OUT transfer `k`'s buffer (it returns the length),
    /// then submits that many bytes.
    fn submit_out(
        &mut self,
        k: usize,
        timeout_ms: u32,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<(), TransferError>;
    /// OUT transfer `k`'s result and the bytes the device took (also of a
    /// failed one), if it finished since it was submitted.
    fn take_out(&mut self, k: usize) -> Option<(Result<usize, TransferError>, usize)>;
    /// Asks libusb to cancel OUT transfer `k` if it is in flight.
    fn cancel_out(&mut self, k: usize);

    /// The control transfer is free.
    fn control_idle(&self) -> bool;
    /// Submits a control request.
    fn submit_control(
        &mut self,
        request: crate::proto::ControlRequest,
        timeout_ms: u32,
    ) -> Result<(), TransferError>;
    /// The control transfer, if it finished since it was submitted.
    fn take_control(&mut self) -> Option<Finished<'_>>;

    /// Asks libusb to cancel every pending transfer.
    fn cancel_all(&mut self);
    /// Whether libusb still owns any transfer.
    fn any_pending(&self) -> bool;
}

/// An OUT transfer in flight.
#[derive(Clone, Copy, Debug)]
struct OutFlight {
    /// Which of the set's OUT transfers.
    k: usize,
    /// Bytes submitted.
    len: usize,
    /// Cancelled by a purge: however it ends, its bytes were dropped on
    /// purpose, not lost to a failure.
    purged: bool,
}

/// Why the last wait failed (kept without allocating until it is reported).
#[derive(Clone, Copy, Debug)]
enum WaitError {
    Poll(io::ErrorKind, Option<i32>),
    Events(TransferError),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Poll(_, Some(errno)) => {
                write!(f, "ppoll failed: {}", io::Error::from_raw_os_error(*errno))
            }
            WaitError::Poll(kind, None) => write!(f, "ppoll failed: {kind}"),
            WaitError::Events(e) => write!(f, "libusb_handle_events failed: {e}"),
        }
    }
}

/// The event loop: the transfer set, the mailbox's server end, and the
/// state of the IN stream.
#[derive(Debug)]
pub(crate) struct EventLoop<T: Transfers> {
    transfers: T,
    mailbox: Server,
    wake: Arc<Doorbell>,
    /// In-flight IN transfers in submission order (they complete in order).
    order: VecDeque<usize>,
    /// In-flight OUT transfers in submission order (one endpoint's
    /// transfers complete in order).
    out_order: VecDeque<OutFlight>,
    /// The failure epoch each IN transfer was submitted in (see `failed`).
    submitted_in: Vec<u64>,
    /// Bumped with every counted failure event on bulk IN.
    epoch: u64,
    stalls: u32,
    errors: u32,
    wait_failures: u32,
    lost: Option<String>,
    /// The mailbox command the control transfer is working on.
    control_seq: u64,
    shut_down: bool,
}

impl<T: Transfers> EventLoop<T> {
    pub(crate) fn new(transfers: T, mailbox: Server, wake: Arc<Doorbell>) -> EventLoop<T> {
        let n = transfers.in_count();
        let outs = transfers.out_count();
        EventLoop {
            transfers,
            mailbox,
            wake,
            order: VecDeque::with_capacity(n),
            out_order: VecDeque::with_capacity(outs),
            submitted_in: vec![0; n],
            epoch: 0,
            stalls: 0,
            errors: 0,
            wait_failures: 0,
            lost: None,
            control_seq: 0,
            shut_down: false,
        }
    }

    /// Why the link was lost, if it was.
    pub(crate) fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// The transfer set (tests inspect the fake through it).
    #[cfg(test)]
    pub(crate) fn transfers(&mut self) -> &mut T {
        &mut self.transfers
    }

    /// Reports the memory the loop touches per turn; before [`arm_in`](Self::arm_in).
    pub(crate) fn hot_memory(&mut self, regions: &mut HotRegions) {
        self.transfers.hot_memory(regions);
        self.mailbox.hot_memory(regions);
        // The in-flight order, filled to capacity once so its whole buffer
        // is written and resident.
        self.order.clear();
        self.order.extend(0..self.order.capacity());
        let (a, b) = self.order.as_slices();
        regions.add("transport state", a);
        regions.add("transport state", b);
        self.order.clear();
        self.out_order.clear();
        self.out_order
            .extend((0..self.out_order.capacity()).map(|k| OutFlight {
                k,
                len: 0,
                purged: false,
            }));
        let (a, b) = self.out_order.as_slices();
        regions.add("transport state", a);
        regions.add("transport state", b);
        self.out_order.clear();
        regions.add("transport state", &self.submitted_in[..]);
    }

    /// Puts every IN transfer in flight (once the chip is configured).
    pub(crate) fn arm_in(&mut self) -> Result<(), LinkLost> {
        for i in 0..self.transfers.in_count() {
            if self.lost.is_none() {
                self.submit_in(i);
            }
        }
        self.result()
    }

    fn result(&self) -> Result<(), LinkLost> {
        match &self.lost {
            Some(why) => Err(LinkLost(why.clone())),
            None => Ok(()),
        }
    }

    /// One turn: serve commands, wait up to `timeout`, reap, answer, serve
    /// again. Completed IN transfers go to `deliver`, in order.
    pub(crate) fn turn<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        deliver: &mut F,
    ) -> Result<(), LinkLost> {
        self.result()?;
        self.wake.arm();
        self.serve_commands();
        let polled = self.transfers.poll(timeout);
        // Always let libusb look: it also expires OUT/control timeouts.
        let events = self.transfers.handle_events();
        self.reap_in(deliver);
        self.reap_commands();
        let failure = match (&polled, events) {
            (Err(e), _) => Some(WaitError::Poll(e.kind(), e.raw_os_error())),
            (Ok(_), Err(e)) => Some(WaitError::Events(e)),
            (Ok(_), Ok(())) => None,
        };
        if matches!(polled, Ok(Polled { device_gone: true })) {
            self.lose(UNPLUGGED);
        }
        match failure {
            Some(e) => self.wait_failed(e),
            None => self.wait_failures = 0,
        }
        if self.lost.is_none() {
            self.serve_commands();
        }
        self.result()
    }

    /// One turn on a shared reader, which has just let libusb reap for the
    /// whole context: serve commands, hand over and resubmit the completed IN
    /// transfers, answer, serve again; no wait, no event handling. Returns
    /// how many IN transfers it handed over: at most those in flight, since
    /// a resubmitted one completes only in a later event handling.
    pub(crate) fn turn_ready<F: FnMut(Completion<'_>)>(
        &mut self,
        deliver: &mut F,
    ) -> Result<usize, LinkLost> {
        self.result()?;
        // The shared reader watches the doorbell edge-triggered.
        self.wake.arm_edge_triggered();
        self.serve_commands();
        let mut n = 0;
        self.reap_in(&mut |c| {
            n += 1;
            deliver(c);
        });
        self.reap_commands();
        if self.lost.is_none() {
            self.serve_commands();
        }
        self.result().map(|()| n)
    }

    /// A failed wait: back off, doubling the pause, and give up after
    /// [`WAIT_FAILURE_LIMIT`] in a row, so that a persistent error never
    /// spins the realtime thread.
    fn wait_failed(&mut self, e: WaitError) {
        self.wait_failures += 1;
        if self.wait_failures >= WAIT_FAILURE_LIMIT {
            self.lose(format!(
                "waiting for USB events failed {WAIT_FAILURE_LIMIT} times in a row (last: {e})"
            ));
        } else {
            self.transfers
                .back_off(FIRST_BACK_OFF * (1 << (self.wait_failures - 1)));
        }
    }

    fn lose(&mut self, why: impl Into<String>) {
        if self.lost.is_none() {
            self.lost = Some(why.into());
            // Writes and requests fail from now on, before the reader tells
            // the application.
            self.mailbox.close();
        }
    }

    fn submit_in(&mut self, i: usize) {
        match self.transfers.submit_in(i) {
            Ok(()) => {
                self.order.push_back(i);
                if let Some(epoch) = self.submitted_in.get_mut(i) {
                    *epoch = self.epoch;
                }
            }
            Err(TransferError::NoDevice) => self.lose(UNPLUGGED),
            Err(e) => self.lose(format!("submitting a bulk-IN transfer failed: {e}")),
        }
    }

    /// Hands finished IN transfers to `deliver` in order and resubmits them.
    fn reap_in<F: FnMut(Completion<'_>)>(&mut self, deliver: &mut F) {
        while let Some(&i) = self.order.front() {
            let Some(done) = self.transfers.take_in(i) else {
                break;
            };
            let result = done.result;
            if result.is_ok() {
                deliver(Completion {
                    data: done.data,
                    at: done.at,
                });
            }
            self.order.pop_front();
            let resubmit = match result {
                Ok(_) => {
                    self.stalls = 0;
                    self.errors = 0;
                    true
                }
                // Timeout 0 means none; a babbling device overflowing one
                // packet is noise worth surviving.
                Err(TransferError::TimedOut { .. } | TransferError::Overflow) => true,
                Err(TransferError::Cancelled) => false,
                Err(TransferError::NoDevice) => {
                    self.lose(UNPLUGGED);
                    false
                }
                Err(TransferError::Stall) => {
                    self.failed(i, true);
                    self.retry("the bulk-IN endpoint keeps stalling")
                }
                // EPROTO/EILSEQ: often the first sign of an unplug.
                Err(TransferError::Fault) => {
                    self.failed(i, false);
                    self.retry("bulk-IN transfers keep failing (USB protocol errors)")
                }
                Err(e) => {
                    self.lose(format!("a bulk-IN transfer failed: {e}"));
                    false
                }
            };
            if resubmit && self.lost.is_none() {
                self.submit_in(i);
            }
        }
    }

    /// Counts a failure of IN transfer `i` once per event: the transfers in
    /// flight together fail together (a halted endpoint fails them all), so
    /// a failure of a transfer submitted before the last counted one belongs
    /// to that event. A STALL is cleared once per event.
    fn failed(&mut self, i: usize, stall: bool) {
        let submitted = self.submitted_in.get(i).copied().unwrap_or(self.epoch);
        if submitted != self.epoch {
            return;
        }
        self.epoch += 1;
        if stall {
            self.stalls += 1;
            if let Err(TransferError::NoDevice) = self.transfers.clear_in_halt() {
                self.lose(UNPLUGGED);
            }
        } else {
            self.errors += 1;
        }
    }

    fn retry(&mut self, what: &str) -> bool {
        if self.stalls.max(self.errors) > RETRY_LIMIT {
            self.lose(format!("{what}: gave up after {RETRY_LIMIT} retries"));
            false
        } else {
            true
        }
    }

    /// Settles finished OUT transfers, in order, and answers a finished
    /// control transfer.
    fn reap_commands(&mut self) {
        while let Some(&OutFlight { k, len, purged }) = self.out_order.front() {
            let Some((result, actual)) = self.transfers.take_out(k) else {
                break;
            };
            self.out_order.pop_front();
            let accepted = actual.min(len);
            self.mailbox.settle(accepted, len - accepted);
            match result {
                _ if purged => {}
                Ok(n) if n >= len => {}
                // A bulk OUT ends short only when cut off; treat it so.
                Ok(n) => self.fail_out(TransferError::TimedOut { transferred: n }),
                Err(e) => self.fail_out(e),
            }
        }
        if let Some(done) = self.transfers.take_control() {
            let mut data = [0u8; CONTROL_DATA];
            let n = done.data.len().min(CONTROL_DATA);
            data[..n].copy_from_slice(&done.data[..n]);
            let result = done.result;
            self.mailbox.reply(self.control_seq, result, &data[..n]);
        }
    }

    /// An OUT transfer failed: the stream fails, and the transfers behind
    /// it are cancelled so that nothing goes out after the hole (their
    /// completions settle their bytes).
    fn fail_out(&mut self, e: TransferError) {
        self.mailbox.fail(e);
        for flight in &self.out_order {
            self.transfers.cancel_out(flight.k);
        }
        self.mailbox.drop_queued();
    }

    /// A purge of the chip's TX buffer (or a reset) is coming: drop the
    /// queued bytes and cancel those in flight, which would otherwise land
    /// in the FIFO after it. Idempotent.
    fn purge_out(&mut self) {
        for flight in &mut self.out_order {
            if !flight.purged {
                flight.purged = true;
                self.transfers.cancel_out(flight.k);
            }
        }
        self.mailbox.drop_queued();
    }

    /// Submits the queued control request if the control transfer is free
    /// (a purge only once the OUT transfers it cancelled are back), and
    /// moves queued bytes into free OUT transfers (all of them may be in flight).
    fn serve_commands(&mut self) {
        while self.transfers.control_idle() {
            let Some(cmd) = self.mailbox.peek_command() else {
                break;
            };
            if matches!(
                cmd.request.decode(),
                Ok(Request::PurgeTx { .. } | Request::Reset { .. })
            ) {
                self.purge_out();
                if !self.out_order.is_empty() {
                    break;
                }
            }
            self.mailbox.pop_command();
            self.control_seq = cmd.seq;
            if let Err(e) = self.transfers.submit_control(cmd.request, cmd.timeout_ms) {
                self.mailbox.reply(cmd.seq, Err(e), &[]);
            }
        }
        self.serve_out();
    }

    fn serve_out(&mut self) {
        if self.mailbox.stream_failed() {
            // Until the application has been told, nothing goes out.
            self.mailbox.drop_queued();
            return;
        }
        while self.mailbox.queued_bytes() > 0 && self.out_order.len() < self.transfers.out_count() {
            let Some(k) = (0..self.transfers.out_count()).find(|&k| self.transfers.out_idle(k))
            else {
                return;
            };
            let mailbox = &mut self.mailbox;
            let mut len = 0;
            // No timeout: queued bytes wait for the device as long as flow
            // control holds them (see `mailbox`); only a failure ends them.
            let submitted = self.transfers.submit_out(k, 0, &mut |buf| {
                len = mailbox.take_bytes(buf);
                len
            });
            match submitted {
                Ok(()) => self.out_order.push_back(OutFlight {
                    k,
                    len,
                    purged: false,
                }),
                Err(e) => {
                    self.mailbox.settle(0, len);
                    self.fail_out(e);
                    return;
                }
            }
        }
    }

    /// Sends what was written before the close (while the link holds, for at
    /// most [`DRAIN_LIMIT`], as a tty's close waits for its buffer), then
    /// cancels what is in flight, waits (at most [`DRAIN_LIMIT`] again) until
    /// libusb gave every transfer back, answers a command cut short and
    /// stops the mailbox. Idempotent; also run on drop.
    pub(crate) fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.drain_writes();
        self.transfers.cancel_all();
        let end = self.transfers.now() + DRAIN_LIMIT;
        while self.transfers.any_pending() && self.transfers.now() < end {
            if self.transfers.poll(DRAIN_POLL).is_err() {
                self.transfers.back_off(DRAIN_POLL);
            }
            let _ = self.transfers.handle_events();
        }
        self.reap_commands();
        self.order.clear();
        self.mailbox.stop();
    }
}

impl<T: Transfers> EventLoop<T> {
    /// Lets the written bytes go out before a close: turns the OUT stream
    /// (and nothing else) until it is empty, fails, the device goes, or
    /// [`DRAIN_LIMIT`] passes (flow control may hold it for ever).
    fn drain_writes(&mut self) {
        let end = self.transfers.now() + DRAIN_LIMIT;
        while self.lost.is_none()
            && !self.mailbox.stream_failed()
            && (self.mailbox.queued_bytes() > 0 || !self.out_order.is_empty())
            && self.transfers.now() < end
        {
            self.serve_out();
            match self.transfers.poll(DRAIN_POLL) {
                Ok(Polled { device_gone: true }) => return,
                Ok(_) => {}
                Err(_) => self.transfers.back_off(DRAIN_POLL),
            }
            let _ = self.transfers.handle_events();
            self.reap_commands();
        }
    }
}

impl<T: Transfers> Drop for EventLoop<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
