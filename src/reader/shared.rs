//! A realtime reader shared by many ports: the public [`Reader`] and a
//! port's membership in it.
//!
//! One thread, made realtime like a port's own reader (SCHED_FIFO, pinned,
//! stack and every member's hot memory locked), waits on all its ports at
//! once through epoll and runs each ready port's completions through
//! that port's own pipeline into its own channel. Ports join and leave
//! through a command mailbox (a std channel plus a doorbell in the same
//! epoll set): the slow path, which allocates and may take locks, and which
//! the reader only looks at when the doorbell rings, never per packet.
//!
//! Fairness, so that a flooding port cannot starve the others: the reader
//! works in rounds. A round gives every port with pending completions
//! exactly one turn, starting one port further on each round (rotating
//! order), and a turn takes at most what that port has in flight:
//! `transfers_in_flight` packets on an FTDI transport (the chip cannot send
//! more before they are resubmitted), one read of 4 KiB on a tty. A port that
//! still has work after its turn waits for the next round; in between, the
//! reader looks at epoll again without sleeping. So each port waits at most
//! one turn of every other busy port.
//!
//! libusb ports: the reader creates one libusb context with its first libusb
//! port ([`Reader::usb_context`](UsbHost::usb_context)) and every libusb port
//! on it opens its device there; channels of one device share one device
//! handle. The context's descriptors sit in the reader's epoll set once;
//! when they fire, one `libusb_handle_events` call reaps for every device,
//! and each libusb port then takes its own completions in its turn, bounded
//! as above (a resubmitted transfer completes only in a later event
//! handling). A libusb port joins before its chip is configured (its event
//! loop serves the configuration from the reader thread: only that thread
//! may handle the context's events), and is armed with its pipeline after.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::Pipeline;
use super::faults::{FaultCounter, FinishOnDrop};
use super::member::{Member, Served};
use super::serve::{Command, Serve};
use super::usb_member::{ContextEvents, UsbMember};
use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::realtime::memory::MemoryStatus;
use crate::realtime::{self, RealtimeConfig, RealtimeStatus, RtThread, effective_locking};
use crate::stats::ReaderPageFaults;
use crate::transport::usb::{EventLoop, SharedContext, TransferSet, UsbHost};
use crate::transport::{Hosted, Inbound, LinkLost};

/// A realtime reader thread that serves any number of ports.
///
/// Open ports on it with [`PortConfig::with_reader`](crate::PortConfig::with_reader);
/// each keeps its own channel, file descriptor, statistics and transactions.
/// A port opened without a reader gets one of its own, as before. `Reader`
/// is a cheap handle (clone it freely); the thread stops when the last handle
/// and the last port on it are gone.
///
/// Fairness: the reader serves ready ports in rounds, one bounded turn per
/// port per round (at most the port's transfers in flight, or one 4 KiB tty
/// read), starting one port further each round, so a port that floods
/// cannot starve the others' delivery.
///
/// Transports: every one (libusb, the simulated chip, kernel ttys). The
/// reader's libusb ports share one libusb context, created with the first
/// of them: the reader waits on it once and lets libusb reap for all its
/// devices in one call per wakeup, then gives each port its turn. Channels
/// of one multi-channel chip (FT2232C/D/H, FT4232H) opened on one reader
/// share one device handle: each claims its own interface (the others stay
/// on ftdi_sio) and gives it back, ftdi_sio re-attached, when it closes;
/// the handle closes with the last of them. libusb's own locks: the
/// reader thread alone handles the context's events, and application
/// threads reach a port's transfers only through its lock-free mailbox; an
/// application thread takes libusb's context locks only to open a device
/// (`libusb_open`: the open-devices list and the event-source list, held for
/// a few instructions), never per packet, write or setting. Closing a
/// libusb port on a shared reader releases its interface and re-attaches
/// ftdi_sio on the reader thread (`libusb_close` from another thread would
/// take libusb's event lock from the reader), which delays the other ports'
/// delivery by that long.
///
/// ```no_run
/// # fn main() -> ftdi_rt::Result<()> {
/// use ftdi_rt::{Port, PortConfig, Reader, RealtimeConfig};
/// let reader = Reader::new(&RealtimeConfig::default())?;
/// let config = PortConfig::default().with_reader(&reader);
/// let a = Port::open_tty("/dev/ttyUSB0", &config)?;
/// let b = Port::open_tty("/dev/ttyUSB1", &config)?;
/// assert_eq!(reader.ports(), 2);
/// a.write_all(b"ping")?; // each port: its own channel, fd, statistics
/// b.write_all(b"ping")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Command>,
    bell: Arc<Doorbell>,
    thread: Option<RtThread>,
    status: RealtimeStatus,
    faults: Arc<FaultCounter>,
    ports: Arc<AtomicUsize>,
    next_id: AtomicU64,
    /// The libusb context, created with the first libusb port (slow path:
    /// application threads opening ports).
    usb: std::sync::Mutex<Option<Arc<SharedContext>>>,
}

impl Reader {
    /// Starts the reader thread as `config` asks (the same settings as a
    /// port's own reader: [`PortConfig::reader_realtime`](crate::PortConfig::reader_realtime)
    /// is not used for ports on a shared reader).
    ///
    /// # Errors
    /// [`Error::Realtime`] if the realtime setup is refused (see
    /// [`RealtimePolicy::BestEffort`](crate::RealtimePolicy::BestEffort)),
    /// [`Error::Io`] if no thread or epoll instance could be created.
    pub fn new(config: &RealtimeConfig) -> Result<Reader> {
        let bell = Arc::new(Doorbell::new()?);
        let (commands, inbox) = mpsc::channel();
        let faults = Arc::new(FaultCounter::default());
        let ports = Arc::new(AtomicUsize::new(0));
        let (thread_bell, thread_faults, thread_ports) =
            (bell.clone(), faults.clone(), ports.clone());
        let config_copy = *config;
        let (thread, status) = realtime::spawn("ftdi-rt-shared", config, move |startup| {
            let _record = FinishOnDrop(&thread_faults);
            thread_faults.started();
            let locking = effective_locking(&config_copy, startup.status());
            let serve = Serve::new(inbox, thread_bell, thread_ports, locking);
            match serve {
                Ok(mut serve) => {
                    thread_faults.setup_done();
                    startup.ready();
                    serve.run(&thread_faults);
                }
                Err(e) => startup.fail(Error::Io(e)),
            }
        })?;
        Ok(Reader {
            inner: Arc::new(Inner {
                commands,
                bell,
                thread: Some(thread),
                status,
                faults,
                ports,
                next_id: AtomicU64::new(1),
                usb: std::sync::Mutex::new(None),
            }),
        })
    }

    /// How the reader thread runs (guaranteed realtime or best effort).
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.inner.status
    }

    /// Ports the reader serves now.
    pub fn ports(&self) -> usize {
        self.inner.ports.load(Ordering::Acquire)
    }

    /// CPU time the reader thread has used so far (from
    /// `/proc/self/task/<tid>/schedstat`; `None` where that cannot be read).
    pub fn cpu_time(&self) -> Option<Duration> {
        self.inner.faults.cpu_time()
    }

    /// The reader thread's page faults so far (allocates: reads /proc).
    pub(crate) fn page_faults(&self) -> Option<ReaderPageFaults> {
        self.inner.faults.read()
    }

    /// Hands a port's reader half to the thread and waits until it has
    /// joined (memory locked, transfers in flight). `transport` names the
    /// port in errors.
    pub(crate) fn attach<I: Inbound>(
        &self,
        mut inbound: I,
        pipeline: Pipeline,
        transport: &str,
    ) -> Result<(Membership, MemoryStatus)> {
        if let Some(hosted) = inbound.take_hosted() {
            return self.arm(hosted, pipeline);
        }
        let member = Served::new(inbound, pipeline).map_err(|(why, _)| Error::Unsupported {
            setting: "a shared reader (PortConfig::with_reader)".into(),
            transport: transport.into(),
            reason: why.into(),
        })?;
        self.join(Box::new(member))
    }

    /// Hands `member` to the thread and waits until it has joined.
    fn join(&self, member: Box<dyn Member>) -> Result<(Membership, MemoryStatus)> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, joined) = mpsc::sync_channel(1);
        self.send(Command::Join { id, member, done })?;
        match joined.recv() {
            Ok(Ok(memory)) => Ok((
                Membership {
                    reader: self.clone(),
                    id,
                    left: false,
                },
                memory,
            )),
            Ok(Err(LinkLost(why))) => Err(Error::Io(std::io::Error::other(format!(
                "the port could not start on the shared reader: {why}"
            )))),
            Err(_) => Err(Self::ended()),
        }
    }

    /// Gives a port that joined before its configuration (`hosted`) its
    /// pipeline, and waits until its transfers are in flight.
    fn arm(&self, hosted: Hosted, pipeline: Pipeline) -> Result<(Membership, MemoryStatus)> {
        let membership = match hosted.0.downcast::<Membership>() {
            Ok(membership) if membership.reader == *self => *membership,
            // Dropping it takes the port off the reader it is on.
            _ => {
                return Err(Error::Io(std::io::Error::other(
                    "the port was opened on another shared reader than its config names",
                )));
            }
        };
        let (done, armed) = mpsc::sync_channel(1);
        self.send(Command::Arm {
            id: membership.id,
            pipeline,
            done,
        })?;
        match armed.recv() {
            Ok(Ok(memory)) => Ok((membership, memory)),
            Ok(Err(LinkLost(why))) => Err(Error::Io(std::io::Error::other(format!(
                "the port could not start on the shared reader: {why}"
            )))),
            Err(_) => Err(Self::ended()),
        }
    }

    fn send(&self, command: Command) -> Result<()> {
        self.inner
            .commands
            .send(command)
            .map_err(|_| Self::ended())?;
        self.inner.bell.ring_always();
        Ok(())
    }

    fn ended() -> Error {
        Error::Io(std::io::Error::other(
            "the shared reader thread has ended (it panicked; its message went to stderr); \
             create a new Reader",
        ))
    }
}

impl UsbHost for Reader {
    fn usb_context(&self) -> Result<Arc<SharedContext>> {
        // Held while the context is created and handed over, so that two
        // ports opening at once make one.
        let mut usb = self.inner.usb.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(context) = usb.as_ref() {
            return Ok(context.clone());
        }
        let context = Arc::new(SharedContext::new()?);
        let (done, taken) = mpsc::sync_channel(1);
        self.send(Command::Context {
            events: context.clone() as Arc<dyn ContextEvents>,
            done,
        })?;
        match taken.recv() {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Io(std::io::Error::other(
                    "the shared reader could not take the libusb context's events",
                )));
            }
            Err(_) => return Err(Self::ended()),
        }
        *usb = Some(context.clone());
        Ok(context)
    }

    fn host(&self, event_loop: EventLoop<TransferSet>, wake: Arc<Doorbell>) -> Result<Hosted> {
        let (membership, _) = self.join(Box::new(UsbMember::new(event_loop, wake)))?;
        Ok(Hosted(Box::new(membership)))
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("ports", &self.ports())
            .field("realtime", &self.inner.status)
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they name the same reader thread.
impl PartialEq for Reader {
    fn eq(&self, other: &Reader) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Reader {}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every port on the reader holds a handle: none is left.
        let _ = self.commands.send(Command::Stop);
        self.bell.ring_always();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port's place on a shared reader; leaving (on drop) ends its stream and
/// cancels its transfers, and waits until the reader has done so.
#[derive(Debug)]
pub(crate) struct Membership {
    reader: Reader,
    id: u64,
    left: bool,
}

impl Membership {
    /// The reader serving this port.
    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Leaves the reader; the others it serves are not disturbed. Returns
    /// once the reader has cancelled and drained the port's transfers.
    pub(crate) fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let (done, left) = mpsc::sync_channel(1);
        if self
            .reader
            .send(Command::Leave { id: self.id, done })
            .is_ok()
        {
            // Err: the thread is gone, and with it the port's state.
            let _ = left.recv();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.leave();
    }
}
