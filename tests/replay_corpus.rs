//! End to end on the shared corpus of real captures (`../shared/corpus/`, read in place, never
//! copied): every SIP call found with the state, parties and start time tshark derived
//! (`expected.json`), every RTP stream tied to the right call with its packet count, every
//! G.711 call recorded (encrypted media excepted: it is never written as audio), and calls with
//! other codecs named.
//!
//! What this stage of the project does not follow yet (SIP over TCP, IP fragments, tunnels,
//! NAT-learned media) is listed in `KNOWN_GAPS` with the reason; those checks are reported as
//! skipped, not passed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{records, replay, text};
use serde_json::Value;

/// `$CALLVAULT_CORPUS`, else `../shared/corpus` beside the repository.
fn corpus_dir() -> Option<PathBuf> {
    let d = std::env::var_os("CALLVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    d.join("expected.json").exists().then_some(d)
}

/// (file, call-id or "*", stream src->dst or "*", reason): expectations not checked yet.
const KNOWN_GAPS: &[(&str, &str, &str, &str)] = &[];

/// (file, stream src->dst, packets allowed missing, reason): streams tied to their call by
/// learning (no SDP names where they go) whose first packets the hold could not keep until
/// the other direction's first packet showed the way. None today: the 2 packets
/// `sip-rtp-g711a-rfc2833-proxy.pcap` sends to 192.168.105.172:4376 before the phone's first
/// packet are kept and recorded.
const LEARNED_STREAMS: &[(&str, &str, u64, &str)] = &[];

/// (file, stream src->dst, reason): tshark's DTMF that callvault deliberately does not report.
const DTMF_EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "sip-rtp-g711a-t38-fax-reinvite.pcap",
    "10.23.1.52:16756->10.35.60.100:15580",
    "3 packets of PT 100, which no SDP in the capture declares: tshark decodes them as a telephone-event \
     (code 194) by its own default; callvault names the payload type as undeclared instead of guessing",
)];

fn gap(file: &str, call: &str, stream: &str) -> Option<&'static str> {
    KNOWN_GAPS
        .iter()
        .find(|(f, c, s, _)| *f == file && (*c == "*" || *c == call) && (*s == "*" || *s == stream))
        .map(|g| g.3)
}

fn state_name(tshark: &str) -> &'static str {
    match tshark {
        "COMPLETED" => "completed",
        "IN CALL" => "in_call",
        "REJECTED" => "rejected",
        "CANCELLED" => "cancelled",
        "RINGING" => "ringing",
        "CALL SETUP" => "setup",
        other => panic!("unknown state {other}"),
    }
}

#[test]
fn corpus_calls_and_streams_match_expected() {
    let Some(dir) = corpus_dir() else {
        common::skipped("corpus end-to-end test: no corpus (set CALLVAULT_CORPUS or provide ../shared/corpus)");
        return;
    };
    let expected: Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    let mut checked_calls = 0;
    let mut checked_streams = 0;
    let mut recordings = 0;
    let mut checked_dtmf = 0;
    let mut encrypted_calls = 0;
    let mut skipped = Vec::new();
    let mut failures = Vec::new();
    for (name, exp) in files {
        if gap(name, "*", "*").is_some() && KNOWN_GAPS.iter().any(|g| g.0 == name && g.1 == "*") {
            skipped.push(format!("{name}: {}", gap(name, "*", "*").unwrap()));
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let out = replay(&[&dir.join(name)], tmp.path(), &[]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let recs = records(&tmp.path().join("archive"));
        let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
        for r in &recs {
            by_id.entry(r.value["call_id"].as_str().unwrap()).or_default().push(&r.value);
        }
        for call in exp["calls"].as_array().unwrap() {
            let id = call["call_id"].as_str().unwrap();
            let Some(found) = by_id.get(id) else {
                failures.push(format!("{name}: call {id} not found"));
                continue;
            };
            let rec = found[0];
            checked_calls += 1;
            let want_state = state_name(call["state"].as_str().unwrap());
            if rec["state"] != want_state {
                failures.push(format!("{name} {id}: state {} want {want_state}", rec["state"]));
            }
            for (field, ours) in [("from_user", &rec["from"]["user"]), ("to_user", &rec["to"]["user"])] {
                if let Some(want) = call.get(field).and_then(Value::as_str)
                    && !want.is_empty()
                    && ours.as_str() != Some(want)
                {
                    failures.push(format!("{name} {id}: {field} {ours} want {want}"));
                }
            }
            if let Some(code) = call["final_invite_response"].as_u64()
                && rec["final_code"].as_u64() != Some(code)
            {
                failures.push(format!("{name} {id}: final code {} want {code}", rec["final_code"]));
            }
            let start = call["start_time_epoch"].as_f64().unwrap();
            let ours = chrono::DateTime::parse_from_rfc3339(rec["start"].as_str().unwrap()).unwrap();
            let ours = ours.timestamp() as f64 + f64::from(ours.timestamp_subsec_micros()) / 1e6;
            if (ours - start).abs() > 1e-6 {
                failures.push(format!("{name} {id}: start {ours} want {start}"));
            }
            let streams = rec["streams"].as_array().unwrap();
            for st in call["rtp_streams"].as_array().into_iter().flatten() {
                let key = format!("{}->{}", st["src"].as_str().unwrap(), st["dst"].as_str().unwrap());
                if let Some(reason) = gap(name, id, &key) {
                    skipped.push(format!("{name} {id} stream {key}: {reason}"));
                    continue;
                }
                let ssrc = st["ssrc"].as_str().unwrap();
                let ours = streams.iter().find(|s| s["ssrc"] == ssrc && s["src"] == st["src"] && s["dst"] == st["dst"]);
                let Some(ours) = ours else {
                    failures.push(format!("{name} {id}: stream {key} {ssrc} not tied to the call"));
                    continue;
                };
                checked_streams += 1;
                let want = st["packets"].as_u64().unwrap();
                let got = ours["packets"].as_u64().unwrap();
                // tshark stops calling packets RTP once a re-INVITE switched the session to T.38;
                // callvault keeps counting the RTP (same SSRC, PT 8) that still flows.
                let t38 = exp["frame_counts"]["t38"].as_u64().unwrap_or(0) > 0;
                let learned = LEARNED_STREAMS.iter().find(|(f, k, _, _)| *f == name && *k == key);
                if let Some((_, _, slack, why)) = learned {
                    skipped.push(format!("{name} {id} stream {key}: up to {slack} packets: {why}"));
                }
                let slack = learned.map_or(0, |l| l.2);
                if got != want && !(t38 && got > want) && !(got < want && want - got <= slack) {
                    failures.push(format!("{name} {id}: stream {key} packets {got} want {want}"));
                }
                // RFC 2833/4733 digits, in order, from the side that sent this stream.
                if let Some((_, _, why)) = DTMF_EXCEPTIONS.iter().find(|(f, k, _)| *f == name && *k == key) {
                    skipped.push(format!("{name} {id} stream {key} DTMF: {why}"));
                } else if let Some(want) = st["rfc2833_events"].as_str() {
                    let side = ours["side"].as_str().unwrap();
                    let got: String = rec["dtmf"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|d| d["side"] == side && d["source"] == "rfc4733")
                        .map(|d| d["digit"].as_str().unwrap())
                        .collect();
                    checked_dtmf += 1;
                    if got != want {
                        failures.push(format!("{name} {id}: stream {key} DTMF {got:?} want {want:?}"));
                    }
                }
            }
            // Audio: decodable media (G.711, G.722, Opus, G.729, GSM) gives a recording; other
            // codecs are named.
            let g711 = streams.iter().any(|s| {
                s["payload_types"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| [0, 3, 8, 9, 18].contains(&p.as_u64().unwrap_or(999)))
                    || s["codec"] == "opus"
            });
            let encrypted = !rec["encrypted"].as_array().unwrap().is_empty();
            if encrypted {
                // Encrypted media (ZRTP in this corpus) is never written as audio.
                encrypted_calls += 1;
                let noted = rec["notes"].as_array().unwrap().iter().any(|n| {
                    n.as_str().unwrap().contains("encrypted")
                        && n.as_str().unwrap().contains("not decryptable from the wire")
                });
                if !rec["audio"].is_null() || !noted || rec["capture_complete"] != false {
                    failures.push(format!("{name} {id}: encrypted media recorded or not said so: {}", rec["notes"]));
                }
            } else if g711 {
                if rec["audio"].is_null() {
                    failures.push(format!("{name} {id}: decodable media but no recording"));
                } else {
                    recordings += 1;
                }
            } else if !streams.is_empty() {
                let named = rec["codecs"]["caller"].is_string() || rec["codecs"]["callee"].is_string();
                let noted =
                    rec["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("not decoded"));
                if !(named && noted) {
                    failures.push(format!("{name} {id}: undecodable codec not named: {}", rec["codecs"]));
                }
            }
        }
    }
    println!(
        "checked {checked_calls} calls, {checked_streams} streams, {recordings} recordings, {checked_dtmf} DTMF, \
         {encrypted_calls} encrypted"
    );
    for s in &skipped {
        common::skipped(&format!("corpus: {s}"));
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(
        checked_calls >= 25 && checked_streams >= 25 && recordings >= 12 && checked_dtmf >= 3 && encrypted_calls >= 1,
        "the corpus was really walked"
    );
}

#[test]
fn zrtp_call_is_not_written_as_audio() {
    let Some(dir) = corpus_dir() else {
        common::skipped("corpus ZRTP test: no corpus (set CALLVAULT_CORPUS)");
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let out = replay(&[&dir.join("sip-rtp-g711u-zrtp-reinvite.pcap")], out_dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&out_dir.path().join("archive"));
    let calls: Vec<&Value> =
        recs.iter().map(|r| &r.value).filter(|v| !v["streams"].as_array().unwrap().is_empty()).collect();
    assert_eq!(calls.len(), 1, "{}", text(&out));
    let rec = calls[0];
    // ZRTP packets on the media port (no a=zrtp-hash in this capture's SDP) key both directions.
    let zrtp = |side: &str| (side.to_owned(), "ZRTP".to_owned());
    assert_eq!(common::encrypted_parties(rec), vec![zrtp("caller"), zrtp("callee")]);
    assert!(rec["audio"].is_null(), "no audio file: {}", rec["audio"]);
    assert!(common::files(&out_dir.path().join("archive")).iter().all(|f| !f.ends_with(".wav")));
    assert_eq!(rec["capture_complete"], false);
    let reasons = rec["incomplete_reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r.as_str().unwrap().contains("encrypted (SRTP/ZRTP/DTLS-SRTP")
            && r.as_str().unwrap().contains("not decryptable from the wire")),
        "{reasons:?}"
    );
    // The streams are still described (packets, loss), just not decoded.
    let packets: u64 = rec["streams"].as_array().unwrap().iter().map(|s| s["packets"].as_u64().unwrap()).sum();
    assert!(packets > 900, "{packets}");
}
