//! Finishing a recording: make the audio durable, hash it, write the call record beside it
//! and name the result for the archive. Runs on finisher threads, off the mixer's hot path,
//! because fsync and hashing block.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use capture::Timestamp;
use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::pending::PendingRecording;
use crate::record::{AudioFileRecord, CallRecord};

pub mod recover;
pub(crate) mod report;

/// A finished recording: durable files in the work directory, ready to enter the spool.
#[derive(Debug)]
pub struct Finished {
    /// Archive key without extension: `YYYY/MM/DD/<YYYYMMDD>T<HHMMSS>Z_<from>_<to>_<hash>`.
    pub key: String,
    /// The files, audio first, call record last.
    pub files: Vec<FinishedFile>,
    /// A short summary of the call for manifests.
    pub summary: serde_json::Value,
    /// The call record as written.
    pub record: CallRecord,
}

/// One durable file of a finished recording.
#[derive(Debug, Clone)]
pub struct FinishedFile {
    /// Where it is now (work directory).
    pub path: PathBuf,
    /// Extension it is published under (`wav`, `json`).
    pub ext: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Why a recording could not be finished.
#[derive(Debug, Error)]
pub enum FinishError {
    /// Syncing or hashing the audio failed.
    #[error("cannot make audio file '{path}' durable: {error}")]
    Audio {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not its source: a chain printed whole would name
        /// it twice).
        error: io::Error,
    },
    /// Writing the call record failed.
    #[error("cannot write call record '{path}': {error}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not its source: a chain printed whole would name
        /// it twice).
        error: io::Error,
    },
}

/// Makes a pending recording durable and describes it for the spool.
pub fn finish(pending: PendingRecording, work_dir: &Path) -> Result<Finished, FinishError> {
    finish_group(vec![pending], work_dir).pop().expect("one result per recording")
}

/// [`finish`] for several recordings, one result each, in order: each file is fsynced on its
/// own, the work directory (where the records were renamed into place) once for all. The
/// recordings are taken [`filehash::LANES`] at a time, those of the nearest durations together,
/// so their audio is hashed together ([`filehash::hash_files`]) while only their files are open.
pub fn finish_group(pending: Vec<PendingRecording>, work_dir: &Path) -> Vec<Result<Finished, FinishError>> {
    let mut order: Vec<usize> = (0..pending.len()).collect();
    order.sort_by(|&a, &b| pending[a].record.duration_s.total_cmp(&pending[b].record.duration_s));
    let mut waiting: Vec<Option<PendingRecording>> = pending.into_iter().map(Some).collect();
    let mut done: Vec<Option<Result<(Finished, PathBuf), FinishError>>> = waiting.iter().map(|_| None).collect();
    for group in order.chunks(filehash::LANES) {
        let mut prepared: Vec<(usize, Result<Prepared, FinishError>)> =
            group.iter().map(|&i| (i, prepare(waiting[i].take().expect("each recording once"), work_dir))).collect();
        let hashes = {
            let mut files: Vec<&mut File> =
                prepared.iter_mut().filter_map(|(_, p)| p.as_mut().ok()).flat_map(Prepared::files_mut).collect();
            filehash::hash_files(&mut files)
        };
        let mut hashes = hashes.into_iter();
        for (i, p) in prepared {
            done[i] = Some(p.and_then(|p| {
                let own = hashes.by_ref().take(p.file_count()).collect();
                complete(p, own)
            }));
        }
    }
    let mut results: Vec<Result<(Finished, PathBuf), FinishError>> =
        done.into_iter().map(|r| r.expect("every recording finished or failed")).collect();
    if results.iter().any(Result::is_ok)
        && let Err(e) = File::open(work_dir).and_then(|d| d.sync_all())
    {
        for r in &mut results {
            if let Ok((f, _)) = r {
                let path = f.files.last().map(|f| f.path.clone()).unwrap_or_default();
                *r = Err(FinishError::Record { path, error: io::Error::new(e.kind(), e.to_string()) });
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.map(|(finished, sidecar)| {
                // The record is durable: the sidecar kept for crash recovery is no longer needed.
                let _ = std::fs::remove_file(sidecar);
                finished
            })
        })
        .collect()
}

/// A recording whose files are open and fsynced, to be hashed.
struct Prepared {
    record: CallRecord,
    key: String,
    stem: PathBuf,
    audio: Vec<(PathBuf, File)>,
    evidence: Option<(PathBuf, File)>,
}

impl Prepared {
    /// Audio files first, then the evidence capture: the order [`complete`] takes hashes in.
    fn files_mut(&mut self) -> impl Iterator<Item = &mut File> {
        self.audio.iter_mut().chain(self.evidence.as_mut()).map(|(_, f)| f)
    }

    fn file_count(&self) -> usize {
        self.audio.len() + usize::from(self.evidence.is_some())
    }
}

/// Opens a recording's files (audio, evidence) and makes their content durable.
fn prepare(pending: PendingRecording, work_dir: &Path) -> Result<Prepared, FinishError> {
    let PendingRecording { record, start, audio, evidence } = pending;
    let key = recording_key(&record, start);
    let first = audio.first().map(|(p, _)| p).or(evidence.as_ref().map(|(p, _)| p));
    let stem = match first {
        Some(path) => work_stem(path),
        None => {
            let name = key.rsplit('/').next().unwrap_or(&key);
            work_dir.join(format!("{}-{}", name, std::process::id()))
        }
    };
    let mut files = Vec::with_capacity(audio.len());
    for (path, file) in audio {
        let opened = file.into_file().and_then(|f| f.sync_all().map(|()| f));
        match opened {
            Ok(f) => files.push((path, f)),
            Err(error) => return Err(FinishError::Audio { path, error }),
        }
    }
    if let Some((path, file)) = &evidence
        && let Err(error) = file.sync_all()
    {
        return Err(FinishError::Audio { path: path.clone(), error });
    }
    Ok(Prepared { record, key, stem, audio: files, evidence })
}

/// Names the hashed files in the record, writes the record (durable, renamed into place) and
/// describes the recording for the spool; also returns the sidecar to remove once the work
/// directory is fsynced (the caller's).
fn complete(prepared: Prepared, hashes: Vec<io::Result<(String, u64)>>) -> Result<(Finished, PathBuf), FinishError> {
    let Prepared { mut record, key, stem, audio, evidence } = prepared;
    let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
    let mut hashes = hashes.into_iter();
    let mut files = Vec::with_capacity(2);
    let channel_names = record.audio.as_ref().map(|a| a.channels.clone()).unwrap_or_default();
    let split = audio.len() > 1;
    for (i, (path, _file)) in audio.into_iter().enumerate() {
        let (sha256, size) = match hashes.next().expect("one hash per file") {
            Ok(h) => h,
            Err(error) => return Err(FinishError::Audio { path, error }),
        };
        // Published as `<name>.<ext>`: `wav`, or `caller.wav` / `callee.wav` when split.
        let ext = suffix(&path);
        if let Some(a) = record.audio.as_mut() {
            let channels =
                if split { vec![channel_names.get(i).cloned().unwrap_or_default()] } else { channel_names.clone() };
            a.files.push(AudioFileRecord {
                file: format!("{name}.{ext}"),
                channels,
                bytes: size,
                sha256: sha256.clone(),
            });
            if i == 0 {
                a.file = format!("{name}.{ext}");
                a.sha256 = sha256.clone();
                a.bytes = size;
            }
        }
        files.push(FinishedFile { path, ext, sha256, size });
    }
    if let Some((path, _file)) = evidence {
        let (sha256, size) = match hashes.next().expect("one hash per file") {
            Ok(h) => h,
            Err(error) => return Err(FinishError::Audio { path, error }),
        };
        if let Some(e) = record.evidence.as_mut() {
            e.file = format!("{name}.pcap");
            e.sha256 = sha256.clone();
            e.bytes = size;
        }
        files.push(FinishedFile { path, ext: "pcap".into(), sha256, size });
    }
    let json_path = stem.with_extension("json");
    let rec_err = |error| FinishError::Record { path: json_path.clone(), error };
    let mut body = serde_json::to_vec_pretty(&record).map_err(|e| rec_err(io::Error::other(e)))?;
    body.push(b'\n');
    // Written under a temporary name and renamed once durable: a half-written record (a crash
    // or a full disk mid-write) must never pass for a finished recording at the next start;
    // without it, crash recovery rebuilds the record from the audio and its sidecar.
    let part = stem.with_extension(recover::RECORD_PART);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&part)
        .and_then(|mut f| f.write_all(&body).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&part, &json_path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(rec_err(e));
    }
    files.push(FinishedFile {
        path: json_path.clone(),
        ext: "json".into(),
        sha256: hex::encode(Sha256::digest(&body)),
        size: body.len() as u64,
    });
    let summary = summary(&record);
    let sidecar = crate::mix::sidecar::sidecar_path(&stem.with_extension("audio"));
    Ok((Finished { key, files, summary, record }, sidecar))
}

/// Takes over a recording that was finished (its record written) but not entered into the
/// spool before a crash: `files` are the audio (if any) and the record, last.
pub fn adopt(files: &[PathBuf]) -> Result<Finished, FinishError> {
    let Some(json_path) = files.last() else {
        return Err(FinishError::Record { path: PathBuf::new(), error: io::Error::other("no call record") });
    };
    let rec_err = |error| FinishError::Record { path: json_path.clone(), error };
    let body = std::fs::read(json_path).map_err(rec_err)?;
    let record: CallRecord = serde_json::from_slice(&body).map_err(|e| rec_err(io::Error::other(e)))?;
    let start = chrono::DateTime::parse_from_rfc3339(&record.start)
        .map(|dt| Timestamp::from_parts(dt.timestamp(), i64::from(dt.timestamp_subsec_nanos())))
        .map_err(|e| rec_err(io::Error::other(e)))?;
    let mut out = Vec::new();
    for path in files {
        let (sha256, size) =
            filehash::hash_file(path).map_err(|e| FinishError::Audio { path: path.clone(), error: e })?;
        out.push(FinishedFile { path: path.clone(), ext: suffix(path), sha256, size });
    }
    Ok(Finished { key: recording_key(&record, start), files: out, summary: summary(&record), record })
}

fn summary(record: &CallRecord) -> serde_json::Value {
    serde_json::json!({
        "call_id": record.call_id,
        "from": record.from.user,
        "to": record.to.user,
        "start": record.start,
        "end": record.end,
        "state": record.state,
        "end_reason": record.end_reason,
        "duration_s": record.duration_s,
        "audio": record.audio.as_ref().map(|a| a.file.clone()),
    })
}

/// A work file's name up to its first dot: `<run>-<slot>-<gen>`.
fn work_stem(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("recording");
    path.with_file_name(name.split('.').next().unwrap_or(name))
}

/// Everything after a work file's stem: `wav`, `caller.wav`, `pcap`.
fn suffix(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split_once('.').map_or_else(|| "bin".to_owned(), |(_, ext)| ext.to_owned())
}

/// The archive key of a call: its start date as directories, then a name a person can read
/// (start time, from, to) made unique by a hash of the Call-ID.
pub fn recording_key(record: &CallRecord, start: Timestamp) -> String {
    let dt = DateTime::<Utc>::from_timestamp(start.secs(), 0).unwrap_or_default();
    let from = sanitize(record.from.user.as_deref().unwrap_or("unknown"));
    let to = sanitize(record.to.user.as_deref().unwrap_or("unknown"));
    let id = hex::encode(&Sha256::digest(record.call_id.as_bytes())[..6]);
    format!(
        "{:04}/{:02}/{:02}/{:04}{:02}{:02}T{:02}{:02}{:02}Z_{from}_{to}_{id}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Keeps names portable: letters, digits, `+ - .`; everything else becomes `-`; at most 32
/// characters; never empty, never starting with a dot.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.') { c } else { '-' })
        .take(32)
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "-");
    }
    if out.is_empty() { "unknown".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_portable() {
        assert_eq!(sanitize("sipp"), "sipp");
        assert_eq!(sanitize("+33 1/2:3"), "+33-1-2-3");
        assert_eq!(sanitize(""), "unknown");
        assert_eq!(sanitize("../etc"), "-.-etc");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 32);
    }
}
