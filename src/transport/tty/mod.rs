//! The kernel tty transport: `/dev/ttyUSBn` (ftdi_sio), `/dev/ttyACMn`, a pty.
//!
//! The baseline the userspace driver is measured against, and the fallback
//! for adapters that are not FTDI. The seam sits at the byte level: the
//! reader thread `read(2)`s the tty and hands each read to the shared
//! [`Pipeline`](crate::reader::Pipeline) as one [`Framing::Raw`] completion;
//! the channel, statistics, transactions and everything else above are the
//! code every transport uses. A tty has no per-packet status, so the line
//! status and modem changes of the statistics stay zero here
//! ([`Outbound::query_status`] asks the driver instead).
//!
//! A fair baseline: the reader is the same thread with the same `SCHED_FIFO`
//! priority and CPU as the libusb reader, it timestamps a read when `read`
//! returns, and on ftdi_sio ports the chip's latency timer is set to 1 ms
//! (`ASYNC_LOW_LATENCY` through TIOCSSERIAL, and the sysfs `latency_timer`)
//! where permitted. What could not be set is kept in the statistics' notes.
//! Both settings outlive the port, as `setserial` leaves them.
//!
//! One open file description serves both halves through two descriptors:
//! the port's own ([`TtyOutbound`]: writes and settings, application
//! threads) and a dup for the reader ([`TtyInbound`]). `O_NONBLOCK` belongs
//! to the description, so it is set once at open and never changed: the
//! reader polls before its single read, and a writer never blocks past its
//! timeout behind flow control. How each setting maps onto termios, ioctls
//! and sysfs is in `settings`.

use std::io;
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serialport::TTYPort;

use super::{
    Applied, Completion, Framing, Inbound, LinkLost, OpenOptions, Outbound, Parts, Setting,
};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::proto::{LineStatus, ModemStatus};
use crate::realtime::memory::HotRegions;
use crate::stats::{TransportInfo, TransportKind};
use crate::sys;
use crate::time::{Deadline, Timestamp};

mod settings;

/// Bytes one read may take: far more than a tty delivers between two reads
/// of a reader that keeps up, allocated once at open.
const READ_BUFFER_BYTES: usize = 4096;

/// Character-device majors of Unix98 pty slaves (`/dev/pts/N`).
const PTY_SLAVE_MAJORS: RangeInclusive<u32> = 136..=143;

/// The driver whose latency timer and ASYNC_LOW_LATENCY this transport sets.
const FTDI_SIO: &str = "ftdi_sio";

/// What is behind the path, as far as the settings care.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Driver {
    /// A Unix98 pty slave: no UART, no modem lines, no latency timer.
    Pty,
    /// A tty sysfs describes: its driver's name and its device directory
    /// (`/sys/dev/char/M:m/device`, where ftdi_sio keeps `latency_timer`).
    Sysfs { name: String, device: PathBuf },
    /// A tty sysfs says nothing about (a virtual console, a legacy pty).
    Unknown,
}

impl Driver {
    /// Finds out what `path` is, without opening it: a missing path is a
    /// [`Error::Tty`], anything but a character device [`Error::NotATty`].
    fn identify(path: &Path) -> Result<Driver> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Tty {
            path: path.to_owned(),
            source,
        })?;
        if !meta.file_type().is_char_device() {
            return Err(Error::NotATty {
                path: path.to_owned(),
            });
        }
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        if PTY_SLAVE_MAJORS.contains(&major) {
            return Ok(Driver::Pty);
        }
        // By device number, so /dev/serial/by-id links and renamed nodes work too.
        let device = PathBuf::from(format!("/sys/dev/char/{major}:{minor}/device"));
        Ok(match std::fs::read_link(device.join("driver")) {
            Ok(link) => match link.file_name() {
                Some(name) => Driver::Sysfs {
                    name: name.to_string_lossy().into_owned(),
                    device,
                },
                None => Driver::Unknown,
            },
            Err(_) => Driver::Unknown,
        })
    }

    fn name(&self) -> &str {
        match self {
            Driver::Pty => "pty",
            Driver::Sysfs { name, .. } => name,
            Driver::Unknown => "unknown driver",
        }
    }

    fn is_ftdi_sio(&self) -> bool {
        matches!(self, Driver::Sysfs { name, .. } if name == FTDI_SIO)
    }
}

/// Opens the tty at `path` (exclusively, raw, at the options' baud rate).
///
/// # Errors
/// [`Error::NotATty`]; [`Error::Busy`] for a tty another port (or
/// process) holds exclusively; or [`Error::Tty`] naming what failed (a
/// missing path, permission).
pub(crate) fn open(path: &Path, options: &OpenOptions) -> Result<Parts<TtyInbound>> {
    let driver = Driver::identify(path)?;
    let tty_error = |source: io::Error| Error::Tty {
        path: path.to_owned(),
        source,
    };
    // A descriptor of our own answers "is it a tty?" before serialport's
    // TIOCEXCL would fail on /dev/null with an unhelpful message. It stays
    // open until serialport has opened, so the device is not closed and
    // reopened in between (a last close drops DTR, which resets some boards).
    let busy = || Error::Busy {
        device: format!("tty {}", path.display()),
    };
    let probe = sys::fd::open_device(path).map_err(|e| {
        // TIOCEXCL of another opener refuses everyone but root with EBUSY.
        if e.raw_os_error() == Some(libc::EBUSY) {
            return busy();
        }
        tty_error(if e.kind() == io::ErrorKind::PermissionDenied {
            io::Error::new(
                e.kind(),
                format!(
                    "{e}; add your user to the group that owns it (usually dialout) \
                     and log in again"
                ),
            )
        } else {
            e
        })
    })?;
    if !sys::tty::is_tty(probe.as_fd()) {
        return Err(Error::NotATty {
            path: path.to_owned(),
        });
    }
    // serialport's exclusive open takes an flock and reports a held one
    // as "no device"; a port of ours (or any flock user) holding it is busy.
    if sys::fd::flock_held_elsewhere(probe.as_fd()).unwrap_or(false) {
        return Err(busy());
    }
    let name = path.to_str().ok_or_else(|| {
        tty_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is not valid UTF-8, which serialport needs",
        ))
    })?;
    // Exclusive (TIOCEXCL and flock), raw mode, 8N1, no flow control; the
    // port's configuration is applied afterwards through `apply`, which names
    // any setting the tty refuses.
    let port = serialport::new(name, options.baud)
        .open_native()
        .map_err(|e| tty_error(e.into()))?;
    drop(probe);
    sys::fd::set_nonblocking(sys::tty::tty_fd(&port)).map_err(tty_error)?;
    let reader_fd = port
        .try_clone_native()
        .map(sys::tty::owned_fd_of)
        .map_err(|e| tty_error(e.into()))?;
    let wake = Arc::new(Doorbell::new()?);
    let inbound = TtyInbound {
        fd: reader_fd,
        wake: wake.clone(),
        buf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
    };
    let outbound = TtyOutbound {
        port,
        path: path.to_owned(),
        driver,
    };
    // Nothing is noted at this point: what the tty refuses shows up while
    // the configuration is applied (ASYNC_LOW_LATENCY and the latency timer
    // go with the latency-timer setting).
    Ok(Parts {
        inbound,
        outbound: Box::new(outbound),
        wake,
        notes: Vec::new(),
        thread_name: "ftdi-rt-tty-rx",
    })
}

/// The reader-thread half: the tty descriptor and the port's stop doorbell.
pub(crate) struct TtyInbound {
    fd: OwnedFd,
    wake: Arc<Doorbell>,
    buf: Box<[u8]>,
}

impl std::fmt::Debug for TtyInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtyInbound")
            .field("fd", &self.fd)
            .field("buf_len", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Inbound for TtyInbound {
    fn framing(&self) -> Framing {
        Framing::Raw
    }

    fn hot_memory(&mut self, regions: &mut HotRegions) {
        // read(2) writes the buffer: a fresh calloc may not be resident yet.
        self.buf.fill(0);
        regions.add("read buffer", &self.buf[..]);
        regions.add("transport state", &*self.wake);
    }

    fn start(&mut self) -> std::result::Result<(), LinkLost> {
        // The kernel reads the device all the time; nothing to put in flight.
        Ok(())
    }

    fn wait<F: FnMut(Completion<'_>)>(
        &mut self,
        timeout: Duration,
        mut deliver: F,
    ) -> std::result::Result<(), LinkLost> {
        // The doorbell is rung only to stop the reader (ring_always). It is
        // polled, never drained here, so a ring that lands between the
        // reader's stop check and this poll still ends the poll at once.
        let mut fds = [
            sys::pollfd(self.fd.as_fd(), libc::POLLIN),
            sys::pollfd(self.wake.as_fd(), libc::POLLIN),
        ];
        if let Err(e) = sys::poll(&mut fds, Some(timeout)) {
            return Err(LinkLost(format!("polling the tty failed: {e}")));
        }
        let revents = fds[0].revents;
        if revents & libc::POLLNVAL != 0 {
            return Err(LinkLost("the tty descriptor is no longer valid".into()));
        }
        if revents == 0 {
            return Ok(());
        }
        // POLLHUP and POLLERR read too: whatever arrived before the hangup
        // is delivered first, then read reports the end.
        match sys::fd::read(self.fd.as_fd(), &mut self.buf) {
            Ok(0) => Err(LinkLost(
                "the tty hung up (read returned end of file: the device was unplugged \
                 or the far side of the pty closed)"
                    .into(),
            )),
            Ok(n) => {
                let at = Timestamp::now();
                deliver(Completion {
                    data: &self.buf[..n],
                    at,
                });
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) if hung_up(&e) => Err(LinkLost(format!(
                "the tty hung up ({e}: the device was unplugged or the far side of the pty closed)"
            ))),
            Err(e) => Err(LinkLost(format!("reading the tty failed: {e}"))),
        }
    }

    fn readiness(&self) -> std::result::Result<RawFd, &'static str> {
        // Non-blocking: a `wait` that finds nothing has read to EAGAIN.
        Ok(self.fd.as_raw_fd())
    }

    fn shutdown(&mut self) {
        // Nothing in flight; the descriptor closes when the reader drops it.
    }
}

/// The application half: writes and settings on the port's own descriptor.
#[derive(Debug)]
pub(crate) struct TtyOutbound {
    /// Kept whole so that closing it also lifts TIOCEXCL.
    port: TTYPort,
    path: PathBuf,
    driver: Driver,
}

impl TtyOutbound {
    fn fd(&self) -> BorrowedFd<'_> {
        sys::tty::tty_fd(&self.port)
    }

    fn unsupported(&self, setting: impl Into<String>, reason: &str) -> Error {
        Error::Unsupported {
            setting: setting.into(),
            transport: format!("the kernel tty {}", self.path.display()),
            reason: reason.into(),
        }
    }

    /// A failed ioctl: the device going away is [`Error::Disconnected`],
    /// anything else a refusal of `setting`.
    fn rejected(&self, setting: &str, e: io::Error) -> Error {
        if hung_up(&e) {
            Error::Disconnected
        } else {
            Error::SettingRejected {
                setting: setting.into(),
                reason: e.to_string(),
            }
        }
    }

    fn io_error(&self, e: io::Error) -> Error {
        if hung_up(&e) {
            Error::Disconnected
        } else {
            Error::Tty {
                path: self.path.clone(),
                source: e,
            }
        }
    }
}

impl Outbound for TtyOutbound {
    fn write(&self, data: &[u8], timeout: Duration) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let deadline = Deadline::from_now(timeout);
        loop {
            // Try first: the descriptor is non-blocking, and a tty with room
            // (the usual case) then costs one system call.
            match sys::fd::write(self.fd(), data) {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            }
            let left = deadline.remaining(Timestamp::now());
            if left.is_zero() {
                return Err(Error::TimedOut {
                    operation: "write",
                    after: timeout,
                });
            }
            let mut fds = [sys::pollfd(self.fd(), libc::POLLOUT)];
            sys::poll(&mut fds, Some(left)).map_err(|e| self.io_error(e))?;
            if fds[0].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(Error::Disconnected);
            }
        }
    }

    fn apply(&self, setting: Setting) -> Result<Applied> {
        self.configure(setting)
    }

    fn query_status(&self) -> Result<(ModemStatus, LineStatus)> {
        let modem = match sys::tty::modem_lines(self.fd()) {
            Ok(bits) => {
                let on = |bit: libc::c_int| bits & bit != 0;
                ModemStatus::from_lines(
                    on(libc::TIOCM_CTS),
                    on(libc::TIOCM_DSR),
                    on(libc::TIOCM_RNG),
                    on(libc::TIOCM_CAR),
                )
            }
            // A pty has no modem lines: all of them read as low.
            Err(e) if no_such_ioctl(&e) => ModemStatus(0),
            Err(e) => return Err(self.io_error(e)),
        };
        // The driver's output queue is what a tty knows of its transmitter:
        // empty counts as THRE|TEMT. No error bits: the tty gives none per read.
        let line = match sys::tty::output_queue(self.fd()) {
            Ok(0) => LineStatus(LineStatus::THRE | LineStatus::TEMT),
            Ok(_) => LineStatus(0),
            Err(e) if no_such_ioctl(&e) => LineStatus(0),
            Err(e) => return Err(self.io_error(e)),
        };
        Ok((modem, line))
    }

    fn info(&self) -> TransportInfo {
        let description = match self.driver {
            Driver::Unknown => self.path.display().to_string(),
            _ => format!("{} ({})", self.path.display(), self.driver.name()),
        };
        TransportInfo {
            kind: TransportKind::Tty,
            description,
            chip: None,
            actual_baud: None,
            max_packet_size: None,
            transfers_in_flight: None,
            notes: Vec::new(),
        }
    }
}

/// The device is gone or hung up: EIO after a hangup, ENODEV/ENXIO after an unplug.
fn hung_up(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::ENODEV | libc::ENXIO)
    )
}

/// The driver does not implement the ioctl (ENOTTY; EINVAL from some drivers).
fn no_such_ioctl(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        assert!(hung_up(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!hung_up(&io::Error::from_raw_os_error(libc::ENOTTY)));
        assert!(no_such_ioctl(&io::Error::from_raw_os_error(libc::ENOTTY)));
        assert!(!no_such_ioctl(&io::Error::from_raw_os_error(libc::EIO)));
    }

    #[test]
    fn non_devices_are_not_ttys_and_missing_paths_say_so() {
        let dir = std::env::temp_dir();
        assert!(matches!(Driver::identify(&dir), Err(Error::NotATty { .. })));
        let missing = dir.join("ftdi-rt-no-such-tty");
        match Driver::identify(&missing) {
            Err(Error::Tty { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a Tty error, got {other:?}"),
        }
    }
}
