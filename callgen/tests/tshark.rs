//! Cross-check with an independent dissector: tshark must see every SIP message of every call,
//! in order, on every link type, and find nothing malformed. Skipped when tshark is missing.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use callvault_callgen::{CallSpec, Codec, Hangup, Link, Outcome, Scenario, Truth, write_pcap};

const T0: i64 = 1_700_000_000_000_000_000;

fn tshark_installed() -> bool {
    match Command::new("tshark").arg("--version").output() {
        Ok(out) => out.status.success(),
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("running tshark: {e}"),
    }
}

fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8").lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

fn scenario(link: Link, v6: bool) -> Scenario {
    let outcomes = [
        Outcome::Answered { hangup: Hangup::Caller },
        Outcome::Answered { hangup: Hangup::Callee },
        Outcome::Answered { hangup: Hangup::None },
        Outcome::Busy,
        Outcome::Rejected(603),
        Outcome::Cancelled,
        Outcome::NoAnswer,
    ];
    let calls = outcomes
        .iter()
        .enumerate()
        .map(|(i, &outcome)| {
            let i = i as u32;
            let mut c = CallSpec::answered(i, T0 + i64::from(i) * 50_000_000, 600);
            c.outcome = outcome;
            c.codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
            c.compact_headers = i == 1;
            if v6 { c.into_ipv6() } else { c }
        })
        .collect();
    Scenario { calls, link, seed: 11, ..Scenario::default() }
}

/// (Method or status, CSeq method) per Call-ID, as the truth says.
fn expected(truth: &Truth) -> HashMap<String, Vec<(String, String)>> {
    truth
        .calls
        .iter()
        .map(|c| {
            let msgs = c
                .sip
                .iter()
                .map(|s| {
                    let first = s.status.map_or_else(|| s.method.to_string(), |code| code.to_string());
                    (first, s.method.to_string())
                })
                .collect();
            (c.call_id.clone(), msgs)
        })
        .collect()
}

#[test]
fn tshark_sees_every_sip_message() {
    if !tshark_installed() {
        println!("skipped: tshark not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (Link::Ethernet, false),
        (Link::Vlan(12), true),
        (Link::QinQ(100, 200), false),
        (Link::Sll, true),
        (Link::Sll2, false),
        (Link::RawIp, true),
    ];
    for (link, v6) in cases {
        let s = scenario(link, v6);
        let path = dir.path().join(format!("{link:?}-{v6}.pcap"));
        let truth = write_pcap(&s, &path).unwrap();

        let rows = tshark(&path, "sip", &["sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.method"]);
        assert_eq!(rows.len() as u64, truth.sip_messages, "{link:?} v6={v6}: SIP count");
        let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for row in rows {
            let [call_id, method, status, cseq_method] = <[String; 4]>::try_from(row).unwrap();
            let first = if method.is_empty() { status } else { method };
            seen.entry(call_id).or_default().push((first, cseq_method));
        }
        assert_eq!(seen, expected(&truth), "{link:?} v6={v6}");

        let malformed = tshark(&path, "_ws.malformed || _ws.expert.severity >= error", &["frame.number"]);
        assert!(malformed.is_empty(), "{link:?} v6={v6}: malformed frames {malformed:?}");

        // tshark follows the SDP to the RTP ports and sees every packet as RTP.
        let rtp = tshark(&path, "rtp", &["rtp.ssrc"]);
        assert_eq!(rtp.len() as u64, truth.rtp_packets, "{link:?} v6={v6}: RTP count");
    }
}

#[test]
fn tshark_finds_sip_on_non_standard_ports() {
    if !tshark_installed() {
        println!("skipped: tshark not installed");
        return;
    }
    let mut c = CallSpec::answered(0, T0, 400);
    c.caller_sip_port = 5080;
    c.callee_sip_port = 5080;
    let s = Scenario::new(vec![c]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("5080.pcap");
    let truth = write_pcap(&s, &path).unwrap();
    let rows = tshark(&path, "sip", &["sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.method"]);
    assert_eq!(rows.len() as u64, truth.sip_messages);
}
