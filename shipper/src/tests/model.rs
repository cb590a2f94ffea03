//! Model-based property test: random sequences of enter, ship, crash at a random point and
//! reopen, checked against a naive model — the set of distinct recordings entered so far, each of
//! which must end up in the spool and the archive byte for byte, under a predictable key.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::faults::CrashPoint;

const ENTER_POINTS: [CrashPoint; 4] = [
    CrashPoint::EnterAfterIntent,
    CrashPoint::EnterAfterFirstMove,
    CrashPoint::EnterAfterMoves,
    CrashPoint::EnterAfterEntry,
];

const SHIP_POINTS: [CrashPoint; 3] =
    [CrashPoint::ShipAfterCopy, CrashPoint::ShipAfterPublish, CrashPoint::ShipAfterMark];

#[derive(Debug, Clone)]
enum Op {
    /// Enter recording `content` under base key `base`, maybe crashing at `ENTER_POINTS[i]`.
    Enter { base: u8, content: u8, crash: Option<usize> },
    /// Run a shipper until drained, maybe crashing at `SHIP_POINTS[i]` after `skip` passes.
    Ship { crash: Option<(usize, usize)> },
    /// Close and re-open the spool.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 0..4u8, proptest::option::weighted(0.3, 0..ENTER_POINTS.len()))
            .prop_map(|(base, content, crash)| Op::Enter { base, content, crash }),
        2 => proptest::option::weighted(0.6, (0..SHIP_POINTS.len(), 0..4usize))
            .prop_map(|crash| Op::Ship { crash }),
        1 => Just(Op::Reopen),
    ]
}

fn base_key(base: u8) -> String {
    format!("2016/11/2{base}/20161126T1442{base}9.666Z_sipp_call{base}")
}

/// The files of recording `content` under `base`: every content has its own JSON record, and
/// content 3 has no audio (a call without media).
fn files(base: u8, content: u8) -> Vec<(&'static str, Vec<u8>)> {
    let mut files = Vec::new();
    if content != 3 {
        let len = 1_000 + usize::from(content) * 70_000;
        files.push(("wav", vec![base * 16 + content; len]));
    }
    let json = format!(r#"{{"base":{base},"content":{content}}}"#);
    files.push(("json", json.into_bytes()));
    files
}

/// The naive model: per base key, the distinct contents in the order they were first entered.
/// The n-th distinct content lives under the base key with suffix `~n` (none for the first).
#[derive(Debug, Default)]
struct Model {
    distinct: BTreeMap<u8, Vec<u8>>,
}

impl Model {
    fn enter(&mut self, base: u8, content: u8) {
        let list = self.distinct.entry(base).or_default();
        if !list.contains(&content) {
            list.push(content);
        }
    }

    /// Every file that must exist, by `<key>.<ext>`.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (&base, contents) in &self.distinct {
            for (i, &content) in contents.iter().enumerate() {
                let key = match i {
                    0 => base_key(base),
                    _ => format!("{}~{}", base_key(base), i + 1),
                };
                for (ext, bytes) in files(base, content) {
                    out.insert(format!("{key}.{ext}"), bytes);
                }
            }
        }
        out
    }
}

fn open(d: &Dirs) -> Arc<Spool> {
    Arc::new(Spool::open(&d.spool).unwrap())
}

/// Opens the spool again after `spool` "exited" (crashed or stopped): its ownership ends first.
fn reopen(d: &Dirs, spool: Arc<Spool>) -> Arc<Spool> {
    drop(spool);
    open(d)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_lost_or_duplicated_across_crashes(ops in proptest::collection::vec(op(), 1..12)) {
        let d = Dirs::new();
        let mut spool = open(&d);
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Enter { base, content, crash } => {
                    model.enter(base, content);
                    if let Some(i) = crash {
                        spool.faults().arm(ENTER_POINTS[i], 0);
                    }
                    let owned = files(base, content);
                    let borrowed: Vec<(&str, &[u8])> =
                        owned.iter().map(|(e, b)| (*e, b.as_slice())).collect();
                    let result = spool.enter(d.recording(&base_key(base), &borrowed));
                    if spool.crashed() {
                        spool = reopen(&d, spool);
                    } else {
                        prop_assert!(result.is_ok(), "{:?}", result);
                        spool.faults().disarm();
                    }
                }
                Op::Ship { crash } => {
                    if let Some((i, skip)) = crash {
                        spool.faults().arm(SHIP_POINTS[i], skip);
                    }
                    let report = d.ship(&spool, 2);
                    if spool.crashed() {
                        spool = reopen(&d, spool);
                    } else {
                        prop_assert!(report.is_complete(), "{:?}", report);
                        spool.faults().disarm();
                    }
                }
                Op::Reopen => spool = reopen(&d, spool),
            }
            // Whatever happened, every recording entered so far is in the spool, intact, and
            // nothing else is.
            prop_assert_eq!(visible_files(&d.spool.join("recordings")), model.files());
            prop_assert!(d.work_files().is_empty(), "{:?}", d.work_files());
        }

        let spool = reopen(&d, spool);
        let report = d.ship(&spool, 3);
        prop_assert!(report.is_complete(), "{:?}", report);
        prop_assert_eq!(archived(&d.archive), model.files());
        let keys: Vec<String> =
            model.files().keys().filter_map(|f| f.strip_suffix(".json")).map(str::to_owned).collect();
        prop_assert_eq!(manifest_keys(&d.archive), keys, "one manifest line per recording");
        prop_assert_eq!(queue_state(&d.spool), (0, 0));
    }
}
