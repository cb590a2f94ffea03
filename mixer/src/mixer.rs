//! The mixer: call events and RTP in, one open WAV per call with media, and a
//! [`PendingRecording`] out when the call ends.
//!
//! Per RTP packet the mixer does a slot lookup, a sequence-number check, a 256-entry table
//! decode into the call's ring and (every few kilobytes) one `write`. It allocates nothing per
//! packet. The heavy, blocking part of finishing a recording (fsync, hashing, the JSON) is
//! left to [`crate::finish`], off this thread.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

use capture::codec::{Codec, PayloadDesc, PayloadMap};
use capture::events::{
    CallEvent, CallInfo, CallRef, CallStart, DropCause, EventSink, MediaAnnounce, Party, RtcpMeta, RtpMeta, Side,
};
use capture::{LinkType, Timestamp};
use crossbeam_channel::Sender;

use crate::audio::AudioConfig;
use crate::disk::DiskGuard;
use crate::dtmf::DtmfTracker;
use crate::evidence::Evidence;
use crate::record::CallRecord;
use crate::rtcp::EndpointView;
use crate::stream::{SeqVerdict, StreamStats};
use crate::timeline::{Law, Timeline, TimelineConfig};

/// RTP streams (SSRCs) kept per direction; packets of further SSRCs are counted on the last.
const MAX_STREAMS_PER_SIDE: usize = 8;
/// Sources whose RTCP reports are kept per call.
const MAX_REPORTED_SOURCES: usize = 16;
/// Samples per nanosecond divisor at 8 kHz.
const NS_PER_SAMPLE: i64 = 125_000;
/// In-order packets over which the least delayed one sets the clock baseline (1 s at 20 ms).
const DRIFT_BLOCK: u32 = 50;
/// The baseline may wander this far (frames, 4 ms) before the anchor follows it.
const DRIFT_DEADBAND: i64 = 32;
/// The anchor follows by at most this many frames (1 ms) per block: an inaudible slip instead
/// of a jump, fast enough for clocks up to 1000 ppm off.
const DRIFT_STEP: i64 = 8;

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
    /// A stream whose RTP timestamps put it further than this from capture time (frames) is
    /// re-anchored to capture time (timestamp jumps, hold/resume). Default 8000 (1 s).
    pub max_skew_frames: i64,
    /// Free space kept on the work directory's filesystem: below it audio stops being written
    /// so that call records still fit (see the `disk` module). 0: none. Default 64 MiB.
    pub min_free_bytes: u64,
}

impl MixerConfig {
    /// Defaults with the given work directory.
    pub fn new(work_dir: PathBuf) -> MixerConfig {
        let run_id = format!("{}-{}", capture::source::wall_clock().secs(), std::process::id());
        MixerConfig {
            work_dir,
            run_id,
            timeline: TimelineConfig::default(),
            audio: AudioConfig::default(),
            max_skew_frames: 8000,
            min_free_bytes: 64 << 20,
        }
    }
}

/// Mixer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MixerStats {
    /// RTP packets received.
    pub rtp_packets: u64,
    /// RTP packets for a call the mixer does not know (should stay 0).
    pub rtp_orphans: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets (partly) too late for their place.
    pub late_packets: u64,
    /// Packets of codecs that are not decoded.
    pub undecodable_packets: u64,
    /// Telephone-event and comfort-noise packets (silence in the recording).
    pub signal_packets: u64,
    /// Calls finished.
    pub calls_finished: u64,
    /// Calls finished with audio.
    pub recordings_with_audio: u64,
    /// Calls whose audio file could not be written (disk full, I/O error).
    pub write_errors: u64,
}

impl MixerStats {
    /// Adds another mixer's counters to these.
    pub fn add(&mut self, o: &MixerStats) {
        self.rtp_packets += o.rtp_packets;
        self.rtp_orphans += o.rtp_orphans;
        self.duplicates += o.duplicates;
        self.late_packets += o.late_packets;
        self.undecodable_packets += o.undecodable_packets;
        self.signal_packets += o.signal_packets;
        self.calls_finished += o.calls_finished;
        self.recordings_with_audio += o.recordings_with_audio;
        self.write_errors += o.write_errors;
    }
}

/// What the mixer hands over when a call ends.
#[derive(Debug)]
pub struct PendingRecording {
    /// The call record; `audio.sha256` and `audio.bytes` are filled in by the finisher.
    pub record: CallRecord,
    /// Capture time of the call's first INVITE (names the recording).
    pub start: Timestamp,
    /// The finished (headers patched, not yet fsynced) audio file(s) in the work directory:
    /// one, or one per party for the split layout.
    pub audio: Vec<(PathBuf, File)>,
    /// The call's evidence capture, when frames are kept.
    pub evidence: Option<(PathBuf, File)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PtKind {
    Unresolved,
    Ulaw,
    Alaw,
    /// RFC 4733 telephone event: decoded as DTMF, silence in the audio.
    Event,
    /// RFC 3389 comfort noise: silence.
    ComfortNoise,
    Undecodable,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    pos: i64,
    ts: u32,
}

#[derive(Debug)]
pub(crate) struct SideState {
    /// The stream (SSRC, source, destination) this side's last packet belonged to. Kept inline:
    /// it is touched by every packet.
    current: StreamStats,
    /// `current` holds a real stream.
    active: bool,
    anchor: Option<Anchor>,
    /// Smallest delay (capture position minus RTP position, frames) in the current block of
    /// in-order packets, and the block's size: the baseline that drift correction follows.
    block_min: i64,
    block_len: u32,
    /// Times the anchor was moved to follow the sender's clock.
    pub(crate) drift_corrections: u32,
    /// One past the last frame this side's audio reached.
    high: u64,
    /// Capture position (frames) of this side's last audio packet.
    last_now: i64,
    kinds: [PtKind; 128],
    /// Streams this side used before `current`.
    earlier: Vec<StreamStats>,
    pub(crate) codec: Option<String>,
    pub(crate) undecodable: Option<String>,
    pub(crate) dtmf: DtmfTracker,
}

impl SideState {
    fn new() -> SideState {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        SideState {
            current: StreamStats::new(0, 0, nowhere, nowhere, Timestamp(0), 8000),
            active: false,
            anchor: None,
            block_min: i64::MAX,
            block_len: 0,
            drift_corrections: 0,
            high: 0,
            last_now: i64::MIN / 2,
            kinds: [PtKind::Unresolved; 128],
            earlier: Vec::new(),
            codec: None,
            undecodable: None,
            dtmf: DtmfTracker::default(),
        }
    }

    /// The stream of this packet: one per (SSRC, source, destination), as RTP analysers key
    /// them, so a stream that moves to a new address (re-INVITE) shows as two.
    #[inline]
    fn stream(&mut self, m: &RtpMeta) -> &mut StreamStats {
        let c = &self.current;
        if !(self.active && c.ssrc == m.ssrc && c.src == m.src && c.dst == m.dst) {
            self.switch(m);
        }
        &mut self.current
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
        let old = std::mem::replace(&mut self.current, next);
        if self.active {
            self.earlier.push(old);
        }
        self.active = true;
        // A new stream (SSRC change, port move) is placed afresh from capture time.
        self.anchor = None;
        self.block_min = i64::MAX;
        self.block_len = 0;
    }

    /// Where on the timeline (frames) this packet belongs: its RTP timestamp relative to the
    /// stream's anchor, the anchor being tied to capture time at the stream's first packet.
    ///
    /// The anchor moves to capture time when an in-order packet is far from it (timestamp jump,
    /// hold and resume) or behind what is already written (a sender that paused without
    /// advancing its timestamps). It also follows the sender's clock: over each block of
    /// in-order packets the smallest delay (capture position minus RTP position; the least
    /// delayed packet shows the clock, the others add network jitter) should stay near zero;
    /// when it wanders past [`DRIFT_DEADBAND`], the anchor moves toward it by at most
    /// [`DRIFT_STEP`] (1 ms: a slip nobody hears, where a jump would cut or insert audio), at
    /// the next talkspurt start if one comes soon, else at the end of the block. The two
    /// parties thus stay within the deadband plus jitter of each other for calls of any length.
    #[inline]
    fn place(&mut self, m: &RtpMeta, verdict: SeqVerdict, now: i64, written: i64, max_skew: i64) -> i64 {
        let mut anchor = match self.anchor {
            Some(a) => a,
            None => Anchor { pos: now, ts: m.rtp_ts },
        };
        let mut pos = anchor.pos + i64::from(m.rtp_ts.wrapping_sub(anchor.ts) as i32);
        if verdict == SeqVerdict::InOrder {
            if (pos - now).abs() > max_skew || pos < written {
                anchor = Anchor { pos: now, ts: m.rtp_ts };
                pos = now;
                self.block_min = i64::MAX;
                self.block_len = 0;
            } else {
                self.block_min = self.block_min.min(now - pos);
                self.block_len += 1;
                let close = self.block_len >= DRIFT_BLOCK || (m.marker && self.block_len >= DRIFT_BLOCK / 5);
                if close {
                    if self.block_min.abs() > DRIFT_DEADBAND {
                        let step = self.block_min.clamp(-DRIFT_STEP, DRIFT_STEP);
                        anchor.pos += step;
                        pos += step;
                        self.drift_corrections += 1;
                    }
                    self.block_min = i64::MAX;
                    self.block_len = 0;
                }
            }
        } else if (pos - now).abs() > max_skew {
            // Not a reordering (those stay within the reorder window): the first packet after
            // a sequence restart (still on probation) or a timestamp jump seen out of order. It
            // goes at capture time; the anchor moves once the stream continues in order.
            pos = now;
        }
        self.anchor = Some(anchor);
        pos
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
}

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
    pub(crate) write_error: Option<String>,
    /// RTP dropped inside callvault before it reached the mixer.
    pub(crate) capture_drops: u64,
    /// Packets the kernel dropped (of any call) while this call was up.
    pub(crate) kernel_drops: u64,
    /// Packets a capture limit shed (of any call) while this call was up.
    pub(crate) limit_sheds: u64,
    /// RTCP reports per (source SSRC, reporting side).
    pub(crate) reports: Vec<(u32, Side, EndpointView)>,
    /// The evidence capture, once the first frame came.
    pub(crate) evidence: Option<Evidence>,
    pub(crate) evidence_error: Option<String>,
}

/// The mixer. Implements [`EventSink`], so it can sit directly behind a capture engine
/// (tests, tools) or behind a channel (the threaded pipeline).
#[derive(Debug)]
pub struct Mixer {
    cfg: MixerConfig,
    calls: Vec<Option<CallMix>>,
    stats: MixerStats,
    out: Sender<PendingRecording>,
    /// Decode buffer for writes, shared by all calls so it stays in cache.
    scratch: Vec<u8>,
    /// The free-space reserve.
    disk: DiskGuard,
}

impl Mixer {
    /// A mixer writing into `cfg.work_dir` and handing finished calls to `out`.
    pub fn new(cfg: MixerConfig, out: Sender<PendingRecording>) -> std::io::Result<Mixer> {
        std::fs::create_dir_all(&cfg.work_dir)?;
        let disk = DiskGuard::new(cfg.work_dir.clone(), cfg.min_free_bytes);
        Ok(Mixer { cfg, calls: Vec::new(), stats: MixerStats::default(), out, scratch: Vec::new(), disk })
    }

    /// Counters so far.
    pub fn stats(&self) -> &MixerStats {
        &self.stats
    }

    /// Calls with state in the mixer.
    pub fn open_calls(&self) -> usize {
        self.calls.iter().filter(|c| c.is_some()).count()
    }

    fn call_mut(&mut self, r: CallRef) -> Option<&mut CallMix> {
        self.calls.get_mut(r.slot as usize)?.as_mut().filter(|c| c.call == r)
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
        self.calls[idx] = Some(CallMix {
            call,
            call_id: info.call_id.clone(),
            start: info.start,
            parties: Box::new((info.from, info.to)),
            wav_path,
            timeline: None,
            origin: Timestamp(0),
            sides: [SideState::new(), SideState::new()],
            media: [None, None],
            write_error: None,
            capture_drops: 0,
            kernel_drops: 0,
            limit_sheds: 0,
            reports: Vec::new(),
            evidence: None,
            evidence_error: None,
        });
    }

    fn end(&mut self, call: CallRef, info: &CallInfo) {
        let Some(slot) = self.calls.get_mut(call.slot as usize) else { return };
        let Some(mix) = slot.take_if(|c| c.call == call) else { return };
        self.stats.calls_finished += 1;
        let pending = crate::report::finish_call(mix, info, self.cfg.audio, &mut self.stats, &mut self.scratch);
        // The receiving side outlives the mixer in the pipeline; if it is gone the program is
        // shutting down after an error that has already been reported.
        let _ = self.out.send(pending);
    }

    /// Ends every call still open (the capture side normally does this through events).
    pub fn abandon_all(&mut self) -> usize {
        let n = self.open_calls();
        self.calls.clear();
        n
    }
}

impl EventSink for Mixer {
    #[inline]
    fn rtp(&mut self, m: &RtpMeta, payload: &[u8]) {
        self.stats.rtp_packets += 1;
        let max_skew = self.cfg.max_skew_frames;
        let tl_cfg = self.cfg.timeline;
        let audio_cfg = self.cfg.audio;
        let Some(idx) = self
            .calls
            .get(m.call.slot as usize)
            .and_then(|c| c.as_ref())
            .filter(|c| c.call == m.call)
            .map(|_| m.call.slot as usize)
        else {
            self.stats.rtp_orphans += 1;
            return;
        };
        let Some(call) = self.calls[idx].as_mut() else { return };
        let si = m.side.index();
        let verdict = call.sides[si].stream(m).observe(m.seq, m.rtp_ts, m.pt, m.time, payload.len());
        if verdict == SeqVerdict::Duplicate {
            self.stats.duplicates += 1;
            return;
        }
        let kind = resolve(call, m.side, m.pt);
        let law = match kind {
            PtKind::Ulaw => Law::Ulaw,
            PtKind::Alaw => Law::Alaw,
            PtKind::Event => {
                self.stats.signal_packets += 1;
                let side = &mut call.sides[si];
                side.dtmf.packet(m.side, m.rtp_ts, m.time, payload, 8000);
                return;
            }
            PtKind::ComfortNoise => {
                self.stats.signal_packets += 1;
                return;
            }
            PtKind::Undecodable | PtKind::Unresolved => {
                self.stats.undecodable_packets += 1;
                return;
            }
        };
        if payload.is_empty() || call.write_error.is_some() {
            return;
        }
        if call.timeline.is_none() {
            if !self.disk.room_for_new() {
                self.stats.write_errors += 1;
                call.write_error = Some(self.disk.reason());
                return;
            }
            match Timeline::create(&call.wav_path, tl_cfg, audio_cfg) {
                Ok(t) => {
                    call.timeline = Some(t);
                    call.origin = m.time;
                    crate::recover::write_sidecar(call);
                }
                Err(e) => {
                    self.stats.write_errors += 1;
                    tracing::error!(call_id = %call.call_id, path = %call.wav_path.display(), "cannot create recording: {e}");
                    call.write_error = Some(format!("cannot create {}: {e}", call.wav_path.display()));
                    return;
                }
            }
        }
        let now = m.time.since(call.origin).max(0) / NS_PER_SAMPLE;
        let written = call.timeline.as_ref().map_or(0, |t| t.written() as i64);
        let side = &mut call.sides[si];
        let pos = side.place(m, verdict, now, written, max_skew);
        side.last_now = now;
        if pos >= 0 {
            side.high = side.high.max(pos as u64 + payload.len() as u64);
        }
        let Some(tl) = call.timeline.as_mut() else { return };
        let before = tl.written();
        let result = if pos < 0 {
            Ok(crate::timeline::Placed { late_samples: payload.len() as u32 })
        } else {
            tl.place(si, pos as u64, payload, law, &mut self.scratch)
        };
        // Frames settle once capture time is past the reorder window and every party still
        // sending has reached them, or at the latest after the maximum wait.
        let mut target = now - i64::from(tl_cfg.reorder_frames);
        for s in &call.sides {
            if now - s.last_now <= i64::from(tl_cfg.max_wait_frames) {
                target = target.min(s.high as i64);
            }
        }
        let target = target.max(now - i64::from(tl_cfg.max_wait_frames)).max(0) as u64;
        let result = result.and_then(|p| tl.settle(target, &mut self.scratch).map(|()| p));
        let written = tl.written() - before;
        match result {
            Ok(p) if p.late_samples > 0 => {
                self.stats.late_packets += 1;
                call.sides[si].current.late += 1;
            }
            Ok(_) => {}
            Err(e) => {
                self.stats.write_errors += 1;
                tracing::error!(call_id = %call.call_id, path = %call.wav_path.display(), "cannot write recording: {e}");
                call.write_error = Some(format!("writing {} failed: {e}", call.wav_path.display()));
            }
        }
        if written > 0 && !self.disk.wrote(written * 4) && call.write_error.is_none() {
            // Keeps what it has (see `report::finish_call`); the reserve is for call records.
            self.stats.write_errors += 1;
            call.write_error = Some(self.disk.reason());
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
                        crate::recover::write_sidecar(c);
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
        let Some(call) = self.call_mut(meta.call) else { return };
        for block in crate::rtcp::report_blocks(packet) {
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
                if let Some(c) = self.call_mut(call) {
                    // Payload types are re-resolved for both directions after any new SDP.
                    for s in &mut c.sides {
                        s.kinds = [PtKind::Unresolved; 128];
                    }
                    let owner = media.owner.index();
                    c.media[owner] = Some(media);
                }
            }
            CallEvent::Dropped { call, packets, cause } => {
                if let Some(c) = self.call_mut(call) {
                    match cause {
                        DropCause::Queue => c.capture_drops += packets,
                        DropCause::Kernel => c.kernel_drops += packets,
                        DropCause::Limit => c.limit_sheds += packets,
                        // Cut RTP reaches the mixer with what was captured of it.
                        DropCause::Snaplen => {}
                    }
                }
            }
            // Encrypted media is not told apart yet.
            CallEvent::Encrypted { .. } => {}
            CallEvent::Ended { call, info } => self.end(call, &info),
        }
    }
}

/// Resolves (and caches) what a payload type means for RTP sent by `sender`: the receiver's
/// SDP first (it defines what it expects), then the sender's own, then the static table.
fn resolve(call: &mut CallMix, sender: Side, pt: u8) -> PtKind {
    let pt = pt & 0x7f;
    let si = sender.index();
    let cached = call.sides[si].kinds[pt as usize];
    if cached != PtKind::Unresolved {
        return cached;
    }
    let desc = lookup(&call.media, sender, pt);
    let kind = match desc.as_ref().map(|d| d.codec) {
        Some(Codec::Pcmu) => PtKind::Ulaw,
        Some(Codec::Pcma) => PtKind::Alaw,
        Some(Codec::TelephoneEvent) => PtKind::Event,
        Some(Codec::ComfortNoise) => PtKind::ComfortNoise,
        _ => PtKind::Undecodable,
    };
    let side = &mut call.sides[si];
    side.kinds[pt as usize] = kind;
    let name = desc.map_or_else(|| format!("PT{pt}"), |d| d.encoding);
    if !matches!(kind, PtKind::Event | PtKind::ComfortNoise) && side.codec.is_none() {
        side.codec = Some(name.clone());
    }
    if kind == PtKind::Undecodable && side.undecodable.is_none() {
        side.undecodable = Some(format!("{name} (PT {pt})"));
    }
    kind
}

fn lookup(media: &[Option<Box<MediaAnnounce>>; 2], sender: Side, pt: u8) -> Option<PayloadDesc> {
    let receiver =
        media[sender.other().index()].as_ref().and_then(|m| m.payloads.entries().iter().find(|d| d.pt == pt));
    let own = media[sender.index()].as_ref().and_then(|m| m.payloads.entries().iter().find(|d| d.pt == pt));
    receiver.or(own).cloned().or_else(|| PayloadMap::default().get(pt))
}
