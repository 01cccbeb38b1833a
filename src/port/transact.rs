//! Request/reply on a port: the transaction engine driven by the port's
//! own receiver and writer, on `CLOCK_MONOTONIC`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Port, Writer};
use crate::channel::{Receiver, Shared};
use crate::error::{Error, Result};
use crate::stall::StallSource;
use crate::stats::TransportKind;
use crate::time::{Deadline, Timestamp};
use crate::timing::{ExchangeTimes, MissReport, gap_threshold, miss_breakdown};
use crate::transaction::{self, Engine, Io, MissTimes, Received, ReplyEnd, Transaction};

impl Port {
    /// Sends `request` and collects the reply until `reply` says it is
    /// complete, within `deadline` of handing the request to the transport
    /// (the write counts). Input that arrived before the request is
    /// discarded first, and so is the rest of a reply that missed its
    /// deadline or failed, for at most this call's `deadline` (see
    /// [`ReplyEnd`] for how a reply ends and what can be told from a late
    /// one, and the crate docs' [Timeouts and
    /// deadlines](crate#timeouts-and-deadlines) for the whole model).
    /// `Duration::MAX` is no deadline.
    ///
    /// Allocates nothing; the reply borrows the port's reply buffer until the
    /// next call.
    ///
    /// # Errors
    /// [`Error::InvalidInput`], before anything
    /// is sent or counted: an empty request, a zero deadline, a
    /// [`ReplyEnd::Length`] of 0 or longer than
    /// [`PortConfig::reply_capacity`](crate::PortConfig::reply_capacity),
    /// a [`ReplyEnd::Silence`] of zero or below what the latency timer can
    /// resolve; [`Error::Unsupported`] for [`ReplyEnd::Silence`] on a
    /// kernel tty (no status packets);
    /// [`Error::DeadlineMissed`] if the
    /// complete reply was not in hand by the deadline (then
    /// [`last_miss`](Port::last_miss) says where the time went);
    /// [`Error::ReplyTooLong`];
    /// [`Error::Overflow`] if data was lost during
    /// the reply; [`Error::Disconnected`]; write errors.
    pub fn transact(
        &mut self,
        request: &[u8],
        reply: ReplyEnd<'_>,
        deadline: Duration,
    ) -> Result<Transaction<'_>> {
        let (engine, mut io) = self.transaction_parts(reply)?;
        transaction::transact(engine, &mut io, request, reply, deadline)
    }

    /// What a transaction shell drives, once `reply` is known to be one the
    /// port can decide: the engine, and the port's I/O for it.
    pub(super) fn transaction_parts(
        &mut self,
        reply: ReplyEnd<'_>,
    ) -> Result<(&mut Engine, PortIo<'_>)> {
        let counters = self.writer.counters();
        if let ReplyEnd::Silence(quiet) = reply {
            self.check_silence(quiet)?;
        }
        self.transactions.set_char_time(Duration::from_nanos(
            counters.char_time_ns.load(Ordering::Relaxed),
        ));
        let io = PortIo {
            receiver: &mut self.receiver,
            writer: &self.writer,
            channel: &self.channel,
            cursor: counters.flight.next_seq(),
            last_miss: &mut self.last_miss,
            sent: false,
        };
        Ok((&mut self.transactions, io))
    }

    /// The last deadline [`transact`](Port::transact) missed: when, the
    /// breakdown of where its time went (wire, chip wait, USB to reader,
    /// reader to application) and the flight record around it. `None`
    /// before the first miss.
    pub fn last_miss(&self) -> Option<&MissReport> {
        self.last_miss.as_ref()
    }

    /// Refuses a silence-framed reply the port cannot decide: on a tty (no
    /// status packets), or with a quiet time below the blur of two latency
    /// periods plus twice the allowed arrival jitter (`timing::gap_threshold`
    /// with no inner gap).
    fn check_silence(&self, quiet: Duration) -> Result<()> {
        if quiet.is_zero() {
            return Ok(()); // the engine refuses it, with its own message
        }
        if self.writer.transport_info().kind == TransportKind::Tty {
            return Err(Error::Unsupported {
                setting: "silence-framed replies (ReplyEnd::Silence)".into(),
                transport: "a kernel tty".into(),
                reason: "the tty delivers no status packets to prove the line quiet; open \
                         the adapter with Port::open_usb"
                    .into(),
            });
        }
        let latency_ms = self
            .writer
            .counters()
            .latency_timer_ms
            .load(Ordering::Relaxed);
        let latency = Duration::from_millis(u64::from(latency_ms));
        let jitter = self.transactions.arrival_jitter();
        match gap_threshold(quiet, Duration::ZERO, latency, jitter) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::InvalidInput(format!(
                "ReplyEnd::Silence({quiet:?}) is below the {:?} a {latency:?} latency timer \
                 with {jitter:?} of arrival jitter can resolve (packet timing blurs a gap by \
                 two latency periods plus twice the jitter); ask for at least {:?}, or lower \
                 the latency timer (PortConfig::with_latency_timer_ms) or the allowed jitter \
                 (PortConfig::with_arrival_jitter)",
                e.needed, e.needed
            ))),
        }
    }

    /// Consults `source` whenever a transaction misses its deadline: a miss
    /// its stalls alone explain (the reply would have been in time without
    /// them) is counted under its name in
    /// [`Statistics::explained_misses`](crate::Statistics::explained_misses)
    /// instead of the host path's. A port on the simulated chip consults
    /// the chip's own stalls already; the lab's machine-noise probe is the
    /// other source the project ships.
    pub fn discount_stalls(&mut self, source: Arc<dyn StallSource>) {
        self.transactions.discount_stalls(source);
    }
}

/// The port's receiver and writer, as the transaction shell's [`Io`];
/// the flight recorder and the channel's doorbell for packet-by-packet
/// receiving; where a miss is kept.
pub(super) struct PortIo<'p> {
    receiver: &'p mut Receiver,
    writer: &'p Writer,
    channel: &'p Shared,
    /// The next packet [`Io::receive_packet`] hands out.
    cursor: u64,
    last_miss: &'p mut Option<MissReport>,
    /// The request is about to go out, or has: from here on an unplug
    /// fails the exchange.
    sent: bool,
}

impl PortIo<'_> {
    /// Whether a port that resumes has lost its link (the device is gone).
    fn link_down(&self) -> bool {
        self.writer.counters().link_down.load(Ordering::Acquire)
    }

    /// Whether a receive error is a resuming port's event this exchange
    /// passes over: a return (the next reply comes from the device that is
    /// back; the statistics count it), or an unplug noticed before the
    /// request went out (a request to a device still gone fails to send).
    fn passes_over(&self, e: &Error) -> bool {
        match e {
            Error::Resumed { .. } => true,
            Error::Disconnected => !self.sent && !self.channel.closed.load(Ordering::Acquire),
            _ => false,
        }
    }
    /// The record at the cursor, if the reader has written it (skipping
    /// what the ring overwrote).
    fn next_record(&mut self) -> Option<crate::timing::PacketRecord> {
        let flight = &self.writer.counters().flight;
        self.cursor = self.cursor.max(flight.oldest_seq());
        while self.cursor < flight.next_seq() {
            let seq = self.cursor;
            self.cursor += 1;
            if let Some(record) = flight.get(seq) {
                return Some(record);
            }
        }
        None
    }

    /// Waits on the channel's doorbell (the reader rings it after every
    /// packet, status-only ones included) until the reader has recorded a
    /// packet past the cursor, or `until`: whether one came.
    fn wait_for_record(&mut self, until: Timestamp) -> bool {
        let flight = &self.writer.counters().flight;
        let (cursor, channel) = (self.cursor, self.channel);
        let now = Timestamp::now();
        let deadline = Deadline::after(now, until.saturating_since(now));
        let link_down = &self.writer.counters().link_down;
        let found = channel.bell.wait_until(Some(deadline), || {
            (flight.next_seq() > cursor
                || channel.closed.load(Ordering::Acquire)
                || link_down.load(Ordering::Acquire))
            .then_some(())
        });
        // Waiting drained the doorbell: a chunk that arrived meanwhile must
        // still make the descriptor readable.
        channel.bell.ring_always();
        matches!(found, Ok(Some(())))
    }
}

/// Arming the doorbell while looking for packets drains the descriptor; a
/// chunk still queued when the exchange ends must leave it readable for a
/// poll loop on the port.
impl Drop for PortIo<'_> {
    fn drop(&mut self) {
        if matches!(self.receiver.has_chunk(), Ok(true)) {
            self.channel.bell.ring_always();
        }
    }
}

impl Io for PortIo<'_> {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn receive(&mut self, until: Timestamp, now: Timestamp) -> Received<'_> {
        // Each event is reported once, so this passes over at most two.
        let mut passed = 0;
        let got = loop {
            let now = if passed == 0 { now } else { Timestamp::now() };
            let got = if until <= now {
                self.receiver.try_recv().map(|c| c.is_some())
            } else {
                self.receiver
                    .recv_timeout(until.saturating_since(now))
                    .map(|_| true)
            };
            match got {
                Err(e) if passed < 2 && self.passes_over(&e) => passed += 1,
                got => break got,
            }
        };
        // The chunk found is the receiver's head (borrowed again here: the
        // loop above cannot hand a borrow out of it).
        let got = match got {
            Ok(true) => self.receiver.head().map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        match got {
            Ok(Some(chunk)) => Received::Chunk(chunk.payload(), chunk.arrived(), Timestamp::now()),
            Ok(None) | Err(Error::TimedOut { .. }) => Received::Nothing,
            Err(Error::Overflow { lost_bytes }) => Received::Lost(lost_bytes),
            Err(e) => Received::Failed(e),
        }
    }

    fn send(&mut self, request: &[u8], budget: Duration) -> Result<()> {
        self.writer.write_all_within(request, budget)
    }

    fn mark_packets(&mut self) {
        self.cursor = self.writer.counters().flight.next_seq();
        self.sent = true;
    }

    fn receive_packet(&mut self, until: Timestamp, now: Timestamp) -> Received<'_> {
        loop {
            let Some(record) = self.next_record() else {
                if self.channel.closed.load(Ordering::Acquire) || self.link_down() {
                    // The reader is gone: no packet will come.
                    return Received::Failed(Error::Disconnected);
                }
                if until <= now {
                    // Nothing yet, and no time to wait: arm the doorbell and
                    // look once more, so that a waiter on the descriptor
                    // (the async shell) is woken by the next packet.
                    self.channel.bell.arm();
                    if self.writer.counters().flight.next_seq() > self.cursor {
                        continue;
                    }
                    return Received::Nothing;
                }
                if !self.wait_for_record(until) {
                    return Received::Nothing;
                }
                continue;
            };
            if record.is_status_only() {
                return Received::Chunk(&[], record.arrived, Timestamp::now());
            }
            // Records are written after the push, so the data is queued;
            // a record whose chunk the drain before the request took is
            // skipped (its bytes were stale).
            match self.receiver.has_chunk() {
                Ok(true) => break,
                Ok(false) => {}
                Err(Error::Overflow { lost_bytes }) => return Received::Lost(lost_bytes),
                Err(e) if self.passes_over(&e) => {}
                Err(e) => return Received::Failed(e),
            }
        }
        match self.receiver.try_recv() {
            Ok(Some(chunk)) => Received::Chunk(chunk.payload(), chunk.arrived(), Timestamp::now()),
            Ok(None) => Received::Nothing,
            Err(Error::Overflow { lost_bytes }) => Received::Lost(lost_bytes),
            Err(e) => Received::Failed(e),
        }
    }

    fn on_miss(&mut self, miss: &MissTimes) {
        let counters = self.writer.counters();
        let report = self.last_miss.get_or_insert_with(MissReport::default);
        counters.flight.snapshot_into(&mut report.record);
        report.submitted = miss.submitted;
        report.elapsed = miss.elapsed;
        report.reply_len = miss.reply_len;
        report.breakdown = super::timing::wire_clock_of(self.writer).and_then(|clock| {
            miss_breakdown(
                &ExchangeTimes {
                    submitted: miss.submitted,
                    request_len: miss.request_len,
                    reply_len: miss.reply_len,
                    taken: miss.taken,
                    record: &report.record,
                },
                &clock,
            )
        });
    }
}
