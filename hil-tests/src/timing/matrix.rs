//! The comparison matrix: every contender under every load, in one boot, on
//! one device, with the vhci kthreads at `SCHED_FIFO` 50; then the rows with
//! them left at `SCHED_OTHER` (by default under rt-burst) to show why the
//! knob matters. Prints one `timing` row and one `timing-hist` line per
//! combination.
//!
//! Parameters (`--set key=value` on the guest program):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `timing.n` | 2000 | transactions per row |
//! | `timing.deadline_us` | 3500 | the reply deadline |
//! | `timing.loads` | `idle,hogs,rt-burst,kwork` | loads with vhci at fifo50 |
//! | `timing.paths` | `usb,tty,libftdi` | contenders |
//! | `timing.other_loads` | `rt-burst` | loads repeated with vhci at SCHED_OTHER (empty: none) |
//! | `timing.hogs` | 2 | `hogs`: busy threads |
//! | `timing.kwork_pairs` | 16 | `kwork`: pty pairs |
//! | `timing.kwork_chunk` | 16 | `kwork`: bytes per write |
//! | `timing.kwork_writers` | `other` | `kwork`: writers at `other` or `fifo10` |

use ftdi_rt::{Pinning, RealtimeConfig, RealtimePolicy, make_current_thread_realtime};

use super::console::{QuietKernelConsole, drain_stdout};
use super::contenders::{self, Device, LoopSpec};
use super::loads::{LoadParams, RunningLoad};
use super::recorder::HIST_BIN_US;
use super::row::{Contender, Kernel, Load, RowKey, TimingPlan, TimingRow, Vhci, parse_list};
use crate::guest::{Ctx, emit};

/// The priority the `fifo50` rows give the vhci kthreads.
pub const VHCI_FIFO_PRIORITY: u8 = 50;
use crate::vdev::VhciThreads;

/// What the matrix runs.
#[derive(Clone, Debug)]
pub struct MatrixSpec {
    /// The loop.
    pub loop_spec: LoopSpec,
    /// Loads run with vhci at fifo50.
    pub loads: Vec<Load>,
    /// The contenders, in run order.
    pub paths: Vec<Contender>,
    /// Loads repeated with vhci left at SCHED_OTHER.
    pub other_loads: Vec<Load>,
    /// The loads' knobs.
    pub load_params: LoadParams,
}

impl MatrixSpec {
    /// The spec the case's parameters describe (defaults: the issue's).
    ///
    /// # Errors
    /// A parameter that does not parse.
    pub fn from_ctx(ctx: &Ctx) -> Result<MatrixSpec, String> {
        let text = |k: &str, d: &str| ctx.params.get(k).cloned().unwrap_or_else(|| d.into());
        let num = |k: &str, d: u64| -> Result<u64, String> {
            text(k, &d.to_string())
                .parse()
                .map_err(|_| format!("--set {k}: not a whole number"))
        };
        let defaults = LoopSpec::default();
        let load_defaults = LoadParams::default();
        let loop_spec = LoopSpec {
            n: usize::try_from(num("timing.n", defaults.n as u64)?).map_err(|e| e.to_string())?,
            deadline: std::time::Duration::from_micros(num(
                "timing.deadline_us",
                defaults.deadline.as_micros() as u64,
            )?),
            ..defaults
        };
        if loop_spec.n == 0 || loop_spec.deadline.is_zero() {
            return Err("timing.n and timing.deadline_us must be positive".into());
        }
        Ok(MatrixSpec {
            loop_spec,
            loads: parse_list(&text("timing.loads", "idle,hogs,rt-burst,kwork"))?,
            paths: parse_list(&text("timing.paths", "usb,tty,libftdi"))?,
            other_loads: parse_list(&text("timing.other_loads", "rt-burst"))?,
            load_params: LoadParams {
                hogs: num("timing.hogs", load_defaults.hogs as u64)? as usize,
                kwork_pairs: num("timing.kwork_pairs", load_defaults.kwork_pairs as u64)? as usize,
                kwork_chunk: num("timing.kwork_chunk", load_defaults.kwork_chunk as u64)? as usize,
                kwork_writers: text("timing.kwork_writers", "other").parse()?,
                ..load_defaults
            },
        })
    }
}

/// Which kernel the guest runs: PREEMPT_RT shows in `/sys/kernel/realtime`
/// and in the version string.
pub fn running_kernel() -> Kernel {
    let realtime = std::fs::read_to_string("/sys/kernel/realtime").is_ok_and(|s| s.trim() == "1");
    let version = std::fs::read_to_string("/proc/version").unwrap_or_default();
    if realtime || version.contains("PREEMPT_RT") {
        Kernel::Rt
    } else {
        Kernel::Stock
    }
}

impl MatrixSpec {
    /// The plan line for `kernel`.
    pub fn plan(&self, kernel: Kernel) -> TimingPlan {
        TimingPlan {
            kernel,
            n: self.loop_spec.n as u64,
            deadline_us: u64::try_from(self.loop_spec.deadline.as_micros()).unwrap_or(u64::MAX),
            loads: self.loads.clone(),
            paths: self.paths.clone(),
            other_loads: self.other_loads.clone(),
        }
    }
}

/// Runs the matrix on `device`; prints the plan, then the rows. Returns a
/// summary, or the failures (a row that could not run, a wrong reply) after
/// running the rest. `set_vhci` sets the device's vhci kthreads (the
/// library's `AttachedDevice::set_kthread_priority`); they are left as the
/// run's `vhci` parameter says (the rig's default: FIFO 50).
pub fn run(
    ctx: &Ctx,
    device: &Device,
    spec: &MatrixSpec,
    set_vhci: &mut dyn FnMut(VhciThreads) -> Result<String, String>,
) -> Result<String, String> {
    let kernel = running_kernel();
    emit(&spec.plan(kernel).to_string());
    let quiet = QuietKernelConsole::new()?;
    let app = RealtimeConfig::default()
        .with_priority(spec.loop_spec.app_priority)
        .with_pinning(Pinning::Unpinned)
        .with_lock_memory(true)
        .with_policy(RealtimePolicy::Required);
    make_current_thread_realtime(&app).map_err(|e| format!("the application thread: {e}"))?;
    let plan = spec
        .loads
        .iter()
        .map(|&l| (Vhci::Fifo50, l))
        .chain(spec.other_loads.iter().map(|&l| (Vhci::Other, l)));
    let mut failures = Vec::new();
    let mut rows = 0;
    let mut current_vhci = None;
    for (vhci, load) in plan {
        if current_vhci != Some(vhci) {
            let setting = match vhci {
                Vhci::Fifo50 => VhciThreads::Fifo(VHCI_FIFO_PRIORITY),
                Vhci::Other => VhciThreads::Other,
            };
            match set_vhci(setting) {
                Ok(what) => ctx.log(&format!("vhci kthreads: {what}")),
                Err(e) => {
                    failures.push(format!("vhci={vhci}: {e}"));
                    continue;
                }
            }
            current_vhci = Some(vhci);
        }
        let running = match RunningLoad::start(load, &spec.load_params) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("load={load}: {e}"));
                continue;
            }
        };
        for &path in &spec.paths {
            // What was printed must have left the UART before the loop runs.
            drain_stdout();
            let key = RowKey {
                kernel,
                load,
                path,
                vhci,
            };
            match contenders::run(path, device, &spec.loop_spec) {
                Ok(m) => {
                    let row: TimingRow = m.recorder.row(key);
                    emit(&row.to_string());
                    emit(&m.recorder.hist_line(key, HIST_BIN_US).to_string());
                    ctx.log(&format!("{key}: {}", m.notes));
                    if m.recorder.wrong() > 0 {
                        failures.push(format!("{key}: {} wrong replies", m.recorder.wrong()));
                    }
                    rows += 1;
                }
                Err(e) => failures.push(format!("{key}: {e}")),
            }
        }
        ctx.log(&format!("load {load}: {}", running.stop()));
    }
    // Leave the rig as the other cases expect it: vhci as the run says,
    // this thread at normal priority.
    let run_vhci = ctx.param("vhci", VhciThreads::DEFAULT);
    if let Err(e) = set_vhci(run_vhci) {
        failures.push(format!("restoring vhci={run_vhci}: {e}"));
    }
    drop(quiet);
    let _ = make_current_thread_realtime(
        &RealtimeConfig::default().with_policy(RealtimePolicy::Disabled),
    );
    if failures.is_empty() {
        Ok(format!("{rows} rows on the {kernel} kernel"))
    } else {
        Err(format!("{rows} rows; {}", failures.join("; ")))
    }
}
