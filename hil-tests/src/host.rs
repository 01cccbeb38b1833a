//! Host side: pieces of the `vhil` runner that are worth unit-testing on
//! their own: reading the guest console, and serving the control channel.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::firmware::Firmware;
use crate::proto::{
    BEGIN_MARKER, Command, END_MARKER, MetricLine, Report, ResultLine, TraceExpect, parse_report,
};

/// Milestones of the guest run, as offsets from QEMU's start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timeline {
    /// /init printed its first line.
    pub init: Option<Duration>,
    /// /init saw /dev/ttyUSB0.
    pub usb_ready: Option<Duration>,
    /// The results section began.
    pub begin: Option<Duration>,
    /// The results section ended.
    pub end: Option<Duration>,
    /// QEMU exited (set by the runner).
    pub exit: Option<Duration>,
}

/// Everything learnt from the console.
#[derive(Debug, Default)]
pub struct Console {
    in_section: bool,
    /// `RESULT` lines from inside the section.
    pub results: Vec<ResultLine>,
    /// `METRIC` lines from inside the section.
    pub metrics: Vec<MetricLine>,
    /// `TRACE-EXPECT` lines from inside the section.
    pub trace_expects: Vec<TraceExpect>,
    /// hil-guest's exit status, as /init reported it.
    pub guest_exit: Option<i32>,
    /// Milestones.
    pub timeline: Timeline,
}

impl Console {
    /// Takes one cleaned console line seen `at` after QEMU started. Report
    /// lines count only between the markers, so boot noise cannot fake one.
    pub fn take_line(&mut self, at: Duration, line: &str) {
        let tl = &mut self.timeline;
        if line.contains("vhil-init:") && tl.init.is_none() {
            tl.init = Some(at);
        }
        if line.contains("vhil-init: ttyUSB0 present") {
            tl.usb_ready = Some(at);
        }
        if let Some(rest) = line.split("vhil-init: hil-guest exit=").nth(1) {
            self.guest_exit = rest.trim().parse().ok();
        }
        if line.contains(BEGIN_MARKER) {
            tl.begin.get_or_insert(at);
            self.in_section = true;
            return;
        }
        if line.contains(END_MARKER) {
            tl.end.get_or_insert(at);
            self.in_section = false;
            return;
        }
        if !self.in_section {
            return;
        }
        match parse_report(line) {
            Some(Report::Result(r)) => self.results.push(r),
            Some(Report::Metric(m)) => self.metrics.push(m),
            Some(Report::TraceExpect(t)) => self.trace_expects.push(t),
            None => {}
        }
    }
}

/// Drops terminal escape sequences (SeaBIOS clears the screen) and other
/// control characters, so lines print and parse cleanly.
pub fn clean(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters until a final byte in @..~
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

/// Reads the console pipe line by line, logging each line with its time to
/// `log` and sending it on `tx`; sends `None` at EOF (QEMU gone).
pub fn spawn_console_reader(
    stdout: impl io::Read + Send + 'static,
    mut log: File,
    t0: Instant,
    tx: mpsc::Sender<Option<(Duration, String)>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match r.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = t0.elapsed();
                    let line = clean(&raw);
                    let _ = writeln!(log, "[{:8.3}] {line}", at.as_secs_f64());
                    if tx.send(Some((at, line))).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(None);
    })
}

/// The reply to one line received on the control channel, or `None` for a
/// line to ignore: blank lines, and anything that looks like our own reply
/// echoed back by a guest tty left in cooked mode (answering that would start
/// an endless ping-pong).
pub fn ctl_reply(fw: &Firmware, line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with("OK") || line.starts_with("ERR") {
        return None;
    }
    Some(match Command::parse(line) {
        Err(e) => format!("ERR {e}"),
        Ok(Command::Ping) => "OK PONG".into(),
        Ok(Command::Mode(m)) => {
            fw.set_mode(m);
            format!("OK MODE {m}")
        }
        Ok(Command::Unplug { after_ms, down_ms }) => {
            fw.unplug(
                Duration::from_millis(after_ms),
                Duration::from_millis(down_ms),
            );
            format!("OK UNPLUG after_ms={after_ms} down_ms={down_ms}")
        }
        Ok(Command::Stats) => {
            let s = fw.stats();
            format!(
                "OK connects={} rx={} tx={} requests={} unplugs={}",
                s.connects, s.rx_bytes, s.tx_bytes, s.frob_requests, s.unplugs
            )
        }
    })
}

/// Serves the control channel: connects to QEMU's `ctl.sock` (the guest's
/// second serial port, retrying every 20 ms) and answers each line with
/// [`ctl_reply`], logging the exchange to `log`. Ends when QEMU closes the
/// socket or `stop` is set.
pub fn spawn_ctl(
    sock: PathBuf,
    fw: Firmware,
    mut log: File,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut say = |m: &str| {
            let _ = writeln!(log, "{:9.3} {m}", t0.elapsed().as_secs_f64());
        };
        let stream = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        say("connected");
        // A read timeout lets the loop notice `stop`; `pending` keeps the
        // bytes of a line split across timeouts.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => return say(&format!("clone: {e}")),
        };
        let mut reader = BufReader::new(stream);
        let mut pending = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match reader.read_until(b'\n', &mut pending) {
                Ok(0) => return say("closed by QEMU"),
                Ok(_) if pending.ends_with(b"\n") => {}
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return say(&format!("read: {e}")),
            }
            let line = clean(&pending);
            pending.clear();
            let Some(reply) = ctl_reply(&fw, &line) else {
                continue;
            };
            say(&format!("<- {}  -> {reply}", line.trim()));
            if let Err(e) = writer.write_all(format!("{reply}\n").as_bytes()) {
                return say(&format!("write: {e}"));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_escapes_and_controls() {
        assert_eq!(
            clean(b"\x1bc\x1b[?7l\x1b[2JBooting..vhil-init: start\r\n"),
            "Booting..vhil-init: start"
        );
        assert_eq!(clean(b"RESULT a PASS x\r\n"), "RESULT a PASS x");
    }

    #[test]
    fn ctl_replies() {
        let dir = std::env::temp_dir().join(format!("vhil-host-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No socket at this path: the firmware just keeps retrying.
        let (fw, th) = Firmware::spawn(
            dir.join("none.sock"),
            crate::proto::Mode::Echo,
            File::create(dir.join("fw.log")).unwrap(),
        );
        assert_eq!(ctl_reply(&fw, "PING\r\n").as_deref(), Some("OK PONG"));
        assert_eq!(
            ctl_reply(&fw, "MODE frob 50").as_deref(),
            Some("OK MODE frob 50")
        );
        assert_eq!(fw.mode(), crate::proto::Mode::Frob { delay_us: 50 });
        assert!(ctl_reply(&fw, "BOGUS").unwrap().starts_with("ERR "));
        assert_eq!(ctl_reply(&fw, "OK PONG"), None);
        assert_eq!(ctl_reply(&fw, "  "), None);
        fw.stop();
        th.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn console_collects_only_inside_the_section() {
        let mut c = Console::default();
        let t = Duration::from_secs(1);
        c.take_line(t, "RESULT early PASS ignored");
        c.take_line(t, "vhil-init: start");
        c.take_line(t, BEGIN_MARKER);
        c.take_line(t, "RESULT a PASS fine");
        c.take_line(t, "METRIC m k=v");
        c.take_line(
            t,
            "TRACE-EXPECT a.baud usb_serial_set_baud baud rate 115384",
        );
        c.take_line(t, "vhil-init: hil-guest exit=0");
        c.take_line(t, END_MARKER);
        c.take_line(t, "RESULT late FAIL ignored");
        assert_eq!(c.results.len(), 1);
        assert_eq!(c.metrics.len(), 1);
        assert_eq!(c.trace_expects.len(), 1);
        assert_eq!(c.guest_exit, Some(0));
        assert!(c.timeline.init.is_some() && c.timeline.end.is_some());
    }
}
