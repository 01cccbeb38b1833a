//! CPU hogs: normal-priority busy threads that keep every CPU loaded, as the
//! incident's machine was.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Running hog threads; dropping it stops them.
pub struct Stress {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Stress {
    /// Starts `n` hogs (SCHED_OTHER, unpinned).
    pub fn start(n: usize) -> Stress {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("cpu-hog-{i}"))
                    .spawn(move || {
                        // A thread inherits its creator's policy and pinning:
                        // make sure this is a plain SCHED_OTHER thread on any CPU.
                        let normal = ftdi_rt::RealtimeConfig::default()
                            .with_policy(ftdi_rt::RealtimePolicy::Disabled);
                        let _ = ftdi_rt::make_current_thread_realtime(&normal);
                        let mut x = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = std::hint::black_box(
                                    x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                                );
                            }
                        }
                    })
                    .expect("spawn a hog thread")
            })
            .collect();
        Stress { stop, threads }
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
