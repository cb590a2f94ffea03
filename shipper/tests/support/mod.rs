//! What every shipper test needs: a spool, a work directory and an archive directory in a
//! temporary directory, and recordings written (and fsynced) into the work directory. Each
//! test adds its own methods to [`Dirs`].
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use callvault_shipper::{NewFile, NewRecording};
use sha2::{Digest, Sha256};

/// SHA-256, lowercase hex.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Records that a part of a test could not run here, and why: printed, and added to the test
/// script's list of skipped parts (`$CALLVAULT_SKIP_LOG`), as the S3 tests record a missing server.
pub fn skipped(what: &str) {
    let line = format!("skipped: {what}");
    println!("{line}");
    if let Ok(log) = std::env::var("CALLVAULT_SKIP_LOG")
        && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log)
    {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// The recording key of every line of a manifest batch's body, in the batch's order.
pub fn batch_keys(body: &[u8]) -> Vec<String> {
    callvault_shipper::target::manifest::split_batch(body)
        .lines
        .into_iter()
        .map(|(_, line)| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            v["key"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A spool, its work directory and a local archive directory, under one temporary directory.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
    pub spool: PathBuf,
    pub work: PathBuf,
    pub archive: PathBuf,
    n: u32,
}

impl Dirs {
    pub fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        fs::create_dir(&work).unwrap();
        Dirs { spool: tmp.path().join("spool"), archive: tmp.path().join("archive"), work, tmp, n: 0 }
    }

    /// Writes and fsyncs a recording's files (`(extension, content)`) in the work directory.
    pub fn files(&mut self, key: &str, files: &[(&str, &[u8])]) -> NewRecording {
        self.n += 1;
        let files = files
            .iter()
            .map(|(ext, bytes)| {
                let source = self.work.join(format!("call{}.{ext}", self.n));
                let mut f = fs::File::create(&source).unwrap();
                f.write_all(bytes).unwrap();
                f.sync_all().unwrap();
                NewFile { source, ext: (*ext).to_owned(), sha256: sha(bytes), size: bytes.len() as u64 }
            })
            .collect();
        NewRecording { key: key.to_owned(), files, summary: serde_json::json!({}) }
    }
}
