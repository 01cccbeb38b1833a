//! The summary table, the text histogram, the comparison and CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use ftdi_rt::LatencySummary;

use super::cli::Options;
use super::run::RunResult;

/// The names of the stall sources the tool registers (the machine-noise
/// probe's and the simulated chip's), in the order the summary lists them.
const MACHINE: &str = "machine";
const SIMULATED_CHIP: &str = "simulated-chip";

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// What the latency lines say when no transaction completed.
const NO_TRANSACTIONS: &str = "no completed transactions";

/// The table printed after a run.
pub(super) fn summary(r: &RunResult, opts: &Options, load: &str) -> String {
    let s = &r.stats;
    let l = &s.transaction_latency;
    let d = &s.delivery_latency;
    let mut out = String::new();
    let actual = s
        .transport
        .actual_baud
        .map_or(String::new(), |b| format!(" (actual {b})"));
    let _ = writeln!(
        out,
        "{} — {}-byte request, {}-byte reply, deadline {}, {} Bd{actual}",
        r.label,
        opts.request_size,
        opts.reply_size,
        ms(opts.deadline),
        opts.baud
    );
    let _ = writeln!(out, "  reader         {}", s.realtime);
    if let Some(faults) = s.reader_page_faults {
        let serving = faults.serving();
        let _ = writeln!(
            out,
            "  reader faults  {} minor, {} major while serving",
            serving.minor, serving.major
        );
    }
    let _ = writeln!(out, "  load           {load}");
    let _ = writeln!(
        out,
        "  transactions   {}   missed {}   wrong replies {}{}",
        r.samples.len(),
        r.misses,
        r.wrong_replies,
        if r.interrupted {
            "   (interrupted)"
        } else {
            ""
        }
    );
    if s.deadline_misses > 0 {
        let _ = write!(
            out,
            "  misses by cause: host path {}, machine stalls {}, simulated-chip stalls {}",
            s.host_misses(),
            s.explained_by(MACHINE),
            s.explained_by(SIMULATED_CHIP)
        );
        // Any other source a future caller registers, after the usual two.
        for (source, n) in &s.explained_misses {
            if source != MACHINE && source != SIMULATED_CHIP {
                let _ = write!(out, ", {source} stalls {n}");
            }
        }
        let _ = writeln!(out);
    }
    // Percentiles of nothing would print as zeros and read as a perfect run.
    if l.count == 0 {
        let _ = writeln!(out, "  latency        {NO_TRANSACTIONS}");
    } else {
        let _ = writeln!(
            out,
            "  latency        p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
    }
    if d.count == 0 {
        let _ = writeln!(out, "  delivery       nothing received");
    } else {
        let _ = writeln!(
            out,
            "  delivery       p50 {}  p99 {}  p99.9 {}  max {}",
            ms(d.p50),
            ms(d.p99),
            ms(d.p999),
            ms(d.max)
        );
    }
    let _ = writeln!(
        out,
        "  packets        {} ({} status-only), line errors {}, overflows {}, stalls {}, stale bytes {}, \
         unsettled replies {}",
        s.packets,
        s.status_only_packets,
        s.line_errors.total(),
        s.overflows,
        s.stalls,
        s.stale_bytes,
        s.unsettled_replies
    );
    if let Some(chip) = &r.chip_lateness {
        let _ = writeln!(
            out,
            "  chip lateness  p99 {}  max {} (the simulation's own, not host latency)",
            ms(chip.p99),
            ms(chip.max)
        );
    }
    for note in &s.transport.notes {
        let _ = writeln!(out, "  note           {note}");
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "  ERROR          {e}");
    }
    out
}

/// A text histogram of the latencies in `buckets` equal slices up to past
/// the deadline, with the deadline marked.
pub(super) fn histogram(r: &RunResult, deadline: Duration) -> String {
    const WIDTH: usize = 50;
    if r.samples.is_empty() {
        return format!("  ({NO_TRANSACTIONS})\n");
    }
    let max = r
        .samples
        .iter()
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let top = max.max(deadline).as_secs_f64() * 1.05;
    let buckets = 20;
    let step = top / buckets as f64;
    let mut counts = vec![0u64; buckets];
    for s in &r.samples {
        let b = ((s.latency.as_secs_f64() / step) as usize).min(buckets - 1);
        counts[b] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut out = String::new();
    let mut marked = false;
    for (i, &c) in counts.iter().enumerate() {
        let lo = i as f64 * step;
        if !marked && lo + step > deadline.as_secs_f64() {
            let _ = writeln!(out, "  {:>9} ---- deadline {} ----", "", ms(deadline));
            marked = true;
        }
        // Any non-zero bucket shows at least one mark: a single miss must be visible.
        let bar = if c == 0 {
            0
        } else {
            ((c as f64 / peak as f64) * WIDTH as f64).ceil() as usize
        };
        let _ = writeln!(
            out,
            "  {:>6.3} ms |{:<WIDTH$}| {c}",
            lo * 1e3,
            "#".repeat(bar)
        );
    }
    out
}

/// Two runs side by side, with B/A for each percentile.
pub(super) fn compare(a: &RunResult, b: &RunResult) -> String {
    let (la, lb) = (&a.stats.transaction_latency, &b.stats.transaction_latency);
    let row = |name: &str, f: fn(&LatencySummary) -> Duration| {
        let (x, y) = (f(la), f(lb));
        format!(
            "  {name:<8} {:>14} {:>14} {:>9.2}x\n",
            ms(x),
            ms(y),
            y.as_secs_f64() / x.as_secs_f64().max(1e-12)
        )
    };
    let mut out = String::new();
    for r in [a, b] {
        if r.stats.transaction_latency.count == 0 {
            let _ = writeln!(out, "  {}: {NO_TRANSACTIONS}, nothing to compare", r.label);
        }
    }
    if !out.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<8} {:>14} {:>14} {:>10}",
        "",
        short(&a.label),
        short(&b.label),
        "B / A"
    );
    out += &row("p50", |l| l.p50);
    out += &row("p90", |l| l.p90);
    out += &row("p99", |l| l.p99);
    out += &row("p99.9", |l| l.p999);
    out += &row("max", |l| l.max);
    let _ = writeln!(out, "  {:<8} {:>14} {:>14}", "missed", a.misses, b.misses);
    let _ = writeln!(
        out,
        "  {:<8} {:>14} {:>14}",
        "host",
        a.stats.host_misses(),
        b.stats.host_misses()
    );
    let _ = writeln!(
        out,
        "  {:<8} {:>14} {:>14}",
        "of",
        a.samples.len(),
        b.samples.len()
    );
    out
}

pub(super) fn short(label: &str) -> String {
    label.split(':').next().unwrap_or(label).to_string()
}

/// Raw samples as CSV: run, index, latency and arrival in µs, missed.
pub(super) fn write_csv(path: &Path, runs: &[&RunResult]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "run,index,latency_us,arrival_us,missed")?;
    for r in runs {
        for (i, s) in r.samples.iter().enumerate() {
            writeln!(
                f,
                "{},{i},{:.3},{:.3},{}",
                short(&r.label),
                s.latency.as_secs_f64() * 1e6,
                s.arrival.as_secs_f64() * 1e6,
                u8::from(s.missed)
            )?;
        }
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
    use ftdi_rt::{Port, PortConfig};

    use super::*;

    /// A run in which nothing completed, with a real port's statistics.
    fn empty_run(label: &str) -> RunResult {
        let chip = SimChip::new(Frobnicator::new(Duration::ZERO), SimConfig::default()).unwrap();
        let port = Port::open_sim(chip, &PortConfig::default().best_effort()).unwrap();
        RunResult {
            label: label.into(),
            samples: Vec::new(),
            misses: 0,
            wrong_replies: 0,
            error: None,
            stats: port.stats(),
            chip_lateness: None,
            interrupted: false,
        }
    }

    // Issue 13 item 13: no all-zero figures for a run with nothing in it.
    #[test]
    fn a_run_without_completed_transactions_says_so() {
        let opts = Options::parse_from(["request_reply"]);
        let (a, b) = (empty_run("a"), empty_run("b"));
        let text = summary(&a, &opts, "idle");
        assert!(
            text.contains("latency        no completed transactions"),
            "{text}"
        );
        assert!(!text.contains("p50 0.000 ms"), "{text}");
        let hist = histogram(&a, opts.deadline);
        assert!(hist.contains("no completed transactions"), "{hist}");
        let cmp = compare(&a, &b);
        assert!(cmp.contains("nothing to compare"), "{cmp}");
        assert!(!cmp.contains("p50"), "{cmp}");
    }
}
