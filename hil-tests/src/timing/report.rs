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
//! Besides those, the report fails on what would make the table a lie: a
//! malformed row, a row measured more than once, a row with fewer
//! transactions than asked for, or a row of the expected matrix missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::row::{Contender, HistLine, Kernel, Load, RowKey, TimingRow, Vhci};

/// What a console log held.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    /// The rows, in log order.
    pub rows: Vec<TimingRow>,
    /// The histogram lines, in log order.
    pub hists: Vec<HistLine>,
    /// Lines that started like a row or histogram but broke the format.
    pub malformed: Vec<String>,
}

impl Parsed {
    /// Adds what `text` (a console log) holds.
    pub fn add_log(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(h) = HistLine::find_in(line) {
                match h {
                    Ok(h) => self.hists.push(h),
                    Err(e) => self.malformed.push(e),
                }
            } else if let Some(r) = TimingRow::find_in(line) {
                match r {
                    Ok(r) => self.rows.push(r),
                    Err(e) => self.malformed.push(e),
                }
            }
        }
    }
}

/// The rows one run must produce.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Kernels whose rows must all be there.
    pub kernels: Vec<Kernel>,
    /// Loads with vhci at fifo50.
    pub loads: Vec<Load>,
    /// Contenders.
    pub paths: Vec<Contender>,
    /// Loads with vhci at SCHED_OTHER.
    pub other_loads: Vec<Load>,
    /// Fewest transactions a row may have.
    pub min_n: u64,
}

impl Default for Expected {
    /// The matrix on the stock kernel, 2000 transactions a row.
    fn default() -> Self {
        Expected {
            kernels: vec![Kernel::Stock],
            loads: Load::ALL.to_vec(),
            paths: Contender::ALL.to_vec(),
            other_loads: vec![Load::RtBurst],
            min_n: 2000,
        }
    }
}

impl Expected {
    /// Every row key the matrix must have.
    pub fn keys(&self) -> Vec<RowKey> {
        let mut keys = Vec::new();
        for &kernel in &self.kernels {
            let plan = self
                .loads
                .iter()
                .map(|&l| (Vhci::Fifo50, l))
                .chain(self.other_loads.iter().map(|&l| (Vhci::Other, l)));
            for (vhci, load) in plan {
                for &path in &self.paths {
                    keys.push(RowKey {
                        kernel,
                        load,
                        path,
                        vhci,
                    });
                }
            }
        }
        keys
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

/// The gates' key rows: stock kernel, rt-burst, vhci at FIFO 50.
fn incident_key(path: Contender) -> RowKey {
    RowKey {
        kernel: Kernel::Stock,
        load: Load::RtBurst,
        path,
        vhci: Vhci::Fifo50,
    }
}

/// Judges the parsed logs against `expected`.
pub fn gates(parsed: &Parsed, expected: &Expected) -> Vec<Gate> {
    let mut out = Vec::new();
    let mut by_key: BTreeMap<RowKey, Vec<&TimingRow>> = BTreeMap::new();
    for r in &parsed.rows {
        by_key.entry(r.key).or_default().push(r);
    }
    out.push(Gate {
        name: "rows-well-formed",
        passed: parsed.malformed.is_empty(),
        message: if parsed.malformed.is_empty() {
            format!("{} rows parsed", parsed.rows.len())
        } else {
            format!("malformed: {}", parsed.malformed.join("; "))
        },
    });
    let twice: Vec<String> = by_key
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.to_string())
        .collect();
    out.push(Gate {
        name: "rows-unique",
        passed: twice.is_empty(),
        message: if twice.is_empty() {
            "every row measured once".into()
        } else {
            format!(
                "measured more than once (which one counts?): {}",
                twice.join("; ")
            )
        },
    });
    let missing: Vec<String> = expected
        .keys()
        .into_iter()
        .filter(|k| !by_key.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    out.push(Gate {
        name: "matrix-complete",
        passed: missing.is_empty(),
        message: if missing.is_empty() {
            format!("all {} expected rows present", expected.keys().len())
        } else {
            format!("missing rows: {}", missing.join("; "))
        },
    });
    let short: Vec<String> = parsed
        .rows
        .iter()
        .filter(|r| r.n < expected.min_n)
        .map(|r| format!("{} has n={}", r.key, r.n))
        .collect();
    out.push(Gate {
        name: "rows-long-enough",
        passed: short.is_empty(),
        message: if short.is_empty() {
            format!("every row has at least {} transactions", expected.min_n)
        } else {
            format!(
                "fewer than {} transactions: {}",
                expected.min_n,
                short.join("; ")
            )
        },
    });
    if expected.kernels.contains(&Kernel::Stock) {
        let row = |p| {
            by_key
                .get(&incident_key(p))
                .and_then(|v| v.first().copied())
        };
        out.push(match row(Contender::Usb) {
            None => Gate {
                name: "usb-meets-every-deadline",
                passed: false,
                message: format!("no row {}: the gate cannot be judged", incident_key(Contender::Usb)),
            },
            Some(r) => Gate {
                name: "usb-meets-every-deadline",
                passed: r.misses == 0,
                message: if r.misses == 0 {
                    format!("ftdi-rt's usb path met all {} deadlines under rt-burst on the stock kernel", r.n)
                } else {
                    format!(
                        "ftdi-rt's usb path missed {} of {} deadlines under rt-burst on the stock \
                         kernel with vhci at FIFO 50: the product's claim does not hold here",
                        r.misses, r.n
                    )
                },
            },
        });
        out.push(match row(Contender::Tty) {
            None => Gate {
                name: "incident-reproduced",
                passed: false,
                message: format!(
                    "no row {}: the gate cannot be judged",
                    incident_key(Contender::Tty)
                ),
            },
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
        });
    }
    out
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

    /// A complete stock matrix; `usb` and `tty` misses under rt-burst/fifo50.
    fn matrix(usb: u64, tty: u64) -> String {
        let mut log = String::from("booting...\n");
        for key in Expected::default().keys() {
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
        gates(&p, &Expected::default())
    }

    fn failed(g: &[Gate]) -> Vec<&'static str> {
        g.iter().filter(|g| !g.passed).map(|g| g.name).collect()
    }

    #[test]
    fn the_incident_reproduced_and_beaten_passes() {
        let g = judge(&matrix(0, 47));
        assert!(failed(&g).is_empty(), "{g:?}");
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
    fn missing_duplicate_short_and_malformed_rows_fail() {
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

        let short = full.replacen("n=2000", "n=1999", 1);
        assert_eq!(failed(&judge(&short)), ["rows-long-enough"]);

        let bad = format!("{full}timing kernel=stock load=idle\n");
        assert_eq!(failed(&judge(&bad)), ["rows-well-formed"]);
    }

    #[test]
    fn an_rt_only_run_is_not_judged_on_the_stock_gates() {
        let log = matrix(0, 47).replace("kernel=stock", "kernel=rt");
        let mut p = Parsed::default();
        p.add_log(&log);
        let exp = Expected {
            kernels: vec![Kernel::Rt],
            ..Expected::default()
        };
        let g = gates(&p, &exp);
        assert!(failed(&g).is_empty(), "{g:?}");
        assert!(!g.iter().any(|g| g.name == "incident-reproduced"));
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
