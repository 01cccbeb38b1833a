//! vtime-report: the timing tier's host-side verdict.
//!
//! Reads the guest console log(s) of timing-tier boots, prints the rows as a
//! table with each path's ratio to the kernel path, writes an SVG latency
//! histogram per load, and applies the gates (see
//! `ftdi_rt_hil::timing::report`). Exit status: 0 when every gate held, 1
//! when one failed (each failure says which gate and why), 2 on bad usage or
//! an unreadable log.

use std::path::PathBuf;
use std::process::ExitCode;

use ftdi_rt_hil::timing::plot::write_svgs;
use ftdi_rt_hil::timing::report::{Judging, Parsed, gates, table};

const USAGE: &str = "\
usage: vtime-report [options] CONSOLE_LOG...
  Each boot's timing-plan line says which rows to expect; the incident gates
  apply when a stock-kernel matrix was planned.
  --require-stock     fail unless a stock-kernel matrix was planned (for CI)
  --min-n N           fewest transactions a row may have (default 2000)
  --svg-dir DIR       where the SVG histograms go (default: the first log's directory)";

struct Args {
    logs: Vec<PathBuf>,
    judging: Judging,
    svg_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        logs: Vec::new(),
        judging: Judging::default(),
        svg_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        if !arg.starts_with("--") {
            a.logs.push(PathBuf::from(arg));
            continue;
        }
        if arg == "--require-stock" {
            a.judging.require_stock = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{arg}: {v:?} is not a whole number"))
        };
        match arg.as_str() {
            "--min-n" => a.judging.min_n = num(&v)?,
            "--svg-dir" => a.svg_dir = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if a.logs.is_empty() {
        return Err("no console log given".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vtime-report: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut parsed = Parsed::default();
    for log in &args.logs {
        match std::fs::read(log) {
            // Console logs can hold stray bytes (escape sequences, a
            // half-written line at a crash): read them lossily.
            Ok(bytes) => parsed.add_log(&String::from_utf8_lossy(&bytes)),
            Err(e) => {
                eprintln!("vtime-report: cannot read {}: {e}", log.display());
                return ExitCode::from(2);
            }
        }
    }
    // Without a plan there is no deadline to show; 3500 µs is the incident's.
    let deadline_us = parsed.deadline_us(3500);
    if parsed.rows.is_empty() {
        println!("vtime-report: no timing rows in these logs");
    } else {
        println!("{}", table(&parsed.rows, deadline_us));
    }

    let svg_dir = args.svg_dir.clone().unwrap_or_else(|| {
        args.logs[0]
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    });
    let mut failed = 0;
    match write_svgs(&parsed.hists, deadline_us, &svg_dir) {
        Ok(files) => {
            for f in files {
                println!("vtime-report: histogram {}", f.display());
            }
        }
        Err(e) => {
            println!("vtime-report: FAILED writing the histograms: {e}");
            failed += 1;
        }
    }
    let judged = gates(&parsed, &args.judging);
    for g in &judged {
        if g.passed {
            println!("vtime-report: gate {} held: {}", g.name, g.message);
        } else {
            failed += 1;
            println!("vtime-report: GATE FAILED {}: {}", g.name, g.message);
        }
    }
    println!(
        "vtime-report: {} gates held, {failed} failed",
        judged.iter().filter(|g| g.passed).count()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
