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
    /// The codecs this side's audio came in, in time order.
    pub(crate) segments: Vec<CodecSegment>,
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
        if let Some(seg) = self.segments.last_mut().filter(|s| s.pt == pt) {
            seg.packets += 1;
            seg.last = time;
            return;
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
