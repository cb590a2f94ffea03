//! The API serves audio whose local copies are gone from the S3 archive (SeaweedFS from
//! `scripts/s3-server.sh`, over HTTPS): fetched, checked against the call record's SHA-256,
//! served with HTTP Range and audited; an archive copy that was altered is refused. Recorded as
//! skipped without the server.

mod common;

use std::path::Path;
use std::process::Command;

use callgen::{CallSpec, Scenario};
use common::{have, sha256, skipped, text};
use serde_json::Value;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// curl: (status, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().unwrap();
    let mut body = out.stdout;
    let at = body.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&body[at + 1..]).parse().unwrap_or(0);
    body.truncate(at);
    (status, body)
}

#[test]
fn audio_gone_from_the_box_is_fetched_from_s3_checked_and_served() {
    let (Some(endpoint), Some(ca), Some(region), Some(key_id), Some(secret)) = (
        var("CALLVAULT_S3_ENDPOINT"),
        var("CALLVAULT_S3_CA"),
        var("CALLVAULT_S3_REGION"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) else {
        skipped("API audio from S3: no S3 test server (scripts/s3-server.sh)");
        return;
    };
    if !have("curl") {
        skipped("API audio from S3: curl is not installed");
        return;
    }
    let bucket = format!("api-{}", std::process::id());
    let calls = (0..2).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 400_000_000, 2000)).collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let data = dir.path().join("data");
    let archive = format!("s3://{bucket}/recordings");
    let s3 =
        ["--archive", &archive, "--s3-endpoint", &endpoint, "--s3-path-style", "--site", "hq", "--s3-ca-file", &ca];
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(&data)
        .args(s3)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Retention took the local audio: keep each for comparison, then remove it.
    let mut wavs: Vec<_> =
        walk(&data.join("recordings")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "wav")).collect();
    wavs.sort();
    assert_eq!(wavs.len(), 2);
    let kept = dir.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    let originals: Vec<Vec<u8>> = wavs.iter().map(|w| std::fs::read(w).unwrap()).collect();
    for w in &wavs {
        std::fs::remove_file(w).unwrap();
    }

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--output"]).arg(&data).args(s3).env_remove("CALLVAULT_CONFIG");
    let (serve, base) = common::start_serve(cmd);
    let serve = Serving(serve);
    let id = |w: &Path| w.file_stem().unwrap().to_str().unwrap().to_owned();

    // The first call: fetched, identical to what was recorded, by Range too.
    let url = format!("{base}/api/v1/calls/{}/audio", id(&wavs[0]));
    let (status, body) = curl(&[&url]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, originals[0]);
    let (status, part) = curl(&["-r", "44-143", &url]);
    assert_eq!((status, part.as_slice()), (206, &originals[0][44..144]));
    let record: Value = serde_json::from_slice(&curl(&[&format!("{base}/api/v1/calls/{}", id(&wavs[0]))]).1).unwrap();
    let fetched = data.join("cache").join(wavs[0].strip_prefix(data.join("recordings")).unwrap());
    assert_eq!(sha256(&fetched), record["audio"]["sha256"].as_str().unwrap());

    // The second call's archive copy altered (one byte) behind the recorder's back: refused.
    let mut altered = originals[1].clone();
    altered[1000] ^= 1;
    let altered_file = kept.join("altered.wav");
    std::fs::write(&altered_file, &altered).unwrap();
    let rel = wavs[1].strip_prefix(data.join("recordings")).unwrap().to_str().unwrap().to_owned();
    let object = format!("{endpoint}/{bucket}/recordings/hq/{rel}");
    let sigv4 = format!("aws:amz:{region}:s3");
    let user = format!("{key_id}:{secret}");
    let upload = format!("@{}", altered_file.display());
    let (status, said) = curl(&[
        "--cacert",
        &ca,
        "--aws-sigv4",
        &sigv4,
        "--user",
        &user,
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        "-X",
        "PUT",
        "--data-binary",
        &upload,
        &object,
    ]);
    assert_eq!(status, 200, "PUT {object}: {}", String::from_utf8_lossy(&said));
    let (status, body) = curl(&[&format!("{base}/api/v1/calls/{}/audio", id(&wavs[1]))]);
    let said = String::from_utf8_lossy(&body);
    assert_eq!(status, 502, "{said}");
    assert!(said.contains("does not match its call record"), "{said}");
    // Nothing of it is left in the cache: the first call's file only.
    assert_eq!(walk(&data.join("cache")), std::slice::from_ref(&fetched));
    drop(serve);
    // The two downloads served were audited (the refused one served nothing).
    let logs: Vec<_> =
        walk(&data.join("audit")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect();
    let lines: usize = logs.iter().map(|l| std::fs::read_to_string(l).unwrap().lines().count()).sum();
    assert_eq!(lines, 2, "{logs:?}");
}

/// The `serve` process, stopped when the test ends, passed or failed (its output pipe would
/// otherwise keep the test's open).
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
