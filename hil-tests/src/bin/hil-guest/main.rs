//! hil-guest: the test program that runs inside the vhil guest (or on a
//! machine with a real adapter and a host peer speaking the control protocol).
//!
//! Usage: `hil-guest [--list] [--only a,b] [--skip a,b] [--set key=value]...
//!                   [--ctl /dev/ttyS1] [--tty /dev/ttyUSB0] [--case-timeout s]`
//!
//! Each case prints one `RESULT` line; exit status 0 = all passed, 1 = some
//! failed, 2 = bad usage, 3 = a case hung.
//!
//! To add a case: write `fn my_case(ctx: &mut Ctx) -> Outcome` and append it
//! to [`CASES`]. Order matters: `unplug` re-enumerates the device, so it runs
//! last.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use ftdi_rt_hil::guest::{
    Case, Ctx, Outcome, Selection, emit, is_char_device, percentile, run_cases, sysfs_attr,
    wait_until,
};
use ftdi_rt_hil::proto::{FROB_REQUEST_LEN, Mode, frob_reply};
use serialport::{ClearBuffer, SerialPort, TTYPort};

mod usb;

/// The registry, in run order.
const CASES: &[Case] = &[
    Case {
        name: "enumeration",
        about: "sysfs shows exactly one 0403:6001 with bcdDevice 0400",
        run: enumeration,
    },
    Case {
        name: "ftdi-sio-bound",
        about: "ftdi_sio is bound to <dev>:1.0 and /dev/ttyUSB0 is its char device",
        run: ftdi_sio_bound,
    },
    Case {
        name: "ctl-ping",
        about: "the control channel answers PING (round-trip metric)",
        run: ctl_ping,
    },
    Case {
        name: "tty-echo",
        about: "MODE echo; all 256 byte values through /dev/ttyUSB0 at 115200 come back",
        run: tty_echo,
    },
    Case {
        name: "tty-frob",
        about: "MODE frob; request/reply round trips over the tty (latency metric)",
        run: tty_frob,
    },
    Case {
        name: "usb-list",
        about: "ftdi_rt::list finds the emulated FT232BM (0403:6001, bcdDevice 0x0400)",
        run: usb::usb_list,
    },
    Case {
        name: "usb-open",
        about: "open_usb detaches ftdi_sio, claims and configures (QEMU's trace checked); close re-attaches it",
        run: usb::usb_open,
    },
    Case {
        name: "usb-echo",
        about: "echo of all byte values and bursts of 1..4096 bytes at 9600..3M Bd; line settings; STALL handling",
        run: usb::usb_echo,
    },
    Case {
        name: "compare",
        about: "request/reply loop, userspace driver vs kernel path (/dev/ttyUSB0), idle and with a hog per vCPU",
        run: usb::compare,
    },
    Case {
        name: "usb-unplug",
        about: "unplug mid-stream: Disconnected within 100 ms, writes fail, replug, reopen works",
        run: usb::usb_unplug,
    },
    Case {
        name: "unplug",
        about: "UNPLUG: /dev/ttyUSB0 goes away, comes back re-enumerated, and works",
        run: unplug,
    },
];

const FTDI_VID_PID: (&str, &str) = ("0403", "6001");

/// USB devices (not interfaces) in sysfs with the FT232's VID:PID.
fn find_ftdi() -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir("/sys/bus/usb/devices") else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.contains(':'))
        .filter(|(_, p)| {
            sysfs_attr(p, "idVendor").as_deref() == Some(FTDI_VID_PID.0)
                && sysfs_attr(p, "idProduct").as_deref() == Some(FTDI_VID_PID.1)
        })
        .collect();
    found.sort();
    found
}

/// The single FTDI device, or an error describing what was found.
fn the_ftdi() -> Result<(String, PathBuf), String> {
    let mut all = find_ftdi();
    match all.len() {
        1 => Ok(all.remove(0)),
        n => Err(format!(
            "expected one {}:{} device, found {n}",
            FTDI_VID_PID.0, FTDI_VID_PID.1
        )),
    }
}

fn enumeration(_ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        // /init waited for ttyUSB0 already; this only covers a manual run.
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            !find_ftdi().is_empty()
        });
        let (name, dir) = the_ftdi()?;
        let attr = |a: &str| sysfs_attr(&dir, a).unwrap_or_else(|| "?".into());
        let bcd = attr("bcdDevice");
        if bcd != "0400" {
            return Err(format!("{name}: bcdDevice {bcd}, expected 0400 (FT232BM)"));
        }
        Ok(format!(
            "{name} {}:{} bcdDevice {bcd} speed {} devnum {} product {:?} manufacturer {:?}",
            FTDI_VID_PID.0,
            FTDI_VID_PID.1,
            attr("speed"),
            attr("devnum"),
            attr("product"),
            attr("manufacturer"),
        ))
    };
    run().into()
}

fn ftdi_sio_bound(ctx: &mut Ctx) -> Outcome {
    let tty = ctx.tty_path.clone();
    let run = || -> Result<String, String> {
        let (name, _) = the_ftdi()?;
        let iface = format!("{name}:1.0");
        let idir = Path::new("/sys/bus/usb/devices").join(&iface);
        let driver = std::fs::read_link(idir.join("driver"))
            .map_err(|e| format!("{iface} has no driver: {e}"))?;
        let driver = driver
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if driver != "ftdi_sio" {
            return Err(format!("{iface} bound to {driver}, expected ftdi_sio"));
        }
        let tty_name = Path::new(&tty).file_name().unwrap_or_default();
        if !idir.join(tty_name).exists() {
            return Err(format!(
                "{iface} has no {} child in sysfs",
                tty_name.to_string_lossy()
            ));
        }
        if !is_char_device(&tty) {
            return Err(format!("{tty} is not a character device"));
        }
        Ok(format!("ftdi_sio bound to {iface}; {tty} present"))
    };
    run().into()
}

fn ctl_ping(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let ctl = ctx.ctl()?;
        let mut rtts: Vec<u64> = Vec::new();
        for _ in 0..10 {
            rtts.push(ctl.ping()?.as_micros() as u64);
        }
        rtts.sort_unstable();
        let (min, p50, max) = (rtts[0], percentile(&rtts, 50.0), rtts[rtts.len() - 1]);
        ctx.metric(
            "ctl-ping",
            &[
                ("n", rtts.len().to_string()),
                ("min_us", min.to_string()),
                ("p50_us", p50.to_string()),
                ("max_us", max.to_string()),
            ],
        );
        Ok(format!("10 x PING -> PONG, p50 {p50} us"))
    };
    run(ctx).into()
}

/// Opens the FTDI tty raw, 8N1, no flow control, and drops stale input.
fn open_tty(path: &str, baud: u32) -> Result<TTYPort, String> {
    let port = serialport::new(path, baud)
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|e| format!("open {path}: {e}"))?;
    port.clear(ClearBuffer::All)
        .map_err(|e| format!("flush {path}: {e}"))?;
    Ok(port)
}

/// Reads exactly `n` bytes or fails after `limit`, reporting what arrived.
fn read_n(port: &mut TTYPort, n: usize, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::with_capacity(n);
    let mut buf = [0u8; 512];
    while got.len() < n {
        if Instant::now() >= deadline {
            return Err(format!(
                "timeout: {} of {n} bytes after {limit:?}",
                got.len()
            ));
        }
        let want = (n - got.len()).min(buf.len());
        match port.read(&mut buf[..want]) {
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(got)
}

/// Sends `data` and expects it back unchanged.
fn echo_check(port: &mut TTYPort, data: &[u8]) -> Result<(), String> {
    port.write_all(data).map_err(|e| format!("write: {e}"))?;
    let got = read_n(port, data.len(), Duration::from_secs(3))?;
    match got.iter().zip(data).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "mismatch at byte {i}: sent {:#04x}, got {:#04x}",
            data[i], got[i]
        )),
    }
}

fn tty_echo(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        ctx.ctl()?.set_mode(Mode::Echo)?;
        let mut port = open_tty(&ctx.tty_path, 115_200)?;
        // What ftdi_sio sent for 115200 8N1 is checked on the host afterwards:
        // FT232B divisor 26 = 3 MHz / 26 = 115384 baud.
        ctx.expect_trace("baud", "usb_serial_set_baud", "baud rate 115384");
        ctx.expect_trace(
            "line",
            "usb_serial_set_data",
            "parity N, data bits 8, stop bits 1",
        );
        let all: Vec<u8> = (0..=255).collect();
        let t0 = Instant::now();
        echo_check(&mut port, &all)?;
        Ok(format!(
            "256 byte values echoed in {} us",
            t0.elapsed().as_micros()
        ))
    };
    run(ctx).into()
}

/// xorshift64*: deterministic request bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn tty_frob(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let n: usize = ctx.param("frob.n", 200);
        let delay_us: u64 = ctx.param("frob.delay_us", 100);
        ctx.ctl()?.set_mode(Mode::Frob { delay_us })?;
        let mut port = open_tty(&ctx.tty_path, 115_200)?;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut rtts = Vec::with_capacity(n);
        for i in 0..n {
            let mut req = [0u8; FROB_REQUEST_LEN];
            req.iter_mut().for_each(|b| *b = rng.next() as u8);
            let t0 = Instant::now();
            port.write_all(&req)
                .map_err(|e| format!("request {i}: write: {e}"))?;
            let reply = read_n(&mut port, 1, Duration::from_secs(1))
                .map_err(|e| format!("request {i}: {e}"))?;
            rtts.push(t0.elapsed().as_micros() as u64);
            if reply[0] != frob_reply(&req) {
                return Err(format!(
                    "request {i} {req:02x?}: reply {:#04x}, expected {:#04x}",
                    reply[0],
                    frob_reply(&req)
                ));
            }
        }
        rtts.sort_unstable();
        let (min, p50, p99, max) = (
            rtts[0],
            percentile(&rtts, 50.0),
            percentile(&rtts, 99.0),
            rtts[n - 1],
        );
        ctx.metric(
            "tty-frob",
            &[
                ("n", n.to_string()),
                ("delay_us", delay_us.to_string()),
                ("min_us", min.to_string()),
                ("p50_us", p50.to_string()),
                ("p99_us", p99.to_string()),
                ("max_us", max.to_string()),
            ],
        );
        // A reply cannot beat the firmware's delay: if it does, the delay or
        // the timing is broken.
        if min < delay_us {
            return Err(format!(
                "fastest round trip {min} us < firmware delay {delay_us} us"
            ));
        }
        Ok(format!(
            "{n} requests answered correctly; p50 {p50} us p99 {p99} us max {max} us"
        ))
    };
    run(ctx).into()
}

fn unplug(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let (after_ms, down_ms): (u64, u64) = (
            ctx.param("unplug.after_ms", 200),
            ctx.param("unplug.down_ms", 500),
        );
        let tty = ctx.tty_path.clone();
        if !is_char_device(&tty) {
            return Err(format!("{tty} missing before the unplug"));
        }
        let (name, dir) = the_ftdi()?;
        let devnum_before = sysfs_attr(&dir, "devnum").unwrap_or_default();

        let t0 = Instant::now();
        ctx.ctl()?.unplug(after_ms, down_ms)?;
        wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            !Path::new(&tty).exists()
        })
        .ok_or_else(|| format!("{tty} still present 5 s after UNPLUG {after_ms} {down_ms}"))?;
        // Measured from sending UNPLUG, so it includes the requested delay.
        let gone_ms = t0.elapsed().as_millis() as u64;
        let t_gone = Instant::now();
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            is_char_device(&tty)
        })
        .ok_or_else(|| format!("{tty} did not come back within 10 s"))?;
        let down_seen_ms = t_gone.elapsed().as_millis() as u64;

        let (name2, dir2) = the_ftdi()?;
        let devnum_after = sysfs_attr(&dir2, "devnum").unwrap_or_default();
        if devnum_after == devnum_before {
            return Err(format!(
                "devnum unchanged ({devnum_after}): not re-enumerated?"
            ));
        }
        // The port is usable again: a short echo through the new instance.
        ctx.ctl()?.set_mode(Mode::Echo)?;
        let mut port = retry_open(&tty, Duration::from_secs(2))?;
        echo_check(&mut port, b"back after replug").map_err(|e| format!("after replug: {e}"))?;

        ctx.metric(
            "unplug",
            &[
                ("after_ms", after_ms.to_string()),
                ("down_ms", down_ms.to_string()),
                ("gone_ms", gone_ms.to_string()),
                ("down_seen_ms", down_seen_ms.to_string()),
            ],
        );
        // Loose sanity bounds: catch an unplug that ignores its timing.
        if gone_ms < after_ms / 2 || down_seen_ms < down_ms / 2 {
            return Err(format!(
                "timing off: gone after {gone_ms} ms (asked {after_ms}), down {down_seen_ms} ms (asked {down_ms})"
            ));
        }
        Ok(format!(
            "{name} devnum {devnum_before} gone after {gone_ms} ms, back as {name2} devnum {devnum_after} after {down_seen_ms} ms; echo ok"
        ))
    };
    run(ctx).into()
}

/// ftdi_sio may still be finishing its probe when the node appears.
fn retry_open(path: &str, limit: Duration) -> Result<TTYPort, String> {
    let deadline = Instant::now() + limit;
    loop {
        match open_tty(path, 115_200) {
            Ok(p) => return Ok(p),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hil-guest [--list] [--only a,b] [--skip a,b] [--set key=value]... \
         [--ctl PATH] [--tty PATH] [--case-timeout SECS]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut ctx = Ctx::new();
    let mut sel = Selection::default();
    let mut args = std::env::args().skip(1);
    let list = |s: String| {
        s.split(',')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    while let Some(a) = args.next() {
        let mut val = || args.next();
        match a.as_str() {
            "--list" => {
                for c in CASES {
                    println!("{:16} {}", c.name, c.about);
                }
                return ExitCode::SUCCESS;
            }
            "--only" => match val() {
                Some(v) => sel.only = list(v),
                None => return usage(),
            },
            "--skip" => match val() {
                Some(v) => sel.skip = list(v),
                None => return usage(),
            },
            "--set" => match val().as_deref().and_then(|v| v.split_once('=')) {
                Some((k, v)) => {
                    ctx.params.insert(k.to_string(), v.to_string());
                }
                None => return usage(),
            },
            "--ctl" => match val() {
                Some(v) => ctx.ctl_path = v,
                None => return usage(),
            },
            "--tty" => match val() {
                Some(v) => ctx.tty_path = v,
                None => return usage(),
            },
            "--case-timeout" => match val().and_then(|v| v.parse().ok()) {
                Some(s) => ctx.case_timeout = Duration::from_secs(s),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let unknown = sel.unknown(CASES);
    if !unknown.is_empty() {
        eprintln!("hil-guest: unknown case(s) {unknown:?}; see --list");
        return ExitCode::from(2);
    }
    emit(&format!(
        "# hil-guest: {} case(s) selected",
        CASES.iter().filter(|c| sel.wants(c.name)).count()
    ));
    let sum = run_cases(CASES, &mut ctx, &sel);
    emit(&format!(
        "# hil-guest summary: passed={} failed={} skipped={}",
        sum.passed, sum.failed, sum.skipped
    ));
    let _ = io::stdout().flush();
    if sum.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
