//! The engine and its shell on a virtual clock: every time is an argument,
//! the "device" is a script of chunks at given times, nothing sleeps and
//! no wall clock is read. Each test pins one rule of the timeout model
//! (module docs of `crate::transaction`) or one item of issue 13.

use std::collections::VecDeque;

use super::owed::{MAX_QUIET, MAX_SETTLE};
use super::*;
use crate::transaction::{Io, MissTimes, Received, transact};

mod silence;

const MS: Duration = Duration::from_millis(1);

/// `ms` milliseconds after an arbitrary origin of the virtual clock.
fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000).add(Duration::from_millis(ms))
}

/// A virtual line: chunks arrive at scripted times, or in answer to a
/// request after a scripted delay; the clock moves only when the shell
/// waits (to the next arrival, or to the time it asked to be woken).
struct Line {
    now: Timestamp,
    /// (arrival, payload), in arrival order.
    incoming: VecDeque<(Timestamp, Vec<u8>)>,
    /// Answers to requests, one per request: (delay after the write, payload).
    answers: VecDeque<(Duration, Vec<u8>)>,
    /// How long each write takes.
    write_takes: Duration,
    /// Requests written, with when.
    sent: Vec<(Timestamp, Vec<u8>)>,
    /// The chunk handed out last (what `Received::Chunk` borrows).
    taken: Vec<u8>,
    /// The misses the shell reported.
    misses: Vec<MissTimes>,
}

impl Line {
    fn new(now: Timestamp) -> Line {
        Line {
            now,
            incoming: VecDeque::new(),
            answers: VecDeque::new(),
            write_takes: Duration::ZERO,
            sent: Vec::new(),
            taken: Vec::new(),
            misses: Vec::new(),
        }
    }

    /// `payload` arrives at `when`.
    fn arrives(&mut self, when: Timestamp, payload: &[u8]) -> &mut Line {
        self.incoming.push_back((when, payload.to_vec()));
        self.incoming.make_contiguous().sort_by_key(|(t, _)| *t);
        self
    }

    /// The next request is answered with `payload`, `after` its write.
    fn answers(&mut self, after: Duration, payload: &[u8]) -> &mut Line {
        self.answers.push_back((after, payload.to_vec()));
        self
    }
}

impl Io for Line {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn receive(&mut self, until: Timestamp, now: Timestamp) -> Received<'_> {
        // Status-only packets (empty payloads) are no chunks.
        while let Some((when, payload)) = self.incoming.front()
            && payload.is_empty()
            && *when <= until.max(now)
        {
            self.now = self.now.max(*when);
            self.incoming.pop_front();
        }
        self.receive_packet(until, now)
    }

    fn mark_packets(&mut self) {}

    fn receive_packet(&mut self, until: Timestamp, now: Timestamp) -> Received<'_> {
        match self.incoming.front() {
            Some((when, _)) if *when <= until.max(now) => {
                let (when, payload) = self.incoming.pop_front().unwrap_or_default();
                self.now = self.now.max(when);
                self.taken = payload;
                Received::Chunk(&self.taken, when, self.now)
            }
            _ => {
                self.now = self.now.max(until);
                Received::Nothing
            }
        }
    }

    fn send(&mut self, request: &[u8], budget: Duration) -> Result<()> {
        if self.write_takes > budget {
            self.now = self.now.add(budget);
            return Err(Error::TimedOut {
                operation: "write",
                after: budget,
            });
        }
        self.now = self.now.add(self.write_takes);
        self.sent.push((self.now, request.to_vec()));
        if let Some((after, payload)) = self.answers.pop_front() {
            let when = self.now.add(after);
            self.arrives(when, &payload);
        }
        Ok(())
    }

    fn on_miss(&mut self, miss: &MissTimes) {
        self.misses.push(*miss);
    }
}

/// One call of the shell on `line`; the reply copied out.
fn call(
    engine: &mut Engine,
    line: &mut Line,
    reply: ReplyEnd<'_>,
    deadline: Duration,
) -> Result<Vec<u8>> {
    transact(engine, line, b"req", reply, deadline).map(|t| t.bytes().to_vec())
}

/// An exchange whose request was handed over and taken at 0 ms (nothing
/// pending, nothing owed before it).
fn sent_at_0<'e, 'r>(
    engine: &'e mut Engine,
    reply: ReplyEnd<'r>,
    deadline: Duration,
) -> Exchange<'e, 'r> {
    let mut x = engine.start(at(0), 1, reply, deadline).unwrap();
    x.on_timeout(at(0));
    assert_eq!(x.poll_transmit(at(0)), Some(deadline));
    x.on_sent(at(0));
    x
}

#[test]
fn the_exchange_says_when_it_next_needs_waking() {
    let mut engine = Engine::new(16);
    let mut x = engine
        .start(at(0), 1, ReplyEnd::Length(2), 10 * MS)
        .unwrap();
    // First only what is already there (no waiting), then the request.
    assert_eq!(x.next(), Next::Receive { until: at(0) });
    x.on_timeout(at(0));
    assert_eq!(x.next(), Next::Send);
    assert_eq!(x.poll_transmit(at(0)), Some(10 * MS));
    // The deadline runs from the hand-over, the write inside it.
    x.on_sent(at(1));
    assert_eq!(x.next(), Next::Receive { until: at(10) });
    x.on_chunk(at(4), b"a", at(3));
    assert_eq!(x.next(), Next::Receive { until: at(10) });
    x.on_chunk(at(6), b"b", at(5));
    assert_eq!(x.next(), Next::Done);
    let t = x.finish().unwrap();
    assert_eq!(t.bytes(), b"ab");
    assert_eq!(t.latency(), 6 * MS);
    assert_eq!(t.arrival(), 5 * MS);
    let tally = engine.tally();
    assert_eq!(
        (tally.transactions, tally.misses, tally.stale_bytes),
        (1, 0, 0)
    );
}

#[test]
fn input_before_the_request_and_after_the_reply_is_stale() {
    let mut engine = Engine::new(16);
    let mut line = Line::new(at(0));
    line.arrives(at(0), b"noise").answers(2 * MS, b"ok\nextra");
    let reply = call(&mut engine, &mut line, ReplyEnd::Terminator(b'\n'), 10 * MS);
    assert_eq!(reply.unwrap(), b"ok\n");
    assert_eq!(engine.tally().stale_bytes, 5 + 5);
}

#[test]
fn a_reply_not_complete_by_the_deadline_is_a_miss_at_the_deadline() {
    let mut engine = Engine::new(16);
    let mut line = Line::new(at(0));
    line.answers(20 * MS, b"late");
    let e = call(&mut engine, &mut line, ReplyEnd::Length(4), 10 * MS).unwrap_err();
    assert!(
        matches!(e, Error::DeadlineMissed { elapsed } if elapsed == 10 * MS),
        "{e:?}"
    );
    // The shell was woken exactly at the deadline, not later.
    assert_eq!(line.now, at(10));
    assert_eq!(engine.tally().misses, 1);
}

#[test]
fn a_reply_complete_but_handed_over_late_is_a_miss_with_nothing_owed() {
    let mut engine = Engine::new(16);
    let mut x = sent_at_0(&mut engine, ReplyEnd::Length(1), 10 * MS);
    // Arrived in time, but the application only got it at 12 ms.
    x.on_chunk(at(12), b"x", at(9));
    let e = x.finish().unwrap_err();
    assert!(matches!(e, Error::DeadlineMissed { elapsed } if elapsed == 12 * MS));
    assert!(engine.owed.is_none());
    assert_eq!(engine.tally().misses, 1);
}

// Issue 13 item 3: the rest of a missed reply is awaited for at most the
// new call's own deadline, then given up and counted, and the new request
// goes out.
#[test]
fn settling_is_bounded_by_the_new_calls_own_deadline() {
    let mut engine = Engine::new(16);
    let mut line = Line::new(at(0));
    line.answers(Duration::MAX, b"never");
    let slow = Duration::from_secs(60);
    call(&mut engine, &mut line, ReplyEnd::Length(5), slow).unwrap_err();
    let missed_at = line.now;
    line.answers(MS, b"y");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS);
    assert_eq!(reply.unwrap(), b"y");
    // 5 ms of settling, then the write: not ten minutes of the old deadline.
    assert_eq!(line.sent[1].0, missed_at.add(5 * MS));
    let tally = engine.tally();
    assert_eq!(
        (tally.transactions, tally.misses, tally.unsettled),
        (2, 1, 1)
    );
}

#[test]
fn a_reply_given_up_on_is_never_taken_for_the_next_one() {
    let mut engine = Engine::new(16);
    // One character a millisecond: the 3-byte request is on the wire for 3 ms.
    engine.set_char_time(MS);
    let mut line = Line::new(at(0));
    line.answers(11 * MS, b"a");
    call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS).unwrap_err();
    // Settling gives up at 10 ms and sends; the old reply comes at 11 ms,
    // before the new request has crossed the wire (13 ms): it is stale.
    line.answers(4 * MS, b"b");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS);
    assert_eq!(reply.unwrap(), b"b");
    assert_eq!(line.sent[1].0, at(10));
    let tally = engine.tally();
    assert_eq!(
        (tally.misses, tally.unsettled, tally.stale_bytes),
        (1, 1, 1)
    );
}

#[test]
fn settling_with_a_known_length_ends_as_soon_as_the_owed_bytes_are_in() {
    let mut engine = Engine::new(16);
    let mut line = Line::new(at(0));
    line.answers(7 * MS, b"abcd");
    call(&mut engine, &mut line, ReplyEnd::Length(4), 5 * MS).unwrap_err();
    assert_eq!(line.now, at(5));
    line.answers(MS, b"z");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 50 * MS);
    assert_eq!(reply.unwrap(), b"z");
    // The late reply came at 7 ms; the request went out then, not at 55 ms.
    assert_eq!(line.sent[1].0, at(7));
    let tally = engine.tally();
    assert_eq!((tally.stale_bytes, tally.unsettled), (4, 0));
}

#[test]
fn settling_an_unknown_length_waits_for_a_quiet_line_of_the_shorter_deadline() {
    let mut engine = Engine::new(16);
    let mut line = Line::new(at(0));
    line.answers(Duration::MAX, b"");
    call(&mut engine, &mut line, ReplyEnd::Terminator(b'\n'), 4 * MS).unwrap_err();
    assert_eq!(line.now, at(4));
    // Late bytes at 5 and 6 ms: quiet from 6 ms, for min(4, 50) ms.
    line.arrives(at(5), b"la").arrives(at(6), b"te\n");
    line.answers(MS, b"ok\n");
    let reply = call(&mut engine, &mut line, ReplyEnd::Terminator(b'\n'), 50 * MS);
    assert_eq!(reply.unwrap(), b"ok\n");
    assert_eq!(line.sent[1].0, at(10));
    let tally = engine.tally();
    assert_eq!((tally.stale_bytes, tally.unsettled), (5, 0));
}

// Issue 13 item 1: no deadline (`Duration::MAX`) after a failed call: no
// overflow anywhere, and the settling bound saturates.
#[test]
fn duration_max_after_a_failed_call_does_not_overflow() {
    let mut engine = Engine::new(4);
    let mut line = Line::new(at(0));
    line.answers(MS, b"0123456789");
    let e = call(
        &mut engine,
        &mut line,
        ReplyEnd::Terminator(0),
        Duration::MAX,
    )
    .unwrap_err();
    assert!(matches!(e, Error::ReplyTooLong { capacity: 4 }), "{e:?}");
    line.arrives(at(3), b"more");
    line.answers(MS, b"ok\n");
    let reply = call(
        &mut engine,
        &mut line,
        ReplyEnd::Terminator(b'\n'),
        Duration::MAX,
    );
    assert_eq!(reply.unwrap(), b"ok\n");
    // Quiet for MAX_QUIET after the last late byte (3 ms), then sent.
    assert_eq!(line.sent[1].0, at(3).add(MAX_QUIET));
    assert_eq!(engine.tally().unsettled, 0);
}

// With no deadline on either call and a known length that never comes,
// settling still ends (MAX_SETTLE) and the request goes out.
#[test]
fn no_deadline_after_a_reply_that_never_comes_still_sends() {
    let mut engine = Engine::new(8);
    let mut line = Line::new(at(0));
    let mut x = sent_at_0(&mut engine, ReplyEnd::Length(4), Duration::MAX);
    x.on_error(at(1), pipe_error());
    assert!(x.finish().is_err());
    line.answers(MS, b"y");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), Duration::MAX);
    assert_eq!(reply.unwrap(), b"y");
    assert_eq!(line.sent[0].0, at(0).add(MAX_SETTLE));
    assert_eq!(engine.tally().unsettled, 1);
}

// Issue 13 item 2: after a reply overflows the buffer, the rest of its
// chunk is stale and no longer owed.
#[test]
fn the_rest_of_an_overflowing_chunk_is_stale_and_not_owed() {
    let mut engine = Engine::new(4);
    let mut line = Line::new(at(0));
    line.answers(MS, b"0123456789");
    let e = call(&mut engine, &mut line, ReplyEnd::Length(4), 10 * MS);
    // Length(4) fits; a Length(10) does not and is refused up front, so
    // overflow needs a reply end that is not a length.
    assert_eq!(e.unwrap(), b"0123");
    assert_eq!(engine.tally().stale_bytes, 6);

    let mut engine = Engine::new(4);
    let mut line = Line::new(at(0));
    line.answers(MS, b"0123456789");
    let e = call(&mut engine, &mut line, ReplyEnd::Terminator(b'\n'), 10 * MS).unwrap_err();
    assert!(matches!(e, Error::ReplyTooLong { capacity: 4 }), "{e:?}");
    assert_eq!(engine.tally().stale_bytes, 10, "every byte of the chunk");
}

#[test]
fn a_length_reply_that_overflows_owes_only_what_did_not_arrive() {
    let mut engine = Engine::new(4);
    let mut x = sent_at_0(&mut engine, ReplyEnd::Length(4), 10 * MS);
    x.on_loss(at(1), 3);
    let e = x.finish().unwrap_err();
    assert!(matches!(e, Error::Overflow { lost_bytes: 3 }), "{e:?}");
    // Three of the four bytes were lost: one is still to come.
    assert_eq!(engine.owed.map(|o| o.bytes), Some(Some(1)));
}

// Issue 13 items 5 and 6: refused before anything is counted or sent.
#[test]
fn impossible_calls_are_invalid_input_and_not_counted() {
    let mut engine = Engine::new(8);
    for (len, end, deadline) in [
        (1, ReplyEnd::Length(0), MS),
        (1, ReplyEnd::Length(9), MS),
        (1, ReplyEnd::Length(usize::MAX), MS),
        (1, ReplyEnd::Length(1), Duration::ZERO),
        (0, ReplyEnd::Length(1), MS),
    ] {
        let e = engine.start(at(0), len, end, deadline).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{end:?}: {e}");
    }
    assert_eq!(engine.tally(), Tally::default());
    assert!(engine.start(at(0), 1, ReplyEnd::Length(8), MS).is_ok());
}

#[test]
fn a_write_that_takes_the_whole_deadline_is_a_miss() {
    let mut engine = Engine::new(8);
    let mut line = Line::new(at(0));
    line.write_takes = 20 * MS;
    let e = call(&mut engine, &mut line, ReplyEnd::Length(1), 10 * MS).unwrap_err();
    assert!(matches!(e, Error::DeadlineMissed { .. }), "{e:?}");
    let tally = engine.tally();
    assert_eq!((tally.transactions, tally.misses), (1, 1));
    assert!(
        engine.owed.is_some(),
        "the device may answer the part it got"
    );
}

#[test]
fn a_transport_failure_is_returned_and_its_reply_settled_next_time() {
    let mut engine = Engine::new(8);
    let mut x = sent_at_0(&mut engine, ReplyEnd::Length(2), 10 * MS);
    x.on_chunk(at(1), b"a", at(1));
    x.on_error(at(2), pipe_error());
    assert!(matches!(x.finish(), Err(Error::Usb { .. })));
    let tally = engine.tally();
    assert_eq!((tally.misses, tally.stale_bytes), (0, 1));
    assert_eq!(engine.owed.map(|o| o.bytes), Some(Some(1)));
}

/// A transport failure that leaves the device in place.
fn pipe_error() -> Error {
    Error::Usb {
        operation: "bulk IN",
        reason: "pipe error".into(),
    }
}

// The device that owed the rest of a reply is gone: a port that resumes
// talks to one that came back and owes nothing, so the next call sends at
// once instead of settling.
#[test]
fn a_disconnect_leaves_nothing_owed() {
    let mut engine = Engine::new(8);
    let mut line = Line::new(at(0));
    let mut x = sent_at_0(&mut engine, ReplyEnd::Length(2), 10 * MS);
    x.on_chunk(at(1), b"a", at(1));
    x.on_error(at(2), Error::Disconnected);
    assert!(matches!(x.finish(), Err(Error::Disconnected)));
    assert!(engine.owed.is_none());
    line.now = at(5);
    line.answers(MS, b"y");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 10 * MS);
    assert_eq!(reply.unwrap(), b"y");
    assert_eq!(line.sent[0].0, at(5), "sent at once, nothing settled");
    assert_eq!(engine.tally().unsettled, 0);
}

#[derive(Debug)]
struct StalledBetween(Timestamp, Timestamp);

impl StallSource for StalledBetween {
    fn name(&self) -> &str {
        "fake"
    }
    fn stalls_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        _now: Timestamp,
        each: &mut dyn FnMut(Timestamp, Timestamp),
    ) {
        let (start, end) = (self.0.max(from), self.1.min(to));
        if start < end {
            each(start, end);
        }
    }
}

#[test]
fn a_late_reply_that_a_stall_explains_is_credited_to_the_stall() {
    let mut engine = Engine::new(8);
    engine.discount_stalls(Arc::new(StalledBetween(at(1), at(9))));
    let mut line = Line::new(at(0));
    // 12 ms late reply, 8 ms of it stalled: 4 ms without, in time for 5 ms.
    line.answers(12 * MS, b"x");
    call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS).unwrap_err();
    assert!(engine.explained_misses().iter().all(|(_, n)| *n == 0));
    line.answers(MS, b"y");
    assert_eq!(
        call(&mut engine, &mut line, ReplyEnd::Length(1), 50 * MS).unwrap(),
        b"y"
    );
    assert_eq!(engine.explained_misses(), vec![("fake".to_string(), 1)]);
}

// A reply a measured stall delayed is still the old reply: settling waits
// the stall out too (capped by MAX_SETTLE), so it is not taken as the next.
#[test]
fn measured_stalls_extend_settling_but_not_past_max_settle() {
    let mut engine = Engine::new(8);
    // The device was stalled from 2 to 12 ms.
    engine.discount_stalls(Arc::new(StalledBetween(at(2), at(12))));
    let mut line = Line::new(at(0));
    line.answers(14 * MS, b"x");
    call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS).unwrap_err();
    assert_eq!(line.now, at(5));
    // Without the stall settling would end at 10 ms and take the late "x"
    // (at 14 ms) as the answer; with 10 ms of stall it waits to 20 ms.
    line.answers(MS, b"y");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS);
    assert_eq!(reply.unwrap(), b"y");
    assert_eq!(line.sent[1].0, at(14), "sent once the late reply was in");
    assert_eq!(engine.tally().unsettled, 0);

    // A stall without end moves the bound only up to MAX_SETTLE.
    let mut engine = Engine::new(8);
    engine.discount_stalls(Arc::new(StalledBetween(at(0), at(u64::MAX / 2_000_000))));
    let mut line = Line::new(at(0));
    line.answers(Duration::MAX, b"");
    call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS).unwrap_err();
    let second_call = line.now;
    line.answers(MS, b"y");
    let reply = call(&mut engine, &mut line, ReplyEnd::Length(1), 5 * MS);
    assert_eq!(reply.unwrap(), b"y");
    assert_eq!(line.sent[1].0, second_call.add(MAX_SETTLE));
    assert_eq!(engine.tally().unsettled, 1);
}
