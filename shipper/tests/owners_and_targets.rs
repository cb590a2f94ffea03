//! One owner per spool, and the targets each queued recording is owed to: a recording goes to
//! the targets configured when it entered, also after the configuration changes, and only an
//! explicit retarget sends it elsewhere.

mod support;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use callvault_shipper::{LocalDir, ShipReport, Shipper, ShipperConfig, Spool, SpoolError, SpoolOptions, Target};
use support::Dirs;

fn dir_target(d: &Dirs, name: &str, sub: &str) -> Target {
    Target::LocalDir(LocalDir::new(name, &d.tmp.path().join(sub)).unwrap())
}

/// A spool and two directory targets, `a` (named "archive") and `b` (named `b_name`).
fn setup(b_name: &str) -> (Dirs, Arc<Spool>, Target, Target) {
    let d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let (a, b) = (dir_target(&d, "archive", "a"), dir_target(&d, b_name, "b"));
    (d, spool, a, b)
}

fn config() -> ShipperConfig {
    ShipperConfig { concurrency: 2, retry_initial: Duration::from_millis(10), retry_max: Duration::from_millis(50) }
}

fn drain(spool: &Arc<Spool>, targets: Vec<Target>) -> ShipReport {
    Shipper::start(Arc::clone(spool), targets, config()).unwrap().drain(Some(Duration::from_secs(20)))
}

/// The recordings' files of the day in the archive `sub` (its manifest directory left out).
fn archived(d: &Dirs, sub: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(days) = fs::read_dir(d.tmp.path().join(sub).join("2016/11/26")) else { return out };
    for f in days.flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if name != "manifest" {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_owner_is_refused_while_read_only_inspection_works() {
    let d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    let pid = std::process::id();
    assert_eq!(callvault_shipper::spool::owner(&d.spool).unwrap(), Some(Some(pid)));
    let err = Spool::open(&d.spool).unwrap_err();
    assert!(matches!(err, SpoolError::Owned { pid: Some(p), .. } if p == pid), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("another callvault (pid {pid}) owns {}", d.spool.display())), "{text}");
    drop(spool);
    assert_eq!(callvault_shipper::spool::owner(&d.spool).unwrap(), None);
    Spool::open(&d.spool).unwrap();
}

#[test]
fn a_directory_that_is_not_a_spool_is_refused_and_left_alone() {
    let d = Dirs::new();
    let missing = d.tmp.path().join("typo");
    let err = Spool::open_existing(&missing, SpoolOptions::default()).unwrap_err();
    assert!(matches!(err, SpoolError::NotASpool { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a callvault data directory"), "{err}");
    assert!(!missing.exists(), "nothing created");
    let err = Spool::open_existing(&d.work, SpoolOptions::default()).unwrap_err();
    assert!(matches!(err, SpoolError::NotASpool { .. }), "{err:?}");
    assert!(fs::read_dir(&d.work).unwrap().next().is_none(), "nothing created in {}", d.work.display());
    drop(Spool::open(&d.spool).unwrap());
    Spool::open_existing(&d.spool, SpoolOptions::default()).unwrap();
}

#[test]
fn recordings_go_to_the_targets_they_were_entered_for() {
    let (mut d, spool, a, b) = setup("offsite");
    spool.set_targets(vec![a.owed()]);
    let first = spool.enter(d.files("2016/11/26/first", &[("wav", b"1")])).unwrap();
    spool.set_targets(vec![b.owed()]);
    spool.enter(d.files("2016/11/26/second", &[("wav", b"2")])).unwrap();
    let queued = spool.pending().unwrap();
    assert_eq!(queued[0].targets, [a.owed()]);
    assert_eq!(queued[1].targets, [b.owed()]);

    // Only "offsite" configured: the first recording is not re-targeted to it, it waits.
    let report = drain(&spool, vec![b.clone()]);
    assert_eq!(archived(&d, "b"), ["second.wav"]);
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    assert_eq!(report.left_queued[0].id, first);
    assert_eq!(report.left_queued[0].waiting_for, ["archive (not configured)"]);
    assert!(
        report.errors.iter().any(|e| e.contains("owed to target \"archive\"") && e.contains("--retarget")),
        "{report:?}"
    );

    // The same name at another place is another target.
    let elsewhere = dir_target(&d, "archive", "elsewhere");
    let report = drain(&spool, vec![elsewhere]);
    assert_eq!(report.left_queued.len(), 1, "{report:?}");
    assert!(archived(&d, "elsewhere").is_empty());

    // Its own target configured again: delivered there, and only there.
    let report = drain(&spool, vec![a, b]);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(archived(&d, "a"), ["first.wav"]);
    assert_eq!(archived(&d, "b"), ["second.wav"]);
}

#[test]
fn a_reload_sends_new_recordings_to_the_new_target_and_queued_ones_where_they_were_going() {
    let (mut d, spool, a, b) = setup("archive");
    let shipper = Shipper::start(Arc::clone(&spool), vec![a], config()).unwrap();
    spool.enter(d.files("2016/11/26/before", &[("wav", b"1")])).unwrap();
    shipper.set_targets(vec![b]).unwrap();
    spool.enter(d.files("2016/11/26/after", &[("wav", b"2")])).unwrap();
    shipper.notify();
    let report = shipper.drain(Some(Duration::from_secs(20)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(archived(&d, "a"), ["before.wav"]);
    assert_eq!(archived(&d, "b"), ["after.wav"]);
}

#[test]
fn retarget_is_the_explicit_way_to_deliver_elsewhere() {
    let (mut d, spool, a, b) = setup("archive");
    spool.set_targets(vec![a.owed()]);
    let id = spool.enter(d.files("2016/11/26/call", &[("wav", b"1")])).unwrap();
    spool.mark_shipped(id, "archive", "somewhere").unwrap();
    spool.mark_shipped(id, "other", "x").unwrap();
    spool.retarget(id, &[b.owed()]).unwrap();
    let entry = spool.entry(id).unwrap();
    assert_eq!(entry.targets, [b.owed()]);
    assert!(entry.shipped.is_empty(), "a confirmation by the old target does not count: {entry:?}");
    let report = drain(&spool, vec![b]);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(archived(&d, "b"), ["call.wav"]);
    assert!(archived(&d, "a").is_empty());
}
