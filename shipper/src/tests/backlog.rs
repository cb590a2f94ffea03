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
    let queue = dir.path().join("queue");
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
