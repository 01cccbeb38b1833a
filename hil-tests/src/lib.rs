//! Hardware-in-the-loop tests for ftdi-rt.
//!
//! The virtual rig ("vhil", see `hil-tests/README.md`) boots a Linux guest
//! under QEMU with QEMU's emulated FT232BM attached; two programs take part:
//! * `hil-guest` runs inside the guest: a registry of test [`guest::Case`]s
//!   that exercise the device and print `RESULT`/`METRIC` lines;
//! * `vhil` runs on the host: it starts QEMU, plays the device's far end
//!   ([`firmware`]), answers the guest's control channel ([`proto::Command`]),
//!   checks QEMU's trace log ([`trace`]) and judges the run.
//!
//! [`proto`] holds the text formats both sides share.

pub mod checks;
pub mod compare_table;
pub mod firmware;
pub mod guest;
pub mod host;
pub mod proto;
pub mod timing;
pub mod trace;
pub mod vdev;
