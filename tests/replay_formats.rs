//! Recording formats and layouts: FLAC decodes (with the reference `flac` decoder, which also
//! checks the embedded MD5 of the audio) to exactly the samples of the WAV recording, and a
//! mono recording is the two parties mixed. The call record names format and layout.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use callgen::{CallSpec, Codec, Scenario};
use common::{channels, records, replay, skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

fn samples(wav: &Path) -> (u16, Vec<i16>) {
    let mut r = hound::WavReader::open(wav).unwrap();
    let ch = r.spec().channels;
    (ch, r.samples::<i16>().map(Result::unwrap).collect())
}

/// call_id -> (record, audio path) for one replay with `extra` options.
fn run(pcap: &Path, dir: &Path, extra: &[&str]) -> HashMap<String, (serde_json::Value, std::path::PathBuf)> {
    let out = replay(&[pcap], dir, extra);
    assert!(out.status.success(), "{extra:?}: {}", text(&out));
    records(&dir.join("archive"))
        .into_iter()
        .filter_map(|r| Some((r.value["call_id"].as_str()?.to_owned(), (r.value.clone(), r.wav?))))
        .collect()
}

#[test]
fn flac_and_mono_hold_exactly_the_wav_audio() {
    let have_flac = Command::new("flac").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut calls: Vec<CallSpec> =
        (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 700_000_000, 9000)).collect();
    calls[1].codec = Codec::Pcma;
    calls[2].impair.caller.loss = vec![3, 4, 100];
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();

    let wav = run(&pcap, &dir.path().join("wav"), &[]);
    let mono = run(&pcap, &dir.path().join("mono"), &["--audio-layout", "mono"]);
    let split_dir = dir.path().join("split");
    let split = run(&pcap, &split_dir, &["--audio-layout", "split"]);
    assert_eq!(wav.len(), 3);
    for (id, (rec, path)) in &wav {
        assert_eq!(rec["audio"]["format"], "wav");
        assert_eq!(rec["audio"]["layout"], "stereo");
        let [c0, c1] = channels(path);
        let (mrec, mpath) = &mono[id];
        assert_eq!(mrec["audio"]["layout"], "mono");
        assert_eq!(mrec["audio"]["channels"], serde_json::json!(["caller+callee"]));
        let (n, m) = samples(mpath);
        assert_eq!(n, 1);
        let mixed: Vec<i16> = c0.iter().zip(&c1).map(|(a, b)| a.saturating_add(*b)).collect();
        assert_eq!(m, mixed, "{id}: mono is the sum of both parties");
        assert_eq!(mrec["audio"]["frames"], rec["audio"]["frames"]);
        // Split: one mono file per party, each listed with its hash; together the stereo.
        let (srec, _) = &split[id];
        let files = srec["audio"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{srec}");
        for (f, want) in files.iter().zip([&c0, &c1]) {
            let name = f["file"].as_str().unwrap();
            let path = common::records(&split_dir.join("archive"))
                .into_iter()
                .find(|r| r.value["call_id"] == id.as_str())
                .unwrap()
                .json
                .with_file_name(name);
            assert_eq!(f["sha256"], common::sha256(&path));
            let (n, s) = samples(&path);
            assert_eq!((n, &s), (1, want), "{name}");
        }
        assert!(files[0]["file"].as_str().unwrap().ends_with(".caller.wav"));
        assert_eq!(files[1]["channels"], serde_json::json!(["callee"]));
    }

    if !have_flac {
        skipped("FLAC end-to-end check: the flac decoder is not installed");
        return;
    }
    for (layout, want_ch) in [("stereo", 2u16), ("mono", 1)] {
        let flac = run(
            &pcap,
            &dir.path().join(format!("flac-{layout}")),
            &["--audio-format", "flac", "--audio-layout", layout],
        );
        assert_eq!(flac.len(), 3);
        for (id, (rec, path)) in &flac {
            assert_eq!(rec["audio"]["format"], "flac");
            assert!(path.extension().is_some_and(|e| e == "flac"), "{}", path.display());
            assert_eq!(rec["audio"]["sha256"], common::sha256(path));
            let decoded = dir.path().join(format!("{layout}-{}.wav", rec["audio"]["frames"]));
            let ok = Command::new("flac")
                .args(["--silent", "--decode", "--force", "-o"])
                .arg(&decoded)
                .arg(path)
                .status()
                .unwrap();
            assert!(ok.success(), "{id}: flac -d (CRC and MD5 verified)");
            let (n, got) = samples(&decoded);
            assert_eq!(n, want_ch);
            let reference = if layout == "stereo" { &wav[id].1 } else { &mono[id].1 };
            assert_eq!(got, samples(reference).1, "{id}: FLAC {layout} == WAV {layout}");
            let wav_bytes = std::fs::metadata(reference).unwrap().len();
            assert!(std::fs::metadata(path).unwrap().len() < wav_bytes, "FLAC is smaller");
        }
    }
}

/// Compresses `pcap` with the command `tool` (`gzip`, `zstd`) into `out`.
fn compress(tool: &str, pcap: &Path, out: &Path) {
    let file = std::fs::File::create(out).unwrap();
    let status = Command::new(tool).args(["-c", "-9"]).arg(pcap).stdout(file).status().unwrap();
    assert!(status.success(), "{tool} failed");
}

#[test]
fn gzip_and_zstd_captures_record_exactly_what_the_plain_capture_does() {
    let calls: Vec<CallSpec> = (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 500_000_000, 4000)).collect();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let plain = run(&pcap, &dir.path().join("plain"), &[]);
    assert_eq!(plain.len(), 3);
    for (tool, ext) in [("gzip", "gz"), ("zstd", "zst")] {
        if !common::have(tool) {
            skipped(&format!("replay of a {tool} capture: `{tool}` is not installed"));
            continue;
        }
        // The name says nothing: the content tells.
        let packed = dir.path().join(format!("calls-{ext}.pcap"));
        compress(tool, &pcap, &packed);
        let got = run(&packed, &dir.path().join(ext), &[]);
        assert_eq!(got.len(), plain.len(), "{tool}");
        for (id, (rec, wav)) in &plain {
            let (grec, gwav) = &got[id];
            assert_eq!(std::fs::read(gwav).unwrap(), std::fs::read(wav).unwrap(), "{tool}: {id}: audio differs");
            for k in ["start", "end", "state", "streams", "sip", "audio"] {
                assert_eq!(grec[k], rec[k], "{tool}: {id}: {k}");
            }
        }
        // Cut short: an error that names the file and the compression, after what could be read.
        let cut = dir.path().join(format!("cut.pcap.{ext}"));
        let bytes = std::fs::read(&packed).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let out = replay(&[&cut], &dir.path().join(format!("cut-{ext}")), &[]);
        let said = text(&out);
        assert!(!out.status.success(), "{tool}: {said}");
        assert!(
            said.contains(&cut.display().to_string()) && said.contains(&format!("{tool} data is corrupt or truncated")),
            "{tool}: {said}"
        );
    }
}
