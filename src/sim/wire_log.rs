//! The simulated chip's own record of when each byte crossed the wire.
//!
//! Timing features above the chip (when the transmitter drained, how long
//! the line was silent) need a truth to be checked against; on silicon that
//! is a logic analyser on TX and RX, here it is this log. It is a ring of a
//! capacity chosen once (allocated when enabled, never after), so the engine
//! records without allocating and a long run keeps the newest bytes.

use crate::time::Timestamp;

/// Which way a byte crossed the UART wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireDirection {
    /// Chip TX → device: a byte the host wrote.
    ToDevice,
    /// Device → chip RX: a byte the device sent (recorded even when the
    /// chip's FIFO was full and lost it).
    FromDevice,
}

/// One character frame on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireEvent {
    /// Which way it went.
    pub direction: WireDirection,
    /// The data byte.
    pub byte: u8,
    /// When its start bit began.
    pub start: Timestamp,
    /// When its last stop bit ended.
    pub end: Timestamp,
}

/// The newest [`WireEvent`]s, oldest first, in the order their frames ended.
#[derive(Clone, Debug, Default)]
pub struct WireLog {
    events: Vec<WireEvent>,
    capacity: usize,
    /// Slot the next event goes to once the ring is full.
    next: usize,
    total: u64,
}

impl WireLog {
    /// A log keeping the newest `capacity` events (0: records nothing).
    pub(crate) fn with_capacity(capacity: usize) -> WireLog {
        WireLog {
            events: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            total: 0,
        }
    }

    pub(crate) fn record(&mut self, event: WireEvent) {
        if self.capacity == 0 {
            return;
        }
        self.total += 1;
        if self.events.len() < self.capacity {
            self.events.push(event);
        } else {
            self.events[self.next] = event;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// How many events it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many events it holds now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events recorded since the start, including those overwritten since:
    /// more than [`len`](WireLog::len) means the oldest were dropped.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The events held, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &WireEvent> + '_ {
        let (newer, older) = self.events.split_at(self.next);
        older.iter().chain(newer)
    }

    /// The newest event that went `direction`.
    pub fn last(&self, direction: WireDirection) -> Option<&WireEvent> {
        self.iter().rev().find(|e| e.direction == direction)
    }

    /// Forgets every event (the capacity stays).
    pub fn clear(&mut self) {
        self.events.clear();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u8) -> WireEvent {
        WireEvent {
            direction: if n.is_multiple_of(2) {
                WireDirection::ToDevice
            } else {
                WireDirection::FromDevice
            },
            byte: n,
            start: Timestamp::from_nanos(u64::from(n) * 10),
            end: Timestamp::from_nanos(u64::from(n) * 10 + 9),
        }
    }

    #[test]
    fn keeps_the_newest_in_order_without_growing() {
        let mut log = WireLog::with_capacity(3);
        for n in 0..5 {
            log.record(ev(n));
        }
        let bytes: Vec<u8> = log.iter().map(|e| e.byte).collect();
        assert_eq!(bytes, [2, 3, 4]);
        assert_eq!((log.len(), log.total(), log.capacity()), (3, 5, 3));
        assert_eq!(log.last(WireDirection::FromDevice).map(|e| e.byte), Some(3));
        assert_eq!(log.events.capacity(), 3, "no growth past the capacity");
        log.clear();
        assert!(log.is_empty());
        log.record(ev(7));
        assert_eq!(log.iter().map(|e| e.byte).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn zero_capacity_records_nothing() {
        let mut log = WireLog::with_capacity(0);
        log.record(ev(1));
        assert_eq!((log.len(), log.total()), (0, 0));
    }
}
