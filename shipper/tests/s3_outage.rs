//! The object store goes away in the middle of shipping and comes back: nothing is lost, nothing
//! is stored twice with different content, and shipping resumes by itself. Runs its own
//! SeaweedFS instance (ports shifted 50 beyond the main server's `CALLVAULT_S3_PORT_OFFSET`) so
//! that killing it disturbs no other test, nor another checkout's server (offsets 100 apart).

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

mod s3_support;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callvault_shipper::{Shipper, ShipperConfig, Target};
use s3_support::*;

/// A second server instance with its own state directory; stopped when dropped.
struct Instance {
    state: tempfile::TempDir,
    script: PathBuf,
}

/// The second instance's port offset: 50 beyond the main server's.
fn offset() -> String {
    let main: u32 = std::env::var("CALLVAULT_S3_PORT_OFFSET").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    (main + 50).to_string()
}

impl Instance {
    fn run(&self, verb: &str) -> String {
        let out = Command::new(&self.script)
            .arg(verb)
            .env("CALLVAULT_S3_STATE", self.state.path())
            .env("CALLVAULT_S3_PORT_OFFSET", offset())
            .output()
            .expect("run s3-server.sh");
        assert!(out.status.success(), "s3-server.sh {verb}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn server(&self) -> Server {
        let vars: BTreeMap<String, String> = self
            .run("env")
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Server::from_vars(|name| vars.get(name).cloned())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .env("CALLVAULT_S3_STATE", self.state.path())
            .env("CALLVAULT_S3_PORT_OFFSET", offset())
            .status();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn s3_server_killed_mid_shipping_and_restarted_loses_and_duplicates_nothing() {
    let Some(main) = server("s3_server_killed_mid_shipping_and_restarted_loses_and_duplicates_nothing") else {
        return;
    };
    let instance = Instance { state: tempfile::tempdir().unwrap(), script: main.script.clone() };
    instance.run("start");
    let srv = instance.server();
    let target = srv.bucket("outage", false);

    let mut d = Dirs::new();
    let spool = d.open();
    let mut expected = BTreeMap::new();
    let mut enter = |i: u32, d: &mut Dirs, spool: &Arc<callvault_shipper::Spool>| {
        let name = format!("c{i:03}");
        let key = format!("2016/11/26/20161126T1442{:02}Z_alice_bob_{name}", i % 60);
        let wav = audio(i, 200_000);
        let rec = d.recording(&key, &wav);
        let json = std::fs::read(&rec.files[1].source).unwrap();
        expected.insert(format!("calls/test/{key}.wav"), wav);
        expected.insert(format!("calls/test/{key}.json"), json);
        spool.enter(rec).unwrap();
    };
    for i in 0..40 {
        enter(i, &mut d, &spool);
    }
    let cfg = ShipperConfig {
        concurrency: 4,
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
    };
    let handle = Shipper::start(Arc::clone(&spool), vec![Target::S3(target.clone())], cfg).unwrap();
    wait_for("the first shipments", Duration::from_secs(60), || handle.stats().shipped_recordings >= 3);

    // The store dies with shipments in flight.
    instance.run("stop");
    let shipped_before = handle.stats().shipped_recordings;
    for i in 40..50 {
        enter(i, &mut d, &spool);
        handle.notify();
    }
    wait_for("retryable failures", Duration::from_secs(60), || handle.stats().failures_retryable >= 3);
    let stats = handle.stats();
    assert!(stats.queued > 0, "{stats:?}");
    assert_eq!(stats.failures_permanent, 0, "{stats:?}");
    assert!(stats.oldest_unshipped_age_secs.is_some(), "{stats:?}");
    assert!(stats.last_error.as_deref().unwrap_or("").contains("no answer"), "{stats:?}");
    assert!(shipped_before < 50);

    // It comes back (same data): shipping resumes by itself.
    instance.run("start");
    let report = handle.drain(Some(Duration::from_secs(120)));
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.failures_permanent, 0);

    // Every recording is there exactly once, byte for byte; no `~2` copies.
    let stored: BTreeMap<String, Vec<u8>> = recording_objects(&target).into_iter().collect();
    assert_eq!(
        stored.len(),
        expected.len(),
        "{:?}",
        stored.keys().filter(|k| !expected.contains_key(*k)).collect::<Vec<_>>()
    );
    assert!(stored == expected, "stored objects differ from the recordings");
    // The manifest lists every recording exactly once (none lost, none repeated after the outage).
    let lines = block_on(target.read_manifest("2016/11/26")).unwrap();
    assert_eq!(lines.len(), 50, "{}", manifest_layout(&target));
    assert!(spool.pending().unwrap().is_empty());
}

/// What a failed line count needs to be understood: each manifest batch object of the bucket
/// with its size and the recordings its lines name (a line in two batches shows in both).
fn manifest_layout(target: &callvault_shipper::S3Target) -> String {
    let mut out = String::from("manifest batches:");
    for (key, body) in
        all_objects(target).into_iter().filter(|(k, _)| k.contains("/manifest/") && k.ends_with(".jsonl"))
    {
        let keys = support::batch_keys(&body);
        let names: Vec<&str> = keys.iter().map(|k| k.rsplit('_').next().unwrap_or(k)).collect();
        out.push_str(&format!("\n  {key} ({} bytes): {}", body.len(), names.join(" ")));
    }
    out
}
