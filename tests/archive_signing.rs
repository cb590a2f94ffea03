//! Tamper evidence of the archive, on a local directory and on the real S3 test server
//! (`scripts/s3-server.sh`; recorded as skipped without it): recordings of two days shipped by
//! three replays make a signed chain of batches (two on the first day, the second day's first
//! linking to the first day's last); `archive verify` accepts it, then each object kind — audio,
//! record, manifest batch, signature, public key — is deleted, altered and added behind
//! callvault's back, one at a time, and each is reported with its own status and exit 3. The
//! consumer's procedure of the README (`scripts/verify-recording.sh`: jq, openssl, sha256sum)
//! verifies a recording, and fails on a tampered audio object, batch, signature or key.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callgen::{CallSpec, Scenario};
use common::store::{Store, problems};
use common::{signing_key, text};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600 * 1_000_000_000;
/// 2025-01-02T00:00:00Z.
const T1: i64 = T0 + 86_400 * 1_000_000_000;

fn capture(dir: &Path, name: &str, first: u32, t0: i64) -> PathBuf {
    let calls: Vec<CallSpec> =
        (first..first + 2).map(|i| CallSpec::answered(i, t0 + i64::from(i - first) * 300_000_000, 1200)).collect();
    let pcap = dir.join(name);
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    pcap
}

fn callvault(store: &Store, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault")).args(args).args(store.args()).output().unwrap()
}

/// `archive verify` of both days (no history), trusting `trusted` when given: the exit code and
/// the report.
fn verify(store: &Store, trusted: Option<&str>) -> (Option<i32>, Value) {
    let mut args = vec!["archive", "verify", "2025-01-01", "--to", "2025-01-02", "--json", "--no-history"];
    if let Some(fp) = trusted {
        args.extend(["--key-fingerprint", fp]);
    }
    let out = callvault(store, &args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), report)
}

/// The archive's batches of `day`, archive-relative, in order.
fn batches(store: &Store, day: &str) -> Vec<String> {
    store.manifests(day).into_iter().filter(|m| m.ends_with(".jsonl")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A key made the way an attacker would (openssl), its public PEM and fingerprint.
fn attacker_key(dir: &Path) -> (PathBuf, Vec<u8>, String) {
    let key = dir.join("attacker.key");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
        out.stdout
    };
    run(&["genpkey", "-algorithm", "ed25519", "-out", key.to_str().unwrap()]);
    let pem = run(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    let der = run(&["pkey", "-in", key.to_str().unwrap(), "-pubout", "-outform", "DER"]);
    (key, pem, sha256(&der))
}

/// Signs `body` with `key` by openssl (raw Ed25519).
fn openssl_sign(dir: &Path, key: &Path, body: &[u8]) -> Vec<u8> {
    let input = dir.join("to-sign");
    std::fs::write(&input, body).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(key)
        .arg("-in")
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

fn tamper_evidence(store: &Store) {
    let dir = tempfile::tempdir().unwrap();
    store.create_bucket();
    let (_, fingerprint) = signing_key();
    let data = dir.path().join("data");
    for (name, first, t0) in [("a.pcap", 0, T0), ("b.pcap", 10, T0), ("c.pcap", 20, T1)] {
        let out = callvault(
            store,
            &[
                "replay",
                "--quiet",
                "--output",
                data.to_str().unwrap(),
                &capture(dir.path(), name, first, t0).display().to_string(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let (day1, day2) = (batches(store, "2025/01/01"), batches(store, "2025/01/02"));
    assert!(day1.len() >= 2 && !day2.is_empty(), "{day1:?} {day2:?}");
    let k = |rel: &str| store.key(rel);
    let header = |rel: &str| -> Value {
        let body = store.read(rel);
        serde_json::from_slice(body.split(|&b| b == b'\n').next().unwrap()).unwrap()
    };
    // The chain: day 1 starts it, each batch links to the one before, day 2's first to day 1's
    // last, each by the SHA-256 of its bytes; every batch names the site key.
    assert_eq!(header(&day1[0])["batch"]["prev"], Value::Null);
    for pair in day1.windows(2).chain([[day1.last().unwrap().clone(), day2[0].clone()].as_slice()]) {
        let prev = &header(&pair[1])["batch"]["prev"];
        assert_eq!(prev["object"], k(&pair[0]), "{pair:?}");
        assert_eq!(prev["sha256"], sha256(&store.read(&pair[0])), "{pair:?}");
    }
    for b in day1.iter().chain(&day2) {
        assert_eq!(header(b)["batch"]["signing_key"], fingerprint.as_str(), "{b}");
        assert_eq!(header(b)["v"], 2);
    }
    let key_object = format!("keys/ed25519-{fingerprint}.pem");
    let (code, report) = verify(store, Some(&fingerprint));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["batches_signed"], day1.len() + day2.len(), "{report:#}");
    assert_eq!(report["signing_keys"], serde_json::json!([fingerprint]), "{report:#}");
    assert_eq!(report["chain_starts"], serde_json::json!([k(&day1[0])]), "{report:#}");
    // The configured key is trusted by default (Store::args names it).
    let (code, report) = verify(store, None);
    assert_eq!((code, &report["trusted_keys"]), (Some(0), &serde_json::json!([fingerprint])), "{report:#}");

    // The consumer's procedure proves a recording with standard tools.
    let line = store.lines("2025/01/01").into_iter().next().unwrap();
    let rec_key = line["key"].as_str().unwrap().to_owned();
    let wav = line["objects"]["wav"]["key"].as_str().unwrap().strip_prefix(&store.key("")).unwrap().to_owned();
    let json = line["objects"]["json"]["key"].as_str().unwrap().strip_prefix(&store.key("")).unwrap().to_owned();
    let holder = day1
        .iter()
        .find(|b| String::from_utf8_lossy(&store.read(b)).contains(&format!("\"key\":\"{rec_key}\"")))
        .unwrap()
        .clone();
    let consumer = |label: &str| -> Output {
        // Fetch what the procedure reads: the day's batches and signatures, the keys, the objects.
        let root = dir.path().join(format!("download-{label}"));
        let mut wanted: Vec<String> = store.manifests("2025/01/01");
        wanted.extend([wav.clone(), json.clone()]);
        wanted.extend(store.list("keys/"));
        for rel in wanted {
            let Some(body) = store.try_read(&rel) else { continue };
            let path = root.join(store.key(&rel));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-recording.sh"))
            .arg(&root)
            .arg(store.key(""))
            .arg(&rec_key)
            .arg(&fingerprint)
            .output()
            .unwrap()
    };
    let out = consumer("clean");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("OK: "), "{}", text(&out));

    // Tampering, one thing at a time, each undone before the next.
    let (attacker, attacker_pem, attacker_fp) = attacker_key(dir.path());
    let forged_wav = format!("{}_deadbeef0000.wav", wav.rsplit_once('_').unwrap().0);
    let forged_json = forged_wav.replace(".wav", ".json");
    let last1 = day1.last().unwrap().clone();
    let flip = |rel: &str, at: usize| {
        let mut bytes = store.read(rel);
        let at = at.min(bytes.len() - 1);
        bytes[at] ^= 0x01;
        store.write(rel, &bytes);
    };
    let rewrite_line = |rel: &str| {
        // A party's name changed in the batch: still valid JSON, same recording, same objects.
        let body = String::from_utf8(store.read(rel)).unwrap();
        store.write(rel, body.replacen("\"from\":\"", "\"from\":\"x", 1).as_bytes());
    };
    // A whole batch appended to day 2 by someone with write access: a line for a recording that
    // was never made (naming real objects), a header chained to the real last batch, signed
    // with the attacker's key (published beside the site's) or not signed at all.
    let last2 = day2.last().unwrap().clone();
    let forged = last2.replace(&format!("seq-{:010}", day2.len()), &format!("seq-{:010}", day2.len() + 1));
    let forged_batch = |signer: Option<&Path>| {
        let mut line = store.lines("2025/01/02").into_iter().next().unwrap();
        line["key"] = Value::String(format!("{}_forged", line["key"].as_str().unwrap()));
        let signing_key = if signer.is_some() { &attacker_fp } else { &fingerprint };
        let head = serde_json::json!({"v": 2, "batch": {"site": header(&last2)["batch"]["site"], "day": "2025/01/02",
            "seq": day2.len() + 1, "prev": {"object": k(&last2), "sha256": sha256(&store.read(&last2))},
            "signing_key": signing_key}});
        let body = format!("{head}\n{line}\n").into_bytes();
        if let Some(key) = signer {
            store.write(&format!("{forged}.sig"), &openssl_sign(dir.path(), key, &body));
            store.write(&format!("keys/ed25519-{attacker_fp}.pem"), &attacker_pem);
        }
        store.write(&forged, &body);
    };
    let sig = |b: &str| format!("{b}.sig");
    let attacker_key_object = format!("keys/ed25519-{attacker_fp}.pem");
    let stray_sig = sig(&day1[0].replace("seq-", "seq-9"));
    let o = |kind: &'static str, rel: &str| (kind, k(rel));
    // (what, kinds reported, (kind, object) among them, objects touched, whether the consumer's
    // procedure fails, the tampering)
    type Act<'a> = Box<dyn Fn() + 'a>;
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, Vec<String>, bool, Act<'a>);
    let cases: Vec<Case> = vec![
        (
            "audio deleted",
            vec!["missing"],
            vec![o("missing", &wav)],
            vec![wav.clone()],
            true,
            Box::new(|| store.delete(&wav)),
        ),
        (
            "audio altered",
            vec!["altered"],
            vec![o("altered", &wav)],
            vec![wav.clone()],
            true,
            Box::new(|| flip(&wav, 100)),
        ),
        (
            "audio added",
            vec!["unlisted"],
            vec![o("unlisted", &forged_wav)],
            vec![forged_wav.clone()],
            false,
            Box::new(|| store.write(&forged_wav, b"RIFF forged audio")),
        ),
        (
            "record deleted",
            vec!["missing"],
            vec![o("missing", &json)],
            vec![json.clone()],
            true,
            Box::new(|| store.delete(&json)),
        ),
        (
            "record altered",
            vec!["altered"],
            vec![o("altered", &json)],
            vec![json.clone()],
            true,
            Box::new(|| flip(&json, 10)),
        ),
        (
            "record added",
            vec!["unlisted"],
            vec![o("unlisted", &forged_json)],
            vec![forged_json.clone()],
            false,
            Box::new(|| store.write(&forged_json, b"{}")),
        ),
        // A batch in the middle of the chain removed with its signature: the gap, and its
        // recordings named by nothing.
        (
            "first batch deleted",
            vec!["chain_gap", "unlisted"],
            vec![o("chain_gap", &day1[0])],
            vec![day1[0].clone(), sig(&day1[0])],
            holder == day1[0],
            Box::new(|| {
                store.delete(&day1[0]);
                store.delete(&sig(&day1[0]));
            }),
        ),
        // The first day's last batch removed: the second day's first batch links to it.
        (
            "last batch of a day deleted",
            vec!["chain_gap", "unlisted"],
            vec![o("chain_gap", &last1)],
            vec![last1.clone(), sig(&last1)],
            holder == last1,
            Box::new(|| {
                store.delete(&last1);
                store.delete(&sig(&last1));
            }),
        ),
        (
            "batch rewritten",
            vec!["bad_signature", "chain_broken"],
            vec![o("bad_signature", &holder), o("chain_broken", &holder)],
            vec![holder.clone()],
            true,
            Box::new(|| rewrite_line(&holder)),
        ),
        (
            "batch rewritten and re-signed with another key",
            vec!["untrusted_key", "chain_broken"],
            vec![o("untrusted_key", &holder), o("chain_broken", &holder)],
            vec![holder.clone(), sig(&holder), attacker_key_object.clone()],
            true,
            Box::new(|| {
                rewrite_line(&holder);
                let body = String::from_utf8(store.read(&holder)).unwrap().replacen(&fingerprint, &attacker_fp, 1);
                store.write(&holder, body.as_bytes());
                store.write(&sig(&holder), &openssl_sign(dir.path(), &attacker, body.as_bytes()));
                store.write(&attacker_key_object, &attacker_pem);
            }),
        ),
        (
            "batch added, unsigned",
            vec!["unsigned"],
            vec![o("unsigned", &forged)],
            vec![forged.clone()],
            false,
            Box::new(|| forged_batch(None)),
        ),
        (
            "batch and key added, signed by the added key",
            vec!["untrusted_key"],
            vec![o("untrusted_key", &forged)],
            vec![forged.clone(), sig(&forged), attacker_key_object.clone()],
            false,
            Box::new(|| forged_batch(Some(&attacker))),
        ),
        (
            "signature deleted",
            vec!["unsigned"],
            vec![o("unsigned", &holder)],
            vec![sig(&holder)],
            true,
            Box::new(|| store.delete(&sig(&holder))),
        ),
        (
            "signature altered",
            vec!["bad_signature"],
            vec![o("bad_signature", &holder)],
            vec![sig(&holder)],
            true,
            Box::new(|| flip(&sig(&holder), 5)),
        ),
        (
            "signature added",
            vec!["unlisted"],
            vec![o("unlisted", &stray_sig)],
            vec![stray_sig.clone()],
            false,
            Box::new(|| store.write(&stray_sig, &[0u8; 64])),
        ),
        (
            "public key deleted",
            vec!["unknown_key"],
            vec![],
            vec![key_object.clone()],
            true,
            Box::new(|| store.delete(&key_object)),
        ),
        (
            "public key replaced",
            vec!["bad_key"],
            vec![o("bad_key", &key_object)],
            vec![key_object.clone()],
            true,
            Box::new(|| store.write(&key_object, &attacker_pem)),
        ),
        (
            "public key added",
            vec!["unlisted"],
            vec![o("unlisted", "keys/extra.pem")],
            vec!["keys/extra.pem".to_owned()],
            false,
            Box::new(|| store.write("keys/extra.pem", &attacker_pem)),
        ),
    ];
    for (what, kinds, objects, touched, consumer_fails, act) in &cases {
        let saved: Vec<(&String, Option<Vec<u8>>)> = touched.iter().map(|rel| (rel, store.try_read(rel))).collect();
        act();
        let (code, report) = verify(store, Some(&fingerprint));
        assert_eq!(code, Some(3), "{what}: {report:#}");
        let problems = problems(&report);
        let seen: BTreeSet<&str> = problems.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(seen, kinds.iter().copied().collect(), "{what}: {report:#}");
        for (kind, object) in objects {
            assert!(problems.contains(&(kind.to_string(), object.clone())), "{what}: no {kind} {object}: {report:#}");
        }
        let out = consumer(what);
        assert_eq!(!out.status.success(), *consumer_fails, "{what}: the consumer's procedure\n{}", text(&out));
        if *consumer_fails {
            assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED: "), "{what}: {}", text(&out));
        }
        for (rel, body) in saved {
            match body {
                Some(body) => store.write(rel, &body),
                None => {
                    if store.try_read(rel).is_some() {
                        store.delete(rel);
                    }
                }
            }
        }
        let (code, report) = verify(store, Some(&fingerprint));
        assert_eq!(code, Some(0), "after undoing {what}: {report:#}");
    }
}

#[test]
fn tamper_evidence_on_a_local_archive() {
    let dir = tempfile::tempdir().unwrap();
    tamper_evidence(&Store::Local(dir.path().join("archive")));
}

#[test]
fn tamper_evidence_on_s3() {
    let Some(store) = Store::s3("signing") else { return };
    tamper_evidence(&store);
}
