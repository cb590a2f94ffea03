//! The generator's SRTP against implementations that share no code with callvault: for each
//! suite, the packets of a generated call (both parties, across the sequence wrap) and SRTCP
//! packets of the `srtp` crate go to `srtp_reference.py`, where libsrtp (pylibsrtp) decrypts
//! every one to the clear packet and encrypts every clear packet to the same bytes; the AES-256
//! counter-mode suites, which pylibsrtp does not offer, are checked there with the
//! `cryptography` package's AES and HMAC. What callgen writes is what the mixer decrypts in
//! `replay_srtp.rs`, so this is also the independent check of the mixer's decryption.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use callgen::{CallSpec, MediaSecurity, Party, RtpSchedule, Scenario, Srtp, SrtpSuite, rtp_packet, rtp_packet_clear};
use common::skipped;
use serde_json::json;

fn reference_python() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let python = cache.join("callvault/pylibsrtp/bin/python");
    let ok = Command::new(&python).args(["-c", "import pylibsrtp, cryptography"]).status().is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// A receiver report from `ssrc` about `about`, with a padding-free report block.
fn receiver_report(ssrc: u32, about: u32, n: u8) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[n, 0, 0, n, 0, 1, 0, n, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
    p
}

#[test]
fn callgen_srtp_agrees_with_libsrtp_and_an_independent_aes_hmac() {
    let Some(python) = reference_python() else {
        skipped("SRTP cross-check with libsrtp: pylibsrtp is not installed (scripts/deps.sh test installs it)");
        return;
    };
    let mut cases = Vec::new();
    for (i, suite) in SrtpSuite::ALL.into_iter().enumerate() {
        let mut c = CallSpec::answered(i as u32, 1_735_689_600_000_000_000, 2000);
        c.media_security = Some(MediaSecurity::Sdes);
        c.srtp = Some(Srtp { suite, offer_two: false, wrong_key: None });
        c.caller_seq0 = 65_535 - 30;
        c.callee_seq0 = 65_535 - 3;
        let scenario = Scenario { calls: vec![c], seed: 21, ..Scenario::default() };
        for party in [Party::Caller, Party::Callee] {
            let spec = &scenario.calls[0];
            let key = callgen::sdes_key(spec, party, suite, 0);
            let rtp: Vec<_> = RtpSchedule::new(&scenario, 0, party)
                .filter(|s| !s.duplicate)
                .map(|s| {
                    [
                        hex::encode(rtp_packet(&scenario, 0, party, &s)),
                        hex::encode(rtp_packet_clear(&scenario, 0, party, &s)),
                    ]
                })
                .collect();
            assert!(rtp.len() > 40, "the stream wraps");
            let ctx = srtp::Context::new(suite, &key, 0).unwrap();
            let ssrc = if party == Party::Caller { spec.caller_ssrc } else { spec.callee_ssrc };
            // libsrtp numbers a sender's SRTCP packets from 1.
            let rtcp: Vec<_> = (1..=3u8)
                .map(|n| {
                    let clear = receiver_report(ssrc, ssrc ^ 1, n);
                    let mut wire = Vec::new();
                    ctx.protect_rtcp(&clear, u32::from(n), &mut wire).unwrap();
                    [hex::encode(wire), hex::encode(clear)]
                })
                .collect();
            cases.push(json!({
                "suite": suite.name(),
                "key": hex::encode(key.expose_secret()),
                "rtp": rtp,
                "rtcp": rtcp,
            }));
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/srtp_reference.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&cases).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.contains("agree with")).count(), 12, "{stdout}");
    println!("{stdout}");
}
