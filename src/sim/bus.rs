//! The simulated USB link between the host's threads and the chip thread.
//!
//! Bulk IN: the host puts transfers "in flight" by adding credits; the chip
//! thread hands them to the engine as IN tokens, so the chip sends a packet
//! only against one (no transfer pending means the chip holds its data, as
//! silicon does when the host does not read), into a wait-free ring, and
//! rings the host's doorbell. Bulk OUT: a byte ring the chip thread empties
//! into the engine's TX FIFO; `tx_fill` counts the bytes in both, so the
//! writer waits when the chip's FIFO is full, as a NAKed OUT does. Control
//! requests and fault injection travel as commands. The reader's side
//! (credits, IN ring, doorbells) takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::SimCounters;
use super::device::ModemLines;
use super::engine::ControlReply;
use super::registers::ChipState;
use super::transfer::{InPacket, TransferError};
use crate::doorbell::Doorbell;
use crate::lock::lock;
use crate::proto::{ControlRequest, LineStatus};
use crate::realtime::RtThread;
use crate::stall::StallLog;
use crate::stats::new_latency_histogram;
use crate::time::{Deadline, Timestamp};

/// What the chip thread is asked to do besides moving data.
#[derive(Debug)]
pub(crate) enum Command {
    Control {
        request: ControlRequest,
        reply: mpsc::SyncSender<Result<ControlReply, TransferError>>,
    },
    InjectLineError(LineStatus),
    SetModemLines(ModemLines),
    UnplugAt(Timestamp),
    Stall(Duration),
    Shutdown,
}

/// Counts kept by the chip (what the "silicon" did), published by the chip
/// thread from its engine.
#[derive(Debug, Default)]
pub(crate) struct ChipCounters {
    pub(crate) packets: AtomicU64,
    pub(crate) status_only: AtomicU64,
    pub(crate) bytes_to_host: AtomicU64,
    pub(crate) bytes_from_host: AtomicU64,
    pub(crate) overrun_bytes: AtomicU64,
}

impl ChipCounters {
    pub(crate) fn publish(&self, c: SimCounters) {
        self.packets.store(c.packets, Ordering::Relaxed);
        self.status_only.store(c.status_only, Ordering::Relaxed);
        self.bytes_to_host.store(c.bytes_to_host, Ordering::Relaxed);
        self.bytes_from_host
            .store(c.bytes_from_host, Ordering::Relaxed);
        self.overrun_bytes.store(c.overrun_bytes, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> SimCounters {
        SimCounters {
            packets: self.packets.load(Ordering::Relaxed),
            status_only: self.status_only.load(Ordering::Relaxed),
            bytes_to_host: self.bytes_to_host.load(Ordering::Relaxed),
            bytes_from_host: self.bytes_from_host.load(Ordering::Relaxed),
            overrun_bytes: self.overrun_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The state both sides of the bus share.
#[derive(Debug)]
pub(crate) struct Bus {
    /// IN transfers the host has in flight and the chip has not answered.
    pub(crate) credits: AtomicU32,
    /// Rung by the chip after it sends an IN packet (and on unplug).
    pub(crate) in_ready: Doorbell,
    /// Rung by the host on new credits, OUT data and commands.
    pub(crate) chip_wake: Doorbell,
    /// Rung by the chip when it takes bytes from the OUT FIFO (and on unplug).
    pub(crate) out_space: Doorbell,
    pub(crate) unplugged: AtomicBool,
    pub(crate) counters: ChipCounters,
    /// Published by the chip after each control request.
    pub(crate) state: Mutex<ChipState>,
    /// Published by the chip now and then (try_lock: the chip never waits).
    pub(crate) lateness: Mutex<Histogram<u64>>,
    /// Stretches of time the chip ran late (lock-free).
    pub(crate) stalls: StallLog,
    /// When the host last rang the chip (ns), so the chip can tell how late
    /// it woke up to host input.
    pub(crate) rung_at: AtomicU64,
    /// The chip's USB-to-UART FIFO size.
    pub(crate) tx_capacity: usize,
    /// Bytes the host has written that are not on the wire yet: in the OUT
    /// ring or in the engine's TX FIFO. The writer adds before it pushes,
    /// the chip thread subtracts what the engine took, so it never reads
    /// less than the FIFO holds and the two never overfill the chip.
    pub(crate) tx_fill: AtomicUsize,
}

impl Bus {
    pub(crate) fn new(state: ChipState, tx_capacity: usize) -> std::io::Result<Bus> {
        Ok(Bus {
            credits: AtomicU32::new(0),
            in_ready: Doorbell::new()?,
            chip_wake: Doorbell::new()?,
            out_space: Doorbell::new()?,
            unplugged: AtomicBool::new(false),
            counters: ChipCounters::default(),
            state: Mutex::new(state),
            lateness: Mutex::new(new_latency_histogram()),
            stalls: StallLog::new(),
            rung_at: AtomicU64::new(0),
            tx_capacity,
            tx_fill: AtomicUsize::new(0),
        })
    }

    pub(crate) fn is_unplugged(&self) -> bool {
        self.unplugged.load(Ordering::Acquire)
    }

    /// Host side: new input for the chip (credits, OUT data, a command).
    pub(crate) fn wake_chip(&self) {
        let now = Timestamp::now();
        self.rung_at.store(now.as_nanos(), Ordering::Relaxed);
        // Silicon reacts to host input at once: the chip must run by now.
        self.stalls.promise_no_later_than(now);
        self.chip_wake.ring();
    }
}

/// The host's end of bulk IN. Owned by whoever reads (the reader thread).
#[derive(Debug)]
pub(crate) struct HostIn {
    pub(crate) ring: rtrb::Consumer<InPacket>,
    pub(crate) bus: Arc<Bus>,
}

impl HostIn {
    /// Puts `n` more IN transfers in flight.
    pub(crate) fn submit(&self, n: u32) {
        self.bus.credits.fetch_add(n, Ordering::AcqRel);
        self.bus.wake_chip();
    }

    /// Waits up to `timeout` for completed IN transfers (or for `also`, the
    /// port's stop doorbell), hands each to `deliver`, and resubmits it.
    /// Returns how many completed.
    pub(crate) fn wait<F: FnMut(&InPacket)>(
        &mut self,
        timeout: Duration,
        also: Option<&Doorbell>,
        mut deliver: F,
    ) -> Result<usize, TransferError> {
        let mut n = self.drain(&mut deliver);
        if n == 0 && !self.bus.is_unplugged() {
            self.bus.in_ready.arm();
            if let Some(bell) = also {
                bell.arm();
            }
            n = self.drain(&mut deliver);
            if n == 0 && !self.bus.is_unplugged() {
                let mut fds = [
                    crate::sys::pollfd(std::os::fd::AsFd::as_fd(&self.bus.in_ready), libc::POLLIN),
                    crate::sys::pollfd(
                        std::os::fd::AsFd::as_fd(also.unwrap_or(&self.bus.in_ready)),
                        libc::POLLIN,
                    ),
                ];
                let _ = crate::sys::poll(&mut fds, Some(timeout));
                n = self.drain(&mut deliver);
            }
        }
        if n == 0 && self.bus.is_unplugged() {
            return Err(TransferError::NoDevice);
        }
        Ok(n)
    }

    /// Takes one completed IN transfer, waiting up to `timeout`, and resubmits it.
    pub(crate) fn next(&mut self, timeout: Duration) -> Result<Option<InPacket>, TransferError> {
        let deadline = Deadline::from_now(timeout);
        let bus = self.bus.clone();
        let outcome = bus.in_ready.wait_until(Some(deadline), || {
            if let Ok(packet) = self.ring.pop() {
                if !self.bus.is_unplugged() {
                    self.submit(1);
                }
                return Some(Ok(packet));
            }
            self.bus
                .is_unplugged()
                .then_some(Err(TransferError::NoDevice))
        });
        match outcome {
            Ok(Some(taken)) => taken.map(Some),
            // Nothing within the timeout (an eventfd failure counts as that).
            Ok(None) | Err(_) => Ok(None),
        }
    }

    fn drain<F: FnMut(&InPacket)>(&mut self, deliver: &mut F) -> usize {
        let mut n = 0;
        while let Ok(packet) = self.ring.peek() {
            deliver(packet);
            if let Ok(slot) = self.ring.read_chunk(1) {
                slot.commit_all();
            }
            n += 1;
        }
        if n > 0 && !self.bus.is_unplugged() {
            // Each completed transfer is resubmitted at once.
            self.submit(n as u32);
        }
        n
    }
}

/// The host's end of bulk OUT and control. Shared by application threads.
#[derive(Debug)]
pub(crate) struct HostOut {
    pub(crate) out: Mutex<rtrb::Producer<u8>>,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) bus: Arc<Bus>,
    /// The chip's thread, joined on drop after it is told to shut down.
    pub(crate) thread: Option<RtThread>,
}

impl HostOut {
    pub(crate) fn control(
        &self,
        request: ControlRequest,
        data: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, TransferError> {
        if self.bus.is_unplugged() {
            return Err(TransferError::NoDevice);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.commands
            .send(Command::Control { request, reply })
            .map_err(|_| TransferError::NoDevice)?;
        self.bus.wake_chip();
        match answer.recv_timeout(timeout) {
            Ok(Ok(reply)) => {
                let n = reply.bytes().len().min(data.len());
                data[..n].copy_from_slice(&reply.bytes()[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TransferError::TimedOut { transferred: 0 }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransferError::NoDevice),
        }
    }

    pub(crate) fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize, TransferError> {
        let deadline = Deadline::from_now(timeout);
        let mut out = lock(&self.out);
        let bus = &self.bus;
        let mut written = 0;
        // Each round moves what fits into the chip's FIFO; it is ready when
        // everything is in, or the chip is gone.
        let outcome = bus.out_space.wait_until(Some(deadline), || {
            if bus.is_unplugged() {
                return Some(Err(TransferError::NoDevice));
            }
            let space = bus
                .tx_capacity
                .saturating_sub(bus.tx_fill.load(Ordering::Acquire));
            let n = space.min(data.len() - written);
            if n > 0 {
                // Counted before it is visible to the chip thread, which
                // subtracts only what it took.
                bus.tx_fill.fetch_add(n, Ordering::AcqRel);
                let (accepted, _) = out.push_partial_slice(&data[written..written + n]);
                let accepted = accepted.len();
                if accepted < n {
                    bus.tx_fill.fetch_sub(n - accepted, Ordering::AcqRel);
                }
                written += accepted;
                bus.wake_chip();
            }
            (written == data.len()).then_some(Ok(written))
        });
        match outcome {
            Ok(Some(done)) => done,
            // Out of time (an eventfd failure counts as that): a short write.
            Ok(None) | Err(_) => Err(TransferError::TimedOut {
                transferred: written,
            }),
        }
    }
}

impl Drop for HostOut {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        self.bus.chip_wake.ring_always();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
