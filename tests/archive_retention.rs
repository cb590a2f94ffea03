//! Retention and legal hold, on a local directory archive and on the real S3 test server
//! (`scripts/s3-server.sh`; recorded as skipped without it).
//!
//! Local: recordings of two days; one of the older day is held; the recorder's own shipper
//! (`callvault ship` with `--archive-retention-days`) prunes the older day's un-held recording
//! and nothing else; `archive verify` is clean and names the pruned one as pruned; a deleted
//! object of what remains is still `missing`; after `hold clear`, `archive prune` takes the
//! released one too; `hold ls` lists both actions; a forged retention log entry (a reason
//! rewritten, an unsigned `pruned` entry covering a deletion) is reported.
//!
//! S3: a held object version cannot be deleted (the server refuses the DELETE of the version),
//! and can after `hold clear` (no retention on the bucket); the log lists both actions.
#![allow(clippy::disallowed_methods)] // today's date decides which day is expired

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callgen::{CallSpec, Scenario};
use common::store::{Store, problems, var};
use common::text;
use serde_json::Value;

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

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `archive verify` of both days (no history): the exit code and the report.
fn verify(store: &Store) -> (Option<i32>, Value) {
    let out = callvault(store, &["archive", "verify", "2025-01-01", "--to", "2025-01-02", "--json", "--no-history"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), report)
}

/// The recordings' keys of `day`, sorted, and each one's objects (archive-relative).
fn recordings(store: &Store, day: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = store
        .lines(day)
        .iter()
        .map(|l| {
            let objects = l["objects"]
                .as_object()
                .unwrap()
                .values()
                .map(|o| o["key"].as_str().unwrap().strip_prefix(&store.key("")).unwrap().to_owned())
                .collect();
            (l["key"].as_str().unwrap().to_owned(), objects)
        })
        .collect();
    out.sort();
    out
}

/// Days from 2025-01-02 to today: the retention under which 2025-01-01 is expired and
/// 2025-01-02 is not.
fn days_to_keep_day_two() -> String {
    let today = chrono::Utc::now().date_naive();
    let day2 = chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    (today - day2).num_days().to_string()
}

fn replay_two_days(store: &Store, dir: &Path, data: &Path) {
    for (name, first, t0) in [("a.pcap", 0, T0), ("b.pcap", 10, T1)] {
        let pcap = capture(dir, name, first, t0).display().to_string();
        ok(callvault(store, &["replay", "--quiet", "--output", data.to_str().unwrap(), &pcap]));
    }
}

#[test]
fn local_pruning_spares_holds_and_verifies_as_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let store = Store::Local(archive.clone());
    let data = dir.path().join("data");
    replay_two_days(&store, dir.path(), &data);
    let day1 = recordings(&store, "2025/01/01");
    let day2 = recordings(&store, "2025/01/02");
    assert_eq!((day1.len(), day2.len()), (2, 2), "{day1:?} {day2:?}");
    let (held, expired) = (&day1[0], &day1[1]);

    let out = ok(callvault(&store, &["archive", "hold", "set", &held.0, "--reason", "case 4711 (legal)"]));
    assert!(out.contains(&format!("held {}", held.0)), "{out}");
    // A key no manifest names is refused, and nothing is written.
    let bad = callvault(&store, &["archive", "hold", "set", "2025/01/01/nothing_here", "--reason", "x"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(text(&bad).contains("no such recording"), "{}", text(&bad));
    assert_eq!(store.list("retention/").len(), 2, "{:?}", store.list("retention/"));

    // The recorder's shipper prunes at its start (here `ship`, with nothing queued).
    let keep = days_to_keep_day_two();
    ok(callvault(&store, &["ship", "--output", data.to_str().unwrap(), "--archive-retention-days", &keep]));
    for o in &expired.1 {
        assert!(store.try_read(o).is_none(), "{o} should be pruned");
    }
    for (_, objects) in [held].into_iter().chain(&day2) {
        for o in objects {
            assert!(store.try_read(o).is_some(), "{o} should be kept");
        }
    }
    // Manifests and their signatures stay.
    assert!(store.manifests("2025/01/01").iter().any(|m| m.ends_with(".sig")));

    let (code, report) = verify(&store);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["version"], 4);
    assert_eq!(report["pruned"], serde_json::json!([expired.0]), "{report:#}");
    assert_eq!(report["held"], serde_json::json!([held.0]), "{report:#}");
    assert_eq!(report["retention_log_entries"], 2, "{report:#}");
    // The text report names the pruned recording as pruned.
    let out = callvault(&store, &["archive", "verify", "2025-01-01", "--no-history"]);
    assert!(text(&out).contains(&format!("PRUNED      recording {}", expired.0)), "{}", text(&out));

    // Tampering with what remains is still found: a kept object deleted is missing.
    let victim = archive.join(&day2[0].1[0]);
    let saved = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let (code, report) = verify(&store);
    assert_eq!(code, Some(3), "{report:#}");
    assert_eq!(problems(&report), BTreeSet::from([("missing".to_owned(), day2[0].1[0].clone())]), "{report:#}");
    std::fs::write(&victim, &saved).unwrap();

    // Released, the held recording is pruned by the next pruning.
    ok(callvault(&store, &["archive", "hold", "clear", &held.0, "--reason", "case 4711 closed"]));
    let dry = ok(callvault(&store, &["archive", "prune", "--days", &keep, "--dry-run"]));
    assert!(dry.contains(&format!("would delete {}", held.0)), "{dry}");
    assert!(store.try_read(&held.1[0]).is_some());
    let out = ok(callvault(&store, &["archive", "prune", "--days", &keep]));
    assert!(out.contains(&format!("deleted {}", held.0)), "{out}");
    for o in &held.1 {
        assert!(store.try_read(o).is_none(), "{o} should be pruned");
    }
    let (code, report) = verify(&store);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["pruned"], serde_json::json!([held.0.clone(), expired.0.clone()]), "{report:#}");
    assert_eq!(report["held"], serde_json::json!([]), "{report:#}");

    // The holds log lists both actions, with who, where and why.
    let ls = ok(callvault(&store, &["archive", "hold", "ls"]));
    let user = nix_user();
    assert!(ls.contains("hold set") && ls.contains("case 4711 (legal)"), "{ls}");
    assert!(ls.contains("hold clear") && ls.contains("case 4711 closed"), "{ls}");
    assert!(ls.contains(&format!("by {user}@")), "{ls}");
    assert!(ls.contains("0 recording(s) held now"), "{ls}");
    let json = ok(callvault(&store, &["archive", "hold", "ls", "--json"]));
    let actions: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["hold_set", "hold_clear"]);

    // A forged hold entry: the reason rewritten in place.
    let entries: Vec<String> = store.list("retention/").into_iter().filter(|e| e.ends_with(".json")).collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    let first = store.read(&entries[0]);
    let forged = String::from_utf8(first.clone()).unwrap().replace("case 4711 (legal)", "case 4712 (legal)");
    store.write(&entries[0], forged.as_bytes());
    let (code, report) = verify(&store);
    assert_eq!(code, Some(3), "{report:#}");
    let kinds = problems(&report);
    assert!(kinds.contains(&("bad_signature".to_owned(), entries[0].clone())), "{report:#}");
    assert!(kinds.contains(&("chain_broken".to_owned(), entries[0].clone())), "{report:#}");
    store.write(&entries[0], &first);
    assert_eq!(verify(&store).0, Some(0));

    // A deletion disguised as pruning: an unsigned `pruned` entry appended by someone with
    // write access does not make the deletion legitimate.
    let victim = &day2[1];
    let last = store.read(&entries[3]);
    let forged = serde_json::json!({
        "v": 1, "seq": 5,
        "prev": {"object": entries[3], "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&last))},
        "signing_key": null, "action": "pruned", "at": "2026-01-01T00:00:00.000000Z",
        "user": "mallory", "host": "elsewhere", "reason": null,
        "recordings": [{"key": victim.0, "objects": victim.1}],
    });
    store.write("retention/seq-0000000005.json", format!("{forged}\n").as_bytes());
    for o in &victim.1 {
        store.delete(o);
    }
    let (code, report) = verify(&store);
    assert_eq!(code, Some(3), "{report:#}");
    let kinds = problems(&report);
    assert!(kinds.contains(&("unsigned".to_owned(), "retention/seq-0000000005.json".to_owned())), "{report:#}");
    for o in &victim.1 {
        assert!(kinds.contains(&("missing".to_owned(), o.clone())), "{o}: {report:#}");
    }
    assert!(!report["pruned"].as_array().unwrap().contains(&Value::from(victim.0.clone())), "{report:#}");
    // And pruning refuses to run on a log it cannot trust to be whole.
    store.write("retention/seq-0000000006.json", b"not an entry\n");
    let out = callvault(&store, &["archive", "prune", "--days", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing is pruned"), "{}", text(&out));
    assert!(store.try_read(&day2[0].1[0]).is_some());
}

fn nix_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A signed request to the S3 test server: the status and the body.
fn s3(store: &Store, method: &str, rel_and_query: &str, headers: &[&str]) -> (u16, String, String) {
    let Store::S3 { endpoint, ca, bucket, prefix } = store else { unreachable!() };
    let user = format!("{}:{}", var("AWS_ACCESS_KEY_ID").unwrap(), var("AWS_SECRET_ACCESS_KEY").unwrap());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--cacert", ca, "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user, "-D", "-"]);
    cmd.args(["-X", method, "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let url = if rel_and_query.is_empty() {
        format!("{endpoint}/{bucket}")
    } else {
        format!("{endpoint}/{bucket}/{prefix}{rel_and_query}")
    };
    let out = cmd.arg(url).output().unwrap();
    assert!(out.status.success(), "curl {method} {rel_and_query}: {}", text(&out));
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = all.rsplit_once('\n').unwrap();
    let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.trim().parse().unwrap(), head.to_owned(), body.to_owned())
}

#[test]
fn s3_legal_hold_refuses_deletion_until_cleared() {
    let Some(store) = Store::s3("legal_hold") else { return };
    // A bucket with object lock (and so versioning), as an operator makes one for holds.
    let (code, _, body) = s3(&store, "PUT", "", &["x-amz-bucket-object-lock-enabled: true"]);
    assert_eq!(code, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let pcap = capture(dir.path(), "a.pcap", 0, T0).display().to_string();
    let data = dir.path().join("data");
    ok(callvault(&store, &["replay", "--quiet", "--output", data.to_str().unwrap(), &pcap]));
    let recs = recordings(&store, "2025/01/01");
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (key, objects) = &recs[0];
    let wav = objects.iter().find(|o| o.ends_with(".wav")).unwrap().clone();
    let json = objects.iter().find(|o| o.ends_with(".json")).unwrap().clone();

    let out = ok(callvault(&store, &["archive", "hold", "set", key, "--reason", "subpoena 17"]));
    assert!(out.contains(&format!("held {key}")), "{out}");
    for o in [&wav, &json] {
        let (code, _, body) = s3(&store, "GET", &format!("{o}?legal-hold="), &[]);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("<Status>ON</Status>"), "{o}: {body}");
    }
    // The audio object's version, deleted by someone holding the bucket's full credentials.
    let (code, head, _) = s3(&store, "GET", &wav, &[]);
    assert_eq!(code, 200);
    let version = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-amz-version-id:").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no version id: {head}"));
    let (code, _, body) = s3(&store, "DELETE", &format!("{wav}?versionId={version}"), &[]);
    assert_eq!(code, 403, "a held version must not be deletable: {body}");
    let (code, _, _) = s3(&store, "GET", &format!("{wav}?versionId={version}"), &[]);
    assert_eq!(code, 200, "the held version is still there");
    let ls = ok(callvault(&store, &["archive", "hold", "ls"]));
    assert!(ls.contains("1 recording(s) held now") && ls.contains("legal hold on 2 of 2 object(s)"), "{ls}");

    ok(callvault(&store, &["archive", "hold", "clear", key, "--reason", "subpoena 17 withdrawn"]));
    let (code, _, body) = s3(&store, "GET", &format!("{wav}?legal-hold="), &[]);
    assert!(code == 200 && body.contains("<Status>OFF</Status>"), "{code} {body}");
    let (code, _, body) = s3(&store, "DELETE", &format!("{wav}?versionId={version}"), &[]);
    assert_eq!(code, 204, "released and without retention, the version can be deleted: {body}");
    let (code, _, _) = s3(&store, "GET", &format!("{wav}?versionId={version}"), &[]);
    assert_eq!(code, 404);

    let ls = ok(callvault(&store, &["archive", "hold", "ls"]));
    assert!(ls.contains("hold set") && ls.contains("subpoena 17"), "{ls}");
    assert!(ls.contains("hold clear") && ls.contains("subpoena 17 withdrawn"), "{ls}");
    assert!(ls.contains("0 recording(s) held now"), "{ls}");
    // Verify checks the log (signed, chained) and reports the deleted audio as missing: it was
    // released, not pruned.
    let out = callvault(&store, &["archive", "verify", "2025-01-01", "--json", "--no-history"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(out.status.code(), Some(3), "{report:#}");
    assert_eq!(report["retention_log_entries"], 2, "{report:#}");
    assert_eq!(problems(&report), BTreeSet::from([("missing".to_owned(), store.key(&wav))]), "{report:#}");
    // An S3 archive is not pruned by the recorder.
    let out = callvault(&store, &["archive", "prune", "--days", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("lifecycle rule"), "{}", text(&out));
}
