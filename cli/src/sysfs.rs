//! What sysfs says about USB devices: the FTDI adapters, their interfaces
//! and which kernel driver holds each. Reading sysfs needs no permission
//! and opens nothing, so `list` and `doctor` see adapters the user cannot
//! open yet (which is what they are for).
//!
//! Every path is read below a root directory: `/`, or the one in
//! `FTDI_RT_SYSROOT` (the tests point it at a made-up tree).

use std::fs;
use std::path::{Path, PathBuf};

use ftdi_rt::{Chip, FTDI_VID};
use serde::Serialize;

/// The file-system root the command reads the machine's state from.
#[derive(Clone, Debug)]
pub(crate) struct Sys {
    root: PathBuf,
}

impl Sys {
    /// `/`, or `$FTDI_RT_SYSROOT`.
    pub(crate) fn from_env() -> Sys {
        Sys {
            root: std::env::var_os("FTDI_RT_SYSROOT").map_or_else(|| "/".into(), PathBuf::from),
        }
    }

    /// `path` (absolute, as on a normal machine) below the root.
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// A file's contents, trimmed; `None` if it cannot be read.
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        read_trimmed(&self.path(path))
    }

    /// The entries of a directory, sorted; empty if it cannot be read.
    pub(crate) fn entries(&self, path: &str) -> Vec<String> {
        entries(&self.path(path))
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Where sysfs lists USB devices.
pub(crate) const USB_DEVICES: &str = "/sys/bus/usb/devices";

/// One interface (UART channel) of an adapter.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsbInterface {
    /// bInterfaceNumber.
    pub(crate) number: u8,
    /// The kernel driver bound to it (`ftdi_sio`, `usbfs` while ftdi-rt
    /// or another libusb program holds it), if any.
    pub(crate) driver: Option<String>,
    /// The tty ftdi_sio made of it (`ttyUSB0`).
    pub(crate) tty: Option<String>,
}

/// An FTDI adapter as sysfs shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsbAdapter {
    /// The bus-port path (`1-1.2`), the directory's name.
    pub(crate) path: String,
    /// The chip family from bcdDevice, if known.
    pub(crate) chip: Option<String>,
    pub(crate) vendor_id: u16,
    pub(crate) product_id: u16,
    pub(crate) bcd_device: u16,
    pub(crate) manufacturer: Option<String>,
    pub(crate) product: Option<String>,
    pub(crate) serial: Option<String>,
    /// `/dev/bus/usb/BBB/DDD`, the node libusb opens.
    pub(crate) dev_node: String,
    pub(crate) interfaces: Vec<UsbInterface>,
}

fn hex(text: Option<String>) -> Option<u16> {
    u16::from_str_radix(text?.as_str(), 16).ok()
}

/// Every device in sysfs with FTDI's vendor ID or one of `extra_vids`,
/// ordered by bus and port path (the order `ftdi_rt::list` uses).
pub(crate) fn ftdi_adapters(sys: &Sys) -> Vec<UsbAdapter> {
    let mut adapters: Vec<UsbAdapter> = sys
        .entries(USB_DEVICES)
        .into_iter()
        // Interfaces are `1-1.2:1.0`; root hubs `usb1`.
        .filter(|name| !name.contains(':') && !name.starts_with("usb"))
        .filter_map(|name| adapter(sys, &name))
        .collect();
    adapters.sort_by_key(|a| sort_key(&a.path));
    adapters
}

fn sort_key(path: &str) -> Vec<u32> {
    path.split(['-', '.'])
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

fn adapter(sys: &Sys, name: &str) -> Option<UsbAdapter> {
    let dir = format!("{USB_DEVICES}/{name}");
    let attr = |a: &str| sys.read(&format!("{dir}/{a}"));
    let vendor_id = hex(attr("idVendor"))?;
    if vendor_id != FTDI_VID {
        return None;
    }
    let bcd_device = hex(attr("bcdDevice")).unwrap_or(0);
    let serial = attr("serial").filter(|s| !s.is_empty());
    let chip = Chip::detect(bcd_device, u8::from(serial.is_some())).map(|c| c.to_string());
    let bus: u16 = attr("busnum").and_then(|b| b.parse().ok()).unwrap_or(0);
    let dev: u16 = attr("devnum").and_then(|d| d.parse().ok()).unwrap_or(0);
    let interfaces = sys
        .entries(USB_DEVICES)
        .into_iter()
        .filter(|entry| {
            entry
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map(|entry| interface(sys, &format!("{USB_DEVICES}/{entry}")))
        .collect();
    Some(UsbAdapter {
        path: name.to_string(),
        chip,
        vendor_id,
        product_id: hex(attr("idProduct")).unwrap_or(0),
        bcd_device,
        manufacturer: attr("manufacturer"),
        product: attr("product"),
        serial,
        dev_node: format!("/dev/bus/usb/{bus:03}/{dev:03}"),
        interfaces,
    })
}

fn interface(sys: &Sys, dir: &str) -> UsbInterface {
    let number = sys
        .read(&format!("{dir}/bInterfaceNumber"))
        .and_then(|n| u8::from_str_radix(&n, 16).ok())
        .unwrap_or(0);
    let driver = fs::read_link(sys.path(&format!("{dir}/driver")))
        .ok()
        .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()));
    let tty = sys
        .entries(dir)
        .into_iter()
        .find(|e| e.starts_with("ttyUSB"));
    UsbInterface {
        number,
        driver,
        tty,
    }
}

/// Where sysfs lists the ttys of USB-serial drivers.
pub(crate) const USB_SERIAL: &str = "/sys/bus/usb-serial/devices";

/// ftdi_sio's latency timer of `tty` (ms), with the tty's name.
pub(crate) fn kernel_latency_timer(sys: &Sys, tty: String) -> Option<(String, u8)> {
    let ms = sys
        .read(&format!("{USB_SERIAL}/{tty}/latency_timer"))?
        .parse()
        .ok()?;
    Some((tty, ms))
}

/// Whether this machine has USB at all: the sysfs bus, and usbfs nodes.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsbPresence {
    pub(crate) sysfs_bus: bool,
    pub(crate) usbfs: bool,
}

pub(crate) fn usb_presence(sys: &Sys) -> UsbPresence {
    UsbPresence {
        sysfs_bus: sys.path(USB_DEVICES).is_dir(),
        usbfs: sys.path("/dev/bus/usb").is_dir(),
    }
}

/// Adapters that share an identity (the same serial number, or none):
/// a selector by serial cannot tell them apart. One line each.
pub(crate) fn identity_warnings(adapters: &[UsbAdapter]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (i, a) in adapters.iter().enumerate() {
        match &a.serial {
            None => warnings.push(format!(
                "{} has no serial number (blank EEPROM or a clone): select it by its path {}",
                a.path, a.path
            )),
            Some(serial) => {
                let first = adapters
                    .iter()
                    .position(|b| b.serial.as_ref() == Some(serial));
                let others: Vec<&str> = adapters
                    .iter()
                    .filter(|b| b.serial.as_ref() == Some(serial) && b.path != a.path)
                    .map(|b| b.path.as_str())
                    .collect();
                if first == Some(i) && !others.is_empty() {
                    warnings.push(format!(
                        "serial number {serial} is shared by {} and {}: select these adapters by path",
                        a.path,
                        others.join(", ")
                    ));
                }
            }
        }
    }
    warnings
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A made-up root directory, removed on drop.
    pub(crate) struct FakeRoot(pub(crate) PathBuf);

    impl FakeRoot {
        pub(crate) fn new(name: &str) -> FakeRoot {
            let dir =
                std::env::temp_dir().join(format!("ftdi-rt-cli-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            FakeRoot(dir)
        }

        pub(crate) fn sys(&self) -> Sys {
            Sys {
                root: self.0.clone(),
            }
        }

        pub(crate) fn file(&self, path: &str, contents: &str) {
            let p = self.0.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, contents).unwrap();
        }

        pub(crate) fn link(&self, path: &str, target: &str) {
            let p = self.0.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Two FT232Rs with the same serial, one bound to ftdi_sio.
    pub(crate) fn two_clones(root: &FakeRoot) {
        for (path, dev) in [("1-1.2", "5"), ("1-1.3", "6")] {
            let d = format!("/sys/bus/usb/devices/{path}");
            root.file(&format!("{d}/idVendor"), "0403\n");
            root.file(&format!("{d}/idProduct"), "6001\n");
            root.file(&format!("{d}/bcdDevice"), "0600\n");
            root.file(&format!("{d}/serial"), "A10K1234\n");
            root.file(&format!("{d}/busnum"), "1\n");
            root.file(&format!("{d}/devnum"), &format!("{dev}\n"));
            root.file(&format!("{d}:1.0/bInterfaceNumber"), "00\n");
        }
        root.link(
            "/sys/bus/usb/devices/1-1.2:1.0/driver",
            "../../../../bus/usb/drivers/ftdi_sio",
        );
        root.file("/sys/bus/usb/devices/1-1.2:1.0/ttyUSB0/dev", "188:0\n");
        // Not FTDI.
        root.file("/sys/bus/usb/devices/1-2/idVendor", "1d6b\n");
    }

    #[test]
    fn adapters_interfaces_and_drivers_from_sysfs() {
        let root = FakeRoot::new("adapters");
        two_clones(&root);
        let adapters = ftdi_adapters(&root.sys());
        assert_eq!(adapters.len(), 2);
        let a = &adapters[0];
        assert_eq!(a.path, "1-1.2");
        assert_eq!(a.chip.as_deref(), Some("FT232R"));
        assert_eq!(a.dev_node, "/dev/bus/usb/001/005");
        assert_eq!(a.interfaces.len(), 1);
        assert_eq!(a.interfaces[0].driver.as_deref(), Some("ftdi_sio"));
        assert_eq!(a.interfaces[0].tty.as_deref(), Some("ttyUSB0"));
        assert_eq!(adapters[1].interfaces[0].driver, None);
        let warnings = identity_warnings(&adapters);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("A10K1234"), "{}", warnings[0]);
    }
}
