//! Placement by RTP time over long calls, sample by sample against the generator.
//!
//! * With network jitter of any shape (uniform or bursty, up to 60 ms) and no clock drift, ten
//!   minutes of both parties come out bit-exact: nothing inserted, removed or moved.
//! * With the senders' clocks drifting (±50 and ±300 ppm) under jitter, the record lists every
//!   slip (the file is rebuilt exactly from the record's anchors and slips), only the slower
//!   party is edited (silence inserted, nothing removed), and the parties stay within the
//!   documented 25 ms of their alignment at the start of the call.

mod common;
mod gen_check;

use callgen::{CallSpec, Delay, Hangup, Outcome, Scenario};
use gen_check::{check_audio_rtp, run};

const T0: i64 = 1_735_689_600 * 1_000_000_000;
const TEN_MINUTES: u32 = 600_000;

fn call(i: u32, start_s: i64) -> CallSpec {
    let mut c = CallSpec::answered(i, T0 + start_s * 1_000_000_000, TEN_MINUTES);
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    c
}

#[test]
fn lossless_ten_minute_calls_with_jitter_and_no_drift_are_bit_exact() {
    let delays = [
        Delay::Uniform { max_ms: 20.0 },
        Delay::Uniform { max_ms: 60.0 },
        Delay::Bursty { max_ms: 60.0, burst_ms: 1500, gap_ms: 4000 },
        Delay::Bursty { max_ms: 60.0, burst_ms: 5000, gap_ms: 3000 },
    ];
    let calls: Vec<CallSpec> = delays
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let mut c = call(i as u32, i as i64);
            c.impair.caller.delay = Some(d);
            c.impair.callee.delay = Some(d);
            c
        })
        .collect();
    let scenario = Scenario { calls, seed: 17, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, (t, d)) in r.truth.calls.iter().zip(&delays).enumerate() {
        let ctx = format!("{d:?}");
        let rec = r.record(&t.call_id);
        let p = check_audio_rtp(&ctx, &scenario, i, rec, 61.0);
        println!(
            "{ctx}: anchors within {:.1} ms of the senders' clocks, parties {:.1} ms apart at worst",
            p.anchor_error_ms, p.misalignment_ms
        );
        assert_eq!((p.slips, p.inserted, p.late_samples), (0, 0, 0), "{ctx}: nothing edited");
        assert_eq!(rec.value["capture_complete"], true, "{ctx}: {}", rec.value["incomplete_reasons"]);
        for s in rec.value["streams"].as_array().unwrap() {
            assert_eq!(s["placement"]["anchors"].as_array().unwrap().len(), 1, "{ctx}: one anchor per stream");
            assert_eq!(s["lost"], 0);
            assert_eq!(s["late"], 0);
        }
    }
}

#[test]
fn sender_clock_drift_is_followed_by_recorded_slips_within_the_bound() {
    let cases = [
        (300.0, -300.0, Delay::Uniform { max_ms: 20.0 }),
        (-50.0, 50.0, Delay::Bursty { max_ms: 60.0, burst_ms: 1500, gap_ms: 4000 }),
    ];
    let calls: Vec<CallSpec> = cases
        .iter()
        .enumerate()
        .map(|(i, &(caller, callee, d))| {
            let mut c = call(i as u32, i as i64);
            c.impair.caller.clock_ppm = caller;
            c.impair.callee.clock_ppm = callee;
            c.impair.caller.delay = Some(d);
            c.impair.callee.delay = Some(d);
            c
        })
        .collect();
    let scenario = Scenario { calls, seed: 23, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, (t, (caller_ppm, callee_ppm, _))) in r.truth.calls.iter().zip(&cases).enumerate() {
        let ctx = format!("caller {caller_ppm} ppm, callee {callee_ppm} ppm");
        let rec = r.record(&t.call_id);
        // Every sample where the record's anchors and slips put it: every slip is recorded.
        let p = check_audio_rtp(&ctx, &scenario, i, rec, 61.0);
        println!(
            "{ctx}: {} slips, {} samples inserted; parties {:.1} ms apart at the start, {:.1} ms at worst",
            p.slips, p.inserted, p.initial_misalignment_ms, p.misalignment_ms
        );
        let streams = rec.value["streams"].as_array().unwrap();
        let side = |name: &str| streams.iter().find(|s| s["side"] == name).unwrap();
        let (slower, faster) = if caller_ppm < callee_ppm { ("caller", "callee") } else { ("callee", "caller") };
        assert_eq!(side(faster)["placement"]["samples_inserted"], 0, "{ctx}: the faster clock sets the pace");
        for s in streams {
            assert_eq!(s["placement"]["samples_removed"], 0, "{ctx}: nothing is ever removed");
            assert_eq!(s["late"], 0, "{ctx}");
        }
        // What the relative drift adds up to over ten minutes, within two slips.
        let want = (caller_ppm - callee_ppm).abs() * 1e-6 * 600.0 * 8000.0;
        let got = side(slower)["placement"]["samples_inserted"].as_f64().unwrap();
        assert!((got - want).abs() <= 320.0, "{ctx}: {got} samples inserted, drift adds up to {want}");
        assert!(p.misalignment_ms <= p.initial_misalignment_ms + 25.0, "{ctx}: {p:?}");
        // The measured clock rates are in the record.
        for (name, ppm) in [("caller", caller_ppm), ("callee", callee_ppm)] {
            let measured = side(name)["placement"]["clock_ppm"].as_f64().unwrap();
            assert!((measured - ppm).abs() < 15.0, "{ctx}: {name} measured {measured} ppm");
        }
        // The record says the audio was edited, and where.
        assert_eq!(rec.value["capture_complete"], false, "{ctx}");
        let reasons = rec.value["incomplete_reasons"].as_array().unwrap();
        assert!(
            reasons.iter().any(|r| r.as_str().unwrap().starts_with(&format!("the {slower}'s audio was edited"))),
            "{ctx}: {reasons:?}"
        );
    }
}
