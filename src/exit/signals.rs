//! SIGINT, SIGTERM and SIGHUP: give every detached interface back, then end
//! the process as the signal would have.
//!
//! Installed once, lazily, when the first interface is registered (a port
//! detached ftdi_sio), and only for signals whose disposition is then
//! `SIG_DFL`: a signal the application handles or ignores is left alone.
//! The handler (`sys::signal`) only writes the signal's number to a socket;
//! the work happens on the "ftdi-rt-exit" thread, at `SCHED_OTHER`, never in
//! the handler and never on a realtime reader.
//!
//! On a signal, the thread first checks that ftdi-rt's handler is still the
//! installed one. If the application installed its own since (ctrlc,
//! nix), ours no longer runs at all; if it did so through signal-hook or
//! tokio::signal, their handler calls ours after its own (signal-hook chains
//! to the handler it found), and the check sees a foreign handler: the
//! thread does nothing, and the application's shutdown closes the ports,
//! which re-attaches the drivers. Only when ftdi-rt's handler is the
//! process's does it release everything and end the process.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
    set_thread_priority_and_policy, thread_native_id,
};

use crate::sys::signal::{self as sys, Disposition};

/// The signals ftdi-rt handles. Each one's default action ends the process
/// without a core dump: Ctrl-C, `kill`/`systemctl stop`, and the terminal
/// or ssh session going away. SIGQUIT is left alone: it asks for a core
/// dump of the process as it is, which releasing interfaces first would
/// change.
pub(crate) const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Set by [`super::leave_signals_alone`].
static LEFT_ALONE: AtomicBool = AtomicBool::new(false);
/// Whether installation ran (successfully or not).
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Sets the signal path up if that has not happened yet and the
/// application has not opted out; on a signal the exit thread calls
/// `release` (the registry's, passed in so that this module does not
/// depend back on it) before the process ends.
pub(crate) fn install_once(release: fn() -> usize) {
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *installed || LEFT_ALONE.load(Ordering::SeqCst) {
        return;
    }
    *installed = true;
    if let Err(e) = install(release) {
        log::warn!(
            "ftdi-rt could not set up re-attaching ftdi_sio on SIGINT/SIGTERM/SIGHUP ({e}); \
             a port's /dev/ttyUSB returns when the port is closed, or after a replug"
        );
    }
}

fn install(release: fn() -> usize) -> std::io::Result<()> {
    let (mut rx, tx) = UnixStream::pair()?;
    // A signal storm must never block the handler.
    tx.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("ftdi-rt-exit".into())
        .spawn(move || {
            // Threads inherit their creator's policy: this one must not
            // compete with the realtime threads.
            let _ = set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(0u8.try_into().unwrap_or_default()),
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            );
            let mut byte = [0u8];
            while rx.read_exact(&mut byte).is_ok() {
                on_signal(libc::c_int::from(byte[0]), release);
            }
        })?;
    // The write end stays open for the life of the process: the handler
    // may write to it at any time.
    let fd = tx.as_raw_fd();
    std::mem::forget(tx);
    sys::set_notify_fd(fd);
    for signal in SIGNALS {
        match sys::disposition(signal)? {
            Disposition::Default => sys::install(signal)?,
            other => log::debug!(
                "signal {signal}: left alone ({other:?}); the application decides what it does"
            ),
        }
    }
    Ok(())
}

/// On the exit thread: `signal` arrived at ftdi-rt's handler.
fn on_signal(signal: libc::c_int, release: fn() -> usize) {
    match sys::disposition(signal) {
        Ok(Disposition::Ours) => {}
        // Another handler called ours after its own: the application
        // handles this signal now (module docs).
        _ => {
            #[cfg(test)]
            test_hook::declined();
            return;
        }
    }
    // A second signal from here on ends the process at once.
    sys::set_terminating();
    let released = release();
    log::debug!("signal {signal}: released {released} interface(s); ending the process");
    let _ = signal_hook::low_level::emulate_default_handler(signal);
}

/// Opts out: from now on ftdi-rt installs no handler, and the handlers it
/// installed are put back to `SIG_DFL` where they are still its own.
pub(crate) fn leave_alone() {
    LEFT_ALONE.store(true, Ordering::SeqCst);
    let installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *installed {
        for signal in SIGNALS {
            if let Err(e) = sys::uninstall(signal) {
                log::warn!("signal {signal}: could not restore SIG_DFL: {e}");
            }
        }
    }
}

/// Lets a test's child process wait until the exit thread has looked at a
/// signal and left it to the application.
#[cfg(test)]
pub(crate) mod test_hook {
    use std::sync::{Condvar, Mutex};

    static DECLINED: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

    pub(super) fn declined() {
        let mut n = DECLINED.0.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        DECLINED.1.notify_all();
    }

    /// Blocks until `count` signals have been declined.
    pub(crate) fn wait_declined(count: usize) {
        let mut n = DECLINED.0.lock().unwrap_or_else(|e| e.into_inner());
        while *n < count {
            n = DECLINED.1.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}
