//! Helpers of the S3 tests: find the test server `scripts/s3-server.sh` started (or record the
//! test as skipped), make unique buckets, spools and recordings.

#![allow(clippy::disallowed_methods)] // test support times what it waits for (clippy.toml)
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::support::{Dirs, sha};
use callvault_shipper::{
    Credentials, NewRecording, S3Config, S3Target, ShipReport, Shipper, ShipperConfig, Spool, Target,
};
use sha2::{Digest, Sha256};

/// Where the test server is, from the variables `scripts/s3-server.sh env` prints.
#[derive(Debug, Clone)]
pub struct Server {
    pub endpoint: String,
    pub http_endpoint: String,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub limited_access_key: String,
    pub limited_secret_key: String,
    pub script: PathBuf,
}

/// The test server, or `None` after recording the test as skipped (in `$CALLVAULT_SKIP_LOG`
/// and on stdout): a test without its server never passes silently.
pub fn server(test: &str) -> Option<Server> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("CALLVAULT_S3_ENDPOINT").is_none() {
        let line = format!(
            "skipped: {test}: no S3 test server (run scripts/s3-server.sh start and eval \"$(scripts/s3-server.sh env)\")"
        );
        println!("{line}");
        if let Some(log) = var("CALLVAULT_SKIP_LOG")
            && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log)
        {
            let _ = writeln!(f, "{line}");
        }
        return None;
    }
    Some(Server::from_vars(|name| var(name)))
}

impl Server {
    /// The server described by variables named like those `scripts/s3-server.sh env` prints.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Server {
        let get = |name: &str| var(name).unwrap_or_else(|| panic!("{name} is not set"));
        Server {
            endpoint: get("CALLVAULT_S3_ENDPOINT"),
            http_endpoint: get("CALLVAULT_S3_HTTP_ENDPOINT"),
            ca: get("CALLVAULT_S3_CA").into(),
            other_ca: get("CALLVAULT_S3_OTHER_CA").into(),
            region: get("CALLVAULT_S3_REGION"),
            access_key: get("CALLVAULT_S3_ACCESS_KEY"),
            secret_key: get("CALLVAULT_S3_SECRET_KEY"),
            limited_access_key: get("CALLVAULT_S3_LIMITED_ACCESS_KEY"),
            limited_secret_key: get("CALLVAULT_S3_LIMITED_SECRET_KEY"),
            script: get("CALLVAULT_S3_SERVER_SCRIPT").into(),
        }
    }
}

impl Server {
    /// A configuration for `bucket` over HTTPS with the test CA, path-style, prefix "calls",
    /// site "test".
    pub fn config(&self, bucket: &str) -> S3Config {
        let creds = Credentials::new(&self.access_key, &self.secret_key, None);
        let mut cfg = S3Config::new("s3", bucket, &self.region, creds);
        cfg.endpoint = Some(self.endpoint.clone());
        cfg.ca_file = Some(self.ca.clone());
        cfg.path_style = true;
        cfg.prefix = "calls".into();
        cfg.site = "test".into();
        cfg.manifest_linger = Duration::from_millis(20);
        cfg
    }

    /// Creates a fresh bucket named after `test` (with object lock if asked) and returns a
    /// target for it.
    pub fn bucket(&self, test: &str, object_lock: bool) -> S3Target {
        let name = unique_bucket(test);
        let target = S3Target::new(self.config(&name)).unwrap();
        block_on(target.create_bucket(object_lock)).unwrap();
        target
    }
}

/// A bucket name unique to this run: `cv-<test>-<random>`.
pub fn unique_bucket(test: &str) -> String {
    let mut short: String =
        test.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(30).collect();
    short = short.trim_matches('-').to_owned();
    let random =
        hex::encode(&Sha256::digest(format!("{test}{:?}{}", std::time::SystemTime::now(), std::process::id()))[..4]);
    format!("cv-{short}-{random}")
}

/// Runs a future on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Deterministic pseudo-audio of `len` bytes.
pub fn audio(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

impl Dirs {
    /// Writes and fsyncs a recording (audio + call record) in the work directory.
    pub fn recording(&mut self, key: &str, wav: &[u8]) -> NewRecording {
        let name = key.rsplit('/').next().unwrap();
        let json = serde_json::json!({"call_id": format!("{name}@test"), "audio": {"sha256": sha(wav)}});
        let json = serde_json::to_vec(&json).unwrap();
        let mut rec = self.files(key, &[("wav", wav), ("json", &json)]);
        rec.summary = serde_json::json!({"call_id": format!("{name}@test"), "from": "alice", "to": "bob",
            "state": "completed", "start": "2016-11-26T14:42:59Z", "duration_s": 12.5});
        rec
    }

    pub fn open(&self) -> Arc<Spool> {
        Arc::new(Spool::open(&self.spool).unwrap())
    }
}

pub fn fast() -> ShipperConfig {
    ShipperConfig { concurrency: 4, retry_initial: Duration::from_millis(20), retry_max: Duration::from_millis(200) }
}

/// Ships everything queued to `target` and returns the report.
pub fn ship(spool: &Arc<Spool>, target: &S3Target, deadline: Duration) -> ShipReport {
    Shipper::start(Arc::clone(spool), vec![Target::S3(target.clone())], fast()).unwrap().drain(Some(deadline))
}

/// Every object in the target's bucket (all prefixes), with its content.
pub fn all_objects(target: &S3Target) -> Vec<(String, Vec<u8>)> {
    block_on(async {
        let mut out = Vec::new();
        for (key, size) in target.list("").await.unwrap() {
            let body = target.get(&key).await.unwrap();
            assert_eq!(body.len() as u64, size, "{key}");
            out.push((key, body));
        }
        out
    })
}

/// The objects that are not manifest batches.
pub fn recording_objects(target: &S3Target) -> Vec<(String, Vec<u8>)> {
    all_objects(target).into_iter().filter(|(k, _)| !k.contains("/manifest/")).collect()
}

pub fn path_text(p: &Path) -> String {
    p.display().to_string()
}
