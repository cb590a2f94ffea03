//! The daily manifest of an archive (S3 bucket or local directory): one JSON line per recording,
//! written in numbered batch objects, exactly once per recording.
//!
//! # Format (version 2)
//!
//! ```text
//! <base><YYYY>/<MM>/<DD>/manifest/seq-<10 digits>.jsonl      batches 1, 2, 3, … of that day
//! <base><YYYY>/<MM>/<DD>/manifest/seq-<10 digits>.jsonl.sig  each batch's Ed25519 signature
//! <base>keys/ed25519-<fingerprint>.pem                       the site's public key(s)
//! ```
//!
//! A batch's first line is its header (no `key`): `{"v":2,"batch":{"site","day","seq","prev",
//! "signing_key"}}` — the site and day (`YYYY/MM/DD`) and number it was written as, `prev` the
//! previous batch of the site's chain (`{"object": its key, "sha256": the SHA-256 of its bytes}`,
//! or `null` for a chain's first batch) and `signing_key` the fingerprint of the key that signed
//! it (`null`: written without a key, unsigned). Every other line is a recording: `v` (the format
//! version), `key` (the recording's key as stored, `YYYY/MM/DD/<name>` or `…~2`), `location`,
//! `site`, `objects` (per extension: the object's `key` in the archive, its `sha256` and `size`)
//! and the fields of the spool entry's summary (`call_id`, `from`, `to`, `start`, `end`, `state`,
//! `end_reason`, `duration_s`, `audio`). Version 1 batches are the same without the header and
//! signature; lines without `v` are version 0 (written by earlier versions into objects named
//! `<UTC time>-<16 hex>.jsonl`); readers accept all three. A reader meets a higher version it does
//! not know as an unsupported line, never as a silent skip.
//!
//! # The chain
//!
//! The site's batches are ordered by day, then number. Batch N > 1 of a day links to batch N − 1
//! of the same day; a day's batch 1 links to the newest batch of the latest earlier day (looking
//! back [`CHAIN_LOOKBACK_DAYS`]) that the writer found when it wrote it, or to nothing. Since a
//! batch number is taken by conditional create, two writers never write the same link: the one
//! that loses the race reads the winner's batch and chains its own to it under the next number.
//! A batch is signed right after it is created (the signature is deterministic, so two writers
//! produce the same bytes); a crash between the two leaves the batch unsigned until the next write
//! to its day, which signs every batch of the day that names this writer's key and has no
//! signature (the recordings whose lines it holds were not confirmed, so they are shipped, and
//! that day written, again after the restart).
//!
//! # Exactly one line per recording
//!
//! A recording is identified by its stored key and its content (the SHA-256 and size of each of
//! its objects: [`ManifestLine::content_id`]). The writer of a target collects lines for a
//! linger period, then, per day: lists the day's batches and reads the ones it has not read yet
//! (at its first write to the day, and again whenever the number it tries is taken: numbers are
//! dense, so while the next one is free there is nothing it has not read), drops every waiting
//! line whose identity is already in one, and creates the next numbered batch
//! with what is left — by conditional create (S3 `If-None-Match: *`, a hard link on a directory),
//! which fails rather than replace. When another writer (another process, another recorder
//! replaying the same capture) took that number first, it reads that batch too and tries the
//! next number. So replays, concurrent shippers and a crash between the upload and the manifest
//! (the recording is shipped again after the restart, its line is found) all end with one line,
//! and no batch is ever rewritten. A batch the store lists but cannot serve stops the write
//! with an error naming it (read past, its lines would be written twice).
//!
//! Each shipment succeeds only once the batch holding its line (new or found) is stored and
//! verified; a line is never lost, since a recording whose line was not stored is not confirmed
//! and is shipped again. At most one batch is written per day and linger period per target; a
//! write lists the day's `manifest/` only at the writer's first write to the day or when another
//! writer took the number (and reads each batch another writer added).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use sha2::{Digest, Sha256};

use super::seal::Sealing;
use super::signing::{self, SiteKey};
use super::{Created, Outgoing, ShipError, Target};
use crate::spool::Entry;

/// The manifest format version this build writes.
pub const MANIFEST_VERSION: u64 = 2;

/// How many days back a day's first batch looks for the batch it links to.
pub const CHAIN_LOOKBACK_DAYS: u32 = 31;

/// The directory of a day's manifest batches, under the day's prefix.
pub const MANIFEST_DIR: &str = "manifest/";

/// How often a writer tries the next batch number when other writers keep taking it.
const MAX_ATTEMPTS: usize = 64;

/// How many days' batch listings a writer remembers (the recent days it writes to).
const CACHED_DAYS: usize = 8;

/// The name of batch `seq` of the day whose prefix is `day_prefix`.
pub fn batch_key(day_prefix: &str, seq: u64) -> String {
    format!("{day_prefix}{MANIFEST_DIR}seq-{seq:010}.jsonl")
}

/// The number of a batch object from its key (`…/manifest/seq-0000000042.jsonl` is 42); `None`
/// for version 0 batches and other names.
pub fn batch_seq(object_key: &str) -> Option<u64> {
    let name = object_key.rsplit('/').next()?;
    let digits = name.strip_prefix("seq-")?.strip_suffix(".jsonl")?;
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

/// One object of a recording as a manifest line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The object's key in the archive (full S3 key; path under a directory archive).
    pub key: String,
    /// Lowercase hex SHA-256 of its content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// For a sealed (encrypted) object: the SHA-256 and size of its plaintext.
    pub plain: Option<(String, u64)>,
}

/// A parsed manifest line.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestLine {
    /// The format version (0 for lines without `v`).
    pub version: u64,
    /// The recording's key as stored.
    pub key: String,
    /// Its objects by extension.
    pub objects: BTreeMap<String, ObjectRef>,
    /// The whole line.
    pub value: serde_json::Value,
}

impl ManifestLine {
    /// Parses one line; the error says what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<ManifestLine, String> {
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        let version = match obj.get("v") {
            None => 0,
            Some(v) => v.as_u64().ok_or_else(|| format!("\"v\" is {v}, not a version number"))?,
        };
        if version > MANIFEST_VERSION {
            return Err(format!("format version {version} is newer than this callvault reads ({MANIFEST_VERSION})"));
        }
        let key = obj.get("key").and_then(|k| k.as_str()).ok_or("no \"key\"")?;
        if !plain_path(key) {
            return Err(format!("key {key:?} is not a relative path of plain components"));
        }
        let list = obj.get("objects").and_then(|o| o.as_object()).ok_or("no \"objects\"")?;
        if list.is_empty() {
            return Err("\"objects\" is empty".into());
        }
        let mut objects = BTreeMap::new();
        for (ext, o) in list {
            let field = |name: &str| o.get(name).ok_or_else(|| format!("object {ext:?} has no \"{name}\""));
            let okey = field("key")?.as_str().ok_or_else(|| format!("object {ext:?}: \"key\" is not a string"))?;
            if !plain_path(okey) {
                return Err(format!("object {ext:?}: key {okey:?} is not a relative path of plain components"));
            }
            let sha256 = field("sha256")?.as_str().filter(|s| crate::fsutil::is_sha256_hex(s));
            let sha256 = sha256.ok_or_else(|| format!("object {ext:?}: \"sha256\" is not 64 lowercase hex digits"))?;
            let size = field("size")?.as_u64().ok_or_else(|| format!("object {ext:?}: \"size\" is not a number"))?;
            let plain = match (o.get("plain_sha256"), o.get("plain_size")) {
                (None, None) => None,
                (Some(sha), Some(size)) => {
                    let sha = sha.as_str().filter(|s| crate::fsutil::is_sha256_hex(s));
                    let sha =
                        sha.ok_or_else(|| format!("object {ext:?}: \"plain_sha256\" is not 64 lowercase hex digits"))?;
                    let size =
                        size.as_u64().ok_or_else(|| format!("object {ext:?}: \"plain_size\" is not a number"))?;
                    Some((sha.to_owned(), size))
                }
                _ => {
                    return Err(format!(
                        "object {ext:?} has one of \"plain_sha256\" and \"plain_size\" without the other"
                    ));
                }
            };
            objects.insert(ext.clone(), ObjectRef { key: okey.to_owned(), sha256: sha256.to_owned(), size, plain });
        }
        Ok(ManifestLine { version, key: key.to_owned(), objects, value })
    }

    /// The object holding file `ext` (`wav`, `json`): stored as it is, or sealed (`wav.age`).
    pub fn object(&self, ext: &str) -> Option<&ObjectRef> {
        self.objects.get(ext).or_else(|| self.objects.get(&format!("{ext}.{}", super::seal::SEALED_EXT)))
    }

    /// The SHA-256 of file `ext`'s content as recorded: the object's, or a sealed object's
    /// plaintext's.
    pub fn plain_sha256(&self, ext: &str) -> Option<&str> {
        if let Some(o) = self.objects.get(ext) {
            return Some(o.sha256.as_str());
        }
        let sealed = self.objects.get(&format!("{ext}.{}", super::seal::SEALED_EXT))?;
        sealed.plain.as_ref().map(|(sha, _)| sha.as_str())
    }

    /// The recording's identity: its key and each object's extension, SHA-256 and size. Two
    /// lines with the same identity describe the same recording.
    pub fn content_id(&self) -> String {
        content_id(&self.key, self.objects.iter().map(|(ext, o)| (ext.as_str(), o.sha256.as_str(), o.size)))
    }
}

/// [`ManifestLine::content_id`] from its parts (in any order).
fn content_id<'a>(key: &str, objects: impl Iterator<Item = (&'a str, &'a str, u64)>) -> String {
    let mut parts: Vec<String> = objects.map(|(ext, sha, size)| format!("{ext}:{sha}:{size}")).collect();
    parts.sort();
    format!("{key} {}", parts.join(" "))
}

/// Whether `key` is a relative path of plain components (nothing that could leave an archive
/// directory).
pub(crate) fn plain_path(key: &str) -> bool {
    !key.is_empty()
        && !key.contains(['\0', '\\'])
        && !key.starts_with('/')
        && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Where a batch links to: the previous batch of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevRef {
    /// Its object key.
    pub object: String,
    /// The SHA-256 of its bytes.
    pub sha256: String,
}

/// A batch's header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// The format version.
    pub version: u64,
    /// The site it was written for (empty for a directory archive).
    pub site: String,
    /// The day (`YYYY/MM/DD`) and number it was written as.
    pub day: String,
    /// Its number.
    pub seq: u64,
    /// The previous batch of the chain; `None` starts a chain.
    pub prev: Option<PrevRef>,
    /// The fingerprint of the key that signed it; `None`: unsigned.
    pub signing_key: Option<String>,
}

impl BatchHeader {
    /// The header's line (without newline).
    pub fn to_line(&self) -> String {
        let prev = match &self.prev {
            Some(p) => serde_json::json!({"object": p.object, "sha256": p.sha256}),
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "v": self.version,
            "batch": {"site": self.site, "day": self.day, "seq": self.seq, "prev": prev, "signing_key": self.signing_key},
        })
        .to_string()
    }

    /// Parses a header line; the error says what is wrong with it.
    pub fn parse(text: &[u8]) -> Result<BatchHeader, String> {
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
        let version = value["v"].as_u64().ok_or("the header has no version \"v\"")?;
        if version > MANIFEST_VERSION {
            return Err(format!("format version {version} is newer than this callvault reads ({MANIFEST_VERSION})"));
        }
        let b = value.get("batch").and_then(|b| b.as_object()).ok_or("no \"batch\" object")?;
        let text_field = |name: &str| b.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let site = text_field("site").ok_or("batch.site is not a string")?;
        let day = text_field("day").ok_or("batch.day is not a string")?;
        let seq = b.get("seq").and_then(|v| v.as_u64()).ok_or("batch.seq is not a number")?;
        let prev = match b.get("prev") {
            None | Some(serde_json::Value::Null) => None,
            Some(p) => {
                let object = p["object"].as_str().filter(|o| plain_path(o)).ok_or("batch.prev.object is not a key")?;
                let sha256 = p["sha256"].as_str().filter(|s| crate::fsutil::is_sha256_hex(s));
                let sha256 = sha256.ok_or("batch.prev.sha256 is not 64 lowercase hex digits")?;
                Some(PrevRef { object: object.to_owned(), sha256: sha256.to_owned() })
            }
        };
        let signing_key = match b.get("signing_key") {
            None | Some(serde_json::Value::Null) => None,
            Some(k) => Some(
                k.as_str()
                    .filter(|k| crate::fsutil::is_sha256_hex(k))
                    .ok_or("batch.signing_key is not a fingerprint (64 lowercase hex digits)")?
                    .to_owned(),
            ),
        };
        Ok(BatchHeader { version, site, day, seq, prev, signing_key })
    }
}

/// A batch object split into its header (when its first line is one) and its other lines, each
/// with its line number (from 1); blank lines are left out.
#[derive(Debug)]
pub struct BatchBody<'a> {
    /// The header, or why it cannot be read; `None` for batches of versions 0 and 1.
    pub header: Option<Result<BatchHeader, String>>,
    /// The recording lines.
    pub lines: Vec<(usize, &'a [u8])>,
}

/// Splits a batch object (see [`BatchBody`]).
pub fn split_batch(body: &[u8]) -> BatchBody<'_> {
    let mut header = None;
    let mut lines = Vec::new();
    for (n, text) in body.split(|&b| b == b'\n').enumerate() {
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if n == 0 && is_header(text) {
            header = Some(BatchHeader::parse(text));
            continue;
        }
        lines.push((n + 1, text));
    }
    BatchBody { header, lines }
}

/// Whether a line is a batch header: a JSON object with `batch` and without `key`.
fn is_header(text: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(text).is_ok_and(|v| v.get("batch").is_some() && v.get("key").is_none())
}

/// The hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every line of day `day`'s (`YYYY/MM/DD`) manifest at `target` that parses, in key order, as
/// many times as each is there (readers that want one per recording keep the first); lines that
/// do not parse are left out (`archive verify` reports them).
pub async fn read_day(target: &Target, day: &str) -> Result<Vec<ManifestLine>, ShipError> {
    let dir = format!("{}{MANIFEST_DIR}", target.day_prefix(day));
    let mut lines = Vec::new();
    for (key, _) in target.list(&dir).await? {
        if !key.ends_with(".jsonl") {
            continue;
        }
        let Some(body) = target.fetch(&key).await? else { continue };
        lines.extend(split_batch(&body).lines.into_iter().filter_map(|(_, text)| ManifestLine::parse(text).ok()));
    }
    lines.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(lines)
}

/// The manifest line of `entry` stored under `key` at `target` (its files as `out` gives them):
/// the day's prefix it belongs to, the line, and its [identity](ManifestLine::content_id). A
/// sealed recording's line also gives each object's plaintext hash and size and the recipients,
/// and keeps only [`SEALED_SUMMARY`] of the summary.
pub(crate) fn line(target: &Target, entry: &Entry, key: &str, out: &Outgoing) -> PendingLine {
    let mut objects = serde_json::Map::new();
    for (f, _) in &out.files {
        let mut object = serde_json::json!({"key": target.object_key(key, &f.ext), "sha256": f.sha256, "size": f.size});
        if let Some(plain) = out.plain_of(&f.ext) {
            object["plain_sha256"] = plain.sha256.clone().into();
            object["plain_size"] = plain.size.into();
        }
        objects.insert(f.ext.clone(), object);
    }
    let mut line = serde_json::Map::new();
    line.insert("v".into(), MANIFEST_VERSION.into());
    line.insert("key".into(), key.into());
    line.insert("location".into(), target.recording_location(key).into());
    line.insert("site".into(), target.site().into());
    line.insert("objects".into(), objects.into());
    if let Some(sealing) = target.sealing().filter(|_| out.sealed()) {
        line.insert("sealed".into(), serde_json::json!({"format": "age", "recipients": sealing.recipients()}));
    }
    if let Some(summary) = entry.summary.as_object() {
        for (k, v) in summary {
            if !out.sealed() || SEALED_SUMMARY.contains(&k.as_str()) {
                line.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    let day = key.rsplit_once('/').map(|(d, _)| d).unwrap_or_default();
    let id = content_id(key, out.files.iter().map(|(f, _)| (f.ext.as_str(), f.sha256.as_str(), f.size)));
    PendingLine { day_prefix: target.day_prefix(day), text: serde_json::Value::Object(line).to_string(), id }
}

/// The fields of the call's summary a sealed recording's manifest line keeps: when it started
/// and how long it lasted (its key and sizes say as much), nothing of who called whom.
pub const SEALED_SUMMARY: &[&str] = &["start", "duration_s"];

/// A line waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct PendingLine {
    /// The prefix of the line's day (`<base>YYYY/MM/DD/`).
    pub(crate) day_prefix: String,
    /// The JSON text, without newline.
    pub(crate) text: String,
    /// Its identity.
    pub(crate) id: String,
}

/// Collects manifest lines of one target and writes them together, each exactly once.
#[derive(Debug)]
pub(crate) struct Writer {
    linger: Duration,
    /// The site's signing key, if one is configured.
    key: OnceLock<SiteKey>,
    /// The recipients this target encrypts to, if any ([`seal`](super::seal)).
    sealing: OnceLock<std::sync::Arc<Sealing>>,
    /// Whether the key's public half is known to be published in the archive.
    published: AtomicBool,
    pending: Mutex<Pending>,
    /// What this writer knows of recent days' batches.
    days: Mutex<BTreeMap<String, DayState>>,
}

#[derive(Debug, Default)]
struct Pending {
    waiters: Vec<Waiter>,
    /// When the first of `waiters` arrived: the batch is written `linger` later.
    since: Option<Instant>,
    /// A flush task is running: it writes batch after batch until no line is waiting.
    flushing: bool,
}

/// Why a batch was not written, for each of its waiters: the store's error (which keeps its
/// classification) or what went wrong.
#[derive(Debug, Clone)]
enum Failure {
    Store { bucket: String, error: Box<super::S3Error> },
    Other(String),
}

impl Failure {
    fn of(e: &ShipError) -> Failure {
        match e {
            ShipError::Store { bucket, error, .. } => Failure::Store { bucket: bucket.clone(), error: error.clone() },
            other => Failure::Other(crate::chain(other)),
        }
    }

    fn into_error(self, target: &str) -> ShipError {
        match self {
            Failure::Store { bucket, error } => ShipError::Store { target: target.to_owned(), bucket, error },
            Failure::Other(problem) => ShipError::Manifest { target: target.to_owned(), problem },
        }
    }
}

#[derive(Debug)]
struct Waiter {
    line: PendingLine,
    done: oneshot::Sender<Result<(), Failure>>,
}

/// What a writer has read of a day's batches.
#[derive(Debug, Default, Clone)]
struct DayState {
    /// Batch objects already read.
    read: HashSet<String>,
    /// Identities of the lines in them.
    present: HashSet<String>,
    /// The highest batch number seen.
    last_seq: u64,
    /// The highest-numbered batch read: its number, key and SHA-256 (what the next batch links to).
    last: Option<(u64, String, String)>,
    /// The last key of the day's manifest objects listed so far: the next listing starts after
    /// it (a new batch always takes a number above every batch there, so nothing new sorts
    /// before it), and a day's listing costs what is new, not the whole day again.
    listed: Option<String>,
    /// The day was listed and read once: from then on it is listed again only when the number
    /// a new batch takes turns out taken (batch numbers are dense, so nothing new is there
    /// while the next one is free).
    refreshed: bool,
}

impl Writer {
    pub(crate) fn new(linger: Duration) -> Writer {
        Writer {
            linger,
            key: OnceLock::new(),
            sealing: OnceLock::new(),
            published: AtomicBool::new(false),
            pending: Mutex::default(),
            days: Mutex::default(),
        }
    }

    /// Signs every batch this writer writes from now on with `key`. Returns `false` (and changes
    /// nothing) if a key was set already.
    pub(crate) fn set_key(&self, key: SiteKey) -> bool {
        self.key.set(key).is_ok()
    }

    /// The signing key, if one is set.
    pub(crate) fn key(&self) -> Option<&SiteKey> {
        self.key.get()
    }

    /// Encrypts every recording this target ships from now on to `sealing`'s recipients.
    /// Returns `false` (and changes nothing) if recipients were set already.
    pub(crate) fn set_sealing(&self, sealing: std::sync::Arc<Sealing>) -> bool {
        self.sealing.set(sealing).is_ok()
    }

    /// The recipients this target encrypts to, if any.
    pub(crate) fn sealing(&self) -> Option<&std::sync::Arc<Sealing>> {
        self.sealing.get()
    }

    /// Adds `line` to its day's manifest at `target` (whose writer this is), unless a batch
    /// already holds it; returns once the batch holding it is stored and verified.
    pub(crate) async fn append(target: &Target, line: PendingLine) -> Result<(), ShipError> {
        let writer = target.manifest_writer();
        let (done, result) = oneshot::channel();
        let start = {
            let mut pending = writer.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.waiters.push(Waiter { line, done });
            pending.since.get_or_insert_with(Instant::now);
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            let target = target.clone();
            tokio::spawn(async move { while flush(&target).await {} });
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(failure.into_error(target.name())),
            Err(_) => Err(ShipError::Manifest {
                target: target.name().to_owned(),
                problem: "the manifest write was abandoned (shutting down)".into(),
            }),
        }
    }
}

/// Waits until the waiting batch is due, then writes it, one batch per day. Returns `false`
/// (and ends the flushing) when no line was waiting.
async fn flush(target: &Target) -> bool {
    let writer = target.manifest_writer();
    let since = {
        let mut pending = writer.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.since {
            Some(since) if !pending.waiters.is_empty() => since,
            _ => {
                pending.flushing = false;
                return false;
            }
        }
    };
    tokio::time::sleep_until(since + writer.linger).await;
    let waiters = {
        let mut pending = writer.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.since = None;
        std::mem::take(&mut pending.waiters)
    };
    let mut by_day: BTreeMap<String, Vec<Waiter>> = BTreeMap::new();
    for w in waiters {
        by_day.entry(w.line.day_prefix.clone()).or_default().push(w);
    }
    for (day_prefix, waiters) in by_day {
        let lines: Vec<&PendingLine> = waiters.iter().map(|w| &w.line).collect();
        let result = write_day(target, &day_prefix, &lines).await.map_err(|e| Failure::of(&e));
        for w in waiters {
            let _ = w.done.send(result.clone());
        }
    }
    true
}

/// Writes the lines of `lines` that no batch of the day holds yet as the day's next batch.
async fn write_day(target: &Target, day_prefix: &str, lines: &[&PendingLine]) -> Result<(), ShipError> {
    // The files the lines name first, also where no new batch is written (a line found in one).
    target.settle_day(day_prefix).await?;
    let writer = target.manifest_writer();
    let mut state = writer.days.lock().unwrap_or_else(|e| e.into_inner()).remove(day_prefix).unwrap_or_default();
    let result = write_day_with(target, day_prefix, lines, &mut state).await;
    let mut days = writer.days.lock().unwrap_or_else(|e| e.into_inner());
    days.insert(day_prefix.to_owned(), state);
    while days.len() > CACHED_DAYS {
        days.pop_first();
    }
    result
}

async fn write_day_with(
    target: &Target,
    day_prefix: &str,
    lines: &[&PendingLine],
    state: &mut DayState,
) -> Result<(), ShipError> {
    let writer = target.manifest_writer();
    let key = writer.key();
    let mut day_start: Option<Option<PrevRef>> = None;
    for attempt in 0..MAX_ATTEMPTS {
        // A writer that has read the day knows every batch there but those that took numbers
        // above its last one; the conditional create of the next number finds those (taken),
        // and only then is the day listed again: one listing per batch would cost the whole
        // day's batches each time (20,000 recordings: 2,779 batches, ~5 % of all CPU).
        if attempt > 0 || !state.refreshed {
            refresh(target, day_prefix, state).await?;
        }
        let mut body = String::new();
        let mut ids = HashSet::new();
        for line in lines {
            if !state.present.contains(&line.id) && ids.insert(line.id.as_str()) {
                body.push_str(&line.text);
                body.push('\n');
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let seq = state.last_seq + 1;
        let prev = match &state.last {
            Some((_, object, sha256)) => Some(PrevRef { object: object.clone(), sha256: sha256.clone() }),
            None => match &day_start {
                Some(found) => found.clone(),
                None => day_start.insert(latest_before(target, day_prefix).await?).clone(),
            },
        };
        let header = BatchHeader {
            version: MANIFEST_VERSION,
            site: target.site().to_owned(),
            day: day_prefix.strip_prefix(target.base()).unwrap_or(day_prefix).trim_end_matches('/').to_owned(),
            seq,
            prev,
            signing_key: key.map(|k| k.fingerprint().to_owned()),
        };
        let body = format!("{}\n{body}", header.to_line()).into_bytes();
        let batch = batch_key(day_prefix, seq);
        let sha256 = sha256_hex(&body);
        let signature = key.map(|k| k.sign(&body));
        match target.create(&batch, body).await? {
            Created::New | Created::Identical => {
                if let (Some(key), Some(signature)) = (key, signature) {
                    crate::faults::pass(crate::faults::CrashPoint::ManifestBeforeSignature);
                    publish_key(target, key).await?;
                    put_signature(target, &batch, signature).await?;
                }
                state.read.insert(batch.clone());
                state.present.extend(ids.into_iter().map(str::to_owned));
                state.last_seq = seq;
                state.last = Some((seq, batch, sha256));
                return Ok(());
            }
            // Another writer took this number: read its batch and chain to it under the next one.
            Created::Taken => {}
        }
    }
    Err(ShipError::Manifest {
        target: target.name().to_owned(),
        problem: format!(
            "other writers took {MAX_ATTEMPTS} batch numbers in a row in {day_prefix}{MANIFEST_DIR}; the recordings will be shipped again"
        ),
    })
}

/// Publishes the public half of `key` in the archive (once per writer). Another key under its
/// name is an error-level log line (`archive verify` reports it), not a reason to stop shipping.
pub(crate) async fn publish_key(target: &Target, key: &SiteKey) -> Result<(), ShipError> {
    let writer = target.manifest_writer();
    if writer.published.load(Ordering::Relaxed) {
        return Ok(());
    }
    let object = signing::key_object(target.base(), key.fingerprint());
    match target.create(&object, key.public_pem().as_bytes().to_vec()).await? {
        Created::New | Created::Identical => {}
        Created::Taken => tracing::error!(
            target = target.name(),
            object = %target.describe(&object),
            "the archive's public key object under this recorder's key fingerprint holds something else: \
             it was replaced; `callvault archive verify` reports the batches it cannot check"
        ),
    }
    writer.published.store(true, Ordering::Relaxed);
    Ok(())
}

/// Stores the signature of `batch`. The signature is deterministic: what another writer stored
/// is the same bytes; anything else under its name was put there by someone else, and is left
/// for `archive verify` to report (an error-level log line).
pub(crate) async fn put_signature(target: &Target, batch: &str, signature: Vec<u8>) -> Result<(), ShipError> {
    let object = signing::signature_object(batch);
    if target.create(&object, signature).await? == Created::Taken {
        tracing::error!(
            target = target.name(),
            object = %target.describe(&object),
            "a manifest batch's signature object holds something else than its signature"
        );
    }
    Ok(())
}

/// The newest batch of the latest day before `day_prefix`'s (within [`CHAIN_LOOKBACK_DAYS`]) that
/// has one: what a day's first batch links to.
async fn latest_before(target: &Target, day_prefix: &str) -> Result<Option<PrevRef>, ShipError> {
    let day = day_prefix.strip_prefix(target.base()).unwrap_or(day_prefix).trim_end_matches('/');
    let Ok(mut date) = chrono::NaiveDate::parse_from_str(day, "%Y/%m/%d") else { return Ok(None) };
    for _ in 0..CHAIN_LOOKBACK_DAYS {
        let Some(earlier) = date.pred_opt() else { return Ok(None) };
        date = earlier;
        let dir = format!("{}{MANIFEST_DIR}", target.day_prefix(&date.format("%Y/%m/%d").to_string()));
        let newest = target.list(&dir).await?.into_iter().filter_map(|(k, _)| batch_seq(&k).map(|n| (n, k))).max();
        if let Some((_, object)) = newest
            && let Some(body) = target.fetch(&object).await?
        {
            return Ok(Some(PrevRef { sha256: sha256_hex(&body), object }));
        }
    }
    Ok(None)
}

/// Reads the day's batches this writer has not read yet, and signs those of them that name this
/// writer's key and have no signature (left so by a crash). Lines it cannot parse are left to
/// `archive verify` to report; they hold no identity.
async fn refresh(target: &Target, day_prefix: &str, state: &mut DayState) -> Result<(), ShipError> {
    let dir = format!("{day_prefix}{MANIFEST_DIR}");
    let listing = target.list_after(&dir, state.listed.as_deref()).await?;
    let signatures: HashSet<&str> = listing.iter().map(|(k, _)| k.as_str()).filter(|k| k.ends_with(".sig")).collect();
    let key = target.manifest_writer().key();
    for (object, _) in &listing {
        let seq = batch_seq(object);
        if state.read.contains(object) || !object.ends_with(".jsonl") {
            if let Some(seq) = seq {
                state.last_seq = state.last_seq.max(seq);
            }
            continue;
        }
        // A batch's number counts as seen only once the batch is read. Listed but not found
        // (the store lists what it cannot serve yet: a server restarted with its data not all
        // back; or the batch went away meanwhile), or not read for an error: skipped with its
        // number counted, the next batch would be written past it with its lines a second
        // time. This refresh fails instead, the day is listed again from where the last whole
        // listing ended, and the recordings waiting for their lines are shipped again.
        let body = match target.fetch(object).await {
            Ok(Some(body)) => body,
            unread => {
                state.refreshed = false;
                return Err(unread.err().unwrap_or_else(|| ShipError::Manifest {
                    target: target.name().to_owned(),
                    problem: format!(
                        "the manifest batch {} is listed but cannot be read; the recordings will be shipped again",
                        target.describe(object)
                    ),
                }));
            }
        };
        if let Some(seq) = seq {
            state.last_seq = state.last_seq.max(seq);
        }
        let batch = split_batch(&body);
        for (_, text) in &batch.lines {
            if let Ok(line) = ManifestLine::parse(text) {
                state.present.insert(line.content_id());
            }
        }
        if let Some(seq) = seq
            && state.last.as_ref().is_none_or(|(last, _, _)| seq > *last)
        {
            state.last = Some((seq, object.clone(), sha256_hex(&body)));
        }
        let mine =
            matches!((&batch.header, key), (Some(Ok(h)), Some(k)) if h.signing_key.as_deref() == Some(k.fingerprint()));
        let sig = signing::signature_object(object);
        if let Some(key) = key.filter(|_| mine && !signatures.contains(sig.as_str())) {
            tracing::warn!(
                target = target.name(),
                batch = %target.describe(object),
                "signing a manifest batch of this recorder's key that has no signature: left so by a crash, or another \
                 process with the same key is about to sign it (the signature is the same bytes, stored once)"
            );
            publish_key(target, key).await?;
            put_signature(target, object, key.sign(&body)).await?;
        }
        state.read.insert(object.clone());
    }
    // Only once every object listed was taken in: a listing cut short by an error is listed
    // again from where the last whole one ended.
    if let Some((newest, _)) = listing.last() {
        state.listed = Some(newest.clone());
    }
    state.refreshed = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_sort_by_number_and_parse_back() {
        assert_eq!(batch_key("a/2025/01/01/", 42), "a/2025/01/01/manifest/seq-0000000042.jsonl");
        assert_eq!(batch_seq("a/2025/01/01/manifest/seq-0000000042.jsonl"), Some(42));
        assert_eq!(batch_seq("2025/01/01/manifest/20250101T000000.000Z-0123456789abcdef.jsonl"), None);
        assert_eq!(batch_seq("2025/01/01/manifest/seq-42.jsonl"), None);
        assert!(batch_key("", 9) < batch_key("", 10));
    }

    #[test]
    fn a_batch_header_round_trips_and_is_split_from_the_lines() {
        let header = BatchHeader {
            version: MANIFEST_VERSION,
            site: "site1".into(),
            day: "2025/01/02".into(),
            seq: 1,
            prev: Some(PrevRef {
                object: "p/site1/2025/01/01/manifest/seq-0000000003.jsonl".into(),
                sha256: "b".repeat(64),
            }),
            signing_key: Some("c".repeat(64)),
        };
        let body = format!("{}\n{{\"v\":2,\"key\":\"x\"}}\n\n", header.to_line());
        let split = split_batch(body.as_bytes());
        assert_eq!(split.header, Some(Ok(header.clone())));
        assert_eq!(split.lines, [(2, &br#"{"v":2,"key":"x"}"#[..])]);
        // Unsigned, a chain's start; a version 1 batch has no header.
        let plain = BatchHeader { prev: None, signing_key: None, ..header };
        assert_eq!(BatchHeader::parse(plain.to_line().as_bytes()), Ok(plain));
        assert!(split_batch(br#"{"v":1,"key":"x"}"#).header.is_none());
        let bad = split_batch(br#"{"v":2,"batch":{"site":"s","day":"d","seq":"one"}}"#);
        assert!(bad.header.unwrap().unwrap_err().contains("batch.seq"));
    }

    #[test]
    fn lines_parse_with_reasons() {
        let sha = "a".repeat(64);
        let good = format!(
            r#"{{"v":1,"key":"2025/01/01/x","objects":{{"wav":{{"key":"2025/01/01/x.wav","sha256":"{sha}","size":3}}}}}}"#
        );
        let line = ManifestLine::parse(good.as_bytes()).unwrap();
        assert_eq!(line.version, 1);
        assert_eq!(line.objects["wav"].size, 3);
        assert_eq!(line.content_id(), format!("2025/01/01/x wav:{sha}:3"));
        // Version 0: no "v".
        let old = good.replace(r#""v":1,"#, "");
        assert_eq!(ManifestLine::parse(old.as_bytes()).unwrap().version, 0);
        for (bad, reason) in [
            ("{not json".to_owned(), "not JSON"),
            ("[1]".to_owned(), "not a JSON object"),
            (good.replace(r#""v":1"#, r#""v":3"#), "newer"),
            (good.replace(r#""key":"2025/01/01/x","#, ""), "no \"key\""),
            (good.replace("2025/01/01/x.wav", "../../etc/passwd"), "plain components"),
            (good.replace(&sha, "XYZ"), "sha256"),
            (good.replace(r#""size":3"#, r#""size":"3""#), "size"),
        ] {
            let err = ManifestLine::parse(bad.as_bytes()).unwrap_err();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }
}
