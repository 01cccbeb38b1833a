//! vtime-guest: the test program of the timing tier's guest. It attaches
//! simulated devices to the guest's own kernel through USB/IP (vhci-hcd) and
//! runs cases through the real kernel stack.
//!
//! Usage: `vtime-guest [--list] [--only a,b] [--skip a,b] [--set key=value]...
//!                     [--vhci 50|other] [--case-timeout s]`
//!
//! `--vhci` is how vhci-hcd's `vhci_rx`/`vhci_tx` kernel threads run
//! (`SCHED_FIFO` priority, or `other` to leave them at `SCHED_OTHER`); cases
//! read it as the `vhci` parameter. Each case prints one `RESULT` line; exit
//! status 0 = all passed, 1 = some failed, 2 = bad usage, 3 = a case hung.
//!
//! To add a case: write `fn my_case(ctx: &mut Ctx) -> Outcome` in a module
//! of this binary and append it to [`CASES`]; attach devices with
//! `ftdi_rt_hil::vdev::VirtualDevice`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use ftdi_rt_hil::guest::{Case, Ctx, Selection, emit, run_cases};
use ftdi_rt_hil::vdev::VhciThreads;

mod probe;

/// The registry, in run order.
const CASES: &[Case] = &[Case {
    name: "usbip-attach",
    about: "a descriptor-only device attaches through vhci-hcd, enumerates, unplugs, replugs; the host's detach is seen",
    run: probe::usbip_attach,
}];

fn usage() -> ExitCode {
    eprintln!(
        "usage: vtime-guest [--list] [--only a,b] [--skip a,b] [--set key=value]... \
         [--vhci 50|other] [--case-timeout SECS]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut ctx = Ctx::new();
    ctx.case_timeout = Duration::from_secs(600);
    let mut sel = Selection::default();
    let mut args = std::env::args().skip(1);
    let list = |s: String| {
        s.split(',')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    while let Some(a) = args.next() {
        let mut val = || args.next();
        match a.as_str() {
            "--list" => {
                for c in CASES {
                    println!("{:20} {}", c.name, c.about);
                }
                return ExitCode::SUCCESS;
            }
            "--only" => match val() {
                Some(v) => sel.only = list(v),
                None => return usage(),
            },
            "--skip" => match val() {
                Some(v) => sel.skip = list(v),
                None => return usage(),
            },
            "--set" => match val().as_deref().and_then(|v| v.split_once('=')) {
                Some((k, v)) => {
                    ctx.params.insert(k.to_string(), v.to_string());
                }
                None => return usage(),
            },
            "--vhci" => match val().map(|v| v.parse::<VhciThreads>()) {
                Some(Ok(v)) => {
                    ctx.params.insert("vhci".into(), v.label());
                }
                Some(Err(e)) => {
                    eprintln!("vtime-guest: {e}");
                    return usage();
                }
                None => return usage(),
            },
            "--case-timeout" => match val().and_then(|v| v.parse().ok()) {
                Some(s) => ctx.case_timeout = Duration::from_secs(s),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let unknown = sel.unknown(CASES);
    if !unknown.is_empty() {
        eprintln!("vtime-guest: unknown case(s) {unknown:?}; see --list");
        return ExitCode::from(2);
    }
    emit(&format!(
        "# vtime-guest: {} case(s) selected; vhci threads {}",
        CASES.iter().filter(|c| sel.wants(c.name)).count(),
        ctx.params.get("vhci").map_or("fifo50", String::as_str)
    ));
    let sum = run_cases(CASES, &mut ctx, &sel);
    emit(&format!(
        "# vtime-guest summary: passed={} failed={} skipped={}",
        sum.passed, sum.failed, sum.skipped
    ));
    let _ = io::stdout().flush();
    if sum.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
