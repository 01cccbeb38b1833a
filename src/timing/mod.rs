//! Timing no serial library gives: when the transmitter drained, when
//! received bytes crossed the wire, when a silence-framed reply ended, and
//! the recent packet history around a missed deadline.
//!
//! Everything here is sans-IO: plain types fed with timestamps and status
//! bytes, that never read a clock and never block, so they are tested in
//! virtual time against the simulated chip's record of when bits crossed
//! the wire ([`sim::WireLog`](crate::sim::WireLog)), and the transaction
//! engine and the [`Port`](crate::Port) drive them with packet arrivals.
//!
//! | piece | what it decides | resolution |
//! |---|---|---|
//! | [`DrainWatch`] | the status report proving a write left the wire ([`Port::write_drained`](crate::Port::write_drained)) | one latency period + transport delay |
//! | [`WireClock::window`] | the interval a chunk's bytes crossed the wire ([`Chunk::wire_window`](crate::Chunk::wire_window)) | latency period + one character + transport slack |
//! | [`SilenceFramer`] | the end of a reply after a quiet time | two latency periods (+ twice the arrival jitter) |
//! | [`plan_latency`] | latency timer, event character, transfers for a budget ([`PortConfig::with_latency_budget`](crate::PortConfig::with_latency_budget)) | refuses below the floor |
//! | [`miss_breakdown`] | where a late reply's time went (wire, chip wait, USB to reader, reader to application) | bounds, from the flight record |
//! | [`MissReport`] | the last miss of [`Port::transact`](crate::Port::transact), breakdown and flight record ([`Port::last_miss`](crate::Port::last_miss)) | as above |
//! | [`PacketRecord`] | the flight recorder's entries ([`Port::flight_record`](crate::Port::flight_record)) | the reader's timestamps |

mod breakdown;
mod budget;
mod drain;
mod miss_report;
mod recorder;
mod silence;
mod wire_window;

pub use breakdown::{ExchangeTimes, MissBreakdown, miss_breakdown};
pub use budget::{BudgetBelowFloor, LatencyPlan, ReplyShape, plan_latency};
pub use drain::DrainWatch;
pub use miss_report::MissReport;
pub(crate) use recorder::FlightRecorder;
pub use recorder::{DEFAULT_FLIGHT_RECORDS, PacketRecord};
pub use silence::{SilenceEnd, SilenceFramer, SilenceInfeasible, gap_threshold, modbus_rtu_gaps};
pub use wire_window::{DEFAULT_TRANSPORT_SLACK, WireClock, WireWindow, character_time};
