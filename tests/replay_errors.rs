//! Bad input: each problem gets one clear error naming the file (and the packet number where
//! it applies), the other files are still recorded, and finished recordings are kept.

mod common;

use std::path::Path;

use callgen::{CallSpec, Scenario};
use common::{records, replay, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn capture(path: &Path, first: u32, calls: u32, spacing_s: i64) -> callgen::Truth {
    let calls = (0..calls)
        .map(|i| CallSpec::answered(first + i, T0 + i64::from(i) * spacing_s * 1_000_000_000, 2000))
        .collect();
    callgen::write_pcap(&Scenario::new(calls), path).unwrap()
}

#[test]
fn missing_file_is_named_and_the_others_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    capture(&good, 0, 2, 1);
    let missing = dir.path().join("nope.pcap");
    let out = replay(&[&missing, &good], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("cannot open capture file") && all.contains("nope.pcap") && all.contains("No such file"),
        "{all}"
    );
    assert_eq!(records(&dir.path().join("archive")).len(), 2, "{all}");
}

#[test]
fn truncated_file_names_the_packet_and_keeps_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.pcap");
    // Calls 10 s apart: the first ones are finished long before the cut.
    let truth = capture(&full, 0, 4, 10);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.pcap");
    // Cut in the middle of a record, about 80 % into the file.
    std::fs::write(&cut, &bytes[..bytes.len() * 4 / 5 + 7]).unwrap();
    let out = replay(&[&cut], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("cut.pcap") && all.contains("corrupt or truncated at packet"), "{all}");
    let recs = records(&dir.path().join("archive"));
    // Every call that started before the cut has a record (the open one is finalised).
    assert!(recs.len() >= 3 && recs.len() <= truth.calls.len(), "{all}");
    let completed = recs.iter().filter(|r| r.value["state"] == "completed").count();
    assert!(completed >= 2, "{all}");
    assert!(recs.iter().all(|r| r.wav.as_ref().is_some_and(|w| w.exists())), "{all}");
}

#[test]
fn unsupported_link_type_and_garbage_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    capture(&good, 0, 1, 1);
    // A valid pcap header with link type 147 (USER0) and no packets.
    let mut user0 = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    user0.extend_from_slice(&2u16.to_le_bytes());
    user0.extend_from_slice(&4u16.to_le_bytes());
    user0.extend_from_slice(&[0; 8]);
    user0.extend_from_slice(&65535u32.to_le_bytes());
    user0.extend_from_slice(&147u32.to_le_bytes());
    let odd = dir.path().join("user0.pcap");
    std::fs::write(&odd, &user0).unwrap();
    let garbage = dir.path().join("notes.txt");
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();
    let out = replay(&[&odd, &garbage, &good], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("user0.pcap") && all.contains("link type 147"), "{all}");
    assert!(all.contains("notes.txt") && all.contains("cannot open capture file"), "{all}");
    assert_eq!(records(&dir.path().join("archive")).len(), 1, "{all}");
}

#[test]
fn unwritable_output_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    capture(&good, 0, 1, 1);
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // `callvault replay --quiet ARGS good.pcap`: it must refuse to start (status 1).
    let refused = |args: &[&Path]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"));
        cmd.args(["replay", "--quiet"]);
        for (flag, value) in ["--output", "--archive"].iter().zip(args) {
            cmd.arg(flag).arg(value);
        }
        let out = cmd.arg(&good).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        text(&out)
    };
    let all = refused(&[&file.join("data")]);
    assert!(all.contains("cannot create data directory") && all.contains("a-file/data"), "{all}");
    // The file itself named as the data directory, or as the archive.
    let all = refused(&[&file]);
    assert!(all.contains("a-file' is not a directory"), "{all}");
    let all = refused(&[&dir.path().join("data"), &file]);
    assert!(all.contains("a-file is not a directory; point the target at a directory"), "{all}");
}

#[test]
fn a_capture_cut_by_a_small_snapshot_length_is_one_warning_and_incomplete_input() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let calls = (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 100_000_000, 2000)).collect();
    callgen::write_pcap(&Scenario { calls, snaplen: Some(60), ..Scenario::default() }, &cut).unwrap();
    let out = replay(&[&cut], dir.path(), &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(4), "the documented incomplete-input status\n{all}");
    let warning = "cut short by the capture's snapshot length (60 bytes kept per packet)";
    assert_eq!(all.matches(warning).count(), 1, "warned once\n{all}");
    assert!(all.contains("SIP messages cut at 60 bytes: calls cannot be followed"), "{all}");
    assert!(all.contains("tcpdump -s 0"), "{all}");
    // The same calls whole: no warning, status 0.
    let whole = dir.path().join("whole.pcap");
    capture(&whole, 0, 3, 1);
    let out = replay(&[&whole], &dir.path().join("second"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("snapshot length"));
}

/// `callvault replay` of `pcap` into `dir` (metrics in `dir/metrics`) under the shell's
/// `ulimit` with `args`.
fn replay_under_ulimit(args: &str, dir: &Path, pcap: &Path) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            r#"ulimit {args} && exec "$0" replay --quiet --output "$1/data" --archive "$1/archive" --metrics-out "$1/metrics" "$2""#
        ))
        .arg(env!("CARGO_BIN_EXE_callvault"))
        .arg(dir)
        .arg(pcap)
        .output()
        .unwrap()
}

/// Every call in progress holds its audio file open. Started with a soft limit of open files
/// below the calls in progress (the usual 1024 of a shell, here 128 for 300 calls), callvault
/// takes what the hard limit allows, and every call gets its audio.
#[test]
fn more_calls_in_progress_than_the_soft_open_files_limit_all_get_audio() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    capture(&pcap, 0, 300, 0);
    let hard = std::process::Command::new("sh").args(["-c", "ulimit -Hn"]).output().unwrap();
    let hard: u64 = String::from_utf8_lossy(&hard.stdout).trim().parse().unwrap_or(u64::MAX);
    if hard < 1024 {
        common::skipped(&format!("replay_errors: the hard limit of open files is {hard}, too low for 300 calls"));
        return;
    }
    let out = replay_under_ulimit("-Sn 128", dir.path(), &pcap);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 300, "{}", text(&out));
    assert!(recs.iter().all(|r| r.wav.as_ref().is_some_and(|w| w.exists())), "{}", text(&out));
}

/// More calls in progress than even the hard limit of open files allows (here 128 for 300
/// calls, which cannot be raised): audio files beyond what the limit leaves are closed between
/// writes and opened again, and every call gets exactly the audio an unlimited run writes.
#[test]
fn more_calls_in_progress_than_the_hard_open_files_limit_all_get_their_exact_audio() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    capture(&pcap, 0, 300, 0);
    let limited = dir.path().join("limited");
    let out = replay_under_ulimit("-n 128", &limited, &pcap);
    assert!(out.status.success(), "{}", text(&out));
    let metrics = std::fs::read_to_string(limited.join("metrics")).unwrap();
    let reopens = metrics
        .lines()
        .find_map(|l| l.strip_prefix("callvault_audio_file_reopens_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no reopen counter in\n{metrics}"));
    assert!(reopens > 0.0, "files were closed between writes");
    let plain = dir.path().join("plain");
    let out2 = replay(&[&pcap], &plain, &[]);
    assert!(out2.status.success(), "{}", text(&out2));
    let audio = |dir: &Path| -> std::collections::HashMap<String, String> {
        records(&dir.join("archive"))
            .into_iter()
            .map(|r| (r.value["call_id"].as_str().unwrap().to_owned(), common::sha256(r.wav.as_deref().unwrap())))
            .collect()
    };
    let (got, want) = (audio(&limited), audio(&plain));
    assert_eq!(got.len(), 300, "{}", text(&out));
    assert!(got == want, "every call's audio as an unlimited run writes it");
}

/// `callvault ... | head`: the reader leaves before the report is written. The command does its
/// work and exits with its own status, without a panic; `archive ls` the same. A report that
/// cannot be written for another reason (a full disk) is an error.
#[test]
fn a_report_nobody_reads_ends_quietly_and_one_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    capture(&pcap, 0, 3, 1);
    let run = |args: &[&std::ffi::OsStr], stdout: std::process::Stdio| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
            .args(args)
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let closed = || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        std::process::Stdio::from(writer)
    };
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    let replay_args = [
        "replay".as_ref(),
        "--output".as_ref(),
        data.as_os_str(),
        "--archive".as_ref(),
        archive.as_os_str(),
        pcap.as_os_str(),
    ];
    let (status, err) = run(&replay_args, closed());
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(records(&archive).len(), 3, "the work is done all the same: {err}");
    let day = records(&archive)[0].value["start"].as_str().unwrap()[..10].to_owned();
    let list = ["archive".as_ref(), "ls".as_ref(), "--archive".as_ref(), archive.as_os_str(), day.as_ref()];
    let (status, err) = run(&list, closed());
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The listing itself works (what the closed reader missed).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault")).args(list).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "{}", text(&out));
    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let (status, err) = run(&list, full.into());
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("cannot write to standard output") && err.contains("No space left"), "{err}");
    } else {
        common::skipped("report to a full disk: no /dev/full");
    }
}
