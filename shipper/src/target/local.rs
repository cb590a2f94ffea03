//! [`LocalDir`]: ships recordings into a local or mounted directory. The layout, invariants and
//! crash behaviour are described in the [module documentation](super).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::manifest::{self, Writer, plain_path};
use super::{Outgoing, ShipError, ShipSlot, Shipment, Target};
use crate::faults::{CrashPoint, Faults};
use crate::filesystem::StdFs;
use crate::fsutil::{DirSync, create_dirs_durable, hash_file, is_sha256_hex, random_u64, sync_dir};
use crate::spool::{Entry, EntryFile, Spool};

/// Age above which a leftover `.part-` file in the archive is considered abandoned and removed.
/// Younger ones may belong to a copy still running in another process.
pub const STALE_PART_AGE: Duration = Duration::from_secs(15 * 60);

/// How long a directory archive's manifest batch collects lines: not at all — a batch is written
/// at once, and the lines that arrive while it is written go together in the next one. A
/// shipment gives its slot back while it waits for its line, so those behind it are published
/// meanwhile and their lines fill the next batch (2,000 recordings shipped as they end: 151
/// batches instead of 312, each a few fsyncs and a signature).
pub const LOCAL_MANIFEST_LINGER: Duration = Duration::ZERO;

/// Marks temporary copies: `.<file name>.part-<16 hex>`.
const PART_MARK: &str = ".part-";

/// How many `~N` suffixes to try before giving up on a key.
const MAX_SUFFIX: u32 = 10_000;

/// An archive target that is a directory on a local or mounted filesystem. Each recording is
/// stored as `<dir>/<key>.<ext>`; see the [module documentation](super) for the guarantees.
///
/// Cloning is cheap and clones share state.
#[derive(Debug, Clone)]
pub struct LocalDir {
    inner: Arc<Inner>,
}

/// The shared state of a [`LocalDir`].
#[derive(Debug)]
struct Inner {
    name: String,
    dir: PathBuf,
    /// When each destination directory was last swept of stale `.part-` files.
    swept: Mutex<HashMap<PathBuf, Instant>>,
    /// Group commit of each day's directory: recordings shipped at once share its fsyncs.
    day_syncs: Mutex<HashMap<PathBuf, Arc<DirSync>>>,
    /// The daily manifests' writer.
    manifest: Writer,
    /// Days after which recordings are pruned ([`retention`](super::retention)); 0: never.
    retention_days: std::sync::atomic::AtomicU32,
    /// A pruning is running.
    pruning: std::sync::atomic::AtomicBool,
    /// Files are published by hard link from the spool until a link fails (another filesystem).
    linking: std::sync::atomic::AtomicBool,
}

/// The group commit of directory `dir` (kept for the few directories being shipped to: the
/// others' are dropped once more than a handful are kept).
fn day_sync(syncs: &Mutex<HashMap<PathBuf, Arc<DirSync>>>, dir: &Path) -> Arc<DirSync> {
    let mut syncs = syncs.lock().unwrap_or_else(|e| e.into_inner());
    if syncs.len() > 8 && !syncs.contains_key(dir) {
        syncs.retain(|_, sync| Arc::strong_count(sync) > 1);
    }
    Arc::clone(syncs.entry(dir.to_owned()).or_default())
}

/// What is at a destination path, compared with the file meant to go there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Nothing.
    Free,
    /// A regular file with the same SHA-256.
    Same,
    /// Something else.
    Taken,
}

/// One entry's shipment, prepared on the async side and carried out on a blocking thread.
#[derive(Debug)]
struct Job {
    /// The key to store the entry under (before any `~N`).
    key: String,
    /// The files in publishing order (the JSON record last), each with its spooled path.
    files: Vec<(EntryFile, PathBuf)>,
    /// The spool's fault-injection seam.
    faults: Arc<Faults>,
}

/// The configuration error of target `name` about `path`.
fn config_error(name: &str, path: &Path, problem: &str, source: Option<io::Error>) -> ShipError {
    ShipError::Config { target: name.to_owned(), path: path.to_owned(), problem: problem.to_owned(), source }
}

impl LocalDir {
    /// The target over the (checked, absolute) directory `dir`.
    fn at(name: &str, dir: PathBuf) -> LocalDir {
        LocalDir {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                dir,
                swept: Mutex::default(),
                day_syncs: Mutex::default(),
                manifest: Writer::new(LOCAL_MANIFEST_LINGER),
                retention_days: Default::default(),
                pruning: Default::default(),
                linking: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    /// A target named `name` storing into `dir`, which is created if missing (with its parents).
    ///
    /// Fails with [`ShipError::Config`] if the name is empty, or if `dir` cannot be created, is
    /// not a directory, is not writable, or is on a filesystem without hard links (a small hidden
    /// probe file is written and removed to check).
    pub fn new(name: &str, dir: &Path) -> Result<LocalDir, ShipError> {
        let config = |path: &Path, problem: &str, source: Option<io::Error>| config_error(name, path, problem, source);
        if name.is_empty() {
            return Err(config(dir, "belongs to a target without a name; give the target a name", None));
        }
        let dir = std::path::absolute(dir)
            .map_err(|e| config(dir, "cannot be resolved to an absolute path; check the path", Some(e)))?;
        let existed = fs::symlink_metadata(&dir).is_ok();
        fs::create_dir_all(&dir).map_err(|e| {
            if dir.exists() && !dir.is_dir() {
                return config(&dir, "is not a directory; point the target at a directory", Some(e));
            }
            config(&dir, "cannot be created; create it, or fix the path or the permissions of its parent", Some(e))
        })?;
        if !existed && let Some(parent) = dir.parent() {
            sync_dir(&StdFs, parent)
                .map_err(|e| config(&dir, "was created but its parent cannot be synced; check the disk", Some(e)))?;
        }
        let meta = fs::metadata(&dir).map_err(|e| config(&dir, "cannot be inspected; check the path", Some(e)))?;
        if !meta.is_dir() {
            return Err(config(&dir, "is not a directory; point the target at a directory", None));
        }
        probe(&dir).map_err(|(problem, e)| config(&dir, problem, Some(e)))?;
        Ok(LocalDir::at(name, dir))
    }

    /// The existing archive directory `dir`, to read (`callvault archive`): nothing is created
    /// or written to check it, so a read-only mount works. Fails with [`ShipError::Config`] if it
    /// does not exist or is not a directory.
    pub fn open_existing(name: &str, dir: &Path) -> Result<LocalDir, ShipError> {
        let config = |path: &Path, problem: &str, source: Option<io::Error>| config_error(name, path, problem, source);
        let dir = std::path::absolute(dir)
            .map_err(|e| config(dir, "cannot be resolved to an absolute path; check the path", Some(e)))?;
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(config(&dir, "is not a directory; give the archive directory", None)),
            Err(e) => {
                return Err(config(&dir, "cannot be read; check the path (nothing was archived there?)", Some(e)));
            }
        }
        Ok(LocalDir::at(name, dir))
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The archive directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The daily manifests' writer.
    pub(crate) fn manifest_writer(&self) -> &Writer {
        &self.inner.manifest
    }

    /// Whether files are published by hard link from the spool when it is on the archive's
    /// filesystem (the default), or always copied (an independent copy of every file).
    pub fn set_link_from_spool(&self, link: bool) {
        self.inner.linking.store(link, std::sync::atomic::Ordering::Relaxed);
    }

    /// Prunes recordings older than `days` (by the day of their key) that are not held; `None`
    /// keeps everything (the default). See [`retention`](super::retention).
    pub fn set_retention_days(&self, days: Option<u32>) {
        self.inner.retention_days.store(days.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// The retention in days, if any.
    pub fn retention_days(&self) -> Option<u32> {
        Some(self.inner.retention_days.load(std::sync::atomic::Ordering::Relaxed)).filter(|d| *d > 0)
    }

    /// Marks a pruning as running; `false` if one already is.
    pub(crate) fn start_pruning(&self) -> bool {
        !self.inner.pruning.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Marks the running pruning as done.
    pub(crate) fn end_pruning(&self) {
        self.inner.pruning.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Copies, verifies and publishes every file of `entry` (the filesystem work runs on the
    /// blocking thread pool), then writes its manifest line. Like an S3 shipment it gives its
    /// slot back once its files are in place: the next entries are published while it waits for
    /// the batch that holds its line, and their lines join the next batch.
    pub(crate) async fn ship(
        &self,
        spool: &Spool,
        entry: &Entry,
        out: &Outgoing,
        slot: &ShipSlot,
    ) -> Result<Shipment, ShipError> {
        let job = Job { key: out.key.clone(), files: out.files.clone(), faults: Arc::clone(spool.faults()) };
        let this = self.clone();
        let (shipment, key, job) = match tokio::task::spawn_blocking(move || {
            this.ship_blocking(&job).map(|(shipment, key)| (shipment, key, job))
        })
        .await
        {
            Ok(result) => result?,
            Err(e) => {
                return Err(ShipError::Internal(format!(
                    "shipping {} to target {:?} did not finish: {e}",
                    entry.key,
                    self.name()
                )));
            }
        };
        slot.release();
        job.faults
            .hit(CrashPoint::ShipBeforeManifest)
            .map_err(|e| self.archive_err("write manifest of", self.dir(), e))?;
        let target = Target::LocalDir(self.clone());
        let line = manifest::line(&target, entry, &key, out);
        manifest::Writer::append(&target, line).await?;
        Ok(shipment)
    }

    /// Publishes the files; returns the shipment and the key they are stored under.
    fn ship_blocking(&self, job: &Job) -> Result<(Shipment, String), ShipError> {
        job.faults.alive().map_err(|e| self.archive_err("ship to", self.dir(), e))?;
        let (key, slots, diverted) = self.resolve_key(job)?;
        let base = self.dir().join(&key);
        let mut shipment = Shipment {
            location: base.display().to_string(),
            files_copied: 0,
            files_present: 0,
            bytes_copied: 0,
            diverted: diverted.map(|p| p.display().to_string()),
        };
        let mut prepared = false;
        for ((file, source), slot) in job.files.iter().zip(slots) {
            let dest = self.dir().join(format!("{key}.{}", file.ext));
            if slot == Slot::Same {
                shipment.files_present += 1;
                continue;
            }
            if !prepared {
                self.prepare_dir(job, &key)?;
                prepared = true;
            }
            if self.ship_file(job, file, source, &dest)? {
                shipment.files_copied += 1;
                shipment.bytes_copied += file.size;
            } else {
                shipment.files_present += 1;
            }
        }
        // The names are made durable by the manifest batch that takes the recording's line
        // ([`LocalDir::settle_day_blocking`]), once for every recording in it, before the
        // shipment succeeds: also for files found here (an earlier attempt, or another writer,
        // may have stopped before syncing their names).
        Ok((shipment, key))
    }

    /// Syncs the directory of the day `day_prefix` (`YYYY/MM/DD/`: the directory of the keys
    /// whose lines the batch takes): every name published in it before the call is durable
    /// when it returns.
    pub(crate) fn settle_day_blocking(&self, day_prefix: &str) -> Result<(), ShipError> {
        let rel = day_prefix.trim_end_matches('/');
        if !plain_path(rel) {
            return Err(self.invalid_key(day_prefix));
        }
        let dir = self.dir().join(rel);
        day_sync(&self.inner.day_syncs, &dir)
            .sync(&StdFs, &dir)
            .map_err(|e| self.archive_err("sync directory", &dir, e))
    }

    /// Picks the key to store the entry under: its own if every destination is free or already
    /// holds the same content, else the first free `<key>~N`. Returns the key, per file what is at
    /// its destination, and the file that made it move on (a damaged or replaced archive file,
    /// logged at error level: the recording is kept under the other key and `archive verify`
    /// reports the damage).
    fn resolve_key(&self, job: &Job) -> Result<(String, Vec<Slot>, Option<PathBuf>), ShipError> {
        let mut first_taken = None;
        for n in 1..=MAX_SUFFIX {
            let key = if n == 1 { job.key.clone() } else { format!("{}~{n}", job.key) };
            let mut slots = Vec::with_capacity(job.files.len());
            for (file, _) in &job.files {
                let dest = self.dir().join(format!("{key}.{}", file.ext));
                match self.slot(&dest, file)? {
                    Slot::Taken => {
                        first_taken.get_or_insert(dest);
                        break;
                    }
                    slot => slots.push(slot),
                }
            }
            if slots.len() == job.files.len() {
                if let Some(taken) = &first_taken {
                    let found = hash_file(&StdFs, taken).map(|(sha, size)| format!("SHA-256 {sha}, {size} bytes"));
                    let want =
                        job.files.iter().find(|(f, _)| taken.to_string_lossy().ends_with(&format!(".{}", f.ext)));
                    tracing::error!(target_name = %self.name(), key = %job.key, stored_as = %key,
                        damaged = %taken.display(),
                        found = %found.unwrap_or_else(|e| format!("unreadable: {e}")),
                        recorded = %want.map(|(f, _)| format!("SHA-256 {}, {} bytes", f.sha256, f.size)).unwrap_or_default(),
                        "the archive file differs from the recording: damaged or replaced; it is left as it is, the recording is stored under the other key — run `callvault archive verify`");
                }
                return Ok((key, slots, first_taken));
            }
        }
        let path = first_taken.unwrap_or_else(|| self.dir().join(&job.key));
        Err(ShipError::Conflict { target: self.name().to_owned(), path })
    }

    /// What is at `dest`, compared with `file`.
    fn slot(&self, dest: &Path, file: &EntryFile) -> Result<Slot, ShipError> {
        match fs::symlink_metadata(dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Slot::Free),
            Err(e) => Err(self.archive_err("inspect", dest, e)),
            Ok(meta) if meta.is_file() && meta.len() == file.size => {
                let (sha, _) = hash_file(&StdFs, dest).map_err(|e| self.archive_err("read", dest, e))?;
                Ok(if sha == file.sha256 { Slot::Same } else { Slot::Taken })
            }
            Ok(_) => Ok(Slot::Taken),
        }
    }

    /// Creates the directory of `key` durably and sweeps it of stale `.part-` files.
    fn prepare_dir(&self, job: &Job, key: &str) -> Result<(), ShipError> {
        let rel = Path::new(key).parent().unwrap_or(Path::new(""));
        let dir = self.dir().join(rel);
        job.faults.alive().map_err(|e| self.archive_err("create directory", &dir, e))?;
        create_dirs_durable(&StdFs, self.dir(), rel).map_err(|e| self.archive_err("create directory", &dir, e))?;
        self.sweep(&dir);
        Ok(())
    }

    /// Removes stale `.part-` files from `dir`, at most once per [`STALE_PART_AGE`]. Failures are
    /// logged: leftovers take space but never hide or damage a recording.
    fn sweep(&self, dir: &Path) {
        let now = Instant::now();
        {
            let mut swept = self.inner.swept.lock().unwrap_or_else(|e| e.into_inner());
            if swept.get(dir).is_some_and(|&at| now.duration_since(at) < STALE_PART_AGE) {
                return;
            }
            swept.retain(|_, at| now.duration_since(*at) < STALE_PART_AGE);
            swept.insert(dir.to_owned(), now);
        }
        match remove_stale_parts(dir, SystemTime::now()) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(target_name = %self.name(), dir = %dir.display(), removed,
                "removed abandoned partial copies"),
            Err(e) => tracing::warn!(target_name = %self.name(), dir = %dir.display(), error = %e,
                "cannot remove abandoned partial copies"),
        }
    }

    /// Copies `source` to a temporary file next to `dest`, verifies it, and publishes it as
    /// `dest` without replacing anything. Returns `true` if it was published, `false` if an
    /// identical file got there first. The directory's sync is the caller's (one per recording).
    fn ship_file(&self, job: &Job, file: &EntryFile, source: &Path, dest: &Path) -> Result<bool, ShipError> {
        let dir = dest.parent().unwrap_or(self.dir());
        if let Some(linked) = self.link(job, file, source, dest)? {
            return Ok(linked);
        }
        let name = dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}{PART_MARK}{:016x}", random_u64()));
        job.faults.alive().map_err(|e| self.archive_err("create", &tmp, e))?;
        let linked = self.copy_verified(file, source, &tmp).and_then(|()| {
            job.faults.hit(CrashPoint::ShipAfterCopy).map_err(|e| self.archive_err("publish", dest, e))?;
            match fs::hard_link(&tmp, dest) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(self.archive_err("publish", dest, e)),
            }
        });
        if job.faults.crashed() {
            // A crashed process cleans nothing up: the temporary copy stays for recovery to find.
            return linked;
        }
        // Published or not, the temporary name goes.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(target_name = %self.name(), path = %tmp.display(), error = %e,
                "cannot remove a temporary copy; it is removed once stale"),
        }
        if linked? {
            return Ok(true);
        }
        // Someone else published this name meanwhile: fine if it is the same content.
        match self.slot(dest, file)? {
            Slot::Same => Ok(false),
            Slot::Free | Slot::Taken => {
                Err(ShipError::Conflict { target: self.name().to_owned(), path: dest.to_owned() })
            }
        }
    }

    /// Publishes `source` as `dest` by hard link when both are on one filesystem: the archive
    /// file is then the spooled file itself (same inode), so nothing is copied, written or
    /// fsynced twice. The spooled file is hashed first (a file damaged in the spool is never
    /// published: `SourceMismatch`, as a copy's read-back would find) unless it is still,
    /// device, inode, size and change times, the file this process hashed and entered
    /// ([`crate::EnteredAs`]), and the link is checked by identity (device, inode, size). Returns `None` when it cannot link (another
    /// filesystem, or the filesystem refuses), and the file is copied instead; from then on this
    /// target copies.
    fn link(&self, job: &Job, file: &EntryFile, source: &Path, dest: &Path) -> Result<Option<bool>, ShipError> {
        use std::os::unix::fs::MetadataExt;
        use std::sync::atomic::Ordering;
        if !self.inner.linking.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if !file.entered_as.unchanged(source) {
            let (read, _) =
                hash_file(&StdFs, source).map_err(|e| ShipError::Source { path: source.to_owned(), source: e })?;
            if read != file.sha256 {
                return Err(ShipError::SourceMismatch {
                    path: source.to_owned(),
                    expected: file.sha256.clone(),
                    actual: read,
                });
            }
        }
        job.faults.hit(CrashPoint::ShipAfterCopy).map_err(|e| self.archive_err("publish", dest, e))?;
        match fs::hard_link(source, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Someone published this name first: fine if it is the same content.
                return match self.slot(dest, file)? {
                    Slot::Same => Ok(Some(false)),
                    Slot::Free | Slot::Taken => {
                        Err(ShipError::Conflict { target: self.name().to_owned(), path: dest.to_owned() })
                    }
                };
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(source).is_err() => {
                return Err(ShipError::Source { path: source.to_owned(), source: e });
            }
            Err(e) => {
                // EXDEV (another filesystem), EPERM, EMLINK, …: copy instead.
                tracing::info!(target_name = %self.name(), source = %source.display(), dest = %dest.display(),
                    error = %e, "cannot hard-link from the spool into the archive; copying instead");
                self.inner.linking.store(false, Ordering::Relaxed);
                return Ok(None);
            }
        }
        let same = match (fs::metadata(source), fs::metadata(dest)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino() && b.len() == file.size && b.is_file(),
            _ => false,
        };
        if !same {
            let _ = fs::remove_file(dest);
            return Err(ShipError::CopyMismatch {
                target: self.name().to_owned(),
                path: dest.to_owned(),
                expected: file.sha256.clone(),
                actual: format!("(the link is not the spooled file of {} bytes)", file.size),
            });
        }
        Ok(Some(true))
    }

    /// Copies `source` to the new file `tmp` (in the kernel: `copy_file_range` where the
    /// filesystems allow it), fsyncs it, then reads the copy back and checks its SHA-256 against
    /// the entry. Only on a mismatch is the spooled source hashed too, to tell a damaged spool
    /// file (`SourceMismatch`) from a bad copy (`CopyMismatch`). The read-back mostly comes from
    /// the page cache: it proves what this process and the filesystem made of the copy, not what
    /// the disk holds.
    fn copy_verified(&self, file: &EntryFile, source: &Path, tmp: &Path) -> Result<(), ShipError> {
        let source_err = |e| ShipError::Source { path: source.to_owned(), source: e };
        let mut input = File::open(source).map_err(source_err)?;
        let mut output = File::create_new(tmp).map_err(|e| self.archive_err("create", tmp, e))?;
        io::copy(&mut input, &mut output).map_err(|e| {
            // Tell a failing read of the spool from a failing write to the archive.
            match input.metadata() {
                Err(m) => source_err(m),
                Ok(_) => self.archive_err("write", tmp, e),
            }
        })?;
        output.sync_all().map_err(|e| self.archive_err("sync", tmp, e))?;
        drop(output);
        let (copied, _) = hash_file(&StdFs, tmp).map_err(|e| self.archive_err("read back", tmp, e))?;
        if copied == file.sha256 {
            return Ok(());
        }
        let (read, _) = hash_file(&StdFs, source).map_err(source_err)?;
        if read != file.sha256 {
            return Err(ShipError::SourceMismatch {
                path: source.to_owned(),
                expected: file.sha256.clone(),
                actual: read,
            });
        }
        Err(ShipError::CopyMismatch {
            target: self.name().to_owned(),
            path: tmp.to_owned(),
            expected: file.sha256.clone(),
            actual: copied,
        })
    }

    pub(super) fn archive_err(&self, op: &'static str, path: &Path, source: io::Error) -> ShipError {
        ShipError::Archive { target: self.name().to_owned(), op, path: path.to_owned(), source }
    }
}

/// Checks the parts of an entry that become archive paths: the key is a relative path of plain,
/// non-hidden components, each extension is plain ASCII letters and digits, each SHA-256 is
/// lowercase hex.
pub(super) fn check_entry(entry: &Entry) -> Result<(), String> {
    let key = &entry.key;
    let key_ok = !key.is_empty()
        && !key.contains(['\0', '\\'])
        && !key.starts_with('/')
        && key.split('/').all(|c| !c.is_empty() && !c.starts_with('.'));
    if !key_ok {
        return Err(format!("key {key:?} is not a relative path of plain components"));
    }
    if entry.files.is_empty() {
        return Err("the entry lists no files".into());
    }
    for f in &entry.files {
        if !crate::spool::valid_ext(&f.ext) {
            return Err(format!("extension {:?} is not plain ASCII letters and digits", f.ext));
        }
        if !is_sha256_hex(&f.sha256) {
            return Err(format!("the sha256 of the {} file is not 64 lowercase hex digits", f.ext));
        }
    }
    Ok(())
}

/// Whether `name` is a temporary copy's name: `.<file name>.part-<suffix>`.
pub(super) fn is_part_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(PART_MARK)
}

/// Removes the `.part-` files in `dir` last modified more than [`STALE_PART_AGE`] before `now`,
/// and syncs the directory if any were removed. Returns how many were removed.
fn remove_stale_parts(dir: &Path, now: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    for item in fs::read_dir(dir)? {
        let item = item?;
        if !item.file_name().to_str().is_some_and(is_part_name) {
            continue;
        }
        let meta = match item.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let age = meta.modified().ok().and_then(|t| now.duration_since(t).ok());
        if !meta.is_file() || age.is_none_or(|age| age <= STALE_PART_AGE) {
            continue;
        }
        match fs::remove_file(item.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed > 0 {
        sync_dir(&StdFs, dir)?;
    }
    Ok(removed)
}

/// Checks that files can be created and hard-linked in `dir`, with hidden names that the stale
/// sweep recognises should a crash leave them behind. Returns what to tell the operator.
fn probe(dir: &Path) -> Result<(), (&'static str, io::Error)> {
    let file = dir.join(format!(".write-check{PART_MARK}{:016x}", random_u64()));
    let link = dir.join(format!(".write-check-link{PART_MARK}{:016x}", random_u64()));
    let result = File::create_new(&file)
        .map_err(|e| ("is not writable; give the recorder's user write permission, or fix the mount", e))
        .and_then(|_| {
            fs::hard_link(&file, &link).map_err(|e| {
                ("is on a filesystem without hard links, which publishing without overwriting needs; use another filesystem", e)
            })
        });
    let _ = fs::remove_file(&link);
    let _ = fs::remove_file(&file);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{NewFile, NewRecording};
    use crate::target::Disposition;
    use sha2::{Digest, Sha256};

    const KEY: &str = "2016/11/26/20161126T144259.666Z_sipp_test_1a2b3c4d5e6f";

    /// A spool holding one recording, and an archive target, under one temporary directory.
    struct Fixture {
        tmp: tempfile::TempDir,
        spool: Spool,
        entry: Entry,
        target: LocalDir,
    }

    fn fixture(files: &[(&str, &[u8])]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(&tmp.path().join("spool")).unwrap();
        let work = tmp.path().join("work");
        fs::create_dir(&work).unwrap();
        let files = files
            .iter()
            .map(|(ext, bytes)| {
                let source = work.join(format!("call.{ext}"));
                fs::write(&source, bytes).unwrap();
                let sha256 = hex::encode(Sha256::digest(bytes));
                NewFile { source, ext: (*ext).to_owned(), sha256, size: bytes.len() as u64 }
            })
            .collect();
        spool.enter(NewRecording { key: KEY.into(), files, summary: serde_json::json!({}) }).unwrap();
        let entry = spool.pending().unwrap().remove(0);
        let target = LocalDir::new("archive", &tmp.path().join("archive")).unwrap();
        Fixture { tmp, spool, entry, target }
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_listing_after_a_key_holds_only_the_keys_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let target = Target::LocalDir(LocalDir::new("archive", tmp.path()).unwrap());
        let dir = tmp.path().join("2025/01/01/manifest");
        fs::create_dir_all(dir.join("sub")).unwrap();
        for name in ["seq-0000000001.jsonl", "seq-0000000001.jsonl.sig", "seq-0000000002.jsonl", "sub/x"] {
            fs::write(dir.join(name), name).unwrap();
        }
        let prefix = "2025/01/01/manifest/";
        let all: Vec<String> = target.list(prefix).await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(all.len(), 4);
        for (i, key) in all.iter().enumerate() {
            let after = target.list_after(prefix, Some(key)).await.unwrap();
            assert_eq!(after.iter().map(|(k, _)| k).collect::<Vec<_>>(), all[i + 1..].iter().collect::<Vec<_>>());
        }
        let sizes = target.list_after(prefix, Some(&all[0])).await.unwrap();
        assert_eq!(sizes[0].1, "seq-0000000001.jsonl.sig".len() as u64);
    }

    #[tokio::test]
    async fn record_is_published_last_and_a_repeat_copies_nothing() {
        // The record comes first in the entry; it is still published last.
        let f = fixture(&[("json", b"{}"), ("wav", &[7u8; 5000])]);
        let out = Target::LocalDir(f.target.clone()).outgoing(&f.spool, &f.entry).await.unwrap();
        let order: Vec<&str> = out.files.iter().map(|(file, _)| file.ext.as_str()).collect();
        assert_eq!(order, ["wav", "json"]);

        let first = Target::LocalDir(f.target.clone()).ship(&f.spool, &f.entry).await.unwrap();
        let location = f.target.dir().join(KEY).display().to_string();
        let want = Shipment {
            location: location.clone(),
            files_copied: 2,
            files_present: 0,
            bytes_copied: 5002,
            diverted: None,
        };
        assert_eq!(first, want);
        assert!(!first.already_shipped());
        // On the spool's filesystem the archive file is the spooled file itself.
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        let spooled = f.spool.recording_path(KEY, "wav");
        assert_eq!(ino(&f.target.dir().join(format!("{KEY}.wav"))), ino(&spooled));

        let again = Target::LocalDir(f.target.clone()).ship(&f.spool, &f.entry).await.unwrap();
        assert_eq!(again, Shipment { location, files_copied: 0, files_present: 2, bytes_copied: 0, diverted: None });
        assert!(again.already_shipped());
        let dir = f.target.dir().join("2016/11/26");
        let names = names_in(&dir);
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(fs::read(dir.join(names[1].clone())).unwrap(), [7u8; 5000]);
        // One manifest line, however often the recording is shipped.
        assert_eq!(names[2], "manifest");
        assert_eq!(names_in(&dir.join("manifest")), ["seq-0000000001.jsonl"]);
        let manifest = fs::read(dir.join("manifest/seq-0000000001.jsonl")).unwrap();
        let batch = crate::target::manifest::split_batch(&manifest);
        assert_eq!(batch.lines.len(), 1, "{}", String::from_utf8_lossy(&manifest));
        // Written without a key: a header naming none, and no signature.
        let header = batch.header.unwrap().unwrap();
        assert_eq!((header.seq, header.signing_key, header.prev), (1, None, None));
    }

    #[tokio::test]
    async fn same_size_different_content_goes_to_tilde_2() {
        let f = fixture(&[("wav", b"ours"), ("json", b"{}")]);
        let dir = f.target.dir().join("2016/11/26");
        fs::create_dir_all(&dir).unwrap();
        let theirs = f.target.dir().join(format!("{KEY}.wav"));
        fs::write(&theirs, b"them").unwrap();

        let shipment = Target::LocalDir(f.target.clone()).ship(&f.spool, &f.entry).await.unwrap();
        assert!(shipment.location.ends_with(&format!("{KEY}~2")), "{}", shipment.location);
        assert_eq!(shipment.diverted, Some(theirs.display().to_string()));
        assert_eq!(shipment.files_copied, 2);
        assert_eq!(fs::read(&theirs).unwrap(), b"them");
        assert_eq!(fs::read(f.target.dir().join(format!("{KEY}~2.wav"))).unwrap(), b"ours");
        assert!(!f.target.dir().join(format!("{KEY}.json")).exists());
    }

    #[tokio::test]
    async fn only_stale_partial_copies_are_swept() {
        let f = fixture(&[("json", b"{}")]);
        let dir = f.target.dir().join("2016/11/26");
        fs::create_dir_all(&dir).unwrap();
        let old = SystemTime::now() - STALE_PART_AGE * 2;
        for name in [".old.wav.part-0000000000000001", ".young.wav.part-0000000000000002", ".not-a-part"] {
            fs::write(dir.join(name), b"partial").unwrap();
            if name != ".young.wav.part-0000000000000002" {
                File::options().write(true).open(dir.join(name)).unwrap().set_modified(old).unwrap();
            }
        }
        Target::LocalDir(f.target.clone()).ship(&f.spool, &f.entry).await.unwrap();
        let mut want = vec![".not-a-part".to_owned(), ".young.wav.part-0000000000000002".to_owned()];
        want.push(format!("{}.json", KEY.rsplit('/').next().unwrap()));
        want.push("manifest".to_owned());
        assert_eq!(names_in(&dir), want);
    }

    #[tokio::test]
    async fn corrupt_entry_key_writes_nothing() {
        let f = fixture(&[("json", b"{}")]);
        for key in ["../escape", "/abs/path", "2016/.hidden/x", "a//b"] {
            let mut entry = f.entry.clone();
            entry.key = key.into();
            let err = Target::LocalDir(f.target.clone()).ship(&f.spool, &entry).await.unwrap_err();
            assert!(matches!(err, ShipError::Spool(crate::SpoolError::Corrupt { .. })), "{key}: {err}");
            assert_eq!(err.disposition(), Disposition::RetryEntry);
        }
        assert!(names_in(f.target.dir()).is_empty());
        assert_eq!(names_in(f.tmp.path()), ["archive", "spool", "work"]);
    }

    #[test]
    fn new_creates_the_directory_and_leaves_no_probe() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/archive");
        let target = LocalDir::new("archive", &dir).unwrap();
        assert_eq!(target.name(), "archive");
        assert_eq!(target.dir(), dir);
        assert!(dir.is_dir());
        assert!(names_in(&dir).is_empty());

        let err = LocalDir::new("", &dir).unwrap_err();
        assert!(matches!(err, ShipError::Config { .. }), "{err}");
    }

    #[test]
    fn config_error_keeps_the_os_error_as_source() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = LocalDir::new("archive", &file).unwrap_err();
        assert!(matches!(err, ShipError::Config { source: Some(_), .. }), "{err}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(!err.to_string().contains(&source), "{err}");
        assert!(err.to_string().contains(&file.display().to_string()), "{err}");
    }
}
