//! `callvault archive ls|get|verify`: read an S3 archive through its daily manifest, with no
//! database: list a day's recordings, fetch one (verified), verify a day's objects against the
//! SHA-256 recorded for them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use shipper::{S3Target, Target};

use crate::cli::Source;
use crate::config::archive_names;
use crate::targets::{TargetArgs, build_target};

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
        /// The archive (an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Fetch a recording's objects and check them against their SHA-256.
    Get {
        /// The recording's key, YYYY/MM/DD/<name> (as `ls` shows it).
        key: String,
        /// Directory to write the files to.
        #[arg(long, short = 'd', default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// The archive (an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Fetch every object of a day and check it against its recorded SHA-256.
    Verify {
        /// The day, YYYY-MM-DD.
        day: String,
        /// The archive (an s3:// URL) and how to reach it.
        #[command(flatten)]
        targets: TargetArgs,
    },
}

/// Runs an archive command on the first S3 archive of the configuration (or `--archive`).
/// Exit status 0 when all is well, 3 when an object is missing or does not match its SHA-256.
/// Reads only: nothing is created, also not for a directory archive, which it refuses.
pub fn archive(source: &Source, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let targets = match &args.command {
        ArchiveCommand::Ls { targets, .. }
        | ArchiveCommand::Get { targets, .. }
        | ArchiveCommand::Verify { targets, .. } => targets,
    };
    let config = source.load(|c| targets.apply(c))?;
    crate::logging::init(&config.log.level, config.log.format);
    let archives = config.archives();
    let names = archive_names(&archives);
    let (archive, name) = archives.iter().zip(&names).find(|(a, _)| a.is_s3()).with_context(|| {
        format!(
            "callvault archive reads S3 archives, and {} is not one: give --archive s3://BUCKET/PREFIX or an \
             [[archive]] with url = \"s3://...\"",
            archives.iter().map(|a| a.place()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let Target::S3(target) = build_target(archive, name)? else {
        bail!("internal error: {name:?} is not an S3 target");
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the I/O runtime")?;
    runtime.block_on(async {
        match args.command {
            ArchiveCommand::Ls { day, json, .. } => ls(&target, &day, json).await,
            ArchiveCommand::Get { key, dir, .. } => get(&target, &key, &dir).await,
            ArchiveCommand::Verify { day, .. } => verify(&target, &day).await,
        }
    })
}

/// `YYYY-MM-DD` (or `YYYY/MM/DD`) as the key path `YYYY/MM/DD`.
fn day_path(day: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = day.split(['-', '/']).collect();
    let ok = parts.len() == 3
        && parts.iter().zip([4, 2, 2]).all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        bail!("day {day:?}: write it as YYYY-MM-DD");
    }
    Ok(parts.join("/"))
}

async fn manifest(target: &S3Target, day: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let day = day_path(day)?;
    target.read_manifest(&day).await.with_context(|| format!("cannot read the manifest of {day}"))
}

async fn ls(target: &S3Target, day: &str, json: bool) -> anyhow::Result<ExitCode> {
    let lines = manifest(target, day).await?;
    for line in &lines {
        if json {
            println!("{line}");
            continue;
        }
        let field = |k: &str| match &line[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        println!(
            "{}  {:<10} {} -> {}  {} s  {}",
            field("start"),
            field("state"),
            field("from"),
            field("to"),
            field("duration_s"),
            field("key")
        );
    }
    eprintln!("{} recording(s) on {day}", lines.len());
    Ok(ExitCode::SUCCESS)
}

async fn get(target: &S3Target, key: &str, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let key = key.trim_matches('/');
    let day = key.rsplit_once('/').map(|(day, _)| day).context("the key must look like YYYY/MM/DD/<name>")?;
    let lines = manifest(target, day).await?;
    let line = lines
        .iter()
        .find(|l| l["key"] == key)
        .with_context(|| format!("{key} is not in the manifest of {day}; list the day with `callvault archive ls`"))?;
    let objects = line["objects"].as_object().context("the manifest line lists no objects")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let mut bad = 0;
    for (ext, object) in objects {
        let (object_key, sha) = object_fields(object)?;
        let body = target.get(object_key).await.with_context(|| format!("cannot fetch {object_key}"))?;
        let actual = hex::encode(Sha256::digest(&body));
        let name = format!("{}.{ext}", key.rsplit('/').next().unwrap_or(key));
        let path = dir.join(&name);
        std::fs::write(&path, &body).with_context(|| format!("cannot write '{}'", path.display()))?;
        if actual == sha {
            println!("{}  {} bytes  sha256 ok", path.display(), body.len());
        } else {
            bad += 1;
            println!("{}  {} bytes  SHA-256 MISMATCH: {actual}, recorded {sha}", path.display(), body.len());
        }
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

async fn verify(target: &S3Target, day: &str) -> anyhow::Result<ExitCode> {
    let lines = manifest(target, day).await?;
    let (mut ok, mut bad) = (0u64, 0u64);
    for line in &lines {
        let Some(objects) = line["objects"].as_object() else { continue };
        for object in objects.values() {
            let (object_key, sha) = object_fields(object)?;
            match target.get(object_key).await {
                Ok(body) if hex::encode(Sha256::digest(&body)) == sha => ok += 1,
                Ok(body) => {
                    bad += 1;
                    println!("MISMATCH {object_key}: {} bytes, SHA-256 differs from the recorded {sha}", body.len());
                }
                Err(e) => {
                    bad += 1;
                    println!("MISSING {object_key}: {e}");
                }
            }
        }
    }
    println!("{} recording(s), {ok} object(s) verified, {bad} problem(s)", lines.len());
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn object_fields(object: &serde_json::Value) -> anyhow::Result<(&str, &str)> {
    let key = object["key"].as_str().context("a manifest object has no key")?;
    let sha = object["sha256"].as_str().context("a manifest object has no sha256")?;
    Ok((key, sha))
}
