//! The simulated chip's model (`sim::ChannelEngine`) on a virtual clock:
//! packet timing and contents, the UART's pacing and flow control, faults.
//! No sleeps and no wall clock: every instant is computed, so every
//! assertion on time is exact.

mod drive;
mod faults;
mod packets;
mod wire;
