//! What happens to every completed inbound transfer, whatever the transport:
//! deframing, status tracking, heartbeats, stalls, and the push to the channel.
//!
//! Runs on the realtime reader thread: no allocation, no lock, no logging.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::channel::{CHUNK_CAPACITY, Sender};
use crate::proto::{self, Packet};
use crate::realtime::memory::HotRegions;
use crate::stats::Counters;
use crate::time::Timestamp;
use crate::transport::{Completion, Framing};

/// How often the reader wakes without traffic on a raw (tty) transport.
const RAW_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Stall threshold, in latency-timer periods, per the design: a chip with an
/// IN transfer pending sends at least a status packet every period.
const STALL_PERIODS: u32 = 3;

/// The per-port state the reader keeps between completions.
#[derive(Debug)]
pub(crate) struct Pipeline {
    sender: Sender,
    counters: Arc<Counters>,
    framing: Framing,
    /// Modem lines (high nibble) of the last packet, to count changes.
    last_lines: Option<u8>,
    /// When the last packet of any kind arrived.
    last_packet: Timestamp,
    /// A status-only packet has been seen: this device sends heartbeats, so
    /// silence means something (QEMU's emulation never sends them).
    heartbeats: bool,
    /// The current silence has already been counted as a stall.
    stalled: bool,
}

impl Pipeline {
    pub(crate) fn new(sender: Sender, counters: Arc<Counters>, framing: Framing) -> Pipeline {
        Pipeline {
            sender,
            counters,
            framing,
            last_lines: None,
            last_packet: Timestamp::now(),
            heartbeats: false,
            stalled: false,
        }
    }

    /// The small state written per packet: counters and the channel's indices.
    pub(crate) fn hot_state(&self, regions: &mut HotRegions) {
        regions.add("counters", &*self.counters);
        let (addr, len) = self.counters.flight.hot_range();
        regions.add_range("flight recorder", addr, len);
        self.sender.hot_state(regions);
    }

    /// The channel ring: prefaulted, then reported (the largest region, so it
    /// comes last and is the first left unlocked under a small RLIMIT_MEMLOCK).
    pub(crate) fn hot_ring(&mut self, regions: &mut HotRegions) {
        self.sender.hot_ring(regions);
    }

    /// How long the reader may sleep without traffic: one latency period for
    /// FTDI transports, so a stall is noticed within a period of crossing the
    /// threshold.
    pub(crate) fn poll_interval(&self) -> Duration {
        match self.framing {
            Framing::Ftdi { .. } => self.latency_period(),
            Framing::Raw => RAW_POLL_INTERVAL,
        }
    }

    fn latency_period(&self) -> Duration {
        let ms = self
            .counters
            .latency_timer_ms
            .load(Ordering::Relaxed)
            .max(1);
        Duration::from_millis(u64::from(ms))
    }

    /// Processes one completed transfer.
    #[inline]
    pub(crate) fn on_completion(&mut self, completion: Completion<'_>) {
        self.last_packet = completion.at;
        self.stalled = false;
        match self.framing {
            Framing::Ftdi { max_packet_size } => {
                for packet in proto::packets(completion.data, max_packet_size) {
                    match packet {
                        Ok(packet) => self.on_packet(packet, completion.at),
                        Err(_) => self.counters.malformed.add(1),
                    }
                }
            }
            Framing::Raw => {
                self.counters.packets.add(1);
                self.counters
                    .payload_bytes
                    .add(completion.data.len() as u64);
                for piece in completion.data.chunks(CHUNK_CAPACITY) {
                    self.sender.push(piece, None, completion.at);
                }
                // After the push: a record the application sees has its
                // payload in the channel already.
                let len = completion.data.len();
                self.counters.flight.record(completion.at, len, None);
            }
        }
        // One wakeup per completed transfer, however many chunks it held.
        self.sender.notify();
    }

    fn on_packet(&mut self, packet: Packet<'_>, at: Timestamp) {
        let c = &*self.counters;
        c.packets.add(1);
        let lines = packet.modem.lines();
        if self.last_lines.is_some_and(|last| last != lines) {
            c.modem_changes.add(1);
        }
        self.last_lines = Some(lines);
        c.modem.store(packet.modem.0, Ordering::Relaxed);
        c.line.store(packet.line.0, Ordering::Relaxed);
        let status = Some((packet.modem, packet.line));
        if packet.is_status_only() {
            c.status_only.add(1);
            self.heartbeats = true;
            c.flight.record(at, 0, status);
            return;
        }
        c.count_line_errors(packet.line);
        c.payload_bytes.add(packet.payload.len() as u64);
        // A descriptor may claim more than 512 bytes; never overrun a chunk.
        for piece in packet.payload.chunks(CHUNK_CAPACITY) {
            self.sender.push(piece, status, at);
        }
        // After the push: a record the application sees has its payload in
        // the channel already (or counted lost).
        c.flight.record(at, packet.payload.len(), status);
    }

    /// After each wait: count a stall once per silence longer than three
    /// latency periods (only for devices that send heartbeats), and give a
    /// pending loss notice another chance to reach the application.
    pub(crate) fn after_wait(&mut self, now: Timestamp) {
        if self.heartbeats
            && !self.stalled
            && now.saturating_since(self.last_packet) > self.latency_period() * STALL_PERIODS
        {
            self.stalled = true;
            self.counters.stalls.add(1);
        }
        self.sender.flush_loss();
    }

    /// Ends the stream: records why (off the hot path; this allocates) and
    /// closes the channel so the application wakes at once.
    pub(crate) fn close(&mut self, reason: String) {
        let _ = self.counters.disconnect.set(reason);
        self.sender.close();
    }
}
