//! Sustained shipping throughput to the loopback S3 test server (`scripts/s3-server.sh`, HTTPS):
//! recordings of ~1 MB of audio plus a call record, shipped from a spool by the real shipper,
//! every object verified. Reports recordings/s and MB/s and whether that keeps up with 10,000
//! concurrent calls (≈ 16 KB/s of stereo G.711 audio each, ≈ 160 MB/s in all).
//!
//! `eval "$(scripts/s3-server.sh env)"; cargo bench -p callvault-shipper --bench ship_s3`
//! (`CALLVAULT_BENCH_RECORDINGS`, default 48, per sample).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_shipper::{
    Credentials, NewFile, NewRecording, S3Config, S3Target, Shipper, ShipperConfig, Spool, Target,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const WAV_BYTES: usize = 1_000_044;
/// 10,000 calls × 8000 samples/s × 2 channels × 2 bytes.
const NEEDED_BYTES_PER_SEC: f64 = 10_000.0 * 16_000.0;

fn target() -> Option<S3Target> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let endpoint = var("CALLVAULT_S3_ENDPOINT")?;
    let creds = Credentials::new(&var("CALLVAULT_S3_ACCESS_KEY")?, &var("CALLVAULT_S3_SECRET_KEY")?, None);
    let bucket = format!("cv-bench-{}", std::process::id());
    let mut cfg = S3Config::new("s3", &bucket, "us-east-1", creds);
    cfg.endpoint = Some(endpoint);
    cfg.ca_file = var("CALLVAULT_S3_CA").map(Into::into);
    cfg.path_style = true;
    cfg.site = "bench".into();
    let target = S3Target::new(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(target.create_bucket(false)).unwrap();
    Some(target)
}

/// A spool with `n` fresh recordings (unique keys, so that nothing is already shipped).
fn spool_with(n: usize, round: u64) -> (tempfile::TempDir, Arc<Spool>, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(&tmp.path().join("spool")).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut bytes = 0;
    for i in 0..n {
        let mut wav = vec![0u8; WAV_BYTES];
        let mut x = (round as u32) << 16 | i as u32 | 1;
        for b in wav.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let json = format!("{{\"call_id\":\"{round}-{i}\"}}").into_bytes();
        let key = format!("2024/01/01/20240101T000000Z_a_b_{round:06}_{i:04}");
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
        let summary = serde_json::json!({"call_id": format!("{round}-{i}"), "state": "completed"});
        spool.enter(NewRecording { key, files, summary }).unwrap();
    }
    (tmp, Arc::new(spool), bytes)
}

fn ship(target: &S3Target, spool: &Arc<Spool>, concurrency: usize) -> Duration {
    let cfg = ShipperConfig { concurrency, ..ShipperConfig::default() };
    let started = Instant::now();
    let report = Shipper::start(Arc::clone(spool), vec![Target::S3(target.clone())], cfg)
        .unwrap()
        .drain(Some(Duration::from_secs(600)));
    let elapsed = started.elapsed();
    assert!(report.is_complete(), "{report:?}");
    elapsed
}

fn bench(c: &mut Criterion) {
    let Some(target) = target() else {
        println!(
            "skipped: ship_s3 benchmark: no S3 test server (scripts/s3-server.sh start; eval \"$(scripts/s3-server.sh env)\")"
        );
        return;
    };
    let n: usize = std::env::var("CALLVAULT_BENCH_RECORDINGS").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let mut group = c.benchmark_group("ship_s3");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    let mut round = 0u64;
    for concurrency in [4usize, 16] {
        let (_tmp, _spool, bytes) = spool_with(1, u64::MAX - concurrency as u64);
        group.throughput(Throughput::Bytes(bytes * n as u64));
        let mut total = (0u64, 0u64, Duration::ZERO);
        group.bench_with_input(BenchmarkId::new("recordings_1MB", concurrency), &concurrency, |b, &concurrency| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    let (_tmp, spool, bytes) = spool_with(n, round);
                    let took = ship(&target, &spool, concurrency);
                    elapsed += took;
                    total = (total.0 + n as u64, total.1 + bytes, total.2 + took);
                }
                elapsed
            })
        });
        let secs = total.2.as_secs_f64();
        let rate = total.1 as f64 / secs;
        println!(
            "ship_s3 concurrency {concurrency}: {:.1} recordings/s, {:.1} MB/s over {} recordings; 10,000 calls need {:.0} MB/s: {}",
            total.0 as f64 / secs,
            rate / 1e6,
            total.0,
            NEEDED_BYTES_PER_SEC / 1e6,
            if rate >= NEEDED_BYTES_PER_SEC { "keeps up" } else { "does NOT keep up" }
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
