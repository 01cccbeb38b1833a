//! The wakeup path: the reader pushes a chunk, signals the eventfd, and the
//! application returns from poll. Measured as delivery latency (reader's
//! completion timestamp → the application taking the chunk) while the
//! application blocks waiting for a reply, on the simulated chip, with and
//! without a CPU hog on every core, realtime against plain SCHED_OTHER, and
//! the reader's two memory-locking modes against each other: its own hot
//! path (`mlock`, the default) and the whole process (`mlockall`). The
//! whole-process rows run last because `mlockall` stays in force.
//!
//! The device answers each request at once and the event character makes
//! the chip flush at once, so each round trip takes microseconds and every
//! sample is one wakeup of a sleeping application.
//!
//! Run: `cargo bench --bench wakeup` (optionally `-- ITERATIONS`, default 20000).

use std::time::Duration;

use ftdi_rt::sim::{Line, SimChip, SimConfig, WireByte};
use ftdi_rt::{
    LatencySummary, MemoryLocking, Pinning, Port, PortConfig, RealtimeConfig, RealtimePolicy,
    ReplyEnd,
};
use ftdi_rt_lab::CpuHogs;

struct Outcome {
    delivery: LatencySummary,
    over_100us: u64,
    failed: u64,
    mode: String,
}

fn answer(byte: WireByte, line: &mut Line<'_>) {
    if byte.byte == b'!' {
        line.send_at(byte.end, b"x\n");
    }
}

fn run(realtime: bool, hogs: usize, iterations: usize, locking: MemoryLocking) -> Outcome {
    let hogs = CpuHogs::start(hogs).expect("start CPU hogs");
    let policy = if realtime {
        RealtimePolicy::BestEffort
    } else {
        RealtimePolicy::Disabled
    };
    let outcome = std::thread::spawn(move || {
        // The application thread: below the reader, on the reader's CPU.
        let app = RealtimeConfig::default()
            .with_priority(70)
            .with_pinning(Pinning::LastCpu)
            .with_lock_memory(false)
            .with_policy(policy);
        ftdi_rt::make_current_thread_realtime(&app).expect("best effort never fails");
        let chip = SimChip::new(answer, SimConfig::default()).expect("sim chip");
        let config = PortConfig::default()
            .with_baud(3_000_000)
            .with_latency_timer_ms(16)
            .with_event_char(Some(b'\n'))
            .with_reader_realtime(
                RealtimeConfig::default()
                    .with_policy(policy)
                    .with_memory_locking(locking),
            );
        let mut port = Port::open_sim(chip, &config).expect("open");
        // Warm up (page faults, caches), then measure on a fresh port so the
        // histograms hold only the measured samples.
        for _ in 0..1000 {
            let _ = port.transact(b"!", ReplyEnd::Terminator(b'\n'), Duration::from_secs(1));
        }
        drop(port);
        let chip = SimChip::new(answer, SimConfig::default()).expect("sim chip");
        let mut port = Port::open_sim(chip, &config).expect("open");
        let mut failed = 0;
        for _ in 0..iterations {
            if let Err(e) = port.transact(b"!", ReplyEnd::Terminator(b'\n'), Duration::from_secs(1))
            {
                eprintln!("transaction failed: {e}");
                failed += 1;
            }
        }
        let s = port.stats();
        let over = s
            .delivery_latencies()
            .filter(|&(latency, _)| latency > Duration::from_micros(100))
            .map(|(_, n)| n)
            .sum();
        Outcome {
            delivery: s.delivery_latency,
            over_100us: over,
            failed,
            mode: s.realtime.to_string(),
        }
    })
    .join()
    .expect("scenario thread");
    drop(hogs);
    outcome
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let iterations = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000usize);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("wakeup path (reader push -> eventfd -> application returns from poll), µs");
    println!("machine: {}", machine());
    println!("{iterations} samples per scenario; hogs = one busy SCHED_OTHER thread per CPU\n");
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6}  reader",
        "scenario", "p50", "p99", "p99.9", "max", ">100µs", "failed"
    );
    let mut rows = Vec::new();
    let hot = MemoryLocking::HotPath;
    let whole = MemoryLocking::WholeProcess;
    for (label, rt, hogs, locking) in [
        ("SCHED_FIFO, idle", true, 0, hot),
        ("SCHED_FIFO, hogs", true, cpus, hot),
        ("SCHED_OTHER, idle", false, 0, hot),
        ("SCHED_OTHER, hogs", false, cpus, hot),
        // mlockall outlives the port: these two must come last.
        ("FIFO, idle, mlockall", true, 0, whole),
        ("FIFO, hogs, mlockall", true, cpus, whole),
    ] {
        let o = run(rt, hogs, iterations, locking);
        let d = o.delivery;
        println!(
            "{label:<20} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6}  {}",
            us(d.p50),
            us(d.p99),
            us(d.p999),
            us(d.max),
            o.over_100us,
            o.failed,
            o.mode
        );
        rows.push(d);
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let (fifo, other) = (rows[1], rows[3]);
    println!(
        "\nwith hogs, SCHED_OTHER / SCHED_FIFO: p50 {:.1}x  p99 {:.1}x  p99.9 {:.1}x  max {:.1}x",
        ratio(other.p50, fifo.p50),
        ratio(other.p99, fifo.p99),
        ratio(other.p999, fifo.p999),
        ratio(other.max, fifo.max)
    );
    for (what, hot, whole) in [("idle", rows[0], rows[4]), ("hogs", rows[1], rows[5])] {
        println!(
            "{what}, hot-path mlock vs mlockall (µs): p50 {} / {}  p99 {} / {}  p99.9 {} / {}  max {} / {}",
            us(hot.p50),
            us(whole.p50),
            us(hot.p99),
            us(whole.p99),
            us(hot.p999),
            us(whole.p999),
            us(hot.max),
            us(whole.max)
        );
    }
}
