//! Live capture through libpcap on a veth pair inside a network namespace made for each test:
//! tcpreplay sends generated calls into one end in real time, `callvault run` captures on the
//! other. The wire carries nothing else (IPv6 is off in the namespace), so "no further
//! packet" is what the kernel's own counters show.
//!
//! Replayed at 2x and 5x real time (so every capture time is compressed), the audio must be
//! what `callvault replay` makes of the file: each channel sample for sample, the parties
//! within one packet of the same alignment.
//!
//! Namespace and interface names start with `$CALLVAULT_NETNS_PREFIX` (default `cv`) and the
//! test's process id, so several checkouts can run these tests at once.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod common;
mod gen_check;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use callgen::{CallSpec, Delay, Hangup, Outcome, Party, Scenario, Truth};
use common::live::{Netns, Running, can_run, kernel_counters, sh};
use common::{Rec, channels, records, text};

const START: i64 = 1_735_689_600 * 1_000_000_000;

/// Writes a capture of `calls` (numbered from `first`) to `path`.
fn calls(path: &Path, first: u32, n: u32, talk_ms: u32) -> Truth {
    let calls: Vec<CallSpec> =
        (first..first + n).map(|i| CallSpec::answered(i, START + i64::from(i) * 300_000_000, talk_ms)).collect();
    callgen::write_pcap(&Scenario::new(calls), path).unwrap()
}

/// `callvault run` on the namespace's capture end, as root that stays root (these tests do
/// not depend on a service user), with `args`.
fn run(ns: &Netns, args: &[&str]) -> Running {
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["run", "--interface", &ns.b, "--buffer-mib", "16"]).args(args);
    if !args.contains(&"--user") {
        cmd.args(["--user", "root"]);
    }
    let mut cv = Running::start(cmd);
    cv.wait_for("capturing", Duration::from_secs(60));
    cv
}

/// A namespace and a temporary directory with the data directory and archive paths in it.
struct Fixture {
    ns: Netns,
    dir: tempfile::TempDir,
    data: String,
    archive: String,
}

impl Fixture {
    /// `None` (recorded as skipped) when live tests cannot run here.
    fn new(test: &str, tag: &str) -> Option<Fixture> {
        if !can_run(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let s = |p: PathBuf| p.to_str().unwrap().to_owned();
        let (data, archive) = (s(dir.path().join("data")), s(dir.path().join("archive")));
        Some(Fixture { ns: Netns::new(tag), dir, data, archive })
    }

    /// `callvault run` with this data directory and archive, and `extra`.
    fn run(&self, extra: &[&str]) -> Running {
        let mut args = vec!["--output", self.data.as_str(), "--archive", self.archive.as_str()];
        args.extend_from_slice(extra);
        run(&self.ns, &args)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn an_idle_interface_stops_within_two_seconds_of_sigterm() {
    let Some(fx) = Fixture::new("idle interface + SIGTERM", "i") else { return };
    let cv = fx.run(&[]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, log, took) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop\n{log}");
    let ((received, _, _), _) = kernel_counters(&log, &fx.ns.b);
    assert_eq!(received, 0, "the wire was idle\n{log}");
}

#[test]
fn a_call_that_ended_before_the_wire_went_quiet_is_finalised_and_shipped_without_another_packet() {
    let Some(fx) = Fixture::new("BYE before an idle wire", "l") else { return };
    let (ns, archive) = (&fx.ns, &fx.archive);
    let pcap = fx.path("one.pcap");
    let truth = calls(&pcap, 0, 1, 1000);
    let cv = fx.run(&[]);
    ns.replay(&pcap);
    // The BYE was the last packet; the default linger is 2 s. The record must reach the
    // archive while callvault keeps running on a silent wire.
    let t = Instant::now();
    cv.wait_until("the call record in the archive", Duration::from_secs(60), || {
        !records(Path::new(&archive)).is_empty()
    });
    let waited = t.elapsed();
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let recs = records(Path::new(&archive));
    assert_eq!(recs.len(), 1, "{log}");
    assert_eq!(recs[0].value["call_id"], truth.calls[0].call_id.as_str());
    assert_eq!(recs[0].value["state"], "completed", "{log}");
    assert_eq!(recs[0].value["end_reason"], "bye", "{log}");
    let ((received, dropped, read), (drained, _)) = kernel_counters(&log, &ns.b);
    assert_eq!((received, dropped, read), (truth.packets, 0, truth.packets), "no packet but the call's\n{log}");
    assert_eq!(drained, 0, "nothing was left to read at the stop\n{log}");
    eprintln!("record archived {waited:?} after the last packet");
}

#[test]
fn sigterm_right_after_tcpreplay_loses_no_packet_the_kernel_received() {
    let Some(fx) = Fixture::new("SIGTERM right after tcpreplay", "t") else { return };
    let (ns, archive) = (&fx.ns, &fx.archive);
    let pcap = fx.path("live.pcap");
    let start = START;
    let mut specs: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, start + i64::from(i) * 300_000_000, 2000)).collect();
    specs[1].outcome = Outcome::Answered { hangup: Hangup::Callee };
    specs[2].outcome = Outcome::Busy;
    let truth = callgen::write_pcap(&Scenario::new(specs), &pcap).unwrap();

    let cv = fx.run(&[]);
    ns.replay(&pcap);
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}\n{log}");
    let ((received, dropped, read), (_, unread)) = kernel_counters(&log, &ns.b);
    assert_eq!(received, truth.packets, "the kernel saw every packet\n{log}");
    assert_eq!((dropped, unread), (0, 0), "{log}");
    assert_eq!(read, received, "every packet the kernel received was read\n{log}");

    let recs = records(Path::new(&archive));
    assert_eq!(recs.len(), 3, "{log}");
    for t in &truth.calls {
        let r = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).expect("record");
        // The last call's BYE came just before SIGTERM: it must still end as completed.
        assert_eq!(r.value["state"], t.expected_state, "{log}");
        let streams = r.value["streams"].as_array().unwrap();
        for (side, st) in [("caller", &t.caller), ("callee", &t.callee)] {
            if st.packets_sent == 0 {
                continue;
            }
            let s = streams.iter().find(|s| s["side"] == side).expect("stream");
            assert_eq!(s["packets"], u64::from(st.packets_sent), "{side} packets: {s}\n{log}");
        }
        assert_eq!(r.wav.is_some(), t.answer_ns.is_some(), "{log}");
        if let Some(w) = &r.wav {
            let [c0, c1] = common::channels(w);
            assert!(c0.iter().any(|&s| s != 0) && c1.iter().any(|&s| s != 0), "both parties audible");
        }
    }
}

#[test]
fn a_second_sigterm_during_the_shutdown_drain_exits_at_once_and_loses_nothing() {
    let Some(fx) = Fixture::new("second SIGTERM during the shutdown drain", "d") else { return };
    let pcap = fx.path("one.pcap");
    let truth = calls(&pcap, 0, 1, 1000);
    // An archive that does not answer: the shutdown would try to ship for 60 s.
    let mut cmd = fx.ns.exec(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["run", "--interface", &fx.ns.b, "--user", "root", "--output", &fx.data])
        .args(["--archive", "s3://unreachable/x", "--s3-endpoint", "https://127.0.0.1:9", "--ship-timeout", "60"])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret");
    let mut cv = Running::start(cmd);
    cv.wait_for("capturing", Duration::from_secs(60));
    fx.ns.replay(&pcap);
    let spooled = Path::new(&fx.data).join("recordings");
    cv.wait_until("the recording in the spool", Duration::from_secs(60), || !records(&spooled).is_empty());
    cv.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", cv.pid())).unwrap_or_default();
    let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
    assert!(!state.is_empty() && state != "Z", "still shipping after the first SIGTERM ({state:?})\n{}", cv.log());
    cv.signal("TERM");
    let t = Instant::now();
    let status = cv.wait_exit("the second SIGTERM", Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "{}", cv.log());
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    // Nothing lost: the queued recording ships from the spool to a working archive.
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["ship", "--retarget", "--output", &fx.data, "--archive", &fx.archive])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(Path::new(&fx.archive));
    assert_eq!(recs.len(), 1, "{}", text(&out));
    assert_eq!(recs[0].value["call_id"], truth.calls[0].call_id.as_str());
}

fn write_config(path: &Path, archive: &str) {
    std::fs::write(path, format!("[log]\nheartbeat = 1\n\n[[archive]]\npath = \"{archive}\"\n")).unwrap();
}

fn call_ids(archive: &Path) -> Vec<String> {
    let mut ids: Vec<String> =
        records(archive).iter().map(|r| r.value["call_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[test]
fn sighup_switches_the_archive_target_of_a_running_process() {
    let Some(fx) = Fixture::new("SIGHUP reload", "h") else { return };
    let (ns, dir) = (&fx.ns, &fx.dir);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let config = dir.path().join("callvault.toml");
    write_config(&config, a.to_str().unwrap());
    let mut cv = run(ns, &["--config", config.to_str().unwrap(), "--output", &fx.data]);
    let truth: Vec<Truth> = (0..3).map(|i| calls(&dir.path().join(format!("{i}.pcap")), i, 1, 500)).collect();
    let id = |i: usize| truth[i].calls[0].call_id.clone();

    ns.replay(&dir.path().join("0.pcap"));
    cv.wait_until("the first call in archive a", Duration::from_secs(60), || call_ids(&a) == [id(0)]);

    write_config(&config, b.to_str().unwrap());
    cv.signal("HUP");
    cv.wait_for("configuration reloaded", Duration::from_secs(60));
    ns.replay(&dir.path().join("1.pcap"));
    cv.wait_until("the second call in archive b", Duration::from_secs(60), || call_ids(&b) == [id(1)]);

    // A broken configuration is reported and the one in effect kept.
    std::fs::write(&config, "[[archive]]\npath = \"/x\"\nbogus = 1\n").unwrap();
    cv.signal("HUP");
    cv.wait_for("keeping the previous one", Duration::from_secs(60));
    ns.replay(&dir.path().join("2.pcap"));
    let mut want = vec![id(1), id(2)];
    want.sort();
    cv.wait_until("the third call in archive b", Duration::from_secs(60), || call_ids(&b) == want);

    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert_eq!(call_ids(&a), [id(0)], "{log}");
    assert!(log.contains("callvault.toml:3:1: key `archive[0].bogus`"), "{log}");
    assert!(log.contains("heartbeat"), "{log}");
}

#[test]
fn a_second_process_on_the_same_spool_is_refused_while_status_still_reads_it() {
    let Some(fx) = Fixture::new("second process on a spool", "s") else { return };
    let (ns, data, archive) = (&fx.ns, &fx.data, &fx.archive);
    let cv = fx.run(&[]);
    let owner = format!("another callvault (pid {}) owns {data}", cv.pid());
    let bin = env!("CARGO_BIN_EXE_callvault");

    let ship = Command::new(bin).args(["ship", "--output", data, "--archive", archive]).output().unwrap();
    let text = common::text(&ship);
    assert_eq!(ship.status.code(), Some(1), "{text}");
    assert!(text.contains(&owner), "{text}");

    let mut second = ns.exec(bin);
    second.args(["run", "--interface", &ns.b, "--user", "root", "--output", data, "--archive", archive]);
    let second = second.output().unwrap();
    let text = common::text(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(text.contains(&owner), "{text}");

    let status = Command::new(bin).args(["status", "--output", data]).output().unwrap();
    let text = common::text(&status);
    assert!(status.status.success(), "{text}");
    assert!(text.contains(&format!("owned by callvault pid {}", cv.pid())), "{text}");

    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

#[test]
fn after_the_privilege_drop_no_capture_can_be_opened_and_files_are_private() {
    let Some(fx) = Fixture::new("privilege drop", "p") else { return };
    let (ns, data, archive) = (&fx.ns, &fx.data, &fx.archive);
    // The data directory's parent must be open to the service user (nobody here).
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pcap = fx.path("one.pcap");
    let truth = calls(&pcap, 5, 1, 500);
    let mut cv = fx.run(&["--user", "nobody"]);
    cv.wait_for("a new capture cannot be opened (checked)", Duration::from_secs(60));
    let status = std::fs::read_to_string(format!("/proc/{}/status", cv.pid())).unwrap();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    assert_eq!(field("Uid:").as_deref(), Some("65534 65534 65534 65534"), "{status}");
    assert_eq!(field("Groups:").as_deref(), Some(field("Gid:").unwrap().split(' ').next().unwrap()), "{status}");
    for caps in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(caps).as_deref(), Some("0000000000000000"), "{caps}\n{status}");
    }
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"), "{status}");

    ns.replay(&pcap);
    cv.wait_until("the call record in the archive", Duration::from_secs(60), || {
        records(Path::new(&archive)).len() == 1
    });
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    assert_eq!(records(Path::new(&archive))[0].value["call_id"], truth.calls[0].call_id.as_str());
    let mut checked = 0;
    for top in [data, archive] {
        for (path, meta) in walk(Path::new(top)) {
            let mode = meta.permissions().mode() & 0o7777;
            let want = if meta.is_dir() { 0o750 } else { 0o640 };
            assert_eq!(mode, want, "{} has mode {mode:o}", path.display());
            assert_eq!(meta.uid(), 65534, "{} is not owned by the service user", path.display());
            checked += 1;
        }
    }
    assert!(checked > 10, "recordings, spool and archive files were checked ({checked})");
}

fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = vec![(dir.to_owned(), std::fs::metadata(dir).unwrap())];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push((e.path(), meta));
        }
    }
    out
}

#[test]
fn two_interfaces_feed_one_pipeline_each_with_its_own_counters() {
    let Some(fx) = Fixture::new("two interfaces", "m") else { return };
    // Both directions of a TAP: what the caller sends arrives on one interface, what the
    // callee sends on the other (split by tcpprep on the caller's network, 10.1.0.0/16).
    let (ns, archive) = (&fx.ns, &fx.archive);
    let second = Netns::pair_in(ns, "m2");
    let pcap = fx.path("call.pcap");
    let truth = calls(&pcap, 3, 1, 1000);
    let cache = fx.path("call.cache");
    let prep = Command::new("tcpprep")
        .arg("--cidr=10.1.0.0/16")
        .arg("--pcap")
        .arg(&pcap)
        .arg("--cachefile")
        .arg(&cache)
        .output()
        .unwrap();
    assert!(prep.status.success(), "{}", common::text(&prep));

    let cv = fx.run(&["--interface", &second.1]);
    let sent = ns
        .exec("tcpreplay")
        .args(["--quiet", "--intf1", &ns.a, "--intf2", &second.0, "--cachefile"])
        .arg(&cache)
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(sent.success());
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let ((first_received, _, first_read), _) = kernel_counters(&log, &ns.b);
    let ((second_received, _, second_read), _) = kernel_counters(&log, &second.1);
    assert!(first_received > 0 && second_received > 0, "both interfaces carried packets\n{log}");
    assert_eq!(first_received + second_received, truth.packets, "{log}");
    assert_eq!((first_read, second_read), (first_received, second_received), "{log}");

    let recs = records(Path::new(&archive));
    assert_eq!(recs.len(), 1, "{log}");
    let t = &truth.calls[0];
    assert_eq!(recs[0].value["state"], "completed", "{log}");
    for (side, st) in [("caller", &t.caller), ("callee", &t.callee)] {
        let streams = recs[0].value["streams"].as_array().unwrap();
        let s = streams.iter().find(|s| s["side"] == side).expect("stream");
        assert_eq!(s["packets"], u64::from(st.packets_sent), "{side} packets: {s}\n{log}");
    }
}

/// One of two interfaces disappears (a USB adapter unplugged, a VLAN interface deleted): it is
/// set aside, with an error in the log, and the calls on the other are still recorded; the
/// run's report names it at the stop (exit status 2, live capture failed).
#[test]
fn an_interface_that_disappears_is_set_aside_and_the_others_are_still_recorded() {
    let Some(fx) = Fixture::new("an interface that disappears", "g") else { return };
    let ns = &fx.ns;
    let second = Netns::pair_in(ns, "g2");
    let pcap = fx.path("calls.pcap");
    let truth = calls(&pcap, 0, 3, 1000);
    let mut cv = fx.run(&["--interface", &second.1]);
    assert!(sh(&format!("ip -n {} link del {}", ns.name, second.0)));
    cv.wait_for(&format!("capture on interface {} failed", second.1), Duration::from_secs(30));
    ns.replay(&pcap);
    cv.wait_until("every call in the archive", Duration::from_secs(60), || {
        records(Path::new(&fx.archive)).len() == truth.calls.len()
    });
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(&format!("error: live capture on interface '{}' failed", second.1)), "{log}");
    let ((received, _, read), _) = kernel_counters(&log, &ns.b);
    assert_eq!((received, read), (truth.packets, truth.packets), "{log}");
    for r in records(Path::new(&fx.archive)) {
        assert_eq!(r.value["state"], "completed", "{log}");
    }
}

/// One of two configured interfaces is not there at the start (after a restart while it was
/// unplugged): the run records on the other, says which is missing in the log and at the stop
/// (exit status 2); with none there it does not start.
#[test]
fn a_run_starts_on_the_interfaces_that_are_there_and_names_the_missing_one() {
    let Some(fx) = Fixture::new("an interface missing at the start", "x") else { return };
    let ns = &fx.ns;
    let pcap = fx.path("calls.pcap");
    let truth = calls(&pcap, 0, 2, 1000);
    let cv = fx.run(&["--interface", "cvmissing0"]);
    assert!(cv.log().contains("cannot capture on interface cvmissing0: "), "{}", cv.log());
    ns.replay(&pcap);
    cv.wait_until("every call in the archive", Duration::from_secs(60), || {
        records(Path::new(&fx.archive)).len() == truth.calls.len()
    });
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("error: live capture on interface 'cvmissing0' failed: "), "{log}");
    let ((received, _, read), _) = kernel_counters(&log, &ns.b);
    assert_eq!((received, read), (truth.packets, truth.packets), "{log}");

    let out = ns
        .exec(env!("CARGO_BIN_EXE_callvault"))
        .args(["run", "--interface", "cvmissing0", "--user", "root", "--output", &fx.data, "--archive", &fx.archive])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("live capture on interface 'cvmissing0' failed"), "{}", text(&out));
}

/// Live, the caller's first packets before the 200 OK that announces where they go (the
/// answer seen 150 ms late, the callee not sending before it): every packet is still in its
/// call, and the summary counts those that waited for their SDP.
#[test]
fn media_before_its_sdp_is_recorded_live() {
    let Some(fx) = Fixture::new("media before its SDP", "e") else { return };
    let pcap = fx.path("late.pcap");
    let calls: Vec<CallSpec> = (0..3)
        .map(|i| {
            let mut c = CallSpec::answered(i, START + i64::from(i) * 300_000_000, 1000);
            c.answer_seen_late_ms = 150;
            c.impair.callee.loss = (0..=150 / 20).collect();
            c
        })
        .collect();
    // The caller's packet k is captured 40 + 20k ms after the answer: before a 200 OK seen
    // `late` ms after it come ceil((late - 40) / 20) of them (packets 0..5 here).
    let before: u32 = calls.iter().map(|c| (c.answer_seen_late_ms - 40).div_ceil(20)).sum();
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let cv = fx.run(&[]);
    fx.ns.replay(&pcap);
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let recs = records(Path::new(&fx.archive));
    assert_eq!(recs.len(), 3, "{log}");
    for t in &truth.calls {
        let rec = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).expect("record");
        let streams = rec.value["streams"].as_array().unwrap();
        for (side, st) in [("caller", &t.caller), ("callee", &t.callee)] {
            let s = streams.iter().find(|s| s["side"] == side).expect("stream");
            assert_eq!(s["packets"], u64::from(st.packets_sent), "{side} packets: {s}\n{log}");
            assert_eq!((s["lost"].as_u64(), s["late"].as_u64()), (Some(0), Some(0)), "{side}: {s}\n{log}");
        }
    }
    let said =
        format!("{before} media packets came before the SDP or the other party's first packet showed their address");
    assert!(log.contains(&said), "{said}: {log}");
}

/// Where each party's first packet landed in a call's recording, and its channels.
/// Writes `n` answered calls to `pcap`, started `apart_ns` apart, each party's packets delayed
/// up to 10 ms (reordered), and replays it into `reference`: the scenario, its truth and the
/// records replay made.
fn replayed_calls(
    pcap: &Path,
    reference: &Path,
    n: u32,
    apart_ns: i64,
    talk_ms: u32,
    seed: u64,
) -> (Scenario, Truth, Vec<Rec>) {
    let calls: Vec<CallSpec> = (0..n)
        .map(|i| {
            let mut c = CallSpec::answered(i, START + i64::from(i) * apart_ns, talk_ms);
            c.impair.caller.delay = Some(Delay::Uniform { max_ms: 10.0 });
            c.impair.callee.delay = Some(Delay::Uniform { max_ms: 10.0 });
            c
        })
        .collect();
    let scenario = Scenario { calls, seed, ..Scenario::default() };
    let truth = callgen::write_pcap(&scenario, pcap).unwrap();
    let out = common::replay(&[pcap], reference, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let replayed = records(&reference.join("archive"));
    (scenario, truth, replayed)
}

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
    let Some(fx) = Fixture::new("live capture at 2x and 5x", "x") else { return };
    let (ns, dir) = (&fx.ns, &fx.dir);
    let pcap = dir.path().join("fast.pcap");
    let (scenario, truth, replayed) = replayed_calls(&pcap, &dir.path().join("replay"), 2, 500_000_000, 20_000, 31);
    for speed in ["2", "5"] {
        let live_dir = dir.path().join(format!("x{speed}"));
        let (data, archive) = (live_dir.join("data"), live_dir.join("archive"));
        let cv = run(ns, &["--output", data.to_str().unwrap(), "--archive", archive.to_str().unwrap()]);
        let sent = ns.exec("tcpreplay").args(["--quiet", "--intf1", &ns.a, "--multiplier", speed]).arg(&pcap).status();
        assert!(sent.unwrap().success(), "tcpreplay failed");
        let (status, log, _) = cv.stop(Duration::from_secs(30));
        assert!(status.success(), "{log}");
        let live = records(&live_dir.join("archive"));
        assert_eq!(live.len(), truth.calls.len(), "{speed}x\n{log}");
        for (i, t) in truth.calls.iter().enumerate() {
            let ctx = format!("{speed}x call {}", t.call_id);
            let find = |recs: &[Rec]| recs.iter().position(|r| r.value["call_id"] == t.call_id.as_str()).unwrap();
            same_audio(&ctx, &scenario, i, &live[find(&live)], &replayed[find(&replayed)], true);
        }
    }
}

/// Asserts that call `i` of `scenario` recorded live (`l`) is what replay made of it (`r`): no
/// packet lost or late, no slip, each channel the same samples from its party's first packet
/// on and silence before it and after its last. With `timing` (a sender that keeps time) also
/// the parties' alignment and each channel's length within one packet of the file's: those
/// follow the capture times (the BYE's ends the recording), which a sender slowed by a busy
/// machine shifts.
fn same_audio(ctx: &str, scenario: &Scenario, i: usize, l: &Rec, r: &Rec, timing: bool) {
    for s in l.value["streams"].as_array().unwrap() {
        assert_eq!((s["lost"].as_u64(), s["late"].as_u64()), (Some(0), Some(0)), "{ctx}: {s}");
        assert_eq!(s["placement"]["samples_inserted"], 0, "{ctx}: no slip for a common clock");
    }
    let (ls, lc) = starts(scenario, i, l);
    let (rs, rc) = starts(scenario, i, r);
    for ch in 0..2 {
        // The same samples from the party's first packet on; silence before it.
        let (a, b) = (&lc[ch][ls[ch] as usize..], &rc[ch][rs[ch] as usize..]);
        let n = a.len().min(b.len());
        if timing {
            assert!(a.len().abs_diff(b.len()) <= 160, "{ctx}: channel {ch}: {} vs {} frames", a.len(), b.len());
        }
        if let Some(k) = (0..n).find(|&k| a[k] != b[k]) {
            panic!("{ctx}: channel {ch} differs {k} frames after its first packet");
        }
        assert!(a[n..].iter().chain(&b[n..]).all(|&x| x == 0), "{ctx}: channel {ch} tail");
        assert!(lc[ch][..ls[ch] as usize].iter().all(|&x| x == 0), "{ctx}: channel {ch} before its start");
    }
    if !timing {
        return;
    }
    // The parties' alignment: within one packet of the file's.
    let (live_gap, file_gap) = (ls[1] - ls[0], rs[1] - rs[0]);
    assert!(
        (live_gap - file_gap).abs() <= 160,
        "{ctx}: callee - caller {live_gap} frames live, {file_gap} from the file"
    );
}

/// A mixer with hundreds of calls fed at the wire's pace lingers for the batches behind the
/// first and hands their packets on call by call: each call's recording is still what replay
/// makes of the same capture, sample for sample. (tcpreplay sending 300 calls in real time on
/// a machine busy with other tests falls behind the file's times now and then, so the
/// recordings' lengths and the parties' alignment, which follow capture times, are left to
/// the test at 2x and 5x above.)
#[test]
fn hundreds_of_calls_in_one_lingering_mixer_give_the_same_audio_as_replay() {
    let Some(fx) = Fixture::new("hundreds of calls in one lingering mixer", "g") else { return };
    let pcap = fx.path("many.pcap");
    // 300 calls up at once in one mixer: more than it lingers from (LINGER_FROM_CALLS, 256).
    let (scenario, truth, replayed) = replayed_calls(&pcap, &fx.path("replay"), 300, 3_000_000, 3_000, 47);
    let cv = fx.run(&["--mixers", "1"]);
    let sent = fx.ns.exec("tcpreplay").args(["--quiet", "--intf1", &fx.ns.a]).arg(&pcap).status();
    assert!(sent.unwrap().success(), "tcpreplay failed");
    let (status, log, _) = cv.stop(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let ((received, dropped, _), _) = kernel_counters(&log, &fx.ns.b);
    assert_eq!((received, dropped), (truth.packets, 0), "{log}");
    let live = records(Path::new(&fx.archive));
    assert_eq!(live.len(), truth.calls.len(), "{log}");
    for (i, t) in truth.calls.iter().enumerate() {
        let find = |recs: &[Rec]| recs.iter().position(|r| r.value["call_id"] == t.call_id.as_str()).unwrap();
        let (l, r) = (&live[find(&live)], &replayed[find(&replayed)]);
        same_audio(&format!("call {}", t.call_id), &scenario, i, l, r, false);
    }
}
