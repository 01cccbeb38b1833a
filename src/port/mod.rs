//! The port: what an application opens, receives from, writes to and
//! configures — the same type on every transport.
//!
//! A [`Port`] is a [`Receiver`] (the application end of the channel from the
//! realtime reader) plus a [`Writer`] (writes and settings, `&self`), plus
//! the reader thread it owns and its transaction state. This module is the
//! only place that assembles one: each transport returns its parts
//! (`crate::transport::Parts`) and [`open`] puts them together, the same
//! way for all of them. [`Port::split`] hands out both halves at once so one
//! thread can write while another receives; [`Port::into_split`] gives owned
//! halves that move to other threads. The port also speaks
//! `serialport::SerialPort` (`serial_port.rs`) and, with feature `tokio`,
//! tokio's I/O traits (`AsyncPort`).

#[cfg(feature = "tokio")]
mod async_port;
mod budget;
mod config;
mod halves;
mod io;
mod open;
mod resume;
mod serial_port;
pub(crate) mod serial_types;
mod settings;
mod timing;
mod transact;
mod writer;

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tokio")]
pub use async_port::AsyncPort;
pub use config::PortConfig;
pub use halves::{OwnedReceiver, OwnedWriter};
pub use writer::Writer;

use crate::channel::{Chunk, Receiver, Shared};
use crate::error::Result;
use crate::realtime::RealtimeStatus;
use crate::stats::{LatencySummary, LineErrorCounts, Statistics};
use crate::timing::MissReport;
use crate::transaction::Engine;
use resume::Serving;

/// An open serial port with a realtime reader behind it.
///
/// Receive with [`recv_timeout`](Port::recv_timeout), [`try_recv`](Port::try_recv),
/// `io::Read`, or by polling its file descriptor (it implements
/// [`AsFd`](std::os::fd::AsFd) and [`mio::event::Source`]); write with
/// `io::Write` or [`write_all`](Port::write_all); configure with the `set_*`
/// methods (the same as the [`Writer`]'s); run request/reply exchanges with
/// [`transact`](Port::transact); read the figures with [`stats`](Port::stats).
///
/// Dropping the port stops the reader (cancelling its transfers and waiting
/// for them), then releases the device (once no clone from
/// [`serialport::SerialPort::try_clone`] and no [`OwnedWriter`] holds it).
#[derive(Debug)]
pub struct Port {
    // Fields drop in declaration order: the reader first, so it cancels
    // and drains its transfers while the device is still claimed; the
    // writer (and the device, unless a clone still shares it) after.
    reader: Serving,
    receiver: Receiver,
    writer: Arc<Writer>,
    transactions: Engine,
    /// The last deadline `transact` missed (see `Port::last_miss`).
    last_miss: Option<MissReport>,
    channel: Arc<Shared>,
    realtime: RealtimeStatus,
}

impl Port {
    /// Takes the next chunk, waiting up to `timeout`. See [`Receiver::recv_timeout`].
    ///
    /// # Errors
    /// [`Error::TimedOut`](crate::Error::TimedOut), [`Error::Overflow`](crate::Error::Overflow),
    /// [`Error::Disconnected`](crate::Error::Disconnected).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<&Chunk> {
        self.receiver.recv_timeout(timeout)
    }

    /// Takes the next chunk if one is there. See [`Receiver::try_recv`].
    ///
    /// # Errors
    /// [`Error::Overflow`](crate::Error::Overflow), [`Error::Disconnected`](crate::Error::Disconnected).
    pub fn try_recv(&mut self) -> Result<Option<&Chunk>> {
        self.receiver.try_recv()
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The writing and configuring half.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Both halves at once: receive on one thread while others write.
    pub fn split(&mut self) -> (&mut Receiver, &Writer) {
        (&mut self.receiver, &self.writer)
    }

    /// How the reader thread runs (guaranteed realtime or best effort).
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// CPU time the thread serving this port has used so far: the port's own
    /// reader, or a shared [`Reader`](crate::Reader)'s for all its ports
    /// (`None` where `/proc/self/task/<tid>/schedstat` cannot be read).
    /// Allocates (reads /proc).
    pub fn reader_cpu_time(&self) -> Option<Duration> {
        self.reader.cpu_time()
    }

    /// Everything measured so far.
    pub fn stats(&self) -> Statistics {
        let c = self.writer.counters();
        let tx = &self.transactions;
        let tally = tx.tally();
        Statistics {
            transactions: tally.transactions,
            deadline_misses: tally.misses,
            explained_misses: tx.explained_misses(),
            transaction_latency: LatencySummary::from_histogram(tx.latency()),
            delivery_latency: self.receiver.delivery_latency(),
            packets: c.packets.get(),
            status_only_packets: c.status_only.get(),
            malformed_packets: c.malformed.get(),
            bytes_received: c.payload_bytes.get(),
            bytes_delivered: self.receiver.delivered_bytes(),
            bytes_written: c.bytes_written.get(),
            line_errors: LineErrorCounts {
                overrun: c.overrun.get(),
                parity: c.parity.get(),
                framing: c.framing.get(),
                breaks: c.breaks.get(),
            },
            modem_changes: c.modem_changes.get(),
            overflows: self.channel.overflow_chunks.get(),
            overflow_bytes: self.channel.overflow_bytes.get(),
            stalls: c.stalls.get(),
            stale_bytes: tally.stale_bytes,
            unsettled_replies: tally.unsettled,
            realtime: self.realtime.clone(),
            reader_page_faults: self.reader.page_faults(),
            transport: self.writer.transport_info(),
            disconnect: c.disconnect.get().cloned(),
            resumes: c.resumes.get(),
            resume_gap: Duration::from_nanos(c.resume_gap_ns.get()),
            transaction_histogram: tx.latency().clone(),
            delivery_histogram: self.receiver.delivery_histogram().clone(),
        }
    }
}
