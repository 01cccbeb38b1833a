//! What happens to every completed inbound transfer, whatever the transport:
//! deframing, status tracking, heartbeats, stalls, and the push to the channel.
//!
//! Runs on the realtime reader thread: no allocation, no lock, no logging.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::channel::{CHUNK_CAPACITY, Mark, Sender};
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

/// Where the pipeline of a port that resumes goes when its link is lost:
/// the port's watcher, which hands it to the reader of the device that
/// comes back (the channel's sender lives here, so the stream goes on).
#[derive(Clone)]
pub(crate) struct Handback(pub(crate) Arc<dyn Fn(Pipeline) + Send + Sync>);

impl std::fmt::Debug for Handback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handback")
    }
}

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
    /// Set on a port that resumes: a lost link keeps the stream open.
    resume: Option<Handback>,
    /// When the link was lost (a port that resumes), until the device is back.
    lost_at: Option<Timestamp>,
    /// The unplug event is not in the ring yet (it was full).
    owed_lost: bool,
    /// The resume event (its gap, ns) is not in the ring yet.
    owed_resumed: Option<u64>,
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
            resume: None,
            lost_at: None,
            owed_lost: false,
            owed_resumed: None,
        }
    }

    /// Makes a lost link a gap in the stream instead of its end: the
    /// pipeline goes to `handback` (see [`link_lost`](Pipeline::link_lost)).
    pub(crate) fn resume_to(&mut self, handback: Handback) {
        self.resume = Some(handback);
    }

    /// On the reader, when the transport reports its link lost: without
    /// resume, ends the stream ([`close`](Pipeline::close)); with it, puts
    /// the unplug event in the stream, makes writes and settings fail fast,
    /// and notes when, so that the owner of the pipeline hands it back
    /// ([`hand_back`](Pipeline::hand_back)) after draining the transport.
    pub(crate) fn link_lost(&mut self, why: String) {
        if self.resume.is_none() {
            return self.close(why);
        }
        let _ = self.counters.disconnect.set(why);
        self.counters.link_down.store(true, Ordering::Release);
        self.lost_at = Some(Timestamp::now());
        self.owed_lost = true;
        self.flush_marks(Timestamp::now());
    }

    /// Whether the link is lost and the device not back yet.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost_at.is_some()
    }

    /// Where the reader lets go of the pipeline: a port that lost its link
    /// and resumes gets it back (its watcher); otherwise it drops, which
    /// ends the stream if nothing has yet.
    pub(crate) fn hand_back(self) {
        match (&self.resume, self.lost_at) {
            (Some(handback), Some(_)) => {
                let handback = handback.clone();
                (handback.0)(self);
            }
            _ => drop(self),
        }
    }

    /// On the reader of the device that came back, once its transfers are
    /// in flight: counts the resume and puts the event, with the gap's
    /// length, in the stream.
    pub(crate) fn started(&mut self, now: Timestamp) {
        let Some(lost) = self.lost_at.take() else {
            return;
        };
        let gap = u64::try_from(now.saturating_since(lost).as_nanos()).unwrap_or(u64::MAX);
        // The new device's packets start afresh: the gap is no stall, and
        // its modem lines are no change of the old one's.
        self.last_packet = now;
        self.stalled = false;
        self.last_lines = None;
        self.counters.resumes.add(1);
        self.counters.resume_gap_ns.add_saturating(gap);
        self.owed_resumed = Some(gap);
        self.flush_marks(now);
    }

    /// Puts the resume events the ring had no room for into it (the
    /// watcher calls this while it holds the pipeline, the reader after
    /// each wait).
    #[inline]
    pub(crate) fn flush_marks(&mut self, now: Timestamp) {
        if self.owed_lost {
            if !self.sender.push_mark(Mark::LinkLost, now) {
                return;
            }
            self.owed_lost = false;
        }
        if let Some(gap_ns) = self.owed_resumed
            && self.sender.push_mark(Mark::Resumed { gap_ns }, now)
        {
            self.owed_resumed = None;
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
        if self.owed_lost || self.owed_resumed.is_some() {
            self.flush_marks(now);
        }
    }

    /// Ends the stream: records why (off the hot path; this allocates) and
    /// closes the channel so the application wakes at once.
    pub(crate) fn close(&mut self, reason: String) {
        let _ = self.counters.disconnect.set(reason);
        self.sender.close();
    }
}
