//! A missed deadline as the tool prints it: the port's breakdown of where
//! the time went and the flight record around the miss, for the first few
//! misses of a run only (a run with many misses is not flooded).

use std::fmt::Write as _;

use ftdi_rt::timing::MissReport;

/// Misses of a run printed in detail.
pub(super) const SHOWN: u64 = 3;

/// Packets of the flight record printed per miss (the latest ones).
const PACKETS: usize = 24;

/// Miss number `n` (1-based) of the run: the breakdown, then the packets
/// from the last one before the request on (times relative to the request's
/// submission, payload size, TEMT).
pub(super) fn describe(n: u64, miss: &MissReport) -> String {
    let mut out = format!("miss {n}: {miss}\n");
    let around = miss.around();
    let shown = &around[around.len().saturating_sub(PACKETS)..];
    if shown.len() < around.len() {
        let _ = writeln!(
            out,
            "  ({} earlier packets not shown)",
            around.len() - shown.len()
        );
    }
    for p in shown {
        let (sign, offset) = if p.arrived >= miss.submitted {
            ('+', p.arrived - miss.submitted)
        } else {
            ('-', miss.submitted - p.arrived)
        };
        let what = if p.is_status_only() {
            "status only".to_string()
        } else {
            format!("{} B", p.payload_len)
        };
        let temt = if p.transmitter_empty() { ", TEMT" } else { "" };
        let _ = writeln!(out, "  #{:<8} {sign}{offset:>12?}  {what}{temt}", p.seq);
    }
    if miss.record.is_empty() {
        out.push_str("  (no flight record on this transport)\n");
    }
    out
}
