//! The `ftdi-rt` binary's output, run as a user would run it: on this
//! machine as it is, and against a made-up empty root (`FTDI_RT_SYSROOT`)
//! so that "no USB" is certain wherever the tests run.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn ftdi_rt(args: &[&str], root: Option<&PathBuf>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftdi-rt"));
    cmd.args(args);
    if let Some(root) = root {
        cmd.env("FTDI_RT_SYSROOT", root);
    }
    cmd.output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An empty directory standing in for `/`: no USB, no udev rule, no cpufreq.
struct EmptyRoot(PathBuf);

impl EmptyRoot {
    fn new(name: &str) -> EmptyRoot {
        let dir =
            std::env::temp_dir().join(format!("ftdi-rt-cli-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        EmptyRoot(dir)
    }
}

impl Drop for EmptyRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn list_without_usb_says_so() {
    let root = EmptyRoot::new("list");
    let o = ftdi_rt(&["list"], Some(&root.0));
    assert!(o.status.success());
    assert!(
        stdout(&o).starts_with("no USB on this machine"),
        "{}",
        stdout(&o)
    );
    let o = ftdi_rt(&["list", "--json"], Some(&root.0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["usb"]["sysfs_bus"], false);
    assert_eq!(v["adapters"].as_array().unwrap().len(), 0);
}

#[test]
fn list_on_this_machine_is_valid_json() {
    let o = ftdi_rt(&["list", "--json"], None);
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["adapters"].is_array());
}

#[test]
fn info_reads_the_simulated_chips_eeprom() {
    let o = ftdi_rt(&["info", "--sim"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = stdout(&o);
    for line in [
        "transport        simulated FT232R interface A",
        "eeprom           0403:6001 release 0600, 128 bytes, checksum ok",
        "  product        FT232R USB UART",
        "  serial         FTSIM001",
        "latency timer    1 ms",
        "modem lines      CTS off DSR off RI off DCD off",
    ] {
        assert!(t.contains(line), "{line:?} missing from\n{t}");
    }
    let o = ftdi_rt(&["info", "--sim", "--json"], None);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["eeprom"]["serial"], "FTSIM001");
    assert_eq!(v["eeprom"]["checksum_ok"], true);
    assert_eq!(v["latency_timer_ms"], 1);
    assert_eq!(v["modem"]["cts"], false);
}

#[test]
fn info_without_an_adapter_is_an_error_that_says_why() {
    let root = EmptyRoot::new("info");
    let o = ftdi_rt(&["info", "FT1ABCDE"], Some(&root.0));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no adapter matches"), "{err}");
    assert!(err.contains("info --sim"), "{err}");
}

#[test]
fn doctor_without_usb_fails_and_says_how_to_fix() {
    let root = EmptyRoot::new("doctor");
    let o = ftdi_rt(&["doctor"], Some(&root.0));
    assert_eq!(o.status.code(), Some(1), "not ready");
    let t = stdout(&o);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("FAIL  usb "), "{t}");
    assert!(lines[0].contains("no USB on this machine"), "{t}");
    // Every failure is followed by its fix.
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("FAIL") {
            assert!(lines[i + 1].starts_with("      fix: "), "{t}");
        }
    }
    // The checks that need no USB still ran.
    for name in [
        "realtime priority",
        "memory locking",
        "kernel preemption",
        "cpu governor",
    ] {
        assert!(t.contains(name), "{name} missing from\n{t}");
    }
    assert!(t.ends_with("warning\n") || t.ends_with("warnings\n"), "{t}");
    let o = ftdi_rt(&["doctor", "--json"], Some(&root.0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ready"], false);
    let udev = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "udev rule")
        .unwrap();
    assert_eq!(udev["status"], "fail");
    assert!(udev["fix"].as_str().unwrap().contains("60-ftdi-rt.rules"));
}

#[test]
fn doctor_on_this_machine_gives_one_verdict_per_line() {
    let o = ftdi_rt(&["doctor"], None);
    let t = stdout(&o);
    let ready = t.lines().last().unwrap().starts_with("ready");
    assert_eq!(o.status.success(), ready, "{t}");
    for l in t.lines().filter(|l| !l.starts_with("      fix: ")) {
        let verdict = l.split_whitespace().next().unwrap();
        assert!(
            ["pass", "warn", "FAIL", "skip", "ready:", "not"].contains(&verdict),
            "{l}"
        );
    }
}

#[test]
fn doctor_prints_the_shipped_udev_rule() {
    let o = ftdi_rt(&["doctor", "--udev-rule"], None);
    assert!(o.status.success());
    let shipped = include_str!("../../udev/60-ftdi-rt.rules");
    assert_eq!(stdout(&o), shipped);
}

#[test]
fn bench_on_the_simulated_chip_reports_json_and_svg() {
    let root = EmptyRoot::new("bench");
    let svg = root.0.join("latency.svg");
    let o = ftdi_rt(
        &[
            "bench",
            "--sim",
            "--iterations",
            "200",
            "--best-effort",
            "--no-noise-probe",
            "--deadline",
            "50ms",
            "--svg",
            svg.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &v[0];
    assert_eq!(run["transactions"], 200);
    assert_eq!(run["wrong_replies"], 0);
    assert!(run["label"].as_str().unwrap().starts_with("sim"));
    assert!(run["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}
