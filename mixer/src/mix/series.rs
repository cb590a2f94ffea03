//! A stream's quality over the call: packets received and expected, and the worst jitter, per
//! interval of capture time, in a fixed number of slots.
//!
//! Intervals start [`FIRST_WIDTH_NS`] wide from the stream's first packet. When a packet falls
//! past the last slot, neighbouring slots are merged in pairs and the width doubles, so memory
//! stays [`SLOTS`] slots whatever the call's length (5 s resolution up to 2 min 40 s, 10 s up
//! to 5 min 20 s, …), allocated once with the stream: nothing is allocated per packet.

use capture::Timestamp;

/// Slots per stream.
pub const SLOTS: usize = 32;
/// Width of an interval until the call outgrows the slots.
pub const FIRST_WIDTH_NS: i64 = 5_000_000_000;

/// One interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slot {
    /// Distinct packets received (events included: they use the stream's sequence numbers).
    pub received: u32,
    /// Packets the sequence numbers say were sent, counted where the sequence advanced.
    pub expected: u32,
    /// The highest interarrival jitter (RFC 3550) seen, in ms.
    pub jitter_max_ms: f32,
}

impl Slot {
    /// Packets missing: expected but not received (a late packet may fill a gap of the
    /// previous interval, so never below zero).
    pub fn lost(&self) -> u32 {
        self.expected.saturating_sub(self.received)
    }

    /// A distinct packet received, the expected count having grown by `advanced`.
    pub fn count(&mut self, advanced: u64) {
        self.received += 1;
        self.expected = self.expected.saturating_add(u32::try_from(advanced).unwrap_or(u32::MAX));
    }

    fn merge(a: Slot, b: Slot) -> Slot {
        Slot {
            received: a.received + b.received,
            expected: a.expected + b.expected,
            jitter_max_ms: a.jitter_max_ms.max(b.jitter_max_ms),
        }
    }
}

/// The slots of one stream.
#[derive(Debug, Clone)]
pub struct QualitySeries {
    start: Timestamp,
    width_ns: i64,
    used: usize,
    slots: [Slot; SLOTS],
}

impl QualitySeries {
    /// A series starting at the stream's first packet.
    pub fn new(start: Timestamp) -> QualitySeries {
        QualitySeries { start, width_ns: FIRST_WIDTH_NS, used: 0, slots: [Slot::default(); SLOTS] }
    }

    /// The slot a packet captured at `time` counts in (merging slots if the call outgrew them).
    pub fn at(&mut self, time: Timestamp) -> &mut Slot {
        let since = (time.0 - self.start.0).max(0);
        while since / self.width_ns >= SLOTS as i64 {
            self.halve();
        }
        let i = (since / self.width_ns) as usize;
        self.used = self.used.max(i + 1);
        &mut self.slots[i]
    }

    fn halve(&mut self) {
        for k in 0..SLOTS / 2 {
            self.slots[k] = Slot::merge(self.slots[2 * k], self.slots[2 * k + 1]);
        }
        self.slots[SLOTS / 2..].fill(Slot::default());
        self.used = self.used.div_ceil(2);
        self.width_ns *= 2;
    }

    /// The interval's width in ns.
    pub fn width_ns(&self) -> i64 {
        self.width_ns
    }

    /// The first packet's time: where the first interval starts.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The intervals up to the last packet's, in order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots[..self.used]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn packets_land_in_their_interval_and_long_calls_merge_pairs() {
        let mut q = QualitySeries::new(Timestamp(10 * S));
        // 50 packets a second for 200 s, one in ten missing in the 12th second.
        for i in 0..10_000i64 {
            let t = Timestamp(10 * S + i * S / 50);
            let slot = q.at(t);
            slot.expected += 1;
            if !(550..600).contains(&i) || i % 10 != 0 {
                slot.received += 1;
            }
            slot.jitter_max_ms = slot.jitter_max_ms.max(if i == 7_000 { 9.5 } else { 0.5 });
        }
        // 200 s outgrew 32 × 5 s: now 10 s intervals, 20 of them.
        assert_eq!(q.width_ns(), 10 * S);
        assert_eq!(q.slots().len(), 20);
        assert!(q.slots().iter().all(|s| s.expected == 500));
        assert_eq!(q.slots()[1].lost(), 5);
        assert_eq!(q.slots().iter().map(Slot::lost).sum::<u32>(), 5);
        assert_eq!(q.slots()[14].jitter_max_ms, 9.5);
        assert_eq!(q.slots()[13].jitter_max_ms, 0.5);
        // Before the start counts in the first interval.
        q.at(Timestamp(0)).received += 1;
        assert_eq!(q.slots()[0].received, 501);
    }
}
