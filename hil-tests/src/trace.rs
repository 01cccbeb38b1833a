//! Host side: assertions on QEMU's trace log (`-trace 'usb_serial_*' -D FILE`).
//!
//! QEMU's emulated FT232BM decodes the vendor requests the guest driver sends
//! (baud divisor, line settings, latency timer...) and logs them as trace
//! events, but never acts on them (no baud pacing). Checking the log is how a
//! test proves that the driver *asked* for the right settings.
//!
//! Log lines look like (`-msg timestamp=on` adds the `pid@secs:` prefix):
//! ```text
//! 1234@1700000000.123456:usb_serial_set_baud dev 0:1 baud rate 115384
//! usb_serial_set_data dev 0:1 parity N, data bits 8, stop bits 1
//! ```

use std::io;
use std::path::Path;

use crate::proto::{ResultLine, TraceExpect, Verdict};

/// One trace event.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEvent {
    /// Host wall-clock time in seconds, when the log has timestamps.
    pub time: Option<f64>,
    /// Event name, e.g. `usb_serial_set_baud`.
    pub name: String,
    /// Everything after the name, e.g. `dev 0:1 baud rate 115384`.
    pub args: String,
}

/// A parsed trace log.
#[derive(Debug, Clone, Default)]
pub struct TraceLog {
    /// Events in log order.
    pub events: Vec<TraceEvent>,
}

impl TraceLog {
    /// Parses the text of a trace log; lines that are not events are skipped.
    pub fn parse(text: &str) -> TraceLog {
        let events = text.lines().filter_map(parse_event).collect();
        TraceLog { events }
    }

    /// Reads and parses a trace log file.
    pub fn load(path: &Path) -> io::Result<TraceLog> {
        Ok(TraceLog::parse(&std::fs::read_to_string(path)?))
    }

    /// Events called `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TraceEvent> + 'a {
        self.events.iter().filter(move |e| e.name == name)
    }

    /// The first `name` event whose arguments contain `needle`.
    pub fn find(&self, name: &str, needle: &str) -> Option<&TraceEvent> {
        self.events
            .iter()
            .find(|e| e.name == name && e.args.contains(needle))
    }

    /// How many `name` events there are.
    pub fn count(&self, name: &str) -> usize {
        self.named(name).count()
    }
}

fn parse_event(line: &str) -> Option<TraceEvent> {
    let line = line.trim_end();
    // Optional "pid@secs.usecs:" prefix.
    let (time, rest) = match line.split_once(':') {
        Some((pre, rest)) if pre.contains('@') && !pre.contains(' ') => {
            let secs = pre.split_once('@').and_then(|(_, t)| t.parse().ok());
            (secs, rest)
        }
        _ => (None, line),
    };
    let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
    // Event names are C identifiers; this rejects QEMU's free-form warnings.
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some(TraceEvent {
        time,
        name: name.to_string(),
        args: args.to_string(),
    })
}

/// What a [`TraceCheck`] tests.
#[derive(Debug, Clone)]
pub enum Expect {
    /// At least one `event` whose arguments contain `needle`.
    Contains {
        /// Event name.
        event: String,
        /// Substring of the arguments ("" matches any).
        needle: String,
    },
    /// No `event` whose arguments contain `needle`.
    Absent {
        /// Event name.
        event: String,
        /// Substring of the arguments ("" matches any).
        needle: String,
    },
    /// Arbitrary logic: `Ok(text)` passes, `Err(text)` fails.
    Custom(fn(&TraceLog) -> Result<String, String>),
}

/// A named assertion on the trace log, reported as a `RESULT` line.
#[derive(Debug, Clone)]
pub struct TraceCheck {
    /// Name of the `RESULT`.
    pub name: String,
    /// What must hold.
    pub expect: Expect,
}

impl TraceCheck {
    /// Check that some `event` has arguments containing `needle`.
    pub fn contains(name: &str, event: &str, needle: &str) -> TraceCheck {
        TraceCheck {
            name: name.into(),
            expect: Expect::Contains {
                event: event.into(),
                needle: needle.into(),
            },
        }
    }

    /// Check that no `event` has arguments containing `needle`.
    pub fn absent(name: &str, event: &str, needle: &str) -> TraceCheck {
        TraceCheck {
            name: name.into(),
            expect: Expect::Absent {
                event: event.into(),
                needle: needle.into(),
            },
        }
    }

    /// Evaluates the check.
    pub fn eval(&self, log: &TraceLog) -> ResultLine {
        let (verdict, text) = match &self.expect {
            Expect::Contains { event, needle } => match log.find(event, needle) {
                Some(e) => (Verdict::Pass, format!("{} {}", e.name, e.args)),
                None => (
                    Verdict::Fail,
                    format!(
                        "no {event} with {needle:?} among {} such event(s){}",
                        log.count(event),
                        describe_some(log, event)
                    ),
                ),
            },
            Expect::Absent { event, needle } => match log.find(event, needle) {
                None => (Verdict::Pass, format!("no {event} with {needle:?}")),
                Some(e) => (Verdict::Fail, format!("unexpected {} {}", e.name, e.args)),
            },
            Expect::Custom(f) => match f(log) {
                Ok(t) => (Verdict::Pass, t),
                Err(t) => (Verdict::Fail, t),
            },
        };
        ResultLine {
            name: self.name.clone(),
            verdict,
            text,
        }
    }
}

/// The guest's deferred requests become checks.
impl From<&TraceExpect> for TraceCheck {
    fn from(t: &TraceExpect) -> Self {
        TraceCheck::contains(&t.name, &t.event, &t.needle)
    }
}

fn describe_some(log: &TraceLog, event: &str) -> String {
    let seen: Vec<&str> = log.named(event).take(3).map(|e| e.args.as_str()).collect();
    if seen.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {seen:?})")
    }
}

/// Checks the runner makes on every run, whatever the guest asked for: the
/// emulated device was reset during enumeration, the driver sent control
/// requests, and QEMU never saw a USB token it could not handle.
pub fn builtin_checks() -> Vec<TraceCheck> {
    vec![
        TraceCheck::contains("trace.device-reset", "usb_serial_reset", ""),
        TraceCheck::absent("trace.no-bad-token", "usb_serial_bad_token", ""),
        TraceCheck {
            name: "trace.control-requests".into(),
            expect: Expect::Custom(|log| {
                let n = log.count("usb_serial_handle_control");
                if n > 0 {
                    Ok(format!("{n} usb_serial_handle_control events"))
                } else {
                    Err("no usb_serial_handle_control events: is tracing on?".into())
                }
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
123@1700000000.000100:usb_serial_reset dev 0:1 reset
123@1700000000.000200:usb_serial_handle_control dev 0:1 got control 0x4009, value 0x10
usb_serial_set_baud dev 0:1 baud rate 115384
usb_serial_set_data dev 0:1 parity N, data bits 8, stop bits 1
qemu-system-x86_64: warning: something odd
";

    #[test]
    fn parses_with_and_without_timestamps() {
        let log = TraceLog::parse(LOG);
        assert_eq!(log.events.len(), 4);
        assert_eq!(log.events[0].name, "usb_serial_reset");
        assert_eq!(log.events[0].time, Some(1700000000.0001));
        assert_eq!(log.events[2].time, None);
        assert_eq!(log.events[2].args, "dev 0:1 baud rate 115384");
    }

    #[test]
    fn checks() {
        let log = TraceLog::parse(LOG);
        let ok = TraceCheck::contains("b", "usb_serial_set_baud", "baud rate 115384").eval(&log);
        assert_eq!(ok.verdict, Verdict::Pass);
        let bad = TraceCheck::contains("b", "usb_serial_set_baud", "baud rate 9600").eval(&log);
        assert_eq!(bad.verdict, Verdict::Fail);
        assert!(bad.text.contains("115384"), "{}", bad.text);
        let absent = TraceCheck::absent("u", "usb_serial_unsupported_control", "").eval(&log);
        assert_eq!(absent.verdict, Verdict::Pass);
        for c in builtin_checks() {
            assert_eq!(c.eval(&log).verdict, Verdict::Pass, "{}", c.name);
        }
        assert_eq!(
            builtin_checks()[0].eval(&TraceLog::default()).verdict,
            Verdict::Fail
        );
    }
}
