//! The dashboard in a real browser while `callvault run` captures: tcpreplay sends generated
//! calls into a veth pair in a namespace made for the test, `callvault run` records them and
//! serves the dashboard on the namespace's loopback, and headless Chromium (selenium, in the
//! same namespace) watches the calls appear with live quality and end, finds one by number,
//! opens it and plays its audio (`tests/browser/dashboard.py`). Screenshots are kept under
//! the cargo target's temporary directory (`dashboard-screenshots/`).

#![allow(clippy::disallowed_methods)] // tests time themselves (clippy.toml)

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use callgen::{CallSpec, Scenario};
use common::live::{Netns, can_run};
use common::{records, skipped};

fn selenium_python() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let python = cache.join("callvault/selenium/bin/python");
    let ok = std::process::Command::new(&python).args(["-c", "import selenium"]).status().is_ok_and(|s| s.success());
    ok.then_some(python)
}

#[test]
fn the_dashboard_shows_live_calls_finds_one_and_plays_it() {
    if !can_run("dashboard in a browser") {
        return;
    }
    let Some(python) = selenium_python() else {
        skipped("dashboard in a browser: selenium is not installed (scripts/deps.sh test installs it)");
        return;
    };
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        skipped("dashboard in a browser: chromium and chromium-driver are not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("calls.pcap");
    // Three calls of 8 s talk, overlapping; the second one's callee has a number to search.
    let start = 1_767_225_600 * 1_000_000_000;
    let calls: Vec<CallSpec> = (0..3)
        .map(|i| {
            let mut c = CallSpec::answered(i, start + i64::from(i) * 400_000_000, 8000);
            if i == 1 {
                c.to_user = "+442055501".into();
            }
            c
        })
        .collect();
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let searched = &truth.calls[1];

    let ns = Netns::new("w");
    // The dashboard is served, and chromedriver driven, over the namespace's loopback.
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (cv, base) = common::live::run_with_api(&ns, &data, &archive, &[]);

    let expect = tmp.path().join("expect.json");
    let expect_json = serde_json::json!({
        "calls": 3,
        "number": "+4420555",
        "id_contains": format!("_{}_{}_", searched.from_user, searched.to_user),
        "channels": 2,
        "interface": ns.b,
    });
    std::fs::write(&expect, expect_json.to_string()).unwrap();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    // The browser watches from before the first packet: the calls are replayed in real time
    // once it has loaded the page. Chromium may take many seconds to start on a loaded
    // machine; a fixed head start let the calls end before the page was there.
    let mut browser = ns
        .exec(&python)
        .arg(&script)
        .arg(&base)
        .arg(&expect)
        .arg(&shots)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, said_rx) = std::sync::mpsc::channel();
    let out = browser.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut err = browser.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut all);
        all
    });
    let loaded = loop {
        match said_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.starts_with("page loaded") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    if loaded {
        ns.replay(&pcap);
    } else {
        // Never loaded in two minutes: what it said so far goes into the failure.
        let _ = browser.kill();
    }
    let status_b = browser.wait().unwrap();
    let said = format!("{}{}", reader.join().unwrap(), err_reader.join().unwrap());
    eprintln!("{said}\nscreenshots in {}", shots.display());
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(loaded && status_b.success(), "the browser test failed:\n{said}\n--- callvault\n{log}");
    assert!(said.lines().any(|l| l == "ok"), "{said}");
    assert!(status.success(), "{log}");
    for shot in ["live.png", "search.png", "call.png"] {
        let size = std::fs::metadata(shots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {shot}: {size} bytes");
    }
    // What the browser played is what was recorded: three calls, the searched one with audio
    // as long as its talk time.
    let recs = records(&archive);
    assert_eq!(recs.len(), 3, "{log}");
    let rec = recs.iter().find(|r| r.value["call_id"] == searched.call_id.as_str()).unwrap();
    let audio_s = rec.value["audio"]["duration_s"].as_f64().unwrap();
    assert!((audio_s - 8.0).abs() < 0.5, "audio of {audio_s} s for 8 s of talk");
    // Playing it was audited, and the audit log shipped when `run` stopped: every entry is a
    // download of that call's audio, from the browser on loopback.
    let id = rec.json.file_stem().unwrap().to_str().unwrap();
    let logs: Vec<_> = walkdir(&archive)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("audit_")))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}\n{log}");
    let entries: Vec<serde_json::Value> =
        std::fs::read_to_string(&logs[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!entries.is_empty());
    for e in &entries {
        assert_eq!(
            (e["call"].as_str(), e["action"].as_str(), e["auth"].as_str()),
            (Some(id), Some("audio"), Some("none")),
            "{e}"
        );
        assert!(e["remote"].as_str().unwrap().starts_with("127.0.0.1:"), "{e}");
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walkdir(&p)) } else { out.push(p) }
    }
    out
}
