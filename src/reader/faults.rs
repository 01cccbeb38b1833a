//! The reader thread's page faults, for the statistics.
//!
//! The application reads them from `/proc/self/task/<tid>/stat` when it asks
//! for statistics, so counting costs the reader nothing per packet (a
//! `getrusage` per loop turn would add a system call to every wakeup). The
//! reader itself takes `getrusage(RUSAGE_THREAD)` twice: when its setup is
//! done (locking and prefaulting fault pages in on purpose) and when it
//! exits, so the figures outlive the thread.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::stats::{PageFaults, ReaderPageFaults};
use crate::sys;

/// Shared between the reader (writes) and the port (reads).
#[derive(Debug, Default)]
pub(crate) struct FaultCounter {
    tid: AtomicI32,
    setup_minor: AtomicU64,
    setup_major: AtomicU64,
    final_minor: AtomicU64,
    final_major: AtomicU64,
    /// Set once the final figures are stored (the tid may then be reused).
    finished: AtomicBool,
}

impl FaultCounter {
    /// Reader thread, first thing: who to read.
    pub(crate) fn started(&self) {
        self.tid.store(sys::sched::gettid(), Ordering::Release);
    }

    /// Reader thread, after locking and prefaulting.
    pub(crate) fn setup_done(&self) {
        if let Ok((minor, major)) = sys::mem::thread_page_faults() {
            self.setup_minor.store(minor, Ordering::Relaxed);
            self.setup_major.store(major, Ordering::Release);
        }
    }

    /// Reader thread: counts the faults `slow_path` takes as setup (a shared
    /// reader prefaulting and locking a joining port's memory on purpose),
    /// so that [`ReaderPageFaults::serving`] keeps meaning "while serving".
    pub(crate) fn count_as_setup<R>(&self, slow_path: impl FnOnce() -> R) -> R {
        let before = sys::mem::thread_page_faults();
        let out = slow_path();
        if let (Ok((minor0, major0)), Ok((minor1, major1))) =
            (before, sys::mem::thread_page_faults())
        {
            self.setup_minor
                .fetch_add(minor1.saturating_sub(minor0), Ordering::Relaxed);
            self.setup_major
                .fetch_add(major1.saturating_sub(major0), Ordering::Release);
        }
        out
    }

    /// CPU time the thread has used so far, while it runs (`None` before it
    /// starts, after it ends, or where /proc cannot be read). Allocates.
    pub(crate) fn cpu_time(&self) -> Option<std::time::Duration> {
        let tid = self.tid.load(Ordering::Acquire);
        if tid == 0 || self.finished.load(Ordering::Acquire) {
            return None;
        }
        sys::mem::task_cpu_ns(tid)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// Reader thread, last thing (also when it unwinds).
    pub(crate) fn finished(&self) {
        if let Ok((minor, major)) = sys::mem::thread_page_faults() {
            self.final_minor.store(minor, Ordering::Relaxed);
            self.final_major.store(major, Ordering::Relaxed);
        }
        self.finished.store(true, Ordering::Release);
    }

    /// The figures now; `None` before the reader started or where /proc
    /// cannot be read. Allocates (reads /proc).
    pub(crate) fn read(&self) -> Option<ReaderPageFaults> {
        let setup = PageFaults {
            minor: self.setup_minor.load(Ordering::Relaxed),
            major: self.setup_major.load(Ordering::Acquire),
        };
        let total = if self.finished.load(Ordering::Acquire) {
            PageFaults {
                minor: self.final_minor.load(Ordering::Relaxed),
                major: self.final_major.load(Ordering::Relaxed),
            }
        } else {
            let tid = self.tid.load(Ordering::Acquire);
            if tid == 0 {
                return None;
            }
            let (minor, major) = sys::mem::task_page_faults(tid).ok()?;
            // The thread may have exited between the flag and the read.
            if self.finished.load(Ordering::Acquire) {
                return self.read();
            }
            PageFaults { minor, major }
        };
        Some(ReaderPageFaults { total, setup })
    }
}

/// Calls [`FaultCounter::finished`] when dropped, so a reader that unwinds
/// still records its figures before its tid can be reused.
pub(crate) struct FinishOnDrop<'a>(pub(crate) &'a FaultCounter);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_sees_its_own_faults_through_proc_and_after_it_exits() {
        let counter = std::sync::Arc::new(FaultCounter::default());
        assert!(counter.read().is_none(), "nothing before the thread starts");
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let c = counter.clone();
        let thread = std::thread::spawn(move || {
            let _finish = FinishOnDrop(&c);
            c.started();
            c.setup_done();
            // 16 fresh pages 2 MiB apart (a fault each, transparent huge
            // pages or not), in an untouched mapping of their own.
            let mut v = vec![0u8; 34 << 20];
            for i in (0..16).map(|p| p << 21) {
                v[i] = 1;
            }
            std::hint::black_box(&v);
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        ready_rx.recv().unwrap();
        let live = counter.read().expect("readable while it runs");
        assert!(
            live.serving().minor >= 16,
            "touching 16 fresh pages must count: {live:?}"
        );
        go_tx.send(()).unwrap();
        thread.join().unwrap();
        let after = counter.read().expect("kept after it exits");
        assert!(after.total.minor >= live.total.minor, "{after:?} {live:?}");
    }
}
