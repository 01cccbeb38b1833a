//! The simulated USB link between the host and the chip thread.
//!
//! Bulk IN: the host puts transfers "in flight" by adding credits; the chip
//! sends a packet only against a credit (no transfer pending means the chip
//! holds its data, as silicon does when the host does not read) into a
//! wait-free ring, and rings the host's doorbell. Bulk OUT: a byte ring whose
//! capacity is the chip's USB-to-UART FIFO, so a full FIFO makes the writer
//! wait, as a NAKed OUT does. Control requests and fault injection travel as
//! commands. The reader's side (credits, IN ring, doorbells) takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::device::ModemLines;
use super::registers::ChipState;
use crate::doorbell::Doorbell;
use crate::proto::{ControlRequest, LineStatus};
use crate::stats::new_latency_histogram;
use crate::time::Timestamp;

/// Largest packet the simulation carries (a high-speed bulk packet).
pub const MAX_PACKET: usize = 512;

/// One bulk-IN packet as the chip sent it.
#[derive(Clone, Copy)]
pub struct InPacket {
    pub(crate) len: u16,
    pub(crate) data: [u8; MAX_PACKET],
    pub(crate) sent_at: Timestamp,
}

impl Default for InPacket {
    fn default() -> Self {
        InPacket {
            len: 0,
            data: [0; MAX_PACKET],
            sent_at: Timestamp::default(),
        }
    }
}

impl InPacket {
    /// The packet's bytes: two status bytes, then the payload.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }

    /// When the chip put it on the bus (its ideal time: chip lateness excluded).
    pub fn sent_at(&self) -> Timestamp {
        self.sent_at
    }
}

impl std::fmt::Debug for InPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPacket")
            .field("bytes", &self.bytes())
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

/// How a simulated USB transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The chip refused the control request.
    #[error("the simulated chip STALLed the request")]
    Stall,
    /// The simulated device was unplugged.
    #[error("the simulated device is gone (unplugged)")]
    NoDevice,
    /// The transfer did not complete in time.
    #[error("timed out after {transferred} bytes")]
    TimedOut {
        /// Bytes transferred before the timeout.
        transferred: usize,
    },
}

/// What the chip thread is asked to do besides moving data.
#[derive(Debug)]
pub(crate) enum Command {
    Control {
        request: ControlRequest,
        reply: mpsc::SyncSender<Result<([u8; 2], usize), TransferError>>,
    },
    InjectLineError(LineStatus),
    SetModemLines(ModemLines),
    UnplugAt(Timestamp),
    Stall(Duration),
    Shutdown,
}

/// Counts kept by the chip (what the "silicon" did).
#[derive(Debug, Default)]
pub(crate) struct ChipCounters {
    pub(crate) packets: AtomicU64,
    pub(crate) status_only: AtomicU64,
    pub(crate) bytes_to_host: AtomicU64,
    pub(crate) bytes_from_host: AtomicU64,
    pub(crate) overrun_bytes: AtomicU64,
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
    pub(crate) stalls: crate::stall_log::StallLog,
    /// When the host last rang the chip (ns), so the chip can tell how late
    /// it woke up to host input.
    pub(crate) rung_at: AtomicU64,
}

impl Bus {
    pub(crate) fn new(state: ChipState) -> std::io::Result<Bus> {
        Ok(Bus {
            credits: AtomicU32::new(0),
            in_ready: Doorbell::new()?,
            chip_wake: Doorbell::new()?,
            out_space: Doorbell::new()?,
            unplugged: AtomicBool::new(false),
            counters: ChipCounters::default(),
            state: Mutex::new(state),
            lateness: Mutex::new(new_latency_histogram()),
            stalls: crate::stall_log::StallLog::default(),
            rung_at: AtomicU64::new(0),
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
        self.stalls.expect_no_later_than(now);
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
        let start = Timestamp::now();
        loop {
            if let Ok(packet) = self.ring.pop() {
                if !self.bus.is_unplugged() {
                    self.submit(1);
                }
                return Ok(Some(packet));
            }
            if self.bus.is_unplugged() {
                return Err(TransferError::NoDevice);
            }
            self.bus.in_ready.arm();
            if !self.ring.is_empty() || self.bus.is_unplugged() {
                continue;
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = self.bus.in_ready.wait(Some(left));
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
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
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
            Ok(Ok((bytes, n))) => {
                let n = n.min(data.len());
                data[..n].copy_from_slice(&bytes[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(TransferError::TimedOut { transferred: 0 }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TransferError::NoDevice),
        }
    }

    pub(crate) fn bulk_out(&self, data: &[u8], timeout: Duration) -> Result<usize, TransferError> {
        let start = Timestamp::now();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = 0;
        loop {
            if self.bus.is_unplugged() {
                return Err(TransferError::NoDevice);
            }
            let (accepted, _) = out.push_partial_slice(&data[written..]);
            if !accepted.is_empty() {
                written += accepted.len();
                self.bus
                    .counters
                    .bytes_from_host
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                self.bus.wake_chip();
            }
            if written == data.len() {
                return Ok(written);
            }
            self.bus.out_space.arm();
            if out.slots() > 0 {
                continue;
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(TransferError::TimedOut {
                    transferred: written,
                });
            }
            let _ = self.bus.out_space.wait(Some(left));
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
