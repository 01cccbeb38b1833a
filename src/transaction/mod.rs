//! Request/reply transactions timed against a deadline.
//!
//! The logic is a sans-IO state machine, [`engine`]: it takes the time and
//! what arrived as arguments and says what to do next, so it is tested on a
//! virtual clock. [`Port::transact`](crate::Port::transact) is the thin
//! shell, [`transact`] here: it drives one [`engine::Exchange`] with the
//! port's receiver and writer (through [`Io`]) on `CLOCK_MONOTONIC`.
//!
//! An exchange discards stale input, writes the request, collects the reply
//! until [`ReplyEnd`] says it is complete, and measures the latency from
//! the moment the request was handed to the transport to the moment the
//! complete reply is in the application's hands. A reply that is not
//! complete by the deadline is a [`Error::DeadlineMissed`], counted, never
//! silent. The rest of a reply that missed (or failed) is settled by the
//! next call, within that call's own deadline.
//!
//! Which cause a miss has is decided in [`attribution`].
//!
//! The timeout model below is written once, in `timeouts.md` next to this
//! file, and shown both here and in the crate docs; the limits it names
//! (ten seconds, one second) are `MAX_SETTLE` and `MAX_QUIET` in
//! `engine/owed.rs`.
//!
#![doc = include_str!("timeouts.md")]
//!
//! [`Port::transact`]: crate::Port::transact
//! [`Statistics::deadline_misses`]: crate::Statistics::deadline_misses
//! [`Statistics::unsettled_replies`]: crate::Statistics::unsettled_replies
//! [`PortConfig::write_timeout`]: crate::PortConfig::write_timeout
//! [`PortConfig::control_timeout`]: crate::PortConfig::control_timeout
//! [`Receiver::recv_timeout`]: crate::Receiver::recv_timeout
//! [`Receiver::set_read_timeout`]: crate::Receiver::set_read_timeout
//! [`Error::InvalidConfig`]: crate::Error::InvalidConfig
//! [`Error::InvalidInput`]: crate::Error::InvalidInput
//! [`Error::TimedOut`]: crate::Error::TimedOut
//! [`StallSource`]: crate::StallSource

mod attribution;
pub(crate) mod engine;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::time::Timestamp;

pub(crate) use self::engine::Engine;
use self::engine::{Exchange, Next};

/// How a reply ends, and so how the rest of a reply that missed its
/// deadline (or failed) is told apart from the next one. The next call
/// settles it before sending, for at most its own deadline (plus measured
/// stalls of a registered stall source, ten seconds at most):
/// - with [`Length`](ReplyEnd::Length) the bytes still owed are known, and
///   exactly that many are discarded as they arrive;
/// - with a terminator or a predicate the length is unknown: input is
///   discarded until the line has been quiet for the shorter of the two
///   calls' deadlines (at most one second).
///
/// (The crate docs' [timeout model](crate#timeouts-and-deadlines) has the
/// whole rule, and how long settling can take.)
///
/// What has not come by then is given up, counted in
/// [`Statistics::unsettled_replies`](crate::Statistics::unsettled_replies),
/// and the new request goes out: a reply later than its own deadline plus
/// the next call's cannot be told from a fresh answer without protocol
/// framing (use [`Until`](ReplyEnd::Until) with a check of your protocol's
/// sequence field for that).
///
/// A [`Length`](ReplyEnd::Length) of 0, or longer than
/// [`PortConfig::reply_capacity`](crate::PortConfig::reply_capacity), is
/// refused as [`Error::InvalidInput`] before anything is sent.
#[derive(Clone, Copy)]
pub enum ReplyEnd<'a> {
    /// Exactly this many bytes.
    Length(usize),
    /// Up to and including this byte.
    Terminator(u8),
    /// When this returns true for the bytes so far (checked after each byte).
    Until(&'a dyn Fn(&[u8]) -> bool),
    /// When the line has been quiet this long after the reply's last byte
    /// (Modbus RTU's t3.5): decided from packet arrival times, the chip's
    /// status-only packets proving the silence up to their own time, never
    /// by a bare timer ([`SilenceFramer`](crate::timing::SilenceFramer)).
    /// The end is decided between `quiet + c` and `quiet + c + 2L + 2j`
    /// after the last stop bit (c: one character, L: the latency timer, j:
    /// the arrival jitter allowed for,
    /// [`PortConfig::with_arrival_jitter`](crate::PortConfig::with_arrival_jitter),
    /// default 0), plus the deciding packet's delivery. A zero duration is
    /// refused as [`Error::InvalidInput`], and so is one shorter than the
    /// `2L + 2j` packet timing blurs a gap by (the error names that floor);
    /// a kernel tty has no status packets and refuses it as
    /// [`Error::Unsupported`]. The rest of a missed silence-framed reply is
    /// settled by a quiet line of the same length (at most one second).
    Silence(Duration),
}

impl std::fmt::Debug for ReplyEnd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyEnd::Length(n) => write!(f, "Length({n})"),
            ReplyEnd::Terminator(b) => write!(f, "Terminator({b:#04x})"),
            ReplyEnd::Until(_) => f.write_str("Until(..)"),
            ReplyEnd::Silence(quiet) => write!(f, "Silence({quiet:?})"),
        }
    }
}

impl ReplyEnd<'_> {
    pub(crate) fn complete(&self, reply: &[u8]) -> bool {
        match *self {
            ReplyEnd::Length(n) => reply.len() >= n,
            ReplyEnd::Terminator(t) => reply.last() == Some(&t),
            ReplyEnd::Until(done) => done(reply),
            // The packet stream decides, not the bytes (the engine's framer).
            ReplyEnd::Silence(_) => false,
        }
    }
}

/// A completed transaction: the reply and how long it took.
#[derive(Clone, Copy, Debug)]
pub struct Transaction<'a> {
    reply: &'a [u8],
    latency: Duration,
    arrival: Duration,
}

impl Transaction<'_> {
    /// The reply bytes.
    pub fn bytes(&self) -> &[u8] {
        self.reply
    }

    /// From handing the request to the transport to the complete reply in
    /// the application's hands.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// From handing the request over to the reader seeing the reply's last
    /// packet (the part of the latency before the application woke).
    pub fn arrival(&self) -> Duration {
        self.arrival
    }
}

/// The I/O an exchange needs: a clock, the received chunks, a way to write
/// the request. The port's receiver and writer are one (in `crate::port`,
/// which this module does not know); the engine's tests have one on a
/// virtual clock.
pub(crate) trait Io {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// The next chunk, a loss notice, or nothing by `until` (at `now`; an
    /// `until` not after `now` means: only what is already there).
    fn receive(&mut self, until: Timestamp, now: Timestamp) -> Received<'_>;

    /// Writes all of `request` within `budget`.
    fn send(&mut self, request: &[u8], budget: Duration) -> Result<()>;

    /// Marks the packet stream before the request is sent: from here on
    /// [`receive_packet`](Io::receive_packet) hands out every packet.
    fn mark_packets(&mut self);

    /// The next packet after the mark, in arrival order (by `until`, at
    /// `now`, as [`receive`](Io::receive)): a data packet as its chunk, a
    /// status-only packet as an empty chunk with its arrival time.
    fn receive_packet(&mut self, until: Timestamp, now: Timestamp) -> Received<'_>;

    /// A deadline was missed: the shell keeps what the application needs
    /// to see where the time went (the miss path, not the hot path).
    fn on_miss(&mut self, miss: &MissTimes);
}

/// A missed exchange's times, for [`Io::on_miss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MissTimes {
    /// When the request was handed to the transport.
    pub(crate) submitted: Timestamp,
    /// When the exchange gave up (or had the late reply).
    pub(crate) taken: Timestamp,
    /// Request bytes.
    pub(crate) request_len: usize,
    /// Reply bytes received.
    pub(crate) reply_len: usize,
    /// Time from submission to giving up.
    pub(crate) elapsed: Duration,
}

/// What [`Io::receive`] found.
#[derive(Debug)]
pub(crate) enum Received<'a> {
    /// A chunk: its payload, the time the reader saw it arrive, and the
    /// time it was handed over (in the application's hands).
    Chunk(&'a [u8], Timestamp, Timestamp),
    /// This many bytes were lost at this point of the stream.
    Lost(u64),
    /// Nothing by the time asked.
    Nothing,
    /// The stream is over (or receiving failed).
    Failed(Error),
}

/// One transaction: see [`Port::transact`](crate::Port::transact). The
/// shell of the [`engine`]: it only moves time, chunks and the request
/// between `io` and the exchange.
pub(crate) fn transact<'e>(
    engine: &'e mut Engine,
    io: &mut impl Io,
    request: &[u8],
    reply: ReplyEnd<'_>,
    deadline: Duration,
) -> Result<Transaction<'e>> {
    let mut exchange = engine.start(io.now(), request.len(), reply, deadline)?;
    loop {
        match exchange.next() {
            Next::Done => {
                let missed = exchange.missed();
                let result = exchange.finish();
                if let (Err(Error::DeadlineMissed { .. }), Some(miss)) = (&result, missed) {
                    io.on_miss(&miss);
                }
                return result;
            }
            Next::Send => {
                io.mark_packets();
                let Some(budget) = exchange.poll_transmit(io.now()) else {
                    return exchange.finish();
                };
                match io.send(request, budget) {
                    Ok(()) => exchange.on_sent(io.now()),
                    Err(e) => exchange.on_error(io.now(), e),
                }
            }
            Next::Receive { until } => receive(&mut exchange, io, until),
        }
    }
}

fn receive(exchange: &mut Exchange<'_, '_>, io: &mut impl Io, until: Timestamp) {
    let now = io.now();
    let received = if exchange.by_packets() {
        io.receive_packet(until, now)
    } else {
        io.receive(until, now)
    };
    match received {
        Received::Chunk(payload, arrived, taken) => exchange.on_chunk(taken, payload, arrived),
        Received::Lost(bytes) => exchange.on_loss(io.now(), bytes),
        Received::Nothing => exchange.on_timeout(io.now()),
        Received::Failed(e) => exchange.on_error(io.now(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_ends() {
        assert!(ReplyEnd::Length(2).complete(b"ab"));
        assert!(!ReplyEnd::Length(3).complete(b"ab"));
        assert!(ReplyEnd::Terminator(b'\n').complete(b"ok\n"));
        assert!(!ReplyEnd::Terminator(b'\n').complete(b"ok"));
        let starts_and_ends = |r: &[u8]| r.len() >= 2 && r[0] == 0x02 && r[r.len() - 1] == 0x03;
        assert!(ReplyEnd::Until(&starts_and_ends).complete(&[0x02, 7, 0x03]));
        assert!(!ReplyEnd::Until(&starts_and_ends).complete(&[0x02, 7]));
        assert!(!ReplyEnd::Silence(Duration::from_millis(4)).complete(b"anything"));
    }
}
