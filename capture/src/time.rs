//! Capture time. Every state machine in capture is driven by the timestamps of the packets it
//! is fed (or by ticks from the packet source), never by the wall clock.

use std::fmt;

/// Nanoseconds since the Unix epoch, as stamped on a captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Nanoseconds in one second.
    pub const SECOND: i64 = 1_000_000_000;
    /// Nanoseconds in one millisecond.
    pub const MILLI: i64 = 1_000_000;

    /// From seconds and nanoseconds.
    pub const fn from_parts(secs: i64, nanos: i64) -> Timestamp {
        Timestamp(secs * Self::SECOND + nanos)
    }

    /// From fractional seconds since the epoch.
    pub fn from_secs_f64(s: f64) -> Timestamp {
        Timestamp((s * 1e9).round() as i64)
    }

    /// Whole seconds since the epoch.
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(Self::SECOND)
    }

    /// Nanoseconds within the second.
    pub const fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(Self::SECOND) as u32
    }

    /// Seconds since the epoch as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This time plus `ns` nanoseconds (saturating).
    pub const fn add_nanos(self, ns: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ns))
    }

    /// Nanoseconds from `earlier` to `self` (negative if `earlier` is later).
    pub const fn since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs(), self.subsec_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_negative_times() {
        let t = Timestamp::from_parts(1_480_171_979, 666_393_000);
        assert_eq!(t.secs(), 1_480_171_979);
        assert_eq!(t.subsec_nanos(), 666_393_000);
        let before_epoch = Timestamp(-1);
        assert_eq!(before_epoch.secs(), -1);
        assert_eq!(before_epoch.subsec_nanos(), 999_999_999);
        assert_eq!(t.add_nanos(5).since(t), 5);
        assert_eq!(Timestamp::from_secs_f64(1.5), Timestamp(1_500_000_000));
    }
}
