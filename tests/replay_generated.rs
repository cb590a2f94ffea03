//! End to end on generated captures: every call's record and WAV against the generator's
//! ground truth, sample by sample, across link types, IPv4/IPv6, outcomes and impairments.

mod common;

use std::collections::HashMap;
use std::path::Path;

use callgen::{CallSpec, CallTruth, Codec, DirImpair, Hangup, Link, Outcome, Scenario, StreamTruth, Truth};
use common::{channels, records, replay, rfc3339, sha256, text};
use mixer::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
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

fn decode(codec: Codec, payload: &[u8]) -> Vec<i16> {
    let table = match codec {
        Codec::Pcmu => &ULAW_TO_LINEAR,
        Codec::Pcma => &ALAW_TO_LINEAR,
    };
    payload.iter().map(|&b| table[b as usize]).collect()
}

/// Index of the first packet actually sent (lost ones are never on the wire).
fn first_sent(spec: &DirImpair, n: u32) -> Option<u32> {
    (0..n).find(|k| !spec.loss.contains(k))
}

/// The channel a correct recorder writes for one direction: every received packet decoded
/// at its RTP timestamp's place, anchored at the capture time of the first packet.
fn expected_channel(t: &StreamTruth, imp: &DirImpair, n: u32, spp: usize, origin: i64, len: usize) -> Vec<i16> {
    let mut ch = vec![0i16; len];
    let (Some(first_ns), Some(j), Some(payloads)) = (t.first_capture_ns, first_sent(imp, n), t.payloads.as_ref())
    else {
        return ch;
    };
    let anchor = ((first_ns - origin) / 125_000) as usize;
    for k in 0..n {
        if imp.loss.contains(&k) {
            continue;
        }
        let pos = anchor + (k - j) as usize * spp;
        let pcm = decode(t.codec, &payloads[k as usize]);
        ch[pos..pos + pcm.len()].copy_from_slice(&pcm);
    }
    ch
}

/// A direction with network jitter: the recorder may slip its clock baseline by 1 ms per
/// second toward the least delayed packets, so positions are checked within that slack: every
/// received packet's samples (but the last 8, which a slip may overwrite) appear exactly, in
/// order, near their place; lost packets leave silence.
#[allow(clippy::too_many_arguments)]
fn check_jittered_channel(
    ctx: &str,
    name: &str,
    got: &[i16],
    t: &StreamTruth,
    imp: &DirImpair,
    n: u32,
    spp: usize,
    origin: i64,
) {
    let (Some(first_ns), Some(j), Some(payloads)) = (t.first_capture_ns, first_sent(imp, n), t.payloads.as_ref())
    else {
        return;
    };
    let anchor = (first_ns - origin) / 125_000;
    let slack = (imp.jitter_ms * 2.0 * 8.0) as i64 + 8 * (i64::from(n) / 50 + 1);
    let mut last_end = 0usize;
    for k in 0..n {
        if imp.loss.contains(&k) {
            continue;
        }
        let pcm = decode(t.codec, &payloads[k as usize][..spp - 8]);
        let want = anchor + i64::from(k - j) * spp as i64;
        let lo = (want - slack).max(last_end as i64) as usize;
        let hi = ((want + slack) as usize).min(got.len() - pcm.len());
        let at = (lo..=hi).find(|&p| got[p..p + pcm.len()] == pcm[..]);
        let Some(at) = at else { panic!("{ctx}: {name} packet {k} not found near frame {want}") };
        if k > 0 && imp.loss.contains(&(k - 1)) {
            // The lost packet's place is silence (allowing a slip at either edge).
            assert!(got[last_end + 8..at.saturating_sub(8)].iter().all(|&x| x == 0), "{ctx}: {name} gap before {k}");
        }
        last_end = at + pcm.len();
    }
}

fn expected_frames(t: &StreamTruth, imp: &DirImpair, n: u32, spp: usize, origin: i64) -> usize {
    let (Some(first_ns), Some(j)) = (t.first_capture_ns, first_sent(imp, n)) else { return 0 };
    let last = (0..n).rev().find(|k| !imp.loss.contains(k)).unwrap();
    ((first_ns - origin) / 125_000) as usize + (last - j + 1) as usize * spp
}

fn check_call(spec: &CallSpec, truth: &CallTruth, rec: &Value, wav: Option<&Path>, what: &str) {
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

    // Audio: exact samples on both channels.
    let answered = truth.answer_ns.is_some() && (truth.caller.packets_sent + truth.callee.packets_sent) > 0;
    assert_eq!(wav.is_some(), answered, "{ctx}: audio presence");
    let Some(wav) = wav else { return };
    let n = spec.packets_per_direction();
    let spp = (spec.ptime_ms * 8) as usize;
    let origin = [truth.caller.first_capture_ns, truth.callee.first_capture_ns].into_iter().flatten().min().unwrap();
    let frames = expected_frames(&truth.caller, &spec.impair.caller, n, spp, origin).max(expected_frames(
        &truth.callee,
        &spec.impair.callee,
        n,
        spp,
        origin,
    ));
    let jittered = spec.impair.caller.jitter_ms > 0.0 || spec.impair.callee.jitter_ms > 0.0;
    // Clock slips of 1 ms per second of a jittered direction may lengthen or shorten it.
    let slips = if jittered { 8 * (n as usize / 50 + 1) } else { 0 };
    let got_frames = rec["audio"]["frames"].as_u64().unwrap() as usize;
    assert!(got_frames.abs_diff(frames) <= slips, "{ctx}: {got_frames} frames, want {frames} (± {slips})");
    assert_eq!(rec["audio"]["media_start"], rfc3339(origin), "{ctx}");
    let [c0, c1] = channels(wav);
    assert_eq!(c0.len(), got_frames, "{ctx}");
    let frames = got_frames.min(frames);
    for (name, got, t, imp) in
        [("caller", &c0, &truth.caller, &spec.impair.caller), ("callee", &c1, &truth.callee, &spec.impair.callee)]
    {
        if imp.jitter_ms > 0.0 {
            check_jittered_channel(&ctx, name, got, t, imp, n, spp, origin);
            continue;
        }
        let mut want = expected_channel(t, imp, n, spp, origin, frames + slips);
        want.truncate(frames);
        if let Some(i) = (0..frames).find(|&i| got[i] != want[i]) {
            panic!("{ctx}: {name} channel differs first at frame {i}: got {} want {}", got[i], want[i]);
        }
    }
    assert_eq!(rec["audio"]["sha256"], sha256(wav), "{ctx}: recorded hash matches the archived file");
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
    for (spec, t) in scenario.calls.iter().zip(&truth.calls) {
        let rec = by_id.get(&t.call_id).unwrap_or_else(|| panic!("{what}: no record for {}", t.call_id));
        check_call(spec, t, &rec.value, rec.wav.as_deref(), what);
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
