//! What comes with a call besides its audio: an INVITE challenged and re-sent late (RFC 3261
//! section 22) is one call with its challenge listed, and non-audio media lines (video, T.38,
//! BFCP) are named in the record with their packet counts.

mod common;
mod gen_check;

use callgen::{AuthChallenge, CallSpec, ExtraKind, ExtraMedia, Scenario};
use common::rfc3339;
use gen_check::{check_all, run};
use serde_json::json;

const T0: i64 = 1_735_689_600 * 1_000_000_000;
const MS: i64 = 1_000_000;

#[test]
fn an_invite_re_sent_long_after_its_challenge_is_one_call() {
    let mut calls = Vec::new();
    for (i, (code, retry_ms)) in [(407, 17_000), (407, 32_000), (401, 51_000)].into_iter().enumerate() {
        let mut c = CallSpec::answered(i as u32, T0 + i as i64 * 100 * MS, 3000);
        c.auth = Some(AuthChallenge { code, retry_ms });
        calls.push(c);
    }
    let scenario = Scenario { calls, seed: 8, ..Scenario::default() };
    let r = run(&scenario, &[]);
    // One record per call, each complete with its audio exactly in place.
    check_all(&scenario, &r, "late auth");
    for (c, t) in scenario.calls.iter().zip(&r.truth.calls) {
        let rec = &r.record(&t.call_id).value;
        let auth = c.auth.unwrap();
        let challenge = t.sip.iter().find(|s| s.status == Some(auth.code)).unwrap();
        let retry = t.sip.iter().filter(|s| s.method == "INVITE" && s.status.is_none()).nth(1).unwrap();
        assert_eq!(
            rec["sip"]["challenges"],
            json!([{ "code": auth.code, "at": rfc3339(challenge.capture_ns), "retried_at": rfc3339(retry.capture_ns) }]),
            "{}",
            t.call_id
        );
        assert_eq!(rec["sip"]["invites"], 2);
        assert_eq!(rec["start"], rfc3339(t.start_ns), "the call starts with the challenged INVITE");
    }
}

#[test]
fn video_fax_and_bfcp_lines_are_named_with_their_packets() {
    let mut c = CallSpec::answered(0, T0, 4000);
    c.extra_media = vec![
        ExtraMedia { kind: ExtraKind::Video, caller_port: 11_000, callee_port: 31_000, packets: 120 },
        ExtraMedia { kind: ExtraKind::T38, caller_port: 11_002, callee_port: 31_002, packets: 7 },
        ExtraMedia { kind: ExtraKind::Bfcp, caller_port: 11_004, callee_port: 31_004, packets: 3 },
    ];
    // A video-only call (its audio is silent both ways) is not "no RTP was seen".
    let mut video_only = CallSpec::answered(1, T0 + 100 * MS, 4000);
    video_only.impair.caller.silent = true;
    video_only.impair.callee.silent = true;
    video_only.extra_media =
        vec![ExtraMedia { kind: ExtraKind::Video, caller_port: 12_000, callee_port: 32_000, packets: 50 }];
    let scenario = Scenario { calls: vec![c, video_only], seed: 9, ..Scenario::default() };
    let r = run(&scenario, &[]);
    let rec = &r.record(&r.truth.calls[0].call_id).value;
    let lines: Vec<(String, String, String, u64, u64)> = rec["other_media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let f = |k: &str| o[k].as_str().unwrap().to_owned();
            (
                f("announced_by"),
                f("kind"),
                f("format"),
                o["caller_packets"].as_u64().unwrap(),
                o["callee_packets"].as_u64().unwrap(),
            )
        })
        .collect();
    // A party's line (where it receives) counts what the other party sends to it.
    let line = |by: &str, kind: &str, format: &str, n: u64| {
        let (from_caller, from_callee) = if by == "caller" { (0, n) } else { (n, 0) };
        (by.to_owned(), kind.to_owned(), format.to_owned(), from_caller, from_callee)
    };
    let want = vec![
        line("caller", "video", "H264", 120),
        line("caller", "image", "t38", 7),
        line("caller", "application", "*", 3),
        line("callee", "video", "H264", 120),
        line("callee", "image", "t38", 7),
        line("callee", "application", "*", 3),
    ];
    assert_eq!(lines, want);
    gen_check::check_audio("video call", &scenario, 0, r.record(&r.truth.calls[0].call_id));
    let notes = rec["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n.as_str().unwrap().contains("carried video media")), "{notes:?}");
    let rec = &r.record(&r.truth.calls[1].call_id).value;
    let notes: Vec<&str> = rec["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(!notes.contains(&"no RTP was seen for this call"), "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("carried video media (RTP/AVP H264, 50 packets from the caller, 50 from the callee)")),
        "{notes:?}"
    );
}
