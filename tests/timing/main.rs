//! The timing features (`ftdi_rt::timing`) against the simulated chip in
//! virtual time: the chip's own record of when each bit crossed the wire is
//! the truth every estimate is checked against. No sleeps, no wall clock.
//!
//! The measured resolutions the README quotes are printed by
//! `cargo test --release --test timing -- --nocapture`.

mod breakdown;
mod drained;
mod rig;
mod silence;
mod wire_window;
