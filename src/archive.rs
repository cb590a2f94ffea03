//! `callvault archive ls|get|verify`: read an archive — an S3 bucket or a local directory, the
//! same way — through its daily manifests, with no database: list a day's recordings, fetch one
//! (verified before it gets its name), verify days against the listing, the manifests and the
//! recorder's own history (`shipper::target::verify`). Reads only: nothing is created in the
//! archive.

use crate::out::outln;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use shipper::target::manifest::{MANIFEST_DIR, ManifestLine, split_batch};
use shipper::target::seal::{SEALED_EXT, Unsealer, Unsealing};
use shipper::target::verify::{self, Known, Report};
use shipper::{LocalDir, Spool, Target};

use crate::cli::Source;
use crate::config::{Config, archive_names};
use crate::targets::{TargetArgs, build_target};

/// Exit status of `verify` when a problem was found, and of `get` when a file failed its check.
const PROBLEMS: u8 = 3;

/// `callvault archive`.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ArchiveCommand,
}

/// `callvault archive` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ArchiveCommand {
    /// List a day's recordings from its manifest.
    Ls {
        /// The day, YYYY-MM-DD (UTC, the calls' start date).
        day: String,
        /// Print the manifest lines as JSON Lines.
        #[arg(long)]
        json: bool,
        /// The archive's name in the configuration (default: the first archive).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archive (a directory or an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Fetch a recording's files; each gets its name only after its SHA-256 matched.
    Get {
        /// The recording's key, YYYY/MM/DD/<name> (as `ls` shows it).
        key: String,
        /// Directory to write the files to.
        #[arg(long, short = 'd', default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// An age identity file (AGE-SECRET-KEY-1… lines, from `age-keygen`) that opens a sealed
        /// (encrypted) recording: its files are decrypted, checked against the plaintext SHA-256
        /// of the manifest and written without `.age`. Without it they are written as stored.
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The archive's name in the configuration (default: the first archive).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archive (a directory or an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Verify days of an archive: every object listed, every manifest line, every SHA-256, and
    /// the recorder's own history. Exit status 0 when all is well, 3 on any problem.
    Verify {
        /// The first day, YYYY-MM-DD.
        day: String,
        /// The last day (default: the first), YYYY-MM-DD.
        #[arg(long, value_name = "DAY")]
        to: Option<String>,
        /// Print the report as JSON (format version 4) instead of text.
        #[arg(long)]
        json: bool,
        /// An age identity file that opens sealed (encrypted) recordings: their plaintext is
        /// checked too, and their call records against their audio. Without it sealed objects are
        /// checked as stored (ciphertext), which needs no key.
        #[arg(long, short = 'i', value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The recorder's data directory whose spool and call index are compared with the
        /// archive (default: the configuration's data directory, when it exists).
        #[arg(long, short = 'o', value_name = "DIR")]
        output: Option<PathBuf>,
        /// Do not compare with the recorder's history (e.g. verifying another recorder's archive).
        #[arg(long)]
        no_history: bool,
        /// The fingerprint of a signing key to trust (kept offline; repeat for rotated keys).
        /// Batches signed with any other key are reported as untrusted_key. Default: the
        /// fingerprint of the configured signing key when it can be read, else every key
        /// published in the archive is taken as it is.
        #[arg(long, value_name = "SHA256HEX")]
        key_fingerprint: Vec<String>,
        /// The archive's name in the configuration (default: the first archive).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archive (a directory or an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Legal holds on recordings: set, clear, list (each set and clear is written to the
    /// archive's signed retention log).
    Hold {
        /// What to do.
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Delete the recordings of a directory archive older than its retention_days that are not
    /// held (the service does it every hour), after writing them to the retention log.
    Prune {
        /// Retention in days (default: the archive's retention_days).
        #[arg(long, value_name = "N")]
        days: Option<u32>,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// The archive's name in the configuration (default: the first archive).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archive (a directory or an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
}

/// The recordings a hold is set on or cleared from, and why.
#[derive(Debug, Clone, Args)]
pub struct HoldArgs {
    /// The recordings' keys, YYYY/MM/DD/<name> (as `ls` shows them).
    #[arg(required = true)]
    keys: Vec<String>,
    /// Why (a case number, a request): written to the retention log.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// The archive's name in the configuration (default: the first archive).
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
    /// The archive (a directory or an s3:// URL) and how to reach it.
    #[command(flatten)]
    targets: TargetArgs,
}

/// `callvault archive hold` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum HoldCommand {
    /// Put recordings under legal hold (S3: PutObjectLegalHold on each of their objects).
    Set(HoldArgs),
    /// Release recordings from legal hold.
    Clear(HoldArgs),
    /// List the retention log's holds (who, when, why) and the recordings held now.
    Ls {
        /// Print the log's entries as JSON Lines.
        #[arg(long)]
        json: bool,
        /// The archive's name in the configuration (default: the first archive).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The archive (a directory or an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
}

/// Runs an archive command on the first archive of the configuration (or `--archive`, or the one
/// named by `--target`).
pub fn archive(source: &Source, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let (targets, name) = match &args.command {
        ArchiveCommand::Ls { targets, target, .. }
        | ArchiveCommand::Get { targets, target, .. }
        | ArchiveCommand::Verify { targets, target, .. }
        | ArchiveCommand::Prune { targets, target, .. }
        | ArchiveCommand::Hold {
            command:
                HoldCommand::Set(HoldArgs { targets, target, .. })
                | HoldCommand::Clear(HoldArgs { targets, target, .. })
                | HoldCommand::Ls { targets, target, .. },
        } => (targets, target),
    };
    let config = source.load(|c| targets.apply(c))?;
    crate::logging::init(&config.log.level, config.log.format);
    let target = open_target(&config, name.as_deref())?;
    if matches!(
        args.command,
        ArchiveCommand::Prune { .. } | ArchiveCommand::Hold { command: HoldCommand::Set(_) | HoldCommand::Clear(_) }
    ) {
        // These write to the archive: their retention log entries are signed with the site key.
        match crate::targets::signing_key(&config)? {
            Some(key) => {
                target.set_signing_key(key);
            }
            None => tracing::warn!(
                "no signing key: the retention log entry is written unsigned and `archive verify` reports it"
            ),
        }
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the I/O runtime")?;
    runtime.block_on(async {
        match args.command {
            ArchiveCommand::Ls { day, json, .. } => ls(&target, &day, json).await,
            ArchiveCommand::Get { key, dir, identity, .. } => {
                get(&target, &key, &dir, unsealer(identity.as_deref())?.as_ref()).await
            }
            ArchiveCommand::Verify { day, to, json, identity, output, no_history, key_fingerprint, .. } => {
                let days = days(&day, to.as_deref())?;
                let data_dir = output.unwrap_or_else(|| config.storage.data_dir.clone());
                let known = if no_history { None } else { history(&data_dir, &days)? };
                let trusted = trusted_keys(&config, key_fingerprint)?;
                let unsealer = unsealer(identity.as_deref())?;
                verify(&target, &days, known.as_deref(), &trusted, unsealer.as_ref(), json).await
            }
            ArchiveCommand::Prune { days, dry_run, .. } => {
                let days = match days.or(configured_retention(&config, &target)) {
                    Some(days) => days,
                    None => bail!(
                        "archive {:?} has no retention_days; give --days N (recordings older than N days are deleted)",
                        target.name()
                    ),
                };
                crate::retention::prune(&target, days, dry_run).await
            }
            ArchiveCommand::Hold { command } => match command {
                HoldCommand::Set(a) => crate::retention::hold(&target, &a.keys, true, &a.reason).await,
                HoldCommand::Clear(a) => crate::retention::hold(&target, &a.keys, false, &a.reason).await,
                HoldCommand::Ls { json, .. } => crate::retention::hold_ls(&target, json).await,
            },
        }
    })
}

/// The identities of `--identity`, if given.
fn unsealer(identity: Option<&Path>) -> anyhow::Result<Option<Unsealer>> {
    identity.map(|path| Unsealer::from_file(path).map_err(|e| anyhow::anyhow!(e))).transpose()
}

/// The retention_days of the configured archive `target` is (by name).
fn configured_retention(config: &Config, target: &Target) -> Option<u32> {
    let archives = config.archives();
    let names = archive_names(&archives);
    archives.iter().zip(&names).find(|(_, n)| n.as_str() == target.name()).and_then(|(a, _)| a.retention_days)
}

/// The fingerprints `verify` trusts: those given, else the configured signing key's (when it can
/// be read; verifying needs no private key, so one that cannot be read is passed over).
fn trusted_keys(config: &Config, given: Vec<String>) -> anyhow::Result<Vec<String>> {
    for fp in &given {
        if fp.len() != 64 || !fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!(
                "--key-fingerprint {fp:?}: a fingerprint is 64 lowercase hex digits (the SHA-256 of the key's DER SubjectPublicKeyInfo)"
            );
        }
    }
    if !given.is_empty() {
        return Ok(given);
    }
    match crate::targets::signing_key(config) {
        Ok(Some(key)) => Ok(vec![key.fingerprint().to_owned()]),
        Ok(None) => Ok(Vec::new()),
        Err(e) => {
            tracing::debug!("the signing key cannot be read, so it is not trusted by default: {e:#}");
            Ok(Vec::new())
        }
    }
}

/// The archive to read, opened without creating or writing anything.
fn open_target(config: &Config, name: Option<&str>) -> anyhow::Result<Target> {
    let archives = config.archives();
    let names = archive_names(&archives);
    let (archive, name) =
        match name {
            None => (&archives[0], &names[0]),
            Some(want) => archives.iter().zip(&names).find(|(_, n)| n.as_str() == want).with_context(|| {
                format!("no archive is named {want:?}; the configuration names {}", names.join(", "))
            })?,
        };
    if archive.is_s3() {
        return build_target(archive, name);
    }
    let dir = archive.path.clone().unwrap_or_default();
    Ok(Target::LocalDir(LocalDir::open_existing(name, &dir)?))
}

/// `YYYY-MM-DD` (or `YYYY/MM/DD`), checked to be a date of the calendar.
fn parse_day(day: &str) -> anyhow::Result<NaiveDate> {
    let text = day.replace('/', "-");
    let shaped = text.len() == 10 && text.bytes().enumerate().all(|(i, b)| matches!(i, 4 | 7) == (b == b'-'));
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(date) if shaped && text.bytes().filter(|b| *b != b'-').all(|b| b.is_ascii_digit()) => Ok(date),
        _ if shaped => bail!("day {day:?} is not a date of the calendar (there is no such day); write YYYY-MM-DD"),
        _ => bail!("day {day:?}: write it as YYYY-MM-DD"),
    }
}

/// The key path `YYYY/MM/DD` of a day.
pub(crate) fn day_path(day: &str) -> anyhow::Result<String> {
    Ok(parse_day(day)?.format("%Y/%m/%d").to_string())
}

/// The days from `from` to `to` (inclusive) as key paths.
fn days(from: &str, to: Option<&str>) -> anyhow::Result<Vec<String>> {
    let first = parse_day(from)?;
    let last = to.map(parse_day).transpose()?.unwrap_or(first);
    if last < first {
        bail!("--to {last} is before the first day {first}");
    }
    let count = (last - first).num_days() + 1;
    if count > 3660 {
        bail!("{count} days from {first} to {last}: verify at most ten years at a time");
    }
    Ok(first.iter_days().take(count as usize).map(|d| d.format("%Y/%m/%d").to_string()).collect())
}

/// The manifest lines of `day` (a key path), one per recording (the first of several), and the
/// lines that could not be read (manifest object, line, reason).
pub(crate) async fn manifest(target: &Target, day: &str) -> anyhow::Result<(Vec<ManifestLine>, Vec<String>)> {
    let dir = format!("{}{MANIFEST_DIR}", target.day_prefix(day));
    let listing = target.list(&dir).await.with_context(|| format!("cannot list {}", target.describe(&dir)))?;
    let mut lines = BTreeMap::new();
    let mut bad = Vec::new();
    for (object, _) in listing.iter().filter(|(k, _)| k.ends_with(".jsonl")) {
        let Some(body) =
            target.fetch(object).await.with_context(|| format!("cannot read {}", target.describe(object)))?
        else {
            continue;
        };
        for (n, text) in split_batch(&body).lines {
            match ManifestLine::parse(text) {
                Ok(line) => {
                    lines.entry(line.key.clone()).or_insert(line);
                }
                Err(reason) => bad.push(format!("{} line {n}: {reason}", target.describe(object))),
            }
        }
    }
    Ok((lines.into_values().collect(), bad))
}

async fn ls(target: &Target, day: &str, json: bool) -> anyhow::Result<ExitCode> {
    let day = day_path(day)?;
    let (lines, bad) = manifest(target, &day).await?;
    for line in &lines {
        if json {
            outln!("{}", line.value);
            continue;
        }
        let field = |k: &str| match &line.value[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        if line.value["kind"] == "audit_log" {
            outln!("audit log of {} download(s)  {}", field("entries"), line.key);
            continue;
        }
        outln!(
            "{}  {:<10} {} -> {}  {} s  {}",
            field("start"),
            field("state"),
            field("from"),
            field("to"),
            field("duration_s"),
            line.key
        );
    }
    for b in &bad {
        eprintln!("warning: unreadable manifest line {b}; run `callvault archive verify`");
    }
    eprintln!("{} recording(s) on {day} in {}", lines.len(), target.recording_location(""));
    Ok(ExitCode::SUCCESS)
}

/// Where an archive is, for messages: "bucket B" or "archive directory D".
pub(crate) fn place(target: &Target) -> String {
    match target {
        Target::S3(s3) => format!("bucket {} ({})", s3.bucket(), target.recording_location("")),
        Target::LocalDir(dir) => format!("archive directory {}", dir.dir().display()),
    }
}

async fn get(target: &Target, key: &str, dir: &Path, unsealer: Option<&Unsealer>) -> anyhow::Result<ExitCode> {
    let key = key.trim_matches('/');
    let (day, name) = key.rsplit_once('/').context("the key must look like YYYY/MM/DD/<name>")?;
    let day = day_path(day).with_context(|| format!("key {key:?}"))?;
    let (lines, _) = manifest(target, &day).await?;
    let Some(line) = lines.iter().find(|l| l.key == key) else {
        bail!(
            "no such recording {key} in {}: no manifest line of {day} names it; list the day with `callvault archive ls {}`",
            place(target),
            day.replace('/', "-")
        );
    };
    if unsealer.is_none() && line.objects.values().any(|o| o.plain.is_some()) {
        eprintln!(
            "note: {key} is sealed (encrypted to {}); its files are written as stored — give --identity FILE to decrypt them",
            line.value["sealed"]["recipients"]
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let mut bad = 0;
    for (ext, object) in &line.objects {
        let sealed = match (unsealer, &object.plain, ext.strip_suffix(&format!(".{SEALED_EXT}"))) {
            (Some(unsealer), Some(plain), Some(plain_ext)) => Some((unsealer, plain, plain_ext)),
            _ => None,
        };
        let Some((unsealer, (plain_sha, plain_size), plain_ext)) = sealed else {
            // Written as stored: copied straight into a temporary file, hashed on the way (a
            // recording of a day-long call is gigabytes), renamed when it checks out.
            let path = dir.join(format!("{name}.{ext}"));
            match download(target, &object.key, &path, &object.sha256, object.size).await? {
                Got::Missing => {
                    outln!("{}: MISSING: the manifest names it, {} does not hold it", object.key, place(target))
                }
                Got::Written => {
                    outln!("{}  {} bytes  sha256 ok", path.display(), object.size);
                    continue;
                }
                Got::Mismatch { sha, size } => outln!(
                    "{}: SHA-256 MISMATCH: {size} bytes with SHA-256 {sha}, the manifest records {} bytes with {}; not written",
                    path.display(),
                    object.size,
                    object.sha256
                ),
            }
            bad += 1;
            continue;
        };
        // Sealed, to be decrypted: the ciphertext copied beside (hidden) and checked, then
        // decrypted as it is read into the plaintext's temporary name.
        let stored = dir.join(format!(".{name}.{ext}.sealed-{}", std::process::id()));
        match download(target, &object.key, &stored, &object.sha256, object.size).await? {
            Got::Written => {}
            Got::Missing => {
                outln!("{}: MISSING: the manifest names it, {} does not hold it", object.key, place(target));
                bad += 1;
                continue;
            }
            Got::Mismatch { sha, size } => {
                outln!(
                    "{}: SHA-256 MISMATCH: {size} bytes with SHA-256 {sha}, the manifest records {} bytes with {}; not written",
                    dir.join(format!("{name}.{ext}")).display(),
                    object.size,
                    object.sha256
                );
                bad += 1;
                continue;
            }
        }
        let path = dir.join(format!("{name}.{plain_ext}"));
        let opened = unseal_then_rename(unsealer, &stored, &path, plain_sha, *plain_size);
        let _ = std::fs::remove_file(&stored);
        match opened? {
            Ok(size) => outln!("{}  {size} bytes  decrypted, sha256 ok", path.display()),
            Err(why) => {
                bad += 1;
                outln!("{}: {why}; not written", path.display());
            }
        }
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(PROBLEMS) })
}

/// What [`download`] did.
enum Got {
    /// The object is not there.
    Missing,
    /// It checked out and is at its path.
    Written,
    /// It did not check out (nothing written): what it holds.
    Mismatch { sha: String, size: u64 },
}

/// Copies the object `key` to a hidden temporary name beside `path` and, if it has the SHA-256
/// and size the manifest gives, fsyncs it and renames it to `path`; the temporary copy is
/// removed otherwise.
async fn download(target: &Target, key: &str, path: &Path, sha256: &str, size: u64) -> anyhow::Result<Got> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.part-{}", std::process::id()));
    let got = async {
        let Some((sha, got_size)) = target.download(key, &tmp).await.with_context(|| format!("cannot fetch {key}"))?
        else {
            return Ok(Got::Missing);
        };
        if sha != sha256 || got_size != size {
            return Ok(Got::Mismatch { sha, size: got_size });
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        Ok(Got::Written)
    }
    .await;
    if !matches!(got, Ok(Got::Written)) {
        let _ = std::fs::remove_file(&tmp);
    }
    got
}

/// Decrypts the sealed file `stored` into a hidden temporary name beside `path` as it reads it
/// and, if the plaintext has the SHA-256 and size the manifest gives, fsyncs it and renames it
/// to `path`: `Ok(Ok(size))`; `Ok(Err(why))` when it does not open or check out (nothing
/// written).
fn unseal_then_rename(
    unsealer: &Unsealer,
    stored: &Path,
    path: &Path,
    sha256: &str,
    size: u64,
) -> anyhow::Result<Result<u64, String>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.part-{}", std::process::id()));
    let cannot_write = || format!("cannot write '{}'", path.display());
    let result = (|| {
        let sealed = std::fs::File::open(stored).with_context(|| format!("cannot read '{}'", stored.display()))?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(cannot_write)?);
        match unsealer.open_into(sealed, &mut out) {
            Err(Unsealing::Open(why)) => return Ok(Err(why)),
            Err(Unsealing::Write(e)) => return Err(e).with_context(cannot_write),
            Ok((got, got_size)) if got != sha256 || got_size != size => {
                return Ok(Err(format!(
                    "PLAINTEXT SHA-256 MISMATCH: decrypts to {got_size} bytes with SHA-256 {got}, the manifest records {size} bytes with {sha256}"
                )));
            }
            Ok(_) => {}
        }
        let out = out.into_inner().map_err(|e| e.into_error()).with_context(cannot_write)?;
        out.sync_all().and_then(|()| std::fs::rename(&tmp, path)).with_context(cannot_write)?;
        Ok(Ok(size))
    })();
    if !matches!(result, Ok(Ok(_))) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What the recorder's data directory knows of `days`: the recordings in its spool (the record's
/// own SHA-256 and its audio's) and in its call index (the audio's), leaving out the ones still
/// queued (not shipped yet). `None` when the directory holds no spool.
fn history(data_dir: &Path, days: &[String]) -> anyhow::Result<Option<Vec<Known>>> {
    let recordings = data_dir.join("recordings");
    if !recordings.is_dir() {
        return Ok(None);
    }
    let queued: BTreeSet<String> =
        Spool::read_queue(data_dir).map(|q| q.into_iter().map(|e| e.key).collect()).unwrap_or_default();
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    for day in days {
        let dir = recordings.join(day);
        let Ok(items) = std::fs::read_dir(&dir) else { continue };
        for item in items.flatten() {
            let file = item.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".json").filter(|n| !n.starts_with('.')) else { continue };
            let key = format!("{day}/{name}");
            let body = std::fs::read(item.path()).with_context(|| format!("cannot read {}", item.path().display()))?;
            let mut sha256 = BTreeMap::from([("json".to_owned(), hex::encode(Sha256::digest(&body)))]);
            sha256.extend(audio_of(&body, &key));
            known.insert(key.clone(), Known { key, sha256, source: format!("spool ({})", recordings.display()) });
        }
    }
    let index = crate::index::path_in(data_dir);
    if index.is_file() {
        for day in days {
            let calls = crate::index::recorded_on(&index, day).context("cannot read the call index")?;
            for (key, record) in calls {
                if known.contains_key(&key) {
                    continue;
                }
                let sha256: BTreeMap<String, String> = audio_of(record.as_bytes(), &key).into_iter().collect();
                let source = format!("call index ({})", index.display());
                known.insert(key.clone(), Known { key, sha256, source });
            }
        }
    }
    Ok(Some(known.into_values().filter(|k| !queued.contains(&k.key)).collect()))
}

/// The audio files' extensions (what follows the recording's name `<key's last part>.`:
/// `wav`, or `caller.wav` and `callee.wav` when split) and SHA-256s from a call record.
fn audio_of(record: &[u8], key: &str) -> Vec<(String, String)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(record) else { return Vec::new() };
    let name = format!("{}.", key.rsplit('/').next().unwrap_or(key));
    verify::record_audio_files(&value)
        .into_iter()
        .filter_map(|(file, sha)| {
            let ext = file.strip_prefix(&name).or_else(|| file.rsplit_once('.').map(|(_, e)| e))?;
            Some((ext.to_owned(), sha.to_owned()))
        })
        .collect()
}

async fn verify(
    target: &Target,
    days: &[String],
    known: Option<&[Known]>,
    trusted: &[String],
    unsealer: Option<&Unsealer>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = verify::verify(target, days, known, trusted, unsealer)
        .await
        .with_context(|| format!("cannot verify {}", target.recording_location("")))?;
    let span = match (days.first(), days.last()) {
        (Some(a), Some(b)) if a != b => format!("{} to {}", a.replace('/', "-"), b.replace('/', "-")),
        (Some(a), _) => a.replace('/', "-"),
        _ => String::new(),
    };
    if report.is_empty() {
        let sites = target.sites().await.unwrap_or_default();
        let site = target.site();
        if !sites.is_empty() && !sites.iter().any(|s| s == site) {
            let given = if site.is_empty() { "no site".to_owned() } else { format!("site {site:?}") };
            bail!(
                "nothing to verify in {} on {span} for {given}: the archive holds the sites {}; give --site NAME",
                place(target),
                sites.join(", ")
            );
        }
        bail!("nothing to verify: {} holds no recording and no manifest on {span}", place(target));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&report).context("cannot write the report")?);
    } else {
        print_report(target, &report, &span);
    }
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(PROBLEMS) })
}

fn print_report(target: &Target, report: &Report, span: &str) {
    for p in &report.problems {
        let mut what = Vec::new();
        if let Some(o) = &p.object {
            what.push(target.describe(o));
        }
        if let Some(k) = &p.key {
            what.push(format!("recording {k}"));
        }
        if let Some(m) = &p.manifest {
            let line = p.line.map(|l| format!(" line {l}")).unwrap_or_default();
            what.push(format!("manifest {}{line}", target.describe(m)));
        }
        outln!("{:<11} {}: {}", p.kind.as_str().to_uppercase(), what.join(", "), p.detail);
    }
    let counts: Vec<String> = report.counts.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{n} {k}")).collect();
    let signed = match (report.batches_signed, report.trusted_keys.is_empty()) {
        (0, _) => String::new(),
        (n, true) => format!(
            "; {n} batch(es) signed by key(s) {} (as published in the archive: give --key-fingerprint to check they are yours)",
            report.signing_keys.join(", ")
        ),
        (n, false) => format!("; {n} batch(es) signed by trusted key(s) {}", report.signing_keys.join(", ")),
    };
    let history = match &report.history {
        Some(h) => format!("; recorder's history: {} of {} recording(s) found", h.matched, h.recordings),
        None => String::new(),
    };
    for key in &report.pruned {
        outln!("{:<11} recording {key}: deleted by retention, as the signed retention log records", "PRUNED");
    }
    let retention = match (report.retention_log_entries, report.pruned.len(), report.held.len()) {
        (0, _, _) => String::new(),
        (n, pruned, held) => {
            format!("; retention log: {n} entr(ies), {pruned} recording(s) of these days pruned, {held} held")
        }
    };
    let sealed = match (report.sealed_objects, report.sealed_opened) {
        (0, _) => String::new(),
        (n, 0) => format!(" ({n} sealed: checked as stored, give --identity to check their plaintext)"),
        (n, opened) => format!(" ({n} sealed, {opened} decrypted and matched)"),
    };
    outln!(
        "{} {span}: {} recording(s), {} object(s) verified{sealed}, {} manifest line(s) in {} manifest(s){signed}{history}{retention}; {} problem(s){}",
        report.archive,
        report.recordings,
        report.objects_verified,
        report.manifest_lines,
        report.manifests,
        report.problems.len(),
        if counts.is_empty() { String::new() } else { format!(": {}", counts.join(", ")) }
    );
}
