//! PCI DSS pause through the HTTP API while `callvault run` captures: tcpreplay sends a
//! generated call into a veth pair in a namespace made for the test, and while it is up the
//! test asks `POST /api/v1/active/<Call-ID>/pause` and, three seconds later, `.../resume` (with
//! curl, on the namespace's loopback). The recording is silence exactly over the span its
//! record names, and the tones everywhere else; the record names who asked. Once with the call
//! alone, once among 300 calls in one mixer (which then lingers for batches).

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
    pause_and_resume("pause through the API", "p", 0, &[]);
}

/// The same among 300 calls in one mixer, which then lingers for the batches behind the
/// first (`batch::LINGER_FROM_CALLS`): the request waits for the mixer up to its linger, and
/// the pause still starts where it was asked, nothing of it already written.
#[test]
fn a_pause_asked_of_a_lingering_mixer_still_starts_where_it_was_asked() {
    pause_and_resume("pause through the API among 300 calls", "q", 300, &["--mixers", "1"]);
}

/// Call 0 talks 10 s and is paused for 3 s, the `others` (from 1 on) talk 12 s, all up within
/// a second of it; `callvault run` with `args`, in a namespace tagged `tag`.
fn pause_and_resume(test: &str, tag: &str, others: u32, args: &[&str]) {
    if !can_run(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("call.pcap");
    let start = 1_767_225_600 * 1_000_000_000;
    let calls = std::iter::once(CallSpec::answered(0, start, 10_000))
        .chain((1..=others).map(|i| CallSpec::answered(i, start + i64::from(i) * 3_000_000, 12_000)))
        .collect();
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let call_id = truth.calls[0].call_id.clone();
    let of_call = |active: &Value| {
        active["calls"].as_array().and_then(|c| c.iter().find(|c| c["call_id"] == call_id.as_str())).cloned()
    };

    let ns = Netns::new(tag);
    let (data, archive) = (tmp.path().join("data"), tmp.path().join("archive"));
    let (cv, base) = common::live::run_with_api(&ns, &data, &archive, args);
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
            let media_s = of_call(&active).and_then(|c| c["media_s"].as_f64());
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
        assert_eq!(of_call(&active).map(|c| c["paused"].clone()), Some(Value::Bool(true)), "{active}");
        std::thread::sleep(Duration::from_secs(3).saturating_sub(paused_at.elapsed()));
        let (code, body) = http(&ns, "POST", &pause_url("resume", &call_id));
        assert_eq!((code, &body["paused"], &body["changed"]), (200, &Value::Bool(false), &Value::Bool(true)), "{body}");
        replay.join().unwrap();
    });
    std::thread::sleep(Duration::from_secs(1));
    let (status, log, _) = cv.stop(Duration::from_secs(30));
    assert!(status.success(), "{log}");

    let recs = records(&archive);
    assert_eq!(recs.len(), truth.calls.len(), "{log}");
    let rec = recs.iter().find(|r| r.value["call_id"] == call_id.as_str()).expect("the paused call's record");
    let paused = recs.iter().filter(|r| r.value["pauses"].as_array().is_some_and(|p| !p.is_empty())).count();
    assert_eq!(paused, 1, "only the call asked is paused");
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
