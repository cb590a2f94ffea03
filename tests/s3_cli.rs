//! `callvault ship` and `callvault archive ls|get|verify` against the real S3 test server
//! (`scripts/s3-server.sh`); recorded as skipped without it.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

use callvault::cli::Source;
use callvault::config::Config;
use callvault::{archive, ship, targets};

use std::io::Write;
use std::path::Path;

use clap::Parser;
use sha2::{Digest, Sha256};
use shipper::{NewFile, NewRecording, Spool};

#[derive(Debug, Parser)]
struct ShipCli {
    #[command(flatten)]
    args: ship::ShipArgs,
}

#[derive(Debug, Parser)]
struct ArchiveCli {
    #[command(flatten)]
    args: archive::ArchiveArgs,
}

fn server(test: &str) -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_CA"), var("AWS_ACCESS_KEY_ID")) {
        (Some(endpoint), Some(ca), Some(_)) => Some((endpoint, ca)),
        _ => {
            let line = format!("skipped: {test}: no S3 test server (scripts/s3-server.sh)");
            println!("{line}");
            if let Some(log) = var("CALLVAULT_SKIP_LOG")
                && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log)
            {
                let _ = writeln!(f, "{line}");
            }
            None
        }
    }
}

fn enter(spool: &Spool, work: &Path, key: &str, wav: &[u8]) {
    let name = key.rsplit('/').next().unwrap();
    let json = format!("{{\"call_id\":\"{name}\"}}");
    let mut files = Vec::new();
    for (ext, bytes) in [("wav", wav), ("json", json.as_bytes())] {
        let source = work.join(format!("{name}.{ext}"));
        std::fs::write(&source, bytes).unwrap();
        std::fs::File::open(&source).unwrap().sync_all().unwrap();
        files.push(NewFile {
            source,
            ext: ext.into(),
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        });
    }
    let summary = serde_json::json!({"call_id": name, "from": "alice", "to": "bob", "state": "completed",
        "start": "2016-11-26T14:42:59Z", "duration_s": 3.5});
    spool.enter(NewRecording { key: key.into(), files, summary }).unwrap();
}

#[test]
fn s3_ship_then_archive_ls_get_verify() {
    let Some((endpoint, ca)) = server("s3_ship_then_archive_ls_get_verify") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = data.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let spool = Spool::open(&data).unwrap();
    let keys = ["2016/11/26/20161126T144259Z_alice_bob_aaaa", "2016/11/26/20161126T150000Z_alice_bob_bbbb"];
    let wavs: Vec<Vec<u8>> = (0..2u8).map(|i| vec![i; 70_000]).collect();
    for (key, wav) in keys.iter().zip(&wavs) {
        enter(&spool, &work, key, wav);
    }
    drop(spool);

    let bucket = format!("cv-cli-{}", hex::encode(&Sha256::digest(format!("{:?}", std::time::SystemTime::now()))[..4]));
    let url = format!("s3://{bucket}/calls");
    let key = tmp.path().join("signing.key");
    shipper::target::signing::SiteKey::generate(&key).unwrap();
    let key = key.to_str().unwrap();
    let common = [
        "--archive",
        &url,
        "--s3-endpoint",
        &endpoint,
        "--s3-path-style",
        "--s3-ca-file",
        &ca,
        "--site",
        "hq",
        "--signing-key",
        key,
    ];
    let cli = ShipCli::try_parse_from(["x", "--output", data.to_str().unwrap()].into_iter().chain(common)).unwrap();
    let mut config = Config::default();
    cli.args.apply(&mut config);
    let target = targets::build_targets(&config).unwrap();
    let shipper::Target::S3(s3) = &target[0] else { panic!("not an S3 target") };
    tokio::runtime::Runtime::new().unwrap().block_on(s3.create_bucket(false)).unwrap();
    assert_eq!(s3.object_key(keys[0], "wav"), format!("calls/hq/{}.wav", keys[0]));

    let code = ship::execute(&config, false).unwrap();
    assert_eq!(format!("{code:?}"), format!("{:?}", std::process::ExitCode::SUCCESS));
    assert!(Spool::open(&data).unwrap().pending().unwrap().is_empty());

    let run = |args: &[&str]| {
        let cli = ArchiveCli::try_parse_from(["x"].iter().copied().chain(args.iter().copied()).chain(common)).unwrap();
        let defaults = Source { path: None, log_format: None, verbose: 0 };
        format!("{:?}", archive::archive(&defaults, cli.args).unwrap())
    };
    let ok = format!("{:?}", std::process::ExitCode::SUCCESS);
    assert_eq!(run(&["ls", "2016-11-26"]), ok);
    let out = tmp.path().join("fetched");
    assert_eq!(run(&["get", keys[1], "--dir", out.to_str().unwrap()]), ok);
    assert_eq!(std::fs::read(out.join("20161126T150000Z_alice_bob_bbbb.wav")).unwrap(), wavs[1]);
    assert_eq!(run(&["verify", "2016-11-26", "--no-history"]), ok);
    // A day without recordings has nothing to verify: that is an error, not "0 problems".
    let cli = ArchiveCli::try_parse_from(["x", "verify", "2016-11-27", "--no-history"].iter().copied().chain(common))
        .unwrap();
    let defaults = Source { path: None, log_format: None, verbose: 0 };
    let err = archive::archive(&defaults, cli.args).unwrap_err();
    assert!(format!("{err:#}").contains("nothing to verify"), "{err:#}");
}
