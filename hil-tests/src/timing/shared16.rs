//! The `shared-reader-16ch` case: 16 channels of 4 simulated FT4232H
//! through the guest's real USB stack, the request/reply loop on every
//! channel at once under `rt-burst`, once with all 16 ports on ONE shared
//! [`Reader`] and once with a reader per port, side by side in one boot.
//!
//! Per configuration it prints one `shared16` metric: transactions, host-path
//! misses, p50/p99/p99.9/max latency over all channels, the readers' CPU
//! (their own `schedstat` counters: the shared reader's, or the sum of the
//! 16 own readers'), as a percentage of the loop's guest wall time, and how
//! busy the guest's vCPU was (`guest_busy_pct`; a log line says which
//! threads used it: the chips' device servers are in the guest too, where
//! silicon would cost the host nothing). Then one `shared16-channel` metric
//! per channel and configuration.
//!
//! It fails on what could honestly go wrong, not on a latency figure (this
//! guest's one vCPU carries the 4 chips' servers, vhci and all 16 loops, so
//! absolute latencies say little): a wrong reply the port does not explain
//! (each channel sends requests of its own, so a reply that crossed from
//! another channel is wrong; a late reply whose rest the next call gave up
//! waiting for is counted by the port as unsettled and may be taken for a
//! later reply, as `Statistics::unsettled_replies` documents, so wrong
//! replies are explained only on a channel whose port reported one; the
//! crossing check is conclusive on the channels that reported none), a channel
//! starved (no reply at all, neither in time nor late), a transaction the port's own
//! statistics do not account for, a port that errs, or channels of one chip
//! that do not share one device handle on the shared reader (the usbfs
//! descriptors the process holds for each chip: 1 with the shared reader, 4
//! with a reader per port).
//!
//! After the loops on the shared reader it closes chip 0's channels one by
//! one: each must go back to ftdi_sio (its tty returns), the chip's device
//! handle must stay open until its last channel closes (then no usbfs
//! descriptor is left), and the remaining ports must keep answering.
//!
//! Parameters (`--set key=value`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `shared16.n` | 500 | transactions per channel and configuration |
//! | `shared16.device_delay_us` | 200 | the frobnicator's reply delay |
//! | `shared16.chips` | 4 | FT4232H attached (1 to 4; 4 channels each) |

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ftdi_rt::sim::Frobnicator;
use ftdi_rt::sim::usb::VirtualFtdi;
use ftdi_rt::{
    Chip, Error, Interface, Pinning, Port, PortConfig, Reader, RealtimeConfig, RealtimePolicy,
    ReplyEnd, Selector, make_current_thread_realtime,
};

use super::console::QuietKernelConsole;
use super::contenders::{LoopSpec, request};
use super::guest_cpu::CpuSnapshot;
use super::loads::{LoadParams, RunningLoad};
use super::recorder::LatencyRecorder;
use super::row::Load;
use crate::guest::{Ctx, Outcome, wait_until};
use crate::vdev::VirtualDevice;
use crate::virtual_ftdi::{attach, selector};

/// How many requests back a wrong reply is looked for among the channel's own.
const SHIFT_LIMIT: usize = 8;

/// Chips attached (unless `shared16.chips` says otherwise), and channels each.
const CHIPS: usize = 4;
const CHANNELS: usize = 4;

/// One chip: its selector and its usbfs node.
struct ChipUnderTest {
    dev: VirtualDevice<VirtualFtdi>,
    selector: Selector,
    usbfs: PathBuf,
}

/// What one channel's loop measured.
struct ChannelRun {
    chip: usize,
    interface: Interface,
    recorder: LatencyRecorder,
    /// The port's own count of transactions and misses (warm-up included).
    stats_transactions: u64,
    stats_misses: u64,
    overflows: u64,
    /// Bytes of late replies the next calls discarded, and replies that
    /// never settled (the port's own accounting of what came late).
    stale_bytes: u64,
    unsettled: u64,
    /// Wrong replies that were the reply to one of the channel's own
    /// earlier requests.
    shifted: u64,
}

/// `shared-reader-16ch`: see the module docs.
pub fn shared_reader_16ch(ctx: &mut Ctx) -> Outcome {
    let run = |ctx: &mut Ctx| -> Result<String, String> {
        let spec = LoopSpec {
            n: ctx.param("shared16.n", 500usize),
            ..LoopSpec::default()
        };
        let delay = Duration::from_micros(ctx.param("shared16.device_delay_us", 200u64));
        let mut chips = Vec::new();
        let n_chips = ctx.param("shared16.chips", CHIPS).clamp(1, CHIPS);
        for k in 0..n_chips {
            let builder = Interface::ALL
                .into_iter()
                .fold(VirtualFtdi::builder(Chip::Ft4232H), |b, i| {
                    b.device(i, Frobnicator::new(delay))
                });
            let dev = attach(ctx, builder, CHANNELS).map_err(|e| format!("chip {k}: {e}"))?;
            ctx.log(&format!("chip {k}: {}", dev.describe()));
            let usbfs = usbfs_node(dev.bus_id())?;
            chips.push(ChipUnderTest {
                selector: selector(&dev)?,
                dev,
                usbfs,
            });
        }
        let quiet = QuietKernelConsole::new()?;
        let app = RealtimeConfig::default()
            .with_priority(spec.app_priority)
            .with_pinning(Pinning::Unpinned)
            .with_lock_memory(true)
            .with_policy(RealtimePolicy::Required);
        make_current_thread_realtime(&app).map_err(|e| format!("the case's thread: {e}"))?;
        let mut failures = Vec::new();
        let mut summaries = Vec::new();
        for shared in [true, false] {
            let load = RunningLoad::start(Load::RtBurst, &LoadParams::default())?;
            let result = configuration(ctx, &chips, &spec, &app, shared);
            let load_note = load.stop();
            match result {
                Ok((summary, mut problems)) => {
                    ctx.log(&format!(
                        "readers={}: load {load_note}",
                        label(shared, chips.len() * CHANNELS)
                    ));
                    summaries.push(summary);
                    failures.append(&mut problems);
                }
                Err(e) => failures.push(format!(
                    "readers={}: {e}",
                    label(shared, chips.len() * CHANNELS)
                )),
            }
        }
        let _ = make_current_thread_realtime(
            &RealtimeConfig::default().with_policy(RealtimePolicy::Disabled),
        );
        drop(quiet);
        for chip in &chips {
            if let Some(why) = chip.dev.device().detached() {
                failures.push(format!("chip {} detached: {why}", chip.dev.bus_id()));
            }
        }
        if failures.is_empty() {
            Ok(summaries.join("; "))
        } else {
            Err(failures.join("; "))
        }
    };
    run(ctx).into()
}

/// The `readers=` label: 1 shared, or one per port.
fn label(shared: bool, ports: usize) -> String {
    if shared {
        "1".into()
    } else {
        ports.to_string()
    }
}

/// Opens the 16 channels (on one reader, or each on its own), checks the
/// device handles, runs the loop on all at once and prints the metrics.
/// Returns a one-line summary and what failed.
fn configuration(
    ctx: &Ctx,
    chips: &[ChipUnderTest],
    spec: &LoopSpec,
    app: &RealtimeConfig,
    shared: bool,
) -> Result<(String, Vec<String>), String> {
    let readers = label(shared, chips.len() * CHANNELS);
    let reader = if shared {
        Some(Reader::new(&RealtimeConfig::default()).map_err(|e| format!("Reader::new: {e}"))?)
    } else {
        None
    };
    let base = PortConfig::default()
        .with_baud(spec.baud)
        .with_latency_timer_ms(spec.latency_ms);
    let base = match &reader {
        Some(reader) => base.with_reader(reader),
        None => base,
    };
    let mut ports = Vec::new();
    for (k, chip) in chips.iter().enumerate() {
        for interface in Interface::ALL {
            let config = base.clone().with_interface(interface);
            let port = Port::open_usb(&chip.selector, &config)
                .map_err(|e| format!("chip {k} channel {interface}: open_usb: {e}"))?;
            ports.push((k, interface, port));
        }
    }
    let mut problems = Vec::new();
    // One device handle per chip on a shared reader, one per port otherwise.
    let expected_fds = if shared { 1 } else { CHANNELS };
    let mut fds = Vec::new();
    for (k, chip) in chips.iter().enumerate() {
        let n = usbfs_fds(&chip.usbfs)?;
        fds.push(n.to_string());
        if n != expected_fds {
            problems.push(format!(
                "readers={readers}: chip {k}'s 4 channels hold {n} usbfs descriptors for {}, \
                 expected {expected_fds}",
                chip.usbfs.display()
            ));
        }
    }
    if let Some(reader) = &reader
        && reader.ports() != chips.len() * CHANNELS
    {
        problems.push(format!(
            "the shared reader serves {} ports, expected {}",
            reader.ports(),
            chips.len() * CHANNELS
        ));
    }
    let cpu = |ports: &[(usize, Interface, Port)]| -> Option<Duration> {
        match &reader {
            Some(reader) => reader.cpu_time(),
            None => ports.iter().map(|(_, _, p)| p.reader_cpu_time()).sum(),
        }
    };
    // Every loop starts together, after this reading.
    let cpu0 = cpu(&ports);
    let guest0 = CpuSnapshot::take();
    let start = Arc::new(Barrier::new(ports.len() + 1));
    let threads: Vec<_> = ports
        .into_iter()
        .map(|(chip, interface, mut port)| {
            let start = start.clone();
            let (spec, app) = (*spec, *app);
            std::thread::spawn(move || {
                let rt = make_current_thread_realtime(&app);
                start.wait();
                let measured = rt
                    .map_err(|e| format!("the loop's thread: {e}"))
                    .and_then(|_| {
                        run_loop(
                            &mut port,
                            &spec,
                            chip * CHANNELS + usize::from(interface.number()),
                        )
                    });
                (chip, interface, port, measured)
            })
        })
        .collect();
    let t0 = Instant::now();
    start.wait();
    let mut runs = Vec::new();
    let mut finished = Vec::new();
    for thread in threads {
        let (chip, interface, port, measured) = thread
            .join()
            .map_err(|_| "a loop thread panicked".to_string())?;
        match measured {
            Ok((recorder, shifted)) => {
                let s = port.stats();
                runs.push(ChannelRun {
                    chip,
                    interface,
                    recorder,
                    stats_transactions: s.transactions,
                    stats_misses: s.deadline_misses,
                    overflows: s.overflows,
                    stale_bytes: s.stale_bytes,
                    unsettled: s.unsettled_replies,
                    shifted,
                });
            }
            Err(e) => problems.push(format!(
                "readers={readers}: chip {chip} channel {interface}: {e}"
            )),
        }
        finished.push((chip, interface, port));
    }
    let wall = t0.elapsed();
    let guest = CpuSnapshot::take().since(&guest0, wall.as_nanos().try_into().unwrap_or(u64::MAX));
    let cpu1 = cpu(&finished);
    let used = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let cpu_pct = used.map_or_else(
        || "unknown".to_string(),
        |u| {
            format!(
                "{:.1}",
                100.0 * u.as_secs_f64() / wall.as_secs_f64().max(1e-9)
            )
        },
    );
    let mut all = LatencyRecorder::new();
    let mut wrong = 0;
    for run in &runs {
        let ch = &run.recorder;
        let q = ch.row(key());
        ctx.metric(
            "shared16-channel",
            &[
                ("readers", readers.to_string()),
                ("chip", run.chip.to_string()),
                ("channel", run.interface.to_string()),
                ("transactions", q.n.to_string()),
                ("misses", q.misses.to_string()),
                ("p50_us", q.p50_us.to_string()),
                ("p99_us", q.p99_us.to_string()),
                ("max_us", q.max_us.to_string()),
                ("overflows", run.overflows.to_string()),
                ("wrong", run.recorder.wrong().to_string()),
                ("own_late", run.shifted.to_string()),
                ("stale_bytes", run.stale_bytes.to_string()),
                ("unsettled", run.unsettled.to_string()),
            ],
        );
        wrong += ch.wrong();
        // A wrong reply is explained when the port reported giving up on a
        // late reply (unsettled): its rest cannot be told from a new reply
        // (see `Statistics::unsettled_replies`), and the stream may stay
        // behind from there on. A wrong reply on a channel whose port
        // reported none is unexplained: a reply from another channel, or
        // lost order. (How many of the wrong ones were the channel's own
        // earlier replies is printed as `own_late`; the rest are older or
        // not its own, which a saturated run cannot tell apart.)
        if ch.wrong() > 0 && run.unsettled == 0 {
            problems.push(format!(
                "readers={readers}: chip {} channel {}: {} wrong replies ({} this channel's own \
                 late ones) while the port reported no unsettled late reply",
                run.chip,
                run.interface,
                ch.wrong(),
                run.shifted
            ));
        }
        // Starved: the reader never handed this channel a reply, neither
        // in time nor late (a late one is discarded by the next call and
        // counted in stale bytes, or left unsettled). "None in time" alone
        // is a latency figure, which this case does not judge: on a
        // saturated vCPU every reply can come late (see `guest_busy_pct`).
        let in_time = ch.count().saturating_sub(ch.misses());
        if ch.count() == 0 || (in_time == 0 && run.stale_bytes == 0 && run.unsettled == 0) {
            problems.push(format!(
                "readers={readers}: chip {} channel {} starved: no reply at all in {}, \
                 neither in time nor late",
                run.chip,
                run.interface,
                ch.count()
            ));
        }
        let attempted = (spec.warmup + spec.n) as u64;
        if run.stats_transactions != attempted || run.stats_misses < ch.misses() {
            problems.push(format!(
                "readers={readers}: chip {} channel {}: the port counted {} transactions and {} \
                 misses, the loop ran {attempted} and saw {} misses after warm-up",
                run.chip,
                run.interface,
                run.stats_transactions,
                run.stats_misses,
                ch.misses()
            ));
        }
        all.merge(ch);
    }
    let row = all.row(key());
    ctx.metric(
        "shared16",
        &[
            ("readers", readers.to_string()),
            ("ports", (chips.len() * CHANNELS).to_string()),
            ("transactions", row.n.to_string()),
            ("host_misses", row.misses.to_string()),
            ("wrong", wrong.to_string()),
            ("p50_us", row.p50_us.to_string()),
            ("p99_us", row.p99_us.to_string()),
            ("p999_us", row.p999_us.to_string()),
            ("max_us", row.max_us.to_string()),
            ("reader_cpu_pct", cpu_pct.clone()),
            ("guest_busy_pct", guest.busy()),
            ("wall_ms", wall.as_millis().to_string()),
            ("usbfs_fds_per_chip", fds.join("/")),
        ],
    );
    ctx.log(&format!("readers={readers}: over the loops: {guest}"));
    if shared {
        problems.extend(close_one_by_one(ctx, &chips[0], &mut finished, spec));
    }
    drop(finished);
    drop(reader);
    Ok((
        format!(
            "readers={readers}: {} transactions, {} misses, p99 {} us, reader cpu {cpu_pct} %, \
             guest cpu {} % busy",
            row.n,
            row.misses,
            row.p99_us,
            guest.busy()
        ),
        problems,
    ))
}

/// On the shared reader, after the loops: closes chip 0's channels one by
/// one. Each close must give that channel back to ftdi_sio (its tty
/// returns), keep the device handle open while a channel of the chip is
/// left (1 usbfs descriptor, 0 after the last), and leave the other ports
/// working (a few exchanges on the chip's remaining channels and on a
/// channel of another chip). Returns what failed.
fn close_one_by_one(
    ctx: &Ctx,
    chip: &ChipUnderTest,
    ports: &mut Vec<(usize, Interface, Port)>,
    spec: &LoopSpec,
) -> Vec<String> {
    let mut problems = Vec::new();
    for interface in Interface::ALL {
        let Some(at) = ports
            .iter()
            .position(|(k, i, _)| *k == 0 && *i == interface)
        else {
            continue;
        };
        drop(ports.remove(at));
        let back = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            chip.dev.live_tty(interface.number()).is_some()
        });
        if back.is_none() {
            problems.push(format!(
                "closing chip 0 channel {interface} on the shared reader: its tty did not come \
                 back within 5 s"
            ));
        }
        let left = ports.iter().filter(|(k, _, _)| *k == 0).count();
        let expected = usize::from(left > 0);
        match usbfs_fds(&chip.usbfs) {
            Ok(n) if n == expected => {}
            Ok(n) => problems.push(format!(
                "after closing chip 0 channel {interface} ({left} left): {n} usbfs descriptors, \
                 expected {expected}"
            )),
            Err(e) => problems.push(e),
        }
        // The others are not disturbed: a few exchanges each (no load now,
        // a generous deadline: this checks that they work, not how fast).
        for (k, i, port) in ports.iter_mut().filter(|(k, _, _)| *k <= 1) {
            let salt = 1_000 + *k * CHANNELS + usize::from(i.number());
            let calm = LoopSpec {
                n: 5,
                warmup: 0,
                deadline: Duration::from_secs(1),
                ..*spec
            };
            match run_loop(port, &calm, salt) {
                Ok((r, _)) if r.wrong() == 0 && r.misses() == 0 => {}
                Ok((r, _)) => problems.push(format!(
                    "after closing chip 0 channel {interface}: chip {k} channel {i}: {} wrong, \
                     {} missed of 5",
                    r.wrong(),
                    r.misses()
                )),
                Err(e) => problems.push(format!(
                    "after closing chip 0 channel {interface}: chip {k} channel {i}: {e}"
                )),
            }
        }
    }
    ctx.log(&format!(
        "readers=1: closed chip 0's channels one by one: {}",
        if problems.is_empty() {
            "each went back to ftdi_sio, the handle closed with the last, the others kept working"
        } else {
            "see the failures"
        }
    ));
    problems
}

/// The row key the recorder's percentiles are read through (its fields are
/// not printed here).
fn key() -> super::row::RowKey {
    use super::row::{Contender, Kernel, Load, RowKey, Vhci};
    RowKey {
        kernel: Kernel::Stock,
        load: Load::RtBurst,
        path: Contender::Usb,
        vhci: Vhci::Fifo50,
    }
}

/// The request/reply loop on one channel, as the `timing` rows run it, with
/// requests of its own (`salt`): a reply that crossed from another channel
/// is wrong (but for the 1 in 256 whose reply byte happens to match).
/// Returns the latencies and how many wrong replies were this channel's own
/// earlier replies.
fn run_loop(
    port: &mut Port,
    spec: &LoopSpec,
    salt: usize,
) -> Result<(LatencyRecorder, u64), String> {
    std::thread::sleep(Duration::from_millis(20));
    port.receiver().discard_pending();
    let mut recorder = LatencyRecorder::new();
    let reply = |i: usize| Frobnicator::reply_for(&request(salt * 100_003 + i));
    let mut shifted = 0;
    for i in 0..spec.warmup + spec.n {
        let req = request(salt * 100_003 + i);
        let counted = i >= spec.warmup;
        match port.transact(&req, ReplyEnd::Length(1), spec.deadline) {
            Ok(t) if counted => {
                recorder.record(t.latency(), false);
                if t.bytes() != [reply(i)] {
                    recorder.wrong_reply();
                    // The reply to one of this channel's recent requests,
                    // come late; anything else came from nowhere it should.
                    if (1..=SHIFT_LIMIT.min(i)).any(|k| t.bytes() == [reply(i - k)]) {
                        shifted += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(Error::DeadlineMissed { elapsed }) => {
                if counted {
                    recorder.record(elapsed, true);
                }
            }
            Err(e) => return Err(format!("transaction {i}: {e}")),
        }
    }
    Ok((recorder, shifted))
}

/// `/dev/bus/usb/BBB/DDD` of the device at `bus_id` (`1-1`), from sysfs.
fn usbfs_node(bus_id: &str) -> Result<PathBuf, String> {
    let read = |f: &str| -> Result<u32, String> {
        let p = format!("/sys/bus/usb/devices/{bus_id}/{f}");
        std::fs::read_to_string(&p)
            .map_err(|e| format!("{p}: {e}"))?
            .trim()
            .parse()
            .map_err(|e| format!("{p}: {e}"))
    };
    Ok(PathBuf::from(format!(
        "/dev/bus/usb/{:03}/{:03}",
        read("busnum")?,
        read("devnum")?
    )))
}

/// How many of this process's descriptors are open on `node`.
fn usbfs_fds(node: &PathBuf) -> Result<usize, String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    Ok(dir
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == *node))
        .count())
}
