//! Real SIP over SCTP from sipp (Debian `sip-tester`, built with SCTP: `-t s1`): sipp's `uac`
//! calls sipp's `uas` over one SCTP association on the loopback of a network namespace made
//! for the test, tcpdump captures it, and callvault's replay of that capture must find every
//! call, over SCTP, ended by its BYE, and as many SIP messages as tshark decodes.
//!
//! It needs the kernel's SCTP (the `sctp` module): where the kernel has none (containers
//! without the module, `socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)` failing with "protocol
//! not supported") the test records a skip; SIP over SCTP is then proven on generated captures
//! (`tests/replay_transports.rs`) only.

#![allow(clippy::disallowed_methods)] // tests time themselves (clippy.toml)

mod common;

use std::process::Command;
use std::time::Duration;

use common::live::{self, Netns, Running};
use common::{have, records, replay, skipped, text};

const CALLS: usize = 3;

#[test]
fn sipp_calls_over_sctp_are_recorded() {
    if !live::can_run("live_sipp_sctp") {
        return;
    }
    if !(have("sipp") && have("tcpdump") && have("tshark")) {
        skipped("live_sipp_sctp: needs sipp (Debian sip-tester), tcpdump and tshark");
        return;
    }
    let protocols = std::fs::read_to_string("/proc/net/protocols").unwrap_or_default();
    if !protocols.lines().any(|l| l.starts_with("SCTP ")) {
        skipped(
            "live_sipp_sctp: sipp over SCTP needs the kernel's sctp module, which this machine lacks \
             (no SCTP in /proc/net/protocols); SIP over SCTP tested on generated captures only",
        );
        return;
    }
    let ns = Netns::new("s");
    assert!(ns.exec("ip").args(["link", "set", "lo", "up"]).status().unwrap().success());
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("sctp.pcap");
    let mut dump = ns.exec("tcpdump");
    dump.args(["-i", "lo", "-U", "-w"]).arg(&pcap).arg("sctp");
    let mut tcpdump = Running::start(dump);
    tcpdump.wait_for("listening on", Duration::from_secs(60));
    let mut uas = ns.exec("sipp");
    uas.args(["-sn", "uas", "-t", "s1", "-i", "127.0.0.1", "-p", "5060", "-nostdin"]).current_dir(dir.path());
    let uas = Running::start(uas);
    std::thread::sleep(Duration::from_millis(500));
    let mut uac = ns.exec("sipp");
    uac.args(["-sn", "uac", "-t", "s1", "-i", "127.0.0.1", "-p", "5070", "-nostdin", "-m"])
        .arg(CALLS.to_string())
        .args(["-r", "5", "-d", "200", "127.0.0.1:5060"])
        .current_dir(dir.path());
    let mut uac = Running::start(uac);
    let status = uac.wait_exit("sipp uac over SCTP", Duration::from_secs(60));
    assert!(status.success(), "sipp uac failed\n{}\n{}", uac.log(), uas.log());
    std::thread::sleep(Duration::from_millis(300));
    uas.stop(Duration::from_secs(10));
    tcpdump.stop(Duration::from_secs(10));

    let out = replay(&[&pcap], dir.path(), &["--metrics-out", dir.path().join("m.txt").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), CALLS, "one record per sipp call\n{}", text(&out));
    for r in &recs {
        assert_eq!(r.value["sip"]["transport"], "sctp", "{}", r.value["call_id"]);
        assert_eq!(r.value["state"], "completed", "{}", r.value["call_id"]);
    }
    let tshark = Command::new("tshark")
        .args(["-o", "sctp.reassembly:TRUE", "-r"])
        .arg(&pcap)
        .args(["-Y", "sip && sctp", "-T", "fields", "-e", "sip.Call-ID"])
        .output()
        .unwrap();
    let decoded: usize = String::from_utf8_lossy(&tshark.stdout).lines().map(|l| l.split(',').count()).sum();
    let metrics = std::fs::read_to_string(dir.path().join("m.txt")).unwrap();
    let ours = metrics
        .lines()
        .find(|l| l.starts_with("callvault_capture_sip_transport_messages_total{transport=\"sctp\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
        .unwrap();
    assert_eq!(ours, decoded, "SIP messages over SCTP: callvault against tshark");
}
