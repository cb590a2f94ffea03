//! A recording interrupted by a crash is recovered on the next start: callvault is killed
//! with SIGKILL in the middle of three calls (the capture comes through a FIFO, so the calls
//! are really in progress), and the next run repairs the WAV headers, writes call records
//! that say `"end_reason": "recovered"`, and ships them like any other recording.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callgen::{CallSpec, Codec, Scenario};
use common::{channels, channels_at, records, replay, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// Replays the first half of `scenario` through a FIFO (`extra`: more options), kills the
/// run with SIGKILL once every call's recording has audio on disk, then starts again on an
/// empty capture with the same data directory. The calls' truth and the second run's output.
fn killed_mid_call(dir: &Path, scenario: &Scenario, extra: &[&str]) -> (callgen::Truth, Output) {
    let pcap = dir.join("calls.pcap");
    let truth = callgen::write_pcap(scenario, &pcap).unwrap();
    let bytes = std::fs::read(&pcap).unwrap();

    let fifo = dir.join("live.pcap");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = dir.join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(&data)
        .arg("--archive")
        .arg(dir.join("archive"))
        .args(extra)
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half of the capture: every call is well into its audio.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&bytes[..bytes.len() / 2]).unwrap();
    w.flush().unwrap();
    // Wait until the recordings in progress have audio on disk.
    let work = data.join("work");
    let calls = scenario.calls.len();
    let t = Instant::now();
    loop {
        let sizes: Vec<u64> = std::fs::read_dir(&work)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "wav" || x == "flac"))
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        if sizes.len() == calls && sizes.iter().all(|&s| s > 200_000) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "recordings never reached the disk: {sizes:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(w);
    assert!(records(&dir.join("archive")).is_empty(), "nothing was finished before the crash");

    // Next start: an empty capture (the file header only) with the same data directory.
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, &bytes[..24]).unwrap();
    let out = replay(&[&empty], dir, extra);
    assert!(out.status.success(), "{}", text(&out));
    let recovered = format!("recovered {calls} recordings interrupted by a crash");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&recovered), "{}", text(&out));
    // Nothing is left behind in the work directory.
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "{left:?}");
    (truth, out)
}

#[test]
fn killed_mid_call_then_recovered_and_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let calls: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 1_000_000_000, 40_000)).collect();
    let scenario = Scenario { calls, keep_payloads: true, ..Scenario::default() };
    let (truth, out) = killed_mid_call(dir.path(), &scenario, &[]);

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
}

/// One call killed mid-call ([`killed_mid_call`]) and recovered at `rate` Hz: its record and
/// its frames, checked for what every recovered recording has: the end reason, at least 5 s of
/// audio, and the call's end where its audio ends at that rate.
fn recovered_one(dir: &Path, scenario: &Scenario, args: &[&str], rate: i64) -> (common::Rec, usize) {
    let (_, out) = killed_mid_call(dir, scenario, args);
    let mut recs = records(&dir.join("archive"));
    assert_eq!(recs.len(), 1, "{}", text(&out));
    let rec = recs.remove(0);
    let v = &rec.value;
    assert_eq!(v["end_reason"], "recovered");
    assert_eq!(v["audio"]["sample_rate"], rate, "{v}");
    let frames = v["audio"]["frames"].as_u64().unwrap() as usize;
    assert!(frames as i64 > rate * 5, "at least 5 s of audio survived: {frames}");
    let time = |k: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(k.as_str().unwrap()).unwrap();
    let played = time(&v["end"]) - time(&v["audio"]["media_start"]);
    assert_eq!(played.num_microseconds().unwrap(), (frames as i64 * 1_000_000) / rate, "{v}");
    (rec, frames)
}

/// The recording of the same capture, uninterrupted, in a directory of its own.
fn uninterrupted(dir: &Path, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let whole = tempfile::tempdir().unwrap();
    let out = replay(&[&dir.join("calls.pcap")], whole.path(), args);
    assert!(out.status.success(), "{}", text(&out));
    let audio = records(&whole.path().join("archive"))[0].wav.clone().unwrap();
    (whole, audio)
}

/// An Opus call recorded at 48 kHz (`opus_rate = 48000`) and interrupted by a crash is
/// recovered at 48 kHz: its header is repaired as what it is, and what was written before the
/// crash is the same audio, sample for sample, as an uninterrupted run records.
#[test]
fn an_opus_call_at_48k_killed_mid_call_is_recovered_at_48k() {
    let dir = tempfile::tempdir().unwrap();
    let mut call = CallSpec::answered(0, T0, 40_000);
    call.codec = Codec::Opus;
    let scenario = Scenario { calls: vec![call], ..Scenario::default() };
    let args = ["--opus-rate", "48000"];
    let (rec, frames) = recovered_one(dir.path(), &scenario, &args, 48_000);
    let [caller, callee] = channels_at(rec.wav.as_ref().unwrap(), 48_000);
    assert_eq!(caller.len(), frames);
    let (_whole, full) = uninterrupted(dir.path(), &args);
    let [full_caller, full_callee] = channels_at(&full, 48_000);
    assert!(full_caller.len() > frames);
    assert!(caller == full_caller[..frames] && callee == full_callee[..frames], "the recovered audio differs");
    assert!(callee.iter().any(|&s| s != 0));
}

/// An interrupted FLAC recording: its torn last frame is cut off, the STREAMINFO says how many
/// samples it holds, the record how long it is, and the audio is what an uninterrupted run
/// records, sample for sample (decoded by the reference decoder, `flac`).
#[test]
fn a_flac_recording_killed_mid_call_is_recovered_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario { calls: vec![CallSpec::answered(0, T0, 40_000)], ..Scenario::default() };
    let args = ["--audio-format", "flac"];
    let (rec, frames) = recovered_one(dir.path(), &scenario, &args, 8000);
    let got = flac_decoded(rec.wav.as_ref().unwrap());
    assert_eq!(got.len(), frames * 2);
    let (_whole, full) = uninterrupted(dir.path(), &args);
    let full = flac_decoded(&full);
    assert!(full.len() > got.len());
    assert!(got == full[..got.len()], "the recovered audio differs");
}

/// The samples of a FLAC file as the reference decoder gives them (it checks each frame's CRC).
fn flac_decoded(flac: &Path) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("decoded.wav");
    let out =
        Command::new("flac").args(["--silent", "--decode", "--force", "-o"]).arg(&wav).arg(flac).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    hound::WavReader::open(&wav).unwrap().samples::<i16>().map(Result::unwrap).collect()
}
