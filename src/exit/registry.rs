//! The process-wide list of interfaces whose kernel driver ftdi-rt
//! detached, so that an exit path that never drops the ports (a signal) can
//! still give each one back.
//!
//! An entry is released exactly once, by whoever takes it out of the list:
//! the port's own close ([`Registration`] dropped) or the exit path
//! ([`release_all`]). The list's lock is taken on open, close and exit,
//! never by the reader.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// An interface to give back to its kernel driver.
pub(crate) trait Release: Send + Sync + fmt::Debug {
    /// Releases the interface and re-attaches the kernel driver. Called at
    /// most once per registration.
    fn release(&self);
}

/// The registered entries, with the id each registration holds.
#[derive(Debug, Default)]
struct Entries {
    next: u64,
    list: Vec<(u64, Arc<dyn Release>)>,
}

static ENTRIES: Mutex<Entries> = Mutex::new(Entries {
    next: 0,
    list: Vec::new(),
});

/// The list, even if a thread panicked while holding it: every update
/// below leaves it consistent.
fn entries() -> MutexGuard<'static, Entries> {
    ENTRIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An entry in the list. Dropping it takes the entry out and releases it,
/// unless the exit path already took it.
#[derive(Debug)]
pub(crate) struct Registration {
    id: u64,
}

impl Registration {
    /// Puts `entry` on the list and sets the signal path up the first time
    /// (see `signals`).
    pub(crate) fn new(entry: Arc<dyn Release>) -> Registration {
        let id = {
            let mut e = entries();
            let id = e.next;
            e.next += 1;
            e.list.push((id, entry));
            id
        };
        super::signals::install_once(release_all);
        Registration { id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let taken = {
            let mut e = entries();
            e.list
                .iter()
                .position(|(id, _)| *id == self.id)
                .map(|at| e.list.swap_remove(at).1)
        };
        // Released outside the lock: it waits on the kernel.
        if let Some(entry) = taken {
            entry.release();
        }
    }
}

/// Takes every entry off the list and releases each; returns how many.
/// Ports whose entry this released stop working (their transfers fail).
pub(crate) fn release_all() -> usize {
    let taken = std::mem::take(&mut entries().list);
    for (_, entry) in &taken {
        entry.release();
    }
    taken.len()
}

/// How many entries the list holds.
#[cfg(test)]
pub(crate) fn len() -> usize {
    entries().list.len()
}
