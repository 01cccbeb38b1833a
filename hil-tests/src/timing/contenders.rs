//! The three contenders, running the incident's loop on the same device:
//! ftdi-rt's userspace path ([`Port::open_usb`]), the kernel path through
//! ftdi_sio ([`Port::open_tty`] on its /dev/ttyUSBn, which sets
//! `ASYNC_LOW_LATENCY` and the 1 ms latency timer), and the libftdi1 C loop
//! (`hil-tests/vtime/contenders/libftdi_loop.c`), whose per-transaction
//! latencies are folded into the same statistics.
//!
//! The loop: a 7-byte request, the frobnicator's 1-byte reply, a deadline.
//! Request `i` is the same bytes on every contender (and in the C program).
//! The calling thread is the application: the caller runs it at the
//! application's priority; the C program sets the same priority itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::{Error, Port, PortConfig, ReplyEnd, Selector};

use super::recorder::LatencyRecorder;
use super::row::Contender;
use crate::guest::{is_char_device, wait_until};

/// Bytes in a request.
pub const REQUEST_LEN: usize = 7;

/// The request of transaction `i` (the C loop computes the same bytes).
pub fn request(i: usize) -> [u8; REQUEST_LEN] {
    std::array::from_fn(|k| i.wrapping_mul(31).wrapping_add(k) as u8)
}

/// The loop's parameters.
#[derive(Clone, Copy, Debug)]
pub struct LoopSpec {
    /// Transactions per row.
    pub n: usize,
    /// Transactions run first and not counted (caches, page faults, the
    /// chip's first latency-timer period).
    pub warmup: usize,
    /// The reply deadline.
    pub deadline: Duration,
    /// Baud rate.
    pub baud: u32,
    /// The chip's latency timer.
    pub latency_ms: u8,
    /// The application's SCHED_FIFO priority (the C program's too).
    pub app_priority: u8,
}

impl Default for LoopSpec {
    /// The incident: 2000 transactions, 3.5 ms deadline, 115200 Bd, 1 ms
    /// latency timer, application at SCHED_FIFO 70.
    fn default() -> Self {
        LoopSpec {
            n: 2000,
            warmup: 20,
            deadline: Duration::from_micros(3500),
            baud: 115_200,
            latency_ms: 1,
            app_priority: 70,
        }
    }
}

/// Where the contenders find the device.
#[derive(Clone, Debug)]
pub struct Device {
    /// ftdi_sio's tty for the device.
    pub tty: PathBuf,
    /// The device for ftdi-rt's userspace path.
    pub selector: Selector,
    /// VID and PID, for libftdi.
    pub usb_id: (u16, u16),
    /// The libftdi loop's binary.
    pub libftdi_loop: PathBuf,
}

/// What a contender measured, and notes for the log.
#[derive(Debug)]
pub struct Measured {
    /// The latencies.
    pub recorder: LatencyRecorder,
    /// What the run noted (statistics, settings), one line.
    pub notes: String,
}

/// Runs `contender`'s loop on `device`.
///
/// # Errors
/// The port did not open or configure, the loop failed on something other
/// than a deadline miss, or the kernel path could not get its latency settings.
pub fn run(contender: Contender, device: &Device, spec: &LoopSpec) -> Result<Measured, String> {
    let config = PortConfig::default()
        .with_baud(spec.baud)
        .with_latency_timer_ms(spec.latency_ms);
    match contender {
        Contender::Usb => {
            let mut port =
                Port::open_usb(&device.selector, &config).map_err(|e| format!("open_usb: {e}"))?;
            let recorder = run_port(&mut port, spec)?;
            let s = port.stats();
            let notes = format!(
                "reader {}; packets {} ({} status-only)",
                s.realtime, s.packets, s.status_only_packets
            );
            Ok(Measured { recorder, notes })
        }
        Contender::Tty => {
            wait_for_tty(&device.tty)?;
            let mut port = Port::open_tty(&device.tty, &config)
                .map_err(|e| format!("open_tty {}: {e}", device.tty.display()))?;
            let info = port.transport_info();
            if let Some(n) = info.notes.iter().find(|n| n.contains("latency timer")) {
                return Err(format!("the kernel path is not at its best: {n}"));
            }
            let timer = latency_timer_of(&device.tty);
            if timer != Some(u32::from(spec.latency_ms)) {
                return Err(format!(
                    "ftdi_sio's latency_timer reads {timer:?} after opening, not {}",
                    spec.latency_ms
                ));
            }
            let recorder = run_port(&mut port, spec)?;
            let notes = format!(
                "reader {}; latency_timer {} ms, ASYNC_LOW_LATENCY",
                port.stats().realtime,
                spec.latency_ms
            );
            Ok(Measured { recorder, notes })
        }
        Contender::Libftdi => {
            let measured = run_libftdi(device, spec)?;
            // libftdi re-attaches ftdi_sio on close; the next contender may need it.
            wait_for_tty(&device.tty)?;
            Ok(measured)
        }
    }
}

/// The loop over an open port.
fn run_port(port: &mut Port, spec: &LoopSpec) -> Result<LatencyRecorder, String> {
    std::thread::sleep(Duration::from_millis(20));
    port.receiver().discard_pending();
    let mut recorder = LatencyRecorder::new();
    for i in 0..spec.warmup + spec.n {
        let req = request(i);
        let counted = i >= spec.warmup;
        match port.transact(&req, ReplyEnd::Length(1), spec.deadline) {
            Ok(t) => {
                let right = t.bytes() == [Frobnicator::reply_for(&req)];
                if counted {
                    recorder.record(t.latency(), false);
                    if !right {
                        recorder.wrong_reply();
                    }
                }
            }
            Err(Error::DeadlineMissed { elapsed }) => {
                if counted {
                    recorder.record(elapsed, true);
                }
            }
            Err(e) => return Err(format!("transaction {i}: {e}")),
        }
    }
    Ok(recorder)
}

/// The latency timer ftdi_sio reports for `tty` in sysfs.
fn latency_timer_of(tty: &Path) -> Option<u32> {
    let name = tty.file_name()?.to_str()?;
    std::fs::read_to_string(format!("/sys/class/tty/{name}/device/latency_timer"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Waits (up to 5 s) for ftdi_sio's tty, which comes back after a userspace
/// driver releases the interface.
pub fn wait_for_tty(tty: &Path) -> Result<(), String> {
    let path = tty.to_string_lossy();
    wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        is_char_device(&path)
    })
    .map(drop)
    .ok_or_else(|| format!("{path} is not there (ftdi_sio not bound?)"))
}

fn run_libftdi(device: &Device, spec: &LoopSpec) -> Result<Measured, String> {
    let bin = &device.libftdi_loop;
    if !bin.exists() {
        return Err(format!(
            "{} is missing: the initramfs was built without the libftdi contender",
            bin.display()
        ));
    }
    let out = Command::new(bin)
        .args(["-v", &format!("{:#06x}", device.usb_id.0)])
        .args(["-p", &format!("{:#06x}", device.usb_id.1)])
        .args(["-n", &spec.n.to_string()])
        .args(["-w", &spec.warmup.to_string()])
        .args(["-d", &spec.deadline.as_micros().to_string()])
        .args(["-b", &spec.baud.to_string()])
        .args(["-l", &spec.latency_ms.to_string()])
        .args(["-r", &spec.app_priority.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = parse_libftdi_output(&stdout, spec.n);
    if !out.status.success() {
        let why = stdout
            .lines()
            .find_map(|l| l.strip_prefix("X "))
            .map(str::to_string)
            .or_else(|| parsed.as_ref().err().cloned())
            .unwrap_or_default();
        return Err(format!(
            "{} exited with {}: {why} {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parsed
}

/// Folds the C loop's output (see `libftdi_loop.c`) into a recorder; the end
/// line must agree with the transactions listed, and there must be `n`.
pub fn parse_libftdi_output(stdout: &str, n: usize) -> Result<Measured, String> {
    let mut recorder = LatencyRecorder::new();
    let mut end = None;
    for line in stdout.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let us = || -> Result<u64, String> {
            rest.trim()
                .parse()
                .map_err(|_| format!("libftdi_loop: bad line {line:?}"))
        };
        match kind {
            "L" => recorder.record_us(us()?, false),
            "M" => recorder.record_us(us()?, true),
            "W" => {
                recorder.record_us(us()?, false);
                recorder.wrong_reply();
            }
            "E" => end = Some(rest.to_string()),
            "X" => return Err(format!("libftdi_loop: {rest}")),
            _ => return Err(format!("libftdi_loop: unexpected line {line:?}")),
        }
    }
    let end = end.ok_or("libftdi_loop: no end line (did it crash?)")?;
    let field = |k: &str| -> Option<u64> {
        end.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    let listed = (recorder.count(), recorder.misses(), recorder.wrong());
    let claimed = (field("n"), field("misses"), field("wrong"));
    if claimed != (Some(listed.0), Some(listed.1), Some(listed.2)) || listed.0 != n as u64 {
        return Err(format!(
            "libftdi_loop: end line {end:?} disagrees with the {} transactions listed \
             ({} missed, {} wrong; {n} expected)",
            listed.0, listed.1, listed.2
        ));
    }
    let notes = format!(
        "libftdi1, synchronous, one thread; late bytes settled after misses: {}",
        field("late_settled").map_or("?".into(), |s| s.to_string())
    );
    Ok(Measured { recorder, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_the_c_loop() {
        // libftdi_loop.c: req[k] = i * 31 + k (mod 256).
        assert_eq!(request(0), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(request(9), [23, 24, 25, 26, 27, 28, 29]);
        assert_eq!(request(1000)[0], (1000usize * 31 % 256) as u8);
    }

    #[test]
    fn the_c_loops_output_folds_into_a_recorder() {
        let out = "L 1998\nM 3600\nW 2000\nE n=3 misses=1 wrong=1 late_settled=1\n";
        let m = parse_libftdi_output(out, 3).unwrap();
        assert_eq!(
            (m.recorder.count(), m.recorder.misses(), m.recorder.wrong()),
            (3, 1, 1)
        );
        assert!(m.notes.contains("settled after misses: 1"), "{}", m.notes);
    }

    #[test]
    fn a_c_loop_that_failed_or_disagrees_is_an_error() {
        for (out, n) in [
            ("X ftdi_usb_open: -3 (device not found)\n", 1),
            ("L 1998\n", 1),
            ("L 1998\nE n=2 misses=0 wrong=0 late_settled=0\n", 1),
            ("L 1998\nE n=1 misses=1 wrong=0 late_settled=0\n", 1),
            ("L 1998\nE n=1 misses=0 wrong=0 late_settled=0\n", 2),
            ("L fast\nE n=1 misses=0 wrong=0 late_settled=0\n", 1),
            ("hello\n", 1),
        ] {
            assert!(parse_libftdi_output(out, n).is_err(), "{out:?} accepted");
        }
    }
}
