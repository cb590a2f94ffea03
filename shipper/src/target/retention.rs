//! Retention and legal hold: the archive's retention log, legal holds, and the pruning of a
//! directory archive by age.
//!
//! # The retention log
//!
//! Every hold set or cleared and every pruning is an entry of the site's retention log, one
//! object each, append-only, hash-chained and signed with the site key like the manifest batches:
//!
//! ```text
//! <base>retention/seq-<10 digits>.json       entry N (1, 2, 3, …), never rewritten
//! <base>retention/seq-<10 digits>.json.sig   its Ed25519 signature (64 raw bytes)
//! ```
//!
//! An entry is one JSON object and a newline: `v` (1), `seq` (its number), `prev` (entry N − 1:
//! `{"object", "sha256"}`, `null` for entry 1), `signing_key` (the fingerprint, `null` without a
//! key), `action` (`hold_set`, `hold_clear`, `pruned`), `at` (RFC 3339 UTC), `user` and `host`
//! (who did it, where), `reason` (the operator's text; `null` for pruning) and `recordings`
//! (`[{"key", "objects": [object keys]}]`). Entry N is created by conditional create after
//! reading entry N − 1, so two writers never write the same number: the loser reads the winner's
//! entry and chains its own to it under the next number.
//!
//! A recording is held from a `hold_set` that names it until a later `hold_clear` that names it.
//! On S3 a hold is also the store's legal hold (PutObjectLegalHold) on every object of the
//! recording: the store refuses to delete a held object version whatever the credentials. On a
//! directory archive the log is the hold: pruning replays it and never touches a held recording,
//! but nothing stops a user with write access to the directory from deleting files (`archive
//! verify` then reports them `missing`).
//!
//! # Pruning a directory archive
//!
//! With `retention_days` set, a recording whose day (the call's start date in UTC, from its key)
//! is more than `retention_days` days before today is expired. [`prune`] writes one `pruned`
//! entry listing the expired recordings it is about to delete (and that are not held), then
//! deletes their objects (audio, record, evidence). Manifest batches, their signatures and the
//! published keys are never deleted: the chain stays whole, and `archive verify` tells a pruned
//! recording (named by a verified `pruned` entry, objects gone) from a missing one. A crash
//! between the entry and the deletions leaves recordings that the log calls pruned still there:
//! they are verified as usual, and the next pruning deletes them (with a new entry). The log is
//! read before anything is deleted; when it cannot be read whole (an entry unreadable or not an
//! entry) nothing is pruned.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::manifest::{self, PrevRef, plain_path, sha256_hex};
use super::{Created, ShipError, Target};
use crate::filesystem::StdFs;
use crate::fsutil::sync_dir;

/// The directory of the retention log, under an archive's base.
pub const LOG_DIR: &str = "retention/";

/// The format version of the entries this build writes.
pub const LOG_VERSION: u64 = 1;

/// How often a writer tries the next number when other writers keep taking it.
const MAX_ATTEMPTS: usize = 64;

/// The key of entry `seq` of the retention log under `base`.
pub fn entry_key(base: &str, seq: u64) -> String {
    format!("{base}{LOG_DIR}seq-{seq:010}.json")
}

/// The number of a retention log entry from its key; `None` for other names.
pub fn entry_seq(object: &str) -> Option<u64> {
    let name = object.rsplit('/').next()?;
    let digits = name.strip_prefix("seq-")?.strip_suffix(".json")?;
    if digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse().ok() } else { None }
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Recordings put under legal hold.
    HoldSet,
    /// Recordings released from legal hold.
    HoldClear,
    /// Expired recordings deleted by retention.
    Pruned,
}

impl Action {
    /// The action as entries spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::HoldSet => "hold_set",
            Action::HoldClear => "hold_clear",
            Action::Pruned => "pruned",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        [Action::HoldSet, Action::HoldClear, Action::Pruned].into_iter().find(|a| a.as_str() == text)
    }
}

/// A recording named by an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// The recording's key (`YYYY/MM/DD/<name>`, as the manifest line names it).
    pub key: String,
    /// Its objects' keys in the archive.
    pub objects: Vec<String>,
}

/// Who did something, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The operator's user name (or the service's).
    pub user: String,
    /// The host it ran on.
    pub host: String,
}

impl Who {
    /// This process: its user (`$USER`, else `uid N`) and the host name.
    pub fn this_process() -> Who {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("uid {}", rustix::process::geteuid().as_raw()));
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Who { user, host }
    }
}

/// One entry of the retention log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its number.
    pub seq: u64,
    /// The previous entry; `None` for the first.
    pub prev: Option<PrevRef>,
    /// The fingerprint of the key that signed it; `None`: unsigned.
    pub signing_key: Option<String>,
    /// What it records.
    pub action: Action,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who, and where.
    pub user: String,
    /// The host.
    pub host: String,
    /// The operator's reason (holds).
    pub reason: Option<String>,
    /// The recordings.
    pub recordings: Vec<Named>,
}

impl LogEntry {
    /// The entry's bytes: one JSON object and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let prev = match &self.prev {
            Some(p) => serde_json::json!({"object": p.object, "sha256": p.sha256}),
            None => serde_json::Value::Null,
        };
        let mut text = serde_json::json!({
            "v": LOG_VERSION,
            "seq": self.seq,
            "prev": prev,
            "signing_key": self.signing_key,
            "action": self.action.as_str(),
            "at": self.at,
            "user": self.user,
            "host": self.host,
            "reason": self.reason,
            "recordings": self.recordings,
        })
        .to_string();
        text.push('\n');
        text.into_bytes()
    }

    /// Parses an entry; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<LogEntry, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let version = v["v"].as_u64().ok_or("no version \"v\"")?;
        if version > LOG_VERSION {
            return Err(format!("format version {version} is newer than this callvault reads ({LOG_VERSION})"));
        }
        let text =
            |name: &str| v[name].as_str().map(str::to_owned).ok_or_else(|| format!("\"{name}\" is not a string"));
        let seq = v["seq"].as_u64().ok_or("\"seq\" is not a number")?;
        let prev = match &v["prev"] {
            serde_json::Value::Null => None,
            p => {
                let object = p["object"].as_str().filter(|o| plain_path(o)).ok_or("prev.object is not a key")?;
                let sha256 = p["sha256"].as_str().filter(|s| crate::fsutil::is_sha256_hex(s));
                let sha256 = sha256.ok_or("prev.sha256 is not 64 lowercase hex digits")?;
                Some(PrevRef { object: object.to_owned(), sha256: sha256.to_owned() })
            }
        };
        let signing_key = match &v["signing_key"] {
            serde_json::Value::Null => None,
            k => Some(
                k.as_str()
                    .filter(|k| crate::fsutil::is_sha256_hex(k))
                    .ok_or("signing_key is not a fingerprint (64 lowercase hex digits)")?
                    .to_owned(),
            ),
        };
        let action =
            v["action"].as_str().and_then(Action::parse).ok_or("\"action\" is not hold_set, hold_clear or pruned")?;
        let reason = match &v["reason"] {
            serde_json::Value::Null => None,
            r => Some(r.as_str().ok_or("\"reason\" is not a string")?.to_owned()),
        };
        let mut recordings = Vec::new();
        for r in v["recordings"].as_array().ok_or("\"recordings\" is not a list")? {
            let key = r["key"].as_str().filter(|k| plain_path(k)).ok_or("a recording's key is not a key")?;
            let objects = r["objects"].as_array().ok_or("a recording's \"objects\" is not a list")?;
            let objects: Option<Vec<String>> =
                objects.iter().map(|o| o.as_str().filter(|o| plain_path(o)).map(str::to_owned)).collect();
            let objects = objects.ok_or("a recording's objects are not keys")?;
            recordings.push(Named { key: key.to_owned(), objects });
        }
        Ok(LogEntry {
            seq,
            prev,
            signing_key,
            action,
            at: text("at")?,
            user: text("user")?,
            host: text("host")?,
            reason,
            recordings,
        })
    }
}

/// An entry object of the log, as read.
#[derive(Debug, Clone)]
pub struct LogObject {
    /// Its key.
    pub object: String,
    /// Its bytes.
    pub body: Vec<u8>,
    /// The entry, or why it cannot be read.
    pub entry: Result<LogEntry, String>,
}

/// The retention log of an archive, as read.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// The entry objects in key (so number) order.
    pub entries: Vec<LogObject>,
    /// The signature objects (`….json.sig`).
    pub signatures: BTreeSet<String>,
    /// Other objects in the log's directory.
    pub others: Vec<String>,
}

impl Log {
    /// Reads the log of `target`.
    pub async fn read(target: &Target) -> Result<Log, ShipError> {
        let mut log = Log::default();
        for (object, _) in target.list(&format!("{}{LOG_DIR}", target.base())).await? {
            if object.ends_with(".json.sig") {
                log.signatures.insert(object);
            } else if entry_seq(&object).is_some() {
                let body = target.fetch(&object).await?.unwrap_or_default();
                let entry = LogEntry::parse(&body);
                log.entries.push(LogObject { object, body, entry });
            } else {
                log.others.push(object);
            }
        }
        Ok(log)
    }

    /// The recordings held at the end of the log (key → the `hold_set` entry that holds it), from
    /// the entries `use_entry` accepts; the log's entries in number order.
    pub fn held(&self, use_entry: impl Fn(&LogObject) -> bool) -> BTreeMap<String, LogEntry> {
        let mut held = BTreeMap::new();
        let mut entries: Vec<&LogEntry> =
            self.entries.iter().filter(|o| use_entry(o)).filter_map(|o| o.entry.as_ref().ok()).collect();
        entries.sort_by_key(|e| e.seq);
        for e in entries {
            for r in &e.recordings {
                match e.action {
                    Action::HoldSet => {
                        held.insert(r.key.clone(), e.clone());
                    }
                    Action::HoldClear => {
                        held.remove(&r.key);
                    }
                    Action::Pruned => {}
                }
            }
        }
        held
    }
}

/// Appends an entry recording `action` on `recordings` to the retention log of `target`, signed
/// with the target's signing key when it has one; returns the entry's object key.
pub async fn append(
    target: &Target,
    action: Action,
    recordings: Vec<Named>,
    reason: Option<String>,
    who: &Who,
) -> Result<String, ShipError> {
    let key = target.signing_key();
    let dir = format!("{}{LOG_DIR}", target.base());
    for _ in 0..MAX_ATTEMPTS {
        let last = target.list(&dir).await?.into_iter().filter_map(|(k, _)| entry_seq(&k).map(|n| (n, k))).max();
        let (seq, prev) = match last {
            None => (1, None),
            Some((n, object)) => {
                let body = target.fetch(&object).await?.unwrap_or_default();
                (n + 1, Some(PrevRef { sha256: sha256_hex(&body), object }))
            }
        };
        let entry = LogEntry {
            seq,
            prev,
            signing_key: key.map(|k| k.fingerprint().to_owned()),
            action,
            at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            user: who.user.clone(),
            host: who.host.clone(),
            reason: reason.clone(),
            recordings: recordings.clone(),
        };
        let body = entry.to_bytes();
        let object = entry_key(target.base(), seq);
        let signature = key.map(|k| k.sign(&body));
        match target.create(&object, body).await? {
            Created::New | Created::Identical => {
                if let (Some(key), Some(signature)) = (key, signature) {
                    manifest::publish_key(target, key).await?;
                    manifest::put_signature(target, &object, signature).await?;
                }
                return Ok(object);
            }
            Created::Taken => {}
        }
    }
    Err(ShipError::Manifest {
        target: target.name().to_owned(),
        problem: format!("other writers took {MAX_ATTEMPTS} numbers of the retention log {dir} in a row"),
    })
}

/// What a pruning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The recordings deleted (keys).
    pub recordings: Vec<String>,
    /// Their objects deleted.
    pub objects: usize,
    /// Expired recordings kept because they are held.
    pub held: Vec<String>,
    /// The retention log entry written, if any.
    pub entry: Option<String>,
}

/// Deletes from the directory archive `target` every recording whose day is more than
/// `retention_days` before `today` and that is not held, after recording it in the retention log
/// (see the [module documentation](self)). With `dry_run`, only says what it would delete.
pub async fn prune(
    target: &Target,
    retention_days: u32,
    today: NaiveDate,
    who: &Who,
    dry_run: bool,
) -> Result<Pruned, ShipError> {
    let Target::LocalDir(dir) = target else {
        return Err(ShipError::S3Config {
            target: target.name().to_owned(),
            problem: "an S3 archive is not pruned by the recorder: expire objects with a bucket lifecycle rule".into(),
        });
    };
    let log = Log::read(target).await?;
    if let Some(bad) = log.entries.iter().find(|o| o.entry.is_err()) {
        let why = bad.entry.as_ref().err().cloned().unwrap_or_default();
        return Err(ShipError::Manifest {
            target: target.name().to_owned(),
            problem: format!(
                "the retention log entry {} cannot be read ({why}); nothing is pruned until it is repaired (run `callvault archive verify`)",
                target.describe(&bad.object)
            ),
        });
    }
    let held = log.held(|_| true);
    let cutoff = today - chrono::Days::new(u64::from(retention_days));
    let mut out = Pruned::default();
    let mut doomed: Vec<Named> = Vec::new();
    for day in expired_days(dir.dir(), cutoff).map_err(|e| dir.archive_err("list", dir.dir(), e))? {
        let listed: BTreeSet<String> =
            target.list(&target.day_prefix(&day)).await?.into_iter().map(|(k, _)| k).collect();
        let mut seen = BTreeSet::new();
        for line in manifest::read_day(target, &day).await? {
            if !seen.insert(line.key.clone()) {
                continue;
            }
            let objects: Vec<String> =
                line.objects.values().map(|o| o.key.clone()).filter(|k| listed.contains(k)).collect();
            if objects.is_empty() {
                continue;
            }
            if held.contains_key(&line.key) {
                out.held.push(line.key);
                continue;
            }
            doomed.push(Named { key: line.key, objects });
        }
    }
    out.recordings = doomed.iter().map(|n| n.key.clone()).collect();
    out.objects = doomed.iter().map(|n| n.objects.len()).sum();
    if doomed.is_empty() || dry_run {
        return Ok(out);
    }
    out.entry = Some(append(target, Action::Pruned, doomed.clone(), None, who).await?);
    let root = dir.dir().to_owned();
    let name = dir.clone();
    let removed = tokio::task::spawn_blocking(move || -> Result<(), ShipError> {
        let mut dirs = BTreeSet::new();
        for n in &doomed {
            for o in &n.objects {
                let path = root.join(o);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(name.archive_err("delete", &path, e)),
                }
                if let Some(parent) = path.parent() {
                    dirs.insert(parent.to_owned());
                }
            }
        }
        for d in dirs {
            sync_dir(&StdFs, &d).map_err(|e| name.archive_err("sync directory", &d, e))?;
        }
        Ok(())
    })
    .await;
    match removed {
        Ok(result) => result?,
        Err(e) => return Err(ShipError::Internal(format!("pruning {} did not finish: {e}", dir.dir().display()))),
    }
    Ok(out)
}

/// The days (`YYYY/MM/DD`) of a directory archive before `cutoff` that hold anything besides
/// their manifests.
fn expired_days(root: &std::path::Path, cutoff: NaiveDate) -> io::Result<Vec<String>> {
    let numbered = |dir: &std::path::Path, len: usize| -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for item in items {
            let name = item?.file_name().to_string_lossy().into_owned();
            if name.len() == len && name.bytes().all(|b| b.is_ascii_digit()) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    };
    let mut days = Vec::new();
    for y in numbered(root, 4)? {
        for m in numbered(&root.join(&y), 2)? {
            for d in numbered(&root.join(&y).join(&m), 2)? {
                let day = format!("{y}/{m}/{d}");
                let Ok(date) = NaiveDate::parse_from_str(&day, "%Y/%m/%d") else { continue };
                if date >= cutoff {
                    continue;
                }
                let has_data = fs::read_dir(root.join(&day))?.flatten().any(|e| e.file_name() != "manifest");
                if has_data {
                    days.push(day);
                }
            }
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_name_their_number() {
        let entry = LogEntry {
            seq: 2,
            prev: Some(PrevRef { object: "p/retention/seq-0000000001.json".into(), sha256: "a".repeat(64) }),
            signing_key: Some("b".repeat(64)),
            action: Action::HoldSet,
            at: "2026-01-01T00:00:00.000000Z".into(),
            user: "alice".into(),
            host: "box".into(),
            reason: Some("case 42".into()),
            recordings: vec![Named { key: "2025/01/01/x".into(), objects: vec!["p/2025/01/01/x.wav".into()] }],
        };
        let body = entry.to_bytes();
        assert!(body.ends_with(b"\n"));
        assert_eq!(LogEntry::parse(&body), Ok(entry.clone()));
        assert_eq!(entry_key("p/", 2), "p/retention/seq-0000000002.json");
        assert_eq!(entry_seq(&entry_key("p/", 2)), Some(2));
        assert_eq!(entry_seq("p/retention/seq-2.json"), None);
        let bad = String::from_utf8(body).unwrap().replace("hold_set", "hold_maybe");
        assert!(LogEntry::parse(bad.as_bytes()).unwrap_err().contains("action"));
        let escape = entry.to_bytes();
        let escape = String::from_utf8(escape).unwrap().replace("p/2025/01/01/x.wav", "../etc/passwd");
        assert!(LogEntry::parse(escape.as_bytes()).is_err());
    }

    #[test]
    fn a_hold_lasts_until_a_later_clear() {
        let entry = |seq, action, key: &str| LogObject {
            object: entry_key("", seq),
            body: Vec::new(),
            entry: Ok(LogEntry {
                seq,
                prev: None,
                signing_key: None,
                action,
                at: String::new(),
                user: String::new(),
                host: String::new(),
                reason: None,
                recordings: vec![Named { key: key.into(), objects: Vec::new() }],
            }),
        };
        let log = Log {
            entries: vec![
                entry(3, Action::HoldClear, "a"),
                entry(1, Action::HoldSet, "a"),
                entry(2, Action::HoldSet, "b"),
                entry(4, Action::Pruned, "b"),
            ],
            ..Log::default()
        };
        assert_eq!(log.held(|_| true).keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(log.held(|o| o.object != entry_key("", 3)).keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
