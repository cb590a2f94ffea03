//! The monitoring files in deploy/: the alert rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`: each rule firing and not firing), and every metric the rules
//! and the Grafana dashboard name is one the binary exports.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{have, replay, skipped, text};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/demo.pcap");

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    if !have("promtool") {
        skipped("deploy/prometheus: promtool (Debian package prometheus) is not installed");
        return None;
    }
    Some(Command::new("promtool").args(args).current_dir(format!("{DEPLOY}/prometheus")).output().unwrap())
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    let Some(out) = promtool(&["check", "rules", "callvault-alerts.yml"]) else { return };
    assert!(out.status.success(), "{}", text(&out));
    let Some(out) = promtool(&["test", "rules", "callvault-alerts.test.yml"]) else { return };
    assert!(out.status.success(), "{}", text(&out));
}

/// Every rule has a unit test that names it.
#[test]
fn every_alert_has_a_unit_test() {
    let rules = std::fs::read_to_string(format!("{DEPLOY}/prometheus/callvault-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(format!("{DEPLOY}/prometheus/callvault-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for a in alerts {
        let named = tests.matches(&format!("alertname: {a}\n")).count();
        assert!(named >= 2, "{a} needs a test where it fires and one where it does not ({named} found)");
    }
}

/// The metric names in a PromQL text: `callvault_...` and `process_...` words.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("callvault_") || word.starts_with("process_") {
            names.insert(word.to_owned());
        }
    }
    names
}

/// The families a real exposition declares (`# TYPE` lines), with the sample names each one
/// stands for.
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in exposition.lines() {
        let Some(rest) = l.strip_prefix("# TYPE ") else { continue };
        let mut it = rest.split(' ');
        let (name, kind) = (it.next().unwrap(), it.next().unwrap());
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[test]
fn rules_and_dashboard_name_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("metrics.prom");
    // With HEP export on (to a socket of this test), so that its metrics are exported too.
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("callvault.toml");
    std::fs::write(&config, format!("[hep]\ncollector = \"{}\"\n", collector.local_addr().unwrap())).unwrap();
    let out = replay(
        &[Path::new(SAMPLE)],
        dir.path(),
        &["--config", config.to_str().unwrap(), "--metrics-out", prom.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let exported = exported(&std::fs::read_to_string(&prom).unwrap());
    assert!(exported.contains("callvault_calls_started_total"), "{exported:?}");
    for file in ["prometheus/callvault-alerts.yml", "grafana/callvault-dashboard.json"] {
        let text = std::fs::read_to_string(format!("{DEPLOY}/{file}")).unwrap();
        let named = metric_names(&text);
        assert!(named.len() >= 8, "{file}: {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} names metrics callvault does not export: {unknown:?}");
    }
}

#[test]
fn the_dashboard_is_provisioning_ready_with_its_data_source_a_variable() {
    let text = std::fs::read_to_string(format!("{DEPLOY}/grafana/callvault-dashboard.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["uid"], "callvault");
    assert!(d["id"].is_null(), "a provisioned dashboard carries no database id");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"));
    let panels = d["panels"].as_array().unwrap();
    let mut queries = 0;
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
}
