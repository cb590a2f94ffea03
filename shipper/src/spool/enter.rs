//! `Spool::enter`: validation, key resolution, intents, and finishing intents (also at `open`).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::error::IoContext;
use super::format::{self, Action, EntryRecord, Intent, IntentFile, seq_file_name};
use super::{EnteredAs, Entry, EntryFile, EntryId, NewRecording, Spool, SpoolError, State, now_rfc3339};
use crate::faults::CrashPoint;
use crate::filesystem::Fs;
use crate::fsutil::{create_dirs_durable, hash_file, is_sha256_hex, sync_dir, write_atomic};

/// How many `~N` suffixes to try before giving up on a key.
const MAX_SUFFIX: u32 = 10_000;

impl<FS: Fs> Spool<FS> {
    /// Moves a finished recording into `recordings/` and queues it for shipping.
    ///
    /// The files must be complete and fsynced, on the spool's filesystem, with their SHA-256 and
    /// size already computed. On success the sources are gone from the work directory. If the
    /// key is already taken by different content the recording is entered as `<key>~2` (`~3`, …);
    /// if it is taken by identical content the source is dropped and the spooled copy reused.
    ///
    /// The spool's lock is held only to pick the key and sequence number and to create the
    /// destination directories; the intent, the moves and the entry (each with its fsyncs) are
    /// written outside it, so that `enter`s on several finisher threads overlap their I/O. An
    /// `enter` under way reserves its destinations and counts as a queue entry of its key.
    pub fn enter(&self, rec: NewRecording) -> Result<EntryId, SpoolError> {
        self.validate(&rec)?;
        let intent = self.reserve(rec)?;
        let seq = intent.seq;
        let intent_path = self.intents.join(seq_file_name(seq));
        if let Err(e) = self.write_intent(&intent) {
            // Nothing has moved: the caller still owns its files. Withdraw the intent so that a
            // later start does not move files the caller may have retried with.
            if self.fs.remove_file(&intent_path).is_ok() {
                let _ = sync_dir(&self.fs, &self.intents);
            }
            let mut state = self.lock();
            state.entering.remove(&seq);
            count_out(&mut state, &intent.key);
            return Err(e);
        }
        let done = self
            .faults
            .hit(CrashPoint::EnterAfterIntent)
            .ctx("enter", &intent_path)
            .and_then(|()| self.finish_intent(&intent));
        let mut state = self.lock();
        state.entering.remove(&seq);
        match done {
            Ok(()) => Ok(EntryId(seq)),
            Err(e) => {
                count_out(&mut state, &intent.key);
                let key = intent.key.clone();
                state.unfinished.insert(seq, intent);
                Err(SpoolError::Unfinished { key, intent: intent_path, source: Box::new(e) })
            }
        }
    }

    /// Under the spool's lock: picks the key and sequence number of `rec`, creates the
    /// directories its files go to (so that an `enter` finding one there knows it durable), and
    /// reserves both as an `enter` under way.
    fn reserve(&self, rec: NewRecording) -> Result<Intent, SpoolError> {
        let mut state = self.lock();
        self.faults.alive().ctx("enter", &self.intents)?;
        self.retry_unfinished(&mut state);

        let (key, actions) = self.resolve_key(&state, &rec)?;
        if key != rec.key {
            tracing::warn!(key = %rec.key, stored_as = %key,
                "a different recording with this key is already spooled; keeping both");
        }
        let files = rec
            .files
            .iter()
            .zip(actions)
            .map(|(f, action)| {
                Ok(IntentFile {
                    ext: f.ext.clone(),
                    source: std::path::absolute(&f.source).ctx("resolve", &f.source)?,
                    path: format!("recordings/{key}.{}", f.ext),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    action,
                })
            })
            .collect::<Result<Vec<_>, SpoolError>>()?;
        for f in &files {
            let rel_dir = recordings_dir(&f.path);
            create_dirs_durable(&self.fs, &self.recordings, rel_dir)
                .ctx("create directory", self.recordings.join(rel_dir))?;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let intent = Intent {
            version: format::VERSION,
            seq,
            key,
            files,
            summary: rec.summary,
            entered_at: now_rfc3339(),
            targets: state.owed.clone(),
        };
        *state.queued_keys.entry(intent.key.clone()).or_default() += 1;
        state.entering.insert(seq, intent.clone());
        Ok(intent)
    }

    /// Checks everything about `rec` that can be checked before touching the disk.
    fn validate(&self, rec: &NewRecording) -> Result<(), SpoolError> {
        let reject = |reason: String| SpoolError::InvalidRecording { key: rec.key.clone(), reason };
        check_key(&rec.key).map_err(reject)?;
        if rec.files.is_empty() {
            return Err(reject("it has no files".into()));
        }
        let spool_dev = self.fs.metadata(&self.recordings).ctx("inspect", &self.recordings)?.dev;
        let mut exts = HashSet::new();
        for f in &rec.files {
            if !super::valid_ext(&f.ext) {
                return Err(reject(format!("extension {:?} is not plain ASCII letters and digits", f.ext)));
            }
            if !exts.insert(f.ext.as_str()) {
                return Err(reject(format!("extension {:?} appears twice", f.ext)));
            }
            if !is_sha256_hex(&f.sha256) {
                return Err(reject(format!("sha256 of {} is not 64 lowercase hex digits", f.source.display())));
            }
            let meta = self.fs.metadata(&f.source).ctx("inspect", &f.source)?;
            if !meta.is_file() {
                return Err(reject(format!("{} is not a regular file", f.source.display())));
            }
            if meta.len != f.size {
                return Err(reject(format!(
                    "{} is {} bytes, the caller said {}",
                    f.source.display(),
                    meta.len,
                    f.size
                )));
            }
            if meta.dev != spool_dev {
                return Err(reject(format!(
                    "{} is not on the spool's filesystem ({}); put the work directory on it",
                    f.source.display(),
                    self.recordings.display()
                )));
            }
        }
        Ok(())
    }

    /// Picks the key under which `rec` is stored and, per file, whether it moves in or reuses an
    /// identical file. Destinations reserved by unfinished intents count as taken.
    fn resolve_key(&self, state: &State, rec: &NewRecording) -> Result<(String, Vec<Action>), SpoolError> {
        let reserved: BTreeMap<&str, &str> = state
            .unfinished
            .values()
            .chain(state.entering.values())
            .flat_map(|i| i.files.iter())
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        for n in 1..=MAX_SUFFIX {
            let key = if n == 1 { rec.key.clone() } else { format!("{}~{n}", rec.key) };
            let mut actions = Vec::with_capacity(rec.files.len());
            for f in &rec.files {
                let rel = format!("recordings/{key}.{}", f.ext);
                let action = if let Some(sha) = reserved.get(rel.as_str()) {
                    (*sha == f.sha256).then_some(Action::Reuse)
                } else {
                    let dest = self.root.join(&rel);
                    match self.fs.symlink_metadata(&dest) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Action::Move),
                        Err(e) => return Err(SpoolError::io("inspect", dest, e)),
                        Ok(meta) if meta.is_file() && meta.len == f.size => {
                            let (sha, _) = hash_file(&self.fs, &dest).ctx("read", &dest)?;
                            (sha == f.sha256).then_some(Action::Reuse)
                        }
                        Ok(_) => None,
                    }
                };
                match action {
                    Some(action) => actions.push(action),
                    None => break,
                }
            }
            if actions.len() == rec.files.len() {
                return Ok((key, actions));
            }
        }
        Err(SpoolError::InvalidRecording {
            key: rec.key.clone(),
            reason: format!("{MAX_SUFFIX} different recordings already use this key"),
        })
    }

    fn write_intent(&self, intent: &Intent) -> Result<(), SpoolError> {
        let path = self.intents.join(seq_file_name(intent.seq));
        let bytes = serde_json::to_vec_pretty(intent)
            .map_err(|e| SpoolError::io("serialize", &path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        write_atomic(&self.fs, &self.tmp, &path, &bytes).ctx("write", path)
    }

    /// Retries the intents a failed `enter` left behind, oldest first.
    fn retry_unfinished(&self, state: &mut State) {
        let seqs: Vec<u64> = state.unfinished.keys().copied().collect();
        for seq in seqs {
            let intent = &state.unfinished[&seq];
            match self.finish_intent(intent) {
                Ok(()) => {
                    tracing::info!(seq, key = %intent.key, "finished an earlier interrupted enter");
                    let key = intent.key.clone();
                    state.unfinished.remove(&seq);
                    *state.queued_keys.entry(key).or_default() += 1;
                }
                Err(e) => {
                    tracing::warn!(seq, key = %intent.key, error = %crate::chain(&e),
                        "an earlier enter is still unfinished");
                }
            }
        }
    }

    /// Carries out `intent` from wherever it stopped: moves the files still in the work
    /// directory, writes the entry unless it exists, removes the intent. Idempotent.
    pub(super) fn finish_intent(&self, intent: &Intent) -> Result<(), SpoolError> {
        let intent_path = self.intents.join(seq_file_name(intent.seq));
        let mut kept = Vec::with_capacity(intent.files.len());
        // Directories whose entries the moves changed: each synced once, after all the moves
        // and before the entry that says the files are in place.
        let mut touched: Vec<PathBuf> = Vec::with_capacity(2);
        for (i, f) in intent.files.iter().enumerate() {
            if let Some(entered_as) = self.place_file(intent, &intent_path, f, &mut touched)? {
                kept.push(EntryFile {
                    ext: f.ext.clone(),
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    entered_as,
                });
            }
            if i == 0 {
                self.faults.hit(CrashPoint::EnterAfterFirstMove).ctx("enter", &intent_path)?;
            }
        }
        for dir in &touched {
            sync_dir(&self.fs, dir).ctx("sync directory", dir)?;
        }
        self.faults.hit(CrashPoint::EnterAfterMoves).ctx("enter", &intent_path)?;

        let entry_path = self.entry_path(EntryId(intent.seq));
        let entry_exists = self.fs.symlink_metadata(&entry_path).is_ok();
        if kept.is_empty() {
            tracing::error!(key = %intent.key, intent = %intent_path.display(),
                "no file of this recording could be found; nothing to queue");
        } else if !entry_exists {
            let record = EntryRecord {
                version: format::VERSION,
                seq: intent.seq,
                key: intent.key.clone(),
                files: kept,
                summary: intent.summary.clone(),
                entered_at: intent.entered_at.clone(),
                targets: intent.targets.clone(),
                shipped: BTreeMap::new(),
            };
            let bytes = serde_json::to_vec_pretty(&record)
                .map_err(|e| SpoolError::io("serialize", &entry_path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
            write_atomic(&self.fs, &self.tmp, &entry_path, &bytes).ctx("write", &entry_path)?;
            self.index().insert(EntryId(intent.seq), Entry::from_record(record));
        }
        self.faults.hit(CrashPoint::EnterAfterEntry).ctx("enter", &intent_path)?;

        match self.fs.remove_file(&intent_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io("remove", intent_path, e)),
        }
        sync_dir(&self.fs, &self.intents).ctx("sync directory", &self.intents)
    }

    /// Puts one file of `intent` in place, adding the directories whose entries that changed
    /// to `touched` (for the caller to sync). Returns whether the file is in `recordings/`
    /// (false only if it vanished from both the work directory and the spool).
    fn place_file(
        &self,
        intent: &Intent,
        intent_path: &Path,
        f: &IntentFile,
        touched: &mut Vec<PathBuf>,
    ) -> Result<Option<EnteredAs>, SpoolError> {
        let dest = self.root.join(&f.path);
        let source_there = exists(&self.fs, &f.source).ctx("inspect", &f.source)?;
        let dest_there = exists(&self.fs, &dest).ctx("inspect", &dest)?;
        let source_dir = f.source.parent().unwrap_or(Path::new("/"));
        let mut touch = |dir: &Path| {
            if !touched.iter().any(|t| t == dir) {
                touched.push(dir.to_owned());
            }
        };
        match (source_there, dest_there) {
            (true, false) => {
                let rel_dir = recordings_dir(&f.path);
                create_dirs_durable(&self.fs, &self.recordings, rel_dir)
                    .ctx("create directory", self.recordings.join(rel_dir))?;
                self.fs.rename(&f.source, &dest).ctx("move", &f.source)?;
                touch(dest.parent().unwrap_or(&self.recordings));
                touch(source_dir);
                // The file the finisher hashed, just moved: its stamp from now on (the move
                // changed it) is the hashed content's.
                let stamp = self.fine_stamps.then(|| self.fs.symlink_metadata(&dest).ok()?.stamp).flatten();
                return Ok(Some(EnteredAs(stamp)));
            }
            (true, true) => {
                let identical = f.action == Action::Reuse || {
                    let (sha, _) = hash_file(&self.fs, &dest).ctx("read", &dest)?;
                    sha == f.sha256
                };
                if !identical {
                    return Err(SpoolError::Conflict {
                        intent: intent_path.to_owned(),
                        dest,
                        source_path: f.source.clone(),
                    });
                }
                self.fs.remove_file(&f.source).ctx("remove", &f.source)?;
                touch(source_dir);
            }
            (false, true) => {}
            (false, false) => {
                tracing::error!(key = %intent.key, source = %f.source.display(),
                    dest = %dest.display(),
                    "a file of this recording is neither in the work directory nor in the spool; \
                     queueing the recording without it");
                return Ok(None);
            }
        }
        Ok(Some(EnteredAs::default()))
    }
}

/// The directory under `recordings/` a spool path `recordings/<key>.<ext>` is in.
fn recordings_dir(path: &str) -> &Path {
    Path::new(path).parent().and_then(|p| p.strip_prefix("recordings").ok()).unwrap_or(Path::new(""))
}

/// One queue entry (or reservation) of `key` fewer.
pub(super) fn count_out(state: &mut State, key: &str) {
    if let Some(n) = state.queued_keys.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.queued_keys.remove(key);
        }
    }
}

/// Whether something exists at `path` (without following a final symlink).
fn exists<FS: Fs>(fs: &FS, path: &Path) -> io::Result<bool> {
    match fs.symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks that `key` is a relative path of plain, non-hidden components.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.contains('\0') || key.contains('\\') {
        return Err("the key contains NUL or a backslash".into());
    }
    if key.starts_with('/') {
        return Err("the key must be a relative path like 2016/11/26/<name>".into());
    }
    for component in key.split('/') {
        if component.is_empty() || component.starts_with('.') {
            return Err("key components must not be empty or start with a dot".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        assert!(check_key("2016/11/26/20161126T144259.666Z_sipp_test_1a2b").is_ok());
        assert!(check_key("flat").is_ok());
        for bad in ["", "/abs", "a/../b", "a/./b", "a//b", "a/", ".hidden", "a/.b", "a\\b", ".."] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
    }
}
