//! The shipping crash points with an S3 target, against the real test server
//! (`scripts/s3-server.sh`); recorded as skipped without it.

use super::*;
use crate::faults::CrashPoint;
use crate::target::S3Target;

const KEY: &str = "2016/11/26/20161126T144259.666Z_sipp_test_1a2b3c4d5e6f";
const JSON: &[u8] = br#"{"call_id":"1a2b3c4d5e6f","state":"completed"}"#;

fn wav() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A target on a fresh bucket of the test server, or `None` (recorded as skipped).
fn target(test: &str) -> Option<S3Target> {
    let mut cfg = s3_test_config(test, "cv-crash")?;
    cfg.site = "crash".into();
    cfg.manifest_linger = Duration::from_millis(5);
    let target = S3Target::new(cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(target.create_bucket(false)).unwrap();
    Some(target)
}

fn ship_s3(spool: &Arc<Spool>, target: &S3Target) -> ShipReport {
    let cfg = ShipperConfig {
        concurrency: 1,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
    };
    let handle = Shipper::start(Arc::clone(spool), vec![Target::S3(target.clone())], cfg).unwrap();
    handle.drain(Some(Duration::from_secs(60)))
}

/// The recording objects in the bucket (not the manifest), with their content.
fn stored(target: &S3Target) -> BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut out = BTreeMap::new();
        for (key, _) in target.list("").await.unwrap() {
            if !key.contains("/manifest/") {
                out.insert(key.clone(), target.get(&key).await.unwrap());
            }
        }
        out
    })
}

/// The key of every manifest line of the day, as many times as it is there.
fn manifest_keys(target: &S3Target) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut keys = Vec::new();
        for (object, _) in target.list(&format!("{}manifest/", target.day_prefix("2016/11/26"))).await.unwrap() {
            let body = target.get(&object).await.unwrap();
            for (_, text) in crate::target::manifest::split_batch(&body).lines {
                keys.push(crate::target::manifest::ManifestLine::parse(text).unwrap().key);
            }
        }
        keys
    })
}

/// Crashes at `point` (after `skip` passes), checks what the bucket holds, then re-opens the
/// spool, ships again and checks that the recording is stored exactly once, complete.
fn crash_and_recover(test: &str, point: CrashPoint, skip: usize, stored_after_crash: &[&str]) {
    let Some(target) = target(test) else { return };
    let d = Dirs::new();
    let spool = Arc::new(Spool::open_armed(&d.spool, point, skip));
    spool.enter(d.recording(KEY, &[("wav", &wav()), ("json", JSON)])).unwrap();
    let report = ship_s3(&spool, &target);
    assert!(spool.crashed(), "no crash: {report:?}");
    let after_crash: Vec<String> = stored(&target).into_keys().collect();
    let want: Vec<String> = stored_after_crash.iter().map(|ext| format!("crash/{KEY}.{ext}")).collect();
    assert_eq!(after_crash, want);
    drop(spool);

    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let report = ship_s3(&spool, &target);
    assert!(report.is_complete(), "{report:?}");
    let expected = BTreeMap::from([(format!("crash/{KEY}.json"), JSON.to_vec()), (format!("crash/{KEY}.wav"), wav())]);
    assert_eq!(stored(&target), expected);
    assert_eq!(manifest_keys(&target), [KEY]);
    assert_eq!(queue_state(&d.spool), (0, 0));
}

#[test]
fn s3_crash_after_upload_of_audio() {
    crash_and_recover("s3_crash_after_upload_of_audio", CrashPoint::ShipAfterUpload, 0, &["wav"]);
}

#[test]
fn s3_crash_after_upload_of_record() {
    crash_and_recover("s3_crash_after_upload_of_record", CrashPoint::ShipAfterUpload, 1, &["json", "wav"]);
}

#[test]
fn s3_crash_before_manifest() {
    crash_and_recover("s3_crash_before_manifest", CrashPoint::ShipBeforeManifest, 0, &["json", "wav"]);
}

#[test]
fn s3_crash_after_publish() {
    crash_and_recover("s3_crash_after_publish", CrashPoint::ShipAfterPublish, 0, &["json", "wav"]);
}

#[test]
fn s3_crash_after_mark() {
    crash_and_recover("s3_crash_after_mark", CrashPoint::ShipAfterMark, 0, &["json", "wav"]);
}
