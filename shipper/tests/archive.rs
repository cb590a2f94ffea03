//! End-to-end tests through the public API: enter recordings into a spool and ship them to a
//! local archive directory. Real filesystem, no mocks.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_shipper::{
    Disposition, LocalDir, NewRecording, ShipError, ShipReport, Shipper, ShipperConfig, ShipperHandle, Spool, Target,
};
use support::{Dirs, sha};

const KEY: &str = "2016/11/26/20161126T144259.666Z_sipp_test_1a2b3c4d5e6f";

impl Dirs {
    /// Writes and fsyncs a recording's files in the work directory.
    fn recording(&mut self, key: &str, files: &[(&str, &[u8])]) -> NewRecording {
        let mut rec = self.files(key, files);
        rec.summary = serde_json::json!({"from": "sipp", "to": "test", "state": "completed"});
        rec
    }

    fn start(&self, spool: &Arc<Spool>) -> ShipperHandle {
        let target = Target::LocalDir(LocalDir::new("archive", &self.archive).unwrap());
        Shipper::start(Arc::clone(spool), vec![target], fast()).unwrap()
    }

    fn ship(&self, spool: &Arc<Spool>) -> ShipReport {
        self.start(spool).drain(Some(Duration::from_secs(20)))
    }
}

fn fast() -> ShipperConfig {
    ShipperConfig { concurrency: 4, retry_initial: Duration::from_millis(10), retry_max: Duration::from_millis(50) }
}

fn audio(seed: u8) -> Vec<u8> {
    (0..200_000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Every visible file under `dir` (dot-files and an archive's `manifest/` directories
/// excluded), by relative path.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for item in fs::read_dir(dir).into_iter().flatten() {
            let path = item.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("manifest") {
                    walk(base, &path, out);
                }
            } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The key of every manifest line of day 2016/11/26 in a directory archive, as many times as it
/// is there, sorted.
fn manifest_keys(archive: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    for item in fs::read_dir(archive.join("2016/11/26/manifest")).into_iter().flatten() {
        keys.extend(support::batch_keys(&fs::read(item.unwrap().path()).unwrap()));
    }
    keys.sort();
    keys
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn entered_recording_reaches_the_archive_byte_for_byte() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let wav = audio(1);
    let json = br#"{"call_id":"1a2b3c4d5e6f"}"#;
    let id = spool.enter(d.recording(KEY, &[("wav", &wav), ("json", json)])).unwrap();
    assert_eq!(id.seq(), 1);
    assert!(fs::read_dir(&d.work).unwrap().next().is_none(), "sources moved");
    assert_eq!(fs::read(spool.recording_path(KEY, "wav")).unwrap(), wav);

    let pending = spool.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key, KEY);
    assert_eq!(pending[0].files[0].path, format!("recordings/{KEY}.wav"));
    assert_eq!(pending[0].files[0].sha256, sha(&wav));
    assert_eq!(pending[0].summary["from"], "sipp");

    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 1);
    assert_eq!(report.stats.shipped_bytes, (wav.len() + json.len()) as u64);
    assert_eq!(report.stats.queued, 0);
    assert_eq!(report.stats.oldest_unshipped_age_secs, None);

    let archived = files_under(&d.archive);
    assert_eq!(
        archived,
        BTreeMap::from([(format!("{KEY}.wav"), wav.clone()), (format!("{KEY}.json"), json.to_vec()),])
    );
    assert!(spool.pending().unwrap().is_empty(), "entry removed");
    // Retention::Keep: the spool keeps its copy.
    assert_eq!(fs::read(spool.recording_path(KEY, "wav")).unwrap(), wav);
}

#[test]
fn identical_recording_twice_is_shipped_once() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let wav = audio(2);
    let files: [(&str, &[u8]); 2] = [("wav", &wav), ("json", b"{}")];
    spool.enter(d.recording(KEY, &files)).unwrap();
    assert!(d.ship(&spool).is_complete());

    // The same call replayed: reused in the spool, recognised in the archive.
    spool.enter(d.recording(KEY, &files)).unwrap();
    assert!(fs::read_dir(&d.work).unwrap().next().is_none(), "source dropped");
    assert_eq!(spool.pending().unwrap()[0].key, KEY);
    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.already_shipped, 1);
    assert_eq!(report.stats.shipped_bytes, 0);
    assert_eq!(report.stats.shipped_recordings, 1);

    let archived = files_under(&d.archive);
    assert_eq!(archived.len(), 2, "{:?}", archived.keys());
    assert!(!archived.keys().any(|k| k.contains('~')));
    assert_eq!(files_under(&d.spool.join("recordings")).len(), 2);
    // Shipped twice, one manifest line.
    assert_eq!(manifest_keys(&d.archive), [KEY]);
}

/// A manifest batch the archive lists but cannot serve (here a link to nothing; on a store, one
/// restarted with its data not all back) stops the day's manifest writes with an error naming
/// it, and the recording is shipped again: skipped, its lines would have been written a second
/// time in the next batch. Once the archive is whole again, every line stands once.
#[test]
fn a_manifest_batch_listed_but_unreadable_stops_the_write_and_duplicates_nothing() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let files: [(&str, &[u8]); 2] = [("wav", &audio(7)), ("json", b"{}")];
    spool.enter(d.recording(KEY, &files)).unwrap();
    assert!(d.ship(&spool).is_complete());
    let unreadable = d.archive.join("2016/11/26/manifest/seq-0000000002.jsonl");
    std::os::unix::fs::symlink(d.archive.join("nowhere"), &unreadable).unwrap();

    let second = KEY.replace("1a2b3c4d5e6f", "0f0e0d0c0b0a");
    let files: [(&str, &[u8]); 2] = [("wav", &audio(8)), ("json", b"{}")];
    spool.enter(d.recording(&second, &files)).unwrap();
    let report = d.start(&spool).drain(Some(Duration::from_secs(2)));
    assert!(!report.is_complete(), "{report:?}");
    let errors = format!("{report:?}");
    assert!(errors.contains("seq-0000000002.jsonl is listed but cannot be read"), "{errors}");
    assert!(!d.archive.join("2016/11/26/manifest/seq-0000000003.jsonl").exists(), "no batch written past it");
    assert_eq!(spool.pending().unwrap().len(), 1, "the recording waits to be shipped again");

    fs::remove_file(&unreadable).unwrap();
    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(manifest_keys(&d.archive), [second, KEY.to_owned()]);
}

#[test]
fn different_recording_with_the_same_key_is_kept_as_tilde_2() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let (a, b) = (audio(3), audio(4));
    spool.enter(d.recording(KEY, &[("wav", &a), ("json", b"{\"a\":1}")])).unwrap();
    spool.enter(d.recording(KEY, &[("wav", &b), ("json", b"{\"b\":1}")])).unwrap();
    let keys: Vec<String> = spool.pending().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, [KEY.to_owned(), format!("{KEY}~2")]);

    assert!(d.ship(&spool).is_complete());
    let archived = files_under(&d.archive);
    assert_eq!(archived[&format!("{KEY}.wav")], a);
    assert_eq!(archived[&format!("{KEY}~2.wav")], b);
    assert_eq!(archived[&format!("{KEY}~2.json")], b"{\"b\":1}");
    assert_eq!(archived.len(), 4);
    assert_eq!(manifest_keys(&d.archive), [KEY.to_owned(), format!("{KEY}~2")]);
}

#[test]
fn archive_holding_different_content_gets_tilde_2_and_is_not_overwritten() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    // Another system already archived something else under this key.
    let foreign = d.archive.join(format!("{KEY}.wav"));
    fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    fs::write(&foreign, b"someone else's audio").unwrap();

    let wav = audio(5);
    spool.enter(d.recording(KEY, &[("wav", &wav), ("json", b"{}")])).unwrap();
    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    let archived = files_under(&d.archive);
    assert_eq!(archived[&format!("{KEY}.wav")], b"someone else's audio");
    assert_eq!(archived[&format!("{KEY}~2.wav")], wav);
    assert_eq!(archived[&format!("{KEY}~2.json")], b"{}");
    assert!(!archived.contains_key(&format!("{KEY}.json")));
}

#[test]
fn archive_path_under_a_file_is_a_permanent_config_error() {
    let d = Dirs::new();
    let file = d.tmp.path().join("not-a-dir");
    fs::write(&file, b"").unwrap();
    let err = LocalDir::new("archive", &file.join("sub")).unwrap_err();
    assert_eq!(err.disposition(), Disposition::Permanent);
    assert!(matches!(err, ShipError::Config { .. }));
    assert!(err.to_string().contains("not-a-dir/sub"), "{err}");
}

#[test]
fn unwritable_archive_stops_the_target_and_keeps_everything_queued() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let wav = audio(6);
    spool.enter(d.recording(KEY, &[("wav", &wav), ("json", b"{}")])).unwrap();
    let target = Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap());
    // The archive directory turns into a regular file: every write fails with ENOTDIR.
    fs::remove_dir(&d.archive).unwrap();
    fs::write(&d.archive, b"").unwrap();

    let handle = Shipper::start(Arc::clone(&spool), vec![target], fast()).unwrap();
    let report = handle.drain(Some(Duration::from_secs(20)));
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    assert_eq!(report.left_queued[0].key, KEY);
    assert_eq!(report.left_queued[0].waiting_for, ["archive"]);
    assert_eq!(report.stats.failures_permanent, 1);
    assert_eq!(report.stats.queued, 1);
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].contains("archive"), "{:?}", report.errors);

    let entry = &spool.pending().unwrap()[0];
    assert!(entry.shipped.is_empty());
    assert_eq!(fs::read(spool.recording_path(KEY, "wav")).unwrap(), wav);
    assert_eq!(fs::read(spool.recording_path(KEY, "json")).unwrap(), b"{}");
}

#[test]
fn damaged_spool_file_is_not_marked_shipped() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    spool.enter(d.recording(KEY, &[("wav", &audio(7)), ("json", b"{}")])).unwrap();
    let good_key = "2016/11/26/good";
    spool.enter(d.recording(good_key, &[("json", b"{\"ok\":1}")])).unwrap();
    let mut damaged = audio(7);
    damaged[1000] ^= 0xff;
    fs::write(spool.recording_path(KEY, "wav"), &damaged).unwrap();

    let report = d.ship(&spool);
    // The damaged entry stays queued, unconfirmed; the other one ships.
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    let left = &report.left_queued[0];
    assert_eq!(left.key, KEY);
    let error = left.last_error.as_deref().unwrap();
    assert!(error.contains("SHA-256"), "{error}");
    assert!(error.contains(&format!("{KEY}.wav")), "{error}");
    assert!(spool.pending().unwrap()[0].shipped.is_empty());
    assert!(report.stats.failures_retryable >= 1);
    assert_eq!(report.stats.failures_permanent, 0);
    assert_eq!(report.stats.shipped_recordings, 1);

    let archived = files_under(&d.archive);
    assert_eq!(archived.keys().collect::<Vec<_>>(), [&format!("{good_key}.json")]);
    // No partial copies left behind either; the manifest names the good one only.
    let dir = d.archive.join("2016/11/26");
    assert_eq!(fs::read_dir(dir).unwrap().count(), 2);
    assert_eq!(manifest_keys(&d.archive), [good_key]);
}

#[test]
fn notified_entries_ship_while_running() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let handle = d.start(&spool);
    for i in 0..5 {
        let key = format!("2016/11/26/call{i}");
        spool.enter(d.recording(&key, &[("json", key.as_bytes())])).unwrap();
        handle.notify();
    }
    wait_for("5 shipped recordings", || handle.stats().shipped_recordings == 5);
    let report = handle.drain(Some(Duration::from_secs(5)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(files_under(&d.archive).len(), 5);
}

#[test]
fn queue_left_by_a_previous_run_ships_at_start() {
    let mut d = Dirs::new();
    {
        let spool = Spool::open(&d.spool).unwrap();
        spool.enter(d.recording(KEY, &[("json", b"{}")])).unwrap();
    }
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let handle = d.start(&spool);
    wait_for("the leftover entry", || handle.stats().shipped_recordings == 1);
    assert!(handle.drain(None).is_complete());
}

#[test]
fn archive_that_comes_back_is_retried_until_it_works() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let target = Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap());
    // The archive disappears (ENOENT on every write): retryable.
    fs::remove_dir(&d.archive).unwrap();
    let handle = Shipper::start(Arc::clone(&spool), vec![target], fast()).unwrap();
    spool.enter(d.recording(KEY, &[("json", b"{}")])).unwrap();
    handle.notify();
    wait_for("a retryable failure", || handle.stats().failures_retryable >= 2);
    let stats = handle.stats();
    assert_eq!(stats.queued, 1);
    assert_eq!(stats.failures_permanent, 0);
    assert!(stats.last_error.as_deref().unwrap().contains("archive"));

    fs::create_dir(&d.archive).unwrap();
    let report = handle.drain(Some(Duration::from_secs(20)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(files_under(&d.archive).len(), 1);
}

#[test]
fn drain_deadline_bounds_retries() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let target = Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap());
    fs::remove_dir(&d.archive).unwrap();
    spool.enter(d.recording(KEY, &[("json", b"{}")])).unwrap();
    let handle = Shipper::start(Arc::clone(&spool), vec![target], fast()).unwrap();
    let started = Instant::now();
    let report = handle.drain(Some(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.left_queued.len(), 1);
    assert!(report.stats.failures_retryable >= 1, "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(spool.pending().unwrap().len(), 1);
}

#[test]
fn shipper_refuses_bad_configuration() {
    let d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let err = Shipper::start(Arc::clone(&spool), vec![], fast()).unwrap_err();
    assert!(err.to_string().contains("no archive target"), "{err}");

    let a = LocalDir::new("same", &d.archive).unwrap();
    let b = LocalDir::new("same", &d.archive.join("b")).unwrap();
    let err = Shipper::start(Arc::clone(&spool), vec![a.into(), b.into()], fast()).unwrap_err();
    assert!(err.to_string().contains("\"same\""), "{err}");

    let a = LocalDir::new("a", &d.archive).unwrap();
    let cfg = ShipperConfig { concurrency: 0, ..ShipperConfig::default() };
    assert!(Shipper::start(spool, vec![a.into()], cfg).is_err());
}

#[test]
fn two_targets_both_confirm_before_the_entry_leaves_the_queue() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let second = d.tmp.path().join("second");
    spool.enter(d.recording(KEY, &[("wav", &audio(8)), ("json", b"{}")])).unwrap();
    let targets = vec![
        Target::LocalDir(LocalDir::new("first", &d.archive).unwrap()),
        Target::LocalDir(LocalDir::new("second", &second).unwrap()),
    ];
    // The second archive is broken: the first confirms, the entry stays queued.
    fs::remove_dir(&second).unwrap();
    fs::write(&second, b"").unwrap();
    let report = Shipper::start(Arc::clone(&spool), targets, fast()).unwrap().drain(Some(Duration::from_secs(20)));
    assert_eq!(report.left_queued[0].waiting_for, ["second"]);
    let entry = &spool.pending().unwrap()[0];
    assert_eq!(entry.shipped.keys().collect::<Vec<_>>(), ["first"]);
    assert_eq!(files_under(&d.archive).len(), 2);

    // Fixed and restarted: only the second target ships; the entry completes.
    fs::remove_file(&second).unwrap();
    let targets = vec![
        Target::LocalDir(LocalDir::new("first", &d.archive).unwrap()),
        Target::LocalDir(LocalDir::new("second", &second).unwrap()),
    ];
    let report = Shipper::start(Arc::clone(&spool), targets, fast()).unwrap().drain(Some(Duration::from_secs(20)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.already_shipped, 0);
    assert_eq!(files_under(&second), files_under(&d.archive));
}

#[test]
fn invalid_recordings_are_rejected_without_touching_the_files() {
    let mut d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    let mut bad_key = d.recording("../escape", &[("json", b"{}")]);
    assert!(spool.enter(bad_key.clone()).is_err());
    bad_key.key = KEY.into();
    bad_key.files[0].sha256 = "ABC".into();
    assert!(spool.enter(bad_key.clone()).is_err());
    bad_key.files[0].sha256 = sha(b"{}");
    bad_key.files[0].size = 99;
    let err = spool.enter(bad_key).unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
    assert_eq!(fs::read_dir(&d.work).unwrap().count(), 1);
    assert!(spool.pending().unwrap().is_empty());
}

#[test]
fn unreadable_queue_entry_is_reported_and_does_not_block_the_others() {
    let mut d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    drop(spool);
    let garbage = d.spool.join("queue/00000000000000000005.json");
    fs::write(&garbage, b"{ not json").unwrap();

    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let id = spool.enter(d.recording(KEY, &[("json", b"{}")])).unwrap();
    assert_eq!(id.seq(), 6, "seq continues after the largest on disk");
    assert_eq!(spool.pending().unwrap().len(), 1);

    let report = d.ship(&spool);
    assert!(report.left_queued.is_empty(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 1);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("00000000000000000005.json"), "{report:?}");
    assert!(garbage.exists(), "left for the operator");
}

/// A recording the shipper is told about by id ([`callvault_shipper::Notifier::entered`])
/// ships from the spool's index: no listing of the queue is needed, and the next listing it
/// would otherwise wait for is a minute away (the one at start has run: the first recording
/// shipped), so without the id the second recording would not reach the archive in time.
#[test]
fn an_entry_told_by_id_ships_without_a_listing_of_the_queue() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let first = spool.enter(d.recording(KEY, &[("json", b"{}")])).unwrap();
    let handle = d.start(&spool);
    wait_for("the recording queued at start", || d.archive.join(format!("{KEY}.json")).exists());
    let second = "2016/11/26/20161126T144300.000Z_sipp_test_0f0f0f0f0f0f";
    let id = spool.enter(d.recording(second, &[("wav", &audio(5)), ("json", b"{}")])).unwrap();
    // An id told twice, and one the shipper has already completed, are passed over.
    handle.notifier().entered(first);
    handle.notifier().entered(id);
    handle.notifier().entered(id);
    wait_for("the recording told by id", || d.archive.join(format!("{second}.wav")).exists());
    wait_for("its completion", || spool.pending().unwrap().is_empty());
    let report = handle.drain(Some(Duration::from_secs(20)));
    assert!(report.errors.is_empty() && report.left_queued.is_empty(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 2);
    assert_eq!(fs::read(d.archive.join(format!("{second}.wav"))).unwrap(), audio(5));
}

/// This process's copy of an entry is the one shipped: an entry file rewritten by hand
/// meanwhile changes nothing until the next start (which reads every entry file again), and
/// one removed by hand is let go when its shipment completes, its files kept in the spool.
#[test]
fn entries_ship_as_this_process_entered_them_and_one_removed_by_hand_is_let_go() {
    let mut d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let wav = audio(3);
    let kept = spool.enter(d.recording(KEY, &[("wav", &wav), ("json", b"{}")])).unwrap();
    let other = "2016/11/26/20161126T144300.000Z_sipp_test_0f0f0f0f0f0f";
    let removed = spool.enter(d.recording(other, &[("json", b"{}")])).unwrap();
    let entry_file = |id: callvault_shipper::EntryId| d.spool.join(format!("queue/{:020}.json", id.seq()));

    // A forged hash in the entry file: not what this process entered, so not what it ships.
    let as_entered = spool.entry(kept).unwrap();
    let text = fs::read_to_string(entry_file(kept)).unwrap();
    let forged = text.replace(&as_entered.files[0].sha256, &"0".repeat(64));
    assert_ne!(forged, text, "the hash is in the entry file");
    fs::write(entry_file(kept), forged).unwrap();
    assert_eq!(spool.entry(kept).unwrap(), as_entered);

    // Removed by hand: a confirmation does not write it again, and completing it finds it gone.
    fs::remove_file(entry_file(removed)).unwrap();
    assert!(matches!(
        spool.mark_shipped(removed, "elsewhere", "somewhere"),
        Err(callvault_shipper::SpoolError::NotFound { .. })
    ));
    assert!(!entry_file(removed).exists());
    assert!(matches!(spool.complete(removed, &[]), Err(callvault_shipper::SpoolError::NotFound { .. })));
    assert_eq!(spool.pending().unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), [kept]);
    assert!(spool.recording_path(other, "json").exists(), "its files stay in the spool");

    let report = d.ship(&spool);
    assert!(report.errors.is_empty() && report.left_queued.is_empty(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 1);
    assert_eq!(fs::read(d.archive.join(format!("{KEY}.wav"))).unwrap(), wav);
    assert!(!d.archive.join(format!("{other}.json")).exists());
}

/// A file entered by this process carries its stamp while it stays as entered; any write (or
/// a new link to it) shows. On a filesystem without fine-grained change times there is no stamp
/// and the file is always read again before it is published.
#[test]
fn entered_files_are_known_unchanged_until_written() {
    let mut d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    spool.enter(d.recording(KEY, &[("wav", &audio(7)), ("json", b"{}")])).unwrap();
    let entry = &spool.pending().unwrap()[0];
    let path = spool.recording_path(KEY, "wav");
    if entry.files[0].entered_as.0.is_none() {
        support::skipped("entered_files_are_known_unchanged_until_written: no fine-grained change times here");
        return;
    }
    assert!(entry.files[0].entered_as.unchanged(&path));
    assert!(!entry.files[0].entered_as.unchanged(&spool.recording_path(KEY, "json")), "another file");
    // The shipper reads each entry from the queue as it ships it, and records confirmations:
    // the entry keeps what this process knows of its files through both.
    assert!(spool.entry(entry.id).unwrap().files[0].entered_as.unchanged(&path), "read back for shipping");
    spool.mark_shipped(entry.id, "elsewhere", "somewhere").unwrap();
    assert!(spool.entry(entry.id).unwrap().files[0].entered_as.unchanged(&path), "after a confirmation");
    assert!(spool.pending().unwrap()[0].files[0].entered_as.unchanged(&path), "in the index after it");
    let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"R").unwrap(); // same size, first byte rewritten
    assert!(!entry.files[0].entered_as.unchanged(&path), "a write in place");
    // Read back from the queue (another process): no stamp, so nothing is taken on trust.
    drop(spool);
    let spool = Spool::open(&d.spool).unwrap();
    assert!(spool.pending().unwrap()[0].files[0].entered_as.0.is_none());
}
