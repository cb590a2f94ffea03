//! Sustained shipping throughput to the loopback S3 test server (`scripts/s3-server.sh`):
//! recordings of realistic size — a 30 s call (≈ 1 MB of stereo 16-bit 8 kHz WAV) and a
//! 3-minute call (≈ 5.8 MB), each with a ≈ 3 KB call record — shipped from a spool by the real
//! shipper with its default configuration (every object verified, every recording listed in the
//! manifest), over HTTPS and, with `CALLVAULT_BENCH_HTTP=1`, plain HTTP too.
//!
//! Each sample drains a spool holding about `CALLVAULT_BENCH_MB` (default 400) MB of recordings;
//! the time includes the last manifest batch (up to the 1 s manifest linger), so the rate is a
//! slight underestimate of the sustained one. After each case it prints recordings/s, MB/s, the
//! CPU used by this process and by the server (`weed`, when `CALLVAULT_S3_STATE` names its state
//! directory), and how many concurrent calls that keeps up with: a stereo 16-bit WAV grows by
//! 32,000 B/s per call, so 10,000 calls need 320 MB/s (160 MB/s for 16,000 B/s per call, e.g. mono
//! WAV or stereo G.711 as captured).
//!
//! `eval "$(scripts/s3-server.sh env)"; cargo bench -p callvault-shipper --bench ship_s3`
//! (`CALLVAULT_BENCH_CONCURRENCY` overrides the shipper's default concurrency).

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_shipper::{
    Credentials, NewFile, NewRecording, S3Config, S3Target, Shipper, ShipperConfig, Spool, Target,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// Bytes per second of audio per call: stereo, 16-bit, 8 kHz.
const WAV_BYTES_PER_CALL_SEC: f64 = 8000.0 * 2.0 * 2.0;
const CALLS: f64 = 10_000.0;
/// The recording sizes: (name, call length in seconds).
const CASES: [(&str, u64); 2] = [("30s_1MB", 30), ("3min_5.8MB", 180)];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A target on a fresh bucket, over HTTPS or plain HTTP; `None` without the test server.
fn target(http: bool) -> Option<S3Target> {
    let endpoint = if http { var("CALLVAULT_S3_HTTP_ENDPOINT")? } else { var("CALLVAULT_S3_ENDPOINT")? };
    let creds = Credentials::new(&var("CALLVAULT_S3_ACCESS_KEY")?, &var("CALLVAULT_S3_SECRET_KEY")?, None);
    let bucket = format!("cv-bench-{}-{}", std::process::id(), if http { "http" } else { "https" });
    let mut cfg = S3Config::new("s3", &bucket, "us-east-1", creds);
    cfg.endpoint = Some(endpoint);
    cfg.allow_http = http;
    cfg.ca_file = var("CALLVAULT_S3_CA").map(Into::into);
    cfg.path_style = true;
    cfg.site = "bench".into();
    let target = S3Target::new(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(target.create_bucket(false)).unwrap();
    Some(target)
}

/// A spool with `n` fresh recordings of `wav_bytes` of audio (unique keys and content, so that
/// nothing is already shipped) and a call record of about 3 KB each.
fn spool_with(n: usize, wav_bytes: usize, round: u64) -> (tempfile::TempDir, Arc<Spool>, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&tmp.path().join("spool")).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut wav = vec![0u8; wav_bytes];
    let mut x = (round as u32).wrapping_mul(2_654_435_761) | 1;
    for chunk in wav.chunks_mut(4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut bytes = 0;
    for i in 0..n {
        // Unique content: the recording's number in the first bytes.
        wav[..16].copy_from_slice(&((round as u128) << 64 | i as u128).to_le_bytes());
        let call_id = format!("{round}-{i}@bench");
        let json = serde_json::to_vec(&serde_json::json!({
            "call_id": call_id, "from": "alice", "to": "bob", "state": "completed",
            "audio": {"sha256": hex::encode(Sha256::digest(&wav)), "bytes": wav_bytes},
            "streams": "x".repeat(2800),
        }))
        .unwrap();
        let key = format!("2024/01/01/20240101T000000Z_alice_bob_{round:06}_{i:05}");
        let mut files = Vec::new();
        for (ext, data) in [("wav", &wav), ("json", &json)] {
            let source = work.join(format!("{i}.{ext}"));
            let mut f = std::fs::File::create(&source).unwrap();
            f.write_all(data).unwrap();
            f.sync_all().unwrap();
            bytes += data.len() as u64;
            files.push(NewFile {
                source,
                ext: ext.into(),
                sha256: hex::encode(Sha256::digest(data)),
                size: data.len() as u64,
            });
        }
        let summary = serde_json::json!({"call_id": call_id, "from": "alice", "to": "bob", "state": "completed"});
        spool.enter(NewRecording { key, files, summary }).unwrap();
    }
    (tmp, Arc::new(spool), bytes)
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The server's pid, when its state directory is known.
fn weed_pid() -> Option<String> {
    let state = var("CALLVAULT_S3_STATE")?;
    Some(std::fs::read_to_string(format!("{state}/weed.pid")).ok()?.trim().to_owned())
}

/// What the runs of one case add up to.
#[derive(Default)]
struct Totals {
    recordings: u64,
    bytes: u64,
    wall: Duration,
    cpu_self: f64,
    cpu_weed: Option<f64>,
}

fn ship(target: &S3Target, spool: &Arc<Spool>, concurrency: Option<usize>, totals: &mut Totals) -> Duration {
    let mut cfg = ShipperConfig::default();
    if let Some(c) = concurrency {
        cfg.concurrency = c;
    }
    let weed = weed_pid();
    let (self0, weed0) = (cpu_secs("self"), weed.as_deref().and_then(cpu_secs));
    let started = Instant::now();
    let report = Shipper::start(Arc::clone(spool), vec![Target::S3(target.clone())], cfg)
        .unwrap()
        .drain(Some(Duration::from_secs(600)));
    let elapsed = started.elapsed();
    assert!(report.is_complete(), "{report:?}");
    totals.cpu_self += cpu_secs("self").zip(self0).map_or(0.0, |(b, a)| b - a);
    if let (Some(a), Some(b)) = (weed0, weed.as_deref().and_then(cpu_secs)) {
        *totals.cpu_weed.get_or_insert(0.0) += b - a;
    }
    elapsed
}

fn bench(c: &mut Criterion) {
    let https = target(false);
    let http = if var("CALLVAULT_BENCH_HTTP").is_some() { target(true) } else { None };
    if https.is_none() {
        println!(
            "skipped: ship_s3 benchmark: no S3 test server (scripts/s3-server.sh start; eval \"$(scripts/s3-server.sh env)\")"
        );
        return;
    }
    let megabytes: u64 = var("CALLVAULT_BENCH_MB").and_then(|v| v.parse().ok()).unwrap_or(400);
    let concurrency: Option<usize> = var("CALLVAULT_BENCH_CONCURRENCY").and_then(|v| v.parse().ok());
    let mut group = c.benchmark_group("ship_s3");
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(20));
    let mut round = 0u64;
    for (scheme, target) in [("https", https), ("http", http)] {
        let Some(target) = target else { continue };
        for (name, call_secs) in CASES {
            let wav_bytes = 44 + (call_secs as f64 * WAV_BYTES_PER_CALL_SEC) as usize;
            let n = ((megabytes * 1_000_000) as usize / wav_bytes).max(8);
            group.throughput(Throughput::Bytes((wav_bytes as u64 + 3000) * n as u64));
            let mut totals = Totals::default();
            group.bench_function(BenchmarkId::new(scheme, name), |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        round += 1;
                        let (_tmp, spool, bytes) = spool_with(n, wav_bytes, round);
                        let took = ship(&target, &spool, concurrency, &mut totals);
                        elapsed += took;
                        totals.recordings += n as u64;
                        totals.bytes += bytes;
                        totals.wall += took;
                    }
                    elapsed
                })
            });
            report(scheme, name, &totals);
        }
    }
    group.finish();
}

fn report(scheme: &str, name: &str, t: &Totals) {
    let secs = t.wall.as_secs_f64();
    let rate = t.bytes as f64 / secs;
    let calls = rate / WAV_BYTES_PER_CALL_SEC;
    let cpu =
        |s: f64| format!("{:.0}% of a core ({:.1} ms per recording)", s / secs * 100.0, s * 1e3 / t.recordings as f64);
    println!(
        "ship_s3 {scheme} {name}: {:.1} recordings/s, {:.1} MB/s over {} recordings; CPU: callvault {}, server {}",
        t.recordings as f64 / secs,
        rate / 1e6,
        t.recordings,
        cpu(t.cpu_self),
        t.cpu_weed.map_or_else(|| "unknown".to_owned(), cpu),
    );
    println!(
        "ship_s3 {scheme} {name}: keeps up with {:.0} concurrent calls of stereo WAV ({}); 10,000 calls need {:.0} MB/s ({:.0} MB/s at 16,000 B/s per call)",
        calls,
        if calls >= CALLS { "enough for 10,000" } else { "NOT enough for 10,000" },
        CALLS * WAV_BYTES_PER_CALL_SEC / 1e6,
        CALLS * WAV_BYTES_PER_CALL_SEC / 2e6,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
