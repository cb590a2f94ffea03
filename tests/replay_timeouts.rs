//! End to end: calls that never carry media end by their own timers, in capture time. An
//! answered call without RTP (while another call talks for two minutes), an answer
//! retransmitted and never acknowledged, an INVITE that gets no response at all, and one that
//! rings without a final response: each ends when and why a correct recorder says, and the
//! talking call beside them is recorded sample by sample.

mod common;
mod gen_check;

use callgen::{CallSpec, Hangup, Outcome, Scenario};
use common::rfc3339;
use gen_check::run;

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const S: i64 = 1_000_000_000;

#[test]
fn calls_without_media_end_by_their_own_timers() {
    // Call 0 talks for 120 s: media is on this capture all along.
    let talker = CallSpec::answered(0, T0, 120_000);
    // Call 1: answered and acknowledged, no RTP either way, no BYE.
    let mut silent = CallSpec::answered(1, T0 + S, 1000);
    silent.impair.caller.silent = true;
    silent.impair.callee.silent = true;
    silent.outcome = Outcome::Answered { hangup: Hangup::None };
    // Call 2: the 200 OK is retransmitted for 32 s and never acknowledged.
    let mut no_ack = CallSpec::answered(2, T0 + 2 * S, 1000);
    no_ack.outcome = Outcome::NoAck;
    // Call 3: the INVITE is retransmitted until timer B and nobody answers at all.
    let mut no_response = CallSpec::answered(3, T0 + 3 * S, 1000);
    no_response.outcome = Outcome::NoResponse;
    // Call 4: rings (100, 180) and gets no final response within the capture.
    let mut ringing = CallSpec::answered(4, T0 + 4 * S, 1000);
    ringing.outcome = Outcome::NoAnswer;
    let scenario = Scenario::new(vec![talker, silent, no_ack, no_response, ringing]);
    let r = run(&scenario, &[]);
    assert_eq!(r.recs.len(), 5, "{}", common::text(&r.out));
    let t = &r.truth.calls;

    let talk = r.record(&t[0].call_id);
    gen_check::check_call("talker", &t[0], &talk.value);
    gen_check::check_audio("talker", &scenario, 0, talk);

    let rec = &r.record(&t[1].call_id).value;
    assert_eq!((rec["state"].as_str(), rec["end_reason"].as_str()), (Some("in_call"), Some("media_timeout")), "{rec}");
    let ack = t[1].sip.iter().find(|m| m.method == "ACK").unwrap();
    assert_eq!(rec["end"], rfc3339(ack.capture_ns), "the call's last sign of life");
    assert!(rec["audio"].is_null() && rec["streams"].as_array().unwrap().is_empty());
    assert_eq!(rec["codecs"]["caller"], "PCMU", "what the answer settled on");
    assert!(rec["notes"].to_string().contains("no RTP was seen"), "{}", rec["notes"]);
    assert_eq!(rec["capture_complete"], true, "{}", rec["incomplete_reasons"]);

    let rec = &r.record(&t[2].call_id).value;
    assert_eq!((rec["state"].as_str(), rec["end_reason"].as_str()), (Some("in_call"), Some("no_ack")), "{rec}");
    let last_ok = t[2].sip.iter().rev().find(|m| m.status == Some(200)).unwrap();
    assert_eq!(rec["end"], rfc3339(last_ok.capture_ns));
    assert_eq!(rec["answer"], rfc3339(t[2].answer_ns.unwrap()));
    assert_eq!(rec["sip"]["retransmissions"], 10);
    assert!(rec["notes"].to_string().contains("never acknowledged"), "{}", rec["notes"]);

    let rec = &r.record(&t[3].call_id).value;
    assert_eq!((rec["state"].as_str(), rec["end_reason"].as_str()), (Some("setup"), Some("setup_timeout")), "{rec}");
    assert_eq!(rec["end"], rfc3339(t[3].sip.last().unwrap().capture_ns), "the last retransmission");
    assert_eq!(rec["sip"]["messages"], 7);
    assert_eq!(rec["capture_complete"], true, "{}", rec["incomplete_reasons"]);

    // Ringing is allowed longer than this capture lasts: it is open at its end, and the record
    // does not pretend the call was up.
    let rec = &r.record(&t[4].call_id).value;
    assert_eq!((rec["state"].as_str(), rec["end_reason"].as_str()), (Some("ringing"), Some("end_of_input")), "{rec}");
    assert_eq!(
        rec["incomplete_reasons"],
        serde_json::json!(["the capture ended before the call was answered or given up"])
    );
}
