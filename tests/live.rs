//! Live capture through libpcap: a generated capture is replayed with tcpreplay into one end
//! of a veth pair inside a network namespace made for the test, `callvault run` captures on the
//! other end, is stopped with SIGTERM, and must have finalised, recorded and archived every
//! call. Replayed at 2x and 5x real time (so every capture time is compressed), the audio must
//! be what `callvault replay` makes of the file: each channel sample for sample, the parties
//! within one packet of the same alignment.
//!
//! Namespace and interface names start with `$CALLVAULT_NETNS_PREFIX` (default `cv`) and the
//! test's process id, so several checkouts can run these tests at once.

mod common;
mod gen_check;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callgen::{CallSpec, Delay, Hangup, Outcome, Party, Scenario};
use common::{Rec, channels, have, records, skipped, text};

fn sh(cmd: &str) -> bool {
    Command::new("sh").arg("-c").arg(cmd).status().is_ok_and(|s| s.success())
}

/// A network namespace with a veth pair in it, both ends up; removed on drop.
struct Veth {
    ns: String,
    /// The end tcpreplay writes to.
    a: String,
    /// The end callvault captures on.
    b: String,
}

impl Veth {
    /// `None` (and the test recorded as skipped) without root, iproute2 or tcpreplay.
    fn new(what: &str, tag: &str) -> Option<Veth> {
        let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if !is_root || !have("ip") || !have("tcpreplay") {
            skipped(&format!("{what}: needs root, iproute2 and tcpreplay"));
            return None;
        }
        let prefix = std::env::var("CALLVAULT_NETNS_PREFIX").unwrap_or_else(|_| "cv".into());
        let id = std::process::id();
        let name = |end: &str| {
            let n = format!("{prefix}{tag}{end}{id}");
            n[..n.len().min(15)].to_owned()
        };
        let v = Veth { ns: format!("{prefix}test{tag}{id}"), a: name("a"), b: name("b") };
        assert!(sh(&format!(
            "ip netns add {n} && ip -n {n} link add {a} type veth peer name {b} && ip -n {n} link set {a} up && ip -n {n} link set {b} up",
            n = v.ns,
            a = v.a,
            b = v.b
        )));
        Some(v)
    }

    /// Runs `callvault run` on the capture end, replays `pcap` into the other end with
    /// `tcpreplay_args`, stops callvault with SIGTERM and returns its output.
    fn record(&self, pcap: &Path, out: &Path, tcpreplay_args: &[&str]) -> Output {
        let mut cv = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_callvault"), "run", "--interface", &self.b])
            .args(["--buffer-mib", "16"])
            .arg("--output")
            .arg(out.join("data"))
            .arg("--archive")
            .arg(out.join("archive"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the capture is open (it logs when it starts capturing).
        std::thread::sleep(Duration::from_millis(1500));
        let replayed = Command::new("ip")
            .args(["netns", "exec", &self.ns, "tcpreplay", "--quiet", "--intf1", &self.a])
            .args(tcpreplay_args)
            .arg(pcap)
            .status()
            .unwrap();
        assert!(replayed.success(), "tcpreplay failed");
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        assert!(sh(&format!("kill -TERM {}", cv.id())));
        loop {
            if let Some(_status) = cv.try_wait().unwrap() {
                break cv.wait_with_output().unwrap();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "callvault did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn live_capture_on_a_veth_records_every_call_and_stops_cleanly_on_sigterm() {
    let Some(veth) = Veth::new("live capture test", "") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("live.pcap");
    let start = 1_735_689_600 * 1_000_000_000;
    let mut calls: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, start + i64::from(i) * 300_000_000, 2000)).collect();
    calls[1].outcome = Outcome::Answered { hangup: Hangup::Callee };
    calls[2].outcome = Outcome::Busy;
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let out = veth.record(&pcap, dir.path(), &[]);
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

/// Where each party's first packet landed in a call's recording, and its channels.
fn starts(scenario: &Scenario, call: usize, rec: &Rec) -> ([i64; 2], [Vec<i16>; 2]) {
    let streams = rec.value["streams"].as_array().unwrap();
    let start = |party: Party| {
        let first = &gen_check::sent(scenario, call, party)[0];
        let st = streams.iter().find(|s| s["side"] == party.name()).unwrap();
        gen_check::placed_frame(&st["placement"], first.ts, first.capture_ns)
    };
    ([start(Party::Caller), start(Party::Callee)], channels(rec.wav.as_deref().unwrap()))
}

#[test]
fn tcpreplay_at_2x_and_5x_gives_the_same_audio_as_replay() {
    let Some(veth) = Veth::new("live capture at 2x and 5x", "s") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fast.pcap");
    let start = 1_735_689_600 * 1_000_000_000;
    let calls: Vec<CallSpec> = (0..2)
        .map(|i| {
            let mut c = CallSpec::answered(i, start + i64::from(i) * 500_000_000, 20_000);
            c.impair.caller.delay = Some(Delay::Uniform { max_ms: 10.0 });
            c.impair.callee.delay = Some(Delay::Uniform { max_ms: 10.0 });
            c
        })
        .collect();
    let scenario = Scenario { calls, seed: 31, ..Scenario::default() };
    let truth = callgen::write_pcap(&scenario, &pcap).unwrap();
    let reference = dir.path().join("replay");
    let out = common::replay(&[&pcap], &reference, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let replayed = records(&reference.join("archive"));
    for speed in ["2", "5"] {
        let live_dir = dir.path().join(format!("x{speed}"));
        let out = veth.record(&pcap, &live_dir, &["--multiplier", speed]);
        let log = text(&out);
        assert!(out.status.success(), "{log}");
        let live = records(&live_dir.join("archive"));
        assert_eq!(live.len(), truth.calls.len(), "{speed}x\n{log}");
        for (i, t) in truth.calls.iter().enumerate() {
            let ctx = format!("{speed}x call {}", t.call_id);
            let find = |recs: &[Rec]| recs.iter().position(|r| r.value["call_id"] == t.call_id.as_str()).unwrap();
            let (l, r) = (&live[find(&live)], &replayed[find(&replayed)]);
            for s in l.value["streams"].as_array().unwrap() {
                assert_eq!((s["lost"].as_u64(), s["late"].as_u64()), (Some(0), Some(0)), "{ctx}: {s}");
                assert_eq!(s["placement"]["samples_inserted"], 0, "{ctx}: no slip for a common clock");
            }
            let (ls, lc) = starts(&scenario, i, l);
            let (rs, rc) = starts(&scenario, i, r);
            for ch in 0..2 {
                // The same samples from the party's first packet on; silence before it.
                let (a, b) = (&lc[ch][ls[ch] as usize..], &rc[ch][rs[ch] as usize..]);
                let n = a.len().min(b.len());
                assert!(a.len().abs_diff(b.len()) <= 160, "{ctx}: channel {ch}: {} vs {} frames", a.len(), b.len());
                if let Some(k) = (0..n).find(|&k| a[k] != b[k]) {
                    panic!("{ctx}: channel {ch} differs {k} frames after its first packet");
                }
                assert!(a[n..].iter().chain(&b[n..]).all(|&x| x == 0), "{ctx}: channel {ch} tail");
                assert!(lc[ch][..ls[ch] as usize].iter().all(|&x| x == 0), "{ctx}: channel {ch} before its start");
            }
            // The parties' alignment: within one packet of the file's.
            let (live_gap, file_gap) = (ls[1] - ls[0], rs[1] - rs[0]);
            assert!(
                (live_gap - file_gap).abs() <= 160,
                "{ctx}: callee - caller {live_gap} frames live, {file_gap} from the file"
            );
        }
    }
}
