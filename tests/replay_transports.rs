//! End to end on generated captures of SIP over WebSocket (RFC 7118) and over SCTP (RFC 4168):
//! each call found, its dialog followed to its end, its audio sample-exact against the
//! generator's truth; the captures cross-checked with tshark's dissection (the same number
//! of SIP messages, by Call-ID).

mod common;
mod gen_check;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use callgen::{CallSpec, Hangup, Outcome, Scenario, SctpOptions, SipTransport, Truth, WsOptions};
use gen_check::{check_all, run};

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const MS: i64 = 1_000_000;

fn websocket_scenario() -> Scenario {
    let cases = [
        // One frame per message, the server on 8080 (a port tshark reads as HTTP).
        WsOptions { mss: 1460, fragment: None, ping: false },
        // Messages in frames of at most 100 bytes, a ping or pong between the first two,
        // several frames in one segment.
        WsOptions { mss: 1460, fragment: Some(100), ping: true },
        // Frames spanning segments of 50 bytes.
        WsOptions { mss: 50, fragment: Some(300), ping: true },
    ];
    let mut calls = Vec::new();
    for (i, o) in cases.into_iter().enumerate() {
        for v6 in [false, true] {
            let n = (i * 2 + usize::from(v6)) as u32;
            let mut c = CallSpec::answered(n, T0 + i64::from(n) * 40 * MS, 2000);
            c.sip_transport = SipTransport::WebSocket(o);
            c.caller_sip_port = 50_000 + n as u16;
            c.callee_sip_port = 8080;
            if n % 2 == 1 {
                c.outcome = Outcome::Answered { hangup: Hangup::Callee };
            }
            calls.push(if v6 { c.into_ipv6() } else { c });
        }
    }
    // A rejected call over WebSocket too.
    let mut busy = CallSpec::answered(6, T0 + 300 * MS, 2000);
    busy.sip_transport = SipTransport::WebSocket(WsOptions { mss: 200, fragment: Some(64), ping: true });
    busy.caller_sip_port = 50_006;
    busy.callee_sip_port = 8080;
    busy.outcome = Outcome::Busy;
    calls.push(busy);
    Scenario { calls, seed: 21, ..Scenario::default() }
}

fn sctp_scenario() -> Scenario {
    let cases = [
        SctpOptions { fragment: None, bundle: 4, streams: 1, zero_checksum: false },
        // Fragmented into DATA chunks of 200 bytes, two to a packet, over three streams.
        SctpOptions { fragment: Some(200), bundle: 2, streams: 3, zero_checksum: false },
        // One chunk per packet, checksum left 0 (offload on the capturing host).
        SctpOptions { fragment: Some(120), bundle: 1, streams: 2, zero_checksum: true },
    ];
    let mut calls = Vec::new();
    for (i, o) in cases.into_iter().enumerate() {
        for v6 in [false, true] {
            let n = (i * 2 + usize::from(v6)) as u32;
            let mut c = CallSpec::answered(n, T0 + i64::from(n) * 40 * MS, 2000);
            c.sip_transport = SipTransport::Sctp(o);
            c.caller_sip_port = 51_000 + n as u16;
            if n % 2 == 1 {
                c.outcome = Outcome::Answered { hangup: Hangup::Callee };
            }
            calls.push(if v6 { c.into_ipv6() } else { c });
        }
    }
    let mut cancelled = CallSpec::answered(6, T0 + 300 * MS, 2000);
    cancelled.sip_transport = SipTransport::Sctp(SctpOptions { fragment: Some(90), ..SctpOptions::default() });
    cancelled.caller_sip_port = 51_006;
    cancelled.outcome = Outcome::Cancelled;
    calls.push(cancelled);
    Scenario { calls, seed: 22, ..Scenario::default() }
}

#[test]
fn sip_over_websocket() {
    let scenario = websocket_scenario();
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "SIP over WebSocket");
    for rec in &r.recs {
        assert_eq!(rec.value["sip"]["transport"], "ws", "{}", rec.value["call_id"]);
    }
    cross_check_with_tshark(&scenario, &r.truth, r.dir.path(), "websocket", &[]);
}

#[test]
fn sip_over_sctp() {
    let scenario = sctp_scenario();
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "SIP over SCTP");
    for rec in &r.recs {
        assert_eq!(rec.value["sip"]["transport"], "sctp", "{}", rec.value["call_id"]);
    }
    cross_check_with_tshark(&scenario, &r.truth, r.dir.path(), "sctp", &["-o", "sctp.reassembly:TRUE"]);
}

/// tshark decodes the same SIP messages, per Call-ID, over the transport named (`websocket`
/// or `sctp`), as the generator wrote.
fn cross_check_with_tshark(scenario: &Scenario, truth: &Truth, dir: &Path, layer: &str, opts: &[&str]) {
    if !common::have("tshark") {
        common::skipped(&format!("replay_transports: tshark cross-check of SIP over {layer} (tshark not installed)"));
        return;
    }
    let pcap = dir.join("in.pcap");
    let filter = format!("sip && {layer}");
    let out = Command::new("tshark")
        .args(opts)
        .args(["-r"])
        .arg(&pcap)
        .args(["-Y", &filter, "-T", "fields", "-e", "sip.Call-ID"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // One line per frame; a frame holding several messages lists their Call-IDs.
        for id in line.split(',').filter(|s| !s.is_empty()) {
            *got.entry(id.to_owned()).or_default() += 1;
        }
    }
    let want: BTreeMap<String, usize> = truth.calls.iter().map(|c| (c.call_id.clone(), c.sip.len())).collect();
    assert_eq!(got, want, "SIP messages over {layer} per Call-ID: tshark against the generator");
    assert_eq!(want.len(), scenario.calls.len());
}
