//! Local retention and disk pressure.
//!
//! A recording's files under `recordings/` may be deleted only when no queue entry and no
//! unfinished `enter` refers to its key (the spool counts queue entries per key in memory, built
//! when it opens), and only as the [`Retention`] policy says:
//!
//! * [`Retention::DeleteWhenShipped`]: in `complete`, right after the last entry of the key left
//!   the queue;
//! * [`Retention::KeepDays`] and [`Retention::KeepUntilWatermark`]: in [`Spool::sweep`], which
//!   the shipper runs every few minutes. It walks `recordings/`, skips every key still
//!   referenced, and deletes what the policy allows — for the watermark, oldest first (by
//!   modification time) until the filesystem is below the watermark again.
//!
//! Each deletion is made durable (its directory fsynced) before the spool's lock is released:
//! a power loss must not bring a deleted file back under a key that a later `enter` reuses
//! (`tests/power_loss.rs` found that collision).
//!
//! Unshipped recordings are never deleted to make room: when the disk fills with them, the
//! spool says so (see [`DiskUsage`] and `SpoolOptions::high_watermark_percent`) and recording
//! continues as long as the disk allows.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::IoContext;
use super::{Entry, Retention, Spool, SpoolError, State};
use crate::filesystem::Fs;
use crate::fsutil::sync_dir;

/// How full the spool's filesystem is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskUsage {
    /// Size of the filesystem in bytes.
    pub total_bytes: u64,
    /// Bytes available to the recorder.
    pub available_bytes: u64,
    /// Percentage in use, as `df` computes it (used / (used + available)).
    pub used_percent: f64,
    /// Whether `used_percent` is above the spool's high watermark.
    pub above_high_watermark: bool,
}

/// What [`Spool::sweep`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Files deleted.
    pub files_deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Files kept because a queued recording still refers to them.
    pub files_referenced: u64,
}

impl<FS: Fs> Spool<FS> {
    /// How full the spool's filesystem is now.
    pub fn disk_usage(&self) -> Result<DiskUsage, SpoolError> {
        let st = self.fs.disk_space(&self.root).ctx("inspect filesystem", &self.root)?;
        let frsize = st.fragment_size.max(1);
        let total = st.blocks * frsize;
        let available = st.available * frsize;
        let used = total.saturating_sub(st.free * frsize);
        let used_percent = if used + available == 0 { 0.0 } else { used as f64 * 100.0 / (used + available) as f64 };
        Ok(DiskUsage {
            total_bytes: total,
            available_bytes: available,
            used_percent,
            above_high_watermark: used_percent > f64::from(self.options().high_watermark_percent),
        })
    }

    /// Applies [`Retention::KeepDays`] or [`Retention::KeepUntilWatermark`] to the recordings
    /// no queue entry refers to; does nothing for the other policies.
    pub fn sweep(&self) -> Result<SweepReport, SpoolError> {
        let mut report = SweepReport::default();
        let retention = self.options().retention;
        let (max_age, watermark) = match retention {
            Retention::KeepDays(days) => (Some(Duration::from_secs(u64::from(days) * 86_400)), None),
            Retention::KeepUntilWatermark(percent) => (None, Some(f64::from(percent))),
            Retention::Keep | Retention::DeleteWhenShipped => return Ok(report),
        };
        if let Some(percent) = watermark
            && self.disk_usage()?.used_percent <= percent
        {
            return Ok(report);
        }
        let mut files = Vec::new();
        walk(&self.fs, &self.recordings, &mut files).ctx("list", &self.recordings)?;
        // Oldest first.
        files.sort_by_key(|(_, modified, _)| *modified);
        let now = SystemTime::now();
        for (path, modified, size) in files {
            if let Some(max_age) = max_age
                && now.duration_since(modified).unwrap_or_default() <= max_age
            {
                // Sorted by age: the rest are younger.
                break;
            }
            if let Some(percent) = watermark
                && report.files_deleted % 64 == 0
                && self.disk_usage()?.used_percent <= percent
            {
                break;
            }
            let Some(key) = self.key_of(&path) else { continue };
            let state = self.lock();
            if is_referenced(&state, &key) {
                report.files_referenced += 1;
                continue;
            }
            match self.fs.remove_file(&path) {
                Ok(()) => {
                    // Durable before the lock is released: an `enter` of the same key must not
                    // find the deleted file back after a power loss.
                    let dir = path.parent().unwrap_or(&self.recordings);
                    sync_dir(&self.fs, dir).ctx("sync directory", dir)?;
                    report.files_deleted += 1;
                    report.bytes_freed += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io("remove", path, e)),
            }
        }
        if report.files_deleted > 0 {
            tracing::info!(deleted = report.files_deleted, freed_bytes = report.bytes_freed,
                policy = ?retention, "deleted shipped recordings from the spool");
        }
        Ok(report)
    }

    /// Applies the retention policy to the files of `entry`, which just left the queue.
    pub(super) fn apply_retention(&self, state: &State, entry: &Entry) {
        if self.options().retention != Retention::DeleteWhenShipped {
            tracing::debug!(key = %entry.key, "recording confirmed by every target; kept");
            return;
        }
        if is_referenced(state, &entry.key) {
            tracing::debug!(key = %entry.key, "recording confirmed but still queued under another entry; kept");
            return;
        }
        let mut dirs = Vec::new();
        for f in &entry.files {
            let path = self.root.join(&f.path);
            match self.fs.remove_file(&path) {
                Ok(()) => {
                    if let Some(dir) = path.parent()
                        && !dirs.iter().any(|d| d == dir)
                    {
                        dirs.push(dir.to_owned());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cannot delete a shipped recording from the spool; it stays"),
            }
        }
        // The deletions are made durable under the spool's lock, before an `enter` of the same
        // key can move a new file in: a power loss must not bring a deleted file back to collide
        // with it.
        for dir in dirs {
            if let Err(e) = sync_dir(&self.fs, &dir) {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "cannot sync the spool directory after deleting a shipped recording");
            }
        }
    }

    /// The recording key of a file under `recordings/`: its relative path without the extension.
    fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.recordings).ok()?.to_str()?;
        let (key, _ext) = rel.rsplit_once('.')?;
        Some(key.to_owned())
    }
}

pub(super) fn is_referenced(state: &State, key: &str) -> bool {
    state.queued_keys.contains_key(key) || state.unfinished.values().any(|i| i.key == key)
}

/// Every regular file under `dir`, with its modification time and size.
fn walk<FS: Fs>(fs: &FS, dir: &Path, out: &mut Vec<(PathBuf, SystemTime, u64)>) -> io::Result<()> {
    for name in fs.read_dir(dir)? {
        let path = dir.join(name?);
        let meta = match fs.symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            walk(fs, &path, out)?;
        } else if meta.is_file() {
            out.push((path, meta.modified, meta.len));
        }
    }
    Ok(())
}
