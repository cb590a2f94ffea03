//! The durable spool: finished recordings wait here until every archive target has confirmed them.
//!
//! # On-disk layout
//!
//! ```text
//! <root>/recordings/<key>.<ext>    the recording files, moved in (renamed) by `enter`;
//!                                  browsable by date, e.g. recordings/2016/11/26/<call>.wav
//! <root>/queue/<seq:020>.json      one entry per recording not yet confirmed by every target
//! <root>/queue/.tmp/               entries and intents being written (emptied by `open`)
//! <root>/queue/.intent/<seq:020>.json
//!                                  the plan of an `enter` in progress (see below)
//! <root>/callvault.lock            held (flock) by the one process that owns the spool, with
//!                                  its pid (see the `owner` module)
//! ```
//!
//! A queue entry (format version 1) is:
//!
//! ```json
//! {"version": 1, "seq": 7, "key": "2016/11/26/20161126T144259.666Z_sipp_test_1a2b3c4d5e6f",
//!  "files": [{"ext": "wav", "path": "recordings/2016/11/26/…1a2b3c4d5e6f.wav",
//!             "sha256": "<64 lowercase hex>", "size": 160044}, {"ext": "json", …}],
//!  "summary": {…opaque, from the caller…},
//!  "entered_at": "2016-11-26T14:43:05.120Z",
//!  "targets": [{"name": "archive", "location": "/mnt/archive"}],
//!  "shipped": {"archive": {"at": "2016-11-26T14:43:05.410Z", "location": "/mnt/archive/2016/…"}}}
//! ```
//!
//! `targets` are the archive targets the recording is owed to: the ones configured when it
//! entered ([`Spool::set_targets`]), each by name and by where it stores (a directory, a bucket
//! and prefix). The shipper delivers an entry to exactly those; only [`Spool::retarget`], asked
//! for explicitly, changes them. Entries written before this field existed have none and are
//! owed to whatever targets the shipper has.
//!
//! `path` is relative to the spool root. An intent has the same `version`, `seq`, `key`,
//! `summary` and `entered_at`, and for each file its absolute `source` in the work directory, its
//! destination `path`, `sha256`, `size` and `action` (`move`, or `reuse` when an identical file is
//! already at the destination).
//!
//! # Invariants
//!
//! 1. A recording enters only complete and fsynced: the caller fsyncs the files in its work
//!    directory; the spool fsyncs every directory it creates or renames into or out of.
//! 2. Files move into `recordings/` by `rename` within one filesystem, never by copy: a file under
//!    `recordings/` is always complete.
//! 3. A queue entry is written only after all of its files are in `recordings/`.
//! 4. Every JSON file is written to `queue/.tmp/`, fsynced, renamed into place, and its directory
//!    fsynced: a reader or a crash sees the old or the new version, never a torn one. Shipped
//!    state is updated the same way.
//! 5. An entry is removed only after every target it is owed to has confirmed it. The files stay
//!    under `recordings/` until the [`Retention`] policy deletes them (at once, after N days, or
//!    above a disk watermark), and never while a queue entry or an unfinished `enter` refers to
//!    their key (see the `retention` module). Unshipped recordings are never deleted to make room.
//! 6. `seq` is strictly increasing within a process and starts at one more than the largest seq
//!    in `queue/` and `queue/.intent/` when the spool is opened; it is the shipping order, oldest
//!    first.
//! 7. Nothing under `recordings/` is ever overwritten. A second recording with the same key and
//!    identical content reuses the file already there (its source is deleted); one with different
//!    content gets the key `<key>~2` (then `~3`, …) for all of its files, and a warning is logged.
//!
//! # Entering a recording, and crashes
//!
//! `enter` runs these steps (only the first under the spool's lock, which also creates the
//! destination directories and reserves the key; `enter_all` takes each step for every
//! recording of a group before the next, syncing each directory once); the crash points
//! between them are named in `CrashPoint` and each has its own test:
//!
//! 1. choose the final key and, for each file, `move` or `reuse`;
//! 2. write the intent to `queue/.intent/<seq>.json` — *crash point `EnterAfterIntent`*;
//! 3. move each file in, creating and fsyncing date directories — *`EnterAfterFirstMove`* after
//!    the first file, *`EnterAfterMoves`* after the last;
//! 4. put the queue entry in place: with every file moved in or reused, the intent itself,
//!    renamed into `queue/` (it says everything an entry says; its files keep their `source`
//!    and `action`, which readers of entries ignore), else a new entry naming the files that
//!    are there — *`EnterAfterEntry`*;
//! 5. remove the intent (gone already when it became the entry) and sync its directory.
//!
//! Finishing an intent is idempotent: a source still in the work directory is moved (or deleted
//! if reused), a source already gone whose destination exists counts as moved, and an entry that
//! already exists is not rewritten. `open` finishes every intent left behind, in seq order, before
//! anything else happens, so a crash anywhere in `enter` loses nothing and leaves no file without
//! an entry — without scanning `recordings/`. When a step fails with an ordinary I/O error (not a
//! crash), the intent stays, `enter` returns [`SpoolError::Unfinished`], and the next `enter`
//! retries it first; its destinations stay reserved so that no other recording takes them.
//!
//! Shipping uses `pending`, `mark_shipped` and `complete`; its crash points are described in the
//! `target` and shipper modules. Only one shipper may work on a spool at a time: one process
//! owns the spool (see the `owner` module), and it runs one shipper. `enter` runs
//! under the spool's lock; `mark_shipped` and `complete` rewrite or remove one entry under that
//! entry's own lock (one of 64 stripes), so the shipper confirms many recordings at once, each
//! with its own fsyncs, instead of one after the other (removals from `queue/` share the
//! directory's fsyncs by group commit, `DirSync`: one that started after a removal covers it);
//! `complete` takes the spool's lock only after the removal is durable, to count the key out
//! and apply the retention policy.

mod enter;
mod error;
pub(crate) mod format;
mod owner;
mod retention;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::faults::Faults;
use crate::filesystem::{FileStamp, Fs, StdFs};
use crate::fsutil::{DirSync, create_dirs_durable, sync_dir, write_atomic};
use error::IoContext;
pub use error::SpoolError;
use format::{EntryRecord, Intent, parse_seq_file_name, seq_file_name};
use owner::OwnerLock;
pub use owner::owner;
pub use retention::{DiskUsage, SweepReport};

/// Identifies a queue entry: its sequence number, which is also its shipping order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(u64);

impl EntryId {
    /// The sequence number (the `<seq>` of `queue/<seq:020>.json`).
    pub fn seq(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

/// An archive target a recording is owed to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OwedTarget {
    /// The target's name (confirmations are recorded under it).
    pub name: String,
    /// Where the target stores recordings: a directory, or an S3 endpoint, bucket and prefix.
    pub location: String,
}

impl fmt::Display for OwedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.name, self.location)
    }
}

/// A finished recording handed to [`Spool::enter`].
#[derive(Debug, Clone)]
pub struct NewRecording {
    /// Relative path without extension, under its day's directory, e.g.
    /// `2016/11/26/20161126T144259.666Z_sipp_test_1a2b` (a key without a directory is refused:
    /// an archive keeps each day's manifest in the directory of its keys).
    pub key: String,
    /// The recording's files (each extension at most once).
    pub files: Vec<NewFile>,
    /// Opaque call summary, stored as is in the entry.
    pub summary: serde_json::Value,
}

/// One complete, fsynced file of a [`NewRecording`].
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Where the file is now: in the caller's work directory, on the spool's filesystem.
    pub source: PathBuf,
    /// Extension without the dot, e.g. `wav` or `json`.
    pub ext: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One file of a queue entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFile {
    /// Extension without the dot.
    pub ext: String,
    /// Path relative to the spool root, `recordings/<key>.<ext>`.
    pub path: String,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The file as this process moved it into `recordings/` (see [`EnteredAs`]).
    #[serde(skip)]
    pub entered_as: EnteredAs,
}

/// What a spooled file's metadata was right after this process moved it into `recordings/`
/// (its hash was computed and checked before): kept in memory only, never in the queue. While
/// the file's [`FileStamp`] is still this, its content is the hashed content, so a target that
/// publishes the file itself (a hard link) need not read it again. A memo, not part of the
/// entry: entries compare equal whatever it holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnteredAs(pub Option<FileStamp>);

impl EnteredAs {
    /// Whether `path` is still the file as entered (`false` when unknown).
    pub fn unchanged(&self, path: &Path) -> bool {
        self.0.is_some_and(|s| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && FileStamp::of(&m) == s))
    }
}

impl PartialEq for EnteredAs {
    fn eq(&self, _: &EnteredAs) -> bool {
        true
    }
}

impl Eq for EnteredAs {}

/// A target's confirmation of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipped {
    /// When the target confirmed it (RFC 3339, UTC).
    pub at: String,
    /// Where the target put it (target-specific: a path, a URL).
    pub location: String,
}

/// A recording in the queue, not yet confirmed by every target.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry's id and shipping order.
    pub id: EntryId,
    /// Recording key in the spool (may carry a `~N` suffix if the caller's key was taken).
    pub key: String,
    /// The recording's files under `recordings/`.
    pub files: Vec<EntryFile>,
    /// Opaque call summary from the caller.
    pub summary: serde_json::Value,
    /// When the recording entered the spool (RFC 3339, UTC).
    pub entered_at: String,
    /// The targets the recording is owed to (empty in entries from before targets were
    /// recorded: owed to whichever targets ship it).
    pub targets: Vec<OwedTarget>,
    /// Confirmations so far, by target name.
    pub shipped: BTreeMap<String, Shipped>,
}

impl Entry {
    /// Total size of the entry's files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    fn from_record(record: EntryRecord) -> Entry {
        Entry {
            id: EntryId(record.seq),
            key: record.key,
            files: record.files,
            summary: record.summary,
            entered_at: record.entered_at,
            targets: record.targets,
            shipped: record.shipped,
        }
    }

    fn to_record(&self) -> EntryRecord {
        EntryRecord {
            version: format::VERSION,
            seq: self.id.0,
            key: self.key.clone(),
            files: self.files.clone(),
            summary: self.summary.clone(),
            entered_at: self.entered_at.clone(),
            targets: self.targets.clone(),
            shipped: self.shipped.clone(),
        }
    }
}

/// What happens to a recording's files under `recordings/` once every target has confirmed it
/// (its entry has left the queue). Files of a recording that is still queued — including a
/// replayed identical recording that reuses a file already in the spool — are never deleted, by
/// any policy; see the `retention` module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Keep them; deleting old recordings is left to the operator.
    #[default]
    Keep,
    /// Delete them as soon as every target has confirmed them.
    DeleteWhenShipped,
    /// Delete them once they are older than this many days (by the files' modification time);
    /// checked by [`Spool::sweep`].
    KeepDays(u32),
    /// Keep them while the spool's filesystem is less full than this percentage; above it,
    /// [`Spool::sweep`] deletes the oldest shipped recordings until it is below again.
    KeepUntilWatermark(u8),
}

/// Options of [`Spool::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpoolOptions {
    /// Policy for recordings confirmed by every target.
    pub retention: Retention,
    /// Percentage of the spool's filesystem in use above which the spool is under disk pressure:
    /// the shipper logs it at error level and sets [`ShipStats::disk_pressure`]. Unshipped
    /// recordings are never deleted to make room. Default 90.
    ///
    /// [`ShipStats::disk_pressure`]: crate::ShipStats::disk_pressure
    pub high_watermark_percent: u8,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions { retention: Retention::Keep, high_watermark_percent: 90 }
    }
}

/// Mutable state behind the spool's lock.
#[derive(Debug)]
struct State {
    /// Sequence number of the next entry.
    next_seq: u64,
    /// Intents whose finishing failed with an I/O error, by seq; retried by the next `enter`.
    unfinished: BTreeMap<u64, Intent>,
    /// Intents of `enter`s under way (their files moving, outside this lock), by seq: their
    /// destinations are taken, and their keys count in `queued_keys` already.
    entering: BTreeMap<u64, Intent>,
    /// Queue entries per recording key: files of a key with entries are never deleted.
    queued_keys: std::collections::HashMap<String, u32>,
    /// The targets new entries are owed to.
    owed: Vec<OwedTarget>,
}

/// The durable spool rooted at one directory. `Send + Sync`: `enter` may run on a finisher
/// thread while the shipper calls `pending`, `mark_shipped` and `complete`.
///
/// `FS` is the filesystem seam ([`Fs`]): the real filesystem ([`StdFs`]) unless a test runs
/// the spool on a simulated one.
#[derive(Debug)]
pub struct Spool<FS: Fs = StdFs> {
    fs: FS,
    root: PathBuf,
    recordings: PathBuf,
    queue: PathBuf,
    tmp: PathBuf,
    intents: PathBuf,
    options: Mutex<SpoolOptions>,
    state: Mutex<State>,
    /// Stripes of per-entry locks for `mark_shipped` and `complete` (see [`Spool::entry_lock`]).
    entry_locks: [Mutex<()>; ENTRY_LOCKS],
    /// Every queue entry as last written, by seq: read from `queue/` once at `open`, then kept
    /// up to date by whoever writes or removes an entry file (after the write or removal is
    /// durable), so that `pending` never re-reads the queue.
    index: Mutex<BTreeMap<EntryId, Entry>>,
    /// Group commit of the removals from `queue/` (entries completed by concurrent shipments).
    queue_sync: DirSync,
    faults: Arc<Faults>,
    /// Whether the spool's filesystem gives every write after a `stat` a new change time
    /// (multigrain timestamps: Linux 6.13+ on ext4, xfs, btrfs, tmpfs), so that a file's
    /// [`FileStamp`] tells any later write; only then are files entered with one
    /// ([`EnteredAs`]). Probed at `open`.
    fine_stamps: bool,
    /// This process's ownership of the spool (`None` only for simulated crashes in tests).
    _owner: Option<OwnerLock<FS>>,
}

/// Whether a write right after a `stat` always changes the file's [`FileStamp`] on the
/// filesystem of `dir` (the real one; false if the probe cannot run). Without multigrain
/// timestamps a write in the same clock tick (up to 4 ms) leaves the times as they were.
fn fine_stamps(dir: &Path) -> bool {
    use std::io::Write;
    let probe = dir.join(format!(".stamp-probe-{}", std::process::id()));
    let fine = (|| -> io::Result<bool> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
        for _ in 0..8 {
            let before = FileStamp::of(&f.metadata()?);
            f.write_all(b"x")?;
            f.set_len(0)?;
            if FileStamp::of(&f.metadata()?) == before {
                return Ok(false);
            }
        }
        Ok(true)
    })();
    let _ = std::fs::remove_file(&probe);
    fine.unwrap_or(false)
}

/// Number of per-entry lock stripes: more than the entries a shipper updates at once.
const ENTRY_LOCKS: usize = 64;

impl Spool<StdFs> {
    /// Opens (creating if needed) the spool under `root` with default options: takes ownership
    /// of it (fails with [`SpoolError::Owned`] if another process has it open), creates the
    /// directories, empties `queue/.tmp/`, and finishes any `enter` a crash interrupted.
    pub fn open(root: &Path) -> Result<Spool, SpoolError> {
        Spool::open_with(root, SpoolOptions::default())
    }

    /// Like [`Spool::open`], with explicit options.
    pub fn open_with(root: &Path, options: SpoolOptions) -> Result<Spool, SpoolError> {
        Spool::open_inner(StdFs, root, options, Arc::default(), true)
    }

    /// Like [`Spool::open_with`], but only a spool that exists: a directory without `queue/`
    /// fails with [`SpoolError::NotASpool`] and nothing is created.
    pub fn open_existing(root: &Path, options: SpoolOptions) -> Result<Spool, SpoolError> {
        if !StdFs.metadata(&root.join("queue")).is_ok_and(|m| m.is_dir()) {
            return Err(SpoolError::NotASpool { path: root.to_owned() });
        }
        Spool::open_with(root, options)
    }

    /// The queue of the spool at `root`, read without opening the spool (no ownership taken,
    /// nothing written): for status commands while another process owns it. Unreadable entries
    /// are skipped.
    pub fn read_queue(root: &Path) -> Result<Vec<Entry>, SpoolError> {
        let queue = root.join("queue");
        if !StdFs.metadata(&queue).is_ok_and(|m| m.is_dir()) {
            return Err(SpoolError::NotASpool { path: root.to_owned() });
        }
        let mut entries = Vec::new();
        for name in StdFs.read_dir(&queue).ctx("list", &queue)? {
            let name = name.ctx("list", &queue)?;
            if let Some(seq) = name.to_str().and_then(parse_seq_file_name)
                && let Ok(entry) = read_entry(&StdFs, queue.join(&name), EntryId(seq))
            {
                entries.push(entry);
            }
        }
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }
}

impl<FS: Fs> Spool<FS> {
    /// Opens the spool under `root` on filesystem `fs`, like [`Spool::open_with`]; with `own`
    /// false it takes no ownership (the simulated crashes of the tests).
    pub(crate) fn open_inner(
        fs: FS,
        root: &Path,
        options: SpoolOptions,
        faults: Arc<Faults>,
        own: bool,
    ) -> Result<Spool<FS>, SpoolError> {
        let root = std::path::absolute(root).ctx("resolve", root)?;
        // A new root's own entry (and those of any parents created with it) must survive a power
        // loss too: created one by one from the nearest existing ancestor, each parent fsynced.
        let existing = root.ancestors().find(|a| fs.symlink_metadata(a).is_ok()).unwrap_or(Path::new("/"));
        let missing = root.strip_prefix(existing).unwrap_or(Path::new(""));
        create_dirs_durable(&fs, existing, missing).ctx("create directory", &root)?;
        fs.create_dir_all(&root).ctx("create directory", &root)?;
        let owner = if own { Some(OwnerLock::acquire(&fs, &root)?) } else { None };
        let queue = root.join("queue");
        let spool = Spool {
            fs,
            recordings: root.join("recordings"),
            tmp: queue.join(".tmp"),
            intents: queue.join(".intent"),
            queue,
            root,
            options: Mutex::new(options),
            state: Mutex::new(State {
                next_seq: 1,
                unfinished: BTreeMap::new(),
                entering: BTreeMap::new(),
                queued_keys: std::collections::HashMap::new(),
                owed: Vec::new(),
            }),
            entry_locks: std::array::from_fn(|_| Mutex::new(())),
            index: Mutex::new(BTreeMap::new()),
            queue_sync: DirSync::default(),
            faults,
            fine_stamps: false,
            _owner: owner,
        };
        for dir in [&spool.root, &spool.recordings, &spool.queue, &spool.tmp, &spool.intents] {
            spool.fs.create_dir_all(dir).ctx("create directory", dir)?;
        }
        for dir in [&spool.root, &spool.queue] {
            sync_dir(&spool.fs, dir).ctx("sync directory", dir)?;
        }
        spool.clean_tmp()?;
        let mut spool = spool;
        spool.fine_stamps = fine_stamps(&spool.tmp);

        let mut max_seq = 0;
        for seq in spool.list_seq_files(&spool.queue)? {
            max_seq = max_seq.max(seq);
        }
        let mut intents = BTreeMap::new();
        for seq in spool.list_seq_files(&spool.intents)? {
            max_seq = max_seq.max(seq);
            let path = spool.intents.join(seq_file_name(seq));
            match spool.read_intent(&path) {
                Ok(intent) => {
                    intents.insert(seq, intent);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %crate::chain(&e),
                        "skipping an unreadable intent; its files may be in the work directory");
                }
            }
        }
        {
            let mut state = spool.lock();
            state.next_seq = max_seq + 1;
            for (seq, intent) in intents {
                tracing::info!(seq, key = %intent.key, "finishing an interrupted enter");
                if let Err(e) = spool.finish_intent(&intent) {
                    tracing::error!(seq, key = %intent.key, error = %crate::chain(&e),
                        "cannot finish an interrupted enter; will retry on the next enter");
                    state.unfinished.insert(seq, intent);
                }
            }
        }
        let keys: Vec<String> = spool.load_index()?.into_iter().map(|e| e.key).collect();
        let mut state = spool.lock();
        for key in keys {
            *state.queued_keys.entry(key).or_default() += 1;
        }
        drop(state);
        Ok(spool)
    }

    /// The spool's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options in force.
    pub fn options(&self) -> SpoolOptions {
        self.options.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the retention policy and the high watermark (a configuration reload); the next
    /// `complete` and sweep apply them.
    pub fn set_options(&self, options: SpoolOptions) {
        *self.options.lock().unwrap_or_else(|e| e.into_inner()) = options;
    }

    /// The targets recordings entered from now on are owed to (recorded in their entries).
    pub fn set_targets(&self, targets: Vec<OwedTarget>) {
        self.lock().owed = targets;
    }

    /// Makes entry `id` owed to `targets` instead of the targets it was entered for: an
    /// operator's explicit decision to deliver it elsewhere. Confirmations by a target that is
    /// still owed, at the same location, are kept; the others are dropped.
    pub fn retarget(&self, id: EntryId, targets: &[OwedTarget]) -> Result<(), SpoolError> {
        let _entry = self.entry_lock(id);
        let mut entry = self.entry_to_rewrite(id)?;
        let before = std::mem::replace(&mut entry.targets, targets.to_vec());
        entry
            .shipped
            .retain(|name, _| targets.iter().any(|t| &t.name == name && (before.is_empty() || before.contains(t))));
        self.write_entry(&entry)
    }

    /// Where file `ext` of recording `key` lives in the spool: `<root>/recordings/<key>.<ext>`.
    pub fn recording_path(&self, key: &str, ext: &str) -> PathBuf {
        self.recordings.join(format!("{key}.{ext}"))
    }

    /// Every queue entry, oldest first, from the in-memory index (an entry unreadable when the
    /// spool was opened was logged then and is not in it).
    pub fn pending(&self) -> Result<Vec<Entry>, SpoolError> {
        Ok(self.index().values().cloned().collect())
    }

    /// Reads every queue entry from disk into the index (at `open`). An unreadable entry is
    /// logged and skipped.
    pub(crate) fn load_index(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut entries = Vec::new();
        for seq in self.list_seq_files(&self.queue)? {
            let id = EntryId(seq);
            match read_entry(&self.fs, self.entry_path(id), id) {
                Ok(entry) => entries.push(entry),
                Err(SpoolError::NotFound { .. }) => {}
                Err(e) => tracing::error!(error = %crate::chain(&e), "skipping a queue entry"),
            }
        }
        *self.index() = entries.iter().map(|e| (e.id, e.clone())).collect();
        Ok(entries)
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<EntryId, Entry>> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ids of every queue entry, oldest first, without reading them.
    pub fn queued_ids(&self) -> Result<Vec<EntryId>, SpoolError> {
        Ok(self.list_seq_files(&self.queue)?.into_iter().map(EntryId).collect())
    }

    /// Queue entry `id`: this process's copy (the index) when it has one, with what it knows
    /// of the files as entered ([`EnteredAs`], which the queue does not hold); else read from
    /// `queue/` (an entry the index lacks: unreadable when the spool was opened).
    ///
    /// The index is the queue as on disk: this process is the spool's only owner, and every
    /// write or removal of an entry file goes through it and into the index once durable. So a
    /// shipment takes its entry from memory, not from three reads of the file (when the
    /// shipper lists it, ships it, completes it); an entry file edited by hand meanwhile is
    /// read at the next start, as every file of the queue is.
    pub fn entry(&self, id: EntryId) -> Result<Entry, SpoolError> {
        if let Some(known) = self.known_entry(id) {
            return Ok(known);
        }
        read_entry(&self.fs, self.entry_path(id), id)
    }

    /// [`Spool::entry`], for a rewrite: an entry whose file was removed by hand is not written
    /// again from memory ([`SpoolError::NotFound`], as a read would say).
    fn entry_to_rewrite(&self, id: EntryId) -> Result<Entry, SpoolError> {
        let path = self.entry_path(id);
        match self.fs.symlink_metadata(&path) {
            Ok(_) => self.entry(id),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.removed_by_hand(id, path)),
            Err(e) => Err(SpoolError::io("inspect", path, e)),
        }
    }

    /// Entry `id`'s file at `path` is gone though this process did not remove it (removed by
    /// hand): the index forgets it too, and the caller says so as a read would
    /// ([`SpoolError::NotFound`]).
    fn removed_by_hand(&self, id: EntryId, path: PathBuf) -> SpoolError {
        self.index().remove(&id);
        SpoolError::NotFound { id, path }
    }

    /// Queue entry `id` if the index has it: no disk access, so callable from async code.
    pub fn known_entry(&self, id: EntryId) -> Option<Entry> {
        self.index().get(&id).cloned()
    }

    /// Records that `target` has confirmed entry `id`, stored at `location`. Atomic rewrite of the
    /// entry; confirming twice overwrites the first confirmation. Holds only the entry's own lock,
    /// so that confirmations of different entries (each with its fsyncs) proceed in parallel.
    pub fn mark_shipped(&self, id: EntryId, target: &str, location: &str) -> Result<(), SpoolError> {
        let _entry = self.entry_lock(id);
        self.faults.alive().ctx("mark shipped", self.entry_path(id))?;
        let mut entry = self.entry_to_rewrite(id)?;
        entry.shipped.insert(target.to_owned(), Shipped { at: now_rfc3339(), location: location.to_owned() });
        self.write_entry(&entry)
    }

    /// Removes entry `id` from the queue if every one of `targets` has confirmed it, then applies
    /// the retention policy. Returns whether it was removed. With no targets, it is removed.
    ///
    /// The removal (and its directory fsync) holds only the entry's own lock; the spool's lock is
    /// taken afterwards, briefly, to count the key out and apply the retention policy — so the
    /// recording's files are deleted (by [`Retention::DeleteWhenShipped`]) only once the removal
    /// is durable, and never while an `enter` of the same key runs.
    pub fn complete(&self, id: EntryId, targets: &[&str]) -> Result<bool, SpoolError> {
        self.complete_confirming(id, targets, None)
    }

    /// [`Spool::complete`], counting `confirmed` as a target that has confirmed entry `id`
    /// although the entry does not record it: the shipper completes an entry with its last
    /// confirmation this way, without rewriting the entry first (a crash before the removal
    /// leaves the entry without that confirmation, and the target, shipped to again, finds
    /// the recording already there).
    pub fn complete_confirming(
        &self,
        id: EntryId,
        targets: &[&str],
        confirmed: Option<&str>,
    ) -> Result<bool, SpoolError> {
        let path = self.entry_path(id);
        let entry = {
            let _entry = self.entry_lock(id);
            self.faults.alive().ctx("complete", &path)?;
            let entry = self.entry(id)?;
            if !targets.iter().all(|t| entry.shipped.contains_key(*t) || confirmed == Some(*t)) {
                return Ok(false);
            }
            match self.fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.removed_by_hand(id, path)),
                Err(e) => return Err(SpoolError::io("remove", &path, e)),
            }
            self.queue_sync.sync(&self.fs, &self.queue).ctx("sync directory", &self.queue)?;
            self.index().remove(&id);
            entry
        };
        let mut state = self.lock();
        enter::count_out(&mut state, &entry.key);
        self.apply_retention(&state, &entry);
        // Not while another entry still has the files to ship (the same recording replayed).
        let wanted = retention::is_referenced(&state, &entry.key);
        drop(state);
        if !wanted {
            self.drop_cached(&entry);
        }
        Ok(true)
    }

    /// Lets the kernel take back the memory holding a completed recording's files (kept by the
    /// retention policy): every target has a verified copy, and nothing reads them again soon.
    /// Pages a recorder frees as it goes are the ones its next recordings are written into,
    /// instead of pages the kernel takes from elsewhere: from free memory (which a virtual
    /// machine's host may have to fault in first) or by reclaiming other files' cache.
    /// 1,000 calls × 60 s replayed with memory in steady use, in an hour when the host was
    /// slow to hand out fresh pages: the mixers' system time 0.72-1.10 s, wall 2.79-3.93 s in 4
    /// runs; 2.20-2.91 s and 3.53-5.06 s without. When the host was not, no gain (README).
    fn drop_cached(&self, entry: &Entry) {
        for f in &entry.files {
            let path = self.root.join(&f.path);
            match self.fs.drop_cached(&path) {
                Ok(()) => {}
                // Deleted by the retention policy: nothing cached.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot drop a shipped file from memory"),
            }
        }
    }

    /// The fault-injection seam shared with the targets.
    pub(crate) fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the disk inconsistent (every step is
        // crash-safe), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock that serialises the read-modify-write updates of entry `id` (one of a few
    /// stripes, shared by entries whose seqs are congruent). Taken without the spool's lock.
    fn entry_lock(&self, id: EntryId) -> MutexGuard<'_, ()> {
        let stripe = &self.entry_locks[(id.0 % ENTRY_LOCKS as u64) as usize];
        stripe.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry_path(&self, id: EntryId) -> PathBuf {
        self.queue.join(seq_file_name(id.0))
    }

    fn write_entry(&self, entry: &Entry) -> Result<(), SpoolError> {
        let path = self.entry_path(entry.id);
        let bytes = serde_json::to_vec_pretty(&entry.to_record())
            .map_err(|e| SpoolError::io("serialize", &path, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        write_atomic(&self.fs, &self.tmp, &path, &bytes).ctx("write", path)?;
        self.index().insert(entry.id, entry.clone());
        Ok(())
    }

    fn read_intent(&self, path: &Path) -> Result<Intent, SpoolError> {
        let bytes = self.fs.read(path).ctx("read", path)?;
        let intent: Intent = serde_json::from_slice(&bytes)
            .map_err(|e| SpoolError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        let paths_ok = intent.files.iter().all(|f| format::is_recording_path(&f.path) && !f.path.contains(".."));
        if intent.version != format::VERSION || !paths_ok {
            return Err(SpoolError::Corrupt {
                path: path.to_owned(),
                reason: "unknown version or destination outside recordings/".into(),
            });
        }
        Ok(intent)
    }

    /// Sequence numbers of the `<seq:020>.json` files in `dir`, ascending.
    fn list_seq_files(&self, dir: &Path) -> Result<Vec<u64>, SpoolError> {
        let mut seqs = Vec::new();
        for name in self.fs.read_dir(dir).ctx("list", dir)? {
            let name = name.ctx("list", dir)?;
            if let Some(seq) = name.to_str().and_then(parse_seq_file_name) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn clean_tmp(&self) -> Result<(), SpoolError> {
        for name in self.fs.read_dir(&self.tmp).ctx("list", &self.tmp)? {
            let path = self.tmp.join(name.ctx("list", &self.tmp)?);
            self.fs.remove_file(&path).ctx("remove leftover", &path)?;
        }
        sync_dir(&self.fs, &self.tmp).ctx("sync directory", &self.tmp)
    }
}

/// Reads the queue entry at `path`, which must be entry `id`.
fn read_entry<FS: Fs>(fs: &FS, path: PathBuf, id: EntryId) -> Result<Entry, SpoolError> {
    let bytes = match fs.read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SpoolError::NotFound { id, path });
        }
        Err(e) => return Err(SpoolError::io("read", path, e)),
    };
    let record: EntryRecord = serde_json::from_slice(&bytes)
        .map_err(|e| SpoolError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    if record.version != format::VERSION || record.seq != id.0 {
        return Err(SpoolError::Corrupt {
            path,
            reason: format!(
                "version {} seq {} (expected version {} seq {})",
                record.version,
                record.seq,
                format::VERSION,
                id.0
            ),
        });
    }
    Ok(Entry::from_record(record))
}

/// The current time as RFC 3339 in UTC with milliseconds, e.g. `2016-11-26T14:43:05.120Z`.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
impl Spool {
    /// Opens the spool with a fresh fault-injection seam and arms `point` (after `skip` passes).
    pub(crate) fn open_armed(root: &Path, point: crate::faults::CrashPoint, skip: usize) -> Spool {
        let faults = Arc::new(Faults::default());
        faults.arm(point, skip);
        Spool::open_inner(StdFs, root, SpoolOptions::default(), faults, false).unwrap()
    }
}

#[cfg(test)]
impl<FS: Fs> Spool<FS> {
    /// The filesystem the spool works on.
    pub(crate) fn fs(&self) -> &FS {
        &self.fs
    }

    /// Whether an injected crash has happened.
    pub(crate) fn crashed(&self) -> bool {
        self.faults.crashed()
    }
}

/// Whether `ext` is a file extension the spool and the targets accept: ASCII letters and
/// digits, in one or more dot-separated parts (`wav`, `caller.wav`).
pub fn valid_ext(ext: &str) -> bool {
    !ext.is_empty() && ext.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}
