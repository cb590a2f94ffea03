//! `callvault archive hold set|clear|ls` and `archive prune`: legal holds and the pruning of a
//! directory archive by age, each written to the archive's signed retention log
//! (`shipper::target::retention`). These are the archive commands that write to the archive.

use crate::out::{out, outln};
use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, bail};
use shipper::Target;
use shipper::target::retention::{self, Action, Log, Named, Who};

use crate::archive::{day_path, manifest, place};

/// Who runs this command: the effective user's name and the host.
fn who() -> Who {
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    Who { user, ..Who::this_process() }
}

/// The recordings `keys` name, with their objects, from the manifests; an error names a key no
/// manifest line names.
async fn recordings(target: &Target, keys: &[String]) -> anyhow::Result<Vec<Named>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for key in keys {
        let key = key.trim_matches('/');
        if !seen.insert(key.to_owned()) {
            continue;
        }
        let (day, _) = key.rsplit_once('/').context("a key looks like YYYY/MM/DD/<name>")?;
        let day = day_path(day).with_context(|| format!("key {key:?}"))?;
        let (lines, _) = manifest(target, &day).await?;
        let Some(line) = lines.iter().find(|l| l.key == key) else {
            bail!(
                "no such recording {key} in {}: no manifest line of {day} names it; nothing was held or released",
                place(target)
            );
        };
        out.push(Named { key: key.to_owned(), objects: line.objects.values().map(|o| o.key.clone()).collect() });
    }
    Ok(out)
}

/// `archive hold set|clear`: on S3 the store's legal hold on every object of each recording
/// (read back), then one retention log entry for all of them.
pub async fn hold(target: &Target, keys: &[String], on: bool, reason: &str) -> anyhow::Result<ExitCode> {
    if reason.trim().is_empty() {
        bail!("--reason is empty: say why (a case number, who asked)");
    }
    let named = recordings(target, keys).await?;
    if let Target::S3(s3) = target {
        for n in &named {
            for object in &n.objects {
                s3.set_legal_hold(object, on).await.with_context(|| {
                    format!(
                        "cannot {} the legal hold of {} (the bucket needs object lock enabled)",
                        if on { "set" } else { "clear" },
                        target.describe(object)
                    )
                })?;
                let now = s3.legal_hold(object).await?;
                if now != Some(on) {
                    bail!(
                        "{}: the store reports legal hold {now:?} after it was {}; it does not keep legal holds",
                        target.describe(object),
                        if on { "set" } else { "cleared" }
                    );
                }
            }
        }
    }
    let action = if on { Action::HoldSet } else { Action::HoldClear };
    let entry = retention::append(target, action, named.clone(), Some(reason.to_owned()), &who())
        .await
        .context("the holds were applied but cannot be written to the retention log; run the command again")?;
    for n in &named {
        outln!("{} {}  ({} object(s))", if on { "held" } else { "released" }, n.key, n.objects.len());
    }
    outln!("recorded in {}", target.describe(&entry));
    Ok(ExitCode::SUCCESS)
}

/// `archive hold ls`: every hold set and cleared (from the retention log), then the recordings
/// held now (on S3 with the store's legal hold status of each object).
pub async fn hold_ls(target: &Target, json: bool) -> anyhow::Result<ExitCode> {
    let log = Log::read(target).await.with_context(|| format!("cannot read the retention log of {}", place(target)))?;
    for o in &log.entries {
        let entry = match &o.entry {
            Ok(e) => e,
            Err(why) => {
                eprintln!(
                    "warning: {} cannot be read: {why}; run `callvault archive verify`",
                    target.describe(&o.object)
                );
                continue;
            }
        };
        if entry.action == Action::Pruned {
            continue;
        }
        if json {
            out!("{}", String::from_utf8_lossy(&o.body));
            continue;
        }
        let keys: Vec<&str> = entry.recordings.iter().map(|r| r.key.as_str()).collect();
        outln!(
            "#{}  {}  {:<10} by {}@{}: {}  ({})",
            entry.seq,
            entry.at,
            if entry.action == Action::HoldSet { "hold set" } else { "hold clear" },
            entry.user,
            entry.host,
            keys.join(" "),
            entry.reason.as_deref().unwrap_or("")
        );
    }
    if json {
        return Ok(ExitCode::SUCCESS);
    }
    let held = log.held(|_| true);
    outln!("{} recording(s) held now in {}", held.len(), place(target));
    for (key, entry) in &held {
        let mut status = String::new();
        if let Target::S3(s3) = target
            && let Some(named) = entry.recordings.iter().find(|r| &r.key == key)
        {
            let mut on = 0;
            for object in &named.objects {
                if s3.legal_hold(object).await? == Some(true) {
                    on += 1;
                }
            }
            status = format!("; store: legal hold on {on} of {} object(s)", named.objects.len());
        }
        outln!("  {key}  since #{} {} ({}){status}", entry.seq, entry.at, entry.reason.as_deref().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

/// `archive prune`: deletes the directory archive's recordings older than `days` that are not
/// held, after writing them to the retention log.
pub async fn prune(target: &Target, days: u32, dry_run: bool) -> anyhow::Result<ExitCode> {
    if matches!(target, Target::S3(_)) {
        bail!(
            "archive {:?} is an S3 bucket: callvault does not delete from buckets; expire objects with a lifecycle \
             rule on the bucket (objects under object lock or legal hold are kept by the store)",
            target.name()
        );
    }
    let today = chrono::Utc::now().date_naive();
    let pruned = retention::prune(target, days, today, &who(), dry_run).await?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for key in &pruned.recordings {
        outln!("{verb} {key}");
    }
    for key in &pruned.held {
        outln!("kept {key} (held)");
    }
    outln!(
        "{} {} recording(s) ({} object(s)) older than {days} day(s); {} expired recording(s) kept under hold{}",
        verb,
        pruned.recordings.len(),
        pruned.objects,
        pruned.held.len(),
        pruned.entry.map(|e| format!("; recorded in {}", target.describe(&e))).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
