//! Building the call record when a call ends: the audio file's facts, per-stream statistics and
//! quality, DTMF, holds, and an honest account of what is missing.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;

use capture::Timestamp;
use capture::events::{CallInfo, Dtmf, EndReason, MediaAnnounce, MediaSecurity, Side, security_name};

use crate::mix::audio::{AudioConfig, AudioLayout};
use crate::mix::call::{CallMix, stream_codec};
use crate::mix::edits::{GapCause, StreamEdits};
use crate::mix::openfiles::AudioFile;
use crate::mix::quality::g711_quality;
use crate::mix::side::{Encrypted, SideState};
use crate::mix::srtp::{SideSrtp, describe};
use crate::mix::stats::MixerStats;
use crate::mix::stream::StreamStats;
use crate::pending::PendingRecording;
use crate::record::{
    AnchorRecord, AudioRecord, CallRecord, ChallengeRecord, CodecSegmentRecord, Codecs, DtmfRecord, EncryptedRecord,
    EndpointReport, Endpoints, EvidenceRecord, GapRecord, HoldRecord, IntervalRecord, LadderRecord, OtherMediaRecord,
    OverTimeRecord, PartyRecord, PauseRecord, PlacementRecord, QualityRecord, RECORD_VERSION, SilenceRecord, SipRecord,
    SlipRecord, StreamRecord, rfc3339,
};

fn addr(a: SocketAddr) -> String {
    a.to_string()
}

fn round_ms(ns: i64) -> f64 {
    (ns as f64 / 1e6).round() / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The codec the answer settled on (its first audio format), for a direction that sent no
/// audio: the answer is the SDP of the party that did not offer.
fn answer_codec(mix: &CallMix) -> Option<String> {
    let answerer = mix.offerer?.other();
    let m = mix.media[answerer.index()].as_ref()?;
    m.payloads.entries().iter().find(|d| !d.codec.is_signal()).map(|d| d.encoding.clone())
}

/// The note for a side that sent payload types its own SDP did not declare.
fn undeclared_note(side: Side, sent: &[(u8, String)], own: Option<&MediaAnnounce>) -> String {
    let sent: Vec<String> = sent.iter().map(|(pt, name)| format!("{name} (PT {pt})")).collect();
    let declared: Vec<String> = own
        .map(|m| m.payloads.entries().iter().map(|d| format!("{} (PT {})", d.encoding, d.pt)).collect())
        .unwrap_or_default();
    format!(
        "the {} sent {}, which its own SDP did not declare (it declared {}); taken as named",
        side.as_str(),
        sent.join(", "),
        if declared.is_empty() { "nothing".to_owned() } else { declared.join(", ") }
    )
}

/// Frames to milliseconds.
fn ms(frames: i64) -> f64 {
    round3(frames as f64 / 8.0)
}

/// Frames to seconds into the audio file.
fn offset_s(frames: i64) -> f64 {
    round3(frames as f64 / 8000.0)
}

/// The placement part of a stream's record.
fn placement(e: &StreamEdits) -> Option<PlacementRecord> {
    if e.anchors.is_empty() {
        return None;
    }
    Some(PlacementRecord {
        anchors: e
            .anchors
            .iter()
            .map(|a| AnchorRecord {
                at: rfc3339(a.time),
                rtp_ts: a.rtp_ts,
                frame: a.frame,
                reason: a.reason.as_str().into(),
                moved_frames: a.moved,
            })
            .collect(),
        slips: e
            .slips
            .iter()
            .map(|s| SlipRecord {
                at: rfc3339(s.time),
                frame: s.frame,
                offset_s: offset_s(s.frame),
                inserted: s.inserted,
                removed: s.removed,
                in_silence: s.in_silence,
            })
            .collect(),
        slips_omitted: e.slips_omitted,
        samples_inserted: e.inserted,
        samples_removed: e.removed,
        late_samples: e.late_samples,
        gaps: e
            .gaps
            .iter()
            .map(|g| GapRecord {
                frame: g.frame,
                offset_s: offset_s(g.frame),
                ms: ms(g.len),
                cause: g.cause.as_str().into(),
            })
            .collect(),
        gaps_omitted: e.gaps_omitted,
        silence_ms: SilenceRecord {
            lost: ms(e.silence_of(GapCause::Lost)),
            capture_drop: ms(e.silence_of(GapCause::CaptureDrop)),
            late: ms(e.silence_of(GapCause::Late)),
            not_sent: ms(e.silence_of(GapCause::NotSent)),
            hold: ms(e.silence_of(GapCause::Hold)),
            signal: ms(e.silence_of(GapCause::Signal)),
            auth_failed: ms(e.silence_of(GapCause::AuthFailed)),
        },
        clock_ppm: e.clock_ppm.map(|p| (p * 10.0).round() / 10.0),
    })
}

/// What the record says about the edits made to one party's audio (none: nothing).
fn edit_reasons(side: Side, edits: &[&StreamEdits], out: &mut Vec<String>) {
    let who = side.as_str();
    let late: Vec<_> =
        edits.iter().flat_map(|e| e.gaps.iter().filter(|g| g.cause == GapCause::Late)).copied().collect();
    let late_total: i64 = edits.iter().map(|e| e.silence_of(GapCause::Late)).sum();
    if late_total > 0 {
        let listed: Vec<String> = late
            .iter()
            .take(3)
            .map(|g| format!("{:.3} s for {:.3} s", offset_s(g.frame), g.len as f64 / 8000.0))
            .collect();
        let more = late.len().saturating_sub(3);
        out.push(format!(
            "the {who}'s audio at {}{} ({:.3} s in total) arrived after its place in the recording had been written \
             and is missing",
            listed.join(", "),
            if more > 0 { format!(" and {more} more places") } else { String::new() },
            late_total as f64 / 8000.0
        ));
    }
    let inserted: u64 = edits.iter().map(|e| e.inserted).sum();
    let removed: u64 = edits.iter().map(|e| e.removed).sum();
    let slips: usize = edits.iter().map(|e| e.slips.len() + e.slips_omitted as usize).sum();
    if slips > 0 {
        let first = edits.iter().filter_map(|e| e.slips.first()).map(|s| s.frame).min().unwrap_or(0);
        out.push(format!(
            "the {who}'s audio was edited to stay aligned with the other party (the senders' clocks drift apart): \
             {inserted} samples ({:.1} ms) of silence inserted and {removed} removed in {slips} places, the first at \
             {:.3} s",
            inserted as f64 / 8.0,
            offset_s(first)
        ));
    }
}

/// What the record says besides the facts: notes, and why the capture is incomplete.
#[derive(Debug, Default)]
struct Account {
    notes: Vec<String>,
    incomplete: Vec<String>,
}

/// What the per-party part of the record collects.
#[derive(Debug, Default)]
struct PartyFacts {
    streams: Vec<StreamRecord>,
    dtmf: Vec<Dtmf>,
    encrypted: Vec<EncryptedRecord>,
}

/// Closes the call's timeline and builds its record.
pub(crate) fn finish_call(
    mut mix: CallMix,
    info: &CallInfo,
    audio_cfg: AudioConfig,
    stats: &mut MixerStats,
    scratch: &mut Vec<u8>,
) -> PendingRecording {
    let mut acc = Account::default();
    let (audio, audio_files) = close_audio(&mut mix, audio_cfg, stats, scratch);
    write_error_reasons(&mix, audio.as_ref(), audio_cfg, &mut acc);
    let (evidence, evidence_file) = close_evidence(&mut mix, &mut acc);
    let mut parties = PartyFacts::default();
    for side in [Side::Caller, Side::Callee] {
        party(&mut mix, side, audio.is_some(), &mut parties, &mut acc);
    }
    let PartyFacts { streams, mut dtmf, encrypted } = parties;
    dtmf.extend(info.dtmf.iter().cloned());
    dtmf.sort_by_key(|d| d.time);
    // Keys pressed while paused (a card number) are counted, never named.
    let mut withheld = vec![0u32; mix.pause.pauses.len()];
    dtmf.retain(|d| match mix.pause.pauses.iter().position(|p| p.withholds(d.time)) {
        Some(i) => {
            withheld[i] += 1;
            false
        }
        None => true,
    });
    capture_reasons(&mix, info, &mut acc);
    let other_media = other_media(info, &mut acc);
    if audio.is_none() && mix.write_error.is_none() && encrypted.is_empty() {
        let other_packets: u64 = other_media.iter().map(|o| o.caller_packets + o.callee_packets).sum();
        if let Some(note) = no_audio_note(&mix, info, streams.is_empty(), other_packets) {
            acc.notes.push(note.into());
        }
    }
    // What each party sent, else what the answer settled on.
    let mut segments: Vec<CodecSegmentRecord> = [Side::Caller, Side::Callee]
        .into_iter()
        .flat_map(|side| {
            mix.sides[side.index()].segments().map(move |g| CodecSegmentRecord {
                side: side.as_str().into(),
                codec: g.codec,
                payload_type: g.pt,
                decoded: g.decoded,
                first: rfc3339(g.first),
                last: rfc3339(g.last),
                packets: g.packets,
            })
        })
        .collect();
    segments.sort_by(|a, b| a.first.cmp(&b.first));
    let codecs = Codecs {
        segments,
        segments_omitted: mix.sides.iter().map(|s| s.segments_omitted).sum(),
        caller: mix.sides[0].codec.clone().or_else(|| answer_codec(&mix)),
        callee: mix.sides[1].codec.clone().or_else(|| answer_codec(&mix)),
    };
    let mut record = call_record(info, codecs, streams, audio, evidence, dtmf, encrypted, other_media, acc);
    record.pauses = mix
        .pause
        .pauses
        .iter()
        .map(|p| PauseRecord {
            trigger: p.trigger.clone(),
            at: rfc3339(p.at),
            // Exact (multiples of 1/8000 s), not rounded: the span is named to the sample.
            start_s: p.from as f64 / 8000.0,
            end_s: p.to.map(|to| to as f64 / 8000.0),
            resumed_by: p.resumed_by.clone(),
            missed_s: offset_s(p.closed_before),
            dtmf_withheld: 0,
        })
        .collect();
    for (p, n) in record.pauses.iter_mut().zip(withheld) {
        p.dtmf_withheld = n;
    }
    if audio_files.is_empty() && evidence_file.is_none() {
        // Nothing left to recover after a crash: the sidecar has no file to describe.
        let _ = std::fs::remove_file(crate::mix::sidecar::sidecar_path(&mix.wav_path));
    }
    PendingRecording { record, start: mix.start, audio: audio_files, evidence: evidence_file }
}

/// Finishes the call's audio file(s): the audio part of the record (none for a call without
/// audio worth keeping, whose files are removed) and the files to make durable.
fn close_audio(
    mix: &mut CallMix,
    audio_cfg: AudioConfig,
    stats: &mut MixerStats,
    scratch: &mut Vec<u8>,
) -> (Option<AudioRecord>, Vec<(PathBuf, AudioFile)>) {
    let Some(tl) = mix.timeline.take() else { return (None, Vec::new()) };
    // After a write error (a full disk) the audio that did get written is kept: the record
    // says where it stops and why.
    let finished = if mix.write_error.is_some() { tl.finish_partial() } else { tl.finish(scratch) };
    let f = match finished {
        Ok(f) => f,
        Err(e) => {
            if mix.write_error.is_none() {
                stats.write_errors += 1;
            }
            tracing::error!(call_id = %mix.call_id, "cannot finish recording {}: {e}", mix.wav_path.display());
            mix.write_error.get_or_insert(format!("finishing {} failed: {e}", mix.wav_path.display()));
            return (None, Vec::new());
        }
    };
    if let Some(e) = f.cut {
        stats.write_errors += 1;
        tracing::error!(call_id = %mix.call_id, "cannot finish recording {}: {e}", mix.wav_path.display());
        mix.write_error = Some(format!("finishing {} failed: {e}", mix.wav_path.display()));
    }
    let all_encrypted = mix.sides.iter().all(|s| s.encrypted.is_some() || s.streams().is_empty());
    if f.frames == 0 || all_encrypted {
        // Nothing (or only encrypted media) to keep.
        for (p, _) in f.files {
            let _ = std::fs::remove_file(p);
        }
        return (None, Vec::new());
    }
    stats.recordings_with_audio += 1;
    let audio = AudioRecord {
        file: String::new(),
        files: Vec::new(),
        format: audio_cfg.format.ext().into(),
        layout: audio_cfg.layout.name().into(),
        channels: audio_cfg.layout.channel_names(),
        sample_rate: f.sample_rate,
        bits_per_sample: f.encoding.bits(),
        encoding: f.encoding.name().into(),
        frames: f.frames,
        duration_s: f.frames as f64 / f64::from(f.sample_rate),
        media_start: rfc3339(mix.origin),
        bytes: 0,
        sha256: String::new(),
    };
    let mut files = f.files;
    if audio_cfg.layout == AudioLayout::Split {
        // One file per party: an encrypted party has none.
        files.retain(|(p, _)| {
            let encrypted = [Side::Caller, Side::Callee].iter().any(|side| {
                let s = &mix.sides[side.index()];
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                s.encrypted.is_some_and(|e| e.clear_frames == 0) && name.contains(&format!(".{}.", side.as_str()))
            });
            if encrypted {
                let _ = std::fs::remove_file(p);
            }
            !encrypted
        });
    }
    (Some(audio), files)
}

/// What a write error cost: the audio after it, or all of it (whose files are removed).
fn write_error_reasons(mix: &CallMix, audio: Option<&AudioRecord>, audio_cfg: AudioConfig, acc: &mut Account) {
    let Some(e) = &mix.write_error else { return };
    match audio {
        Some(a) => {
            let at = a.duration_s;
            acc.notes.push(format!("audio after {at:.2} s could not be recorded: {e}"));
            acc.incomplete.push(format!("the recording stops after {at:.2} s of audio: {e}"));
        }
        None => {
            acc.notes.push(format!("audio could not be recorded: {e}"));
            acc.incomplete.push(format!("the recording could not be written: {e}"));
            for p in crate::mix::audio::audio_paths(&mix.wav_path, audio_cfg.layout) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Finishes the call's evidence capture, if it has one.
fn close_evidence(mix: &mut CallMix, acc: &mut Account) -> (Option<EvidenceRecord>, Option<(PathBuf, File)>) {
    let mut out = (None, None);
    if let Some(ev) = mix.evidence.take() {
        let packets = ev.packets;
        match ev.finish() {
            Ok(f) => {
                out = (Some(EvidenceRecord { file: String::new(), packets, bytes: 0, sha256: String::new() }), Some(f));
            }
            Err(e) => {
                mix.evidence_error.get_or_insert(format!("finishing the evidence capture failed: {e}"));
            }
        }
    }
    if let Some(e) = &mix.evidence_error {
        acc.notes.push(format!("the evidence capture is incomplete: {e}"));
    }
    out
}

/// What decrypting a party's SDES-SRTP cost: packets that failed authentication (gaps in its
/// channel), packets sent before its key was seen, SRTCP that failed. A party none of whose
/// packets authenticated is encrypted with no audio, as if it had no key.
fn srtp_notes(s: &SideState, side: Side, out: &mut PartyFacts, acc: &mut Account) {
    let SideSrtp::Keyed(k) = &s.srtp else { return };
    let who = side.as_str();
    let failed: u64 = s.streams().iter().map(|st| st.auth_failures).sum();
    if k.decrypted == 0 && failed > 0 {
        let how = format!("{}, no packet authenticated with the key from its SDP", security_name(MediaSecurity::Sdes));
        acc.notes.push(format!("the {who}'s media is encrypted ({how}): its audio is not recorded"));
        acc.incomplete.push(format!(
            "the {who}'s audio is encrypted (SRTP/ZRTP/DTLS-SRTP: {how}): none of its {failed} packets could be \
             decrypted, not recorded"
        ));
        out.encrypted.push(EncryptedRecord {
            side: who.into(),
            encryption: how,
            since: rfc3339(s.streams().first().map_or(Timestamp(0), |st| st.first)),
            packets: failed,
        });
        return;
    }
    acc.notes.push(format!("the {who}'s media is {}", describe(k.suite())));
    if failed > 0 {
        acc.incomplete.push(format!(
            "{failed} of the {who}'s SRTP packets failed authentication (tampered, or not keyed as the SDP said): \
             not decoded, their place is silence (gaps with cause auth_failed)"
        ));
    }
    if k.unkeyed_before > 0 {
        acc.incomplete.push(format!(
            "{} of the {who}'s SRTP packets came before its SDES key was seen and were not decrypted",
            k.unkeyed_before
        ));
    }
    if k.rtcp_auth_failures > 0 {
        acc.notes.push(format!("{} of the {who}'s SRTCP packets failed authentication", k.rtcp_auth_failures));
    }
}

/// One party's part of the record: its streams, edits, encryption and DTMF.
fn party(mix: &mut CallMix, side: Side, has_audio: bool, out: &mut PartyFacts, acc: &mut Account) {
    let s = &mix.sides[side.index()];
    if let Some(u) = &s.undecodable {
        acc.notes
            .push(format!("{} sent {u}, which is not decoded yet: that audio is silence or absent", side.as_str()));
        acc.incomplete.push(format!("{} audio in {u} could not be decoded", side.as_str()));
    }
    if !s.undeclared.is_empty() {
        acc.notes.push(undeclared_note(side, &s.undeclared, mix.media[side.index()].as_deref()));
    }
    for st in s.streams() {
        out.streams.push(stream_record(mix, side, st));
    }
    edit_reasons(side, &s.streams().iter().map(|st| &*st.edits).collect::<Vec<_>>(), &mut acc.incomplete);
    srtp_notes(s, side, out, acc);
    if let Some(e) = &s.encrypted {
        let how = match e.detail {
            Some(why) => format!("{}, key not usable: {why}", security_name(e.security)),
            None => security_name(e.security).into(),
        };
        acc.notes.push(format!(
            "the {}'s media is encrypted ({how}), not decryptable from the wire: its audio is not recorded",
            side.as_str()
        ));
        acc.incomplete.push(format!(
            "the {}'s audio is encrypted (SRTP/ZRTP/DTLS-SRTP: {how}), not decryptable from the wire{}",
            side.as_str(),
            if e.clear_frames > 0 && has_audio {
                format!(
                    "; what it sent in the clear before the encryption started, up to {:.3} s into the \
                     recording, is recorded",
                    e.clear_frames as f64 / 8000.0
                )
            } else {
                String::new()
            }
        ));
        out.encrypted.push(EncryptedRecord {
            side: side.as_str().into(),
            encryption: how,
            since: rfc3339(e.since),
            packets: e.packets,
        });
    } else if let SideSrtp::Unkeyed { packets } = s.srtp
        && packets > 0
    {
        acc.notes.push(format!("the {}'s media is {UNKEYED}: its audio is not recorded", side.as_str()));
        acc.incomplete.push(format!(
            "the {}'s audio is SRTP and no SDES key for it was seen: {packets} packets not decrypted",
            side.as_str()
        ));
        out.encrypted.push(EncryptedRecord {
            side: side.as_str().into(),
            encryption: format!("{} (no key for this party in the SDP seen)", security_name(MediaSecurity::Sdes)),
            since: rfc3339(s.streams().first().map_or(Timestamp(0), |st| st.first)),
            packets,
        });
    }
    let tracker = std::mem::take(&mut mix.sides[side.index()].dtmf);
    if tracker.dropped > 0 {
        acc.notes.push(format!("{} more DTMF events from the {} were not kept", tracker.dropped, side.as_str()));
    }
    out.dtmf.extend(tracker.finish(side, 8000));
}

/// The record of one stream sent by `side`: counts, loss, jitter, quality, the other
/// endpoint's report of it, and how it was placed.
fn stream_record(mix: &CallMix, side: Side, st: &StreamStats) -> StreamRecord {
    let (bursts, longest) = st.loss_runs();
    let events_only = st.is_event_stream();
    let codec = stream_codec(&mix.media, side, st);
    // Voice quality is that of the G.711 audio; a stream of events has none.
    let g711 = !events_only && matches!(codec.as_deref(), Some("PCMU" | "PCMA"));
    let quality = g711.then(|| {
        let received = st.unique;
        let q = g711_quality(st.loss_pct(), bursts, st.lost(), received, st.jitter_ms());
        QualityRecord {
            r_factor: round3(q.r),
            mos: round3(q.mos),
            r_factor_plc: round3(q.r_plc),
            mos_plc: round3(q.mos_plc),
            burst_ratio: round3(q.burst_ratio),
            assumed_delay_ms: round3(q.delay_ms),
        }
    });
    StreamRecord {
        side: side.as_str().into(),
        kind: if events_only { "events" } else { "audio" }.into(),
        ssrc: format!("{:#010x}", st.ssrc),
        src: addr(st.src),
        dst: addr(st.dst),
        payload_types: st.payload_type_list(),
        codec,
        packets: st.packets,
        events: (st.event_packets > 0).then_some(st.events),
        lost: st.lost(),
        duplicates: st.duplicates,
        out_of_order: st.out_of_order,
        late: st.late,
        loss_pct: round3(st.loss_pct()),
        loss_bursts: bursts,
        longest_loss_burst: longest,
        jitter_ms: (!events_only).then(|| round3(st.jitter_ms())),
        seq_restarts: st.restarts,
        quality,
        endpoint_report: mix.reports.iter().find(|r| r.0 == st.ssrc && r.1 != side).map(|(_, by, v)| EndpointReport {
            reported_by: by.as_str().into(),
            reports: v.reports,
            cumulative_lost: v.cumulative_lost,
            fraction_lost_pct: round3(v.fraction_lost_pct),
            max_fraction_lost_pct: round3(v.max_fraction_lost_pct),
            jitter_ms: round3(v.jitter_ms),
            max_jitter_ms: round3(v.max_jitter_ms),
        }),
        first: rfc3339(st.first),
        last: rfc3339(st.last),
        placement: placement(&st.edits),
        over_time: (!events_only).then(|| over_time(st, g711)),
        encryption: stream_encryption(&mix.sides[side.index()]),
        auth_failures: matches!(mix.sides[side.index()].srtp, SideSrtp::Keyed(_)).then_some(st.auth_failures),
    }
}

/// What a stream's record says about its encryption: decrypted SDES-SRTP, or why not.
fn stream_encryption(s: &SideState) -> Option<String> {
    match (&s.srtp, &s.encrypted) {
        (SideSrtp::Keyed(k), _) if k.decrypted == 0 => Some(format!(
            "encrypted ({}, {}), no audio: no packet authenticated with the key from the SDP",
            security_name(MediaSecurity::Sdes),
            k.suite()
        )),
        (SideSrtp::Keyed(k), _) => Some(describe(k.suite())),
        (_, Some(e)) => Some(encrypted_words(e)),
        (SideSrtp::Unkeyed { .. }, None) => Some(format!("{UNKEYED}, no audio")),
        (SideSrtp::Clear, None) => None,
    }
}

/// A side whose SDES key was never seen.
const UNKEYED: &str = "encrypted (SRTP, SDES keys), but no key for this party in the SDP seen";

/// The words for an encrypted party that is not decrypted.
fn encrypted_words(e: &Encrypted) -> String {
    match e.detail {
        Some(why) => format!("encrypted ({}), no audio: {why}", security_name(e.security)),
        None => format!("encrypted ({}), no audio: not decryptable from the wire", security_name(e.security)),
    }
}

/// The stream's quality per interval.
fn over_time(st: &StreamStats, g711: bool) -> OverTimeRecord {
    let width = st.series.width_ns();
    let intervals = st
        .series
        .slots()
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let (lost, expected) = (u64::from(slot.lost()), u64::from(slot.expected));
            let loss_pct = if expected == 0 { 0.0 } else { lost as f64 * 100.0 / expected as f64 };
            let jitter = f64::from(slot.jitter_max_ms);
            IntervalRecord {
                t_s: round3(i as f64 * width as f64 / 1e9),
                packets: slot.received,
                lost: slot.lost(),
                loss_pct: round3(loss_pct),
                jitter_max_ms: round3(jitter),
                mos: (g711 && expected > 0)
                    .then(|| round3(g711_quality(loss_pct, lost, lost, u64::from(slot.received), jitter).mos)),
            }
        })
        .collect();
    OverTimeRecord { interval_s: round3(width as f64 / 1e9), intervals }
}

/// Why the capture of the call is incomplete apart from its audio: how following it ended,
/// media that could be another call's, a call joined late, packets lost by the capture.
fn capture_reasons(mix: &CallMix, info: &CallInfo, acc: &mut Account) {
    let (open, unanswered) = (info.answer.is_some() || info.joined, "before the call was answered or given up");
    let incomplete = &mut acc.incomplete;
    match info.end_reason {
        EndReason::EndOfInput if open => incomplete.push("the capture ended while the call was still up".into()),
        EndReason::EndOfInput => incomplete.push(format!("the capture ended {unanswered}")),
        EndReason::Shutdown if open => incomplete.push("callvault was stopped while the call was still up".into()),
        EndReason::Shutdown => incomplete.push(format!("callvault was stopped {unanswered}")),
        EndReason::NoAck => acc.notes.push(
            "the answer was retransmitted and never acknowledged (no ACK, no RTP): the session was not established"
                .into(),
        ),
        _ => {}
    }
    for a in &info.ambiguous_media {
        let what = format!(
            "{} media packets sent to {} while this call used it could not be told apart from other calls \
             using that address: they are in no recording",
            a.packets, a.addr
        );
        if a.own_flow {
            // Its own media there was recognised by its source: these were most likely others'.
            acc.notes.push(format!("{what} (this call's own media to it was recognised and recorded)"));
        } else {
            acc.incomplete.push(what);
        }
    }
    let incomplete = &mut acc.incomplete;
    if info.joined {
        incomplete.push("the call started before the capture did: its beginning is missing".into());
    }
    if mix.kernel_drops > 0 {
        incomplete.push(format!(
            "the capture buffer overflowed while the call was up: {} packets (of this or other calls) were lost",
            mix.kernel_drops
        ));
    }
    if mix.limit_sheds > 0 {
        incomplete.push(format!(
            "a capture limit was reached while the call was up: {} packets or streams (of this or other calls) were shed",
            mix.limit_sheds
        ));
    }
    if mix.snaplen_cut > 0 {
        incomplete.push(format!(
            "{} RTP packets of this call were cut short by the capture's snapshot length: their audio is partly missing",
            mix.snaplen_cut
        ));
    }
    if mix.capture_drops > 0 {
        incomplete.push(format!(
            "{} RTP packets of this call were dropped by callvault itself (it fell behind)",
            mix.capture_drops
        ));
    }
}

/// The call's non-audio media lines, with one note per kind of media that carried packets
/// (both parties' lines together).
fn other_media(info: &CallInfo, acc: &mut Account) -> Vec<OtherMediaRecord> {
    let other_media: Vec<OtherMediaRecord> = info
        .other_media
        .iter()
        .map(|o| OtherMediaRecord {
            kind: o.kind.clone(),
            protocol: o.proto.clone(),
            format: o.format.clone(),
            announced_by: o.owner.as_str().into(),
            address: addr(o.dest),
            caller_packets: o.packets[0],
            callee_packets: o.packets[1],
        })
        .collect();
    let mut kinds: Vec<(&str, &str, &str, u64, u64)> = Vec::new();
    for o in &other_media {
        match kinds.iter_mut().find(|k| k.0 == o.kind) {
            Some(k) => {
                k.3 += o.caller_packets;
                k.4 += o.callee_packets;
            }
            None => kinds.push((&o.kind, &o.protocol, &o.format, o.caller_packets, o.callee_packets)),
        }
    }
    for (kind, proto, format, caller, callee) in kinds.into_iter().filter(|k| k.3 + k.4 > 0) {
        acc.notes.push(format!(
            "the call carried {kind} media ({proto} {format}, {caller} packets from the caller, {callee} from the \
             callee), which is not recorded"
        ));
    }
    other_media
}

/// Why a call that was not prevented from being recorded has no audio, if the record should
/// say so.
fn no_audio_note(mix: &CallMix, info: &CallInfo, no_streams: bool, other_packets: u64) -> Option<&'static str> {
    if no_streams && other_packets > 0 {
        Some("no audio RTP was seen for this call")
    } else if no_streams {
        Some(if info.answer.is_some() {
            "no RTP was seen for this call"
        } else {
            "call was not answered and carried no early media"
        })
    } else if mix.sides.iter().all(|s| s.undecodable.is_none()) {
        Some("RTP carried no audio payload (events or comfort noise only)")
    } else {
        None
    }
}

/// Puts the record together from the call's facts and the parts built above.
#[allow(clippy::too_many_arguments)]
fn call_record(
    info: &CallInfo,
    codecs: Codecs,
    streams: Vec<StreamRecord>,
    audio: Option<AudioRecord>,
    evidence: Option<EvidenceRecord>,
    dtmf: Vec<Dtmf>,
    encrypted: Vec<EncryptedRecord>,
    other_media: Vec<OtherMediaRecord>,
    acc: Account,
) -> CallRecord {
    CallRecord {
        version: RECORD_VERSION,
        call_id: info.call_id.clone(),
        from: PartyRecord::from(&info.from),
        to: PartyRecord::from(&info.to),
        asserted_identity: info.asserted.as_ref().map(PartyRecord::from),
        caller: Endpoints { signalling: addr(info.caller_signalling), media: info.caller_media.map(addr) },
        callee: Endpoints { signalling: addr(info.callee_signalling), media: info.callee_media.map(addr) },
        start: rfc3339(info.start),
        ringing: info.ringing.map(rfc3339),
        answer: info.answer.map(rfc3339),
        end: rfc3339(info.end),
        duration_s: round_ms(info.end.since(info.start)),
        talk_s: info.answer.map(|a| round_ms(info.end.since(a).max(0))),
        state: info.state.as_str().into(),
        end_reason: info.end_reason.as_str().into(),
        ended_by: info.ended_by.map(|s| s.as_str().into()),
        final_code: info.final_code,
        codecs,
        sip: SipRecord {
            messages: info.sip_messages,
            invites: info.invites,
            retransmissions: info.retransmissions,
            early_dialogs: info.early_dialogs,
            transport: info.transport.into(),
            challenges: info
                .challenges
                .iter()
                .map(|c| ChallengeRecord { code: c.code, at: rfc3339(c.time), retried_at: c.retried.map(rfc3339) })
                .collect(),
            ladder: info
                .ladder
                .iter()
                .map(|l| LadderRecord {
                    at: rfc3339(l.time),
                    from: l.from.as_str().into(),
                    src: l.src.to_string(),
                    dst: l.dst.to_string(),
                    what: l.what.clone(),
                    sdp: l.sdp,
                    retransmission: l.retransmission,
                })
                .collect(),
            ladder_omitted: info.ladder_omitted,
        },
        streams,
        audio,
        evidence,
        dtmf: dtmf
            .into_iter()
            .map(|d| DtmfRecord {
                digit: d.digit,
                side: d.side.as_str().into(),
                at: rfc3339(d.time),
                duration_ms: d.duration_ms,
                source: d.source.as_str().into(),
            })
            .collect(),
        holds: info
            .holds
            .iter()
            .map(|h| HoldRecord { by: h.by.as_str().into(), start: rfc3339(h.start), end: h.end.map(rfc3339) })
            .collect(),
        pauses: Vec::new(),
        encrypted,
        other_media,
        capture_complete: acc.incomplete.is_empty(),
        incomplete_reasons: acc.incomplete,
        notes: acc.notes,
    }
}

#[cfg(test)]
mod tests {
    use capture::Timestamp;
    use capture::events::{CallStart, OtherMedia, Party};

    use super::*;
    use crate::route::tests::{CALL, T0, info};

    fn call(dir: &std::path::Path) -> CallMix {
        let start =
            CallStart { call_id: "c1".into(), start: Timestamp(T0), from: Party::default(), to: Party::default() };
        CallMix::new(CALL, start, dir.join("t-0-1.wav"))
    }

    fn finish(mix: CallMix, info: &CallInfo) -> (CallRecord, MixerStats) {
        let mut stats = MixerStats::default();
        let p = finish_call(mix, info, AudioConfig::default(), &mut stats, &mut Vec::new());
        assert!(p.audio.is_empty() && p.evidence.is_none());
        (p.record, stats)
    }

    #[test]
    fn a_call_without_media_says_so_and_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (r, stats) = finish(call(dir.path()), &info(EndReason::Bye));
        assert_eq!(stats, MixerStats::default());
        assert_eq!(r.call_id, "c1");
        assert_eq!((r.state.as_str(), r.end_reason.as_str(), r.final_code), ("completed", "bye", Some(200)));
        assert_eq!((r.duration_s, r.talk_s), (1.0, Some(1.0)));
        assert_eq!(r.sip.transport, "udp");
        assert!(r.capture_complete, "{:?}", r.incomplete_reasons);
        assert_eq!(r.notes, ["no RTP was seen for this call"]);
        assert!(r.audio.is_none() && r.streams.is_empty());
    }

    #[test]
    fn every_loss_of_the_capture_is_a_reason_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut mix = call(dir.path());
        (mix.kernel_drops, mix.limit_sheds, mix.snaplen_cut, mix.capture_drops) = (3, 4, 5, 6);
        let mut info = info(EndReason::EndOfInput);
        info.joined = true;
        let (r, _) = finish(mix, &info);
        assert!(!r.capture_complete);
        assert_eq!(
            r.incomplete_reasons,
            [
                "the capture ended while the call was still up",
                "the call started before the capture did: its beginning is missing",
                "the capture buffer overflowed while the call was up: 3 packets (of this or other calls) were lost",
                "a capture limit was reached while the call was up: 4 packets or streams (of this or other calls) \
                 were shed",
                "5 RTP packets of this call were cut short by the capture's snapshot length: their audio is partly \
                 missing",
                "6 RTP packets of this call were dropped by callvault itself (it fell behind)",
            ]
        );
    }

    #[test]
    fn other_media_is_listed_per_line_and_noted_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut info = info(EndReason::Bye);
        let line = |owner: Side, packets: [u64; 2]| OtherMedia {
            kind: "video".into(),
            proto: "RTP/AVP".into(),
            format: "96".into(),
            owner,
            dest: "10.0.0.9:6000".parse().unwrap(),
            packets,
        };
        info.other_media = vec![line(Side::Caller, [0, 7]), line(Side::Callee, [5, 0])];
        let (r, _) = finish(call(dir.path()), &info);
        assert_eq!(r.other_media.len(), 2);
        assert_eq!((r.other_media[1].announced_by.as_str(), r.other_media[1].caller_packets), ("callee", 5));
        assert_eq!(
            r.notes,
            [
                "the call carried video media (RTP/AVP 96, 5 packets from the caller, 7 from the callee), which is \
                 not recorded",
                "no audio RTP was seen for this call",
            ]
        );
    }

    #[test]
    fn an_answer_never_acknowledged_is_a_note_not_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut info = info(EndReason::NoAck);
        info.answer = None;
        let (r, _) = finish(call(dir.path()), &info);
        assert!(r.capture_complete);
        assert_eq!(r.talk_s, None);
        assert_eq!(r.notes.len(), 2);
        assert!(r.notes[0].starts_with("the answer was retransmitted and never acknowledged"));
        assert_eq!(r.notes[1], "call was not answered and carried no early media");
    }
}
