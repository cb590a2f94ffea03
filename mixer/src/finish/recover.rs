//! Recordings interrupted by a crash, found in the work directory at the next start.
//!
//! While a call's audio is being written, `<stem>.wav` (its header still says zero bytes) has
//! a sidecar `<stem>.partial.json` with the call's identity. When a call ends normally, the
//! finisher writes `<stem>.json` and removes the sidecar; the spool then moves both files away.
//! So at start-up, in the work directory:
//!
//! * `<stem>.wav` without `<stem>.json`: interrupted. Its header is repaired to the data
//!   actually written, and it gets a call record that says `"end_reason": "recovered"` and
//!   why the capture is incomplete; then it is finished and shipped like any other.
//! * `<stem>.json` (with or without audio): finished but not handed to the spool before the
//!   crash. It is entered as it is. A record is written as `<stem>.json.part` and renamed once
//!   durable, so a `.json` is always whole; a leftover `.json.part` is removed.
//!
//! Nothing in the work directory is ever deleted without being entered into the spool first.

use std::fs::File;
use std::path::{Path, PathBuf};

use capture::Timestamp;
use chrono::DateTime;

use crate::mix::audio::AudioLayout;
use crate::mix::flacfile;
use crate::mix::openfiles::AudioFile;
use crate::mix::timeline::RATES;
use crate::mix::wav::{Encoding, HEADER_LEN, RF64_SHIFT, WavFormat, layout, repair};
use crate::pending::PendingRecording;
use crate::record::{
    AudioRecord, CallRecord, Codecs, Endpoints, PartialRecord, PartyRecord, RECORD_VERSION, SipRecord, rfc3339,
};

/// Extension of a call record being written (renamed to `.json` once durable).
pub(crate) const RECORD_PART: &str = "json.part";

use crate::mix::sidecar::SIDECAR;
pub use crate::mix::sidecar::sidecar_path;

/// What was found in the work directory.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Interrupted recordings, repaired, to be finished.
    pub interrupted: Vec<PendingRecording>,
    /// Finished recordings not yet in the spool: their files (audio first, record last).
    pub finished: Vec<Vec<PathBuf>>,
    /// Files that could not be recovered, with the reason (they are left in place).
    pub failed: Vec<(PathBuf, String)>,
}

/// The stem of a work file: its name up to the first dot (`<run>-<slot>-<gen>`).
fn stem_of(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.split('.').next().unwrap_or(name).to_owned()
}

/// Scans `work_dir` for what a crash left behind (see the module documentation).
pub fn scan(work_dir: &Path) -> std::io::Result<Recovered> {
    let mut out = Recovered::default();
    let Ok(rd) = std::fs::read_dir(work_dir) else { return Ok(out) };
    let mut groups: std::collections::BTreeMap<String, Vec<PathBuf>> = std::collections::BTreeMap::new();
    for p in rd.flatten().map(|e| e.path()).filter(|p| p.is_file()) {
        if p.to_string_lossy().ends_with(RECORD_PART) {
            // A record cut short by the crash: the audio and its sidecar are what is recovered.
            let _ = std::fs::remove_file(&p);
            continue;
        }
        if p.extension().is_some_and(|e| e == "tmp") {
            // A copy of an audio file the crash interrupted (its rate raised, or made RF64):
            // the file it was made from is whole and recovered.
            let _ = std::fs::remove_file(&p);
            continue;
        }
        groups.entry(stem_of(&p)).or_default().push(p);
    }
    for (_, mut members) in groups {
        // Audio first (caller before callee), then evidence, then the record.
        members.sort_by_key(|p| {
            let n = p.to_string_lossy().into_owned();
            let rank = if n.ends_with(SIDECAR) {
                4
            } else if n.ends_with(".json") {
                3
            } else if n.ends_with(".pcap") {
                2
            } else {
                1
            };
            (rank, n)
        });
        let sidecar = members.iter().find(|p| p.to_string_lossy().ends_with(SIDECAR)).cloned();
        let record = members.iter().find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".json") && !n.ends_with(SIDECAR)
        });
        let audio: Vec<PathBuf> =
            members.iter().filter(|p| p.extension().is_some_and(|e| e == "wav" || e == "flac")).cloned().collect();
        let evidence = members.iter().find(|p| p.extension().is_some_and(|e| e == "pcap")).cloned();
        if record.is_some() {
            // Finished: the sidecar is no longer needed once the record exists.
            if let Some(s) = &sidecar {
                let _ = std::fs::remove_file(s);
            }
            out.finished.push(members.into_iter().filter(|p| Some(p) != sidecar.as_ref()).collect());
        } else if !audio.is_empty() || evidence.is_some() {
            let first = audio.first().or(evidence.as_ref()).cloned().unwrap_or_default();
            match recover_group(&audio, evidence, sidecar.as_deref()) {
                Ok(p) => out.interrupted.push(p),
                Err(e) => out.failed.push((first, e)),
            }
        }
    }
    Ok(out)
}

/// Channels, sample rate and encoding from a WAV file's header (written when the file was
/// created, rewritten when its rate or encoding changed or it became RF64), and where its
/// samples start.
fn wav_layout(path: &Path) -> Option<(WavFormat, u64)> {
    let mut head = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(File::open(path).ok()?, RF64_SHIFT + 128), &mut head).ok()?;
    layout(&head).filter(|(f, _)| RATES.contains(&f.sample_rate) && [1, 2].contains(&f.channels))
}

/// How long `frames` at `rate` Hz play, in nanoseconds.
fn frames_ns(frames: u64, rate: u32) -> i64 {
    i64::try_from(u128::from(frames) * 1_000_000_000 / u128::from(rate.max(1))).unwrap_or(i64::MAX)
}

fn parse_time(s: &str) -> Option<Timestamp> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    Some(Timestamp::from_parts(dt.timestamp(), i64::from(dt.timestamp_subsec_nanos())))
}

/// Repairs an interrupted recording's audio (one file, or one per party) and gives it a record.
fn recover_group(
    audio: &[PathBuf],
    evidence: Option<PathBuf>,
    sidecar: Option<&Path>,
) -> Result<PendingRecording, String> {
    let mut frames = 0u64;
    let mut files = Vec::new();
    let mut flac = false;
    let mut sample_rate = 8000;
    let mut encoding = Encoding::Pcm16;
    let mut channels = 2;
    for path in audio {
        let cannot = |e: std::io::Error| format!("cannot repair {}: {e}", path.display());
        if path.extension().is_some_and(|e| e == "flac") {
            // Cut after the last whole frame, its sample count written into STREAMINFO.
            flac = true;
            match flacfile::repair(path) {
                Ok(r) => {
                    if RATES.contains(&r.sample_rate) {
                        sample_rate = r.sample_rate;
                    }
                    channels = r.channels;
                    frames = frames.max(r.frames);
                }
                // Cut short before its first frame (its header torn): kept as it is.
                Err(e) => tracing::warn!(path = %path.display(), "recovered as it is, its length unknown: {e}"),
            }
        } else {
            let (fmt, data_at) = wav_layout(path).unwrap_or((WavFormat::pcm(2, 8000), HEADER_LEN));
            sample_rate = fmt.sample_rate;
            encoding = fmt.encoding;
            channels = fmt.channels;
            let data = repair(path, fmt, data_at).map_err(cannot)?;
            frames = frames.max(data / u64::from(fmt.frame_bytes()));
        }
        let f = AudioFile::existing(path).map_err(|e| format!("cannot open: {e}"))?;
        files.push((path.clone(), f));
    }
    let partial: Option<PartialRecord> =
        sidecar.and_then(|s| std::fs::read(s).ok()).and_then(|b| serde_json::from_slice(&b).ok());
    let named = audio.first().or(evidence.as_ref()).cloned().unwrap_or_default();
    let stem = stem_of(&named);
    let (call_id, start, from, to, media_start) = match &partial {
        Some(p) => (
            p.call_id.clone(),
            Timestamp(p.start_ns),
            p.from.clone(),
            p.to.clone(),
            parse_time(&p.media_start).unwrap_or(Timestamp(p.start_ns)),
        ),
        None => {
            // No identity survived: name it after the file's time of last change.
            let mtime = std::fs::metadata(&named)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            let t = Timestamp(mtime - frames_ns(frames, sample_rate));
            (format!("unknown-{stem}"), t, PartyRecord::default(), PartyRecord::default(), t)
        }
    };
    let end = media_start.add_nanos(frames_ns(frames, sample_rate));
    let layout = if audio.len() > 1 {
        AudioLayout::Split
    } else if channels == 1 {
        AudioLayout::Mono
    } else {
        AudioLayout::Stereo
    };
    let mut reasons = vec![
        "the run that recorded this call did not finish it (callvault stopped unexpectedly, or the call \
         record could not be written, e.g. on a full disk); the audio was recovered up to the last data written"
            .to_owned(),
    ];
    if partial.is_none() {
        reasons.push("the call's identity (its sidecar) was not saved, so it is unknown".into());
    }
    let record = CallRecord {
        version: RECORD_VERSION,
        call_id,
        from,
        to,
        asserted_identity: None,
        caller: Endpoints { signalling: String::new(), media: None },
        callee: Endpoints { signalling: String::new(), media: None },
        start: rfc3339(start),
        ringing: None,
        answer: None,
        end: rfc3339(end),
        duration_s: (end.since(start) as f64 / 1e6).round() / 1000.0,
        talk_s: None,
        state: "unknown".into(),
        end_reason: "recovered".into(),
        ended_by: None,
        final_code: None,
        codecs: Codecs::default(),
        sip: SipRecord {
            messages: 0,
            invites: 0,
            retransmissions: 0,
            early_dialogs: 0,
            transport: String::new(),
            challenges: Vec::new(),
            ladder: Vec::new(),
            ladder_omitted: 0,
        },
        streams: Vec::new(),
        audio: (!files.is_empty()).then(|| AudioRecord {
            file: String::new(),
            files: Vec::new(),
            format: if flac { "flac" } else { "wav" }.into(),
            layout: layout.name().into(),
            channels: layout.channel_names(),
            sample_rate,
            bits_per_sample: encoding.bits(),
            encoding: encoding.name().into(),
            frames,
            duration_s: frames as f64 / f64::from(sample_rate),
            media_start: rfc3339(media_start),
            bytes: 0,
            sha256: String::new(),
        }),
        encrypted: Vec::new(),
        other_media: Vec::new(),
        // An evidence capture is append-only: whatever was written is readable (a torn last
        // record is reported by readers).
        evidence: evidence.as_ref().map(|_| crate::record::EvidenceRecord {
            file: String::new(),
            packets: 0,
            bytes: 0,
            sha256: String::new(),
        }),
        dtmf: Vec::new(),
        holds: Vec::new(),
        pauses: Vec::new(),
        capture_complete: false,
        incomplete_reasons: reasons,
        notes: vec!["recovered at the next start: SIP details and stream statistics were not saved".into()],
    };
    let evidence = evidence.and_then(|p| File::options().read(true).write(true).open(&p).ok().map(|f| (p, f)));
    Ok(PendingRecording { record, start, audio: files, evidence })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::wav::WavWriter;

    #[test]
    fn interrupted_finished_and_orphaned_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        // Interrupted, with its sidecar.
        let mut a = WavWriter::create(&w.join("a.wav"), WavFormat::pcm(2, 8000)).unwrap();
        a.write_pcm(&[1u8; 4 * 8000]).unwrap();
        drop(a);
        let partial = PartialRecord {
            version: 1,
            call_id: "abc@x".into(),
            start: "2025-01-01T00:00:00.000000Z".into(),
            start_ns: 1_735_689_600_000_000_000,
            from: PartyRecord { user: Some("100".into()), display: None, uri: "sip:100@x".into() },
            to: PartyRecord { user: Some("200".into()), display: None, uri: "sip:200@x".into() },
            media_start: "2025-01-01T00:00:01.000000Z".into(),
        };
        std::fs::write(sidecar_path(&w.join("a.wav")), serde_json::to_vec(&partial).unwrap()).unwrap();
        // Interrupted, identity lost.
        let mut b = WavWriter::create(&w.join("b.wav"), WavFormat::pcm(2, 8000)).unwrap();
        b.write_pcm(&[2u8; 402]).unwrap();
        drop(b);
        // Finished, not entered.
        std::fs::write(w.join("c.wav"), b"RIFF").unwrap();
        std::fs::write(w.join("c.json"), b"{}").unwrap();
        std::fs::write(w.join("d.json"), b"{}").unwrap();
        // A record the crash cut short: it goes, and "a" is recovered from audio and sidecar.
        std::fs::write(w.join("a.json.part"), b"{\"version\":").unwrap();

        let r = scan(w).unwrap();
        assert!(r.failed.is_empty());
        assert_eq!(r.finished, vec![vec![w.join("c.wav"), w.join("c.json")], vec![w.join("d.json")]]);
        assert_eq!(r.interrupted.len(), 2);
        assert!(!w.join("a.json.part").exists());
        let a = &r.interrupted[0].record;
        assert_eq!(a.call_id, "abc@x");
        assert_eq!(a.end_reason, "recovered");
        assert!(!a.capture_complete);
        assert_eq!(a.audio.as_ref().unwrap().frames, 8000);
        assert_eq!(a.end, "2025-01-01T00:00:02.000000Z");
        assert_eq!(a.from.user.as_deref(), Some("100"));
        let reader = hound::WavReader::open(w.join("a.wav")).unwrap();
        assert_eq!(reader.duration(), 8000, "header repaired");
        let b = &r.interrupted[1].record;
        assert!(b.call_id.starts_with("unknown-"));
        assert_eq!(b.audio.as_ref().unwrap().frames, 100, "torn last frame dropped");
        assert_eq!(b.incomplete_reasons.len(), 2);
    }

    #[test]
    fn an_interrupted_g711_wav_is_repaired_and_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        let alaw = WavFormat { channels: 2, sample_rate: 8000, encoding: Encoding::Alaw };
        let mut a = WavWriter::create(&w.join("a.wav"), WavFormat::pcm(2, 8000)).unwrap();
        a.set_format(alaw).unwrap();
        a.write_pcm(&[0xd5u8; 2 * 800 + 1]).unwrap();
        drop(a);
        let r = scan(w).unwrap();
        let audio = r.interrupted[0].record.audio.clone().unwrap();
        assert_eq!((audio.frames, audio.bits_per_sample, audio.encoding.as_str()), (800, 8, "pcm_alaw"));
        let b = std::fs::read(w.join("a.wav")).unwrap();
        assert_eq!(b.len(), 58 + 1600, "torn last frame dropped");
        assert_eq!(WavFormat::parse(&b), Some(alaw));
        assert_eq!(u32::from_le_bytes([b[54], b[55], b[56], b[57]]), 1600, "header repaired");
    }

    #[test]
    fn rf64_a_flac_torn_before_its_frames_and_copies_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        // A WAV file that had become RF64 (its header's sizes the ones of then), at 48 kHz.
        let fmt = WavFormat::pcm(2, 48_000);
        let mut a = WavWriter::create(&w.join("a.wav"), fmt).unwrap();
        a.rf64_beyond(4 * 1000);
        a.write_pcm(&[3u8; 4 * 1000]).unwrap();
        a.write_pcm(&[4u8; 4 * 47_000 + 2]).unwrap();
        drop(a);
        // A copy made while the file became RF64, or its rate was raised, cut by the crash.
        std::fs::write(w.join("a.rf64.tmp"), [0u8; 100]).unwrap();
        std::fs::write(w.join("a.rate.tmp"), [0u8; 100]).unwrap();
        // A FLAC file cut inside its header.
        std::fs::write(w.join("b.flac"), b"fLaC\x80\0\0\x22\x10").unwrap();

        let r = scan(w).unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.interrupted.len(), 2);
        let a = r.interrupted[0].record.audio.clone().unwrap();
        assert_eq!((a.frames, a.sample_rate), (48_000, 48_000));
        let bytes = std::fs::read(w.join("a.wav")).unwrap();
        assert_eq!(bytes.len() as u64, RF64_SHIFT + 44 + 4 * 48_000, "torn last frame dropped");
        assert_eq!(bytes[..(RF64_SHIFT + 44) as usize], crate::mix::wav::rf64_header(fmt, 4 * 48_000)[..]);
        assert!(!w.join("a.rf64.tmp").exists() && !w.join("a.rate.tmp").exists(), "copies removed");
        let b = r.interrupted[1].record.audio.clone().unwrap();
        assert_eq!((b.format.as_str(), b.frames), ("flac", 0));
        assert!(w.join("b.flac").exists(), "kept as it is");
    }
}
