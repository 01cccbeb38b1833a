//! Command-line options of the many-ports tool.

use std::time::Duration;

use clap::Parser;

use crate::request_reply::cli::parse_duration;

/// The request/reply loop on N simulated ports at once, first on one shared
/// reader, then with a reader per port, under the same CPU load; ends with
/// one `many_ports ...` line per configuration.
#[derive(Parser, Debug, Clone)]
#[command(version, about, after_help = AFTER_HELP)]
pub struct Options {
    /// Simulated FT232Rs with the frobnicator responder (the only transport
    /// the tool runs on; accepted for symmetry with request_reply).
    #[arg(long, default_value_t = true)]
    pub sim: bool,
    /// Port counts to measure, comma-separated (e.g. 1,4,16,64).
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub ports: Vec<usize>,
    /// Which reader configurations to run for each port count.
    #[arg(long, value_enum, default_value_t = Readers::Both)]
    pub readers: Readers,
    /// Seconds of request/reply load per configuration.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds the ports stay open and silent (latency timer 1 ms) while
    /// the readers' idle cost is measured.
    #[arg(long, default_value_t = 2.0)]
    pub idle: f64,
    /// Deadline per transaction (e.g. 3.5ms, 800us).
    #[arg(long, default_value = "3.5ms", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Processing delay of the simulated responder.
    #[arg(long, default_value = "200us", value_parser = parse_duration)]
    pub device_delay: Duration,
    /// N CPU-hog threads at normal priority for the whole run (the same
    /// load for every configuration).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub stress: usize,
    /// SCHED_FIFO priority of the reader(s); the request/reply threads run 10 below.
    #[arg(long, default_value_t = 80)]
    pub reader_priority: u8,
    /// CPU every reader is pinned to; default: the last CPU.
    #[arg(long)]
    pub reader_cpu: Option<usize>,
    /// Run without the realtime guarantee where it is not granted.
    #[arg(long)]
    pub best_effort: bool,
    /// Do not run the noise probe (misses machine stalls explain are then
    /// counted as the host path's).
    #[arg(long)]
    pub no_noise_probe: bool,
}

/// Reader configurations.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readers {
    /// One shared reader for all ports.
    Shared,
    /// A reader per port.
    PerPort,
    /// Both, shared first.
    Both,
}

const AFTER_HELP: &str = "\
Each configuration: open N simulated chips (each its own thread, as a
device would be) and N ports, on one shared reader or each with its own;
leave them open and silent for --idle seconds (the chips send a status
packet every 1 ms latency period, so this is the cost of an idle port);
then run the request/reply loop on every port at once, one application
thread per port, for --duration seconds. Reader CPU comes from the reader
threads' own counters (/proc/self/task/<tid>/schedstat): reader_cpu_pct is
the readers' CPU time over the load phase's wall time (summed over readers),
idle_cpu_pct_per_port the same over the idle phase, divided by N.";
