//! `ReplyEnd::Silence` on the virtual line: the chip's status-only packets
//! (empty payloads in the script) prove the quiet line; the end is decided
//! at the packet that proves it, never by a timer.

use super::*;

/// One character per millisecond: the arithmetic stays readable.
const CHAR: Duration = MS;
const QUIET: Duration = Duration::from_millis(4);

/// A status-only packet every `period` ms from `from` to `to` (inclusive).
fn heartbeats(line: &mut Line, from: u64, to: u64, period: u64) {
    for t in (from..=to).step_by(period as usize) {
        line.arrives(at(t), &[]);
    }
}

/// A `Silence(QUIET)` call with a 50 ms deadline that must succeed: its
/// reply, arrival and latency.
fn framed(engine: &mut Engine, line: &mut Line) -> (Vec<u8>, Duration, Duration) {
    let t = transact(engine, line, b"req", ReplyEnd::Silence(QUIET), 50 * MS).unwrap();
    (t.bytes().to_vec(), t.arrival(), t.latency())
}

fn engine() -> Engine {
    let mut engine = Engine::new(64);
    engine.set_char_time(CHAR);
    engine
}

#[test]
fn the_reply_ends_at_the_status_packet_that_proves_the_silence() {
    let mut engine = engine();
    let mut line = Line::new(at(0));
    heartbeats(&mut line, 1, 40, 1);
    // A reply in two packets with a 3 ms gap inside (shorter than the quiet
    // time: it must not split there), then silence.
    line.arrives(at(3), b"ab").arrives(at(6), b"cd");
    let t = framed(&mut engine, &mut line);
    // Quiet proven at s when s - 6 - 1 char >= 4: the packet at 11 ms.
    assert_eq!(t, (b"abcd".to_vec(), 11 * MS, 11 * MS));
    assert_eq!(line.now, at(11), "woken by the deciding packet, not later");
}

#[test]
fn a_quiet_line_without_a_status_packet_proves_nothing() {
    let mut engine = engine();
    let mut line = Line::new(at(0));
    // Data, then no packet at all: no timer may end the reply.
    line.arrives(at(2), b"ab");
    let e = transact(
        &mut engine,
        &mut line,
        b"req",
        ReplyEnd::Silence(QUIET),
        20 * MS,
    )
    .map(|t| t.bytes().to_vec())
    .unwrap_err();
    assert!(
        matches!(e, Error::DeadlineMissed { elapsed } if elapsed == 20 * MS),
        "{e:?}"
    );
    // The shell was told the miss's times, for the breakdown.
    assert_eq!(
        line.misses,
        [MissTimes {
            submitted: at(0),
            taken: at(20),
            request_len: 3,
            reply_len: 2,
            elapsed: 20 * MS,
        }]
    );
}

#[test]
fn status_packets_before_any_reply_byte_end_nothing() {
    let mut engine = engine();
    let mut line = Line::new(at(0));
    heartbeats(&mut line, 1, 30, 1);
    line.arrives(at(15), b"x");
    let t = framed(&mut engine, &mut line);
    assert_eq!((&t.0[..], t.1), (&b"x"[..], 20 * MS));
}

#[test]
fn only_collecting_a_silence_reply_goes_packet_by_packet() {
    let mut engine = engine();
    let mut x = engine
        .start(at(0), 1, ReplyEnd::Silence(QUIET), 10 * MS)
        .unwrap();
    assert!(!x.by_packets(), "draining takes chunks");
    x.on_timeout(at(0));
    x.poll_transmit(at(0));
    x.on_sent(at(0));
    assert!(x.by_packets());
    let mut engine = Engine::new(8);
    let x = sent_at_0(&mut engine, ReplyEnd::Length(2), 10 * MS);
    assert!(!x.by_packets());
}

#[test]
fn zero_quiet_is_refused_before_anything_is_sent() {
    let mut engine = engine();
    let mut line = Line::new(at(0));
    let e = call(
        &mut engine,
        &mut line,
        ReplyEnd::Silence(Duration::ZERO),
        10 * MS,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("Silence(0)")),
        "{e}"
    );
    assert!(line.sent.is_empty());
    assert_eq!(engine.tally().transactions, 0);
}

#[test]
fn a_missed_silence_reply_is_settled_by_its_own_quiet_time() {
    let mut engine = engine();
    let mut line = Line::new(at(0));
    // The first reply trickles past its 10 ms deadline, the last byte at 12 ms.
    line.arrives(at(3), b"a")
        .arrives(at(6), b"b")
        .arrives(at(9), b"c")
        .arrives(at(12), b"d");
    let e = call(&mut engine, &mut line, ReplyEnd::Silence(QUIET), 10 * MS).unwrap_err();
    assert!(matches!(e, Error::DeadlineMissed { .. }), "{e:?}");
    // The next call settles it: the byte at 12 ms is stale, and 4 ms of quiet
    // after it (not the 10 ms deadline rule) lets the request go at 16 ms.
    line.answers(2 * MS, b"ok");
    heartbeats(&mut line, 17, 30, 1);
    let reply = call(&mut engine, &mut line, ReplyEnd::Silence(QUIET), 10 * MS).unwrap();
    assert_eq!(reply, b"ok");
    assert_eq!(line.sent[1].0, at(16));
    let tally = engine.tally();
    assert_eq!(
        (tally.misses, tally.unsettled, tally.stale_bytes),
        (1, 0, 4)
    );
}

#[test]
fn allowing_arrival_jitter_keeps_a_late_heartbeat_from_ending_a_reply_in_a_gap() {
    // A reply with a 2-character gap before its tail: the data packet of
    // "ab" was stamped at 3 ms; a reader that woke late stamped the next
    // data packet ("cd", its bytes on the wire by 8 ms) at 10 ms, and the
    // heartbeat the chip sent before it at 9 ms. Without jitter allowed,
    // 9 - 3 - 1 char = 5 ms of "proven" silence ends the reply at "ab".
    let script = |line: &mut Line| {
        line.arrives(at(3), b"ab")
            .arrives(at(9), &[])
            .arrives(at(10), b"cd");
        heartbeats(line, 11, 40, 1);
    };
    let mut plain = engine();
    let mut line = Line::new(at(0));
    script(&mut line);
    let t = framed(&mut plain, &mut line);
    assert_eq!(t.0, b"ab", "the late heartbeat split the reply");
    // Allowing 2 ms of jitter: the same heartbeat proves only 3 ms; the
    // reply ends whole, 2 ms later than it would with no jitter (at 17 ms:
    // 17 - 10 - 1 char - 2 ms >= 4 ms).
    let mut tolerant = engine().with_arrival_jitter(2 * MS);
    let mut line = Line::new(at(0));
    script(&mut line);
    let t = framed(&mut tolerant, &mut line);
    assert_eq!((&t.0[..], t.1), (&b"abcd"[..], 17 * MS));
}
