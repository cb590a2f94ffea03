//! Building the call record when a call ends: the audio file's facts, per-stream statistics and
//! quality, DTMF, holds, and an honest account of what is missing.

use std::net::SocketAddr;

use capture::events::{CallInfo, EndReason, MediaAnnounce, Side, security_name};

use crate::audio::{AudioConfig, AudioLayout};
use crate::edits::{GapCause, StreamEdits};
use crate::mixer::{CallMix, MixerStats, PendingRecording, lookup};
use crate::quality::g711_quality;
use crate::record::{
    AnchorRecord, AudioRecord, CallRecord, ChallengeRecord, Codecs, DtmfRecord, EncryptedRecord, EndpointReport,
    Endpoints, EvidenceRecord, GapRecord, HoldRecord, OtherMediaRecord, PartyRecord, PlacementRecord, QualityRecord,
    RECORD_VERSION, SilenceRecord, SipRecord, SlipRecord, StreamRecord, rfc3339,
};
use crate::stream::StreamStats;

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

/// The codec of one stream: what its audio payload type resolved to, `telephone-event` for a
/// stream of events alone.
fn stream_codec(media: &[Option<Box<MediaAnnounce>>; 2], side: Side, st: &StreamStats) -> Option<String> {
    let pt = match st.audio_pt {
        Some(pt) => pt,
        None => (0..128u8).find(|pt| st.payload_types & (1u128 << pt) != 0)?,
    };
    Some(lookup(media, side, pt).0.map_or_else(|| format!("PT{pt}"), |d| d.encoding))
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

/// Closes the call's timeline and builds its record.
pub(crate) fn finish_call(
    mut mix: CallMix,
    info: &CallInfo,
    audio_cfg: AudioConfig,
    stats: &mut MixerStats,
    scratch: &mut Vec<u8>,
) -> PendingRecording {
    let mut notes = Vec::new();
    let mut incomplete = Vec::new();
    let mut audio_files = Vec::new();
    let mut audio = None;
    if let Some(tl) = mix.timeline.take() {
        // After a write error (a full disk) the audio that did get written is kept: the record
        // says where it stops and why.
        let finished = if mix.write_error.is_some() { tl.finish_partial() } else { tl.finish(scratch) };
        match finished {
            Ok(f) => {
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
                } else {
                    stats.recordings_with_audio += 1;
                    audio = Some(AudioRecord {
                        file: String::new(),
                        files: Vec::new(),
                        format: audio_cfg.format.ext().into(),
                        layout: audio_cfg.layout.name().into(),
                        channels: audio_cfg.layout.channel_names(),
                        sample_rate: 8000,
                        bits_per_sample: 16,
                        frames: f.frames,
                        duration_s: f.frames as f64 / 8000.0,
                        media_start: rfc3339(mix.origin),
                        bytes: 0,
                        sha256: String::new(),
                    });
                    audio_files = f.files;
                    if audio_cfg.layout == AudioLayout::Split {
                        // One file per party: an encrypted party has none.
                        audio_files.retain(|(p, _)| {
                            let encrypted = [Side::Caller, Side::Callee].iter().any(|side| {
                                let s = &mix.sides[side.index()];
                                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                                s.encrypted.is_some_and(|e| e.clear_frames == 0)
                                    && name.contains(&format!(".{}.", side.as_str()))
                            });
                            if encrypted {
                                let _ = std::fs::remove_file(p);
                            }
                            !encrypted
                        });
                    }
                }
            }
            Err(e) => {
                if mix.write_error.is_none() {
                    stats.write_errors += 1;
                }
                tracing::error!(call_id = %mix.call_id, "cannot finish recording {}: {e}", mix.wav_path.display());
                mix.write_error.get_or_insert(format!("finishing {} failed: {e}", mix.wav_path.display()));
            }
        }
    }
    if let Some(e) = &mix.write_error {
        match &audio {
            Some(a) => {
                let at = a.duration_s;
                notes.push(format!("audio after {at:.2} s could not be recorded: {e}"));
                incomplete.push(format!("the recording stops after {at:.2} s of audio: {e}"));
            }
            None => {
                notes.push(format!("audio could not be recorded: {e}"));
                incomplete.push(format!("the recording could not be written: {e}"));
                for p in crate::audio::audio_paths(&mix.wav_path, audio_cfg.layout) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }

    let mut evidence = None;
    let mut evidence_file = None;
    if let Some(ev) = mix.evidence.take() {
        let packets = ev.packets;
        match ev.finish() {
            Ok(f) => {
                evidence = Some(EvidenceRecord { file: String::new(), packets, bytes: 0, sha256: String::new() });
                evidence_file = Some(f);
            }
            Err(e) => {
                mix.evidence_error.get_or_insert(format!("finishing the evidence capture failed: {e}"));
            }
        }
    }
    if let Some(e) = &mix.evidence_error {
        notes.push(format!("the evidence capture is incomplete: {e}"));
    }
    let mut streams = Vec::new();
    let mut dtmf = Vec::new();
    let mut encrypted = Vec::new();
    for side in [Side::Caller, Side::Callee] {
        let s = &mut mix.sides[side.index()];
        if let Some(u) = &s.undecodable {
            notes
                .push(format!("{} sent {u}, which is not decoded yet: that audio is silence or absent", side.as_str()));
            incomplete.push(format!("{} audio in {u} could not be decoded", side.as_str()));
        }
        if !s.undeclared.is_empty() {
            notes.push(undeclared_note(side, &s.undeclared, mix.media[side.index()].as_deref()));
        }
        for st in s.streams() {
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
            streams.push(StreamRecord {
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
                endpoint_report: mix.reports.iter().find(|r| r.0 == st.ssrc && r.1 != side).map(|(_, by, v)| {
                    EndpointReport {
                        reported_by: by.as_str().into(),
                        reports: v.reports,
                        cumulative_lost: v.cumulative_lost,
                        fraction_lost_pct: round3(v.fraction_lost_pct),
                        max_fraction_lost_pct: round3(v.max_fraction_lost_pct),
                        jitter_ms: round3(v.jitter_ms),
                        max_jitter_ms: round3(v.max_jitter_ms),
                    }
                }),
                first: rfc3339(st.first),
                last: rfc3339(st.last),
                placement: placement(&st.edits),
            });
        }
        edit_reasons(side, &s.streams().iter().map(|st| &*st.edits).collect::<Vec<_>>(), &mut incomplete);
        if let Some(e) = &s.encrypted {
            let how = security_name(e.security);
            notes.push(format!(
                "the {}'s media is encrypted ({how}), not decryptable from the wire: its audio is not recorded",
                side.as_str()
            ));
            incomplete.push(format!(
                "the {}'s audio is encrypted (SRTP/ZRTP/DTLS-SRTP: {how}), not decryptable from the wire{}",
                side.as_str(),
                if e.clear_frames > 0 && audio.is_some() {
                    format!(
                        "; what it sent in the clear before the encryption started, up to {:.3} s into the \
                         recording, is recorded",
                        e.clear_frames as f64 / 8000.0
                    )
                } else {
                    String::new()
                }
            ));
            encrypted.push(EncryptedRecord {
                side: side.as_str().into(),
                encryption: how.into(),
                since: rfc3339(e.since),
                packets: e.packets,
            });
        }
        let tracker = std::mem::take(&mut s.dtmf);
        if tracker.dropped > 0 {
            notes.push(format!("{} more DTMF events from the {} were not kept", tracker.dropped, side.as_str()));
        }
        dtmf.extend(tracker.finish(side, 8000));
    }
    dtmf.extend(info.dtmf.iter().cloned());
    dtmf.sort_by_key(|d| d.time);

    let (open, unanswered) = (info.answer.is_some() || info.joined, "before the call was answered or given up");
    match info.end_reason {
        EndReason::EndOfInput if open => incomplete.push("the capture ended while the call was still up".into()),
        EndReason::EndOfInput => incomplete.push(format!("the capture ended {unanswered}")),
        EndReason::Shutdown if open => incomplete.push("callvault was stopped while the call was still up".into()),
        EndReason::Shutdown => incomplete.push(format!("callvault was stopped {unanswered}")),
        EndReason::NoAck => notes.push(
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
            notes.push(format!("{what} (this call's own media to it was recognised and recorded)"));
        } else {
            incomplete.push(what);
        }
    }
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
    // One note per kind of media, both parties' lines together.
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
        notes.push(format!(
            "the call carried {kind} media ({proto} {format}, {caller} packets from the caller, {callee} from the \
             callee), which is not recorded"
        ));
    }
    let other_packets: u64 = other_media.iter().map(|o| o.caller_packets + o.callee_packets).sum();
    if audio.is_none() && mix.write_error.is_none() && encrypted.is_empty() {
        if streams.is_empty() && other_packets > 0 {
            notes.push("no audio RTP was seen for this call".into());
        } else if streams.is_empty() {
            notes.push(if info.answer.is_some() {
                "no RTP was seen for this call".into()
            } else {
                "call was not answered and carried no early media".into()
            });
        } else if mix.sides.iter().all(|s| s.undecodable.is_none()) {
            notes.push("RTP carried no audio payload (events or comfort noise only)".into());
        }
    }
    // What each party sent, else what the answer settled on.
    let codecs = Codecs {
        caller: mix.sides[0].codec.clone().or_else(|| answer_codec(&mix)),
        callee: mix.sides[1].codec.clone().or_else(|| answer_codec(&mix)),
    };
    let record = CallRecord {
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
        encrypted,
        other_media,
        capture_complete: incomplete.is_empty(),
        incomplete_reasons: incomplete,
        notes,
    };
    if audio_files.is_empty() && evidence_file.is_none() {
        // Nothing left to recover after a crash: the sidecar has no file to describe.
        let _ = std::fs::remove_file(crate::recover::sidecar_path(&mix.wav_path));
    }
    PendingRecording { record, start: mix.start, audio: audio_files, evidence: evidence_file }
}
