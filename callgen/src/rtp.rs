//! What each RTP packet of one direction carries: its header fields, its payload and its
//! addresses, for every option that changes them (early media, holds, media moves, RFC 4733
//! events, numbering changes, NAT).
//!
//! A direction's packets are numbered by their time slot: talk packet `k` is sent in slot `k`
//! (see [`crate::timeline`]), carries tone samples `k·spp ..` and, until a
//! [`StreamChange`], sequence number `seq0 + k` and timestamp `ts0 + k·spp` (`spp` scaled to
//! the codec's RTP clock: Opus counts 48 kHz, L16 at 16 kHz 16 kHz; after a codec change the
//! timestamps go on at the new codec's clock). Slots in which a held party is silent (or an
//! Opus sender's DTX) send nothing and use no sequence number; the timestamps of later
//! packets still count them (the sender's clock went on). Early-media packets come before talk
//! packet 0, on the same grid. Opus payloads come from `crate::opus`, L16 ones are the
//! tone's samples, the others are made per sample from the tone (see `crate::tone`).

use std::net::{IpAddr, SocketAddr};

use crate::opus::{self, OpusKey, OpusPackets};
use crate::spec::{CallSpec, Codec, DtmfDigit, Outcome, Scenario, StreamChange};
use crate::timeline::{self, Party, RtpSend};
use crate::tone::{ToneSource, samples_per_packet, tone_sample, tone_sample_16k};

/// Payload type of RFC 4733 telephone events in the generated SDP.
pub const TELEPHONE_EVENT_PT: u8 = 101;
/// Authentication tag of SRTP's default suite (HMAC-SHA1, 80 bits).
const SRTP_TAG: usize = 10;
/// Volume field (-dBm0) of the generated telephone events.
const EVENT_VOLUME: u8 = 10;
const MS: i64 = 1_000_000;

/// The header fields of one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) ts: u32,
    pub(crate) marker: bool,
    pub(crate) pt: u8,
}

/// What a packet carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Body {
    /// Tone samples `first ..` (of the talk tone, or of the ringback tone for early media).
    Audio { first: u64, ringback: bool },
    /// A telephone-event payload.
    Event([u8; 4]),
}

/// Early media of the callee: `count` packets in grid slots `j_max ..= j_max - count + 1`
/// before talk packet 0 (slot `-j` is `j·ptime` before it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Early {
    pub(crate) count: u32,
    pub(crate) j_max: u32,
    pub(crate) tone_hz: f64,
    /// Nominal capture time of talk packet 0.
    pub(crate) talk0_ns: i64,
    pub(crate) ptime_ns: i64,
}

impl Early {
    /// Nominal capture time of early packet `e`.
    pub(crate) fn time_ns(&self, e: u32) -> i64 {
        self.talk0_ns - i64::from(self.j_max - e) * self.ptime_ns
    }
}

/// Everything that varies packet by packet in one direction of one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamPlan {
    spp: u32,
    /// RTP timestamp units per packet of the first codec: `spp` scaled by its clock
    /// ([`Codec::rtp_clock`] / 8000: 6 for Opus, 2 for L16 at 16 kHz).
    step: u32,
    count: u32,
    codec: Codec,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    /// Packet ranges `[a, b)` not sent (held, or DTX), sorted and disjoint.
    pub(crate) muted: Vec<(u32, u32)>,
    /// Packet ranges `[a, b)` whose audio is silence.
    silent: Vec<(u32, u32)>,
    /// The Opus payload of every talk packet, when the party sends Opus.
    opus: Option<OpusPackets>,
    /// Codec changes: from packet `k` on, this codec (sorted).
    switches: Vec<(u32, Codec)>,
    /// The party's tone (for packets in a codec it changed to).
    tone_hz: f64,
    changes: Vec<StreamChange>,
    dtmf: Vec<DtmfDigit>,
    /// The events travel on their own stream: (SSRC, first sequence number).
    event_stream: Option<(u32, u16)>,
    pub(crate) early: Option<Early>,
    /// Sender address on the wire before any move, and (first packet, port) after each move.
    own: SocketAddr,
    own_moves: Vec<(u32, u16)>,
    /// Receiver address on the wire before any move, and its moves on this direction's grid.
    peer: SocketAddr,
    peer_moves: Vec<(u32, u16)>,
    /// No option changes any packet's numbering, content or addresses (the common case).
    plain: bool,
    /// Payloads are SRTP-like ciphertext (see [`crate::MediaSecurity`]).
    encrypted: bool,
    /// Real SRTP: the suite and the master key the party sends with (see [`crate::Srtp`]).
    srtp: Option<(srtp::Suite, srtp::MasterKey)>,
}

impl StreamPlan {
    /// The plan of `party`'s RTP in `spec` (empty lists when no option is used).
    pub(crate) fn new(spec: &CallSpec, party: Party) -> StreamPlan {
        let spp = samples_per_packet(spec.ptime_ms);
        let count = spec.packets_per_direction();
        let answered = matches!(spec.outcome, Outcome::Answered { .. });
        let (ssrc, seq0, ts0) = match party {
            Party::Caller => (spec.caller_ssrc, spec.caller_seq0, spec.caller_ts0),
            Party::Callee => (spec.callee_ssrc, spec.callee_seq0, spec.callee_ts0),
        };
        let first_at = |t: i64| first_packet_at(spec, party, t);
        let mut muted = Vec::new();
        let mut own_moves = Vec::new();
        let mut peer_moves = Vec::new();
        let mut switches = Vec::new();
        if answered {
            for (by, hold, resume) in timeline::holds(spec) {
                if by != party {
                    let a = first_at(hold + timeline::REPLY_DELAY_NS);
                    let b = resume.map_or(count, |r| first_at(r + timeline::REPLY_DELAY_NS));
                    if a < b {
                        muted.push((a, b));
                    }
                }
            }
            for r in timeline::reinvites(spec) {
                if let timeline::ReInviteKind::Codec(c) = r.kind {
                    switches.push((first_at(r.at_ns + timeline::REPLY_DELAY_NS), c));
                }
                if r.kind != timeline::ReInviteKind::Move {
                    continue;
                }
                let at = first_at(r.at_ns + timeline::REPLY_DELAY_NS);
                if r.by == party {
                    own_moves.push((at, r.offer_port));
                } else {
                    peer_moves.push((at, r.offer_port));
                }
            }
        }
        switches.sort_by_key(|s| s.0);
        let silent: Vec<(u32, u32)> = if answered {
            let mut v: Vec<(u32, u32)> = spec
                .silences
                .iter()
                .filter(|s| s.party == party)
                .map(|s| (s.at_packet, s.at_packet.saturating_add(s.packets)))
                .collect();
            v.sort_unstable();
            v
        } else {
            Vec::new()
        };
        let tone_hz = match party {
            Party::Caller => spec.caller_tone_hz,
            Party::Callee => spec.callee_tone_hz,
        };
        let codec_at = |k: u32| switches.iter().rev().find(|s| s.0 <= k).map_or(spec.codec_of(party), |s| s.1);
        let mut runs: Vec<(u32, u32)> = Vec::new();
        if answered {
            for k in 0..count {
                if codec_at(k) != Codec::Opus {
                    continue;
                }
                match runs.last_mut() {
                    Some(r) if r.1 == k => r.1 = k + 1,
                    _ => runs.push((k, k + 1)),
                }
            }
        }
        let opus = (!runs.is_empty()).then(|| {
            let key = OpusKey { tone_bits: tone_hz.to_bits(), spp, dtx: spec.opus_dtx, runs, silent: silent.clone() };
            opus::packets(key)
        });
        if let Some(packets) = opus.as_ref().filter(|_| spec.opus_dtx) {
            for (k, p) in packets.iter().enumerate() {
                if !p.is_empty() && p.len() <= opus::DTX_BYTES {
                    muted.push((k as u32, k as u32 + 1));
                }
            }
        }
        muted.sort_unstable();
        // Holds and DTX may meet: one range each.
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(muted.len());
        for (a, b) in muted {
            match merged.last_mut() {
                Some(m) if a <= m.1 => m.1 = m.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let muted = merged;
        let mut changes: Vec<StreamChange> = spec.stream_changes.iter().filter(|c| c.party == party).copied().collect();
        changes.sort_by_key(|c| c.at_packet);
        let mut dtmf: Vec<DtmfDigit> = spec.dtmf.iter().filter(|d| d.party == party).copied().collect();
        dtmf.sort_by_key(|d| d.at_packet);
        let early = match (party, spec.early_media, timeline::answer_ns(spec)) {
            (Party::Callee, Some(em), Some(a)) => {
                let ptime_ns = i64::from(spec.ptime_ms) * MS;
                let talk0_ns = a + timeline::CALLEE_RTP_DELAY_NS;
                let progress =
                    timeline::invite_ns(spec) + timeline::RINGING_MAX_NS.min(i64::from(spec.ring_ms) * MS / 2);
                let latest = a - timeline::EARLY_MEDIA_STOP_NS;
                let earliest = progress + timeline::EARLY_MEDIA_DELAY_NS;
                let j_min = (talk0_ns - latest + ptime_ns - 1) / ptime_ns;
                let j_max = (talk0_ns - earliest) / ptime_ns;
                (j_max >= j_min && j_min >= 1).then(|| Early {
                    count: (j_max - j_min + 1) as u32,
                    j_max: j_max as u32,
                    tone_hz: em.tone_hz,
                    talk0_ns,
                    ptime_ns,
                })
            }
            _ => None,
        };
        let caller = SocketAddr::new(spec.caller_ip, spec.caller_rtp_port);
        let callee = match spec.callee_nat {
            Some(nat) => SocketAddr::new(nat.public_ip, nat.rtp_port),
            None => SocketAddr::new(spec.callee_ip, spec.callee_rtp_port),
        };
        let (own, peer) = match party {
            Party::Caller => (caller, callee),
            Party::Callee => (callee, caller),
        };
        // Behind the NAT the callee's public port does not move.
        let nat_side = spec.callee_nat.map(|_| Party::Callee);
        if nat_side == Some(party) {
            own_moves.clear();
        } else if nat_side.is_some() {
            peer_moves.clear();
        }
        let event_stream = spec.event_streams.iter().find(|e| e.party == party).map(|e| (e.ssrc, e.seq));
        let codec = spec.codec_of(party);
        let plain = muted.is_empty()
            && switches.is_empty()
            && changes.is_empty()
            && dtmf.is_empty()
            && early.is_none()
            && own_moves.is_empty()
            && peer_moves.is_empty();
        let srtp = spec.srtp.map(|s| (s.suite, sdes_key(spec, party, s.suite, u64::from(s.wrong_key == Some(party)))));
        StreamPlan {
            plain,
            encrypted: spec.media_security.is_some(),
            srtp,
            spp,
            step: spp * (codec.rtp_clock() / 8000),
            count,
            codec,
            ssrc,
            seq0,
            ts0,
            muted,
            silent,
            opus,
            switches,
            tone_hz,
            changes,
            dtmf,
            event_stream,
            early,
            own,
            own_moves,
            peer,
            peer_moves,
        }
    }

    /// Whether talk packet `k` is not sent (its party is held).
    pub(crate) fn is_muted(&self, k: u32) -> bool {
        self.muted.iter().any(|&(a, b)| (a..b).contains(&k))
    }

    /// Packets in `[from, to)` not sent.
    fn muted_between(&self, from: u32, to: u32) -> u32 {
        self.muted.iter().map(|&(a, b)| b.min(to).saturating_sub(a.max(from))).sum()
    }

    /// Packets of the talk stream not sent.
    pub(crate) fn muted_count(&self) -> u32 {
        self.muted_between(0, self.count)
    }

    /// Early-media packets.
    pub(crate) fn early_count(&self) -> u32 {
        self.early.map_or(0, |e| e.count)
    }

    /// The numbering in force at talk packet `k`: (first packet, SSRC, seq, ts) of its epoch.
    fn epoch(&self, k: u32) -> (u32, u32, u16, u32) {
        match self.changes.iter().rev().find(|c| c.at_packet <= k) {
            Some(c) => (c.at_packet, c.ssrc, c.seq, c.ts),
            None => (0, self.ssrc, self.seq0, self.ts0),
        }
    }

    /// Packets in `[from, to)` that are events on their own stream (not numbered in the voice
    /// stream).
    fn own_events_between(&self, from: u32, to: u32) -> u32 {
        if self.event_stream.is_none() {
            return 0;
        }
        self.dtmf.iter().map(|d| (d.at_packet + d.packets + 2).min(to).saturating_sub(d.at_packet.max(from))).sum()
    }

    /// The codec packet `k` carries.
    fn codec_at(&self, k: u32) -> Codec {
        self.switches.iter().rev().find(|s| s.0 <= k).map_or(self.codec, |s| s.1)
    }

    /// RTP timestamp units from talk packet `from` to `to`, each packet counted at its
    /// codec's clock.
    fn ts_span(&self, from: u32, to: u32) -> u32 {
        let mut span = 0u32;
        let mut k = from;
        while k < to {
            let step = self.spp * (self.codec_at(k).rtp_clock() / 8000);
            let next = self.switches.iter().map(|s| s.0).find(|&s| s > k).unwrap_or(to).min(to);
            span = span.wrapping_add((next - k).wrapping_mul(step));
            k = next;
        }
        span
    }

    fn talk_header(&self, k: u32) -> (u32, u16, u32, bool) {
        let (at, ssrc, seq, ts) = self.epoch(k);
        let skipped = self.muted_between(at, k) + self.own_events_between(at, k);
        let seq = seq.wrapping_add((k - at - skipped) as u16);
        let ts = ts.wrapping_add(self.ts_span(at, k));
        let after_hold = self.muted.iter().any(|&(_, b)| b == k);
        (ssrc, seq, ts, k == at || after_hold)
    }

    /// The telephone event packet `k` belongs to, and its position in it.
    fn event_at(&self, k: u32) -> Option<(&DtmfDigit, u32)> {
        self.dtmf.iter().find(|d| (d.at_packet..d.at_packet + d.packets + 2).contains(&k)).map(|d| (d, k - d.at_packet))
    }

    /// Header and body of a packet.
    #[inline]
    pub(crate) fn packet(&self, send: &RtpSend) -> (Header, Body) {
        let k = send.index;
        if self.plain {
            let header = Header {
                ssrc: self.ssrc,
                seq: self.seq0.wrapping_add(k as u16),
                ts: self.ts0.wrapping_add(k.wrapping_mul(self.step)),
                marker: k == 0,
                pt: self.codec.payload_type(),
            };
            return (header, Body::Audio { first: u64::from(k) * u64::from(self.spp), ringback: false });
        }
        if send.early {
            let e = self.early.expect("early packet without early media");
            let j = e.j_max - k;
            let header = Header {
                ssrc: self.ssrc,
                seq: self.seq0.wrapping_sub((e.count - k) as u16),
                ts: self.ts0.wrapping_sub(j.wrapping_mul(self.step)),
                marker: k == 0,
                pt: self.codec.payload_type(),
            };
            return (header, Body::Audio { first: u64::from(k) * u64::from(self.spp), ringback: true });
        }
        let (ssrc, seq, ts, marker) = self.talk_header(k);
        if let Some((d, i)) = self.event_at(k) {
            let (_, _, start_ts, _) = self.talk_header(d.at_packet);
            let (end, units) = if i + 1 >= d.packets { (true, d.packets) } else { (false, i + 1) };
            let duration = (units * self.spp) as u16;
            let [hi, lo] = duration.to_be_bytes();
            let flags = if end { 0x80 | EVENT_VOLUME } else { EVENT_VOLUME };
            let (ssrc, seq) = match self.event_stream {
                Some((own_ssrc, seq0)) => (own_ssrc, seq0.wrapping_add(self.own_events_between(0, k) as u16)),
                None => (ssrc, seq),
            };
            let header = Header { ssrc, seq, ts: start_ts, marker: i == 0, pt: TELEPHONE_EVENT_PT };
            return (header, Body::Event([d.event, flags, hi, lo]));
        }
        let header = Header { ssrc, seq, ts, marker, pt: self.codec_at(k).payload_type() };
        (header, Body::Audio { first: u64::from(k) * u64::from(self.spp), ringback: false })
    }

    /// Sender and receiver of a packet on the wire.
    #[inline]
    pub(crate) fn addresses(&self, send: &RtpSend) -> (SocketAddr, SocketAddr) {
        if self.plain {
            return (self.own, self.peer);
        }
        let moved = |base: SocketAddr, moves: &[(u32, u16)]| {
            if send.early {
                return base;
            }
            match moves.iter().rev().find(|m| m.0 <= send.index) {
                Some(&(_, port)) => SocketAddr::new(base.ip(), port),
                None => base,
            }
        };
        (moved(self.own, &self.own_moves), moved(self.peer, &self.peer_moves))
    }

    /// The sender's SRTP rollover counter at `send`: how often the sequence numbers of its
    /// SSRC wrapped since that stream's first packet.
    fn roc(&self, send: &RtpSend) -> u32 {
        let k = send.index;
        let early = self.early.map_or(0, |e| e.count);
        // (first sequence number of the SSRC's stream, packets of it before this one)
        let (first, before) = match self.event_stream {
            _ if send.early => (self.seq0.wrapping_sub(early as u16), k),
            Some((_, own_seq0)) if self.event_at(k).is_some() => (own_seq0, self.own_events_between(0, k)),
            _ => {
                let (at, _, seq_at, _) = self.epoch(k);
                let skipped = self.muted_between(at, k) + self.own_events_between(at, k);
                if at == 0 {
                    (self.seq0.wrapping_sub(early as u16), early + k - skipped)
                } else {
                    (seq_at, k - at - skipped)
                }
            }
        };
        ((u64::from(first) + u64::from(before)) >> 16) as u32
    }

    /// Appends the packet of `send` as it goes on the wire to `out` (cleared first): the RTP
    /// packet, encrypted and authenticated when the call is SRTP.
    pub(crate) fn write(&self, send: &RtpSend, talk: &ToneSource, ringback: Option<&ToneSource>, out: &mut Vec<u8>) {
        let Some((suite, key)) = &self.srtp else {
            return self.write_clear(send, talk, ringback, out);
        };
        let mut clear = Vec::with_capacity(out.capacity());
        self.write_clear(send, talk, ringback, &mut clear);
        let ctx = srtp::Context::new(*suite, key, 0).expect("the key fits its suite");
        out.clear();
        ctx.protect_rtp(&clear, self.roc(send), out).expect("a whole RTP packet");
    }

    /// Appends the RTP packet (12-byte header and payload) of `send` to `out` (cleared first),
    /// before any SRTP.
    pub(crate) fn write_clear(
        &self,
        send: &RtpSend,
        talk: &ToneSource,
        ringback: Option<&ToneSource>,
        out: &mut Vec<u8>,
    ) {
        let (h, body) = self.packet(send);
        out.clear();
        out.push(0x80); // version 2, no padding, no extension, no CSRC
        out.push(if h.marker { 0x80 } else { 0 } | h.pt);
        out.extend_from_slice(&h.seq.to_be_bytes());
        out.extend_from_slice(&h.ts.to_be_bytes());
        out.extend_from_slice(&h.ssrc.to_be_bytes());
        if self.encrypted && self.srtp.is_none() {
            // SRTP-like: the payload (as long as the clear one) and a 10-byte authentication
            // tag, all of it random-looking.
            let len = match body {
                Body::Audio { .. } => self.codec.payload_len(self.spp as usize),
                Body::Event(_) => 4,
            } + SRTP_TAG;
            let key = crate::mix::hash(&[u64::from(h.ssrc), u64::from(h.seq), u64::from(h.ts)]);
            out.extend((0..len).map(|i| (crate::mix::hash(&[key, i as u64 / 8]) >> (8 * (i % 8))) as u8));
            return;
        }
        let at = out.len();
        let codec = if send.early { self.codec } else { self.codec_at(send.index) };
        if codec == Codec::Opus
            && let Body::Audio { ringback: false, .. } = body
        {
            let packets = self.opus.as_ref().expect("an Opus stream has its packets");
            return out.extend_from_slice(&packets[send.index as usize]);
        }
        if let (Codec::L16 | Codec::L16Wide, Body::Audio { first, ringback }) = (codec, body) {
            let freq = match (ringback, self.early) {
                (true, Some(e)) => e.tone_hz,
                _ => self.tone_hz,
            };
            let silent = !send.early && self.silent.iter().any(|&(a, b)| (a..b).contains(&send.index));
            let sample = |n: u64| {
                if silent {
                    0
                } else if codec == Codec::L16 {
                    tone_sample(freq, n)
                } else {
                    tone_sample_16k(freq, n)
                }
            };
            let (from, count) =
                if codec == Codec::L16 { (first, u64::from(self.spp)) } else { (2 * first, 2 * u64::from(self.spp)) };
            for n in from..from + count {
                out.extend_from_slice(&sample(n).to_be_bytes());
            }
            return;
        }
        match body {
            Body::Audio { first, ringback: false } if codec != self.codec => {
                ToneSource::Direct { codec, freq_hz: self.tone_hz }.fill(first, self.spp as usize, out)
            }
            Body::Audio { first, ringback: false } => talk.fill(first, self.spp as usize, out),
            Body::Audio { first, ringback: true } => {
                ringback.expect("early packet without a ringback tone").fill(first, self.spp as usize, out)
            }
            Body::Event(p) => return out.extend_from_slice(&p),
        }
        if !send.early && self.silent.iter().any(|&(a, b)| (a..b).contains(&send.index)) {
            let zero = codec.encode(0);
            out[at..].fill(zero);
        }
        codec.pack(out, at);
    }
}

/// The SDES master key (and salt) `party` of `spec` announces for `suite` (`which` 0), or
/// another one (`which` 1: the decoy line of an offer, or the key of a party that sends with
/// another key than its SDP's).
pub fn sdes_key(spec: &CallSpec, party: Party, suite: srtp::Suite, which: u64) -> srtp::MasterKey {
    let ssrc = match party {
        Party::Caller => spec.caller_ssrc,
        Party::Callee => spec.callee_ssrc,
    };
    let bytes: Vec<u8> = (0..suite.master_len() as u64)
        .map(|i| (crate::mix::hash(&[u64::from(ssrc), 0x5ec, which, i / 8]) >> (8 * (i % 8))) as u8)
        .collect();
    srtp::MasterKey::new(&bytes).expect("no suite's key is longer than 46 bytes")
}

/// The RTP packet of `send` before SRTP (the same as [`rtp_packet`] for calls in the clear):
/// what a recorder with the keys recovers.
pub fn rtp_packet_clear(scenario: &Scenario, call_index: usize, party: Party, send: &RtpSend) -> Vec<u8> {
    let spec = &scenario.calls[call_index];
    let plan = StreamPlan::new(spec, party);
    let tone_hz = match party {
        Party::Caller => spec.caller_tone_hz,
        Party::Callee => spec.callee_tone_hz,
    };
    let talk = ToneSource::Direct { codec: spec.codec, freq_hz: tone_hz };
    let ringback = spec.early_media.map(|e| ToneSource::Direct { codec: spec.codec, freq_hz: e.tone_hz });
    let mut out = Vec::new();
    plan.write_clear(send, &talk, ringback.as_ref(), &mut out);
    out
}

/// The exact packet (RTP header and payload, SRTP when the call is) the generator writes for
/// `send`, a packet of [`RtpSchedule::new`](crate::RtpSchedule::new)`(scenario, call_index,
/// party)`.
pub fn rtp_packet(scenario: &Scenario, call_index: usize, party: Party, send: &RtpSend) -> Vec<u8> {
    let spec = &scenario.calls[call_index];
    let plan = StreamPlan::new(spec, party);
    let tone_hz = match party {
        Party::Caller => spec.caller_tone_hz,
        Party::Callee => spec.callee_tone_hz,
    };
    let codec = spec.codec_of(party);
    let talk = ToneSource::Direct { codec, freq_hz: tone_hz };
    let ringback = spec.early_media.map(|e| ToneSource::Direct { codec, freq_hz: e.tone_hz });
    let mut out = Vec::new();
    plan.write(send, &talk, ringback.as_ref(), &mut out);
    out
}

/// Sender and receiver address on the wire of `send`, a packet of
/// [`RtpSchedule::new`](crate::RtpSchedule::new)`(scenario, call_index, party)`.
pub fn rtp_addresses(scenario: &Scenario, call_index: usize, party: Party, send: &RtpSend) -> (SocketAddr, SocketAddr) {
    StreamPlan::new(&scenario.calls[call_index], party).addresses(send)
}

/// The first talk packet of `party` whose nominal capture time is at or after `t`
/// (`packets_per_direction` if none is).
pub(crate) fn first_packet_at(spec: &CallSpec, party: Party, t: i64) -> u32 {
    let (mut lo, mut hi) = (0u32, spec.packets_per_direction());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if timeline::rtp_nominal_ns(spec, party, mid).is_some_and(|x| x < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The address SIP of `party` uses on the wire: its own, or the NAT's for a callee behind one.
pub(crate) fn sip_address(spec: &CallSpec, party: Party) -> (IpAddr, u16) {
    match (party, spec.callee_nat) {
        (Party::Caller, _) => (spec.caller_ip, spec.caller_sip_port),
        (Party::Callee, Some(nat)) => (nat.public_ip, nat.sip_port),
        (Party::Callee, None) => (spec.callee_ip, spec.callee_sip_port),
    }
}
