//! Archive targets: where shipped recordings go, how a copy is proven, and which failures are
//! retried.
//!
//! A [`Target`] ships one spool [`Entry`] at a time. It returns a [`Shipment`] only when every
//! file of the entry is stored at the target under its final name and its SHA-256 has been
//! checked; only then does the shipper record the confirmation in the spool. There are two
//! kinds: [`LocalDir`], a local or mounted directory (described here), and [`S3Target`], a
//! bucket in an S3-compatible object store (layout, manifest, invariants, crash points and the
//! classification of store failures in the [`s3`] module).
//!
//! # `LocalDir` layout
//!
//! ```text
//! <dir>/<key>.<ext>                     published files: complete, fsynced, verified
//! <dir>/<key>~2.<ext>                   a recording whose key holds different content
//! <dir>/<YYYY>/<MM>/<DD>/manifest/seq-<10 digits>.jsonl
//!                                       the day's manifest batches ([`manifest`])
//! <dir>/<key dir>/.<name>.<ext>.part-<16 hex>
//!                                       a copy in progress, or left behind by a crash
//! ```
//!
//! Keys never have a component starting with a dot, so a hidden `.part-` file never hides a
//! recording.
//!
//! # `LocalDir` invariants
//!
//! 1. A file appears under its final name only complete, fsynced and verified. When the archive
//!    is on the spool's filesystem, the spooled file (fsynced by the finisher) is hashed and
//!    compared with the entry's SHA-256 — unless this process entered it and its stamp (device,
//!    inode, size, modification and change times, on a filesystem where every write moves them:
//!    [`crate::EnteredAs`]) is still the one it had then, so that it holds the content the
//!    finisher hashed — then hard-linked under its final name and checked to be the same inode: the archive file *is* the spooled file, nothing is copied or written
//!    twice. Otherwise (another filesystem, or a link refused) it is copied to a hidden `.part-`
//!    file in the destination directory, fsynced, read back and compared with the entry's
//!    SHA-256, then published with `hard_link`. Either link fails rather than replace an
//!    existing file, and the directory is fsynced before the manifest batch that takes the
//!    recording's line is written (once for every recording of the batch), so before the
//!    shipment succeeds. The archive filesystem must support hard
//!    links ([`LocalDir::new`] checks). Spooled files are never written after they enter the
//!    spool, and removing the spool's copy (retention) leaves the archive's name.
//! 2. Nothing in the archive is overwritten or deleted, except `.part-` files.
//! 3. The audio is published before the JSON call record: a consumer that sees `<key>.json`
//!    knows the rest of the recording is complete.
//! 4. Shipping is idempotent: a file already at its destination with the entry's SHA-256 counts
//!    as present and is not copied again. A shipment that copies nothing is
//!    [already shipped](Shipment::already_shipped).
//! 5. If a destination holds different content, every file of the recording goes to `<key>~2`
//!    (then `~3`, …); the file found there is named in an error-level log line and in the
//!    shipment ([`Shipment::diverted`], counted per target), and left as it is, so `archive
//!    verify` reports it against its manifest line. The confirmation's location says which key
//!    was used.
//! 6. `.part-` files older than [`STALE_PART_AGE`] are removed before a copy into their
//!    directory (each directory is swept at most once per [`STALE_PART_AGE`]). Younger ones may
//!    belong to a copy still running in another process, and are left alone.
//! 7. After the files, the recording's line goes into the day's manifest
//!    (`<YYYY>/<MM>/<DD>/manifest/seq-<N>.jsonl`), exactly once ([`manifest`]).
//!
//! # Crashes
//!
//! *Crash point `ShipAfterCopy`*: a verified `.part-` file exists but is not published. The entry
//! is not confirmed, so it is shipped again after restart: files already published count as
//! present, the rest are copied again under new temporary names, and the abandoned `.part-` file
//! is removed once it is stale. A crash after the audio is published but before the record is
//! recovered the same way. The crash points after publishing belong to the shipper.
//!
//! # Failures and retries
//!
//! Each [`ShipError`] has a [`Disposition`]:
//!
//! * [`Disposition::RetryTarget`] — the archive itself is in trouble, so the whole target backs
//!   off and is retried: archive I/O errors with `ENOSPC`, `EDQUOT`, `EIO`, `ETIMEDOUT`, `EINTR`,
//!   `EAGAIN`, `EBUSY`, `ENFILE`, `EMFILE`, `ENOMEM`, `ESTALE`, `ENOENT` (the directory is gone,
//!   e.g. unmounted), `ENOTCONN`, `EHOSTDOWN`, `EHOSTUNREACH`, any other errno not listed as
//!   permanent below, and errors without an errno.
//! * [`Disposition::RetryEntry`] — only that entry backs off, other entries keep shipping: the
//!   spooled file cannot be read ([`ShipError::Source`]) or no longer matches its SHA-256
//!   ([`ShipError::SourceMismatch`]); the copy reads back different
//!   ([`ShipError::CopyMismatch`]); a different file appears at the destination while publishing
//!   ([`ShipError::Conflict`]); the manifest line cannot be written for another reason than a
//!   store failure, e.g. other writers keep taking the batch numbers ([`ShipError::Manifest`]);
//!   the spool fails ([`ShipError::Spool`]); a bug
//!   ([`ShipError::Internal`]).
//!   S3 store failures ([`ShipError::Store`]) are classified by [`S3Error::disposition`].
//! * [`Disposition::Permanent`] — retrying cannot help until an operator acts, so the target is
//!   disabled until restart (every entry stays queued): archive I/O errors with `EACCES`, `EPERM`,
//!   `ENOTDIR`, `EISDIR`, `EROFS`, `ENAMETOOLONG`, `ELOOP`, `EINVAL`, `EMLINK`, `EOPNOTSUPP` /
//!   `ENOTSUP`, `EXDEV`; a bad configuration ([`ShipError::Config`],
//!   [`ShipError::S3Config`]); the shipper cannot start
//!   ([`ShipError::Start`]).
//!
//! [`Entry`]: crate::Entry

mod local;
pub mod manifest;
pub mod retention;
pub mod s3;
pub mod seal;
pub mod signing;
mod store;
pub mod verify;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustix::io::Errno;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub use local::{LOCAL_MANIFEST_LINGER, LocalDir, STALE_PART_AGE};
pub use s3::{Credentials, CredentialsError, LockMode, ObjectInfo, ObjectLock, S3Config, S3Error, S3Target};
pub use store::Created;

use crate::spool::{Entry, EntryFile, OwedTarget, Spool, SpoolError};

/// An archive destination. Cloning is cheap: clones share their connections and state.
#[derive(Debug, Clone)]
pub enum Target {
    /// A local or mounted directory.
    LocalDir(LocalDir),
    /// A bucket in an S3-compatible object store.
    S3(S3Target),
}

impl From<LocalDir> for Target {
    fn from(dir: LocalDir) -> Target {
        Target::LocalDir(dir)
    }
}

impl From<S3Target> for Target {
    fn from(s3: S3Target) -> Target {
        Target::S3(s3)
    }
}

impl Target {
    /// The target's name, unique among the configured targets; confirmations are recorded under it.
    pub fn name(&self) -> &str {
        match self {
            Target::LocalDir(dir) => dir.name(),
            Target::S3(s3) => s3.name(),
        }
    }

    /// Where the target stores recordings: the directory, or `<endpoint>/<bucket>/<prefix>/<site>`.
    /// Two targets with the same location store the same objects.
    pub fn location(&self) -> String {
        match self {
            Target::LocalDir(dir) => dir.dir().display().to_string(),
            Target::S3(s3) => s3.location(),
        }
    }

    /// The target as queue entries remember it: name and location.
    pub fn owed(&self) -> OwedTarget {
        OwedTarget { name: self.name().to_owned(), location: self.location() }
    }

    /// Stores every file of `entry` (read from `spool`) at the target and verifies it. Files the
    /// target already holds with the same SHA-256 are not copied again. Returns only when the
    /// whole recording is stored; on error, some files may be stored and others not, and shipping
    /// again finishes the job.
    pub async fn ship(&self, spool: &Spool, entry: &Entry) -> Result<Shipment, ShipError> {
        self.ship_in(spool, entry, &ShipSlot::default()).await
    }

    /// [`Target::ship`] holding `slot`, which the target may give back while it only waits.
    pub(crate) async fn ship_in(&self, spool: &Spool, entry: &Entry, slot: &ShipSlot) -> Result<Shipment, ShipError> {
        // A corrupt entry must not read or write outside the archive.
        local::check_entry(entry).map_err(|reason| SpoolError::Corrupt {
            path: spool.root().join("queue").join(crate::spool::format::seq_file_name(entry.id.seq())),
            reason,
        })?;
        if self.sealing().is_some()
            && let Some(shipment) = seal::already_shipped(self, entry).await?
        {
            seal::unstage(spool.root(), self.name(), entry);
            return Ok(shipment);
        }
        let out = self.outgoing(spool, entry).await?;
        let shipment = match self {
            Target::LocalDir(dir) => dir.ship(spool, entry, &out, slot).await,
            Target::S3(s3) => s3.ship(spool, entry, &out, slot).await,
        }?;
        if out.sealed() {
            seal::unstage(spool.root(), self.name(), entry);
        }
        Ok(shipment)
    }

    /// What shipping `entry` (checked) stores: the key and the files in publishing order (the
    /// JSON call record last) — for a sealed target, the staged ciphertext under the key without
    /// the parties ([`seal`]).
    async fn outgoing(&self, spool: &Spool, entry: &Entry) -> Result<Outgoing, ShipError> {
        let files: Vec<(EntryFile, PathBuf)> =
            entry.files.iter().map(|f| (f.clone(), spool.recording_path(&entry.key, &f.ext))).collect();
        let mut out = match self.manifest_writer().sealing() {
            None => Outgoing { key: entry.key.clone(), files, plain: Vec::new() },
            Some(sealing) => {
                let (root, name, sealing, key) =
                    (spool.root().to_owned(), self.name().to_owned(), Arc::clone(sealing), entry.key.clone());
                let staged = tokio::task::spawn_blocking(move || seal::stage(&root, &name, &sealing, &key, &files))
                    .await
                    .map_err(|e| ShipError::Internal(format!("encrypting {} did not finish: {e}", entry.key)))??;
                let mut out = Outgoing { key: seal::sealed_key(&entry.key), files: Vec::new(), plain: Vec::new() };
                for s in staged {
                    out.plain.push((s.file.ext.clone(), s.plain));
                    out.files.push((s.file, s.path));
                }
                out
            }
        };
        // Stable: the other files keep their order.
        out.files.sort_by_key(|(f, _)| f.ext.split('.').next() == Some("json"));
        Ok(out)
    }
}

/// What one shipment of an entry stores at a target ([`Target::outgoing`]).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The key to store it under (before any `~N`).
    pub(crate) key: String,
    /// The files in publishing order (the JSON record last), each with the path it is read from.
    pub(crate) files: Vec<(EntryFile, PathBuf)>,
    /// For a sealed target: by stored extension (`wav.age`), the plaintext file each one seals.
    pub(crate) plain: Vec<(String, EntryFile)>,
}

impl Outgoing {
    /// Whether the files are sealed (encrypted to the target's recipients).
    pub(crate) fn sealed(&self) -> bool {
        !self.plain.is_empty()
    }

    /// The plaintext file that the stored file `ext` seals, if sealed.
    pub(crate) fn plain_of(&self, ext: &str) -> Option<&EntryFile> {
        self.plain.iter().find(|(e, _)| e == ext).map(|(_, f)| f)
    }
}

/// A shipment's place among the shipments that may move data at once
/// ([`ShipperConfig::concurrency`](crate::ShipperConfig::concurrency)). A target gives it back
/// ([`ShipSlot::release`]) when all that is left is waiting — an S3 shipment for the manifest
/// batch that holds its line — so that other shipments upload meanwhile; the shipper takes it
/// again ([`ShipSlot::acquire`]) before the entry's next target.
#[derive(Debug, Default)]
pub(crate) struct ShipSlot {
    /// The shipper's slots and the notification that one was given back; `None` when
    /// [`Target::ship`] is called on its own (nothing is counted).
    pool: Option<(Arc<Semaphore>, Arc<Notify>)>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl ShipSlot {
    /// A slot holding `permit`, one of `slots`; `freed` is notified when it is given back.
    pub(crate) fn new(slots: Arc<Semaphore>, freed: Arc<Notify>, permit: OwnedSemaphorePermit) -> ShipSlot {
        ShipSlot { pool: Some((slots, freed)), permit: Mutex::new(Some(permit)) }
    }

    /// Gives the slot back (if held) and tells the shipper.
    pub(crate) fn release(&self) {
        let permit = self.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(permit), Some((_, freed))) = (permit, &self.pool) {
            drop(permit);
            freed.notify_one();
        }
    }

    /// Takes a slot again (waiting for one) if it was given back.
    pub(crate) async fn acquire(&self) {
        let Some((slots, _)) = &self.pool else { return };
        if self.permit.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
            return;
        }
        // The semaphore is never closed.
        if let Ok(permit) = Arc::clone(slots).acquire_owned().await {
            *self.permit.lock().unwrap_or_else(|e| e.into_inner()) = Some(permit);
        }
    }
}

/// What a target did with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// Where the recording is stored (target-specific; for [`LocalDir`] the path of the key
    /// without extension, e.g. `/mnt/archive/2016/11/26/<call>` or `…/<call>~2`).
    pub location: String,
    /// Files copied by this shipment.
    pub files_copied: usize,
    /// Files that were already stored with the same SHA-256 and were not copied.
    pub files_present: usize,
    /// Bytes copied by this shipment.
    pub bytes_copied: u64,
    /// The archive object that held different content under the recording's own key (damaged or
    /// replaced), so the recording went to `<key>~N` instead; logged at error level by the target.
    pub diverted: Option<String>,
}

impl Shipment {
    /// Whether every file was already at the target (nothing was copied), e.g. a repeat after a
    /// crash or a replayed call.
    pub fn already_shipped(&self) -> bool {
        self.files_copied == 0
    }
}

/// What the shipper does after a failure; see the module documentation for the full list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// The target is in trouble: back off the whole target and retry.
    RetryTarget,
    /// Only this entry is in trouble: back off the entry and retry; other entries keep shipping.
    RetryEntry,
    /// Retrying cannot help until an operator acts: stop using the target until restart.
    Permanent,
}

/// Everything that can go wrong shipping to an archive target. Each message names the target,
/// the path involved and what to do; the operating system's error is the [`source`].
///
/// [`source`]: std::error::Error::source
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The target is configured wrongly or its directory is unusable.
    #[error("target {target:?}: archive directory {path} {problem}")]
    Config {
        /// The target's name.
        target: String,
        /// The directory involved.
        path: PathBuf,
        /// What is wrong and what to do about it.
        problem: String,
        /// The operating system's error, if any.
        #[source]
        source: Option<io::Error>,
    },
    /// An S3 target is configured wrongly.
    #[error("target {target:?}: {problem}")]
    S3Config {
        /// The target's name.
        target: String,
        /// What is wrong and what to do about it.
        problem: String,
    },
    /// A request to an object store failed; [`S3Error::disposition`] classifies it.
    #[error("target {target:?} (bucket {bucket:?}): {error}")]
    Store {
        /// The target's name.
        target: String,
        /// The bucket.
        bucket: String,
        /// What went wrong (its message is part of this one).
        error: Box<S3Error>,
    },
    /// A filesystem operation in the archive failed.
    #[error(
        "target {target:?}: cannot {op} {path}; check that the archive directory exists, is mounted, writable and not full"
    )]
    Archive {
        /// The target's name.
        target: String,
        /// What was being done, e.g. "create directory".
        op: &'static str,
        /// The archive file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A copy of an object being downloaded cannot be written.
    #[error("cannot write {path}; check that its directory is writable and not full")]
    Download {
        /// The copy.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A spooled file of the entry cannot be read.
    #[error("cannot read spooled file {path}; check that the spool filesystem is mounted and readable")]
    Source {
        /// The spooled file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A spooled file no longer has the SHA-256 recorded when it entered the spool.
    #[error(
        "spooled file {path} no longer matches its SHA-256 (expected {expected}, read {actual}): it was changed or damaged after it entered the spool; restore it or remove its queue entry"
    )]
    SourceMismatch {
        /// The spooled file.
        path: PathBuf,
        /// SHA-256 recorded in the queue entry.
        expected: String,
        /// SHA-256 of what was read.
        actual: String,
    },
    /// The copy written to the archive reads back with a different SHA-256; it was removed.
    #[error(
        "target {target:?}: the copy {path} reads back with SHA-256 {actual} instead of {expected}; it was removed and will be copied again — check the archive storage"
    )]
    CopyMismatch {
        /// The target's name.
        target: String,
        /// The temporary copy.
        path: PathBuf,
        /// SHA-256 of the spooled file.
        expected: String,
        /// SHA-256 read back from the copy.
        actual: String,
    },
    /// A different file took the destination name while the copy was being published.
    #[error(
        "target {target:?}: {path} holds a different file; another writer is using this archive directory — the recording will be shipped again under a free name"
    )]
    Conflict {
        /// The target's name.
        target: String,
        /// The occupied destination.
        path: PathBuf,
    },
    /// The day's manifest could not be written (the store's own failures are [`ShipError::Store`]).
    #[error("target {target:?}: cannot write the manifest line: {problem}")]
    Manifest {
        /// The target's name.
        target: String,
        /// What went wrong.
        problem: String,
    },
    /// The spool failed while shipping (reading or updating the entry).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A bug: a shipping task panicked or was cancelled.
    #[error("internal error: {0}; the entry stays queued and will be retried")]
    Internal(String),
    /// The shipper cannot start.
    #[error("cannot start the shipper: {reason}")]
    Start {
        /// What is wrong and what to do about it.
        reason: String,
        /// The operating system's error, if any.
        #[source]
        source: Option<io::Error>,
    },
}

impl ShipError {
    /// How the shipper should react: retry the target, retry the entry, or give up on the target.
    pub fn disposition(&self) -> Disposition {
        match self {
            ShipError::Archive { source, .. } | ShipError::Download { source, .. } => io_disposition(source),
            ShipError::Source { .. }
            | ShipError::SourceMismatch { .. }
            | ShipError::CopyMismatch { .. }
            | ShipError::Conflict { .. }
            | ShipError::Manifest { .. }
            | ShipError::Spool(_)
            | ShipError::Internal(_) => Disposition::RetryEntry,
            ShipError::Store { error, .. } => error.disposition(),
            ShipError::Config { .. } | ShipError::S3Config { .. } | ShipError::Start { .. } => Disposition::Permanent,
        }
    }

    /// A short stable name of the failure's kind (a metrics label): `config`, `s3_config`,
    /// `store`, `archive`, `download`, `source`, `source_mismatch`, `copy_mismatch`, `conflict`,
    /// `manifest`, `spool`, `internal` or `start`.
    pub fn kind(&self) -> &'static str {
        match self {
            ShipError::Config { .. } => "config",
            ShipError::S3Config { .. } => "s3_config",
            ShipError::Store { .. } => "store",
            ShipError::Archive { .. } => "archive",
            ShipError::Download { .. } => "download",
            ShipError::Source { .. } => "source",
            ShipError::SourceMismatch { .. } => "source_mismatch",
            ShipError::CopyMismatch { .. } => "copy_mismatch",
            ShipError::Conflict { .. } => "conflict",
            ShipError::Manifest { .. } => "manifest",
            ShipError::Spool(_) => "spool",
            ShipError::Internal(_) => "internal",
            ShipError::Start { .. } => "start",
        }
    }

    /// Whether shipping may succeed later without an operator's help.
    pub fn is_retryable(&self) -> bool {
        self.disposition() != Disposition::Permanent
    }
}

/// Errnos of archive operations that retrying cannot fix: permissions, a path that is not what
/// it should be, a read-only or unsuitable filesystem.
const PERMANENT_ERRNOS: [i32; 12] = [
    Errno::ACCESS.raw_os_error(),
    Errno::PERM.raw_os_error(),
    Errno::NOTDIR.raw_os_error(),
    Errno::ISDIR.raw_os_error(),
    Errno::ROFS.raw_os_error(),
    Errno::NAMETOOLONG.raw_os_error(),
    Errno::LOOP.raw_os_error(),
    Errno::INVAL.raw_os_error(),
    Errno::MLINK.raw_os_error(),
    Errno::OPNOTSUPP.raw_os_error(),
    Errno::NOTSUP.raw_os_error(),
    Errno::XDEV.raw_os_error(),
];

/// Classifies an archive I/O error by its errno: permanent if listed in [`PERMANENT_ERRNOS`],
/// otherwise (including errors without an errno) a target retry.
fn io_disposition(e: &io::Error) -> Disposition {
    match e.raw_os_error() {
        Some(errno) if PERMANENT_ERRNOS.contains(&errno) => Disposition::Permanent,
        _ => Disposition::RetryTarget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_error(source: io::Error) -> ShipError {
        ShipError::Archive { target: "archive".into(), op: "write", path: "/mnt/archive/x.wav".into(), source }
    }

    #[test]
    fn archive_errors_are_classified_by_errno() {
        let retry_target = [
            Errno::NOSPC.raw_os_error(),
            Errno::DQUOT.raw_os_error(),
            Errno::IO.raw_os_error(),
            Errno::TIMEDOUT.raw_os_error(),
            Errno::INTR.raw_os_error(),
            Errno::AGAIN.raw_os_error(),
            Errno::BUSY.raw_os_error(),
            Errno::NFILE.raw_os_error(),
            Errno::MFILE.raw_os_error(),
            Errno::NOMEM.raw_os_error(),
            Errno::STALE.raw_os_error(),
            Errno::NOENT.raw_os_error(),
            Errno::NOTCONN.raw_os_error(),
            Errno::HOSTDOWN.raw_os_error(),
            Errno::HOSTUNREACH.raw_os_error(),
            Errno::EXIST.raw_os_error(),
        ];
        for errno in retry_target {
            let e = archive_error(io::Error::from_raw_os_error(errno));
            assert_eq!(e.disposition(), Disposition::RetryTarget, "errno {errno}: {e}");
            assert!(e.is_retryable());
        }
        let permanent = [
            Errno::ACCESS.raw_os_error(),
            Errno::PERM.raw_os_error(),
            Errno::NOTDIR.raw_os_error(),
            Errno::ISDIR.raw_os_error(),
            Errno::ROFS.raw_os_error(),
            Errno::NAMETOOLONG.raw_os_error(),
            Errno::LOOP.raw_os_error(),
            Errno::INVAL.raw_os_error(),
            Errno::MLINK.raw_os_error(),
            Errno::OPNOTSUPP.raw_os_error(),
            Errno::NOTSUP.raw_os_error(),
            Errno::XDEV.raw_os_error(),
        ];
        for errno in permanent {
            let e = archive_error(io::Error::from_raw_os_error(errno));
            assert_eq!(e.disposition(), Disposition::Permanent, "errno {errno}: {e}");
            assert!(!e.is_retryable());
        }
        // No errno (e.g. an injected fault): the target is retried.
        let e = archive_error(io::Error::other("injected"));
        assert_eq!(e.disposition(), Disposition::RetryTarget);
    }

    #[test]
    fn entry_problems_back_off_only_the_entry() {
        let entry_errors = [
            ShipError::Source {
                path: "/spool/x.wav".into(),
                source: io::Error::from_raw_os_error(Errno::ACCESS.raw_os_error()),
            },
            ShipError::SourceMismatch { path: "/spool/x.wav".into(), expected: "a".into(), actual: "b".into() },
            ShipError::CopyMismatch {
                target: "archive".into(),
                path: "/a/.x.wav.part-1".into(),
                expected: "a".into(),
                actual: "b".into(),
            },
            ShipError::Conflict { target: "archive".into(), path: "/a/x.wav".into() },
            ShipError::Internal("task panicked".into()),
            ShipError::Spool(SpoolError::io(
                "read",
                "/spool/queue/1.json",
                io::Error::from_raw_os_error(Errno::IO.raw_os_error()),
            )),
        ];
        for e in entry_errors {
            assert_eq!(e.disposition(), Disposition::RetryEntry, "{e}");
        }
        let config =
            ShipError::Config { target: "a".into(), path: "/a".into(), problem: "is bad".into(), source: None };
        assert_eq!(config.disposition(), Disposition::Permanent);
        let start = ShipError::Start { reason: "no target".into(), source: None };
        assert_eq!(start.disposition(), Disposition::Permanent);
    }

    #[test]
    fn os_error_is_a_source_not_part_of_the_message() {
        let e = archive_error(io::Error::from_raw_os_error(Errno::NOSPC.raw_os_error()));
        let text = e.to_string();
        assert!(text.contains("/mnt/archive/x.wav") && text.contains("\"archive\""), "{text}");
        let source = std::error::Error::source(&e).expect("a source");
        assert!(!text.contains(&source.to_string()), "{text}");
        assert!(crate::chain(&e).ends_with(&source.to_string()));
    }
}
