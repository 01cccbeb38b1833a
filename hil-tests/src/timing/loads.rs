//! The loads the timing tier runs every contender under.
//!
//! Priorities follow the rig's ordering (reference usbip-timing-rig.md
//! §4.5): chip and USB/IP server 90 > reader 80 > application 70 > vhci
//! kthreads 50 > load 10 > everything at normal priority.
//!
//! * `idle`: nothing.
//! * `hogs`: busy threads at normal priority ([`ftdi_rt_lab::CpuHogs`]). Under
//!   CFS a sleeping kworker still wins its wakeup, so on one vCPU this load
//!   alone does not reproduce the incident (reference §4.4); it is the
//!   control.
//! * `rt-burst`: one `SCHED_FIFO` 10 thread busy 2 ms in every 10 ms, below
//!   the application: an application's own realtime work, which starves the
//!   normal-priority kworker that runs `flush_to_ldisc`. It sleeps 8 ms
//!   after each burst rather than keeping an absolute 10 ms schedule, so it
//!   drifts across the loop's phase (measured: one burst per 10.04–10.07 ms;
//!   on an absolute schedule the kernel path missed 4 deadlines in 2000
//!   instead of 10, the burst always hitting the same transactions the same
//!   way).
//! * `kwork`: tty traffic flooding pty pairs. Every write to a pty master
//!   pushes the slave's flip buffer (`tty_flip_buffer_push`), which queues
//!   `flush_to_ldisc` on the same unbound workqueue ftdi_sio's pushes use,
//!   so ftdi_sio's work competes with the flood's for kworkers and CPU.
//!   Many small writes make many pushes: by default 16 pairs of 16-byte
//!   writes, writers and readers at normal priority. (Measured in a 6.1
//!   guest under icount through a pty frobnicator: 4 pairs of 4 KiB writes
//!   cost the tty path nothing, 8 or more pairs of 1..16-byte writes made it
//!   miss 3.5–7 % of 3.5 ms deadlines; writers at `SCHED_FIFO` 10 with 1-byte
//!   writes starve the kworkers outright, which measures nothing.)

use std::io::{Read, Write};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ftdi_rt::{Pinning, RealtimeConfig, RealtimePolicy, make_current_thread_realtime};
use ftdi_rt_lab::CpuHogs;
use serialport::TTYPort;

use super::row::Load;

/// The priority of realtime load (below vhci's 50 and the application's 70).
pub const LOAD_PRIORITY: u8 = 10;

/// How the `kwork` flood's writers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KworkWriters {
    /// `SCHED_OTHER`, like the readers and the kworkers.
    Other,
    /// `SCHED_FIFO` [`LOAD_PRIORITY`]: they refill the ptys as soon as the
    /// kworkers and readers make room (with small writes, they starve the
    /// kworkers outright).
    Fifo,
}

impl FromStr for KworkWriters {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "other" => Ok(KworkWriters::Other),
            "fifo10" => Ok(KworkWriters::Fifo),
            _ => Err(format!("kwork writers must be other|fifo10, not {s:?}")),
        }
    }
}

/// The knobs of the loads (defaults: the incident).
#[derive(Clone, Copy, Debug)]
pub struct LoadParams {
    /// `hogs`: busy threads.
    pub hogs: usize,
    /// `rt-burst`: busy time per period.
    pub burst_busy: Duration,
    /// `rt-burst`: the period.
    pub burst_period: Duration,
    /// `kwork`: pty pairs flooded.
    pub kwork_pairs: usize,
    /// `kwork`: bytes per write.
    pub kwork_chunk: usize,
    /// `kwork`: the writers' scheduling.
    pub kwork_writers: KworkWriters,
}

impl Default for LoadParams {
    fn default() -> Self {
        LoadParams {
            hogs: 2,
            burst_busy: Duration::from_millis(2),
            burst_period: Duration::from_millis(10),
            kwork_pairs: 16,
            kwork_chunk: 16,
            kwork_writers: KworkWriters::Other,
        }
    }
}

/// A load that runs until dropped (or [`stop`](RunningLoad::stop)ped, which
/// also says what it did).
#[derive(Debug)]
pub struct RunningLoad {
    load: Load,
    hogs: Option<CpuHogs>,
    stop: Arc<AtomicBool>,
    /// Periods (rt-burst) or bytes moved (kwork), for the summary.
    work: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
    /// Pty pairs flooded (kwork) or hogs running (hogs).
    units: usize,
    started: Instant,
}

impl RunningLoad {
    /// Starts `load`.
    ///
    /// # Errors
    /// A thread or pty could not be created, or the realtime load was
    /// refused `SCHED_FIFO` (a load that is not what it says measures
    /// nothing).
    pub fn start(load: Load, params: &LoadParams) -> Result<RunningLoad, String> {
        let mut running = RunningLoad {
            load,
            hogs: None,
            stop: Arc::new(AtomicBool::new(false)),
            work: Arc::new(AtomicU64::new(0)),
            threads: Vec::new(),
            units: 0,
            started: Instant::now(),
        };
        match load {
            Load::Idle => {}
            Load::Hogs => {
                let hogs = CpuHogs::start(params.hogs)
                    .map_err(|e| format!("cannot start {} CPU hogs: {e}", params.hogs))?;
                running.units = hogs.count();
                running.hogs = Some(hogs);
            }
            Load::RtBurst => running.start_burst(params)?,
            Load::Kwork => running.start_kwork(params)?,
        }
        Ok(running)
    }

    fn spawn(&mut self, name: String, body: impl FnOnce() + Send + 'static) -> Result<(), String> {
        let t = std::thread::Builder::new()
            .name(name.clone())
            .spawn(body)
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.threads.push(t);
        Ok(())
    }

    fn start_burst(&mut self, params: &LoadParams) -> Result<(), String> {
        let (busy, period) = (params.burst_busy, params.burst_period);
        if busy >= period {
            return Err(format!(
                "rt-burst busy {busy:?} must be shorter than its period {period:?}"
            ));
        }
        let (stop, work) = (self.stop.clone(), self.work.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        self.spawn("rt-burst".into(), move || {
            if let Err(e) = make_current_thread_realtime(&load_realtime()) {
                let _ = ready_tx.send(Err(format!(
                    "rt-burst refused SCHED_FIFO {LOAD_PRIORITY}: {e}"
                )));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            // Busy, then sleep the rest of the period from when the busy part
            // ended, as a simple `spin(2 ms); usleep(8 ms)` process does: its
            // wake-up latency makes each period a little longer than 10 ms,
            // so the burst drifts across the loop's phase instead of locking
            // to it (the loop and the chip's latency timer run on the same
            // deterministic guest clock; an absolute 10 ms schedule would hit
            // the same point of the same transactions every time).
            let idle = period - busy;
            while !stop.load(Ordering::Relaxed) {
                let busy_until = Instant::now() + busy;
                let mut x = 1u64;
                while Instant::now() < busy_until {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                    );
                }
                work.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(idle);
            }
        })?;
        ready_rx
            .recv()
            .map_err(|_| "rt-burst thread ended before starting".to_string())?
    }

    fn start_kwork(&mut self, params: &LoadParams) -> Result<(), String> {
        ensure_devpts()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut started = 0;
        for pair in 0..params.kwork_pairs {
            let (mut master, mut slave) = TTYPort::pair()
                .map_err(|e| format!("kwork: cannot create pty pair {pair}: {e}"))?;
            for port in [&mut master, &mut slave] {
                serialport::SerialPort::set_timeout(port, Duration::from_millis(50))
                    .map_err(|e| format!("kwork: pty timeout: {e}"))?;
            }
            let (stop, work) = (self.stop.clone(), self.work.clone());
            let chunk = vec![0x55u8; params.kwork_chunk.max(1)];
            let writers = params.kwork_writers;
            let ready = ready_tx.clone();
            self.spawn(format!("kwork-w{pair}"), move || {
                let setup = match writers {
                    KworkWriters::Fifo => make_current_thread_realtime(&load_realtime())
                        .map(drop)
                        .map_err(|e| {
                            format!("kwork writer refused SCHED_FIFO {LOAD_PRIORITY}: {e}")
                        }),
                    KworkWriters::Other => normal_priority(),
                };
                let ok = setup.is_ok();
                let _ = ready.send(setup);
                while ok && !stop.load(Ordering::Relaxed) {
                    match master.write(&chunk) {
                        Ok(n) => {
                            work.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            })?;
            let (stop, ready) = (self.stop.clone(), ready_tx.clone());
            self.spawn(format!("kwork-r{pair}"), move || {
                let _ = ready.send(normal_priority());
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    match slave.read(&mut buf) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            })?;
            started += 2;
            self.units += 1;
        }
        for _ in 0..started {
            ready_rx
                .recv()
                .map_err(|_| "a kwork thread ended before starting".to_string())??;
        }
        Ok(())
    }

    /// Work done so far: rt-burst periods, or kwork bytes written.
    pub fn work(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }

    /// Stops the load and says what it did.
    pub fn stop(mut self) -> String {
        self.stop_threads();
        let secs = self.started.elapsed().as_secs_f64();
        let work = self.work.load(Ordering::Relaxed);
        match self.load {
            Load::Idle => "idle".into(),
            Load::Hogs => format!("{} normal-priority hogs for {secs:.1} s", self.units),
            Load::RtBurst => format!(
                "{work} SCHED_FIFO {LOAD_PRIORITY} bursts in {secs:.1} s (one per {:.3} ms)",
                secs * 1e3 / work.max(1) as f64
            ),
            Load::Kwork => format!(
                "{:.1} MB through {} pty pairs in {secs:.1} s",
                work as f64 / 1e6,
                self.units
            ),
        }
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.hogs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RunningLoad {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Mounts devpts on /dev/pts if nothing is there: a pty's slave node lives
/// in it, and the rig's busybox /init mounts only proc, sysfs and devtmpfs.
fn ensure_devpts() -> Result<(), String> {
    if std::path::Path::new("/dev/pts/ptmx").exists() {
        return Ok(());
    }
    std::fs::create_dir_all("/dev/pts").map_err(|e| format!("kwork: mkdir /dev/pts: {e}"))?;
    let status = std::process::Command::new("mount")
        .args(["-t", "devpts", "devpts", "/dev/pts"])
        .status()
        .map_err(|e| format!("kwork: cannot run mount for devpts: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kwork: mount -t devpts devpts /dev/pts: {status}"))
    }
}

/// `SCHED_FIFO` [`LOAD_PRIORITY`], unpinned, memory not locked, required.
fn load_realtime() -> RealtimeConfig {
    RealtimeConfig::default()
        .with_priority(LOAD_PRIORITY)
        .with_pinning(Pinning::Unpinned)
        .with_lock_memory(false)
        .with_policy(RealtimePolicy::Required)
}

/// Undoes a realtime policy inherited from the creating thread.
fn normal_priority() -> Result<(), String> {
    let normal = RealtimeConfig::default().with_policy(RealtimePolicy::Disabled);
    make_current_thread_realtime(&normal)
        .map(drop)
        .map_err(|e| format!("cannot return to SCHED_OTHER: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::wait_until;

    /// A thread's policy (`SCHED_FIFO` is 1) and realtime priority.
    #[derive(Debug, PartialEq, Eq)]
    struct TaskSched {
        policy: u32,
        rt_priority: u32,
    }

    /// Fields 41 (policy) and 40 (rt_priority) of a `/proc/.../stat` line,
    /// counted after the `)` that ends the command name.
    fn parse_stat(stat: &str) -> Option<TaskSched> {
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        // The fields start at field 3 (state): field k is fields[k - 3].
        Some(TaskSched {
            rt_priority: fields.get(40 - 3)?.parse().ok()?,
            policy: fields.get(41 - 3)?.parse().ok()?,
        })
    }

    /// The scheduling of this process's threads named `name`.
    fn threads_named(name: &str) -> Vec<TaskSched> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
            })
            .filter_map(|t| parse_stat(&std::fs::read_to_string(t.path().join("stat")).ok()?))
            .collect()
    }

    fn can_be_realtime() -> bool {
        std::thread::spawn(|| make_current_thread_realtime(&load_realtime()).is_ok())
            .join()
            .unwrap_or(false)
    }

    #[test]
    fn rt_burst_runs_at_fifo_10_and_counts_its_periods() {
        if !can_be_realtime() {
            // The load refuses to run without SCHED_FIFO: that is what it must do.
            let e = RunningLoad::start(Load::RtBurst, &LoadParams::default()).unwrap_err();
            assert!(e.contains("SCHED_FIFO"), "{e}");
            return;
        }
        let params = LoadParams {
            burst_busy: Duration::from_micros(200),
            burst_period: Duration::from_millis(2),
            ..LoadParams::default()
        };
        let load = RunningLoad::start(Load::RtBurst, &params).unwrap();
        assert_eq!(
            threads_named("rt-burst"),
            [TaskSched {
                policy: 1,
                rt_priority: u32::from(LOAD_PRIORITY)
            }]
        );
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(5), || load
                .work()
                >= 3)
            .is_some(),
            "no burst periods counted"
        );
        let summary = load.stop();
        assert!(summary.contains("SCHED_FIFO 10 bursts"), "{summary}");
        assert!(threads_named("rt-burst").is_empty(), "stopped");
    }

    #[test]
    fn a_burst_as_long_as_its_period_is_refused() {
        let params = LoadParams {
            burst_busy: Duration::from_millis(10),
            ..LoadParams::default()
        };
        let e = RunningLoad::start(Load::RtBurst, &params).unwrap_err();
        assert!(e.contains("shorter than its period"), "{e}");
    }

    #[test]
    fn kwork_moves_bytes_through_its_pty_pairs() {
        let params = LoadParams {
            kwork_pairs: 2,
            kwork_chunk: 512,
            kwork_writers: KworkWriters::Other,
            ..LoadParams::default()
        };
        let load = RunningLoad::start(Load::Kwork, &params).unwrap();
        // More than the pty's buffering (64 KiB per pair): the readers drain.
        assert!(
            wait_until(Duration::from_secs(20), Duration::from_millis(5), || load
                .work()
                > 300_000)
            .is_some(),
            "only {} bytes moved",
            load.work()
        );
        assert_eq!(
            threads_named("kwork-w0")[0].policy,
            0,
            "writers at SCHED_OTHER"
        );
        let summary = load.stop();
        assert!(summary.contains("through 2 pty pairs"), "{summary}");
    }

    #[test]
    fn hogs_and_idle_start_and_stop() {
        let hogs = RunningLoad::start(
            Load::Hogs,
            &LoadParams {
                hogs: 1,
                ..LoadParams::default()
            },
        )
        .unwrap();
        assert!(hogs.stop().starts_with("1 normal-priority hogs"));
        assert_eq!(
            RunningLoad::start(Load::Idle, &LoadParams::default())
                .unwrap()
                .stop(),
            "idle"
        );
    }
}
