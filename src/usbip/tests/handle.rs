//! The attach handle on a fake vhci-hcd sysfs directory.

use std::time::Duration;

use super::super::server::DetachReason;
use super::Fake;
use crate::usbip::{AttachOptions, AttachedDevice, UsbipError};

/// A fake vhci-hcd sysfs directory: a status file, and attach/detach files
/// that record what is written (the kernel's side of the link is absent, so
/// the device just waits).
fn fake_sysfs(name: &str, status: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ftdi-rt-usbip-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status"), status).unwrap();
    std::fs::write(dir.join("attach"), "").unwrap();
    std::fs::write(dir.join("detach"), "").unwrap();
    dir
}

fn options(sysfs: std::path::PathBuf) -> AttachOptions {
    AttachOptions {
        sysfs,
        ..AttachOptions::default()
    }
}

#[test]
fn attach_writes_port_socket_devid_and_speed_and_a_closed_link_detaches() {
    let sysfs = fake_sysfs(
        "attach",
        "hub port sta spd dev      sockfd local_busid\n\
         hs  0000 006 002 00010002 000009 1-1\n\
         hs  0001 004 000 00000000 000000 0-0\n",
    );
    let mut dev = AttachedDevice::attach(Fake::default(), options(sysfs.clone())).unwrap();
    assert_eq!(dev.port(), Some(1), "the first free USB 2.0 port");
    let written = std::fs::read_to_string(sysfs.join("attach")).unwrap();
    let words: Vec<&str> = written.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{written:?}");
    assert_eq!(
        (words[0], words[2], words[3]),
        ("1", "65538", "2"),
        "port, devid, full speed"
    );
    assert!(
        words[1].parse::<i32>().unwrap() > 2,
        "a descriptor number: {written:?}"
    );
    assert_eq!(dev.bus_id(), None, "the fake kernel never addresses it");
    // No kernel holds the other end of the link: the server reads end of
    // file at once, as when vhci-hcd closes it, and the handle says so.
    let start = std::time::Instant::now();
    while dev.detached().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "no end of file");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(dev.detached(), Some(DetachReason::HostDetached));
    dev.unplug().unwrap();
    assert_eq!(dev.port(), None);
    assert!(matches!(
        dev.with_function(|_, _| ()),
        Err(UsbipError::NotAttached(_))
    ));
    assert!(
        dev.function_mut().is_some(),
        "the function is back while unplugged"
    );
    let _ = std::fs::remove_dir_all(sysfs);
}

#[test]
fn attach_errors_say_what_to_do() {
    let missing = options("/nonexistent/vhci_hcd.0".into());
    let err = AttachedDevice::attach(Fake::default(), missing).unwrap_err();
    assert!(matches!(err, UsbipError::VhciMissing { .. }), "{err}");

    let sysfs = fake_sysfs(
        "full",
        "hub port sta spd dev      sockfd local_busid\n\
         hs  0000 006 002 00010002 000009 1-1\n\
         ss  0001 004 000 00000000 000000 0-0\n",
    );
    let err = AttachedDevice::attach(Fake::default(), options(sysfs.clone())).unwrap_err();
    match &err {
        UsbipError::NoFreePort { total, .. } => assert_eq!(*total, 1),
        other => panic!("expected NoFreePort, got {other}"),
    }
    assert!(err.to_string().contains("detach"), "{err}");
    let _ = std::fs::remove_dir_all(sysfs);
}
