//! A recording interrupted by a crash is recovered on the next start: callvault is killed
//! with SIGKILL in the middle of three calls (the capture comes through a FIFO, so the calls
//! are really in progress), and the next run repairs the WAV headers, writes call records
//! that say `"end_reason": "recovered"`, and ships them like any other recording.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callgen::{CallSpec, Scenario};
use common::{channels, records, replay, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

#[test]
fn killed_mid_call_then_recovered_and_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let calls: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 1_000_000_000, 40_000)).collect();
    let truth = callgen::write_pcap(&Scenario { calls, keep_payloads: true, ..Scenario::default() }, &pcap).unwrap();
    let bytes = std::fs::read(&pcap).unwrap();

    let fifo = dir.path().join("live.pcap");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(&data)
        .arg("--archive")
        .arg(dir.path().join("archive"))
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half of the capture: every call is 10-20 s into its audio.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    w.flush().unwrap();
    // Wait until the three recordings in progress have audio on disk.
    let work = data.join("work");
    let t = Instant::now();
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(&work)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        if sizes.len() == 3 && sizes.iter().all(|&s| s > 200_000) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "recordings never reached the disk: {sizes:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(w);
    assert!(records(&dir.path().join("archive")).is_empty(), "nothing was finished before the crash");

    // Next start: an empty capture (the file header only) with the same data directory.
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, &bytes[..24]).unwrap();
    let out = replay(&[&empty], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recovered 3 recordings interrupted by a crash"),
        "{}",
        text(&out)
    );

    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 3, "{}", text(&out));
    for t in &truth.calls {
        let r = recs.iter().find(|r| r.value["call_id"] == t.call_id.as_str()).expect("recovered record");
        let v = &r.value;
        assert_eq!(v["end_reason"], "recovered");
        assert_eq!(v["capture_complete"], false);
        assert_eq!(v["from"]["user"], t.from_user.as_str());
        let wav = r.wav.as_ref().unwrap();
        let [caller, callee] = channels(wav);
        let frames = v["audio"]["frames"].as_u64().unwrap() as usize;
        assert_eq!(caller.len(), frames);
        assert!(frames > 8000 * 5, "at least 5 s of audio survived: {frames}");
        // What was written before the crash is the call's audio, sample for sample: the
        // callee's first packet starts the file.
        let first: Vec<i16> = t.callee.payloads.as_ref().unwrap()[0]
            .iter()
            .map(|&b| mixer::mix::g711::ULAW_TO_LINEAR[b as usize])
            .collect();
        assert_eq!(&callee[..160], &first[..]);
        assert!(caller.iter().any(|&s| s != 0));
        assert_eq!(v["audio"]["sha256"], common::sha256(wav));
    }
    // Nothing is left behind in the work directory.
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
}
