//! Per-stream RTP statistics (one stream = one SSRC in one direction), after RFC 3550
//! appendix A: extended sequence numbers, expected vs received, interarrival jitter.

use std::net::SocketAddr;

use capture::Timestamp;

use crate::mix::edits::StreamEdits;
use crate::mix::series::QualitySeries;

/// How far back duplicate detection remembers sequence numbers.
const DUP_WINDOW: u32 = 64;
/// A forward jump larger than this restarts the sequence (RFC 3550 A.1 `MAX_DROPOUT`): the
/// sender reset its numbering, which is not loss.
const MAX_DROPOUT: u32 = 3000;
/// A backward step larger than this is not reordering (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: u32 = 100;

/// Verdict on one packet's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Next in order (or after a gap).
    InOrder,
    /// Older than the highest seen, not seen before.
    OutOfOrder,
    /// Seen before.
    Duplicate,
}

/// Statistics of one RTP stream.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// SSRC.
    pub ssrc: u32,
    /// Sender address of the first packet.
    pub src: SocketAddr,
    /// Receiver address of the first packet.
    pub dst: SocketAddr,
    /// Payload types seen (bit per type).
    pub payload_types: u128,
    /// Packets seen, duplicates included.
    pub packets: u64,
    /// Distinct packets.
    pub unique: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Packets older than the highest sequence number seen.
    pub out_of_order: u64,
    /// Packets that arrived after their place on the timeline had been written.
    pub late: u64,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// Sequence restarts (jumps beyond RFC 3550's `MAX_DROPOUT`).
    pub restarts: u64,
    /// SRTP packets that failed authentication: not counted in `packets`, never decoded.
    pub auth_failures: u64,
    /// RFC 4733 telephone-event packets among `packets` (duplicates included).
    pub event_packets: u64,
    /// Telephone events (distinct event timestamps) carried.
    pub events: u64,
    /// Payload type of the first audio packet (not an event, not comfort noise): the stream's
    /// codec. Set by the caller, which knows what payload types mean.
    pub audio_pt: Option<u8>,
    /// First packet's capture time.
    pub first: Timestamp,
    /// Last packet's capture time.
    pub last: Timestamp,
    /// What placing this stream's audio took: anchors, slips, gaps (boxed: rarely touched,
    /// kept out of the per-packet cache lines).
    pub edits: Box<StreamEdits>,
    /// Packets, loss and jitter per interval of the call (the current interval inline, the
    /// intervals boxed and bounded, allocated with the stream).
    pub series: QualitySeries,
    base_seq: u32,
    max_seq: u32,
    /// Bit k set: sequence number `max_seq - k` was received.
    seen: u64,
    /// Expected packets of sequence ranges before the last restart.
    expected_before: u64,
    /// A far jump waiting for a second packet to confirm a restart.
    bad_seq: Option<u16>,
    /// Loss runs, counted once sequence numbers leave the duplicate window (a reordered
    /// packet can no longer fill them).
    runs: LossRuns,
    jitter: f64,
    last_transit: Option<i64>,
    clock: u32,
    /// RTP timestamps of the latest telephone events, to count each event once.
    recent_events: [Option<u32>; 4],
}

/// A stream's loss runs: the next sequence number to account, the run open there, the runs
/// closed and the longest.
#[derive(Debug, Clone, Copy)]
struct LossRuns {
    settled_next: u32,
    run: u64,
    bursts: u64,
    longest: u64,
}

impl LossRuns {
    /// Accounts sequence numbers `[settled_next, limit)` into loss runs, `new_max` being the
    /// highest sequence number once this packet is in, `max_seq` and `seen` the stream's before.
    fn settle_until(&mut self, limit: u32, new_max: u32, max_seq: u32, seen: u64) {
        while self.settled_next < limit {
            let n = self.settled_next;
            if n > max_seq {
                let end = limit.min(new_max);
                self.run += u64::from(end - n);
                self.settled_next = end;
                continue;
            }
            let back = max_seq - n;
            if back < DUP_WINDOW && seen & (1 << back) != 0 {
                self.close_run();
            } else {
                self.run += 1;
            }
            self.settled_next += 1;
        }
    }

    fn close_run(&mut self) {
        if self.run > 0 {
            self.bursts += 1;
            self.longest = self.longest.max(self.run);
            self.run = 0;
        }
    }

    /// Accounts every sequence number up to `max_seq` and closes the open run.
    fn settle_all(&mut self, max_seq: u32, seen: u64) {
        let end = max_seq.wrapping_add(1);
        self.settle_until(end, end, max_seq, seen);
        self.close_run();
    }
}

impl StreamStats {
    /// Sets the stream's RTP clock rate (Hz), for its jitter.
    pub fn set_clock(&mut self, clock: u32) {
        self.clock = clock.max(1);
        self.series.forget_peak();
    }

    /// Starts a stream at its first packet.
    pub fn new(ssrc: u32, seq: u16, src: SocketAddr, dst: SocketAddr, time: Timestamp, clock: u32) -> StreamStats {
        // Extended numbers start one cycle up so a packet just before the first never goes
        // negative.
        let ext = (1 << 16) | u32::from(seq);
        StreamStats {
            ssrc,
            src,
            dst,
            payload_types: 0,
            packets: 0,
            unique: 0,
            duplicates: 0,
            out_of_order: 0,
            late: 0,
            payload_bytes: 0,
            restarts: 0,
            auth_failures: 0,
            event_packets: 0,
            events: 0,
            audio_pt: None,
            first: time,
            last: time,
            edits: Box::default(),
            series: QualitySeries::new(time),
            base_seq: ext,
            max_seq: ext.wrapping_sub(1),
            seen: 0,
            expected_before: 0,
            bad_seq: None,
            runs: LossRuns { settled_next: ext, run: 0, bursts: 0, longest: 0 },
            jitter: 0.0,
            last_transit: None,
            clock: clock.max(1),
            recent_events: [None; 4],
        }
    }

    /// Accounts one audio (or comfort noise) packet and says whether it is new, reordered or a
    /// duplicate.
    pub fn observe(&mut self, seq: u16, rtp_ts: u32, pt: u8, time: Timestamp, payload_len: usize) -> SeqVerdict {
        let (verdict, advanced) = self.account(seq, pt, time, payload_len);
        if verdict != SeqVerdict::Duplicate {
            // RFC 3550 A.8: J += (|D| - J) / 16, in timestamp units.
            let transit = arrival(time, self.clock).wrapping_sub(i64::from(rtp_ts));
            if let Some(prev) = self.last_transit {
                let d = (transit - prev).unsigned_abs() as f64;
                // Timestamp jumps (new talkspurt base, SSRC reuse) are not jitter.
                if d < f64::from(self.clock) * 10.0 {
                    self.jitter += (d - self.jitter) / 16.0;
                }
            }
            self.last_transit = Some(transit);
            let clock = self.clock;
            let slot = self.series.at_with_jitter(time, self.jitter, |j| jitter_ms(j, clock) as f32);
            slot.count(advanced);
        }
        verdict
    }

    /// Accounts one RFC 4733 telephone-event packet. It counts in the sequence numbers (loss,
    /// duplicates, order) but not in the jitter: every packet of an event repeats the event's
    /// start timestamp.
    pub fn observe_event(&mut self, seq: u16, rtp_ts: u32, pt: u8, time: Timestamp, payload_len: usize) -> SeqVerdict {
        self.event_packets += 1;
        let (verdict, advanced) = self.account(seq, pt, time, payload_len);
        if verdict != SeqVerdict::Duplicate {
            self.series.at(time).count(advanced);
            if !self.recent_events.contains(&Some(rtp_ts)) {
                self.events += 1;
                self.recent_events.rotate_right(1);
                self.recent_events[0] = Some(rtp_ts);
            }
        }
        verdict
    }

    /// Whether the stream carried telephone events and nothing else.
    pub fn is_event_stream(&self) -> bool {
        self.event_packets > 0 && self.event_packets == self.packets
    }

    /// Sequence-number accounting of one packet: its verdict, and how many packets the
    /// expected count grew by (for the interval it counts in).
    fn account(&mut self, seq: u16, pt: u8, time: Timestamp, payload_len: usize) -> (SeqVerdict, u64) {
        let expected_before = self.expected();
        self.packets += 1;
        self.payload_types |= 1u128 << (pt & 0x7f);
        if time > self.last {
            self.last = time;
        }
        // RFC 3550 A.1: a small step forward is in order, a small step back is reordering or
        // a duplicate, anything else is a jump that restarts the sequence once a second packet
        // confirms it.
        let max_low = self.max_seq as u16;
        let udelta = u32::from(seq.wrapping_sub(max_low));
        let verdict = if self.unique == 0 {
            let ext = (1 << 16) | u32::from(seq);
            self.base_seq = ext;
            self.max_seq = ext;
            self.runs.settled_next = ext;
            self.seen = 1;
            SeqVerdict::InOrder
        } else if udelta != 0 && udelta < MAX_DROPOUT {
            let ext = self.max_seq + udelta;
            self.runs.settle_until(ext.saturating_sub(DUP_WINDOW - 1), ext, self.max_seq, self.seen);
            self.seen = if udelta >= 64 { 0 } else { self.seen << udelta };
            self.seen |= 1;
            self.max_seq = ext;
            SeqVerdict::InOrder
        } else if udelta == 0 || udelta > (1 << 16) - MAX_MISORDER {
            let back = if udelta == 0 { 0 } else { (1 << 16) - udelta };
            let ext = self.max_seq - back;
            if back < DUP_WINDOW && self.seen & (1 << back) != 0 {
                SeqVerdict::Duplicate
            } else {
                if back < DUP_WINDOW {
                    self.seen |= 1 << back;
                }
                if ext < self.base_seq {
                    self.base_seq = ext;
                    self.runs.settled_next = self.runs.settled_next.min(ext);
                }
                SeqVerdict::OutOfOrder
            }
        } else if self.bad_seq == Some(seq) {
            // Two packets agree on the new numbering: restart there (the previous one was
            // counted but not tracked).
            self.runs.settle_all(self.max_seq, self.seen);
            self.expected_before += u64::from(self.max_seq - self.base_seq) + 1;
            self.restarts += 1;
            let ext = (((self.max_seq >> 16) + 2) << 16) | u32::from(seq);
            self.base_seq = ext - 1;
            self.max_seq = ext;
            self.runs.settled_next = ext - 1;
            self.seen = 0b11;
            self.bad_seq = None;
            SeqVerdict::InOrder
        } else {
            self.bad_seq = Some(seq.wrapping_add(1));
            SeqVerdict::OutOfOrder
        };
        match verdict {
            SeqVerdict::Duplicate => self.duplicates += 1,
            SeqVerdict::OutOfOrder => {
                self.out_of_order += 1;
                self.unique += 1;
                self.payload_bytes += payload_len as u64;
            }
            SeqVerdict::InOrder => {
                self.unique += 1;
                self.payload_bytes += payload_len as u64;
            }
        }
        (verdict, self.expected().saturating_sub(expected_before))
    }

    /// (number of loss runs, longest run), counting what is still in the reorder window too:
    /// on a copy of the runs alone (the live view asks for every call in progress each second).
    pub fn loss_runs(&self) -> (u64, u64) {
        let mut runs = self.runs;
        if self.unique > 0 {
            runs.settle_all(self.max_seq, self.seen);
        }
        (runs.bursts, runs.longest)
    }

    /// Packets expected from the sequence ranges seen.
    pub fn expected(&self) -> u64 {
        if self.unique == 0 { 0 } else { self.expected_before + u64::from(self.max_seq - self.base_seq) + 1 }
    }

    /// Packets lost in the network (expected - received, never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.unique)
    }

    /// Lost packets as a percentage of those expected.
    pub fn loss_pct(&self) -> f64 {
        let e = self.expected();
        if e == 0 { 0.0 } else { self.lost() as f64 * 100.0 / e as f64 }
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        jitter_ms(self.jitter, self.clock)
    }

    /// Payload types seen, ascending.
    pub fn payload_type_list(&self) -> Vec<u8> {
        (0..128u8).filter(|pt| self.payload_types & (1u128 << pt) != 0).collect()
    }
}

/// Jitter in timestamp units of a `clock` Hz stream, in milliseconds.
fn jitter_ms(jitter: f64, clock: u32) -> f64 {
    jitter * 1000.0 / f64::from(clock)
}

/// Capture time `time` in units of a `clock` Hz RTP clock (rounded toward zero), as the
/// 128-bit `time * clock / 10^9` gives it, without a 128-bit division on every packet: whole
/// seconds and the nanoseconds left are scaled apart, each fitting 64 bits.
#[inline]
fn arrival(time: Timestamp, clock: u32) -> i64 {
    const NS: i64 = 1_000_000_000;
    let clock = i64::from(clock);
    if time.0 < 0 {
        // Before 1970: rounding toward zero is not what the split gives. Never in a capture.
        return (i128::from(time.0) * i128::from(clock) / i128::from(NS)) as i64;
    }
    // `(s * 10^9 + r) * clock / 10^9` with `r < 10^9` is `s * clock + r * clock / 10^9` (the
    // first term is whole); `r * clock` < 10^9 * 2^32 fits.
    (time.0 / NS).wrapping_mul(clock).wrapping_add(time.0 % NS * clock / NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seq0: u16) -> StreamStats {
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        StreamStats::new(1, seq0, a, a, Timestamp(0), 8000)
    }

    fn feed(st: &mut StreamStats, seqs: &[u16]) -> Vec<SeqVerdict> {
        seqs.iter()
            .enumerate()
            .map(|(i, &q)| st.observe(q, u32::from(q) * 160, 0, Timestamp(i as i64 * 20_000_000), 160))
            .collect()
    }

    #[test]
    fn loss_duplicates_reordering_and_wrap() {
        let mut st = s(65533);
        let v = feed(&mut st, &[65533, 65534, 0, 65535, 0, 2, 3]);
        use SeqVerdict::*;
        assert_eq!(v, vec![InOrder, InOrder, InOrder, OutOfOrder, Duplicate, InOrder, InOrder]);
        assert_eq!(st.packets, 7);
        assert_eq!(st.unique, 6);
        assert_eq!(st.duplicates, 1);
        assert_eq!(st.out_of_order, 1);
        assert_eq!(st.expected(), 7); // 65533..=3
        assert_eq!(st.lost(), 1); // seq 1
        assert_eq!(st.loss_runs(), (1, 1), "the reordered packet filled its gap");
        assert!((st.loss_pct() - 100.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn loss_bursts() {
        let mut st = s(0);
        // Lost: 3-4 (burst of 2), 10 (1), 20-24 (5).
        let seqs: Vec<u16> = (0..30).filter(|q| !matches!(q, 3 | 4 | 10 | 20..=24)).collect();
        feed(&mut st, &seqs);
        assert_eq!(st.lost(), 8);
        assert_eq!(st.loss_runs(), (3, 5));
    }

    #[test]
    fn loss_runs_over_a_long_stream_and_a_restart() {
        let mut st = s(100);
        let mut seqs: Vec<u16> = (100..1100).filter(|q| q % 100 != 0 || *q == 100).collect(); // 9 single losses
        seqs.extend((1150..1200u16).filter(|q| !(1160..1163).contains(q))); // a gap of 50, then 3
        feed(&mut st, &seqs);
        assert_eq!(st.loss_runs(), (11, 50));
        assert_eq!(st.lost(), 9 + 50 + 3);
        let mut st = s(10);
        feed(&mut st, &[10, 11, 12, 40_000, 40_001, 40_003]);
        assert_eq!(st.restarts, 1);
        assert_eq!(st.expected(), 3 + 4);
        assert_eq!(st.lost(), 1);
        assert_eq!(st.loss_runs(), (1, 1));
        // A single stray far packet is not a restart.
        let mut st = s(10);
        feed(&mut st, &[10, 11, 50_000, 12, 13]);
        assert_eq!(st.restarts, 0);
        assert_eq!(st.lost(), 0);
    }

    #[test]
    fn packet_before_the_first_extends_the_range() {
        let mut st = s(100);
        feed(&mut st, &[100, 99, 101]);
        assert_eq!(st.expected(), 3);
        assert_eq!(st.lost(), 0);
        assert_eq!(st.out_of_order, 1);
    }

    #[test]
    fn telephone_events_count_in_sequence_but_not_in_jitter() {
        let mut st = s(0);
        let t = |i: i64| Timestamp(i * 20_000_000);
        // Audio 0..10, an event of 6 packets (one timestamp, the end sent three times), audio.
        for i in 0..10u16 {
            st.observe(i, u32::from(i) * 160, 0, t(i64::from(i)), 160);
        }
        for i in 10..16u16 {
            st.observe_event(i, 1600, 101, t(i64::from(i)), 4);
        }
        for i in 16..30u16 {
            st.observe(i, u32::from(i) * 160, 0, t(i64::from(i)), 160);
        }
        assert_eq!((st.packets, st.event_packets, st.events), (30, 6, 1));
        assert_eq!(st.lost(), 0);
        assert!(st.jitter_ms() < 1e-9, "{}", st.jitter_ms());
        assert!(!st.is_event_stream());
        // A stream of events alone, two key presses.
        let mut ev = s(500);
        for (i, ts) in [(0u16, 8000u32), (1, 8000), (2, 8000), (3, 16000), (4, 16000)] {
            ev.observe_event(500 + i, ts, 101, t(i64::from(i)), 4);
        }
        assert!(ev.is_event_stream());
        assert_eq!(ev.events, 2);
    }

    #[test]
    fn arrival_is_the_128_bit_product_scaled_down() {
        let wide = |t: i64, clock: u32| (i128::from(t) * i128::from(clock) / 1_000_000_000) as i64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut times = vec![0, 1, 999_999_999, 1_000_000_000, -1, -1_000_000_001, i64::MAX, i64::MIN];
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Capture times around now, and anywhere.
            times.push(1_700_000_000_000_000_000 + (x >> 4) as i64 % 100_000_000_000_000);
            times.push(x as i64);
        }
        for &t in &times {
            for clock in [1, 8000, 16_000, 48_000, 90_000, u32::MAX] {
                assert_eq!(arrival(Timestamp(t), clock), wide(t, clock), "{t} at {clock} Hz");
            }
        }
    }

    #[test]
    fn jitter_of_a_perfect_stream_is_zero_and_grows_with_delay_variation() {
        let mut st = s(0);
        for i in 0..100u16 {
            st.observe(i, u32::from(i) * 160, 0, Timestamp(i64::from(i) * 20_000_000), 160);
        }
        assert!(st.jitter_ms() < 1e-9);
        let mut st = s(0);
        for i in 0..2000u16 {
            // Alternate 0 and 10 ms of extra delay: |D| = 80 timestamp units every packet.
            let extra = if i % 2 == 0 { 0 } else { 10_000_000 };
            st.observe(i, u32::from(i) * 160, 0, Timestamp(i64::from(i) * 20_000_000 + extra), 160);
        }
        assert!((st.jitter_ms() - 10.0).abs() < 0.01, "{}", st.jitter_ms());
    }
}
