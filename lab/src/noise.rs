//! Measuring the machine's own scheduling noise while a test runs.
//!
//! A [`NoiseProbe`] runs one SCHED_FIFO 99 thread pinned to each CPU. Each
//! sleeps 250 µs at a time and logs every wakeup more than 100 µs late. At
//! priority 99, nothing in userspace and no normal-priority kernel thread can
//! delay it; what can is the machine itself: a hypervisor preempting the
//! vCPU, or a non-preemptible kernel section (on a `preempt=none` kernel).
//! Such a stall delays any thread on that CPU, the driver's included, and no
//! driver design can avoid it, so a deadline miss it explains is counted
//! apart from the host path's own misses: the probe is a
//! [`StallSource`] (named `"machine"`) to give to
//! [`Port::discount_stalls`](ftdi_rt::Port::discount_stalls).
//!
//! What the probe does not absorb is exactly what the project is about: a
//! normal-priority kworker (the tty path's `flush_to_ldisc`) waiting behind
//! CPU hogs does not delay a FIFO-99 thread, so those misses stay counted.
//! The probe itself costs each CPU ~4000 short wakeups a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ftdi_rt::realtime::{self, RtThread};
use ftdi_rt::stall::{STALL_THRESHOLD, StallLog, StallSource, union_within};
use ftdi_rt::{Pinning, RealtimeConfig, Timestamp};
use rustix::thread::{ClockId, Timespec};

const PERIOD: Duration = Duration::from_micros(250);

/// What the probe saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

/// What the probe threads write and everyone reads.
#[derive(Debug)]
struct ProbeShared {
    /// One log per probe thread (a log has one writer).
    stalls: Vec<StallLog>,
    wakeups: AtomicU64,
    max_late_ns: AtomicU64,
    over_1ms: AtomicU64,
}

/// A cyclictest-style probe of the machine's scheduling noise (see the
/// module docs). Share it (`Arc<NoiseProbe>`) with every port that should
/// discount machine stalls; the probe threads stop when the last owner
/// drops it.
#[derive(Debug)]
pub struct NoiseProbe {
    shared: Arc<ProbeShared>,
    stop: Arc<AtomicBool>,
    threads: Vec<RtThread>,
}

/// The CPUs this process may use (its affinity mask).
fn process_cpus() -> std::io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

impl NoiseProbe {
    /// Starts one SCHED_FIFO 99 probe thread per CPU the process may use.
    ///
    /// # Errors
    /// The realtime refusal (a probe that is not FIFO 99 measures nothing).
    pub fn start() -> ftdi_rt::Result<NoiseProbe> {
        let cpus = process_cpus()?;
        let shared = Arc::new(ProbeShared {
            stalls: cpus.iter().map(|_| StallLog::new()).collect(),
            wakeups: AtomicU64::new(0),
            max_late_ns: AtomicU64::new(0),
            over_1ms: AtomicU64::new(0),
        });
        let mut probe = NoiseProbe {
            shared,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::with_capacity(cpus.len()),
        };
        for (slot, &cpu) in cpus.iter().enumerate() {
            let rt = RealtimeConfig::default()
                .with_priority(99)
                .with_pinning(Pinning::Cpu(cpu))
                .with_lock_memory(false);
            let (shared, stop) = (probe.shared.clone(), probe.stop.clone());
            // A refusal returns here; dropping `probe` stops the threads
            // already started.
            let (thread, _) =
                realtime::spawn(&format!("noise-probe-{cpu}"), &rt, move |startup| {
                    startup.ready();
                    run(&shared, &shared.stalls[slot], &stop);
                })?;
            probe.threads.push(thread);
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
        union_within([self as &dyn StallSource], from, to, Timestamp::now())
    }
}

impl StallSource for NoiseProbe {
    fn name(&self) -> &str {
        "machine"
    }

    fn stalls_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        each: &mut dyn FnMut(Timestamp, Timestamp),
    ) {
        for log in &self.shared.stalls {
            log.for_each_within(from, to, now, each);
        }
    }
}

impl Drop for NoiseProbe {
    fn drop(&mut self) {
        // Before the threads field drops, which joins them.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps until the absolute `CLOCK_MONOTONIC` time `t`.
fn sleep_until(t: Timestamp) {
    let ns = t.as_nanos();
    let at = Timespec {
        tv_sec: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        tv_nsec: i64::try_from(ns % 1_000_000_000).unwrap_or(0),
    };
    while let Err(rustix::io::Errno::INTR) =
        rustix::thread::clock_nanosleep_absolute(ClockId::Monotonic, &at)
    {}
}

/// One probe thread's loop.
fn run(shared: &ProbeShared, stalls: &StallLog, stop: &AtomicBool) {
    // On the way out: no more promises.
    struct Done<'a>(&'a StallLog);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.promise(None);
        }
    }
    let _done = Done(stalls);
    let mut due = Timestamp::now();
    while !stop.load(Ordering::Relaxed) {
        due = due.add(PERIOD).max(Timestamp::now());
        stalls.promise(Some(due));
        sleep_until(due);
        let now = Timestamp::now();
        let late = now.saturating_since(due);
        shared.wakeups.fetch_add(1, Ordering::Relaxed);
        shared.max_late_ns.fetch_max(
            u64::try_from(late.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if late > Duration::from_millis(1) {
            shared.over_1ms.fetch_add(1, Ordering::Relaxed);
        }
        if late >= STALL_THRESHOLD {
            stalls.record(due, now);
        }
    }
}
