//! Local retention and disk pressure: shipped recordings are deleted only as the policy says,
//! and never while a queued recording refers to them. Real filesystem, local archive target.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod support;

use std::fs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use callvault_shipper::{
    LocalDir, NewRecording, Retention, ShipReport, Shipper, ShipperConfig, Spool, SpoolOptions, Target,
};
use support::{Dirs, skipped};

impl Dirs {
    fn open(&self, retention: Retention, high_watermark_percent: u8) -> Arc<Spool> {
        Arc::new(Spool::open_with(&self.spool, options(retention, high_watermark_percent)).unwrap())
    }

    fn recording(&mut self, key: &str, bytes: &[u8]) -> NewRecording {
        self.files(key, &[("wav", bytes)])
    }

    fn ship(&self, spool: &Arc<Spool>) -> ShipReport {
        let target = Target::LocalDir(LocalDir::new("archive", &self.archive).unwrap());
        let cfg = ShipperConfig {
            concurrency: 2,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(50),
        };
        Shipper::start(Arc::clone(spool), vec![target], cfg).unwrap().drain(Some(Duration::from_secs(20)))
    }
}

fn options(retention: Retention, high_watermark_percent: u8) -> SpoolOptions {
    let mut options = SpoolOptions::default();
    options.retention = retention;
    options.high_watermark_percent = high_watermark_percent;
    options
}

fn age(path: &std::path::Path, days: u64) {
    let old = SystemTime::now() - Duration::from_secs(days * 86_400);
    fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
}

/// Bytes of `path` in the page cache (util-linux's `fincore`), or `None` where that cannot be
/// told.
fn resident(path: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Once every target has a verified copy, a recording the spool keeps leaves memory: its pages
/// are dropped from the page cache (recordings written all day long would otherwise push out
/// what the machine keeps there, and the next ones are written into the pages these give
/// back). Its content stays on disk, in the spool and in the archive.
#[test]
fn a_kept_recording_leaves_memory_once_shipped() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::Keep, 100);
    let audio: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    spool.enter(d.files("2016/11/26/a", &[("wav", &audio), ("json", b"{\"call\": 1}")])).unwrap();
    let local = spool.recording_path("2016/11/26/a", "wav");
    match resident(&local) {
        // Just written: in the page cache, where the kernel can drop pages (not on tmpfs, whose
        // pages are the file, where they stay however many were asked to go).
        Some(n) if n > 0 && !on_tmpfs(&local) => {}
        other => {
            skipped(&format!(
                "a_kept_recording_leaves_memory_once_shipped: {} in the page cache before shipping (fincore: {other:?})",
                local.display()
            ));
            return;
        }
    }
    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(resident(&local), Some(0), "the shipped audio left the page cache");
    assert_eq!(resident(&spool.recording_path("2016/11/26/a", "json")), Some(0), "and its record");
    assert_eq!(fs::read(&local).unwrap(), audio, "kept on disk");
    assert_eq!(fs::read(d.archive.join("2016/11/26/a.wav")).unwrap(), audio);
}

/// A recording not yet shipped stays in memory for the shipper that reads it next.
#[test]
fn an_unshipped_recording_stays_in_memory() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::Keep, 100);
    let audio = vec![0x55u8; 1 << 20];
    spool.enter(d.recording("2016/11/26/b", &audio)).unwrap();
    let local = spool.recording_path("2016/11/26/b", "wav");
    let Some(before) = resident(&local) else {
        skipped("an_unshipped_recording_stays_in_memory: no fincore here");
        return;
    };
    assert_eq!(before, audio.len() as u64, "entered whole, none of it dropped");
}

/// Whether `path` is on tmpfs.
fn on_tmpfs(path: &std::path::Path) -> bool {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
}

#[test]
fn delete_when_shipped_removes_the_local_copy_only_after_confirmation() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::DeleteWhenShipped, 100);
    spool.enter(d.recording("2016/11/26/a", b"audio a")).unwrap();
    let local = spool.recording_path("2016/11/26/a", "wav");
    assert!(local.exists());
    let report = d.ship(&spool);
    assert!(report.is_complete(), "{report:?}");
    assert!(!local.exists(), "deleted once shipped");
    assert_eq!(fs::read(d.archive.join("2016/11/26/a.wav")).unwrap(), b"audio a");
}

#[test]
fn delete_when_shipped_keeps_files_a_queued_replay_still_uses() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::DeleteWhenShipped, 100);
    // The same recording twice (a replay): the second entry reuses the spooled file.
    spool.enter(d.recording("2016/11/26/a", b"same")).unwrap();
    spool.enter(d.recording("2016/11/26/a", b"same")).unwrap();
    assert_eq!(spool.pending().unwrap().len(), 2);
    let report = d.ship(&spool);
    // Both shipped: the first completion did not delete the file the second needed.
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, 2);
    assert!(!spool.recording_path("2016/11/26/a", "wav").exists());
}

#[test]
fn unshipped_recordings_are_never_deleted() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::DeleteWhenShipped, 100);
    spool.enter(d.recording("2016/11/26/a", b"audio")).unwrap();
    // The archive is unusable (a file, not a directory): nothing confirms, nothing is deleted.
    let target = Target::LocalDir(LocalDir::new("archive", &d.tmp.path().join("ok")).unwrap());
    fs::remove_dir(d.tmp.path().join("ok")).unwrap();
    fs::write(d.tmp.path().join("ok"), b"").unwrap();
    let report = Shipper::start(Arc::clone(&spool), vec![target], ShipperConfig::default())
        .unwrap()
        .drain(Some(Duration::from_secs(5)));
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    assert!(spool.recording_path("2016/11/26/a", "wav").exists());
    // Sweeps of every policy leave it alone too (changed as a configuration reload does).
    for retention in [Retention::KeepDays(0), Retention::KeepUntilWatermark(0)] {
        spool.set_options(options(retention, 100));
        age(&spool.recording_path("2016/11/26/a", "wav"), 10);
        let swept = spool.sweep().unwrap();
        assert_eq!(swept.files_deleted, 0);
        assert_eq!(swept.files_referenced, 1);
        assert!(spool.recording_path("2016/11/26/a", "wav").exists());
    }
}

#[test]
fn keep_days_deletes_only_old_shipped_recordings() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::KeepDays(2), 100);
    for name in ["old", "young"] {
        spool.enter(d.recording(&format!("2016/11/26/{name}"), name.as_bytes())).unwrap();
    }
    assert!(d.ship(&spool).is_complete());
    spool.enter(d.recording("2016/11/26/queued", b"queued")).unwrap();
    age(&spool.recording_path("2016/11/26/old", "wav"), 3);
    age(&spool.recording_path("2016/11/26/queued", "wav"), 3);
    let swept = spool.sweep().unwrap();
    assert_eq!(swept.files_deleted, 1, "{swept:?}");
    assert!(!spool.recording_path("2016/11/26/old", "wav").exists());
    assert!(spool.recording_path("2016/11/26/young", "wav").exists());
    assert!(spool.recording_path("2016/11/26/queued", "wav").exists(), "unshipped: kept");
}

#[test]
fn watermark_retention_deletes_shipped_recordings_oldest_first() {
    let mut d = Dirs::new();
    // A watermark of 0 %: every shipped recording must go, queued ones stay.
    let spool = d.open(Retention::KeepUntilWatermark(0), 100);
    spool.enter(d.recording("2016/11/26/a", b"a")).unwrap();
    assert!(d.ship(&spool).is_complete());
    spool.enter(d.recording("2016/11/26/b", b"b")).unwrap();
    let swept = spool.sweep().unwrap();
    assert_eq!(swept.files_deleted, 1);
    assert!(!spool.recording_path("2016/11/26/a", "wav").exists());
    assert!(spool.recording_path("2016/11/26/b", "wav").exists());
    // Above the watermark only: with 100 % nothing is deleted.
    spool.set_options(options(Retention::KeepUntilWatermark(100), 100));
    assert_eq!(spool.sweep().unwrap().files_deleted, 0);
}

#[test]
fn disk_above_the_high_watermark_is_flagged_and_recording_goes_on() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::Keep, 0);
    let usage = spool.disk_usage().unwrap();
    assert!(usage.total_bytes > 0);
    assert!(usage.used_percent > 0.0 && usage.used_percent <= 100.0, "{usage:?}");
    assert!(usage.above_high_watermark);
    spool.enter(d.recording("2016/11/26/a", b"a")).unwrap();
    let report = d.ship(&spool);
    assert!(report.is_complete());
    assert!(report.stats.disk_pressure, "{report:?}");
    assert!(report.stats.disk_used_percent.is_some());

    spool.set_options(options(Retention::Keep, 100));
    assert!(!spool.disk_usage().unwrap().above_high_watermark);
    assert!(!d.ship(&spool).stats.disk_pressure);
}

/// `enter` moves files outside the spool's lock: finisher threads entering at once, some with
/// one key and the same content (replays), some with one key and different content, while the
/// shipper ships and deletes what it confirmed. Every recording is archived under its own key,
/// none is deleted while another entry still needs its files, and nothing is left behind.
#[test]
fn concurrent_enters_while_shipping_lose_nothing() {
    let mut d = Dirs::new();
    let spool = d.open(Retention::DeleteWhenShipped, 100);
    let (threads, each) = (4, 24);
    let mut batches: Vec<Vec<(NewRecording, Vec<u8>)>> = Vec::new();
    for t in 0..threads {
        let mut batch = Vec::new();
        for i in 0..each {
            let (key, bytes) = match i % 3 {
                0 => (format!("2016/11/26/own-{t}-{i}"), format!("own {t} {i}").into_bytes()),
                1 => ("2016/11/26/replayed".to_owned(), b"the same audio".to_vec()),
                _ => ("2016/11/26/clash".to_owned(), format!("clash {t} {i}").into_bytes()),
            };
            batch.push((d.recording(&key, &bytes), bytes));
        }
        batches.push(batch);
    }
    let target = Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap());
    let cfg = ShipperConfig {
        concurrency: 2,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
    };
    let shipper = Shipper::start(Arc::clone(&spool), vec![target], cfg).unwrap();
    let entered: Vec<(String, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let spool = Arc::clone(&spool);
                s.spawn(move || {
                    batch
                        .into_iter()
                        .map(|(rec, bytes)| {
                            let id = spool.enter(rec).unwrap();
                            (spool.entry(id).unwrap().key, bytes)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let report = shipper.drain(Some(Duration::from_secs(30)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.shipped_recordings, (threads * each) as u64);
    // Each key holds its own content: the replays one key, each clashing content its own.
    let mut clash_keys = std::collections::HashSet::new();
    for (key, bytes) in &entered {
        assert_eq!(fs::read(d.archive.join(format!("{key}.wav"))).unwrap(), *bytes, "{key}");
        if key.starts_with("2016/11/26/clash") {
            assert!(clash_keys.insert(key.clone()), "{key} given twice");
        }
    }
    assert_eq!(clash_keys.len(), threads * each / 3);
    assert!(entered.iter().filter(|(k, _)| k == "2016/11/26/replayed").count() == threads * each / 3);
    // Nothing left: no intent, no queue entry, no local copy (all shipped), no work file.
    assert!(spool.pending().unwrap().is_empty());
    assert_eq!(fs::read_dir(d.spool.join("queue/.intent")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&d.work).unwrap().count(), 0);
    assert_eq!(fs::read_dir(d.spool.join("recordings/2016/11/26")).unwrap().count(), 0);
}
