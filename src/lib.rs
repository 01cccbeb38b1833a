//! # ftdi-rt: FTDI USB-serial from userspace, with a latency guarantee
//!
//! A host sends a short request to a device behind an FTDI adapter and must
//! have the reply within a deadline. The chip delivers in time, but the
//! kernel's `ftdi_sio`/tty path hands received bytes to a normal-priority
//! kworker (`flush_to_ldisc`) that can wait for milliseconds behind other
//! work, and raising the application's priority does not help. ftdi-rt
//! talks to the chip itself through libusb, from a reader thread that runs
//! `SCHED_FIFO`, pinned, with memory locked; it keeps several single-packet
//! bulk-IN transfers in flight, strips the 2-byte status header of every
//! packet, timestamps it, and hands the payload to the application through a
//! file descriptor that works with poll/epoll/mio, timing every request/reply
//! against its deadline.
//!
//! ## The path of a packet
//! ```text
//!  USB completion ─► transport (Inbound::wait, on the reader thread)     src/transport/
//!                 ─► Pipeline: proto::packets, status, heartbeats, stalls src/reader/
//!                 ─► channel: rtrb ring of Chunk + eventfd                src/channel/
//!                 ─► Receiver::recv_timeout / try_recv / Read / mio       src/channel/receiver.rs
//!                 ─► Port::transact: deadline accounting                  src/transaction/
//! ```
//! The [`proto`] module is the sans-IO FTDI protocol (chips, divisors,
//! control requests, status bits, deframing) the transports drive. Three
//! transports sit behind one seam: the libusb driver ([`Port::open_usb`]),
//! the kernel tty ([`Port::open_tty`], the baseline and the fallback for
//! non-FTDI ports) and a simulated chip ([`sim`], [`Port::open_sim`]).
//!
//! ## Features
//! - `sim`: the simulated FTDI chip ([`sim`], [`Port::open_sim`]). Off by
//!   default, so a driver user's build does not compile it; the crate's own
//!   tests, examples and benches turn it on.
//! - `usbip`: the simulated chip as a USB device and the USB/IP front end
//!   that attaches it to the local kernel (implies `sim`).
//! - `tokio`: `AsyncPort`, tokio's `AsyncRead`/`AsyncWrite` on the
//!   channel's file descriptor, and an async `transact`.
//!
//! Measurement tools (the machine-noise probe, CPU hogs, a device model on
//! a pty, the request/reply tool behind `examples/request_reply`) live in
//! the workspace crate `ftdi-rt-lab`. What connects them to the driver is
//! one hook: a [`StallSource`] given to [`Port::discount_stalls`], so that a
//! deadline miss a measured stall explains is counted apart from the host
//! path's ([`Statistics::host_misses`]).
//!
//! ## Quick start (no hardware: the simulated chip, feature `sim`)
//! ```no_run
//! use std::time::Duration;
//! use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
//! use ftdi_rt::{Port, PortConfig, ReplyEnd};
//!
//! let chip = SimChip::new(Frobnicator::new(Duration::from_micros(200)), SimConfig::default())?;
//! let mut port = Port::open_sim(chip, &PortConfig::default().best_effort())?;
//! let t = port.transact(&[1, 2, 3, 4, 5, 6, 7], ReplyEnd::Length(1), Duration::from_micros(3500))?;
//! println!("reply {:?} after {:?}", t.bytes(), t.latency());
//! println!("{}", port.stats());
//! # Ok::<(), ftdi_rt::Error>(())
//! ```
//!
//! ## Coming from serialport
//! [`Port`] implements `serialport::SerialPort`, and [`new`] mirrors
//! `serialport::new`, so switching is one line:
//! `serialport::new("/dev/ttyUSB0", 115200).open()?` becomes
//! `ftdi_rt::new("FT1ABCDE", 115200).open()?`. [`Port::into_split`] gives
//! owned receiving and writing halves for separate threads.
//!
//! ## Realtime
//! By default the reader must get `SCHED_FIFO` priority 80 and its CPU
//! pinning, or opening fails with an error that says how to grant it (root,
//! `setcap cap_sys_nice+ep`, or `rtprio` in limits.conf). It locks and
//! prefaults only what its hot path touches ([`MemoryLocking::HotPath`],
//! within `RLIMIT_MEMLOCK`); locking the whole process is the explicit
//! [`MemoryLocking::WholeProcess`]. [`PortConfig::best_effort`] runs without
//! what is refused and records it in [`Statistics::realtime`];
//! [`Statistics::reader_page_faults`] counts the reader's page faults. The
//! hot path (packet completion → channel → application) allocates nothing
//! and takes no lock a normal-priority thread can hold; `tests/hot_path.rs`
//! checks both on the simulated transport (the libusb transport's own share
//! runs only in the virtual HIL rig).
//! ## Many ports, one reader
//! Each port gets a reader thread of its own unless its config names a
//! shared [`Reader`] ([`PortConfig::with_reader`]): one realtime thread that
//! serves any number of ports (simulated chips and kernel ttys; libusb ports
//! not yet, see [`Reader`]), each with its own channel, descriptor,
//! statistics and transactions. Ready ports get one bounded turn each per
//! round, in rotating order, so a flooding port cannot starve the others.
//! Adapters are told apart across replugs by [`Identity`] (serial number and
//! channel, else port path and channel); [`list`] warns on each adapter whose
//! serial number is blank or shared ([`DeviceInfo::identity_warning`]).
//! A port opened with [`PortConfig::with_resume`] survives an unplug: the
//! stream reports [`Error::Disconnected`] and goes on, a watcher thread
//! finds the same identity again, re-applies every setting, and the stream
//! reports [`Error::Resumed`] with the gap ([`Statistics::resumes`]).
//!
#![doc = include_str!("transaction/timeouts.md")]
//!
//! ## Linux permissions
//! Opening a USB device needs write access to `/dev/bus/usb/BBB/DDD`: install
//! `udev/60-ftdi-rt.rules` (see the README). ftdi-rt detaches `ftdi_sio` from
//! the interface it claims and re-attaches it on close, so `/dev/ttyUSBn`
//! comes back; also on a panic that unwinds and on SIGINT, SIGTERM and
//! SIGHUP. **ftdi-rt changes signal dispositions** for that: once a port has
//! detached a kernel driver, it handles those of the three signals the
//! application leaves at `SIG_DFL`, gives the interfaces back, and ends the
//! process as the signal would have. The [`exit`] module has the details,
//! what happens under `panic = "abort"` or SIGKILL, and the opt-out
//! ([`exit::leave_signals_alone`]).
//!
//! ## Logging
//! The library logs through the [`log`] crate (never from the reader thread).

#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs describe the optional simulated chip and link to it; built
// without the `sim` feature those items do not exist (docs.rs and the
// workspace's docs build with it).
#![cfg_attr(not(feature = "sim"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod bench_support;
mod builder;
mod channel;
mod doorbell;
mod error;
pub mod exit;
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod fuzz_support;
mod lock;
mod port;
pub mod proto;
mod reader;
pub mod realtime;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod stall;
mod stats;
mod sys;
mod time;
pub mod timing;
mod transaction;
mod transport;
#[cfg(feature = "usbip")]
pub mod usbip;

/// README.md, whose Rust code blocks run as doctests of the crate, so the
/// README's library example always compiles against the API it shows.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use builder::{PortBuilder, new};
pub use channel::{CHUNK_CAPACITY, Chunk, Receiver};
pub use error::{Error, ErrorKind, Result, TransferError};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use port::AsyncPort;
pub use port::{OwnedReceiver, OwnedWriter, Port, PortConfig, Writer};
pub use proto::{
    Chip, DataBits, FlowControl, Interface, LineProperties, LineStatus, ModemStatus, Parity,
    StopBits,
};
pub use reader::Reader;
pub use realtime::{
    HotRegion, MemoryLocking, MemoryStatus, Pinning, RealtimeConfig, RealtimeError, RealtimePolicy,
    RealtimeStatus, make_current_thread_realtime,
};
/// The `serialport` crate this crate's [`Port`] implements
/// `serialport::SerialPort` of (re-exported so both name the same version).
pub use serialport;
pub use stall::StallSource;
pub use stats::{
    LatencySummary, LineErrorCounts, PageFaults, ReaderPageFaults, Statistics, TransportInfo,
    TransportKind,
};
pub use time::Timestamp;
pub use transaction::{ReplyEnd, Transaction};
pub use transport::usb::{DeviceInfo, FTDI_VID, Identity, IdentityWarning, Selector, UsbId, list};
