//! Measuring the machine's own scheduling noise while a test runs.
//!
//! A [`NoiseProbe`] runs one SCHED_FIFO 99 thread pinned to each CPU. Each
//! sleeps 250 µs at a time and logs every wakeup more than 100 µs late. At
//! priority 99, nothing in userspace and no normal-priority kernel thread can
//! delay it; what can is the machine itself: a hypervisor preempting the
//! vCPU, or a non-preemptible kernel section (on a `preempt=none` kernel).
//! Such a stall delays any thread on that CPU, the driver's included, and no
//! driver design can avoid it, so a deadline miss it explains is counted
//! apart from the host path's own misses ([`Port::watch_platform`]).
//!
//! What the probe does not absorb is exactly what the project is about: a
//! normal-priority kworker (the tty path's `flush_to_ldisc`) waiting behind
//! CPU hogs does not delay a FIFO-99 thread, so those misses stay counted.
//! The probe itself costs each CPU ~4000 short wakeups a second.
//!
//! [`Port::watch_platform`]: crate::Port::watch_platform

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::Result;
use crate::realtime::{Pinning, RealtimeConfig, make_current_thread_realtime};
use crate::stall_log::{STALL_THRESHOLD, StallLog, union_within};
use crate::sys;
use crate::time::Timestamp;

const PERIOD: Duration = Duration::from_micros(250);

/// What the probe saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoiseSummary {
    /// Wakeups measured, all CPUs.
    pub wakeups: u64,
    /// The latest wakeup.
    pub max_late: Duration,
    /// Wakeups more than 1 ms late.
    pub over_1ms: u64,
}

impl std::fmt::Display for NoiseSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a FIFO-99 thread per CPU woke up to {:.3} ms late ({} of {} wakeups more than 1 ms late)",
            self.max_late.as_secs_f64() * 1e3,
            self.over_1ms,
            self.wakeups
        )
    }
}

#[derive(Debug)]
pub(crate) struct ProbeShared {
    /// One log per probe thread (a log has one writer).
    pub(crate) stalls: Vec<StallLog>,
    wakeups: AtomicU64,
    max_late_ns: AtomicU64,
    over_1ms: AtomicU64,
}

impl ProbeShared {
    fn new(cpus: usize) -> ProbeShared {
        ProbeShared {
            stalls: (0..cpus).map(|_| StallLog::default()).collect(),
            wakeups: AtomicU64::new(0),
            max_late_ns: AtomicU64::new(0),
            over_1ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn stalled_within(&self, from: Timestamp, to: Timestamp) -> Duration {
        union_within(&self.stalls, from, to)
    }
}

/// A cyclictest-style probe of the machine's scheduling noise (see the module docs).
#[derive(Debug)]
pub struct NoiseProbe {
    shared: Arc<ProbeShared>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NoiseProbe {
    /// Starts one SCHED_FIFO 99 probe thread per CPU the process may use.
    ///
    /// # Errors
    /// The realtime refusal (a probe that is not FIFO 99 measures nothing).
    pub fn start() -> Result<NoiseProbe> {
        let cpus = sys::process_cpus()?.to_vec();
        let shared = Arc::new(ProbeShared::new(cpus.len().max(1)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for (slot, &cpu) in cpus.iter().enumerate() {
            let (shared, stop, ready) = (shared.clone(), stop.clone(), ready_tx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("noise-probe-{cpu}"))
                    .spawn(move || {
                        let rt = RealtimeConfig::default()
                            .with_priority(99)
                            .with_pinning(Pinning::Cpu(cpu))
                            .with_lock_memory(false);
                        match make_current_thread_realtime(&rt) {
                            Ok(_) => {
                                let _ = ready.send(Ok(()));
                                probe(&shared, &shared.stalls[slot], &stop);
                            }
                            Err(e) => {
                                let _ = ready.send(Err(e));
                            }
                        }
                    })?,
            );
        }
        let mut probe = NoiseProbe {
            shared,
            stop,
            threads,
        };
        for _ in &cpus {
            if let Ok(Err(e)) = ready_rx.recv() {
                probe.stop_threads();
                return Err(e.into());
            }
        }
        Ok(probe)
    }

    /// What the probe has seen so far.
    pub fn summary(&self) -> NoiseSummary {
        NoiseSummary {
            wakeups: self.shared.wakeups.load(Ordering::Relaxed),
            max_late: Duration::from_nanos(self.shared.max_late_ns.load(Ordering::Relaxed)),
            over_1ms: self.shared.over_1ms.load(Ordering::Relaxed),
        }
    }

    /// How long the machine stalled (on any CPU) within `[from, to]`.
    pub fn stalled_within(&self, from: Timestamp, to: Timestamp) -> Duration {
        self.shared.stalled_within(from, to)
    }

    pub(crate) fn shared(&self) -> Arc<ProbeShared> {
        self.shared.clone()
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for NoiseProbe {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn probe(shared: &ProbeShared, stalls: &StallLog, stop: &AtomicBool) {
    let mut due = Timestamp::now();
    // On the way out: no more promises.
    struct Done<'a>(&'a StallLog);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.expect(None);
        }
    }
    let _done = Done(stalls);
    while !stop.load(Ordering::Relaxed) {
        due = due.add(PERIOD).max(Timestamp::now());
        stalls.expect(Some(due));
        sys::sleep_until(due);
        let now = Timestamp::now();
        let late = now.saturating_since(due);
        shared.wakeups.fetch_add(1, Ordering::Relaxed);
        shared
            .max_late_ns
            .fetch_max(late.as_nanos() as u64, Ordering::Relaxed);
        if late > Duration::from_millis(1) {
            shared.over_1ms.fetch_add(1, Ordering::Relaxed);
        }
        if late >= STALL_THRESHOLD {
            stalls.record(due, now);
        }
    }
}
