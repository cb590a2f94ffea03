//! The mixer: call events and RTP in, one open WAV per call with media, and a
//! [`PendingRecording`] out when the call ends.
//!
//! Per RTP packet the mixer does a slot lookup, a sequence-number check, a 256-entry table
//! decode into the call's ring and (every few kilobytes) one `write`. It allocates nothing per
//! packet. The heavy, blocking part of finishing a recording (fsync, hashing, the JSON) is
//! left to [`crate::finish`], off this thread.

use std::fs::File;
use std::path::PathBuf;

use capture::codec::{Codec, PayloadDesc, PayloadMap};
use capture::events::{
    CallEvent, CallInfo, CallRef, CallStart, DropCause, EventSink, MediaAnnounce, MediaSecurity, Party, RtcpMeta,
    RtpMeta, Side,
};
use capture::wire::sdp::Direction;
use capture::{LinkType, Timestamp};
use crossbeam_channel::Sender;

use crate::audio::AudioConfig;
use crate::clock::{Env, Pkt, Route};
use crate::disk::DiskGuard;
use crate::evidence::Evidence;
use crate::record::CallRecord;
use crate::rtcp::EndpointView;
use crate::side::{Encrypted, PtKind, SideState};
use crate::stream::SeqVerdict;
use crate::timeline::{Law, Timeline, TimelineConfig};

/// Sources whose RTCP reports are kept per call.
const MAX_REPORTED_SOURCES: usize = 16;
/// Samples per nanosecond divisor at 8 kHz.
pub(crate) const NS_PER_SAMPLE: i64 = 125_000;

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
    /// Silence insertions that kept a party aligned with the other one (clock drift).
    pub slips: u64,
    /// Audio packets not recorded because their media is encrypted.
    pub encrypted_packets: u64,
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
        self.slips += o.slips;
        self.encrypted_packets += o.encrypted_packets;
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
}

impl CallMix {
    /// What side `si`'s clock needs to know about the call.
    #[inline]
    fn env(&self, si: usize, max_skew: i64) -> Env {
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
    fn put(
        &mut self,
        si: usize,
        pos: i64,
        payload: &[u8],
        law: Law,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let Some(tl) = self.timeline.as_mut() else { return Ok(()) };
        let len = payload.len() as i64;
        if pos < 0 {
            // Before the recording's first frame: only a packet reordered across the start.
            self.late(si, pos, len, stats);
            return Ok(());
        }
        let placed = tl.place(si, pos as u64, payload, law, scratch)?;
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
    fn late(&mut self, si: usize, pos: i64, len: i64, stats: &mut MixerStats) {
        stats.late_packets += 1;
        let side = &mut self.sides[si];
        side.current.late += 1;
        side.current.edits.late(pos, len);
    }

    /// Side `si`'s held suspects were late after all.
    fn reject(&mut self, si: usize, stats: &mut MixerStats) {
        let rejected = self.sides[si].clock.take_rejected();
        for (pos, len) in rejected {
            self.late(si, pos, len, stats);
        }
    }

    /// Side `si`'s clock chose its anchor: moves the origin if asked, then places every held
    /// packet.
    fn release(
        &mut self,
        si: usize,
        rebase: i64,
        stats: &mut MixerStats,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        if rebase != 0 {
            self.origin = self.origin.add_nanos(rebase * NS_PER_SAMPLE);
            self.sides[1 - si].clock.rebase(rebase);
            crate::recover::write_sidecar(self);
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

    /// Compares the parties' clocks (see [`crate::clock::balance`]).
    fn balance(&mut self, hold: u32) {
        let progress: Vec<i64> = self.sides.iter().filter_map(|s| s.clock.progress(s.high)).collect();
        let hi = progress.iter().copied().max().unwrap_or(0);
        let active = progress.len() == 2 && progress.iter().all(|&p| p >= hi - i64::from(hold));
        let [a, b] = &mut self.sides;
        crate::clock::balance([&mut a.clock, &mut b.clock], active);
    }

    /// Frames settle once the slowest party sending has got past them by the reorder
    /// window, or once the leading party is further ahead than the hold bound: progress is
    /// RTP time, never capture time, so a stall or a faster replay changes nothing.
    #[inline]
    fn settle(&mut self, reorder: i64, hold: i64, scratch: &mut Vec<u8>) -> std::io::Result<()> {
        let Some(tl) = self.timeline.as_mut() else { return Ok(()) };
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for s in &self.sides {
            if let Some(p) = s.clock.progress(s.high) {
                lo = lo.min(p);
                hi = hi.max(p);
            }
        }
        if hi == i64::MIN {
            return Ok(());
        }
        let target = (lo - reorder).max(hi - hold).max(0);
        tl.settle(target as u64, scratch)
    }

    /// Writing the recording failed: nothing more is written, the record says why.
    fn fail(&mut self, e: &std::io::Error, stats: &mut MixerStats) {
        stats.write_errors += 1;
        tracing::error!(call_id = %self.call_id, path = %self.wav_path.display(), "cannot write recording: {e}");
        self.write_error = Some(format!("writing {} failed: {e}", self.wav_path.display()));
    }

    /// Chooses the anchor of side `si`'s held packets now and places them (its stream ends,
    /// or the call does).
    fn release_now(
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
    fn drain(&mut self, max_skew: i64, stats: &mut MixerStats, scratch: &mut Vec<u8>) -> std::io::Result<()> {
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
    fn encrypt(
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
        s.encrypted = Some(Encrypted { security, since: time, clear_frames: s.high.max(0) as u64, packets: 0 });
    }

    /// Notes which parties the latest SDP lets send: a party that may not send is on hold,
    /// and the silence after it is explained by that.
    fn note_directions(&mut self) {
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
    /// How far written audio may trail the leading party (`TimelineConfig::hold`).
    hold: u32,
}

impl Mixer {
    /// A mixer writing into `cfg.work_dir` and handing finished calls to `out`.
    pub fn new(cfg: MixerConfig, out: Sender<PendingRecording>) -> std::io::Result<Mixer> {
        std::fs::create_dir_all(&cfg.work_dir)?;
        let disk = DiskGuard::new(cfg.work_dir.clone(), cfg.min_free_bytes);
        let hold = cfg.timeline.hold();
        Ok(Mixer { cfg, calls: Vec::new(), stats: MixerStats::default(), out, scratch: Vec::new(), disk, hold })
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
            offerer: None,
            write_error: None,
            capture_drops: 0,
            kernel_drops: 0,
            limit_sheds: 0,
            snaplen_cut: 0,
            reports: Vec::new(),
            evidence: None,
            evidence_error: None,
        });
    }

    fn end(&mut self, call: CallRef, info: &CallInfo) {
        let Some(slot) = self.calls.get_mut(call.slot as usize) else { return };
        let Some(mut mix) = slot.take_if(|c| c.call == call) else { return };
        self.stats.calls_finished += 1;
        if let Err(e) = mix.drain(self.cfg.max_skew_frames, &mut self.stats, &mut self.scratch)
            && mix.write_error.is_none()
        {
            self.stats.write_errors += 1;
            mix.write_error = Some(format!("writing {} failed: {e}", mix.wav_path.display()));
        }
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
        if call.sides[si].switches(m) && call.sides[si].clock.holding() {
            // The stream before still has packets held aside: place them first.
            if let Err(e) = call.release_now(si, self.cfg.max_skew_frames, &mut self.stats, &mut self.scratch) {
                call.fail(&e, &mut self.stats);
            }
        }
        let kind = resolve(call, m.side, m.pt);
        let stream = call.sides[si].stream(m);
        let verdict = if kind == PtKind::Event {
            stream.observe_event(m.seq, m.rtp_ts, m.pt, m.time, payload.len())
        } else {
            if kind != PtKind::ComfortNoise && stream.audio_pt.is_none() {
                stream.audio_pt = Some(m.pt & 0x7f);
            }
            stream.observe(m.seq, m.rtp_ts, m.pt, m.time, payload.len())
        };
        if verdict == SeqVerdict::Duplicate {
            self.stats.duplicates += 1;
            return;
        }
        let law = match kind {
            PtKind::Ulaw => Law::Ulaw,
            PtKind::Alaw => Law::Alaw,
            PtKind::Event | PtKind::ComfortNoise => {
                self.stats.signal_packets += 1;
                let side = &mut call.sides[si];
                if kind == PtKind::Event {
                    side.dtmf.packet(m.side, m.rtp_ts, m.time, payload, 8000);
                }
                if verdict == SeqVerdict::InOrder {
                    side.clock.hints.signal_seq = Some(m.seq);
                }
                return;
            }
            PtKind::Undecodable | PtKind::Unresolved => {
                self.stats.undecodable_packets += 1;
                return;
            }
        };
        if let Some(e) = call.sides[si].encrypted.as_mut() {
            e.packets += 1;
            self.stats.encrypted_packets += 1;
            return;
        }
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
        let pkt = Pkt {
            time: m.time,
            now: m.time.since(call.origin) / NS_PER_SAMPLE,
            ts: m.rtp_ts,
            seq: m.seq,
            marker: m.marker,
            in_order: verdict == SeqVerdict::InOrder,
            len: payload.len() as i64,
            law,
        };
        let before = call.timeline.as_ref().map_or(0, Timeline::written);
        let mut result = Ok(());
        loop {
            let env = call.env(si, self.cfg.max_skew_frames);
            let side = &mut call.sides[si];
            match side.clock.arrive(pkt, payload, &env, &mut side.current.edits) {
                Route::Place(pos) => result = call.put(si, pos, payload, law, &mut self.stats, &mut self.scratch),
                Route::Late(pos) => call.late(si, pos, pkt.len, &mut self.stats),
                Route::Held => {}
                Route::Release(rebase) => result = call.release(si, rebase, &mut self.stats, &mut self.scratch),
                Route::Reject => {
                    call.reject(si, &mut self.stats);
                    continue;
                }
            }
            break;
        }
        if call.sides[si].clock.take_block_closed() {
            call.balance(self.hold);
        }
        let reorder = i64::from(tl_cfg.reorder_frames);
        let result = result.and_then(|()| call.settle(reorder, i64::from(self.hold), &mut self.scratch));
        if let Err(e) = result {
            call.fail(&e, &mut self.stats);
        }
        let written = call.timeline.as_ref().map_or(0, Timeline::written) - before;
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
                let max_skew = self.cfg.max_skew_frames;
                let Some(c) =
                    self.calls.get_mut(call.slot as usize).and_then(Option::as_mut).filter(|c| c.call == call)
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
                if let Some(security) = security {
                    // One media line keys both directions.
                    for side in [Side::Caller, Side::Callee] {
                        c.encrypt(side, security, time, (max_skew, &mut self.stats, &mut self.scratch));
                    }
                }
            }
            CallEvent::Encrypted { call, side, security } => {
                let max_skew = self.cfg.max_skew_frames;
                let Some(c) =
                    self.calls.get_mut(call.slot as usize).and_then(Option::as_mut).filter(|c| c.call == call)
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
            CallEvent::Ended { call, info } => self.end(call, &info),
        }
    }
}

/// Resolves (and caches) what a payload type means for RTP sent by `sender`: the sender's own
/// SDP first (what it said it would use), then the other party's (a sender using what it was
/// offered, or echoing it back), then the static table. A payload type its own SDP did not
/// declare is remembered for the record.
fn resolve(call: &mut CallMix, sender: Side, pt: u8) -> PtKind {
    let pt = pt & 0x7f;
    let si = sender.index();
    let cached = call.sides[si].kinds[pt as usize];
    if cached != PtKind::Unresolved {
        return cached;
    }
    let (desc, declared) = lookup(&call.media, sender, pt);
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
