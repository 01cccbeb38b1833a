//! `ftdi-rt`: list FTDI adapters, show one, check that this machine is
//! ready for the userspace driver (`doctor`), and measure the request/reply
//! path (`bench`). Every subcommand takes `--json` for scripts.
//!
//! ```text
//! cargo install --path cli
//! ftdi-rt doctor
//! ftdi-rt list
//! ftdi-rt info FT1ABCDE        # or: ftdi-rt info --sim
//! ftdi-rt bench --sim --iterations 2000 --svg latency.svg
//! ```

mod bench;
mod doctor;
mod info;
mod list;
mod sysfs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// FTDI adapters through ftdi-rt's userspace driver: list them, show one,
/// check the machine, measure.
#[derive(Parser, Debug)]
#[command(name = "ftdi-rt", version, about)]
struct Cli {
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// FTDI adapters: chip, serial, USB path, channels, and the driver
    /// holding each interface; warns about adapters that share an identity.
    List,
    /// One adapter: descriptors, EEPROM (read only, decoded), latency
    /// timer, modem and line status. Opens the adapter (ftdi_sio is
    /// detached from the interface meanwhile and re-attached after).
    Info(info::Args),
    /// Checks whether this machine is ready for the realtime driver, one
    /// line per check, with the command that fixes each failure. Exit
    /// status 0: ready; 1: a check failed.
    Doctor(doctor::Args),
    /// The request/reply loop with its latency histogram (and SVG with
    /// --svg): the tool behind `examples/request_reply`.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => list::run(cli.json),
        Command::Info(args) => info::run(&args, cli.json),
        Command::Doctor(args) => doctor::run(&args, cli.json),
        Command::Bench(args) => bench::run(args, cli.json),
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode the output as JSON: {e}"),
    }
}
