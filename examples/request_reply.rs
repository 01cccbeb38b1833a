//! The request/reply loop of the incident, on any transport: 7-byte
//! request, 1-byte reply, 3.5 ms deadline, 115200 Bd, 10 000 times, on the
//! first adapter found or the simulated chip. `--help` lists the options.
//!
//! ```text
//! cargo run --release --example request_reply                 # adapter, or the simulated chip
//! cargo run --release --example request_reply -- --sim --stress 2 --iterations 20000
//! cargo run --release --example request_reply -- --compare sim pty --stress 2
//! ```
//! The tool itself (options, loop, report, plots) is
//! `ftdi_rt_lab::request_reply`, in the workspace's `lab/` crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::init();
    ftdi_rt_lab::request_reply::main()
}
