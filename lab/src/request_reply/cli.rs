//! Command-line options.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// The incident's request/reply loop: send a request, wait for the reply
/// within a deadline, over and over; show the latency distribution and the
/// misses. Without an adapter it runs on the simulated FT232R.
#[derive(Parser, Debug, Clone)]
#[command(version, about, after_help = AFTER_HELP)]
pub struct Options {
    /// Simulated FT232R with the frobnicator responder (the default when no adapter is found).
    #[arg(long, group = "transport")]
    pub sim: bool,
    /// A real adapter through the userspace driver: serial number, bus-port path (1-1.2) or index; the first one if empty.
    #[arg(long, group = "transport", num_args = 0..=1, default_missing_value = "", value_name = "SELECTOR")]
    pub usb: Option<String>,
    /// A kernel tty (the ftdi_sio path, or any serial port).
    #[arg(long, group = "transport", value_name = "PATH")]
    pub tty: Option<PathBuf>,
    /// The kernel tty path on a pty pair with an in-process responder (no hardware).
    #[arg(long, group = "transport")]
    pub pty: bool,
    /// Run two transports one after the other under the same load and compare: sim, pty, usb, usb:SELECTOR or tty:PATH.
    #[arg(long, num_args = 2, value_names = ["A", "B"], group = "transport")]
    pub compare: Option<Vec<Target>>,

    /// Transactions to run.
    #[arg(long, default_value_t = 10_000, conflicts_with = "duration")]
    pub iterations: u64,
    /// Run for this many seconds instead of a count (more than 0, at most a week).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub duration: Option<f64>,
    /// Baud rate.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Request size in bytes.
    #[arg(long, default_value_t = 7)]
    pub request_size: usize,
    /// Reply size in bytes.
    #[arg(long, default_value_t = 1)]
    pub reply_size: usize,
    /// Deadline per transaction (e.g. 3.5ms, 800us, 1s; at most a week).
    #[arg(long, default_value = "3.5ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub deadline: Duration,
    /// Processing delay of the simulated/pty responder (e.g. 200us).
    #[arg(long, default_value = "200us", value_parser = parse_duration)]
    pub device_delay: Duration,
    /// FTDI latency timer in ms.
    #[arg(long, default_value_t = 1)]
    pub latency_timer: u8,
    /// CPU for the reader (and this loop); default: the last CPU.
    #[arg(long)]
    pub reader_cpu: Option<usize>,
    /// SCHED_FIFO priority of the reader (this loop runs 10 below it).
    #[arg(long, default_value_t = 80)]
    pub reader_priority: u8,
    /// Run without the realtime guarantee where it is not granted (recorded in the output).
    #[arg(long)]
    pub best_effort: bool,
    /// Lock the whole process (mlockall) instead of only the reader's hot
    /// path; needs CAP_IPC_LOCK or an unlimited memlock limit.
    #[arg(long)]
    pub lock_whole_process: bool,
    /// N CPU-hog threads at normal priority for the whole run (reproduces the incident's load).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub stress: usize,
    /// Do not check that each reply is the frobnicator's answer to its request.
    #[arg(long)]
    pub no_check: bool,
    /// Do not run the noise probe (a FIFO-99 thread per CPU that measures
    /// when the machine itself could not run anything; misses it explains
    /// are reported apart from the host path's).
    #[arg(long)]
    pub no_noise_probe: bool,
    /// Write the raw samples as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a latency histogram plot as SVG.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
The responder (simulated chip, pty, and the virtual HIL rig's firmware) is a
\"frobnicator\": every request is answered after the device delay with the
wrapping sum of its bytes. Exit code: 0 all in time, 1 the host path missed
a deadline, 2 an error (the message says what to do).

Misses are told apart by cause. A noise probe (a SCHED_FIFO 99 thread per
CPU) measures when the machine itself could not run even the highest
priority thread (a hypervisor preempting the vCPU, a non-preemptible kernel
section); on the simulated chip, its own thread's stalls are logged too. A
miss one of them alone explains is reported but not counted against the host
path. A kworker waiting behind CPU hogs does not delay the probe, so the
kernel tty path's delay stays counted in full.";

/// A transport to run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The simulated FT232R with the frobnicator.
    Sim,
    /// The kernel tty path on a pty pair with the frobnicator on the master.
    Pty,
    /// An adapter through the userspace driver (empty: the first one).
    Usb(String),
    /// A kernel tty.
    Tty(PathBuf),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        match s {
            "sim" => Ok(Target::Sim),
            "pty" => Ok(Target::Pty),
            "usb" => Ok(Target::Usb(String::new())),
            _ => {
                if let Some(sel) = s.strip_prefix("usb:") {
                    Ok(Target::Usb(sel.to_string()))
                } else if let Some(path) = s.strip_prefix("tty:") {
                    Ok(Target::Tty(path.into()))
                } else {
                    Err(format!(
                        "{s:?}: expected sim, pty, usb[:SELECTOR] or tty:PATH"
                    ))
                }
            }
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sim => f.write_str("sim"),
            Target::Pty => f.write_str("pty"),
            Target::Usb(s) if s.is_empty() => f.write_str("usb"),
            Target::Usb(s) => write!(f, "usb:{s}"),
            Target::Tty(p) => write!(f, "tty:{}", p.display()),
        }
    }
}

/// The longest duration the options take (a week): longer is a typo, and
/// `Duration::from_secs_f64` would panic on what does not fit a `Duration`.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// "3.5ms", "800us", "1s", "2" (ms); more than zero, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1e-3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 3.5ms"))?;
    checked_seconds(s, v * scale).map(Duration::from_secs_f64)
}

/// Seconds as a plain number ("10", "0.5"); more than zero, at most [`MAX_DURATION`].
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds like 10 or 0.5"))?;
    checked_seconds(s, v)
}

fn checked_seconds(text: &str, seconds: f64) -> Result<f64, String> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{text:?} must be a positive, finite duration"));
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{text:?} is longer than the longest allowed ({} s, a week)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::try_parse_from(std::iter::once("request_reply").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    // Issue 13 item 12: no panic, a message that says what is wrong.
    #[test]
    fn absurd_durations_are_refused_with_a_message() {
        for (args, says) in [
            (
                &["--deadline", "1e30s"][..],
                "longer than the longest allowed",
            ),
            (&["--deadline", "0ms"], "positive"),
            (&["--deadline", "-1ms"], "positive"),
            (&["--deadline", "nanms"], "positive"),
            (&["--duration", "-1"], "positive"),
            (&["--duration", "nan"], "positive"),
            (&["--duration", "inf"], "positive"),
            (&["--duration", "1e30"], "longer than the longest allowed"),
            (&["--duration", "ten"], "not a number of seconds"),
        ] {
            match parse(args) {
                Err(msg) => assert!(msg.contains(says), "{args:?}: {msg}"),
                Ok(o) => panic!("{args:?} accepted: {o:?}"),
            }
        }
    }

    #[test]
    fn sensible_durations_parse() {
        let o = parse(&["--deadline", "800us", "--duration", "0.5"]).unwrap();
        assert_eq!(o.deadline, Duration::from_micros(800));
        assert_eq!(o.duration, Some(0.5));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_millis(2));
        assert_eq!(parse_duration("168h").ok(), None);
        assert_eq!(parse_duration("604800s").unwrap(), MAX_DURATION);
    }
}
