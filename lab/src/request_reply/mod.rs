//! The request/reply loop of the incident, on any transport: the tool
//! behind `cargo run --release --example request_reply`.
//!
//! ```text
//! cargo run --release --example request_reply                 # adapter, or the simulated chip
//! cargo run --release --example request_reply -- --sim --stress 2 --iterations 20000
//! cargo run --release --example request_reply -- --compare sim pty --stress 2
//! ```
//! Sends a request (7 bytes), waits for the reply (1 byte) within a deadline
//! (3.5 ms) at 115200 Bd, over and over, and reports the latency
//! distribution and the misses. The loop itself runs SCHED_FIFO 10 below the
//! reader, on the reader's CPU: the application is raised as in the
//! incident, so what remains is the driver path's own delay.
//!
//! The parts: [`cli`] (options), `target` (opening the port and its
//! responder), `run` (the measured loop, with `progress`), `report` (the
//! summary, the text histogram, the comparison, CSV), `miss` (the first
//! misses in detail: breakdown and flight record) and `plotting` (SVG).

pub mod cli;
mod miss;
mod plotting;
mod progress;
mod report;
mod run;
mod target;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use ftdi_rt::{Error, LatencySummary, Statistics, make_current_thread_realtime};

use self::cli::{Options, Target};
pub(crate) use self::run::request;
use crate::{CpuHogs, NoiseProbe};

/// Runs the tool with the process's command line; the exit code is 0 when
/// every reply was in time, 1 when the host path missed a deadline, 2 on an
/// error (the message says what to do).
pub fn main() -> ExitCode {
    run_with(Options::parse())
}

/// What one transport's run measured, for callers that present it
/// themselves (`ftdi-rt bench --json`).
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The transport and what it is connected to.
    pub label: String,
    /// Transactions run.
    pub transactions: u64,
    /// Deadline misses, all causes.
    pub misses: u64,
    /// Replies that were not the frobnicator's answer.
    pub wrong_replies: u64,
    /// The transactions' latency (as [`Statistics::transaction_latency`]).
    pub latency: LatencySummary,
    /// The port's statistics at the end of the run.
    pub stats: Statistics,
    /// The error that ended the run early, if any.
    pub error: Option<String>,
    /// Ctrl-C ended the run.
    pub interrupted: bool,
}

/// Runs the tool with `opts`.
pub fn run_with(opts: Options) -> ExitCode {
    run_collecting(opts, true).0
}

/// Runs the tool with `opts`, printing its report only if `print` (the
/// CSV and SVG files are written either way), and returns what each
/// transport measured.
pub fn run_collecting(opts: Options, print: bool) -> (ExitCode, Vec<Outcome>) {
    if !(1..=256).contains(&opts.request_size) || opts.reply_size == 0 {
        eprintln!("--request-size must be 1..=256 and --reply-size at least 1");
        return (ExitCode::from(2), Vec::new());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    if let Err(e) = ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed)) {
        eprintln!("warning: Ctrl-C will not print a summary ({e})");
    }

    let load = if opts.stress > 0 {
        format!(
            "{} CPU-hog threads (SCHED_OTHER) for the whole run",
            opts.stress
        )
    } else {
        "idle".to_string()
    };
    // Before this thread becomes realtime (the hogs would reset an inherited
    // policy anyway).
    let hogs = match CpuHogs::start(opts.stress) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot start {} CPU hogs: {e}", opts.stress);
            return (ExitCode::from(2), Vec::new());
        }
    };
    let probe = if opts.no_noise_probe {
        None
    } else {
        match NoiseProbe::start() {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                eprintln!(
                    "note: no noise probe ({e}); misses cannot be told apart from machine stalls"
                );
                None
            }
        }
    };

    // This thread waits for the replies: make it realtime like the reader,
    // 10 below it, with the same memory locking (its own stack by default).
    let reader = target::reader_realtime(&opts);
    let app = reader.with_priority(opts.reader_priority.saturating_sub(10).max(1));
    let app_status = match make_current_thread_realtime(&app) {
        Ok(s) => s,
        Err(e) => return (realtime_refused(&Error::Realtime(e)), Vec::new()),
    };

    let targets: Vec<Target> = match (&opts.compare, &opts.usb, &opts.tty) {
        (Some(pair), _, _) => pair.clone(),
        _ if opts.sim => vec![Target::Sim],
        _ if opts.pty => vec![Target::Pty],
        (_, Some(sel), _) => vec![Target::Usb(sel.clone())],
        (_, _, Some(path)) => vec![Target::Tty(path.clone())],
        _ => vec![target::default_target()],
    };

    let mut results = Vec::new();
    for t in &targets {
        let mut opened = match target::open(t, &opts) {
            Ok(o) => o,
            Err(e @ Error::Realtime(_)) => return (realtime_refused(&e), Vec::new()),
            Err(e) => {
                eprintln!("error: cannot open {t}: {e}");
                return (ExitCode::from(2), Vec::new());
            }
        };
        target::settle(&mut opened.port);
        if let Some(probe) = &probe {
            opened.port.discount_stalls(probe.clone());
        }
        results.push(run::run(&mut opened, &opts, &stop));
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    drop(hogs);

    if print {
        println!("application      {app_status}");
        if let Some(probe) = &probe {
            println!("machine noise    {}", probe.summary());
        }
        for r in &results {
            println!("\n{}", report::summary(r, &opts, &load));
            println!("{}", report::histogram(r, opts.deadline));
        }
        if let [a, b] = results.as_slice() {
            println!(
                "comparison under the same load ({load}), B = {}, A = {}:",
                b.label, a.label
            );
            println!("{}", report::compare(a, b));
        }
    }
    let all: Vec<&run::RunResult> = results.iter().collect();
    // Without the report, stdout belongs to the caller (JSON): notes go to stderr.
    let note = |line: String| {
        if print {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    // An output asked for and not written is an error: a script must not
    // go on with a missing or stale file.
    let mut unwritten = false;
    if let Some(path) = &opts.csv {
        match report::write_csv(path, &all) {
            Ok(()) => note(format!("samples written to {}", path.display())),
            Err(e) => {
                eprintln!("error: writing {}: {e}", path.display());
                unwritten = true;
            }
        }
    }
    if let Some(path) = &opts.svg {
        match plotting::write_svg(path, &all, opts.deadline) {
            Ok(()) => note(format!("histogram plot written to {}", path.display())),
            Err(e) => {
                eprintln!("error: writing {}: {e}", path.display());
                unwritten = true;
            }
        }
    }
    let code = if unwritten
        || results
            .iter()
            .any(|r| r.error.is_some() || r.wrong_replies > 0)
    {
        ExitCode::from(2)
    } else if results.iter().any(|r| r.stats.host_misses() > 0) {
        // Misses the simulated chip's own stalls or machine stalls explain
        // are reported above but are not the host path's: they do not fail
        // the run.
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    (
        code,
        results
            .into_iter()
            .map(run::RunResult::into_outcome)
            .collect(),
    )
}

/// The realtime grant is missing: say how to get it, offer --best-effort.
fn realtime_refused(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    eprintln!();
    eprintln!("To measure without the realtime guarantee, rerun with --best-effort");
    eprintln!("(the output then says BEST EFFORT, so nobody mistakes it for the guaranteed mode).");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    use clap::Parser;

    use super::*;

    fn run(args: &[&str]) -> ExitCode {
        let base = [
            "request_reply",
            "--sim",
            "--best-effort",
            "--no-noise-probe",
        ];
        run_with(Options::parse_from(base.iter().chain(args)))
    }

    // Issue 13 item 12: an output that cannot be written fails the run.
    #[test]
    fn an_output_that_cannot_be_written_exits_non_zero() {
        let nowhere = "/nonexistent-ftdi-rt-dir/out";
        let missing_dir_csv = format!("{nowhere}.csv");
        let missing_dir_svg = format!("{nowhere}.svg");
        let fine = run(&["--iterations", "3", "--deadline", "1s"]);
        assert_eq!(
            fine,
            ExitCode::SUCCESS,
            "the same run without outputs passes"
        );
        for (flag, path) in [("--csv", &missing_dir_csv), ("--svg", &missing_dir_svg)] {
            let code = run(&["--iterations", "3", "--deadline", "1s", flag, path]);
            assert_eq!(code, ExitCode::from(2), "{flag} {path}");
        }
    }
}
