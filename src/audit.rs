//! The audit log of who listened: every download of a call's audio or evidence pcap through the
//! API is written here (who, how they authenticated, from where, which call, when) before a
//! byte of it is served, and the log itself is archived like a recording.
//!
//! # Files
//!
//! ```text
//! <data_dir>/audit/open/<UTC start>_<pid>.jsonl    being written, held (flock) by its process
//! <data_dir>/audit/sealed/<UTC start>_<pid>.jsonl  finished, waiting to enter the spool
//! ```
//!
//! Each line is one JSON object ([`Entry`]), appended and fsynced before the download starts; if
//! it cannot be written, the download is refused (503). A file is sealed (renamed into
//! `sealed/`) once it is [`SEAL_AFTER`] old, and when its process stops. The spool's owner (the
//! pipeline of `run` and `replay`, or `ship`) enters each sealed file into the spool under the
//! key `<YYYY>/<MM>/<DD>/audit_<UTC start>_<pid>` (extension `jsonl`), from where it is shipped
//! to every archive target, verified, like a recording ([`collect`]). A file left in `open/` by
//! a process that died (its lock is free) is sealed by the next collection, cut after its last
//! whole line. So `callvault serve`, which does not own the spool, leaves its sealed logs for
//! the next `run`, `replay` or `ship` of the same data directory.
//!
//! Data flows one way: the API appends, the spool's owner collects; neither reads the other's
//! state.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Sender, bounded};
use serde::Serialize;
use shipper::{NewFile, NewRecording, Spool};

/// How long an audit file is appended to before it is sealed and shipped.
pub const SEAL_AFTER: Duration = Duration::from_secs(300);
/// How often the sealer looks at the open file's age.
const SEAL_CHECK: Duration = Duration::from_secs(5);
/// The spool's extension of an audit log.
pub const EXT: &str = "jsonl";

/// `<data_dir>/audit`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// One download, as a line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// When it was asked for (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// The user's or token's name; `anonymous` without authentication.
    pub user: String,
    /// `basic`, `bearer` or `none`.
    pub auth: &'static str,
    /// The peer's address.
    pub remote: Option<String>,
    /// `audio` or `pcap`.
    pub action: &'static str,
    /// The call's id in the API.
    pub call: String,
    /// The recording's archive key.
    pub key: String,
    /// The `Range` asked for, if any.
    pub range: Option<String>,
}

/// The audit log a process appends to.
#[derive(Debug)]
pub struct AuditLog {
    inner: Arc<Inner>,
    stop: Option<Sender<()>>,
    sealer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    open: PathBuf,
    sealed: PathBuf,
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    file: File,
    name: String,
    opened: Instant,
}

impl AuditLog {
    /// The audit log under `data_dir` (directories created now, the file at the first entry).
    pub fn open(data_dir: &Path) -> anyhow::Result<AuditLog> {
        let base = dir(data_dir);
        let (open, sealed) = (base.join("open"), base.join("sealed"));
        for d in [&open, &sealed] {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create the audit log directory {}", d.display()))?;
        }
        sync(&base)?;
        let inner = Arc::new(Inner { open, sealed, current: Mutex::new(None) });
        let (stop, stopped) = bounded::<()>(1);
        let sealing = inner.clone();
        let sealer = std::thread::Builder::new()
            .name("audit-sealer".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(SEAL_CHECK) {
                    sealing.seal_if_old();
                }
            })
            .context("cannot start the audit log's sealer thread")?;
        Ok(AuditLog { inner, stop: Some(stop), sealer: Some(sealer) })
    }

    /// Appends `entry` and fsyncs it: when this returns Ok, the download may start.
    pub fn record(&self, entry: &Entry) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(entry).context("cannot write an audit entry")?;
        line.push(b'\n');
        let mut current = self.inner.current.lock().unwrap();
        if current.is_none() {
            *current = Some(self.inner.create()?);
        }
        let c = current.as_mut().expect("just opened");
        let path = self.inner.open.join(&c.name);
        c.file
            .write_all(&line)
            .and_then(|()| c.file.sync_data())
            .with_context(|| format!("cannot write the audit log {}", path.display()))?;
        Ok(())
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.sealer.take() {
            let _ = t.join();
        }
        let current = self.inner.current.lock().unwrap().take();
        if let Some(c) = current {
            self.inner.seal(c);
        }
    }
}

impl Inner {
    fn create(&self) -> anyhow::Result<Current> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let name = format!("{stamp}_{}.{EXT}", std::process::id());
        let path = self.open.join(&name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create the audit log {}", path.display()))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .with_context(|| format!("cannot lock the audit log {}", path.display()))?;
        sync(&self.open)?;
        Ok(Current { file, name, opened: Instant::now() })
    }

    fn seal_if_old(&self) {
        let mut current = self.current.lock().unwrap();
        if current.as_ref().is_some_and(|c| c.opened.elapsed() >= SEAL_AFTER) {
            let c = current.take().expect("checked");
            self.seal(c);
        }
    }

    /// Moves a finished file into `sealed/` (the file is already fsynced line by line).
    fn seal(&self, c: Current) {
        let (from, to) = (self.open.join(&c.name), self.sealed.join(&c.name));
        let moved = std::fs::rename(&from, &to).map_err(anyhow::Error::from).and_then(|()| {
            sync(&self.sealed)?;
            sync(&self.open)
        });
        match moved {
            Ok(()) => tracing::debug!("audit log {} sealed", to.display()),
            // It stays in open/: the next collection seals it once this process is gone.
            Err(e) => tracing::error!("cannot seal the audit log {}: {e:#}", from.display()),
        }
    }
}

fn sync(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync the directory {}", dir.display()))
}

/// Enters every sealed audit log under `data_dir` into `spool` (sealing first the open ones
/// whose process is gone). Returns how many entered; a file that cannot enter stays for the
/// next time, with an error logged.
pub fn collect(data_dir: &Path, spool: &Spool) -> usize {
    let base = dir(data_dir);
    let (open, sealed) = (base.join("open"), base.join("sealed"));
    if !base.exists() {
        return 0;
    }
    for path in jsonl_files(&open) {
        if let Err(e) = seal_orphan(&path, &sealed) {
            tracing::error!("cannot seal the audit log {} left by a stopped process: {e:#}", path.display());
        }
    }
    let mut entered = 0;
    for path in jsonl_files(&sealed) {
        match enter(&path, spool) {
            Ok((key, lines)) => {
                entered += 1;
                tracing::info!(key = %key, "audit log of {lines} downloads queued for the archive");
            }
            Err(e) => tracing::error!("the audit log {} stays for the next try: {e:#}", path.display()),
        }
    }
    entered
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == EXT))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::error!("cannot list the audit logs in {}: {e}", dir.display());
            Vec::new()
        }
    };
    files.sort();
    files
}

/// Seals `path` if no process holds it, cut after its last whole line; an empty one is removed.
fn seal_orphan(path: &Path, sealed: &Path) -> anyhow::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(()); // Its process is still appending.
    }
    let content = std::fs::read(path)?;
    let whole = content.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < content.len() {
        tracing::warn!(
            "the audit log {} ends in a line cut by a crash ({} bytes): cut after its last whole line",
            path.display(),
            content.len() - whole
        );
        file.set_len(whole as u64)?;
        file.sync_all()?;
    }
    let dir = path.parent().expect("in open/");
    std::fs::create_dir_all(sealed)?;
    if whole == 0 {
        std::fs::remove_file(path)?;
    } else {
        std::fs::rename(path, sealed.join(path.file_name().expect("a file")))?;
        sync(sealed)?;
    }
    sync(dir)
}

/// Enters one sealed audit log; its key and number of lines.
fn enter(path: &Path, spool: &Spool) -> anyhow::Result<(String, usize)> {
    let stem = path.file_stem().and_then(|s| s.to_str()).context("not a UTF-8 file name")?;
    let date = stem
        .get(..8)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| format!("{stem} does not start with its date (YYYYMMDD)"))?;
    let key = format!("{}/{}/{}/audit_{stem}", &date[..4], &date[4..6], &date[6..]);
    let content = std::fs::read(path)?;
    let lines = content.iter().filter(|&&b| b == b'\n').count();
    let (sha256, size) = filehash::hash_reader(content.as_slice())?;
    let recording = NewRecording {
        key: key.clone(),
        files: vec![NewFile { source: path.to_owned(), ext: EXT.into(), sha256, size }],
        summary: serde_json::json!({ "kind": "audit_log", "entries": lines }),
    };
    spool.enter(recording)?;
    Ok((key, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(call: &str) -> Entry {
        Entry {
            at: "2026-12-03T10:00:00.000Z".into(),
            user: "alice".into(),
            auth: "basic",
            remote: Some("127.0.0.1:4000".into()),
            action: "audio",
            call: call.into(),
            key: format!("2026/12/03/{call}"),
            range: None,
        }
    }

    #[test]
    fn entries_are_sealed_at_close_and_entered_into_the_spool() {
        let data = tempfile::tempdir().unwrap();
        let spool = Spool::open(data.path()).unwrap();
        let log = AuditLog::open(data.path()).unwrap();
        log.record(&entry("a")).unwrap();
        log.record(&entry("b")).unwrap();
        // Still open: held by this process, so a collection leaves it.
        assert_eq!(collect(data.path(), &spool), 0);
        drop(log);
        assert_eq!(collect(data.path(), &spool), 1);
        let queued = spool.pending().unwrap();
        assert_eq!(queued.len(), 1);
        assert!(queued[0].key.contains("/audit_"), "{}", queued[0].key);
        assert_eq!(queued[0].summary["entries"], 2);
        let text = std::fs::read_to_string(data.path().join(&queued[0].files[0].path)).unwrap();
        let calls: Vec<String> =
            text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["call"].to_string()).collect();
        assert_eq!(calls, ["\"a\"", "\"b\""]);
        assert!(jsonl_files(&dir(data.path()).join("sealed")).is_empty());
        // Nothing twice.
        assert_eq!(collect(data.path(), &spool), 0);
    }

    #[test]
    fn a_log_left_by_a_dead_process_is_cut_after_its_last_line_and_entered() {
        let data = tempfile::tempdir().unwrap();
        let spool = Spool::open(data.path()).unwrap();
        let open = dir(data.path()).join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::write(open.join("20261203T100000.000Z_1.jsonl"), "{\"call\":\"a\"}\n{\"call\":\"b").unwrap();
        std::fs::write(open.join("20261203T100001.000Z_2.jsonl"), "").unwrap();
        assert_eq!(collect(data.path(), &spool), 1);
        let queued = spool.pending().unwrap();
        assert_eq!(queued[0].key, "2026/12/03/audit_20261203T100000.000Z_1");
        let text = std::fs::read_to_string(data.path().join(&queued[0].files[0].path)).unwrap();
        assert_eq!(text, "{\"call\":\"a\"}\n");
        assert!(jsonl_files(&open).is_empty());
    }
}
