//! A process that holds a channel through ftdi-rt and is killed by a
//! signal gives the channel back to ftdi_sio: on an FT4232H, a child
//! process (this binary again, [`hold_usb`]) claims channel B; SIGTERM, then
//! in a second round SIGINT, ends it as killed by that signal, and B's
//! interface is bound to ftdi_sio again with its /dev/ttyUSB node back,
//! while A, C and D never lose theirs. A third round is the control: a
//! holder killed by SIGKILL runs no code, B stays without a driver, and the
//! recovery `ftdi_rt::exit` documents (a bind through sysfs) brings it back.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use ftdi_rt::{Interface, Port, PortConfig, Selector};

use super::multichannel::{attach_ft4232h_loopbacks, tty_echo};
use crate::guest::{Ctx, Outcome, emit, is_char_device, wait_until};

/// The argument that makes the guest binary a [`hold_usb`] child.
pub const HOLD_USB: &str = "--hold-usb";
/// What the child prints once it holds the channel.
const HELD: &str = "hold-usb: held";

/// The child: opens `interface` of the device `selector` names through
/// ftdi-rt (detaching ftdi_sio from it), says so on stdout, and waits to be
/// killed. Exit status 1 if the open failed.
pub fn hold_usb(selector: &str, interface: &str) -> ExitCode {
    let open = || -> Result<Port, String> {
        let selector: Selector = selector.parse().map_err(|e| format!("{selector}: {e}"))?;
        let interface: Interface = interface.parse().map_err(|e| format!("{interface}: {e}"))?;
        Port::open_usb(&selector, &PortConfig::default().with_interface(interface))
            .map_err(|e| format!("open_usb {selector} interface {interface}: {e}"))
    };
    match open() {
        Ok(port) => {
            emit(HELD);
            loop {
                std::thread::park();
                // The port stays open until the signal ends the process.
                let _ = port.transport_info();
            }
        }
        Err(e) => {
            eprintln!("hold-usb: {e}");
            ExitCode::from(1)
        }
    }
}

/// The driver bound to USB interface `name` (`1-1:1.1`), if any.
fn driver_of(name: &str) -> Option<String> {
    let link = std::fs::read_link(Path::new("/sys/bus/usb/devices").join(name).join("driver"));
    link.ok()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

/// Starts the child on channel B of device `bus_id` and waits until it
/// holds it.
fn spawn_holder(bus_id: &str) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args([HOLD_USB, &format!("path:{bus_id}"), "B"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the holder: {e}"))?;
    let out = child.stdout.take().ok_or("the holder has no stdout")?;
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(HELD) => return Ok(child),
            Some(Ok(_)) => {}
            _ => {
                let status = child.wait().map_err(|e| e.to_string())?;
                return Err(format!(
                    "the holder ended before holding channel B: {status}"
                ));
            }
        }
    }
}

/// Waits up to 10 s for the child to end.
fn wait_for_end(child: &mut Child) -> Result<ExitStatus, String> {
    let mut status = None;
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    })
    .ok_or_else(|| {
        let _ = child.kill();
        "the holder did not end within 10 s of the signal".to_string()
    })?;
    status.ok_or_else(|| "no exit status".to_string())
}

/// Checks that `interface` has no driver for a second after its holder
/// died (the kernel does not bind one by itself).
fn stays_driverless(interface: &str) -> Result<(), String> {
    let bound = wait_until(Duration::from_secs(1), Duration::from_millis(5), || {
        driver_of(interface).is_some()
    });
    match bound {
        None => Ok(()),
        Some(after) => Err(format!(
            "SIGKILL round: {interface} got driver {:?} {} ms after its holder was killed; \
             the kernel was expected to leave it without one",
            driver_of(interface),
            after.as_millis()
        )),
    }
}

/// `reattach-on-signal`: see the module docs.
pub fn reattach_on_signal(ctx: &mut Ctx) -> Outcome {
    let run = || -> Result<String, String> {
        let (dev, ttys) = attach_ft4232h_loopbacks(ctx)?;
        let [a, b, c, d] = &ttys;
        let b_interface = format!("{}:1.{}", dev.bus_id(), Interface::B.number());
        let mut rounds = Vec::new();
        for (signal, name) in [
            (libc::SIGTERM, "SIGTERM"),
            (libc::SIGINT, "SIGINT"),
            (libc::SIGKILL, "SIGKILL"),
        ] {
            let mut holder = spawn_holder(dev.bus_id())?;
            let held_by = driver_of(&b_interface);
            if held_by.as_deref() == Some("ftdi_sio") || is_char_device(b) {
                let _ = holder.kill();
                return Err(format!(
                    "{name} round: channel B is still ftdi_sio's ({b}) while the holder claims it"
                ));
            }
            let kill = Command::new("kill")
                .args([format!("-{signal}"), holder.id().to_string()])
                .status()
                .map_err(|e| format!("kill: {e}"))?;
            if !kill.success() {
                return Err(format!("kill -{signal}: {kill}"));
            }
            let status = wait_for_end(&mut holder)?;
            if status.signal() != Some(signal) {
                return Err(format!(
                    "{name} round: the holder ended with {status}, not killed by {name}"
                ));
            }
            if signal == libc::SIGKILL {
                // The control: nothing runs in a killed process, so B stays
                // without a driver (what every signal did before the exit
                // path); then the recovery the docs give, a sysfs bind.
                stays_driverless(&b_interface)?;
                std::fs::write("/sys/bus/usb/drivers/ftdi_sio/bind", &b_interface)
                    .map_err(|e| format!("binding {b_interface} to ftdi_sio by hand: {e}"))?;
            }
            let mut b_again = None;
            let back = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
                b_again = dev.live_tty(Interface::B.number());
                b_again.is_some() && driver_of(&b_interface).as_deref() == Some("ftdi_sio")
            })
            .ok_or_else(|| {
                format!(
                    "{name} round: channel B did not return to ftdi_sio within 5 s of the \
                     holder's end (driver {:?})",
                    driver_of(&b_interface)
                )
            })?;
            let b_again = b_again.unwrap_or_default();
            tty_echo(&b_again)
                .map_err(|e| format!("{name} round: channel B through ftdi_sio: {e}"))?;
            for tty in [a, c, d] {
                if !is_char_device(tty) {
                    return Err(format!("{name} round: {tty} vanished"));
                }
            }
            let (how, since) = if signal == libc::SIGKILL {
                ("driverless for 1 s, then bound by hand", "the bind")
            } else {
                ("re-attached by the exit path", "its end")
            };
            emit(&format!(
                "# reattach-on-signal: {name}: holder (held by {}) killed by {name}, {how}: \
                 {b_interface} back on ftdi_sio as {b_again} {} ms after {since}, echoed",
                held_by.as_deref().unwrap_or("no driver"),
                back.as_millis()
            ));
            rounds.push(format!("{name}: {b_again} in {} ms", back.as_millis()));
        }
        Ok(format!(
            "a child holding B through ftdi-rt, killed by SIGTERM and by SIGINT, gave \
             {b_interface} back to ftdi_sio; killed by SIGKILL it left B driverless until a \
             sysfs bind ({}); {a}, {c}, {d} stayed",
            rounds.join(", ")
        ))
    };
    run().into()
}
