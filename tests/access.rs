//! Access control of the HTTP listeners, end to end: `callvault serve` over HTTPS (a certificate
//! made by openssl) with a basic-auth user and a bearer token, asked by curl; every audio and pcap
//! download lands in the audit log, which `callvault ship` then archives like a recording. And
//! an address other than loopback without HTTPS and authentication is refused at start.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use callgen::{CallSpec, Scenario};
use common::{have, records, replay, skipped, text};
use serde_json::Value;

const T0: i64 = 1_767_225_600 * 1_000_000_000; // 2026-01-01T00:00:00Z

fn callvault() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_callvault"));
    c.env_remove("CALLVAULT_CONFIG");
    c
}

/// A self-signed certificate for localhost and 127.0.0.1: (certificate, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (cert, key)
}

/// `[[http.user]]` for alice and `[[http.token]]` for prometheus, made by the commands an
/// installer runs; the token's clear text.
fn credentials(dir: &Path) -> (String, String) {
    let mut child = callvault()
        .args(["config", "hash-password", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"correct horse\n").unwrap();
    let user = child.wait_with_output().unwrap();
    assert!(user.status.success(), "{}", text(&user));
    let token = callvault().args(["config", "new-token", "prometheus"]).output().unwrap();
    assert!(token.status.success(), "{}", text(&token));
    let stderr = String::from_utf8(token.stderr).unwrap();
    let clear = stderr.lines().nth(1).unwrap().trim().to_owned();
    let blocks = format!("{}\n{}", String::from_utf8(user.stdout).unwrap(), String::from_utf8(token.stdout).unwrap());
    let config = dir.join("callvault.toml");
    (std::fs::read_to_string(&config).unwrap_or_default() + &blocks, clear)
}

struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    fn start(config: &Path) -> Serve {
        let mut cmd = callvault();
        cmd.arg("--config").arg(config).arg("serve");
        let (child, base) = common::start_serve(cmd);
        assert!(base.starts_with("https://"), "{base}");
        Serve { child, base }
    }

    /// Stops with SIGTERM, as systemd does (the audit log is sealed on the way out).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl's answer: status, headers (lowercase names) and body.
fn curl(cert: &Path, url: &str, args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "/dev/stderr", "--cacert"])
        .arg(cert)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let heads = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let status = heads.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, heads, out.stdout)
}

#[test]
fn https_users_tokens_and_an_archived_audit_log() {
    if !have("openssl") || !have("curl") {
        skipped("tests/access.rs: openssl or curl is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pcap = dir.join("calls.pcap");
    let calls = (0..2).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 1_000_000_000, 1000)).collect();
    callgen::write_pcap(&Scenario { calls, seed: 5, ..Scenario::default() }, &pcap).unwrap();
    let out = replay(&[&pcap], dir, &["--keep-pcap"]);
    assert!(out.status.success(), "{}", text(&out));
    let archived = records(&dir.join("archive"));
    assert_eq!(archived.len(), 2);
    let id = |i: usize| archived[i].json.file_stem().unwrap().to_str().unwrap().to_owned();

    let (cert, key) = certificate(dir);
    std::fs::write(
        dir.join("callvault.toml"),
        format!(
            "[storage]\ndata_dir = {data:?}\n\n[[archive]]\npath = {archive:?}\n\n[http]\napi_listen = \"127.0.0.1:0\"\n\
             tls_cert = {cert:?}\ntls_key = {key:?}\n\n[signing]\nkey_file = {signing:?}\n\n",
            data = dir.join("data"),
            archive = dir.join("archive"),
            signing = common::signing_key().0,
        ),
    )
    .unwrap();
    let (config, token) = credentials(dir);
    let config_path = dir.join("callvault.toml");
    std::fs::write(&config_path, &config).unwrap();
    let check = callvault().args(["config", "check"]).arg(&config_path).output().unwrap();
    assert!(check.status.success(), "{}", text(&check));

    let serve = Serve::start(&config_path);
    let calls_url = format!("{}/api/v1/calls", serve.base);
    // No credentials: refused, with a challenge for each method.
    let (status, heads, _) = curl(&cert, &calls_url, &[]);
    assert_eq!(status, 401, "{heads}");
    assert!(heads.contains("www-authenticate: basic realm=\"callvault\""), "{heads}");
    assert!(heads.contains("www-authenticate: bearer realm=\"callvault\""), "{heads}");
    // Wrong password, unknown user, wrong token: refused.
    for bad in [&["-u", "alice:wrong"][..], &["-u", "mallory:correct horse"], &["-H", "Authorization: Bearer nope"]] {
        assert_eq!(curl(&cert, &calls_url, bad).0, 401, "{bad:?}");
    }
    // Plain HTTP on the HTTPS port: no answer.
    let plain = calls_url.replace("https://", "http://");
    assert_eq!(curl(&cert, &plain, &["-u", "alice:correct horse"]).0, 0);
    // Right credentials, each way.
    let (status, _, body) = curl(&cert, &calls_url, &["-u", "alice:correct horse"]);
    assert_eq!(status, 200);
    let found: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(found["calls"].as_array().unwrap().len(), 2);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(curl(&cert, &calls_url, &["-H", &bearer]).0, 200);

    // Downloads: alice the first call's audio (a range), the token the second's pcap.
    let audio = format!("{}/api/v1/calls/{}/audio", serve.base, id(0));
    let (status, _, part) = curl(&cert, &audio, &["-u", "alice:correct horse", "-r", "0-99"]);
    assert_eq!((status, part.len()), (206, 100));
    let pcap_url = format!("{}/api/v1/calls/{}/pcap", serve.base, id(1));
    let (status, _, evidence) = curl(&cert, &pcap_url, &["-H", &bearer]);
    assert_eq!(status, 200);
    assert_eq!(evidence, std::fs::read(archived[1].json.with_extension("pcap")).unwrap());
    // A refused download is not one.
    assert_eq!(curl(&cert, &audio, &["-u", "alice:wrong"]).0, 401);
    serve.stop();

    // The audit log, sealed at the stop, archived by the next `ship`.
    let ship = callvault().arg("--config").arg(&config_path).arg("ship").output().unwrap();
    assert!(ship.status.success(), "{}", text(&ship));
    let logs: Vec<PathBuf> = walk(&dir.join("archive"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("audit_")))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let entries: Vec<Value> =
        std::fs::read_to_string(&logs[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let keys = |i: usize| archived[i].json.strip_prefix(dir.join("archive")).unwrap().with_extension("");
    let expect = [
        ("alice", "basic", "audio", id(0), keys(0), Some("bytes=0-99")),
        ("prometheus", "bearer", "pcap", id(1), keys(1), None),
    ];
    for (e, (user, auth, action, call, key, range)) in entries.iter().zip(expect) {
        assert_eq!(e["user"], user);
        assert_eq!(e["auth"], auth);
        assert_eq!(e["action"], action);
        assert_eq!(e["call"], call.as_str());
        assert_eq!(e["key"], key.to_str().unwrap());
        assert_eq!(e["range"].as_str(), range);
        assert!(e["remote"].as_str().unwrap().starts_with("127.0.0.1:"), "{e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    // In the archive it verifies like a recording, and is listed for its day.
    let day = logs[0].strip_prefix(dir.join("archive")).unwrap().to_str().unwrap()[..10].replace('/', "-");
    let archive_cmd = |what: &str| {
        let out = callvault().arg("--config").arg(&config_path).args(["archive", what, &day]).output().unwrap();
        assert!(out.status.success(), "archive {what} {day}: {}", text(&out));
        text(&out)
    };
    assert!(archive_cmd("verify").contains("1 recording(s), 1 object(s) verified"), "{}", archive_cmd("verify"));
    assert!(archive_cmd("ls").contains("audit log of 2 download(s)"), "{}", archive_cmd("ls"));
    // Shipped and confirmed: nothing left in the queue or waiting under audit/.
    let status = callvault().arg("--config").arg(&config_path).arg("status").output().unwrap();
    assert!(text(&status).contains("queued: 0 recording(s)"), "{}", text(&status));
    assert!(walk(&dir.join("data/audit")).is_empty(), "{:?}", walk(&dir.join("data/audit")));

    // An audit log that cannot be written: no download.
    let serve = Serve::start(&config_path);
    let open = dir.join("data/audit/open");
    std::fs::remove_dir_all(&open).unwrap();
    std::fs::write(&open, "not a directory").unwrap();
    let audio = format!("{}/api/v1/calls/{}/audio", serve.base, id(0));
    let (status, _, body) = curl(&cert, &audio, &["-u", "alice:correct horse"]);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("audit log cannot be written"));
    serve.stop();
}

#[test]
fn the_network_without_https_and_authentication_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("callvault.toml");
    std::fs::write(&config, "[http]\napi_listen = \"0.0.0.0:9751\"\n").unwrap();
    let check = callvault().args(["config", "check"]).arg(&config).output().unwrap();
    assert!(!check.status.success());
    let said = text(&check);
    assert!(said.contains("http.api_listen") && said.contains("needs HTTPS and authentication"), "{said}");
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let serve =
        callvault().args(["serve", "--listen", "0.0.0.0:0", "--output"]).arg(tmp.path().join("data")).output().unwrap();
    assert!(!serve.status.success());
    assert!(text(&serve).contains("needs HTTPS and authentication"), "{}", text(&serve));
    // HTTPS alone is not enough, and a certificate without its key is an error of its own.
    std::fs::write(&config, "[http]\napi_listen = \"0.0.0.0:9751\"\ntls_cert = \"/c.pem\"\n").unwrap();
    let said = text(&callvault().args(["config", "check"]).arg(&config).output().unwrap());
    assert!(said.contains("http.tls_key") && said.contains("needs HTTPS and authentication"), "{said}");
    // A hash that is not argon2 is refused with the command that makes one.
    std::fs::write(&config, "[[http.user]]\nname = \"a\"\npassword_hash = \"secret\"\n").unwrap();
    let said = text(&callvault().args(["config", "check"]).arg(&config).output().unwrap());
    assert!(said.contains("http.user[0].password_hash") && said.contains("callvault config hash-password"), "{said}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}
