//! End to end on generated captures: every call's record and WAV against the generator's
//! ground truth, sample by sample, across link types, IPv4/IPv6, outcomes and impairments
//! (loss, duplicates, reordering, jitter: none of them may move or edit a single sample).

mod common;
mod gen_check;

use std::collections::HashMap;
use std::path::Path;

use callgen::{CallSpec, CallTruth, Codec, DirImpair, Hangup, Link, Outcome, Scenario, Truth};
use common::{Rec, records, replay, rfc3339, sha256, text};
use serde_json::Value;

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const S: i64 = 1_000_000_000;

/// One call of every outcome, plus impairments, compact headers, a non-standard SIP port and
/// sequence/timestamp wrap-around.
fn scenario(link: Link, v6: bool) -> Scenario {
    let mut calls = Vec::new();
    let mut add = |i: u32, start: i64, f: &dyn Fn(&mut CallSpec)| {
        let mut c = CallSpec::answered(i, T0 + start, 3000);
        f(&mut c);
        calls.push(if v6 { c.into_ipv6() } else { c });
    };
    add(0, 0, &|c| c.outcome = Outcome::Answered { hangup: Hangup::Callee });
    add(1, 200_000_000, &|c| {
        c.codec = Codec::Pcma;
        c.outcome = Outcome::Answered { hangup: Hangup::Caller };
    });
    add(2, 400_000_000, &|c| c.outcome = Outcome::Busy);
    add(3, 600_000_000, &|c| c.outcome = Outcome::Cancelled);
    add(4, 800_000_000, &|c| c.outcome = Outcome::NoAnswer);
    add(5, S, &|c| c.outcome = Outcome::Answered { hangup: Hangup::None });
    add(6, 1_200_000_000, &|c| c.outcome = Outcome::Rejected(403));
    add(7, 1_400_000_000, &|c| {
        c.compact_headers = true;
        c.caller_sip_port = 5080;
        c.callee_sip_port = 5080;
        c.caller_seq0 = 65_500;
        c.caller_ts0 = u32::MAX - 3000;
        c.callee_seq0 = 65_530;
        c.callee_ts0 = u32::MAX - 100;
        c.impair.caller =
            DirImpair { loss: vec![5, 6, 70], duplicate: vec![10, 11], reorder: vec![30, 90], ..DirImpair::default() };
        c.impair.callee = DirImpair { loss: vec![1], reorder: vec![40], jitter_ms: 8.0, ..DirImpair::default() };
        c.pai = Some("\"Front Desk\" <sip:+15551230000@pbx.example>".into());
    });
    add(8, 1_600_000_000, &|c| {
        c.ptime_ms = 30;
        c.impair.callee.silent = true; // one-way audio
    });
    Scenario { calls, link, keep_payloads: true, seed: 7, ..Scenario::default() }
}

fn check_call(scenario: &Scenario, index: usize, truth: &CallTruth, rec: &Value, wav: Option<&Path>, what: &str) {
    let spec = &scenario.calls[index];
    let ctx = format!("{what} call {}", truth.call_id);
    assert_eq!(rec["state"], truth.expected_state, "{ctx}");
    assert_eq!(rec["from"]["user"], truth.from_user.as_str(), "{ctx}");
    assert_eq!(rec["to"]["user"], truth.to_user.as_str(), "{ctx}");
    assert_eq!(rec["start"], rfc3339(truth.start_ns), "{ctx}");
    assert_eq!(rec["final_code"].as_u64().map(|c| c as u16), truth.final_code, "{ctx}");
    // A CANCEL is the caller ending the call too.
    let ended_by = if truth.expected_state == "cancelled" { Some("caller") } else { truth.hangup };
    assert_eq!(rec["ended_by"].as_str(), ended_by, "{ctx}");
    assert_eq!(rec["answer"].as_str().map(str::to_owned), truth.answer_ns.map(rfc3339), "{ctx}");
    if let Some(end) = truth.end_ns {
        assert_eq!(rec["end"], rfc3339(end), "{ctx}");
    }
    if spec.pai.is_some() {
        assert_eq!(rec["asserted_identity"]["user"], "+15551230000", "{ctx}");
    }

    // Streams: one per direction that sent anything.
    let streams = rec["streams"].as_array().unwrap();
    for (side, t, imp) in
        [("caller", &truth.caller, &spec.impair.caller), ("callee", &truth.callee, &spec.impair.callee)]
    {
        let s: Vec<&Value> = streams.iter().filter(|s| s["side"] == side).collect();
        if t.packets_sent == 0 {
            assert!(s.is_empty(), "{ctx} {side}: no stream expected");
            continue;
        }
        assert_eq!(s.len(), 1, "{ctx} {side}: {streams:?}");
        let s = s[0];
        assert_eq!(s["ssrc"], format!("{:#010x}", t.ssrc), "{ctx} {side}");
        assert_eq!(s["packets"], u64::from(t.packets_sent), "{ctx} {side}");
        assert_eq!(s["duplicates"], u64::from(t.duplicates), "{ctx} {side}");
        assert_eq!(s["out_of_order"], u64::from(t.reordered), "{ctx} {side}");
        // Losses at the very end of a stream cannot be seen in sequence numbers.
        let n = spec.packets_per_direction();
        let tail = (0..n).rev().take_while(|k| imp.loss.contains(k)).count() as u64;
        assert_eq!(s["lost"], u64::from(t.lost) - tail, "{ctx} {side}");
        assert_eq!(s["late"], 0, "{ctx} {side}");
        assert_eq!(s["codec"], spec.codec.encoding_name(), "{ctx} {side}");
    }

    // Audio: exact samples on both channels, each where its RTP timestamps put it.
    let answered = truth.answer_ns.is_some() && (truth.caller.packets_sent + truth.callee.packets_sent) > 0;
    assert_eq!(wav.is_some(), answered, "{ctx}: audio presence");
    let Some(wav) = wav else { return };
    assert_eq!(rec["audio"]["sha256"], sha256(wav), "{ctx}: recorded hash matches the archived file");
    let jitter = spec.impair.caller.jitter_ms.max(spec.impair.callee.jitter_ms);
    if jitter == 0.0 {
        // Without jitter the recording starts exactly with the first packet.
        let origin =
            [truth.caller.first_capture_ns, truth.callee.first_capture_ns].into_iter().flatten().min().unwrap();
        assert_eq!(rec["audio"]["media_start"], rfc3339(origin), "{ctx}");
    }
    let rec = Rec { json: Default::default(), value: rec.clone(), wav: Some(wav.to_owned()) };
    let p = gen_check::check_audio_rtp(&ctx, scenario, index, &rec, jitter + 0.2);
    assert_eq!(p.slips, 0, "{ctx}: no drift, no slip");
    // Only a call still up when the capture ended is incomplete.
    let complete = truth.expected_state != "in_call";
    assert_eq!(rec.value["capture_complete"], complete, "{ctx}: {}", rec.value["incomplete_reasons"]);
}

fn run_and_check(scenario: &Scenario, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    let truth: Truth = callgen::write_pcap(scenario, &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{what}: {}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), truth.calls.len(), "{what}: one record per call\n{}", text(&out));
    let by_id: HashMap<String, &common::Rec> =
        recs.iter().map(|r| (r.value["call_id"].as_str().unwrap().to_owned(), r)).collect();
    for (index, t) in truth.calls.iter().enumerate() {
        let rec = by_id.get(&t.call_id).unwrap_or_else(|| panic!("{what}: no record for {}", t.call_id));
        check_call(scenario, index, t, &rec.value, rec.wav.as_deref(), what);
        // The local copy is the same file.
        if let Some(wav) = &rec.wav {
            let rel = wav.strip_prefix(dir.path().join("archive")).unwrap();
            assert_eq!(sha256(&dir.path().join("data/recordings").join(rel)), sha256(wav), "{what}");
        }
    }
}

#[test]
fn every_outcome_on_every_link_type_ipv4() {
    for link in [Link::Ethernet, Link::Vlan(42), Link::QinQ(100, 200), Link::Sll, Link::Sll2, Link::RawIp] {
        run_and_check(&scenario(link, false), &format!("{link:?}/IPv4"));
    }
}

#[test]
fn every_outcome_on_every_link_type_ipv6() {
    for link in [Link::Ethernet, Link::Vlan(42), Link::QinQ(100, 200), Link::Sll, Link::Sll2, Link::RawIp] {
        run_and_check(&scenario(link, true), &format!("{link:?}/IPv6"));
    }
}

#[test]
fn nanosecond_capture_files() {
    let mut s = scenario(Link::Ethernet, false);
    s.ts_precision = callgen::TsPrecision::Nano;
    run_and_check(&s, "nanosecond pcap");
}

#[test]
fn many_concurrent_calls_each_get_their_own_audio() {
    let mut calls = callgen::spread_calls(120, 60, 4000, T0);
    for (i, c) in calls.iter_mut().enumerate() {
        if i % 3 == 1 {
            c.codec = Codec::Pcma;
        }
        if i % 4 == 2 {
            c.outcome = Outcome::Answered { hangup: Hangup::Callee };
        }
        c.impair.caller.jitter_ms = 5.0;
    }
    let s = Scenario { calls, keep_payloads: true, seed: 3, ..Scenario::default() };
    run_and_check(&s, "120 calls, 60 concurrent");
}

#[test]
fn replaying_twice_neither_duplicates_nor_corrupts_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    callgen::write_pcap(&scenario(Link::Ethernet, false), &pcap).unwrap();
    let first = replay(&[&pcap], dir.path(), &[]);
    assert!(first.status.success(), "{}", text(&first));
    let archive = dir.path().join("archive");
    let before: Vec<(String, String)> =
        common::files(&archive).into_iter().map(|f| (f.clone(), sha256(&archive.join(&f)))).collect();
    let second = replay(&[&pcap], dir.path(), &[]);
    assert!(second.status.success(), "{}", text(&second));
    let after: Vec<(String, String)> =
        common::files(&archive).into_iter().map(|f| (f.clone(), sha256(&archive.join(&f)))).collect();
    assert_eq!(before, after, "same files, same content, nothing added");
    assert!(after.iter().all(|(f, _)| !f.contains('~')));
    let local = common::files(&dir.path().join("data/recordings"));
    assert!(local.iter().all(|f| !f.contains('~')), "{local:?}");
}
