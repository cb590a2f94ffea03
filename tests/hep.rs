//! HEP export end to end: `callvault replay` on a generated capture with `[hep]` pointing at a
//! UDP socket of this test (standing in for a HOMER collector, on the real wire). Every
//! datagram is decoded twice: by a chunk walk written from the HEP3 specification here, and by
//! HOMER's own decoder (`hep-js`, installed by `scripts/deps.sh test`). What arrived is
//! compared with the generator's truth (every SIP message exactly once, with its Call-ID,
//! addresses, ports, transport and capture time), with the capture itself as tshark reads it
//! (each message's bytes exactly as on the wire, UDP datagrams and TCP streams alike), and with
//! the call records (one quality report per audio stream, values equal to the record's). On a
//! real capture from the corpus, every SIP message and the calls' RTCP (HEP type 5, JSON) are
//! compared with tshark's dissection of it, field by field.
//!
//! Live, `callvault run` on a veth pair fed by tcpreplay exports to a listener in the same
//! network namespace: each message arrives once with the capture time the call record's
//! ladder gives it (the kernel's time of the packet, not the time it was sent on).
//!
//! Debian's tshark (4.0) has no HEP dissector, so tshark reads the input capture, not the HEP
//! packets.

#![allow(clippy::disallowed_methods)] // the live test times what it waits for (clippy.toml)

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use callgen::{CallSpec, Codec, DirImpair, Hangup, Outcome, Scenario, SipTransport, TcpOptions, Truth};
use common::live::{Netns, Running, can_run, sh};
use common::{have, records, skipped, text};
use serde_json::Value;

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const NODE_ID: u32 = 4242;
const KEY: &str = "s3cret-hep";

/// Answered calls (G.711 µ-law and A-law, loss, duplicates, reordering and jitter on one), a busy one (no media, so
/// no report), one over TCP with a message split across segments and a coalesced 100 Trying,
/// and one over IPv6.
fn scenario() -> Scenario {
    let mut calls = Vec::new();
    for i in 0..6u32 {
        let mut c = CallSpec::answered(i, T0 + i64::from(i) * 150_000_000, 2000);
        c.outcome = Outcome::Answered { hangup: if i % 2 == 0 { Hangup::Caller } else { Hangup::Callee } };
        if i % 2 == 1 {
            c.codec = Codec::Pcma;
        }
        if i == 2 {
            c.impair.caller = DirImpair {
                loss: vec![3, 4, 40],
                duplicate: vec![10, 20],
                reorder: vec![30],
                jitter_ms: 6.0,
                ..DirImpair::default()
            };
        }
        calls.push(c);
    }
    let mut busy = CallSpec::answered(6, T0 + 1_000_000_000, 2000);
    busy.outcome = Outcome::Busy;
    calls.push(busy);
    let mut tcp = CallSpec::answered(7, T0 + 1_100_000_000, 2000);
    tcp.sip_transport = SipTransport::Tcp(TcpOptions { mss: 300, coalesce_trying: true });
    calls.push(tcp);
    calls.push(CallSpec::answered(8, T0 + 1_200_000_000, 2000).into_ipv6());
    Scenario { calls, seed: 11, ..Scenario::default() }
}

/// A UDP socket on loopback that keeps every datagram until [`Collector::stop`].
struct Collector {
    addr: SocketAddr,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Collector {
    fn start() -> Collector {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let addr = socket.local_addr().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    // Loopback delivers a datagram into the socket's buffer as it is sent: once
                    // the sender has exited, a quiet read means everything was read.
                    Err(_) if stop.load(Ordering::SeqCst) => return got,
                    Err(_) => {}
                }
            }
        });
        Collector { addr, done, thread }
    }

    fn stop(self) -> Vec<Vec<u8>> {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// A HEP packet walked chunk by chunk as the specification lays it out.
#[derive(Debug, Default)]
struct Hep {
    chunks: HashMap<u16, Vec<u8>>,
}

impl Hep {
    fn parse(d: &[u8]) -> Hep {
        assert_eq!(&d[..4], b"HEP3");
        assert_eq!(u16::from_be_bytes([d[4], d[5]]) as usize, d.len(), "total length");
        let mut hep = Hep::default();
        let mut at = 6;
        while at < d.len() {
            let vendor = u16::from_be_bytes([d[at], d[at + 1]]);
            let kind = u16::from_be_bytes([d[at + 2], d[at + 3]]);
            let len = u16::from_be_bytes([d[at + 4], d[at + 5]]) as usize;
            assert_eq!(vendor, 0, "generic chunks only");
            assert!(len >= 6 && at + len <= d.len(), "chunk {kind} length {len}");
            assert!(hep.chunks.insert(kind, d[at + 6..at + len].to_vec()).is_none(), "chunk {kind} twice");
            at += len;
        }
        hep
    }

    fn get(&self, kind: u16) -> &[u8] {
        self.chunks.get(&kind).map_or_else(|| panic!("no chunk {kind}"), Vec::as_slice)
    }

    fn u8(&self, kind: u16) -> u8 {
        let v = self.get(kind);
        assert_eq!(v.len(), 1, "chunk {kind}");
        v[0]
    }

    fn u16(&self, kind: u16) -> u16 {
        u16::from_be_bytes(self.get(kind).try_into().unwrap())
    }

    fn u32(&self, kind: u16) -> u32 {
        u32::from_be_bytes(self.get(kind).try_into().unwrap())
    }

    fn ip(&self, v4: u16, v6: u16) -> IpAddr {
        match self.u8(1) {
            2 => <[u8; 4]>::try_from(self.get(v4)).unwrap().into(),
            10 => <[u8; 16]>::try_from(self.get(v6)).unwrap().into(),
            f => panic!("family {f}"),
        }
    }

    fn src(&self) -> SocketAddr {
        SocketAddr::new(self.ip(3, 5), self.u16(7))
    }

    fn dst(&self) -> SocketAddr {
        SocketAddr::new(self.ip(4, 6), self.u16(8))
    }

    /// Capture time in microseconds.
    fn micros(&self) -> i64 {
        i64::from(self.u32(9)) * 1_000_000 + i64::from(self.u32(10))
    }

    fn text(&self, kind: u16) -> String {
        String::from_utf8(self.get(kind).to_vec()).unwrap()
    }
}

/// The directory `scripts/deps.sh test` installs hep-js into.
fn hep_js() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let dir = cache.join("callvault/hep-js");
    dir.join("node_modules/hep-js").is_dir().then_some(dir)
}

/// Every datagram decoded by hep-js (`decapsulate`), in order.
fn decode_with_hep_js(dir: &Path, datagrams: &[Vec<u8>], work: &Path) -> Vec<Value> {
    let input = work.join("datagrams.hex");
    std::fs::write(&input, datagrams.iter().map(hex::encode).collect::<Vec<_>>().join("\n")).unwrap();
    let script = "const hep = require('hep-js'); const fs = require('fs');\n\
                  for (const line of fs.readFileSync(process.argv[1], 'utf8').split('\\n')) {\n\
                    console.log(JSON.stringify(hep.decapsulate(Buffer.from(line, 'hex'))));\n\
                  }";
    let out = Command::new("node")
        .current_dir(dir)
        .env("NODE_PATH", dir.join("node_modules"))
        .arg("-e")
        .arg(script)
        .arg(&input)
        .output()
        .expect("run node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Each UDP datagram of the capture, as tshark reads it: (src, dst, µs) -> payload.
fn tshark_udp(capture: &Path) -> HashMap<(SocketAddr, SocketAddr, i64), Vec<u8>> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(capture)
        .args(["-Y", "sip && udp", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.payload"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut map = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('|').collect();
        let (secs, frac) = f[0].split_once('.').unwrap();
        let micros = secs.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap();
        let ip = |a: &str, b: &str| -> IpAddr { if a.is_empty() { b } else { a }.parse().unwrap() };
        let src = SocketAddr::new(ip(f[1], f[2]), f[5].parse().unwrap());
        let dst = SocketAddr::new(ip(f[3], f[4]), f[6].parse().unwrap());
        map.insert((src, dst, micros), hex::decode(f[7]).unwrap());
    }
    map
}

/// The bytes of TCP stream 0 each way, as tshark follows it: (client, server) data.
fn tshark_tcp_stream(capture: &Path) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args(["-q", "-z", "follow,tcp,raw,0"])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut client, mut server) = (Vec::new(), Vec::new());
    let text = String::from_utf8(out.stdout).unwrap();
    let body = text.split("Node 1:").nth(1).expect("a followed stream");
    for line in body.lines().skip(1) {
        if line.starts_with('=') {
            break;
        }
        match line.strip_prefix('\t') {
            Some(hex) => server.extend(hex::decode(hex.trim()).unwrap()),
            None => client.extend(hex::decode(line.trim()).unwrap()),
        }
    }
    (client, server)
}

fn config(dir: &Path, collector: SocketAddr, extra: &str) -> PathBuf {
    let key = dir.join("hep-key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let path = dir.join("callvault.toml");
    std::fs::write(
        &path,
        format!(
            "[metrics]\ntextfile = \"{}\"\n\n[hep]\ncollector = \"{collector}\"\nnode_id = {NODE_ID}\n\
             node_name = \"span-1\"\npassword_file = \"{}\"\n{extra}",
            dir.join("metrics.prom").display(),
            key.display()
        ),
    )
    .unwrap();
    path
}

fn run(capture: &Path, dir: &Path, config: &Path) -> std::process::Output {
    common::replay(&[capture], dir, &["--config", config.to_str().unwrap()])
}

/// Replays `capture` with HEP export to a collector of this test: the datagrams it received,
/// and each parsed.
fn export(capture: &Path, dir: &Path) -> (Vec<Vec<u8>>, Vec<Hep>) {
    let collector = Collector::start();
    let cfg = config(dir, collector.addr, "");
    let out = run(capture, dir, &cfg);
    let datagrams = collector.stop();
    assert!(out.status.success(), "{}", text(&out));
    let packets = datagrams.iter().map(|d| Hep::parse(d)).collect();
    (datagrams, packets)
}

/// A metric's value in the text file the run wrote.
fn metric(dir: &Path, name: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join("metrics.prom")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or_else(|| panic!("no {name} in\n{text}"), |v| v.trim().parse().unwrap())
}

/// The truth's SIP messages as (Call-ID, src, dst, µs, transport): every one must arrive once.
fn truth_messages(s: &Scenario, truth: &Truth) -> Vec<(String, SocketAddr, SocketAddr, i64, u8)> {
    let mut out = Vec::new();
    for (spec, t) in s.calls.iter().zip(&truth.calls) {
        let caller = SocketAddr::new(spec.caller_ip, spec.caller_sip_port);
        let callee = SocketAddr::new(spec.callee_ip, spec.callee_sip_port);
        let proto = if matches!(spec.sip_transport, SipTransport::Tcp(_)) { 6 } else { 17 };
        for m in &t.sip {
            let (src, dst) = if m.from_caller { (caller, callee) } else { (callee, caller) };
            out.push((t.call_id.clone(), src, dst, m.capture_ns / 1000, proto));
        }
    }
    out.sort();
    out
}

#[test]
fn every_sip_message_and_one_report_per_stream_reach_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario();
    let capture = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&s, &capture).unwrap();
    let (datagrams, packets) = export(&capture, dir.path());
    for p in &packets {
        assert_eq!(p.u32(12), NODE_ID, "capture id");
        assert_eq!(p.text(14), KEY, "auth key, without the file's newline");
        assert_eq!(p.text(19), "span-1", "node name");
    }
    let (sip, reports): (Vec<&Hep>, Vec<&Hep>) = packets.iter().partition(|p| p.u8(11) == 1);
    assert!(reports.iter().all(|p| p.u8(11) == 34), "only SIP (1) and QoS reports (34)");

    // Every SIP message of every call, exactly once, with its Call-ID, ends, time and transport.
    let mut got: Vec<_> = sip.iter().map(|p| (p.text(17), p.src(), p.dst(), p.micros(), p.u8(2))).collect();
    got.sort();
    assert_eq!(got, truth_messages(&s, &truth));
    assert_eq!(got.len() as u64, truth.sip_messages);
    for p in &sip {
        let family = if p.src().is_ipv4() { 2 } else { 10 };
        assert_eq!(p.u8(1), family);
    }

    // Each message's bytes exactly as on the wire: UDP datagrams as tshark reads them, and the
    // TCP call's messages, in order, are its stream each way.
    let udp = tshark_udp(&capture);
    let (mut to_callee, mut to_caller) = (Vec::new(), Vec::new());
    for p in &sip {
        let payload = p.get(15);
        let id = p.text(17);
        let header = format!("Call-ID: {id}\r\n");
        let compact = format!("i: {id}\r\n");
        let text = String::from_utf8_lossy(payload);
        assert!(text.contains(&header) || text.contains(&compact), "correlation id {id} is the message's Call-ID");
        if p.u8(2) == 17 {
            assert_eq!(udp.get(&(p.src(), p.dst(), p.micros())).map(Vec::as_slice), Some(payload), "{id}");
        } else if p.src().port() == s.calls[7].caller_sip_port && p.src().ip() == s.calls[7].caller_ip {
            to_callee.extend_from_slice(payload);
        } else {
            to_caller.extend_from_slice(payload);
        }
    }
    assert_eq!(udp.len(), sip.iter().filter(|p| p.u8(2) == 17).count(), "every UDP message");
    // Packets were sent in capture order; TCP messages of one direction keep their order.
    let (client, server) = tshark_tcp_stream(&capture);
    assert!(!client.is_empty() && !server.is_empty());
    assert_eq!(to_callee, client, "the caller's TCP stream");
    assert_eq!(to_caller, server, "the callee's TCP stream");

    // One quality report per audio stream of every record, with the record's values.
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), s.calls.len());
    let mut expected = 0;
    for rec in &recs {
        let r = &rec.value;
        let id = r["call_id"].as_str().unwrap();
        let end: chrono::DateTime<chrono::Utc> = r["end"].as_str().unwrap().parse().unwrap();
        for st in r["streams"].as_array().unwrap().iter().filter(|st| st["kind"] == "audio") {
            expected += 1;
            let src: SocketAddr = st["src"].as_str().unwrap().parse().unwrap();
            let dst: SocketAddr = st["dst"].as_str().unwrap().parse().unwrap();
            let found: Vec<&&Hep> =
                reports.iter().filter(|p| p.text(17) == id && p.src() == src && p.dst() == dst).collect();
            assert_eq!(found.len(), 1, "{id} {src}->{dst}");
            let p = found[0];
            assert_eq!(p.micros(), end.timestamp_micros(), "{id}: the call's end");
            let j: Value = serde_json::from_slice(p.get(15)).unwrap();
            assert_eq!(j["CORRELATION_ID"], id);
            assert_eq!(j["TYPE"], "HANGUP");
            assert_eq!(j["SRC_IP"], src.ip().to_string());
            assert_eq!(j["DST_PORT"], dst.port());
            assert_eq!(j["DIR"], u8::from(st["side"] == "callee"));
            assert_eq!(j["TOTAL_PK"], st["packets"], "{id}");
            assert_eq!(j["PACKET_LOSS"], st["lost"], "{id}");
            assert_eq!(j["OUT_ORDER"], st["out_of_order"], "{id}");
            assert_eq!(j["JITTER"], st["jitter_ms"], "{id}");
            assert_eq!(j["CODEC_NAME"], st["codec"], "{id}");
            assert_eq!(j["SSRC"], st["ssrc"], "{id}");
            let expected_pk =
                st["packets"].as_u64().unwrap() - st["duplicates"].as_u64().unwrap() + st["lost"].as_u64().unwrap();
            assert_eq!(j["EXPECTED_PK"], expected_pk, "{id}");
            assert_eq!(j["MOS"], st["quality"]["mos"], "{id}");
            assert_eq!(j["RFACTOR"], st["quality"]["r_factor"], "{id}");
            let mos = (st["quality"]["mos"].as_f64().unwrap() * 100.0).round() as u16;
            assert_eq!(p.u16(32), mos, "{id}: the MOS chunk");
        }
    }
    assert_eq!(reports.len(), expected, "no other reports");
    assert_eq!(expected, 16, "two streams for each of the 8 answered calls");
    let lossy = reports.iter().filter(|p| {
        let j: Value = serde_json::from_slice(p.get(15)).unwrap();
        j["PACKET_LOSS"] == 3
    });
    assert_eq!(lossy.count(), 1, "the call with loss reports it");

    assert_eq!(metric(dir.path(), "callvault_hep_sent_total{kind=\"sip\"}"), truth.sip_messages);
    assert_eq!(metric(dir.path(), "callvault_hep_sent_total{kind=\"report\"}"), expected as u64);
    for reason in ["queue_full", "send_error", "too_large"] {
        assert_eq!(metric(dir.path(), &format!("callvault_hep_dropped_total{{reason=\"{reason}\"}}")), 0);
    }

    // HOMER's own decoder reads the same fields (it knows no IPv6 chunks: IPv4 packets only).
    if !have("node") {
        return skipped("HEP packets decoded by hep-js: node is not installed");
    }
    let Some(js) = hep_js() else {
        return skipped("HEP packets decoded by hep-js: not installed (scripts/deps.sh test)");
    };
    let decoded = decode_with_hep_js(&js, &datagrams, dir.path());
    assert_eq!(decoded.len(), packets.len());
    for (p, d) in packets.iter().zip(&decoded) {
        let rc = &d["rcinfo"];
        assert_eq!(rc["payloadType"], p.u8(11));
        assert_eq!(rc["captureId"], NODE_ID);
        assert_eq!(rc["capturePass"], KEY);
        assert_eq!(rc["hepNodeName"], "span-1");
        assert_eq!(rc["correlation_id"], p.text(17));
        assert_eq!(rc["protocol"], p.u8(2));
        assert_eq!(d["payload"].as_str().map(str::as_bytes), Some(p.get(15)));
        let micros = rc["timeSeconds"].as_i64().unwrap() * 1_000_000 + rc["timeUseconds"].as_i64().unwrap();
        assert_eq!(micros, p.micros());
        if p.src().is_ipv4() {
            assert_eq!(rc["protocolFamily"], 2);
            assert_eq!(rc["srcIp"], p.src().ip().to_string());
            assert_eq!(rc["dstIp"], p.dst().ip().to_string());
            assert_eq!(rc["srcPort"], p.src().port());
            assert_eq!(rc["dstPort"], p.dst().port());
        } else {
            assert_eq!(rc["protocolFamily"], 10);
        }
    }
}

#[test]
fn an_unreachable_collector_costs_no_recording() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario();
    let capture = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&s, &capture).unwrap();
    // A loopback port nobody listens on: each send is answered by ICMP port unreachable.
    let nobody = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = config(dir.path(), nobody, "");
    let out = run(&capture, dir.path(), &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), s.calls.len(), "every call recorded");
    assert!(recs.iter().all(|r| r.value["capture_complete"] == true), "and complete");

    let sent = metric(dir.path(), "callvault_hep_sent_total{kind=\"sip\"}")
        + metric(dir.path(), "callvault_hep_sent_total{kind=\"report\"}");
    let failed = metric(dir.path(), "callvault_hep_dropped_total{reason=\"send_error\"}");
    assert!(failed > 0, "the refused sends are counted");
    assert_eq!(sent + failed, truth.sip_messages + 16, "every packet is either sent or counted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings = stderr.lines().filter(|l| l.contains("cannot send HEP") || l.contains("could not be sent")).count();
    assert!((1..=2).contains(&warnings), "logged once a minute, and summed up at the end:\n{stderr}");
}

#[test]
fn run_exports_each_message_with_its_capture_time() {
    if !can_run("HEP export from callvault run") || !have("python3") {
        return skipped("HEP export from callvault run: needs root, iproute2, tcpreplay and python3");
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("h");
    assert!(sh(&format!("ip -n {} link set lo up", ns.name)));
    let calls: Vec<CallSpec> = (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 300_000_000, 1500)).collect();
    let s = Scenario::new(calls);
    let capture = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&s, &capture).unwrap();

    // The collector: a UDP listener in the namespace that writes each datagram as a hex line.
    let received = dir.path().join("received.hex");
    let listener = "import socket, sys\n\
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                    s.bind(('127.0.0.1', 9060))\n\
                    out = open(sys.argv[1], 'w')\n\
                    print('listening', flush=True)\n\
                    while True:\n    out.write(s.recv(65536).hex() + '\\n'); out.flush()\n";
    let mut cmd = ns.exec("python3");
    cmd.args(["-u", "-c", listener]).arg(&received);
    let mut collector = Running::start(cmd);
    collector.wait_for("listening", Duration::from_secs(60));

    let cfg = dir.path().join("callvault.toml");
    std::fs::write(&cfg, "[hep]\ncollector = \"127.0.0.1:9060\"\nnode_id = 77\n").unwrap();
    let archive = dir.path().join("archive");
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_callvault"));
    cmd.arg("--config").arg(&cfg).args(["run", "--interface", &ns.b, "--buffer-mib", "16", "--user", "root"]);
    cmd.arg("--output").arg(dir.path().join("data")).arg("--archive").arg(&archive);
    let mut cv = Running::start(cmd);
    cv.wait_for("capturing", Duration::from_secs(60));
    ns.replay(&capture);
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    // The listener writes what the kernel delivered before callvault exited: a line for each
    // SIP message and each of the 6 RTCP reports, waited for (a few seconds at most) rather
    // than guessed, since a loaded machine may take its time to run it.
    let expected = truth.sip_messages as usize + 6;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&received).map_or(0, |t| t.lines().count()) < expected
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = collector.stop(Duration::from_secs(5));

    let lines = std::fs::read_to_string(&received).unwrap();
    let packets: Vec<Hep> = lines.lines().map(|l| Hep::parse(&hex::decode(l).unwrap())).collect();
    let mut got: Vec<(String, SocketAddr, SocketAddr, i64)> = packets
        .iter()
        .filter(|p| p.u8(11) == 1)
        .map(|p| {
            assert_eq!(p.u32(12), 77);
            (p.text(17), p.src(), p.dst(), p.micros())
        })
        .collect();
    got.sort();
    let mut want = Vec::new();
    let recs = records(&archive);
    assert_eq!(recs.len(), 3, "{log}");
    for rec in &recs {
        let id = rec.value["call_id"].as_str().unwrap();
        for step in rec.value["sip"]["ladder"].as_array().unwrap() {
            let at: chrono::DateTime<chrono::Utc> = step["at"].as_str().unwrap().parse().unwrap();
            let src: SocketAddr = step["src"].as_str().unwrap().parse().unwrap();
            let dst: SocketAddr = step["dst"].as_str().unwrap().parse().unwrap();
            want.push((id.to_owned(), src, dst, at.timestamp_micros()));
        }
    }
    want.sort();
    assert_eq!(want.len() as u64, truth.sip_messages);
    assert_eq!(got, want, "{log}");
    let reports = packets.iter().filter(|p| p.u8(11) == 34).count();
    assert_eq!(reports, 6, "two streams per call");
}

/// `$CALLVAULT_CORPUS`, else `../shared/corpus` beside the repository.
fn corpus() -> Option<PathBuf> {
    let d = std::env::var_os("CALLVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    d.join("expected.json").exists().then_some(d)
}

/// The first value of a tshark field list (`a,b,c`) as a number.
fn first(field: &str) -> Option<i64> {
    let v = field.split(',').next().filter(|v| !v.is_empty())?;
    match v.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn a_real_capture_exports_its_sip_and_rtcp_as_tshark_reads_them() {
    let Some(corpus) = corpus() else {
        return skipped("HEP export of a real capture: no corpus (set CALLVAULT_CORPUS)");
    };
    let capture = corpus.join("sip-rtp-g711a-rtcp-mgcp.pcap");
    let dir = tempfile::tempdir().unwrap();
    let (_, packets) = export(&capture, dir.path());

    // Every SIP message tshark finds, once, with its bytes, ends and time (REGISTERs too).
    let udp = tshark_udp(&capture);
    let mut sip: Vec<(SocketAddr, SocketAddr, i64, Vec<u8>)> =
        packets.iter().filter(|p| p.u8(11) == 1).map(|p| (p.src(), p.dst(), p.micros(), p.get(15).to_vec())).collect();
    sip.sort();
    let mut want: Vec<_> = udp.into_iter().map(|((s, d, t), payload)| (s, d, t, payload)).collect();
    want.sort();
    assert_eq!(sip.len(), want.len());
    assert!(sip == want, "the SIP messages differ from tshark's");

    // RTCP of the calls: each packet as tshark dissects it, correlated with its call.
    let call_ids: Vec<String> =
        records(&dir.path().join("archive")).iter().map(|r| r.value["call_id"].as_str().unwrap().to_owned()).collect();
    let fields = [
        "frame.time_epoch",
        "ip.src",
        "udp.srcport",
        "ip.dst",
        "udp.dstport",
        "rtcp.pt",
        "rtcp.senderssrc",
        "rtcp.sender.packetcount",
        "rtcp.sender.octetcount",
        "rtcp.timestamp.ntp.msw",
        "rtcp.timestamp.rtp",
        "rtcp.ssrc.identifier",
        "rtcp.ssrc.fraction",
        "rtcp.ssrc.cum_nr",
        "rtcp.ssrc.ext_high",
        "rtcp.ssrc.jitter",
        "rtcp.ssrc.lsr",
        "rtcp.ssrc.dlsr",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&capture).args(["-Y", "rtcp", "-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let o = cmd.output().expect("run tshark");
    assert!(o.status.success());
    let mut tshark: HashMap<(SocketAddr, SocketAddr, i64), Vec<String>> = HashMap::new();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let f: Vec<String> = line.split('|').map(str::to_owned).collect();
        let (secs, frac) = f[0].split_once('.').unwrap();
        let micros = secs.parse::<i64>().unwrap() * 1_000_000 + frac[..6].parse::<i64>().unwrap();
        let src = SocketAddr::new(f[1].parse().unwrap(), f[2].parse().unwrap());
        let dst = SocketAddr::new(f[3].parse().unwrap(), f[4].parse().unwrap());
        tshark.insert((src, dst, micros), f);
    }
    let rtcp: Vec<&Hep> = packets.iter().filter(|p| p.u8(11) == 5).collect();
    assert!(!rtcp.is_empty(), "the answered call's RTCP is exported");
    for p in &rtcp {
        assert!(call_ids.contains(&p.text(17)), "correlated with a recorded call");
        let f = tshark.get(&(p.src(), p.dst(), p.micros())).expect("a packet tshark sees as RTCP");
        let j: Value = serde_json::from_slice(p.get(15)).unwrap();
        let ctx = format!("{} {:?}", p.micros(), f);
        assert_eq!(j["type"].as_i64(), first(&f[5]), "{ctx}");
        assert_eq!(j["ssrc"].as_i64(), first(&f[6]), "{ctx}");
        let info = &j["sender_information"];
        assert_eq!(info["packets"].as_i64(), first(&f[7]), "{ctx}");
        assert_eq!(info["octets"].as_i64(), first(&f[8]), "{ctx}");
        assert_eq!(info["ntp_timestamp_sec"].as_i64(), first(&f[9]), "{ctx}");
        assert_eq!(info["rtp_timestamp"].as_i64(), first(&f[10]), "{ctx}");
        let blocks = j["report_blocks"].as_array().unwrap();
        let n = f[12].split(',').filter(|v| !v.is_empty()).count();
        assert_eq!((blocks.len(), j["report_count"].as_u64()), (n, Some(n as u64)), "{ctx}");
        for (i, b) in blocks.iter().enumerate() {
            let nth = |k: usize| f[k].split(',').nth(i).map(|v| first(v).unwrap());
            assert_eq!(b["source_ssrc"].as_i64(), nth(11), "{ctx}");
            assert_eq!(b["fraction_lost"].as_i64(), nth(12), "{ctx}");
            assert_eq!(b["packets_lost"].as_i64(), nth(13), "{ctx}");
            assert_eq!(b["highest_seq_no"].as_i64(), nth(14), "{ctx}");
            assert_eq!(b["ia_jitter"].as_i64(), nth(15), "{ctx}");
            assert_eq!(b["lsr"].as_i64(), nth(16), "{ctx}");
            assert_eq!(b["dlsr"].as_i64(), nth(17), "{ctx}");
        }
    }
    assert_eq!(metric(dir.path(), "callvault_hep_sent_total{kind=\"rtcp\"}"), rtcp.len() as u64);
    // And every RTCP packet of a recorded stream's RTCP ports (RTP port + 1) is among them; the
    // RTCP of the stream MGCP set up belongs to no SIP call and is not exported.
    let recs = records(&dir.path().join("archive"));
    let plus1 = |a: &Value| -> SocketAddr {
        let a: SocketAddr = a.as_str().unwrap().parse().unwrap();
        SocketAddr::new(a.ip(), a.port() + 1)
    };
    let ports: Vec<(SocketAddr, SocketAddr)> = recs
        .iter()
        .flat_map(|r| r.value["streams"].as_array().unwrap().clone())
        .map(|st| (plus1(&st["src"]), plus1(&st["dst"])))
        .collect();
    let of_calls: Vec<_> = tshark.keys().filter(|(s, d, _)| ports.contains(&(*s, *d))).collect();
    assert!(!of_calls.is_empty() && of_calls.len() < tshark.len());
    assert_eq!(of_calls.len(), rtcp.len(), "each of the calls' RTCP packets, once");
}
