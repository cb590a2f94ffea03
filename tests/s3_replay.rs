//! End to end to a real S3 store over HTTPS (SeaweedFS from `scripts/s3-server.sh`, SigV4,
//! a CA generated for the test): replay generated calls with an `s3://` archive, then list and
//! fetch every object and check it against the local recording, byte for byte and by the
//! SHA-256 in the call record; replaying again uploads nothing new. Recorded as skipped without
//! the server.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use callgen::{CallSpec, Outcome, Scenario};
use common::{files, sha256, skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[test]
fn replay_to_s3_over_https_and_verify_every_object() {
    let (Some(endpoint), Some(ca), Some(_)) =
        (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_CA"), var("AWS_ACCESS_KEY_ID"))
    else {
        skipped("replay to S3: no S3 test server (scripts/s3-server.sh)");
        return;
    };
    let bucket = format!("replay-{}", std::process::id());
    let mut calls: Vec<CallSpec> =
        (0..5).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 400_000_000, 3000)).collect();
    calls[4].outcome = Outcome::Cancelled;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let archive = format!("s3://{bucket}/recordings");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["replay", "--quiet", "--output"])
            .arg(dir.path().join("data"))
            .args(["--archive", &archive, "--s3-endpoint", &endpoint, "--s3-path-style", "--site", "testsite"])
            .args(["--s3-ca-file", &ca])
            .arg("--signing-key")
            .arg(common::signing_key().0)
            .arg(&pcap)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 shipped"), "{}", text(&out));

    // Every local file must be in the bucket under recordings/testsite/<key>, identical.
    let local = dir.path().join("data/recordings");
    let mut want = BTreeMap::new();
    for f in files(&local) {
        want.insert(format!("recordings/testsite/{f}"), sha256(&local.join(&f)));
    }
    assert_eq!(want.len(), 5 + 4, "5 records and 4 recordings: {want:?}");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("archive")
            .args(args)
            .args(["--archive", &archive, "--s3-endpoint", &endpoint, "--s3-path-style", "--site", "testsite"])
            .args(["--s3-ca-file", &ca])
            .arg("--signing-key")
            .arg(common::signing_key().0)
            .output()
            .unwrap()
    };
    let verified = cli(&["verify", "2025-01-01"]);
    assert!(verified.status.success(), "archive verify: {}", text(&verified));
    // The day's manifest lists the five calls; fetch each and compare with the local copy.
    let listed = cli(&["ls", "2025-01-01", "--json"]);
    assert!(listed.status.success(), "archive ls: {}", text(&listed));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{}", text(&listed));
    let got = dir.path().join("got");
    std::fs::create_dir_all(&got).unwrap();
    for line in &lines {
        let key = line["key"].as_str().expect("manifest line has a key");
        let fetched = cli(&["get", key, "--dir", got.to_str().unwrap()]);
        assert!(fetched.status.success(), "archive get {key}: {}", text(&fetched));
    }
    for (key, sha) in &want {
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(&sha256(&got.join(name)), sha, "{key}");
    }
    // The records name the audio's SHA-256, which is what the store holds.
    for f in files(&got).iter().filter(|f| f.ends_with(".json")) {
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(got.join(f)).unwrap()).unwrap();
        if let Some(audio) = rec["audio"]["file"].as_str() {
            assert_eq!(rec["audio"]["sha256"], sha256(&got.join(audio)), "{f}");
        }
    }
    // Again: nothing new, nothing different.
    let again = run();
    assert!(again.status.success(), "{}", text(&again));
}
