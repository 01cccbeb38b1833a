//! The USB side of the doctor: USB itself, the udev rule and its group,
//! usbfs access, the driver holding each interface, ftdi_sio's latency
//! timer.

use rustix::fs::Access;

use super::{Check, SHIPPED_UDEV_RULE, Status};
use crate::sysfs::{self, Sys, USB_SERIAL, UsbAdapter};

/// Where udev reads rules from, the administrator's first.
const RULE_DIRS: [&str; 3] = [
    "/etc/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
];
const RULE_FILE: &str = "60-ftdi-rt.rules";

/// The command that installs the shipped rule and applies it to what is
/// plugged in now.
fn install_rule() -> String {
    format!(
        "ftdi-rt doctor --udev-rule | sudo tee /etc/udev/rules.d/{RULE_FILE} >/dev/null && \
         sudo udevadm control --reload-rules && \
         sudo udevadm trigger --subsystem-match=usb --attr-match=idVendor=0403"
    )
}

/// The adapters `selector` names (all of them without one).
pub(super) fn selected(adapters: Vec<UsbAdapter>, selector: Option<&str>) -> Vec<UsbAdapter> {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return adapters;
    };
    if let Ok(index) = sel.parse::<usize>() {
        return adapters.into_iter().skip(index).take(1).collect();
    }
    let sel = sel
        .trim_start_matches("serial:")
        .trim_start_matches("path:");
    adapters
        .into_iter()
        .filter(|a| a.path == sel || a.serial.as_deref() == Some(sel))
        .collect()
}

pub(super) fn checks(sys: &Sys, adapters: &[UsbAdapter], selector: Option<&str>) -> Vec<Check> {
    let mut checks = vec![presence(sys, adapters, selector)];
    checks.push(udev_rule(sys));
    checks.push(group(sys));
    checks.extend(access(sys, adapters));
    checks.extend(drivers(adapters));
    checks.extend(kernel_latency_timers(sys));
    checks
}

fn presence(sys: &Sys, adapters: &[UsbAdapter], selector: Option<&str>) -> Check {
    let usb = sysfs::usb_presence(sys);
    if !usb.sysfs_bus {
        return Check::new(
            "usb",
            Status::Fail,
            format!(
                "no USB on this machine ({} does not exist; a VM without a USB controller?); \
                 the checks below that need none still run",
                sysfs::USB_DEVICES
            ),
        )
        .fix("give the machine a USB host controller (QEMU: -device qemu-xhci), or work without hardware: ftdi-rt bench --sim");
    }
    if !usb.usbfs {
        return Check::new(
            "usb",
            Status::Fail,
            "USB present but /dev/bus/usb (usbfs) is missing",
        )
        .fix("start udev so it creates the nodes: sudo systemctl start systemd-udevd");
    }
    match (adapters.len(), selector) {
        (0, Some(sel)) if !sel.is_empty() => Check::new(
            "usb",
            Status::Fail,
            format!("no FTDI adapter matches {sel:?}"),
        )
        .fix("ftdi-rt list"),
        (0, _) => Check::new(
            "usb",
            Status::Warn,
            "USB works; no FTDI adapter is plugged in",
        )
        .fix("plug in the adapter, then: ftdi-rt list"),
        (n, _) => Check::new("usb", Status::Pass, format!("{n} FTDI adapter(s)")),
    }
}

/// The non-comment lines of a rule file, for comparing.
fn rule_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn udev_rule(sys: &Sys) -> Check {
    let installed = RULE_DIRS
        .iter()
        .map(|dir| format!("{dir}/{RULE_FILE}"))
        .find_map(|path| sys.read(&path).map(|text| (path, text)));
    match installed {
        None => Check::new(
            "udev rule",
            Status::Fail,
            format!("{RULE_FILE} is not installed: only root can open the adapters"),
        )
        .fix(install_rule()),
        Some((path, text)) if rule_lines(&text) == rule_lines(SHIPPED_UDEV_RULE) => Check::new(
            "udev rule",
            Status::Pass,
            format!("{path} matches the shipped rule"),
        ),
        Some((path, _)) => Check::new(
            "udev rule",
            Status::Warn,
            format!("{path} differs from the rule this ftdi-rt ships"),
        )
        .fix(install_rule()),
    }
}

/// The group the shipped rule gives the device nodes to.
fn rule_group() -> Option<&'static str> {
    let start = SHIPPED_UDEV_RULE.find("GROUP=\"")? + "GROUP=\"".len();
    let len = SHIPPED_UDEV_RULE[start..].find('"')?;
    Some(&SHIPPED_UDEV_RULE[start..start + len])
}

/// The gid of `name` in /etc/group.
fn gid_of(sys: &Sys, name: &str) -> Option<u32> {
    sys.read("/etc/group")?.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.nth(1)?.parse().ok())?
    })
}

fn group(sys: &Sys) -> Check {
    let Some(group) = rule_group() else {
        return Check::new("group", Status::Skip, "the shipped rule names no group");
    };
    if rustix::process::geteuid().is_root() {
        return Check::new(
            "group",
            Status::Pass,
            format!("running as root (the rule grants {group})"),
        );
    }
    let Some(gid) = gid_of(sys, group) else {
        return Check::new(
            "group",
            Status::Fail,
            format!("group {group} does not exist"),
        )
        .fix(format!("sudo groupadd --system {group}"));
    };
    let mut gids: Vec<u32> = rustix::process::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    gids.push(rustix::process::getegid().as_raw());
    if gids.contains(&gid) {
        Check::new("group", Status::Pass, format!("this user is in {group}"))
    } else {
        // A desktop seat's user gets access through the rule's uaccess tag
        // anyway, hence a warning.
        Check::new(
            "group",
            Status::Warn,
            format!("this user is not in {group} (the rule's uaccess tag covers only a local desktop seat)"),
        )
        .fix(format!("sudo usermod -aG {group} \"$USER\"  # then log in again"))
    }
}

fn access(sys: &Sys, adapters: &[UsbAdapter]) -> Vec<Check> {
    if adapters.is_empty() {
        return vec![Check::new(
            "usbfs access",
            Status::Skip,
            "no adapter to check",
        )];
    }
    adapters
        .iter()
        .map(|a| {
            let node = sys.path(&a.dev_node);
            match rustix::fs::access(&node, Access::READ_OK | Access::WRITE_OK) {
                Ok(()) => Check::new(
                    "usbfs access",
                    Status::Pass,
                    format!("{} ({}) is readable and writable", a.dev_node, a.path),
                ),
                Err(e) => Check::new(
                    "usbfs access",
                    Status::Fail,
                    format!("{} ({}): {e}", a.dev_node, a.path),
                )
                .fix(format!(
                    "sudo udevadm trigger --action=add /sys/bus/usb/devices/{}  # after installing the udev rule",
                    a.path
                )),
            }
        })
        .collect()
}

fn drivers(adapters: &[UsbAdapter]) -> Vec<Check> {
    let mut checks = Vec::new();
    for a in adapters {
        for itf in &a.interfaces {
            let name = "interface driver";
            let place = format!("{} interface {}", a.path, itf.number);
            checks.push(match itf.driver.as_deref() {
                // Usable as is; but ftdi_sio may be missing because a
                // program that detached it died without running any code
                // (SIGKILL, abort): say how to bind it again.
                None => Check::new(
                    name,
                    Status::Pass,
                    format!(
                        "{place}: free (no driver; for /dev/ttyUSB back after a libusb program                          was killed holding it: echo {}:1.{} | sudo tee                          /sys/bus/usb/drivers/ftdi_sio/bind)",
                        a.path, itf.number
                    ),
                ),
                Some("ftdi_sio") => Check::new(
                    name,
                    Status::Pass,
                    format!(
                        "{place}: ftdi_sio{} (ftdi-rt detaches it on open, re-attaches on close)",
                        itf.tty
                            .as_ref()
                            .map(|t| format!(" /dev/{t}"))
                            .unwrap_or_default()
                    ),
                ),
                Some("usbfs") => Check::new(
                    name,
                    Status::Warn,
                    format!("{place}: held by a libusb program (opening it will say busy)"),
                )
                .fix(format!(
                    "sudo fuser -v {}  # shows who holds it",
                    a.dev_node
                )),
                Some(other) => Check::new(
                    name,
                    Status::Warn,
                    format!("{place}: held by {other}, not ftdi_sio"),
                )
                .fix(format!(
                    "echo {}:1.{} | sudo tee /sys/bus/usb/drivers/{other}/unbind",
                    a.path, itf.number
                )),
            });
        }
    }
    checks
}

fn kernel_latency_timers(sys: &Sys) -> Vec<Check> {
    let name = "ftdi_sio latency";
    let ttys: Vec<(String, u8)> = sys
        .entries(USB_SERIAL)
        .into_iter()
        .filter_map(|tty| sysfs::kernel_latency_timer(sys, tty))
        .collect();
    if ttys.is_empty() {
        return vec![Check::new(
            name,
            Status::Skip,
            "no ftdi_sio tty (kernel path not in use)",
        )];
    }
    ttys.into_iter()
        .map(|(tty, ms)| {
            if ms <= 1 {
                Check::new(name, Status::Pass, format!("{tty}: latency_timer {ms} ms"))
            } else {
                Check::new(
                    name,
                    Status::Warn,
                    format!("{tty}: latency_timer {ms} ms: on the kernel path a short reply waits up to {ms} ms"),
                )
                .fix(format!("echo 1 | sudo tee {USB_SERIAL}/{tty}/latency_timer  # the udev rule does this on plug-in"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::tests::{FakeRoot, two_clones};

    #[test]
    fn without_usb_it_says_so_and_fails() {
        let root = FakeRoot::new("nousb");
        let checks = checks(&root.sys(), &[], None);
        assert_eq!(checks[0].status, Status::Fail);
        assert!(checks[0].detail.contains("no USB"), "{}", checks[0].detail);
        let rule = checks.iter().find(|c| c.name == "udev rule").unwrap();
        assert_eq!(rule.status, Status::Fail);
        assert!(
            rule.fix
                .as_ref()
                .unwrap()
                .contains("udevadm control --reload-rules")
        );
    }

    #[test]
    fn the_installed_rule_is_compared_with_the_shipped_one() {
        let root = FakeRoot::new("rule");
        root.file("/etc/udev/rules.d/60-ftdi-rt.rules", SHIPPED_UDEV_RULE);
        assert_eq!(udev_rule(&root.sys()).status, Status::Pass);
        root.file(
            "/etc/udev/rules.d/60-ftdi-rt.rules",
            "SUBSYSTEM==\"usb\", MODE=\"0666\"\n",
        );
        assert_eq!(udev_rule(&root.sys()).status, Status::Warn);
        assert_eq!(rule_group(), Some("dialout"));
    }

    #[test]
    fn drivers_and_kernel_latency_timers_per_interface() {
        let root = FakeRoot::new("drivers");
        two_clones(&root);
        root.file("/sys/bus/usb-serial/devices/ttyUSB0/latency_timer", "16\n");
        let adapters = sysfs::ftdi_adapters(&root.sys());
        let d = drivers(&adapters);
        assert_eq!(d.len(), 2);
        assert!(
            d[0].detail.contains("ftdi_sio /dev/ttyUSB0"),
            "{}",
            d[0].detail
        );
        let l = kernel_latency_timers(&root.sys());
        assert_eq!(l[0].status, Status::Warn);
        assert!(l[0].fix.as_ref().unwrap().contains("echo 1 | sudo tee"));
        assert_eq!(selected(adapters.clone(), Some("1-1.3")).len(), 1);
        assert_eq!(selected(adapters, Some("A10K1234")).len(), 2);
    }
}
