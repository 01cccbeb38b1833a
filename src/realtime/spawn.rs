//! The one way a realtime thread starts.
//!
//! Every thread that runs under a [`RealtimeConfig`] — the reader, the
//! simulated chip, the USB/IP server, the lab's probes, hogs and responders
//! — is started by [`spawn`]: a named thread with a stack of
//! [`REALTIME_STACK_BYTES`] that makes itself realtime before its body
//! runs. The caller gets the thread's [`RealtimeStatus`] once the body says
//! it is ready ([`Startup::ready`]), or the error that kept it from
//! starting: the realtime refusal, or whatever the body's own setup reports
//! ([`Startup::fail`]). So a thread that could not get what it needs never
//! runs half set up, and the caller never waits on a thread that died.

use std::sync::mpsc;
use std::thread::JoinHandle;

use super::{RealtimeConfig, RealtimeStatus, make_current_thread_realtime};
use crate::error::{Error, Result};

/// Stack of every realtime thread: comfortably above the part a realtime
/// setup prefaults (256 KiB) and the deepest call chain of the reader.
const REALTIME_STACK_BYTES: usize = 1024 * 1024;

/// A thread started by [`spawn`], whose body returns a `T`. Dropping it
/// waits for the thread to end, so whatever tells the body to stop must be
/// signalled first (owners do that in their `Drop`, before this field is
/// dropped).
pub struct RtThread<T = ()> {
    /// `None` inside: the realtime setup was refused and the body never ran
    /// (such a handle only lives inside [`spawn`], which then fails).
    thread: Option<JoinHandle<Option<T>>>,
}

impl<T> RtThread<T> {
    /// Waits for the thread to end; returns what its body returned, or the
    /// panic that ended it.
    ///
    /// # Errors
    /// The body panicked (the payload, as [`std::thread::JoinHandle::join`]).
    pub fn join(mut self) -> std::thread::Result<T> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Some(out))) => Ok(out),
            Some(Err(panic)) => Err(panic),
            // Unreachable through the API: spawn returns no handle of a
            // thread whose body did not run, and join consumes the handle.
            Some(Ok(None)) | None => Err(Box::new("the thread's body did not run")),
        }
    }

    /// Whether the body has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<T> std::fmt::Debug for RtThread<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtThread")
            .field("thread", &self.thread.as_ref().map(|t| t.thread().id()))
            .finish()
    }
}

impl<T> Drop for RtThread<T> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            // A body that panicked has already reported (or failed to
            // report) its start; its panic message went to stderr.
            let _ = thread.join();
        }
    }
}

/// Handed to a realtime thread's body: the realtime status it obtained, and
/// the way to tell [`spawn`]'s caller that it is ready or why it cannot run.
/// A body that returns without either makes `spawn` fail with an I/O error.
#[derive(Debug)]
pub struct Startup {
    status: RealtimeStatus,
    report: mpsc::SyncSender<Result<RealtimeStatus>>,
}

impl Startup {
    /// What the realtime setup obtained.
    pub fn status(&self) -> &RealtimeStatus {
        &self.status
    }

    /// Adds what the body's own setup obtained (the reader's locked buffers).
    pub(crate) fn status_mut(&mut self) -> &mut RealtimeStatus {
        &mut self.status
    }

    /// The body is set up: [`spawn`] returns with the status.
    pub fn ready(self) {
        // The caller is blocked in spawn until this arrives; it cannot be gone.
        let _ = self.report.send(Ok(self.status));
    }

    /// The body cannot run: [`spawn`] returns `error`. The body should
    /// return after this.
    pub fn fail(self, error: Error) {
        let _ = self.report.send(Err(error));
    }
}

/// Starts a thread named `name` that makes itself realtime as `config`
/// asks, then runs `body`, which must call [`Startup::ready`] (or
/// [`Startup::fail`]) once it is set up. Returns when it has. If the
/// realtime setup is refused the body never runs (and whatever it owns is
/// dropped): hand a body what it must give back only after this returns,
/// through a channel it reads once ready.
///
/// # Errors
/// [`Error::Realtime`] if the setup is refused (with
/// [`RealtimePolicy::Required`](super::RealtimePolicy::Required)), the
/// error the body reported, or [`Error::Io`] if no thread could be created
/// or the body returned without reporting.
pub fn spawn<F, T>(
    name: &str,
    config: &RealtimeConfig,
    body: F,
) -> Result<(RtThread<T>, RealtimeStatus)>
where
    F: FnOnce(Startup) -> T + Send + 'static,
    T: Send + 'static,
{
    let (report, outcome) = mpsc::sync_channel(1);
    let config = *config;
    let thread = std::thread::Builder::new()
        .name(name.into())
        .stack_size(REALTIME_STACK_BYTES)
        .spawn(move || match make_current_thread_realtime(&config) {
            Ok(status) => Some(body(Startup { status, report })),
            Err(e) => {
                let _ = report.send(Err(e.into()));
                None
            }
        })?;
    let thread = RtThread {
        thread: Some(thread),
    };
    match outcome.recv() {
        Ok(Ok(status)) => Ok((thread, status)),
        // The body has returned or is about to: joining does not block.
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Io(std::io::Error::other(format!(
            "the thread {name} ended before it was ready"
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::{Pinning, RealtimePolicy};

    fn best_effort() -> RealtimeConfig {
        RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_pinning(Pinning::Unpinned)
            .with_lock_memory(false)
    }

    #[test]
    fn the_caller_gets_the_status_once_the_body_is_ready() {
        let (tx, rx) = mpsc::channel();
        let (thread, status) = spawn("rt-test", &best_effort(), move |startup| {
            let name = std::thread::current().name().map(String::from);
            startup.ready();
            let _ = tx.send(name);
        })
        .unwrap();
        assert_eq!(status.guaranteed, status.shortfalls.is_empty());
        assert_eq!(rx.recv().unwrap().as_deref(), Some("rt-test"));
        thread.join().unwrap();
    }

    #[test]
    fn join_hands_back_what_the_body_returned() {
        let (thread, _) = spawn("rt-value", &best_effort(), |startup| {
            startup.ready();
            vec![1, 2, 3]
        })
        .unwrap();
        assert_eq!(thread.join().unwrap(), [1, 2, 3]);
    }

    #[test]
    fn a_body_that_fails_or_returns_early_is_an_error() {
        let e = spawn("rt-fail", &best_effort(), |startup| {
            startup.fail(Error::InvalidConfig("no device".into()));
        })
        .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        let e = spawn("rt-gone", &best_effort(), |_startup| {}).unwrap_err();
        assert!(e.to_string().contains("rt-gone"), "{e}");
    }

    #[test]
    fn a_refused_setup_never_runs_the_body() {
        let bad = RealtimeConfig::default().with_priority(0);
        let e = spawn("rt-refused", &bad, |_| unreachable!("the body ran")).unwrap_err();
        assert!(matches!(e, Error::Realtime(_)), "{e}");
    }
}
