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
//!
//! The timing tier (`hil-tests/vtime/`) boots a guest with a deterministic
//! clock and attaches ftdi-rt's simulated chip to the guest's kernel through
//! USB/IP ([`vdev`], [`virtual_ftdi`]): `vtime-guest` runs the comparison
//! of the three contenders under load ([`timing`]) and the faithful-device
//! cases ([`faithful`]); the host binary `vtime-report` judges the rows.

pub mod checks;
pub mod compare_table;
pub mod faithful;
pub mod firmware;
pub mod guest;
pub mod host;
pub mod proto;
pub mod timing;
pub mod trace;
pub mod vdev;
pub mod virtual_ftdi;
