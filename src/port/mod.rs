//! The port: what an application opens, receives from, writes to and
//! configures — the same type on every transport.
//!
//! A [`Port`] is a [`Receiver`] (the application end of the channel from the
//! realtime reader) plus a [`Writer`] (writes and settings, `&self`), plus
//! the reader thread it owns and its transaction state. This module is the
//! only place that assembles one: each transport returns its parts
//! (`crate::transport::Parts`) and [`open`] puts them together, the same
//! way for all of them. [`Port::split`] hands out both halves at once so one
//! thread can write while another receives.

mod budget;
mod config;
mod io;
mod open;
mod settings;
mod timing;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use config::PortConfig;
pub use writer::Writer;

use crate::channel::{Chunk, Receiver, Shared};
use crate::error::Result;
use crate::reader::ReaderHandle;
use crate::realtime::RealtimeStatus;
use crate::stall::StallSource;
use crate::stats::{LatencySummary, LineErrorCounts, Statistics};
use crate::transaction::{ReplyEnd, Transaction, Transactions};

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
/// for them), then releases the device.
#[derive(Debug)]
pub struct Port {
    receiver: Receiver,
    writer: Writer,
    transactions: Transactions,
    channel: Arc<Shared>,
    realtime: RealtimeStatus,
    reader: ReaderHandle,
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

    /// Sends `request` and collects the reply until `reply` says it is
    /// complete, within `deadline` of handing the request over. Input that
    /// arrived before the request is discarded first, and so is the rest of
    /// a reply that missed its deadline (see [`ReplyEnd`] for how a reply
    /// ends and what can be told from a late one).
    ///
    /// Allocates nothing; the reply borrows the port's reply buffer until the
    /// next call.
    ///
    /// # Errors
    /// [`Error::DeadlineMissed`](crate::Error::DeadlineMissed) if the
    /// complete reply was not in hand by the deadline;
    /// [`Error::ReplyTooLong`](crate::Error::ReplyTooLong);
    /// [`Error::Overflow`](crate::Error::Overflow) if data was lost during
    /// the reply; [`Error::Disconnected`](crate::Error::Disconnected); write errors.
    pub fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        let writer = &self.writer;
        self.transactions.transact(
            &mut self.receiver,
            |request, within| writer.write_all_within(request, within),
            request,
            reply,
            deadline,
        )
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

    /// Consults `source` whenever a transaction misses its deadline: a miss
    /// its stalls alone explain (the reply would have been in time without
    /// them) is counted under its name in [`Statistics::explained_misses`]
    /// instead of the host path's. A port on the simulated chip consults
    /// the chip's own stalls already; the lab's machine-noise probe is the
    /// other source the project ships.
    pub fn discount_stalls(&mut self, source: Arc<dyn StallSource>) {
        self.transactions.discount_stalls(source);
    }

    /// How the reader thread runs (guaranteed realtime or best effort).
    pub fn realtime(&self) -> &RealtimeStatus {
        &self.realtime
    }

    /// Everything measured so far.
    pub fn stats(&self) -> Statistics {
        let c = self.writer.counters();
        let tx = &self.transactions;
        Statistics {
            transactions: tx.count(),
            deadline_misses: tx.misses(),
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
            stale_bytes: tx.stale_bytes(),
            realtime: self.realtime.clone(),
            reader_page_faults: self.reader.page_faults(),
            transport: self.writer.transport_info(),
            disconnect: c.disconnect.get().cloned(),
            transaction_histogram: tx.latency().clone(),
            delivery_histogram: self.receiver.delivery_histogram().clone(),
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // The reader first: it cancels and drains its transfers while the
        // device is still claimed; the writer (and the device) go after.
        self.reader.stop();
    }
}
