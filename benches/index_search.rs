//! The call index at a million calls: searches the API and dashboard run, timed.
//!
//! Builds (once, then reuses) an index of `CALLVAULT_BENCH_CALLS` calls (default 1,000,000)
//! spread over 30 days under the cargo target's temporary directory: numbers from a few
//! national prefixes and internal extensions, mostly good quality with a tail of poor calls,
//! a few rejected, cancelled and incomplete ones. Then times each kind of search the API
//! offers, one page of 50 newest first. Target: every search under 50 ms.
//!
//!     cargo bench --bench index_search

#![allow(clippy::disallowed_methods)] // benchmarks time themselves (clippy.toml)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use callvault::index::{Index, IndexedCall, Opened, Reader, Search};
use criterion::{Criterion, criterion_group, criterion_main};
use mixer::record::CallRecord;

const DAY_NS: i64 = 86_400 * 1_000_000_000;
const T0: i64 = 1_767_225_600 * 1_000_000_000; // 2026-01-01

/// A small deterministic generator (xorshift), so every build of the index is the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn number(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => format!("+4420{:07}", rng.below(10_000_000)),
        4..=5 => format!("+331{:08}", rng.below(100_000_000)),
        6 => format!("+1212{:07}", rng.below(10_000_000)),
        _ => format!("{}", 1000 + rng.below(9000)),
    }
}

fn record(i: u64, rng: &mut Rng, calls: u64) -> CallRecord {
    let start = T0 + (i as i64) * (30 * DAY_NS / calls as i64);
    let t = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (state, reason, code) = match rng.below(100) {
        0..=2 => ("rejected", "rejected", 486),
        3..=4 => ("cancelled", "cancel", 487),
        _ => ("completed", "bye", 200),
    };
    let mos = |rng: &mut Rng| {
        if rng.below(100) < 95 { 4.0 + rng.below(40) as f64 / 100.0 } else { 1.5 + rng.below(250) as f64 / 100.0 }
    };
    let stream = |side: &str, mos: f64| {
        serde_json::json!({
            "side": side, "kind": "audio", "ssrc": "0x1", "src": "10.0.0.1:4000", "dst": "10.0.0.2:4000",
            "payload_types": [0], "codec": "PCMU", "packets": 3000, "lost": 3, "duplicates": 0, "out_of_order": 0,
            "late": 0, "loss_pct": 0.1, "loss_bursts": 1, "longest_loss_burst": 1, "jitter_ms": 2.5,
            "seq_restarts": 0,
            "quality": {"r_factor": 90.0, "mos": mos, "r_factor_plc": 90.0, "mos_plc": mos, "burst_ratio": 1.0,
                        "assumed_delay_ms": 0.0},
            "endpoint_report": null, "first": t(start), "last": t(start + 60_000_000_000),
        })
    };
    let answered = state == "completed";
    let streams = if answered { vec![stream("caller", mos(rng)), stream("callee", mos(rng))] } else { vec![] };
    let (from, to) = (number(rng), number(rng));
    serde_json::from_value(serde_json::json!({
        "version": 2, "call_id": format!("{i:016x}@bench"),
        "from": {"user": from, "display": null, "uri": format!("sip:{from}@pbx")},
        "to": {"user": to, "display": null, "uri": format!("sip:{to}@pbx")},
        "asserted_identity": null,
        "caller": {"signalling": "10.0.0.1:5060", "media": null},
        "callee": {"signalling": "10.0.0.2:5060", "media": null},
        "start": t(start), "ringing": null, "answer": null, "end": t(start + 60_000_000_000), "duration_s": 60.0,
        "talk_s": null, "state": state, "end_reason": reason, "ended_by": "caller", "final_code": code,
        "codecs": {"caller": "PCMU", "callee": "PCMU"},
        "sip": {"messages": 7, "invites": 1, "retransmissions": 0, "early_dialogs": 1, "transport": "udp",
                "challenges": []},
        "streams": streams, "audio": null, "evidence": null, "dtmf": [], "holds": [],
        "capture_complete": rng.below(100) != 0, "incomplete_reasons": [], "notes": [],
    }))
    .unwrap()
}

/// The index of `calls` calls, built once per size.
fn index(calls: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("index-bench-{calls}"));
    let path = dir.join("index.sqlite");
    let done = dir.join("complete");
    if done.exists() {
        return path;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut index, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Created);
    let started = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..calls {
        let r = record(i, &mut rng, calls);
        let name = format!("{i:010}");
        batch.push(IndexedCall::from_record(&format!("2026/01/01/{name}"), &r).unwrap());
        if batch.len() == 10_000 {
            index.insert(&batch).unwrap();
            batch.clear();
        }
    }
    index.insert(&batch).unwrap();
    index.optimize().unwrap();
    let took = started.elapsed();
    eprintln!(
        "indexed {calls} calls in {took:.1?} ({:.0} calls/s), {} MiB",
        calls as f64 / took.as_secs_f64(),
        std::fs::metadata(&path).unwrap().len() >> 20
    );
    std::fs::write(done, b"").unwrap();
    path
}

fn searches(c: &mut Criterion) {
    let calls: u64 = std::env::var("CALLVAULT_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = index(calls);
    let reader = Reader::new(&path);
    let some = reader.search(&Search { limit: 1, ..Search::default() }).unwrap().calls[0].clone();
    let mid = T0 + 15 * DAY_NS;
    let deep = {
        let mut cursor = None;
        for _ in 0..20 {
            cursor = reader.search(&Search { cursor, ..Search::default() }).unwrap().next;
        }
        cursor
    };
    let cases: Vec<(&str, Search)> = vec![
        ("newest", Search::default()),
        ("page 21", Search { cursor: deep, ..Search::default() }),
        ("one hour", Search { since_ns: Some(mid), until_ns: Some(mid + 3_600_000_000_000), ..Search::default() }),
        ("exact number", Search { number: some.from.clone(), ..Search::default() }),
        ("prefix +4420 (40%)", Search { number: Some("+4420".into()), ..Search::default() }),
        ("prefix 4420123 (rare)", Search { number: Some("4420123".into()), ..Search::default() }),
        ("mos below 2.5", Search { mos_below: Some(2.5), ..Search::default() }),
        ("rejected", Search { state: Some("rejected".into()), ..Search::default() }),
        ("incomplete", Search { incomplete: Some(true), ..Search::default() }),
        (
            "prefix +33 + mos below 3 + one day",
            Search {
                number: Some("+33".into()),
                mos_below: Some(3.0),
                since_ns: Some(mid),
                until_ns: Some(mid + DAY_NS),
                ..Search::default()
            },
        ),
    ];
    let mut group = c.benchmark_group(format!("index search, {calls} calls"));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, search) in &cases {
        let found = reader.search(search).unwrap().calls.len();
        eprintln!("{name}: {found} calls on the page");
        group.bench_function(*name, |b| b.iter(|| reader.search(search).unwrap()));
    }
    group.finish();
    let h = Instant::now();
    let buckets = reader.histogram(mid, mid + 3_600_000_000_000, 60_000_000_000).unwrap();
    eprintln!("histogram of one hour by minute: {} buckets in {:.1?}", buckets.len(), h.elapsed());
}

criterion_group!(benches, searches);
criterion_main!(benches);
