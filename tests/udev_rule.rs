//! The shipped udev rule: what can be checked without a USB device.
//!
//! udev sorts every rules file by name and systemd applies the `uaccess` tag
//! in `73-seat-late.rules`, so the file's name, the line that tags, the line
//! that sets the group and the latency-timer line are all checked here. The
//! syntax check is a small parser of udev's `KEY{attr}OP"value"` pairs;
//! `udevadm verify` (systemd 253 and later) checks the file too where it exists.

use std::path::{Path, PathBuf};

/// The rule file the README and the permission error tell users to install.
const RULE: &str = "udev/60-ftdi-rt.rules";

fn rule_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(RULE)
}

/// One `KEY{attr}OP"value"` pair of a rule line.
#[derive(Debug, PartialEq, Eq)]
struct Pair {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

impl Pair {
    fn is(&self, key: &str, attr: Option<&str>, op: &str, value: &str) -> bool {
        self.key == key && self.attr.as_deref() == attr && self.op == op && self.value == value
    }
}

/// Parses one rule line as udev does: comma-separated pairs, values in
/// double quotes. Returns an error for anything udev would reject.
fn parse_line(line: &str) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("no operator after {rest:?}"))?;
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let attr = if let Some(after) = rest.strip_prefix('{') {
            let close = after.find('}').ok_or("unclosed {")?;
            rest = &after[close + 1..];
            Some(after[..close].to_string())
        } else {
            None
        };
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("bad operator after {key}: {rest:?}"))?;
        rest = rest[op.len()..]
            .strip_prefix('"')
            .ok_or_else(|| format!("{key}: value not quoted"))?;
        let close = rest
            .find('"')
            .ok_or_else(|| format!("{key}: unclosed value"))?;
        pairs.push(Pair {
            key: key.to_string(),
            attr,
            op: op.to_string(),
            value: rest[..close].to_string(),
        });
        rest = rest[close + 1..].trim_start();
        if let Some(next) = rest.strip_prefix(',') {
            rest = next.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("missing comma before {rest:?}"));
        }
    }
    Ok(pairs)
}

/// The rule lines of the file, parsed (comments and blank lines skipped).
fn rules() -> Vec<Vec<Pair>> {
    let text = std::fs::read_to_string(rule_path()).expect("the rule file is in the repository");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).unwrap_or_else(|e| panic!("{RULE}: {e} in: {l}")))
        .collect()
}

const KNOWN_KEYS: &[&str] = &[
    "ACTION",
    "SUBSYSTEM",
    "ENV",
    "ATTR",
    "DRIVER",
    "TAG",
    "MODE",
    "GROUP",
    "GOTO",
    "LABEL",
];

#[test]
fn the_file_sorts_before_systemds_uaccess_rules_and_after_the_defaults() {
    let name = rule_path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // udev orders files by name across /usr/lib, /run and /etc.
    for later in ["70-uaccess.rules", "71-seat.rules", "73-seat-late.rules"] {
        assert!(
            name.as_str() < later,
            "{name} must sort before {later} or the uaccess tag has no effect"
        );
    }
    assert!(
        name.as_str() > "50-udev-default.rules",
        "{name} must sort after 50-udev-default.rules so its MODE wins"
    );
    // Only one rule file ships, so an old 99- copy cannot linger beside it.
    let files: Vec<_> = std::fs::read_dir(rule_path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[test]
fn every_line_is_well_formed_and_uses_known_keys() {
    let rules = rules();
    assert!(rules.len() >= 5, "{rules:?}");
    for line in &rules {
        for pair in line {
            assert!(KNOWN_KEYS.contains(&pair.key.as_str()), "{pair:?}");
        }
    }
    // The GOTO for remove events has its label.
    let gotos: Vec<_> = rules.iter().flatten().filter(|p| p.key == "GOTO").collect();
    let labels: Vec<_> = rules
        .iter()
        .flatten()
        .filter(|p| p.key == "LABEL")
        .collect();
    assert_eq!(gotos.len(), 1);
    assert_eq!(labels.len(), 1);
    assert_eq!(gotos[0].value, labels[0].value);
}

/// The matches every device-node line needs: the USB device node (not its
/// interfaces) of FTDI's vendor ID.
fn matches_ftdi_usb_device(line: &[Pair]) -> bool {
    line.iter().any(|p| p.is("SUBSYSTEM", None, "==", "usb"))
        && line
            .iter()
            .any(|p| p.is("ENV", Some("DEVTYPE"), "==", "usb_device"))
        && line
            .iter()
            .any(|p| p.is("ATTR", Some("idVendor"), "==", "0403"))
}

#[test]
fn the_uaccess_tag_is_on_its_own_line_without_a_group() {
    let rules = rules();
    let tagging: Vec<_> = rules
        .iter()
        .filter(|l| l.iter().any(|p| p.is("TAG", None, "+=", "uaccess")))
        .collect();
    assert_eq!(tagging.len(), 1, "{tagging:?}");
    let line = tagging[0];
    assert!(matches_ftdi_usb_device(line), "{line:?}");
    // A group that does not exist must not be able to touch this line.
    assert!(
        !line.iter().any(|p| p.key == "GROUP" || p.key == "MODE"),
        "{line:?}"
    );
}

#[test]
fn the_group_line_gives_dialout_read_write_access() {
    let rules = rules();
    let grouping: Vec<_> = rules
        .iter()
        .filter(|l| l.iter().any(|p| p.key == "GROUP"))
        .collect();
    assert_eq!(grouping.len(), 1, "{grouping:?}");
    let line = grouping[0];
    assert!(matches_ftdi_usb_device(line), "{line:?}");
    assert!(line.iter().any(|p| p.is("GROUP", None, "=", "dialout")));
    assert!(line.iter().any(|p| p.is("MODE", None, "=", "0660")));
}

#[test]
fn the_kernel_path_gets_a_one_millisecond_latency_timer() {
    let rules = rules();
    let line = rules
        .iter()
        .find(|l| l.iter().any(|p| p.key == "ATTR" && p.op == "="))
        .expect("a latency_timer assignment");
    assert!(line.iter().any(|p| p.is("ACTION", None, "==", "add")));
    assert!(
        line.iter()
            .any(|p| p.is("SUBSYSTEM", None, "==", "usb-serial"))
    );
    assert!(line.iter().any(|p| p.is("DRIVER", None, "==", "ftdi_sio")));
    assert!(
        line.iter()
            .any(|p| p.is("ATTR", Some("latency_timer"), "=", "1"))
    );
}

#[test]
fn the_parser_rejects_what_udev_rejects() {
    assert!(parse_line(r#"SUBSYSTEM=="usb" TAG+="uaccess""#).is_err());
    assert!(parse_line(r#"SUBSYSTEM==usb"#).is_err());
    assert!(parse_line(r#"ATTR{idVendor=="0403""#).is_err());
    assert!(parse_line(r#"MODE=>"0660""#).is_err());
    assert_eq!(
        parse_line(r#"ATTR{idVendor}=="0403", TAG+="uaccess""#).unwrap(),
        vec![
            Pair {
                key: "ATTR".into(),
                attr: Some("idVendor".into()),
                op: "==".into(),
                value: "0403".into()
            },
            Pair {
                key: "TAG".into(),
                attr: None,
                op: "+=".into(),
                value: "uaccess".into()
            },
        ]
    );
}

#[test]
#[ignore = "needs `udevadm verify` (systemd 253 or later); Debian 12 ships udev 252"]
fn udevadm_verify_accepts_the_file() {
    let out = std::process::Command::new("udevadm")
        .arg("verify")
        .arg(rule_path())
        .output()
        .expect("run udevadm");
    assert!(
        out.status.success(),
        "udevadm verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
