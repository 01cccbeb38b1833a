//! The flight recorder: the last N packets the reader saw (arrival, size,
//! status), kept so the application can look at what the line did around a
//! missed deadline, and so [`Port::write_drained`](crate::Port::write_drained)
//! can find the status report that says the transmitter is empty.
//!
//! The reader thread is the only writer; any number of application threads
//! read. It is a ring of slots allocated once, each slot a small seqlock made
//! of atomics: the writer marks the slot odd, stores, marks it even with the
//! record's sequence number; a reader keeps a copy only if the mark was the
//! same even value before and after. The writer never waits and never
//! allocates; a reader that loses the race sees the record as overwritten
//! (it is: the ring has moved past it). The statistics counters are shared
//! the same way (relaxed atomics, no lock).
//!
//! The reader records a packet after pushing its payload to the channel,
//! so a record the application sees has its data queued already: a shell
//! can walk the record in order and take each data packet's chunk as it
//! reaches it.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::proto::{LineStatus, ModemStatus};
use crate::time::Timestamp;

/// Packets a port's flight recorder keeps by default: at a 1 ms latency
/// timer, the last quarter second.
pub const DEFAULT_FLIGHT_RECORDS: usize = 256;

/// One packet as the reader saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketRecord {
    /// Position in the stream of packets since the port opened (0, 1, 2, ...).
    pub seq: u64,
    /// When the reader saw it complete (`CLOCK_MONOTONIC`).
    pub arrived: Timestamp,
    /// Payload bytes it carried (0: a status-only heartbeat).
    pub payload_len: u16,
    /// Its two status bytes; `None` on a kernel tty, which has none.
    pub status: Option<(ModemStatus, LineStatus)>,
}

impl PacketRecord {
    /// Whether this packet reported the transmitter empty (TEMT).
    pub fn transmitter_empty(&self) -> bool {
        self.status
            .is_some_and(|(_, line)| line.0 & LineStatus::TEMT != 0)
    }

    /// Whether it carried no payload (a heartbeat: proof that nothing was
    /// received since the packet before it).
    pub fn is_status_only(&self) -> bool {
        self.payload_len == 0
    }

    fn pack(&self) -> u64 {
        let (modem, line, has) = match self.status {
            Some((m, l)) => (m.0, l.0, 1),
            None => (0, 0, 0),
        };
        u64::from(self.payload_len)
            | u64::from(modem) << 16
            | u64::from(line) << 24
            | (has as u64) << 32
    }

    fn unpack(seq: u64, arrived: u64, info: u64) -> PacketRecord {
        let status = (info >> 32 & 1 == 1).then_some((
            ModemStatus((info >> 16) as u8),
            LineStatus((info >> 24) as u8),
        ));
        PacketRecord {
            seq,
            arrived: Timestamp::from_nanos(arrived),
            payload_len: info as u16,
            status,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// `2 * seq + 2` once record `seq` is complete in this slot, odd while
    /// it is being written, 0 before the first write.
    version: AtomicU64,
    arrived: AtomicU64,
    info: AtomicU64,
}

/// The ring: written by the reader thread, read by anyone.
#[derive(Debug)]
pub(crate) struct FlightRecorder {
    slots: Box<[Slot]>,
    /// Records written so far (the next record's `seq`).
    next: AtomicU64,
}

impl Default for FlightRecorder {
    fn default() -> Self {
        FlightRecorder::new(DEFAULT_FLIGHT_RECORDS)
    }
}

impl FlightRecorder {
    /// A recorder keeping the last `capacity` packets (at least one).
    pub(crate) fn new(capacity: usize) -> FlightRecorder {
        let slots = (0..capacity.max(1)).map(|_| Slot::default()).collect();
        FlightRecorder {
            slots,
            next: AtomicU64::new(0),
        }
    }

    /// How many packets it keeps.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The memory the reader writes per packet, as (address, length), for
    /// the reader to lock with the rest of its hot path.
    pub(crate) fn hot_range(&self) -> (usize, usize) {
        (
            self.slots.as_ptr() as usize,
            std::mem::size_of_val(&*self.slots),
        )
    }

    /// Reader thread only (single writer): records one packet. No
    /// allocation, no lock, no wait.
    #[inline]
    pub(crate) fn record(
        &self,
        arrived: Timestamp,
        payload_len: usize,
        status: Option<(ModemStatus, LineStatus)>,
    ) {
        let seq = self.next.load(Ordering::Relaxed);
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        let record = PacketRecord {
            seq,
            arrived,
            payload_len: u16::try_from(payload_len).unwrap_or(u16::MAX),
            status,
        };
        // Wrapping: 2^63 packets is centuries away, but never a panic.
        slot.version
            .store(seq.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        slot.arrived.store(arrived.as_nanos(), Ordering::Relaxed);
        slot.info.store(record.pack(), Ordering::Relaxed);
        slot.version
            .store(seq.wrapping_mul(2).wrapping_add(2), Ordering::Release);
        self.next.store(seq + 1, Ordering::Release);
    }

    /// The sequence number the next packet will get: every record from here
    /// on was processed by the reader after this call.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Record `seq`, if it is still in the ring (and was ever written).
    pub(crate) fn get(&self, seq: u64) -> Option<PacketRecord> {
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        let want = seq.checked_mul(2)?.checked_add(2)?;
        if slot.version.load(Ordering::Acquire) != want {
            return None;
        }
        let arrived = slot.arrived.load(Ordering::Relaxed);
        let info = slot.info.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (slot.version.load(Ordering::Relaxed) == want)
            .then(|| PacketRecord::unpack(seq, arrived, info))
    }

    /// The oldest sequence number that may still be in the ring.
    pub(crate) fn oldest_seq(&self) -> u64 {
        self.next_seq().saturating_sub(self.slots.len() as u64)
    }

    /// Everything in the ring, oldest first (allocates: application side).
    pub(crate) fn snapshot(&self) -> Vec<PacketRecord> {
        let mut out = Vec::with_capacity(self.slots.len());
        self.snapshot_into(&mut out);
        out
    }

    /// The same into `out` (cleared first), reusing its allocation.
    pub(crate) fn snapshot_into(&self, out: &mut Vec<PacketRecord>) {
        out.clear();
        let end = self.next_seq();
        out.extend((self.oldest_seq()..end).filter_map(|seq| self.get(seq)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(ns: u64) -> Timestamp {
        Timestamp::from_nanos(ns)
    }

    #[test]
    fn keeps_the_last_n_in_order() {
        let r = FlightRecorder::new(3);
        assert!(r.snapshot().is_empty());
        for i in 0..5u64 {
            let status = Some((ModemStatus(0x01), LineStatus(0x60)));
            r.record(t(i * 100), i as usize, status);
        }
        let snap = r.snapshot();
        assert_eq!(snap.iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(snap[2].arrived, t(400));
        assert_eq!(snap[2].payload_len, 4);
        assert!(snap[2].transmitter_empty());
        assert_eq!(r.get(1), None, "overwritten");
        assert_eq!(r.get(5), None, "not written yet");
        assert_eq!((r.next_seq(), r.oldest_seq(), r.capacity()), (5, 2, 3));
    }

    #[test]
    fn no_status_round_trips_as_none() {
        let r = FlightRecorder::new(2);
        r.record(t(7), 70_000, None);
        let p = r.get(0).unwrap();
        assert_eq!((p.status, p.payload_len), (None, u16::MAX));
        assert!(!p.transmitter_empty());
    }

    #[test]
    fn a_reader_never_sees_a_torn_record() {
        // The writer stores arrival = 1000 * seq and payload = seq % 500;
        // a torn read would break that relation.
        let r = Arc::new(FlightRecorder::new(4));
        let w = r.clone();
        let writer = std::thread::spawn(move || {
            for seq in 0..200_000u64 {
                w.record(t(seq * 1000), (seq % 500) as usize, None);
            }
        });
        let mut checked = 0u64;
        while !writer.is_finished() || checked == 0 {
            for p in r.snapshot() {
                assert_eq!(p.arrived.as_nanos(), p.seq * 1000);
                assert_eq!(u64::from(p.payload_len), p.seq % 500);
                checked += 1;
            }
        }
        writer.join().unwrap();
        assert!(checked > 0);
    }
}
