//! The timing tier's report lines: one `timing` row per (kernel, load, path,
//! vhci) combination, and one `timing-hist` line with its latency histogram.
//!
//! The row format is the issue's contract, letter for letter:
//! ```text
//! timing kernel=<stock|rt> load=<idle|hogs|rt-burst|kwork> path=<usb|tty|libftdi> vhci=<fifo50|other> n=<N> p50_us=<> p90_us=<> p99_us=<> p999_us=<> max_us=<> misses=<>
//! ```
//! The guest prints both lines; the host report ([`crate::timing::report`])
//! finds them anywhere in a console line (the runner may prefix timestamps,
//! and SeaBIOS's escape sequences can glue onto the first line).

use std::fmt;
use std::str::FromStr;

/// Declares a closed set of names that print and parse as the given words.
macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in report order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word in a report line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{} must be one of {}, not {s:?}",
                        stringify!($name).to_lowercase(),
                        [$($word),+].join("|")
                    )),
                }
            }
        }
    };
}

words! {
    /// Which guest kernel ran.
    Kernel {
        /// Debian's stock kernel (`linux-image-amd64`).
        Stock = "stock",
        /// Debian's PREEMPT_RT kernel (`linux-image-rt-amd64`).
        Rt = "rt",
    }
}

words! {
    /// What else the guest was doing while the loop ran.
    Load {
        /// Nothing.
        Idle = "idle",
        /// Busy threads at normal priority (SCHED_OTHER).
        Hogs = "hogs",
        /// A SCHED_FIFO 10 task busy 2 ms in every 10 ms, below the application.
        RtBurst = "rt-burst",
        /// A flood of tty traffic on pty pairs: `flush_to_ldisc` work on the
        /// same kworkers as ftdi_sio's.
        Kwork = "kwork",
    }
}

words! {
    /// Which contender ran the loop.
    Contender {
        /// ftdi-rt's userspace path (`Port::open_usb`).
        Usb = "usb",
        /// The kernel path (`Port::open_tty` on ftdi_sio's /dev/ttyUSBn).
        Tty = "tty",
        /// A synchronous C loop on libftdi1.
        Libftdi = "libftdi",
    }
}

words! {
    /// The scheduling of the `vhci_rx`/`vhci_tx` kthreads, which stand in for
    /// the host controller's interrupt.
    Vhci {
        /// SCHED_FIFO 50, as threaded IRQs run on PREEMPT_RT.
        Fifo50 = "fifo50",
        /// Left at SCHED_OTHER, as the kernel creates them.
        Other = "other",
    }
}

/// Parses a comma-separated list of words (`idle,rt-burst`); empty items
/// are skipped, so `""` is the empty list.
///
/// # Errors
/// The first word that is not one of `T`'s.
pub fn parse_list<T: FromStr<Err = String>>(s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::parse)
        .collect()
}

/// What identifies a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// The guest kernel.
    pub kernel: Kernel,
    /// The load.
    pub load: Load,
    /// The contender.
    pub path: Contender,
    /// The vhci kthreads' scheduling.
    pub vhci: Vhci,
}

impl fmt::Display for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel={} load={} path={} vhci={}",
            self.kernel, self.load, self.path, self.vhci
        )
    }
}

/// One measured row. Latencies in µs; a miss counts in the percentiles at the
/// time the loop gave up on it (at least the deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingRow {
    /// What was measured.
    pub key: RowKey,
    /// Transactions run, misses included.
    pub n: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// The largest.
    pub max_us: u64,
    /// Replies not in hand by the deadline.
    pub misses: u64,
}

/// The keyword that starts a row.
pub const ROW_KEYWORD: &str = "timing";
/// The keyword that starts a histogram line.
pub const HIST_KEYWORD: &str = "timing-hist";
/// The keyword that starts a plan line.
pub const PLAN_KEYWORD: &str = "timing-plan";

/// What a boot's matrix is about to measure, printed before the first row:
/// the report expects exactly these rows, and judges the gates on them.
/// ```text
/// timing-plan kernel=stock n=2000 deadline_us=3500 loads=idle,hogs,rt-burst,kwork paths=usb,tty,libftdi other_loads=rt-burst
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimingPlan {
    /// The kernel the rows will name.
    pub kernel: Kernel,
    /// Transactions per row.
    pub n: u64,
    /// The deadline, µs.
    pub deadline_us: u64,
    /// Loads with vhci at fifo50.
    pub loads: Vec<Load>,
    /// Contenders.
    pub paths: Vec<Contender>,
    /// Loads repeated with vhci at SCHED_OTHER.
    pub other_loads: Vec<Load>,
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for TimingPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PLAN_KEYWORD} kernel={} n={} deadline_us={} loads={} paths={} other_loads={}",
            self.kernel,
            self.n,
            self.deadline_us,
            join(&self.loads),
            join(&self.paths),
            join(&self.other_loads)
        )
    }
}

impl TimingPlan {
    /// Every row key the plan promises, in run order.
    pub fn keys(&self) -> Vec<RowKey> {
        let plan = self
            .loads
            .iter()
            .map(|&l| (Vhci::Fifo50, l))
            .chain(self.other_loads.iter().map(|&l| (Vhci::Other, l)));
        let mut keys = Vec::new();
        for (vhci, load) in plan {
            for &path in &self.paths {
                keys.push(RowKey {
                    kernel: self.kernel,
                    load,
                    path,
                    vhci,
                });
            }
        }
        keys
    }

    /// Parses a console line, as [`TimingRow::find_in`].
    pub fn find_in(line: &str) -> Option<Result<TimingPlan, String>> {
        let rest = after_keyword(line, PLAN_KEYWORD)?;
        Some(Self::parse_fields(rest).map_err(|e| format!("bad plan line {line:?}: {e}")))
    }

    fn parse_fields(rest: &str) -> Result<TimingPlan, String> {
        let all = fields(rest)?;
        let mut it = all.into_iter();
        let plan = TimingPlan {
            kernel: take(&mut it, "kernel")?.parse()?,
            n: number(take(&mut it, "n")?, "n")?,
            deadline_us: number(take(&mut it, "deadline_us")?, "deadline_us")?,
            loads: parse_list(take(&mut it, "loads")?)?,
            paths: parse_list(take(&mut it, "paths")?)?,
            other_loads: parse_list(take(&mut it, "other_loads")?)?,
        };
        if let Some((k, _)) = it.next() {
            return Err(format!("unexpected field {k}= after other_loads="));
        }
        Ok(plan)
    }
}

impl fmt::Display for TimingRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ROW_KEYWORD} {} n={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} misses={}",
            self.key,
            self.n,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.misses
        )
    }
}

/// The latency histogram of a row: counts per bin of `bin_us` µs, non-empty
/// bins only, as `counts=<bin start µs>:<count>,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistLine {
    /// The row it belongs to.
    pub key: RowKey,
    /// Bin width in µs.
    pub bin_us: u64,
    /// (bin start µs, count), ascending, counts > 0.
    pub bins: Vec<(u64, u64)>,
}

impl fmt::Display for HistLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{HIST_KEYWORD} {} bin_us={} counts=",
            self.key, self.bin_us
        )?;
        for (i, (lo, c)) in self.bins.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{lo}:{c}")?;
        }
        Ok(())
    }
}

/// Finds `keyword kernel=` in a console line where it starts a word (at the
/// start, or after whitespace or a control character) and returns the
/// fields from `kernel=` on. (`RESULT timing ...` is no row.)
fn after_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let line = line.trim_end_matches(['\r', '\n']);
    let pattern = format!("{keyword} kernel=");
    let mut from = 0;
    while let Some(found) = line[from..].find(&pattern) {
        let at = from + found;
        let starts_word = line[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c.is_control());
        if starts_word {
            return Some(&line[at + keyword.len() + 1..]);
        }
        from = at + pattern.len();
    }
    None
}

/// The `key=value` fields of a line, in order.
fn fields(rest: &str) -> Result<Vec<(&str, &str)>, String> {
    rest.split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .ok_or_else(|| format!("{kv:?} is not key=value"))
        })
        .collect()
}

/// Takes the next field, which must be named `key`.
fn take<'a>(
    it: &mut impl Iterator<Item = (&'a str, &'a str)>,
    key: &str,
) -> Result<&'a str, String> {
    match it.next() {
        Some((k, v)) if k == key => Ok(v),
        Some((k, _)) => Err(format!("expected {key}=, found {k}=")),
        None => Err(format!("missing {key}=")),
    }
}

fn number(v: &str, key: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{key}={v:?} is not a whole number"))
}

fn key_fields<'a>(it: &mut impl Iterator<Item = (&'a str, &'a str)>) -> Result<RowKey, String> {
    Ok(RowKey {
        kernel: take(it, "kernel")?.parse()?,
        load: take(it, "load")?.parse()?,
        path: take(it, "path")?.parse()?,
        vhci: take(it, "vhci")?.parse()?,
    })
}

impl TimingRow {
    /// Parses a console line. `None`: not a row; `Some(Err)`: a row that
    /// does not follow the format (which the report treats as a failure).
    pub fn find_in(line: &str) -> Option<Result<TimingRow, String>> {
        let rest = after_keyword(line, ROW_KEYWORD)?;
        Some(Self::parse_fields(rest).map_err(|e| format!("bad timing row {line:?}: {e}")))
    }

    fn parse_fields(rest: &str) -> Result<TimingRow, String> {
        let all = fields(rest)?;
        let mut it = all.into_iter();
        let key = key_fields(&mut it)?;
        let mut num = |k: &str| take(&mut it, k).and_then(|v| number(v, k));
        let row = TimingRow {
            key,
            n: num("n")?,
            p50_us: num("p50_us")?,
            p90_us: num("p90_us")?,
            p99_us: num("p99_us")?,
            p999_us: num("p999_us")?,
            max_us: num("max_us")?,
            misses: num("misses")?,
        };
        if let Some((k, _)) = it.next() {
            return Err(format!("unexpected field {k}= after misses="));
        }
        Ok(row)
    }
}

impl HistLine {
    /// Parses a console line, as [`TimingRow::find_in`].
    pub fn find_in(line: &str) -> Option<Result<HistLine, String>> {
        let rest = after_keyword(line, HIST_KEYWORD)?;
        Some(Self::parse_fields(rest).map_err(|e| format!("bad histogram line {line:?}: {e}")))
    }

    fn parse_fields(rest: &str) -> Result<HistLine, String> {
        let all = fields(rest)?;
        let mut it = all.into_iter();
        let key = key_fields(&mut it)?;
        let bin_us = number(take(&mut it, "bin_us")?, "bin_us")?;
        if bin_us == 0 {
            return Err("bin_us=0".into());
        }
        let counts = take(&mut it, "counts")?;
        let bins = counts
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (lo, c) = pair
                    .split_once(':')
                    .ok_or_else(|| format!("{pair:?} is not <start>:<count>"))?;
                Ok((number(lo, "bin start")?, number(c, "bin count")?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(HistLine { key, bin_us, bins })
    }

    /// Transactions the histogram holds.
    pub fn total(&self) -> u64 {
        self.bins.iter().map(|&(_, c)| c).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RowKey {
        RowKey {
            kernel: Kernel::Stock,
            load: Load::RtBurst,
            path: Contender::Usb,
            vhci: Vhci::Fifo50,
        }
    }

    #[test]
    fn row_prints_the_contract_letter_for_letter_and_parses_back() {
        let row = TimingRow {
            key: key(),
            n: 2000,
            p50_us: 1998,
            p90_us: 1999,
            p99_us: 2000,
            p999_us: 2401,
            max_us: 2406,
            misses: 0,
        };
        let line = row.to_string();
        assert_eq!(
            line,
            "timing kernel=stock load=rt-burst path=usb vhci=fifo50 n=2000 p50_us=1998 \
             p90_us=1999 p99_us=2000 p999_us=2401 max_us=2406 misses=0"
        );
        assert_eq!(TimingRow::find_in(&line), Some(Ok(row)));
        // A runner's timestamp prefix and SeaBIOS's escape glue are tolerated.
        assert_eq!(
            TimingRow::find_in(&format!("[  12.5] {line}")),
            Some(Ok(row))
        );
        assert_eq!(
            TimingRow::find_in(&format!("\x1b[2J\x1b{line}\r")),
            Some(Ok(row))
        );
        assert_eq!(TimingRow::find_in(&format!("ROM..{line}")), None);
    }

    #[test]
    fn lines_that_are_not_rows_or_break_the_format() {
        assert_eq!(TimingRow::find_in("RESULT timing PASS ok"), None);
        assert_eq!(TimingRow::find_in("xtiming kernel=stock"), None);
        // The histogram keyword is not a row.
        assert_eq!(TimingRow::find_in("timing-hist kernel=stock"), None);
        for bad in [
            "timing kernel=stock load=idle path=usb vhci=fifo50 n=1",
            "timing kernel=vanilla load=idle path=usb vhci=fifo50 n=1 p50_us=1 p90_us=1 p99_us=1 p999_us=1 max_us=1 misses=0",
            "timing kernel=rt load=idle path=usb vhci=fifo50 n=1 p50_us=1 p90_us=1 p99_us=1 p999_us=1 max_us=1 misses=0 extra=1",
            "timing kernel=rt load=idle vhci=fifo50 path=usb n=1 p50_us=1 p90_us=1 p99_us=1 p999_us=1 max_us=1 misses=0",
            "timing kernel=rt load=idle path=usb vhci=fifo50 n=1 p50_us=1.5 p90_us=1 p99_us=1 p999_us=1 max_us=1 misses=0",
        ] {
            assert!(
                matches!(TimingRow::find_in(bad), Some(Err(_))),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn histogram_line_round_trips() {
        let h = HistLine {
            key: key(),
            bin_us: 50,
            bins: vec![(1950, 1990), (2400, 10)],
        };
        let line = h.to_string();
        assert_eq!(
            line,
            "timing-hist kernel=stock load=rt-burst path=usb vhci=fifo50 bin_us=50 counts=1950:1990,2400:10"
        );
        assert_eq!(HistLine::find_in(&line), Some(Ok(h.clone())));
        assert_eq!(h.total(), 2000);
        assert!(matches!(
            HistLine::find_in(
                "timing-hist kernel=stock load=idle path=usb vhci=other bin_us=0 counts="
            ),
            Some(Err(_))
        ));
    }

    #[test]
    fn plan_line_round_trips_and_lists_its_rows() {
        let plan = TimingPlan {
            kernel: Kernel::Stock,
            n: 2000,
            deadline_us: 3500,
            loads: vec![Load::Idle, Load::RtBurst],
            paths: vec![Contender::Usb, Contender::Tty],
            other_loads: vec![],
        };
        let line = plan.to_string();
        assert_eq!(
            line,
            "timing-plan kernel=stock n=2000 deadline_us=3500 loads=idle,rt-burst paths=usb,tty other_loads="
        );
        assert_eq!(
            TimingPlan::find_in(&format!("[ 1.0] {line}")),
            Some(Ok(plan.clone()))
        );
        // A plan is neither a row nor a histogram.
        assert_eq!(TimingRow::find_in(&line), None);
        assert_eq!(HistLine::find_in(&line), None);
        assert_eq!(plan.keys().len(), 4);
        assert_eq!(
            plan.keys()[1].to_string(),
            "kernel=stock load=idle path=tty vhci=fifo50"
        );
    }

    #[test]
    fn words_parse_and_list_their_choices() {
        assert_eq!("rt-burst".parse::<Load>(), Ok(Load::RtBurst));
        let e = "burst".parse::<Load>().unwrap_err();
        assert!(e.contains("idle|hogs|rt-burst|kwork"), "{e}");
        assert_eq!(Contender::ALL.len(), 3);
        assert_eq!(
            parse_list::<Load>(" idle,rt-burst,"),
            Ok(vec![Load::Idle, Load::RtBurst])
        );
        assert_eq!(parse_list::<Load>(""), Ok(vec![]));
        assert!(parse_list::<Contender>("usb,serial").is_err());
    }
}
