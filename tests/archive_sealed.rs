//! Encryption at rest (`encrypt_to`), on a local directory archive and on the real S3 test
//! server (`scripts/s3-server.sh`; recorded as skipped without it). Keys come from `age-keygen`
//! and the archive's objects are opened by the `age` tool as well as by callvault, so the format
//! is checked against an implementation that shares no code with it.
//!
//! A capture is replayed with `--encrypt-to`: every object of the day is `.age` ciphertext under
//! a key without the parties, no byte of audio, record or party shows in the archive, and the
//! manifest lines keep only the time, the ciphertext and plaintext hashes and the recipients.
//! `archive verify` is clean without a key (ciphertext checked) and with `--identity` (plaintext
//! checked too), and matches the recorder's history by plaintext. `archive get --identity`
//! and `age -d` give back the local copies byte for byte; a wrong identity opens nothing. A
//! replay of the same capture adds no object and no manifest line; an object replaced by a fresh
//! encryption of the same plaintext (anyone can encrypt to a public key) is altered.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callgen::{CallSpec, Scenario};
use common::store::{Store, problems};
use common::{skipped, text};
use serde_json::Value;

/// 2025-03-01T00:00:00Z.
const T0: i64 = 1_740_787_200 * 1_000_000_000;
const DAY: &str = "2025/03/01";

/// A fresh age identity: (identity file, public key), or `None` without `age-keygen`.
fn keygen(dir: &Path, name: &str) -> Option<(PathBuf, String)> {
    let path = dir.join(name);
    let out = match Command::new("age-keygen").arg("-o").arg(&path).output() {
        Ok(out) => out,
        Err(_) => {
            skipped("archive_sealed: no age-keygen (Debian package age)");
            return None;
        }
    };
    assert!(out.status.success(), "{}", text(&out));
    let public = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .unwrap();
    Some((path, public))
}

fn callvault(store: &Store, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault")).args(args).args(store.args()).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn verify(store: &Store, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["archive", "verify", "2025-03-01", "--json"];
    args.extend(extra);
    let out = callvault(store, &args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), report)
}

/// Every archive path under the day, manifests left out.
fn objects(store: &Store) -> Vec<String> {
    let mut all: Vec<String> = store.list(DAY).into_iter().filter(|o| !o.contains("/manifest/")).collect();
    all.sort();
    all
}

/// The recordings in the recorder's local copies: (spool key, extension, bytes).
fn local_copies(data: &Path) -> Vec<(String, String, Vec<u8>)> {
    let root = data.join("recordings");
    let mut out: Vec<(String, String, Vec<u8>)> = common::files(&root.join(DAY))
        .into_iter()
        .map(|f| {
            let (name, ext) = f.rsplit_once('.').unwrap();
            (format!("{DAY}/{name}"), ext.to_owned(), std::fs::read(root.join(DAY).join(&f)).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn sealed_round_trip(store: &Store, dir: &Path) {
    let Some((identity, recipient)) = keygen(dir, "identity.txt") else { return };
    let (other, _) = keygen(dir, "other.txt").unwrap();
    store.create_bucket();
    let calls: Vec<CallSpec> = (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 400_000_000, 1500)).collect();
    let pcap = dir.join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let data = dir.join("data");
    let replay = |data: &Path| {
        ok(callvault(
            store,
            &[
                "replay",
                "--quiet",
                "--output",
                data.to_str().unwrap(),
                "--encrypt-to",
                &recipient,
                pcap.to_str().unwrap(),
            ],
        ))
    };
    replay(&data);
    let copies = local_copies(&data);
    let recordings: BTreeSet<&str> = copies.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(recordings.len(), 3, "{recordings:?}");
    assert!(copies.iter().any(|(_, ext, _)| ext == "wav"));

    // Only ciphertext, under keys without the parties.
    let stored = objects(store);
    assert_eq!(stored.len(), copies.len(), "{stored:?}");
    for (key, ext, plain) in &copies {
        let name = key.rsplit('/').next().unwrap();
        let parts: Vec<&str> = name.split('_').collect();
        let sealed = format!("{DAY}/{}_{}.{ext}.age", parts[0], parts[3]);
        assert!(stored.contains(&sealed), "{sealed} not in {stored:?}");
        let body = store.read(&sealed);
        assert!(body.starts_with(b"age-encryption.org/v1\n"), "{sealed}");
        let probe = &plain[..plain.len().min(32)];
        assert!(!body.windows(probe.len()).any(|w| w == probe), "{sealed} shows its plaintext");
        for party in [parts[1], parts[2]] {
            assert!(!sealed.contains(party), "{sealed} names {party}");
        }
    }
    let lines = store.lines(DAY);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        for field in ["from", "to", "call_id", "state", "audio"] {
            assert!(line.get(field).is_none(), "a sealed line shows {field}: {line}");
        }
        assert!(line["start"].is_string(), "{line}");
        assert_eq!(line["sealed"]["recipients"], serde_json::json!([recipient]), "{line}");
        for (ext, o) in line["objects"].as_object().unwrap() {
            assert!(ext.ends_with(".age") && o["plain_sha256"].is_string() && o["plain_size"].is_u64(), "{line}");
        }
    }
    let manifests: Vec<String> = store.manifests(DAY);
    for m in manifests.iter().filter(|m| m.ends_with(".jsonl")) {
        let body = String::from_utf8(store.read(m)).unwrap();
        for (key, _, _) in &copies {
            let name = key.rsplit('/').next().unwrap();
            assert!(!body.contains(name), "{m} names {name}");
        }
    }

    // Verified without a key, by ciphertext; with one, by plaintext; the history matches.
    let data_arg = data.to_str().unwrap();
    let (code, report) = verify(store, &["--output", data_arg]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["version"], 4);
    assert_eq!(report["sealed_objects"], copies.len(), "{report:#}");
    assert_eq!(report["objects_verified"], copies.len(), "{report:#}");
    assert_eq!(report["sealed_opened"], 0, "{report:#}");
    assert_eq!(report["history"]["matched"], 3, "{report:#}");
    let id = identity.to_str().unwrap();
    let (code, report) = verify(store, &["--no-history", "--identity", id]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["sealed_opened"], copies.len(), "{report:#}");
    // The wrong identity opens nothing: every object is reported.
    let (code, report) = verify(store, &["--no-history", "--identity", other.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(report["counts"]["altered"], copies.len(), "{report:#}");

    // `archive get --identity` and the `age` tool give back the local copies byte for byte.
    let sealed_keys: Vec<String> = lines.iter().map(|l| l["key"].as_str().unwrap().to_owned()).collect();
    let got = dir.join("got");
    for key in &sealed_keys {
        let out = ok(callvault(store, &["archive", "get", key, "-d", got.to_str().unwrap(), "--identity", id]));
        assert!(out.contains("decrypted, sha256 ok"), "{out}");
        let raw = ok(callvault(store, &["archive", "get", key, "-d", dir.join("raw").to_str().unwrap()]));
        assert!(raw.contains(".age"), "{raw}");
        let denied = callvault(
            store,
            &["archive", "get", key, "-d", dir.join("no").to_str().unwrap(), "-i", other.to_str().unwrap()],
        );
        assert_eq!(denied.status.code(), Some(3), "{}", text(&denied));
    }
    for (key, ext, plain) in &copies {
        let name = key.rsplit('/').next().unwrap();
        let parts: Vec<&str> = name.split('_').collect();
        let sealed_name = format!("{}_{}", parts[0], parts[3]);
        let mine = std::fs::read(got.join(format!("{sealed_name}.{ext}"))).unwrap();
        assert!(mine == *plain, "{key}.{ext}: archive get gave other bytes");
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&identity)
            .arg(dir.join("raw").join(format!("{sealed_name}.{ext}.age")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        assert!(out.stdout == *plain, "{key}.{ext}: age -d gave other bytes");
    }
    assert!(!dir.join("no").exists() || common::files(&dir.join("no")).is_empty());
    // Only the decrypted files are left where they were written: no ciphertext or partial copy.
    assert!(common::files(&got).iter().all(|f| !f.contains("/.") && !f.starts_with('.')), "{:?}", common::files(&got));

    // A second replay of the same capture stores nothing new.
    let before = (objects(store), store.manifests(DAY));
    replay(&dir.join("data2"));
    assert_eq!((objects(store), store.manifests(DAY)), before);
    assert_eq!(store.lines(DAY).len(), 3);

    // Anyone can encrypt to the public key: a fresh encryption of the same plaintext in place of
    // an object is still found.
    let (key, ext, plain) = copies.iter().find(|(_, ext, _)| ext == "wav").unwrap();
    let name = key.rsplit('/').next().unwrap();
    let parts: Vec<&str> = name.split('_').collect();
    let victim = format!("{DAY}/{}_{}.{ext}.age", parts[0], parts[3]);
    let plain_file = dir.join("plain.wav");
    std::fs::write(&plain_file, plain).unwrap();
    let forged = Command::new("age").arg("-r").arg(&recipient).arg(&plain_file).output().unwrap();
    assert!(forged.status.success(), "{}", text(&forged));
    store.write(&victim, &forged.stdout);
    let (code, report) = verify(store, &["--no-history"]);
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(problems(&report), BTreeSet::from([("altered".to_owned(), store.key(&victim))]), "{report:#}");
}

#[test]
fn local_archive_holds_only_ciphertext_and_opens_with_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(dir.path().join("archive"));
    sealed_round_trip(&store, dir.path());
}

#[test]
fn s3_archive_holds_only_ciphertext_and_opens_with_the_identity() {
    let Some(store) = Store::s3("sealed") else { return };
    let dir = tempfile::tempdir().unwrap();
    sealed_round_trip(&store, dir.path());
}

#[test]
fn a_bad_recipient_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callvault.toml");
    std::fs::write(&config, "[[archive]]\npath = \"/tmp/x\"\nencrypt_to = [\"age1notakey\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault")).args(["config", "check"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("encrypt_to") && err.contains("age1notakey"), "{err}");
}
