//! Verification that trusts nothing: what an archive holds for a range of days, reconciled from
//! three sources — the archive's own listing, the manifests, and (when the recorder's data
//! directory is at hand) what the recorder itself knows it recorded.
//!
//! The same code checks an S3 bucket and a local directory, through [`Target::list`] and
//! [`Target::fetch`] only. Every object the manifests name is fetched and hashed (its size and
//! SHA-256 are what was read, not what the store or the manifest says); every object listed
//! under the days must be named by a manifest line; every call record's `audio.sha256` must be
//! the hash of the audio object beside it. A manifest that cannot be parsed is reported line by
//! line and the rest is still verified; a manifest object that was deleted leaves its recordings'
//! objects unnamed, so they are reported as unlisted (and, with the recorder's history, as
//! unaccounted), never silently dropped.
//!
//! The [`Report`] is a versioned public format (`--json` of `callvault archive verify`);
//! later versions may add problem kinds (e.g. a broken hash chain or signature) and fields, never
//! change the meaning of these.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{MANIFEST_DIR, ManifestLine};
use super::{ShipError, Target};

/// The version of the [`Report`] format.
pub const REPORT_VERSION: u64 = 1;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A manifest line names an object the archive does not hold.
    Missing,
    /// The archive holds an object under the days that no manifest line names.
    Unlisted,
    /// An object's content differs from what its manifest line records (size or SHA-256), or a
    /// call record's `audio.sha256` differs from its audio object's actual SHA-256.
    Altered,
    /// A recording has more than one manifest line.
    Duplicate,
    /// A manifest line cannot be read (not JSON, fields missing or wrong, a newer format).
    Malformed,
    /// A manifest object cannot be fetched at all.
    Unreadable,
    /// The recorder's own history (its spool or call index) holds a shipped recording that no
    /// manifest line names with the same content.
    Unaccounted,
}

impl Kind {
    /// The kind as the report spells it: `missing`, `unlisted`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Unlisted => "unlisted",
            Kind::Altered => "altered",
            Kind::Duplicate => "duplicate",
            Kind::Malformed => "malformed",
            Kind::Unreadable => "unreadable",
            Kind::Unaccounted => "unaccounted",
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: Kind,
    /// The recording's key (`YYYY/MM/DD/<name>`), when the problem belongs to one.
    pub key: Option<String>,
    /// The object concerned (its key in the archive), if any.
    pub object: Option<String>,
    /// The manifest object concerned, if any.
    pub manifest: Option<String>,
    /// The line in it (from 1), if any.
    pub line: Option<usize>,
    /// What was found, for people.
    pub detail: String,
}

/// A recording the recorder knows it shipped (from its spool or call index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The recording's key as the recorder entered it (without `~N`).
    pub key: String,
    /// SHA-256 of its files by extension, as far as known (the audio's from its call record).
    pub sha256: BTreeMap<String, String>,
    /// Where the recorder knows it from, e.g. `spool` or `index`.
    pub source: String,
}

/// How the recorder's history compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HistorySummary {
    /// Recordings of the days in the history.
    pub recordings: usize,
    /// Of them, those a manifest line names with the same content.
    pub matched: usize,
}

/// The result of verifying an archive over some days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u64,
    /// The archive: `s3://bucket/<prefix>/<site>/` or the directory.
    pub archive: String,
    /// The days verified, `YYYY-MM-DD`.
    pub days: Vec<String>,
    /// Distinct recordings named by valid manifest lines.
    pub recordings: usize,
    /// Manifest objects read.
    pub manifests: usize,
    /// Valid manifest lines.
    pub manifest_lines: usize,
    /// Objects listed under the days (manifests included).
    pub objects_listed: usize,
    /// Objects fetched whose size and SHA-256 match their manifest line.
    pub objects_verified: usize,
    /// The recorder's history, when it was consulted.
    pub history: Option<HistorySummary>,
    /// Problems by kind (every kind, zero or not).
    pub counts: BTreeMap<&'static str, usize>,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the days hold nothing at all (no object, no manifest, no recording the recorder
    /// knows of).
    pub fn is_empty(&self) -> bool {
        self.objects_listed == 0 && self.problems.is_empty() && self.history.as_ref().is_none_or(|h| h.recordings == 0)
    }
}

/// A manifest line with where it was found.
struct Found {
    line: ManifestLine,
    manifest: String,
    number: usize,
}

/// Verifies `days` (`YYYY/MM/DD`) of `target`; `known` is the recorder's history of those days
/// when available. Fails only when the archive cannot be listed; every other finding is a
/// [`Problem`] in the report.
pub async fn verify(target: &Target, days: &[String], known: Option<&[Known]>) -> Result<Report, ShipError> {
    let all = [
        Kind::Missing,
        Kind::Unlisted,
        Kind::Altered,
        Kind::Duplicate,
        Kind::Malformed,
        Kind::Unreadable,
        Kind::Unaccounted,
    ];
    let mut report = Report {
        version: REPORT_VERSION,
        archive: target.recording_location(""),
        days: days.iter().map(|d| d.replace('/', "-")).collect(),
        recordings: 0,
        manifests: 0,
        manifest_lines: 0,
        objects_listed: 0,
        objects_verified: 0,
        history: known.map(|_| HistorySummary::default()),
        counts: all.iter().map(|k| (k.as_str(), 0)).collect(),
        problems: Vec::new(),
    };
    let mut by_key: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for day in days {
        verify_day(target, day, &mut report, &mut by_key).await?;
    }
    if let Some(known) = known {
        reconcile_history(known, days, &by_key, &mut report);
    }
    for p in &report.problems {
        *report.counts.entry(p.kind.as_str()).or_default() += 1;
    }
    Ok(report)
}

async fn verify_day(
    target: &Target,
    day: &str,
    report: &mut Report,
    by_key: &mut BTreeMap<String, Vec<Found>>,
) -> Result<(), ShipError> {
    let prefix = target.day_prefix(day);
    let manifest_dir = format!("{prefix}{MANIFEST_DIR}");
    let listing = target.list(&prefix).await?;
    report.objects_listed += listing.len();
    let (manifests, data): (Vec<_>, Vec<_>) = listing.into_iter().partition(|(k, _)| k.starts_with(&manifest_dir));
    let mut day_lines: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for (manifest, _) in &manifests {
        if !manifest.ends_with(".jsonl") {
            report.problems.push(Problem {
                kind: Kind::Unlisted,
                key: None,
                object: Some(manifest.clone()),
                manifest: None,
                line: None,
                detail: "an object in the manifest directory that is not a manifest (.jsonl)".into(),
            });
            continue;
        }
        let body = match target.fetch(manifest).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                report.problems.push(unreadable(manifest, "listed, but gone when it was read".into()));
                continue;
            }
            Err(e) => {
                report.problems.push(unreadable(manifest, crate::chain(&e)));
                continue;
            }
        };
        report.manifests += 1;
        for (n, text) in body.split(|&b| b == b'\n').enumerate() {
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match ManifestLine::parse(text) {
                Ok(line) => {
                    report.manifest_lines += 1;
                    let found = Found { line, manifest: manifest.clone(), number: n + 1 };
                    day_lines.entry(found.line.key.clone()).or_default().push(found);
                }
                Err(reason) => report.problems.push(Problem {
                    kind: Kind::Malformed,
                    key: None,
                    object: None,
                    manifest: Some(manifest.clone()),
                    line: Some(n + 1),
                    detail: reason,
                }),
            }
        }
    }

    let listed: HashMap<&str, u64> = data.iter().map(|(k, size)| (k.as_str(), *size)).collect();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for (key, lines) in &day_lines {
        report.recordings += 1;
        if lines.len() > 1 {
            let ids: BTreeSet<String> = lines.iter().map(|f| f.line.content_id()).collect();
            let places: Vec<String> = lines.iter().map(|f| format!("{} line {}", f.manifest, f.number)).collect();
            let how = if ids.len() == 1 { "identical" } else { "DIFFERENT" };
            report.problems.push(Problem {
                kind: Kind::Duplicate,
                key: Some(key.clone()),
                object: None,
                manifest: Some(lines[1].manifest.clone()),
                line: Some(lines[1].number),
                detail: format!("{} lines with {how} content: {}", lines.len(), places.join(", ")),
            });
        }
        let mut checked = BTreeSet::new();
        for found in lines {
            if checked.insert(found.line.content_id()) {
                check_recording(target, found, &listed, &mut named, report).await;
            }
        }
    }
    for (object, size) in &data {
        if !named.contains(object) {
            let name = object.strip_prefix(target.base()).unwrap_or(object);
            let key = name.rsplit_once('.').map(|(k, _)| k.to_owned());
            report.problems.push(Problem {
                kind: Kind::Unlisted,
                key,
                object: Some(object.clone()),
                manifest: None,
                line: None,
                detail: format!("{size} bytes in the archive, named by no manifest line"),
            });
        }
    }
    for (key, lines) in day_lines {
        by_key.entry(key).or_default().extend(lines);
    }
    Ok(())
}

fn unreadable(manifest: &str, why: String) -> Problem {
    Problem {
        kind: Kind::Unreadable,
        key: None,
        object: None,
        manifest: Some(manifest.to_owned()),
        line: None,
        detail: format!("the manifest cannot be read: {why}"),
    }
}

/// Fetches and hashes every object of one manifest line, and checks the call record's
/// `audio.sha256` against the audio object.
async fn check_recording(
    target: &Target,
    found: &Found,
    listed: &HashMap<&str, u64>,
    named: &mut BTreeSet<String>,
    report: &mut Report,
) {
    let line = &found.line;
    let problem = |kind: Kind, object: &str, detail: String| Problem {
        kind,
        key: Some(line.key.clone()),
        object: Some(object.to_owned()),
        manifest: Some(found.manifest.clone()),
        line: Some(found.number),
        detail,
    };
    let mut actual: BTreeMap<&str, String> = BTreeMap::new();
    let mut intact = BTreeSet::new();
    let mut record = None;
    for (ext, o) in &line.objects {
        named.insert(o.key.clone());
        if !o.key.starts_with(target.base()) {
            report.problems.push(problem(
                Kind::Malformed,
                &o.key,
                format!("the line names an object outside this archive's {:?}", target.base()),
            ));
            continue;
        }
        // Objects of other days (a hostile line) are fetched too; the listing spares a request
        // for the ones that are plainly absent.
        let in_day = o.key.starts_with(&target.day_prefix(line.key.rsplit_once('/').map_or("", |(d, _)| d)));
        let body = if in_day && !listed.contains_key(o.key.as_str()) { Ok(None) } else { target.fetch(&o.key).await };
        let body = match body {
            Ok(Some(body)) => body,
            Ok(None) => {
                report.problems.push(problem(
                    Kind::Missing,
                    &o.key,
                    format!("named by the manifest ({} bytes, SHA-256 {}), not in the archive", o.size, o.sha256),
                ));
                continue;
            }
            Err(e) => {
                report.problems.push(problem(
                    Kind::Missing,
                    &o.key,
                    format!("cannot be fetched: {}", crate::chain(&e)),
                ));
                continue;
            }
        };
        let sha = hex::encode(Sha256::digest(&body));
        if sha == o.sha256 && body.len() as u64 == o.size {
            report.objects_verified += 1;
            intact.insert(ext.as_str());
        } else {
            report.problems.push(problem(
                Kind::Altered,
                &o.key,
                format!(
                    "holds {} bytes with SHA-256 {sha}; the manifest records {} bytes with SHA-256 {}",
                    body.len(),
                    o.size,
                    o.sha256
                ),
            ));
        }
        if ext == "json" {
            record = Some((o.key.clone(), body));
        }
        actual.insert(ext.as_str(), sha);
    }
    let Some((record_key, body)) = record else { return };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        report.problems.push(problem(Kind::Altered, &record_key, "the call record is not JSON".into()));
        return;
    };
    let audio = &value["audio"];
    let (Some(file), Some(claimed)) = (audio["file"].as_str(), audio["sha256"].as_str()) else { return };
    let Some((_, ext)) = file.rsplit_once('.') else { return };
    // An audio object that differs from its manifest line is reported already.
    match (line.objects.get(ext), actual.get(ext)) {
        (Some(o), Some(sha)) if sha != claimed && intact.contains(ext) => report.problems.push(problem(
            Kind::Altered,
            &record_key,
            format!("the call record gives audio.sha256 {claimed}; the audio object {} has SHA-256 {sha}", o.key),
        )),
        (None, _) => report.problems.push(problem(
            Kind::Missing,
            &line.key,
            format!("the call record names audio {file}, the manifest line lists no {ext} object"),
        )),
        _ => {}
    }
}

/// Every recording the recorder knows of for these days must have a manifest line (under its
/// key or a `~N` of it) with the same content.
fn reconcile_history(known: &[Known], days: &[String], by_key: &BTreeMap<String, Vec<Found>>, report: &mut Report) {
    let summary = report.history.get_or_insert_with(HistorySummary::default);
    for k in known {
        let day = k.key.rsplit_once('/').map_or("", |(d, _)| d);
        if !days.iter().any(|d| d == day) {
            continue;
        }
        summary.recordings += 1;
        let tilde = format!("{}~", k.key);
        let candidates: Vec<&Found> = by_key
            .iter()
            .filter(|(key, _)| *key == &k.key || key.starts_with(&tilde))
            .flat_map(|(_, lines)| lines)
            .collect();
        let same =
            |f: &&Found| k.sha256.iter().all(|(ext, sha)| f.line.objects.get(ext).is_some_and(|o| &o.sha256 == sha));
        if candidates.iter().any(same) {
            summary.matched += 1;
            continue;
        }
        let detail = if candidates.is_empty() {
            format!("the recorder's {} holds this recording; no manifest line names it", k.source)
        } else {
            let shas: Vec<String> = k.sha256.iter().map(|(ext, sha)| format!("{ext} {sha}")).collect();
            format!(
                "the recorder's {} holds this recording ({}); the manifest lines for its key name other content",
                k.source,
                shas.join(", ")
            )
        };
        report.problems.push(Problem {
            kind: Kind::Unaccounted,
            key: Some(k.key.clone()),
            object: None,
            manifest: None,
            line: None,
            detail,
        });
    }
}
