//! Encrypted media is never written as noise: SDES-keyed SRTP (`RTP/SAVP` with `a=crypto`)
//! whose packets do not authenticate with the SDP's keys (real SRTP with the keys is decrypted:
//! `replay_srtp.rs`),
//! DTLS-SRTP (`UDP/TLS/RTP/SAVPF` with `a=fingerprint`) and ZRTP announced in the SDP
//! (`a=zrtp-hash`) give no audio file, in any layout, and a record that says which party is
//! encrypted, how, and that it is not decryptable from the wire. (ZRTP found by its packets on
//! the media port is checked on the real corpus capture in `replay_corpus.rs`.)

mod common;
mod gen_check;

use callgen::{CallSpec, MediaSecurity, Scenario};
use gen_check::run;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

#[test]
fn encrypted_calls_have_no_audio_and_say_why() {
    let kinds = [
        (MediaSecurity::Sdes, "SRTP (SDES keys), no packet authenticated with the key from its SDP"),
        (MediaSecurity::Dtls, "DTLS-SRTP"),
        (MediaSecurity::Zrtp, "ZRTP"),
    ];
    let mut calls: Vec<CallSpec> = kinds
        .iter()
        .enumerate()
        .map(|(i, &(k, _))| {
            let mut c = CallSpec::answered(i as u32, T0 + i as i64 * 100_000_000, 3000);
            c.media_security = Some(k);
            c
        })
        .collect();
    // A plain call beside them is recorded as usual.
    calls.push(CallSpec::answered(9, T0 + 500_000_000, 3000));
    let scenario = Scenario { calls, seed: 2, ..Scenario::default() };
    for layout in ["stereo", "split"] {
        let r = run(&scenario, &["--audio-layout", layout]);
        for (t, (_, name)) in r.truth.calls.iter().zip(&kinds) {
            let ctx = format!("{name} ({layout})");
            let rec = &r.record(&t.call_id).value;
            assert!(rec["audio"].is_null(), "{ctx}: no audio: {}", rec["audio"]);
            let party = |side: &str| (side.to_owned(), (*name).to_owned());
            assert_eq!(common::encrypted_parties(rec), vec![party("caller"), party("callee")], "{ctx}");
            let packets: u64 =
                rec["encrypted"].as_array().unwrap().iter().map(|e| e["packets"].as_u64().unwrap()).sum();
            assert_eq!(packets, u64::from(t.caller.packets_sent + t.callee.packets_sent), "{ctx}: none recorded");
            assert_eq!(rec["capture_complete"], false, "{ctx}");
            let reasons = rec["incomplete_reasons"].as_array().unwrap();
            assert!(
                reasons.iter().all(|r| r.as_str().unwrap().contains("encrypted (SRTP/ZRTP/DTLS-SRTP")),
                "{ctx}: {reasons:?}"
            );
            assert_eq!(reasons.len(), 2, "{ctx}: one per party");
            // The streams are still described.
            assert_eq!(rec["streams"].as_array().unwrap().len(), 2, "{ctx}");
        }
        let plain = r.record(&r.truth.calls[3].call_id);
        assert!(!plain.value["audio"].is_null() && plain.value["capture_complete"] == true, "{layout}");
        // Only the plain call has audio files in the archive.
        let audio: Vec<String> =
            common::files(&r.dir.path().join("archive")).into_iter().filter(|f| f.ends_with(".wav")).collect();
        assert_eq!(audio.len(), if layout == "split" { 2 } else { 1 }, "{layout}: {audio:?}");
        assert!(common::files(&r.dir.path().join("data/work")).iter().all(|f| !f.ends_with(".wav")), "nothing left");
    }
}
