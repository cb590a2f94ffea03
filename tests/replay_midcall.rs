//! End to end on generated captures of what happens during a call: hold and resume by
//! re-INVITE, media moved to a new port, an SSRC change and a sequence restart, RFC 4733 DTMF,
//! and early media before the answer. Records and both channels of every recording are
//! checked against the generator's ground truth.

mod common;
mod gen_check;

use callgen::{CallSpec, DtmfDigit, EarlyMedia, Hangup, MidCall, Outcome, Party, Scenario, StreamChange};
use common::rfc3339;
use gen_check::{check_all, origin, run};
use serde_json::{Value, json};

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const MS: i64 = 1_000_000;

#[test]
fn hold_and_resume_leave_silence_in_place() {
    let mut resumed = CallSpec::answered(0, T0, 4000);
    resumed.midcall = vec![MidCall::Hold { by: Party::Caller, at_ms: 1000, resume_ms: Some(2200) }];
    let mut never = CallSpec::answered(1, T0 + 300 * MS, 3000);
    never.midcall = vec![MidCall::Hold { by: Party::Callee, at_ms: 1500, resume_ms: None }];
    never.outcome = Outcome::Answered { hangup: Hangup::Callee };
    let scenario = Scenario { calls: vec![resumed, never], seed: 3, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "hold");
    // Where the silence is, from the truth, within 2 ms (16 frames) at each edge: the held
    // party's channel is silent in between and carries its tone just outside.
    for (i, t) in r.truth.calls.iter().enumerate() {
        let h = t.holds[0];
        let rec = r.record(&t.call_id);
        let o = origin(&scenario, i).unwrap();
        let [c0, c1] = common::channels(rec.wav.as_deref().unwrap());
        let held = if h.held == "callee" { &c1 } else { &c0 };
        let frame = |ns: i64| ((ns - o) / 125_000) as usize;
        let from = frame(h.silent_from_ns.unwrap());
        let until = h.silent_until_ns.map_or(held.len(), frame);
        assert!(held[from + 16..until.saturating_sub(16)].iter().all(|&x| x == 0), "{}: silent on hold", t.call_id);
        assert!(held[from - 80..from - 16].iter().any(|&x| x != 0), "{}: tone before the hold", t.call_id);
        if until < held.len() {
            assert!(held[until + 16..until + 80].iter().any(|&x| x != 0), "{}: tone after the resume", t.call_id);
        }
        // The holder's channel goes on all along.
        let holder = if h.held == "callee" { &c0 } else { &c1 };
        let holder_start =
            frame(if h.by == "caller" { t.caller.first_capture_ns } else { t.callee.first_capture_ns }.unwrap());
        let holder_end =
            frame(if h.by == "caller" { t.caller.last_capture_ns } else { t.callee.last_capture_ns }.unwrap());
        assert!(holder[holder_start..holder_end].chunks(160).all(|c| c.iter().any(|&x| x != 0)), "{}", t.call_id);
    }
}

#[test]
fn media_moved_to_new_ports_continues_on_the_same_timeline() {
    let mut c = CallSpec::answered(0, T0, 4000);
    c.midcall = vec![
        MidCall::MoveMedia { party: Party::Caller, at_ms: 1500, rtp_port: 12_000 },
        MidCall::MoveMedia { party: Party::Callee, at_ms: 2500, rtp_port: 32_000 },
    ];
    let mut v6 = CallSpec::answered(1, T0 + 200 * MS, 3000).into_ipv6();
    v6.midcall = vec![MidCall::MoveMedia { party: Party::Callee, at_ms: 1000, rtp_port: 33_000 }];
    let scenario = Scenario { calls: vec![c, v6], seed: 4, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "media move");
    // One record per call; the moves show as new streams (three per side for the first call:
    // before, after the caller's move, after the callee's).
    let streams = r.record(&r.truth.calls[0].call_id).value["streams"].as_array().unwrap().len();
    assert_eq!(streams, 6);
}

#[test]
fn new_ssrc_mid_stream_is_a_new_stream_in_place() {
    let mut c = CallSpec::answered(0, T0, 4000);
    // After a transfer the callee's audio comes from a new source with its own numbering.
    c.stream_changes =
        vec![StreamChange { party: Party::Callee, at_packet: 100, ssrc: 0x5eed_0001, seq: 40_000, ts: 123_456 }];
    let scenario = Scenario::new(vec![c.clone()]);
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "SSRC change");
    let rec = &r.record(&c.call_id).value;
    for s in rec["streams"].as_array().unwrap() {
        assert_eq!((s["lost"].as_u64(), s["seq_restarts"].as_u64()), (Some(0), Some(0)), "{s}");
    }
    let callee: Vec<&Value> = rec["streams"].as_array().unwrap().iter().filter(|s| s["side"] == "callee").collect();
    assert_eq!(callee.len(), 2);
    assert_eq!(callee[1]["ssrc"], "0x5eed0001");
    assert_eq!(callee[1]["first"], rfc3339(r.truth.calls[0].callee.first_capture_ns.unwrap() + 100 * 20 * MS));
}

#[test]
fn sequence_restart_with_the_same_ssrc_is_counted_and_in_place() {
    let mut c = CallSpec::answered(0, T0, 4000);
    // Same SSRC, numbering restarted far away (beyond RFC 3550's MAX_DROPOUT) and the
    // timestamp jumped 5 s ahead.
    let ts = c.caller_ts0.wrapping_add(100 * 160 + 40_000);
    c.stream_changes =
        vec![StreamChange { party: Party::Caller, at_packet: 100, ssrc: c.caller_ssrc, seq: 50_000, ts }];
    let scenario = Scenario::new(vec![c.clone()]);
    let r = run(&scenario, &[]);
    let rec = &r.record(&c.call_id).value;
    let caller: Vec<&Value> = rec["streams"].as_array().unwrap().iter().filter(|s| s["side"] == "caller").collect();
    assert_eq!(caller.len(), 1);
    assert_eq!(caller[0]["seq_restarts"], 1, "{}", caller[0]);
    assert_eq!(caller[0]["lost"], 0, "{}", caller[0]);
    assert_eq!(caller[0]["late"], 0, "{}", caller[0]);
    check_all(&scenario, &r, "sequence restart");
}

#[test]
fn rfc4733_digits_are_listed_with_their_times() {
    let mut c = CallSpec::answered(0, T0, 4000);
    c.dtmf = vec![
        DtmfDigit { party: Party::Caller, event: 1, at_packet: 40, packets: 4 },
        DtmfDigit { party: Party::Caller, event: 5, at_packet: 80, packets: 6 },
        DtmfDigit { party: Party::Caller, event: 11, at_packet: 120, packets: 3 },
        DtmfDigit { party: Party::Callee, event: 10, at_packet: 60, packets: 5 },
    ];
    let scenario = Scenario::new(vec![c.clone()]);
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "DTMF");
    let t = &r.truth.calls[0];
    let mut want: Vec<&callgen::DtmfTruth> = t.dtmf.iter().collect();
    want.sort_by_key(|d| d.start_ns);
    let want: Vec<Value> = want
        .iter()
        .map(|d| {
            json!({
                "digit": d.digit,
                "side": d.side,
                "at": rfc3339(d.start_ns.unwrap()),
                "duration_ms": d.duration_ms,
                "source": "rfc4733",
            })
        })
        .collect();
    assert_eq!(want.len(), 4);
    assert_eq!(r.record(&c.call_id).value["dtmf"], Value::Array(want));
}

#[test]
fn early_media_is_recorded_and_the_answer_is_the_200() {
    let mut c = CallSpec::answered(0, T0, 3000);
    c.ring_ms = 3000;
    c.early_media = Some(EarlyMedia { tone_hz: 425.0 });
    let mut v6 = CallSpec::answered(1, T0 + 100 * MS, 2000).into_ipv6();
    v6.early_media = Some(EarlyMedia { tone_hz: 440.0 });
    v6.codec = callgen::Codec::Pcma;
    let scenario = Scenario { calls: vec![c, v6], seed: 9, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "early media");
    for t in &r.truth.calls {
        let rec = &r.record(&t.call_id).value;
        let e = t.early_media.unwrap();
        let progress = t.sip.iter().find(|s| s.status == Some(183)).unwrap();
        assert_eq!(rec["ringing"], rfc3339(progress.capture_ns), "the 183 is the ringing time");
        assert_eq!(rec["audio"]["media_start"], rfc3339(e.first_capture_ns), "the recording starts with the ringback");
        let callee: Vec<&Value> = rec["streams"].as_array().unwrap().iter().filter(|s| s["side"] == "callee").collect();
        assert_eq!(callee.len(), 1);
        assert_eq!(callee[0]["packets"], u64::from(t.callee.packets_sent));
        assert_eq!(callee[0]["lost"], 0);
        assert!(e.packets >= 40, "{}", e.packets);
    }
}

#[test]
fn everything_in_one_call() {
    let mut c = CallSpec::answered(0, T0, 6000);
    c.early_media = Some(EarlyMedia { tone_hz: 425.0 });
    c.midcall = vec![
        MidCall::Hold { by: Party::Callee, at_ms: 1000, resume_ms: Some(2000) },
        MidCall::MoveMedia { party: Party::Caller, at_ms: 3000, rtp_port: 14_000 },
        MidCall::Hold { by: Party::Caller, at_ms: 4000, resume_ms: Some(4500) },
    ];
    c.dtmf = vec![DtmfDigit { party: Party::Caller, event: 9, at_packet: 20, packets: 5 }];
    c.stream_changes = vec![StreamChange { party: Party::Callee, at_packet: 160, ssrc: 0x0707_0707, seq: 7, ts: 7 }];
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    let scenario = Scenario::new(vec![c]);
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "everything");
    assert_eq!(r.recs[0].value["dtmf"].as_array().unwrap().len(), 1);
}

#[test]
fn timestamps_reset_without_a_new_ssrc_or_sequence_lose_nothing() {
    let mut c = CallSpec::answered(0, T0, 6000);
    // The caller's clock restarts 40 s lower at packet 150; SSRC and sequence go on.
    let seq = c.caller_seq0.wrapping_add(150);
    let ts = c.caller_ts0.wrapping_add(150 * 160).wrapping_sub(320_000);
    c.stream_changes = vec![StreamChange { party: Party::Caller, at_packet: 150, ssrc: c.caller_ssrc, seq, ts }];
    let scenario = Scenario::new(vec![c.clone()]);
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "timestamp reset");
    let rec = &r.record(&c.call_id).value;
    let caller = rec["streams"].as_array().unwrap().iter().find(|s| s["side"] == "caller").unwrap();
    let reasons: Vec<&str> =
        caller["placement"]["anchors"].as_array().unwrap().iter().map(|a| a["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, vec!["start", "timestamps_back"]);
    assert_eq!((caller["late"].as_u64(), caller["lost"].as_u64()), (Some(0), Some(0)));
}
