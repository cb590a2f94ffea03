//! One call's mixing state: its parties' clocks and streams, its timeline, and what the record
//! will need to say about it.

use std::path::PathBuf;

use capture::Timestamp;
use capture::codec::{Codec, PayloadDesc, PayloadMap};
use capture::events::{CallRef, CallStart, MediaAnnounce, MediaSecurity, Party, RtpMeta, Side};
use capture::wire::sdp::Direction;

use super::NS_PER_SAMPLE;
use super::clock::Env;
use super::disk::DiskGuard;
use super::dtmf::Edges;
use super::evidence::Evidence;
use super::pause::{Asked, Effect, Key, PauseCodes, PauseState};
use super::rtcp::EndpointView;
use super::side::{Encrypted, PtKind, SideState};
use super::srtp::{self, Keying, SideSrtp};
use super::stats::MixerStats;
use super::stream::StreamStats;
use super::timeline::WriteSize;
use super::timeline::{Law, Timeline};

#[derive(Debug)]
pub(crate) struct CallMix {
    pub(crate) call: CallRef,
    pub(crate) call_id: String,
    pub(crate) start: Timestamp,
    /// From and To, for the sidecar written beside an audio file in progress.
    pub(crate) parties: Box<(Party, Party)>,
    pub(crate) wav_path: PathBuf,
    pub(crate) timeline: Option<Timeline>,
    pub(crate) origin: Timestamp,
    pub(crate) sides: [SideState; 2],
    /// Latest media announcement by owner (index = owner side).
    pub(crate) media: [Option<Box<MediaAnnounce>>; 2],
    /// The party whose SDP came first (the offerer): the other one's is the answer.
    pub(crate) offerer: Option<Side>,
    pub(crate) write_error: Option<String>,
    /// RTP dropped inside callvault before it reached the mixer.
    pub(crate) capture_drops: u64,
    /// Packets the kernel dropped (of any call) while this call was up.
    pub(crate) kernel_drops: u64,
    /// Packets a capture limit shed (of any call) while this call was up.
    pub(crate) limit_sheds: u64,
    /// This call's RTP packets cut short by the snapshot length.
    pub(crate) snaplen_cut: u64,
    /// RTCP reports per (source SSRC, reporting side).
    pub(crate) reports: Vec<(u32, Side, EndpointView)>,
    /// The evidence capture, once the first frame came.
    pub(crate) evidence: Option<Evidence>,
    pub(crate) evidence_error: Option<String>,
    /// Pauses of the recording (PCI DSS), when codes are configured.
    pub(crate) pause: PauseState,
}

impl CallMix {
    /// Starts loading the state a packet from `side` reads first (a prefetch: see
    /// [`capture::events::EventSink::warm`]).
    #[inline]
    pub(crate) fn warm(&self, side: Side) {
        capture::prefetch::line(&self.call);
        self.sides[side.index()].warm();
        // Its address, not its contents: whether there is one yet is a load that would wait.
        // All of it (240 bytes): the ring's state placing reads, and the latest pages'
        // addresses [`CallMix::warm_later`] follows.
        capture::prefetch::value(&self.timeline, 256);
    }

    /// The step after [`CallMix::warm`], a few packets later: the page the side's next codes
    /// most likely go to.
    #[inline]
    pub(crate) fn warm_later(&self, side: Side) {
        if let Some(tl) = self.timeline.as_ref() {
            tl.warm(side.index());
        }
    }

    /// A call that has just started; its audio goes to `wav_path` once it has some.
    pub(crate) fn new(call: CallRef, info: CallStart, wav_path: PathBuf) -> CallMix {
        CallMix {
            call,
            call_id: info.call_id,
            start: info.start,
            parties: Box::new((info.from, info.to)),
            wav_path,
            timeline: None,
            origin: Timestamp(0),
            sides: [SideState::new(), SideState::new()],
            media: [None, None],
            offerer: None,
            write_error: None,
            capture_drops: 0,
            kernel_drops: 0,
            limit_sheds: 0,
            snaplen_cut: 0,
            reports: Vec::new(),
            evidence: None,
            evidence_error: None,
            pause: PauseState::default(),
        }
    }

    /// Telephone events that may pause or resume the recording (see [`crate::mix::pause`]).
    pub(crate) fn pause_keys(&mut self, m: &RtpMeta, edges: Edges, codes: &PauseCodes) {
        if let Some((ts, duration)) = edges.ended {
            self.key_end(m.side, ts, duration);
        }
        if let Some((event, ts)) = edges.started {
            let si = m.side.index();
            // Where the key starts: through its party's clock, else by its capture time.
            let pos = match &self.timeline {
                None => 0,
                Some(_) => self.sides[si]
                    .clock
                    .position_of(ts)
                    .unwrap_or_else(|| m.time.since(self.origin) / super::NS_PER_SAMPLE),
            };
            let closed = self.timeline.as_ref().map_or(0, |t| t.closed() as i64);
            let key = Key { side: m.side, event, rtp_ts: ts, pos, time: m.time };
            if let Effect::Pause(from) = self.pause.key(codes, key, closed) {
                tracing::info!(call_id = %self.call_id, "recording paused by DTMF");
                if let Some(tl) = self.timeline.as_mut() {
                    tl.mute_from(from.max(0) as u64);
                }
            }
        }
        if let Some((ts, duration)) = edges.started_ended {
            self.key_end(m.side, ts, duration);
        }
    }

    /// Where capture time `time` falls on the recording (0 before it has audio).
    fn position_at(&self, time: Timestamp) -> i64 {
        match &self.timeline {
            None => 0,
            Some(_) => time.since(self.origin) / NS_PER_SAMPLE,
        }
    }

    /// Pauses (`pause`) or resumes the recording where capture time `time` falls, as asked by
    /// `trigger` (a SIP header, the HTTP API).
    pub(crate) fn ask_pause(&mut self, pause: bool, trigger: String, time: Timestamp) -> Asked {
        let pos = self.position_at(time);
        let closed = self.timeline.as_ref().map_or(0, |t| t.closed() as i64);
        let asked = self.pause.ask(pause, trigger, pos, time, closed);
        match asked {
            Asked::Paused(from) => {
                tracing::info!(call_id = %self.call_id, "recording paused");
                if let Some(tl) = self.timeline.as_mut() {
                    tl.mute_from(from.max(0) as u64);
                }
            }
            Asked::Resumed(to) => {
                tracing::info!(call_id = %self.call_id, "recording resumed");
                if let Some(tl) = self.timeline.as_mut() {
                    tl.unmute_at(to.max(0) as u64);
                }
            }
            Asked::Unchanged => {}
        }
        asked
    }

    /// A DTMF key sent in a SIP INFO at `time`, which may complete a pause or resume code; it
    /// lasts `duration_ms` (0 when the INFO does not say).
    pub(crate) fn info_key(&mut self, side: Side, event: u8, duration_ms: u32, time: Timestamp, codes: &PauseCodes) {
        let pos = self.position_at(time);
        let closed = self.timeline.as_ref().map_or(0, |t| t.closed() as i64);
        // An INFO has no RTP timestamp: 0 names it, and it ends as soon as it starts.
        let key = Key { side, event, rtp_ts: 0, pos, time };
        if let Effect::Pause(from) = self.pause.key(codes, key, closed) {
            tracing::info!(call_id = %self.call_id, "recording paused by DTMF (SIP INFO)");
            if let Some(tl) = self.timeline.as_mut() {
                tl.mute_from(from.max(0) as u64);
            }
        }
        let duration = i64::from(duration_ms.min(60_000)) * (1_000_000 / NS_PER_SAMPLE);
        if let Some(to) = self.pause.key_end(side, 0, duration) {
            tracing::info!(call_id = %self.call_id, "recording resumed by DTMF (SIP INFO)");
            if let Some(tl) = self.timeline.as_mut() {
                tl.unmute_at(to.max(0) as u64);
            }
        }
    }

    fn key_end(&mut self, side: Side, ts: u32, duration: u16) {
        if let Some(to) = self.pause.key_end(side, ts, i64::from(duration)) {
            tracing::info!(call_id = %self.call_id, "recording resumed by DTMF");
            if let Some(tl) = self.timeline.as_mut() {
                tl.unmute_at(to.max(0) as u64);
            }
        }
    }

    /// What side `si`'s clock needs to know about the call.
    #[inline]
    pub(crate) fn env(&self, si: usize, max_skew: i64) -> Env {
        let tl = self.timeline.as_ref();
        Env {
            written: tl.map_or(0, |t| t.written() as i64),
            high: self.sides[si].high,
            max_skew,
            // Only a side without a mapping of its own starts from the other one's.
            other: if self.sides[si].clock.has_mapping() { None } else { self.sides[1 - si].clock.mapping() },
            rebase: (tl.is_none_or(|t| t.end() == 0) && self.sides.iter().all(|s| s.high == 0))
                .then(|| self.sides[1 - si].clock.held_start()),
        }
    }

    /// Places samples of side `si` at `pos`; what cannot be placed any more is late.
    pub(crate) fn put(
        &mut self,
        si: usize,
        pos: i64,
        payload: &[u8],
        law: Law,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let Some(tl) = self.timeline.as_mut() else { return Ok(()) };
        let len = match (law, &self.sides[si].narrow) {
            (Law::Opus | Law::Opus48, _) => super::opus::positions(payload).unwrap_or(0),
            (Law::Decoded8k, Some(n)) => super::narrow::positions(n.codec(), payload).unwrap_or(0),
            (Law::L16 | Law::L16Wide, _) => super::linear::positions(law == Law::L16Wide, payload).unwrap_or(0),
            _ => payload.len() as i64,
        };
        if pos < 0 {
            // Before the recording's first frame: only a packet reordered across the start.
            self.late(si, pos, len, stats);
            return Ok(());
        }
        let placed = if matches!(law, Law::Opus | Law::Opus48) {
            let Some(opus) = self.sides[si].opus.as_mut() else { return Ok(()) };
            match opus.decode(pos, payload) {
                Ok(start) => {
                    // Samples of a gap before the recording's start are left out.
                    let pcm = &opus.pcm[(-start.min(0)) as usize * opus.per_position()..];
                    let at = start.max(0) as u64;
                    if law == Law::Opus48 {
                        tl.place_pcm48(si, at, pcm, scratch)?
                    } else {
                        tl.place_pcm(si, at, pcm, law, scratch)?
                    }
                }
                Err(e) => {
                    stats.undecodable_packets += 1;
                    tracing::debug!(call_id = %self.call_id, "{e}");
                    return Ok(());
                }
            }
        } else if law == Law::Decoded8k {
            let Some(narrow) = self.sides[si].narrow.as_mut() else { return Ok(()) };
            match narrow.decode(pos, payload) {
                Ok(start) => {
                    tl.place_pcm8(si, start.max(0) as u64, &narrow.pcm[(-start.min(0)) as usize..], scratch)?
                }
                Err(e) => {
                    stats.undecodable_packets += 1;
                    tracing::debug!(call_id = %self.call_id, "{e}");
                    return Ok(());
                }
            }
        } else if matches!(law, Law::L16 | Law::L16Wide) {
            let Some(l16) = self.sides[si].l16.as_mut() else { return Ok(()) };
            l16.decode(payload);
            if law == Law::L16 {
                tl.place_pcm8(si, pos as u64, &l16.pcm, scratch)?
            } else {
                tl.place_pcm(si, pos as u64, &l16.pcm, Law::Opus, scratch)?
            }
        } else {
            tl.place(si, pos as u64, payload, law, scratch)?
        };
        let side = &mut self.sides[si];
        side.high = side.high.max(pos + len);
        if placed.late_samples > 0 {
            stats.late_packets += 1;
            side.current.late += 1;
            side.current.edits.late(pos, i64::from(placed.late_samples));
        }
        Ok(())
    }

    /// A packet of side `si` whose place (`pos`) was written long ago.
    pub(crate) fn late(&mut self, si: usize, pos: i64, len: i64, stats: &mut MixerStats) {
        stats.late_packets += 1;
        let side = &mut self.sides[si];
        side.current.late += 1;
        side.current.edits.late(pos, len);
    }

    /// Side `si`'s held suspects were late after all.
    pub(crate) fn reject(&mut self, si: usize, stats: &mut MixerStats) {
        let rejected = self.sides[si].clock.take_rejected();
        for (pos, len) in rejected {
            self.late(si, pos, len, stats);
        }
    }

    /// Side `si`'s clock chose its anchor: moves the origin if asked, then places every held
    /// packet.
    pub(crate) fn release(
        &mut self,
        si: usize,
        rebase: i64,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        if rebase != 0 {
            self.origin = self.origin.add_nanos(rebase * NS_PER_SAMPLE);
            self.sides[1 - si].clock.rebase(rebase);
            super::sidecar::write_sidecar(self);
        }
        let side = &mut self.sides[si];
        let Some((held, bytes)) = side.clock.take_held() else { return Ok(()) };
        for h in &held {
            let side = &mut self.sides[si];
            let pos = side.clock.place_held(h, &mut side.current.edits);
            self.put(si, pos, &bytes[h.range()], h.pkt.law, stats, scratch)?;
        }
        Ok(())
    }

    /// Compares the parties' clocks (see [`crate::mix::clock::balance`]).
    pub(crate) fn balance(&mut self, hold: u32) {
        // A fixed pair, not a collected Vec: this runs on the per-packet path.
        let progress = [0, 1].map(|i| self.sides[i].clock.progress(self.sides[i].high));
        let hi = progress.iter().flatten().copied().max().unwrap_or(0);
        let active = progress.iter().all(|p| p.is_some_and(|p| p >= hi - i64::from(hold)));
        let [a, b] = &mut self.sides;
        crate::mix::clock::balance([&mut a.clock, &mut b.clock], active);
    }

    /// Frames settle once the slowest party sending has got past them by the reorder
    /// window, or once the leading party is further ahead than the hold bound: progress is
    /// RTP time, never capture time, so a stall or a faster replay changes nothing. Settled
    /// audio is written in chunks of `write`, each once `disk` says there is room for it;
    /// `Ok(false)`: there was not, and nothing was written.
    #[inline]
    pub(crate) fn settle(
        &mut self,
        reorder: i64,
        hold: i64,
        write: WriteSize,
        scratch: &mut Vec<u8>,
        disk: &mut DiskGuard,
    ) -> std::io::Result<bool> {
        let Some(tl) = self.timeline.as_mut() else { return Ok(true) };
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for s in &self.sides {
            if let Some(p) = s.clock.progress(s.high) {
                lo = lo.min(p);
                hi = hi.max(p);
            }
        }
        if hi == i64::MIN {
            return Ok(true);
        }
        let target = (lo - reorder).max(hi - hold).max(0);
        tl.settle_within(target as u64, write, scratch, |bytes| disk.room_for(bytes))
    }

    /// Writing the recording failed: nothing more is written, the record says why.
    pub(crate) fn fail(&mut self, e: &std::io::Error, stats: &mut MixerStats) {
        stats.write_errors += 1;
        tracing::error!(call_id = %self.call_id, path = %self.wav_path.display(), "cannot write recording: {e}");
        self.write_error = Some(format!("writing {} failed: {e}", self.wav_path.display()));
    }

    /// Chooses the anchor of side `si`'s held packets now and places them (its stream ends,
    /// or the call does).
    pub(crate) fn release_now(
        &mut self,
        si: usize,
        max_skew: i64,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        if !self.sides[si].clock.holding() {
            return Ok(());
        }
        if self.timeline.is_none() || self.write_error.is_some() {
            self.sides[si].clock.discard_held();
            return Ok(());
        }
        if self.sides[si].clock.suspecting() {
            // Undecided when the stream ended: late under the timebase they were behind.
            self.reject(si, stats);
            return Ok(());
        }
        let env = self.env(si, max_skew);
        let side = &mut self.sides[si];
        let rebase = side.clock.release(&env, &mut side.current.edits);
        self.release(si, rebase, stats, scratch)
    }

    /// Places whatever is still held (the call ends).
    pub(crate) fn drain(
        &mut self,
        max_skew: i64,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        for si in 0..2 {
            self.release_now(si, max_skew, stats, scratch)?;
        }
        for s in &mut self.sides {
            stats.slips += s
                .streams()
                .iter()
                .map(|st| st.edits.slips.len() as u64 + u64::from(st.edits.slips_omitted))
                .sum::<u64>();
            s.close();
        }
        Ok(())
    }

    /// `side`'s RTP is encrypted: nothing more of it is recorded. What it sent before (in the
    /// clear: a ZRTP handshake precedes the encryption, an SDP the media) is kept.
    pub(crate) fn encrypt(
        &mut self,
        side: Side,
        security: MediaSecurity,
        time: Timestamp,
        env: (i64, &mut MixerStats, &mut Vec<u8>),
    ) {
        let si = side.index();
        if self.sides[si].encrypted.is_some() {
            return;
        }
        let (max_skew, stats, scratch) = env;
        if let Err(e) = self.release_now(si, max_skew, stats, scratch) {
            self.fail(&e, stats);
        }
        let s = &mut self.sides[si];
        s.encrypted =
            Some(Encrypted { security, since: time, clear_frames: s.high.max(0) as u64, packets: 0, detail: None });
    }

    /// Keys each party's SRTP from its own SDP's `a=crypto` line (the key it sends with),
    /// after a new SDP of a call whose media is SDES-SRTP. A party whose key cannot be used is
    /// encrypted with no audio (and the record says why); a party whose SDP has not been seen
    /// waits for its key, its packets not decoded.
    pub(crate) fn key_sdes(&mut self, time: Timestamp, env: (i64, &mut MixerStats, &mut Vec<u8>)) {
        let (max_skew, stats, scratch) = env;
        for side in [Side::Caller, Side::Callee] {
            let si = side.index();
            let (own, other) = (self.media[si].as_deref(), self.media[1 - si].as_deref());
            let keying = match own {
                Some(m) if srtp::is_sdes(Some(m)) => srtp::keying(m, other, &self.sides[si].srtp),
                Some(m) => {
                    if let Some(security) = m.security {
                        self.encrypt(side, security, time, (max_skew, &mut *stats, &mut *scratch));
                    }
                    self.sides[si].srtp = SideSrtp::Clear;
                    continue;
                }
                None => {
                    if !self.sides[si].srtp.is_sdes() {
                        self.sides[si].srtp = SideSrtp::Unkeyed { packets: 0 };
                    }
                    continue;
                }
            };
            match keying {
                Keying::Unchanged => {}
                Keying::Key(k) => {
                    if !self.sides[si].srtp.is_sdes()
                        && self.sides[si].clock.holding()
                        && let Err(e) = self.release_now(si, max_skew, stats, scratch)
                    {
                        self.fail(&e, stats);
                    }
                    self.sides[si].srtp = SideSrtp::Keyed(k);
                }
                Keying::Unusable(why) => {
                    self.sides[si].srtp = SideSrtp::Clear;
                    self.encrypt(side, MediaSecurity::Sdes, time, (max_skew, &mut *stats, &mut *scratch));
                    if let Some(e) = self.sides[si].encrypted.as_mut() {
                        e.detail.get_or_insert(why);
                    }
                }
            }
        }
    }

    /// Whether the call agreed on a wideband codec: the first audio codec of the answer (the
    /// one both parties send), so its recording starts at 16 kHz.
    pub(crate) fn negotiated_wideband(&self) -> bool {
        let Some(answerer) = self.offerer.map(Side::other) else { return false };
        let Some(answer) = self.media[answerer.index()].as_ref() else { return false };
        let first =
            answer.payloads.entries().iter().find(|d| !matches!(d.codec, Codec::TelephoneEvent | Codec::ComfortNoise));
        first.is_some_and(|d| d.codec == Codec::G722)
    }

    /// Notes which parties the latest SDP lets send: a party that may not send is on hold,
    /// and the silence after it is explained by that.
    pub(crate) fn note_directions(&mut self) {
        let dir = |i: usize| self.media[i].as_ref().map_or(Direction::SendRecv, |m| m.direction);
        for si in 0..2 {
            let sending = dir(si).sends() && dir(1 - si).receives();
            let s = &mut self.sides[si];
            if s.sending && !sending {
                s.clock.hints.hold = true;
            }
            s.sending = sending;
        }
    }
}

/// Resolves (and caches) what a payload type means for RTP sent by `sender`: the sender's own
/// SDP first (what it said it would use), then the other party's (a sender using what it was
/// offered, or echoing it back), then the static table. A payload type its own SDP did not
/// declare is remembered for the record.
#[inline]
pub(crate) fn resolve(call: &mut CallMix, sender: Side, pt: u8) -> PtKind {
    // Every packet asks; the answer is cached from the first one of its payload type on.
    match call.sides[sender.index()].kinds[usize::from(pt & 0x7f)] {
        PtKind::Unresolved => resolve_new(call, sender, pt & 0x7f),
        cached => cached,
    }
}

/// [`resolve`] for a payload type not resolved since the last SDP.
#[cold]
fn resolve_new(call: &mut CallMix, sender: Side, pt: u8) -> PtKind {
    let si = sender.index();
    let (desc, declared) = lookup(&call.media, sender, pt);
    let kind = match desc.as_ref().map(|d| d.codec) {
        Some(Codec::Pcmu) => PtKind::Ulaw,
        Some(Codec::Pcma) => PtKind::Alaw,
        Some(Codec::G722) => PtKind::G722,
        Some(Codec::Opus) => PtKind::Opus,
        Some(Codec::G729) => PtKind::G729,
        Some(Codec::Gsm) => PtKind::Gsm,
        Some(Codec::L16) if desc.as_ref().is_some_and(|d| d.clock == 16_000) => PtKind::L16Wide,
        Some(Codec::L16) => PtKind::L16,
        Some(Codec::TelephoneEvent) => PtKind::Event,
        Some(Codec::ComfortNoise) => PtKind::ComfortNoise,
        _ => PtKind::Undecodable,
    };
    let side = &mut call.sides[si];
    side.kinds[pt as usize] = kind;
    let name = desc.map_or_else(|| format!("PT{pt}"), |d| d.encoding);
    if !declared && side.undeclared.len() < 8 && !side.undeclared.iter().any(|(p, _)| *p == pt) {
        side.undeclared.push((pt, name.clone()));
    }
    if !matches!(kind, PtKind::Event | PtKind::ComfortNoise) && side.codec.is_none() {
        side.codec = Some(name.clone());
    }
    if kind == PtKind::Undecodable && side.undecodable.is_none() {
        side.undecodable = Some(format!("{name} (PT {pt})"));
    }
    kind
}

/// What payload type `pt` sent by `sender` is (see [`resolve`]), and whether the sender's own
/// SDP declared it (true when the sender announced no SDP: nothing to hold it to).
pub(crate) fn lookup(media: &[Option<Box<MediaAnnounce>>; 2], sender: Side, pt: u8) -> (Option<PayloadDesc>, bool) {
    let find = |side: Side| media[side.index()].as_ref().map(|m| m.payloads.entries().iter().find(|d| d.pt == pt));
    let own = find(sender);
    let declared = !matches!(own, Some(None));
    let desc =
        own.flatten().or_else(|| find(sender.other()).flatten()).cloned().or_else(|| PayloadMap::default().get(pt));
    (desc, declared)
}

/// The codec of one stream: what its audio payload type resolved to, `telephone-event` for a
/// stream of events alone.
pub(crate) fn stream_codec(media: &[Option<Box<MediaAnnounce>>; 2], side: Side, st: &StreamStats) -> Option<String> {
    let pt = match st.audio_pt {
        Some(pt) => pt,
        None => (0..128u8).find(|pt| st.payload_types & (1u128 << pt) != 0)?,
    };
    Some(lookup(media, side, pt).0.map_or_else(|| format!("PT{pt}"), |d| d.encoding))
}
