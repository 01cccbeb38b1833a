//! `ftdi-rt bench`: the request/reply loop with its histogram (SVG with
//! `--svg`). The loop, report and plot are the lab's
//! (`ftdi_rt_lab::request_reply`, also behind `examples/request_reply`);
//! this is its command-line face, plus `--json`.

use std::process::ExitCode;

use ftdi_rt_lab::request_reply::{self, Outcome, cli::Options};
use serde::Serialize;

use crate::print_json;

/// Options of `bench`: the request/reply tool's own.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    options: Options,
}

#[derive(Serialize)]
struct Run {
    label: String,
    transactions: u64,
    deadline_misses: u64,
    host_misses: u64,
    wrong_replies: u64,
    latency_us: Latency,
    error: Option<String>,
    interrupted: bool,
}

#[derive(Serialize)]
struct Latency {
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn run_json(o: &Outcome) -> Run {
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let l = &o.latency;
    Run {
        label: o.label.clone(),
        transactions: o.transactions,
        deadline_misses: o.misses,
        host_misses: o.stats.host_misses(),
        wrong_replies: o.wrong_replies,
        latency_us: Latency {
            min: us(l.min),
            p50: us(l.p50),
            p90: us(l.p90),
            p99: us(l.p99),
            p999: us(l.p999),
            max: us(l.max),
        },
        error: o.error.clone(),
        interrupted: o.interrupted,
    }
}

/// Runs the loop; the exit status is the tool's (0 in time, 1 the host
/// path missed, 2 an error).
pub(crate) fn run(args: Args, json: bool) -> ExitCode {
    let (code, outcomes) = request_reply::run_collecting(args.options, !json);
    if json {
        print_json(&outcomes.iter().map(run_json).collect::<Vec<_>>());
    }
    code
}
