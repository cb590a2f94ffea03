//! End-to-end replay throughput: a generated capture of many concurrent G.711 calls through
//! the whole pipeline (capture, mixer, WAV + JSON, spool, verified copy into the archive).
//!
//! `cargo bench --bench replay` (set `CALLVAULT_BENCH_CALLS` / `CALLVAULT_BENCH_TALK` to
//! change the default 1000 concurrent calls of 30 s). It measures time only: peak memory of a
//! run is the release binary's (`/usr/bin/time -v callvault replay ...`), and a long run's
//! memory over time is `benches/soak.sh`.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault::config::{Archive, Config};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn replay_bench(c: &mut Criterion) {
    let calls = env_u32("CALLVAULT_BENCH_CALLS", 1000);
    let talk_s = env_u32("CALLVAULT_BENCH_TALK", 30);
    let dir = tempfile::Builder::new().prefix("callvault-bench").tempdir().expect("temp dir");
    let pcap = dir.path().join("bench.pcap");
    let start = 1_735_689_600 * 1_000_000_000;
    let scenario = callgen::Scenario::new(callgen::spread_calls(calls, calls, talk_s * 1000, start));
    let truth = callgen::write_pcap(&scenario, &pcap).expect("generate capture");
    eprintln!(
        "capture: {} calls ({} concurrent), {} packets, {:.0} MB",
        calls,
        calls,
        truth.packets,
        truth.bytes as f64 / 1e6
    );

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(truth.packets));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.bench_function(format!("{calls}_concurrent_g711_calls_{talk_s}s"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let run = tempfile::Builder::new().prefix("callvault-bench-run").tempdir().expect("temp dir");
                let mut config = Config::default();
                config.storage.data_dir = run.path().join("data");
                config.archive = vec![Archive::from_arg(&run.path().join("archive").to_string_lossy())];
                config.shipping.drain_timeout = 600;
                let t = Instant::now();
                let summary =
                    callvault::replay::execute(&config, std::slice::from_ref(&pcap), true, &Default::default())
                        .expect("replay");
                total += t.elapsed();
                assert_eq!(summary.outcome.finish.entered, u64::from(calls), "every call recorded");
                assert!(summary.outcome.ship.left_queued.is_empty(), "every recording shipped");
                drop(run);
            }
            total
        });
    });
    group.finish();
    let _: PathBuf = pcap;
}

criterion_group!(benches, replay_bench);
criterion_main!(benches);
