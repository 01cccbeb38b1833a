//! Giving `/dev/ttyUSBn` back on every exit path.
//!
//! When the libusb transport claims an interface that `ftdi_sio` drives, it
//! detaches the kernel driver, and the channel's `/dev/ttyUSBn` disappears.
//! The kernel does not bind the driver again by itself when the process
//! ends: ftdi-rt must. How each way out of the process is covered:
//!
//! | exit path | what happens |
//! |---|---|
//! | the port is dropped or closed | the interface is released and `ftdi_sio` re-attached |
//! | a panic that unwinds (the default `panic = "unwind"`) | the same: the port drops while its thread's stack unwinds |
//! | SIGINT, SIGTERM, SIGHUP with no handler of the application | ftdi-rt's handler: every detached interface is given back, then the process ends as killed by that signal (below) |
//! | one of those signals, handled by the application | the application's handler runs as before; ftdi-rt does nothing (below) |
//! | `std::process::exit`, or `main` returning (or unwinding) while another thread, a static or a leak still holds a port | no destructor of those ports runs: call [`reattach_kernel_drivers`] first |
//! | `panic = "abort"`, `std::process::abort`, SIGKILL, SIGSEGV, the OOM killer | nothing can run in the process: the tty stays gone until recovered (below) |
//!
//! # The signal handlers (ftdi-rt changes signal dispositions)
//! The first time a port detaches a kernel driver, ftdi-rt installs a
//! handler for each of SIGINT, SIGTERM and SIGHUP whose disposition is then
//! `SIG_DFL` (a signal the application handles or ignores, such as SIGHUP
//! under `nohup`, is left alone), and starts a thread, "ftdi-rt-exit", at
//! `SCHED_OTHER`. The handler only writes the signal's number to a socket
//! (async-signal-safe); the thread releases every registered interface,
//! re-attaches `ftdi_sio`, and then ends the process with the signal's
//! default action, so the parent sees "killed by SIGTERM" (exit status 143
//! in a shell) exactly as without ftdi-rt. A second signal while that runs
//! ends the process at once. No handler is installed by a process that
//! never detaches a driver (kernel ttys, simulated chips, or devices with
//! no driver bound). SIGQUIT is not handled: it asks for a core dump of the
//! process as it is.
//!
//! If the application installs its own handler after ftdi-rt did (ctrlc,
//! tokio::signal, signal-hook, a plain `sigaction`), its handler keeps
//! working as it would without ftdi-rt: a `sigaction` replaces ftdi-rt's
//! handler, and when signal-hook's (or tokio's) handler calls ftdi-rt's
//! after its own, the thread sees that ftdi-rt's is no longer the installed
//! one and does nothing. Either way the application decides whether the
//! process ends, and its ports re-attach the drivers when they are dropped.
//! ftdi-rt does not re-attach first: a handler that does not end the
//! process (Ctrl-C cancelling one operation, SIGHUP reloading a
//! configuration) would find its ports' interfaces gone.
//!
//! An application that manages signals itself can opt out with
//! [`leave_signals_alone`], best before opening the first port.
//!
//! # When nothing can run: `panic = "abort"`, SIGKILL
//! A process that aborts (a panic under `panic = "abort"`, `abort()`, a
//! fatal signal such as SIGSEGV) or is killed with SIGKILL runs no code of
//! its own, so no library can re-attach: the kernel releases the interface
//! when it closes the process's usbfs descriptor, but leaves it without a
//! driver. To get the tty back without a replug, bind the driver by hand
//! (the interface's name is `<bus>-<port path>:1.<interface>`, e.g.
//! `1-1.2:1.0`; `ftdi-rt doctor` lists each adapter's interfaces with their
//! drivers, and prints this command for one that has none):
//! ```text
//! echo 1-1.2:1.0 | sudo tee /sys/bus/usb/drivers/ftdi_sio/bind
//! ```
//! or replug the adapter. The udev rule (`udev/60-ftdi-rt.rules`) only sets
//! permissions: it has no part in this.

mod registry;
mod signals;

pub(crate) use registry::{Registration, Release};

/// Releases every interface ftdi-rt has claimed and detached a kernel
/// driver from, and re-attaches the driver (`ftdi_sio`), now. Returns how
/// many it released.
///
/// For an application that handles SIGINT/SIGTERM itself and ends the
/// process without dropping its ports (`std::process::exit` in a ctrlc
/// handler): call this first. The ports it released stop working (their
/// next transfer fails, as on an unplug); closing them afterwards is
/// harmless.
pub fn reattach_kernel_drivers() -> usize {
    registry::release_all()
}

/// Opts out of ftdi-rt's SIGINT, SIGTERM and SIGHUP handlers (module docs):
/// ftdi-rt installs none from now on, and puts back `SIG_DFL` for each
/// signal whose handler is still ftdi-rt's. Call it before opening the
/// first port when the application manages signals itself; closing its
/// ports (or [`reattach_kernel_drivers`]) then gives the ttys back.
pub fn leave_signals_alone() {
    signals::leave_alone();
}

#[cfg(test)]
mod tests;
