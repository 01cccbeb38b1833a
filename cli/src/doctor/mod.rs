//! `ftdi-rt doctor [selector]`: is this machine ready for the realtime
//! driver? One line per check (pass, warn, fail, or skip where it does not
//! apply), and for every failure and warning the exact command that fixes
//! it. Exit status 0 when nothing failed, 1 otherwise.
//!
//! The checks, each in words a forum post would take a page for:
//! - USB itself, usbfs access to each adapter, the shipped udev rule and
//!   the group it grants, the driver holding each interface, ftdi_sio's
//!   latency timer ([`usb`]);
//! - the realtime grant (RLIMIT_RTPRIO / CAP_SYS_NICE), RLIMIT_MEMLOCK, the
//!   kernel's preemption model, the CPU frequency governor, deep idle
//!   states, and the USB host controller's IRQ thread on threaded-IRQ
//!   kernels ([`machine`]).
//!
//! With `--loopback` and an adapter whose TX is wired to RX, a short
//! request/reply run with its histogram follows (the lab's tool).

mod machine;
mod usb;

use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::print_json;
use crate::sysfs::{self, Sys};

/// The shipped udev rule (`udev/60-ftdi-rt.rules`), compared with the
/// installed one and printed by `--udev-rule`.
pub(crate) const SHIPPED_UDEV_RULE: &str = include_str!("../../../udev/60-ftdi-rt.rules");

/// Options of `doctor`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Check only this adapter (serial number, bus-port path, index).
    selector: Option<String>,
    /// Print the udev rule ftdi-rt ships (for `| sudo tee ...`) and exit.
    #[arg(long)]
    udev_rule: bool,
    /// Then run a short latency test on the adapter, whose TX must be wired
    /// to its RX (a loopback plug).
    #[arg(long)]
    loopback: bool,
}

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Warn,
    Fail,
    /// Does not apply here (no adapter, no threaded IRQs, ...).
    Skip,
}

/// One line of the doctor's output.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) status: Status,
    pub(crate) detail: String,
    /// The command that fixes it (failures and warnings).
    pub(crate) fix: Option<String>,
}

impl Check {
    pub(crate) fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, command: impl Into<String>) -> Check {
        self.fix = Some(command.into());
        self
    }
}

#[derive(Serialize)]
struct Report {
    ready: bool,
    checks: Vec<Check>,
}

pub(crate) fn run(args: &Args, json: bool) -> ExitCode {
    if args.udev_rule {
        print!("{SHIPPED_UDEV_RULE}");
        return ExitCode::SUCCESS;
    }
    let sys = Sys::from_env();
    let checks = all_checks(&sys, args.selector.as_deref());
    let ready = !checks.iter().any(|c| c.status == Status::Fail);
    if json {
        print_json(&Report {
            ready,
            checks: checks.clone(),
        });
    } else {
        print!("{}", text(&checks));
    }
    let mut code = if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if args.loopback {
        code = loopback_run(&sys, args.selector.as_deref(), json, code);
    }
    code
}

/// Every check, in the order a user would fix them.
pub(crate) fn all_checks(sys: &Sys, selector: Option<&str>) -> Vec<Check> {
    let adapters = usb::selected(sysfs::ftdi_adapters(sys), selector);
    let mut checks = usb::checks(sys, &adapters, selector);
    checks.extend(machine::checks(sys));
    checks
}

fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let status = match c.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!("{status}  {:<18} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    if fails == 0 {
        out.push_str(&format!(
            "ready: no check failed ({warns} warning{})\n",
            plural(warns)
        ));
    } else {
        out.push_str(&format!(
            "not ready: {fails} check{} failed, {warns} warning{}\n",
            plural(fails),
            plural(warns)
        ));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The short latency run on a loopback adapter (the lab's request/reply
/// tool, replies checked off: a loopback echoes the request).
fn loopback_run(sys: &Sys, selector: Option<&str>, json: bool, code: ExitCode) -> ExitCode {
    if sysfs::ftdi_adapters(sys).is_empty() {
        if !json {
            println!("skip  loopback run       no adapter to run on");
        }
        return code;
    }
    let usb = format!("--usb={}", selector.unwrap_or(""));
    let options = ftdi_rt_lab::request_reply::cli::Options::parse_from([
        "ftdi-rt doctor",
        usb.as_str(),
        "--iterations",
        "1000",
        "--reply-size",
        "7",
        "--no-check",
        "--best-effort",
    ]);
    let run = ftdi_rt_lab::request_reply::run_with(options);
    if code == ExitCode::SUCCESS { run } else { code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_line_per_check_and_fixes_for_failures() {
        let checks = vec![
            Check::new("a", Status::Pass, "fine"),
            Check::new("b", Status::Fail, "broken").fix("sudo fix-b"),
            Check::new("c", Status::Skip, "n/a"),
        ];
        let t = text(&checks);
        assert!(t.contains("pass  a "), "{t}");
        assert!(t.contains("FAIL  b "), "{t}");
        assert!(t.contains("      fix: sudo fix-b"), "{t}");
        assert!(
            t.ends_with("not ready: 1 check failed, 0 warnings\n"),
            "{t}"
        );
    }
}
