//! [`AttachedDevice`]: a USB function plugged into the local kernel through
//! vhci-hcd, served by its own realtime thread.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::error::UsbipError;
use super::server::{Control, DetachReason, Server, Shared};
use super::vhci;
use crate::realtime::{self, Pinning, RealtimeConfig, RealtimePolicy, RealtimeStatus, RtThread};
use crate::sim::usb::UsbFunction;
use crate::stats::{LatencySummary, new_latency_histogram};
use crate::sys;
use crate::time::Timestamp;

/// How a device is attached and served.
#[derive(Clone, Debug)]
#[must_use]
pub struct AttachOptions {
    /// How the server thread runs. Default: `SCHED_FIFO` 90 (the stand-in
    /// for silicon runs above everything it serves), unpinned, memory not
    /// locked, best effort (what was granted is in
    /// [`AttachedDevice::server_realtime`]).
    pub realtime: RealtimeConfig,
    /// Raise vhci-hcd's `vhci_rx` and `vhci_tx` kernel threads of this
    /// device to `SCHED_FIFO` with this priority. They play the host
    /// controller's interrupt: every URB completion callback runs in
    /// `vhci_rx`. `None` (the default) leaves them as the kernel made them
    /// (`SCHED_OTHER`).
    pub kthread_priority: Option<u8>,
    /// The device id the host puts in its requests (`(busnum << 16) | devnum`
    /// on a real usbip-host; any value works here).
    pub devid: u32,
    /// vhci-hcd's sysfs directory.
    pub sysfs: PathBuf,
    /// How long [`AttachedDevice::unplug`] waits for the kernel to free the
    /// port before writing it to `detach` and waiting once more.
    pub detach_timeout: Duration,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            realtime: RealtimeConfig::default()
                .with_priority(90)
                .with_pinning(Pinning::Unpinned)
                .with_lock_memory(false)
                .with_policy(RealtimePolicy::BestEffort),
            kthread_priority: None,
            devid: (1 << 16) | 2,
            sysfs: PathBuf::from(vhci::VHCI_SYSFS),
            detach_timeout: Duration::from_secs(5),
        }
    }
}

impl AttachOptions {
    /// Sets how the server thread runs.
    pub fn with_realtime(mut self, realtime: RealtimeConfig) -> Self {
        self.realtime = realtime;
        self
    }
    /// Raises `vhci_rx`/`vhci_tx` to `SCHED_FIFO` `priority` (`None`: leave them).
    pub fn with_kthread_priority(mut self, priority: Option<u8>) -> Self {
        self.kthread_priority = priority;
        self
    }
}

/// What setting one vhci kernel thread's scheduling did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KthreadPriority {
    /// `vhci_rx` or `vhci_tx`.
    pub name: &'static str,
    /// Its pid.
    pub pid: i32,
    /// `Ok(priority)` once set and read back: a `SCHED_FIFO` priority, or 0
    /// for `SCHED_OTHER` (the kernel's own convention); or what the kernel said.
    pub outcome: Result<u8, String>,
}

/// Where the device is plugged in.
#[derive(Clone, Copy, Debug)]
struct Plug {
    port: u32,
    /// The descriptor number written to `attach` (the status file shows it).
    sockfd: u32,
}

/// The running server of an attached device.
struct Running<F> {
    plug: Plug,
    control: Sender<Control<F>>,
    shared: Arc<Shared>,
    /// Ends with the function and why it was detached; `None` if the
    /// function never reached the thread.
    thread: RtThread<Option<(F, DetachReason)>>,
}

/// A [`UsbFunction`] plugged into the local kernel through vhci-hcd.
///
/// The kernel enumerates it like any USB device (drivers bind, `/dev` nodes
/// appear); a thread of its own serves the traffic at a realtime priority.
/// Dropping the handle unplugs the device.
///
/// ```no_run
/// use std::time::Duration;
/// use ftdi_rt::sim::usb::UsbFunction;
/// use ftdi_rt::usbip::{AttachOptions, AttachedDevice, UsbipError};
///
/// pub fn plug_in<F: UsbFunction + Send + 'static>(function: F) -> Result<(), UsbipError> {
///     let mut dev = AttachedDevice::attach(function, AttachOptions::default())?;
///     let bus_id = dev.wait_for_bus_id(Duration::from_secs(5))?;
///     println!("on vhci port {:?} as {bus_id}, ttys {:?}", dev.port(), dev.ttys());
///     dev.unplug()?; // the kernel sees a disconnect...
///     dev.replug() // ...and then a new device
/// }
/// # fn main() {}
/// ```
pub struct AttachedDevice<F: UsbFunction + Send + 'static> {
    options: AttachOptions,
    /// The function while no server holds it.
    function: Option<F>,
    running: Option<Running<F>>,
    last_port: Option<u32>,
    detached: Option<DetachReason>,
    server_realtime: RealtimeStatus,
    /// This device's vhci kernel threads (found at attach), by name.
    kthread_pids: Vec<(&'static str, i32)>,
    kthreads: Vec<KthreadPriority>,
    lateness: Histogram<u64>,
}

impl<F: UsbFunction + Send + 'static> std::fmt::Debug for AttachedDevice<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedDevice")
            .field("port", &self.port())
            .field("detached", &self.detached())
            .field("server_realtime", &self.server_realtime)
            .field("kthreads", &self.kthreads)
            .finish_non_exhaustive()
    }
}

impl<F: UsbFunction + Send + 'static> AttachedDevice<F> {
    /// Plugs `function` into the local kernel: starts its server thread,
    /// attaches one end of a socket pair to a free vhci-hcd port of the
    /// function's speed, and (if asked) raises vhci's kernel threads.
    ///
    /// # Errors
    /// vhci-hcd not loaded, no permission (root is needed), no free port,
    /// the kernel refusing the attach, or a required realtime setting refused.
    pub fn attach(function: F, options: AttachOptions) -> Result<Self, UsbipError> {
        let mut dev = AttachedDevice {
            options,
            function: Some(function),
            running: None,
            last_port: None,
            detached: None,
            server_realtime: RealtimeStatus::default(),
            kthread_pids: Vec::new(),
            kthreads: Vec::new(),
            lateness: new_latency_histogram(),
        };
        dev.plug_in()?;
        Ok(dev)
    }

    /// Attaches the function again after an unplug (or after the host
    /// detached it): the kernel sees a new device. Preferably on the same port.
    ///
    /// # Errors
    /// As [`attach`](Self::attach). A device that is attached stays as it
    /// is (`Ok`).
    pub fn replug(&mut self) -> Result<(), UsbipError> {
        self.reap();
        if self.running.is_some() {
            return Ok(());
        }
        self.plug_in()
    }

    fn plug_in(&mut self) -> Result<(), UsbipError> {
        let root = self.options.sysfs.clone();
        let Some(function) = self.function.take() else {
            return Err(UsbipError::NotAttached(
                "the function is held elsewhere".into(),
            ));
        };
        let speed = function.speed();
        let ports = vhci::read_ports(&root);
        let free = match &ports {
            Ok(rows) => vhci::free_ports(rows, self.last_port),
            Err(_) => Vec::new(),
        };
        let rows = match ports {
            Ok(rows) => rows,
            Err(e) => {
                self.function = Some(function);
                return Err(e);
            }
        };
        if free.is_empty() {
            self.function = Some(function);
            return Err(UsbipError::NoFreePort {
                speed: vhci::speed_name(speed),
                total: rows.iter().filter(|r| !r.superspeed).count(),
                path: root.join("status"),
            });
        }
        let (ours, theirs) = UnixStream::pair().map_err(UsbipError::Setup)?;
        let shared = Arc::new(Shared::new().map_err(UsbipError::Setup)?);
        let (control, requests) = mpsc::channel();
        // The function goes to the thread only once its realtime setup has
        // succeeded, so a refused setup leaves it with us.
        let (give, take) = mpsc::sync_channel::<F>(1);
        let server_shared = shared.clone();
        let spawned = realtime::spawn("usbip-device", &self.options.realtime, move |startup| {
            startup.ready();
            let function = take.recv().ok()?;
            Some(Server::new(function, ours, requests, server_shared).run())
        });
        let (thread, status) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                self.function = Some(function);
                return Err(match e {
                    crate::Error::Realtime(refused) => UsbipError::Realtime(refused),
                    crate::Error::Io(io) => UsbipError::Setup(io),
                    other => UsbipError::Setup(std::io::Error::other(other.to_string())),
                });
            }
        };
        if let Err(mpsc::SendError(function)) = give.send(function) {
            self.function = Some(function);
            return Err(UsbipError::Setup(std::io::Error::other(
                "the device server thread ended before it was handed the device",
            )));
        }
        self.server_realtime = status;
        let running = Running {
            plug: Plug { port: 0, sockfd: 0 },
            control,
            shared,
            thread,
        };
        let before_rx = vhci::kernel_threads("vhci_rx");
        let before_tx = vhci::kernel_threads("vhci_tx");
        let sockfd = theirs.as_raw_fd();
        let mut result = Err(UsbipError::NotAttached("no port tried".into()));
        for &port in &free {
            result =
                vhci::write_attach(&root, port, sockfd, self.options.devid, speed).map(|()| port);
            match &result {
                // Taken between reading the status and attaching: try the next.
                Err(UsbipError::AttachRefused { source, .. })
                    if source.raw_os_error() == Some(libc::EBUSY) => {}
                _ => break,
            }
        }
        // The kernel holds its own reference to the socket now.
        drop(theirs);
        let port = match result {
            Ok(port) => port,
            Err(e) => {
                self.stop(running);
                return Err(e);
            }
        };
        self.last_port = Some(port);
        self.detached = None;
        self.running = Some(Running {
            plug: Plug {
                port,
                sockfd: sockfd as u32,
            },
            ..running
        });
        self.kthread_pids.clear();
        for (name, before) in [("vhci_rx", before_rx), ("vhci_tx", before_tx)] {
            for pid in vhci::kernel_threads(name) {
                if !before.contains(&pid) {
                    self.kthread_pids.push((name, pid));
                }
            }
        }
        self.kthreads.clear();
        if let Some(priority) = self.options.kthread_priority {
            self.schedule_kthreads(Some(priority));
        }
        Ok(())
    }

    /// Sets the scheduling of this device's vhci-hcd kernel threads
    /// (`vhci_rx`, `vhci_tx`: vhci starts a pair per attached device):
    /// `Some(priority)` puts them under `SCHED_FIFO` at that priority, `None`
    /// back under `SCHED_OTHER`. The setting also holds for later
    /// [`replug`](Self::replug)s. Returns what each thread got, read back
    /// from the kernel (as [`kthreads`](Self::kthreads) does from now on); a
    /// thread that refused says why in its outcome.
    ///
    /// # Errors
    /// [`UsbipError::NotAttached`] while unplugged, or if the kernel started
    /// no kernel thread for this device.
    pub fn set_kthread_priority(
        &mut self,
        priority: Option<u8>,
    ) -> Result<&[KthreadPriority], UsbipError> {
        if self.port().is_none() {
            return Err(UsbipError::NotAttached(
                "the vhci kernel threads exist only while attached".into(),
            ));
        }
        if self.kthread_pids.is_empty() {
            return Err(UsbipError::NotAttached(
                "no vhci_rx/vhci_tx kernel thread appeared when the device was attached".into(),
            ));
        }
        self.options.kthread_priority = priority;
        self.schedule_kthreads(priority);
        Ok(&self.kthreads)
    }

    fn schedule_kthreads(&mut self, priority: Option<u8>) {
        self.kthreads = self
            .kthread_pids
            .iter()
            .map(|&(name, pid)| KthreadPriority {
                name,
                pid,
                outcome: schedule_kthread(pid, priority),
            })
            .collect();
    }

    /// The vhci-hcd port the device is attached to (`None` when unplugged).
    pub fn port(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.plug.port)
    }

    /// The kernel's name of the device (`3-1`, as in `/sys/bus/usb/devices`)
    /// once the host has addressed it; `None` before, or when unplugged.
    pub fn bus_id(&self) -> Option<String> {
        let plug = self.running.as_ref()?.plug;
        let rows = vhci::read_ports(&self.options.sysfs).ok()?;
        vhci::our_row(&rows, plug.port, plug.sockfd)
            .filter(|r| r.status == vhci::PORT_USED)
            .map(|r| r.bus_id.clone())
    }

    /// Waits until the kernel has enumerated the device (addressed it and
    /// registered it: its `/sys/bus/usb/devices` entry exists) and returns
    /// its name.
    ///
    /// # Errors
    /// [`UsbipError::NotAttached`] when the device is unplugged or not
    /// enumerated within `timeout`.
    pub fn wait_for_bus_id(&self, timeout: Duration) -> Result<String, UsbipError> {
        let start = Instant::now();
        loop {
            if let Some(id) = self.bus_id()
                && vhci::usb_device_dir(&id).join("idVendor").exists()
            {
                return Ok(id);
            }
            if let Some(reason) = self.detached() {
                return Err(UsbipError::NotAttached(reason.to_string()));
            }
            if start.elapsed() >= timeout {
                return Err(UsbipError::NotAttached(format!(
                    "the host did not enumerate the device within {timeout:?} (see dmesg)"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The device's directory in `/sys/bus/usb/devices`, once addressed.
    pub fn sysfs_device(&self) -> Option<PathBuf> {
        self.bus_id().map(|id| vhci::usb_device_dir(&id))
    }

    /// The tty node each interface has (`(0, "ttyUSB0")`), by interface
    /// number: what a kernel driver (ftdi_sio, cdc-acm) created for it.
    pub fn ttys(&self) -> Vec<(u8, String)> {
        self.bus_id()
            .map(|id| vhci::interface_ttys(&id))
            .unwrap_or_default()
    }

    /// Runs `job` on the server thread with the function and the current
    /// time, between two of its steps, and returns its result: fault
    /// injection, inspection, scheduling events. Completions the job causes
    /// are sent at once.
    ///
    /// # Errors
    /// [`UsbipError::NotAttached`] when no server runs.
    pub fn with_function<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut F, Timestamp) -> R + Send + 'static,
    ) -> Result<R, UsbipError> {
        let gone = || {
            UsbipError::NotAttached(
                self.detached()
                    .map_or_else(|| "unplugged".to_string(), |r| r.to_string()),
            )
        };
        let running = self.running.as_ref().ok_or_else(gone)?;
        let (tx, rx) = mpsc::sync_channel(1);
        running
            .control
            .send(Control::Run(Box::new(move |f: &mut F, now| {
                let _ = tx.send(job(f, now));
            })))
            .map_err(|_| gone())?;
        running.shared.bell.ring();
        rx.recv().map_err(|_| gone())
    }

    /// The function, while the device is unplugged (to change it before a
    /// [`replug`](Self::replug)).
    pub fn function_mut(&mut self) -> Option<&mut F> {
        self.reap();
        self.function.as_mut()
    }

    /// Unplugs the device: the server stops and closes its end of the link,
    /// the kernel sees the device disconnect (drivers unbind, `/dev` nodes
    /// go), and this returns once vhci-hcd has freed the port.
    ///
    /// # Errors
    /// [`UsbipError::DetachStuck`] if the kernel keeps the port.
    pub fn unplug(&mut self) -> Result<(), UsbipError> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        let plug = running.plug;
        self.stop(running);
        self.wait_port_freed(plug)
    }

    /// Why the device is not attached (`None` while it is).
    pub fn detached(&self) -> Option<DetachReason> {
        match &self.running {
            Some(r) => r
                .shared
                .ending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            None => self.detached.clone(),
        }
    }

    /// How late the server ran the function's timeouts, accumulated over
    /// every attachment: the stand-in for silicon is never late on a chip,
    /// so this says how far the simulation lagged its own model.
    pub fn lateness(&self) -> LatencySummary {
        let mut h = self.lateness.clone();
        if let Some(r) = &self.running
            && let Ok(live) = r.shared.lateness.lock()
        {
            let _ = h.add(&*live);
        }
        LatencySummary::from_histogram(&h)
    }

    /// What realtime setup the server thread got.
    pub fn server_realtime(&self) -> &RealtimeStatus {
        &self.server_realtime
    }

    /// What setting vhci's kernel threads' scheduling did, at attach (empty
    /// when not asked) or by [`set_kthread_priority`](Self::set_kthread_priority).
    pub fn kthreads(&self) -> &[KthreadPriority] {
        &self.kthreads
    }

    /// Unplugs the device and returns the function.
    ///
    /// # Errors
    /// As [`unplug`](Self::unplug); the function is lost only if the server
    /// thread panicked.
    pub fn into_function(mut self) -> Result<F, UsbipError> {
        self.unplug()?;
        self.function
            .take()
            .ok_or_else(|| UsbipError::NotAttached("the device server panicked".into()))
    }

    /// If the server stopped on its own (the host detached, the function
    /// unplugged itself), takes the function back.
    fn reap(&mut self) {
        let finished = self
            .running
            .as_ref()
            .is_some_and(|r| r.thread.is_finished());
        if finished && let Some(running) = self.running.take() {
            let plug = running.plug;
            self.stop(running);
            // The kernel frees the port on its own once the link is closed.
            let _ = self.wait_port_freed(plug);
        }
    }

    /// Stops a server (if it still runs), joins it and keeps its function.
    fn stop(&mut self, running: Running<F>) {
        let Running {
            control,
            shared,
            thread,
            ..
        } = running;
        let _ = control.send(Control::Unplug);
        shared.bell.ring_always();
        match thread.join() {
            Ok(Some((function, reason))) => {
                self.function = Some(function);
                self.detached = Some(reason);
            }
            Ok(None) | Err(_) => {
                self.detached = Some(DetachReason::Failed("the server thread panicked".into()));
            }
        }
        if let Ok(live) = shared.lateness.lock() {
            let _ = self.lateness.add(&*live);
        }
    }

    /// Waits for vhci-hcd to free `plug`'s port; writes it to `detach` if it
    /// has not within the timeout.
    fn wait_port_freed(&self, plug: Plug) -> Result<(), UsbipError> {
        let root = &self.options.sysfs;
        let held = || {
            vhci::read_ports(root)
                .map(|rows| vhci::our_row(&rows, plug.port, plug.sockfd).is_some())
                .unwrap_or(false)
        };
        let limit = self.options.detach_timeout;
        if wait_while(limit, &held) {
            return Ok(());
        }
        let _ = vhci::write_detach(root, plug.port);
        if wait_while(limit, &held) {
            return Ok(());
        }
        Err(UsbipError::DetachStuck {
            port: plug.port,
            after_ms: (2 * limit).as_millis() as u64,
        })
    }
}

/// Puts a kernel thread under `SCHED_FIFO` `priority` (`None`:
/// `SCHED_OTHER`, priority 0) and checks it took.
fn schedule_kthread(pid: i32, priority: Option<u8>) -> Result<u8, String> {
    sys::sched::set_scheduler_of(pid, priority).map_err(|e| e.to_string())?;
    let want = match priority {
        Some(p) => (libc::SCHED_FIFO, libc::c_int::from(p)),
        None => (libc::SCHED_OTHER, 0),
    };
    match sys::sched::scheduler_of(pid) {
        Ok(got) if got == want => Ok(priority.unwrap_or(0)),
        Ok((policy, p)) => Err(format!("policy {policy} priority {p} after setting it")),
        Err(e) => Err(format!("reading it back: {e}")),
    }
}

/// Polls `cond` until it is false (true) or `limit` passes (false).
fn wait_while(limit: Duration, cond: &dyn Fn() -> bool) -> bool {
    let start = Instant::now();
    while cond() {
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

impl<F: UsbFunction + Send + 'static> Drop for AttachedDevice<F> {
    fn drop(&mut self) {
        if let Err(e) = self.unplug() {
            log::warn!("usbip: detaching on drop: {e}");
        }
    }
}
