//! The configuration: one TOML file (`/etc/callvault/callvault.toml` unless `--config` names
//! another), with the command line on top of it.
//!
//! Every option of `run`, `replay`, `ship` and `archive` has a key here; `deploy/callvault.toml`
//! documents each one. Resolution is: built-in defaults, then the file, then the command line.
//! A file with an unknown key, a value of the wrong type or an impossible value is rejected at
//! start with the file, line and key named and a hint ([`load`]); so is an impossible value given
//! on the command line.
//!
//! Secrets (S3 keys) are never read from this file or the command line: they come from the
//! environment, the AWS credentials file, or a credentials file that an `[[archive]]` names
//! (`credentials_file`), whose ownership and mode are checked (`crate::targets`).

mod load;
mod show;
mod values;

use std::path::PathBuf;

use capture::limits::{Limits, Timeouts};
use serde::{Deserialize, Serialize};

pub(crate) use load::check_command_line;
pub use load::{ConfigError, Problem, load, load_text, locate_default};
pub use show::show;
pub use values::{AudioFormat, AudioLayout, LockModeArg, LogFormat, Rate, RetentionPolicy};

/// Where the configuration file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/callvault/callvault.toml";

/// The whole configuration. Each section is a table of the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[capture]`: what to listen to.
    pub capture: Capture,
    /// `[storage]`: the data directory and local retention.
    pub storage: Storage,
    /// `[recording]`: recording format and threads.
    pub recording: Recording,
    /// `[timeouts]`: capture-time timers, in seconds.
    pub timeouts: Timeouts,
    /// `[limits]`: caps on network-fed state.
    pub limits: Limits,
    /// `[[archive]]`: where every recording is copied (each entry one target).
    pub archive: Vec<Archive>,
    /// `[shipping]`: how recordings are shipped.
    pub shipping: Shipping,
    /// `[log]`: logging.
    pub log: Log,
    /// `[service]`: the account callvault runs as when started as root.
    pub service: Service,
    /// `[http]`: listen addresses of the HTTP endpoints (metrics and health; the API).
    pub http: Http,
    /// `[metrics]`: the metrics text file and the health thresholds.
    pub metrics: Metrics,
    /// `[hep]`: export of SIP and quality reports to a HOMER collector (off by default).
    pub hep: Hep,
    /// `[signing]`: the site key that signs the archive's manifests.
    pub signing: Signing,
}

/// Where the site's signing key is looked for when `signing.key_file` is not set.
pub const DEFAULT_SIGNING_KEY: &str = "/etc/callvault/signing.key";

/// `[signing]`: the site's Ed25519 key (PKCS#8 PEM, mode 0600) that signs every manifest batch
/// written to the archives. Without `key_file`, [`DEFAULT_SIGNING_KEY`] is used when it exists;
/// when it does not, batches are written unsigned (a warning at start; `archive verify` reports
/// each as unsigned). A `key_file` that is set must be usable, or nothing starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signing {
    /// The private key file (`callvault config new-signing-key` creates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// `[capture]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capture {
    /// Interfaces captured into one pipeline (two SPAN ports, both directions of a TAP).
    pub interfaces: Vec<String>,
    /// BPF capture filter; empty captures everything.
    pub filter: String,
    /// Kernel capture buffer per interface, in MiB.
    pub buffer_mib: u32,
    /// Bytes captured per packet.
    pub snaplen: u32,
    /// Promiscuous mode (needed on a SPAN port).
    pub promiscuous: bool,
}

impl Default for Capture {
    fn default() -> Self {
        Capture { interfaces: Vec::new(), filter: String::new(), buffer_mib: 256, snaplen: 65_535, promiscuous: true }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Data directory: recordings in progress, the spool and the local copies.
    pub data_dir: PathBuf,
    /// Local copies of shipped recordings: keep, delete, days:N or watermark:P.
    pub retention: RetentionPolicy,
    /// Disk usage (percent) above which disk pressure is reported at error level.
    pub high_watermark: u8,
    /// Free space (MiB) kept for call records; 0 disables the reserve.
    pub min_free_mb: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("callvault-data"),
            retention: RetentionPolicy::default(),
            high_watermark: 90,
            min_free_mb: 64,
        }
    }
}

/// `[recording]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// wav, flac or wav-g711.
    pub audio_format: AudioFormat,
    /// stereo, mono or split.
    pub audio_layout: AudioLayout,
    /// Rate (Hz) Opus is decoded and its calls recorded at: 16000 or 48000.
    pub opus_rate: u32,
    /// Keep each call's own packets as a pcap beside its recording.
    pub keep_pcap: bool,
    /// How long (ms) a position in the recording waits for late packets.
    pub reorder_ms: u32,
    /// Mixer threads; 0: one per CPU, at most 4.
    pub mixers: usize,
    /// Threads that make finished recordings durable (they mostly wait on fsync); as many
    /// again join while a backlog waits.
    pub finishers: usize,
    /// DTMF code that pauses recording (PCI DSS), e.g. `*1`; empty: no pausing.
    pub pause_dtmf: String,
    /// DTMF code that resumes it, e.g. `*2`.
    pub resume_dtmf: String,
    /// SIP header whose value in a request of the call pauses (`pause`, `on`, ...) or resumes
    /// (`resume`, `off`, ...) its recording, e.g. `X-Record-Pause`; empty: none.
    pub pause_header: String,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            audio_format: AudioFormat::Wav,
            audio_layout: AudioLayout::Stereo,
            opus_rate: 16_000,
            keep_pcap: false,
            reorder_ms: 160,
            mixers: 0,
            finishers: 4,
            pause_dtmf: String::new(),
            resume_dtmf: String::new(),
            pause_header: String::new(),
        }
    }
}

/// One `[[archive]]`: a local directory (`path`) or an S3 bucket (`url = "s3://BUCKET/PREFIX"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Name under which the spool records confirmations (default: "archive" for the first
    /// directory, the path or URL otherwise). Renaming a target leaves queued recordings owed to
    /// the old name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A local or mounted directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// An S3 bucket, `s3://BUCKET[/PREFIX]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// S3 endpoint, scheme://host[:port] (default AWS in `region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region used for signing (default us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style addressing (most self-hosted stores need it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_style: bool,
    /// Allow a plain http:// endpoint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_http: bool,
    /// PEM file of CA certificates to trust besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Profile of the AWS credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A credentials file in the AWS format just for this archive (owner root or the service
    /// user, not writable by the group, nothing for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Key level after the prefix (default: this machine's host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// S3 Object Lock mode for every object (with `lock_days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<LockModeArg>,
    /// Object Lock retention in days from upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_days: Option<u32>,
    /// Files larger than this many MiB go by multipart upload (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_mib: Option<u64>,
    /// Average upload rate limit, e.g. "500K", "20M" (bytes per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<Rate>,
    /// Directory archives: recordings older than this many days (by the call's start date) are
    /// pruned, unless held. Not for S3 (a bucket lifecycle rule does that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Encrypt every recording (audio and call record) to these age recipients (`age1…` public
    /// keys, from `age-keygen`) before it leaves the box; the archive then holds only ciphertext
    /// under keys without the parties. Empty: stored as recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_to: Vec<String>,
    /// Directory archives: publish each recording by hard link from the spool when both are on
    /// one filesystem (default true: nothing is written twice); false: always an independent,
    /// verified copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<bool>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Archive {
    /// An archive from a command-line value: a directory, or `s3://BUCKET/PREFIX`.
    pub fn from_arg(value: &str) -> Archive {
        let (path, url) =
            if value.starts_with("s3://") { (None, Some(value.to_owned())) } else { (Some(value.into()), None) };
        Archive {
            name: None,
            path,
            url,
            endpoint: None,
            region: None,
            path_style: false,
            allow_http: false,
            ca_file: None,
            profile: None,
            credentials_file: None,
            site: None,
            object_lock: None,
            lock_days: None,
            multipart_mib: None,
            bandwidth_limit: None,
            retention_days: None,
            encrypt_to: Vec::new(),
            link: None,
        }
    }

    /// The S3 region (default us-east-1).
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }

    /// Whether this is an S3 archive.
    pub fn is_s3(&self) -> bool {
        self.url.is_some()
    }

    /// The directory or URL, as written.
    pub fn place(&self) -> String {
        match (&self.url, &self.path) {
            (Some(url), _) => url.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        }
    }
}

/// `[shipping]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shipping {
    /// Recordings shipped at the same time.
    pub concurrency: usize,
    /// How long `run` keeps shipping after SIGTERM before it exits (recordings stay queued).
    pub shutdown_timeout: u64,
    /// How long `replay` and `ship` keep retrying before they give up (recordings stay queued).
    pub drain_timeout: u64,
}

impl Default for Shipping {
    fn default() -> Self {
        Shipping { concurrency: 16, shutdown_timeout: 10, drain_timeout: 300 }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Level or filter directives (error, warn, info, debug, trace; `callvault=debug,info`).
    pub level: String,
    /// text, or json (one object per line, for log shippers).
    pub format: LogFormat,
    /// Seconds between heartbeat lines of `run`; 0 turns them off.
    pub heartbeat: u64,
}

impl Default for Log {
    fn default() -> Self {
        Log { level: "info".into(), format: LogFormat::Text, heartbeat: 60 }
    }
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// Started as root, `run` opens its capture handles and then becomes this user; "root"
    /// keeps root (not recommended).
    pub user: String,
    /// Group to become (default: the user's primary group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Default for Service {
    fn default() -> Self {
        Service { user: "callvault".into(), group: None }
    }
}

/// The metrics listener's address when `http.metrics_listen` is not set.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9750";

/// `[http]`: where the HTTP endpoints listen, over TLS or not, and who may use them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Address of `/metrics` (Prometheus) and `/health` for `run`; "off" serves nothing. Unset:
    /// 127.0.0.1:9750, and a port already taken there is a warning, not an error. An address
    /// other than loopback needs `tls_cert`, `tls_key` and at least one user or token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Address for the API (default 127.0.0.1:9751), same rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_listen: Option<String>,
    /// Certificate chain (PEM) served by both listeners: set with `tls_key`, they speak HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), read before privileges
    /// are dropped, so it may be readable by root only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Basic-auth users (`[[http.user]]`). With any user or token, every request but
    /// `/health` must authenticate, on loopback too.
    #[serde(rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<HttpUser>,
    /// Bearer tokens (`[[http.token]]`), e.g. for Prometheus or scripts.
    #[serde(rename = "token", skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<HttpToken>,
}

impl Http {
    /// Whether any user or token is configured (then every request authenticates).
    pub fn authenticates(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// Whether the listeners speak HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// `[[http.user]]`: one basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUser {
    /// The user name (named in the audit log).
    pub name: String,
    /// The password's argon2 hash in PHC form (`$argon2id$v=19$...`), from
    /// `callvault config hash-password`.
    pub password_hash: String,
}

/// `[[http.token]]`: one bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToken {
    /// The token's name (named in the audit log).
    pub name: String,
    /// SHA-256 (lowercase hex) of the token, from `callvault config new-token` (tokens are 256
    /// random bits, so a fast hash is enough; passwords get argon2).
    pub sha256: String,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// A file the final metrics (Prometheus text format) are written to when `replay` or `run`
    /// ends, for node_exporter's textfile collector or a batch job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<PathBuf>,
    /// Seconds over which `/health` judges capture drops and shipping progress.
    pub health_window: u64,
    /// `/health` reports degraded when the oldest unshipped recording is older than this many
    /// seconds.
    pub health_max_unshipped_age: u64,
    /// `/health` reports degraded, and the log warns, when a live interface has brought no
    /// packet for this many seconds (0: never).
    pub health_max_quiet: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { textfile: None, health_window: 60, health_max_unshipped_age: 3600, health_max_quiet: 300 }
    }
}

/// `[hep]`: SIP messages, RTCP and per-call quality reports sent as HEPv3 over UDP to a HOMER
/// collector (heplify-server, HEPop). Off unless `collector` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hep {
    /// The collector, `host:port` (UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    /// Capture agent id HOMER shows for callvault's packets (HOMER's agents use 2001).
    pub node_id: u32,
    /// Capture node name, sent with every packet when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// A file holding the collector's authentication key (owner root or the service user,
    /// mode 0600 or 0640); no key is sent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Send each finished call's quality reports (one per audio stream).
    pub reports: bool,
    /// Send the RTCP of the calls callvault follows (HEP type 5, as JSON).
    pub rtcp: bool,
}

impl Default for Hep {
    fn default() -> Self {
        Hep { collector: None, node_id: 2001, node_name: None, password_file: None, reports: true, rtcp: true }
    }
}

impl Config {
    /// The archives to use: the configured ones, else `./callvault-archive`.
    pub fn archives(&self) -> Vec<Archive> {
        if self.archive.is_empty() { vec![Archive::from_arg("callvault-archive")] } else { self.archive.clone() }
    }
}

/// Each archive's target name, under which the spool records confirmations: its `name`, else
/// "archive" for the first directory, else the path or URL as written.
pub fn archive_names(archives: &[Archive]) -> Vec<String> {
    let mut dirs = 0;
    archives
        .iter()
        .map(|a| {
            if let Some(name) = &a.name {
                return name.clone();
            }
            if a.is_s3() {
                return a.place().trim_end_matches('/').to_owned();
            }
            dirs += 1;
            if dirs == 1 { "archive".to_owned() } else { a.place() }
        })
        .collect()
}
