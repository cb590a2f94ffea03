//! An archive under test, a local directory or a bucket of the real S3 test server
//! (`scripts/s3-server.sh`), and ways to touch its objects behind callvault's back (as a hostile
//! writer would): read, write, delete, list.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::{skipped, text};

pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The problems of an `archive verify --json` report as (kind, object).
pub fn problems(report: &Value) -> std::collections::BTreeSet<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap().to_owned(), p["object"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// The archive under test and how to touch its objects behind callvault's back.
pub enum Store {
    Local(PathBuf),
    S3 { endpoint: String, ca: String, bucket: String, prefix: String },
}

impl Store {
    pub fn s3(name: &str) -> Option<Store> {
        let (Some(endpoint), Some(ca), Some(_)) =
            (var("CALLVAULT_S3_ENDPOINT"), var("CALLVAULT_S3_CA"), var("AWS_ACCESS_KEY_ID"))
        else {
            skipped(&format!("{name}: no S3 test server (scripts/s3-server.sh)"));
            return None;
        };
        let bucket = format!("verify-{name}-{}", std::process::id()).replace('_', "-");
        Some(Store::S3 { endpoint, ca, bucket, prefix: "rec/site1/".into() })
    }

    /// The options naming the archive, and the site's signing key.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--signing-key".to_owned(), super::signing_key().0.display().to_string()];
        args.extend(self.archive_args());
        args
    }

    /// The options naming the archive.
    pub fn archive_args(&self) -> Vec<String> {
        match self {
            Store::Local(dir) => vec!["--archive".into(), dir.display().to_string()],
            Store::S3 { endpoint, ca, bucket, .. } => [
                "--archive",
                &format!("s3://{bucket}/rec"),
                "--s3-endpoint",
                endpoint,
                "--s3-path-style",
                "--s3-ca-file",
                ca,
                "--site",
                "site1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// The object key of archive path `rel` (`YYYY/MM/DD/...`).
    pub fn key(&self, rel: &str) -> String {
        match self {
            Store::Local(_) => rel.to_owned(),
            Store::S3 { prefix, .. } => format!("{prefix}{rel}"),
        }
    }

    pub fn curl(&self, method: &str, rel: &str, body: Option<&Path>) -> Vec<u8> {
        let Store::S3 { endpoint, ca, bucket, prefix } = self else { unreachable!() };
        let user = format!("{}:{}", var("AWS_ACCESS_KEY_ID").unwrap(), var("AWS_SECRET_ACCESS_KEY").unwrap());
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail", "--cacert", ca, "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user]);
        cmd.args(["-X", method, &format!("{endpoint}/{bucket}/{prefix}{rel}")]);
        if let Some(file) = body {
            cmd.arg("-H")
                .arg("x-amz-content-sha256: UNSIGNED-PAYLOAD")
                .arg("--data-binary")
                .arg(format!("@{}", file.display()));
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "curl {method} {rel}: {}", text(&out));
        out.stdout
    }

    /// Creates the bucket the way an operator does (nothing for a directory).
    pub fn create_bucket(&self) {
        let Store::S3 { endpoint, ca, bucket, .. } = self else { return };
        let user = format!("{}:{}", var("AWS_ACCESS_KEY_ID").unwrap(), var("AWS_SECRET_ACCESS_KEY").unwrap());
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert", ca, "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
            .args(["-X", "PUT", &format!("{endpoint}/{bucket}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "create bucket: {}", text(&out));
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        match self {
            Store::Local(dir) => std::fs::read(dir.join(rel)).unwrap(),
            Store::S3 { .. } => self.curl("GET", rel, None),
        }
    }

    pub fn write(&self, rel: &str, body: &[u8]) {
        match self {
            Store::Local(dir) => {
                std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
                // Replace, as a hostile writer would (the archive's files are read-only links).
                let _ = std::fs::remove_file(dir.join(rel));
                std::fs::write(dir.join(rel), body).unwrap();
            }
            Store::S3 { .. } => {
                let tmp = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(tmp.path(), body).unwrap();
                self.curl("PUT", rel, Some(tmp.path()));
            }
        }
    }

    pub fn delete(&self, rel: &str) {
        match self {
            Store::Local(dir) => std::fs::remove_file(dir.join(rel)).unwrap(),
            Store::S3 { .. } => {
                self.curl("DELETE", rel, None);
            }
        }
    }

    /// The manifest objects of `day` (`YYYY/MM/DD`), archive-relative, via `archive verify
    /// --json`'s view of nothing but the listing: read from the store directly.
    pub fn manifests(&self, day: &str) -> Vec<String> {
        match self {
            Store::Local(dir) => super::files(&dir.join(day).join("manifest"))
                .into_iter()
                .map(|f| format!("{day}/manifest/{f}"))
                .collect(),
            Store::S3 { prefix, .. } => {
                let listing = String::from_utf8(self.curl_list(&format!("{prefix}{day}/manifest/"))).unwrap();
                listing
                    .split("<Key>")
                    .skip(1)
                    .map(|s| s.split("</Key>").next().unwrap().strip_prefix(prefix.as_str()).unwrap().to_owned())
                    .collect()
            }
        }
    }

    pub fn curl_list(&self, prefix: &str) -> Vec<u8> {
        let Store::S3 { endpoint, ca, bucket, .. } = self else { unreachable!() };
        let user = format!("{}:{}", var("AWS_ACCESS_KEY_ID").unwrap(), var("AWS_SECRET_ACCESS_KEY").unwrap());
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert", ca, "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
            .arg(format!("{endpoint}/{bucket}?list-type=2&prefix={}", prefix.replace('/', "%2F")))
            .output()
            .unwrap();
        assert!(out.status.success(), "list {prefix}: {}", text(&out));
        out.stdout
    }

    /// Every recording's manifest line of `day` (batch headers left out).
    pub fn lines(&self, day: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for m in self.manifests(day).iter().filter(|m| m.ends_with(".jsonl")) {
            for l in String::from_utf8(self.read(m)).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                let value: Value = serde_json::from_str(l).unwrap();
                if value.get("batch").is_none() {
                    out.push(value);
                }
            }
        }
        out
    }

    /// The content of archive path `rel`, or `None` if there is none.
    pub fn try_read(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            Store::Local(dir) => std::fs::read(dir.join(rel)).ok(),
            Store::S3 { .. } => {
                self.list(rel.rsplit_once('/').map_or("", |(d, _)| d)).contains(&rel.to_owned()).then(|| self.read(rel))
            }
        }
    }

    /// Every object under archive path `rel_prefix` (a directory, "" for all), archive-relative.
    pub fn list(&self, rel_prefix: &str) -> Vec<String> {
        let under = if rel_prefix.is_empty() || rel_prefix.ends_with('/') {
            rel_prefix.to_owned()
        } else {
            format!("{rel_prefix}/")
        };
        match self {
            Store::Local(dir) => super::files(&dir.join(&under)).into_iter().map(|f| format!("{under}{f}")).collect(),
            Store::S3 { prefix, .. } => {
                let listing = String::from_utf8(self.curl_list(&format!("{prefix}{under}"))).unwrap();
                listing
                    .split("<Key>")
                    .skip(1)
                    .map(|s| s.split("</Key>").next().unwrap().strip_prefix(prefix.as_str()).unwrap().to_owned())
                    .collect()
            }
        }
    }
}
