//! SRTP keyed by SDES (`a=crypto` in the SDP) end to end: generated calls whose RTP is really
//! encrypted, one per suite, every one across a sequence-number wrap (so the rollover counter
//! must be followed), are recorded sample by sample as the generator sent them before
//! encryption; a packet tampered with in the capture is an authentication failure and a gap
//! named in the record, not noise; a party that encrypts with another key than its SDP's is
//! counted and gives silence, never noise. (callgen's SRTP itself is checked against libsrtp
//! in `srtp_reference.rs`.)

mod common;
mod gen_check;

use callgen::{CallSpec, MediaSecurity, Party, RtpSchedule, Scenario, Srtp, SrtpSuite, rtp_packet};
use common::{channels, replay, text};
use gen_check::{check_audio, check_call, check_stream_facts, run};
use serde_json::Value;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn srtp_call(i: u32, suite: SrtpSuite, offer_two: bool) -> CallSpec {
    let mut c = CallSpec::answered(i, T0 + i64::from(i) * 150_000_000, 3000);
    c.media_security = Some(MediaSecurity::Sdes);
    c.srtp = Some(Srtp { suite, offer_two, wrong_key: None });
    // Both directions wrap within the call's first second.
    c.caller_seq0 = 65_535 - 20;
    c.callee_seq0 = 65_535 - 40 - i as u16;
    c
}

fn streams(rec: &Value) -> &Vec<Value> {
    rec["streams"].as_array().unwrap()
}

#[test]
fn every_suite_is_decrypted_sample_by_sample_across_the_sequence_wrap() {
    let calls: Vec<CallSpec> =
        SrtpSuite::ALL.iter().enumerate().map(|(i, &s)| srtp_call(i as u32, s, i % 2 == 1)).collect();
    let scenario = Scenario { calls, seed: 11, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let suite = SrtpSuite::ALL[i];
        let ctx = format!("{suite} (offer with {} line(s))", 1 + i % 2);
        let rec = r.record(&t.call_id);
        check_call(&ctx, t, &rec.value);
        check_stream_facts(&ctx, &scenario, i, &rec.value);
        check_audio(&ctx, &scenario, i, rec);
        for st in streams(&rec.value) {
            assert_eq!(
                st["encryption"],
                format!("SRTP ({suite}), decrypted with SDES keys from the SDP"),
                "{ctx}: {}",
                st["side"]
            );
            assert_eq!(st["auth_failures"], 0, "{ctx}");
        }
        assert_eq!(rec.value["encrypted"], Value::Array(Vec::new()), "{ctx}");
        let json = std::fs::read_to_string(&rec.json).unwrap();
        for party in [Party::Caller, Party::Callee] {
            let key = callgen::sdes_key(&scenario.calls[i], party, suite, 0);
            let hex_key = hex::encode(key.expose_secret());
            assert!(!json.contains(&hex_key[..16]), "{ctx}: no key in the record");
        }
    }
    assert!(!text(&r.out).contains("inline:"), "no key in the output");
}

/// The bytes of `party`'s SRTP packet `index` of call 0 as the generator wrote them.
fn wire_packet(scenario: &Scenario, party: Party, index: u32) -> (Vec<u8>, i64) {
    let s = RtpSchedule::new(scenario, 0, party).find(|s| s.index == index && !s.early && !s.duplicate).unwrap();
    (rtp_packet(scenario, 0, party, &s), s.capture_ns)
}

#[test]
fn a_tampered_packet_is_an_authentication_failure_and_a_named_gap_not_noise() {
    let scenario =
        Scenario { calls: vec![srtp_call(0, SrtpSuite::AesCm128Sha1_80, false)], seed: 12, ..Scenario::default() };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    let truth = callgen::write_pcap(&scenario, &pcap).unwrap();
    // Flip one bit of the encrypted payload of the caller's packet 60 (after the wrap).
    let (packet, capture_ns) = wire_packet(&scenario, Party::Caller, 60);
    let mut bytes = std::fs::read(&pcap).unwrap();
    let at = bytes.windows(packet.len()).position(|w| w == packet.as_slice()).expect("the packet is in the capture");
    assert_eq!(bytes.windows(packet.len()).filter(|w| *w == packet.as_slice()).count(), 1);
    bytes[at + 12 + 33] ^= 0x08;
    std::fs::write(&pcap, &bytes).unwrap();

    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = common::records(&dir.path().join("archive"));
    let rec = recs.iter().find(|r| r.value["call_id"] == truth.calls[0].call_id).unwrap();
    let v = &rec.value;
    let caller = streams(v).iter().find(|s| s["side"] == "caller").unwrap();
    let callee = streams(v).iter().find(|s| s["side"] == "callee").unwrap();
    assert_eq!((caller["auth_failures"].as_u64(), callee["auth_failures"].as_u64()), (Some(1), Some(0)));
    assert_eq!(caller["lost"], 1, "the packet that failed is missing from the stream");
    let gaps = caller["placement"]["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0]["cause"].as_str(), gaps[0]["ms"].as_f64()), (Some("auth_failed"), Some(20.0)));
    assert_eq!(caller["placement"]["silence_ms"]["auth_failed"], 20.0);
    assert_eq!(v["capture_complete"], false);
    assert!(
        v["incomplete_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("failed authentication")),
        "{}",
        v["incomplete_reasons"]
    );
    // The audio is the truth with that packet's 160 samples silent, and nothing else changed.
    let origin = gen_check::origin(&scenario, 0).unwrap();
    let frames = gen_check::expected_frames(&scenario, 0, origin);
    let [c0, c1] = channels(rec.wav.as_deref().unwrap());
    let mut want = gen_check::expected_channel(&scenario, 0, Party::Caller, origin, frames);
    let hole = ((capture_ns - origin) / 125_000) as usize;
    assert_eq!(gaps[0]["frame"].as_u64(), Some(hole as u64));
    assert!(want[hole..hole + 160].iter().any(|&s| s != 0), "the tone was there");
    want[hole..hole + 160].fill(0);
    gen_check::assert_channel("tampered", "caller", &c0, &want, origin);
    let want = gen_check::expected_channel(&scenario, 0, Party::Callee, origin, frames);
    gen_check::assert_channel("tampered", "callee", &c1, &want, origin);
}

#[test]
fn a_party_sending_with_another_key_than_its_sdp_is_counted_and_silent() {
    let mut c = srtp_call(0, SrtpSuite::AeadAes128Gcm, false);
    c.srtp = Some(Srtp { suite: SrtpSuite::AeadAes128Gcm, offer_two: false, wrong_key: Some(Party::Caller) });
    let scenario = Scenario { calls: vec![c], seed: 13, ..Scenario::default() };
    let r = run(&scenario, &[]);
    let t = &r.truth.calls[0];
    let rec = r.record(&t.call_id);
    let v = &rec.value;
    let caller = streams(v).iter().find(|s| s["side"] == "caller").unwrap();
    assert_eq!(caller["auth_failures"].as_u64(), Some(u64::from(t.caller.packets_sent)));
    assert_eq!(caller["packets"], 0, "none decoded");
    assert!(caller["encryption"].as_str().unwrap().contains("no audio"), "{}", caller["encryption"]);
    assert_eq!(
        common::encrypted_parties(v),
        vec![("caller".into(), "SRTP (SDES keys), no packet authenticated with the key from its SDP".into())]
    );
    // The callee is recorded exactly; the caller's channel is silence, not noise.
    let origin = gen_check::origin(&scenario, 0).unwrap();
    let [c0, c1] = channels(rec.wav.as_deref().unwrap());
    assert!(c0.iter().all(|&s| s == 0), "no noise from the caller");
    let callee_origin = gen_check::sent(&scenario, 0, Party::Callee)[0].capture_ns;
    let frames = c1.len();
    let want = gen_check::expected_channel(&scenario, 0, Party::Callee, callee_origin, frames);
    gen_check::assert_channel("wrong key", "callee", &c1, &want, origin);
}
