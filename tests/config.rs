//! The configuration file and the commands around it, through the real binary: the example
//! in deploy/ parses and documents every key, the command line wins over the file, problems
//! name file, line, key and a hint, secrets never show, and `ship` delivers queued recordings
//! only where they were going.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callvault::config::{self, Archive, Config, LockModeArg, Rate};
use common::{records, text};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/callvault.toml");
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/demo.pcap");

fn callvault(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .args(args)
        .output()
        .unwrap()
}

/// Every key of a TOML table, as `section.key` paths.
fn keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.push(path.clone());
                keys(v, &path, out);
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| keys(v, prefix, out)),
        _ => {}
    }
}

#[test]
fn the_example_configuration_parses_and_documents_every_key() {
    let c = config::load(Some(Path::new(EXAMPLE))).unwrap();
    assert_eq!(c.capture.interfaces, ["eth1"]);
    assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/callvault"));
    assert_eq!(c.archive.len(), 1);
    assert_eq!(c.archive[0].path.as_deref(), Some(Path::new("/var/lib/callvault/archive")));
    assert_eq!(c.service.user, "callvault");
    // Apart from those, the example shows the defaults.
    let mut expected = Config::default();
    expected.capture.interfaces = c.capture.interfaces.clone();
    expected.storage.data_dir = c.storage.data_dir.clone();
    expected.archive = c.archive.clone();
    assert_eq!(c, expected);

    // Every key appears, set or commented out, with what it means.
    let full_s3 = Archive {
        name: Some("offsite".into()),
        endpoint: Some("https://s3.example.net".into()),
        region: Some("us-east-1".into()),
        path_style: true,
        allow_http: true,
        ca_file: Some("/ca.pem".into()),
        profile: Some("p".into()),
        credentials_file: Some("/c".into()),
        site: Some("hq".into()),
        object_lock: Some(LockModeArg::Compliance),
        lock_days: Some(1),
        multipart_mib: Some(16),
        bandwidth_limit: Some(Rate(1024)),
        ..Archive::from_arg("s3://b/p")
    };
    let full_dir = Archive {
        retention_days: Some(365),
        encrypt_to: vec!["age1...".into()],
        link: Some(false),
        ..Archive::from_arg("/a")
    };
    let mut all = Config { archive: vec![full_s3, full_dir], ..Config::default() };
    all.service.group = Some("callvault".into());
    all.http.metrics_listen = Some("127.0.0.1:9750".into());
    all.http.api_listen = Some("127.0.0.1:9751".into());
    all.metrics.textfile = Some("/var/lib/prometheus/node-exporter/callvault.prom".into());
    all.hep.collector = Some("homer.example.net:9060".into());
    all.hep.node_name = Some("span-1".into());
    all.hep.password_file = Some("/etc/callvault/hep-key".into());
    all.signing.key_file = Some("/etc/callvault/signing.key".into());
    let mut paths = Vec::new();
    keys(&toml::Value::try_from(&all).unwrap(), "", &mut paths);
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    for path in paths {
        let key = path.rsplit('.').next().unwrap();
        let written = example.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{key} =")) || l == format!("[{path}]") || l == format!("[[{path}]]")
        });
        assert!(written, "{path} is not in deploy/callvault.toml");
    }
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_command_line_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write(
        &d.join("callvault.toml"),
        "[storage]\ndata_dir = \"from-file\"\n\n[recording]\naudio_format = \"flac\"\n\n[[archive]]\npath = \"file-archive\"\n",
    );
    let out =
        callvault(d, &["--config", &cfg, "replay", "--quiet", "--output", "from-cli", "--audio-format", "wav", SAMPLE]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(d.join("from-cli/queue").is_dir() && !d.join("from-file").exists(), "--output won");
    let recs = records(&d.join("file-archive"));
    assert!(!recs.is_empty(), "the file's archive was used\n{}", text(&out));
    for r in recs.iter().filter(|r| r.wav.is_some()) {
        assert_eq!(r.value["audio"]["format"], "wav", "--audio-format won");
    }
    let shown = callvault(d, &["--config", &cfg, "config", "show"]);
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown_text.contains("data_dir = \"from-file\"") && shown_text.contains("audio_format = \"flac\""),
        "{shown_text}"
    );
}

#[test]
fn problems_name_the_file_line_key_and_a_hint_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write(&d.join("bad.toml"), "[storage]\ndata_dir = \"data\"\n\n[storage]\n");
    let out = callvault(d, &["--config", &cfg, "config", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:4:"), "duplicate table\n{}", text(&out));

    let cfg = write(&d.join("bad.toml"), "[storage]\ndata_dir = \"data\"\nretentoin = \"delete\"\n");
    for args in [vec!["--config", &cfg, "config", "check"], vec!["--config", &cfg, "replay", "--quiet", SAMPLE]] {
        let out = callvault(d, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(err.contains(&format!("{cfg}:3:1: key `storage.retentoin`: unknown field")), "{err}");
        assert!(err.contains("hint: did you mean `retention`?"), "{err}");
    }
    assert!(!d.join("data").exists(), "nothing started");

    let out = callvault(d, &["replay", "--quiet", "--reorder-ms", "9999", "--output", "data", SAMPLE]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("command line: key `recording.reorder_ms`: 9999 is out of range 0..=500"), "{err}");
    assert!(!d.join("data").exists(), "nothing started");

    let cfg = write(&d.join("bad.toml"), "[recording]\nopus_rate = 44100\n");
    let out = callvault(d, &["--config", &cfg, "config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("key `recording.opus_rate`: is 44100; Opus is recorded at 16000 or 48000 Hz"), "{err}");

    let cfg = write(&d.join("bad.toml"), "[recording]\npause_dtmf = \"*x\"\nresume_dtmf = \"#\"\n");
    let out = callvault(d, &["--config", &cfg, "config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("key `recording.pause_dtmf`") && err.contains("'x' is not a DTMF key"), "{err}");
    let out = callvault(d, &["replay", "--quiet", "--pause-dtmf", "*1", "--output", "data", SAMPLE]);
    assert_eq!(out.status.code(), Some(2), "a pause code without a resume code\n{}", text(&out));
    assert!(!d.join("data").exists(), "nothing started");

    // A file that cannot be read: the path, and the operating system's reason once.
    let out = callvault(d, &["--config", "missing.toml", "config", "show"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the configuration file missing.toml: No such file"), "{}", text(&out));
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let out = callvault(
        d,
        &["replay", "--quiet", "--signing-key", "missing.key", "--output", "data", "--archive", "archive", SAMPLE],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(err.contains("cannot read the signing key missing.key: No such file"), "{}", text(&out));
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(!d.join("data").exists() && !d.join("archive").exists(), "nothing started");
}

#[test]
fn secrets_are_redacted_and_credentials_files_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let creds = d.join("s3-credentials");
    std::fs::write(&creds, "[default]\naws_access_key_id = AKIAFILEKEY\naws_secret_access_key = FileSecretValue42\n")
        .unwrap();
    let cfg = write(
        &d.join("callvault.toml"),
        &format!(
            "[[archive]]\nname = \"env\"\nurl = \"s3://bucket/a\"\n\n[[archive]]\nname = \"file\"\nurl = \"s3://bucket/b\"\ncredentials_file = \"{}\"\n",
            creds.display()
        ),
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["--config", &cfg, "config", "show"])
        .env("AWS_ACCESS_KEY_ID", "AKIAENVKEY")
        .env("AWS_SECRET_ACCESS_KEY", "EnvSecretValue42")
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("access key id AKIAENVKEY") && shown.contains("access key id AKIAFILEKEY"), "{shown}");
    assert!(shown.contains("secret key <redacted>"), "{shown}");
    assert!(!shown.contains("SecretValue42"), "a secret was shown\n{shown}");

    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = callvault(d, &["--config", &cfg, "config", "check"]);
    let checked = text(&out);
    assert_eq!(out.status.code(), Some(1), "{checked}");
    assert!(checked.contains("mode 0644") && checked.contains("chmod 0640"), "{checked}");
    assert!(!checked.contains("SecretValue42"), "{checked}");
}

#[test]
fn ship_delivers_queued_recordings_only_where_they_were_going() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Recorded for an S3 archive that cannot be reached: everything stays queued, owed to it.
    let s3 =
        ["--archive", "s3://bucket/calls", "--s3-endpoint", "https://127.0.0.1:1", "--s3-path-style", "--site", "hq"];
    let mut args = vec!["replay", "--quiet", "--output", "data", "--ship-timeout", "2"];
    args.extend(s3);
    args.push(SAMPLE);
    let out = callvault(d, &args);
    assert_eq!(out.status.code(), Some(3), "recordings left queued\n{}", text(&out));

    // `ship` without the archive (the default ./callvault-archive) refuses, naming the target
    // the recordings are owed to, and delivers nothing elsewhere.
    let out = callvault(d, &["ship", "--output", "data"]);
    let refused = text(&out);
    assert_eq!(out.status.code(), Some(1), "{refused}");
    assert!(
        refused.contains("owed to target \"s3://bucket/calls\" (https://127.0.0.1:1/bucket/calls/hq/)")
            && refused.contains("--retarget"),
        "{refused}"
    );
    assert!(records(&d.join("callvault-archive")).is_empty());

    // With the archive they are owed to there is no refusal (it is still unreachable).
    let mut args = vec!["ship", "--output", "data", "--ship-timeout", "1"];
    args.extend(s3);
    let out = callvault(d, &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("waiting for s3://bucket/calls"), "{}", text(&out));

    // Elsewhere only when told so explicitly.
    let out = callvault(d, &["ship", "--output", "data", "--archive", "new", "--retarget"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("re-targeted"), "{}", text(&out));
    let status = callvault(d, &["status", "--output", "data"]);
    assert!(text(&status).contains("queued: 0 recording(s)"), "{}", text(&status));
    assert!(!records(&d.join("new")).is_empty());
    assert_eq!(records(&d.join("new")).len(), records(&d.join("data/recordings")).len());

    // A directory that is not a spool is refused, and not created.
    let out = callvault(d, &["ship", "--output", "typo-dir"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is not a callvault data directory"), "{}", text(&out));
    assert!(!d.join("typo-dir").exists());
}

#[test]
fn logs_are_json_lines_when_asked_and_never_coloured_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = ["replay", "--quiet", "--output", "data", "--archive", "archive", SAMPLE];
    let out = callvault(d, &[&["--log-format", "json", "-v"][..], &common].concat());
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<&str> = std::str::from_utf8(&out.stderr).unwrap().lines().collect();
    assert!(lines.len() >= 8, "debug lines were logged\n{}", text(&out));
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    let out = callvault(d, &[&["-v"][..], &common].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DEBUG") && !err.contains('\u{1b}'), "plain text without colour codes\n{err}");
}
