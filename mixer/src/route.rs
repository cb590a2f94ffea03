//! The mixer's router: call events and RTP in, each packet routed to its call's [`CallMix`]
//! (one open audio file per call with media), and a [`PendingRecording`] out to the wiring's
//! [`Drain`] when the call ends.
//!
//! Per RTP packet the mixer does a slot lookup, a sequence-number check, a 256-entry table
//! decode into the call's ring and (every few kilobytes) one `write`. It allocates nothing per
//! packet. The heavy, blocking part of finishing a recording (fsync, hashing, the JSON) is
//! left to [`crate::finish`], off this thread.

use std::path::PathBuf;

use capture::events::{
    CallEvent, CallInfo, CallRef, CallStart, DropCause, EventSink, MediaSecurity, RecordingControl, RtcpMeta, RtpMeta,
    Side,
};
use capture::{LinkType, Timestamp};

use crate::mix::NS_PER_SAMPLE;
use crate::mix::audio::AudioConfig;
use crate::mix::call::{CallMix, lookup, resolve};
use crate::mix::clock::{Pkt, Route};
use crate::mix::disk::DiskGuard;
use crate::mix::evidence::Evidence;
use crate::mix::narrow::{self, NarrowCodec, NarrowSide};
use crate::mix::opus::OpusSide;
use crate::mix::pause::{Asked, PauseCodes};
use crate::mix::rtcp::EndpointView;
use crate::mix::side::PtKind;
use crate::mix::sidecar::write_sidecar;
use crate::mix::srtp::SideSrtp;
use crate::mix::stats::MixerStats;
use crate::mix::stream::SeqVerdict;
use crate::mix::timeline::{Law, Timeline, TimelineConfig, WriteSize};
use crate::pending::Drain;

/// Sources whose RTCP reports are kept per call.
const MAX_REPORTED_SOURCES: usize = 16;

/// What [`Mixer::ask_pause`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseAnswer {
    /// The call changed state (false: it was paused, or running, already).
    pub changed: bool,
    /// The call is paused now.
    pub paused: bool,
    /// Pauses of the call so far.
    pub pauses: usize,
}

/// Mixer settings.
#[derive(Debug, Clone)]
pub struct MixerConfig {
    /// Directory for recordings in progress (same filesystem as the spool).
    pub work_dir: PathBuf,
    /// Prefix of work file names, unique per run so files left by an earlier run (after a
    /// crash) are never reused.
    pub run_id: String,
    /// Ring and reorder window sizing.
    pub timeline: TimelineConfig,
    /// Format and channel layout of the recordings.
    pub audio: AudioConfig,
    /// A packet whose RTP timestamp is further than this (frames) from where its stream's
    /// least delayed packets put it is a timestamp discontinuity (see [`crate::clock`]), not
    /// jitter or a stall. Default 8000 (1 s).
    pub max_skew_frames: i64,
    /// Free space kept on the work directory's filesystem: below it audio stops being written
    /// so that call records still fit (see the `disk` module). 0: none. Default 64 MiB.
    pub min_free_bytes: u64,
    /// DTMF codes that pause and resume recording (PCI DSS), if any.
    pub pause: Option<PauseCodes>,
    /// The SIP header that pauses and resumes recording (set on the capture side), named in
    /// the record's pauses.
    pub pause_header: Option<String>,
}

impl MixerConfig {
    /// Defaults with the given work directory and run id (chosen by the caller, see
    /// [`MixerConfig::run_id`]: the mixer itself never reads the clock).
    pub fn new(work_dir: PathBuf, run_id: String) -> MixerConfig {
        MixerConfig {
            work_dir,
            run_id,
            timeline: TimelineConfig::default(),
            audio: AudioConfig::default(),
            max_skew_frames: 8000,
            min_free_bytes: 64 << 20,
            pause: None,
            pause_header: None,
        }
    }
}

/// The mixer. Implements [`EventSink`], so it can sit directly behind a capture engine
/// (tests, tools) or behind a channel (the threaded pipeline). Ended calls go to `D`.
#[derive(Debug)]
pub struct Mixer<D> {
    cfg: MixerConfig,
    /// By call slot; boxed, so a slot without a call (another mixer's, or free) costs a pointer.
    calls: Vec<Option<Box<CallMix>>>,
    stats: MixerStats,
    drain: D,
    /// Decode buffer for writes, shared by all calls so it stays in cache.
    scratch: Vec<u8>,
    /// The free-space reserve.
    disk: DiskGuard,
    /// How far written audio may trail the leading party (`TimelineConfig::hold`).
    hold: u32,
    /// Where SRTP and SRTCP packets are decrypted to (grown to the longest packet seen, then
    /// reused: nothing is allocated per packet).
    plain: Vec<u8>,
    /// Calls with state here.
    open: usize,
    /// How much audio each call writes at once, by the number of calls ([`WriteSize::for_calls`]).
    write: WriteSize,
}

impl<D: Drain> Mixer<D> {
    /// A mixer writing into `cfg.work_dir` and handing ended calls to `drain`.
    pub fn new(cfg: MixerConfig, drain: D) -> std::io::Result<Mixer<D>> {
        std::fs::create_dir_all(&cfg.work_dir)?;
        let disk = DiskGuard::new(cfg.work_dir.clone(), cfg.min_free_bytes);
        let hold = cfg.timeline.hold();
        Ok(Mixer {
            cfg,
            calls: Vec::new(),
            stats: MixerStats::default(),
            drain,
            scratch: Vec::new(),
            disk,
            hold,
            plain: vec![0; 2048],
            open: 0,
            write: WriteSize::for_calls(0),
        })
    }

    /// The drain (a test's `Vec` of ended calls, say).
    pub fn drain_mut(&mut self) -> &mut D {
        &mut self.drain
    }

    /// Counters so far.
    pub fn stats(&self) -> &MixerStats {
        &self.stats
    }

    /// The calls in progress, as of the packets mixed so far, appended to `out`.
    pub fn live(&self, out: &mut Vec<crate::LiveCall>) {
        out.extend(self.calls.iter().flatten().map(|c| crate::live::of(c)));
    }

    /// Calls with state in the mixer.
    pub fn open_calls(&self) -> usize {
        self.open
    }

    fn call_mut(&mut self, r: CallRef) -> Option<&mut CallMix> {
        self.calls.get_mut(r.slot as usize)?.as_deref_mut().filter(|c| c.call == r)
    }

    fn start(&mut self, call: CallRef, info: CallStart) {
        let idx = call.slot as usize;
        if self.calls.len() <= idx {
            self.calls.resize_with(idx + 1, || None);
        }
        let wav_path = self.cfg.work_dir.join(format!(
            "{}-{}-{}.{}",
            self.cfg.run_id,
            call.slot,
            call.generation,
            self.cfg.audio.format.ext()
        ));
        if self.calls[idx].replace(Box::new(CallMix::new(call, info, wav_path))).is_none() {
            self.open += 1;
            self.write = WriteSize::for_calls(self.open);
        }
    }

    fn end(&mut self, call: CallRef, info: &CallInfo) {
        let Some(slot) = self.calls.get_mut(call.slot as usize) else { return };
        let Some(mut mix) = slot.take_if(|c| c.call == call) else { return };
        self.open -= 1;
        self.write = WriteSize::for_calls(self.open);
        self.stats.calls_finished += 1;
        let before = mix.timeline.as_ref().map_or(0, Timeline::written);
        if let Err(e) = mix.drain(self.cfg.max_skew_frames, &mut self.stats, &mut self.scratch)
            && mix.write_error.is_none()
        {
            self.stats.write_errors += 1;
            mix.write_error = Some(format!("writing {} failed: {e}", mix.wav_path.display()));
        }
        if let Some(tl) = mix.timeline.as_ref() {
            self.disk.wrote(tl.bytes_at_most(tl.written() - before));
        }
        // The rest of the audio is written as the call finishes: it asks the reserve too.
        if mix.write_error.is_none()
            && let Some(tl) = mix.timeline.as_ref()
            && tl.end() > tl.written()
            && !self.disk.room_for(tl.bytes_at_most(tl.end() - tl.written()))
        {
            reserve_hit(&mut mix, &mut self.stats, &self.disk);
        }
        let pending =
            crate::finish::report::finish_call(*mix, info, self.cfg.audio, &mut self.stats, &mut self.scratch);
        self.drain.finished(pending);
    }

    /// Pauses (`pause`) or resumes the recording of the call in progress whose SIP Call-ID is
    /// `call_id`, from where capture time `time` falls, naming `trigger` in its record (the
    /// HTTP API). `None`: no such call in this mixer.
    pub fn ask_pause(&mut self, call_id: &str, pause: bool, trigger: String, time: Timestamp) -> Option<PauseAnswer> {
        let call = self.calls.iter_mut().flatten().find(|c| c.call_id == call_id)?;
        let changed = call.ask_pause(pause, trigger, time) != Asked::Unchanged;
        Some(PauseAnswer { changed, paused: call.pause.paused(), pauses: call.pause.pauses.len() })
    }

    /// Ends every call still open (the capture side normally does this through events).
    pub fn abandon_all(&mut self) -> usize {
        let n = self.open_calls();
        self.calls.clear();
        self.open = 0;
        self.write = WriteSize::for_calls(0);
        n
    }
}

impl<D: Drain> EventSink for Mixer<D> {
    #[inline]
    fn rtp(&mut self, m: &RtpMeta, rtp: &[u8]) {
        self.stats.rtp_packets += 1;
        let Mixer { cfg, calls, stats, scratch, disk, hold, plain, write, .. } = self;
        let Some(call) =
            calls.get_mut(m.call.slot as usize).and_then(Option::as_deref_mut).filter(|c| c.call == m.call)
        else {
            stats.rtp_orphans += 1;
            return;
        };
        let mut packet = Packet { cfg, stats, scratch, disk, hold: *hold, write: *write };
        let payload = match call.sides[m.side.index()].srtp {
            SideSrtp::Clear => m.payload(rtp),
            _ => match packet.unprotect(call, m, rtp, plain) {
                Some(n) => &plain[..n],
                None => return,
            },
        };
        let Some((law, verdict)) = packet.classify(call, m, payload) else { return };
        if payload.is_empty() || call.write_error.is_some() || !packet.open(call, m.time, law) {
            return;
        }
        packet.place(call, m, payload, law, verdict);
    }

    #[inline]
    fn warm(&self, m: &RtpMeta) {
        if let Some(Some(call)) = self.calls.get(m.call.slot as usize) {
            call.warm(m.side);
        }
    }

    #[inline]
    fn warm_later(&self, m: &RtpMeta) {
        if let Some(Some(call)) = self.calls.get(m.call.slot as usize) {
            call.warm_later(m.side);
        }
    }

    fn frame(&mut self, call: CallRef, time: Timestamp, link: LinkType, frame: &[u8]) {
        let Some(c) = self.call_mut(call) else { return };
        if c.evidence_error.is_some() {
            return;
        }
        if c.evidence.is_none() {
            let path = c.wav_path.with_extension("pcap");
            match Evidence::create(&path, link) {
                Ok(e) => {
                    c.evidence = Some(e);
                    if c.timeline.is_none() {
                        write_sidecar(c);
                    }
                }
                Err(e) => {
                    tracing::error!(call_id = %c.call_id, "cannot create evidence capture {}: {e}", path.display());
                    c.evidence_error = Some(format!("cannot create {}: {e}", path.display()));
                    return;
                }
            }
        }
        if let Some(ev) = c.evidence.as_mut()
            && let Err(e) = ev.write(time, link, frame)
        {
            tracing::error!(call_id = %c.call_id, "cannot write evidence capture {}: {e}", ev.path().display());
            c.evidence_error = Some(format!("writing {} failed: {e}", ev.path().display()));
        }
    }

    fn rtcp(&mut self, meta: &RtcpMeta, packet: &[u8]) {
        let Mixer { calls, stats, plain, .. } = self;
        let Some(call) =
            calls.get_mut(meta.call.slot as usize).and_then(Option::as_deref_mut).filter(|c| c.call == meta.call)
        else {
            return;
        };
        let packet = match &mut call.sides[meta.side.index()].srtp {
            SideSrtp::Clear => packet,
            // Without the key an SRTCP packet's reports cannot be read.
            SideSrtp::Unkeyed { .. } => return,
            SideSrtp::Keyed(k) => {
                if plain.len() < packet.len() {
                    plain.resize(packet.len(), 0);
                }
                match k.unprotect_rtcp(packet, plain) {
                    Ok(n) => {
                        stats.srtcp_decrypted += 1;
                        &plain[..n]
                    }
                    Err(_) => {
                        stats.srtcp_auth_failures += 1;
                        k.rtcp_auth_failures += 1;
                        return;
                    }
                }
            }
        };
        for block in crate::mix::rtcp::report_blocks(packet) {
            let i = match call.reports.iter().position(|r| r.0 == block.source && r.1 == meta.side) {
                Some(i) => i,
                None if call.reports.len() < MAX_REPORTED_SOURCES => {
                    call.reports.push((block.source, meta.side, EndpointView::default()));
                    call.reports.len() - 1
                }
                None => continue,
            };
            call.reports[i].2.add(&block, 8000);
        }
    }

    fn call(&mut self, event: CallEvent) {
        match event {
            CallEvent::Started { call, info } => self.start(call, *info),
            CallEvent::Media { call, media } => {
                let max_skew = self.cfg.max_skew_frames;
                let Some(c) =
                    self.calls.get_mut(call.slot as usize).and_then(Option::as_deref_mut).filter(|c| c.call == call)
                else {
                    return;
                };
                // Payload types are re-resolved for both directions after any new SDP.
                for s in &mut c.sides {
                    s.kinds = [PtKind::Unresolved; 128];
                }
                let (owner, time, security) = (media.owner, media.time, media.security);
                c.offerer.get_or_insert(owner);
                c.media[owner.index()] = Some(media);
                c.note_directions();
                if security == Some(MediaSecurity::Sdes) || c.sides.iter().any(|s| s.srtp.is_sdes()) {
                    // SDES: each party's own SDP keys what it sends.
                    c.key_sdes(time, (max_skew, &mut self.stats, &mut self.scratch));
                } else if let Some(security) = security {
                    // One media line keys both directions.
                    for side in [Side::Caller, Side::Callee] {
                        c.encrypt(side, security, time, (max_skew, &mut self.stats, &mut self.scratch));
                    }
                }
            }
            CallEvent::Encrypted { call, side, security } => {
                let max_skew = self.cfg.max_skew_frames;
                let Some(c) =
                    self.calls.get_mut(call.slot as usize).and_then(Option::as_deref_mut).filter(|c| c.call == call)
                else {
                    return;
                };
                let time = c.sides[side.index()].current.last;
                for side in [Side::Caller, Side::Callee] {
                    c.encrypt(side, security, time, (max_skew, &mut self.stats, &mut self.scratch));
                }
            }
            CallEvent::Dropped { call, packets, cause } => {
                if let Some(c) = self.call_mut(call) {
                    match cause {
                        DropCause::Queue => c.capture_drops += packets,
                        DropCause::Kernel => c.kernel_drops += packets,
                        DropCause::Limit => c.limit_sheds += packets,
                        DropCause::Snaplen => {
                            c.snaplen_cut += packets;
                            return;
                        }
                    }
                    for s in &mut c.sides {
                        s.clock.hints.dropped = true;
                    }
                }
            }
            CallEvent::Control { call, time, control } => {
                let codes = self.cfg.pause.clone();
                let header = self.cfg.pause_header.clone();
                let Some(c) = self.call_mut(call) else { return };
                match control {
                    RecordingControl::Header { pause, side, method } => {
                        let name = header.as_deref().unwrap_or("pause header");
                        let verb = if pause { "pause" } else { "resume" };
                        c.ask_pause(pause, format!("sip {name}: {verb} ({method} from {})", side.as_str()), time);
                    }
                    RecordingControl::InfoKey { side, event, duration_ms } => {
                        if let Some(codes) = &codes {
                            c.info_key(side, event, duration_ms.unwrap_or(0), time, codes);
                        }
                    }
                }
            }
            CallEvent::Ended { call, info } => self.end(call, &info),
        }
    }
}

/// Less than the reserve is free: the call keeps the audio it has (see
/// `report::finish_call`) and writes no more; the reserve is for call records.
fn reserve_hit(call: &mut CallMix, stats: &mut MixerStats, disk: &DiskGuard) {
    if call.write_error.is_none() {
        stats.write_errors += 1;
        stats.reserve_hits += 1;
        call.write_error = Some(disk.reason());
    }
}

/// What one RTP packet's way through the mixer uses besides its call: the mixer's settings,
/// counters, decode buffer and free-space reserve, borrowed for the packet.
struct Packet<'a> {
    cfg: &'a MixerConfig,
    stats: &'a mut MixerStats,
    scratch: &'a mut Vec<u8>,
    disk: &'a mut DiskGuard,
    hold: u32,
    write: WriteSize,
}

impl Packet<'_> {
    /// Verifies and decrypts the SRTP packet of a party keyed by SDES into `plain`: its
    /// payload length, or `None` when it is not to be decoded (its key not seen yet, or it
    /// failed authentication: counted on its stream, and the gap it leaves says so).
    #[inline]
    fn unprotect(&mut self, call: &mut CallMix, m: &RtpMeta, rtp: &[u8], plain: &mut Vec<u8>) -> Option<usize> {
        let si = m.side.index();
        if plain.len() < rtp.len() {
            plain.resize(rtp.len(), 0);
        }
        let result = match &mut call.sides[si].srtp {
            SideSrtp::Clear => return None,
            SideSrtp::Unkeyed { packets } => {
                *packets += 1;
                self.stats.encrypted_packets += 1;
                return None;
            }
            SideSrtp::Keyed(k) => k.unprotect(m, rtp, plain),
        };
        match result {
            Ok(n) => {
                self.stats.srtp_decrypted += 1;
                Some(n)
            }
            Err(_) => {
                self.stats.srtp_auth_failures += 1;
                if call.sides[si].switches(m)
                    && call.sides[si].clock.holding()
                    && let Err(e) = call.release_now(si, self.cfg.max_skew_frames, self.stats, self.scratch)
                {
                    call.fail(&e, self.stats);
                }
                let side = &mut call.sides[si];
                side.stream(m).auth_failures += 1;
                side.clock.hints.auth_failed = Some(m.seq);
                None
            }
        }
    }

    /// Accounts the packet to its stream and says what it is: the G.711 law of audio to
    /// place, with its sequence verdict, or `None` when nothing is to be placed (a duplicate,
    /// an event or comfort noise, an undecodable codec, encrypted media).
    #[inline]
    fn classify(&mut self, call: &mut CallMix, m: &RtpMeta, payload: &[u8]) -> Option<(Law, SeqVerdict)> {
        let si = m.side.index();
        let switches = call.sides[si].switches(m);
        if switches && call.sides[si].clock.holding() {
            // The stream before still has packets held aside: place them first.
            if let Err(e) = call.release_now(si, self.cfg.max_skew_frames, self.stats, self.scratch) {
                call.fail(&e, self.stats);
            }
        }
        let kind = resolve(call, m.side, m.pt);
        // Placing held packets and resolving the payload type leave the current stream as it
        // was: whether this packet switches streams is already known.
        let stream = call.sides[si].stream_of(m, switches);
        let verdict = if kind == PtKind::Event {
            stream.observe_event(m.seq, m.rtp_ts, m.pt, m.time, payload.len())
        } else {
            if kind != PtKind::ComfortNoise && stream.audio_pt.is_none() {
                stream.audio_pt = Some(m.pt & 0x7f);
                if kind == PtKind::Opus {
                    // Opus's RTP clock: the stream's jitter is counted in its units.
                    stream.set_clock(48_000);
                } else if kind == PtKind::L16Wide {
                    stream.set_clock(16_000);
                }
            }
            stream.observe(m.seq, m.rtp_ts, m.pt, m.time, payload.len())
        };
        if verdict == SeqVerdict::Duplicate {
            self.stats.duplicates += 1;
            return None;
        }
        if matches!(
            kind,
            PtKind::Ulaw
                | PtKind::Alaw
                | PtKind::G722
                | PtKind::Opus
                | PtKind::G729
                | PtKind::Gsm
                | PtKind::L16
                | PtKind::L16Wide
                | PtKind::Undecodable
        ) {
            let pt = m.pt & 0x7f;
            let media = &call.media;
            call.sides[si].codec_packet(pt, m.time, kind != PtKind::Undecodable, || {
                lookup(media, m.side, pt).0.map_or_else(|| format!("PT{pt}"), |d| d.encoding)
            });
        }
        let law = match kind {
            PtKind::Ulaw => Law::Ulaw,
            PtKind::Alaw => Law::Alaw,
            PtKind::G722 => Law::G722,
            PtKind::Opus => {
                let side = &mut call.sides[si];
                let rate = if self.cfg.audio.opus_48k { 48_000 } else { 16_000 };
                if side.opus.is_none() {
                    match OpusSide::new(rate) {
                        Ok(o) => side.opus = Some(Box::new(o)),
                        Err(e) => {
                            tracing::error!(call_id = %call.call_id, "{e}");
                            self.stats.undecodable_packets += 1;
                            return None;
                        }
                    }
                }
                if self.cfg.audio.opus_48k { Law::Opus48 } else { Law::Opus }
            }
            PtKind::G729 | PtKind::Gsm => {
                let codec = if kind == PtKind::G729 { NarrowCodec::G729 } else { NarrowCodec::Gsm };
                let side = &mut call.sides[si];
                if side.narrow.as_ref().is_none_or(|n| n.codec() != codec) {
                    match NarrowSide::new(codec) {
                        Ok(n) => side.narrow = Some(Box::new(n)),
                        Err(e) => {
                            tracing::error!(call_id = %call.call_id, "{e}");
                            self.stats.undecodable_packets += 1;
                            return None;
                        }
                    }
                }
                Law::Decoded8k
            }
            PtKind::L16 | PtKind::L16Wide => {
                let side = &mut call.sides[si];
                if side.l16.is_none() {
                    side.l16 = Some(Box::default());
                }
                if kind == PtKind::L16 { Law::L16 } else { Law::L16Wide }
            }
            PtKind::Event | PtKind::ComfortNoise => {
                self.stats.signal_packets += 1;
                let side = &mut call.sides[si];
                if kind == PtKind::Event {
                    let edges = side.dtmf.packet(m.side, m.rtp_ts, m.time, payload, 8000);
                    if let Some(codes) = &self.cfg.pause {
                        call.pause_keys(m, edges, codes);
                    }
                }
                if verdict == SeqVerdict::InOrder {
                    call.sides[si].clock.hints.signal_seq = Some(m.seq);
                }
                return None;
            }
            PtKind::Undecodable | PtKind::Unresolved => {
                self.stats.undecodable_packets += 1;
                return None;
            }
        };
        if let Some(e) = call.sides[si].encrypted.as_mut() {
            e.packets += 1;
            self.stats.encrypted_packets += 1;
            return None;
        }
        Some((law, verdict))
    }

    /// Creates the call's audio file at its first audio packet (whose capture time becomes the
    /// recording's origin); false when it cannot be written (the record says why).
    #[inline]
    fn open(&mut self, call: &mut CallMix, time: Timestamp, law: Law) -> bool {
        call.timeline.is_some() || self.create(call, time, law)
    }

    /// [`Packet::open`] at the call's first audio packet.
    #[cold]
    fn create(&mut self, call: &mut CallMix, time: Timestamp, law: Law) -> bool {
        if !self.disk.room_for_new() {
            self.stats.write_errors += 1;
            self.stats.reserve_hits += 1;
            call.write_error = Some(self.disk.reason());
            return false;
        }
        let rate = law.rate().max(if call.negotiated_wideband() { 16_000 } else { 8000 });
        match Timeline::create(&call.wav_path, self.cfg.timeline, self.cfg.audio, rate) {
            Ok(mut t) => {
                // A pause keyed before any audio covers the recording from its start.
                if call.pause.paused() {
                    t.mute_from(0);
                }
                call.timeline = Some(t);
                call.origin = time;
                write_sidecar(call);
                true
            }
            Err(e) => {
                self.stats.write_errors += 1;
                tracing::error!(call_id = %call.call_id, path = %call.wav_path.display(), "cannot create recording: {e}");
                call.write_error = Some(format!("cannot create {}: {e}", call.wav_path.display()));
                false
            }
        }
    }

    /// Routes an audio packet through its side's clock onto the timeline, then settles what
    /// the parties' progress allows and charges what was written to the free-space reserve.
    #[inline]
    fn place(&mut self, call: &mut CallMix, m: &RtpMeta, payload: &[u8], law: Law, verdict: SeqVerdict) {
        let si = m.side.index();
        let (ts, len) = match (law, call.sides[si].opus.as_mut()) {
            // Opus: a 48 kHz clock, and packets as long as their TOC says.
            (Law::Opus | Law::Opus48, Some(opus)) => match crate::mix::opus::positions(payload) {
                Some(len) => (opus.scaled_ts(m.rtp_ts), len),
                None => {
                    self.stats.undecodable_packets += 1;
                    return;
                }
            },
            (Law::L16, _) => match crate::mix::linear::positions(false, payload) {
                Some(len) => (m.rtp_ts, len),
                None => {
                    self.stats.undecodable_packets += 1;
                    return;
                }
            },
            (Law::L16Wide, _) => match (crate::mix::linear::positions(true, payload), call.sides[si].l16.as_mut()) {
                (Some(len), Some(l16)) => (l16.scaled_ts(m.rtp_ts), len),
                _ => {
                    self.stats.undecodable_packets += 1;
                    return;
                }
            },
            (Law::Decoded8k, _) => {
                match call.sides[si].narrow.as_ref().and_then(|n| narrow::positions(n.codec(), payload)) {
                    Some(len) => (m.rtp_ts, len),
                    None => {
                        self.stats.undecodable_packets += 1;
                        return;
                    }
                }
            }
            _ => (m.rtp_ts, payload.len() as i64),
        };
        let pkt = Pkt {
            time: m.time,
            now: m.time.since(call.origin) / NS_PER_SAMPLE,
            ts,
            seq: m.seq,
            marker: m.marker,
            in_order: verdict == SeqVerdict::InOrder,
            len,
            law,
        };
        let before = call.timeline.as_ref().map_or(0, Timeline::written);
        let result = self.route(call, si, pkt, payload);
        if let Some(tl) = call.timeline.as_ref()
            && tl.written() > before
        {
            // A write the ring forced: counted, the next write asks.
            self.disk.wrote(tl.bytes_at_most(tl.written() - before));
        }
        if call.sides[si].clock.take_block_closed() {
            call.balance(self.hold);
        }
        let reorder = i64::from(self.cfg.timeline.reorder_frames);
        let result =
            result.and_then(|()| call.settle(reorder, i64::from(self.hold), self.write, self.scratch, self.disk));
        match result {
            Ok(true) => {}
            Ok(false) => reserve_hit(call, self.stats, self.disk),
            Err(e) => call.fail(&e, self.stats),
        }
    }

    /// Does what side `si`'s clock says with the packet: place it, count it late, hold it
    /// aside, or release what was held.
    #[inline]
    fn route(&mut self, call: &mut CallMix, si: usize, pkt: Pkt, payload: &[u8]) -> std::io::Result<()> {
        loop {
            let env = call.env(si, self.cfg.max_skew_frames);
            let side = &mut call.sides[si];
            return match side.clock.arrive(pkt, payload, &env, &mut side.current.edits) {
                Route::Place(pos) => call.put(si, pos, payload, pkt.law, self.stats, self.scratch),
                Route::Late(pos) => {
                    call.late(si, pos, pkt.len, self.stats);
                    Ok(())
                }
                Route::Held => Ok(()),
                Route::Release(rebase) => call.release(si, rebase, self.stats, self.scratch),
                Route::Reject => {
                    call.reject(si, self.stats);
                    continue;
                }
            };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::path::Path;

    use capture::events::{CallInfo, CallState, EndReason, Party};

    use super::*;
    use crate::mix::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
    use crate::pending::PendingRecording;

    pub(crate) const CALL: CallRef = CallRef { slot: 0, generation: 1 };
    pub(crate) const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    pub(crate) fn mixer(dir: &Path) -> Mixer<Vec<PendingRecording>> {
        let mut cfg = MixerConfig::new(dir.to_path_buf(), "t".into());
        cfg.min_free_bytes = 0;
        let mut m = Mixer::new(cfg, Vec::new()).unwrap();
        let info =
            CallStart { call_id: "c1".into(), start: Timestamp(T0), from: Party::default(), to: Party::default() };
        m.call(CallEvent::Started { call: CALL, info: Box::new(info) });
        m
    }

    fn addr(side: Side) -> SocketAddr {
        if side == Side::Caller { "10.0.0.1:4000".parse().unwrap() } else { "10.0.0.2:5000".parse().unwrap() }
    }

    /// Packet `k` of `side`'s 20 ms stream (payload type `pt`), sent on time.
    pub(crate) fn meta(side: Side, k: u16, pt: u8) -> RtpMeta {
        RtpMeta {
            call: CALL,
            side,
            time: Timestamp(T0 + i64::from(k) * 20 * MS),
            src: addr(side),
            dst: addr(side.other()),
            seq: 100 + k,
            rtp_ts: 8000 + u32::from(k) * 160,
            ssrc: 0x1000 + side.index() as u32,
            pt,
            marker: k == 0,
            payload_at: 0,
            padding: 0,
        }
    }

    /// The G.711 codes of packet `k` of `side`: different in every sample.
    pub(crate) fn codes(side: Side, k: u16) -> Vec<u8> {
        (0..160u16).map(|i| (side.index() as u16 * 101 + k * 37 + i) as u8).collect()
    }

    pub(crate) fn info(end_reason: EndReason) -> CallInfo {
        let a: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        CallInfo {
            call_id: "c1".into(),
            from: Party::default(),
            to: Party::default(),
            asserted: None,
            caller_signalling: a,
            callee_signalling: "10.0.0.2:5060".parse().unwrap(),
            caller_media: None,
            callee_media: None,
            start: Timestamp(T0),
            ringing: None,
            answer: Some(Timestamp(T0)),
            end: Timestamp(T0 + 1000 * MS),
            state: CallState::Completed,
            end_reason,
            ended_by: Some(Side::Caller),
            final_code: Some(200),
            sip_messages: 5,
            invites: 1,
            retransmissions: 0,
            early_dialogs: 1,
            dtmf: Vec::new(),
            holds: Vec::new(),
            transport: capture::decode::Transport::Udp,
            joined: false,
            ambiguous_media: Vec::new(),
            challenges: Vec::new(),
            other_media: Vec::new(),
            ladder: Vec::new(),
            ladder_omitted: 0,
        }
    }

    pub(crate) fn end(m: &mut Mixer<Vec<PendingRecording>>, reason: EndReason) -> PendingRecording {
        m.call(CallEvent::Ended { call: CALL, info: Box::new(info(reason)) });
        assert_eq!(m.open_calls(), 0);
        m.drain_mut().pop().expect("the ended call reached the drain")
    }

    /// The recording's stereo frames.
    pub(crate) fn frames(p: &PendingRecording) -> Vec<(i16, i16)> {
        let mut r = hound::WavReader::open(&p.audio[0].0).unwrap();
        assert_eq!(r.spec().channels, 2);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        s.chunks(2).map(|c| (c[0], c[1])).collect()
    }

    /// What the recording must hold: each party's packets at `k * 160`, silence elsewhere.
    fn expected(caller: &[u16], callee: &[u16], len: usize, table: &[i16; 256]) -> Vec<(i16, i16)> {
        let mut out = vec![(0i16, 0i16); len];
        for &k in caller {
            for (i, &c) in codes(Side::Caller, k).iter().enumerate() {
                out[usize::from(k) * 160 + i].0 = table[c as usize];
            }
        }
        for &k in callee {
            for (i, &c) in codes(Side::Callee, k).iter().enumerate() {
                out[usize::from(k) * 160 + i].1 = table[c as usize];
            }
        }
        out
    }

    #[test]
    fn each_sample_lands_where_its_rtp_timestamp_puts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        // 3 s of audio (more than a write's worth): the first packets are held aside until the stream's anchor is chosen,
        // the later ones are placed as they come. Packets 3 and 4, then 43 and 44, arrive
        // swapped; packets 5 and 45 twice.
        let order = (0u16..150).flat_map(|k| match k {
            3 | 43 => vec![k + 1],
            4 | 44 => vec![k - 1],
            5 | 45 => vec![k, k],
            _ => vec![k],
        });
        for k in order {
            for side in [Side::Caller, Side::Callee] {
                let mut meta = meta(side, k, 0);
                if matches!(k, 3 | 4 | 43 | 44) {
                    let first = k - k % 10 + 3;
                    meta.time = Timestamp(T0 + i64::from(first) * 20 * MS + i64::from(k == first) * 20 * MS);
                }
                m.rtp(&meta, &codes(side, k));
            }
        }
        let stats = m.stats().clone();
        assert_eq!(stats.rtp_packets, 304);
        assert_eq!(stats.duplicates, 4);
        assert_eq!(stats.late_packets, 0);
        assert!(m.calls[0].as_ref().unwrap().timeline.as_ref().unwrap().written() > 0, "placed as they came");
        let p = end(&mut m, EndReason::Bye);
        let all: Vec<u16> = (0..150).collect();
        assert_eq!(frames(&p), expected(&all, &all, 24_000, &ULAW_TO_LINEAR));
    }

    #[test]
    fn a_lost_packet_leaves_its_place_silent_and_the_alaw_party_is_decoded_as_alaw() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        for k in 0u16..10 {
            if k != 4 {
                m.rtp(&meta(Side::Caller, k, 8), &codes(Side::Caller, k));
            }
        }
        let p = end(&mut m, EndReason::Bye);
        let sent: Vec<u16> = (0..10).filter(|&k| k != 4).collect();
        assert_eq!(frames(&p), expected(&sent, &[], 1600, &ALAW_TO_LINEAR));
        assert_eq!(p.record.streams.len(), 1);
        assert_eq!(p.record.streams[0].lost, 1);
        assert_eq!(p.record.codecs.caller.as_deref(), Some("PCMA"));
    }

    #[test]
    fn packets_that_carry_no_audio_are_counted_not_placed() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        let orphan = RtpMeta { call: CallRef { slot: 7, generation: 1 }, ..meta(Side::Caller, 0, 0) };
        m.rtp(&orphan, &codes(Side::Caller, 0));
        // G.723.1 (static payload type 4) is not decoded; comfort noise (13) is silence.
        m.rtp(&meta(Side::Caller, 0, 4), &[0; 24]);
        m.rtp(&meta(Side::Callee, 0, 13), &[40]);
        let s = m.stats().clone();
        assert_eq!((s.rtp_packets, s.rtp_orphans, s.undecodable_packets, s.signal_packets), (3, 1, 1, 1));
        let p = end(&mut m, EndReason::Bye);
        assert!(p.audio.is_empty(), "no audio file for a call without decodable audio");
        assert!(p.record.audio.is_none());
        assert!(!p.record.capture_complete);
        assert!(p.record.incomplete_reasons.iter().any(|r| r.contains("G723 (PT 4) could not be decoded")));
    }

    /// Each mixer indexes calls by the global slot: a slot must cost a pointer, not a call
    /// (20,000 calls over two mixers made that 94 MB), and a call's own state stays within
    /// its budget (the ring's pages and per-stream parts are allocated apart).
    #[test]
    fn a_slot_costs_a_pointer_and_a_call_stays_within_its_budget() {
        assert_eq!(std::mem::size_of::<Option<Box<CallMix>>>(), std::mem::size_of::<usize>());
        let size = std::mem::size_of::<CallMix>();
        assert!(size <= 2560, "CallMix is {size} bytes: box what grew");
    }
}
