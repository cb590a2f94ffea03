//! Live capture of real SIP traffic from sipp (Debian `sip-tester`): two network namespaces
//! joined by a veth pair, sipp's `uac_pcap` scenario (PCMA audio and an RFC 2833 digit played
//! from its bundled captures, every call with the same SSRCs) in one against `uas -rtp_echo` in
//! the other (it answers every call with one media address, 10.77.0.2:6000, declaring PCMU
//! alone, and echoes what it gets). `callvault run` captures on the callee's end, tcpdump on
//! the caller's end.
//!
//! The truth comes from tcpdump's capture, read by tshark: which media ports each Call-ID's
//! INVITE offered, and every RTP packet. Each call's record must list exactly its own streams,
//! and both channels must hold exactly that call's payloads, at the places the record's
//! placement (anchor and slips) gives, and silence elsewhere.
//!
//! Beside them, sipp's plain `uac` calls a sipp that receives INVITEs and never answers: the
//! INVITE is retransmitted and given up, and callvault, still running, must end that call by
//! its own timer (timer B) rather than leave it in setup until it is stopped.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod common;
mod gen_check;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{self, Netns, Running};
use common::{channels, have, records, skipped};
use mixer::mix::g711::ALAW_TO_LINEAR;

const CALLS: usize = 10;
const CALLER_IP: &str = "10.77.0.1";
const CALLEE_IP: &str = "10.77.0.2";
const ECHO: &str = "10.77.0.2:6000";
/// How long after the first INVITE callvault keeps running: past timer B (32 s) and a sweep.
const RUN_FOR: Duration = Duration::from_secs(38);

/// A UAS that takes INVITEs and never answers them.
const NO_ANSWER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="never answers">
  <recv request="INVITE"/>
  <pause milliseconds="60000"/>
</scenario>
"#;

/// `program args...` in the namespace `ns`, run in `dir`, its output collected.
fn spawn(ns: &Netns, args: &[&str], dir: &Path) -> Running {
    let mut cmd = ns.exec(args[0]);
    cmd.args(&args[1..]).current_dir(dir);
    Running::start(cmd)
}

/// A stream as the record keys it: side, SSRC, source, destination.
type StreamKey = (String, String, String, String);

/// One RTP packet of the capture beside.
#[derive(Debug, Clone)]
struct Rtp {
    src: String,
    dst: String,
    ssrc: String,
    ts: u32,
    pt: u8,
    payload: Vec<u8>,
}

/// `tshark -T fields` over a capture, one row per packet.
fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-o", "rtp.heuristic_rtp:TRUE", "-Y", filter, "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

/// Bytes as tshark prints them: hex digits, with or without `:` between bytes.
fn hex_bytes(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|c| c.is_ascii_hexdigit()).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

#[test]
fn sipp_calls_through_an_echo_server_each_get_exactly_their_own_media() {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let tools = ["ip", "sipp", "tcpdump", "tshark"];
    if !is_root || !tools.iter().all(|t| have(t)) || !Path::new("/usr/share/sip-tester/g711a.pcap").exists() {
        skipped("live sipp test: needs root, iproute2, sipp (Debian sip-tester), tcpdump and tshark");
        return;
    }
    let (a, b) = live::linked_pair("s", &format!("{CALLER_IP}/24"), &format!("{CALLEE_IP}/24"));
    let (va, vb) = (a.a.as_str(), b.b.as_str());

    let dir = tempfile::tempdir().unwrap();
    // uac_pcap plays "pcap/g711a.pcap" and "pcap/dtmf_2833_1.pcap", relative to where it runs.
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).unwrap();
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    let mut cv = spawn(
        &b,
        &[
            env!("CARGO_BIN_EXE_callvault"),
            "run",
            "--interface",
            vb,
            "--buffer-mib",
            "16",
            "--user",
            "root",
            "--output",
            data.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ],
        dir.path(),
    );
    let beside = dir.path().join("beside.pcap");
    let mut tcpdump = spawn(&a, &["tcpdump", "-i", va, "-U", "-w", beside.to_str().unwrap(), "udp"], dir.path());
    let uas = spawn(
        &b,
        &["sipp", "-sn", "uas", "-rtp_echo", "-i", CALLEE_IP, "-mi", CALLEE_IP, "-p", "5060", "-nostdin"],
        dir.path(),
    );
    std::fs::write(dir.path().join("no_answer.xml"), NO_ANSWER).unwrap();
    let silent_uas = spawn(
        &b,
        &["sipp", "-sf", "no_answer.xml", "-i", CALLEE_IP, "-p", "5099", "-mp", "7000", "-nostdin"],
        dir.path(),
    );
    // callvault and tcpdump open their captures (each says so: on a cold machine either may
    // take seconds), sipp binds (a UAC's INVITE is retransmitted if it were not yet).
    cv.wait_for("capturing", Duration::from_secs(60));
    tcpdump.wait_for("listening on", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let unanswered = spawn(
        &a,
        &[
            "sipp",
            "-sn",
            "uac",
            &format!("{CALLEE_IP}:5099"),
            "-i",
            CALLER_IP,
            "-p",
            "5070",
            "-mp",
            "7000",
            "-m",
            "1",
            "-nostdin",
        ],
        dir.path(),
    );
    let calls = CALLS.to_string();
    let mut uac = spawn(
        &a,
        &[
            "sipp",
            "-sn",
            "uac_pcap",
            &format!("{CALLEE_IP}:5060"),
            "-i",
            CALLER_IP,
            "-mi",
            CALLER_IP,
            "-p",
            "5060",
            "-m",
            &calls,
            "-r",
            "10",
            "-nostdin",
        ],
        dir.path(),
    );
    let uac_status = uac.wait_exit("sipp uac", Duration::from_secs(90));
    // The unanswered call: sipp gives up on its own; callvault keeps running past timer B.
    while started.elapsed() < RUN_FOR {
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in [tcpdump, uas, silent_uas] {
        p.stop(Duration::from_secs(10));
    }
    let (_, unanswered_log, _) = unanswered.stop(Duration::from_secs(10));
    let (cv_status, cv_log, _) = cv.stop(Duration::from_secs(60));
    assert!(uac_status.success(), "sipp uac failed\n{}", uac.log());
    assert!(cv_status.success(), "callvault exit {cv_status:?}\n{cv_log}");

    // The truth, from the capture beside: each Call-ID's media port (its INVITE's SDP), and
    // every RTP packet.
    let offers = tshark(&beside, "sip.Method == \"INVITE\" && udp.dstport == 5060", &["sip.Call-ID", "sdp.media.port"]);
    let port_of: BTreeMap<String, String> = offers.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(port_of.len(), CALLS, "{port_of:?}");
    let invites = tshark(&beside, "sip.Method == \"INVITE\" && udp.dstport == 5099", &["sip.Call-ID"]);
    assert!(!invites.is_empty(), "the unanswered INVITE was sent\n{unanswered_log}");
    let unanswered_id = invites[0][0].clone();
    let rows = tshark(
        &beside,
        "rtp",
        &["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.ssrc", "rtp.timestamp", "rtp.p_type", "rtp.payload"],
    );
    let packets: Vec<Rtp> = rows
        .iter()
        .map(|r| Rtp {
            src: format!("{}:{}", r[0], r[1]),
            dst: format!("{}:{}", r[2], r[3]),
            ssrc: format!("{:#010x}", u32::from_str_radix(r[4].trim_start_matches("0x"), 16).unwrap()),
            ts: r[5].parse().unwrap(),
            pt: r[6].parse().unwrap(),
            payload: hex_bytes(&r[7]),
        })
        .collect();
    assert!(packets.len() >= CALLS * 2 * 246, "{} RTP packets beside", packets.len());

    let mut recs = records(&archive);
    assert_eq!(recs.len(), CALLS + 1, "{cv_log}");
    let i = recs.iter().position(|r| r.value["call_id"] == unanswered_id.as_str()).expect("unanswered call");
    let rec = recs.remove(i).value;
    assert_eq!((rec["state"].as_str(), rec["end_reason"].as_str()), (Some("setup"), Some("setup_timeout")), "{rec}");
    assert!(rec["sip"]["retransmissions"].as_u64() > Some(0), "{rec}");
    let mut misattributed = 0u64;
    let mut seen_streams = BTreeSet::new();
    for rec in &recs {
        let v = &rec.value;
        let call_id = v["call_id"].as_str().unwrap();
        let ctx = format!("call {call_id}");
        let caller = format!("{CALLER_IP}:{}", port_of[call_id]);
        assert_eq!(v["state"], "completed", "{ctx}");
        assert_eq!(v["caller"]["media"], caller.as_str(), "{ctx}");
        assert_eq!(v["callee"]["media"], ECHO, "{ctx}");
        // Exactly its own streams: each direction's audio and its RFC 2833 digit stream.
        let mut want: BTreeMap<StreamKey, (u64, Vec<&Rtp>)> = BTreeMap::new();
        for p in &packets {
            let side = if p.src == caller && p.dst == ECHO {
                "caller"
            } else if p.src == ECHO && p.dst == caller {
                "callee"
            } else {
                continue;
            };
            let e = want.entry((side.into(), p.ssrc.clone(), p.src.clone(), p.dst.clone())).or_default();
            e.0 += 1;
            e.1.push(p);
        }
        let got: BTreeMap<StreamKey, u64> = v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let f = |k: &str| s[k].as_str().unwrap().to_owned();
                ((f("side"), f("ssrc"), f("src"), f("dst")), s["packets"].as_u64().unwrap())
            })
            .collect();
        for (key, n) in &got {
            let (side, _, src, dst) = key;
            let own_end = if side == "caller" { src } else { dst };
            if *own_end != caller {
                misattributed += n;
            }
            assert!(seen_streams.insert(key.clone()), "{ctx}: stream {key:?} in two records");
        }
        let want_counts: BTreeMap<_, u64> = want.iter().map(|(k, (n, _))| (k.clone(), *n)).collect();
        assert_eq!(got, want_counts, "{ctx}: streams");
        let streams = v["streams"].as_array().unwrap();
        for s in streams {
            let events = s["payload_types"] == serde_json::json!([101]);
            assert_eq!(s["kind"], if events { "events" } else { "audio" }, "{ctx}: {s}");
            assert_eq!(s["codec"], if events { "telephone-event" } else { "PCMA" }, "{ctx}: {s}");
            if events {
                assert_eq!((s["events"].as_u64(), s["duplicates"].as_u64()), (Some(1), Some(2)), "{ctx}: {s}");
                assert!(s["jitter_ms"].is_null() && s["quality"].is_null(), "{ctx}: {s}");
            }
        }
        assert_eq!(
            (v["codecs"]["caller"].as_str(), v["codecs"]["callee"].as_str()),
            (Some("PCMA"), Some("PCMA")),
            "{ctx}"
        );
        let notes = v["notes"].to_string();
        assert!(
            notes.contains("the callee sent PCMA (PT 8)") && notes.contains("(it declared PCMU (PT 0))"),
            "{notes}"
        );
        assert_eq!(v["dtmf"].as_array().unwrap().len(), 2, "{ctx}: the digit, sent and echoed");

        // Both channels, sample by sample: every audio packet decoded where the stream's
        // placement puts it, silence everywhere else.
        let wav = rec.wav.as_deref().unwrap_or_else(|| panic!("{ctx}: no audio"));
        let chans = channels(wav);
        for (ch, side) in chans.iter().zip(["caller", "callee"]) {
            let mut expect = vec![0i16; ch.len()];
            for s in streams.iter().filter(|s| s["side"] == side && s["kind"] == "audio") {
                let key = (
                    side.to_owned(),
                    s["ssrc"].as_str().unwrap().to_owned(),
                    s["src"].as_str().unwrap().to_owned(),
                    s["dst"].as_str().unwrap().to_owned(),
                );
                let placement = &s["placement"];
                // One timebase per stream: its packets' capture times (here those of the capture
                // beside, not callvault's) need not choose between anchors.
                assert_eq!(placement["anchors"].as_array().map(Vec::len), Some(1), "{ctx}: {s}");
                for p in want[&key].1.iter().filter(|p| p.pt == 8) {
                    let at = gen_check::placed_frame(placement, p.ts, i64::MAX);
                    for (j, &b) in p.payload.iter().enumerate() {
                        let k = (at + j as i64) as usize;
                        if k < expect.len() {
                            expect[k] = ALAW_TO_LINEAR[b as usize];
                        }
                    }
                }
            }
            if let Some(i) = (0..ch.len()).find(|&i| ch[i] != expect[i]) {
                let run = (i..ch.len()).take_while(|&j| ch[j] != expect[j]).count();
                panic!(
                    "{ctx}: {side} channel differs from frame {i} for {run} frames: got {} want {}",
                    ch[i], expect[i]
                );
            }
        }
    }
    println!("misattributed packets: {misattributed}");
    assert_eq!(misattributed, 0);
}
