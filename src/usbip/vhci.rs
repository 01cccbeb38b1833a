//! The kernel's vhci-hcd as seen through sysfs: its ports, attach, detach,
//! and the kernel threads that carry an attached device's traffic.
//!
//! Facts from `drivers/usb/usbip/vhci_sysfs.c`: every file lives in the
//! first controller's directory (`/sys/devices/platform/vhci_hcd.0`):
//! `attach` takes "port sockfd devid speed" and accepts any `SOCK_STREAM`
//! socket (no address-family check, so an `AF_UNIX` pair works); `detach`
//! takes a port number; `status` (and `status.N` for controller N) lists
//! one line per port: `hub port sta spd dev sockfd local_busid`, where hub
//! is `hs` (USB 2.0 root hub, for low, full and high speed) or `ss`, sta 4
//! is a free port (`VDEV_ST_NULL`), 5 attached but not yet addressed, 6 in
//! use, and local_busid is the kernel's name of the device (`3-1`) once it
//! is addressed. Kernels before 4.13 print no hub column.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::UsbipError;
use crate::sim::usb::UsbSpeed;

/// Where vhci-hcd's control files are.
pub(crate) const VHCI_SYSFS: &str = "/sys/devices/platform/vhci_hcd.0";

/// `VDEV_ST_NULL`: the port is free.
pub(crate) const PORT_FREE: u32 = 4;
/// `VDEV_ST_USED`: a device is attached and addressed.
pub(crate) const PORT_USED: u32 = 6;

/// One line of a vhci-hcd status file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PortRow {
    /// The port is on the SuperSpeed root hub.
    pub(crate) superspeed: bool,
    /// The port number `attach` and `detach` take.
    pub(crate) port: u32,
    /// `VDEV_ST_*`.
    pub(crate) status: u32,
    /// The descriptor number the attaching process wrote (0 when free).
    pub(crate) sockfd: u32,
    /// The kernel's name of the device ("3-1"), "0-0" when none.
    pub(crate) bus_id: String,
}

/// Parses one status line; `None` for the header and blank lines.
pub(crate) fn parse_row(line: &str) -> Option<PortRow> {
    let mut cols: Vec<&str> = line.split_whitespace().collect();
    let superspeed = match cols.first() {
        Some(&"hs") => false,
        Some(&"ss") => true,
        // Pre-4.13 layout: no hub column, every port USB 2.0.
        Some(first) if first.bytes().all(|b| b.is_ascii_digit()) => {
            cols.insert(0, "hs");
            false
        }
        _ => return None,
    };
    if cols.len() < 7 {
        return None;
    }
    Some(PortRow {
        superspeed,
        port: cols[1].parse().ok()?,
        status: cols[2].parse().ok()?,
        // Old kernels printed a socket pointer here: not a number we wrote.
        sockfd: cols[5].parse().unwrap_or(u32::MAX),
        bus_id: cols[6].to_string(),
    })
}

/// The `status` files of every controller, in order.
fn status_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("status")];
    for n in 1.. {
        let f = root.join(format!("status.{n}"));
        if !f.exists() {
            break;
        }
        files.push(f);
    }
    files
}

/// Every port of every controller.
pub(crate) fn read_ports(root: &Path) -> Result<Vec<PortRow>, UsbipError> {
    if !root.is_dir() {
        return Err(UsbipError::VhciMissing {
            path: root.to_path_buf(),
        });
    }
    let mut rows = Vec::new();
    for file in status_files(root) {
        let text = fs::read_to_string(&file).map_err(|source| UsbipError::Sysfs {
            path: file.clone(),
            source,
        })?;
        rows.extend(text.lines().filter_map(parse_row));
    }
    Ok(rows)
}

/// The USB/IP speed code (`enum usb_device_speed`).
pub(crate) fn speed_code(speed: UsbSpeed) -> u32 {
    match speed {
        UsbSpeed::Full => 2,
        UsbSpeed::High => 3,
    }
}

/// The speed in words, for messages.
pub(crate) fn speed_name(speed: UsbSpeed) -> &'static str {
    match speed {
        UsbSpeed::Full => "full-speed",
        UsbSpeed::High => "high-speed",
    }
}

/// Free USB 2.0 ports (full- and high-speed devices attach to the `hs`
/// root hub), `preferred` first if it is among them.
pub(crate) fn free_ports(rows: &[PortRow], preferred: Option<u32>) -> Vec<u32> {
    let mut free: Vec<u32> = rows
        .iter()
        .filter(|r| !r.superspeed && r.status == PORT_FREE)
        .map(|r| r.port)
        .collect();
    if let Some(p) = preferred
        && let Some(i) = free.iter().position(|&f| f == p)
    {
        free.remove(i);
        free.insert(0, p);
    }
    free
}

/// The row of `port` if it still holds the device attached through `sockfd`.
pub(crate) fn our_row(rows: &[PortRow], port: u32, sockfd: u32) -> Option<&PortRow> {
    rows.iter()
        .find(|r| r.port == port && r.status != PORT_FREE && r.sockfd == sockfd)
}

/// Writes "port sockfd devid speed" to `attach`.
pub(crate) fn write_attach(
    root: &Path,
    port: u32,
    sockfd: i32,
    devid: u32,
    speed: UsbSpeed,
) -> Result<(), UsbipError> {
    let path = root.join("attach");
    let line = format!("{port} {sockfd} {devid} {}", speed_code(speed));
    write_file(&path, &line).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => UsbipError::PermissionDenied { path },
        _ => UsbipError::AttachRefused {
            port,
            line,
            path: root.join("attach"),
            source: e,
        },
    })
}

/// Writes `port` to `detach`.
pub(crate) fn write_detach(root: &Path, port: u32) -> Result<(), UsbipError> {
    let path = root.join("detach");
    write_file(&path, &port.to_string()).map_err(|e| UsbipError::from_write(path, e))
}

/// One `write(2)` of the whole line: sysfs store functions see exactly
/// what one write hands them.
fn write_file(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(line.as_bytes())
}

/// Pids of the kernel threads named `name` (vhci_rx, vhci_tx), from
/// `/proc/*/comm`.
pub(crate) fn kernel_threads(name: &str) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The sysfs directory of the USB device the kernel calls `bus_id`.
pub(crate) fn usb_device_dir(bus_id: &str) -> PathBuf {
    Path::new("/sys/bus/usb/devices").join(bus_id)
}

/// The interfaces of the USB device `bus_id` and the tty each one has
/// (`ttyUSB0` directly in the interface directory for usb-serial drivers,
/// `tty/ttyACM0` for cdc-acm), by interface number.
pub(crate) fn interface_ttys(bus_id: &str) -> Vec<(u8, String)> {
    let dev = usb_device_dir(bus_id);
    let prefix = format!("{bus_id}:");
    let Ok(dir) = fs::read_dir(&dev) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(config_iface) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(Ok(number)) = config_iface.split('.').nth(1).map(str::parse::<u8>) else {
            continue;
        };
        let tty = tty_in(&entry.path()).or_else(|| tty_in(&entry.path().join("tty")));
        if let Some(tty) = tty {
            found.push((number, tty));
        }
    }
    found.sort();
    found
}

fn tty_in(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("tty") && n.len() > 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "hub port sta spd dev      sockfd local_busid\n\
        hs  0000 006 002 00010002 000003 3-1\n\
        hs  0001 004 000 00000000 000000 0-0\n\
        hs  0002 005 003 00010003 000007 0-0\n\
        ss  0003 004 000 00000000 000000 0-0\n";

    #[test]
    fn status_lines_parse_in_both_layouts() {
        let rows: Vec<PortRow> = STATUS.lines().filter_map(parse_row).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows[0],
            PortRow {
                superspeed: false,
                port: 0,
                status: PORT_USED,
                sockfd: 3,
                bus_id: "3-1".into()
            }
        );
        assert!(rows[3].superspeed);
        let legacy = parse_row("0001 004 000 00000000         c5a7bb80 0-0").unwrap();
        assert_eq!(
            (legacy.port, legacy.status, legacy.superspeed),
            (1, 4, false)
        );
        assert_eq!(legacy.sockfd, u32::MAX, "a pointer is not a descriptor");
        assert_eq!(parse_row("hub port sta spd dev sockfd local_busid"), None);
        assert_eq!(parse_row(""), None);
        assert_eq!(parse_row("hs 0001"), None);
    }

    #[test]
    fn free_usb2_ports_are_chosen_and_ours_is_recognised() {
        let rows: Vec<PortRow> = STATUS.lines().filter_map(parse_row).collect();
        assert_eq!(
            free_ports(&rows, None),
            vec![1],
            "the ss port is not for USB 2.0"
        );
        assert_eq!(free_ports(&rows, Some(1)), vec![1]);
        assert_eq!(free_ports(&rows, Some(0)), vec![1], "port 0 is taken");
        assert_eq!(our_row(&rows, 0, 3).map(|r| r.bus_id.as_str()), Some("3-1"));
        assert!(our_row(&rows, 0, 4).is_none(), "another socket holds it");
        assert!(our_row(&rows, 1, 0).is_none(), "a free port holds nothing");
    }

    #[test]
    fn a_missing_controller_says_to_load_the_module() {
        let err = read_ports(Path::new("/nonexistent/vhci_hcd.0")).unwrap_err();
        assert!(matches!(err, UsbipError::VhciMissing { .. }));
        assert!(err.to_string().contains("modprobe vhci-hcd"));
    }
}
