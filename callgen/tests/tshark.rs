//! Cross-check with an independent dissector: tshark must see every SIP message of every call,
//! in order, on every link type, and find nothing malformed. Skipped when tshark is missing.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use callvault_callgen::{
    AuthChallenge, CallSpec, Codec, Delay, DirImpair, DtmfDigit, EarlyMedia, ExtraKind, ExtraMedia, FragmentOrder,
    Fragmentation, Hangup, Link, MediaSecurity, MidCall, Nat, Outcome, Party, Scenario, SipTransport, Stall,
    StreamChange, TcpOptions, Truth, Tunnel, write_pcap,
};

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
            c.codec = if i.is_multiple_of(2) { Codec::Pcmu } else { Codec::Pcma };
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

/// Calls using every real-network option: SIP over TCP (split and coalesced), oversized
/// INVITEs, NAT, early media, hold, resume and a media move, DTMF and a new SSRC.
fn situations(v6: bool) -> Vec<CallSpec> {
    let mut calls = Vec::new();
    let mut tcp = CallSpec::answered(0, T0, 600);
    tcp.sip_transport = SipTransport::Tcp(TcpOptions { mss: 300, coalesce_trying: true });
    tcp.outcome = Outcome::Answered { hangup: Hangup::Callee };
    calls.push(tcp);
    let mut busy = CallSpec::answered(1, T0 + 20_000_000, 600);
    busy.sip_transport = SipTransport::Tcp(TcpOptions { mss: 1460, coalesce_trying: true });
    busy.outcome = Outcome::Busy;
    calls.push(busy);
    let mut big = CallSpec::answered(2, T0 + 40_000_000, 600);
    big.invite_padding = 3000;
    calls.push(big);
    let mut mid = CallSpec::answered(3, T0 + 60_000_000, 3000);
    if !v6 {
        mid.callee_nat = Some(Nat { public_ip: "203.0.113.7".parse().unwrap(), sip_port: 40_000, rtp_port: 41_000 });
    }
    mid.early_media = Some(EarlyMedia { tone_hz: 425.0 });
    mid.midcall = vec![
        MidCall::Hold { by: Party::Caller, at_ms: 800, resume_ms: Some(1500) },
        MidCall::MoveMedia { party: Party::Caller, at_ms: 2000, rtp_port: 12_000 },
    ];
    mid.dtmf = vec![DtmfDigit { party: Party::Caller, event: 11, at_packet: 10, packets: 5 }];
    mid.stream_changes = vec![StreamChange { party: Party::Callee, at_packet: 120, ssrc: 0xdead_beef, seq: 1, ts: 5 }];
    calls.push(mid);
    if v6 { calls.into_iter().map(CallSpec::into_ipv6).collect() } else { calls }
}

#[test]
fn tshark_decodes_every_network_situation() {
    if !tshark_installed() {
        println!("skipped: tshark not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tunnels = [
        None,
        Some(Tunnel::Gre),
        Some(Tunnel::GreEthernet),
        Some(Tunnel::ErspanII { session: 12 }),
        Some(Tunnel::ErspanIII { session: 13 }),
        Some(Tunnel::Vxlan { vni: 77 }),
    ];
    for (i, tunnel) in tunnels.into_iter().enumerate() {
        let v6 = i % 2 == 1;
        let order = [FragmentOrder::InOrder, FragmentOrder::Reverse, FragmentOrder::Shuffled][i % 3];
        let s = Scenario {
            calls: situations(v6),
            tunnel,
            fragmentation: Some(Fragmentation { mtu: 1280, order }),
            seed: 21,
            ..Scenario::default()
        };
        let ctx = format!("{tunnel:?} v6={v6}");
        let path = dir.path().join(format!("{i}-{v6}.pcap"));
        let truth = write_pcap(&s, &path).unwrap();
        // Several SIP messages in one TCP segment show as one frame with several values.
        let rows = tshark(&path, "sip", &["sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.method"]);
        let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for row in rows {
            let [call_ids, methods, statuses, cseq_methods] = <[String; 4]>::try_from(row).unwrap();
            let call_ids: Vec<&str> = call_ids.split(',').collect();
            let cseq_methods: Vec<&str> = cseq_methods.split(',').collect();
            let mut methods = methods.split(',').filter(|m| !m.is_empty());
            let mut statuses = statuses.split(',').filter(|m| !m.is_empty());
            for (call_id, cseq_method) in call_ids.iter().zip(&cseq_methods) {
                // sip.Method and sip.Status-Code list only the requests and only the
                // responses: a request's method is its CSeq method.
                let first = match statuses.clone().next() {
                    Some(_) if methods.clone().next().is_none_or(|m| m != *cseq_method) => statuses.next().unwrap(),
                    _ => methods.next().unwrap(),
                };
                seen.entry(call_id.to_string()).or_default().push((first.to_string(), cseq_method.to_string()));
            }
        }
        assert_eq!(seen, expected(&truth), "{ctx}");
        let bad =
            tshark(&path, "_ws.malformed || _ws.expert.severity >= error", &["frame.number", "_ws.expert.message"]);
        assert!(bad.is_empty(), "{ctx}: {bad:?}");
        let rtp = tshark_opts(&path, "rtp", &["rtp.ssrc"], &["-o", "rtp.heuristic_rtp:TRUE"]);
        assert_eq!(rtp.len() as u64, truth.rtp_packets, "{ctx}: RTP count");
        let events = tshark_opts(
            &path,
            "rtpevent",
            &["rtpevent.event_id", "rtpevent.end_of_event"],
            &["-o", "rtp.heuristic_rtp:TRUE"],
        );
        assert_eq!(events.len(), 7, "{ctx}: 5 updates and 2 more end packets");
        assert!(events.iter().all(|e| e[0] == "11"), "{ctx}: {events:?}");
        assert_eq!(events.iter().filter(|e| e[1] == "1").count(), 3, "{ctx}: {events:?}");
    }
}

fn tshark_opts(file: &Path, filter: &str, fields: &[&str], opts: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(opts).args(["-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8").lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

#[test]
fn tshark_reads_challenges_encrypted_media_extra_lines_and_cut_frames() {
    if !tshark_installed() {
        println!("skipped: tshark not installed");
        return;
    }
    let mut calls = Vec::new();
    for (i, security) in [MediaSecurity::Sdes, MediaSecurity::Dtls, MediaSecurity::Zrtp].into_iter().enumerate() {
        let mut c = CallSpec::answered(i as u32, T0 + i as i64 * 10_000_000, 600);
        c.media_security = Some(security);
        calls.push(c);
    }
    let mut late = CallSpec::answered(3, T0 + 50_000_000, 600);
    late.auth = Some(AuthChallenge { code: 407, retry_ms: 51_000 });
    late.extra_media = vec![
        ExtraMedia { kind: ExtraKind::Video, caller_port: 11_000, callee_port: 31_000, packets: 10 },
        ExtraMedia { kind: ExtraKind::Bfcp, caller_port: 11_002, callee_port: 31_002, packets: 3 },
    ];
    late.impair.caller = DirImpair {
        delay: Some(Delay::Bursty { max_ms: 60.0, burst_ms: 200, gap_ms: 200 }),
        stalls: vec![Stall { at_ms: 100, duration_ms: 300 }],
        ..DirImpair::default()
    };
    calls.push(late);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.pcap");
    let truth = write_pcap(&Scenario { calls, seed: 4, ..Scenario::default() }, &path).unwrap();
    let sip = tshark(&path, "sip", &["sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.method"]);
    let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for row in sip {
        let first = if row[1].is_empty() { row[2].clone() } else { row[1].clone() };
        seen.entry(row[0].clone()).or_default().push((first, row[3].clone()));
    }
    assert_eq!(seen, expected(&truth));
    let protos = tshark(&path, "sdp", &["sdp.media.proto"]);
    let protos: Vec<String> = protos.into_iter().map(|r| r[0].clone()).collect();
    for want in ["RTP/SAVP", "UDP/TLS/RTP/SAVPF"] {
        assert!(protos.iter().any(|p| p.split(',').any(|x| x == want)), "{want} in {protos:?}");
    }
    let crypto = tshark(&path, "sdp.crypto.crypto_suite", &["sdp.crypto.crypto_suite"]);
    assert!(crypto.iter().all(|r| r[0] == "AES_CM_128_HMAC_SHA1_80") && crypto.len() == 2, "{crypto:?}");
    let auth = tshark(&path, "sip.Proxy-Authorization", &["sip.CSeq.seq"]);
    assert_eq!(auth.len(), 1);
    let video = tshark(&path, "sdp.media.media == \"video\"", &["frame.number"]);
    assert!(video.len() >= 2, "the video line in offer and answer");
    let bad = tshark(&path, "_ws.malformed && (sip || sdp)", &["frame.number"]);
    assert!(bad.is_empty(), "{bad:?}");
    // A snapshot length of 60 bytes cuts every SIP message (and reads as cut, not as garbage).
    let cut = dir.path().join("cut.pcap");
    write_pcap(
        &Scenario { calls: vec![CallSpec::answered(9, T0, 200)], snaplen: Some(60), ..Scenario::default() },
        &cut,
    )
    .unwrap();
    let lens = tshark(&cut, "frame", &["frame.cap_len", "frame.len"]);
    assert!(lens.iter().all(|r| r[0].parse::<u32>().unwrap() <= 60), "{lens:?}");
    assert!(lens.iter().all(|r| r[1].parse::<u32>().unwrap() > 60));
}
