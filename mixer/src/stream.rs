//! Per-stream RTP statistics (one stream = one SSRC in one direction), after RFC 3550
//! appendix A: extended sequence numbers, expected vs received, interarrival jitter.

use std::net::SocketAddr;

use capture::Timestamp;

/// How far back duplicate detection remembers sequence numbers.
const DUP_WINDOW: u32 = 64;

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
    /// First packet's capture time.
    pub first: Timestamp,
    /// Last packet's capture time.
    pub last: Timestamp,
    base_seq: u32,
    max_seq: u32,
    seen: u64,
    jitter: f64,
    last_transit: Option<i64>,
    clock: u32,
}

impl StreamStats {
    /// Starts a stream at its first packet.
    pub fn new(ssrc: u32, seq: u16, src: SocketAddr, dst: SocketAddr, time: Timestamp, clock: u32) -> StreamStats {
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
            first: time,
            last: time,
            // Extended numbers start one cycle up so a packet just before the first never
            // goes negative.
            base_seq: (1 << 16) | u32::from(seq),
            max_seq: ((1 << 16) | u32::from(seq)).wrapping_sub(1),
            seen: 0,
            jitter: 0.0,
            last_transit: None,
            clock: clock.max(1),
        }
    }

    /// Accounts one packet and says whether it is new, reordered or a duplicate.
    pub fn observe(&mut self, seq: u16, rtp_ts: u32, pt: u8, time: Timestamp, payload_len: usize) -> SeqVerdict {
        self.packets += 1;
        self.payload_types |= 1u128 << (pt & 0x7f);
        if time > self.last {
            self.last = time;
        }
        // Extend the 16-bit number to the cycle closest to the highest seen.
        let max_low = self.max_seq as u16;
        let delta = seq.wrapping_sub(max_low) as i16;
        let ext = self.max_seq.wrapping_add_signed(i32::from(delta));
        let verdict = if self.unique == 0 || ext > self.max_seq {
            let shift = ext.wrapping_sub(self.max_seq);
            self.seen = if self.unique == 0 || shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.max_seq = ext;
            SeqVerdict::InOrder
        } else {
            let back = self.max_seq - ext;
            if back < DUP_WINDOW && self.seen & (1 << back) != 0 {
                SeqVerdict::Duplicate
            } else {
                if back < DUP_WINDOW {
                    self.seen |= 1 << back;
                }
                if ext < self.base_seq {
                    self.base_seq = ext;
                }
                SeqVerdict::OutOfOrder
            }
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
        if verdict != SeqVerdict::Duplicate {
            // RFC 3550 A.8: J += (|D| - J) / 16, in timestamp units.
            let arrival = (i128::from(time.0) * i128::from(self.clock) / 1_000_000_000) as i64;
            let transit = arrival.wrapping_sub(i64::from(rtp_ts));
            if let Some(prev) = self.last_transit {
                let d = (transit - prev).unsigned_abs() as f64;
                // Timestamp jumps (new talkspurt base, SSRC reuse) are not jitter.
                if d < f64::from(self.clock) * 10.0 {
                    self.jitter += (d - self.jitter) / 16.0;
                }
            }
            self.last_transit = Some(transit);
        }
        verdict
    }

    /// Packets expected from the sequence range seen.
    pub fn expected(&self) -> u64 {
        if self.unique == 0 { 0 } else { u64::from(self.max_seq - self.base_seq) + 1 }
    }

    /// Packets lost in the network (expected - received, never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.unique)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock)
    }

    /// Payload types seen, ascending.
    pub fn payload_type_list(&self) -> Vec<u8> {
        (0..128u8).filter(|pt| self.payload_types & (1u128 << pt) != 0).collect()
    }
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
