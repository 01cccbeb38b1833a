//! The port's timing features: the TX-drained instant, the wire clock that
//! dates received chunks, and the flight recorder (see [`crate::timing`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Port, Writer};
use crate::error::{Error, Result};
use crate::stats::TransportKind;
use crate::time::{Deadline, Timestamp};
use crate::timing::{DEFAULT_TRANSPORT_SLACK, DrainWatch, PacketRecord, WireClock};

impl Port {
    /// Writes `data`, then waits until the chip reports its transmitter
    /// empty (TEMT in the status bytes of a bulk-IN packet) after those
    /// bytes, and returns the arrival time of that report: the instant to
    /// turn an RS-485 driver around (drop RTS/DE) or start a t3.5 gap.
    ///
    /// Resolution: the chip sends a status packet at least every latency
    /// period while the reader has an IN transfer pending, so the returned
    /// instant lies after the last stop bit by at most one latency period
    /// plus the USB and reader delay (checked in virtual time against the
    /// simulated chip's wire record: `cargo test --test timing drained`).
    /// A report only counts if the reader processed it after the write
    /// completed and it arrived no earlier than the bytes' wire time after
    /// the write was handed over (see [`DrainWatch`]).
    ///
    /// While it waits it takes no received data: chunks stay queued for the
    /// next receive. Its wait uses the receiver's doorbell, so a poll loop
    /// on the port's file descriptor is woken once afterwards.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a kernel tty (no status stream);
    /// [`Error::TimedOut`] if the report did not come within `deadline`
    /// (flow control holding the transmitter, a stalled device);
    /// [`Error::Disconnected`]; the write's errors.
    pub fn write_drained(&mut self, data: &[u8], deadline: Duration) -> Result<Timestamp> {
        let submitted = Timestamp::now();
        let until = Deadline::after(submitted, deadline);
        if self.writer.transport_info().kind == TransportKind::Tty {
            return Err(Error::Unsupported {
                setting: "the TX-drained instant (write_drained)".into(),
                transport: "a kernel tty".into(),
                reason: "the tty delivers no status bytes; use tcdrain, or open the \
                         adapter with Port::open_usb"
                    .into(),
            });
        }
        self.writer
            .write_all_within(data, until.remaining(Timestamp::now()))?;
        // On USB a write returns once its bytes are queued (written behind):
        // watch the status stream only from when the chip has them, so a
        // transmitter-empty report from before cannot pass for the drain.
        self.writer
            .flush_within(until.remaining(Timestamp::now()))?;
        let counters = self.writer.counters();
        let char_time = Duration::from_nanos(counters.char_time_ns.load(Ordering::Relaxed));
        let watch = DrainWatch::new(submitted, data.len(), char_time, counters.flight.next_seq());
        self.watch_packets_until(watch.from_seq(), until, |p| watch.on_packet(p))
            .map_err(|e| match e {
                Error::TimedOut { .. } => Error::TimedOut {
                    operation: "waiting for the transmitter to drain",
                    after: deadline,
                },
                other => other,
            })
    }

    /// The sequence number the reader will give the next packet (see
    /// [`PacketRecord::seq`]): take it before writing a request, then
    /// [`watch_packets`](Port::watch_packets) from it.
    pub fn next_packet_seq(&self) -> u64 {
        self.writer.counters().flight.next_seq()
    }

    /// Hands every packet the reader records from sequence number
    /// `from_seq` on (status-only heartbeats included, in order) to `f`,
    /// waiting for more as they come, until `f` returns something — how a
    /// sans-IO decision such as [`SilenceFramer`](crate::timing::SilenceFramer)
    /// or [`DrainWatch`] is driven by the packet stream. Received data stays
    /// queued for the next receive. Packets the flight recorder has already
    /// overwritten (more than [`DEFAULT_FLIGHT_RECORDS`](crate::timing::DEFAULT_FLIGHT_RECORDS)
    /// behind) are skipped.
    ///
    /// # Errors
    /// [`Error::TimedOut`] if `f` decided nothing within `timeout`;
    /// [`Error::Disconnected`].
    pub fn watch_packets<T>(
        &mut self,
        from_seq: u64,
        timeout: Duration,
        f: impl FnMut(&PacketRecord) -> Option<T>,
    ) -> Result<T> {
        let until = Deadline::from_now(timeout);
        self.watch_packets_until(from_seq, until, f)
            .map_err(|e| match e {
                Error::TimedOut { .. } => Error::TimedOut {
                    operation: "watching packets",
                    after: timeout,
                },
                other => other,
            })
    }

    fn watch_packets_until<T>(
        &mut self,
        from_seq: u64,
        until: Deadline,
        mut f: impl FnMut(&PacketRecord) -> Option<T>,
    ) -> Result<T> {
        let flight = &self.writer.counters().flight;
        let mut cursor = from_seq;
        let bell = &self.channel.bell;
        // The reader rings the receiver's doorbell after every completion,
        // status-only ones included: one wakeup per packet while we wait.
        let found = bell.wait_until(Some(until), || {
            let end = flight.next_seq();
            cursor = cursor.max(flight.oldest_seq());
            while cursor < end {
                let seq = cursor;
                cursor += 1;
                if let Some(found) = flight.get(seq).and_then(|p| f(&p)) {
                    return Some(Ok(found));
                }
            }
            self.channel
                .closed
                .load(Ordering::Acquire)
                .then_some(Err(Error::Disconnected))
        });
        // Waiting armed and drained the receiver's doorbell: a chunk that
        // arrived meanwhile must still make the descriptor readable.
        bell.ring_always();
        match found? {
            Some(outcome) => outcome,
            None => Err(Error::TimedOut {
                operation: "watching packets",
                after: until.remaining(Timestamp::now()),
            }),
        }
    }

    /// The timing of the line as the port has it set up (character time,
    /// latency timer, [`DEFAULT_TRANSPORT_SLACK`]), to date received chunks
    /// with [`Chunk::wire_window`](crate::Chunk::wire_window). `None` on a
    /// kernel tty (its buffering follows no latency-timer rule) and before a
    /// baud rate is known.
    pub fn wire_clock(&self) -> Option<WireClock> {
        wire_clock_of(&self.writer)
    }

    /// The last packets the reader saw (arrival, payload size, status),
    /// oldest first — what the line did around a missed deadline. Copies
    /// the recorder (allocates; the reader is never held up by it).
    pub fn flight_record(&self) -> Vec<PacketRecord> {
        self.writer.counters().flight.snapshot()
    }
}

/// The wire clock of the line `writer` drives (see [`Port::wire_clock`]).
pub(super) fn wire_clock_of(writer: &Writer) -> Option<WireClock> {
    if writer.transport_info().kind == TransportKind::Tty {
        return None;
    }
    let c = writer.counters();
    let char_ns = c.char_time_ns.load(Ordering::Relaxed);
    let latency_ms = c.latency_timer_ms.load(Ordering::Relaxed);
    (char_ns > 0).then(|| {
        WireClock::new(
            Duration::from_nanos(char_ns),
            Duration::from_millis(u64::from(latency_ms)),
        )
        .with_transport_slack(DEFAULT_TRANSPORT_SLACK)
    })
}
