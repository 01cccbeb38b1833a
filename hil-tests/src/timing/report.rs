//! Host side: the timing rows of one or more console logs as a readable
//! table, with each path's ratio to the kernel path, and the gates CI holds
//! the rig to.
//!
//! The gates (the issue's, on the stock kernel under rt-burst with the vhci
//! kthreads at FIFO 50):
//! * ftdi-rt's usb path misses no deadline;
//! * the kernel (tty) path misses at least one: otherwise the rig no longer
//!   reproduces the incident and the comparison means nothing.
//!
//! They are judged when a boot planned a stock-kernel matrix (its
//! `timing-plan` line, printed before the first row). Besides those, the
//! report fails on what would make the table a lie: a malformed line, a row
//! naming another kernel than the boot ran, plans with different deadlines,
//! a row measured twice, a row with fewer transactions than asked for, or a
//! planned row missing (or a row nobody planned).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::row::{Contender, HistLine, Kernel, Load, RowKey, TimingPlan, TimingRow, Vhci};

/// The line the guest's /init prints first, naming the kernel it booted.
const BOOT_LINE: &str = "vtime-init: start, kernel ";

/// What console logs held.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// The plans, in log order.
    pub plans: Vec<TimingPlan>,
    /// The rows, in log order.
    pub rows: Vec<TimingRow>,
    /// The histogram lines, in log order.
    pub hists: Vec<HistLine>,
    /// Lines that started like a plan, row or histogram but broke the
    /// format, or named another kernel than the boot ran.
    pub malformed: Vec<String>,
}

impl Parsed {
    /// Adds what `text` (the console log of one boot) holds.
    pub fn add_log(&mut self, text: &str) {
        let mut booted: Option<(Kernel, String)> = None;
        for line in text.lines() {
            if let Some(at) = line.find(BOOT_LINE) {
                let release = line[at + BOOT_LINE.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                // Debian names its PREEMPT_RT flavour `-rt-amd64`.
                let kernel = if release.contains("-rt") {
                    Kernel::Rt
                } else {
                    Kernel::Stock
                };
                booted = Some((kernel, release));
                continue;
            }
            let named = if let Some(p) = TimingPlan::find_in(line) {
                p.map(|p| {
                    let k = p.kernel;
                    self.plans.push(p);
                    k
                })
            } else if let Some(h) = HistLine::find_in(line) {
                h.map(|h| {
                    let k = h.key.kernel;
                    self.hists.push(h);
                    k
                })
            } else if let Some(r) = TimingRow::find_in(line) {
                r.map(|r| {
                    let k = r.key.kernel;
                    self.rows.push(r);
                    k
                })
            } else {
                continue;
            };
            match (named, &booted) {
                (Err(e), _) => self.malformed.push(e),
                (Ok(k), Some((b, release))) if k != *b => self.malformed.push(format!(
                    "{line:?} names kernel={k}, but the boot ran {release}"
                )),
                (Ok(_), _) => {}
            }
        }
    }

    /// The deadline the plans name (they must agree), or `default`.
    pub fn deadline_us(&self, default: u64) -> u64 {
        self.plans.first().map_or(default, |p| p.deadline_us)
    }
}

/// How strict the judgement is.
#[derive(Clone, Debug)]
pub struct Judging {
    /// Fewest transactions a row may have (the issue: 2000).
    pub min_n: u64,
    /// Fail unless a stock-kernel matrix was planned (CI: the gates must be
    /// judged, not skipped because the case did not run).
    pub require_stock: bool,
}

impl Default for Judging {
    fn default() -> Self {
        Judging {
            min_n: 2000,
            require_stock: false,
        }
    }
}

/// One gate's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Short name.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// One sentence: what was seen and, on failure, what it means.
    pub message: String,
}

impl Gate {
    fn check(name: &'static str, failures: Vec<String>, ok: String, what: &str) -> Gate {
        Gate {
            name,
            passed: failures.is_empty(),
            message: if failures.is_empty() {
                ok
            } else {
                format!("{what}: {}", failures.join("; "))
            },
        }
    }
}

/// The gates' key rows: stock kernel, rt-burst, vhci at FIFO 50.
fn incident_key(path: Contender) -> RowKey {
    RowKey {
        kernel: Kernel::Stock,
        load: Load::RtBurst,
        path,
        vhci: Vhci::Fifo50,
    }
}

/// Judges the parsed logs: the format, the planned matrix, and, when a
/// stock-kernel matrix was planned, the incident gates.
pub fn gates(parsed: &Parsed, judging: &Judging) -> Vec<Gate> {
    let mut out = Vec::new();
    let mut by_key: BTreeMap<RowKey, Vec<&TimingRow>> = BTreeMap::new();
    for r in &parsed.rows {
        by_key.entry(r.key).or_default().push(r);
    }
    let planned: Vec<RowKey> = parsed.plans.iter().flat_map(TimingPlan::keys).collect();
    out.push(Gate::check(
        "rows-well-formed",
        parsed.malformed.clone(),
        format!(
            "{} plans, {} rows parsed",
            parsed.plans.len(),
            parsed.rows.len()
        ),
        "malformed",
    ));
    let deadlines: Vec<u64> = parsed.plans.iter().map(|p| p.deadline_us).collect();
    out.push(Gate::check(
        "one-deadline",
        if deadlines.windows(2).any(|w| w[0] != w[1]) {
            vec![format!("the plans name deadlines {deadlines:?} µs")]
        } else {
            Vec::new()
        },
        "every plan has the same deadline".into(),
        "not comparable",
    ));
    out.push(Gate::check(
        "rows-unique",
        by_key
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| k.to_string())
            .collect(),
        "every row measured once".into(),
        "measured more than once (which one counts?)",
    ));
    out.push(Gate::check(
        "matrix-complete",
        planned
            .iter()
            .filter(|k| !by_key.contains_key(k))
            .map(|k| format!("{k} planned but not measured"))
            .chain(
                by_key
                    .keys()
                    .filter(|k| !planned.contains(k))
                    .map(|k| format!("{k} measured but not planned")),
            )
            .collect(),
        format!("all {} planned rows present", planned.len()),
        "incomplete",
    ));
    let n_of = |k: &RowKey| {
        parsed
            .plans
            .iter()
            .find(|p| p.kernel == k.kernel)
            .map_or(0, |p| p.n)
    };
    out.push(Gate::check(
        "rows-long-enough",
        parsed
            .rows
            .iter()
            .filter(|r| r.n < judging.min_n.max(n_of(&r.key)))
            .map(|r| format!("{} has n={}", r.key, r.n))
            .collect(),
        format!(
            "every row has at least {} transactions and its plan's count",
            judging.min_n
        ),
        &format!("fewer than {} (or the plan's) transactions", judging.min_n),
    ));
    let stock_planned = parsed.plans.iter().any(|p| p.kernel == Kernel::Stock);
    if judging.require_stock && !stock_planned {
        out.push(Gate {
            name: "stock-matrix-ran",
            passed: false,
            message: "no stock-kernel timing matrix in the logs: the incident gates cannot be \
                      judged"
                .into(),
        });
    }
    if stock_planned {
        out.extend(incident_gates(&by_key));
    }
    out
}

/// ftdi-rt's usb path meets every deadline, and the kernel path misses some.
fn incident_gates(by_key: &BTreeMap<RowKey, Vec<&TimingRow>>) -> [Gate; 2] {
    let row = |p| {
        by_key
            .get(&incident_key(p))
            .and_then(|v| v.first().copied())
    };
    let missing = |name, p| Gate {
        name,
        passed: false,
        message: format!("no row {}: the gate cannot be judged", incident_key(p)),
    };
    let usb = match row(Contender::Usb) {
        None => missing("usb-meets-every-deadline", Contender::Usb),
        Some(r) => Gate {
            name: "usb-meets-every-deadline",
            passed: r.misses == 0,
            message: if r.misses == 0 {
                format!(
                    "ftdi-rt's usb path met all {} deadlines under rt-burst on the stock kernel",
                    r.n
                )
            } else {
                format!(
                    "ftdi-rt's usb path missed {} of {} deadlines under rt-burst on the stock \
                     kernel with vhci at FIFO 50: the product's claim does not hold here",
                    r.misses, r.n
                )
            },
        },
    };
    let tty = match row(Contender::Tty) {
        None => missing("incident-reproduced", Contender::Tty),
        Some(r) => Gate {
            name: "incident-reproduced",
            passed: r.misses > 0,
            message: if r.misses > 0 {
                format!(
                    "the kernel path missed {} of {} deadlines under rt-burst on the stock \
                     kernel: the incident is reproduced",
                    r.misses, r.n
                )
            } else {
                format!(
                    "the kernel path missed none of {} deadlines under rt-burst on the stock \
                     kernel: the rig no longer reproduces the incident and the comparison \
                     means nothing",
                    r.n
                )
            },
        },
    };
    [usb, tty]
}

fn ratio(x: u64, base: u64) -> String {
    if base == 0 {
        "-".into()
    } else {
        format!("{:.2}", x as f64 / base as f64)
    }
}

/// The rows as a table, one block per kernel and vhci setting, each row with
/// its ratio to the kernel (tty) path under the same load.
pub fn table(rows: &[TimingRow], deadline_us: u64) -> String {
    let mut groups: BTreeMap<(Kernel, Vhci), Vec<&TimingRow>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.key.kernel, r.key.vhci))
            .or_default()
            .push(r);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "==== timing tier: request/reply through the guest's real USB stack (vhci-hcd), \
         QEMU TCG -icount shift=1 (1 vCPU, 2 ns per instruction), deadline {deadline_us} µs"
    );
    let _ = writeln!(
        out,
        "  latencies in guest µs; a miss counts at the time it was given up (at least the \
         deadline); x/tty = the path's figure over the kernel path's under the same load"
    );
    for ((kernel, vhci), mut rows) in groups {
        rows.sort_by_key(|r| (r.key.load, r.key.path));
        let _ = writeln!(out, "\n  kernel={kernel} vhci={vhci}");
        let _ = writeln!(
            out,
            "  {:<9} {:<8} {:>5} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6}   {:>7} {:>7} {:>8} {:>7}",
            "load",
            "path",
            "n",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "misses",
            "p50/tty",
            "p99/tty",
            "p999/tty",
            "max/tty"
        );
        for r in &rows {
            let tty = rows
                .iter()
                .find(|t| t.key.load == r.key.load && t.key.path == Contender::Tty);
            let rat = |f: fn(&TimingRow) -> u64| tty.map_or("-".into(), |t| ratio(f(r), f(t)));
            let _ = writeln!(
                out,
                "  {:<9} {:<8} {:>5} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6}   {:>7} {:>7} {:>8} {:>7}",
                r.key.load.as_str(),
                r.key.path.as_str(),
                r.n,
                r.p50_us,
                r.p90_us,
                r.p99_us,
                r.p999_us,
                r.max_us,
                r.misses,
                rat(|r| r.p50_us),
                rat(|r| r.p99_us),
                rat(|r| r.p999_us),
                rat(|r| r.max_us),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kernel: Kernel, load: Load, path: Contender, vhci: Vhci, misses: u64) -> TimingRow {
        TimingRow {
            key: RowKey {
                kernel,
                load,
                path,
                vhci,
            },
            n: 2000,
            p50_us: 1998,
            p90_us: 2000,
            p99_us: if misses > 0 { 3500 } else { 2000 },
            p999_us: 3500,
            max_us: 3600,
            misses,
        }
    }

    fn plan(kernel: Kernel) -> TimingPlan {
        TimingPlan {
            kernel,
            n: 2000,
            deadline_us: 3500,
            loads: Load::ALL.to_vec(),
            paths: Contender::ALL.to_vec(),
            other_loads: vec![Load::RtBurst],
        }
    }

    /// A stock boot's log with its full matrix; `usb` and `tty` misses
    /// under rt-burst with vhci at fifo50.
    fn matrix(usb: u64, tty: u64) -> String {
        let p = plan(Kernel::Stock);
        let mut log =
            format!("[ 0.1] vtime-init: start, kernel 6.1.0-57-amd64 (uptime 3 ms)\n[ 3.0] {p}\n");
        for key in p.keys() {
            let m = match (key.load, key.vhci, key.path) {
                (Load::RtBurst, Vhci::Fifo50, Contender::Usb) => usb,
                (Load::RtBurst, Vhci::Fifo50, Contender::Tty) => tty,
                _ => 0,
            };
            let r = row(key.kernel, key.load, key.path, key.vhci, m);
            log += &format!("[ 3.2] {r}\n");
        }
        log
    }

    fn judge(log: &str) -> Vec<Gate> {
        let mut p = Parsed::default();
        p.add_log(log);
        gates(&p, &Judging::default())
    }

    fn failed(g: &[Gate]) -> Vec<&'static str> {
        g.iter().filter(|g| !g.passed).map(|g| g.name).collect()
    }

    #[test]
    fn the_incident_reproduced_and_beaten_passes() {
        let g = judge(&matrix(0, 47));
        assert!(failed(&g).is_empty(), "{g:?}");
        assert!(g.iter().any(|g| g.name == "incident-reproduced"));
    }

    #[test]
    fn a_usb_miss_fails_the_claim() {
        let g = judge(&matrix(1, 47));
        assert_eq!(failed(&g), ["usb-meets-every-deadline"]);
        let msg = &g.iter().find(|g| !g.passed).unwrap().message;
        assert!(msg.contains("missed 1 of 2000"), "{msg}");
    }

    #[test]
    fn a_kernel_path_without_misses_means_the_rig_is_broken() {
        let g = judge(&matrix(0, 0));
        assert_eq!(failed(&g), ["incident-reproduced"]);
        let msg = &g.iter().find(|g| !g.passed).unwrap().message;
        assert!(msg.contains("no longer reproduces the incident"), "{msg}");
    }

    #[test]
    fn missing_unplanned_duplicate_short_and_malformed_rows_fail() {
        let full = matrix(0, 47);
        let without_usb: String = full
            .lines()
            .filter(|l| !l.contains("load=rt-burst path=usb vhci=fifo50"))
            .map(|l| format!("{l}\n"))
            .collect();
        let f = failed(&judge(&without_usb)).join(",");
        assert_eq!(f, "matrix-complete,usb-meets-every-deadline");

        let last = full.lines().last().unwrap().to_string();
        assert_eq!(failed(&judge(&format!("{full}{last}\n"))), ["rows-unique"]);

        let short = full.replacen("n=2000 p50", "n=1999 p50", 1);
        assert_eq!(failed(&judge(&short)), ["rows-long-enough"]);

        let bad = format!("{full}timing kernel=stock load=idle\n");
        assert_eq!(failed(&judge(&bad)), ["rows-well-formed"]);

        let unplanned = row(Kernel::Stock, Load::Idle, Contender::Usb, Vhci::Other, 0);
        assert_eq!(
            failed(&judge(&format!("{full}{unplanned}\n"))),
            ["matrix-complete"]
        );
    }

    #[test]
    fn rows_must_name_the_kernel_the_boot_ran() {
        let log = matrix(0, 47).replace("6.1.0-57-amd64", "6.1.0-57-rt-amd64");
        let g = judge(&log);
        assert_eq!(failed(&g), ["rows-well-formed"]);
    }

    #[test]
    fn an_rt_boot_is_not_judged_on_the_stock_gates_unless_stock_is_required() {
        let log = matrix(0, 0)
            .replace("kernel=stock", "kernel=rt")
            .replace("6.1.0-57-amd64", "6.1.0-57-rt-amd64");
        let g = judge(&log);
        assert!(failed(&g).is_empty(), "{g:?}");
        assert!(!g.iter().any(|g| g.name == "incident-reproduced"));
        let mut p = Parsed::default();
        p.add_log(&log);
        let strict = Judging {
            require_stock: true,
            ..Judging::default()
        };
        assert_eq!(failed(&gates(&p, &strict)), ["stock-matrix-ran"]);
    }

    #[test]
    fn a_log_without_a_matrix_passes_only_when_stock_is_not_required() {
        let log = "[ 0.1] vtime-init: start, kernel 6.1.0-57-amd64\nRESULT usbip-attach PASS ok\n";
        assert!(failed(&judge(log)).is_empty());
    }

    #[test]
    fn table_shows_ratios_to_the_kernel_path() {
        let mut usb = row(
            Kernel::Stock,
            Load::RtBurst,
            Contender::Usb,
            Vhci::Fifo50,
            0,
        );
        usb.p99_us = 1750;
        let tty = row(
            Kernel::Stock,
            Load::RtBurst,
            Contender::Tty,
            Vhci::Fifo50,
            47,
        );
        let t = table(&[tty, usb], 3500);
        assert!(t.contains("kernel=stock vhci=fifo50"), "{t}");
        let usb_line = t.lines().find(|l| l.contains(" usb ")).unwrap();
        assert!(usb_line.contains("0.50"), "p99 1750 over 3500: {usb_line}");
        let tty_line = t.lines().find(|l| l.contains(" tty ")).unwrap();
        assert!(tty_line.contains("1.00"), "{tty_line}");
    }
}
