//! Tests that need the fault-injection seam: one per named crash point, ordering, transient
//! failures in `enter`, and the model-based property test, on the real filesystem; and power
//! loss on the simulated filesystem (`power_loss.rs`), which forgets what was not fsynced.

mod backlog;
mod crash;
mod model;
mod power_loss;
mod s3_crash;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{LocalDir, NewFile, NewRecording, ShipReport, Shipper, ShipperConfig, Spool, Target};

/// The configuration of a target on a fresh bucket (`<prefix>-<random>`) of the real test
/// server (`scripts/s3-server.sh`, path-style), or `None` without one: then `test` is recorded
/// as skipped (printed, and in `$CALLVAULT_SKIP_LOG`).
pub(crate) fn s3_test_config(test: &str, prefix: &str) -> Option<crate::target::S3Config> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(id), Some(secret)) =
        (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_ACCESS_KEY"), var("CALLVAULT_S3_SECRET_KEY"))
    else {
        let line = format!("skipped: {test}: no S3 test server (scripts/s3-server.sh)");
        println!("{line}");
        if let Some(log) = var("CALLVAULT_SKIP_LOG")
            && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log)
        {
            let _ = writeln!(f, "{line}");
        }
        return None;
    };
    let bucket = format!("{prefix}-{:016x}", crate::fsutil::random_u64());
    let creds = crate::target::Credentials::new(&id, &secret, None);
    let mut cfg = crate::target::S3Config::new("s3", &bucket, "us-east-1", creds);
    cfg.endpoint = Some(endpoint);
    cfg.ca_file = var("CALLVAULT_S3_CA").map(Into::into);
    cfg.path_style = true;
    Some(cfg)
}

/// Lowercase hex SHA-256 of `bytes`.
fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A spool root, a work directory on the same filesystem, and an archive directory.
struct Dirs {
    _tmp: tempfile::TempDir,
    spool: PathBuf,
    work: PathBuf,
    archive: PathBuf,
    /// Names work files uniquely.
    counter: std::cell::Cell<u32>,
    /// The archive copies every file instead of linking it from the spool.
    copy: std::cell::Cell<bool>,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let spool = tmp.path().join("spool");
        let work = tmp.path().join("work");
        let archive = tmp.path().join("archive");
        fs::create_dir_all(&work).unwrap();
        Dirs { spool, work, archive, _tmp: tmp, counter: std::cell::Cell::new(0), copy: std::cell::Cell::new(false) }
    }

    /// Writes and fsyncs the files of a recording in the work directory.
    fn recording(&self, key: &str, files: &[(&str, &[u8])]) -> NewRecording {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let files = files
            .iter()
            .map(|(ext, bytes)| {
                let source = self.work.join(format!("rec{n}.{ext}"));
                let mut f = fs::File::create(&source).unwrap();
                f.write_all(bytes).unwrap();
                f.sync_all().unwrap();
                NewFile { source, ext: (*ext).to_owned(), sha256: sha(bytes), size: bytes.len() as u64 }
            })
            .collect();
        NewRecording { key: key.to_owned(), files, summary: serde_json::json!({"key": key}) }
    }

    /// Ships everything with a fresh shipper and a `LocalDir` named "archive".
    fn ship(&self, spool: &Arc<Spool>, concurrency: usize) -> ShipReport {
        self.start(spool, concurrency).drain(Some(Duration::from_secs(20)))
    }

    /// A fresh shipper to a `LocalDir` named "archive", with short retries.
    fn start(&self, spool: &Arc<Spool>, concurrency: usize) -> crate::ShipperHandle {
        let dir = LocalDir::new("archive", &self.archive).unwrap();
        dir.set_link_from_spool(!self.copy.get());
        let target = Target::LocalDir(dir);
        let cfg = ShipperConfig {
            concurrency,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
        };
        Shipper::start(Arc::clone(spool), vec![target], cfg).unwrap()
    }

    fn work_files(&self) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(&self.work).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

/// Every visible file under `dir` (no dot-files), by relative path, with its content.
fn visible_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut |rel, path| {
        if !rel.rsplit('/').next().unwrap_or("").starts_with('.') {
            out.insert(rel.to_owned(), fs::read(path).unwrap());
        }
    });
    out
}

/// The recordings' files in a directory archive (every visible file but the manifests).
fn archived(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = visible_files(dir);
    files.retain(|rel, _| !rel.contains("/manifest/"));
    files
}

/// The key of every manifest line in a directory archive, as many times as it is there, sorted.
fn manifest_keys(dir: &Path) -> Vec<String> {
    let mut keys = manifest_keys_as_written(dir);
    keys.sort();
    keys
}

/// The key of every manifest line in a directory archive, in the order written: day by day,
/// batch by batch, line by line.
fn manifest_keys_as_written(dir: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for (rel, body) in visible_files(dir) {
        if rel.contains("/manifest/") && rel.ends_with(".jsonl") {
            for (_, text) in crate::target::manifest::split_batch(&body).lines {
                keys.push(crate::target::manifest::ManifestLine::parse(text).unwrap().key);
            }
        }
    }
    keys
}

/// Every hidden file (dot-file) under `dir`, by relative path.
fn hidden_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut |rel, _| {
        if rel.rsplit('/').next().unwrap_or("").starts_with('.') {
            out.push(rel.to_owned());
        }
    });
    out
}

fn walk(base: &Path, dir: &Path, f: &mut dyn FnMut(&str, &Path)) {
    let Ok(items) = fs::read_dir(dir) else {
        return;
    };
    for item in items {
        let path = item.unwrap().path();
        if path.is_dir() {
            walk(base, &path, f);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            f(&rel, &path);
        }
    }
}

/// Queue entry files and intent files currently on disk.
fn queue_state(spool_root: &Path) -> (usize, usize) {
    let count = |dir: PathBuf| {
        fs::read_dir(dir)
            .map(|items| {
                items
                    .filter(|e| {
                        let name = e.as_ref().unwrap().file_name();
                        crate::spool::format::parse_seq_file_name(&name.to_string_lossy()).is_some()
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    (count(spool_root.join("queue")), count(spool_root.join("queue/.intent")))
}
