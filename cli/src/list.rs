//! `ftdi-rt list`: the FTDI adapters sysfs knows, with the driver holding
//! each interface, and warnings for adapters that share an identity.

use std::process::ExitCode;

use serde::Serialize;

use crate::print_json;
use crate::sysfs::{self, Sys, UsbAdapter, UsbPresence};

#[derive(Serialize)]
struct Listing {
    usb: UsbPresence,
    adapters: Vec<UsbAdapter>,
    warnings: Vec<String>,
}

/// Lists; exit status 0 (an empty list is an answer, not an error).
pub(crate) fn run(json: bool) -> ExitCode {
    let sys = Sys::from_env();
    let usb = sysfs::usb_presence(&sys);
    let adapters = sysfs::ftdi_adapters(&sys);
    let warnings = sysfs::identity_warnings(&adapters);
    let listing = Listing {
        usb,
        adapters,
        warnings,
    };
    if json {
        print_json(&listing);
    } else {
        print!("{}", text(&listing));
    }
    ExitCode::SUCCESS
}

fn text(l: &Listing) -> String {
    let mut out = String::new();
    if !l.usb.sysfs_bus {
        out.push_str(&format!(
            "no USB on this machine ({} does not exist); \
             the simulated chip needs none: ftdi-rt info --sim, ftdi-rt bench --sim\n",
            sysfs::USB_DEVICES
        ));
        return out;
    }
    if l.adapters.is_empty() {
        out.push_str("no FTDI adapter found\n");
    }
    for (i, a) in l.adapters.iter().enumerate() {
        out.push_str(&format!(
            "{i}  {}  serial {}  usb {}  {:04x}:{:04x}  {} channel{}  {}\n",
            a.chip.as_deref().unwrap_or("unknown FTDI chip"),
            a.serial.as_deref().unwrap_or("(none)"),
            a.path,
            a.vendor_id,
            a.product_id,
            a.interfaces.len(),
            if a.interfaces.len() == 1 { "" } else { "s" },
            a.product.as_deref().unwrap_or(""),
        ));
        for itf in &a.interfaces {
            let holder = match (&itf.driver, &itf.tty) {
                (Some(d), Some(t)) => format!("{d} (/dev/{t})"),
                (Some(d), None) if d == "usbfs" => "usbfs (a libusb program, e.g. ftdi-rt)".into(),
                (Some(d), None) => d.clone(),
                (None, _) => "no driver (free)".into(),
            };
            out.push_str(&format!("     interface {}: {holder}\n", itf.number));
        }
    }
    for w in &l.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::tests::{FakeRoot, two_clones};

    #[test]
    fn lists_adapters_holders_and_warnings() {
        let root = FakeRoot::new("list");
        two_clones(&root);
        let sys = root.sys();
        let adapters = sysfs::ftdi_adapters(&sys);
        let listing = Listing {
            usb: sysfs::usb_presence(&sys),
            warnings: sysfs::identity_warnings(&adapters),
            adapters,
        };
        let t = text(&listing);
        assert!(t.contains("0  FT232R  serial A10K1234  usb 1-1.2"), "{t}");
        assert!(t.contains("interface 0: ftdi_sio (/dev/ttyUSB0)"), "{t}");
        assert!(t.contains("interface 0: no driver (free)"), "{t}");
        assert!(
            t.contains("warning: serial number A10K1234 is shared"),
            "{t}"
        );
    }
}
