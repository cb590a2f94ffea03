//! `kill -9` of the real binary at each named crash point of the spool, the shipper and the
//! manifest writer (between a batch and its signature), then a restart
//! (`CALLVAULT_CRASH_AT=<point>:<skip>` makes the process SIGKILL itself there): every recording
//! that was finished is archived exactly once, verified, every manifest batch signed, nothing is
//! left in the queue or the work directory, and nothing is duplicated with different content. The S3 point
//! runs against the real test store when `scripts/s3-server.sh` is up (skipped otherwise).

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use callgen::{CallSpec, Outcome, Scenario};
use common::{files, records, sha256, skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// Points every local-directory replay passes (S3 adds `ship-after-upload`).
const LOCAL_POINTS: [&str; 9] = [
    "enter-after-intent",
    "enter-after-first-move",
    "enter-after-moves",
    "enter-after-entry",
    "ship-after-copy",
    "ship-before-manifest",
    "ship-after-publish",
    "ship-after-mark",
    "manifest-before-signature",
];

/// Six calls (one cancelled, so one record without audio) and, for the restart, a seventh.
fn captures(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<String>) {
    let mut calls: Vec<CallSpec> =
        (0..6).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 300_000_000, 2000)).collect();
    calls[3].outcome = Outcome::Cancelled;
    let later = CallSpec::answered(9, T0 + 600_000_000_000, 1000);
    let mut ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    ids.push(later.call_id.clone());
    let (first, second) = (dir.join("calls.pcap"), dir.join("later.pcap"));
    callgen::write_pcap(&Scenario::new(calls), &first).unwrap();
    callgen::write_pcap(&Scenario::new(vec![later]), &second).unwrap();
    (first, second, ids)
}

fn replay(dir: &Path, archive: &[String], crash_at: Option<&str>, pcap: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["replay", "--quiet", "--output"]).arg(dir.join("data")).args(archive).arg(pcap);
    cmd.env_remove("CALLVAULT_CRASH_AT");
    if let Some(p) = crash_at {
        cmd.env("CALLVAULT_CRASH_AT", p);
    }
    cmd.output().unwrap()
}

/// Kills at `point` (`CALLVAULT_CRASH_AT=<point>:<passes let through>`: at its third pass, or
/// its first for a manifest signature), restarts, and checks the local side; returns the call
/// ids of the records in the local copies.
fn crash_and_restart(dir: &Path, archive: &[String], point: &str) -> Vec<String> {
    let (first, second, ids) = captures(dir);
    // Two passes let through, so that some work is done before; a manifest batch may be
    // written only once in a run (its lines gathered over the linger: all of them when the
    // shipments are quick), so that point dies at the first.
    let passes = if point == "manifest-before-signature" { 0 } else { 2 };
    let out = replay(dir, archive, Some(&format!("{point}:{passes}")), &first);
    assert_eq!(out.status.signal(), Some(9), "{point}: the process was killed there\n{}", text(&out));
    let again = replay(dir, archive, None, &second);
    assert!(again.status.success(), "{point}: restart\n{}\n{}", text(&out), text(&again));
    let data = dir.join("data");
    let runs = format!("{}\n{}", text(&out), text(&again));
    assert_eq!(files(&data.join("queue")), Vec::<String>::new(), "{point}: queue drained\n{runs}");
    assert_eq!(files(&data.join("work")), Vec::<String>::new(), "{point}: work directory empty\n{runs}");
    let local = records(&data.join("recordings"));
    let mut seen = BTreeMap::new();
    for r in &local {
        let id = r.value["call_id"].as_str().unwrap().to_owned();
        assert!(ids.contains(&id), "{point}: unknown call {id}");
        *seen.entry(id).or_insert(0) += 1;
        if let Some(wav) = &r.wav {
            assert_eq!(r.value["audio"]["sha256"], sha256(wav), "{point}: {}", r.json.display());
        }
    }
    assert!(seen.values().all(|&n| n == 1), "{point}: one recording per call: {seen:?}");
    // Two recordings were entered before the crash, the third was being handled, the restart
    // added one: at least four.
    assert!(seen.len() >= 4, "{point}: {seen:?}\n{}\n{}", text(&out), text(&again));
    seen.into_keys().collect()
}

#[test]
fn kill_9_at_each_crash_point_then_restart_loses_and_duplicates_nothing() {
    for point in LOCAL_POINTS {
        let dir = tempfile::tempdir().unwrap();
        let archive_dir = dir.path().join("archive");
        let key = common::signing_key().0.display().to_string();
        let archive = vec!["--archive".to_owned(), archive_dir.display().to_string(), "--signing-key".to_owned(), key];
        crash_and_restart(dir.path(), &archive, point);
        // The archive holds exactly the local copies, byte for byte, and no `~2`, beside the
        // day's manifest. A copy cut short by the kill stays as a hidden `.<name>.part-<hex>`
        // until it is stale (swept by the target after fifteen minutes); nothing else.
        let local = dir.path().join("data/recordings");
        let want: Vec<String> = files(&local);
        let is_part = |f: &String| f.rsplit('/').next().is_some_and(|n| n.starts_with('.') && n.contains(".part-"));
        let (manifests, archived): (Vec<String>, Vec<String>) = files(&archive_dir)
            .into_iter()
            .filter(|f| !is_part(f) && !f.starts_with("keys/"))
            .partition(|f| f.contains("/manifest/"));
        assert_eq!(archived, want, "{point}");
        // Exactly one manifest line per recording, whatever the crash; every batch signed (one
        // left unsigned by the kill is signed by the restart's write to its day).
        let mut keys: Vec<String> = Vec::new();
        for m in manifests.iter().filter(|m| m.ends_with(".jsonl")) {
            assert!(manifests.contains(&format!("{m}.sig")), "{point}: {m} has no signature: {manifests:?}");
            for l in std::fs::read_to_string(archive_dir.join(m)).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                if v.get("batch").is_none() {
                    keys.push(v["key"].as_str().unwrap().to_owned());
                }
            }
        }
        keys.sort();
        let mut recorded: Vec<String> =
            want.iter().filter_map(|f| f.strip_suffix(".json")).map(str::to_owned).collect();
        recorded.sort();
        assert_eq!(keys, recorded, "{point}: one manifest line per recording");
        let verified = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["archive", "verify", "2025-01-01", "--no-history"])
            .args(&archive)
            .output()
            .unwrap();
        assert!(verified.status.success(), "{point}: {}", text(&verified));
        for f in &want {
            assert_eq!(sha256(&archive_dir.join(f)), sha256(&local.join(f)), "{point}: {f}");
        }
    }
}

#[test]
fn kill_9_after_an_s3_upload_then_restart_loses_and_duplicates_nothing() {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(ca), Some(_)) =
        (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_CA"), var("AWS_ACCESS_KEY_ID"))
    else {
        skipped("kill -9 at ship-after-upload: no S3 test server (scripts/s3-server.sh)");
        return;
    };
    for point in ["ship-after-upload", "ship-before-manifest", "ship-after-publish", "ship-after-mark"] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("s3://crash-{}-{point}/rec", std::process::id());
        let target: Vec<String> = ["--archive", &url, "--s3-endpoint", &endpoint, "--s3-path-style", "--site", "t"]
            .into_iter()
            .map(String::from)
            .chain(["--s3-ca-file".to_owned(), ca.clone()])
            .chain(["--signing-key".to_owned(), common::signing_key().0.display().to_string()])
            .collect();
        let ids = crash_and_restart(dir.path(), &target, point);
        let cli = |args: &[&str]| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_callvault"));
            c.arg("archive").args(args).args(&target);
            c.output().unwrap()
        };
        // Every object verifies against the SHA-256 in its record; the manifests list each
        // call once, in exactly one line.
        let mut listed = Vec::new();
        for day in ["2025-01-01"] {
            let v = cli(&["verify", day, "--json", "--no-history"]);
            assert!(v.status.success(), "{point}: archive verify {day}: {}", text(&v));
            let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
            assert_eq!(report["manifest_lines"], report["recordings"], "{point}: {report:#}");
            assert_eq!(report["recordings"], ids.len(), "{point}: {report:#}");
            let ls = cli(&["ls", day, "--json"]);
            assert!(ls.status.success(), "{point}: {}", text(&ls));
            for l in String::from_utf8_lossy(&ls.stdout).lines().filter(|l| l.starts_with('{')) {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                listed.push(v["call_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want, "{point}: the manifest lists every recording once");
    }
}
