//! The virtual adapter of the timing tier: a simulated device attached to
//! the guest's own kernel through USB/IP (vhci-hcd), and what the kernel
//! makes of it (the bus id, the `/dev/ttyUSBn` nodes ftdi_sio creates).
//!
//! Cases attach a device, use it through the real kernel stack, and drop
//! it (which unplugs it); [`VirtualDevice::unplug`] and
//! [`VirtualDevice::replug`] wait until the kernel has seen the change.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ftdi_rt::sim::usb::UsbFunction;
use ftdi_rt::usbip::{AttachOptions, AttachedDevice};
use ftdi_rt::{Pinning, RealtimeConfig, RealtimePolicy};

use crate::guest::{is_char_device, wait_until};

/// The device server's priority: the stand-in for silicon runs above
/// everything it serves (the reader 80, the application 70).
pub const SERVER_PRIORITY: u8 = 90;

/// How vhci-hcd's `vhci_rx`/`vhci_tx` kernel threads run: they play the
/// host controller's interrupt (every URB completion runs in `vhci_rx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VhciThreads {
    /// `SCHED_FIFO` at this priority (50, as threaded IRQs run on PREEMPT_RT).
    Fifo(u8),
    /// Left at `SCHED_OTHER`, as the kernel creates them.
    Other,
}

impl VhciThreads {
    /// The rig's default: FIFO 50.
    pub const DEFAULT: VhciThreads = VhciThreads::Fifo(50);

    /// The `vhci=` value of a `timing` row: `fifo50` or `other`.
    pub fn label(self) -> String {
        match self {
            VhciThreads::Fifo(p) => format!("fifo{p}"),
            VhciThreads::Other => "other".into(),
        }
    }
}

impl FromStr for VhciThreads {
    type Err = String;
    /// `50`, `fifo50` or `other`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "other" {
            return Ok(VhciThreads::Other);
        }
        s.trim_start_matches("fifo")
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=99).contains(p))
            .map(VhciThreads::Fifo)
            .ok_or_else(|| format!("vhci threads: {s:?} is neither a priority 1..99 nor `other`"))
    }
}

impl fmt::Display for VhciThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// The attach options of the rig: the server at `SCHED_FIFO` 90, required
/// (a rig whose chip could be starved measures nothing), and the vhci
/// threads as asked.
pub fn rig_options(vhci: VhciThreads) -> AttachOptions {
    AttachOptions::default()
        .with_realtime(
            RealtimeConfig::default()
                .with_priority(SERVER_PRIORITY)
                .with_pinning(Pinning::Unpinned)
                .with_lock_memory(false)
                .with_policy(RealtimePolicy::Required),
        )
        .with_kthread_priority(match vhci {
            VhciThreads::Fifo(p) => Some(p),
            VhciThreads::Other => None,
        })
}

/// A device attached to the guest's kernel, with the tty nodes its
/// interfaces got.
pub struct VirtualDevice<F: UsbFunction + Send + 'static> {
    dev: AttachedDevice<F>,
    bus_id: String,
    ttys: Vec<String>,
    expect_ttys: usize,
    /// Attach to bus id, and to every tty present.
    pub attach_time: (Duration, Duration),
}

impl<F: UsbFunction + Send + 'static> fmt::Debug for VirtualDevice<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualDevice")
            .field("bus_id", &self.bus_id)
            .field("ttys", &self.ttys)
            .field("dev", &self.dev)
            .finish()
    }
}

/// How long the kernel gets to enumerate and bind a device (in guest time).
pub const ENUMERATION_LIMIT: Duration = Duration::from_secs(20);

impl<F: UsbFunction + Send + 'static> VirtualDevice<F> {
    /// Attaches `function` with [`rig_options`] and waits until the kernel
    /// has addressed it and `expect_ttys` tty nodes exist for it (0 for a
    /// device no tty driver binds).
    ///
    /// # Errors
    /// The attach failed, or the kernel did not get that far in
    /// [`ENUMERATION_LIMIT`].
    pub fn attach(function: F, vhci: VhciThreads, expect_ttys: usize) -> Result<Self, String> {
        let t0 = Instant::now();
        let dev = AttachedDevice::attach(function, rig_options(vhci))
            .map_err(|e| format!("attach: {e}"))?;
        let mut this = VirtualDevice {
            dev,
            bus_id: String::new(),
            ttys: Vec::new(),
            expect_ttys,
            attach_time: (Duration::ZERO, Duration::ZERO),
        };
        this.settle(t0)?;
        for k in this.dev.kthreads() {
            if let Err(e) = &k.outcome {
                return Err(format!(
                    "{} (pid {}): SCHED_FIFO refused: {e}",
                    k.name, k.pid
                ));
            }
        }
        if vhci != VhciThreads::Other && this.dev.kthreads().len() < 2 {
            return Err(format!(
                "found {} new vhci kernel threads to raise, expected vhci_rx and vhci_tx",
                this.dev.kthreads().len()
            ));
        }
        Ok(this)
    }

    /// Waits for the bus id and the ttys after an attach that began at `t0`.
    fn settle(&mut self, t0: Instant) -> Result<(), String> {
        self.bus_id = self
            .dev
            .wait_for_bus_id(ENUMERATION_LIMIT)
            .map_err(|e| e.to_string())?;
        let addressed = t0.elapsed();
        let want = self.expect_ttys;
        let dev = &self.dev;
        let mut ttys = Vec::new();
        let found = wait_until(ENUMERATION_LIMIT, Duration::from_millis(5), || {
            ttys = dev
                .ttys()
                .into_iter()
                .map(|(_, t)| format!("/dev/{t}"))
                .collect();
            ttys.len() >= want && ttys.iter().all(|t| is_char_device(t))
        });
        if found.is_none() {
            return Err(format!(
                "{}: {} of {want} tty nodes after {ENUMERATION_LIMIT:?}: {ttys:?}",
                self.bus_id,
                ttys.len()
            ));
        }
        self.ttys = ttys;
        self.attach_time = (addressed, t0.elapsed());
        Ok(())
    }

    /// The kernel's name of the device (`3-1`).
    pub fn bus_id(&self) -> &str {
        &self.bus_id
    }

    /// The tty nodes of the interfaces, in interface order (`/dev/ttyUSB0`).
    pub fn ttys(&self) -> &[String] {
        &self.ttys
    }

    /// The first interface's tty node.
    pub fn tty(&self) -> Result<&str, String> {
        self.ttys
            .first()
            .map(String::as_str)
            .ok_or_else(|| format!("{}: no tty node", self.bus_id))
    }

    /// The tty node the kernel's driver has for `interface` now
    /// (`/dev/ttyUSB1`), if it exists as a character device: how a case sees
    /// a channel come back to ftdi_sio after ftdi-rt let go of it.
    pub fn live_tty(&self, interface: u8) -> Option<String> {
        self.dev
            .ttys()
            .into_iter()
            .find(|(number, _)| *number == interface)
            .map(|(_, t)| format!("/dev/{t}"))
            .filter(|t| is_char_device(t))
    }

    /// The attached device (fault injection with `with_function`, lateness).
    pub fn device(&self) -> &AttachedDevice<F> {
        &self.dev
    }

    /// Unplugs the device and waits until its tty nodes are gone; returns
    /// how long that took.
    ///
    /// # Errors
    /// The unplug failed, or a tty node is still there after 10 s.
    pub fn unplug(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.dev.unplug().map_err(|e| format!("unplug: {e}"))?;
        let ttys = self.ttys.clone();
        wait_until(Duration::from_secs(10), Duration::from_millis(2), || {
            ttys.iter().all(|t| !std::path::Path::new(t).exists())
        })
        .ok_or_else(|| format!("{ttys:?} still present 10 s after the unplug"))?;
        Ok(t0.elapsed())
    }

    /// Plugs the device back in and waits as [`attach`](Self::attach) does;
    /// returns how long until the tty nodes were back.
    ///
    /// # Errors
    /// As [`attach`](Self::attach).
    pub fn replug(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.dev.replug().map_err(|e| format!("replug: {e}"))?;
        self.settle(t0)?;
        Ok(t0.elapsed())
    }

    /// Plugs the device back in and waits only until the kernel has
    /// enumerated it, not for its tty nodes: for a driver that claims the
    /// device as soon as it is there (a port that resumes), which takes
    /// the ttys away again. Returns how long that took.
    ///
    /// # Errors
    /// The replug failed, or the kernel did not enumerate the device in
    /// [`ENUMERATION_LIMIT`].
    pub fn replug_enumerated(&mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.dev.replug().map_err(|e| format!("replug: {e}"))?;
        self.bus_id = self
            .dev
            .wait_for_bus_id(ENUMERATION_LIMIT)
            .map_err(|e| e.to_string())?;
        Ok(t0.elapsed())
    }

    /// The function while the device is unplugged (to swap in a
    /// power-cycled one before a replug); `None` while it is attached.
    pub fn function_mut(&mut self) -> Option<&mut F> {
        self.dev.function_mut()
    }

    /// One line on the attachment: port, bus id, ttys, the server's
    /// realtime setup, the vhci threads, and the server's lateness.
    pub fn describe(&self) -> String {
        let late = self.dev.lateness();
        let kthreads: Vec<String> = self
            .dev
            .kthreads()
            .iter()
            .map(|k| match &k.outcome {
                Ok(0) => format!("{} {} OTHER", k.name, k.pid),
                Ok(p) => format!("{} {} FIFO {p}", k.name, k.pid),
                Err(e) => format!("{} {} refused: {e}", k.name, k.pid),
            })
            .collect();
        format!(
            "vhci port {:?} bus {} ttys {:?}; server {}; kthreads [{}]; server lateness n={} \
             p99={} us max={} us",
            self.dev.port(),
            self.bus_id,
            self.ttys,
            self.dev.server_realtime(),
            kthreads.join(", "),
            late.count,
            late.p99.as_micros(),
            late.max.as_micros()
        )
    }

    /// Sets this device's vhci kthreads as `setting` says; returns what was
    /// set, e.g. `vhci_rx 103 SCHED_FIFO 50, vhci_tx 105 SCHED_FIFO 50`.
    ///
    /// # Errors
    /// The device is not attached, or a thread refused the setting.
    pub fn set_vhci(&mut self, setting: VhciThreads) -> Result<String, String> {
        let priority = match setting {
            VhciThreads::Fifo(p) => Some(p),
            VhciThreads::Other => None,
        };
        let got = self
            .dev
            .set_kthread_priority(priority)
            .map_err(|e| e.to_string())?;
        let mut done = Vec::new();
        for k in got {
            match &k.outcome {
                Ok(0) => done.push(format!("{} {} SCHED_OTHER", k.name, k.pid)),
                Ok(p) => done.push(format!("{} {} SCHED_FIFO {p}", k.name, k.pid)),
                Err(e) => return Err(format!("{} {}: {e}", k.name, k.pid)),
            }
        }
        Ok(done.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhci_settings_parse_and_label() {
        assert_eq!("50".parse(), Ok(VhciThreads::Fifo(50)));
        assert_eq!("fifo50".parse(), Ok(VhciThreads::Fifo(50)));
        assert_eq!("other".parse(), Ok(VhciThreads::Other));
        assert!("0".parse::<VhciThreads>().is_err());
        assert!("fast".parse::<VhciThreads>().is_err());
        assert_eq!(VhciThreads::DEFAULT.label(), "fifo50");
        assert_eq!(VhciThreads::Other.to_string(), "other");
        assert_eq!(rig_options(VhciThreads::Other).kthread_priority, None);
        assert_eq!(
            rig_options(VhciThreads::Fifo(50)).kthread_priority,
            Some(50)
        );
    }
}
