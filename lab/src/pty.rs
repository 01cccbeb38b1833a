//! A device model behind a pty: the kernel tty path without USB.
//!
//! [`PtyDevice`] creates a pty pair and runs any [`Device`] model (the
//! [`Frobnicator`](ftdi_rt::sim::Frobnicator), a [`Loopback`](ftdi_rt::sim::Loopback),
//! a closure) on the master side, through a [`DeviceEnd`]; a
//! [`Port`](ftdi_rt::Port) opens the slave with
//! [`Port::open_tty`](ftdi_rt::Port::open_tty). The same device models thus
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
//!   called and [`Line::set_modem_lines`](ftdi_rt::sim::Line::set_modem_lines)
//!   changes nothing the port can see.
//! - No line errors, break or parity: a pty carries plain 8-bit bytes.
//!
//! # The responder thread
//! It runs `SCHED_FIFO` 90 where permitted (unpinned, no memory locking,
//! best effort; [`PtyDevice::realtime`] says what it got) so that the
//! responder is not what CPU load delays: the delay to show is the kernel's.
//! It sleeps in `ppoll` until a request byte arrives or the next reply is
//! due, and writes each reply byte at the time the model scheduled it.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ftdi_rt::realtime::{self, RtThread};
use ftdi_rt::sim::{Device, DeviceEnd, WireByte};
use ftdi_rt::{Pinning, RealtimeConfig, RealtimePolicy, RealtimeStatus, Result, Timestamp};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::OptionalActions;

/// Bytes one read of the master may take.
const READ_BUFFER_BYTES: usize = 4096;

/// A pty pair with a device model answering on the master side.
///
/// Give [`path`](PtyDevice::path) to [`Port::open_tty`](ftdi_rt::Port::open_tty).
/// Dropping it stops the responder and closes the pty.
///
/// ```no_run
/// use std::time::Duration;
/// use ftdi_rt::sim::Frobnicator;
/// use ftdi_rt::{Port, PortConfig, ReplyEnd};
/// use ftdi_rt_lab::PtyDevice;
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
    stop: OwnedFd,
    thread: Mutex<Option<RtThread>>,
    realtime: RealtimeStatus,
}

/// A new pty pair, both ends close-on-exec (a child process holding the
/// master would keep the pty from ever hanging up), the slave in raw mode
/// and the master non-blocking. Returns (master, slave, the slave's path).
fn open_pair() -> std::io::Result<(OwnedFd, OwnedFd, PathBuf)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let path = PathBuf::from(OsStr::from_bytes(name.as_bytes()));
    let slave = rustix::fs::open(
        &path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Raw: no echo, no line editing, no CR/LF translation, 8-bit bytes.
    let mut termios = rustix::termios::tcgetattr(&slave)?;
    termios.make_raw();
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios)?;
    // Only the responder uses the master: non-blocking, so a full slave
    // input buffer makes it wait in ppoll, where a stop request reaches it.
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
    Ok((master, slave, path))
}

impl PtyDevice {
    /// Creates a pty pair and starts `device` on its master side.
    ///
    /// # Errors
    /// [`Error::Io`](ftdi_rt::Error::Io) if no pty can be allocated or the thread cannot start.
    pub fn spawn<D: Device>(device: D) -> Result<PtyDevice> {
        let (master, slave, path) = open_pair()?;
        let stop = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(std::io::Error::from)?;
        let responder = Responder {
            master,
            stop: stop.try_clone()?,
            device: DeviceEnd::new(device, Duration::ZERO),
            pending: VecDeque::with_capacity(READ_BUFFER_BYTES),
        };
        // SCHED_FIFO 90 where permitted, so that the responder is not what
        // CPU load delays: the delay to show is the kernel's.
        let config = RealtimeConfig::default()
            .with_priority(90)
            .with_pinning(Pinning::Unpinned)
            .with_lock_memory(false)
            .with_policy(RealtimePolicy::BestEffort);
        let (thread, realtime) = realtime::spawn("ftdi-rt-pty-dev", &config, move |startup| {
            startup.ready();
            responder.run();
        })?;
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
    /// the slave, and a port open on it sees [`Error::Disconnected`](ftdi_rt::Error::Disconnected). Returns
    /// once the master is closed; the responder is gone afterwards.
    pub fn hang_up(&self) {
        // An eventfd write of 1 cannot fail short of a saturated counter,
        // which is already readable.
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The thread owns the master; it is closed when the thread ends.
            // A responder that panicked has closed it too.
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
    stop: OwnedFd,
    device: DeviceEnd,
    /// Reply bytes that are due but did not fit into the slave's input yet.
    pending: VecDeque<u8>,
}

impl Responder {
    fn run(mut self) {
        let mut buf = [0u8; READ_BUFFER_BYTES];
        loop {
            self.send_due();
            let mut master_events = PollFlags::IN;
            if !self.pending.is_empty() {
                master_events |= PollFlags::OUT;
            }
            let timeout = self.next_due().map(|d| Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            let mut fds = [
                PollFd::new(&self.master, master_events),
                PollFd::new(&self.stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return,
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
            if !fds[0].revents().intersects(ready) {
                continue;
            }
            match rustix::io::read(self.master.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let at = Timestamp::now();
                    for &byte in &buf[..n] {
                        self.device.receive(WireByte {
                            byte,
                            start: at,
                            end: at,
                        });
                    }
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
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
        self.device
            .next_due()
            .map(|at| at.saturating_since(Timestamp::now()))
    }

    /// Writes every reply byte whose time has come, in one write if it fits.
    fn send_due(&mut self) {
        let now = Timestamp::now();
        while let Some(byte) = self.device.take_due(now) {
            self.pending.push_back(byte);
        }
        while !self.pending.is_empty() {
            let (first, _) = self.pending.as_slices();
            match rustix::io::write(&self.master, first) {
                Ok(n) if n > 0 => {
                    self.pending.drain(..n);
                }
                // Full (EAGAIN), or the slave is gone: poll decides what next.
                _ => break,
            }
        }
    }
}
