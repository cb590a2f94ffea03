//! Both parties stay on one timeline: a long call whose two senders' clocks drift in opposite
//! directions (±150 ppm, i.e. 90 ms each way over ten minutes) with network jitter must keep
//! every packet within one packet time (20 ms) of where capture time puts it, so the two
//! channels stay within 20 ms of each other for the whole call.

mod common;

use callgen::timeline::rtp_nominal_ns;
use callgen::{CallSpec, Codec, Hangup, Outcome, Party, Scenario};
use common::{channels, records, replay, text};
use mixer::g711::ULAW_TO_LINEAR;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

#[test]
fn drift_and_jitter_over_ten_minutes_stay_within_one_packet() {
    let talk_ms = 600_000;
    let mut c = CallSpec::answered(0, T0, talk_ms);
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    c.codec = Codec::Pcmu;
    // Tones whose sample sequences repeat only every second, so a packet's samples are found
    // in one place only.
    c.caller_tone_hz = 301.0;
    c.callee_tone_hz = 1877.0;
    c.impair.caller.clock_ppm = 150.0;
    c.impair.callee.clock_ppm = -150.0;
    c.impair.caller.jitter_ms = 8.0;
    c.impair.callee.jitter_ms = 8.0;
    let scenario = Scenario { calls: vec![c], keep_payloads: true, seed: 11, ..Scenario::default() };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("long.pcap");
    let truth = callgen::write_pcap(&scenario, &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 1);
    let wav = recs[0].wav.as_ref().unwrap();
    let chans = channels(wav);
    let t = &truth.calls[0];
    let origin = t.caller.first_capture_ns.unwrap().min(t.callee.first_capture_ns.unwrap());

    // For every 97th packet of each party: where it is in the WAV minus where the sender's
    // (drifting) clock put it in capture time, before network jitter.
    let spec = &scenario.calls[0];
    let n = spec.packets_per_direction();
    let mut offsets: [Vec<(i64, i64)>; 2] = [Vec::new(), Vec::new()];
    for (ch, party, st) in [(0usize, Party::Caller, &t.caller), (1, Party::Callee, &t.callee)] {
        let payloads = st.payloads.as_ref().unwrap();
        for k in (0..n).step_by(97) {
            // A 1 ms clock slip may overwrite a packet's last 8 samples: match the first 150.
            let pcm: Vec<i16> = payloads[k as usize][..150].iter().map(|&b| ULAW_TO_LINEAR[b as usize]).collect();
            let nominal = rtp_nominal_ns(spec, party, k).unwrap();
            let want = (nominal - origin) / 125_000;
            let lo = (want - 1200).max(0) as usize;
            let hi = ((want + 1200) as usize).min(chans[ch].len() - pcm.len());
            let found: Vec<usize> = (lo..=hi).filter(|&p| chans[ch][p..p + pcm.len()] == pcm[..]).collect();
            assert_eq!(found.len(), 1, "{party:?} packet {k} found at {found:?} (its clock says {want})");
            let err = found[0] as i64 - want;
            // Within a packet plus the jitter amplitude of where its clock puts it.
            assert!(err.abs() <= 160 + 64, "{party:?} packet {k} is {} ms off", err as f64 / 8.0);
            offsets[ch].push((nominal, err));
        }
    }
    // Mutual alignment: at every sampled moment the parties' offsets differ by at most 20 ms.
    let mut worst = 0i64;
    for &(t_caller, e_caller) in &offsets[0] {
        let &(_, e_callee) = offsets[1].iter().min_by_key(|(t, _)| (t - t_caller).abs()).unwrap();
        worst = worst.max((e_caller - e_callee).abs());
    }
    println!("worst misalignment between the parties: {} ms", worst as f64 / 8.0);
    assert!(worst <= 160, "parties drift apart by {} ms", worst as f64 / 8.0);
    // The record says the sender clocks were followed.
    let streams = recs[0].value["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    assert!(streams.iter().all(|s| s["late"] == 0 && s["lost"] == 0), "{streams:?}");
}
