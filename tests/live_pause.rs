//! PCI DSS pause through the HTTP API while `callvault run` captures: tcpreplay sends a
//! generated call into a veth pair in a namespace made for the test, and while it is up the
//! test asks `POST /api/v1/active/<Call-ID>/pause` and, three seconds later, `.../resume` (with
//! curl, on the namespace's loopback). The recording is silence exactly over the span its
//! record names, and the tones everywhere else; the record names who asked.

#![allow(clippy::disallowed_methods)] // tests time themselves (clippy.toml)

mod common;

use std::time::{Duration, Instant};

use callgen::{CallSpec, Scenario};
use common::live::{Netns, can_run};
use common::{channels, records};
use serde_json::Value;

/// `curl` in the namespace: the status and the JSON body.
fn http(ns: &Netns, method: &str, url: &str) -> (u16, Value) {
    let out = ns.exec("curl").args(["-s", "-X", method, "-w", "\n%{http_code}", url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl {url}: {text:?}"));
    (code.parse().unwrap(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Longest run of zero samples in `s`.
fn longest_zero_run(s: &[i16]) -> usize {
    s.split(|&x| x != 0).map(<[i16]>::len).max().unwrap_or(0)
}

#[test]
fn the_api_pauses_and_resumes_a_live_call_and_only_that_span_is_silence() {
    if !can_run("pause through the API") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("call.pcap");
    let call = CallSpec::answered(0, 1_767_225_600 * 1_000_000_000, 10_000);
    let truth = callgen::write_pcap(&Scenario::new(vec![call]), &pcap).unwrap();
    let call_id = truth.calls[0].call_id.clone();

    let ns = Netns::new("p");
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (cv, base) = common::live::run_with_api(&ns, &data, &archive);
    let pause_url = |verb: &str, id: &str| format!("{base}/api/v1/active/{id}/{verb}");

    // No such call: 404, saying so.
    let (code, body) = http(&ns, "POST", &pause_url("pause", "no-such-call"));
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no call in progress"), "{body}");

    std::thread::scope(|s| {
        let replay = s.spawn(|| ns.replay(&pcap));
        // Wait for two seconds of the call's media (media_s counts from the INVITE, 1 s before).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, active) = http(&ns, "GET", &format!("{base}/api/v1/active"));
            let media_s = active["calls"].as_array().and_then(|c| c.first()).and_then(|c| c["media_s"].as_f64());
            if media_s.is_some_and(|m| m >= 3.0) {
                break;
            }
            assert!(Instant::now() < deadline, "the call never showed media: {active}\n{}", cv.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        let (code, body) = http(&ns, "POST", &pause_url("pause", &call_id));
        assert_eq!((code, &body["paused"], &body["changed"]), (200, &Value::Bool(true), &Value::Bool(true)), "{body}");
        let paused_at = Instant::now();
        let (code, body) = http(&ns, "POST", &pause_url("pause", &call_id));
        assert_eq!((code, &body["changed"], &body["pauses"]), (200, &Value::Bool(false), &Value::from(1)), "{body}");
        std::thread::sleep(Duration::from_millis(1500));
        let (_, active) = http(&ns, "GET", &format!("{base}/api/v1/active"));
        assert_eq!(active["calls"][0]["paused"], Value::Bool(true), "{active}");
        std::thread::sleep(Duration::from_secs(3).saturating_sub(paused_at.elapsed()));
        let (code, body) = http(&ns, "POST", &pause_url("resume", &call_id));
        assert_eq!((code, &body["paused"], &body["changed"]), (200, &Value::Bool(false), &Value::Bool(true)), "{body}");
        replay.join().unwrap();
    });
    std::thread::sleep(Duration::from_secs(1));
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");

    let recs = records(&archive);
    assert_eq!(recs.len(), 1, "{log}");
    let rec = &recs[0];
    let pauses = rec.value["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    let p = &pauses[0];
    assert_eq!(p["trigger"], "api: pause by anonymous from 127.0.0.1", "{p}");
    assert_eq!(p["resumed_by"], "api: resume by anonymous from 127.0.0.1", "{p}");
    assert_eq!(p["missed_s"], 0.0, "the pause reached back into audio already written: {p}");
    let (start_s, end_s) = (p["start_s"].as_f64().unwrap(), p["end_s"].as_f64().unwrap());
    assert!((end_s - start_s - 3.0).abs() < 0.5, "paused for {} s, asked for 3 s: {p}", end_s - start_s);
    assert!(start_s > 1.5 && end_s < 9.0, "{p}");
    // Silence exactly over the span the record names; the tones (which never stay at zero for
    // three samples) right up to it and right after it.
    let (from, to) = ((start_s * 8000.0).round() as usize, (end_s * 8000.0).round() as usize);
    for (k, channel) in channels(rec.wav.as_deref().unwrap()).iter().enumerate() {
        assert!(channel[from..to].iter().all(|&s| s == 0), "channel {k}: audio in the paused span");
        assert!(longest_zero_run(&channel[from - 8000..from]) < 3, "channel {k}: silence before the pause");
        assert!(longest_zero_run(&channel[to..to + 16_000]) < 3, "channel {k}: silence after the resume");
    }
}
