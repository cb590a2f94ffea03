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
//! Tamper evidence: every batch's signature is checked against the public key its header names
//! (published under `keys/`, and checked to hash to its fingerprint), and against the caller's
//! trusted fingerprints when it gives any; every batch's link to the previous one is checked
//! (the day's numbers run without a gap, each batch names its predecessor and that predecessor's
//! SHA-256 is the one of its bytes). So a removed, rewritten or added batch, a removed or forged
//! signature and a replaced public key are each reported, on top of what the manifests say about
//! the recordings. What cannot be seen without an anchor kept elsewhere: the newest batches
//! removed (with their recordings) leave nothing behind, and a whole chain re-signed with another
//! key verifies unless the consumer names the fingerprint it trusts.
//!
//! The [`Report`] is a versioned public format (`--json` of `callvault archive verify`);
//! later versions may add problem kinds and fields, never change the meaning of these.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::manifest::{BatchHeader, MANIFEST_DIR, ManifestLine, batch_key, batch_seq, split_batch};
use super::retention::{self, Action, Log, LogObject};
use super::seal::{self, Unsealer};
use super::signing::{self, KEYS_DIR, PublicKey};
use super::{ShipError, Target};

/// How a sealed object's extension ends: `wav.age` seals `wav`.
const SEALED_SUFFIX: &str = ".age";

/// The version of the [`Report`] format (2 added the signature and chain kinds, 3 the
/// retention log: `retention_log_entries`, `held`, `pruned`, 4 sealed objects:
/// `sealed_objects`, `sealed_opened`).
pub const REPORT_VERSION: u64 = 4;

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
    /// A manifest batch has no signature: written without a key (or by a version without
    /// signatures), or its signature object is gone.
    Unsigned,
    /// A batch's signature does not verify with the key it names: the batch or its signature
    /// was rewritten.
    BadSignature,
    /// A batch names a signing key that is not published in the archive.
    UnknownKey,
    /// A published public key object does not hold the key its name (fingerprint) says: it was
    /// replaced or damaged.
    BadKey,
    /// A batch is signed with a published key that is not one of the fingerprints the caller
    /// trusts.
    UntrustedKey,
    /// A batch of the chain is not there: a number of the day is skipped, or a batch links to one
    /// the archive does not hold.
    ChainGap,
    /// A batch's link does not hold: it names another predecessor than the batch before it, the
    /// predecessor's SHA-256 differs from the one it records (rewritten), or its header names
    /// another site, day or number than where it is.
    ChainBroken,
}

/// Every kind, in report order.
const ALL: [Kind; 14] = [
    Kind::Missing,
    Kind::Unlisted,
    Kind::Altered,
    Kind::Duplicate,
    Kind::Malformed,
    Kind::Unreadable,
    Kind::Unaccounted,
    Kind::Unsigned,
    Kind::BadSignature,
    Kind::UnknownKey,
    Kind::BadKey,
    Kind::UntrustedKey,
    Kind::ChainGap,
    Kind::ChainBroken,
];

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
            Kind::Unsigned => "unsigned",
            Kind::BadSignature => "bad_signature",
            Kind::UnknownKey => "unknown_key",
            Kind::BadKey => "bad_key",
            Kind::UntrustedKey => "untrusted_key",
            Kind::ChainGap => "chain_gap",
            Kind::ChainBroken => "chain_broken",
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
    /// Of the objects named, those stored sealed (encrypted to the archive's recipients): checked
    /// as ciphertext, which needs no key.
    pub sealed_objects: usize,
    /// Sealed objects decrypted with the caller's identity whose plaintext matched the line's
    /// `plain_sha256` and `plain_size` (their call records checked against their audio too).
    pub sealed_opened: usize,
    /// The recorder's history, when it was consulted.
    pub history: Option<HistorySummary>,
    /// Batches whose signature verified.
    pub batches_signed: usize,
    /// Fingerprints of the keys that signed them.
    pub signing_keys: Vec<String>,
    /// The fingerprints the caller trusts (empty: every published key is taken as it is).
    pub trusted_keys: Vec<String>,
    /// Batches that start a chain (link to nothing): the site's first, or the first after a
    /// pause longer than the writer's look-back.
    pub chain_starts: Vec<String>,
    /// Entries of the retention log (holds and prunings; checked like the batches: signature
    /// and chain).
    pub retention_log_entries: usize,
    /// Recordings under legal hold, by the verified entries of the retention log.
    pub held: Vec<String>,
    /// Recordings of the days whose objects are gone because retention pruned them (a verified
    /// `pruned` entry names them): expired, not missing.
    pub pruned: Vec<String>,
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
/// when available, `trusted` the fingerprints of the signing keys the caller trusts (none: any
/// key published in the archive). Fails only when the archive cannot be listed; every other
/// finding is a [`Problem`] in the report.
pub async fn verify(
    target: &Target,
    days: &[String],
    known: Option<&[Known]>,
    trusted: &[String],
    unsealer: Option<&Unsealer>,
) -> Result<Report, ShipError> {
    let mut report = Report {
        version: REPORT_VERSION,
        archive: target.recording_location(""),
        days: days.iter().map(|d| d.replace('/', "-")).collect(),
        recordings: 0,
        manifests: 0,
        manifest_lines: 0,
        objects_listed: 0,
        objects_verified: 0,
        sealed_objects: 0,
        sealed_opened: 0,
        history: known.map(|_| HistorySummary::default()),
        batches_signed: 0,
        signing_keys: Vec::new(),
        trusted_keys: trusted.to_vec(),
        chain_starts: Vec::new(),
        retention_log_entries: 0,
        held: Vec::new(),
        pruned: Vec::new(),
        counts: ALL.iter().map(|k| (k.as_str(), 0)).collect(),
        problems: Vec::new(),
    };
    let mut keys = Keys::read(target, trusted, &mut report).await?;
    let expired = verify_retention_log(target, &mut keys, &mut report).await?;
    let mut by_key: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for day in days {
        verify_day(target, day, &mut keys, &expired, unsealer, &mut report, &mut by_key).await?;
    }
    report.pruned.sort();
    report.pruned.dedup();
    report.signing_keys = keys.used.into_iter().collect();
    if let Some(known) = known {
        reconcile_history(known, days, &by_key, &mut report);
    }
    for p in &report.problems {
        *report.counts.entry(p.kind.as_str()).or_default() += 1;
    }
    Ok(report)
}

/// The public keys published in the archive.
struct Keys {
    /// By fingerprint: the key, or `None` when its object does not hold it (reported once).
    published: BTreeMap<String, Option<PublicKey>>,
    trusted: BTreeSet<String>,
    /// Fingerprints of keys that signed a batch.
    used: BTreeSet<String>,
    /// Fingerprints already reported as unknown or untrusted.
    reported: BTreeSet<String>,
}

impl Keys {
    /// Lists and checks every object under `<base>keys/`: each must be `ed25519-<fingerprint>.pem`
    /// holding the key with that fingerprint.
    async fn read(target: &Target, trusted: &[String], report: &mut Report) -> Result<Keys, ShipError> {
        let mut published = BTreeMap::new();
        for (object, _) in target.list(&format!("{}{KEYS_DIR}", target.base())).await? {
            let problem = |kind: Kind, detail: String| Problem {
                kind,
                key: None,
                object: Some(object.clone()),
                manifest: None,
                line: None,
                detail,
            };
            let Some(fp) = signing::fingerprint_of_object(&object) else {
                report
                    .problems
                    .push(problem(Kind::Unlisted, "not a public key object (ed25519-<fingerprint>.pem)".into()));
                continue;
            };
            let key = match target.fetch(&object).await {
                Ok(Some(pem)) => PublicKey::parse(&pem, fp),
                Ok(None) => Err("listed, but gone when it was read".into()),
                Err(e) => Err(crate::chain(&e)),
            };
            match key {
                Ok(key) => {
                    published.insert(fp.to_owned(), Some(key));
                }
                Err(why) => {
                    report.problems.push(problem(Kind::BadKey, format!("the public key object {why}")));
                    published.insert(fp.to_owned(), None);
                }
            }
        }
        Ok(Keys {
            published,
            trusted: trusted.iter().cloned().collect(),
            used: BTreeSet::new(),
            reported: BTreeSet::new(),
        })
    }
}

/// A batch object of a day, read.
struct Batch {
    object: String,
    body: Vec<u8>,
    sha256: String,
    header: Option<BatchHeader>,
    /// The first line looked like a header but could not be read (reported as malformed).
    malformed: bool,
}

async fn verify_day(
    target: &Target,
    day: &str,
    keys: &mut Keys,
    expired: &BTreeSet<String>,
    unsealer: Option<&Unsealer>,
    report: &mut Report,
    by_key: &mut BTreeMap<String, Vec<Found>>,
) -> Result<(), ShipError> {
    let prefix = target.day_prefix(day);
    let manifest_dir = format!("{prefix}{MANIFEST_DIR}");
    let listing = target.list(&prefix).await?;
    report.objects_listed += listing.len();
    let (manifests, data): (Vec<_>, Vec<_>) = listing.into_iter().partition(|(k, _)| k.starts_with(&manifest_dir));
    let batch_objects: BTreeSet<&str> =
        manifests.iter().map(|(k, _)| k.as_str()).filter(|k| k.ends_with(".jsonl")).collect();
    let signatures: BTreeSet<&str> =
        manifests.iter().map(|(k, _)| k.as_str()).filter(|k| k.ends_with(".sig")).collect();
    let mut day_lines: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    let mut batches: Vec<Batch> = Vec::new();
    for (manifest, _) in &manifests {
        if signatures.contains(manifest.as_str()) {
            if !batch_objects.contains(manifest.trim_end_matches(".sig")) {
                report.problems.push(unlisted(manifest, "a signature of no manifest batch"));
            }
            continue;
        }
        if !manifest.ends_with(".jsonl") {
            report.problems.push(unlisted(
                manifest,
                "an object in the manifest directory that is not a manifest (.jsonl) or a signature (.sig)",
            ));
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
        let split = split_batch(&body);
        let malformed = matches!(split.header, Some(Err(_)));
        let header = match split.header {
            Some(Ok(h)) => Some(h),
            Some(Err(reason)) => {
                report.problems.push(Problem {
                    kind: Kind::Malformed,
                    key: None,
                    object: None,
                    manifest: Some(manifest.clone()),
                    line: Some(1),
                    detail: format!("the batch header: {reason}"),
                });
                None
            }
            None => None,
        };
        for (number, text) in split.lines {
            match ManifestLine::parse(text) {
                Ok(line) => {
                    report.manifest_lines += 1;
                    let found = Found { line, manifest: manifest.clone(), number };
                    day_lines.entry(found.line.key.clone()).or_default().push(found);
                }
                Err(reason) => report.problems.push(Problem {
                    kind: Kind::Malformed,
                    key: None,
                    object: None,
                    manifest: Some(manifest.clone()),
                    line: Some(number),
                    detail: reason,
                }),
            }
        }
        let sha256 = hex::encode(Sha256::digest(&body));
        batches.push(Batch { object: manifest.clone(), body, sha256, header, malformed });
    }
    check_signatures(target, &batches, &signatures, keys, report).await;
    check_chain(target, day, &prefix, &batches, report).await;

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
                check_recording(target, found, &listed, expired, unsealer, &mut named, report).await;
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

fn batch_problem(kind: Kind, object: &str, detail: String) -> Problem {
    Problem { kind, key: None, object: Some(object.to_owned()), manifest: Some(object.to_owned()), line: None, detail }
}

/// Checks each batch's signature with the published key its header names.
async fn check_signatures(
    target: &Target,
    batches: &[Batch],
    signatures: &BTreeSet<&str>,
    keys: &mut Keys,
    report: &mut Report,
) {
    for b in batches {
        let Some(header) = &b.header else {
            if !b.malformed {
                report.problems.push(batch_problem(
                    Kind::Unsigned,
                    &b.object,
                    "a batch without a header (manifest format version 0 or 1): neither signed nor chained".into(),
                ));
            }
            continue;
        };
        let has_sig = signatures.contains(signing::signature_object(&b.object).as_str());
        check_signed(target, &b.object, &b.body, header.signing_key.as_deref(), has_sig, keys, report).await;
    }
}

/// Checks the signature of `object` (whose bytes are `body`), made by the key `fp` it names;
/// `has_sig`: its signature object is listed. Reports what is wrong; returns whether it verified.
async fn check_signed(
    target: &Target,
    object: &str,
    body: &[u8],
    fp: Option<&str>,
    has_sig: bool,
    keys: &mut Keys,
    report: &mut Report,
) -> bool {
    let Some(fp) = fp else {
        report.problems.push(batch_problem(
            Kind::Unsigned,
            object,
            "written without a signing key (none was configured on the recorder)".into(),
        ));
        return false;
    };
    let sig_object = signing::signature_object(object);
    if !has_sig {
        report.problems.push(batch_problem(
            Kind::Unsigned,
            object,
            format!(
                "its header names key {fp}, but its signature {} is not in the archive",
                target.describe(&sig_object)
            ),
        ));
        return false;
    }
    let key = match keys.published.get(fp) {
        Some(Some(key)) => key,
        // The key object's problem is reported once, as bad_key.
        Some(None) => return false,
        None => {
            if keys.reported.insert(fp.to_owned()) {
                let key_object = signing::key_object(target.base(), fp);
                report.problems.push(batch_problem(
                    Kind::UnknownKey,
                    object,
                    format!(
                        "signed with key {fp}, whose public key {} is not in the archive",
                        target.describe(&key_object)
                    ),
                ));
            }
            return false;
        }
    };
    let signature = match target.fetch(&sig_object).await {
        Ok(Some(sig)) => sig,
        Ok(None) => Vec::new(),
        Err(e) => {
            report.problems.push(unreadable(&sig_object, crate::chain(&e)));
            return false;
        }
    };
    if !key.verifies(body, &signature) {
        report.problems.push(batch_problem(
            Kind::BadSignature,
            object,
            format!(
                "its signature {} does not verify with key {fp}: the object or its signature was rewritten",
                target.describe(&sig_object)
            ),
        ));
        return false;
    }
    report.batches_signed += 1;
    keys.used.insert(fp.to_owned());
    if !keys.trusted.is_empty() && !keys.trusted.contains(fp) {
        if keys.reported.insert(fp.to_owned()) {
            report.problems.push(batch_problem(
                Kind::UntrustedKey,
                object,
                format!("signed with key {fp}, which is published in the archive but is not a trusted fingerprint"),
            ));
        }
        return false;
    }
    true
}

/// Verifies the archive's retention log (holds set and cleared, prunings): every entry parses,
/// is signed by a trusted key and links to the entry before it. Returns the recordings that
/// verified `pruned` entries name (a recording whose objects are gone is then pruned, not
/// missing), and fills in the report's `retention_log_entries` and `held`.
async fn verify_retention_log(
    target: &Target,
    keys: &mut Keys,
    report: &mut Report,
) -> Result<BTreeSet<String>, ShipError> {
    let log = Log::read(target).await?;
    report.retention_log_entries = log.entries.len();
    let signatures: BTreeSet<&str> = log.signatures.iter().map(String::as_str).collect();
    for other in &log.others {
        report
            .problems
            .push(unlisted(other, "an object in the retention log that is not an entry (seq-N.json) or a signature"));
    }
    for sig in &log.signatures {
        if !log.entries.iter().any(|o| signing::signature_object(&o.object) == *sig) {
            report.problems.push(unlisted(sig, "a signature of no retention log entry"));
        }
    }
    let mut verified = BTreeSet::new();
    let by_seq: BTreeMap<u64, &LogObject> =
        log.entries.iter().filter_map(|o| retention::entry_seq(&o.object).map(|n| (n, o))).collect();
    let last = by_seq.keys().next_back().copied().unwrap_or(0);
    for n in 1..last {
        if !by_seq.contains_key(&n) {
            report.problems.push(batch_problem(
                Kind::ChainGap,
                &retention::entry_key(target.base(), n),
                format!("entry {n} of the retention log is not in the archive; the log runs to {last}"),
            ));
        }
    }
    for (&n, o) in &by_seq {
        let entry = match &o.entry {
            Ok(entry) => entry,
            Err(why) => {
                report.problems.push(Problem {
                    kind: Kind::Malformed,
                    key: None,
                    object: Some(o.object.clone()),
                    manifest: Some(o.object.clone()),
                    line: Some(1),
                    detail: format!("the retention log entry: {why}"),
                });
                continue;
            }
        };
        let has_sig = signatures.contains(signing::signature_object(&o.object).as_str());
        let signed =
            check_signed(target, &o.object, &o.body, entry.signing_key.as_deref(), has_sig, keys, report).await;
        let mut linked = entry.seq == n;
        if !linked {
            report.problems.push(batch_problem(
                Kind::ChainBroken,
                &o.object,
                format!("it says it is entry {} of the retention log; it is stored as entry {n}", entry.seq),
            ));
        }
        let expected = (n > 1).then(|| retention::entry_key(target.base(), n - 1));
        match (&entry.prev, &expected) {
            (None, None) => {}
            (Some(p), Some(e)) if p.object == *e => {
                if let Some(prev) = by_seq.get(&(n - 1))
                    && hex::encode(Sha256::digest(&prev.body)) != p.sha256
                {
                    linked = false;
                    report.problems.push(batch_problem(
                        Kind::ChainBroken,
                        &prev.object,
                        format!(
                            "entry {n} of the retention log recorded SHA-256 {} for it; it has another: it was rewritten",
                            p.sha256
                        ),
                    ));
                }
            }
            _ => {
                linked = false;
                report.problems.push(batch_problem(
                    Kind::ChainBroken,
                    &o.object,
                    format!(
                        "it links to {}; its predecessor is {}",
                        entry.prev.as_ref().map_or("nothing".to_owned(), |p| target.describe(&p.object)),
                        expected.as_deref().map_or("nothing".to_owned(), |e| target.describe(e))
                    ),
                ));
            }
        }
        if signed && linked {
            verified.insert(o.object.clone());
        }
    }
    report.held = log.held(|o| verified.contains(&o.object)).into_keys().collect();
    Ok(log
        .entries
        .iter()
        .filter(|o| verified.contains(&o.object))
        .filter_map(|o| o.entry.as_ref().ok())
        .filter(|e| e.action == Action::Pruned)
        .flat_map(|e| e.recordings.iter().map(|r| r.key.clone()))
        .collect())
}

/// Checks the links of a day's batches: numbers without a gap, each batch naming its
/// predecessor and that predecessor's SHA-256; a day's first batch linking to an earlier day.
async fn check_chain(target: &Target, day: &str, prefix: &str, batches: &[Batch], report: &mut Report) {
    let by_seq: BTreeMap<u64, &Batch> = batches.iter().filter_map(|b| batch_seq(&b.object).map(|n| (n, b))).collect();
    let Some(&last) = by_seq.keys().next_back() else { return };
    for n in 1..last {
        if !by_seq.contains_key(&n) {
            report.problems.push(batch_problem(
                Kind::ChainGap,
                &batch_key(prefix, n),
                format!("batch {n} of the day is not in the archive; the day's batches run to {last}"),
            ));
        }
    }
    let site = target.site();
    for (&n, b) in &by_seq {
        let Some(h) = &b.header else { continue };
        if h.site != site || h.day != day || h.seq != n {
            report.problems.push(batch_problem(
                Kind::ChainBroken,
                &b.object,
                format!(
                    "its header says batch {} of {} for site {:?}; it is stored as batch {n} of {day} for site {site:?}",
                    h.seq, h.day, h.site
                ),
            ));
        }
        if n > 1 {
            let expected = batch_key(prefix, n - 1);
            match &h.prev {
                None => report.problems.push(batch_problem(
                    Kind::ChainBroken,
                    &b.object,
                    format!("it links to no batch; its predecessor is {}", target.describe(&expected)),
                )),
                Some(p) if p.object != expected => report.problems.push(batch_problem(
                    Kind::ChainBroken,
                    &b.object,
                    format!(
                        "it links to {}, not to its predecessor {}",
                        target.describe(&p.object),
                        target.describe(&expected)
                    ),
                )),
                Some(p) => {
                    if let Some(prev) = by_seq.get(&(n - 1))
                        && prev.sha256 != p.sha256
                    {
                        report.problems.push(batch_problem(
                            Kind::ChainBroken,
                            &prev.object,
                            format!(
                                "it has SHA-256 {}; batch {n} ({}) recorded {} when it was written: it was rewritten",
                                prev.sha256,
                                target.describe(&b.object),
                                p.sha256
                            ),
                        ));
                    }
                }
            }
            continue;
        }
        let Some(p) = &h.prev else {
            report.chain_starts.push(b.object.clone());
            continue;
        };
        let earlier = p
            .object
            .strip_prefix(target.base())
            .filter(|rest| {
                batch_seq(rest).is_some() && rest.len() > 10 && rest[..10] < *day && rest[10..].starts_with('/')
            })
            .is_some();
        if !earlier {
            report.problems.push(batch_problem(
                Kind::ChainBroken,
                &b.object,
                format!("a day's first batch links to {}, which is not a batch of an earlier day", p.object),
            ));
            continue;
        }
        match target.fetch(&p.object).await {
            Ok(Some(body)) => {
                let sha = hex::encode(Sha256::digest(&body));
                if sha != p.sha256 {
                    report.problems.push(batch_problem(
                        Kind::ChainBroken,
                        &p.object,
                        format!(
                            "it has SHA-256 {sha}; the next day's first batch ({}) recorded {}: it was rewritten",
                            target.describe(&b.object),
                            p.sha256
                        ),
                    ));
                }
            }
            Ok(None) => report.problems.push(batch_problem(
                Kind::ChainGap,
                &p.object,
                format!("the day's first batch {} links to it; it is not in the archive", target.describe(&b.object)),
            )),
            Err(e) => report.problems.push(unreadable(&p.object, crate::chain(&e))),
        }
    }
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

/// An object as [`check_recording`] read it.
enum Read {
    /// Its content.
    Whole(Vec<u8>),
    /// Its SHA-256 (hex) and size, hashed as it was read.
    Hashed { sha: String, size: u64 },
}

/// Fetches and hashes every object of one manifest line, and checks the call record's
/// `audio.sha256` against the audio object. A sealed object is checked as stored (ciphertext);
/// with `unsealer` it is decrypted too and its plaintext checked, and the record read from it.
async fn check_recording(
    target: &Target,
    found: &Found,
    listed: &HashMap<&str, u64>,
    expired: &BTreeSet<String>,
    unsealer: Option<&Unsealer>,
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
        // Audio is hashed as it is read (a recording of a day-long call is gigabytes); the
        // call record, and a sealed object to open, are read whole.
        let whole = ext == "json" || o.plain.is_some();
        let read = if in_day && !listed.contains_key(o.key.as_str()) {
            Ok(None)
        } else if whole {
            target.fetch(&o.key).await.map(|b| b.map(Read::Whole))
        } else {
            target.hash(&o.key).await.map(|h| h.map(|(sha, size)| Read::Hashed { sha, size }))
        };
        let read = match read {
            Ok(Some(read)) => read,
            Ok(None) if expired.contains(&line.key) => {
                report.pruned.push(line.key.clone());
                continue;
            }
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
        let (body, sha, size) = match read {
            Read::Whole(body) => {
                let sha = hex::encode(Sha256::digest(&body));
                let size = body.len() as u64;
                (body, sha, size)
            }
            Read::Hashed { sha, size } => (Vec::new(), sha, size),
        };
        let stored_intact = sha == o.sha256 && size == o.size;
        if stored_intact {
            report.objects_verified += 1;
        } else {
            report.problems.push(problem(
                Kind::Altered,
                &o.key,
                format!(
                    "holds {size} bytes with SHA-256 {sha}; the manifest records {} bytes with SHA-256 {}",
                    o.size, o.sha256
                ),
            ));
        }
        // What the object holds: as stored, or a sealed object's plaintext (with an identity).
        let (ext, content, content_sha) = match &o.plain {
            None => {
                if stored_intact {
                    intact.insert(ext.as_str());
                }
                (ext.as_str(), body, sha)
            }
            Some((plain_sha, plain_size)) => {
                report.sealed_objects += 1;
                let (Some(unsealer), Some(ext)) = (unsealer, ext.strip_suffix(SEALED_SUFFIX)) else { continue };
                let plain = match unsealer.open(&body) {
                    Ok(plain) => plain,
                    Err(why) => {
                        report.problems.push(problem(Kind::Altered, &o.key, format!("the sealed object: {why}")));
                        continue;
                    }
                };
                let actual_sha = hex::encode(Sha256::digest(&plain));
                if &actual_sha == plain_sha && plain.len() as u64 == *plain_size {
                    report.sealed_opened += 1;
                    if stored_intact {
                        intact.insert(ext);
                    }
                } else {
                    report.problems.push(problem(
                        Kind::Altered,
                        &o.key,
                        format!(
                            "decrypts to {} bytes with SHA-256 {actual_sha}; the manifest records plaintext of {plain_size} bytes with SHA-256 {plain_sha}",
                            plain.len()
                        ),
                    ));
                }
                (ext, plain, actual_sha)
            }
        };
        if ext == "json" {
            record = Some((o.key.clone(), content));
        }
        actual.insert(ext, content_sha);
    }
    let Some((record_key, body)) = record else { return };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        report.problems.push(problem(Kind::Altered, &record_key, "the call record is not JSON".into()));
        return;
    };
    let audio = &value["audio"];
    for (file, claimed) in record_audio_files(&value) {
        // The object's name in the line is what follows the recording's name: the longest
        // extension of the line's that ends the file name (`wav`, or `caller.wav` when split).
        let plain = |k: &str| k.strip_suffix(&format!(".{}", seal::SEALED_EXT)).unwrap_or(k).to_owned();
        let ext = line
            .objects
            .keys()
            .map(|k| plain(k))
            .filter(|e| e != "json" && file.ends_with(&format!(".{e}")))
            .max_by_key(String::len)
            .unwrap_or_else(|| file.rsplit_once('.').map_or(String::new(), |(_, e)| e.to_owned()));
        // An audio object that differs from its manifest line is reported already.
        match (line.object(&ext), actual.get(ext.as_str())) {
            (Some(o), Some(sha)) if sha != claimed && intact.contains(ext.as_str()) => report.problems.push(problem(
                Kind::Altered,
                &record_key,
                format!(
                    "the call record gives {} {claimed} ({file}); the audio object {} has SHA-256 {sha}",
                    if audio["file"].as_str() == Some(file) { "audio.sha256" } else { "audio.files[].sha256" },
                    o.key
                ),
            )),
            (None, _) => report.problems.push(problem(
                Kind::Missing,
                &line.key,
                format!("the call record names audio {file}, the manifest line lists no {ext} object"),
            )),
            _ => {}
        }
    }
}

/// Every audio file a call record names, with the SHA-256 it gives: `audio.files[]` (one, or one
/// per party for the split layout), and `audio.file` with `audio.sha256` where they say
/// otherwise (older records have only those; an altered record may disagree with itself).
pub fn record_audio_files(record: &serde_json::Value) -> Vec<(&str, &str)> {
    let audio = &record["audio"];
    let mut named: Vec<(&str, &str)> = audio["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["file"].as_str()?, f["sha256"].as_str()?)))
        .collect();
    if let (Some(file), Some(sha)) = (audio["file"].as_str(), audio["sha256"].as_str())
        && !named.contains(&(file, sha))
    {
        named.push((file, sha));
    }
    named
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
        // A sealed archive stores it under the key without the parties.
        let sealed = seal::sealed_key(&k.key);
        let (tilde, sealed_tilde) = (format!("{}~", k.key), format!("{sealed}~"));
        let candidates: Vec<&Found> = by_key
            .iter()
            .filter(|(key, _)| {
                *key == &k.key || key.starts_with(&tilde) || *key == &sealed || key.starts_with(&sealed_tilde)
            })
            .flat_map(|(_, lines)| lines)
            .collect();
        let same = |f: &&Found| k.sha256.iter().all(|(ext, sha)| f.line.plain_sha256(ext) == Some(sha.as_str()));
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

/// An object in a manifest directory that is not part of any batch.
fn unlisted(object: &str, detail: &str) -> Problem {
    Problem {
        kind: Kind::Unlisted,
        key: None,
        object: Some(object.to_owned()),
        manifest: None,
        line: None,
        detail: detail.into(),
    }
}
