//! Shipping to a real S3-compatible server (SeaweedFS over HTTPS with a generated CA, started by
//! `scripts/s3-server.sh`): every object verified, idempotence, conflicts, multipart, object
//! lock, and the errors an operator must see. Without the server these tests record themselves
//! as skipped.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod s3_support;
mod support;

use std::time::Duration;

use callvault_shipper::{
    Credentials, Disposition, LockMode, ObjectLock, S3Target, ShipError, Shipper, ShipperConfig, Target,
};
use s3_support::*;

const DAY: &str = "2016/11/26";

fn key(name: &str) -> String {
    format!("{DAY}/20161126T144259Z_alice_bob_{name}")
}

#[test]
fn s3_ships_every_object_verified_over_https() {
    let Some(srv) = server("s3_ships_every_object_verified_over_https") else { return };
    let target = srv.bucket("ship-all", false);
    let mut d = Dirs::new();
    let spool = d.open();
    let mut expected = Vec::new();
    for i in 0..3u32 {
        let wav = audio(i, 300_000 + i as usize);
        let rec = d.recording(&key(&format!("c{i}")), &wav);
        let json = std::fs::read(&rec.files[1].source).unwrap();
        expected.push((format!("calls/test/{}.wav", key(&format!("c{i}"))), wav));
        expected.push((format!("calls/test/{}.json", key(&format!("c{i}"))), json));
        spool.enter(rec).unwrap();
    }
    let report = ship(&spool, &target, Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 3);
    assert_eq!(report.stats.shipped_bytes, expected.iter().map(|(_, b)| b.len() as u64).sum::<u64>());

    // Every object, fetched back, is byte for byte the local recording.
    expected.sort();
    assert_eq!(recording_objects(&target), expected);
    // The store verified and reports the checksum; the metadata carries the SHA-256 and call id.
    for (key, bytes) in &expected {
        let info = block_on(target.head(key)).unwrap().unwrap();
        assert!(info.matches(&sha(bytes), bytes.len() as u64), "{info:?}");
        assert_eq!(info.meta_sha256.as_deref(), Some(sha(bytes).as_str()));
        assert!(info.checksum_sha256.is_some(), "{info:?}");
        assert!(!info.is_locked());
    }
    // The manifest has one line per recording, with keys, hashes and the call summary.
    let lines = block_on(target.read_manifest(DAY)).unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (i, line) in lines.iter().enumerate() {
        let k = key(&format!("c{i}"));
        assert_eq!(line["key"], k.as_str());
        assert_eq!(line["from"], "alice");
        assert_eq!(line["state"], "completed");
        assert_eq!(line["location"], format!("s3://{}/calls/test/{k}", target.bucket()));
        let wav_key = format!("calls/test/{k}.wav");
        let wav = &expected.iter().find(|(key, _)| *key == wav_key).unwrap().1;
        assert_eq!(line["objects"]["wav"]["key"], wav_key.as_str());
        assert_eq!(line["objects"]["wav"]["sha256"], sha(wav).as_str());
        assert_eq!(
            line["objects"]["json"]["size"],
            expected.iter().find(|(key, _)| key.ends_with(&format!("{k}.json"))).unwrap().1.len()
        );
    }
    // The spool is empty and keeps its copies (retention: keep).
    assert!(spool.pending().unwrap().is_empty());
    assert!(spool.recording_path(&key("c0"), "wav").exists());
}

#[test]
fn s3_reship_of_the_same_recording_uploads_nothing() {
    let Some(srv) = server("s3_reship_of_the_same_recording_uploads_nothing") else { return };
    let target = srv.bucket("reship", false);
    let mut d = Dirs::new();
    let spool = d.open();
    let wav = audio(7, 100_000);
    spool.enter(d.recording(&key("same"), &wav)).unwrap();
    assert!(ship(&spool, &target, Duration::from_secs(60)).is_complete());
    let before = recording_objects(&target);

    // The same call again (a replay): recognised in the store, nothing uploaded, no `~2`.
    spool.enter(d.recording(&key("same"), &wav)).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.already_shipped, 1);
    assert_eq!(report.stats.shipped_bytes, 0);
    assert_eq!(recording_objects(&target), before);
    // The manifest still lists it once.
    assert_eq!(block_on(target.read_manifest(DAY)).unwrap().len(), 1);
}

#[test]
fn s3_different_content_under_a_taken_key_goes_to_tilde_2() {
    let Some(srv) = server("s3_different_content_under_a_taken_key_goes_to_tilde_2") else { return };
    let target = srv.bucket("conflict", false);
    // Another recorder (another spool) already shipped something else under this key.
    let mut other = Dirs::new();
    let other_spool = other.open();
    let theirs = audio(1, 50_000);
    other_spool.enter(other.recording(&key("k"), &theirs)).unwrap();
    assert!(ship(&other_spool, &target, Duration::from_secs(60)).is_complete());

    let mut d = Dirs::new();
    let spool = d.open();
    let ours = audio(2, 50_000);
    spool.enter(d.recording(&key("k"), &ours)).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");
    let objects = recording_objects(&target);
    let get = |suffix: &str| objects.iter().find(|(k, _)| k.ends_with(suffix)).map(|(_, b)| b.clone());
    assert_eq!(get("_k.wav").unwrap(), theirs, "never overwritten");
    assert_eq!(get("_k~2.wav").unwrap(), ours);
    assert!(get("_k~2.json").is_some());
    assert_eq!(objects.len(), 4);
    let lines = block_on(target.read_manifest(DAY)).unwrap();
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [key("k"), format!("{}~2", key("k"))]);
}

#[test]
fn s3_different_audio_under_a_key_without_call_record_sends_everything_to_tilde_2() {
    let Some(srv) = server("s3_different_audio_under_a_key_without_call_record_sends_everything_to_tilde_2") else {
        return;
    };
    let target = srv.bucket("audio-only", false);
    // Another writer left only audio under the key: the call record's key is free, so the audio
    // goes by conditional create, meets the other audio, and the whole recording moves on.
    let mut other = Dirs::new();
    let other_spool = other.open();
    let theirs = audio(11, 30_000);
    other_spool.enter(other.files(&key("partial"), &[("wav", &theirs)])).unwrap();
    assert!(ship(&other_spool, &target, Duration::from_secs(60)).is_complete());

    let mut d = Dirs::new();
    let spool = d.open();
    let ours = audio(12, 30_000);
    spool.enter(d.recording(&key("partial"), &ours)).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");
    let objects = recording_objects(&target);
    let names: Vec<&str> = objects.iter().map(|(k, _)| k.rsplit('/').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "20161126T144259Z_alice_bob_partial.wav",
            "20161126T144259Z_alice_bob_partial~2.json",
            "20161126T144259Z_alice_bob_partial~2.wav"
        ]
    );
    assert_eq!(objects[0].1, theirs, "never overwritten");
    assert_eq!(objects[2].1, ours);
    let lines = block_on(target.read_manifest(DAY)).unwrap();
    let keys: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [key("partial"), format!("{}~2", key("partial"))]);
}

#[test]
fn s3_manifest_lines_go_in_few_batches_and_waiting_for_them_holds_no_slot() {
    let Some(srv) = server("s3_manifest_lines_go_in_few_batches_and_waiting_for_them_holds_no_slot") else {
        return;
    };
    let name = unique_bucket("batches");
    let linger = Duration::from_millis(400);
    let mut cfg = srv.config(&name);
    cfg.manifest_linger = linger;
    let target = S3Target::new(cfg).unwrap();
    block_on(target.create_bucket(false)).unwrap();
    let mut d = Dirs::new();
    let spool = d.open();
    let n = 10;
    for i in 0..n {
        spool.enter(d.recording(&key(&format!("b{i}")), &audio(100 + i, 5_000))).unwrap();
    }
    // One shipment moves data at a time; each waits about one linger for its manifest batch. Had
    // the waits held the slot, the drain would take at least n lingers.
    let cfg = ShipperConfig { concurrency: 1, ..fast() };
    let started = std::time::Instant::now();
    let report =
        Shipper::start(spool, vec![Target::S3(target.clone())], cfg).unwrap().drain(Some(Duration::from_secs(60)));
    let elapsed = started.elapsed();
    assert!(report.is_complete(), "{report:?}");
    assert!(elapsed < linger * n, "{elapsed:?}: shipments held their slot while waiting for the manifest");
    // At most one manifest object per linger period, and every line in one of them.
    let listing = block_on(target.list(&format!("calls/test/{DAY}/manifest/"))).unwrap();
    let batches = listing.len();
    // A listing after a key (how a writer reads only the batches new since its last look).
    if let Some((first, _)) = listing.first() {
        let after = block_on(target.list_after(&format!("calls/test/{DAY}/manifest/"), Some(first))).unwrap();
        assert_eq!(after, listing[1..]);
    }
    assert!(
        batches >= 1 && batches as f64 <= 2.0 + elapsed.as_secs_f64() / linger.as_secs_f64(),
        "{batches} batches in {elapsed:?}"
    );
    assert_eq!(block_on(target.read_manifest(DAY)).unwrap().len(), n as usize);
}

#[test]
fn s3_large_file_goes_by_verified_multipart_upload() {
    let Some(srv) = server("s3_large_file_goes_by_verified_multipart_upload") else { return };
    let name = unique_bucket("multipart");
    let mut cfg = srv.config(&name);
    cfg.multipart_threshold = 6 * 1024 * 1024;
    cfg.part_size = 5 * 1024 * 1024;
    let target = S3Target::new(cfg).unwrap();
    block_on(target.create_bucket(false)).unwrap();
    let mut d = Dirs::new();
    let spool = d.open();
    let wav = audio(9, 13 * 1024 * 1024 + 123);
    spool.enter(d.recording(&key("long"), &wav)).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(120));
    assert!(report.is_complete(), "{report:?}");
    let wav_key = format!("calls/test/{}.wav", key("long"));
    let info = block_on(target.head(&wav_key)).unwrap().unwrap();
    assert_eq!(info.size, wav.len() as u64);
    assert!(info.matches(&sha(&wav), wav.len() as u64), "{info:?}");
    assert_eq!(sha(&block_on(target.get(&wav_key)).unwrap()), sha(&wav));

    // Shipping it again finds it identical.
    spool.enter(d.recording(&key("long"), &wav)).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(120));
    assert_eq!(report.stats.already_shipped, 1, "{report:?}");
}

/// Ships one recording with `target`, expecting the target to be stopped permanently; returns
/// the report's error text after checking that nothing was confirmed or deleted locally.
fn expect_permanent(target: S3Target) -> String {
    let mut d = Dirs::new();
    let spool = d.open();
    let wav = audio(3, 10_000);
    spool.enter(d.recording(&key("kept"), &wav)).unwrap();
    let handle = Shipper::start(spool.clone(), vec![Target::S3(target)], fast()).unwrap();
    let report = handle.drain(Some(Duration::from_secs(60)));
    assert_eq!(report.stats.failures_permanent, 1, "{report:?}");
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    let entry = &spool.pending().unwrap()[0];
    assert!(entry.shipped.is_empty());
    assert_eq!(std::fs::read(spool.recording_path(&key("kept"), "wav")).unwrap(), wav);
    report.errors[0].clone()
}

#[test]
fn s3_wrong_secret_key_stops_the_target_with_a_clear_error() {
    let Some(srv) = server("s3_wrong_secret_key_stops_the_target_with_a_clear_error") else { return };
    let bucket = srv.bucket("wrong-secret", false);
    let mut cfg = srv.config(bucket.bucket());
    cfg.credentials = Credentials::new(&srv.access_key, "not-the-secret", None);
    let error = expect_permanent(S3Target::new(cfg).unwrap());
    assert!(error.contains("SignatureDoesNotMatch"), "{error}");
    assert!(error.contains("secret key"), "{error}");
    assert!(error.contains(bucket.bucket()), "{error}");
}

#[test]
fn s3_unknown_access_key_stops_the_target_with_a_clear_error() {
    let Some(srv) = server("s3_unknown_access_key_stops_the_target_with_a_clear_error") else { return };
    let bucket = srv.bucket("wrong-key", false);
    let mut cfg = srv.config(bucket.bucket());
    cfg.credentials = Credentials::new("NOSUCHKEY", &srv.secret_key, None);
    let error = expect_permanent(S3Target::new(cfg).unwrap());
    assert!(error.contains("InvalidAccessKeyId"), "{error}");
    assert!(error.contains("access key"), "{error}");
}

#[test]
fn s3_bucket_without_permission_stops_the_target_with_a_clear_error() {
    let Some(srv) = server("s3_bucket_without_permission_stops_the_target_with_a_clear_error") else { return };
    let bucket = srv.bucket("no-permission", false);
    let mut cfg = srv.config(bucket.bucket());
    cfg.credentials = Credentials::new(&srv.limited_access_key, &srv.limited_secret_key, None);
    let error = expect_permanent(S3Target::new(cfg).unwrap());
    assert!(error.contains("AccessDenied") || error.contains("403"), "{error}");
    assert!(error.contains(bucket.bucket()), "{error}");
}

#[test]
fn s3_untrusted_certificate_is_a_clear_tls_error() {
    let Some(srv) = server("s3_untrusted_certificate_is_a_clear_tls_error") else { return };
    let bucket = srv.bucket("wrong-ca", false);
    let mut cfg = srv.config(bucket.bucket());
    cfg.ca_file = Some(srv.other_ca.clone());
    let target = S3Target::new(cfg).unwrap();
    let err = block_on(target.head("x")).unwrap_err();
    assert_eq!(err.disposition(), Disposition::Permanent, "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS"), "{text}");
    assert!(text.contains("--s3-ca-file"), "{text}");
    let error = expect_permanent(target);
    assert!(error.contains("TLS"), "{error}");
}

#[test]
fn s3_plain_http_only_when_allowed() {
    let Some(srv) = server("s3_plain_http_only_when_allowed") else { return };
    let bucket = srv.bucket("plain-http", false);
    let mut cfg = srv.config(bucket.bucket());
    cfg.endpoint = Some(srv.http_endpoint.clone());
    let err = S3Target::new(cfg.clone()).unwrap_err();
    assert!(matches!(err, ShipError::S3Config { .. }), "{err}");
    assert!(err.to_string().contains("--s3-allow-http"), "{err}");
    cfg.allow_http = true;
    let target = S3Target::new(cfg).unwrap();
    let mut d = Dirs::new();
    let spool = d.open();
    spool.enter(d.recording(&key("http"), &audio(4, 1000))).unwrap();
    assert!(ship(&spool, &target, Duration::from_secs(60)).is_complete());
    assert_eq!(recording_objects(&target).len(), 2);
}

#[test]
fn s3_object_lock_is_applied_and_checked() {
    let Some(srv) = server("s3_object_lock_is_applied_and_checked") else { return };
    let locked = srv.bucket("locked", true);
    let mut cfg = srv.config(locked.bucket());
    cfg.object_lock = Some(ObjectLock { mode: LockMode::Governance, retention: Duration::from_secs(86_400) });
    let target = S3Target::new(cfg).unwrap();
    let mut d = Dirs::new();
    let spool = d.open();
    spool.enter(d.recording(&key("locked"), &audio(5, 20_000))).unwrap();
    let report = ship(&spool, &target, Duration::from_secs(60));
    assert!(report.is_complete(), "{report:?}");
    for (k, _) in all_objects(&target) {
        let info = block_on(target.head(&k)).unwrap().unwrap();
        assert_eq!(info.lock_mode.as_deref(), Some("GOVERNANCE"), "{k}: {info:?}");
        let until = info.lock_until.clone().unwrap();
        let until = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
        let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
        assert!((23..=24).contains(&days), "{k}: {info:?}");
    }

    // Object lock asked of a bucket without it: the target stops with a clear error.
    let plain = srv.bucket("not-locked", false);
    let mut cfg = srv.config(plain.bucket());
    cfg.object_lock = Some(ObjectLock { mode: LockMode::Compliance, retention: Duration::from_secs(60) });
    let error = expect_permanent(S3Target::new(cfg).unwrap());
    assert!(error.contains("lock"), "{error}");
}
