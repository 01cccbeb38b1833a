//! The engine on a virtual clock: every time is an argument, nothing sleeps.

use super::*;

fn at(ms: u64) -> Timestamp {
    Timestamp::from_nanos(1_000_000_000 + ms * 1_000_000)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_reply_in_time_completes_with_its_latency() {
    let mut engine = Engine::new(16);
    let mut x = engine
        .start(at(0), 1, ReplyEnd::Length(2), 10 * MS)
        .unwrap();
    assert_eq!(x.next(), Next::Receive { until: at(0) });
    x.on_timeout(at(0));
    assert_eq!(x.next(), Next::Send);
    assert_eq!(x.poll_transmit(at(0)), Some(10 * MS));
    x.on_sent(at(1));
    assert_eq!(x.next(), Next::Receive { until: at(10) });
    x.on_chunk(at(4), b"ab", at(3));
    assert_eq!(x.next(), Next::Done);
    let t = x.finish().unwrap();
    assert_eq!(t.bytes(), b"ab");
    assert_eq!(t.latency(), 4 * MS);
}
