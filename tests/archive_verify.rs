//! `callvault archive verify|ls|get` as a hostile tester uses them, on a local archive and on the
//! real S3 test server (`scripts/s3-server.sh`; recorded as skipped without it): the same
//! capture replayed three times and by two concurrent recorders leaves one manifest line per
//! call; a clean archive verifies with the generator's count; then a recording is deleted, an
//! object forged, a WAV byte altered, a record's `audio.sha256` altered, a malformed and a
//! duplicated manifest line added and a day's manifest deleted — each is reported by kind and
//! object, with exit status 3. Impossible dates, empty days and a wrong site fail with a message;
//! `archive get` never leaves a file that failed its check under its name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callgen::{CallSpec, Outcome, Scenario};
use common::records;
use common::store::Store;
use common::text;
use serde_json::Value;

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600 * 1_000_000_000;
/// 2025-01-02T00:00:00Z.
const T1: i64 = T0 + 86_400 * 1_000_000_000;

/// Calls of one day starting at `t0`: `n` answered, the last one cancelled (a record without
/// audio).
fn capture(dir: &Path, name: &str, first: u32, n: u32, t0: i64) -> (PathBuf, Vec<CallSpec>) {
    let mut calls: Vec<CallSpec> =
        (first..first + n).map(|i| CallSpec::answered(i, t0 + i64::from(i - first) * 300_000_000, 1500)).collect();
    calls.last_mut().unwrap().outcome = Outcome::Cancelled;
    let pcap = dir.join(name);
    callgen::write_pcap(&Scenario::new(calls.clone()), &pcap).unwrap();
    (pcap, calls)
}

fn replay(store: &Store, data: &Path, pcap: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(data)
        .args(store.args())
        .arg(pcap)
        .output()
        .unwrap()
}

fn archive(store: &Store, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault")).arg("archive").args(args).args(store.args()).output().unwrap()
}

/// `archive verify --json` of the days, with the recorder's history from `data`.
fn verify(store: &Store, days: &[&str], data: &Path) -> (Output, Value) {
    let mut args = vec!["verify", days[0], "--json", "--output", data.to_str().unwrap()];
    if let Some(last) = days.get(1) {
        args.extend(["--to", last]);
    }
    let out = archive(store, &args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out, report)
}

/// The problems of `kind` in `report`, as (object or key, detail).
fn problems(report: &Value, kind: &str) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind)
        .map(|p| {
            let what = p["object"].as_str().or(p["key"].as_str()).or(p["manifest"].as_str()).unwrap_or("");
            (what.to_owned(), p["detail"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Per call id, the archive-relative path of its record (`YYYY/MM/DD/<name>.json`) and audio.
fn by_call(data: &Path) -> Vec<(String, String, Option<String>)> {
    let root = data.join("recordings");
    records(&root)
        .into_iter()
        .map(|r| {
            let rel = |p: &Path| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            (r.value["call_id"].as_str().unwrap().to_owned(), rel(&r.json), r.wav.as_deref().map(rel))
        })
        .collect()
}

fn hostile_tester(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    store.create_bucket();
    let (day1, calls1) = capture(dir.path(), "day1.pcap", 0, 5, T0);
    let (day2, calls2) = capture(dir.path(), "day2.pcap", 100, 3, T1);
    let data = dir.path().join("data");

    // The same capture three times into one recorder, and once more by a second recorder at the
    // same time as a third: one manifest line per call.
    for _ in 0..3 {
        let out = replay(store, &data, &day1);
        assert!(out.status.success(), "{}", text(&out));
    }
    let (a, b) = (dir.path().join("data-a"), dir.path().join("data-b"));
    let both = std::thread::scope(|s| {
        let ra = s.spawn(|| replay(store, &a, &day1));
        let rb = s.spawn(|| replay(store, &b, &day1));
        [ra.join().unwrap(), rb.join().unwrap()]
    });
    for out in &both {
        assert!(out.status.success(), "{}", text(out));
    }
    let lines = store.lines("2025/01/01");
    let mut ids: Vec<&str> = lines.iter().map(|l| l["call_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = calls1.iter().map(|c| c.call_id.as_str()).collect();
    want.sort();
    assert_eq!(ids, want, "one manifest line per call: {lines:#?}");
    assert!(lines.iter().all(|l| l["v"] == 2), "{lines:#?}");
    let out = replay(store, &data, &day2);
    assert!(out.status.success(), "{}", text(&out));

    // Clean: every object verified, counts from the generator's truth.
    let with_audio = |calls: &[CallSpec]| calls.iter().filter(|c| c.outcome != Outcome::Cancelled).count();
    let (out, report) = verify(store, &["2025-01-01", "2025-01-02"], &data);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(report["recordings"], calls1.len() + calls2.len(), "{report:#}");
    assert_eq!(report["objects_verified"], calls1.len() + with_audio(&calls1) + calls2.len() + with_audio(&calls2));
    assert_eq!(report["history"]["recordings"], calls1.len() + calls2.len(), "{report:#}");
    assert_eq!(report["history"]["matched"], calls1.len() + calls2.len(), "{report:#}");
    assert!(report["problems"].as_array().unwrap().is_empty(), "{report:#}");
    // The text report says the same.
    let out = archive(store, &["verify", "2025-01-01", "--output", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} recording(s)", calls1.len())), "{}", text(&out));

    // archive ls lists each call once, from the manifest.
    let out = archive(store, &["ls", "2025-01-01", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(listed, calls1.len(), "{}", text(&out));

    // Now as a hostile tester.
    let recs = by_call(&data);
    let find = |id: &str| recs.iter().find(|(c, _, _)| c == id).unwrap().clone();
    let (_, _, wav0) = find(&calls1[0].call_id);
    let (_, _, wav1) = find(&calls1[1].call_id);
    let (_, json2, wav2) = find(&calls1[2].call_id);

    let (wav0, wav1, wav2) = (wav0.unwrap(), wav1.unwrap(), wav2.unwrap());
    // 1. A recording's audio deleted.
    store.delete(&wav0);
    // 2. A forged recording.
    let forged = format!("{}_deadbeef0000.wav", wav0.rsplit_once('_').unwrap().0);
    store.write(&forged, b"RIFF forged audio");
    // 3. One byte of a WAV altered.
    let mut bytes = store.read(&wav1);
    bytes[100] ^= 0x01;
    store.write(&wav1, &bytes);
    // 4. A record's audio.sha256 altered.
    let mut record: Value = serde_json::from_slice(&store.read(&json2)).unwrap();
    record["audio"]["sha256"] = Value::String("0".repeat(64));
    store.write(&json2, serde_json::to_string_pretty(&record).unwrap().as_bytes());
    // 5 and 6. A malformed line and a duplicated line appended to the day's first manifest.
    let manifest1 = store.manifests("2025/01/01").into_iter().next().unwrap();
    let mut body = store.read(&manifest1);
    let original_lines = body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    let line3 = store.lines("2025/01/01").into_iter().find(|l| l["call_id"] == calls1[3].call_id.as_str()).unwrap();
    body.extend_from_slice(b"{\"v\":1,\"key\":\"broken\n");
    body.extend_from_slice(format!("{line3}\n").as_bytes());
    store.write(&manifest1, &body);
    // 7. The second day's manifests deleted.
    let day2_manifests = store.manifests("2025/01/02");
    assert!(!day2_manifests.is_empty());
    for m in &day2_manifests {
        store.delete(m);
    }

    let (out, report) = verify(store, &["2025-01-01", "2025-01-02"], &data);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let k = |rel: &str| store.key(rel);
    let missing = problems(&report, "missing");
    assert_eq!(missing.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), [k(&wav0)], "{report:#}");
    let altered: Vec<(String, String)> = problems(&report, "altered");
    assert!(altered.iter().any(|(o, d)| *o == k(&wav1) && d.contains("the manifest records")), "{altered:#?}");
    assert!(altered.iter().any(|(o, d)| *o == k(&json2) && d.contains("the manifest records")), "{altered:#?}");
    assert!(
        altered.iter().any(|(o, d)| *o == k(&json2) && d.contains("audio.sha256") && d.contains(&k(&wav2))),
        "{altered:#?}"
    );
    assert_eq!(altered.len(), 3, "{altered:#?}");
    let malformed: Vec<&Value> =
        report["problems"].as_array().unwrap().iter().filter(|p| p["kind"] == "malformed").collect();
    assert_eq!(malformed.len(), 1, "{report:#}");
    assert_eq!(malformed[0]["manifest"], k(&manifest1));
    assert_eq!(malformed[0]["line"], original_lines + 1);
    let duplicate = problems(&report, "duplicate");
    assert_eq!(duplicate.len(), 1, "{report:#}");
    assert_eq!(duplicate[0].0, line3["key"].as_str().unwrap());
    // Forged and orphaned objects: the forged WAV and every object of the second day.
    let unlisted: Vec<String> = problems(&report, "unlisted").into_iter().map(|p| p.0).collect();
    let mut want_unlisted = vec![k(&forged)];
    for (id, json, wav) in &recs {
        if calls2.iter().any(|c| &c.call_id == id) {
            want_unlisted.push(k(json));
            want_unlisted.extend(wav.as_deref().map(k));
        }
    }
    want_unlisted.sort();
    let mut unlisted_sorted = unlisted.clone();
    unlisted_sorted.sort();
    assert_eq!(unlisted_sorted, want_unlisted, "{report:#}");
    // The recorder's history misses the second day's calls in the manifests.
    let unaccounted: Vec<String> = problems(&report, "unaccounted").into_iter().map(|p| p.0).collect();
    assert_eq!(unaccounted.len(), calls2.len(), "{report:#}");
    // The rest still verified: the untouched recordings of day 1 and what is left of the others.
    assert_eq!(report["recordings"], calls1.len(), "{report:#}");
    assert_eq!(report["counts"]["missing"], 1);
    // The text report names each.
    let out = archive(store, &["verify", "2025-01-01", "--to", "2025-01-02", "--output", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    for word in ["MISSING", "UNLISTED", "ALTERED", "DUPLICATE", "MALFORMED", "UNACCOUNTED", "deadbeef0000"] {
        assert!(shown.contains(word), "{word}: {shown}");
    }

    // archive get: a file that fails its check never gets its name; a missing key is named.
    let got = dir.path().join("got");
    let key1 = wav1.strip_suffix(".wav").unwrap();
    let out = archive(store, &["get", key1, "--dir", got.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let name1 = key1.rsplit('/').next().unwrap();
    assert!(!got.join(format!("{name1}.wav")).exists(), "{}", text(&out));
    assert!(got.join(format!("{name1}.json")).exists(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"), "{}", text(&out));
    assert!(common::files(&got).iter().all(|f| !f.contains(".part")), "{:?}", common::files(&got));
    let out = archive(store, &["get", "2025/01/01/no_such_call", "--dir", got.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such recording 2025/01/01/no_such_call in "), "{err}");
    if let Store::S3 { bucket, .. } = store {
        assert!(err.contains(&format!("bucket {bucket}")) && !err.contains("does not exist"), "{err}");
    }

    // Impossible dates and empty days fail with a message.
    let out = archive(store, &["verify", "2026-02-30"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a date"), "{}", text(&out));
    let out = archive(store, &["verify", "2025-01-03", "--no-history"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to verify"), "{}", text(&out));
}

#[test]
fn hostile_tester_on_a_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    hostile_tester(&Store::Local(dir.path().join("archive")));
}

#[test]
fn hostile_tester_on_s3() {
    let Some(store) = Store::s3("hostile") else { return };
    hostile_tester(&store);
    // Without the right site: the sites the archive holds are named.
    let mut args: Vec<String> = store.args();
    let site = args.iter().position(|a| a == "site1").unwrap();
    args[site] = "elsewhere".into();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["archive", "verify", "2025-01-01", "--no-history"])
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("site1") && err.contains("--site"), "{err}");
}

#[test]
fn replay_into_a_damaged_local_archive_reports_the_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(dir.path().join("archive"));
    let (pcap, calls) = capture(dir.path(), "calls.pcap", 0, 3, T0);
    let out = replay(&store, &dir.path().join("data"), &pcap);
    assert!(out.status.success(), "{}", text(&out));
    let recs = by_call(&dir.path().join("data"));
    let (_, _, wav) = recs.iter().find(|(c, _, _)| *c == calls[0].call_id).unwrap().clone();
    let wav = wav.unwrap();
    let mut bytes = store.read(&wav);
    bytes[200] ^= 0x80;
    store.write(&wav, &bytes);

    // The same capture again, by a fresh recorder: the damaged file is an error naming it, and
    // counted.
    let metrics = dir.path().join("metrics.prom");
    let again = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(dir.path().join("data2"))
        .args(store.args())
        .arg("--metrics-out")
        .arg(&metrics)
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    let Store::Local(root) = &store else { unreachable!() };
    let damaged = root.join(&wav).display().to_string();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("ERROR") && stderr.contains(&damaged), "{}", text(&again));
    let counted = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        counted.lines().any(|l| l.starts_with("callvault_ship_diverted_recordings_total{") && l.ends_with(" 1")),
        "{counted}"
    );
    // The good copy is kept under a distinct name; the damaged file is left as it was.
    let kept = wav.replace(".wav", "~2.wav");
    assert_eq!(store.read(&kept), std::fs::read(dir.path().join("data2/recordings").join(&wav)).unwrap());
    assert_eq!(store.read(&wav), bytes);
    // verify reports the damage, and only that.
    let (out, report) = verify(&store, &["2025-01-01"], &dir.path().join("data2"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let altered = problems(&report, "altered");
    assert_eq!(altered.len(), 1, "{report:#}");
    assert_eq!(altered[0].0, wav);
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["recordings"], calls.len() + 1, "{report:#}");
}

/// Two `callvault ship` processes at once, each draining its own copy of one spool (the same
/// recordings, queued while the first archive was unreachable) into one archive.
fn two_concurrent_ships(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, calls) = capture(dir.path(), "calls.pcap", 0, 4, T0);
    let (a, b) = (dir.path().join("data-a"), dir.path().join("data-b"));
    // Queued, not shipped: the archive configured at recording time does not answer.
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--ship-timeout", "1", "--output"])
        .arg(&a)
        .args(["--archive", "s3://unreachable/x", "--s3-endpoint", "https://127.0.0.1:9", "--site", "s"])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .arg(&pcap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let copied = Command::new("cp").arg("-a").arg(&a).arg(&b).output().unwrap();
    assert!(copied.status.success(), "{}", text(&copied));
    let ship = |data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["ship", "--retarget", "--output"])
            .arg(data)
            .args(store.args())
            .output()
            .unwrap()
    };
    let both = std::thread::scope(|s| {
        let sa = s.spawn(|| ship(&a));
        let sb = s.spawn(|| ship(&b));
        [sa.join().unwrap(), sb.join().unwrap()]
    });
    for out in &both {
        assert!(out.status.success(), "{}", text(out));
    }
    let mut ids: Vec<String> =
        store.lines("2025/01/01").iter().map(|l| l["call_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut want: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    want.sort();
    assert_eq!(ids, want, "one manifest line per call");
    let (out, report) = verify(store, &["2025-01-01"], &a);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(report["recordings"], calls.len(), "{report:#}");
    assert_eq!(report["history"]["matched"], calls.len(), "{report:#}");
}

#[test]
fn two_concurrent_ships_on_a_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    two_concurrent_ships(&Store::Local(dir.path().join("archive")));
}

#[test]
fn two_concurrent_ships_on_s3() {
    let Some(store) = Store::s3("ships") else { return };
    store.create_bucket();
    two_concurrent_ships(&store);
}

/// A split recording (one file per party) verifies clean: each party's file is found under its
/// name in the manifest line and matches the SHA-256 the call record gives it; a changed party
/// file is named.
#[test]
fn split_recordings_verify_party_by_party() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(dir.path().join("archive"));
    let (pcap, calls) = capture(dir.path(), "calls.pcap", 0, 3, T0);
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--audio-layout", "split", "--output"])
        .arg(&data)
        .args(store.args())
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (out, report) = verify(&store, &["2025-01-01"], &data);
    assert!(out.status.success(), "{}\n{report:#}", text(&out));
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0), "{report:#}");

    let recs = by_call(&data);
    let (_, _, wav) = recs.iter().find(|(c, _, _)| *c == calls[0].call_id).unwrap().clone();
    let callee = wav.unwrap().replace(".caller.wav", ".callee.wav");
    let mut bytes = store.read(&callee);
    bytes[100] ^= 0x80;
    store.write(&callee, &bytes);
    let (out, report) = verify(&store, &["2025-01-01"], &data);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let altered = problems(&report, "altered");
    assert!(altered.iter().any(|(o, _)| o.ends_with(".callee.wav")), "{report:#}");
    assert!(problems(&report, "missing").is_empty(), "{report:#}");
}

/// A long recording (a 2-hour call: 230 MB of WAV) is verified and fetched as it is read, never
/// held in memory: `archive verify` and `archive get` stay far below the object's size (peak
/// RSS from `/usr/bin/time`), and a byte altered in its middle is still found (and the copy
/// not written).
fn a_long_recording_is_verified_as_it_is_read(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    store.create_bucket();
    let pcap = dir.path().join("long.pcap");
    callgen::write_pcap(&Scenario::new(vec![CallSpec::answered(0, T0, 7_200_000)]), &pcap).unwrap();
    let data = dir.path().join("data");
    let out = replay(store, &data, &pcap);
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, wav) = by_call(&data).remove(0);
    let wav = wav.unwrap();
    let size = store.read(&wav).len();
    assert!(size > 230_000_000, "{size}");

    let peak_kib = |out: &Output| -> u64 {
        let err = String::from_utf8_lossy(&out.stderr);
        err.lines().rev().find_map(|l| l.strip_prefix("peak_kib=")).unwrap().trim().parse().unwrap()
    };
    let timed = |args: &[&str]| {
        Command::new("/usr/bin/time")
            .args(["-f", "peak_kib=%M", env!("CARGO_BIN_EXE_callvault"), "archive"])
            .args(args)
            .args(store.args())
            .output()
            .unwrap()
    };
    let timed_verify = || timed(&["verify", "2025-01-01", "--json", "--output", data.to_str().unwrap()]);
    let out = timed_verify();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["objects_verified"], 2, "{report:#}");
    let peak = peak_kib(&out);
    eprintln!("archive verify: peak RSS {peak} KiB for an object of {size} bytes");
    assert!(peak * 1024 < size as u64 / 4, "peak RSS {peak} KiB verifying an object of {size} bytes");

    // `archive get` copies it as it reads it, and checks it.
    let key = wav.strip_suffix(".wav").unwrap();
    let got = dir.path().join("got");
    let out = timed(&["get", key, "--dir", got.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let name = wav.rsplit('/').next().unwrap();
    assert!(std::fs::read(got.join(name)).unwrap() == store.read(&wav), "the copy differs");
    let peak = peak_kib(&out);
    eprintln!("archive get: peak RSS {peak} KiB for an object of {size} bytes");
    assert!(peak * 1024 < size as u64 / 4, "peak RSS {peak} KiB getting an object of {size} bytes");

    let mut bytes = store.read(&wav);
    bytes[size / 2] ^= 0x40;
    store.write(&wav, &bytes);
    drop(bytes);
    let out = timed_verify();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let altered = problems(&report, "altered");
    assert_eq!(altered.len(), 1, "{altered:#?}");
    assert_eq!(altered[0].0, store.key(&wav));
    assert!(altered[0].1.contains(&format!("holds {size} bytes")), "{altered:#?}");
    // Altered: not written, no partial copy left.
    std::fs::remove_dir_all(&got).unwrap();
    let out = timed(&["get", key, "--dir", got.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SHA-256 MISMATCH"), "{}", text(&out));
    assert_eq!(common::files(&got), [format!("{}.json", name.strip_suffix(".wav").unwrap())], "{}", text(&out));
}

#[test]
fn a_long_recording_is_verified_as_it_is_read_on_a_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    a_long_recording_is_verified_as_it_is_read(&Store::Local(dir.path().join("archive")));
}

#[test]
fn a_long_recording_is_verified_as_it_is_read_on_s3() {
    let Some(store) = Store::s3("long") else { return };
    a_long_recording_is_verified_as_it_is_read(&store);
}
