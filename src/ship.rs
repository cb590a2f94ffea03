//! `callvault ship`: ships everything queued in the spool once, then exits (for cron or by
//! hand, e.g. after an outage). Only one shipper may work on a spool at a time: do not run it
//! while `callvault run` uses the same data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use shipper::{ShipReport, Shipper, ShipperConfig, Spool};

use crate::targets::{RetentionArgs, TargetArgs, build_targets, spool_options};

/// `callvault ship`.
#[derive(Debug, Clone, Args)]
pub struct ShipArgs {
    /// Data directory whose spool is shipped.
    #[arg(long, short = 'o', default_value = "callvault-data", value_name = "DIR")]
    pub output: PathBuf,
    /// Archive targets.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Local retention.
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Give up retrying after this many seconds (recordings stay queued).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub ship_timeout: u64,
    /// Recordings shipped at the same time.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
}

/// Drains the spool once. Exit status 0 when the queue is empty at the end, 3 when recordings
/// are still queued (the report says why).
pub fn ship(args: ShipArgs) -> anyhow::Result<ExitCode> {
    let spool = Spool::open_with(&args.output, spool_options(&args.retention))
        .with_context(|| format!("cannot open the spool in '{}'", args.output.display()))?;
    let queued = spool.queued_ids().context("cannot list the spool queue")?.len();
    let targets = build_targets(&args.targets)?;
    let cfg = ShipperConfig { concurrency: args.concurrency.max(1), ..ShipperConfig::default() };
    let handle = Shipper::start(Arc::new(spool), targets, cfg).context("cannot start the shipper")?;
    let report = handle.drain(Some(Duration::from_secs(args.ship_timeout)));
    println!("{}", summary(queued, &report));
    Ok(if report.is_complete() { ExitCode::SUCCESS } else { ExitCode::from(3) })
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
    for e in &report.errors {
        text.push_str(&format!("\n  error: {e}"));
    }
    for left in report.left_queued.iter().take(10) {
        text.push_str(&format!("\n  queued: {} (waiting for {})", left.key, left.waiting_for.join(", ")));
        if let Some(e) = &left.last_error {
            text.push_str(&format!(": {e}"));
        }
    }
    if report.left_queued.len() > 10 {
        text.push_str(&format!("\n  … and {} more", report.left_queued.len() - 10));
    }
    text
}
