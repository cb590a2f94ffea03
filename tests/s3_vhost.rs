//! Virtual-host addressing (`https://<bucket>.<endpoint host>/<key>`, the AWS default) against
//! the real S3 test store, which serves `{bucket}.s3.localhost` (`-s3.domainName=s3.localhost`,
//! a certificate for `*.s3.localhost`). Those names have to resolve to loopback: the upload
//! runs in a private mount namespace whose `/etc/hosts` says so, leaving the machine's alone.
//! The objects are then verified path-style, from outside: same bucket, same bytes.

mod common;

use std::process::Command;

use callgen::{CallSpec, Scenario};
use common::{skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

#[test]
fn virtual_host_addressing_ships_into_the_named_bucket() {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(ca), Some(_)) =
        (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_CA"), var("AWS_ACCESS_KEY_ID"))
    else {
        skipped("S3 virtual-host addressing: no S3 test server (scripts/s3-server.sh)");
        return;
    };
    let unshare = Command::new("unshare").args(["--mount", "true"]).status();
    if !unshare.is_ok_and(|s| s.success()) {
        skipped("S3 virtual-host addressing: cannot make a mount namespace (needs root and unshare)");
        return;
    }
    let bucket = format!("vhost-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let calls = (0..3).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 500_000_000, 2000)).collect();
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 localhost s3.localhost {bucket}.s3.localhost\n::1 localhost\n")).unwrap();
    // The same store, named by the host its virtual hosts hang off.
    let vhost_endpoint = endpoint.replace("://localhost:", "://s3.localhost:");
    assert_ne!(vhost_endpoint, endpoint, "the test store is expected at https://localhost:<port>");
    let url = format!("s3://{bucket}/rec");

    // Without --s3-path-style: requests go to https://<bucket>.s3.localhost:<port>/rec/...
    let script = r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(dir.path().join("data"))
        .args(["--archive", &url, "--s3-endpoint", &vhost_endpoint, "--s3-ca-file", &ca, "--site", "s"])
        .arg("--signing-key")
        .arg(common::signing_key().0)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 shipped"), "{}", text(&out));

    // Path-style from outside the namespace finds the same three calls, verified.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_callvault"))
            .arg("archive")
            .args(args)
            .args(["--archive", &url, "--s3-endpoint", &endpoint, "--s3-path-style", "--s3-ca-file", &ca])
            .args(["--site", "s"])
            .arg("--signing-key")
            .arg(common::signing_key().0)
            .output()
            .unwrap()
    };
    let verified = cli(&["verify", "2025-01-01"]);
    assert!(verified.status.success(), "{}", text(&verified));
    let listed = cli(&["ls", "2025-01-01", "--json"]);
    let n = String::from_utf8_lossy(&listed.stdout).lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(n, 3, "{}", text(&listed));
}
