//! One test per named crash point, plus ordering, transient `enter` failures, and a manifest
//! batch that is unreadable for a while.

use std::time::SystemTime;

use super::*;
use crate::SpoolError;
use crate::faults::CrashPoint;

const KEY: &str = "2016/11/26/20161126T144259.666Z_sipp_test_1a2b3c4d5e6f";
const JSON: &[u8] = br#"{"call_id":"1a2b3c4d5e6f","state":"completed"}"#;

fn wav() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn expected() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([(format!("{KEY}.wav"), wav()), (format!("{KEY}.json"), JSON.to_vec())])
}

fn recordings(d: &Dirs) -> BTreeMap<String, Vec<u8>> {
    visible_files(&d.spool.join("recordings"))
}

/// Re-opens the spool, ships, and checks that exactly the one recording is in the spool and the
/// archive, byte for byte, with nothing queued and nothing left in the work directory.
fn recover_and_ship(d: &Dirs) -> ShipReport {
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    assert_eq!(queue_state(&d.spool).1, 0, "intents left after open");
    assert!(d.work_files().is_empty(), "{:?}", d.work_files());
    assert_eq!(recordings(d), expected());
    let report = d.ship(&spool, 4);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(archived(&d.archive), expected());
    assert_eq!(manifest_keys(&d.archive), [KEY], "one manifest line");
    assert_eq!(queue_state(&d.spool), (0, 0));
    assert_eq!(report.stats.shipped_recordings, 1);
    report
}

/// Enters the recording with a crash armed at `point`.
fn crash_in_enter(point: CrashPoint) -> Dirs {
    let d = Dirs::new();
    let spool = Spool::open_armed(&d.spool, point, 0);
    let rec = d.recording(KEY, &[("wav", &wav()), ("json", JSON)]);
    let err = spool.enter(rec).unwrap_err();
    assert!(spool.crashed(), "not a crash: {err}");
    d
}

#[test]
fn enter_crash_after_intent() {
    let d = crash_in_enter(CrashPoint::EnterAfterIntent);
    assert_eq!(d.work_files(), ["rec0.json", "rec0.wav"]);
    assert!(recordings(&d).is_empty());
    assert_eq!(queue_state(&d.spool), (0, 1));
    recover_and_ship(&d);
}

#[test]
fn enter_crash_after_first_move() {
    let d = crash_in_enter(CrashPoint::EnterAfterFirstMove);
    assert_eq!(d.work_files(), ["rec0.json"]);
    assert_eq!(recordings(&d).len(), 1);
    assert_eq!(queue_state(&d.spool), (0, 1));
    recover_and_ship(&d);
}

#[test]
fn enter_crash_after_moves() {
    let d = crash_in_enter(CrashPoint::EnterAfterMoves);
    assert!(d.work_files().is_empty());
    assert_eq!(recordings(&d), expected());
    assert_eq!(queue_state(&d.spool), (0, 1));
    recover_and_ship(&d);
}

#[test]
fn enter_crash_after_entry() {
    let d = crash_in_enter(CrashPoint::EnterAfterEntry);
    assert!(d.work_files().is_empty());
    // The intent became the entry (renamed): the queue's directory is synced, the intents' not
    // yet.
    assert_eq!(queue_state(&d.spool), (1, 0));
    let report = recover_and_ship(&d);
    assert_eq!(report.stats.already_shipped, 0);
}

/// Enters the recording, then ships it with a crash armed at `point` after `skip` passes, into
/// an archive that copies (`copy`) or links from the spool.
fn crash_in_shipping_to(point: CrashPoint, skip: usize, copy: bool) -> Dirs {
    let d = Dirs::new();
    d.copy.set(copy);
    let spool = Arc::new(Spool::open_armed(&d.spool, point, skip));
    let rec = d.recording(KEY, &[("wav", &wav()), ("json", JSON)]);
    spool.enter(rec).unwrap();
    let report = d.ship(&spool, 1);
    assert!(spool.crashed(), "no crash: {report:?}");
    assert!(!report.is_complete());
    d
}

/// [`crash_in_shipping_to`] an archive that links from the spool (the default).
fn crash_in_shipping(point: CrashPoint, skip: usize) -> Dirs {
    crash_in_shipping_to(point, skip, false)
}

/// The single queued entry, read by a fresh spool.
fn only_entry(d: &Dirs) -> crate::Entry {
    let entries = Spool::open(&d.spool).unwrap().pending().unwrap();
    assert_eq!(entries.len(), 1);
    entries.into_iter().next().unwrap()
}

#[test]
fn ship_crash_before_link_of_audio() {
    // Linked from the spool: nothing is in the archive, not even a partial copy.
    let d = crash_in_shipping(CrashPoint::ShipAfterCopy, 0);
    assert!(archived(&d.archive).is_empty());
    assert!(hidden_files(&d.archive).is_empty());
    assert!(only_entry(&d).shipped.is_empty());
    let report = recover_and_ship(&d);
    assert_eq!(report.stats.shipped_bytes, (wav().len() + JSON.len()) as u64);
}

#[test]
fn ship_crash_after_copy_of_audio() {
    let d = crash_in_shipping_to(CrashPoint::ShipAfterCopy, 0, true);
    assert!(archived(&d.archive).is_empty());
    let parts = hidden_files(&d.archive);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(parts[0].contains(".wav.part-"), "{parts:?}");
    assert!(only_entry(&d).shipped.is_empty());

    let report = recover_and_ship(&d);
    assert_eq!(report.stats.already_shipped, 0);
    assert_eq!(report.stats.shipped_bytes, (wav().len() + JSON.len()) as u64);
    // The leftover is young, so it may belong to another writer: it stays, hidden.
    assert_eq!(hidden_files(&d.archive), parts);

    // Once it is old, the next shipment into that directory removes it.
    let old = SystemTime::now() - crate::target::STALE_PART_AGE * 2;
    fs::File::options().write(true).open(d.archive.join(&parts[0])).unwrap().set_modified(old).unwrap();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    spool.enter(d.recording("2016/11/26/other", &[("json", b"{}")])).unwrap();
    assert!(d.ship(&spool, 1).is_complete());
    assert!(hidden_files(&d.archive).is_empty());
}

#[test]
fn ship_crash_after_copy_of_record_leaves_audio_without_record() {
    let d = crash_in_shipping(CrashPoint::ShipAfterCopy, 1);
    // The audio is published, the JSON record (shipped last) is not: no consumer sees a record
    // whose audio is incomplete.
    let archived = archived(&d.archive);
    assert_eq!(archived.keys().collect::<Vec<_>>(), [&format!("{KEY}.wav")]);
    assert!(only_entry(&d).shipped.is_empty());

    let report = recover_and_ship(&d);
    assert_eq!(report.stats.already_shipped, 0);
    assert_eq!(report.stats.shipped_bytes, JSON.len() as u64);
}

#[test]
fn ship_crash_after_publish() {
    let d = crash_in_shipping(CrashPoint::ShipAfterPublish, 0);
    assert_eq!(archived(&d.archive), expected());
    assert!(only_entry(&d).shipped.is_empty());

    let report = recover_and_ship(&d);
    assert_eq!(report.stats.already_shipped, 1);
    assert_eq!(report.stats.shipped_bytes, 0);
    assert!(!archived(&d.archive).keys().any(|k| k.contains('~')));
}

#[test]
fn ship_crash_after_mark() {
    // One target: its confirmation is the last the entry waits for, recorded by completing the
    // entry; the crash point follows the completion.
    let d = crash_in_shipping(CrashPoint::ShipAfterMark, 0);
    assert_eq!(archived(&d.archive), expected());
    assert!(Spool::open(&d.spool).unwrap().pending().unwrap().is_empty());
    assert_eq!(queue_state(&d.spool), (0, 0));
    assert_eq!(recordings(&d), expected());
}

/// Ships everything to two local directories, "first" and "second", in that order.
fn ship_to_two(d: &Dirs, spool: &Arc<Spool>) -> ShipReport {
    let targets = ["first", "second"]
        .map(|name| Target::LocalDir(LocalDir::new(name, &d.archive.join(name)).unwrap()))
        .into_iter()
        .collect();
    let cfg = ShipperConfig {
        concurrency: 1,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
    };
    Shipper::start(Arc::clone(spool), targets, cfg).unwrap().drain(Some(Duration::from_secs(20)))
}

#[test]
fn ship_crash_after_mark_of_the_first_of_two_targets() {
    let d = Dirs::new();
    let spool = Arc::new(Spool::open_armed(&d.spool, CrashPoint::ShipAfterMark, 0));
    spool.enter(d.recording(KEY, &[("wav", &wav()), ("json", JSON)])).unwrap();
    let report = ship_to_two(&d, &spool);
    assert!(spool.crashed(), "no crash: {report:?}");
    drop(spool);
    // The first target's confirmation is recorded; the second has nothing yet.
    let entry = only_entry(&d);
    assert_eq!(entry.shipped.keys().collect::<Vec<_>>(), ["first"]);
    assert_eq!(archived(&d.archive.join("first")), expected());
    assert!(archived(&d.archive.join("second")).is_empty());

    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let report = ship_to_two(&d, &spool);
    assert!(report.is_complete(), "{report:?}");
    // Only the second target was shipped to; the entry is completed with its confirmation.
    assert_eq!(report.stats.targets.get("first").map_or(0, |t| t.shipped_recordings), 0);
    assert_eq!(report.stats.targets["second"].shipped_recordings, 1);
    assert_eq!(archived(&d.archive.join("second")), expected());
    assert_eq!(queue_state(&d.spool), (0, 0));
}

#[test]
fn oldest_entry_ships_first() {
    // Keys sort opposite to seq, so a key- or directory-order bug shows.
    let keys = ["2016/11/26/e", "2016/11/26/d", "2016/11/26/c", "2016/11/26/b"];
    for shipped_before_crash in 1..=3 {
        let d = Dirs::new();
        let spool = Arc::new(Spool::open_armed(&d.spool, CrashPoint::ShipAfterMark, shipped_before_crash - 1));
        for key in keys {
            spool.enter(d.recording(key, &[("json", key.as_bytes())])).unwrap();
        }
        d.ship(&spool, 1);
        assert!(spool.crashed());
        // A shipment gives its slot back while it waits for its manifest line, so the next
        // ones move their files meanwhile (one at a time, oldest first) and some may be
        // completed, in any order, by the time the n-th completion crashes: at least n left the
        // queue, and what is left is unconfirmed, in seq order.
        let entries = Spool::open(&d.spool).unwrap().pending().unwrap();
        let queued: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert!(
            keys.len() - queued.len() >= shipped_before_crash,
            "{queued:?} left, {shipped_before_crash} before the crash"
        );
        assert_eq!(keys.iter().copied().filter(|k| queued.contains(k)).collect::<Vec<_>>(), queued);
        assert!(entries.iter().all(|e| e.shipped.is_empty()));
        // The archive holds the oldest entries (every one completed among them), and the
        // manifest names them in seq order.
        let archived: Vec<String> = archived(&d.archive).into_keys().collect();
        let lines = manifest_keys_as_written(&d.archive);
        assert_eq!(lines, keys[..lines.len()]);
        let first = |n: usize| {
            let mut want: Vec<String> = keys[..n.min(keys.len())].iter().map(|k| format!("{k}.json")).collect();
            want.sort();
            want
        };
        // The next ones' files may be in without their lines: each moved its files while the
        // one before it waited for its line, as many as the manifest writer had not come to by
        // the crash (one at a time, oldest first: the archive holds a prefix of the queue). Each
        // of them is still queued, to be shipped again and given its line.
        assert!(
            (lines.len()..=keys.len()).any(|n| archived == first(n)),
            "{archived:?} archived, {lines:?} in the manifest"
        );
        for key in keys.iter().filter(|k| archived.contains(&format!("{k}.json"))) {
            assert!(
                lines.iter().any(|l| l == key) || queued.contains(key),
                "{key} archived, neither in the manifest nor queued: {lines:?}, {queued:?} left"
            );
        }
        assert!(keys.iter().all(|k| queued.contains(k) || lines.iter().any(|l| l == k)), "{queued:?} left, {lines:?}");
    }
}

#[test]
fn failed_enter_is_finished_by_the_next_enter() {
    let d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    spool.faults().fail_once(CrashPoint::EnterAfterFirstMove);
    let err = spool.enter(d.recording(KEY, &[("wav", &wav()), ("json", JSON)])).unwrap_err();
    assert!(matches!(err, SpoolError::Unfinished { .. }), "{err}");
    assert!(err.to_string().contains("do not delete"), "{err}");
    assert!(!spool.crashed());
    assert_eq!(d.work_files(), ["rec0.json"]);

    // A different recording with the same key: the first one is finished first and keeps the
    // key; the second becomes `~2`.
    let other = d.recording(KEY, &[("json", b"{}")]);
    spool.enter(other).unwrap();
    assert!(d.work_files().is_empty());
    let keys: Vec<String> = spool.pending().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, [KEY.to_owned(), format!("{KEY}~2")]);
    assert_eq!(queue_state(&d.spool), (2, 0));
}

#[test]
fn failed_intent_write_leaves_the_caller_its_files() {
    let d = Dirs::new();
    let spool = Spool::open(&d.spool).unwrap();
    // Make the intent directory unusable: writing the intent fails before anything moves.
    fs::remove_dir(d.spool.join("queue/.intent")).unwrap();
    fs::write(d.spool.join("queue/.intent"), b"").unwrap();
    let err = spool.enter(d.recording(KEY, &[("json", JSON)])).unwrap_err();
    assert!(matches!(err, SpoolError::Io { .. }), "{err}");
    assert_eq!(d.work_files(), ["rec0.json"]);
    assert!(recordings(&d).is_empty());
}

/// A batch of the day that cannot be read when the writer next looks (here: a name that leads
/// to a directory) fails that write; once it can be read, the writer's next batch links to it,
/// not past it: a listing cut short is listed again.
#[test]
fn a_batch_unreadable_at_one_look_is_read_at_the_next() {
    let d = Dirs::new();
    let target = Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap());
    let ship = |spool: &Arc<Spool>| {
        let cfg = ShipperConfig {
            concurrency: 1,
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
        };
        Shipper::start(Arc::clone(spool), vec![target.clone()], cfg).unwrap().drain(Some(Duration::from_millis(600)))
    };
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    spool.enter(d.recording("2016/11/26/a", &[("json", b"{\"a\":1}")])).unwrap();
    assert!(ship(&spool).is_complete());
    let manifest = d.archive.join("2016/11/26/manifest");
    let first = fs::read(manifest.join("seq-0000000001.jsonl")).unwrap();
    // Another writer's batch 2, unreadable for now.
    let second = manifest.join("seq-0000000002.jsonl");
    fs::create_dir(d.archive.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(d.archive.join("elsewhere"), &second).unwrap();
    spool.enter(d.recording("2016/11/26/b", &[("json", b"{\"b\":2}")])).unwrap();
    let report = ship(&spool);
    assert!(!report.is_complete(), "{report:?}");
    // Now readable (a copy of batch 1's lines under number 2).
    fs::remove_file(&second).unwrap();
    fs::write(&second, &first).unwrap();
    assert!(ship(&spool).is_complete());
    let third = fs::read(manifest.join("seq-0000000003.jsonl")).unwrap();
    let header = crate::target::manifest::split_batch(&third).header.unwrap().unwrap();
    let prev = header.prev.unwrap();
    assert!(prev.object.ends_with("seq-0000000002.jsonl"), "{prev:?}");
    assert_eq!(prev.sha256, crate::target::manifest::sha256_hex(&first));
}

/// Two recorders' writers on one archive, taking turns on one day: each writes its next batch
/// without listing the day again unless the number is taken, and still every recording has
/// exactly one line and every batch links to the one before it.
#[test]
fn writers_taking_turns_on_a_day_keep_one_line_per_recording_and_one_chain() {
    let d = Dirs::new();
    let other = Dirs::new();
    let targets = [&d, &other].map(|_| Target::LocalDir(LocalDir::new("archive", &d.archive).unwrap()));
    let spools = [&d, &other].map(|dirs| Arc::new(Spool::open(&dirs.spool).unwrap()));
    let ship = |k: usize| {
        let cfg = ShipperConfig { concurrency: 1, ..ShipperConfig::default() };
        let shipper = Shipper::start(Arc::clone(&spools[k]), vec![targets[k].clone()], cfg).unwrap();
        assert!(shipper.drain(Some(Duration::from_secs(10))).is_complete());
    };
    // Recorder 0 writes batch 1; recorder 1 (which has not read the day) batch 2, with one
    // recording recorder 0 has already put in; recorder 0, which read the day before its batch
    // 1, then finds number 2 taken, reads it and writes batch 3 without the line batch 2 has.
    let same = d.recording("2016/11/26/same", &[("json", b"{\"s\":1}")]);
    spools[0].enter(same).unwrap();
    spools[0].enter(d.recording("2016/11/26/a", &[("json", b"{\"a\":1}")])).unwrap();
    ship(0);
    spools[1].enter(other.recording("2016/11/26/same", &[("json", b"{\"s\":1}")])).unwrap();
    spools[1].enter(other.recording("2016/11/26/b", &[("json", b"{\"b\":1}")])).unwrap();
    ship(1);
    spools[0].enter(d.recording("2016/11/26/b", &[("json", b"{\"b\":1}")])).unwrap();
    spools[0].enter(d.recording("2016/11/26/c", &[("json", b"{\"c\":1}")])).unwrap();
    ship(0);
    // Recorder 1 again, after recorder 0's batch 3; then recorder 0 with nothing new in between.
    spools[1].enter(other.recording("2016/11/26/d", &[("json", b"{\"d\":1}")])).unwrap();
    ship(1);
    spools[0].enter(d.recording("2016/11/26/e", &[("json", b"{\"e\":1}")])).unwrap();
    ship(0);
    spools[0].enter(d.recording("2016/11/26/f", &[("json", b"{\"f\":1}")])).unwrap();
    ship(0);
    let keys = manifest_keys(&d.archive);
    let want: Vec<String> = ["a", "b", "c", "d", "e", "f", "same"].iter().map(|k| format!("2016/11/26/{k}")).collect();
    assert_eq!(keys, want, "one line per recording");
    let manifest = d.archive.join("2016/11/26/manifest");
    let mut prev: Option<(String, String)> = None;
    let mut seq = 0u64;
    loop {
        seq += 1;
        let object = format!("seq-{seq:010}.jsonl");
        let Ok(body) = fs::read(manifest.join(&object)) else { break };
        let header = crate::target::manifest::split_batch(&body).header.unwrap().unwrap();
        assert_eq!(header.seq, seq);
        if let Some((object, sha)) = &prev {
            let link = header.prev.as_ref().unwrap_or_else(|| panic!("batch {seq} links to nothing"));
            assert!(link.object.ends_with(object.as_str()), "batch {seq} links to {link:?}, not {object}");
            assert_eq!(&link.sha256, sha);
        }
        prev = Some((object, crate::target::manifest::sha256_hex(&body)));
    }
    // Six shipments, a batch at least each; every batch file there is in the chain.
    assert!(seq > 6, "{} batches", seq - 1);
    let batches = fs::read_dir(&manifest)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
        .count();
    assert_eq!(batches as u64, seq - 1);
}

/// A key without a directory is refused when entered, with a reason, not queued to fail at
/// every shipment (an archive keeps a day's manifest in the directory of its keys).
#[test]
fn a_key_without_a_directory_is_refused_at_entry() {
    let d = Dirs::new();
    let spool = Arc::new(Spool::open(&d.spool).unwrap());
    let err = spool.enter(d.recording("solo", &[("json", b"{}")])).unwrap_err();
    assert!(err.to_string().contains("2016/11/26/<name>"), "{err}");
    assert_eq!(queue_state(&d.spool), (0, 0));
    spool.enter(d.recording("2016/11/26/solo", &[("json", b"{}")])).unwrap();
    let report = d.ship(&spool, 1);
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(archived(&d.archive).into_keys().collect::<Vec<_>>(), ["2016/11/26/solo.json"]);
    assert_eq!(manifest_keys(&d.archive), ["2016/11/26/solo"]);
}
