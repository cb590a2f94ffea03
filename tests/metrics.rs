//! Metrics and health end to end: values against the generator's truth (a replay with
//! `--metrics-out`, and `callvault run` scraped over HTTP while it records), `promtool check
//! metrics` on the text, and `/health` turning degraded when shipping stalls, and while an
//! interface brings no packet or has no link.

#![allow(clippy::disallowed_methods)] // waits for a live process (clippy.toml)

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use callgen::{CallSpec, DirImpair, Hangup, Outcome, Scenario, Truth};
use common::live::{Netns, Running, can_run, sh};
use common::{have, records, replay, skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;
const S: i64 = 1_000_000_000;

/// An exposition's samples by their printed name and labels.
#[derive(Debug)]
struct Samples(BTreeMap<String, f64>);

impl Samples {
    fn parse(text: &str) -> Samples {
        let mut m = BTreeMap::new();
        for l in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {l:?}"));
            m.insert(key.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {l:?}")));
        }
        Samples(m)
    }

    /// A sample's value; absent counts as 0 (a family with no sample yet).
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// The sum of every sample of `name` (any labels).
    fn sum(&self, name: &str) -> f64 {
        self.0.iter().filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{"))).map(|(_, v)| v).sum()
    }
}

/// `promtool check metrics` on `text` (skipped, and written down, without promtool).
fn promtool_check(text: &str) {
    if !have("promtool") {
        skipped("metrics: promtool check metrics (Debian package prometheus is not installed)");
        return;
    }
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(), "{}\n{text}", common::text(&out));
}

/// The end reason the recorder gives each outcome the generator can produce here.
fn end_reason(state: &str) -> &'static str {
    match state {
        "completed" => "bye",
        "cancelled" => "cancel",
        "rejected" => "rejected",
        "in_call" | "ringing" => "end_of_input",
        other => panic!("no reason known for state {other}"),
    }
}

/// Calls of every outcome, the last one with loss in both directions. Live, only calls that
/// end on the wire (a call still up or ringing would wait for its timeout).
fn scenario(live: bool) -> Scenario {
    let mut outcomes = vec![
        Outcome::Answered { hangup: Hangup::Callee },
        Outcome::Answered { hangup: Hangup::Caller },
        Outcome::Busy,
        Outcome::Cancelled,
        Outcome::Rejected(403),
    ];
    if !live {
        outcomes.extend([Outcome::NoAnswer, Outcome::Answered { hangup: Hangup::None }]);
    }
    outcomes.push(Outcome::Answered { hangup: Hangup::Caller });
    let last = outcomes.len() - 1;
    let calls = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            let mut c = CallSpec::answered(i as u32, T0 + i as i64 * S / 4, 2000);
            c.outcome = outcome;
            if i == last {
                c.impair.caller = DirImpair { loss: vec![3, 4, 5, 40], ..DirImpair::default() };
                c.impair.callee = DirImpair { loss: vec![10], ..DirImpair::default() };
            }
            c
        })
        .collect();
    Scenario { calls, seed: 12, ..Scenario::default() }
}

/// The values a run over `truth` must end with, checked against `m`; `what` names the run.
/// Setup times may be off by `setup_slack` seconds per call (a live capture's times are the
/// replay's, not the file's).
fn check_against_truth(m: &Samples, truth: &Truth, what: &str, setup_slack: f64) {
    let n = truth.calls.len() as f64;
    assert_eq!(m.get("callvault_calls_started_total"), n, "{what}");
    assert_eq!(m.get("callvault_calls_active"), 0.0, "{what}");
    let mut ended: BTreeMap<(String, &str), f64> = BTreeMap::new();
    let mut codes: BTreeMap<u16, f64> = BTreeMap::new();
    let mut setup_sum = 0.0;
    let mut answered = 0.0;
    for c in &truth.calls {
        *ended.entry((c.expected_state.to_owned(), end_reason(c.expected_state))).or_default() += 1.0;
        if let Some(code) = c.final_code {
            *codes.entry(code).or_default() += 1.0;
        }
        if let Some(a) = c.answer_ns {
            answered += 1.0;
            setup_sum += (a - c.start_ns) as f64 / 1e9;
        }
    }
    for ((state, reason), count) in &ended {
        let key = format!("callvault_calls_ended_total{{state=\"{state}\",reason=\"{reason}\"}}");
        assert_eq!(m.get(&key), *count, "{what}: {key}");
    }
    assert_eq!(m.sum("callvault_calls_ended_total"), n, "{what}: no other end state or reason");
    for (code, count) in &codes {
        assert_eq!(m.get(&format!("callvault_sip_final_responses_total{{code=\"{code}\"}}")), *count, "{what}: {code}");
    }
    assert_eq!(m.sum("callvault_sip_final_responses_total"), codes.values().sum::<f64>(), "{what}");
    assert_eq!(m.get("callvault_call_setup_seconds_count"), answered, "{what}");
    let sum = m.get("callvault_call_setup_seconds_sum");
    assert!(
        (sum - setup_sum).abs() <= 1e-6 + setup_slack * answered,
        "{what}: setup time sum {sum}, truth {setup_sum}"
    );
    assert_eq!(m.get("callvault_capture_packets_total{kind=\"sip\"}"), truth.sip_messages as f64, "{what}");
    assert_eq!(m.get("callvault_capture_packets_total{kind=\"rtp\"}"), truth.rtp_packets as f64, "{what}");
    assert_eq!(m.get("callvault_capture_frames_total"), truth.packets as f64, "{what}");
    assert_eq!(m.get("callvault_recordings_written_total"), n, "{what}");
    assert_eq!(m.get("callvault_recordings_failed_total"), 0.0, "{what}");
    // Streams per direction: every answered call's parties sent audio.
    for dir in ["caller_to_callee", "callee_to_caller"] {
        let count = m.get(&format!("callvault_stream_mos_count{{direction=\"{dir}\"}}"));
        assert_eq!(count, answered, "{what}: MOS observations {dir}");
        let lossless = m.get(&format!("callvault_stream_loss_ratio_bucket{{direction=\"{dir}\",le=\"0\"}}"));
        assert_eq!(lossless, answered - 1.0, "{what}: one call lost packets {dir}");
    }
}

#[test]
fn a_replay_writes_metrics_that_match_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pcap = d.join("calls.pcap");
    let truth = callgen::write_pcap(&scenario(false), &pcap).unwrap();
    let prom = d.join("replay.prom");
    let out = replay(&[&pcap], d, &["--metrics-out", prom.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let exposition = std::fs::read_to_string(&prom).unwrap();
    let m = Samples::parse(&exposition);
    check_against_truth(&m, &truth, "replay", 0.0);
    // Shipping: every recording confirmed by the one archive, nothing left queued.
    let n = truth.calls.len() as f64;
    let archive = d.join("archive");
    let recs = records(&archive);
    assert_eq!(recs.len(), truth.calls.len());
    let with_audio = recs.iter().filter(|r| r.wav.is_some()).count() as f64;
    assert_eq!(m.get("callvault_recordings_with_audio_total"), with_audio);
    let bytes: u64 = recs
        .iter()
        .map(|r| {
            std::fs::metadata(&r.json).unwrap().len()
                + r.wav.as_ref().map_or(0, |w| std::fs::metadata(w).unwrap().len())
        })
        .sum();
    assert_eq!(m.get("callvault_recordings_bytes_total"), bytes as f64);
    assert_eq!(m.get("callvault_ship_shipped_recordings_total{target=\"archive\"}"), n);
    assert_eq!(m.get("callvault_ship_shipped_bytes_total{target=\"archive\"}"), bytes as f64);
    assert_eq!(m.get("callvault_ship_upload_seconds_count{target=\"archive\"}"), n);
    assert_eq!(m.get("callvault_spool_completed_recordings_total"), n);
    assert_eq!(m.get("callvault_ship_queued_recordings{target=\"archive\"}"), 0.0);
    assert_eq!(m.get("callvault_spool_queued_entries"), 0.0);
    // Every finisher done, none waiting: the gauges they set came back to zero.
    assert_eq!(m.get("callvault_finish_queue_recordings"), 0.0);
    assert_eq!(m.sum("callvault_finishers_busy"), 0.0);
    assert_eq!(m.sum("callvault_ship_retries_total"), 0.0);
    assert_eq!(m.get("callvault_build_info{version=\"0.1.0\"}"), 1.0);
    assert!(m.get("process_resident_memory_bytes") > 0.0);
    assert!(m.get("callvault_disk_free_bytes") > 0.0);
    promtool_check(&exposition);
}

#[test]
fn a_replay_to_an_unreachable_archive_counts_retries_and_keeps_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pcap = d.join("calls.pcap");
    let truth = callgen::write_pcap(&scenario(false), &pcap).unwrap();
    let prom = d.join("replay.prom");
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(d.join("data"))
        .args(["--archive", "s3://bucket/calls", "--s3-endpoint", "https://127.0.0.1:1", "--s3-path-style"])
        .args(["--ship-timeout", "2", "--metrics-out", prom.to_str().unwrap()])
        .arg(&pcap)
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "recordings left queued\n{}", text(&out));
    let exposition = std::fs::read_to_string(&prom).unwrap();
    let m = Samples::parse(&exposition);
    let n = truth.calls.len() as f64;
    let target = "target=\"s3://bucket/calls\"";
    assert_eq!(m.get(&format!("callvault_ship_queued_recordings{{{target}}}")), n, "{exposition}");
    assert!(m.get(&format!("callvault_ship_queued_bytes{{{target}}}")) > 0.0);
    assert!(m.get(&format!("callvault_ship_retries_total{{{target},kind=\"store\"}}")) >= 1.0, "{exposition}");
    assert_eq!(m.get(&format!("callvault_ship_shipped_recordings_total{{{target}}}")), 0.0);
    assert_eq!(m.get("callvault_spool_queued_entries"), n);
    assert_eq!(m.get("callvault_recordings_written_total"), n);
    promtool_check(&exposition);
}

/// `curl` inside the namespace: (HTTP status, body).
fn get(ns: &Netns, url: &str) -> Option<(u16, String)> {
    let out = ns.exec("curl").args(["-s", "--max-time", "5", "-w", "\n%{http_code}", url]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_owned()))
}

/// `callvault run` in `ns` on its capture end, staying root, with `args`.
fn run(ns: &Netns, args: &[&str]) -> Running {
    let mut cmd = ns.exec(env!("CARGO_BIN_EXE_callvault"));
    cmd.args(["run", "--interface", &ns.b, "--buffer-mib", "16", "--user", "root"]).args(args);
    cmd.env("AWS_ACCESS_KEY_ID", "AKIATEST").env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret");
    let mut cv = Running::start(cmd);
    cv.wait_for("capturing", Duration::from_secs(60));
    cv
}

/// A namespace with its loopback up (the metrics listen there).
fn namespace(test: &str, tag: &str) -> Option<Netns> {
    if !can_run(test) {
        return None;
    }
    if !have("curl") {
        skipped(&format!("{test}: needs curl"));
        return None;
    }
    let ns = Netns::new(tag);
    assert!(sh(&format!("ip -n {} link set lo up", ns.name)));
    Some(ns)
}

/// A namespace ([`namespace`]), a temporary directory and in it the live scenario's capture.
fn live_fixture(test: &str, tag: &str) -> Option<(Netns, tempfile::TempDir, std::path::PathBuf, Truth)> {
    let ns = namespace(test, tag)?;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&scenario(true), &pcap).unwrap();
    Some((ns, dir, pcap, truth))
}

#[test]
fn a_live_run_serves_metrics_and_health_that_match_the_truth() {
    let Some((ns, dir, pcap, truth)) = live_fixture("live /metrics and /health", "m") else { return };
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (data, archive, prom) = (s(&d.join("data")), s(&d.join("archive")), s(&d.join("run.prom")));
    let addr = "127.0.0.1:19750";
    let cv = run(&ns, &["--output", &data, "--archive", &archive, "--metrics-listen", addr, "--metrics-out", &prom]);
    let url = |path: &str| format!("http://{addr}{path}");
    let (code, body) = get(&ns, &url("/health")).expect("GET /health");
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ready","reasons":[]}"#), "{}", cv.log());

    ns.replay(&pcap);
    let n = truth.calls.len();
    cv.wait_until("every record in the archive", Duration::from_secs(60), || records(Path::new(&archive)).len() == n);
    // Counters are published once a second: wait for the scrape to show the end of the run.
    let mut scraped = String::new();
    cv.wait_until("the metrics to show every call ended and shipped", Duration::from_secs(60), || {
        scraped = get(&ns, &url("/metrics")).map(|(_, b)| b).unwrap_or_default();
        let m = Samples::parse(&scraped);
        m.sum("callvault_calls_ended_total") == n as f64
            && m.get("callvault_ship_shipped_recordings_total{target=\"archive\"}") == n as f64
            && m.get("callvault_calls_active") == 0.0
    });
    let m = Samples::parse(&scraped);
    check_against_truth(&m, &truth, "live scrape", 0.1);
    let iface = format!("interface=\"{}\"", ns.b);
    assert_eq!(m.get(&format!("callvault_capture_kernel_received_packets_total{{{iface}}}")), truth.packets as f64);
    assert_eq!(m.get(&format!("callvault_capture_kernel_dropped_packets_total{{{iface}}}")), 0.0);
    // Exported, and 0: one interface has nothing to put in order.
    assert_eq!(m.0.get("callvault_capture_merged_late_packets_total"), Some(&0.0));
    assert_eq!(m.get("callvault_spool_queued_entries"), 0.0);
    promtool_check(&scraped);
    assert_eq!((m.get("callvault_api_downloads_total"), m.get("callvault_http_auth_failures_total")), (0.0, 0.0));
    // A download through the API (on its default address) is counted, as well as audited.
    let api = "http://127.0.0.1:9751";
    let mut id = String::new();
    cv.wait_until("a call in the index", Duration::from_secs(60), || {
        let page = get(&ns, &format!("{api}/api/v1/calls?limit=1")).map(|(_, b)| b).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&page).unwrap_or_default();
        id = v["calls"][0]["id"].as_str().unwrap_or_default().to_owned();
        !id.is_empty()
    });
    let (code, _) = get(&ns, &format!("{api}/api/v1/calls/{id}/audio")).expect("GET audio");
    assert_eq!(code, 200, "{}", cv.log());
    let scraped = get(&ns, &url("/metrics")).map(|(_, b)| b).unwrap_or_default();
    assert_eq!(Samples::parse(&scraped).get("callvault_api_downloads_total"), 1.0, "{scraped}");
    let (code, _) = get(&ns, &url("/health")).expect("GET /health");
    assert_eq!(code, 200, "{}", cv.log());

    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let written = Samples::parse(&std::fs::read_to_string(&prom).unwrap());
    check_against_truth(&written, &truth, "textfile at the stop", 0.1);
    // The listener is closed with the process.
    assert!(get(&ns, &url("/health")).is_none_or(|(code, _)| code == 0), "still answering after the stop");
}

#[test]
fn health_is_degraded_while_shipping_stalls_and_recordings_wait() {
    let Some(ns) = namespace("live /health degraded", "h") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pcap = d.join("calls.pcap");
    callgen::write_pcap(&scenario(false), &pcap).unwrap();
    let data = d.join("data");
    let s3 = ["--archive", "s3://bucket/calls", "--s3-endpoint", "https://127.0.0.1:1", "--s3-path-style"];
    // Recorded for an archive that cannot be reached: everything stays queued.
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(&data)
        .args(s3)
        .args(["--ship-timeout", "1"])
        .arg(&pcap)
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let config = d.join("callvault.toml");
    std::fs::write(&config, "[metrics]\nhealth_max_unshipped_age = 1\n").unwrap();
    let addr = "127.0.0.1:19751";
    let mut args = vec!["--config", config.to_str().unwrap(), "--output", data.to_str().unwrap()];
    args.extend(s3);
    args.extend(["--metrics-listen", addr]);
    let cv = run(&ns, &args);
    let mut last = (0, String::new());
    cv.wait_until("/health to say shipping stalled", Duration::from_secs(60), || {
        last = get(&ns, &format!("http://{addr}/health")).unwrap_or_default();
        last.1.contains("shipping stalled")
    });
    let (code, body) = last;
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "degraded", "{body}");
    let reasons: Vec<&str> = health["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.starts_with("the oldest unshipped recording is")), "{reasons:?}");
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

/// `/health` and the reasons it gives, scraped in `ns` from `addr`.
fn health(ns: &Netns, addr: &str) -> (u16, Vec<String>) {
    let (code, body) = get(ns, &format!("http://{addr}/health")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let reasons = v["reasons"].as_array().map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect());
    (code, reasons.unwrap_or_default())
}

#[test]
fn an_interface_without_packets_or_without_link_degrades_health_and_is_logged_until_it_recovers() {
    let Some((ns, dir, pcap, truth)) = live_fixture("live /health on a quiet or unlinked interface", "q") else {
        return;
    };
    let d = dir.path();
    let config = d.join("callvault.toml");
    std::fs::write(&config, "[metrics]\nhealth_max_quiet = 3\n").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (data, archive) = (s(&d.join("data")), s(&d.join("archive")));
    let addr = "127.0.0.1:19752";
    let cv = run(&ns, &["--config", &s(&config), "--output", &data, "--archive", &archive, "--metrics-listen", addr]);
    let b = ns.b.clone();
    let quiet = format!("no packet on interface {b} for ");
    let metric = |name: &str| {
        let scraped = get(&ns, &format!("http://{addr}/metrics")).map(|(_, t)| t).unwrap_or_default();
        Samples::parse(&scraped).0.get(&format!("{name}{{interface=\"{b}\"}}")).copied()
    };

    // Nothing on the wire since the start: quiet once the limit is past.
    let mut last = (0, Vec::new());
    cv.wait_until("/health to report the quiet interface", Duration::from_secs(30), || {
        last = health(&ns, addr);
        last.1.iter().any(|r| r.starts_with(&quiet))
    });
    assert_eq!(last.0, 503, "{last:?}");
    assert!(last.1.iter().any(|r| r.ends_with("(limit 3 s)")), "{last:?}");
    assert_eq!(metric("callvault_capture_interface_last_packet_timestamp_seconds"), Some(0.0));
    assert_eq!(metric("callvault_capture_interface_up"), Some(1.0));
    assert!(cv.log().contains(&format!("no packet on interface {b} for 3 s")), "{}", cv.log());

    // Packets: ready again, the last packet's time exported, and logged.
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    ns.replay(&pcap);
    cv.wait_until("/health to be ready after the packets", Duration::from_secs(3), || {
        health(&ns, addr) == (200, vec![])
    });
    let at = metric("callvault_capture_interface_last_packet_timestamp_seconds").unwrap();
    assert!(at >= before.floor() && at <= before + 60.0, "last packet at {at}, replay started at {before}");
    assert!(cv.log().contains(&format!("packets on interface {b} again")), "{}", cv.log());
    cv.wait_until("every record in the archive", Duration::from_secs(60), || {
        records(Path::new(&archive)).len() == truth.calls.len()
    });

    // The link goes down (the sending end of the pair): reported until it is up again.
    assert!(sh(&format!("ip -n {} link set {} down", ns.name, ns.a)));
    let down = format!("interface {b} is lowerlayerdown: nothing on it is recorded");
    cv.wait_until("/health to report the link down", Duration::from_secs(30), || health(&ns, addr).1.contains(&down));
    assert_eq!(metric("callvault_capture_interface_up"), Some(0.0));
    assert!(cv.log().contains(&format!("interface {b} is lowerlayerdown: nothing on it is recorded")), "{}", cv.log());
    assert!(sh(&format!("ip -n {} link set {} up", ns.name, ns.a)));
    cv.wait_until("the link to be reported up again", Duration::from_secs(30), || {
        metric("callvault_capture_interface_up") == Some(1.0) && !health(&ns, addr).1.contains(&down)
    });
    assert!(cv.log().contains(&format!("interface {b} is up again")), "{}", cv.log());
    // Capture goes on after the link came back (a switch rebooted): every packet read again.
    ns.replay(&pcap);
    let twice = 2.0 * truth.packets as f64;
    cv.wait_until("the packets sent after the link came back to be read", Duration::from_secs(30), || {
        metric("callvault_capture_kernel_received_packets_total") == Some(twice)
    });

    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    let ((received, dropped, read), _) = common::live::kernel_counters(&log, &b);
    assert_eq!((received, dropped, read), (2 * truth.packets, 0, 2 * truth.packets), "{log}");
}

#[test]
fn a_non_loopback_metrics_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["run", "--interface", "lo", "--metrics-listen", "0.0.0.0:9750", "--output"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not a loopback address") && t.contains("needs HTTPS and authentication"), "{t}");
}
