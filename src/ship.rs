//! `callvault ship`: ships everything queued in the spool once, then exits (for cron or by
//! hand, e.g. after an outage); and `callvault status`, which only reads the spool.
//!
//! A queued recording is owed to the targets that were configured when it was recorded. `ship`
//! delivers it to those, from the configuration (or `--archive`), and refuses to deliver it
//! anywhere else unless told so with `--retarget`. It works only on an existing data directory
//! and only when no other callvault owns it.

use crate::out::outln;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use shipper::{OwedTarget, ShipReport, Shipper, ShipperConfig, Spool, Target};

use crate::cli::{DataArgs, Source};
use crate::config::Config;
use crate::targets::{build_targets, set_value, spool_options};

/// `callvault ship`.
#[derive(Debug, Clone, Default, Args)]
pub struct ShipArgs {
    /// The data directory whose spool is shipped, archives, retention.
    #[command(flatten)]
    pub data: DataArgs,
    /// Give up retrying after this many seconds (recordings stay queued)
    /// [default: shipping.drain_timeout, 300].
    #[arg(long, value_name = "SECONDS")]
    pub ship_timeout: Option<u64>,
    /// Recordings shipped at the same time [default: 16].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Deliver recordings owed to targets that are not configured to the configured targets
    /// instead (recorded in their queue entries).
    #[arg(long)]
    pub retarget: bool,
}

impl ShipArgs {
    /// Puts these options over the configuration.
    pub fn apply(&self, c: &mut Config) {
        self.data.apply(c);
        set_value(&mut c.shipping.drain_timeout, &self.ship_timeout);
        set_value(&mut c.shipping.concurrency, &self.concurrency);
    }
}

/// Drains the spool once. Exit status 0 when the queue is empty at the end, 3 when recordings
/// are still queued (the report says why).
pub fn ship(source: &Source, args: &ShipArgs) -> anyhow::Result<ExitCode> {
    let config = source.load(|c| args.apply(c))?;
    crate::logging::init(&config.log.level, config.log.format);
    execute(&config, args.retarget)
}

/// [`ship`] with the configuration resolved.
pub fn execute(config: &Config, retarget: bool) -> anyhow::Result<ExitCode> {
    let dir = &config.storage.data_dir;
    let spool = Spool::open_existing(dir, spool_options(&config.storage))?;
    let targets = build_targets(config)?;
    let owed = unconfigured(&spool, &targets)?;
    if !owed.is_empty() {
        let configured: Vec<OwedTarget> = targets.iter().map(Target::owed).collect();
        if !retarget {
            bail!("{}", refusal(&owed, &configured));
        }
        let moved = retarget_all(&spool, &configured)?;
        tracing::warn!(
            "{moved} queued recording(s) re-targeted from {} to {} (--retarget)",
            list(owed.keys()),
            list(configured.iter())
        );
    }
    let spool = Arc::new(spool);
    let cfg = ShipperConfig { concurrency: config.shipping.concurrency.max(1), ..ShipperConfig::default() };
    let handle = Shipper::start(spool.clone(), targets, cfg)?;
    // Audit logs of downloads sealed since the spool's owner last looked (e.g. by `serve`).
    crate::audit::collect(dir, &spool);
    let queued = spool.queued_ids().context("cannot list the spool queue")?.len();
    handle.notifier().notify();
    let report = handle.drain(Some(Duration::from_secs(config.shipping.drain_timeout)));
    outln!("{}", summary(queued, &report));
    Ok(if report.is_complete() && report.stats.diverted == 0 { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// Queued recordings per target they are owed to (and not confirmed by) that `targets` does
/// not provide.
pub fn unconfigured(spool: &Spool, targets: &[Target]) -> anyhow::Result<BTreeMap<OwedTarget, usize>> {
    let configured: Vec<OwedTarget> = targets.iter().map(Target::owed).collect();
    let mut out = BTreeMap::new();
    for entry in spool.pending().context("cannot read the spool queue")? {
        for t in &entry.targets {
            if !entry.shipped.contains_key(&t.name) && !configured.contains(t) {
                *out.entry(t.clone()).or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// For `run` and `replay`: says loudly (but carries on recording) that queued recordings wait
/// for targets that are not configured any more.
pub fn report_unconfigured(spool: &Spool, targets: &[Target]) -> anyhow::Result<()> {
    let owed = unconfigured(spool, targets)?;
    if !owed.is_empty() {
        let configured: Vec<OwedTarget> = targets.iter().map(Target::owed).collect();
        tracing::error!("{}; they stay queued", refusal(&owed, &configured));
    }
    Ok(())
}

fn refusal(owed: &BTreeMap<OwedTarget, usize>, configured: &[OwedTarget]) -> String {
    let what: Vec<String> =
        owed.iter().map(|(t, n)| format!("{n} queued recording(s) are owed to target {t}")).collect();
    format!(
        "{}, which is not among the targets configured here ({}); they are not delivered elsewhere: \
         configure that target again (or give its --archive options), or pass `callvault ship --retarget` \
         to deliver them to the configured targets instead",
        what.join(", "),
        list(configured.iter())
    )
}

fn list<'a>(targets: impl Iterator<Item = &'a OwedTarget>) -> String {
    targets.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Makes every queued recording that is owed to a target not in `configured` owed to
/// `configured`; returns how many.
fn retarget_all(spool: &Spool, configured: &[OwedTarget]) -> anyhow::Result<usize> {
    let mut moved = 0;
    for entry in spool.pending()? {
        if entry.targets.iter().any(|t| !configured.contains(t)) {
            spool.retarget(entry.id, configured)?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// The report of a drain in a few lines.
pub fn summary(queued_at_start: usize, report: &ShipReport) -> String {
    let s = &report.stats;
    let mut text = format!(
        "callvault ship: {queued_at_start} queued, {} shipped ({:.1} MB sent, {} already in the archive), {} still queued",
        s.shipped_recordings,
        s.shipped_bytes as f64 / 1e6,
        s.already_shipped,
        report.left_queued.len()
    );
    if s.disk_pressure {
        text.push_str(&format!("\n  disk pressure: the spool's disk is {}% full", s.disk_used_percent.unwrap_or(100)));
    }
    if let Some(age) = s.oldest_unshipped_age_secs {
        text.push_str(&format!("\n  oldest unshipped recording: {age} s old"));
    }
    if let Some(e) = crate::summary::diverted_error(s) {
        text.push_str(&format!("\n  error: {e}"));
    }
    for e in &report.errors {
        text.push_str(&format!("\n  error: {e}"));
    }
    for left in report.left_queued.iter().take(10) {
        let waiting = if left.waiting_for.is_empty() {
            "confirmed by every target, not yet removed from the queue".to_owned()
        } else {
            format!("waiting for {}", left.waiting_for.join(", "))
        };
        text.push_str(&format!("\n  queued: {} ({waiting})", left.key));
        if let Some(e) = &left.last_error {
            text.push_str(&format!(": {e}"));
        }
    }
    if report.left_queued.len() > 10 {
        text.push_str(&format!("\n  … and {} more", report.left_queued.len() - 10));
    }
    text
}

/// `callvault status`.
#[derive(Debug, Clone, Default, Args)]
pub struct StatusArgs {
    /// Data directory [default: storage.data_dir, ./callvault-data].
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Prints who owns the spool and what is queued, per target; takes no lock and writes nothing,
/// so it works while `run` owns the spool.
pub fn status(source: &Source, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = source.load(|c| {
        if let Some(dir) = &args.output {
            c.storage.data_dir = dir.clone();
        }
    })?;
    let dir = &config.storage.data_dir;
    let entries = Spool::read_queue(dir)?;
    let owner = match shipper::spool::owner(dir)? {
        Some(Some(pid)) => format!("owned by callvault pid {pid}"),
        Some(None) => "owned by another callvault".to_owned(),
        None => "not in use".to_owned(),
    };
    outln!("{}: {owner}", dir.display());
    outln!("  queued: {} recording(s)", entries.len());
    if let Some(oldest) = entries.iter().map(|e| e.entered_at.as_str()).min() {
        outln!("  oldest entered: {oldest}");
    }
    let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        if e.targets.is_empty() {
            *per_target.entry("(the configured targets)".into()).or_default() += 1;
        }
        for t in e.targets.iter().filter(|t| !e.shipped.contains_key(&t.name)) {
            *per_target.entry(t.to_string()).or_default() += 1;
        }
    }
    for (t, n) in per_target {
        outln!("  waiting for {t}: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
