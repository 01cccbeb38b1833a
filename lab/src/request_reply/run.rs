//! The measured loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::{Error, LatencySummary, ReplyEnd, Statistics};

use super::cli::Options;
use super::miss;
use super::progress;
use super::target::Opened;

/// One transaction as measured.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sample {
    /// Request submission to the reply in hand (or to giving up, if missed).
    pub(super) latency: Duration,
    /// Request submission to the reader seeing the reply (zero if missed).
    pub(super) arrival: Duration,
    pub(super) missed: bool,
}

/// What one run produced.
#[derive(Debug)]
pub(super) struct RunResult {
    pub(super) label: String,
    pub(super) samples: Vec<Sample>,
    pub(super) misses: u64,
    pub(super) wrong_replies: u64,
    pub(super) error: Option<Error>,
    pub(super) stats: Statistics,
    /// The simulated chip's own lateness (simulated runs only).
    pub(super) chip_lateness: Option<LatencySummary>,
    pub(super) interrupted: bool,
}

impl RunResult {
    /// The public summary of this run.
    pub(super) fn into_outcome(self) -> super::Outcome {
        let latency = self.stats.transaction_latency;
        super::Outcome {
            label: self.label,
            transactions: self.samples.len() as u64,
            misses: self.misses,
            wrong_replies: self.wrong_replies,
            latency,
            stats: self.stats,
            error: self.error.map(|e| e.to_string()),
            interrupted: self.interrupted,
        }
    }
}

/// Request `i` of `size` bytes: different for every `i`.
pub(crate) fn request(i: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|k| (i as usize).wrapping_mul(31).wrapping_add(k) as u8)
        .collect()
}

/// Runs transactions until the count or duration is reached, an error
/// occurs, or `stop` is set (Ctrl-C).
pub(super) fn run(opened: &mut Opened, opts: &Options, stop: &AtomicBool) -> RunResult {
    let (port, label) = (&mut opened.port, opened.label.clone());
    let count = if opts.duration.is_some() {
        u64::MAX
    } else {
        opts.iterations
    };
    let until = opts
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let bar = progress::bar(&label, until.is_none().then_some(count));
    // Samples are kept for CSV/SVG; reserving up front keeps the loop free of
    // allocation for counted runs.
    let mut samples = Vec::with_capacity(count.min(10_000_000) as usize);
    let (mut misses, mut wrong) = (0u64, 0u64);
    let mut error = None;
    let mut interrupted = false;
    let mut req = vec![0u8; opts.request_size];
    let mut i = 0u64;
    while i < count {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        req.copy_from_slice(&request(i, opts.request_size));
        match port.transact(&req, ReplyEnd::Length(opts.reply_size), opts.deadline) {
            Ok(t) => {
                let expect = Frobnicator::reply_for(&req);
                if !opts.no_check && t.bytes().iter().any(|&b| b != expect) {
                    wrong += 1;
                }
                samples.push(Sample {
                    latency: t.latency(),
                    arrival: t.arrival(),
                    missed: false,
                });
            }
            Err(Error::DeadlineMissed { elapsed }) => {
                misses += 1;
                if misses <= miss::SHOWN
                    && let Some(report) = port.last_miss()
                {
                    let text = miss::describe(misses, report);
                    bar.suspend(|| eprint!("{text}"));
                }
                samples.push(Sample {
                    latency: elapsed,
                    arrival: Duration::ZERO,
                    missed: true,
                });
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        i += 1;
        if i.is_multiple_of(progress::UPDATE_EVERY) {
            bar.set_position(i);
            bar.set_message(format!("misses {misses}"));
        }
    }
    bar.finish_and_clear();
    RunResult {
        label,
        samples,
        misses,
        wrong_replies: wrong,
        error,
        stats: port.stats(),
        chip_lateness: opened.chip.as_ref().map(|chip| chip.lateness()),
        interrupted,
    }
}
