//! [`S3Target`]: ships recordings to an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
//! SeaweedFS, Wasabi, …) over HTTPS with SigV4, on tokio with rustls; no OpenSSL.
//!
//! # Object layout
//!
//! ```text
//! <prefix>/<site>/<YYYY>/<MM>/<DD>/<name>.wav       audio (and any other media files)
//! <prefix>/<site>/<YYYY>/<MM>/<DD>/<name>.json      the call record, uploaded last
//! <prefix>/<site>/<YYYY>/<MM>/<DD>/<name>~2.<ext>   a recording whose key holds other content
//! <prefix>/<site>/<YYYY>/<MM>/<DD>/manifest/seq-<10 digits>.jsonl
//!                                                  manifest batches of that day (see below)
//! ```
//!
//! `<YYYY>/<MM>/<DD>/<name>` is the spool key (the call's start date in UTC); an empty prefix or
//! site is left out. Each object carries the metadata `x-amz-meta-sha256` (lowercase hex of the
//! content) and `x-amz-meta-call-id`, and the store-verified checksum `x-amz-checksum-sha256`.
//! The call record lists the SHA-256 of the audio, so a consumer can check one against the other.
//!
//! # The manifest
//!
//! Each recording gets exactly one line of JSON in the manifest of its day, written after all
//! its objects, in numbered batch objects `manifest/seq-<N>.jsonl` created with
//! `If-None-Match: *`: the format, how a line is kept unique across replays, concurrent
//! shippers and crashes, and the guarantees are in [`manifest`](crate::target::manifest) (the
//! same for a directory archive). Batches are written at most once per
//! [`S3Config::manifest_linger`] (default 1 s) per day and target; while a shipment waits for
//! its batch it gives its shipper slot back, so the linger costs latency, not throughput. Each
//! write lists the day's `manifest/` (the store needs `s3:ListBucket`). The day's manifest is
//! every `manifest/*.jsonl` object of that day (version 0 batches of earlier releases included):
//!
//! ```sh
//! aws s3 cp --recursive s3://bucket/prefix/site/2024/01/01/manifest/ m/ && cat m/*.jsonl | jq .
//! ```
//!
//! # Invariants
//!
//! 1. Nothing in the bucket is overwritten or deleted: every object is created with
//!    `If-None-Match: *` (on `CompleteMultipartUpload` for large ones), so a retry after a lost
//!    answer cannot replace content. An existing object with the same size and SHA-256 counts as
//!    shipped; a different one sends every file of the recording to `<key>~2` (then `~3`, …),
//!    named in an error-level log line and [`Shipment::diverted`](crate::Shipment::diverted), as
//!    [`LocalDir`](crate::LocalDir) does. The key is chosen with one `HEAD`
//!    of the call record's object in the usual case: when it is absent (no complete recording
//!    there), the files go straight to conditional creates and only a `412 Precondition Failed`
//!    is looked into with a `HEAD`; when it is present, or a create meets different content,
//!    every file's object is checked before anything more is uploaded. (So a file uploaded
//!    before such a create failed may stay under the first key, complete but named by no
//!    manifest line — only when another writer left a recording without call record there, or
//!    writes one at the same moment.)
//! 2. Integrity: the spooled file is read and hashed before upload and must match its entry; the
//!    request's SigV4 payload hash and `x-amz-checksum-sha256` make the store verify what it
//!    received; afterwards a `HEAD` must report the expected size and checksum (for multipart,
//!    the checksum of the parts' checksums, `…-N`), and the object lock if one is configured.
//!    Only then does the next object go, and only after every object and the manifest line is
//!    the shipment confirmed.
//! 3. The audio goes before the call record: a consumer that sees `<name>.json` knows the rest
//!    of the recording is complete.
//! 4. Files above [`S3Config::multipart_threshold`] go by multipart upload in parts of
//!    [`S3Config::part_size`], each with its own checksum; a failed multipart upload is aborted.
//! 5. TLS is always verified (system roots plus an optional CA file); plain HTTP only when
//!    [`S3Config::allow_http`] says so, with a warning.
//!
//! # Crashes
//!
//! *Crash point `ShipAfterUpload`*: an object is stored and verified, the following objects (and
//! the manifest line) are not. Shipping again finds the stored objects identical, uploads the
//! rest and writes the line. A crash after every object and before the manifest line
//! (`ShipBeforeManifest`) or after the manifest write and before the spool records the
//! confirmation (`ShipAfterPublish`) ships again too: every object is found identical (nothing is
//! uploaded), and the line is written if it is not there yet — never twice. A multipart upload interrupted by a
//! crash is left incomplete in the store (invisible to readers); a bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` removes such leftovers.
//!
//! # Failures and retries
//!
//! A store failure is a [`ShipError::Store`] carrying an [`S3Error`], classified as follows:
//!
//! * retry the target with backoff: 5xx except 501, 408, 429, the codes `SlowDown`,
//!   `Throttling`, `RequestLimitExceeded`, `RequestTimeout`, `InternalError`,
//!   `ServiceUnavailable`; no answer (connection refused or reset, timeouts); an answer that is
//!   not understood;
//! * retry the entry: `BadDigest`, `XAmzContentSHA256Mismatch`, `IncompleteBody`, 409
//!   (`OperationAborted`, `ConditionalRequestConflict`), 412, `NoSuchUpload`, a `HEAD` after upload
//!   that does not match ([`S3Error::Verify`]), and a different object appearing while uploading
//!   ([`ShipError::Conflict`]); a damaged spooled file is [`ShipError::SourceMismatch`];
//! * permanent, the target stops until restart with one error naming the target, the bucket and
//!   what to do (every recording stays queued): every other 4xx — `InvalidAccessKeyId`,
//!   `SignatureDoesNotMatch`, `AccessDenied`, `NoSuchBucket`, wrong region, expired token, a
//!   skewed clock, object lock on a bucket without it — 501, a TLS failure (untrusted certificate,
//!   wrong host name), and a store that ignores a requested object lock.
//!
//! [`ShipError::Store`]: crate::ShipError::Store
//! [`ShipError::Conflict`]: crate::ShipError::Conflict
//! [`ShipError::SourceMismatch`]: crate::ShipError::SourceMismatch

mod client;
mod credentials;
mod error;
mod sigv4;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

pub use credentials::{Credentials, CredentialsError};
pub use error::S3Error;

use super::{ShipError, ShipSlot, Shipment};
use crate::spool::{Entry, Spool};
use client::{Client, ClientConfig, Req};

/// Default size above which a file is uploaded in parts: 16 MiB.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Default part size of multipart uploads: 8 MiB (S3 requires at least 5 MiB but for the last).
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// The smallest part size S3 accepts.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Default time a manifest batch collects lines: 1 s, so at most 86,400 manifest objects per day
/// directory and target.
pub const DEFAULT_MANIFEST_LINGER: Duration = Duration::from_secs(1);

/// S3 Object Lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Nobody, not even the account's root user, can delete or shorten the retention.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can delete or shorten the retention.
    Governance,
}

impl LockMode {
    /// The header value: `COMPLIANCE` or `GOVERNANCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// Write-once retention applied to every uploaded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    /// The lock mode.
    pub mode: LockMode,
    /// How long from upload each object stays locked.
    pub retention: Duration,
}

/// Configuration of an [`S3Target`]. Build it with [`S3Config::new`] and set the fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct S3Config {
    /// Target name, unique among the targets; confirmations are recorded under it.
    pub name: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Site name: the key level after the prefix, so that several recorders can share a bucket
    /// (may be empty).
    pub site: String,
    /// `scheme://host[:port]` of the store; `None` is AWS: `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Region used for signing.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-host style
    /// (`bucket.endpoint/key`); most self-hosted stores need it.
    pub path_style: bool,
    /// Allow an `http://` endpoint (logged as a warning).
    pub allow_http: bool,
    /// PEM file of CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Credentials to sign with.
    pub credentials: Credentials,
    /// Object lock to apply to every object, if any.
    pub object_lock: Option<ObjectLock>,
    /// Files larger than this go by multipart upload.
    pub multipart_threshold: u64,
    /// Part size of multipart uploads (at least [`MIN_PART_SIZE`]).
    pub part_size: u64,
    /// Average upload rate limit in bytes per second, if any.
    pub bandwidth_limit: Option<u64>,
    /// Time allowed for a request, plus one second per 256 KiB of body. Default 30 s.
    pub request_timeout: Duration,
    /// How long a manifest batch collects lines, from its first line, before it is written: at
    /// most one manifest object per day directory per this period (one write at a time), and each
    /// shipment waits about this long for its line. Shipments waiting for their line do not hold
    /// a [`ShipperConfig::concurrency`](crate::ShipperConfig::concurrency) slot. Default
    /// [`DEFAULT_MANIFEST_LINGER`] (1 s).
    pub manifest_linger: Duration,
}

impl S3Config {
    /// A configuration with defaults: no prefix or site, AWS endpoint, virtual-host addressing,
    /// HTTPS only, no object lock, 16 MiB multipart threshold, 8 MiB parts, no bandwidth limit,
    /// 30 s request timeout, 1 s manifest linger.
    pub fn new(name: &str, bucket: &str, region: &str, credentials: Credentials) -> S3Config {
        S3Config {
            name: name.to_owned(),
            bucket: bucket.to_owned(),
            prefix: String::new(),
            site: String::new(),
            endpoint: None,
            region: region.to_owned(),
            path_style: false,
            allow_http: false,
            ca_file: None,
            credentials,
            object_lock: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
            bandwidth_limit: None,
            request_timeout: Duration::from_secs(30),
            manifest_linger: DEFAULT_MANIFEST_LINGER,
        }
    }
}

/// What the store holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// `x-amz-checksum-sha256` as the store reports it (base64; `…-N` for multipart), if any.
    pub checksum_sha256: Option<String>,
    /// `x-amz-meta-sha256`, the SHA-256 recorded at upload (lowercase hex), if any.
    pub meta_sha256: Option<String>,
    /// Object lock mode, if the object is locked.
    pub lock_mode: Option<String>,
    /// Object lock retain-until date, if the object is locked.
    pub lock_until: Option<String>,
}

impl ObjectInfo {
    /// Whether this object holds content with lowercase hex SHA-256 `sha256` and `size` bytes,
    /// judged by the store's checksum (single-part uploads) or else the recorded metadata.
    pub fn matches(&self, sha256: &str, size: u64) -> bool {
        if self.size != size {
            return false;
        }
        match &self.checksum_sha256 {
            Some(sum) if !sum.contains('-') => hex_to_base64(sha256).is_some_and(|b| &b == sum),
            _ => self.meta_sha256.as_deref() == Some(sha256),
        }
    }
}

/// An archive target in an S3-compatible bucket; see the [module documentation](self).
/// Cloning is cheap and clones share the connection pool.
#[derive(Debug, Clone)]
pub struct S3Target {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    bucket: String,
    /// `<prefix>/<site>/`, or shorter when they are empty; empty when both are.
    base: String,
    site: String,
    object_lock: Option<ObjectLock>,
    multipart_threshold: u64,
    part_size: u64,
    client: Client,
    manifest: crate::target::manifest::Writer,
}

impl S3Target {
    /// Checks the configuration and sets up the HTTP client. Does not contact the store, so the
    /// recorder starts while the store is unreachable; problems with credentials or the bucket
    /// show as the first shipment's error.
    ///
    /// Fails with [`ShipError::S3Config`] if the name or bucket is unusable, the endpoint is not
    /// an `https://` URL (or `http://` without [`S3Config::allow_http`]), the CA file cannot be
    /// read, or the part size is below [`MIN_PART_SIZE`].
    pub fn new(cfg: S3Config) -> Result<S3Target, ShipError> {
        let config = |problem: String| ShipError::S3Config { target: cfg.name.clone(), problem };
        if cfg.name.is_empty() {
            return Err(config("the target has no name; give it one".into()));
        }
        check_bucket_name(&cfg.bucket).map_err(config)?;
        for (what, value) in [("prefix", &cfg.prefix), ("site", &cfg.site)] {
            let ok = value.is_empty()
                || value.split('/').all(|c| !c.is_empty() && !c.starts_with('.') && !c.contains(['\\', '\0']));
            if !ok {
                return Err(config(format!(
                    "{what} {value:?} must be empty or plain path components without leading or trailing '/'"
                )));
            }
        }
        if cfg.part_size < MIN_PART_SIZE {
            return Err(config(format!("part size {} is below the 5 MiB S3 requires", cfg.part_size)));
        }
        if cfg.region.is_empty() {
            return Err(config("the region is empty; set one (e.g. us-east-1)".into()));
        }
        let endpoint = cfg.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
        let client = Client::new(ClientConfig {
            endpoint: &endpoint,
            bucket: &cfg.bucket,
            region: &cfg.region,
            path_style: cfg.path_style,
            allow_http: cfg.allow_http,
            ca_file: cfg.ca_file.as_deref(),
            creds: cfg.credentials.clone(),
            timeout: cfg.request_timeout,
            bandwidth_limit: cfg.bandwidth_limit,
        })
        .map_err(config)?;
        let base: String = [cfg.prefix.as_str(), cfg.site.as_str()]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .collect();
        Ok(S3Target {
            inner: Arc::new(Inner {
                name: cfg.name,
                bucket: cfg.bucket,
                base,
                site: cfg.site,
                object_lock: cfg.object_lock,
                multipart_threshold: cfg.multipart_threshold.max(1),
                part_size: cfg.part_size,
                client,
                manifest: crate::target::manifest::Writer::new(cfg.manifest_linger),
            }),
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        self.inner.client.endpoint().to_string()
    }

    /// Where recordings go: `<endpoint>/<bucket>/<prefix>/<site>/` (whatever the addressing
    /// style).
    pub fn location(&self) -> String {
        format!("{}/{}/{}", self.endpoint().trim_end_matches('/'), self.inner.bucket, self.inner.base)
    }

    /// The object key of file `ext` of spool key `key`: `<prefix>/<site>/<key>.<ext>`.
    pub fn object_key(&self, key: &str, ext: &str) -> String {
        format!("{}{key}.{ext}", self.inner.base)
    }

    /// The key prefix of day `day` (`YYYY/MM/DD`): `<prefix>/<site>/<day>/`.
    pub fn day_prefix(&self, day: &str) -> String {
        format!("{}{}/", self.inner.base, day.trim_matches('/'))
    }

    /// Uploads and verifies every file of `entry`, then its manifest line; gives `slot` back
    /// while it waits for the manifest batch.
    pub(crate) async fn ship(
        &self,
        spool: &Spool,
        entry: &Entry,
        out: &super::Outgoing,
        slot: &ShipSlot,
    ) -> Result<Shipment, ShipError> {
        upload::ship(self, spool, entry, out, slot).await
    }

    /// What the store holds under the full object key `key`, or `None` if nothing.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ShipError> {
        self.inner.head(key).await.map_err(|e| self.store_err(e))
    }

    /// The content of the object at the full key `key` (an error if there is none).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, ShipError> {
        self.gather(key).await.and_then(|(r, body)| r.ok().map(|_| body)).map_err(|e| self.store_err(e))
    }

    /// Every object whose full key starts with `prefix`, in key order, with its size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, ShipError> {
        self.list_after(prefix, None).await
    }

    /// [`S3Target::list`], but only the keys that sort after `after` (S3's `start-after`).
    pub async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<(String, u64)>, ShipError> {
        self.inner.list(prefix, after).await.map_err(|e| self.store_err(e))
    }

    /// Creates the bucket (with object lock enabled if `object_lock`); an existing bucket owned
    /// by these credentials is fine. For tests and first-time set-up.
    pub async fn create_bucket(&self, object_lock: bool) -> Result<(), ShipError> {
        let mut req = Req::new("create bucket", Method::PUT, None);
        if object_lock {
            req = req.header("x-amz-bucket-object-lock-enabled", "true");
        }
        let resp = self.inner.client.send(req).await.map_err(|e| self.store_err(e))?;
        if resp.status == 409 && resp.error().code() == Some("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        resp.ok().map(|_| ()).map_err(|e| self.store_err(e))
    }

    /// Every manifest line of day `day` (`YYYY/MM/DD`), in key order, as many times as each is
    /// there ([`manifest::read_day`](crate::target::manifest::read_day)).
    pub async fn read_manifest(&self, day: &str) -> Result<Vec<serde_json::Value>, ShipError> {
        let lines = crate::target::manifest::read_day(&crate::Target::S3(self.clone()), day).await?;
        Ok(lines.into_iter().map(|l| l.value).collect())
    }

    /// `<prefix>/<site>/` (shorter when they are empty; empty when both are).
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// The site name (may be empty).
    pub fn site(&self) -> &str {
        &self.inner.site
    }

    /// The manifest writer.
    pub(crate) fn manifest_writer(&self) -> &crate::target::manifest::Writer {
        &self.inner.manifest
    }

    /// The content of the object at the full key `key`, or `None` when the bucket has no such
    /// object (a missing bucket is an error).
    /// Gathered as it arrives, so only a stall limits it in time, not its length (a sealed
    /// recording opened whole can be gigabytes).
    pub async fn fetch(&self, key: &str) -> Result<Option<Vec<u8>>, ShipError> {
        match self.gather(key).await {
            Ok((r, _)) if no_such_object(&r) => Ok(None),
            other => other.and_then(|(r, body)| r.ok().map(|_| Some(body))).map_err(|e| self.store_err(e)),
        }
    }

    /// A `GET` of `key`: the answer, and its body (when successful) gathered as it arrived.
    async fn gather(&self, key: &str) -> Result<(client::Resp, Vec<u8>), S3Error> {
        let mut body = Vec::new();
        let req = Req::new("download", Method::GET, Some(key));
        let resp = self.inner.client.send_streamed(req, &mut |chunk| body.extend_from_slice(chunk)).await?;
        Ok((resp, body))
    }

    /// The SHA-256 (hex) and size of the object `key`, hashed as its body arrives, or `None`
    /// if there is none.
    pub async fn hash(&self, key: &str) -> Result<Option<(String, u64)>, ShipError> {
        use sha2::Digest;
        let (mut hasher, mut size) = (sha2::Sha256::new(), 0u64);
        let resp = self
            .inner
            .client
            .send_streamed(Req::new("download", Method::GET, Some(key)), &mut |chunk| {
                hasher.update(chunk);
                size += chunk.len() as u64;
            })
            .await;
        match resp {
            Ok(r) if no_such_object(&r) => Ok(None),
            other => other
                .and_then(|r| r.ok())
                .map(|_| Some((hex::encode(hasher.finalize()), size)))
                .map_err(|e| self.store_err(e)),
        }
    }

    /// Copies the object `key` into `dest` as its body arrives, hashing it: its SHA-256 (hex)
    /// and size, or `None` if there is none.
    pub async fn download(&self, key: &str, dest: &std::path::Path) -> Result<Option<(String, u64)>, ShipError> {
        use std::io::Write;
        let file = std::fs::File::create(dest).map_err(|e| ShipError::Download { path: dest.to_owned(), source: e })?;
        let mut tee = filehash::Tee::new(std::io::BufWriter::with_capacity(filehash::IO_BUF, file));
        let mut failed = None;
        let resp = self
            .inner
            .client
            .send_streamed(Req::new("download", Method::GET, Some(key)), &mut |chunk| {
                if failed.is_none() {
                    failed = tee.write_all(chunk).err();
                }
            })
            .await;
        let found = match resp {
            Ok(r) if no_such_object(&r) => false,
            other => other.and_then(|r| r.ok()).map(|_| true).map_err(|e| self.store_err(e))?,
        };
        if let Some(e) = failed.or_else(|| tee.flush().err()) {
            return Err(ShipError::Download { path: dest.to_owned(), source: e });
        }
        Ok(found.then(|| tee.finish()))
    }

    /// Creates the object `key` with `body` unless something is there, and verifies it.
    pub(crate) async fn create(&self, key: &str, body: Vec<u8>) -> Result<crate::target::Created, ShipError> {
        use crate::target::Created;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body));
        let size = body.len() as u64;
        let ext = key.rsplit('.').next().unwrap_or_default();
        let meta = upload::Meta { sha256: &sha, call_id: None, content_type: upload::content_type(ext) };
        Ok(match upload::put_verified(self, key, body, size, &meta).await? {
            upload::Put::Created => Created::New,
            upload::Put::Identical => Created::Identical,
            upload::Put::Taken => Created::Taken,
        })
    }

    /// The names one level under the prefix that are not years: the sites sharing the bucket's
    /// prefix (when this target has a site, its own is among them).
    pub async fn sites(&self) -> Result<Vec<String>, ShipError> {
        let parent = if self.inner.site.is_empty() {
            self.inner.base.clone()
        } else {
            self.inner.base.strip_suffix(&format!("{}/", self.inner.site)).unwrap_or_default().to_owned()
        };
        let dirs = self.inner.list_dirs(&parent).await.map_err(|e| self.store_err(e))?;
        Ok(dirs
            .into_iter()
            .filter_map(|d| d.strip_prefix(&parent).map(|n| n.trim_end_matches('/').to_owned()))
            .filter(|n| !(n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit())))
            .collect())
    }

    /// Puts the current version of the object `key` under legal hold (`on`) or releases it
    /// (PutObjectLegalHold). The bucket must have object lock enabled; a store without it answers
    /// with an error, passed on as it is.
    pub async fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), ShipError> {
        use base64::Engine;
        use md5::Digest as _;
        let status = if on { "ON" } else { "OFF" };
        let body = format!(
            r#"<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{status}</Status></LegalHold>"#
        )
        .into_bytes();
        // PutObjectLegalHold requires Content-MD5 (an integrity check of the body, not a security one).
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let req = Req::new("legal hold", Method::PUT, Some(key)).query("legal-hold", "").header("content-md5", md5);
        let resp = self.inner.client.send(req.body(body, None)).await.map_err(|e| self.store_err(e))?;
        resp.ok().map(|_| ()).map_err(|e| self.store_err(e))
    }

    /// Whether the current version of the object `key` is under legal hold (GetObjectLegalHold):
    /// `Some(true)` on, `Some(false)` off or never set, `None` when there is no such object.
    pub async fn legal_hold(&self, key: &str) -> Result<Option<bool>, ShipError> {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct LegalHold {
            #[serde(default)]
            status: String,
        }
        let req = Req::new("legal hold", Method::GET, Some(key)).query("legal-hold", "");
        let resp = self.inner.client.send(req).await.map_err(|e| self.store_err(e))?;
        match (resp.status, resp.error().code()) {
            (404, Some("NoSuchObjectLegalHold")) => return Ok(Some(false)),
            (404, Some("NoSuchKey")) => return Ok(None),
            _ => {}
        }
        let resp = resp.ok().map_err(|e| self.store_err(e))?;
        let hold: LegalHold = resp.xml().map_err(|e| self.store_err(e))?;
        Ok(Some(hold.status.eq_ignore_ascii_case("ON")))
    }

    fn store_err(&self, error: S3Error) -> ShipError {
        ShipError::Store { target: self.inner.name.clone(), bucket: self.inner.bucket.clone(), error: Box::new(error) }
    }
}

impl Inner {
    /// `HEAD` of `key` with checksums; `None` on 404. A refused `HEAD` (no body, so no error
    /// code) is repeated as a one-byte `GET` to learn the store's error code.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        let req = Req::new("check", Method::HEAD, Some(key)).header("x-amz-checksum-mode", "ENABLED");
        let resp = self.client.send(req).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&resp.status) {
            let get = Req::new("check", Method::GET, Some(key)).header("range", "bytes=0-0");
            let detail = self.client.send(get).await?;
            if !(200..300).contains(&detail.status) && detail.status != 404 {
                return Err(detail.error());
            }
            return Err(resp.error());
        }
        let header = |name: &str| resp.header(name).map(str::to_owned);
        let size = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| resp.protocol("HEAD answer without Content-Length".into()))?;
        Ok(Some(ObjectInfo {
            key: key.to_owned(),
            size,
            checksum_sha256: header("x-amz-checksum-sha256"),
            meta_sha256: header("x-amz-meta-sha256"),
            lock_mode: header("x-amz-object-lock-mode"),
            lock_until: header("x-amz-object-lock-retain-until-date"),
        }))
    }

    /// The common prefixes one `/` below `prefix`.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut dirs = self.list_all(prefix, Some("/"), None).await?.1;
        dirs.sort();
        Ok(dirs)
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<(String, u64)>, S3Error> {
        let mut objects = self.list_all(prefix, None, after).await?.0;
        objects.sort();
        Ok(objects)
    }

    /// Every page of ListObjectsV2 under `prefix` (after the key `start_after`, if given): the
    /// objects (key, size) and, with a `delimiter`, the common prefixes.
    async fn list_all(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
    ) -> Result<(Vec<(String, u64)>, Vec<String>), S3Error> {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct ListBucketResult {
            #[serde(default)]
            contents: Vec<Contents>,
            #[serde(default)]
            common_prefixes: Vec<CommonPrefix>,
            #[serde(default)]
            is_truncated: bool,
            #[serde(default)]
            next_continuation_token: Option<String>,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Contents {
            key: String,
            size: u64,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct CommonPrefix {
            prefix: String,
        }
        let (mut objects, mut dirs) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut req = Req::new("list", Method::GET, None).query("list-type", "2").query("prefix", prefix);
            if let Some(d) = delimiter {
                req = req.query("delimiter", d);
            }
            if let Some(a) = start_after {
                req = req.query("start-after", a);
            }
            if let Some(t) = &token {
                req = req.query("continuation-token", t);
            }
            let resp = self.client.send(req).await?.ok()?;
            let page: ListBucketResult = resp.xml()?;
            objects.extend(page.contents.into_iter().map(|c| (c.key, c.size)));
            dirs.extend(page.common_prefixes.into_iter().map(|c| c.prefix));
            match page.next_continuation_token {
                Some(t) if page.is_truncated && !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok((objects, dirs))
    }
}

/// Checks an S3 bucket name: 3–63 lowercase letters, digits, `-` and `.`.
fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("bucket name {bucket:?} is not valid: 3 to 63 lowercase letters, digits, '-' and '.'"))
    }
}

/// Whether a `GET`'s answer says the bucket has no such object (a missing bucket is an error).
fn no_such_object(r: &client::Resp) -> bool {
    r.status == 404 && r.error().code() != Some("NoSuchBucket")
}

/// Base64 of the bytes of a lowercase hex string.
fn hex_to_base64(hex_text: &str) -> Option<String> {
    use base64::Engine;
    hex::decode(hex_text).ok().map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed answer is limited by stalls, not by its length: with a request timeout of
    /// 300 ms, a 16 MiB object read slowly (over seconds) downloads whole and hashes right, where
    /// a gathered answer of the same object in the same time fails. Against the real test
    /// server (`scripts/s3-server.sh`); skipped without it.
    #[test]
    fn a_long_download_is_limited_by_stalls_not_by_its_length() {
        use sha2::Digest;
        let test = "a_long_download_is_limited_by_stalls_not_by_its_length";
        let Some(mut cfg) = crate::tests::s3_test_config(test, "cv-stream") else { return };
        let writer = S3Target::new(cfg.clone()).unwrap();
        cfg.request_timeout = Duration::from_millis(300);
        let t = S3Target::new(cfg).unwrap();
        let body: Vec<u8> = (0..16u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let want = hex::encode(sha2::Sha256::digest(&body));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            writer.create_bucket(false).await.unwrap();
            writer.create("big.bin", body).await.unwrap();
            let started = std::time::Instant::now();
            // A slow reader: 100 ms for every MiB (1.6 s in all).
            let pace = |read: &mut u64, n: usize| {
                let before = *read >> 20;
                *read += n as u64;
                for _ in before..*read >> 20 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            };
            let (mut hasher, mut read) = (sha2::Sha256::new(), 0u64);
            let resp = t
                .inner
                .client
                .send_streamed(Req::new("download", Method::GET, Some("big.bin")), &mut |chunk| {
                    hasher.update(chunk);
                    pace(&mut read, chunk.len());
                })
                .await
                .unwrap();
            assert_eq!(resp.status, 200);
            assert_eq!(hex::encode(hasher.finalize()), want);
            assert!(started.elapsed() > Duration::from_secs(1), "the reading was not slow: {:?}", started.elapsed());
            // Gathered, the same answer must come within the request's time: a slow network
            // (here a paced reader) fails it.
            let (resp, _, _) =
                t.inner.client.request(Req::new("download", Method::GET, Some("big.bin")), false).await.unwrap();
            let mut resp = resp;
            let (mut failed, mut read) = (false, 0u64);
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => pace(&mut read, chunk.len()),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "a gathered answer is limited to the request's time");
        });
    }

    fn target(prefix: &str, site: &str) -> S3Target {
        let mut cfg = S3Config::new("s3", "bucket", "us-east-1", Credentials::new("a", "b", None));
        cfg.prefix = prefix.into();
        cfg.site = site.into();
        cfg.endpoint = Some("https://store.example:9000".into());
        S3Target::new(cfg).unwrap()
    }

    #[test]
    fn keys_are_prefix_site_date_name() {
        let key = "2016/11/26/20161126T144259Z_a_b_1a2b";
        assert_eq!(target("rec", "hq").object_key(key, "wav"), format!("rec/hq/{key}.wav"));
        assert_eq!(target("", "hq").object_key(key, "json"), format!("hq/{key}.json"));
        assert_eq!(target("a/b", "").object_key(key, "wav"), format!("a/b/{key}.wav"));
        assert_eq!(target("", "").day_prefix("2016/11/26"), "2016/11/26/");
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let creds = Credentials::new("a", "b", None);
        let try_cfg = |f: &dyn Fn(&mut S3Config)| {
            let mut cfg = S3Config::new("s3", "bucket", "us-east-1", creds.clone());
            f(&mut cfg);
            S3Target::new(cfg).map(|_| ()).map_err(|e| e.to_string())
        };
        assert!(try_cfg(&|_| {}).is_ok());
        assert!(try_cfg(&|c| c.bucket = "Bad_Bucket".into()).unwrap_err().contains("Bad_Bucket"));
        assert!(try_cfg(&|c| c.prefix = "/x".into()).unwrap_err().contains("prefix"));
        let http = try_cfg(&|c| c.endpoint = Some("http://127.0.0.1:9000".into())).unwrap_err();
        assert!(http.contains("--s3-allow-http"), "{http}");
        assert!(
            try_cfg(&|c| {
                c.endpoint = Some("http://127.0.0.1:9000".into());
                c.allow_http = true;
            })
            .is_ok()
        );
        let ca = try_cfg(&|c| c.ca_file = Some("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(ca.contains("/nonexistent/ca.pem"), "{ca}");
        assert!(try_cfg(&|c| c.part_size = 1024).is_err());
    }

    #[test]
    fn object_info_matches_by_checksum_or_metadata() {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let b64 = hex_to_base64(sha).unwrap();
        let info = ObjectInfo {
            key: "k".into(),
            size: 3,
            checksum_sha256: Some(b64),
            meta_sha256: None,
            lock_mode: None,
            lock_until: None,
        };
        assert!(info.matches(sha, 3));
        assert!(!info.matches(sha, 4));
        let multipart = ObjectInfo { checksum_sha256: Some("xyz-2".into()), meta_sha256: Some(sha.into()), ..info };
        assert!(multipart.matches(sha, 3));
        assert!(!multipart.matches(&"0".repeat(64), 3));
    }
}
