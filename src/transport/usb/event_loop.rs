//! The reader's side of the libusb transport: its event loop.
//!
//! The reader waits in `ppoll` on libusb's file descriptors (the device's
//! usbfs fd, libusb's event and timer fds) plus the port's doorbell, then
//! lets libusb reap without blocking. Completed IN transfers are handed to
//! the pipeline in submission order and resubmitted at once; completed OUT
//! and control transfers are answered through the mailbox; queued commands
//! are submitted. libusb's own event loop never blocks this thread, and no
//! other thread runs it while the reader lives (see `mailbox`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::device::Claimed;
use super::mailbox::{Failure, Request, Server};
use super::transfers::{ERROR_NO_DEVICE, TransferSet, rusb_error_text, status};
use crate::doorbell::Doorbell;
use crate::realtime::memory::HotRegions;
use crate::time::Timestamp;
use crate::transport::{Completion, Framing, Inbound, LinkLost};

/// How long shutdown waits for cancelled transfers to come back.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Consecutive STALLs or errors on bulk IN before the link counts as lost.
const RETRY_LIMIT: u32 = 3;

/// The reader-thread half of the libusb transport.
#[derive(Debug)]
pub(crate) struct UsbInbound {
    // Declared first: the transfers must be freed before the device handle.
    transfers: TransferSet,
    claimed: Arc<Claimed>,
    mailbox: Server,
    wake: Arc<Doorbell>,
    /// libusb's pollfds, then the doorbell's (last).
    fds: Vec<libc::pollfd>,
    /// In-flight IN transfers in submission order (they complete in order).
    order: VecDeque<usize>,
    max_packet_size: usize,
    stalls: u32,
    errors: u32,
    lost: Option<String>,
    /// The mailbox command the OUT / control transfer is working on.
    pending_out_seq: u64,
    pending_control_seq: u64,
}

impl UsbInbound {
    pub(crate) fn new(
        transfers: TransferSet,
        claimed: Arc<Claimed>,
        mailbox: Server,
        wake: Arc<Doorbell>,
        max_packet_size: usize,
    ) -> UsbInbound {
        let n = transfers.in_count();
        UsbInbound {
            transfers,
            claimed,
            mailbox,
            wake,
            fds: Vec::new(),
            order: VecDeque::with_capacity(n),
            max_packet_size,
            stalls: 0,
            errors: 0,
            lost: None,
            pending_out_seq: 0,
            pending_control_seq: 0,
        }
    }

    /// libusb's pollfds, then the doorbell's (last). Allocates, once.
    fn collect_fds(&mut self) {
        if !self.fds.is_empty() {
            return;
        }
        self.fds = self.transfers.pollfds();
        self.fds.push(crate::sys::pollfd(
            std::os::fd::AsFd::as_fd(&*self.wake),
            libc::POLLIN,
        ));
    }

    fn lose(&mut self, why: String) {
        if self.lost.is_none() {
            self.lost = Some(why);
        }
    }

    fn submit_in(&mut self, i: usize) {
        match self.transfers.submit_in(i) {
            Ok(()) => self.order.push_back(i),
            Err(ERROR_NO_DEVICE) => self.lose("the device was unplugged".into()),
            Err(code) => self.lose(format!(
                "resubmitting a bulk-IN transfer failed: {}",
                rusb_error_text(code)
            )),
        }
    }

    /// Hands finished IN transfers to `deliver` in order and resubmits them.
    fn reap_in<F: FnMut(Completion<'_>)>(&mut self, deliver: &mut F) {
        while let Some(&i) = self.order.front() {
            let Some((done, data)) = self.transfers.take_in(i) else {
                break;
            };
            self.order.pop_front();
            let resubmit = match done.status {
                status::COMPLETED => {
                    deliver(Completion {
                        data,
                        at: Timestamp::from_nanos(done.at_ns),
                    });
                    self.stalls = 0;
                    self.errors = 0;
                    true
                }
                // Timeout 0 means none; a babbling device overflowing one
                // packet is noise worth surviving.
                status::TIMED_OUT | status::OVERFLOW => true,
                status::CANCELLED => false,
                status::NO_DEVICE => {
                    self.lose("the device was unplugged".into());
                    false
                }
                status::STALL => {
                    self.stalls += 1;
                    let _ = self.claimed.clear_in_halt();
                    self.retry("the bulk-IN endpoint stalls")
                }
                status::ERROR => {
                    // EPROTO/EILSEQ: often the first sign of an unplug.
                    self.errors += 1;
                    self.retry("bulk-IN transfers keep failing (USB protocol errors)")
                }
                other => {
                    self.lose(format!("bulk-IN transfer ended with libusb status {other}"));
                    false
                }
            };
            if resubmit && self.lost.is_none() {
                self.submit_in(i);
            }
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

    /// Answers finished OUT and control transfers.
    fn reap_commands(&mut self) {
        if let Some(done) = self.transfers.take_out() {
            let result = transfer_result(done.status, done.actual);
            self.mailbox.reply(self.pending_out_seq, result, &[]);
        }
        if let Some((done, data)) = self.transfers.take_control() {
            let result = transfer_result(done.status, done.actual);
            let seq = self.pending_control_seq;
            let mut copy = [0u8; super::transfers::CONTROL_DATA];
            copy[..data.len()].copy_from_slice(data);
            self.mailbox.reply(seq, result, &copy[..data.len()]);
        }
    }

    /// Submits queued commands whose transfer is free.
    fn serve_commands(&mut self) {
        while let Some(cmd) = self
            .mailbox
            .next_command(self.transfers.out_idle(), self.transfers.control_idle())
        {
            let submitted = match cmd.request {
                Request::Write { len } => {
                    let n = self.mailbox.take_bytes(len, self.transfers.out_buffer());
                    self.pending_out_seq = cmd.seq;
                    self.transfers.submit_out(n, cmd.timeout_ms)
                }
                Request::Control(request) => {
                    self.pending_control_seq = cmd.seq;
                    self.transfers.submit_control(request, cmd.timeout_ms)
                }
            };
            if let Err(code) = submitted {
                let failure = if code == ERROR_NO_DEVICE {
                    Failure::NoDevice
                } else {
                    Failure::Other(code)
                };
                self.mailbox.reply(cmd.seq, Err(failure), &[]);
            }
        }
    }
}

/// A finished OUT or control transfer as the mailbox reports it.
fn transfer_result(status: i32, actual: usize) -> Result<usize, Failure> {
    match status {
        status::COMPLETED => Ok(actual),
        status::TIMED_OUT => Err(Failure::TimedOut {
            transferred: actual,
        }),
        status::STALL => Err(Failure::Stall),
        status::NO_DEVICE => Err(Failure::NoDevice),
        other => Err(Failure::Other(other)),
    }
}

impl Inbound for UsbInbound {
    fn framing(&self) -> Framing {
        Framing::Ftdi {
            max_packet_size: self.max_packet_size,
        }
    }

    fn hot_memory(&mut self, regions: &mut HotRegions) {
        self.transfers.hot_memory(regions);
        self.mailbox.hot_memory(regions);
        // The poll set (revents written every wait) and the in-flight order,
        // filled to capacity once so its whole buffer is written and visible.
        self.collect_fds();
        regions.add("transport state", &self.fds[..]);
        self.order.clear();
        self.order.extend(0..self.order.capacity());
        let (a, b) = self.order.as_slices();
        regions.add("transport state", a);
        regions.add("transport state", b);
        self.order.clear();
        regions.add("transport state", &*self.wake);
    }

    fn start(&mut self) -> Result<(), LinkLost> {
        self.collect_fds();
        self.mailbox.start();
        for i in 0..self.transfers.in_count() {
            self.submit_in(i);
        }
        match self.lost.take() {
            Some(why) => Err(LinkLost(why)),
            None => Ok(()),
        }
    }

    fn wait<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        mut deliver: F,
    ) -> Result<(), LinkLost> {
        self.wake.arm();
        self.serve_commands();
        for fd in &mut self.fds {
            fd.revents = 0;
        }
        let _ = crate::sys::poll(&mut self.fds, Some(timeout));
        // Always let libusb look: it also expires OUT/control timeouts.
        self.transfers.handle_events();
        self.reap_in(&mut deliver);
        self.reap_commands();
        self.serve_commands();
        match self.lost.take() {
            Some(why) => Err(LinkLost(why)),
            None => Ok(()),
        }
    }

    fn shutdown(&mut self) {
        self.transfers.cancel_all();
        let start = Timestamp::now();
        while self.transfers.any_pending() && start.elapsed() < DRAIN_LIMIT {
            let mut fds = self.fds.clone();
            let _ = crate::sys::poll(&mut fds, Some(Duration::from_millis(10)));
            self.transfers.handle_events();
        }
        // Answer a write or control request cut short by the shutdown.
        self.reap_commands();
        self.mailbox.stop();
    }
}
