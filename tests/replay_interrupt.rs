//! `replay` stopped by Ctrl-C (SIGINT) part way through its input (a FIFO, so the calls are
//! really in progress): it stops reading, ends the calls in progress there, records and ships
//! them, says so in its summary and exits 130. Each recording is, sample by sample, the start
//! of what the whole capture records for that call. A second signal stops it at once, even
//! while the input hangs, and the next start recovers what was in progress.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callgen::{CallSpec, Scenario};
use common::{channels, records, replay, sha256, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// Twenty 30 s calls starting 100 ms apart.
fn capture(path: &Path) -> callgen::Truth {
    let calls: Vec<CallSpec> =
        (0..20).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 100_000_000, 30_000)).collect();
    callgen::write_pcap(&Scenario::new(calls), path).unwrap()
}

/// `callvault replay` reading the FIFO `fifo` into `dir`/data and `dir`/archive.
fn spawn_replay(dir: &Path, fifo: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(dir.join("data"))
        .arg("--archive")
        .arg(dir.join("archive"))
        .arg(fifo)
        .env("CALLVAULT_CONFIG", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn fifo(dir: &Path) -> std::path::PathBuf {
    let fifo = dir.join("input.pcap");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    fifo
}

/// The capture written, then `callvault replay` started on a FIFO in `dir`/run and 40 % of the
/// capture written into it (every call ~10 s into its audio): the truth, the capture's bytes,
/// the run directory, the process and the FIFO's open write end.
fn start_on_fifo(dir: &Path) -> (callgen::Truth, Vec<u8>, PathBuf, Child, std::fs::File) {
    let pcap = dir.join("calls.pcap");
    let truth = capture(&pcap);
    let bytes = std::fs::read(&pcap).unwrap();
    let run = dir.join("run");
    let input = fifo(dir);
    let child = spawn_replay(&run, &input);
    let mut w = std::fs::OpenOptions::new().write(true).open(&input).unwrap();
    w.write_all(&bytes[..bytes.len() * 2 / 5]).unwrap();
    (truth, bytes, run, child, w)
}

fn interrupt(child: &Child) {
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
}

#[test]
fn an_interrupted_replay_records_and_ships_what_it_read_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (truth, bytes, run, child, mut w) = start_on_fifo(dir.path());
    // The whole capture, for what each call's recording must start with.
    let whole = dir.path().join("whole");
    let out = replay(&[&dir.path().join("calls.pcap")], &whole, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let full: HashMap<String, common::Rec> = records(&whole.join("archive"))
        .into_iter()
        .map(|r| (r.value["call_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(full.len(), truth.calls.len());

    // Ctrl-C, then the rest for as long as callvault reads it.
    let cut = bytes.len() * 2 / 5;
    interrupt(&child);
    let mut sent = cut;
    for chunk in bytes[cut..].chunks(64 << 10) {
        if w.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    drop(w);
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert!(sent < bytes.len(), "callvault read the whole input after SIGINT: {all}");
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(all.contains("interrupted (SIGINT) after"), "the summary says so: {all}");

    let recs = records(&run.join("archive"));
    assert_eq!(recs.len(), truth.calls.len(), "every call in progress has its record: {all}");
    for r in &recs {
        let id = r.value["call_id"].as_str().unwrap();
        let ctx = format!("{id}: {}", r.value);
        assert_eq!(r.value["end_reason"], "shutdown", "{ctx}");
        assert_eq!(r.value["capture_complete"], false, "{ctx}");
        let wav = r.wav.as_ref().expect("audio");
        assert_eq!(r.value["audio"]["sha256"], sha256(wav), "{ctx}");
        let got = channels(wav);
        let want = channels(full[id].wav.as_ref().unwrap());
        assert!(got[0].len() > 8000 * 5 && got[0].len() < want[0].len(), "{ctx}: {} frames", got[0].len());
        for ch in 0..2 {
            if let Some(i) = (0..got[ch].len()).find(|&i| got[ch][i] != want[ch][i]) {
                panic!("{ctx}: channel {ch} differs from the whole capture's recording at frame {i}");
            }
        }
    }
    assert_eq!(std::fs::read_dir(run.join("data/work")).unwrap().count(), 0, "nothing left behind: {all}");
}

#[test]
fn a_second_interrupt_stops_at_once_and_the_next_start_recovers_the_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (truth, _, run, mut child, w) = start_on_fifo(dir.path());
    // The input hangs (the writer stays open, nothing more comes): the first signal cannot
    // end the reading, the second ends the process.
    let work = run.join("data/work");
    let t = Instant::now();
    let wavs = || {
        std::fs::read_dir(&work)
            .map(|rd| rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "wav")).count())
            .unwrap_or(0)
    };
    while wavs() < truth.calls.len() {
        assert!(t.elapsed() < Duration::from_secs(30), "recordings never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the first signal only asks");
    interrupt(&child);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "a second SIGINT did not stop callvault");
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(w);
    assert_eq!(status.code(), Some(130));

    // The next start (a capture of one other call) recovers the calls that were in progress.
    let other = dir.path().join("other.pcap");
    let extra = CallSpec::answered(99, T0 + 3_600_000_000_000, 2_000);
    callgen::write_pcap(&Scenario::new(vec![extra.clone()]), &other).unwrap();
    let out = replay(&[&other], &run, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&run.join("archive"));
    let recovered = recs.iter().filter(|r| r.value["end_reason"] == "recovered").count();
    assert_eq!(recovered, truth.calls.len(), "{}", text(&out));
    assert!(recs.iter().any(|r| r.value["call_id"] == extra.call_id.as_str()));
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "nothing left behind: {}", text(&out));
}
