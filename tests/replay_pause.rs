//! PCI DSS pause: a party keys the pause code, reads out a card number, keys the resume code;
//! between the start of the pause code's last key and the end of the resume code's last key
//! both channels are silence, sample-exact against the generator, and the record lists the
//! span with what paused and resumed it. Everything else is the exact audio.

mod common;
mod gen_check;

use callgen::{CallSpec, DtmfDigit, Hangup, Outcome, Party, Scenario, SipInfo};
use common::channels;
use gen_check::{assert_channel, expected_channel, expected_frames, origin, run, sent};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn key(party: Party, event: u8, at_packet: u32, packets: u32) -> DtmfDigit {
    DtmfDigit { party, event, at_packet, packets }
}

/// Position (8 kHz frames from the recording's start) where `party`'s key at `at_packet`
/// starts: its first event packet's capture time (the captures have no jitter).
fn key_start(scenario: &Scenario, call: usize, party: Party, at_packet: u32, origin: i64) -> usize {
    let s = sent(scenario, call, party).into_iter().find(|s| s.pt == 101 && s.index == at_packet).unwrap();
    ((s.capture_ns - origin) / 125_000) as usize
}

/// Both channels of call `i` are the generator's audio exactly, silence over `span` (which
/// had audio to remove).
fn assert_audio(ctx: &str, scenario: &Scenario, i: usize, rec: &common::Rec, span: Option<(usize, usize)>) {
    let origin = origin(scenario, i).unwrap();
    let frames = expected_frames(scenario, i, origin);
    let got = channels(rec.wav.as_deref().unwrap());
    for (k, (name, party)) in [("caller", Party::Caller), ("callee", Party::Callee)].into_iter().enumerate() {
        let mut want = expected_channel(scenario, i, party, origin, frames);
        if let Some((from, to)) = span {
            assert!(want[from..to].iter().any(|&s| s != 0), "{ctx}: the span had audio to remove");
            want[from..to].fill(0);
        }
        assert_channel(ctx, name, &got[k], &want, origin);
    }
}

#[test]
fn dtmf_codes_pause_and_resume_both_channels_sample_exact() {
    // 0: paused by the caller ("*1"), card digits, resumed by the callee ("*2"); a "1" alone
    // before does nothing. 1: paused and never resumed. 2: only the resume code: nothing.
    let mut a = CallSpec::answered(0, T0, 20_000);
    a.dtmf = vec![
        key(Party::Caller, 1, 50, 3),
        key(Party::Caller, 10, 100, 4),
        key(Party::Caller, 1, 110, 4),
        key(Party::Caller, 4, 200, 3),
        key(Party::Caller, 5, 210, 3),
        key(Party::Callee, 10, 500, 4),
        key(Party::Callee, 2, 510, 6),
    ];
    let mut b = CallSpec::answered(1, T0 + 1_000_000_000, 10_000);
    b.dtmf = vec![key(Party::Callee, 10, 100, 4), key(Party::Callee, 1, 110, 4)];
    let mut c = CallSpec::answered(2, T0 + 2_000_000_000, 10_000);
    c.dtmf = vec![key(Party::Caller, 10, 100, 4), key(Party::Caller, 2, 110, 4)];
    for s in [&mut a, &mut b, &mut c] {
        s.outcome = Outcome::Answered { hangup: Hangup::Caller };
    }
    let scenario = Scenario { calls: vec![a, b, c], seed: 3, ..Scenario::default() };
    let r = run(&scenario, &["--pause-dtmf", "*1", "--resume-dtmf", "*2"]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = r.record(&t.call_id);
        let origin = origin(&scenario, i).unwrap();
        let frames = expected_frames(&scenario, i, origin);
        let span = match i {
            0 => Some((
                key_start(&scenario, i, Party::Caller, 110, origin),
                key_start(&scenario, i, Party::Callee, 510, origin) + 6 * 160,
            )),
            1 => Some((key_start(&scenario, i, Party::Callee, 110, origin), frames)),
            _ => None,
        };
        assert_audio(&ctx, &scenario, i, rec, span);
        let pauses = rec.value["pauses"].as_array().unwrap();
        match span {
            None => assert!(pauses.is_empty(), "{ctx}: {pauses:?}"),
            Some((from, to)) => {
                assert_eq!(pauses.len(), 1, "{ctx}: {pauses:?}");
                let p = &pauses[0];
                assert_eq!(p["start_s"].as_f64().unwrap(), from as f64 / 8000.0, "{ctx}");
                assert_eq!(p["missed_s"], 0.0, "{ctx}");
                if i == 0 {
                    assert_eq!(p["end_s"].as_f64().unwrap(), to as f64 / 8000.0, "{ctx}");
                    assert_eq!(p["trigger"], "dtmf *1 (caller)");
                    assert_eq!(p["resumed_by"], "dtmf *2 (callee)");
                } else {
                    assert!(p["end_s"].is_null(), "{ctx}: never resumed");
                    assert_eq!(p["trigger"], "dtmf *1 (callee)");
                }
            }
        }
        // Keys pressed while paused (the card number, from the pause code's last key up to
        // the resume code's last key) are counted, never listed.
        let listed: Vec<&str> =
            rec.value["dtmf"].as_array().unwrap().iter().map(|d| d["digit"].as_str().unwrap()).collect();
        let (want, withheld): (&[&str], u64) = match i {
            0 => (&["1", "*", "2"], 4),
            1 => (&["*"], 1),
            _ => (&["*", "2"], 0),
        };
        assert_eq!(listed, want, "{ctx}");
        if span.is_some() {
            assert_eq!(pauses[0]["dtmf_withheld"], withheld, "{ctx}");
        }
    }
    // Without codes configured nothing is paused.
    let plain = run(&scenario, &[]);
    for (i, t) in plain.truth.calls.iter().enumerate() {
        let rec = plain.record(&t.call_id);
        assert!(rec.value["pauses"].as_array().unwrap().is_empty());
        gen_check::check_audio(&format!("unpaused call {i}"), &scenario, i, rec);
    }
}

fn info(by: Party, at_ms: u32, header: Option<&str>, dtmf: Option<(char, u32)>) -> SipInfo {
    SipInfo { by, at_ms, header: header.map(|v| ("X-Record-Pause".to_string(), v.to_string())), dtmf }
}

/// Position (8 kHz frames from the recording's start) of the capture time of the call's
/// `n`-th INFO request.
fn info_start(truth: &callgen::CallTruth, n: usize, origin: i64) -> usize {
    let t = truth.sip.iter().filter(|m| m.method == "INFO" && m.status.is_none()).nth(n).unwrap();
    ((t.capture_ns - origin) / 125_000) as usize
}

#[test]
fn a_sip_header_and_dtmf_in_sip_info_pause_and_resume_sample_exact() {
    // 0: the caller's INFO says "X-Record-Pause: on", the callee's says "off" (its "off"
    //    before, while not paused, and a second "on" while paused change nothing).
    // 1: the pause code *1 and the resume code *2 keyed as SIP INFO DTMF (250 ms keys).
    // 2: a value that is neither: counted, nothing paused.
    let mut a = CallSpec::answered(0, T0, 8_000);
    a.infos = vec![
        info(Party::Callee, 500, Some("off"), None),
        info(Party::Caller, 2_000, Some("on"), None),
        info(Party::Callee, 3_000, Some("ON"), None),
        info(Party::Callee, 5_000, Some("off"), None),
    ];
    let mut b = CallSpec::answered(1, T0 + 1_000_000_000, 8_000);
    b.infos = vec![
        info(Party::Caller, 1_000, None, Some(('*', 250))),
        info(Party::Caller, 1_300, None, Some(('1', 250))),
        info(Party::Caller, 2_000, None, Some(('4', 250))),
        info(Party::Callee, 4_000, None, Some(('*', 250))),
        info(Party::Callee, 4_300, None, Some(('2', 250))),
    ];
    let mut c = CallSpec::answered(2, T0 + 2_000_000_000, 4_000);
    c.infos = vec![info(Party::Caller, 1_000, Some("maybe"), None)];
    let scenario = Scenario { calls: vec![a, b, c], seed: 5, ..Scenario::default() };
    let r = run(&scenario, &["--pause-header", "X-Record-Pause", "--pause-dtmf", "*1", "--resume-dtmf", "*2"]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = r.record(&t.call_id);
        let origin = origin(&scenario, i).unwrap();
        let span = match i {
            0 => Some((info_start(t, 1, origin), info_start(t, 3, origin))),
            1 => Some((info_start(t, 1, origin), info_start(t, 4, origin) + 250 * 8)),
            _ => None,
        };
        assert_audio(&ctx, &scenario, i, rec, span);
        let pauses = rec.value["pauses"].as_array().unwrap();
        let Some((from, to)) = span else {
            assert!(pauses.is_empty(), "{ctx}: {pauses:?}");
            continue;
        };
        assert_eq!(pauses.len(), 1, "{ctx}: {pauses:?}");
        let p = &pauses[0];
        assert_eq!(p["start_s"].as_f64().unwrap(), from as f64 / 8000.0, "{ctx}");
        assert_eq!(p["end_s"].as_f64().unwrap(), to as f64 / 8000.0, "{ctx}");
        assert_eq!(p["missed_s"], 0.0, "{ctx}");
        let (trigger, resumed_by) = match i {
            0 => ("sip X-Record-Pause: pause (INFO from caller)", "sip X-Record-Pause: resume (INFO from callee)"),
            _ => ("dtmf *1 (caller)", "dtmf *2 (callee)"),
        };
        assert_eq!((p["trigger"].as_str(), p["resumed_by"].as_str()), (Some(trigger), Some(resumed_by)), "{ctx}");
        if i == 1 {
            // The card digit and the resume code's "*" were keyed while paused: counted only.
            let listed: Vec<(&str, &str)> = rec.value["dtmf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["digit"].as_str().unwrap(), d["source"].as_str().unwrap()))
                .collect();
            assert_eq!(listed, [("*", "sip_info"), ("2", "sip_info")], "{ctx}");
            assert_eq!(p["dtmf_withheld"], 3, "{ctx}");
        }
    }
    let summary = common::text(&r.out);
    assert!(summary.contains("warning: 1 SIP requests carried the pause header with a value"), "{summary}");
}
