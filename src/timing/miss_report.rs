//! What the application sees of a missed deadline afterwards: when, the
//! breakdown of where the time went, and the flight record around it.

use std::fmt;
use std::time::Duration;

use super::breakdown::MissBreakdown;
use super::recorder::PacketRecord;
use crate::time::Timestamp;

/// The last deadline a port's [`transact`](crate::Port::transact) missed
/// ([`Port::last_miss`](crate::Port::last_miss)): kept by the port when it
/// returns [`Error::DeadlineMissed`](crate::Error::DeadlineMissed) (the
/// error itself stays small and allocation-free).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissReport {
    /// When the request was handed to the transport.
    pub submitted: Timestamp,
    /// Time from submission to giving up (or to the late reply).
    pub elapsed: Duration,
    /// Reply bytes received by then.
    pub reply_len: usize,
    /// Where the time went; `None` when no reply packet came in the window
    /// (the device did not answer in time, or on a kernel tty, which has no
    /// packet timing).
    pub breakdown: Option<MissBreakdown>,
    /// The flight record when the miss was decided (oldest first): the
    /// packets before and during the exchange.
    pub record: Vec<PacketRecord>,
}

impl MissReport {
    /// The packets from the last one before submission on: the exchange's
    /// own part of the flight record.
    pub fn around(&self) -> &[PacketRecord] {
        let first = self
            .record
            .iter()
            .rposition(|p| p.arrived < self.submitted)
            .unwrap_or(0);
        &self.record[first..]
    }
}

impl fmt::Display for MissReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline missed after {:?} with {} reply bytes",
            self.elapsed, self.reply_len
        )?;
        match &self.breakdown {
            Some(b) => write!(f, ": {b}"),
            None => f.write_str(": no reply packet came in time to break down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn around_starts_at_the_last_packet_before_submission() {
        let p = |seq: u64, us: u64| PacketRecord {
            seq,
            arrived: Timestamp::from_nanos(us * 1000),
            payload_len: 0,
            status: None,
        };
        let report = MissReport {
            submitted: Timestamp::from_nanos(2_500_000),
            elapsed: Duration::from_millis(3),
            reply_len: 0,
            breakdown: None,
            record: vec![p(0, 1000), p(1, 2000), p(2, 3000)],
        };
        assert_eq!(report.around().first().map(|p| p.seq), Some(1));
        assert!(report.to_string().contains("no reply packet"), "{report}");
    }
}
