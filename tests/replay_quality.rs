//! Quality numbers on generated calls with known loss and jitter: loss counts, loss runs,
//! RFC 3550 jitter and the E-model rating in each call record must match what the generator's
//! own ground truth gives (the E-model formula itself is unit-tested against ITU-T G.107's
//! published values in `mixer::mix::quality`).

mod common;

use callgen::{CallSpec, Party, RtpSchedule, Scenario};
use common::{records, replay, text};
use mixer::mix::quality::g711_quality;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// RFC 3550 A.8 interarrival jitter, in ms, computed from the capture times the generator
/// wrote (truncated to µs as in the file) and the RTP timestamps it put in the packets.
fn ground_truth_jitter(scenario: &Scenario, party: Party, spp: u32) -> f64 {
    let mut j = 0.0f64;
    let mut prev: Option<i64> = None;
    for s in RtpSchedule::new(scenario, 0, party).filter(|s| !s.duplicate) {
        let arrival_us = s.capture_ns / 1000;
        let arrival_ts = (i128::from(arrival_us) * 8000 / 1_000_000) as i64;
        let transit = arrival_ts - i64::from(s.index) * i64::from(spp);
        if let Some(p) = prev {
            let d = (transit - p).abs() as f64;
            j += (d - j) / 16.0;
        }
        prev = Some(transit);
    }
    j / 8.0
}

#[test]
fn loss_runs_jitter_and_mos_match_ground_truth() {
    let mut c = CallSpec::answered(0, T0, 60_000); // 3000 packets each way
    // Caller: single losses every 25 packets (random-like, 4 %).
    c.impair.caller.loss = (10..3000).step_by(25).collect();
    // Callee: the same 4 % in bursts of 5, plus 12 ms of jitter.
    c.impair.callee.loss = (100..3000).step_by(125).flat_map(|k| k..k + 5).collect();
    c.impair.callee.jitter_ms = 12.0;
    let scenario = Scenario { calls: vec![c.clone()], seed: 5, ..Scenario::default() };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("q.pcap");
    let truth = callgen::write_pcap(&scenario, &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rec = &records(&dir.path().join("archive"))[0].value;
    let streams = rec["streams"].as_array().unwrap();
    for (party, side, imp) in [(Party::Caller, "caller", &c.impair.caller), (Party::Callee, "callee", &c.impair.callee)]
    {
        let t = if side == "caller" { &truth.calls[0].caller } else { &truth.calls[0].callee };
        let s = streams.iter().find(|s| s["side"] == side).unwrap();
        let lost = u64::from(t.lost);
        let expected = 3000u64;
        // Loss runs from the loss list itself.
        let mut runs = 0u64;
        let mut longest = 0u64;
        let mut cur = 0u64;
        for k in 0..3000u32 {
            if imp.loss.contains(&k) {
                cur += 1;
            } else if cur > 0 {
                runs += 1;
                longest = longest.max(cur);
                cur = 0;
            }
        }
        assert_eq!(s["lost"], lost, "{side}");
        assert_eq!(s["loss_bursts"], runs, "{side}");
        assert_eq!(s["longest_loss_burst"], longest, "{side}");
        let loss_pct = lost as f64 * 100.0 / expected as f64;
        assert!((s["loss_pct"].as_f64().unwrap() - loss_pct).abs() < 0.001, "{side}");
        let jitter = ground_truth_jitter(&scenario, party, 160);
        let got_jitter = s["jitter_ms"].as_f64().unwrap();
        assert!((got_jitter - jitter).abs() < 0.05, "{side}: jitter {got_jitter} ms, ground truth {jitter} ms");
        let q = g711_quality(loss_pct, runs, lost, expected - lost, jitter);
        let rq = &s["quality"];
        assert!((rq["r_factor"].as_f64().unwrap() - q.r).abs() < 0.05, "{side}: {rq} vs {q:?}");
        assert!((rq["mos"].as_f64().unwrap() - q.mos).abs() < 0.01, "{side}: {rq} vs {q:?}");
        assert!((rq["mos_plc"].as_f64().unwrap() - q.mos_plc).abs() < 0.01, "{side}: {rq} vs {q:?}");
        println!(
            "{side}: {loss_pct:.2} % loss in {runs} runs (longest {longest}), jitter {jitter:.2} ms -> R {:.1}, MOS {:.2} (PLC {:.2})",
            q.r, q.mos, q.mos_plc
        );
    }
    // Same loss rate, different pattern: the bursty direction rates worse.
    let mos = |side: &str| streams.iter().find(|s| s["side"] == side).unwrap()["quality"]["mos_plc"].as_f64().unwrap();
    assert!(mos("callee") < mos("caller"));
}

/// Per-interval truth of one party: (packets received, lost, highest jitter in ms) per slot of
/// `width_ns` from its first packet, the loss counted where the sequence advanced past it.
fn ground_truth_over_time(scenario: &Scenario, party: Party, width_ns: i64) -> Vec<(u32, u32, f64)> {
    let mut out: Vec<(u32, u32, f64)> = Vec::new();
    let (mut j, mut prev_transit, mut prev_index, mut first) = (0.0f64, None::<i64>, None::<u32>, None::<i64>);
    for s in RtpSchedule::new(scenario, 0, party).filter(|s| !s.duplicate) {
        let arrival_us = s.capture_ns / 1000;
        let first_us = *first.get_or_insert(arrival_us);
        let slot = ((arrival_us - first_us) * 1000 / width_ns) as usize;
        if out.len() <= slot {
            out.resize(slot + 1, (0, 0, 0.0));
        }
        let transit = (i128::from(arrival_us) * 8000 / 1_000_000) as i64 - i64::from(s.index) * 160;
        if let Some(p) = prev_transit {
            j += ((transit - p).abs() as f64 - j) / 16.0;
        }
        prev_transit = Some(transit);
        let advanced = prev_index.map_or(1, |p| s.index - p);
        prev_index = Some(s.index);
        out[slot].0 += 1;
        out[slot].1 += advanced - 1;
        out[slot].2 = out[slot].2.max(j / 8.0);
    }
    out
}

#[test]
fn quality_over_time_matches_ground_truth_interval_by_interval() {
    // 200 s: longer than 32 intervals of 5 s, so the record's intervals are 10 s wide.
    let mut c = CallSpec::answered(0, T0, 200_000);
    // Caller: one packet in 50 lost between 2 s and 40 s.
    c.impair.caller.loss = (100..2000).step_by(50).collect();
    // Callee: two seconds lost at 20 s (in one interval), and jitter throughout.
    c.impair.callee.loss = (1000..1100).collect();
    c.impair.callee.jitter_ms = 8.0;
    let scenario = Scenario { calls: vec![c], seed: 9, ..Scenario::default() };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("q.pcap");
    callgen::write_pcap(&scenario, &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let rec = &records(&dir.path().join("archive"))[0].value;
    for (party, side) in [(Party::Caller, "caller"), (Party::Callee, "callee")] {
        let s = rec["streams"].as_array().unwrap().iter().find(|s| s["side"] == side).unwrap();
        let over = &s["over_time"];
        assert_eq!(over["interval_s"], 10.0, "{side}: {over}");
        let truth = ground_truth_over_time(&scenario, party, 10_000_000_000);
        let got = over["intervals"].as_array().unwrap();
        assert_eq!(got.len(), truth.len(), "{side}");
        for (i, (g, (packets, lost, jitter))) in got.iter().zip(&truth).enumerate() {
            assert_eq!(g["t_s"], i as f64 * 10.0);
            assert_eq!(
                (g["packets"].as_u64().unwrap(), g["lost"].as_u64().unwrap()),
                (u64::from(*packets), u64::from(*lost)),
                "{side} interval {i}"
            );
            let got_jitter = g["jitter_max_ms"].as_f64().unwrap();
            assert!((got_jitter - jitter).abs() < 0.05, "{side} interval {i}: jitter {got_jitter} vs {jitter}");
            let loss_pct = f64::from(*lost) * 100.0 / f64::from(packets + lost);
            let q = g711_quality(loss_pct, u64::from(*lost), u64::from(*lost), u64::from(*packets), *jitter);
            assert!((g["mos"].as_f64().unwrap() - q.mos).abs() < 0.01, "{side} interval {i}: {g} vs {q:?}");
        }
        // The intervals add up to the stream.
        let sum = |k: &str| got.iter().map(|g| g[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("lost"), s["lost"].as_u64().unwrap(), "{side}");
        assert_eq!(sum("packets") + s["duplicates"].as_u64().unwrap(), s["packets"].as_u64().unwrap(), "{side}");
    }
    // The callee's two lost seconds are in its third interval, and only there.
    let callee = rec["streams"].as_array().unwrap().iter().find(|s| s["side"] == "callee").unwrap();
    let lost: Vec<u64> =
        callee["over_time"]["intervals"].as_array().unwrap().iter().map(|g| g["lost"].as_u64().unwrap()).collect();
    assert_eq!(lost.iter().filter(|&&l| l > 0).count(), 1, "{lost:?}");
    assert_eq!(lost[2], 100, "{lost:?}");
}
