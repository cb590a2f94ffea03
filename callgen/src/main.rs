//! `callgen`: writes a synthetic SIP/RTP capture and prints a one-line summary.
//!
//! ```text
//! callgen --calls 1000 --concurrency 1000 --talk 60 --out bench.pcap
//! callgen --calls 12 --concurrency 4 --talk 20 --mix --out demo.pcap --truth demo.json
//! ```

#![allow(clippy::disallowed_methods)] // it reports how long generating took (clippy.toml)

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use callvault_callgen::{
    Codec, Link, Party, Scenario, TsPrecision, demo_mix, share_media_address, spread_calls, write_pcap,
};
use clap::{Parser, ValueEnum};

/// Default start time: 2024-01-01T00:00:00Z, so output does not depend on the clock.
const DEFAULT_START_NS: i64 = 1_704_067_200_000_000_000;

/// Write a deterministic synthetic SIP + RTP (G.711) capture in classic pcap format.
#[derive(Debug, Parser)]
#[command(name = "callgen", version)]
struct Args {
    /// Number of calls.
    #[arg(long, default_value_t = 10)]
    calls: u32,
    /// About how many calls are in progress at once.
    #[arg(long, default_value_t = 10)]
    concurrency: u32,
    /// Talk time of each answered call, in seconds.
    #[arg(long, default_value_t = 10.0)]
    talk: f64,
    /// Ring time (INVITE to answer or final response), in seconds.
    #[arg(long, default_value_t = 1.0)]
    ring: f64,
    /// Codec of every call (`--mix` alternates both).
    #[arg(long, value_enum, default_value_t = CodecArg::Pcmu)]
    codec: CodecArg,
    /// RTP packetisation time in ms (10..=60).
    #[arg(long, default_value_t = 20)]
    ptime: u32,
    /// Link layer of every frame.
    #[arg(long, value_enum, default_value_t = LinkArg::Ethernet)]
    link: LinkArg,
    /// VLAN id for `--link vlan`, inner id for `--link qinq`.
    #[arg(long, default_value_t = 100)]
    vlan: u16,
    /// Outer (802.1ad) VLAN id for `--link qinq`.
    #[arg(long, default_value_t = 200)]
    outer_vlan: u16,
    /// Use IPv6 addresses (fd00::/8) instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// Nanosecond timestamps instead of microseconds.
    #[arg(long)]
    nano: bool,
    /// Seed of jitter, tags, branches and the `--mix` variation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Capture time of the first INVITE: RFC 3339 (2024-01-01T00:00:00Z) or Unix seconds.
    #[arg(long)]
    start: Option<String>,
    /// A realistic demo mix: answered calls hung up by either side, one busy, one cancelled,
    /// one unanswered, both codecs.
    #[arg(long)]
    mix: bool,
    /// One media address for this party of every call (a media server or SBC answering, or
    /// offering, every call with the same address): 10.77.0.2:6000 for the callee, 10.77.0.1:6000
    /// for the caller (IPv4 only).
    #[arg(long, value_enum)]
    share_media: Option<PartyArg>,
    /// Keep at most this many bytes of each frame (as `tcpdump -s N`).
    #[arg(long)]
    snaplen: Option<u32>,
    /// Output capture file.
    #[arg(long)]
    out: PathBuf,
    /// Also write the ground truth as JSON to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CodecArg {
    Pcmu,
    Pcma,
    G722,
    G729,
    Gsm,
    Opus,
    L16,
    L16Wide,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PartyArg {
    Caller,
    Callee,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LinkArg {
    Ethernet,
    Vlan,
    Qinq,
    Sll,
    Sll2,
    Raw,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = scenario(&args)?;
    let began = Instant::now();
    let truth = write_pcap(&scenario, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let elapsed = began.elapsed().as_secs_f64();
    if let Some(path) = &args.truth {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &truth)?;
        w.write_all(b"\n")?;
        w.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    let span = match (truth.first_ns, truth.last_ns) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    println!(
        "{}: {} calls, {} packets ({} SIP, {} RTP), {} bytes, {:.3} s of traffic, generated in {:.2} s",
        args.out.display(),
        truth.calls.len(),
        truth.packets,
        truth.sip_messages,
        truth.rtp_packets,
        truth.bytes,
        span,
        elapsed
    );
    Ok(())
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let start_ns = match &args.start {
        Some(s) => parse_start(s)?,
        None => DEFAULT_START_NS,
    };
    let talk_ms = seconds_to_ms("--talk", args.talk)?;
    let ring_ms = seconds_to_ms("--ring", args.ring)?;
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut calls = spread_calls(args.calls, args.concurrency, talk_ms, start_ns);
    let codec = match args.codec {
        CodecArg::Pcmu => Codec::Pcmu,
        CodecArg::Pcma => Codec::Pcma,
        CodecArg::G722 => Codec::G722,
        CodecArg::G729 => Codec::G729,
        CodecArg::Gsm => Codec::Gsm,
        CodecArg::Opus => Codec::Opus,
        CodecArg::L16 => Codec::L16,
        CodecArg::L16Wide => Codec::L16Wide,
    };
    for call in &mut calls {
        call.codec = codec;
        call.ptime_ms = args.ptime;
        call.ring_ms = ring_ms;
    }
    if args.mix {
        demo_mix(&mut calls, args.seed);
    }
    if let Some(party) = args.share_media {
        if args.ipv6 {
            bail!("--share-media works with IPv4 addresses only");
        }
        let (party, ip) = match party {
            PartyArg::Caller => (Party::Caller, [10, 77, 0, 1]),
            PartyArg::Callee => (Party::Callee, [10, 77, 0, 2]),
        };
        share_media_address(&mut calls, party, ip.into(), 6000);
    }
    if args.ipv6 {
        calls = calls.into_iter().map(|c| c.into_ipv6()).collect();
    }
    let link = match args.link {
        LinkArg::Ethernet => Link::Ethernet,
        LinkArg::Vlan => Link::Vlan(args.vlan),
        LinkArg::Qinq => Link::QinQ(args.outer_vlan, args.vlan),
        LinkArg::Sll => Link::Sll,
        LinkArg::Sll2 => Link::Sll2,
        LinkArg::Raw => Link::RawIp,
    };
    let scenario = Scenario {
        calls,
        link,
        ts_precision: if args.nano { TsPrecision::Nano } else { TsPrecision::Micro },
        seed: args.seed,
        keep_payloads: false,
        tunnel: None,
        fragmentation: None,
        capture_stalls: Vec::new(),
        snaplen: args.snaplen,
    };
    scenario.validate()?;
    Ok(scenario)
}

fn seconds_to_ms(flag: &str, seconds: f64) -> anyhow::Result<u32> {
    let ms = (seconds * 1000.0).round();
    if !(0.0..=f64::from(u32::MAX)).contains(&ms) {
        bail!("{flag} {seconds} must be between 0 and {} seconds", u32::MAX / 1000);
    }
    Ok(ms as u32)
}

/// RFC 3339 (`2024-01-01T00:00:00Z`) or Unix seconds (`1704067200`, `1704067200.25`).
fn parse_start(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt().with_context(|| format!("--start {s} is out of range"));
    }
    let bad = || anyhow::anyhow!("--start {s:?} is neither RFC 3339 (2024-01-01T00:00:00Z) nor Unix seconds");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = whole.parse().map_err(|_| bad())?;
    if !(0..=i64::from(u32::MAX)).contains(&secs) {
        bail!("--start {s} must be between 1970 and 2106");
    }
    let nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    Ok(secs * 1_000_000_000 + nanos)
}
