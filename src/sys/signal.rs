//! Signal dispositions for the exit path (`crate::exit`): asking what a
//! signal does today, installing the one handler ftdi-rt uses, and that
//! handler itself, which only writes the signal's number to a descriptor.
//!
//! Why not signal-hook's registry: it multiplexes every registration in the
//! process behind one handler, so ftdi-rt could not tell whether the
//! application registered its own (tokio::signal, signal-hook) after ftdi-rt
//! did, and would end the process under the application's own shutdown.
//! With a plain `sigaction` handler, "is ours still the installed handler?"
//! answers exactly that (see `exit::signals`). The termination itself is
//! signal-hook's `emulate_default_handler`.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// What a signal does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `SIG_DFL`.
    Default,
    /// `SIG_IGN`.
    Ignore,
    /// ftdi-rt's [`on_signal`].
    Ours,
    /// Someone else's handler (the application's, or a crate's).
    Other,
}

/// Where [`on_signal`] writes the signal number; -1 before installation.
static NOTIFY_FD: AtomicI32 = AtomicI32::new(-1);
/// The process that installed the handler: a child forked without exec
/// inherits the handler and the descriptor, and must not wake the parent.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
/// Set once the exit path has started: a second signal ends the process at
/// once (the user pressing Ctrl-C again while a re-attach hangs).
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Sets the descriptor [`on_signal`] writes to (the write end of a
/// non-blocking socket the exit thread reads) and this process as its owner.
pub(crate) fn set_notify_fd(fd: RawFd) {
    OWNER_PID.store(std::process::id() as i32, Ordering::SeqCst);
    NOTIFY_FD.store(fd, Ordering::SeqCst);
}

/// From now on, a signal [`on_signal`] catches ends the process at once.
pub(crate) fn set_terminating() {
    TERMINATING.store(true, Ordering::SeqCst);
}

/// The signal handler. Async-signal-safe: atomics, `getpid`, `write` and
/// signal-hook's `emulate_default_handler` (documented async-signal-safe),
/// with `errno` saved and restored around them.
extern "C" fn on_signal(signal: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's life; reading and writing it is what it is for.
    let errno = unsafe { *libc::__errno_location() };
    let fd = NOTIFY_FD.load(Ordering::SeqCst);
    let owner = OWNER_PID.load(Ordering::SeqCst);
    // SAFETY: getpid takes no arguments and is async-signal-safe.
    let me = unsafe { libc::getpid() };
    if fd < 0 || me != owner || TERMINATING.load(Ordering::SeqCst) {
        // Not the process that set the exit path up (a forked child), or
        // the exit path already runs: what the signal would have done.
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    } else {
        let byte = signal as u8;
        // SAFETY: writes one byte from a local to a descriptor that stays
        // open for the life of the process (the exit path never closes it).
        // A full socket (EAGAIN) means a wakeup is already pending.
        let _ = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// [`on_signal`] as `sigaction` stores it.
fn handler_address() -> libc::sighandler_t {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    handler as libc::sighandler_t
}

/// What `signal` does now.
pub(crate) fn disposition(signal: libc::c_int) -> io::Result<Disposition> {
    // SAFETY: an all-zero sigaction is a valid value of the C struct (no
    // references inside); sigaction only writes it.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    syscall!(
        // SAFETY: a null new action only queries; `old` is valid and writable.
        unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) }
    )?;
    Ok(match old.sa_sigaction {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        h if h == handler_address() => Disposition::Ours,
        _ => Disposition::Other,
    })
}

/// Installs [`on_signal`] for `signal` (`SA_RESTART`: system calls the
/// signal interrupts in the application resume instead of failing `EINTR`).
pub(crate) fn install(signal: libc::c_int) -> io::Result<()> {
    set_action(signal, handler_address(), libc::SA_RESTART)
}

/// Puts `signal` back to `SIG_DFL` if [`on_signal`] is still its handler
/// (a handler the application installed since stays). Racy against another
/// thread changing the disposition at the same moment, as any such change is.
pub(crate) fn uninstall(signal: libc::c_int) -> io::Result<()> {
    if disposition(signal)? == Disposition::Ours {
        set_action(signal, libc::SIG_DFL, 0)?;
    }
    Ok(())
}

fn set_action(signal: libc::c_int, handler: libc::sighandler_t, flags: i32) -> io::Result<()> {
    // SAFETY: as in `disposition`.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    syscall!(
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) }
    )?;
    syscall!(
        // SAFETY: `action` is a fully initialised sigaction whose handler is
        // SIG_DFL or `on_signal`, an `extern "C" fn(c_int)` that lives for
        // the program; the old action is not wanted (null).
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) }
    )
    .map(drop)
}

/// Gives `signal` its default action and unblocks it in this thread, as a
/// process started from a login shell has it (the tests' children: a
/// parent started in the background of a non-interactive shell passes
/// SIGINT on ignored, and the child would wait for a signal that never
/// comes).
#[cfg(test)]
pub(crate) fn reset_to_default(signal: libc::c_int) -> io::Result<()> {
    set_action(signal, libc::SIG_DFL, 0)?;
    // SAFETY: `set` is a valid sigset_t, initialised by sigemptyset before
    // sigaddset and pthread_sigmask read it; the old mask is not wanted.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    syscall!(
        // SAFETY: as above.
        unsafe { libc::sigemptyset(&mut set) }
    )?;
    syscall!(
        // SAFETY: as above; `signal` is checked by the kernel.
        unsafe { libc::sigaddset(&mut set, signal) }
    )?;
    // SAFETY: as above. pthread_sigmask returns the error, not -1/errno.
    match unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Sends `signal` to process `pid` (the tests' children).
#[cfg(test)]
pub(crate) fn send(pid: u32, signal: libc::c_int) -> io::Result<()> {
    syscall!(
        // SAFETY: kill takes plain integers; the kernel checks them.
        unsafe { libc::kill(pid as libc::pid_t, signal) }
    )
    .map(drop)
}
