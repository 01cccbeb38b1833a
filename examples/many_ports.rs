//! The request/reply loop on N simulated ports at once, on one shared
//! reader and then with a reader per port, under the same CPU load; ends
//! with one `many_ports ports=... readers=...` line per configuration.
//!
//! ```text
//! cargo run --release --example many_ports -- --sim --ports 16
//! cargo run --release --example many_ports -- --sim --ports 1,4,16,64 --stress 2
//! ```
//! The tool is `ftdi_rt_lab::many_ports`, in the workspace's `lab/` crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::init();
    ftdi_rt_lab::many_ports::main()
}
