//! The `callgen` binary: writes the capture and the truth and prints a one-line summary.

use std::process::Command;

#[test]
fn binary_writes_capture_truth_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("demo.pcap");
    let json = dir.path().join("demo.json");
    let out = Command::new(env!("CARGO_BIN_EXE_callgen"))
        .args(["--calls", "8", "--concurrency", "4", "--talk", "2", "--mix", "--link", "sll2"])
        .args(["--start", "2024-03-01T12:00:00Z", "--seed", "3", "--out"])
        .arg(&pcap)
        .arg("--truth")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("8 calls"), "{stdout}");

    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let bytes = std::fs::metadata(&pcap).unwrap().len();
    assert_eq!(truth["bytes"].as_u64(), Some(bytes));
    assert!(stdout.contains(&format!("{bytes} bytes")), "{stdout}");
    let states: Vec<&str> =
        truth["calls"].as_array().unwrap().iter().map(|c| c["expected_state"].as_str().unwrap()).collect();
    assert_eq!(&states[1..4], ["rejected", "cancelled", "ringing"]);
    assert_eq!(truth["first_ns"].as_i64(), Some(1_709_294_400_000_000_000));
}

#[test]
fn binary_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callgen"))
        .args(["--calls", "1", "--ptime", "5", "--out"])
        .arg(dir.path().join("x.pcap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ptime_ms 5"), "{stderr}");
}
