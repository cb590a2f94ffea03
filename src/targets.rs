//! Archive targets and local retention from the command line: `--archive DIR` or
//! `--archive s3://bucket/prefix` (repeatable) with the `--s3-*` options, and `--retention`.
//!
//! S3 credentials come from the usual places, never from the command line: the variables
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else the credentials
//! file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile `--s3-profile`, else
//! `AWS_PROFILE`, else `default`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use shipper::{Credentials, LocalDir, LockMode, ObjectLock, Retention, S3Config, S3Target, SpoolOptions, Target};

/// Where recordings are archived. Flatten into a command's arguments.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Archive every recording is copied to and verified in: a directory, or an S3 bucket as
    /// s3://BUCKET[/PREFIX]. Repeat to archive to several targets; a recording leaves the queue
    /// when every one has confirmed it.
    #[arg(long, short = 'a', default_value = "callvault-archive", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub archive: Vec<String>,
    /// S3 endpoint, scheme://host[:port] (default: AWS, https://s3.<region>.amazonaws.com).
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region used for signing.
    #[arg(long, default_value = "us-east-1", value_name = "REGION")]
    pub s3_region: String,
    /// Path-style addressing (endpoint/bucket/key) instead of virtual-host style
    /// (bucket.endpoint/key); most self-hosted stores (MinIO, SeaweedFS, Ceph) need it.
    #[arg(long)]
    pub s3_path_style: bool,
    /// Allow a plain http:// endpoint (recordings then travel unencrypted).
    #[arg(long)]
    pub s3_allow_http: bool,
    /// PEM file of CA certificates to trust besides the system's (a private store's CA).
    #[arg(long, value_name = "FILE")]
    pub s3_ca_file: Option<PathBuf>,
    /// Profile of the AWS credentials file to use.
    #[arg(long, value_name = "NAME")]
    pub s3_profile: Option<String>,
    /// Site name: the key level after the prefix, so that several recorders share a bucket
    /// (default: this machine's host name).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// S3 Object Lock mode applied to every object (the bucket must have object lock enabled).
    #[arg(long, value_enum, value_name = "MODE", requires = "s3_lock_days")]
    pub s3_object_lock: Option<LockModeArg>,
    /// Object Lock retention in days from upload.
    #[arg(long, value_name = "DAYS", requires = "s3_object_lock")]
    pub s3_lock_days: Option<u32>,
    /// Files larger than this many MiB go by multipart upload.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub s3_multipart_mib: u64,
    /// Average upload rate limit per S3 target, e.g. 500K, 20M, 1G (bytes per second).
    #[arg(long, value_name = "BYTES/S", value_parser = parse_rate)]
    pub bandwidth_limit: Option<u64>,
}

impl TargetArgs {
    /// Only a local archive directory, every other option at its default (for tools and
    /// benchmarks that build arguments in code).
    pub fn parse_from_archive(dir: PathBuf) -> TargetArgs {
        TargetArgs {
            archive: vec![dir.to_string_lossy().into_owned()],
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_path_style: false,
            s3_allow_http: false,
            s3_ca_file: None,
            s3_profile: None,
            site: None,
            s3_object_lock: None,
            s3_lock_days: None,
            s3_multipart_mib: 16,
            bandwidth_limit: None,
        }
    }
}

impl Default for RetentionArgs {
    fn default() -> Self {
        RetentionArgs { retention: Retention::Keep, high_watermark: 90, min_free_mb: 64 }
    }
}

/// S3 Object Lock mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockModeArg {
    /// Nobody can delete or shorten the retention, not even the account's root user.
    Compliance,
    /// Users with s3:BypassGovernanceRetention can.
    Governance,
}

/// What happens to local copies once every target has confirmed them. Flatten into a command's
/// arguments.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Local copies of shipped recordings: "keep" (default), "delete" (as soon as every target
    /// confirmed), "days:N" (keep N days), "watermark:P" (delete the oldest while the disk is more
    /// than P % full). Unshipped recordings are never deleted.
    #[arg(long, default_value = "keep", value_name = "POLICY", value_parser = parse_retention)]
    pub retention: Retention,
    /// Disk usage (percent) above which callvault reports disk pressure at error level.
    #[arg(long, default_value_t = 90, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub high_watermark: u8,
    /// Free space (MiB) kept on the data directory's filesystem: below it, audio stops being
    /// written (calls in progress keep what they have) so every call still gets its call record.
    /// 0 disables the reserve.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub min_free_mb: u64,
}

/// The spool options the retention arguments ask for.
pub fn spool_options(args: &RetentionArgs) -> SpoolOptions {
    let mut options = SpoolOptions::default();
    options.retention = args.retention;
    options.high_watermark_percent = args.high_watermark;
    options
}

/// Builds the archive targets: a local directory for each plain path (the first named
/// "archive"), an S3 target for each `s3://` URL (named by its URL). Credentials are looked up
/// once, only if there is an S3 target.
pub fn build_targets(args: &TargetArgs) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    let mut credentials: Option<Credentials> = None;
    let mut local_dirs = 0;
    for archive in &args.archive {
        if let Some(rest) = archive.strip_prefix("s3://") {
            let creds = match &credentials {
                Some(c) => c.clone(),
                None => {
                    let c = Credentials::from_environment(args.s3_profile.as_deref())
                        .with_context(|| format!("archive {archive}"))?;
                    credentials = Some(c.clone());
                    c
                }
            };
            targets.push(Target::S3(s3_target(args, archive, rest, creds)?));
        } else {
            local_dirs += 1;
            let name = if local_dirs == 1 { "archive".to_owned() } else { archive.clone() };
            let dir = LocalDir::new(&name, Path::new(archive))
                .with_context(|| format!("cannot use archive directory '{archive}'"))?;
            targets.push(Target::LocalDir(dir));
        }
    }
    if targets.is_empty() {
        bail!("no archive: give --archive DIR or --archive s3://BUCKET/PREFIX");
    }
    Ok(targets)
}

/// The S3 target for `s3://<rest>`.
pub fn s3_target(args: &TargetArgs, url: &str, rest: &str, credentials: Credentials) -> anyhow::Result<S3Target> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("archive {url}: no bucket; write s3://BUCKET or s3://BUCKET/PREFIX");
    }
    let mut cfg = S3Config::new(url.trim_end_matches('/'), bucket, &args.s3_region, credentials);
    cfg.prefix = prefix.trim_matches('/').to_owned();
    cfg.site = match &args.site {
        Some(site) => site.clone(),
        None => host_name(),
    };
    cfg.endpoint = args.s3_endpoint.clone();
    cfg.path_style = args.s3_path_style;
    cfg.allow_http = args.s3_allow_http;
    cfg.ca_file = args.s3_ca_file.clone();
    cfg.multipart_threshold = args.s3_multipart_mib.max(1) * 1024 * 1024;
    cfg.bandwidth_limit = args.bandwidth_limit;
    if let (Some(mode), Some(days)) = (args.s3_object_lock, args.s3_lock_days) {
        let mode = match mode {
            LockModeArg::Compliance => LockMode::Compliance,
            LockModeArg::Governance => LockMode::Governance,
        };
        cfg.object_lock = Some(ObjectLock { mode, retention: Duration::from_secs(u64::from(days) * 86_400) });
    }
    S3Target::new(cfg).with_context(|| format!("cannot use archive {url}"))
}

/// This machine's host name, or "callvault".
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .unwrap_or_else(|| "callvault".into())
}

/// Parses a rate like `500K`, `20M`, `1G` or `1048576` (bytes per second; K = 1024).
fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches(['B', 'b']).trim_end_matches("/s");
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, ' '),
    };
    let n: f64 = digits.trim().parse().map_err(|_| format!("{text:?} is not a rate like 500K, 20M or 1G"))?;
    let scale = match unit {
        ' ' => 1.0,
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use K, M or G")),
    };
    let rate = (n * scale) as u64;
    if rate == 0 {
        return Err("the bandwidth limit must be above zero".into());
    }
    Ok(rate)
}

/// Parses `keep`, `delete`, `days:N` or `watermark:P`.
fn parse_retention(text: &str) -> Result<Retention, String> {
    let bad = || format!("{text:?}: use keep, delete, days:N or watermark:PERCENT");
    match text.split_once(':') {
        None if text == "keep" => Ok(Retention::Keep),
        None if text == "delete" => Ok(Retention::DeleteWhenShipped),
        Some(("days", n)) => n.parse().map(Retention::KeepDays).map_err(|_| bad()),
        Some(("watermark", p)) => match p.trim_end_matches('%').parse::<u8>() {
            Ok(p) if (1..=100).contains(&p) => Ok(Retention::KeepUntilWatermark(p)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_retention_parse() {
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("20M"), Ok(20 * 1024 * 1024));
        assert_eq!(parse_rate("1048576"), Ok(1_048_576));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_retention("keep"), Ok(Retention::Keep));
        assert_eq!(parse_retention("delete"), Ok(Retention::DeleteWhenShipped));
        assert_eq!(parse_retention("days:30"), Ok(Retention::KeepDays(30)));
        assert_eq!(parse_retention("watermark:80%"), Ok(Retention::KeepUntilWatermark(80)));
        assert!(parse_retention("watermark:0").is_err());
        assert!(parse_retention("forever").is_err());
    }
}
