//! One party of a call as the mixer sees it: its RTP streams, how its payload types resolve,
//! where its audio goes ([`crate::mix::clock`]) and whether it can be recorded at all.

use std::net::SocketAddr;

use capture::Timestamp;
use capture::events::{MediaSecurity, RtpMeta};

use crate::mix::clock::Clock;
use crate::mix::dtmf::DtmfTracker;
use crate::mix::opus::OpusSide;
use crate::mix::srtp::SideSrtp;
use crate::mix::stream::StreamStats;

/// RTP streams (SSRCs) kept per direction; packets of further SSRCs are counted on the last.
const MAX_STREAMS_PER_SIDE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PtKind {
    Unresolved,
    Ulaw,
    Alaw,
    /// G.722 (64 kbit/s, 8 kHz RTP clock for 16 kHz audio).
    G722,
    /// Opus (48 kHz RTP clock), decoded with libopus.
    Opus,
    /// G.729 (A, B), decoded with libbcg729.
    G729,
    /// GSM 06.10, decoded with libgsm.
    Gsm,
    /// L16 mono at 8 kHz.
    L16,
    /// L16 mono at 16 kHz (16 kHz RTP clock).
    L16Wide,
    /// RFC 4733 telephone event: decoded as DTMF, silence in the audio.
    Event,
    /// RFC 3389 comfort noise: silence.
    ComfortNoise,
    Undecodable,
}

/// Encryption of a side's RTP and what it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encrypted {
    /// How it is encrypted.
    pub(crate) security: MediaSecurity,
    /// When it was recognised.
    pub(crate) since: Timestamp,
    /// One past the last frame of this side's audio placed before it was recognised (audio
    /// sent in the clear before a ZRTP handshake); 0 if none.
    pub(crate) clear_frames: u64,
    /// Audio packets not recorded.
    pub(crate) packets: u64,
    /// Why it cannot be decrypted when the reason is not the kind of encryption itself (an
    /// SDES key that cannot be used).
    pub(crate) detail: Option<&'static str>,
}

/// A run of one side's audio packets in one codec (a new one starts when the payload type
/// changes: a re-INVITE moving to another codec, or a sender alternating).
#[derive(Debug, Clone)]
pub(crate) struct CodecSegment {
    pub(crate) pt: u8,
    /// Encoding name (IANA spelling) or `PT<n>`.
    pub(crate) codec: String,
    /// Whether callvault decodes it.
    pub(crate) decoded: bool,
    pub(crate) first: Timestamp,
    pub(crate) last: Timestamp,
    pub(crate) packets: u64,
}

/// Codec segments kept per side; later changes are counted on the last one.
const MAX_SEGMENTS: usize = 16;

/// The last codec segment's payload type, and its packets (with the time of the latest) not
/// yet added to it.
#[derive(Debug, Clone, Copy, Default)]
struct SegmentTail {
    pt: Option<u8>,
    packets: u64,
    last: Timestamp,
}

#[derive(Debug)]
pub(crate) struct SideState {
    /// The stream (SSRC, source, destination) this side's last packet belonged to. Kept inline:
    /// it is touched by every packet.
    pub(crate) current: StreamStats,
    /// `current` holds a real stream.
    active: bool,
    /// Where this side's audio goes.
    pub(crate) clock: Clock,
    /// One past the last frame this side's audio reached.
    pub(crate) high: i64,
    pub(crate) kinds: [PtKind; 128],
    /// Streams this side used before `current`.
    earlier: Vec<StreamStats>,
    pub(crate) codec: Option<String>,
    pub(crate) undecodable: Option<String>,
    /// Payload types this side sent that its own SDP did not declare, with what they were
    /// taken for.
    pub(crate) undeclared: Vec<(u8, String)>,
    pub(crate) dtmf: DtmfTracker,
    /// This side's RTP is encrypted: its audio is not recorded.
    pub(crate) encrypted: Option<Encrypted>,
    /// Whether this side's latest SDP state lets it send (hold tracking).
    pub(crate) sending: bool,
    /// The codecs this side's audio came in, in time order; the last one's latest packets
    /// are counted in `tail` ([`SideState::segments`] adds them).
    segments: Vec<CodecSegment>,
    /// Packets of the last segment not yet added to it: counted here, in the side's own
    /// memory, so a packet does not also bring the segment (on the heap) into the cache.
    tail: SegmentTail,
    /// Codec changes beyond [`MAX_SEGMENTS`].
    pub(crate) segments_omitted: u32,
    /// This side's Opus decoder, from its first Opus packet.
    pub(crate) opus: Option<Box<OpusSide>>,
    /// This side's G.729 or GSM decoder, from its first packet of that codec (another codec
    /// later replaces it).
    pub(crate) narrow: Option<Box<crate::mix::narrow::NarrowSide>>,
    /// This side's L16 state, from its first L16 packet.
    pub(crate) l16: Option<Box<crate::mix::linear::L16Side>>,
    /// SRTP keyed by SDES: this side's key and streams' rollover counters.
    pub(crate) srtp: SideSrtp,
}

impl SideState {
    /// Starts loading what a packet of this side reads first (see [`CallMix::warm`]).
    ///
    /// [`CallMix::warm`]: crate::mix::call::CallMix::warm
    #[inline]
    pub(crate) fn warm(&self) {
        capture::prefetch::value(&self.current, 256);
        capture::prefetch::value(&self.clock, 128);
        capture::prefetch::line(&self.tail);
    }

    pub(crate) fn new() -> SideState {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        SideState {
            current: StreamStats::new(0, 0, nowhere, nowhere, Timestamp(0), 8000),
            active: false,
            clock: Clock::default(),
            high: 0,
            kinds: [PtKind::Unresolved; 128],
            earlier: Vec::new(),
            codec: None,
            undecodable: None,
            undeclared: Vec::new(),
            dtmf: DtmfTracker::default(),
            encrypted: None,
            sending: true,
            segments: Vec::new(),
            tail: SegmentTail::default(),
            segments_omitted: 0,
            opus: None,
            narrow: None,
            l16: None,
            srtp: SideSrtp::Clear,
        }
    }

    /// Counts an audio packet of payload type `pt` in its codec segment: a counter on the
    /// path of every packet, a new segment (`name` called) only when the codec changes.
    #[inline]
    pub(crate) fn codec_packet(&mut self, pt: u8, time: Timestamp, decoded: bool, name: impl FnOnce() -> String) {
        if self.tail.pt == Some(pt) {
            self.tail.packets += 1;
            self.tail.last = time;
            return;
        }
        if let Some(seg) = self.segments.last_mut()
            && self.tail.packets > 0
        {
            seg.packets += self.tail.packets;
            seg.last = self.tail.last;
            self.tail.packets = 0;
        }
        if self.segments.len() >= MAX_SEGMENTS {
            self.segments_omitted += 1;
            if let Some(seg) = self.segments.last_mut() {
                seg.packets += 1;
                seg.last = time;
            }
            return;
        }
        self.segments.push(CodecSegment { pt, codec: name(), decoded, first: time, last: time, packets: 1 });
        self.tail.pt = Some(pt);
    }

    /// The codecs this side's audio came in, in time order, each with its packets so far.
    pub(crate) fn segments(&self) -> impl Iterator<Item = CodecSegment> + '_ {
        let last = self.segments.len().wrapping_sub(1);
        self.segments.iter().enumerate().map(move |(i, seg)| {
            let mut seg = seg.clone();
            if i == last && self.tail.packets > 0 {
                seg.packets += self.tail.packets;
                seg.last = self.tail.last;
            }
            seg
        })
    }

    /// The stream of this packet: one per (SSRC, source, destination), as RTP analysers key
    /// them, so a stream that moves to a new address (re-INVITE) shows as two.
    #[inline]
    pub(crate) fn stream(&mut self, m: &RtpMeta) -> &mut StreamStats {
        let switches = self.switches(m);
        self.stream_of(m, switches)
    }

    /// [`SideState::stream`] when whether `m` switches streams ([`SideState::switches`]) is
    /// known.
    #[inline]
    pub(crate) fn stream_of(&mut self, m: &RtpMeta, switches: bool) -> &mut StreamStats {
        debug_assert_eq!(switches, self.switches(m));
        if switches {
            self.switch(m);
        }
        &mut self.current
    }

    /// Whether `m` belongs to another stream than the current one.
    #[inline]
    pub(crate) fn switches(&self, m: &RtpMeta) -> bool {
        let c = &self.current;
        !(self.active && c.ssrc == m.ssrc && c.src == m.src && c.dst == m.dst)
    }

    #[cold]
    fn switch(&mut self, m: &RtpMeta) {
        let same = |s: &StreamStats| s.ssrc == m.ssrc && s.src == m.src && s.dst == m.dst;
        let next = match self.earlier.iter().position(same) {
            Some(i) => self.earlier.swap_remove(i),
            None if self.earlier.len() + 1 < MAX_STREAMS_PER_SIDE => {
                StreamStats::new(m.ssrc, m.seq, m.src, m.dst, m.time, 8000)
            }
            // Too many streams: further ones are counted on the current one.
            None if self.active => return,
            None => StreamStats::new(m.ssrc, m.seq, m.src, m.dst, m.time, 8000),
        };
        let mut old = std::mem::replace(&mut self.current, next);
        if self.active {
            old.edits.clock_ppm = self.clock.ppm();
            old.edits.close();
            self.earlier.push(old);
        }
        self.active = true;
        // A new stream (SSRC change, port move) gets its own timebase.
        self.clock.new_stream();
    }

    /// Every stream of this side, in order of first packet.
    pub(crate) fn streams(&self) -> Vec<&StreamStats> {
        let mut v: Vec<&StreamStats> = self.earlier.iter().collect();
        if self.active {
            v.push(&self.current);
        }
        v.sort_by_key(|s| s.first);
        v
    }

    /// Closes the open edit logs (the call is over).
    pub(crate) fn close(&mut self) {
        self.current.edits.clock_ppm = self.clock.ppm();
        self.current.edits.close();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The segments as counting every packet on the segment itself gives them (the way
    /// before the tail): a new segment when the payload type changes, up to
    /// [`MAX_SEGMENTS`], later changes counted on the last one.
    fn oracle(packets: &[(u8, i64)]) -> (Vec<(u8, i64, i64, u64)>, u32) {
        let (mut segs, mut omitted): (Vec<(u8, i64, i64, u64)>, u32) = (Vec::new(), 0);
        for &(pt, t) in packets {
            let full = segs.len() >= MAX_SEGMENTS;
            match segs.last_mut() {
                Some(s) if s.0 == pt => (s.2, s.3) = (t, s.3 + 1),
                Some(s) if full => {
                    (s.2, s.3) = (t, s.3 + 1);
                    omitted += 1;
                }
                _ => segs.push((pt, t, t, 1)),
            }
        }
        (segs, omitted)
    }

    proptest! {
        /// Every segment's payload type, first and last packet times and packet count, and
        /// the changes omitted, are what counting on the segment itself gives, after any
        /// sequence of payload types (runs, alternations, more changes than are kept).
        #[test]
        fn segments_count_every_packet_as_the_segment_itself_would(
            runs in proptest::collection::vec((0u8..4, 1usize..6), 0..40),
        ) {
            let mut packets = Vec::new();
            for (pt, n) in runs {
                for _ in 0..n {
                    packets.push((pt, packets.len() as i64 * 20));
                }
            }
            let mut side = SideState::new();
            for &(pt, t) in &packets {
                side.codec_packet(pt, Timestamp(t), true, || format!("PT{pt}"));
            }
            let got: Vec<(u8, i64, i64, u64)> =
                side.segments().map(|s| (s.pt, s.first.0, s.last.0, s.packets)).collect();
            let (want, omitted) = oracle(&packets);
            prop_assert_eq!(got, want);
            prop_assert_eq!(side.segments_omitted, omitted);
        }
    }
}
