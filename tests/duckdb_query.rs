//! The README's DuckDB query (the SQL block after `<!-- duckdb-query -->`), run exactly as
//! written with PyPI `duckdb` (installed by `scripts/deps.sh test`; recorded as skipped without
//! it) over a day of an archive that a replay of a generated capture produced: calls by party
//! against the generator's parties, calls by MOS against the records (the lossy call worst), the
//! calls with incomplete capture against the records (the call still up at the end of the
//! capture among them, with its reason).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use callgen::{CallSpec, Hangup, Outcome, Scenario};
use common::{records, signing_key, skipped, text};
use serde_json::Value;

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// The Python with `duckdb` that scripts/deps.sh installs.
fn duckdb_python() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let python = cache.join("callvault/duckdb/bin/python");
    let ok = Command::new(&python).args(["-c", "import duckdb"]).output().is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// The SQL block of the README after the marker.
fn readme_query() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("<!-- duckdb-query -->").nth(1).expect("the README marks its DuckDB query");
    let block = after.split("```sql\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

const RUNNER: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
for q in open(sys.argv[1]).read().split(";\n"):
    if not q.strip():
        continue
    rel = con.sql(q)
    if rel is not None:
        print(json.dumps([dict(zip(rel.columns, row)) for row in rel.fetchall()]))
"#;

#[test]
fn the_readme_duckdb_query_answers_from_a_day_of_manifests_and_records() {
    let Some(python) = duckdb_python() else {
        skipped("DuckDB query of the README: PyPI duckdb is not installed (scripts/deps.sh test installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let party = |c: &mut CallSpec, from: &str, to: &str| {
        c.from_user = from.into();
        c.to_user = to.into();
    };
    let mut calls: Vec<CallSpec> =
        (0..4).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 500_000_000, 3000)).collect();
    party(&mut calls[0], "alice", "bob");
    party(&mut calls[1], "alice", "carol");
    // One packet in four of the caller's lost: the worst MOS.
    calls[1].impair.caller.loss = (0..150).filter(|k| k % 4 == 1).collect();
    party(&mut calls[2], "bob", "carol");
    // Still up when the capture ends: incomplete.
    calls[2].outcome = Outcome::Answered { hangup: Hangup::None };
    party(&mut calls[3], "dave", "alice");
    calls[3].outcome = Outcome::Cancelled;
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls.clone()), &pcap).unwrap();
    let archive = dir.path().join("archive");
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(dir.path().join("data"))
        .arg("--archive")
        .arg(&archive)
        .arg("--signing-key")
        .arg(signing_key().0)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The day as a consumer downloads it: the manifests and the records (no audio).
    let day = dir.path().join("day");
    let src = archive.join("2025/01/01");
    for f in common::files(&src).into_iter().filter(|f| f.ends_with(".json") || f.contains("manifest/")) {
        std::fs::create_dir_all(day.join(&f).parent().unwrap()).unwrap();
        std::fs::copy(src.join(&f), day.join(&f)).unwrap();
    }
    let sql = dir.path().join("day.sql");
    std::fs::write(&sql, readme_query()).unwrap();
    let out = Command::new(&python).arg("-c").arg(RUNNER).arg(&sql).current_dir(&day).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let answers: Vec<Vec<Value>> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), 3, "three result sets: {answers:#?}");
    let recs = records(&src);
    let key_of = |r: &common::Rec| format!("2025/01/01/{}", r.json.file_stem().unwrap().to_string_lossy());
    let by_call: BTreeMap<String, &common::Rec> =
        recs.iter().map(|r| (r.value["call_id"].as_str().unwrap().to_owned(), r)).collect();
    assert_eq!(by_call.len(), calls.len());

    // 1. Calls by party: the generator's parties, each call counted for both of its parties.
    let mut want: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for c in &calls {
        let seconds = by_call[&c.call_id].value["duration_s"].as_f64().unwrap();
        for p in [&c.from_user, &c.to_user] {
            let e = want.entry(p.clone()).or_default();
            e.0 += 1;
            e.1 += seconds;
        }
    }
    let got: BTreeMap<String, (u64, f64)> = answers[0]
        .iter()
        .map(|r| {
            (r["party"].as_str().unwrap().to_owned(), (r["calls"].as_u64().unwrap(), r["seconds"].as_f64().unwrap()))
        })
        .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{answers:#?}");
    for (p, (n, s)) in &want {
        assert_eq!(got[p].0, *n, "{p}: {answers:#?}");
        assert!((got[p].1 - (s * 10.0).round() / 10.0).abs() < 1e-9, "{p}: {} vs {s}", got[p].1);
    }

    // 2. Calls by MOS: every call with audio, its MOS the lowest of its audio streams in the
    // record, worst first — the call with the generator's packet loss.
    let mos_of = |r: &common::Rec| {
        r.value["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["quality"]["mos"].as_f64())
            .fold(f64::INFINITY, f64::min)
    };
    let with_audio: Vec<&CallSpec> = calls.iter().filter(|c| by_call[&c.call_id].wav.is_some()).collect();
    assert_eq!(with_audio.len(), 3, "the cancelled call has no audio");
    assert_eq!(answers[1].len(), with_audio.len(), "{answers:#?}");
    for row in &answers[1] {
        let rec = recs.iter().find(|r| key_of(r) == row["key"].as_str().unwrap()).unwrap();
        assert_eq!(row["mos"].as_f64().unwrap(), mos_of(rec), "{row}");
    }
    let worst = answers[1][0]["key"].as_str().unwrap();
    assert_eq!(worst, key_of(by_call[&calls[1].call_id]), "{answers:#?}");
    assert!(answers[1][0]["mos"].as_f64().unwrap() < answers[1][1]["mos"].as_f64().unwrap(), "{answers:#?}");

    // 3. Incomplete capture: the records that say so, the call still up at the end among them.
    let got: Vec<&str> = answers[2].iter().map(|r| r["key"].as_str().unwrap()).collect();
    let mut want: Vec<String> = recs.iter().filter(|r| r.value["capture_complete"] == false).map(key_of).collect();
    want.sort();
    assert_eq!(got, want, "{answers:#?}");
    let up = key_of(by_call[&calls[2].call_id]);
    let row = answers[2].iter().find(|r| r["key"] == up.as_str()).expect("the call still up is incomplete");
    assert!(row["why"].as_str().unwrap().contains("the capture ended while the call was still up"), "{row}");
    for c in &calls[..2] {
        assert!(!got.contains(&key_of(by_call[&c.call_id]).as_str()), "{answers:#?}");
    }
}
