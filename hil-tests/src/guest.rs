//! Guest side: the case registry, the per-run context, and the client of the
//! control channel.
//!
//! A case is a plain function `fn(&mut Ctx) -> Outcome` registered in a
//! [`Case`] table; [`run_cases`] runs the selected ones in order, catches
//! panics, and prints one `RESULT` line per case. Cases talk to the host
//! runner through [`Ctx::ctl`] and report numbers with [`Ctx::metric`].

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::proto::{MetricLine, Mode, ResultLine, TraceExpect, Verdict};

/// What a case concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed; the text says what was seen.
    Pass(String),
    /// Failed; the text says why.
    Fail(String),
    /// Not applicable here; the text says why.
    Skip(String),
}

impl Outcome {
    /// The verdict and the text.
    pub fn parts(&self) -> (Verdict, &str) {
        match self {
            Outcome::Pass(t) => (Verdict::Pass, t),
            Outcome::Fail(t) => (Verdict::Fail, t),
            Outcome::Skip(t) => (Verdict::Skip, t),
        }
    }
}

/// `Ok(text)` passes, `Err(e)` fails with `e`'s message: lets a case body use
/// `?` and return `Result<String, String>`.
impl<E: fmt::Display> From<Result<String, E>> for Outcome {
    fn from(r: Result<String, E>) -> Self {
        match r {
            Ok(t) => Outcome::Pass(t),
            Err(e) => Outcome::Fail(e.to_string()),
        }
    }
}

/// One registered test case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short unique name (no whitespace), used in `RESULT` lines and filters.
    pub name: &'static str,
    /// One line on what it checks (`--list`).
    pub about: &'static str,
    /// The body.
    pub run: fn(&mut Ctx) -> Outcome,
}

/// Run-wide state handed to every case.
#[derive(Debug)]
pub struct Ctx {
    /// Path of the control channel's tty (guest `/dev/ttyS1` under vhil).
    pub ctl_path: String,
    /// Path of the FTDI tty created by ftdi_sio.
    pub tty_path: String,
    /// `--set key=value` parameters, for cases to read with [`Ctx::param`].
    pub params: BTreeMap<String, String>,
    /// A case still running after this long is reported as failed and the
    /// program exits (status 3): a hung case must not eat the host watchdog.
    pub case_timeout: Duration,
    ctl: Option<CtlClient>,
    current: String,
}

impl Ctx {
    /// A context with the default device paths and no parameters.
    pub fn new() -> Ctx {
        Ctx {
            ctl_path: "/dev/ttyS1".into(),
            tty_path: "/dev/ttyUSB0".into(),
            params: BTreeMap::new(),
            case_timeout: Duration::from_secs(60),
            ctl: None,
            current: String::new(),
        }
    }

    /// The control channel, opened on first use and kept open.
    pub fn ctl(&mut self) -> Result<&mut CtlClient, String> {
        if self.ctl.is_none() {
            let c = CtlClient::open(&self.ctl_path)
                .map_err(|e| format!("open control channel {}: {e}", self.ctl_path))?;
            self.ctl = Some(c);
        }
        Ok(self.ctl.as_mut().expect("just opened"))
    }

    /// Parameter `key` parsed as `T`, or `default` when absent. A value that
    /// does not parse is a configuration error: it panics, failing the case.
    pub fn param<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        match self.params.get(key) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("--set {key}={v}: cannot parse")),
        }
    }

    /// Prints `METRIC <name> k=v ...`.
    pub fn metric(&self, name: &str, values: &[(&str, String)]) {
        let line = MetricLine {
            name: name.into(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        emit(&line.to_string());
    }

    /// Asks the host runner to check, after the run, that the QEMU trace log
    /// has an `event` whose arguments contain `needle`; the check is reported
    /// as `RESULT <current case>.<check>`. Only meaningful under vhil.
    pub fn expect_trace(&self, check: &str, event: &str, needle: &str) {
        let t = TraceExpect {
            name: format!("{}.{check}", self.current),
            event: event.into(),
            needle: needle.into(),
        };
        emit(&t.to_string());
    }

    /// A diagnostic line (`# case: ...`), ignored by the runner's parser.
    pub fn log(&self, msg: &str) {
        emit(&format!("# {}: {msg}", self.current));
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

/// Prints one console line in a single call and flushes, so lines from the
/// test program's threads do not interleave. (`println!`, not a raw stdout
/// write, so the unit tests' output capture sees it.)
pub fn emit(line: &str) {
    println!("{line}");
    let _ = io::stdout().flush();
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed (panics included).
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
}

/// Which cases to run: `only` (if non-empty) then minus `skip`.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Run only these names (all when empty).
    pub only: Vec<String>,
    /// Never run these names.
    pub skip: Vec<String>,
}

impl Selection {
    /// Whether `name` is selected.
    pub fn wants(&self, name: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|n| n == name))
            && !self.skip.iter().any(|n| n == name)
    }

    /// Names in the selection that no case has (typos).
    pub fn unknown<'a>(&'a self, cases: &[Case]) -> Vec<&'a str> {
        self.only
            .iter()
            .chain(&self.skip)
            .filter(|n| !cases.iter().any(|c| c.name == n.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// Runs the selected cases in registry order, printing a `RESULT` line for
/// each. A panicking case fails; the run goes on.
pub fn run_cases(cases: &[Case], ctx: &mut Ctx, sel: &Selection) -> Summary {
    let mut sum = Summary::default();
    for case in cases.iter().filter(|c| sel.wants(c.name)) {
        ctx.current = case.name.to_string();
        let t0 = Instant::now();
        arm_watchdog(case.name, t0 + ctx.case_timeout);
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| (case.run)(ctx))).unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                Outcome::Fail(format!("panicked: {msg}"))
            });
        disarm_watchdog();
        let (verdict, text) = outcome.parts();
        match verdict {
            Verdict::Pass => sum.passed += 1,
            Verdict::Fail => sum.failed += 1,
            Verdict::Skip => sum.skipped += 1,
        }
        let line = ResultLine {
            name: case.name.into(),
            verdict,
            text: format!("{text} ({} ms)", t0.elapsed().as_millis()),
        };
        emit(&line.to_string());
    }
    ctx.current.clear();
    sum
}

/// The case the watchdog guards: (name, deadline).
static WATCHED: Mutex<Option<(&'static str, Instant)>> = Mutex::new(None);

fn arm_watchdog(name: &'static str, deadline: Instant) {
    static STARTED: Once = Once::new();
    *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, deadline));
    STARTED.call_once(|| {
        thread::spawn(|| {
            loop {
                thread::sleep(Duration::from_millis(100));
                let w = *WATCHED.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((name, deadline)) = w
                    && Instant::now() >= deadline
                {
                    let line = ResultLine {
                        name: name.into(),
                        verdict: Verdict::Fail,
                        text: "hung: case timeout expired, giving up on the run".into(),
                    };
                    emit(&line.to_string());
                    std::process::exit(3);
                }
            }
        });
    });
}

fn disarm_watchdog() {
    *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Client of the control channel: one request line out, one reply line in.
#[derive(Debug)]
pub struct CtlClient {
    port: TTYPort,
    pending: Vec<u8>,
    /// How long [`CtlClient::request`] waits for the reply.
    pub timeout: Duration,
}

impl CtlClient {
    /// Opens the control tty raw at 115200 (the speed is irrelevant for an
    /// emulated 16550 on a socket, but must be a valid one) and discards
    /// anything buffered from before.
    pub fn open(path: &str) -> io::Result<CtlClient> {
        let port = serialport::new(path, 115_200)
            .timeout(Duration::from_millis(50))
            .open_native()?;
        port.clear(ClearBuffer::All)?;
        Ok(CtlClient {
            port,
            pending: Vec::new(),
            timeout: Duration::from_secs(3),
        })
    }

    /// Sends `cmd` and returns the text after `OK ` of the reply. An `ERR`
    /// reply, a timeout or an I/O error is an `Err` with a description.
    pub fn request(&mut self, cmd: &str) -> Result<String, String> {
        self.pending.clear();
        let _ = self.port.clear(ClearBuffer::Input);
        self.port
            .write_all(format!("{cmd}\n").as_bytes())
            .and_then(|_| self.port.flush())
            .map_err(|e| format!("ctl write {cmd:?}: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if line.is_empty() {
                    continue;
                }
                return match line.split_once(' ').unwrap_or((line.as_str(), "")) {
                    ("OK", rest) => Ok(rest.to_string()),
                    ("ERR", rest) => Err(format!("ctl {cmd:?}: host said ERR {rest}")),
                    _ => Err(format!("ctl {cmd:?}: unexpected reply {line:?}")),
                };
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "ctl {cmd:?}: no reply within {:?} (partial {:?})",
                    self.timeout,
                    String::from_utf8_lossy(&self.pending)
                ));
            }
            let mut buf = [0u8; 256];
            match self.port.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("ctl read: {e}")),
            }
        }
    }

    /// `PING`; returns the round-trip time.
    pub fn ping(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        let r = self.request("PING")?;
        if r != "PONG" {
            return Err(format!("PING answered {r:?}"));
        }
        Ok(t0.elapsed())
    }

    /// `MODE ...`: returns once the host has switched the firmware.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), String> {
        self.request(&format!("MODE {mode}")).map(|_| ())
    }

    /// `UNPLUG after_ms down_ms`: returns at once; the unplug happens later.
    pub fn unplug(&mut self, after_ms: u64, down_ms: u64) -> Result<(), String> {
        self.request(&format!("UNPLUG {after_ms} {down_ms}"))
            .map(|_| ())
    }
}

/// Polls `cond` every `step` until it holds or `limit` passes; returns the
/// time it took, or `None` on timeout.
pub fn wait_until(
    limit: Duration,
    step: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        thread::sleep(step);
    }
}

/// Whether `path` exists and is a character device (pitfall: writing to a
/// missing /dev node creates a regular file on devtmpfs).
pub fn is_char_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(Path::new(path)).is_ok_and(|m| m.file_type().is_char_device())
}

/// A sysfs attribute, trimmed; `None` if unreadable.
pub fn sysfs_attr(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Percentile (nearest rank) of sorted samples; 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(_: &mut Ctx) -> Outcome {
        Outcome::Pass("ok".into())
    }
    fn boom(_: &mut Ctx) -> Outcome {
        panic!("boom")
    }
    fn skip(_: &mut Ctx) -> Outcome {
        Outcome::Skip("n/a".into())
    }

    #[test]
    fn runner_counts_and_survives_panics() {
        let cases = [
            Case {
                name: "a",
                about: "",
                run: pass,
            },
            Case {
                name: "b",
                about: "",
                run: boom,
            },
            Case {
                name: "c",
                about: "",
                run: skip,
            },
        ];
        let mut ctx = Ctx::new();
        let s = run_cases(&cases, &mut ctx, &Selection::default());
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
        let sel = Selection {
            only: vec!["a".into(), "zz".into()],
            skip: vec![],
        };
        assert_eq!(sel.unknown(&cases), vec!["zz"]);
        let s = run_cases(&cases, &mut ctx, &sel);
        assert_eq!(s.passed, 1);
        assert_eq!(s.failed + s.skipped, 0);
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn result_into_outcome() {
        let ok: Result<String, String> = Ok("fine".into());
        assert_eq!(Outcome::from(ok), Outcome::Pass("fine".into()));
        let bad: Result<String, String> = Err("nope".into());
        assert_eq!(Outcome::from(bad), Outcome::Fail("nope".into()));
    }
}
