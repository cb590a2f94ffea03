//! The call index and its API, end to end: a generated capture whose truth is known is
//! replayed, `callvault serve` answers over HTTP, and every answer is checked against the
//! generator's truth and the files on disk (search filters, paging, records, audio with HTTP
//! Range, the evidence pcap, errors), then the index is damaged and rebuilt from the archive.

mod common;

use std::path::Path;
use std::process::{Child, Command};

use callgen::{CallSpec, DirImpair, Hangup, Outcome, Scenario, Truth};
use common::{records, replay, rfc3339, text};
use serde_json::Value;

const T0: i64 = 1_767_225_600 * 1_000_000_000; // 2026-01-01T00:00:00Z
const S: i64 = 1_000_000_000;

fn scenario() -> Scenario {
    let mut calls = Vec::new();
    let mut add = |i: u32, start: i64, f: &dyn Fn(&mut CallSpec)| {
        let mut c = CallSpec::answered(i, T0 + start, 2000);
        f(&mut c);
        calls.push(c);
    };
    add(0, 0, &|c| c.from_user = "+441130000".into());
    add(1, S, &|c| c.to_user = "+441130001".into());
    add(2, 2 * S, &|c| c.outcome = Outcome::Busy);
    // One in ten packets lost: its MOS is the only one below 4.
    add(3, 3 * S, &|c| c.impair.caller = DirImpair { loss: (0..100).step_by(10).collect(), ..DirImpair::default() });
    add(4, 4 * S, &|c| c.outcome = Outcome::Cancelled);
    add(5, 5 * S, &|c| c.outcome = Outcome::Answered { hangup: Hangup::Caller });
    Scenario { calls, keep_payloads: true, seed: 11, ..Scenario::default() }
}

/// `callvault serve` on a free port; killed on drop.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(dir: &Path) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callvault"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--output"])
            .arg(dir.join("data"))
            .arg("--archive")
            .arg(dir.join("archive"))
            .env("CALLVAULT_CONFIG", "/dev/null");
        let (child, base) = common::start_serve(cmd);
        assert!(base.starts_with("http://"), "{base}");
        Serve { child, base }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.call().unwrap();
        let status = resp.status().as_u16();
        let heads = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
        (status, heads, body)
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.get(path, &[]);
        (status, serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}")))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(heads: &'a [(String, String)], name: &str) -> Option<&'a str> {
    heads.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn ids(page: &Value) -> Vec<String> {
    page["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn search_records_audio_and_rebuild_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("calls.pcap");
    let scenario = scenario();
    let truth: Truth = callgen::write_pcap(&scenario, &pcap).unwrap();
    let out = replay(&[&pcap], tmp.path(), &["--keep-pcap"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tmp.path().join("data/index.sqlite").is_file(), "replay wrote no index");
    let archived = records(&tmp.path().join("archive"));
    assert_eq!(archived.len(), 6);
    // The record of each call, by Call-ID, as the archive holds it.
    let by_call_id = |id: &str| archived.iter().find(|r| r.value["call_id"] == id).unwrap();
    let name_of = |id: &str| by_call_id(id).json.file_stem().unwrap().to_str().unwrap().to_owned();

    let serve = Serve::start(tmp.path());
    // Everything, newest first, each as the generator made it.
    let (status, all) = serve.json("/api/v1/calls");
    assert_eq!(status, 200, "{all}");
    let calls = all["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 6);
    assert_eq!(all["next"], Value::Null);
    for (found, t) in calls.iter().zip(truth.calls.iter().rev()) {
        assert_eq!(found["call_id"], t.call_id.as_str());
        assert_eq!(found["start"], rfc3339(t.start_ns));
        assert_eq!(found["state"], t.expected_state);
        assert_eq!(found["from"], t.from_user.as_str());
        assert_eq!(found["to"], t.to_user.as_str());
        assert_eq!(found["id"], name_of(&t.call_id).as_str());
        assert_eq!(found["evidence"], true);
    }
    let id = |i: usize| name_of(&truth.calls[i].call_id);

    // Filters.
    let search = |q: &str| {
        let (status, page) = serve.json(&format!("/api/v1/calls?{q}"));
        assert_eq!(status, 200, "{q}: {page}");
        ids(&page)
    };
    assert_eq!(search("number=%2B44113"), [id(1), id(0)]);
    assert_eq!(search("number=44113"), [id(1), id(0)]);
    assert_eq!(search("from=%2B44"), [id(0)]);
    assert_eq!(search("state=rejected"), [id(2)]);
    assert_eq!(search("state=cancelled"), [id(4)]);
    assert_eq!(search("end_reason=bye&number=100"), [id(5), id(3), id(1)]);
    assert_eq!(search("mos_below=4"), [id(3)]);
    assert_eq!(search(&format!("since={}&until={}", rfc3339(T0 + S), rfc3339(T0 + 3 * S))), [id(2), id(1)]);
    assert_eq!(search("incomplete=true"), Vec::<String>::new());

    // Paging: three pages of two, the cursor carried over.
    let mut paged = Vec::new();
    let mut next = String::new();
    for page_no in 0..3 {
        let (_, page) = serve.json(&format!("/api/v1/calls?limit=2{next}"));
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(n) => next = format!("&cursor={n}"),
            None => assert_eq!(page_no, 2, "the last page came early"),
        }
    }
    assert_eq!(paged, (0..6).rev().map(id).collect::<Vec<_>>());

    // One record: exactly the one in the archive.
    let (status, record) = serve.json(&format!("/api/v1/calls/{}", id(3)));
    assert_eq!(status, 200);
    assert_eq!(record, by_call_id(&truth.calls[3].call_id).value);

    // Audio: the whole file, and a byte range of it (what <audio> asks for to seek).
    let wav = std::fs::read(by_call_id(&truth.calls[0].call_id).wav.as_ref().unwrap()).unwrap();
    let (status, heads, body) = serve.get(&format!("/api/v1/calls/{}/audio", id(0)), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&heads, "content-type"), Some("audio/wav"));
    assert_eq!(header(&heads, "accept-ranges"), Some("bytes"));
    assert!(body == wav, "the audio served is not the archived file");
    let (status, heads, body) = serve.get(&format!("/api/v1/calls/{}/audio", id(0)), &[("Range", "bytes=1000-1999")]);
    assert_eq!(status, 206);
    assert_eq!(header(&heads, "content-range"), Some(format!("bytes 1000-1999/{}", wav.len()).as_str()));
    assert_eq!(body, wav[1000..2000]);
    let (status, ..) =
        serve.get(&format!("/api/v1/calls/{}/audio", id(0)), &[("Range", &format!("bytes={}-", wav.len() + 10))]);
    assert_eq!(status, 416);
    // A rejected call has no audio; its evidence pcap is there.
    let (status, err) = serve.json(&format!("/api/v1/calls/{}/audio", id(2)));
    assert_eq!((status, err["error"].as_str().unwrap().contains("no audio")), (404, true), "{err}");
    let (status, heads, body) = serve.get(&format!("/api/v1/calls/{}/pcap", id(2)), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&heads, "content-type"), Some("application/vnd.tcpdump.pcap"));
    // Microsecond or nanosecond pcap.
    assert!(
        [[0xd4, 0xc3, 0xb2, 0xa1], [0x4d, 0x3c, 0xb2, 0xa1]].contains(&[body[0], body[1], body[2], body[3]]),
        "not a pcap"
    );

    // Errors say what was wrong.
    let (status, err) = serve.json("/api/v1/calls/nosuchcall");
    assert_eq!(status, 404, "{err}");
    let (status, err) = serve.json("/api/v1/calls?since=yesterday");
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("since=\"yesterday\""), "{err}");
    let (status, err) = serve.json("/api/v1/calls?colour=blue");
    assert_eq!(status, 400, "{err}");
    let (status, err) = serve.json("/api/v1/calls?cursor=zzz");
    assert_eq!(status, 400, "{err}");

    // Not capturing: no calls in progress, and it says why.
    let (status, active) = serve.json("/api/v1/active");
    assert_eq!((status, &active["capturing"], &active["calls"]), (200, &Value::Bool(false), &serde_json::json!([])));

    // The description names every route the server answers.
    let (status, openapi) = serve.json("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let paths: Vec<&String> = openapi["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths.len(), 12, "{paths:?}");
    drop(serve);

    // Damage the index and let the spool lose its copies (as retention does): the next start
    // moves the damaged file aside and rebuilds every row from the archive.
    let index = tmp.path().join("data/index.sqlite");
    std::fs::write(&index, b"garbage").unwrap();
    std::fs::remove_dir_all(tmp.path().join("data/recordings")).unwrap();
    let serve = Serve::start(tmp.path());
    let (_, rebuilt) = serve.json("/api/v1/calls");
    assert_eq!(rebuilt, all, "the rebuilt index answers differently");
    assert_eq!(std::fs::read(tmp.path().join("data/index.sqlite.damaged")).unwrap(), b"garbage");
    // The audio now comes from the archive directory.
    let (status, _, body) = serve.get(&format!("/api/v1/calls/{}/audio", id(0)), &[]);
    assert_eq!(status, 200);
    assert!(body == wav);
}
