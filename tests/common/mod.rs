//! Helpers shared by the end-to-end tests: run the real `callvault` binary, read what it wrote.
#![allow(dead_code, unreachable_pub)]

pub mod live;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Runs `callvault replay` on `captures` with its data and archive under `dir`.
pub fn replay(captures: &[&Path], dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("replay")
        .arg("--quiet")
        .arg("--output")
        .arg(dir.join("data"))
        .arg("--archive")
        .arg(dir.join("archive"))
        .args(extra)
        .args(captures)
        .output()
        .expect("run callvault")
}

/// Text of stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A call record found in the archive.
#[derive(Debug)]
pub struct Rec {
    /// The `.json` file.
    pub json: PathBuf,
    /// Its parsed content.
    pub value: Value,
    /// The audio file beside it, when the record names one.
    pub wav: Option<PathBuf>,
}

/// Every call record under `dir` (recursively).
pub fn records(dir: &Path) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let value: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let wav = value["audio"]["file"].as_str().map(|f| p.with_file_name(f));
                out.push(Rec { json: p, value, wav });
            }
        }
    }
    out.sort_by(|a, b| a.json.cmp(&b.json));
    out
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// The two channels of a stereo 16-bit 8 kHz WAV, read with an independent WAV reader.
pub fn channels(p: &Path) -> [Vec<i16>; 2] {
    channels_at(p, 8000)
}

/// The two channels of a stereo 16-bit WAV at `rate` Hz.
pub fn channels_at(p: &Path, rate: u32) -> [Vec<i16>; 2] {
    let mut r = hound::WavReader::open(p).unwrap();
    let spec = r.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, rate, 16), "{}", p.display());
    let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let mut c = [Vec::with_capacity(s.len() / 2), Vec::with_capacity(s.len() / 2)];
    for f in s.chunks_exact(2) {
        c[0].push(f[0]);
        c[1].push(f[1]);
    }
    c
}

/// RFC 3339 with microseconds, as the call record writes times.
pub fn rfc3339(ns: i64) -> String {
    let dt = chrono::DateTime::<chrono::Utc>::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The record's encrypted parties: (side, encryption), in record order.
pub fn encrypted_parties(rec: &Value) -> Vec<(String, String)> {
    rec["encrypted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["side"].as_str().unwrap().to_owned(), e["encryption"].as_str().unwrap().to_owned()))
        .collect()
}

/// Records that a part of a test could not run (and why), for the test script's final list.
pub fn skipped(what: &str) {
    println!("skipped: {what}");
    if let Ok(p) = std::env::var("CALLVAULT_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(p) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// Whether a command is on the PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `callvault serve` as `cmd` says and reads the address it prints: the child and the
/// base URL (`http://127.0.0.1:PORT` or `https://…`).
#[allow(dead_code)] // not every test binary serves
pub fn start_serve(mut cmd: Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("run callvault serve");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().trim_end_matches('/').to_owned();
    assert!(base.starts_with("http://127.0.0.1:") || base.starts_with("https://127.0.0.1:"), "serve printed {line:?}");
    (child, base)
}

/// A site signing key for this test process, made by `callvault config new-signing-key` (once)
/// in a directory of its own: its path and fingerprint.
pub fn signing_key() -> (PathBuf, String) {
    static KEY: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("callvault-key").tempdir().unwrap().keep();
        let path = dir.join("signing.key");
        let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(["config", "new-signing-key"])
            .arg(&path)
            .output()
            .expect("run callvault config new-signing-key");
        assert!(out.status.success(), "{}", text(&out));
        let fingerprint = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_owned();
        (path, fingerprint)
    })
    .clone()
}
