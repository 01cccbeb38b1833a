//! `real-adapter`: the suite users run on a real adapter
//! (`hil-tests/tests/real_adapter`), run here against the virtual adapter.
//!
//! The test binary is built statically by `vtime/run.sh` with the features
//! `hardware-tests,hardware-jumpers,hardware-unplug` and sits at
//! `/bin/real_adapter`; this case attaches a loopback adapter (TX wired to
//! RX, RTS→CTS and DTR→DSR jumpers modelled), runs the binary with the
//! adapter named by its serial number, plays the person at the machine (it
//! unplugs and replugs the adapter when the suite asks), and reports every
//! test: PASS, FAIL, or SKIP with its reason (an `#[ignore]`d test, or a
//! `SKIPPED` line the suite printed: neither is counted as passed).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ftdi_rt::sim::Loopback;
use ftdi_rt::sim::usb::{UsbFunction, VirtualFtdi};
use ftdi_rt::{Chip, Interface, Timestamp};
use ftdi_rt_hil::guest::{Ctx, Outcome, emit};
use ftdi_rt_hil::proto::{ResultLine, Verdict};
use ftdi_rt_hil::vdev::{VhciThreads, VirtualDevice};

/// The loopback adapter's serial number (the suite opens it by it).
pub const SUITE_SERIAL: &str = "VTLOOP01";

/// How long the whole suite may take (guest time).
const SUITE_LIMIT: Duration = Duration::from_secs(900);

/// Where `vtime/run.sh` puts the suite's test binary.
pub const SUITE_BIN: &str = "/bin/real_adapter";

/// One test of the suite as its output tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// Pass, fail, or skipped (the suite said why).
    pub verdict: Verdict,
    /// The skip reason, or the failure's first line.
    pub text: String,
}

/// Reads libtest's output (`--test-threads=1`, stderr merged into stdout):
/// every `test NAME ... ` and the outcome after it, `SKIPPED NAME: why`
/// lines the suite writes around it, and each failure's panic message from
/// the `---- NAME stdout ----` sections.
pub fn parse_libtest(output: &str) -> Vec<TestOutcome> {
    let mut tests: Vec<TestOutcome> = Vec::new();
    let mut current: Option<usize> = None;
    for line in output.lines() {
        let mut rest = line;
        if let Some(after) = line.strip_prefix("test ")
            && let Some((name, tail)) = after.split_once(" ... ")
            && !name.contains(' ')
        {
            tests.push(TestOutcome {
                name: name.to_string(),
                verdict: Verdict::Fail,
                text: "no outcome in the output".into(),
            });
            current = Some(tests.len() - 1);
            rest = tail;
        }
        let Some(i) = current else { continue };
        let word = rest.trim();
        if let Some(why) = word.strip_prefix("SKIPPED ") {
            let why = why.split_once(": ").map_or(why, |(_, w)| w);
            tests[i].verdict = Verdict::Skip;
            tests[i].text = why.to_string();
        } else if word == "ok" || word.ends_with(" ok") {
            if tests[i].verdict != Verdict::Skip {
                tests[i].verdict = Verdict::Pass;
                tests[i].text.clear();
            }
            current = None;
        } else if word == "FAILED" || word.ends_with(" FAILED") {
            tests[i].verdict = Verdict::Fail;
            tests[i].text = "failed".into();
            current = None;
        } else if word == "ignored" || word.starts_with("ignored,") {
            tests[i].verdict = Verdict::Skip;
            tests[i].text = format!("#[ignore] {}", word.trim_start_matches("ignored"));
            current = None;
        }
    }
    // Panic messages of failed tests: "---- NAME stdout ----" then the
    // "panicked at" line and the message.
    let mut section: Option<String> = None;
    let mut lines = output.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            section = Some(name.to_string());
            continue;
        }
        if let Some(name) = &section
            && line.contains("panicked at")
        {
            let message = lines.peek().map_or("", |l| l.trim());
            if let Some(t) = tests.iter_mut().find(|t| &t.name == name) {
                t.text = message.to_string();
            }
            section = None;
        }
    }
    tests
}

/// The suite's prompts to the person at the machine, which the rig answers
/// by unplugging and replugging the virtual adapter.
const UNPLUG_PROMPT: &str = ">>> unplug the adapter now";
const REPLUG_PROMPT: &str = ">>> plug it back in";
/// How long after a prompt the rig acts (a person takes longer; data
/// streams meanwhile, so the unplug happens mid-stream).
const PROMPT_DELAY: Duration = Duration::from_millis(500);

/// Runs the suite against `dev` (named by its serial number `serial`),
/// playing the person at the machine: when the suite asks for the adapter
/// to be unplugged or plugged back in, the device is. Prints one
/// `RESULT real-adapter::<test>` line per test and returns the case's
/// outcome: failed if a test failed or none ran.
pub fn run_suite<F: UsbFunction + Send + 'static>(
    ctx: &Ctx,
    dev: &mut VirtualDevice<F>,
    serial: &str,
    limit: Duration,
) -> Result<String, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let t0 = Instant::now();
    let mut child = Command::new(SUITE_BIN)
        .args(["--test-threads=1"])
        .env("FTDI_RT_HIL_DEVICE", format!("serial:{serial}"))
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(|e| format!("pipe: {e}"))?)
        .stderr(writer)
        .spawn()
        .map_err(|e| format!("{SUITE_BIN}: {e}"))?;
    // Lines arrive through a thread, so this one can watch the clock (the
    // suite's own watchdogs end a hung test, this ends a hung suite) and
    // answer prompts while the suite runs.
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = String::new();
    let mut prompt: Option<(Instant, bool)> = None;
    let mut finished = None;
    loop {
        match lines.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                if line.contains(UNPLUG_PROMPT) {
                    prompt = Some((Instant::now() + PROMPT_DELAY, false));
                } else if line.contains(REPLUG_PROMPT) {
                    prompt = Some((Instant::now() + PROMPT_DELAY, true));
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The suite closed its output: it has ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                finished = Some(child.wait().map_err(|e| format!("wait: {e}"))?);
            }
        }
        if let Some((at, replug)) = prompt
            && Instant::now() >= at
        {
            prompt = None;
            let done = if replug { dev.replug() } else { dev.unplug() };
            let what = if replug { "replugged" } else { "unplugged" };
            let note = match done {
                Ok(took) => format!("# rig: {what} the adapter in {} ms", took.as_millis()),
                Err(e) => format!("# rig: could not have the adapter {what}: {e}"),
            };
            output.push_str(&note);
            output.push('\n');
        }
        if let Some(status) = finished {
            break status_summary(ctx, &output, status, t0);
        }
        if t0.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{SUITE_BIN} still running after {limit:?}: killed"));
        }
    }
}

/// Logs the output, prints a `RESULT` per test, and sums them up.
fn status_summary(
    ctx: &Ctx,
    output: &str,
    status: std::process::ExitStatus,
    t0: Instant,
) -> Result<String, String> {
    for line in output.lines() {
        ctx.log(line);
    }
    let tests = parse_libtest(output);
    for t in &tests {
        let text = if t.text.is_empty() {
            "on the virtual adapter".to_string()
        } else {
            t.text.clone()
        };
        let line = ResultLine {
            name: format!("real-adapter::{}", t.name),
            verdict: t.verdict,
            text,
        };
        emit(&line.to_string());
    }
    let count = |v: Verdict| tests.iter().filter(|t| t.verdict == v).count();
    let (passed, failed, skipped) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip),
    );
    let summary = format!(
        "{passed} passed, {failed} failed, {skipped} skipped of {} tests in {:.1} s ({status})",
        tests.len(),
        t0.elapsed().as_secs_f64()
    );
    if tests.is_empty() || failed > 0 || !status.success() {
        return Err(summary);
    }
    Ok(summary)
}

/// The case: a loopback FT232R with the handshake jumpers, and the suite.
pub fn real_adapter(ctx: &mut Ctx) -> Outcome {
    let vhci: VhciThreads = ctx.param("vhci", VhciThreads::DEFAULT);
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let function = VirtualFtdi::builder(Chip::Ft232R)
            .device(Interface::A, Loopback::with_handshake_jumpers())
            .serial_number(SUITE_SERIAL)
            .build(Timestamp::now())
            .map_err(|e| format!("building the loopback FT232R: {e}"))?;
        let mut dev = VirtualDevice::attach(function, vhci, 1)?;
        ctx.log(&dev.describe());
        let summary = run_suite(ctx, &mut dev, SUITE_SERIAL, SUITE_LIMIT)?;
        ctx.log(&dev.describe());
        Ok(summary)
    };
    run(ctx).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\nrunning 4 tests\n\
test a_passes ... \n---- a_passes (adapter: serial FT1)\n  opened\nok\n\
test b_skips ... SKIPPED b_skips: prompts you to unplug; set FTDI_RT_HIL_UNPLUG=1\nok\n\
test c_fails ... FAILED\n\
test d_quiet ... ok\n\n\
failures:\n\n---- c_fails stdout ----\n\nthread 'c_fails' panicked at tests/x.rs:1:1:\nCTS is not asserted\n\n\
failures:\n    c_fails\n\ntest result: FAILED. 3 passed; 1 failed; 0 ignored\n";

    #[test]
    fn libtest_output_gives_each_tests_verdict() {
        let t = parse_libtest(OUTPUT);
        let got: Vec<(&str, Verdict, &str)> = t
            .iter()
            .map(|t| (t.name.as_str(), t.verdict, t.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a_passes", Verdict::Pass, ""),
                (
                    "b_skips",
                    Verdict::Skip,
                    "prompts you to unplug; set FTDI_RT_HIL_UNPLUG=1"
                ),
                ("c_fails", Verdict::Fail, "CTS is not asserted"),
                ("d_quiet", Verdict::Pass, ""),
            ]
        );
    }
}
