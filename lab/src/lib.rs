//! # ftdi-rt-lab: measuring ftdi-rt
//!
//! The tools the project measures the driver with, kept out of the
//! driver's own API:
//!
//! - [`NoiseProbe`]: a SCHED_FIFO 99 thread per CPU that logs when the
//!   machine itself could not run it (vCPU preemption, non-preemptible
//!   kernel sections). It is a [`StallSource`](ftdi_rt::StallSource):
//!   give it to [`Port::discount_stalls`](ftdi_rt::Port::discount_stalls)
//!   and misses it explains are counted apart from the host path's.
//! - [`CpuHogs`]: busy normal-priority threads, the incident's CPU load.
//! - [`PtyDevice`]: a device model (the simulated chip's [`Device`](ftdi_rt::sim::Device)s)
//!   answering on the master side of a pty, so the kernel tty path runs
//!   without hardware.
//! - `request_reply` (feature `request-reply`, on by default): the
//!   request/reply loop with its report, plots and options, behind
//!   `cargo run --release --example request_reply`.
//! - `many_ports` (same feature): that loop on N simulated ports at once,
//!   one shared reader against a reader per port, behind
//!   `cargo run --release --example many_ports`.
//!
//! Every thread here starts through [`ftdi_rt::realtime::spawn`], like the
//! driver's own.

mod hogs;
#[cfg(feature = "request-reply")]
pub mod many_ports;
mod noise;
mod pty;
#[cfg(feature = "request-reply")]
pub mod request_reply;

pub use hogs::CpuHogs;
pub use noise::{NoiseProbe, NoiseSummary};
pub use pty::PtyDevice;
