//! Wire formats shared by the guest program and the host runner.
//!
//! Two text protocols live here, so that both sides parse and print them with
//! the same code:
//! * the **control channel** (guest `/dev/ttyS1` <-> host `ctl.sock`):
//!   newline-terminated commands, each answered by one `OK ...`/`ERR ...` line;
//! * the **report lines** the guest prints on its console (`RESULT`, `METRIC`,
//!   `TRACE-EXPECT`) between the results markers.
//!
//! It also defines the frobnicator's request/reply rule, which the firmware
//! implements and the guest checks.

use std::fmt;

/// Printed by the guest's /init before the test program runs.
pub const BEGIN_MARKER: &str = "==== VHIL-RESULTS-BEGIN";
/// Printed by the guest's /init after the test program exits.
pub const END_MARKER: &str = "==== VHIL-RESULTS-END";

/// Bytes in one frobnicator request.
pub const FROB_REQUEST_LEN: usize = 7;

/// The frobnicator's answer to one request: the wrapping sum of its bytes.
/// A reply depends on every request byte, so a reply that belongs to another
/// request (lost, duplicated or reordered bytes) is very likely caught.
pub fn frob_reply(request: &[u8]) -> u8 {
    request.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// What the emulated device does with the bytes the guest sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every byte comes straight back, as if TX were wired to RX.
    Echo,
    /// Collects 7-byte requests and answers each with [`frob_reply`] after
    /// `delay_us` microseconds.
    Frob {
        /// Reply delay in microseconds.
        delay_us: u64,
    },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Echo => write!(f, "echo"),
            Mode::Frob { delay_us } => write!(f, "frob {delay_us}"),
        }
    }
}

/// One control-channel command (guest -> host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `PING` -> `OK PONG`.
    Ping,
    /// `MODE echo` / `MODE frob <delay_us>` -> `OK MODE ...`.
    Mode(Mode),
    /// `UNPLUG <after_ms> <down_ms>`: the host closes the device socket after
    /// `after_ms` (the guest sees a USB disconnect) and reconnects after
    /// another `down_ms`. Answered at once, before the unplug happens.
    Unplug {
        /// Delay before the disconnect, in milliseconds.
        after_ms: u64,
        /// How long the device stays unplugged, in milliseconds.
        down_ms: u64,
    },
    /// `STATS` -> `OK connects=.. rx=.. tx=.. requests=..` (firmware counters).
    Stats,
}

impl Command {
    /// Parses one command line (without its newline). Keywords are
    /// case-insensitive; extra whitespace is ignored.
    pub fn parse(line: &str) -> Result<Command, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize, what: &str| -> Result<u64, String> {
            let w = words.get(i).ok_or_else(|| format!("missing {what}"))?;
            w.parse().map_err(|_| format!("bad {what} {w:?}"))
        };
        let arity = |n: usize| -> Result<(), String> {
            if words.len() == n {
                Ok(())
            } else {
                Err(format!("expected {} argument(s)", n - 1))
            }
        };
        let kw = words.first().map(|w| w.to_ascii_uppercase());
        match kw.as_deref() {
            None => Err("empty command".into()),
            Some("PING") => arity(1).map(|_| Command::Ping),
            Some("STATS") => arity(1).map(|_| Command::Stats),
            Some("MODE") => match words.get(1).map(|w| w.to_ascii_lowercase()).as_deref() {
                Some("echo") => arity(2).map(|_| Command::Mode(Mode::Echo)),
                Some("frob") => {
                    arity(3)?;
                    Ok(Command::Mode(Mode::Frob {
                        delay_us: num(2, "delay_us")?,
                    }))
                }
                _ => Err("usage: MODE echo | MODE frob <delay_us>".into()),
            },
            Some("UNPLUG") => {
                arity(3)?;
                Ok(Command::Unplug {
                    after_ms: num(1, "after_ms")?,
                    down_ms: num(2, "down_ms")?,
                })
            }
            Some(other) => Err(format!("unknown command {other}")),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ping => write!(f, "PING"),
            Command::Stats => write!(f, "STATS"),
            Command::Mode(m) => write!(f, "MODE {m}"),
            Command::Unplug { after_ms, down_ms } => write!(f, "UNPLUG {after_ms} {down_ms}"),
        }
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The check failed: the run fails.
    Fail,
    /// The check could not run here (not a failure).
    Skip,
}

impl Verdict {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        }
    }

    fn parse(s: &str) -> Option<Verdict> {
        match s {
            "PASS" => Some(Verdict::Pass),
            "FAIL" => Some(Verdict::Fail),
            "SKIP" => Some(Verdict::Skip),
            _ => None,
        }
    }
}

/// `RESULT <name> PASS|FAIL|SKIP <free text>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLine {
    /// Case name (no whitespace).
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Free text: what was seen, or why it failed.
    pub text: String,
}

/// `METRIC <name> key=value ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricLine {
    /// Metric group name (no whitespace).
    pub name: String,
    /// Key/value pairs, in the order printed.
    pub values: Vec<(String, String)>,
}

/// `TRACE-EXPECT <name> <event> <needle...>`: the guest asks the host runner
/// to check, after QEMU has exited, that the QEMU trace log has an `<event>`
/// line whose arguments contain `<needle>`; the outcome becomes `RESULT <name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExpect {
    /// Name of the resulting check.
    pub name: String,
    /// QEMU trace event name, e.g. `usb_serial_set_baud`.
    pub event: String,
    /// Substring the event's arguments must contain (may be empty).
    pub needle: String,
}

/// Any report line the guest prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A check's verdict.
    Result(ResultLine),
    /// Measured numbers.
    Metric(MetricLine),
    /// A deferred host-side check of the QEMU trace log.
    TraceExpect(TraceExpect),
}

/// Replaces whitespace in a name so that a line stays parseable.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    if s.is_empty() { "unnamed".into() } else { s }
}

/// Keeps free text on one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " | ")
}

impl fmt::Display for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT {} {} {}",
            sanitize_name(&self.name),
            self.verdict.as_str(),
            one_line(&self.text)
        )
    }
}

impl fmt::Display for MetricLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "METRIC {}", sanitize_name(&self.name))?;
        for (k, v) in &self.values {
            write!(f, " {}={}", sanitize_name(k), sanitize_name(v))?;
        }
        Ok(())
    }
}

impl fmt::Display for TraceExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TRACE-EXPECT {} {} {}",
            sanitize_name(&self.name),
            sanitize_name(&self.event),
            one_line(&self.needle)
        )
    }
}

/// Parses a report line. Leading junk before the keyword is tolerated only if
/// it ends in whitespace or a control character (SeaBIOS's escape sequences
/// can glue onto the first console line); anything else is not a report.
pub fn parse_report(line: &str) -> Option<Report> {
    let line = line.trim_end_matches(['\r', '\n']);
    let start = ["RESULT ", "METRIC ", "TRACE-EXPECT "]
        .iter()
        .filter_map(|kw| line.find(kw))
        .min()?;
    if start > 0 {
        let prev = line[..start].chars().next_back()?;
        if !(prev.is_whitespace() || prev.is_control()) {
            return None;
        }
    }
    let line = &line[start..];
    let (kw, rest) = line.split_once(' ')?;
    match kw {
        "RESULT" => {
            let mut it = rest.splitn(3, ' ');
            let name = it.next()?.to_string();
            let verdict = Verdict::parse(it.next()?)?;
            let text = it.next().unwrap_or("").trim().to_string();
            Some(Report::Result(ResultLine {
                name,
                verdict,
                text,
            }))
        }
        "METRIC" => {
            let mut it = rest.split_whitespace();
            let name = it.next()?.to_string();
            let values = it
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Some(Report::Metric(MetricLine { name, values }))
        }
        "TRACE-EXPECT" => {
            let mut it = rest.splitn(3, ' ');
            let name = it.next()?.to_string();
            let event = it.next()?.to_string();
            let needle = it.next().unwrap_or("").trim().to_string();
            Some(Report::TraceExpect(TraceExpect {
                name,
                event,
                needle,
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for c in [
            Command::Ping,
            Command::Stats,
            Command::Mode(Mode::Echo),
            Command::Mode(Mode::Frob { delay_us: 250 }),
            Command::Unplug {
                after_ms: 200,
                down_ms: 500,
            },
        ] {
            assert_eq!(Command::parse(&c.to_string()), Ok(c));
        }
        assert_eq!(Command::parse("  ping  "), Ok(Command::Ping));
        assert!(Command::parse("MODE frob").is_err());
        assert!(Command::parse("MODE frob x").is_err());
        assert!(Command::parse("UNPLUG 1").is_err());
        assert!(Command::parse("PING 1").is_err());
        assert!(Command::parse("OK PONG").is_err());
        assert!(Command::parse("").is_err());
    }

    #[test]
    fn frob_reply_wraps() {
        assert_eq!(frob_reply(&[0; 7]), 0);
        assert_eq!(frob_reply(&[0xff, 1, 0, 0, 0, 0, 0]), 0);
        assert_eq!(frob_reply(&[1, 2, 3, 4, 5, 6, 7]), 28);
    }

    #[test]
    fn reports_round_trip() {
        let r = ResultLine {
            name: "tty echo".into(),
            verdict: Verdict::Fail,
            text: "got 3\nbytes".into(),
        };
        let printed = r.to_string();
        assert_eq!(printed, "RESULT tty_echo FAIL got 3 | bytes");
        let Some(Report::Result(back)) = parse_report(&printed) else {
            panic!("not parsed")
        };
        assert_eq!(back.name, "tty_echo");
        assert_eq!(back.verdict, Verdict::Fail);

        let m = MetricLine {
            name: "frob".into(),
            values: vec![("p50_us".into(), "71".into())],
        };
        assert_eq!(parse_report(&m.to_string()), Some(Report::Metric(m)));

        let t = TraceExpect {
            name: "baud".into(),
            event: "usb_serial_set_baud".into(),
            needle: "baud rate 115384".into(),
        };
        assert_eq!(parse_report(&t.to_string()), Some(Report::TraceExpect(t)));
    }

    #[test]
    fn report_parsing_is_strict_about_prefixes() {
        assert!(parse_report("\x07RESULT a PASS x").is_some());
        assert!(parse_report("  RESULT a PASS").is_some());
        assert!(parse_report("xRESULT a PASS x").is_none());
        assert!(parse_report("RESULT a MAYBE x").is_none());
        assert!(parse_report("hello").is_none());
    }
}
