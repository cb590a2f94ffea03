//! Live capture through libpcap: a generated capture is replayed in real time with tcpreplay
//! into one end of a veth pair inside a network namespace made for the test, `callvault run`
//! captures on the other end, is stopped with SIGTERM, and must have finalised, recorded and
//! archived every call.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callgen::{CallSpec, Hangup, Outcome, Scenario};
use common::{have, records, skipped};

fn sh(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(cmd).status().is_ok_and(|s| s.success())
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn live_capture_on_a_veth_records_every_call_and_stops_cleanly_on_sigterm() {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !is_root || !have("ip") || !have("tcpreplay") {
        skipped("live capture test: needs root, iproute2 and tcpreplay");
        return;
    }
    let id = std::process::id();
    let ns = Netns(format!("cvtest{id}"));
    let (a, b) = (format!("cva{id}"), format!("cvb{id}"));
    let a = &a[..a.len().min(15)];
    let b = &b[..b.len().min(15)];
    assert!(sh(&format!(
        "ip netns add {n} && ip -n {n} link add {a} type veth peer name {b} && ip -n {n} link set {a} up && ip -n {n} link set {b} up",
        n = ns.0
    )));

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("live.pcap");
    let start = 1_735_689_600 * 1_000_000_000;
    let mut calls: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, start + i64::from(i) * 300_000_000, 2000)).collect();
    calls[1].outcome = Outcome::Answered { hangup: Hangup::Callee };
    calls[2].outcome = Outcome::Busy;
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();

    let mut cv = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_callvault"), "run", "--interface", b, "--buffer-mib", "16"])
        .arg("--output")
        .arg(dir.path().join("data"))
        .arg("--archive")
        .arg(dir.path().join("archive"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the capture is open (it logs when it starts capturing).
    std::thread::sleep(Duration::from_millis(1500));
    let replayed = Command::new("ip")
        .args(["netns", "exec", &ns.0, "tcpreplay", "--quiet", "--intf1", a])
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(replayed.success(), "tcpreplay failed");
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert!(sh(&format!("kill -TERM {}", cv.id())));
    let out = loop {
        if let Some(_status) = cv.try_wait().unwrap() {
            break cv.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "callvault did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\n{log}", out.status);
    assert!(log.contains("dropped by the capture buffer"), "kernel counters reported\n{log}");

    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 3, "{log}");
    for t in &truth.calls {
        let r = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).expect("record");
        assert_eq!(r.value["state"], t.expected_state, "{log}");
        let streams = r.value["streams"].as_array().unwrap();
        for (side, st) in [("caller", &t.caller), ("callee", &t.callee)] {
            if st.packets_sent == 0 {
                continue;
            }
            let s = streams.iter().find(|s| s["side"] == side).expect("stream");
            assert_eq!(s["packets"], u64::from(st.packets_sent), "{side} packets\n{log}");
        }
        assert_eq!(r.wav.is_some(), t.answer_ns.is_some(), "{log}");
        if let Some(w) = &r.wav {
            let [c0, c1] = common::channels(w);
            assert!(c0.iter().any(|&s| s != 0) && c1.iter().any(|&s| s != 0), "both parties audible");
        }
    }
}
