use super::*;

/// A call record with the fields the index reads set; the rest as a real record has them.
pub(crate) fn record(call_id: &str, from: &str, to: &str, start_s: i64, mos: [Option<f64>; 2]) -> CallRecord {
    let stream = |side: &str, mos: Option<f64>| {
        serde_json::json!({
            "side": side, "kind": "audio", "ssrc": "0x1", "src": "10.0.0.1:4000", "dst": "10.0.0.2:4000",
            "payload_types": [0], "codec": "PCMU", "packets": 100, "lost": 2, "duplicates": 0, "out_of_order": 0,
            "late": 0, "loss_pct": 2.0, "loss_bursts": 1, "longest_loss_burst": 2, "jitter_ms": 3.5,
            "seq_restarts": 0,
            "quality": mos.map(|m| serde_json::json!({"r_factor": 80.0, "mos": m, "r_factor_plc": 80.0,
                "mos_plc": m, "burst_ratio": 1.0, "assumed_delay_ms": 0.0})),
            "endpoint_report": null, "first": "2020-01-01T00:00:00Z", "last": "2020-01-01T00:00:01Z",
        })
    };
    let streams: Vec<_> = [("caller", mos[0]), ("callee", mos[1])]
        .into_iter()
        .filter(|(_, m)| m.is_some())
        .map(|(side, m)| stream(side, m))
        .collect();
    let t = |s: i64| format_time(s * 1_000_000_000);
    serde_json::from_value(serde_json::json!({
        "version": 2, "call_id": call_id,
        "from": {"user": from, "display": null, "uri": format!("sip:{from}@a")},
        "to": {"user": to, "display": null, "uri": format!("sip:{to}@b")},
        "asserted_identity": null,
        "caller": {"signalling": "10.0.0.1:5060", "media": null},
        "callee": {"signalling": "10.0.0.2:5060", "media": null},
        "start": t(start_s), "ringing": null, "answer": null, "end": t(start_s + 30), "duration_s": 30.0,
        "talk_s": null, "state": "completed", "end_reason": "bye", "ended_by": "caller", "final_code": 200,
        "codecs": {"caller": "PCMU", "callee": "PCMU"},
        "sip": {"messages": 5, "invites": 1, "retransmissions": 0, "early_dialogs": 0, "transport": "udp",
                "challenges": []},
        "streams": streams, "audio": null, "evidence": null, "dtmf": [], "holds": [],
        "capture_complete": true, "incomplete_reasons": [], "notes": [],
    }))
    .unwrap()
}

fn key(call_id: &str) -> String {
    format!("2020/01/01/{call_id}")
}

fn indexed(call_id: &str, from: &str, to: &str, start_s: i64, mos: [Option<f64>; 2]) -> IndexedCall {
    IndexedCall::from_record(&key(call_id), &record(call_id, from, to, start_s, mos)).unwrap()
}

fn ids(page: &Page) -> Vec<&str> {
    page.calls.iter().map(|c| c.id.as_str()).collect()
}

fn fresh() -> (tempfile::TempDir, Index, Reader) {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(dir.path());
    let (index, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Created);
    (dir, index, Reader::new(&path))
}

#[test]
fn filters_apply_together_newest_first() {
    let (_dir, mut index, reader) = fresh();
    index
        .insert(&[
            indexed("a", "+441110001", "200", 100, [Some(4.3), Some(4.2)]),
            indexed("b", "300", "+441110002", 200, [Some(2.1), Some(4.2)]),
            indexed("c", "300", "400", 300, [None, None]),
            indexed("d", "+33100", "441", 400, [Some(3.9), None]),
        ])
        .unwrap();
    let search = |s: Search| ids(&reader.search(&s).unwrap()).into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(search(Search::default()), ["d", "c", "b", "a"]);
    // A number on either side; "+44…" is found by "44…" too.
    assert_eq!(search(Search { number: Some("+44111".into()), ..Search::default() }), ["b", "a"]);
    assert_eq!(search(Search { number: Some("44".into()), ..Search::default() }), ["d", "b", "a"]);
    assert_eq!(search(Search { from: Some("300".into()), ..Search::default() }), ["c", "b"]);
    assert_eq!(search(Search { to: Some("4".into()), ..Search::default() }), ["d", "c"]);
    // The worse direction counts; a call without quality is never "below".
    assert_eq!(search(Search { mos_below: Some(4.0), ..Search::default() }), ["d", "b"]);
    let ns = |s: i64| Some(s * 1_000_000_000);
    assert_eq!(search(Search { since_ns: ns(200), until_ns: ns(400), ..Search::default() }), ["c", "b"]);
    assert_eq!(search(Search { state: Some("rejected".into()), ..Search::default() }), Vec::<String>::new());
    assert_eq!(
        search(Search { end_reason: Some("bye".into()), number: Some("300".into()), ..Search::default() }),
        ["c", "b"]
    );
    let d = &reader.search(&Search { number: Some("+33".into()), ..Search::default() }).unwrap().calls[0];
    assert_eq!((d.mos.caller, d.mos.callee), (Some(3.9), None));
    assert_eq!(d.start, "1970-01-01T00:06:40.000000Z");
    assert_eq!((d.loss_pct, d.jitter_ms), (Some(2.0), Some(3.5)));
}

#[test]
fn pages_cover_every_call_once_in_order() {
    let (_dir, mut index, reader) = fresh();
    // Several calls share a start time: the cursor must still not skip or repeat one.
    let calls: Vec<_> = (0..103).map(|i| indexed(&format!("c{i:03}"), "1", "2", i / 3, [None, None])).collect();
    index.insert(&calls).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = reader.search(&Search { limit: 10, cursor, ..Search::default() }).unwrap();
        assert!(page.calls.len() <= 10);
        seen.extend(page.calls.iter().map(|c| (c.start.clone(), c.id.clone())));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 103);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0));
    assert_eq!(seen.iter().map(|s| &s.0).collect::<Vec<_>>(), sorted.iter().map(|s| &s.0).collect::<Vec<_>>());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 103, "a call appeared on two pages");
}

#[test]
fn a_call_indexed_again_replaces_its_row() {
    let (_dir, mut index, reader) = fresh();
    index.insert(&[indexed("a", "100", "200", 10, [None, None])]).unwrap();
    index.insert(&[indexed("a", "101", "200", 10, [Some(2.0), None])]).unwrap();
    assert_eq!(index.len().unwrap(), 1);
    assert!(reader.search(&Search { number: Some("100".into()), ..Search::default() }).unwrap().calls.is_empty());
    assert_eq!(ids(&reader.search(&Search { number: Some("101".into()), ..Search::default() }).unwrap()), ["a"]);
    let stored = reader.get("a").unwrap().unwrap();
    assert_eq!(stored.key, "2020/01/01/a");
    let back: CallRecord = serde_json::from_str(&stored.record).unwrap();
    assert_eq!(back, record("a", "101", "200", 10, [Some(2.0), None]));
    assert_eq!(reader.get("b").unwrap(), None);
}

/// Writes `records` as record files under `root` (as the spool and local archives hold them).
fn write_records(root: &Path, records: &[(&str, CallRecord)]) {
    for (key, r) in records {
        let path = root.join(format!("{key}.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(r).unwrap()).unwrap();
    }
}

#[test]
fn a_damaged_index_is_moved_aside_and_rebuilt_from_the_record_files() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("recordings");
    let archive = dir.path().join("archive");
    write_records(&spool, &[("2020/01/01/a", record("a", "1", "2", 10, [None, None]))]);
    write_records(
        &archive,
        &[
            ("2020/01/01/a", record("a", "1", "2", 10, [None, None])),
            ("2020/01/01/b", record("b", "1", "3", 20, [Some(4.0), None])),
            ("2020/01/01/b~2", record("b2", "1", "3", 20, [None, None])),
        ],
    );
    // Not call records: counted and logged, never indexed, never fatal.
    std::fs::write(archive.join("2020/01/01/junk.json"), b"{\"not\": 1}").unwrap();
    std::fs::write(archive.join("2020/01/01/c.wav"), b"RIFF").unwrap();
    std::fs::write(archive.join("2020/01/01/.c.json.part"), b"{").unwrap();

    let path = path_in(dir.path());
    std::fs::write(&path, b"this is not a database, it was damaged by something").unwrap();
    let (mut index, opened) = Index::open(&path).unwrap();
    let Opened::Replaced { moved_to, .. } = opened else { panic!("{opened:?}") };
    assert_eq!(std::fs::read(moved_to).unwrap(), b"this is not a database, it was damaged by something");
    let report = index.catch_up(&[spool.clone(), archive.clone()]).unwrap();
    assert_eq!(report, CatchUp { seen: 5, added: 3, unreadable: 1 });
    let reader = Reader::new(&path);
    let page = reader.search(&Search::default()).unwrap();
    let mut names = ids(&page);
    names.sort();
    assert_eq!(names, ["a", "b", "b~2"]);
    assert_eq!(reader.get("b~2").unwrap().unwrap().key, "2020/01/01/b~2");

    // Reopened: the same index, and a catch-up adds only what is new.
    drop(index);
    let (mut index, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Existing);
    write_records(&spool, &[("2020/01/02/d", record("d", "5", "6", 90_000, [None, None]))]);
    assert_eq!(index.catch_up(&[spool]).unwrap(), CatchUp { seen: 2, added: 1, unreadable: 0 });
    assert_eq!(index.len().unwrap(), 4);
}

#[test]
fn an_index_of_another_format_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = path_in(dir.path());
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE calls (x); PRAGMA user_version = 99;").unwrap();
    }
    let (_, opened) = Index::open(&path).unwrap();
    assert!(matches!(&opened, Opened::Replaced { reason, .. } if reason.contains("format 99")), "{opened:?}");
}

#[test]
fn the_writer_commits_every_call_it_was_given() {
    let (dir, index, reader) = fresh();
    let (writer, to_index) = writer::IndexWriter::start(index, Vec::new(), dir.path().join("recordings")).unwrap();
    for i in 0..1500 {
        to_index.send(indexed(&format!("w{i}"), "1", "2", i, [None, None]));
    }
    drop(to_index);
    let stats = writer.finish();
    assert_eq!(stats, writer::WriterStats { indexed: 1500, ..Default::default() });
    assert_eq!(reader.count().unwrap(), 1500);
    drop(dir);
}

#[test]
fn histogram_counts_calls_per_bucket_and_state() {
    let (_dir, mut index, reader) = fresh();
    let mut busy = record("busy", "1", "2", 70, [None, None]);
    busy.state = "rejected".into();
    index
        .insert(&[
            indexed("a", "1", "2", 0, [Some(4.0), Some(3.0)]),
            indexed("b", "1", "2", 59, [Some(4.4), None]),
            IndexedCall::from_record("2020/01/01/busy", &busy).unwrap(),
            indexed("c", "1", "2", 130, [None, None]),
            indexed("late", "1", "2", 180, [None, None]),
        ])
        .unwrap();
    let s = 1_000_000_000;
    let h = reader.histogram(0, 180 * s, 60 * s).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!((h[0].calls, h[0].states.get("completed"), h[0].mos_avg), (2, Some(&2), Some(3.7)));
    assert_eq!(h[0].start, "1970-01-01T00:00:00.000000Z");
    assert_eq!((h[1].calls, h[1].states.get("rejected"), h[1].mos_avg), (1, Some(&1), None));
    assert_eq!((h[2].calls, h[2].mos_avg), (1, None));
    assert!(matches!(reader.histogram(0, 10_000 * 60 * s, 60 * s), Err(SearchError::Invalid(_))));
}
