//! A device model behind a pty: the kernel tty path without USB.
//!
//! [`PtyDevice`] creates a pty pair and runs any [`Device`] model (the
//! [`Frobnicator`](crate::sim::Frobnicator), a [`Loopback`](crate::sim::Loopback),
//! a closure) on the master side; a [`Port`](crate::Port) opens the slave with
//! [`Port::open_tty`](crate::Port::open_tty). The same device models thus
//! drive both the simulated chip and the kernel path, and CI can run the tty
//! transport with no hardware.
//!
//! # Why a pty reproduces ftdi_sio's delay
//! ftdi_sio hands received bytes to the tty layer with
//! `tty_flip_buffer_push`, which queues `flush_to_ldisc` on a normal-priority
//! kworker; only when that kworker runs does the line discipline make the
//! bytes readable. A pty master's `write` goes through the same call into the
//! slave's flip buffer, so the reply direction takes the same kworker hop,
//! and under CPU load it waits behind the same competition: a frobnicator on
//! the master reproduces the kernel-path delay without USB. One difference:
//! the pty adds that hop on the request direction too (the slave's write is
//! pushed through the master's flip buffer), which ftdi_sio does not (its
//! writes go straight into a USB transfer). Expect up to twice the delay.
//!
//! # What is not modelled
//! - No baud pacing: a pty moves bytes as fast as the kernel copies them, so
//!   the models see a frame time of zero. A [`WireByte`]'s `start` and `end`
//!   are both the time the responder's `read` returned.
//! - No modem lines: a pty has none, so [`Device::on_modem_control`] is never
//!   called and [`Line::set_modem_lines`] changes nothing the port can see.
//! - No line errors, break or parity: a pty carries plain 8-bit bytes.
//!
//! # The responder thread
//! It runs `SCHED_FIFO` 90 where permitted (unpinned, no memory locking,
//! best effort; [`PtyDevice::realtime`] says what it got) so that the
//! responder is not what CPU load delays: the delay to show is the kernel's.
//! It sleeps in `ppoll` until a request byte arrives or the next reply is
//! due, and writes each reply byte at the time the model scheduled it.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serialport::{SerialPort, TTYPort};

use crate::error::{Error, Result};
use crate::realtime::{
    Pinning, RealtimeConfig, RealtimePolicy, RealtimeStatus, make_current_thread_realtime,
};
use crate::sim::{Device, DeviceSide, Line, WireByte};
use crate::sys::{self, EventFd};
use crate::time::Timestamp;

/// Bytes one read of the master may take.
const READ_BUFFER_BYTES: usize = 4096;

/// A pty pair with a device model answering on the master side.
///
/// Give [`path`](PtyDevice::path) to [`Port::open_tty`](crate::Port::open_tty).
/// Dropping it stops the responder and closes the pty.
///
/// ```no_run
/// use std::time::Duration;
/// use ftdi_rt::pty::PtyDevice;
/// use ftdi_rt::sim::Frobnicator;
/// use ftdi_rt::{Port, PortConfig, ReplyEnd};
///
/// let device = PtyDevice::spawn(Frobnicator::new(Duration::from_micros(200)))?;
/// let mut port = Port::open_tty(device.path(), &PortConfig::default().best_effort())?;
/// let t = port.transact(&[1, 2, 3, 4, 5, 6, 7], ReplyEnd::Length(1), Duration::from_millis(5))?;
/// assert_eq!(t.bytes(), [Frobnicator::reply_for(&[1, 2, 3, 4, 5, 6, 7])]);
/// # Ok::<(), ftdi_rt::Error>(())
/// ```
#[derive(Debug)]
pub struct PtyDevice {
    path: PathBuf,
    /// The slave, held open for the pty's lifetime: without any slave open
    /// the master reports POLLHUP all the time, and a port could not be
    /// closed and opened again.
    _slave: OwnedFd,
    stop: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    realtime: RealtimeStatus,
}

impl PtyDevice {
    /// Creates a pty pair and starts `device` on its master side.
    ///
    /// # Errors
    /// [`Error::Io`] if no pty can be allocated or the thread cannot start.
    pub fn spawn<D: Device>(device: D) -> Result<PtyDevice> {
        let (master, slave) = TTYPort::pair().map_err(|e| Error::Io(e.into()))?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Io(std::io::Error::other("the new pty slave has no name")))?;
        let (master, slave) = (sys::owned_fd_of(master), sys::owned_fd_of(slave));
        // serialport opens both without close-on-exec; a child process
        // holding the master would keep the pty from ever hanging up.
        sys::set_cloexec(master.as_fd())?;
        sys::set_cloexec(slave.as_fd())?;
        // Only the responder uses the master: non-blocking, so a full slave
        // input buffer makes it wait in ppoll, where a stop request reaches it.
        sys::set_nonblocking(master.as_fd())?;
        let stop = Arc::new(EventFd::new()?);
        let responder = Responder {
            master,
            stop: stop.clone(),
            device: Box::new(device),
            side: DeviceSide::new(Duration::ZERO),
            pending: VecDeque::with_capacity(READ_BUFFER_BYTES),
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ftdi-rt-pty-dev".into())
            .spawn(move || {
                let config = RealtimeConfig::default()
                    .with_priority(90)
                    .with_pinning(Pinning::Unpinned)
                    .with_lock_memory(false)
                    .with_policy(RealtimePolicy::BestEffort);
                // Best effort never fails; an error would be a bad priority.
                let status = make_current_thread_realtime(&config).unwrap_or_default();
                let _ = ready_tx.send(status);
                responder.run();
            })?;
        let realtime = ready_rx.recv().unwrap_or_default();
        Ok(PtyDevice {
            path,
            _slave: slave,
            stop,
            thread: Mutex::new(Some(thread)),
            realtime,
        })
    }

    /// The slave's path (`/dev/pts/N`), to open the port on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the responder thread runs.
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// Closes the master, as a device going away would: the kernel hangs up
    /// the slave, and a port open on it sees [`Error::Disconnected`]. Returns
    /// once the master is closed; the responder is gone afterwards.
    pub fn hang_up(&self) {
        self.stop.signal();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            // The thread owns the master; it is closed when the thread ends.
            let _ = thread.join();
        }
    }
}

impl Drop for PtyDevice {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// The master side: the model, its scheduled replies, and the descriptors.
struct Responder {
    master: OwnedFd,
    stop: Arc<EventFd>,
    device: Box<dyn Device>,
    side: DeviceSide,
    /// Reply bytes that are due but did not fit into the slave's input yet.
    pending: VecDeque<u8>,
}

impl Responder {
    fn run(mut self) {
        let mut buf = [0u8; READ_BUFFER_BYTES];
        loop {
            self.send_due();
            let mut master_events = libc::POLLIN;
            if !self.pending.is_empty() {
                master_events |= libc::POLLOUT;
            }
            let mut fds = [
                sys::pollfd(self.master.as_fd(), master_events),
                sys::pollfd(self.stop.as_fd(), libc::POLLIN),
            ];
            if sys::poll(&mut fds, self.next_due()).is_err() || fds[1].revents != 0 {
                return;
            }
            if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            match sys::read(self.master.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let at = Timestamp::now();
                    for &byte in &buf[..n] {
                        let wire = WireByte {
                            byte,
                            start: at,
                            end: at,
                        };
                        self.device
                            .on_byte(wire, &mut Line::new(&mut self.side, at));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                // EOF or EIO: the slave side is gone for good (it is held open,
                // so only an outside hangup gets here); stop rather than spin.
                _ => return,
            }
        }
    }

    /// How long to sleep: until the next scheduled reply byte, or until
    /// something arrives when nothing is scheduled.
    fn next_due(&self) -> Option<Duration> {
        if !self.pending.is_empty() {
            // Waiting for room (POLLOUT); replies behind these wait anyway.
            return None;
        }
        self.side
            .incoming
            .front()
            .map(|next| next.at.saturating_since(Timestamp::now()))
    }

    /// Writes every reply byte whose time has come, in one write if it fits.
    fn send_due(&mut self) {
        let now = Timestamp::now();
        while let Some(next) = self.side.incoming.front() {
            if next.at > now {
                break;
            }
            self.pending.push_back(next.byte);
            self.side.incoming.pop_front();
        }
        while !self.pending.is_empty() {
            let (first, _) = self.pending.as_slices();
            match sys::write(self.master.as_fd(), first) {
                Ok(n) if n > 0 => {
                    self.pending.drain(..n);
                }
                // Full (EAGAIN), or the slave is gone: poll decides what next.
                _ => break,
            }
        }
    }
}
