//! Timestamps on `CLOCK_MONOTONIC`, the clock every figure in this crate
//! uses, and deadlines on it.
//!
//! `std::time::Instant` reads the same clock but is opaque; a plain
//! nanosecond count can sit in a `Copy + Default` ring slot, be subtracted
//! without branches, and be compared across threads.
//!
//! Every timeout in the crate is turned into a [`Deadline`] once, at the
//! start of the operation, and every wait asks it how much time is left.
//! Its arithmetic saturates, so a user's `Duration::MAX` means "as long as
//! it takes" instead of an overflow panic.

use std::fmt;
use std::time::Duration;

/// A point in time: nanoseconds of `CLOCK_MONOTONIC` (time since boot, not
/// counting suspend). Taken when a packet completes, when a request is
/// submitted, and when the application takes data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The current time.
    #[inline]
    pub fn now() -> Timestamp {
        Timestamp(crate::sys::monotonic_ns())
    }

    /// A timestamp from raw `CLOCK_MONOTONIC` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Timestamp {
        Timestamp(ns)
    }

    /// Raw `CLOCK_MONOTONIC` nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    #[inline]
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time since this timestamp was taken.
    #[inline]
    pub fn elapsed(self) -> Duration {
        Timestamp::now().saturating_since(self)
    }

    /// This timestamp moved forward by `d` (saturating).
    #[inline]
    pub const fn add(self, d: Duration) -> Timestamp {
        let ns = d.as_nanos();
        let ns = if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        };
        Timestamp(self.0.saturating_add(ns))
    }
}

/// The time by which an operation must be done: a [`Timestamp`] reached
/// from a start and a user-given duration without overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Deadline {
    at: Timestamp,
}

impl Deadline {
    /// `timeout` after `now`; a duration past the end of the clock (584
    /// years of uptime) saturates to the end of the clock.
    #[inline]
    pub(crate) const fn after(now: Timestamp, timeout: Duration) -> Deadline {
        Deadline {
            at: now.add(timeout),
        }
    }

    /// `timeout` from the current time.
    #[inline]
    pub(crate) fn from_now(timeout: Duration) -> Deadline {
        Deadline::after(Timestamp::now(), timeout)
    }

    /// Time left at `now`; zero once the deadline has passed.
    #[inline]
    pub(crate) const fn remaining(self, now: Timestamp) -> Duration {
        self.at.saturating_since(now)
    }

    /// Whether the deadline has passed at `now` (it has at the deadline itself).
    #[inline]
    pub(crate) fn is_past(self, now: Timestamp) -> bool {
        now >= self.at
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturating: a timestamp never wraps.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp::add(self, d)
    }
}

impl std::ops::Sub for Timestamp {
    type Output = Duration;
    /// Saturating: zero if `earlier` is later.
    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_arithmetic() {
        let a = Timestamp::now();
        let b = Timestamp::now();
        assert!(b >= a);
        assert_eq!(
            a.add(Duration::from_micros(5)).saturating_since(a),
            Duration::from_micros(5)
        );
        assert_eq!(
            a.saturating_since(a.add(Duration::from_secs(1))),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_nanos(1_500_000_001).to_string(),
            "1.500000001"
        );
        assert_eq!((a + Duration::from_micros(7)) - a, Duration::from_micros(7));
        assert_eq!(a - (a + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn deadlines_count_down_and_saturate() {
        let start = Timestamp::from_nanos(1_000);
        let d = Deadline::after(start, Duration::from_micros(3));
        assert_eq!(d.remaining(start), Duration::from_micros(3));
        assert_eq!(
            d.remaining(Timestamp::from_nanos(3_500)),
            Duration::from_nanos(500)
        );
        assert!(!d.is_past(Timestamp::from_nanos(3_999)));
        assert!(d.is_past(Timestamp::from_nanos(4_000)));
        assert_eq!(d.remaining(Timestamp::from_nanos(9_000)), Duration::ZERO);

        // "Forever" from a user: no overflow, and it never passes.
        let never = Deadline::after(Timestamp::now(), Duration::MAX);
        assert!(!never.is_past(Timestamp::from_nanos(u64::MAX - 1)));
        assert!(never.is_past(Timestamp::from_nanos(u64::MAX)));
        assert!(never.remaining(Timestamp::now()) > Duration::from_secs(100 * 365 * 86_400));
        let late = Deadline::after(Timestamp::from_nanos(u64::MAX - 1), Duration::from_secs(1));
        assert_eq!(
            late.remaining(Timestamp::from_nanos(u64::MAX - 1)),
            Duration::from_nanos(1)
        );
    }
}
