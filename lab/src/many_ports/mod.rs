//! The request/reply loop on many simulated ports at once: the tool behind
//! `cargo run --release --example many_ports`.
//!
//! ```text
//! cargo run --release --example many_ports -- --sim --ports 16
//! cargo run --release --example many_ports -- --sim --ports 1,4,16,64 --stress 2
//! ```
//! For each port count it runs two configurations under the same CPU load:
//! every port on one shared [`Reader`], then every port with a reader of its
//! own. Each ends with one line,
//! `many_ports ports=N readers=1|N transactions= host_misses= p99_us= p999_us= reader_cpu_pct= idle_cpu_pct_per_port=`,
//! printed together at the end. The request/reply exchange and the
//! responder are the request_reply tool's ([`crate::request_reply`]).

pub mod cli;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ftdi_rt::sim::{Frobnicator, SimChip, SimConfig};
use ftdi_rt::{
    Error, Pinning, Port, PortConfig, Reader, RealtimeConfig, RealtimePolicy, ReplyEnd,
    make_current_thread_realtime,
};
use hdrhistogram::Histogram;

use self::cli::{Options, Readers};
use crate::request_reply::request;
use crate::{CpuHogs, NoiseProbe};

/// What one configuration measured.
#[derive(Debug)]
struct Figures {
    ports: usize,
    readers: usize,
    transactions: u64,
    host_misses: u64,
    wrong_replies: u64,
    p99: Duration,
    p999: Duration,
    reader_cpu_pct: f64,
    idle_cpu_pct_per_port: f64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "many_ports ports={} readers={} transactions={} host_misses={} p99_us={} \
             p999_us={} reader_cpu_pct={:.1} idle_cpu_pct_per_port={:.3}",
            self.ports,
            self.readers,
            self.transactions,
            self.host_misses,
            self.p99.as_micros(),
            self.p999.as_micros(),
            self.reader_cpu_pct,
            self.idle_cpu_pct_per_port
        )
    }
}

/// Runs the tool with the process's command line: 0 when every
/// configuration ran (misses are reported, not failures), 2 on an error.
pub fn main() -> ExitCode {
    let opts = Options::parse();
    // Duration::from_secs_f64 panics on a negative or infinite value.
    let times_valid = opts.duration.is_finite()
        && opts.duration > 0.0
        && opts.idle.is_finite()
        && opts.idle > 0.0;
    if !opts.sim || opts.ports.contains(&0) || !times_valid {
        eprintln!(
            "many_ports runs on simulated ports (--sim), at least one each, \
             for a positive --duration and --idle (seconds)"
        );
        return ExitCode::from(2);
    }
    let _hogs = match CpuHogs::start(opts.stress) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot start {} CPU hogs: {e}", opts.stress);
            return ExitCode::from(2);
        }
    };
    let probe = (!opts.no_noise_probe)
        .then(NoiseProbe::start)
        .and_then(|p| p.map_err(|e| eprintln!("note: no noise probe ({e})")).ok())
        .map(Arc::new);
    let mut lines = Vec::new();
    for &n in &opts.ports {
        let shared = [true, false]
            .into_iter()
            .filter(|&shared| match opts.readers {
                Readers::Shared => shared,
                Readers::PerPort => !shared,
                Readers::Both => true,
            });
        for shared in shared {
            match measure(n, shared, &opts, probe.as_ref()) {
                Ok(figures) => {
                    eprintln!("{figures}");
                    if figures.wrong_replies > 0 {
                        // A reply later than the next request is taken as
                        // that request's: the frobnicator's replies carry
                        // no sequence number.
                        eprintln!(
                            "wrong replies    {} (after misses, a late reply can pass for the next one)",
                            figures.wrong_replies
                        );
                    }
                    lines.push(figures);
                }
                Err(e) => {
                    eprintln!(
                        "error: {n} ports, {}: {e}",
                        if shared {
                            "shared reader"
                        } else {
                            "a reader per port"
                        }
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }
    let load = match opts.stress {
        0 => "idle machine".to_string(),
        n => format!("{n} CPU hogs"),
    };
    eprintln!(
        "\n{load}; deadline {:?}; {} s of load, {} s idle per configuration",
        opts.deadline, opts.duration, opts.idle
    );
    for figures in &lines {
        println!("{figures}");
    }
    if lines.iter().any(|f| f.wrong_replies > 0) {
        eprintln!("error: some replies were not the answer to their request");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

fn reader_realtime(opts: &Options) -> RealtimeConfig {
    RealtimeConfig::default()
        .with_priority(opts.reader_priority)
        .with_pinning(opts.reader_cpu.map_or(Pinning::LastCpu, Pinning::Cpu))
        .with_policy(if opts.best_effort {
            RealtimePolicy::BestEffort
        } else {
            RealtimePolicy::Required
        })
}

/// One configuration: `n` ports on one shared reader or on `n` readers.
fn measure(
    n: usize,
    shared: bool,
    opts: &Options,
    probe: Option<&Arc<NoiseProbe>>,
) -> Result<Figures, Error> {
    let realtime = reader_realtime(opts);
    let reader = shared.then(|| Reader::new(&realtime)).transpose()?;
    let mut config = PortConfig::default().with_reader_realtime(realtime);
    if let Some(reader) = &reader {
        config = config.with_reader(reader);
    }
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let device = Frobnicator::with_sizes(7, 1, opts.device_delay);
        let mut port = Port::open_sim(SimChip::new(device, SimConfig::default())?, &config)?;
        if let Some(probe) = probe {
            port.discount_stalls(probe.clone());
        }
        ports.push(port);
    }
    let cpu = |ports: &[Port]| -> Option<Duration> {
        match &reader {
            Some(reader) => reader.cpu_time(),
            None => ports.iter().map(Port::reader_cpu_time).sum(),
        }
    };
    let pct = |cpu: Duration, wall: Duration| 100.0 * cpu.as_secs_f64() / wall.as_secs_f64();
    let no_counter = || {
        Error::Io(std::io::Error::other(
            "the reader's CPU counter cannot be read (/proc/self/task/<tid>/schedstat)",
        ))
    };

    // Idle: open and silent; the chips send a status packet every 1 ms.
    std::thread::sleep(Duration::from_millis(100));
    let (cpu0, wall0) = (cpu(&ports).ok_or_else(no_counter)?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(opts.idle));
    let idle = pct(cpu(&ports).ok_or_else(no_counter)? - cpu0, wall0.elapsed()) / n as f64;

    // Load: every port's request/reply loop at once, a thread each.
    for port in &mut ports {
        port.receiver().discard_pending();
    }
    let until = Instant::now() + Duration::from_secs_f64(opts.duration);
    let app = realtime
        .with_priority(opts.reader_priority.saturating_sub(10).max(1))
        .with_pinning(Pinning::Unpinned)
        .with_lock_memory(false);
    let (cpu0, wall0) = (cpu(&ports).ok_or_else(no_counter)?, Instant::now());
    let process0 = process_cpu();
    let results: Vec<Result<u64, Error>> = std::thread::scope(|s| {
        let threads: Vec<_> = ports
            .iter_mut()
            .map(|port| s.spawn(|| exchange(port, until, opts.deadline, &app)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or(Ok(0)))
            .collect()
    });
    let busy = pct(cpu(&ports).ok_or_else(no_counter)? - cpu0, wall0.elapsed());
    let process = process0
        .zip(process_cpu())
        .map(|(a, b)| pct(b.saturating_sub(a), wall0.elapsed()));

    let mut wrong_replies = 0;
    for r in results {
        wrong_replies += r?;
    }
    let mut all =
        Histogram::<u64>::new(3).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let (mut transactions, mut host_misses) = (0, 0);
    for port in &ports {
        let stats = port.stats();
        transactions += stats.transactions;
        host_misses += stats.host_misses();
        for (latency, count) in stats.transaction_latencies() {
            let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
            let _ = all.record_n(ns, count);
        }
    }
    if let Some(port) = ports.first() {
        eprintln!("reader           {}", port.realtime());
    }
    if let Some(process) = process {
        // Chips, application threads, readers, probe: whether the machine
        // itself was the limit.
        eprintln!("process CPU      {process:.0} % of one CPU during the load (all threads)");
    }
    Ok(Figures {
        ports: n,
        readers: if shared { 1 } else { n },
        transactions,
        host_misses,
        wrong_replies,
        p99: Duration::from_nanos(all.value_at_quantile(0.99)),
        p999: Duration::from_nanos(all.value_at_quantile(0.999)),
        reader_cpu_pct: busy,
        idle_cpu_pct_per_port: idle,
    })
}

/// CPU time of the whole process so far (all threads; utime + stime from
/// `/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': state(3) ... utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// One port's request/reply loop until `until`; returns the wrong replies.
fn exchange(
    port: &mut Port,
    until: Instant,
    deadline: Duration,
    app: &RealtimeConfig,
) -> Result<u64, Error> {
    make_current_thread_realtime(app)?;
    let (mut i, mut wrong) = (0u64, 0u64);
    while Instant::now() < until {
        // The request_reply tool's requests (7 bytes, one per index).
        let req = request(i, 7);
        match port.transact(&req, ReplyEnd::Length(1), deadline) {
            Ok(t) => wrong += u64::from(t.bytes() != [Frobnicator::reply_for(&req)]),
            Err(Error::DeadlineMissed { .. }) => {}
            Err(e) => return Err(e),
        }
        i += 1;
    }
    Ok(wrong)
}
