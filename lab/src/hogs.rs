//! Load for measurements: busy threads that keep CPUs occupied, as the
//! incident's machine was, to show what CPU contention does to each path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ftdi_rt::realtime::{self, RtThread};
use ftdi_rt::{RealtimeConfig, RealtimePolicy};

/// Busy `SCHED_OTHER` threads, one per unit of `n`, running until dropped.
///
/// A thread inherits its creator's scheduling policy and CPU pinning; each
/// hog starts as a plain normal-priority thread on any CPU
/// ([`RealtimePolicy::Disabled`]), so hogs started from a realtime thread
/// still load the machine the way ordinary programs do (and cannot starve
/// it the way a realtime busy loop would).
#[derive(Debug)]
pub struct CpuHogs {
    stop: Arc<AtomicBool>,
    threads: Vec<RtThread>,
}

impl CpuHogs {
    /// Starts `n` hogs (`n = 0` starts none).
    ///
    /// # Errors
    /// The OS refusing to create a thread.
    pub fn start(n: usize) -> ftdi_rt::Result<CpuHogs> {
        let mut hogs = CpuHogs {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::with_capacity(n),
        };
        let normal = RealtimeConfig::default().with_policy(RealtimePolicy::Disabled);
        for i in 0..n {
            let stop = hogs.stop.clone();
            let (thread, _) = realtime::spawn(&format!("cpu-hog-{i}"), &normal, move |startup| {
                startup.ready();
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                        );
                    }
                }
            })?;
            hogs.threads.push(thread);
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
        // Before the threads field drops, which joins them.
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftdi_rt::{Pinning, make_current_thread_realtime};

    /// The scheduling policy of every `cpu-hog-*` thread of this process
    /// (field 41 of `/proc/<pid>/task/<tid>/stat`; 0 = SCHED_OTHER).
    fn hog_policies() -> Vec<(String, u32)> {
        let pid = std::process::id();
        let mut found = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
        {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.starts_with("cpu-hog-") {
                let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap();
                let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                let policy: u32 = after_comm
                    .split_whitespace()
                    .nth(38)
                    .unwrap()
                    .parse()
                    .unwrap();
                found.push((comm.trim().to_string(), policy));
            }
        }
        found
    }

    #[test]
    fn hogs_started_from_a_realtime_thread_run_as_normal_threads() {
        let rt = RealtimeConfig::default()
            .with_policy(RealtimePolicy::BestEffort)
            .with_lock_memory(false)
            .with_pinning(Pinning::Unpinned);
        std::thread::spawn(move || {
            make_current_thread_realtime(&rt).unwrap();
            let hogs = CpuHogs::start(2).unwrap();
            assert_eq!(hogs.count(), 2);
            // Each hog has reset its policy before start returned.
            let policies = hog_policies();
            assert_eq!(policies.len(), 2, "{policies:?}");
            for (comm, policy) in policies {
                assert_eq!(policy, 0, "{comm} runs policy {policy}");
            }
        })
        .join()
        .unwrap();
    }
}
