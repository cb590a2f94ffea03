//! The cost of `pending` with a large backlog: the in-memory index against reading every
//! queue file (what `pending` did before the index, and what `open` still does once).
//! `cargo test -p callvault-shipper --release -- --ignored --nocapture backlog`

use std::collections::BTreeMap;
use std::time::Instant;

use crate::Spool;
use crate::spool::format::{EntryRecord, VERSION, seq_file_name};
use crate::spool::{EntryFile, OwedTarget};

const ENTRIES: u64 = 100_000;

#[test]
#[ignore = "measurement: 100,000 queue entries"]
fn pending_with_100k_queued_entries() {
    let dir = tempfile::tempdir().unwrap();
    write_queue(dir.path());
    let t = Instant::now();
    let spool = Spool::open(dir.path()).unwrap();
    let open = t.elapsed();
    let t = Instant::now();
    let reread = spool.load_index().unwrap();
    let before = t.elapsed();
    let t = Instant::now();
    let pending = spool.pending().unwrap();
    let after = t.elapsed();
    assert_eq!(pending.len() as u64, ENTRIES);
    assert_eq!(pending, reread);
    println!(
        "{ENTRIES} queued entries: open {open:?}; pending re-reading every queue file (before) {before:?}; \
         pending from the index (after) {after:?}"
    );
}

/// Writes [`ENTRIES`] queue entries under `root` by hand, each owed to a target "archive" at
/// `/mnt/archive`.
fn write_queue(root: &std::path::Path) {
    let queue = root.join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    for seq in 1..=ENTRIES {
        let key = format!("2026/12/03/20261203T000000Z_1001_1002_{seq:012x}");
        let record = EntryRecord {
            version: VERSION,
            seq,
            key: key.clone(),
            files: ["wav", "json"]
                .iter()
                .map(|ext| EntryFile {
                    ext: (*ext).into(),
                    path: format!("recordings/{key}.{ext}"),
                    sha256: "0".repeat(64),
                    size: 160_044,
                    entered_as: Default::default(),
                })
                .collect(),
            summary: serde_json::json!({"call_id": format!("{seq}@test"), "from": "1001", "to": "1002"}),
            entered_at: "2026-12-03T00:00:00.000Z".into(),
            targets: vec![OwedTarget { name: "archive".into(), location: "/mnt/archive".into() }],
            shipped: BTreeMap::new(),
        };
        std::fs::write(queue.join(seq_file_name(seq)), serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    }
}

/// What the shipper's threads spend while recordings keep being entered behind a backlog of
/// [`ENTRIES`] queued ones (owed to an archive that is not configured here, as when one is
/// unreachable for a while), told to the shipper without ids (`Notifier::notify`: it lists the
/// queue, at most every 50 ms) and by id (`Notifier::entered`: no listing).
/// `cargo test -p callvault-shipper --release -- --ignored --nocapture backlog`
#[test]
#[ignore = "measurement: 100,000 queue entries"]
fn recordings_entered_behind_a_backlog_of_100k() {
    use std::sync::Arc;
    use std::time::Duration;

    /// CPU seconds of this process's threads named `shipper` and `shipper-io`.
    fn shipper_cpu() -> f64 {
        let hz = 100.0; // USER_HZ
        let mut ticks = 0u64;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            if !stat[open + 1..close].starts_with("shipper") {
                continue;
            }
            let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            ticks += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        }
        ticks as f64 / hz
    }

    for by_id in [false, true] {
        let d = super::Dirs::new();
        write_queue(&d.spool);
        let spool = Arc::new(Spool::open(&d.spool).unwrap());
        let handle = d.start(&spool, 4);
        std::thread::sleep(Duration::from_secs(2));
        let before = shipper_cpu();
        let t = Instant::now();
        for n in 0..200 {
            let key = format!("2026/12/03/20261203T000001Z_2001_2002_{n:012x}");
            let id = spool.enter(d.recording(&key, &[("json", b"{}")])).unwrap();
            if by_id {
                handle.notifier().entered(id)
            } else {
                handle.notifier().notify()
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let cpu = shipper_cpu() - before;
        let report = handle.drain(Some(Duration::from_secs(60)));
        assert_eq!(report.stats.shipped_recordings, 200, "{:?}", report.errors);
        println!(
            "{} recordings entered over {:.1} s behind {ENTRIES} queued, told {}: the shipper's threads {cpu:.2} CPU s",
            200,
            t.elapsed().as_secs_f64(),
            if by_id { "by id" } else { "without ids" }
        );
    }
}
