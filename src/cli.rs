//! Command-line interface. Every option here overrides a key of the configuration file
//! (`crate::config`); options left out keep the file's value, or the built-in default.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{self, AudioFormat, AudioLayout, Config, ConfigError, LogFormat};
use crate::targets::set_value;

/// callvault: records every call on a mirrored port and ships the recordings offsite.
#[derive(Debug, Parser)]
#[command(name = "callvault", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Configuration file [default: /etc/callvault/callvault.toml when it exists].
    #[arg(long, short = 'c', global = true, value_name = "FILE", env = "CALLVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text (colour only on a terminal) or json (one object per line).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the calls in capture files (pcap or pcapng) and ship the recordings.
    Replay(ReplayArgs),
    /// Record the calls seen live on network interfaces until SIGINT/SIGTERM (SIGHUP reloads).
    Run(RunArgs),
    /// Ship everything queued in the spool once, then exit (for cron or by hand).
    Ship(crate::ship::ShipArgs),
    /// Read an archive: list a day's recordings, fetch one, verify a day.
    Archive(crate::archive::ArchiveArgs),
    /// Check the configuration file, or print the configuration in effect.
    Config(ConfigArgs),
    /// Show the spool: who owns it, what is queued and for which targets (read-only).
    Status(crate::ship::StatusArgs),
    /// Serve the call search API over a data directory without capturing (until SIGINT/SIGTERM).
    Serve(crate::serve::ServeArgs),
}

/// `callvault config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `callvault config` commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file without starting anything (default: the one in effect).
    Check {
        /// The file.
        file: Option<PathBuf>,
    },
    /// Print the configuration in effect (file and defaults), secrets redacted.
    Show,
    /// Hash a password for an `[[http.user]]` (argon2id): read from the terminal without echo,
    /// or one line from standard input.
    HashPassword {
        /// The user's name, for the printed `[[http.user]]` block.
        #[arg(default_value = "USER")]
        name: String,
    },
    /// Make a new bearer token for an `[[http.token]]`: prints the token (give it to the client)
    /// and the block with its SHA-256 (put it in the configuration).
    NewToken {
        /// The token's name (in the audit log), e.g. prometheus.
        name: String,
    },
    /// Create the site's Ed25519 key that signs the archive's manifests (mode 0600, never
    /// replacing a file) and print its public key and fingerprint (keep the fingerprint offline:
    /// `archive verify --key-fingerprint` checks the archive against it).
    NewSigningKey {
        /// The key file [default: signing.key_file, else /etc/callvault/signing.key].
        file: Option<PathBuf>,
    },
}

/// Where recordings are kept and shipped: options shared by replay, run and ship.
#[derive(Debug, Clone, Default, Args)]
pub struct DataArgs {
    /// Data directory: recordings in progress, the spool and the local copies
    /// [default: storage.data_dir, ./callvault-data].
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Archive targets (directories, S3 buckets).
    #[command(flatten)]
    pub targets: crate::targets::TargetArgs,
    /// Local retention of shipped recordings.
    #[command(flatten)]
    pub retention: crate::targets::RetentionArgs,
}

impl DataArgs {
    /// Puts these options over the configuration.
    pub fn apply(&self, c: &mut Config) {
        crate::targets::set_value(&mut c.storage.data_dir, &self.output);
        self.targets.apply(c);
        self.retention.apply(&mut c.storage);
    }
}

/// Options shared by replay and run.
#[derive(Debug, Clone, Default, Args)]
pub struct Common {
    /// Data directory, archives, retention.
    #[command(flatten)]
    pub data: DataArgs,
    /// End an answered call after this many seconds (capture time) without RTP or SIP
    /// [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub media_timeout: Option<u64>,
    /// Reorder window: how long (ms) a position in the recording waits for late packets
    /// [default: 160].
    #[arg(long, value_name = "MS")]
    pub reorder_ms: Option<u32>,
    /// Threads that make finished recordings durable (fsync, SHA-256, call record); as many
    /// again join while 1,024 finished calls or more wait, and for the last ones [default: 4].
    #[arg(long, value_name = "N")]
    pub finishers: Option<usize>,
    /// Also keep each call's own SIP, RTP and RTCP packets as a pcap file beside its recording
    /// (evidence of what was on the wire).
    #[arg(long)]
    pub keep_pcap: bool,
    /// Recording format: wav (16-bit PCM), flac (lossless, about half the size) or wav-g711 (the
    /// G.711 codes as captured in µ-law/A-law WAV, half the size, PCM for other audio) [default:
    /// wav].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub audio_format: Option<AudioFormat>,
    /// Channel layout: stereo (caller left, callee right), mono (both parties mixed) or split
    /// (one file per party) [default: stereo].
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub audio_layout: Option<AudioLayout>,
    /// Rate (Hz) Opus is decoded and its calls recorded at: 16000 (speech; a third of the
    /// size) or 48000 (Opus's full band) [default: 16000].
    #[arg(long, value_name = "HZ")]
    pub opus_rate: Option<u32>,
    /// Threads that mix calls into recordings (calls are spread over them). Default: one per
    /// CPU, at most 4.
    #[arg(long, value_name = "N")]
    pub mixers: Option<usize>,
    /// PCI DSS: DTMF code (keys 0-9 * # A-D) that pauses recording, both channels silent,
    /// until --resume-dtmf is keyed [default: recording.pause_dtmf, none].
    #[arg(long, value_name = "KEYS", requires = "resume_dtmf")]
    pub pause_dtmf: Option<String>,
    /// DTMF code that resumes a paused recording [default: recording.resume_dtmf].
    #[arg(long, value_name = "KEYS", requires = "pause_dtmf")]
    pub resume_dtmf: Option<String>,
    /// PCI DSS: SIP header (e.g. X-Record-Pause) whose value in a request of a call pauses
    /// (pause/on/true/yes/1) or resumes (resume/off/false/no/0) its recording
    /// [default: recording.pause_header, none].
    #[arg(long, value_name = "NAME")]
    pub pause_header: Option<String>,
    /// Write the final metrics (Prometheus text format) to this file at the end
    /// [default: metrics.textfile, none].
    #[arg(long, value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
}

impl Common {
    /// Puts these options over the configuration.
    pub fn apply(&self, c: &mut Config) {
        self.data.apply(c);
        if let Some(secs) = self.media_timeout {
            c.timeouts.media = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1_000_000_000);
        }
        let r = &mut c.recording;
        set_value(&mut r.reorder_ms, &self.reorder_ms);
        set_value(&mut r.finishers, &self.finishers);
        r.keep_pcap |= self.keep_pcap;
        set_value(&mut r.audio_format, &self.audio_format);
        set_value(&mut r.audio_layout, &self.audio_layout);
        set_value(&mut r.opus_rate, &self.opus_rate);
        set_value(&mut r.mixers, &self.mixers);
        set_value(&mut r.pause_dtmf, &self.pause_dtmf);
        set_value(&mut r.resume_dtmf, &self.resume_dtmf);
        set_value(&mut r.pause_header, &self.pause_header);
        crate::targets::set(&mut c.metrics.textfile, &self.metrics_out);
    }
}

/// `callvault replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Capture files, read in the order given as one continuous capture.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// Give up retrying the archive after this many seconds (recordings stay queued)
    /// [default: shipping.drain_timeout, 300].
    #[arg(long, value_name = "SECONDS")]
    pub ship_timeout: Option<u64>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ReplayArgs {
    /// Puts these options over the configuration.
    pub fn apply(&self, c: &mut Config) {
        self.common.apply(c);
        set_value(&mut c.shipping.drain_timeout, &self.ship_timeout);
    }
}

/// `callvault run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Network interface to capture on (e.g. the SPAN port); repeat for several, all into one
    /// pipeline. Replaces capture.interfaces of the configuration.
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Vec<String>,
    /// BPF capture filter (e.g. "udp or tcp port 5060").
    #[arg(long, short = 'f', value_name = "BPF")]
    pub filter: Option<String>,
    /// Kernel capture buffer per interface in MiB [default: 256].
    #[arg(long, value_name = "MIB")]
    pub buffer_mib: Option<u32>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// On shutdown, keep shipping for at most this many seconds (recordings stay queued)
    /// [default: shipping.shutdown_timeout, 10].
    #[arg(long, value_name = "SECONDS")]
    pub ship_timeout: Option<u64>,
    /// Seconds between heartbeat log lines; 0 turns them off [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat: Option<u64>,
    /// Started as root: the user to become once the capture is open ("root" stays root)
    /// [default: callvault].
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Started as root: the group to become [default: the user's primary group].
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Where the API and dashboard listen (loopback; "off" disables them; port 0 picks a free
    /// one, logged) [default: http.api_listen, 127.0.0.1:9751].
    #[arg(long, value_name = "ADDR:PORT")]
    pub api_listen: Option<String>,
    /// Address of /metrics and /health (other than loopback only with http.tls_* and users), or "off"
    /// [default: http.metrics_listen, 127.0.0.1:9750].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
}

impl RunArgs {
    /// Puts these options over the configuration.
    pub fn apply(&self, c: &mut Config) {
        self.common.apply(c);
        if !self.interface.is_empty() {
            c.capture.interfaces = self.interface.clone();
        }
        set_value(&mut c.capture.filter, &self.filter);
        set_value(&mut c.capture.buffer_mib, &self.buffer_mib);
        set_value(&mut c.shipping.shutdown_timeout, &self.ship_timeout);
        set_value(&mut c.log.heartbeat, &self.heartbeat);
        set_value(&mut c.service.user, &self.user);
        crate::targets::set(&mut c.service.group, &self.group);
        crate::targets::set(&mut c.http.api_listen, &self.api_listen);
        crate::targets::set(&mut c.http.metrics_listen, &self.metrics_listen);
    }
}

/// Where the configuration came from, and how to read it again (SIGHUP).
#[derive(Debug, Clone)]
pub struct Source {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Global options that override the file.
    pub log_format: Option<LogFormat>,
    /// `-v` count.
    pub verbose: u8,
}

impl Source {
    /// The configuration source the global options name.
    pub fn from_cli(cli: &Cli) -> Source {
        Source { path: config::locate_default(cli.config.as_deref()), log_format: cli.log_format, verbose: cli.verbose }
    }

    /// "the file" or "built-in defaults", for messages.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => format!("built-in defaults ({} does not exist)", config::DEFAULT_PATH),
        }
    }

    /// Reads the file, puts the global options and `apply` (a command's options) over it, and
    /// checks the result.
    pub fn load(&self, apply: impl FnOnce(&mut Config)) -> Result<Config, ConfigError> {
        let mut c = config::load(self.path.as_deref())?;
        if let Some(f) = self.log_format {
            c.log.format = f;
        }
        match self.verbose {
            0 => {}
            1 => c.log.level = "debug".into(),
            _ => c.log.level = "trace".into(),
        }
        apply(&mut c);
        config::check_command_line(&c)?;
        Ok(c)
    }

    /// The file's path, for messages about reloading it.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
