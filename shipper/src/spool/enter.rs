//! `Spool::enter`: validation, key resolution, intents, and finishing intents (also at `open`).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::error::IoContext;
use super::format::{self, Action, EntryRecord, Intent, IntentFile, seq_file_name};
use super::{EnteredAs, Entry, EntryFile, EntryId, NewRecording, Spool, SpoolError, State, now_rfc3339};
use crate::faults::CrashPoint;
use crate::filesystem::Fs;
use crate::fsutil::{create_dirs_durable, hash_file, is_sha256_hex, sync_dir, write_renamed};

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
        self.enter_all(vec![rec]).pop().expect("one result per recording")
    }

    /// [`Spool::enter`] for several recordings at once, with one result each, in order: each
    /// gets its own intent and entry, but the directories those land in are synced once for
    /// all (group commit): a finisher with a backlog pays a directory fsync per step, not per
    /// recording. Each recording is entered or not on its own, as if entered alone.
    pub fn enter_all(&self, recs: Vec<NewRecording>) -> Vec<Result<EntryId, SpoolError>> {
        let mut results: Vec<Option<Result<EntryId, SpoolError>>> = Vec::with_capacity(recs.len());
        let mut intents = Vec::with_capacity(recs.len());
        for (i, rec) in recs.into_iter().enumerate() {
            results.push(None);
            match self.validate(&rec).and_then(|()| self.reserve(rec)) {
                Ok(intent) => intents.push((i, intent)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // The intents, each written and fsynced, then their directory once.
        let mut written = Vec::with_capacity(intents.len());
        for (i, intent) in intents {
            match self.write_intent(&intent) {
                Ok(()) => written.push((i, intent)),
                Err(e) => {
                    self.withdraw(&intent);
                    results[i] = Some(Err(e));
                }
            }
        }
        if !written.is_empty()
            && let Err(e) = sync_dir(&self.fs, &self.intents)
        {
            for (i, intent) in written.drain(..) {
                self.withdraw(&intent);
                results[i] = Some(Err(SpoolError::io("sync directory", &self.intents, again(&e))));
            }
        }
        let intents: Vec<&Intent> = written.iter().map(|(_, intent)| intent).collect();
        let done = match self.hit_each(CrashPoint::EnterAfterIntent, intents.len()) {
            Ok(()) => self.finish_intents(&intents),
            Err(e) => intents.iter().map(|i| Err(SpoolError::io("enter", self.intent_path(i), again(&e)))).collect(),
        };
        let mut state = self.lock();
        for ((i, intent), done) in written.into_iter().zip(done) {
            state.entering.remove(&intent.seq);
            results[i] = Some(match done {
                Ok(()) => Ok(EntryId(intent.seq)),
                Err(e) => {
                    count_out(&mut state, &intent.key);
                    let key = intent.key.clone();
                    let path = self.intent_path(&intent);
                    state.unfinished.insert(intent.seq, intent);
                    Err(SpoolError::Unfinished { key, intent: path, source: Box::new(e) })
                }
            });
        }
        results.into_iter().map(|r| r.expect("every recording has its result")).collect()
    }

    /// Passes crash point `point` once for each of `n` recordings (the points are counted per
    /// recording, however they are grouped).
    fn hit_each(&self, point: CrashPoint, n: usize) -> io::Result<()> {
        (0..n).try_for_each(|_| self.faults.hit(point))
    }

    /// An intent that will not be carried out (nothing of it has moved: the caller still owns
    /// its files): removed, so that a later start does not move files the caller may have
    /// retried with, and its reservation given back.
    fn withdraw(&self, intent: &Intent) {
        if self.fs.remove_file(&self.intent_path(intent)).is_ok() {
            let _ = sync_dir(&self.fs, &self.intents);
        }
        let mut state = self.lock();
        state.entering.remove(&intent.seq);
        count_out(&mut state, &intent.key);
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

    /// Writes the intent file (fsynced, renamed into place; its directory is the caller's to
    /// sync).
    fn write_intent(&self, intent: &Intent) -> Result<(), SpoolError> {
        let path = self.intent_path(intent);
        let bytes = serde_json::to_vec_pretty(intent)
            .map_err(|e| SpoolError::io("serialize", &path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        write_renamed(&self.fs, &self.tmp, &path, &bytes).ctx("write", path)
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
        self.finish_intents(&[intent]).pop().expect("one result per intent")
    }

    fn intent_path(&self, intent: &Intent) -> PathBuf {
        self.intents.join(seq_file_name(intent.seq))
    }

    /// [`Spool::finish_intent`] for several intents, one result each: every step is taken for
    /// all of them before the next, and the directories a step changed are synced once, after
    /// it (the moves' before the entries that say the files are in place, the queue's before
    /// the intents go). An intent that fails a step goes no further; the others go on.
    fn finish_intents(&self, intents: &[&Intent]) -> Vec<Result<(), SpoolError>> {
        let mut results: Vec<Result<(), SpoolError>> = intents.iter().map(|_| Ok(())).collect();
        // Moves.
        let mut kept: Vec<Vec<EntryFile>> = intents.iter().map(|i| Vec::with_capacity(i.files.len())).collect();
        let mut touched = Touched::default();
        for (k, intent) in intents.iter().enumerate() {
            let intent_path = self.intent_path(intent);
            for (i, f) in intent.files.iter().enumerate() {
                match self.place_file(intent, &intent_path, f, &mut touched) {
                    Ok(Some(entered_as)) => kept[k].push(EntryFile {
                        ext: f.ext.clone(),
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                        size: f.size,
                        entered_as,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        results[k] = Err(e);
                        break;
                    }
                }
                if i == 0
                    && let Err(e) = self.faults.hit(CrashPoint::EnterAfterFirstMove)
                {
                    results[k] = Err(SpoolError::io("enter", &intent_path, e));
                    break;
                }
            }
        }
        if let Err((dir, e)) = touched.sync(&self.fs) {
            fail_all(&mut results, |_| SpoolError::io("sync directory", &dir, again(&e)));
        }
        if let Err(e) = self.hit_each(CrashPoint::EnterAfterMoves, ok_count(&results)) {
            fail_all(&mut results, |k| SpoolError::io("enter", self.intent_path(intents[k]), again(&e)));
        }

        // Entries.
        let mut queued = false;
        let mut became_entry = vec![false; intents.len()];
        for (k, intent) in intents.iter().enumerate() {
            if results[k].is_err() {
                continue;
            }
            let entry_path = self.entry_path(EntryId(intent.seq));
            queued = true;
            if kept[k].is_empty() {
                tracing::error!(key = %intent.key, intent = %self.intent_path(intent).display(),
                    "no file of this recording could be found; nothing to queue");
            } else if self.fs.symlink_metadata(&entry_path).is_err() {
                let record = EntryRecord {
                    version: format::VERSION,
                    seq: intent.seq,
                    key: intent.key.clone(),
                    files: std::mem::take(&mut kept[k]),
                    summary: intent.summary.clone(),
                    entered_at: intent.entered_at.clone(),
                    targets: intent.targets.clone(),
                    shipped: BTreeMap::new(),
                };
                // With every file in place, the intent (durable, and saying all an entry says)
                // becomes the entry by a rename: no second file written and synced, and none
                // deleted. Without some file, a new entry names only those in place.
                let written = if record.files.len() == intent.files.len() {
                    became_entry[k] = true;
                    self.fs.rename(&self.intent_path(intent), &entry_path)
                } else {
                    serde_json::to_vec_pretty(&record)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
                        .and_then(|bytes| write_renamed(&self.fs, &self.tmp, &entry_path, &bytes))
                };
                match written {
                    Ok(()) => {
                        self.index().insert(EntryId(intent.seq), Entry::from_record(record));
                    }
                    Err(e) => results[k] = Err(SpoolError::io("write", &entry_path, e)),
                }
            }
        }
        // The queue's directory, also when an entry was there already (an earlier attempt may
        // have stopped before syncing it).
        if queued && let Err(e) = sync_dir(&self.fs, &self.queue) {
            fail_all(&mut results, |_| SpoolError::io("sync directory", &self.queue, again(&e)));
        }
        if let Err(e) = self.hit_each(CrashPoint::EnterAfterEntry, ok_count(&results)) {
            fail_all(&mut results, |k| SpoolError::io("enter", self.intent_path(intents[k]), again(&e)));
        }

        // Intents (gone already where they became the entry: their directory is synced all
        // the same).
        let mut removed = false;
        for (k, intent) in intents.iter().enumerate() {
            if results[k].is_err() {
                continue;
            }
            if became_entry[k] {
                removed = true;
                continue;
            }
            let path = self.intent_path(intent);
            match self.fs.remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => removed = true,
                Err(e) => results[k] = Err(SpoolError::io("remove", path, e)),
            }
        }
        if removed && let Err(e) = sync_dir(&self.fs, &self.intents) {
            fail_all(&mut results, |_| SpoolError::io("sync directory", &self.intents, again(&e)));
        }
        results
    }

    /// Puts one file of `intent` in place, adding the directories whose entries that changed
    /// to `touched` (for the caller to sync). Returns whether the file is in `recordings/`
    /// (false only if it vanished from both the work directory and the spool).
    fn place_file(
        &self,
        intent: &Intent,
        intent_path: &Path,
        f: &IntentFile,
        touched: &mut Touched,
    ) -> Result<Option<EnteredAs>, SpoolError> {
        let dest = self.root.join(&f.path);
        let source_there = exists(&self.fs, &f.source).ctx("inspect", &f.source)?;
        let dest_there = exists(&self.fs, &dest).ctx("inspect", &dest)?;
        let source_dir = f.source.parent().unwrap_or(Path::new("/"));
        match (source_there, dest_there) {
            (true, false) => {
                let rel_dir = recordings_dir(&f.path);
                create_dirs_durable(&self.fs, &self.recordings, rel_dir)
                    .ctx("create directory", self.recordings.join(rel_dir))?;
                self.fs.rename(&f.source, &dest).ctx("move", &f.source)?;
                Touched::add(&mut touched.dests, dest.parent().unwrap_or(&self.recordings));
                Touched::add(&mut touched.sources, source_dir);
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
                Touched::add(&mut touched.sources, source_dir);
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

/// The directories moves changed, to be synced once each: where files went first, then where
/// they left (a power loss in between may leave a file in both, never in neither).
#[derive(Debug, Default)]
struct Touched {
    dests: Vec<PathBuf>,
    sources: Vec<PathBuf>,
}

impl Touched {
    fn add(dirs: &mut Vec<PathBuf>, dir: &Path) {
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_owned());
        }
    }

    /// Syncs them, destinations first; the directory that failed, with the error.
    fn sync<F: Fs>(&self, fs: &F) -> Result<(), (PathBuf, io::Error)> {
        for dir in self.dests.iter().chain(&self.sources) {
            sync_dir(fs, dir).map_err(|e| (dir.clone(), e))?;
        }
        Ok(())
    }
}

/// The same error again (an I/O error shared by several recordings, each with its own).
fn again(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// How many recordings are still going.
fn ok_count(results: &[Result<(), SpoolError>]) -> usize {
    results.iter().filter(|r| r.is_ok()).count()
}

/// Every result still `Ok` becomes the error `err` makes for its index.
fn fail_all(results: &mut [Result<(), SpoolError>], err: impl Fn(usize) -> SpoolError) {
    for (k, r) in results.iter_mut().enumerate() {
        if r.is_ok() {
            *r = Err(err(k));
        }
    }
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
    if !key.contains('/') {
        // An archive keeps the manifest of a day's recordings in that day's directory.
        return Err("the key must name its day's directory, like 2016/11/26/<name>".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        assert!(check_key("2016/11/26/20161126T144259.666Z_sipp_test_1a2b").is_ok());
        // Every archive files a recording's manifest line in its key's directory.
        assert!(check_key("flat").is_err());
        for bad in ["", "/abs", "a/../b", "a/./b", "a//b", "a/", ".hidden", "a/.b", "a\\b", ".."] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
    }
}
