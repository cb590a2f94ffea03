//! Power loss: the spool on the simulated filesystem (`filesystem::sim`), which forgets at a
//! power loss every write and directory entry that was not fsynced. The process-kill tests
//! (`crash.rs`, `model.rs`, `tests/crash_points.rs`) cannot show this: a killed process leaves
//! everything it wrote in the page cache, which the kernel still writes out.
//!
//! The invariant, checked after every power loss and a restart on what the disk kept:
//!
//! * every recording whose `enter` returned `Ok` and that was not completed is queued, once,
//!   under the id `enter` returned, with each of its files under `recordings/` byte for byte,
//!   and none of its sources left in the work directory;
//! * a recording whose `enter` was cut off is queued intact, or all its files are still in the
//!   work directory for the caller to enter again;
//! * a confirmation `mark_shipped` recorded is still there, and an entry `complete` removed does
//!   not come back;
//! * every queued entry's files are present and match their hashes: nothing half there is
//!   reported as queued.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::sha;
use crate::faults::{CrashPoint, Faults};
use crate::filesystem::Fs;
use crate::filesystem::sim::SimFs;
use crate::spool::format::seq_file_name;
use crate::{EntryId, NewFile, NewRecording, Retention, Spool, SpoolError, SpoolOptions};

const SPOOL: &str = "/data/spool";
const WORK: &str = "/data/work";

/// Power-loss outcomes tried at each cut: nothing unsynced kept, everything kept, random.
const SEEDS: [u64; 6] = [0, u64::MAX, 1, 2, 3, 4];

/// A filesystem with the data and work directories, durable.
fn fresh() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new(WORK)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs.sync_dir(Path::new("/data")).unwrap();
    fs
}

fn open(fs: &SimFs, retention: Retention) -> Result<Spool<SimFs>, SpoolError> {
    let options = SpoolOptions { retention, ..SpoolOptions::default() };
    Spool::open_inner(fs.clone(), Path::new(SPOOL), options, Arc::default(), true)
}

/// A recording the test hands to `enter`: its key and files.
#[derive(Debug, Clone)]
struct Rec {
    key: String,
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Rec {
    /// Recording `content` under one of three keys; content 3 has no audio.
    fn new(base: u8, content: u8) -> Rec {
        let mut files = Vec::new();
        if content != 3 {
            files.push(("wav", vec![base * 16 + content; 500 + usize::from(content) * 700]));
        }
        files.push(("json", format!(r#"{{"base":{base},"content":{content}}}"#).into_bytes()));
        Rec { key: format!("2016/11/2{base}/call{base}"), files }
    }

    /// The recording's files as (ext, sha256, size), sorted.
    fn fingerprint(&self) -> BTreeSet<(String, String, u64)> {
        self.files.iter().map(|(ext, bytes)| ((*ext).to_owned(), sha(bytes), bytes.len() as u64)).collect()
    }

    fn source(&self, n: usize, ext: &str) -> PathBuf {
        Path::new(WORK).join(format!("rec{n}.{ext}"))
    }

    /// Writes the files durably to the work directory, as the finisher does before it hands
    /// them over.
    fn write(&self, fs: &SimFs, n: usize) -> io::Result<NewRecording> {
        let mut files = Vec::new();
        for (ext, bytes) in &self.files {
            let source = self.source(n, ext);
            fs.write_durable(&source, bytes)?;
            files.push(NewFile { source, ext: (*ext).to_owned(), sha256: sha(bytes), size: bytes.len() as u64 });
        }
        Ok(NewRecording { key: self.key.clone(), files, summary: serde_json::json!({"n": n}) })
    }

    /// Writes the files and enters them.
    fn enter(&self, spool: &Spool<SimFs>, n: usize) -> Result<EntryId, SpoolError> {
        let rec = self.write(spool.fs(), n).map_err(|e| SpoolError::io("write", WORK, e))?;
        spool.enter(rec)
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Enter recording (base, content).
    Enter(u8, u8),
    /// Enter these recordings (base, content) at once (`enter_all`, group commit).
    EnterAll(Vec<(u8, u8)>),
    /// Ship the oldest queued entry: read and verify its files, `mark_shipped`, `complete`.
    Ship,
    /// Apply the retention sweep.
    Sweep,
    /// Close the spool and open it again (no power loss).
    Reopen,
}

/// What the spool said, step by step, before the power went.
#[derive(Debug, Default)]
struct Claims {
    /// Recordings handed to `enter`, by their number; with the id if `enter` returned `Ok`.
    entered: Vec<(Rec, Option<EntryId>)>,
    /// Recordings (by number) whose confirmation `mark_shipped` recorded.
    marked: BTreeSet<usize>,
    /// Recordings handed to `complete` (after their confirmation).
    completing: BTreeSet<usize>,
    /// Recordings whose entry `complete` removed.
    completed: BTreeSet<usize>,
}

/// The recording number an entry was entered with (its summary). Seqs are reused after a
/// restart once the queue is empty, so the number, not the id, names a recording.
fn number(entry: &crate::Entry) -> usize {
    entry.summary["n"].as_u64().expect("summary with the recording number") as usize
}

/// Runs `steps` on `fs` until the power goes (or to the end), recording what the spool claimed.
fn run(fs: &SimFs, steps: &[Step], retention: Retention) -> Claims {
    let mut claims = Claims::default();
    let Ok(mut spool) = open(fs, retention) else {
        assert!(fs.is_dead(), "open failed with power on");
        return claims;
    };
    for step in steps {
        let ok = match step {
            Step::Enter(base, content) => {
                let rec = Rec::new(*base, *content);
                let n = claims.entered.len();
                match rec.write(fs, n) {
                    // The power went before the recording was handed over.
                    Err(_) => false,
                    Ok(new) => {
                        claims.entered.push((rec, None));
                        match spool.enter(new) {
                            Ok(id) => {
                                claims.entered[n].1 = Some(id);
                                true
                            }
                            Err(_) => false,
                        }
                    }
                }
            }
            Step::EnterAll(recs) => {
                let first = claims.entered.len();
                let mut news = Vec::new();
                for (base, content) in recs {
                    let rec = Rec::new(*base, *content);
                    match rec.write(fs, claims.entered.len()) {
                        Ok(new) => {
                            claims.entered.push((rec, None));
                            news.push(new);
                        }
                        // The power went before the recordings were handed over.
                        Err(_) => return claims,
                    }
                }
                let mut all = true;
                for (k, result) in spool.enter_all(news).into_iter().enumerate() {
                    match result {
                        Ok(id) => claims.entered[first + k].1 = Some(id),
                        Err(_) => all = false,
                    }
                }
                all
            }
            Step::Ship => ship_oldest(&spool, &mut claims).is_ok(),
            Step::Sweep => spool.sweep().is_ok(),
            Step::Reopen => {
                drop(spool);
                match open(fs, retention) {
                    Ok(s) => {
                        spool = s;
                        true
                    }
                    Err(_) => return claims,
                }
            }
        };
        if !ok {
            assert!(fs.is_dead(), "{step:?} failed with power on");
            return claims;
        }
    }
    claims
}

/// Ships the oldest queued entry as the shipper does (verify, confirm, complete).
fn ship_oldest(spool: &Spool<SimFs>, claims: &mut Claims) -> Result<(), SpoolError> {
    let Some(entry) = spool.pending()?.into_iter().next() else { return Ok(()) };
    for f in &entry.files {
        let path = spool.recording_path(&entry.key, &f.ext);
        let bytes = spool.fs().read(&path).map_err(|e| SpoolError::io("read", &path, e))?;
        assert_eq!(sha(&bytes), f.sha256, "queued file {} does not match its entry", path.display());
    }
    spool.mark_shipped(entry.id, "archive", &format!("/archive/{}", entry.key))?;
    let n = number(&entry);
    claims.marked.insert(n);
    claims.completing.insert(n);
    assert!(spool.complete(entry.id, &["archive"])?);
    claims.completed.insert(n);
    Ok(())
}

/// Restarts on `after` (what the disk kept) and checks the invariant of the module doc.
fn check(after: &SimFs, claims: &Claims, what: &str) {
    let spool = open(after, Retention::Keep).unwrap_or_else(|e| panic!("{what}: reopening failed: {e}"));
    let pending: BTreeMap<EntryId, crate::Entry> = spool.pending().unwrap().into_iter().map(|e| (e.id, e)).collect();
    let recordings_dir = Path::new(SPOOL);
    // Nothing half there is queued.
    for entry in pending.values() {
        for f in &entry.files {
            let bytes = after.read(&recordings_dir.join(&f.path));
            let bytes = bytes.unwrap_or_else(|e| panic!("{what}: queued {} is missing: {e}", f.path));
            assert_eq!(sha(&bytes), f.sha256, "{what}: queued {} is not intact", f.path);
            assert_eq!(bytes.len() as u64, f.size, "{what}: queued {} has the wrong size", f.path);
        }
    }
    let fingerprint = |e: &crate::Entry| -> BTreeSet<(String, String, u64)> {
        e.files.iter().map(|f| (f.ext.clone(), f.sha256.clone(), f.size)).collect()
    };
    // Each recording queued at most once, as what was handed over.
    let mut by_number: BTreeMap<usize, &crate::Entry> = BTreeMap::new();
    for entry in pending.values() {
        let n = number(entry);
        let (rec, _) = claims.entered.get(n).unwrap_or_else(|| panic!("{what}: entry {} was never entered", entry.id));
        assert_eq!(fingerprint(entry), rec.fingerprint(), "{what}: entry {} has other files", entry.id);
        assert!(by_number.insert(n, entry).is_none(), "{what}: recording {n} is queued twice");
    }
    let work = after.files_under(Path::new(WORK));
    for (n, (rec, id)) in claims.entered.iter().enumerate() {
        let sources: Vec<String> = rec.files.iter().map(|(ext, _)| format!("rec{n}.{ext}")).collect();
        let queued = by_number.get(&n);
        match id {
            Some(_) if claims.completed.contains(&n) => {
                assert!(queued.is_none(), "{what}: completed recording {n} ({}) is queued again", rec.key);
            }
            // Confirmed by the target; `complete` was cut off: still queued or gone are both right.
            Some(_) if claims.completing.contains(&n) && queued.is_none() => {}
            Some(id) => {
                let entry = queued
                    .unwrap_or_else(|| panic!("{what}: recording {n} ({}) entered as {id} is not queued", rec.key));
                assert_eq!(entry.id, *id, "{what}: recording {n} is queued under another id");
                if claims.marked.contains(&n) {
                    assert!(entry.shipped.contains_key("archive"), "{what}: confirmation of {id} lost");
                }
                for s in &sources {
                    assert!(!work.contains_key(s), "{what}: source {s} of entered {id} is back in the work directory");
                }
            }
            None => {
                let all_in_work =
                    rec.files.iter().zip(&sources).all(|((_, bytes), s)| work.get(s).is_some_and(|b| b == bytes));
                assert!(
                    queued.is_some() || all_in_work,
                    "{what}: interrupted recording {n} ({}) is neither queued nor in the work directory: {:?}",
                    rec.key,
                    work.keys().collect::<Vec<_>>()
                );
            }
        }
    }
}

/// Runs `steps` with the power cut at every mutating operation, and checks every outcome of
/// [`SEEDS`] at each cut. Returns the number of cuts.
fn cut_everywhere(steps: &[Step], retention: Retention) -> u64 {
    let whole = fresh();
    let before = whole.mutations();
    let claims = run(&whole, steps, retention);
    assert!(!whole.is_dead());
    assert!(claims.entered.iter().all(|(_, id)| id.is_some()));
    check(&whole.power_loss(u64::MAX), &claims, "no power loss");
    let total = whole.mutations() - before;
    for cut in 0..=total {
        let fs = fresh();
        fs.cut_power_after(cut);
        let claims = run(&fs, steps, retention);
        for seed in SEEDS {
            check(&fs.power_loss(seed), &claims, &format!("power cut after {cut} of {total} operations, seed {seed}"));
        }
    }
    total
}

// --- rename without a directory fsync ---

/// Power goes the moment `enter` has returned: whatever the disk forgets of what was not
/// fsynced, the recording is queued and intact. Each rename of `enter` (the intent, each file
/// into `recordings/`, the queue entry) is followed by an fsync of the directories involved;
/// without any one of them some outcome here loses the recording or brings its source back.
#[test]
fn entered_recording_survives_power_loss_right_after_enter() {
    for (base, content) in [(0, 0), (1, 3)] {
        let fs = fresh();
        let spool = open(&fs, Retention::Keep).unwrap();
        let rec = Rec::new(base, content);
        let id = rec.enter(&spool, 0).unwrap();
        drop(spool);
        let claims = Claims { entered: vec![(rec, Some(id))], ..Claims::default() };
        for seed in (0..64).chain([u64::MAX]) {
            check(&fs.power_loss(seed), &claims, &format!("recording ({base}, {content}), seed {seed}"));
        }
    }
}

/// Power goes right after `mark_shipped` and after `complete` returned: the confirmation is
/// still recorded, and the completed entry does not come back (its removal's directory fsync).
#[test]
fn confirmation_and_completion_survive_power_loss() {
    let fs = fresh();
    let spool = open(&fs, Retention::Keep).unwrap();
    let recs = [Rec::new(0, 0), Rec::new(1, 1)];
    let ids: Vec<EntryId> = recs.iter().enumerate().map(|(n, r)| r.enter(&spool, n).unwrap()).collect();
    spool.mark_shipped(ids[0], "archive", "/archive/0").unwrap();
    spool.mark_shipped(ids[1], "archive", "/archive/1").unwrap();
    assert!(spool.complete(ids[1], &["archive"]).unwrap());
    drop(spool);
    let claims = Claims {
        entered: recs.iter().cloned().zip(ids.iter().map(|id| Some(*id))).collect(),
        marked: BTreeSet::from([0, 1]),
        completing: BTreeSet::from([1]),
        completed: BTreeSet::from([1]),
    };
    for seed in (0..64).chain([u64::MAX]) {
        check(&fs.power_loss(seed), &claims, &format!("seed {seed}"));
    }
}

/// The power is cut at every mutating filesystem operation of a fixed session (enter with new
/// date directories, a replayed identical recording, a different recording under a taken key,
/// a call without audio, shipping with deletion of shipped files, a restart), with several
/// outcomes at each cut.
#[test]
fn power_cut_at_every_operation_of_a_session_loses_nothing() {
    let steps = [
        Step::Enter(0, 0),
        Step::Enter(0, 0),
        Step::Enter(0, 1),
        Step::Ship,
        Step::Enter(1, 3),
        Step::Reopen,
        Step::Ship,
        Step::Enter(2, 2),
        Step::Ship,
        // Group commit: new, replayed and clashing recordings and one without audio at once.
        Step::EnterAll(vec![(2, 2), (0, 2), (1, 1), (1, 3)]),
        Step::Ship,
    ];
    let cuts = cut_everywhere(&steps, Retention::DeleteWhenShipped);
    assert!(cuts > 100, "only {cuts} operations: the session is not what it says");
}

/// A shipped recording's files are deleted (`DeleteWhenShipped`) and a different recording
/// takes the same key: with the power cut at every operation, the deleted file never comes back
/// to collide with the new one (which would leave it neither queued nor in the work directory).
#[test]
fn power_cut_never_brings_a_deleted_recording_back_under_a_reused_key() {
    let steps = [Step::Enter(0, 1), Step::Ship, Step::Enter(0, 2), Step::Ship, Step::Enter(0, 1), Step::Ship];
    cut_everywhere(&steps, Retention::DeleteWhenShipped);
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0..3u8, 0..4u8).prop_map(|(b, c)| Step::Enter(b, c)),
        2 => proptest::collection::vec((0..3u8, 0..4u8), 1..4).prop_map(Step::EnterAll),
        3 => Just(Step::Ship),
        1 => Just(Step::Sweep),
        1 => Just(Step::Reopen),
    ]
}

fn retention() -> impl Strategy<Value = Retention> {
    prop_oneof![Just(Retention::Keep), Just(Retention::DeleteWhenShipped), Just(Retention::KeepDays(0))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random sessions, the power cut at every operation, several outcomes per cut.
    #[test]
    fn power_cut_at_every_operation_of_random_sessions_loses_nothing(
        steps in proptest::collection::vec(step(), 1..10),
        retention in retention(),
    ) {
        cut_everywhere(&steps, retention);
    }
}

// --- torn files ---

/// Captures the spool's log lines (a tracing subscriber for the current thread).
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

/// The durable state an `enter` leaves when the power goes at `point` (its intent written and
/// fsynced; the files moved so far): returns the filesystem and the recording.
fn interrupted_enter(point: CrashPoint) -> (SimFs, Rec) {
    let fs = fresh();
    let faults = Arc::new(Faults::default());
    faults.arm(point, 0);
    let spool = Spool::open_inner(fs.clone(), Path::new(SPOOL), SpoolOptions::default(), faults, false).unwrap();
    let rec = Rec::new(0, 0);
    assert!(rec.enter(&spool, 0).is_err());
    drop(spool);
    (fs.power_loss(0), rec)
}

/// An intent torn at any length (a disk that lost part of it despite the fsync) is never
/// silently dropped: restarting finishes the whole intent, or logs the torn intent by path at
/// error level and leaves it, and the recording's files stay where they are (work directory or
/// `recordings/`), byte for byte — nothing is deleted.
#[test]
fn torn_intent_at_any_length_is_recovered_or_reported() {
    let intent_rel = format!("queue/.intent/{}", seq_file_name(1));
    for point in [CrashPoint::EnterAfterIntent, CrashPoint::EnterAfterFirstMove, CrashPoint::EnterAfterMoves] {
        let (base, rec) = interrupted_enter(point);
        let intent = Path::new(SPOOL).join(&intent_rel);
        let full = base.read(&intent).unwrap().len();
        assert!(full > 100);
        for len in 0..=full {
            let fs = base.power_loss(u64::MAX);
            fs.tear(&intent, len).unwrap();
            let (spool, log) = logged(|| open(&fs, Retention::Keep).unwrap());
            let what = format!("{point:?}, intent torn to {len} of {full} bytes");
            let pending = spool.pending().unwrap();
            if len == full {
                assert_eq!(pending.len(), 1, "{what}");
                assert!(fs.files_under(Path::new(WORK)).is_empty(), "{what}");
            } else {
                assert!(pending.is_empty(), "{what}");
                assert!(log.contains("ERROR") && log.contains(&intent_rel), "{what}: not reported: {log}");
                assert_eq!(fs.read(&intent).unwrap().len(), len, "{what}: the torn intent was not kept");
            }
            // Every file is still somewhere, whole.
            let mut everywhere: Vec<Vec<u8>> = fs.files_under(Path::new(WORK)).into_values().collect();
            everywhere.extend(fs.files_under(&Path::new(SPOOL).join("recordings")).into_values());
            for (ext, bytes) in &rec.files {
                assert!(everywhere.contains(bytes), "{what}: the {ext} file is gone");
            }
        }
    }
}

/// A queue entry torn at any length is never silently dropped: the restart logs it by path
/// at error level, it stays listed (so the shipper reports it as unreadable, see
/// `queued_ids`) and on disk, and the recording's files stay in `recordings/`, whole.
#[test]
fn torn_queue_entry_at_any_length_is_reported_and_its_files_kept() {
    let fs = fresh();
    let spool = open(&fs, Retention::Keep).unwrap();
    let rec = Rec::new(0, 0);
    let id = rec.enter(&spool, 0).unwrap();
    drop(spool);
    let base = fs.power_loss(0);
    let entry_rel = format!("queue/{}", seq_file_name(id.seq()));
    let entry_path = Path::new(SPOOL).join(&entry_rel);
    let full = base.read(&entry_path).unwrap().len();
    let recordings = base.files_under(&Path::new(SPOOL).join("recordings"));
    assert_eq!(recordings.len(), rec.files.len());
    for len in 0..full {
        let fs = base.power_loss(u64::MAX);
        fs.tear(&entry_path, len).unwrap();
        let (spool, log) = logged(|| open(&fs, Retention::Keep).unwrap());
        let what = format!("entry torn to {len} of {full} bytes");
        assert!(spool.pending().unwrap().is_empty(), "{what}");
        assert!(log.contains("ERROR") && log.contains(&entry_rel), "{what}: not reported: {log}");
        assert_eq!(spool.queued_ids().unwrap(), [id], "{what}");
        assert!(matches!(spool.entry(id), Err(SpoolError::Corrupt { .. })), "{what}");
        assert_eq!(fs.files_under(&Path::new(SPOOL).join("recordings")), recordings, "{what}");
        // A new recording does not take the torn entry's seq.
        let next = Rec::new(1, 1).enter(&spool, 1).unwrap();
        assert!(next > id, "{what}");
    }
}
