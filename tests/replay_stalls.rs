//! Late is not lost: packets held up and then released in a burst are placed by their RTP
//! timestamps like any others.
//!
//! * A stall of the whole capture (a busy mirror port, a paused capture) of 0.5, 1.5, 3 or 10 s
//!   holds both parties alike: every sample is kept, bit-exact, and the record is complete.
//! * A stall of one party only (its network path holds its packets while the other party's keep
//!   coming) is kept up to the hold bound (700 ms); beyond it the samples that arrived after
//!   their place was written are missing, and the record says exactly which: the checker
//!   rebuilds both channels from the record, and the missing samples are exactly those the
//!   record lists as late, in one gap named with its time and length.

mod common;
mod gen_check;

use callgen::{CallSpec, CaptureStall, Delay, Hangup, Outcome, Scenario, Stall};
use gen_check::{check_audio_rtp, run};

const T0: i64 = 1_735_689_600 * 1_000_000_000;
const S: i64 = 1_000_000_000;

fn call(i: u32, start_s: i64) -> CallSpec {
    let mut c = CallSpec::answered(i, T0 + start_s * S, 30_000);
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    c.impair.caller.delay = Some(Delay::Uniform { max_ms: 10.0 });
    c.impair.callee.delay = Some(Delay::Uniform { max_ms: 10.0 });
    c
}

#[test]
fn a_stall_of_the_whole_capture_keeps_every_sample() {
    for stall_ms in [500, 1500, 3000, 10_000] {
        let c = call(0, 0);
        // Ten seconds into the talk: the answer is at T0 + 1 s.
        let stall = CaptureStall { at_ns: T0 + 11 * S, duration_ms: stall_ms };
        let scenario = Scenario { calls: vec![c], capture_stalls: vec![stall], seed: 5, ..Scenario::default() };
        let r = run(&scenario, &[]);
        let ctx = format!("capture stall of {stall_ms} ms");
        let rec = r.record(&r.truth.calls[0].call_id);
        let p = check_audio_rtp(&ctx, &scenario, 0, rec, 11.0);
        assert_eq!((p.slips, p.late_samples), (0, 0), "{ctx}");
        assert_eq!(rec.value["capture_complete"], true, "{ctx}: {}", rec.value["incomplete_reasons"]);
        for s in rec.value["streams"].as_array().unwrap() {
            assert_eq!((s["lost"].as_u64(), s["late"].as_u64()), (Some(0), Some(0)), "{ctx}: {s}");
        }
    }
}

#[test]
fn a_stall_of_one_party_is_kept_up_to_the_hold_and_named_beyond_it() {
    for stall_ms in [500, 1500, 3000, 10_000] {
        let mut c = call(0, 0);
        c.impair.callee.stalls = vec![Stall { at_ms: 10_000, duration_ms: stall_ms }];
        let scenario = Scenario { calls: vec![c], seed: 6, ..Scenario::default() };
        let r = run(&scenario, &[]);
        let ctx = format!("callee stalled {stall_ms} ms");
        let rec = r.record(&r.truth.calls[0].call_id);
        let p = check_audio_rtp(&ctx, &scenario, 0, rec, 11.0);
        assert_eq!(p.slips, 0, "{ctx}");
        let streams = rec.value["streams"].as_array().unwrap();
        let callee = streams.iter().find(|s| s["side"] == "callee").unwrap();
        let caller = streams.iter().find(|s| s["side"] == "caller").unwrap();
        assert_eq!(caller["placement"]["late_samples"], 0, "{ctx}: the caller went on untouched");
        if stall_ms <= 500 {
            assert_eq!(p.late_samples, 0, "{ctx}: held in the ring");
            assert_eq!(rec.value["capture_complete"], true, "{ctx}: {}", rec.value["incomplete_reasons"]);
            continue;
        }
        // Beyond the hold: what came after its place was written is missing, all of it named.
        let late = p.late_samples;
        assert!(late > 0 && late <= i64::from(stall_ms) * 8, "{ctx}: {late} samples late");
        // The hold (700 ms) plus what was settled but not yet written (a write chunk).
        assert!(late >= (i64::from(stall_ms) - 1000) * 8, "{ctx}: all but the last second or less: {late}");
        let gaps: Vec<&serde_json::Value> =
            callee["placement"]["gaps"].as_array().unwrap().iter().filter(|g| g["cause"] == "late").collect();
        assert_eq!(gaps.len(), 1, "{ctx}: one gap: {gaps:?}");
        assert_eq!(gaps[0]["ms"].as_f64().unwrap() * 8.0, late as f64, "{ctx}");
        assert_eq!(callee["lost"], 0, "{ctx}: nothing was lost in the network");
        assert!(callee["late"].as_u64().unwrap() > 0);
        assert_eq!(rec.value["capture_complete"], false, "{ctx}");
        let reasons = rec.value["incomplete_reasons"].as_array().unwrap();
        let at = format!("{:.3} s", gaps[0]["offset_s"].as_f64().unwrap());
        assert!(
            reasons.iter().any(|r| {
                let r = r.as_str().unwrap();
                r.starts_with("the callee's audio at ") && r.contains(&at) && r.contains("is missing")
            }),
            "{ctx}: {reasons:?}"
        );
    }
}
