//! A stream's quality over the call: packets received and expected, and the worst jitter, per
//! interval of capture time, in a fixed number of slots.
//!
//! Intervals start [`FIRST_WIDTH_NS`] wide from the stream's first packet. When a packet falls
//! past the last slot, neighbouring slots are merged in pairs and the width doubles, so memory
//! stays [`SLOTS`] slots whatever the call's length (5 s resolution up to 2 min 40 s, 10 s up
//! to 5 min 20 s, …), allocated once with the stream: nothing is allocated per packet.
//!
//! Every packet of a stream asks for its slot, almost always the one the packet before it
//! counted in: the series keeps that slot's span of capture time, so finding it takes two
//! comparisons, and the division that maps a time to its slot runs once per interval. That
//! span and what the packets add to the slot (`open`) are kept in the series itself, inline
//! in the stream's statistics; the slots are boxed apart and only touched when the interval
//! changes, so a packet brings none of their cache lines in.

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

/// The slots of one stream: the current one's span and what was added to it inline, the
/// slots boxed.
#[derive(Debug, Clone)]
pub struct QualitySeries {
    /// The slot the last packet counted in, and the capture times `[from, until)` that count
    /// in it (the first slot's reach back before the start). An empty span: none yet, or the
    /// slots were merged since.
    current: usize,
    from: i64,
    until: i64,
    /// The highest jitter (in the stream's units) already taken into the current slot's
    /// `jitter_max_ms` since it became current: a lower one cannot raise it.
    peak: f64,
    /// What was counted in the current slot since it became current (added to
    /// `slots.slots[current]` when another slot becomes current; [`QualitySeries::slots`]
    /// adds it).
    open: Slot,
    slots: Box<Slots>,
}

/// The intervals, touched once an interval.
#[derive(Debug, Clone)]
struct Slots {
    start: Timestamp,
    width_ns: i64,
    used: usize,
    slots: [Slot; SLOTS],
}

impl QualitySeries {
    /// A series starting at the stream's first packet.
    pub fn new(start: Timestamp) -> QualitySeries {
        QualitySeries {
            current: 0,
            from: 0,
            until: 0,
            peak: f64::NEG_INFINITY,
            open: Slot::default(),
            slots: Box::new(Slots { start, width_ns: FIRST_WIDTH_NS, used: 0, slots: [Slot::default(); SLOTS] }),
        }
    }

    /// What a packet captured at `time` adds to its slot (merging slots if the call outgrew
    /// them): counts add up and the jitter maximum takes the maximum, so the slot comes out
    /// as if it had been counted there.
    #[inline]
    pub fn at(&mut self, time: Timestamp) -> &mut Slot {
        if !(self.from..self.until).contains(&time.0) {
            self.find(time);
        }
        &mut self.open
    }

    /// [`QualitySeries::at`], and the stream's interarrival jitter then: `jitter` in its units,
    /// `ms` its conversion to ms. The conversion only runs when `jitter` is the highest of the
    /// slot so far (it is monotonic: a lower jitter never gives a higher maximum).
    #[inline]
    pub fn at_with_jitter(&mut self, time: Timestamp, jitter: f64, ms: impl FnOnce(f64) -> f32) -> &mut Slot {
        if !(self.from..self.until).contains(&time.0) {
            self.find(time);
        }
        let slot = &mut self.open;
        if jitter > self.peak {
            self.peak = jitter;
            slot.jitter_max_ms = slot.jitter_max_ms.max(ms(jitter));
        }
        slot
    }

    /// Makes the slot of `time` the current one (once per interval, or for a packet of
    /// another interval: a reordered one).
    #[cold]
    fn find(&mut self, time: Timestamp) {
        self.close();
        let s = &mut *self.slots;
        let since = (time.0 - s.start.0).max(0);
        while since / s.width_ns >= SLOTS as i64 {
            s.halve();
            (self.from, self.until) = (0, 0);
        }
        let i = since / s.width_ns;
        self.current = i as usize;
        s.used = s.used.max(self.current + 1);
        self.from = if i == 0 { i64::MIN } else { s.start.0 + i * s.width_ns };
        self.until = s.start.0 + (i + 1) * s.width_ns;
        self.peak = f64::NEG_INFINITY;
    }

    /// Adds what was counted in the current slot to it.
    fn close(&mut self) {
        let open = std::mem::take(&mut self.open);
        let slot = &mut self.slots.slots[self.current];
        *slot = Slot::merge(*slot, open);
    }

    /// The stream's jitter changes units (its RTP clock was set): the current slot's peak
    /// no longer compares.
    pub fn forget_peak(&mut self) {
        self.peak = f64::NEG_INFINITY;
    }

    /// The interval's width in ns.
    pub fn width_ns(&self) -> i64 {
        self.slots.width_ns
    }

    /// The first packet's time: where the first interval starts.
    pub fn start(&self) -> Timestamp {
        self.slots.start
    }

    /// The intervals up to the last packet's, in order.
    pub fn slots(&self) -> Vec<Slot> {
        let mut slots = self.slots.slots[..self.slots.used].to_vec();
        if let Some(slot) = slots.get_mut(self.current) {
            *slot = Slot::merge(*slot, self.open);
        }
        slots
    }
}

impl Slots {
    fn halve(&mut self) {
        for k in 0..SLOTS / 2 {
            self.slots[k] = Slot::merge(self.slots[2 * k], self.slots[2 * k + 1]);
        }
        self.slots[SLOTS / 2..].fill(Slot::default());
        self.used = self.used.div_ceil(2);
        self.width_ns *= 2;
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

    /// The slot kept from one packet to the next, and the jitter taken only when it can raise
    /// the slot's maximum, give what finding every packet's slot by division and taking every
    /// jitter gave.
    #[test]
    fn the_current_slot_and_jitter_peak_agree_with_dividing_every_packet() {
        /// The series as it was: a division per packet, every jitter taken.
        struct Naive {
            start: i64,
            width: i64,
            slots: Vec<Slot>,
        }
        impl Naive {
            fn at(&mut self, t: i64) -> &mut Slot {
                let since = (t - self.start).max(0);
                while since / self.width >= SLOTS as i64 {
                    let merged: Vec<Slot> = self.slots.chunks(2).map(|p| Slot::merge(p[0], p[1])).collect();
                    self.slots = merged.into_iter().chain(std::iter::repeat(Slot::default())).take(SLOTS).collect();
                    self.width *= 2;
                }
                &mut self.slots[(since / self.width) as usize]
            }
        }
        let ms = |j: f64| (j * 1000.0 / 8000.0) as f32;
        let mut x = 7u64;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut q = QualitySeries::new(Timestamp(10 * S));
        let mut naive = Naive { start: 10 * S, width: FIRST_WIDTH_NS, slots: vec![Slot::default(); SLOTS] };
        let mut jitter = 0.0;
        for i in 0..30_000i64 {
            // 20 ms apart with up to 60 ms of jitter (packets out of order across intervals),
            // some before the start; the jitter rises and falls.
            let t = 10 * S + i * S / 50 + ((next() - 0.2) * 60e6) as i64;
            jitter += (next() * 400.0 - jitter) / 16.0;
            let a = q.at_with_jitter(Timestamp(t), jitter, ms);
            a.count(1);
            let b = naive.at(t);
            b.count(1);
            b.jitter_max_ms = b.jitter_max_ms.max(ms(jitter));
            if i % 1000 == 999 {
                q.at(Timestamp(t)).received += 1;
                naive.at(t).received += 1;
            }
        }
        assert_eq!(q.width_ns(), naive.width);
        assert_eq!(q.slots(), naive.slots[..q.slots().len()]);
        assert!(naive.slots[q.slots().len()..].iter().all(|s| *s == Slot::default()));
    }
}
