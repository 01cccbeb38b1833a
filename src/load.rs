//! Load for measurements: busy threads that keep CPUs occupied, as the
//! incident's machine was, to show what CPU contention does to each path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::realtime::{RealtimeConfig, RealtimePolicy, make_current_thread_realtime};

/// Busy `SCHED_OTHER` threads, one per unit of `n`, running until dropped.
///
/// A thread inherits its creator's scheduling policy and CPU pinning; each
/// hog first makes itself a plain normal-priority thread on any CPU, so hogs
/// started from a realtime thread still load the machine the way ordinary
/// programs do (and cannot starve it the way a realtime busy loop would).
#[derive(Debug)]
pub struct CpuHogs {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuHogs {
    /// Starts `n` hogs (`n = 0` starts none).
    ///
    /// # Errors
    /// The OS refusing to create a thread.
    pub fn start(n: usize) -> std::io::Result<CpuHogs> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut hogs = CpuHogs {
            stop,
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let stop = hogs.stop.clone();
            hogs.threads.push(
                std::thread::Builder::new()
                    .name(format!("cpu-hog-{i}"))
                    .spawn(move || {
                        let normal =
                            RealtimeConfig::default().with_policy(RealtimePolicy::Disabled);
                        let _ = make_current_thread_realtime(&normal);
                        let mut x = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = std::hint::black_box(
                                    x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                                );
                            }
                        }
                    })?,
            );
        }
        Ok(hogs)
    }

    /// How many hogs run.
    pub fn count(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hogs_started_from_a_realtime_thread_run_as_normal_threads() {
        let rt = RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_lock_memory(false)
            .with_pinning(crate::realtime::Pinning::Unpinned);
        std::thread::spawn(move || {
            make_current_thread_realtime(&rt).unwrap();
            let hogs = CpuHogs::start(2).unwrap();
            assert_eq!(hogs.count(), 2);
            std::thread::sleep(std::time::Duration::from_millis(20));
            let pid = std::process::id();
            for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .flatten()
            {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                if comm.starts_with("cpu-hog-") {
                    let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap();
                    // Field 41 of /proc/<pid>/task/<tid>/stat is the policy; 0 = SCHED_OTHER.
                    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                    let policy: u32 = after_comm
                        .split_whitespace()
                        .nth(38)
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert_eq!(policy, 0, "{comm} runs policy {policy}");
                }
            }
        })
        .join()
        .unwrap();
    }
}
