//! `--keep-pcap`: beside each recording, the call's own packets as captured. The evidence file
//! holds exactly the call's SIP and RTP frames (readable with libpcap), and the record gives
//! its packet count and SHA-256.

mod common;

use callgen::{CallSpec, Outcome, Scenario};
use capture::source::FileSource;
use common::{records, replay, sha256, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

#[test]
fn each_call_keeps_exactly_its_own_packets() {
    let mut calls: Vec<CallSpec> =
        (0..4).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 300_000_000, 2000)).collect();
    calls[3].outcome = Outcome::Busy;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &["--keep-pcap"]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 4);
    for t in &truth.calls {
        let r = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).unwrap();
        let ev = &r.value["evidence"];
        let file = r.json.with_file_name(ev["file"].as_str().expect("evidence file"));
        assert_eq!(ev["sha256"], sha256(&file));
        let want = t.sip.len() as u64 + u64::from(t.caller.packets_sent) + u64::from(t.callee.packets_sent);
        assert_eq!(ev["packets"], want, "{}", t.call_id);
        let mut src = FileSource::open(&file).unwrap();
        let mut n = 0u64;
        let mut last = capture::Timestamp(0);
        while let Some(f) = src.next_frame().unwrap() {
            assert!(f.time >= last, "in capture order");
            last = f.time;
            n += 1;
        }
        assert_eq!(n, want);
    }
}

/// The caller's first packets captured before the 200 OK that announces where they go (seen
/// 110 ms late; the callee silent): kept until it comes, they are in the call's evidence too.
#[test]
fn media_before_its_sdp_is_in_the_evidence() {
    let calls: Vec<CallSpec> = (0..2)
        .map(|i| {
            let mut c = CallSpec::answered(i, T0 + i64::from(i) * 300_000_000, 1000);
            c.answer_seen_late_ms = 110;
            c.impair.callee.silent = true;
            c
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    // The caller's packet k is captured 40 + 20k ms after the answer: before a 200 OK seen
    // `late` ms after it come ceil((late - 40) / 20) of them.
    let before: u32 = calls.iter().map(|c| (c.answer_seen_late_ms - 40).div_ceil(20)).sum();
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &["--keep-pcap"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = format!("{before} media packets came before the SDP or the other party");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&said), "{said}: {}", text(&out));
    let recs = records(&dir.path().join("archive"));
    for t in &truth.calls {
        let r = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).unwrap();
        let file = r.json.with_file_name(r.value["evidence"]["file"].as_str().expect("evidence file"));
        let mut src = FileSource::open(&file).unwrap();
        let mut n = 0u64;
        while src.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, t.sip.len() as u64 + u64::from(t.caller.packets_sent), "{}", t.call_id);
    }
}
