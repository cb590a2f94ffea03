//! The daily manifest: one JSON line per shipped recording, written in batches as new objects.
//! The design and its guarantees are in the [module documentation](super).
//!
//! A batch collects lines for [`S3Config::manifest_linger`](super::S3Config::manifest_linger)
//! from its first line, then is written (one object per day); one write at a time per target, and
//! lines that arrive during a write start the next batch. So a target writes at most one manifest
//! object per day directory per linger period, however many recordings it ships — a day holds a
//! bounded number of objects, and a busy recorder pays one `PUT` and one `HEAD` for many lines —
//! and each shipment waits at most about one linger period plus one write for its line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::upload::{Meta, Put, content_type, put_verified};
use super::{Inner, S3Error, S3Target};
use crate::fsutil::random_u64;
use crate::spool::{Entry, EntryFile};
use crate::target::ShipError;

/// Collects manifest lines and writes them together.
#[derive(Debug)]
pub(super) struct Batcher {
    linger: Duration,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    waiters: Vec<Waiter>,
    /// When the first of `waiters` arrived: the batch is written `linger` later.
    since: Option<Instant>,
    /// A flush task is running: it writes batch after batch until no line is waiting.
    flushing: bool,
}

#[derive(Debug)]
struct Waiter {
    /// `<prefix>/<site>/<YYYY>/<MM>/<DD>/`: the day the line belongs to.
    dir: String,
    line: String,
    done: oneshot::Sender<Result<(), S3Error>>,
}

impl Batcher {
    pub(super) fn new(linger: Duration) -> Batcher {
        Batcher { linger, pending: Mutex::default() }
    }

    /// Adds `line` to the manifest of `dir`; returns once the object holding it is stored and
    /// verified.
    pub(super) async fn append(inner: &Arc<Inner>, dir: String, line: String) -> Result<(), S3Error> {
        let (done, result) = oneshot::channel();
        let start = {
            let mut pending = inner.manifest.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.waiters.push(Waiter { dir: dir.clone(), line, done });
            pending.since.get_or_insert_with(Instant::now);
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            let inner = Arc::clone(inner);
            tokio::spawn(async move { while flush(&inner).await {} });
        }
        result.await.unwrap_or_else(|_| {
            Err(S3Error::Protocol {
                op: "write manifest",
                resource: inner.client.resource(Some(&dir)),
                problem: "the manifest write was abandoned (shutting down)".into(),
            })
        })
    }
}

/// Waits until the waiting batch is due, then writes it, one new object per day. Returns `false`
/// (and ends the flushing) when no line was waiting.
async fn flush(inner: &Arc<Inner>) -> bool {
    let since = {
        let mut pending = inner.manifest.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.since {
            Some(since) if !pending.waiters.is_empty() => since,
            _ => {
                pending.flushing = false;
                return false;
            }
        }
    };
    tokio::time::sleep_until(since + inner.manifest.linger).await;
    let waiters = {
        let mut pending = inner.manifest.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.since = None;
        std::mem::take(&mut pending.waiters)
    };
    let mut by_day: BTreeMap<String, Vec<Waiter>> = BTreeMap::new();
    for w in waiters {
        by_day.entry(w.dir.clone()).or_default().push(w);
    }
    let target = S3Target { inner: Arc::clone(inner) };
    for (dir, waiters) in by_day {
        let mut body = String::new();
        for w in &waiters {
            body.push_str(&w.line);
            body.push('\n');
        }
        let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let key = format!("{dir}manifest/{now}-{:016x}.jsonl", random_u64());
        let sha = hex::encode(Sha256::digest(body.as_bytes()));
        let size = body.len() as u64;
        let meta = Meta { sha256: &sha, call_id: None, content_type: content_type("jsonl") };
        let result = match put_verified(&target, &key, body.into_bytes(), size, &meta).await {
            Ok(Put::Created | Put::Identical) => Ok(()),
            Ok(Put::Taken) => Err(S3Error::Protocol {
                op: "write manifest",
                resource: target.inner.client.resource(Some(&key)),
                problem: "another object took this fresh manifest name".into(),
            }),
            Err(ShipError::Store { error, .. }) => Err(*error),
            Err(other) => Err(S3Error::Protocol {
                op: "write manifest",
                resource: target.inner.client.resource(Some(&key)),
                problem: crate::chain(&other),
            }),
        };
        for w in waiters {
            let _ = w.done.send(result.clone());
        }
    }
    true
}

/// The manifest line of `entry` stored under `key`, and the day directory it belongs to.
pub(super) fn line(t: &S3Target, entry: &Entry, key: &str, files: &[(EntryFile, PathBuf)]) -> (String, String) {
    let mut objects = serde_json::Map::new();
    for (f, _) in files {
        objects.insert(
            f.ext.clone(),
            serde_json::json!({"key": t.object_key(key, &f.ext), "sha256": f.sha256, "size": f.size}),
        );
    }
    let mut line = serde_json::Map::new();
    line.insert("key".into(), key.into());
    line.insert("location".into(), format!("s3://{}/{}{key}", t.inner.bucket, t.inner.base).into());
    line.insert("site".into(), t.inner.site.clone().into());
    line.insert("objects".into(), objects.into());
    if let Some(summary) = entry.summary.as_object() {
        for (k, v) in summary {
            line.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let day = key.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
    let text = serde_json::Value::Object(line).to_string();
    (format!("{}{day}", t.inner.base), text)
}
