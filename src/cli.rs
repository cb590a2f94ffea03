//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// callvault: records every call on a mirrored port and ships the recordings offsite.
#[derive(Debug, Parser)]
#[command(name = "callvault", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the calls in capture files (pcap or pcapng) and ship the recordings.
    Replay(ReplayArgs),
    /// Record the calls seen live on a network interface until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Ship everything queued in the spool once, then exit (for cron or by hand).
    Ship(crate::ship::ShipArgs),
    /// Read an archive: list a day's recordings, fetch one, verify a day.
    Archive(crate::archive::ArchiveArgs),
}

/// Options shared by replay and run.
#[derive(Debug, Args)]
pub struct Common {
    /// Data directory: recordings in progress, the spool and the local copies.
    #[arg(long, short = 'o', default_value = "callvault-data", value_name = "DIR")]
    pub output: PathBuf,
    /// Archive targets (directories, S3 buckets).
    #[command(flatten)]
    pub targets: crate::targets::TargetArgs,
    /// Local retention of shipped recordings.
    #[command(flatten)]
    pub retention: crate::targets::RetentionArgs,
    /// End an answered call after this many seconds (capture time) without RTP or SIP.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub media_timeout: u64,
    /// Reorder window: how long (ms) a position in the recording waits for late packets.
    #[arg(long, default_value_t = 160, value_name = "MS")]
    pub reorder_ms: u32,
    /// Threads that make finished recordings durable (fsync, SHA-256, call record).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub finishers: usize,
    /// Also keep each call's own SIP, RTP and RTCP packets as a pcap file beside its recording
    /// (evidence of what was on the wire).
    #[arg(long)]
    pub keep_pcap: bool,
    /// Recording format: wav (16-bit PCM) or flac (lossless, about half the size).
    #[arg(long, value_enum, default_value_t = FormatArg::Wav, value_name = "FORMAT")]
    pub audio_format: FormatArg,
    /// Channel layout: stereo (caller left, callee right), mono (both parties mixed) or split
    /// (one file per party).
    #[arg(long, value_enum, default_value_t = LayoutArg::Stereo, value_name = "LAYOUT")]
    pub audio_layout: LayoutArg,
    /// Threads that mix calls into recordings (calls are spread over them). Default: one per
    /// CPU, at most 4.
    #[arg(long, value_name = "N")]
    pub mixers: Option<usize>,
}

/// `--audio-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// RIFF/WAVE, 16-bit PCM.
    Wav,
    /// FLAC, lossless.
    Flac,
}

/// `--audio-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// Caller in channel 0, callee in channel 1.
    Stereo,
    /// Both parties mixed into one channel.
    Mono,
    /// One mono file per party (`<name>.caller.wav`, `<name>.callee.wav`).
    Split,
}

/// `callvault replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files, read in the order given as one continuous capture.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// Give up retrying the archive after this many seconds (recordings stay queued).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub ship_timeout: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `callvault run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Network interface to capture on (e.g. the SPAN port).
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: String,
    /// BPF capture filter (e.g. "udp or tcp port 5060").
    #[arg(long, short = 'f', value_name = "BPF")]
    pub filter: Option<String>,
    /// Kernel capture buffer in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub buffer_mib: u32,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
    /// On shutdown, keep shipping for at most this many seconds (recordings stay queued).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub ship_timeout: u64,
}
