//! Archive targets and local retention: the `[[archive]]` tables and `[storage]` of the
//! configuration, and the command-line options that override them (`--archive DIR` or
//! `--archive s3://bucket/prefix`, repeatable, with the `--s3-*` options, and `--retention`).
//!
//! S3 credentials are never taken from the configuration file or the command line. For each S3
//! archive they come from its `credentials_file` if it names one (an AWS-format file whose owner
//! and mode are checked: owned by root or the user callvault runs as, not writable by its group,
//! nothing for others); else from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`); else from the AWS credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
//! `~/.aws/credentials`, profile `profile`, else `AWS_PROFILE`, else `default`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use shipper::{Credentials, LocalDir, LockMode, ObjectLock, S3Config, S3Target, SpoolOptions, Target};

use shipper::target::seal::Sealing;
use shipper::target::signing::SiteKey;

use crate::config::{Archive, Config, DEFAULT_SIGNING_KEY, LockModeArg, Rate, RetentionPolicy, Storage, archive_names};

/// Where recordings are archived, overriding the configuration's `[[archive]]`s. Flatten into a
/// command's arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Archive every recording is copied to and verified in: a directory, or an S3 bucket as
    /// s3://BUCKET[/PREFIX]. Repeat for several targets; replaces the configuration's
    /// [[archive]] tables (default when neither names one: ./callvault-archive).
    #[arg(long, short = 'a', value_name = "DIR|s3://BUCKET/PREFIX")]
    pub archive: Vec<String>,
    /// S3 endpoint, scheme://host[:port] (default: AWS, https://s3.<region>.amazonaws.com).
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region used for signing (default us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
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
    /// Files larger than this many MiB go by multipart upload (default 16).
    #[arg(long, value_name = "MIB")]
    pub s3_multipart_mib: Option<u64>,
    /// Average upload rate limit per S3 target, e.g. 500K, 20M, 1G (bytes per second).
    #[arg(long, value_name = "BYTES/S")]
    pub bandwidth_limit: Option<Rate>,
    /// Directory archives: prune recordings older than this many days (unless held); sets
    /// retention_days of every directory archive.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub archive_retention_days: Option<u32>,
    /// The site's private key that signs the manifests (signing.key_file; default
    /// /etc/callvault/signing.key when it exists).
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Encrypt every recording to this age recipient (age1…) before it is archived; repeat for
    /// more recipients. Sets encrypt_to of every archive.
    #[arg(long, value_name = "AGE1…")]
    pub encrypt_to: Vec<String>,
    /// Directory archives: always copy each file (and read it back) instead of hard-linking it
    /// from the spool when both are on one filesystem; sets `link = false`.
    #[arg(long)]
    pub archive_copy: bool,
}

impl TargetArgs {
    /// Puts these options over the configuration: `--archive` replaces its archives, the S3
    /// options apply to every S3 archive.
    pub fn apply(&self, config: &mut Config) {
        if !self.archive.is_empty() {
            config.archive = self.archive.iter().map(|a| Archive::from_arg(a)).collect();
        }
        set(&mut config.signing.key_file, &self.signing_key);
        if !self.encrypt_to.is_empty() {
            for a in &mut config.archive {
                a.encrypt_to.clone_from(&self.encrypt_to);
            }
        }
        for a in config.archive.iter_mut().filter(|a| !a.is_s3()) {
            set(&mut a.retention_days, &self.archive_retention_days);
            if self.archive_copy {
                a.link = Some(false);
            }
        }
        for a in config.archive.iter_mut().filter(|a| a.is_s3()) {
            set(&mut a.endpoint, &self.s3_endpoint);
            set(&mut a.region, &self.s3_region);
            a.path_style |= self.s3_path_style;
            a.allow_http |= self.s3_allow_http;
            set(&mut a.ca_file, &self.s3_ca_file);
            set(&mut a.profile, &self.s3_profile);
            set(&mut a.site, &self.site);
            set(&mut a.object_lock, &self.s3_object_lock);
            set(&mut a.lock_days, &self.s3_lock_days);
            set(&mut a.multipart_mib, &self.s3_multipart_mib);
            set(&mut a.bandwidth_limit, &self.bandwidth_limit);
        }
    }
}

/// `*slot = value` when the command line gave a value.
pub(crate) fn set<T: Clone>(slot: &mut Option<T>, value: &Option<T>) {
    if let Some(v) = value {
        *slot = Some(v.clone());
    }
}

/// `*slot = value` when the command line gave a value, for a key that always has one.
pub(crate) fn set_value<T: Clone>(slot: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *slot = v.clone();
    }
}

/// What happens to local copies once every target has confirmed them, overriding `[storage]`.
/// Flatten into a command's arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct RetentionArgs {
    /// Local copies of shipped recordings: "keep" (default), "delete" (as soon as every target
    /// confirmed), "days:N" (keep N days), "watermark:P" (delete the oldest while the disk is more
    /// than P % full). Unshipped recordings are never deleted.
    #[arg(long, value_name = "POLICY")]
    pub retention: Option<RetentionPolicy>,
    /// Disk usage (percent) above which callvault reports disk pressure at error level
    /// (default 90).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub high_watermark: Option<u8>,
    /// Free space (MiB) kept on the data directory's filesystem: below it, audio stops being
    /// written (calls in progress keep what they have) so every call still gets its call record.
    /// 0 disables the reserve (default 64).
    #[arg(long, value_name = "MIB")]
    pub min_free_mb: Option<u64>,
}

impl RetentionArgs {
    /// Puts these options over the configuration's `[storage]`.
    pub fn apply(&self, storage: &mut Storage) {
        set_value(&mut storage.retention, &self.retention);
        set_value(&mut storage.high_watermark, &self.high_watermark);
        set_value(&mut storage.min_free_mb, &self.min_free_mb);
    }
}

/// The spool options `[storage]` asks for.
pub fn spool_options(storage: &Storage) -> SpoolOptions {
    let mut options = SpoolOptions::default();
    options.retention = storage.retention.0;
    options.high_watermark_percent = storage.high_watermark;
    options
}

/// Builds the archive targets of `config` (see [`Config::archives`]), each under its name
/// ([`archive_names`]), signing their manifests with the site key ([`signing_key`]; without one, a warning).
pub fn build_targets(config: &Config) -> anyhow::Result<Vec<Target>> {
    // The key first: one that cannot be used stops here, before a target creates its directory.
    let key = signing_key(config)?;
    let archives = config.archives();
    let names = archive_names(&archives);
    let targets: Vec<Target> =
        archives.iter().zip(&names).map(|(a, name)| build_target(a, name)).collect::<anyhow::Result<_>>()?;
    match key {
        Some(key) => {
            for t in &targets {
                t.set_signing_key(key.clone());
            }
        }
        None => tracing::warn!(
            key_file = %signing_key_path(config).display(),
            "no signing key: manifest batches are written unsigned and `archive verify` reports them; \
             create one with `callvault config new-signing-key`"
        ),
    }
    Ok(targets)
}

/// The site's signing key file: `signing.key_file`, else [`DEFAULT_SIGNING_KEY`].
pub fn signing_key_path(config: &Config) -> PathBuf {
    config.signing.key_file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_SIGNING_KEY))
}

/// The site's signing key: `None` when `signing.key_file` is not set and the default file does
/// not exist; an error naming the file when it cannot be used (unreadable, open to others, not a
/// key).
pub fn signing_key(config: &Config) -> anyhow::Result<Option<SiteKey>> {
    let path = signing_key_path(config);
    if config.signing.key_file.is_none() && std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    Ok(Some(SiteKey::load(&path).context("signing.key_file")?))
}

/// One target. Errors name the target once (the target's own errors already start with it).
pub fn build_target(archive: &Archive, name: &str) -> anyhow::Result<Target> {
    let target = if let Some(url) = &archive.url {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let credentials = credentials(archive).with_context(|| format!("archive {name:?}"))?;
        Target::S3(s3_target(archive, name, rest, credentials)?)
    } else {
        let path = archive.path.clone().unwrap_or_default();
        let dir = LocalDir::new(name, &path)?;
        dir.set_retention_days(archive.retention_days);
        dir.set_link_from_spool(archive.link.unwrap_or(true));
        Target::LocalDir(dir)
    };
    if !archive.encrypt_to.is_empty() {
        let sealing =
            Sealing::new(&archive.encrypt_to).map_err(|e| anyhow::anyhow!("archive {name:?}: encrypt_to: {e}"))?;
        target.set_sealing(sealing);
    }
    Ok(target)
}

/// The S3 target for `s3://<rest>`.
fn s3_target(a: &Archive, name: &str, rest: &str, credentials: Credentials) -> anyhow::Result<S3Target> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("archive {name:?}: no bucket; write s3://BUCKET or s3://BUCKET/PREFIX");
    }
    let mut cfg = S3Config::new(name, bucket, a.region(), credentials);
    cfg.prefix = prefix.trim_matches('/').to_owned();
    cfg.site = a.site.clone().unwrap_or_else(host_name);
    cfg.endpoint = a.endpoint.clone();
    cfg.path_style = a.path_style;
    cfg.allow_http = a.allow_http;
    cfg.ca_file = a.ca_file.clone();
    cfg.multipart_threshold = a.multipart_mib.unwrap_or(16).max(1) * 1024 * 1024;
    cfg.bandwidth_limit = a.bandwidth_limit.map(|r| r.0);
    if let (Some(mode), Some(days)) = (a.object_lock, a.lock_days) {
        let mode = match mode {
            LockModeArg::Compliance => LockMode::Compliance,
            LockModeArg::Governance => LockMode::Governance,
        };
        cfg.object_lock = Some(ObjectLock { mode, retention: Duration::from_secs(u64::from(days) * 86_400) });
    }
    Ok(S3Target::new(cfg)?)
}

/// The credentials of an S3 archive (see the module documentation for the order).
pub fn credentials(a: &Archive) -> anyhow::Result<Credentials> {
    if let Some(file) = &a.credentials_file {
        check_secret_file(file)?;
        let profile = a.profile.as_deref().unwrap_or("default");
        return Credentials::from_file(file, profile)?.with_context(|| {
            format!(
                "credentials file {} has no [{profile}] with aws_access_key_id and aws_secret_access_key",
                file.display()
            )
        });
    }
    Ok(Credentials::from_environment(a.profile.as_deref())?)
}

/// Where an S3 archive's credentials come from, with the access key id and never the secret.
pub fn describe_credentials(a: &Archive) -> String {
    let from = if let Some(file) = &a.credentials_file {
        format!("from {}", file.display())
    } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
        "from the environment".to_owned()
    } else {
        "from the AWS credentials file".to_owned()
    };
    match credentials(a) {
        Ok(c) => format!("{from}: access key id {}, secret key <redacted>", c.access_key()),
        Err(e) => format!("{from}: NOT USABLE: {e:#}"),
    }
}

/// Checks that a file holding secrets is a regular file owned by root or by this process's
/// user, not writable by its group and closed to others.
pub fn check_secret_file(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!("cannot read the credentials file {}; check the path and permissions", path.display())
    })?;
    if !meta.is_file() {
        bail!("credentials file {} is not a regular file", path.display());
    }
    let mode = meta.permissions().mode() & 0o7777;
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != uid {
        bail!(
            "credentials file {} is owned by uid {}, neither root nor this process's user (uid {uid}); \
             chown root:callvault it",
            path.display(),
            meta.uid()
        );
    }
    if mode & 0o027 != 0 {
        bail!(
            "credentials file {} has mode {mode:04o}: it must not be writable by its group nor open to others; \
             chmod 0640 it (or 0600)",
            path.display()
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_must_be_closed_to_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n").unwrap();
        let archive =
            |path: &Path| Archive { credentials_file: Some(path.to_owned()), ..Archive::from_arg("s3://b/p") };
        for (mode, ok) in [(0o600, true), (0o640, true), (0o400, true), (0o644, false), (0o660, false), (0o604, false)]
        {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = credentials(&archive(&path));
            assert_eq!(result.is_ok(), ok, "mode {mode:o}: {result:?}");
            if let Err(e) = result {
                assert!(format!("{e:#}").contains(&format!("{mode:04o}")), "{e:#}");
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let shown = describe_credentials(&archive(&path));
        assert!(
            shown.contains("access key id AK") && !shown.contains("SK,") && shown.contains("<redacted>"),
            "{shown}"
        );
        let missing = credentials(&archive(&dir.path().join("nope"))).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
    }
}
