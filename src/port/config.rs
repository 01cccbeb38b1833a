//! How a port is opened: line settings, reader thread, buffers, timeouts.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::proto::{FlowControl, Interface, LineProperties};
use crate::reader::Reader;
use crate::realtime::{RealtimeConfig, RealtimePolicy};
use crate::timing::ReplyShape;
use crate::transaction::engine::MAX_REPLY_CAPACITY;
use crate::transport::OpenOptions;
use crate::transport::usb::UsbId;

/// Settings for opening a [`Port`](crate::Port). Every field has a default
/// suited to the request/reply use case; change what you need with the
/// `with_*` methods.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct PortConfig {
    /// Baud rate (default 115200). The actual rate is reported in the statistics.
    pub baud: u32,
    /// Data bits, parity, stop bits (default 8N1).
    pub line: LineProperties,
    /// Flow control (default none).
    pub flow: FlowControl,
    /// DTR asserted after opening (default true, as a tty open does).
    pub dtr: bool,
    /// RTS asserted after opening (default true).
    pub rts: bool,
    /// FTDI latency timer in ms, 1..=255 (default 1: a short reply is sent
    /// within 1 ms instead of the chip's 16 ms default).
    pub latency_timer_ms: u8,
    /// Event character: the chip sends a packet as soon as it receives it
    /// (default off).
    pub event_char: Option<u8>,
    /// Error character (default off).
    pub error_char: Option<u8>,
    /// Interface (channel) of a multi-channel chip (default A).
    pub interface: Interface,
    /// Bulk-IN transfers kept in flight, each one max packet (default 4).
    pub transfers_in_flight: usize,
    /// Chunks the channel holds before the reader drops data (default 1024,
    /// about one second of packets at a 1 ms latency timer; 2..=65536).
    pub channel_capacity: usize,
    /// Largest reply a transaction collects (default 4096 bytes; 1 byte to 16 MiB).
    pub reply_capacity: usize,
    /// How the port's own reader thread runs (default SCHED_FIFO 80 on the
    /// last CPU, its hot path's memory locked, required).
    pub reader_realtime: RealtimeConfig,
    /// Timeout of a write (default 1 s; more than zero, `Duration::MAX`
    /// for none).
    pub write_timeout: Duration,
    /// Timeout of a control request (default 1 s; the kernel uses 1–5 s;
    /// more than zero, `Duration::MAX` for none).
    pub control_timeout: Duration,
    /// USB vendor/product IDs to accept besides FTDI's 0x0403 (adapters
    /// with a custom ID in their EEPROM). Empty by default.
    pub usb_ids: Vec<UsbId>,
    /// The shared reader that serves the port (default none: the port
    /// starts a reader of its own, configured by [`reader_realtime`](Self::reader_realtime)).
    pub reader: Option<Reader>,
    /// Whether the port survives an unplug (default off): see
    /// [`with_resume`](Self::with_resume).
    pub resume: bool,
    /// The time a request/reply may take; when set, the port chooses the
    /// latency timer, event character and transfers in flight for it (see
    /// [`latency_plan`](PortConfig::latency_plan)). Default none.
    pub latency_budget: Option<Duration>,
    /// What an exchange looks like, for the latency budget.
    pub reply_shape: ReplyShape,
    /// How much the delay from the chip to the reader's timestamp may vary
    /// between two packets, for silence-framed replies
    /// ([`ReplyEnd::Silence`](crate::ReplyEnd::Silence)). Default 0: the
    /// stated resolution (see [`with_arrival_jitter`](PortConfig::with_arrival_jitter)).
    pub arrival_jitter: Duration,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            baud: 115_200,
            line: LineProperties::EIGHT_N_ONE,
            flow: FlowControl::None,
            dtr: true,
            rts: true,
            latency_timer_ms: 1,
            event_char: None,
            error_char: None,
            interface: Interface::A,
            transfers_in_flight: 4,
            channel_capacity: 1024,
            reply_capacity: 4096,
            reader_realtime: RealtimeConfig::default(),
            write_timeout: Duration::from_secs(1),
            control_timeout: Duration::from_secs(1),
            usb_ids: Vec::new(),
            reader: None,
            resume: false,
            latency_budget: None,
            reply_shape: ReplyShape::default(),
            arrival_jitter: Duration::ZERO,
        }
    }
}

impl PortConfig {
    /// Sets the baud rate.
    pub fn with_baud(mut self, baud: u32) -> Self {
        self.baud = baud;
        self
    }
    /// Sets data bits, parity and stop bits.
    pub fn with_line(mut self, line: LineProperties) -> Self {
        self.line = line;
        self
    }
    /// Sets flow control.
    pub fn with_flow(mut self, flow: FlowControl) -> Self {
        self.flow = flow;
        self
    }
    /// Sets DTR and RTS after opening.
    pub fn with_modem_lines(mut self, dtr: bool, rts: bool) -> Self {
        self.dtr = dtr;
        self.rts = rts;
        self
    }
    /// Sets the latency timer (1..=255 ms).
    pub fn with_latency_timer_ms(mut self, ms: u8) -> Self {
        self.latency_timer_ms = ms;
        self
    }
    /// Sets the event character.
    pub fn with_event_char(mut self, ch: Option<u8>) -> Self {
        self.event_char = ch;
        self
    }
    /// Sets the error character.
    pub fn with_error_char(mut self, ch: Option<u8>) -> Self {
        self.error_char = ch;
        self
    }
    /// Sets the interface of a multi-channel chip.
    pub fn with_interface(mut self, interface: Interface) -> Self {
        self.interface = interface;
        self
    }
    /// Sets the number of bulk-IN transfers in flight (1..=32).
    pub fn with_transfers_in_flight(mut self, n: usize) -> Self {
        self.transfers_in_flight = n;
        self
    }
    /// Sets the channel capacity in chunks (2..=65536).
    pub fn with_channel_capacity(mut self, chunks: usize) -> Self {
        self.channel_capacity = chunks;
        self
    }
    /// Sets the transaction reply buffer size (1 byte to 16 MiB).
    pub fn with_reply_capacity(mut self, bytes: usize) -> Self {
        self.reply_capacity = bytes;
        self
    }
    /// Sets how the port's own reader thread runs.
    pub fn with_reader_realtime(mut self, realtime: RealtimeConfig) -> Self {
        self.reader_realtime = realtime;
        self
    }
    /// Makes the port survive an unplug (default off). With it on, an
    /// unplug is reported once in the stream as
    /// [`Error::Disconnected`](crate::Error::Disconnected) and the stream
    /// goes on; while the device is gone, writes and settings fail at once
    /// with `Disconnected`, and a transaction in flight fails with it. A
    /// watcher thread of the port (normal priority) looks for the same
    /// device every 100 ms: on USB, the same [`Identity`](crate::Identity)
    /// (serial number and channel, else port path and channel); on the
    /// simulated chip, one plugged back with
    /// [`SimHandle::replug`](crate::sim::SimHandle::replug). When it is
    /// back the port reopens it, re-applies every setting it had (baud,
    /// line properties, flow control, DTR/RTS, latency timer, event and
    /// error characters: what was last applied), serves it from the same
    /// reader (its own, or the same shared one), and the stream carries
    /// [`Error::Resumed`](crate::Error::Resumed) with the gap's length;
    /// [`Statistics::resumes`](crate::Statistics::resumes) and
    /// [`Statistics::resume_gap`](crate::Statistics::resume_gap) count them.
    /// Bytes in flight during the unplug are lost; a break is not
    /// re-applied. Dropping the port stops the watcher at once.
    ///
    /// Without it, an unplug ends the stream for good, as before. Kernel
    /// ttys cannot resume (their node may come back under another name):
    /// opening one with it fails with [`Error::Unsupported`](crate::Error::Unsupported).
    pub fn with_resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }
    /// Serves the port from the shared `reader` instead of a reader thread
    /// of its own (whose [`reader_realtime`](Self::reader_realtime) then does
    /// not apply: the shared reader runs as it was created).
    pub fn with_reader(mut self, reader: &Reader) -> Self {
        self.reader = Some(reader.clone());
        self
    }
    /// Runs the reader without the realtime guarantee where it is refused
    /// (recorded in the statistics).
    pub fn best_effort(mut self) -> Self {
        self.reader_realtime.policy = RealtimePolicy::BestEffort;
        self
    }
    /// Sets the write timeout.
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }
    /// Sets the control-request timeout.
    pub fn with_control_timeout(mut self, timeout: Duration) -> Self {
        self.control_timeout = timeout;
        self
    }

    /// Lets the port choose latency timer, event character and transfers in
    /// flight so that an exchange (see [`with_reply_shape`](PortConfig::with_reply_shape))
    /// fits `budget`; opening refuses a budget below the physical floor
    /// ([`Error::LatencyBudget`](crate::Error::LatencyBudget), with the floor).
    pub fn with_latency_budget(mut self, budget: Duration) -> Self {
        self.latency_budget = Some(budget);
        self
    }
    /// Describes the exchange the latency budget is for (default: one byte
    /// back, no terminator).
    pub fn with_reply_shape(mut self, shape: ReplyShape) -> Self {
        self.reply_shape = shape;
        self
    }

    /// Makes silence framing ([`ReplyEnd::Silence`](crate::ReplyEnd::Silence))
    /// robust to packets that reach the reader up to `jitter` later than
    /// others: a status-only packet proves silence only `jitter` after it
    /// would otherwise, so one stamped late (a reader woken late, a loaded
    /// host) cannot end a reply inside a short gap of it.
    ///
    /// The price, stated: a reply ends up to twice `jitter` later, and the
    /// shortest quiet time the port accepts rises from two latency periods
    /// to `2 × (latency timer + jitter)`. On a 1 ms timer, Modbus RTU's t3.5
    /// at 19200 Bd (2.005 ms) is then refused; a request/reply master can
    /// ask for a longer quiet time instead (nothing else is on the line
    /// until its next request), paying that much latency. Set it to the
    /// reader's measured wakeup jitter (the spread of `ftdi-rt bench`'s
    /// reader wakeups, e.g. its p99.9 minus p50) when framing must hold
    /// under load; 0 to 100 ms.
    pub fn with_arrival_jitter(mut self, jitter: Duration) -> Self {
        self.arrival_jitter = jitter;
        self
    }

    /// Also accepts devices with this vendor/product ID.
    pub fn with_usb_id(mut self, vendor: u16, product: u16) -> Self {
        self.usb_ids.push(UsbId { vendor, product });
        self
    }

    /// What the transport needs of this configuration.
    pub(crate) fn open_options(&self) -> OpenOptions {
        OpenOptions {
            baud: self.baud,
            interface: self.interface,
            transfers_in_flight: self.transfers_in_flight,
            control_timeout: self.control_timeout,
            usb_ids: self.usb_ids.clone(),
        }
    }

    /// Checks the values that have no natural type-level bound, before
    /// anything is allocated: each error names the allowed range.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        if self.latency_timer_ms == 0 {
            return bad("latency timer must be 1..=255 ms, got 0".into());
        }
        if !TRANSFERS_IN_FLIGHT.contains(&self.transfers_in_flight) {
            return bad(format!(
                "transfers in flight must be {}..={}, got {}",
                TRANSFERS_IN_FLIGHT.start(),
                TRANSFERS_IN_FLIGHT.end(),
                self.transfers_in_flight
            ));
        }
        if !CHANNEL_CAPACITY.contains(&self.channel_capacity) {
            return bad(format!(
                "channel capacity must be {}..={} chunks, got {}",
                CHANNEL_CAPACITY.start(),
                CHANNEL_CAPACITY.end(),
                self.channel_capacity
            ));
        }
        if !(1..=MAX_REPLY_CAPACITY).contains(&self.reply_capacity) {
            return bad(format!(
                "reply capacity must be 1..={MAX_REPLY_CAPACITY} bytes, got {}",
                self.reply_capacity
            ));
        }
        if self.write_timeout.is_zero() || self.control_timeout.is_zero() {
            return bad("timeouts must be longer than zero (Duration::MAX for none)".into());
        }
        if self.arrival_jitter > MAX_ARRIVAL_JITTER {
            return bad(format!(
                "arrival jitter must be 0..={MAX_ARRIVAL_JITTER:?}, got {:?}",
                self.arrival_jitter
            ));
        }
        Ok(())
    }
}

/// The largest arrival jitter silence framing is told to allow for: a
/// reader late by more than this is stalled, not jittering.
const MAX_ARRIVAL_JITTER: Duration = Duration::from_millis(100);

/// Bulk-IN transfers a port may keep in flight.
const TRANSFERS_IN_FLIGHT: RangeInclusive<usize> = 1..=32;

/// Chunks a channel may hold: at least two (one being read, one being
/// filled), at most 65536 (about 35 MiB of ring, a minute of packets at a
/// 1 ms latency timer; the reader locks the ring's pages).
const CHANNEL_CAPACITY: RangeInclusive<usize> = 2..=65_536;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_suit_request_reply() {
        let c = PortConfig::default();
        assert_eq!(
            (c.baud, c.latency_timer_ms, c.transfers_in_flight),
            (115_200, 1, 4)
        );
        assert_eq!(c.reader_realtime.priority, 80);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_values_are_named() {
        let e = PortConfig::default()
            .with_latency_timer_ms(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("latency timer"), "{e}");
        let e = PortConfig::default()
            .with_transfers_in_flight(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("transfers in flight"), "{e}");
        let e = PortConfig::default()
            .with_arrival_jitter(Duration::from_secs(1))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("arrival jitter"), "{e}");
    }
}
