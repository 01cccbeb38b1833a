//! vhil: the host side of the virtual hardware-in-the-loop rig.
//!
//! Starts QEMU (TCG) with an emulated FT232BM whose UART end is a unix socket
//! served by the in-process device firmware, answers the guest's control
//! channel (second serial port, `ctl.sock`), reads the guest console live,
//! enforces a watchdog, checks the QEMU trace log, and prints the verdict.
//! Normally started by `hil-tests/vhil/run.sh`, which builds its inputs.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ftdi_rt_hil::firmware::Firmware;
use ftdi_rt_hil::host::{Console, spawn_console_reader, spawn_ctl};
use ftdi_rt_hil::proto::{Mode, ResultLine, Verdict};
use ftdi_rt_hil::trace::{TraceCheck, TraceLog, builtin_checks};

const USAGE: &str = "\
usage: vhil --kernel VMLINUZ --initrd INITRD [options]
  --work DIR          sockets and scratch (default hil-tests/vhil/work)
  --out DIR           logs: console.log qemu-trace.log usb.pcap firmware.log ctl.log
                      (default WORK/out)
  --timeout SECS      watchdog: kill QEMU after this long (default 300)
  --guest-args ARGS   arguments for hil-guest, via the kernel command line
  --qemu PATH         emulator binary (default qemu-system-x86_64)
  --smp N             guest vCPUs (default 1: leaves a host core for QEMU's
                      I/O thread and the firmware on a 2-core host)
  --append TEXT       extra kernel command line
  --quiet             do not echo the guest console
  --t0 EPOCH_SECS     start time of the whole pipeline, for the total";

#[derive(Debug)]
struct Args {
    kernel: PathBuf,
    initrd: PathBuf,
    work: PathBuf,
    out: Option<PathBuf>,
    timeout: Duration,
    guest_args: String,
    qemu: String,
    smp: u32,
    append: String,
    quiet: bool,
    t0: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        kernel: PathBuf::new(),
        initrd: PathBuf::new(),
        work: PathBuf::from("hil-tests/vhil/work"),
        out: None,
        timeout: Duration::from_secs(300),
        guest_args: String::new(),
        qemu: "qemu-system-x86_64".into(),
        smp: 1,
        append: String::new(),
        quiet: false,
        t0: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--quiet" {
            a.quiet = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: bad number {v:?}"))
        };
        match flag.as_str() {
            "--kernel" => a.kernel = v.into(),
            "--initrd" => a.initrd = v.into(),
            "--work" => a.work = v.into(),
            "--out" => a.out = Some(v.into()),
            "--timeout" => a.timeout = Duration::from_secs(num(&v)?),
            "--guest-args" => a.guest_args = v,
            "--qemu" => a.qemu = v,
            "--smp" => a.smp = num(&v)? as u32,
            "--append" => a.append = v,
            "--t0" => a.t0 = Some(v.parse().map_err(|_| format!("--t0: bad time {v:?}"))?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.kernel.as_os_str().is_empty() || a.initrd.as_os_str().is_empty() {
        return Err("--kernel and --initrd are required".into());
    }
    if a.guest_args.contains('"') {
        return Err("--guest-args cannot contain '\"' (kernel command line)".into());
    }
    Ok(a)
}

/// Kills and reaps QEMU when dropped, so every exit path (error, panic,
/// watchdog) cleans up. PR_SET_PDEATHSIG covers the runner itself being
/// killed.
struct QemuGuard(Child);

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn run() -> Result<bool, String> {
    let args = parse_args().map_err(|e| {
        if e.is_empty() {
            USAGE.into()
        } else {
            format!("{e}\n{USAGE}")
        }
    })?;
    let out = args.out.clone().unwrap_or_else(|| args.work.join("out"));
    fs::create_dir_all(&out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    fs::create_dir_all(&args.work).map_err(|e| format!("mkdir {}: {e}", args.work.display()))?;
    for f in [
        "console.log",
        "qemu-trace.log",
        "usb.pcap",
        "firmware.log",
        "ctl.log",
        "qemu-stderr.log",
    ] {
        let _ = fs::remove_file(out.join(f));
    }
    let work = fs::canonicalize(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    let out = fs::canonicalize(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    // sun_path holds 108 bytes: fall back to /tmp for deep checkouts.
    let sock_dir = if work.as_os_str().len() < 90 {
        work.clone()
    } else {
        let d = std::env::temp_dir().join(format!("vhil-{}", std::process::id()));
        fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        d
    };
    let (ftdi_sock, ctl_sock) = (sock_dir.join("ftdi.sock"), sock_dir.join("ctl.sock"));
    let _ = fs::remove_file(&ftdi_sock);
    let _ = fs::remove_file(&ctl_sock);

    let mut append = String::from("console=ttyS0 panic=-1 quiet tsc=reliable");
    if !args.guest_args.trim().is_empty() {
        let _ = write!(append, " vhil.args=\"{}\"", args.guest_args.trim());
    }
    if !args.append.is_empty() {
        let _ = write!(append, " {}", args.append);
    }
    let p = |p: &Path| p.display().to_string();
    let mut qemu_args: Vec<String> = Vec::new();
    let mut arg = |a: &str| qemu_args.push(a.to_string());
    // -device isa-serial suppresses the default serial port, so the console
    // (COM1 = guest ttyS0) is put on stdio explicitly; the control port is the
    // next ISA serial (COM2 = guest ttyS1). -nographic's default monitor would
    // also want stdio, hence -monitor none.
    let fixed = "-accel tcg -M pc -m 512 -nographic -no-reboot -nic none -monitor none \
                 -serial stdio -device qemu-xhci,id=xhci -device isa-serial,chardev=ctl \
                 -trace usb_serial_* -msg timestamp=on";
    fixed.split_whitespace().for_each(&mut arg);
    for a in [
        "-smp".into(),
        args.smp.to_string(),
        "-kernel".into(),
        p(&args.kernel),
        "-initrd".into(),
        p(&args.initrd),
        "-append".into(),
        append,
        "-chardev".into(),
        format!("socket,id=ftdi,path={},server=on,wait=off", p(&ftdi_sock)),
        "-device".into(),
        format!(
            "usb-serial,bus=xhci.0,chardev=ftdi,pcap={}",
            p(&out.join("usb.pcap"))
        ),
        "-chardev".into(),
        format!("socket,id=ctl,path={},server=on,wait=off", p(&ctl_sock)),
        "-D".into(),
        p(&out.join("qemu-trace.log")),
    ] {
        arg(&a);
    }
    let quoted: Vec<String> = qemu_args
        .iter()
        .map(|a| {
            if a.contains([' ', '"', '*']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect();
    let cmdline = format!("{} {}", args.qemu, quoted.join(" "));
    let _ = fs::write(out.join("cmdline.txt"), format!("{cmdline}\n"));
    let create =
        |name: &str| File::create(out.join(name)).map_err(|e| format!("create {name}: {e}"));

    let stderr = create("qemu-stderr.log")?;
    let mut cmd = Command::new(&args.qemu);
    cmd.args(&qemu_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl, which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // QEMU dies with the runner (this thread), whatever kills it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    let mut qemu = QemuGuard(
        cmd.spawn()
            .map_err(|e| format!("start {}: {e}", args.qemu))?,
    );
    println!(
        "vhil: QEMU pid {} started; logs in {}",
        qemu.0.id(),
        out.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (fw, fw_thread) = Firmware::spawn(ftdi_sock.clone(), Mode::Echo, create("firmware.log")?);
    let ctl_thread = spawn_ctl(
        ctl_sock.clone(),
        fw.clone(),
        create("ctl.log")?,
        stop.clone(),
        t0,
    );
    let (tx, rx) = mpsc::channel();
    let stdout = qemu.0.stdout.take().ok_or("no QEMU stdout")?;
    let console_thread = spawn_console_reader(stdout, create("console.log")?, t0, tx);

    let mut con = Console::default();
    let deadline = t0 + args.timeout;
    let mut timed_out = false;
    let mut qemu_status = None;
    let mut eof = false;
    // Until the console reaches EOF (QEMU gone) or the watchdog fires.
    while !eof {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            println!(
                "vhil: watchdog: {} s passed, killing QEMU",
                args.timeout.as_secs()
            );
            let _ = qemu.0.kill();
            break;
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(Some((at, line))) => {
                if !args.quiet {
                    println!("[{:7.2}] {line}", at.as_secs_f64());
                }
                let was_open = con.timeline.end.is_none();
                con.take_line(at, &line);
                if was_open && con.timeline.end.is_some() {
                    // Tests are over: stop re-plugging, so that QEMU's
                    // shutdown does not count as another plug-in.
                    fw.stop();
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    // Reap QEMU (it exits right after the console closes; bounded wait).
    let reap_deadline = Instant::now() + Duration::from_secs(5);
    while qemu_status.is_none() {
        qemu_status = qemu.0.try_wait().map_err(|e| format!("wait: {e}"))?;
        if qemu_status.is_none() {
            if Instant::now() >= reap_deadline {
                let _ = qemu.0.kill();
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    con.timeline.exit = Some(t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    fw.stop();
    let _ = fw_thread.join();
    let _ = ctl_thread.join();
    let _ = console_thread.join();
    let _ = fs::remove_file(&ftdi_sock);
    let _ = fs::remove_file(&ctl_sock);
    if sock_dir != work {
        let _ = fs::remove_dir(&sock_dir);
    }
    if !timed_out && !qemu_status.is_some_and(|s| s.success()) {
        // Most likely a bad option or a missing file: show QEMU's own words.
        let err = fs::read_to_string(out.join("qemu-stderr.log")).unwrap_or_default();
        eprintln!("vhil: QEMU failed ({qemu_status:?}); its stderr:\n{err}");
    }

    // ---- judge
    let mut results = std::mem::take(&mut con.results);
    let guest_cases = results.len();
    let host = |name: &str, ok: bool, text: String| ResultLine {
        name: name.into(),
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        text,
    };
    let began = con.timeline.begin.is_some();
    let ended = con.timeline.end.is_some();
    results.push(host(
        "host.results-section",
        began && ended && guest_cases > 0,
        format!("BEGIN seen: {began}, END seen: {ended}, {guest_cases} guest RESULT line(s)"),
    ));
    let guest_failed = results.iter().any(|r| r.verdict == Verdict::Fail);
    let exit_ok = matches!(con.guest_exit, Some(0)) || (con.guest_exit == Some(1) && guest_failed);
    results.push(host(
        "host.guest-exit",
        exit_ok,
        format!(
            "hil-guest exit status {:?} (0 = all passed, 1 = failures reported)",
            con.guest_exit
        ),
    ));
    results.push(host(
        "host.watchdog",
        !timed_out,
        if timed_out {
            format!("QEMU killed after {} s", args.timeout.as_secs())
        } else {
            format!(
                "QEMU exited by itself ({})",
                qemu_status.map_or("?".into(), |s| s.to_string())
            )
        },
    ));
    match TraceLog::load(&out.join("qemu-trace.log")) {
        Ok(log) => {
            let mut checks: Vec<TraceCheck> =
                con.trace_expects.iter().map(TraceCheck::from).collect();
            checks.extend(builtin_checks());
            results.extend(checks.iter().map(|c| c.eval(&log)));
        }
        Err(e) => results.push(host(
            "trace.log",
            false,
            format!("cannot read qemu-trace.log: {e}"),
        )),
    }

    // ---- report
    let mut report = String::new();
    let _ = writeln!(report, "\n==== vhil results");
    for r in &results {
        let _ = writeln!(report, "  {}  {:26} {}", r.verdict.as_str(), r.name, r.text);
    }
    if !con.metrics.is_empty() {
        let _ = writeln!(report, "==== vhil metrics");
        for m in &con.metrics {
            let kv: Vec<String> = m.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(report, "  {:14} {}", m.name, kv.join(" "));
        }
        if let Some(table) = ftdi_rt_hil::compare_table::render(&con.metrics) {
            report.push_str(&table);
        }
    }
    let tl = &con.timeline;
    let _ = writeln!(
        report,
        "==== vhil timings (s from QEMU start): /init {}  ttyUSB0 {}  results-begin {}  results-end {}  QEMU exit {}",
        secs(tl.init),
        secs(tl.usb_ready),
        secs(tl.begin),
        secs(tl.end),
        secs(tl.exit)
    );
    if let (Some(b), Some(e)) = (tl.begin, tl.end) {
        let _ = writeln!(
            report,
            "  boot (to results-begin) {:.2} s, tests {:.2} s",
            b.as_secs_f64(),
            (e - b).as_secs_f64()
        );
    }
    if let Some(start) = args.t0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(report, "  total since run.sh start {:.1} s", now - start);
    }
    let s = fw.stats();
    let _ = writeln!(
        report,
        "  firmware: plug-ins {} unplugs {} rx {} B tx {} B frob requests {}",
        s.connects, s.unplugs, s.rx_bytes, s.tx_bytes, s.frob_requests
    );
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let (passed, failed, skipped) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Skip),
    );
    let _ = writeln!(
        report,
        "vhil: {passed} passed, {failed} failed, {skipped} skipped"
    );
    print!("{report}");
    let _ = fs::write(out.join("results.txt"), &report);
    Ok(failed == 0 && ended && !timed_out)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("vhil: {e}");
            ExitCode::from(2)
        }
    }
}
