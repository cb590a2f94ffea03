//! The JSON files the spool writes: queue entries and intents, both at format version 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EntryFile, OwedTarget, Shipped};

/// The on-disk format version written by this code.
pub(crate) const VERSION: u32 = 1;

/// `queue/<seq:020>.json`: one recording waiting for confirmation by every target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    /// Format version, [`VERSION`].
    pub(crate) version: u32,
    /// Position in the shipping order; equals the number in the file name.
    pub(crate) seq: u64,
    /// Recording key: relative path without extension.
    pub(crate) key: String,
    /// The recording's files, in the order they were entered.
    pub(crate) files: Vec<EntryFile>,
    /// Opaque call summary from the caller.
    pub(crate) summary: serde_json::Value,
    /// When the recording entered the spool (RFC 3339, UTC).
    pub(crate) entered_at: String,
    /// Targets the recording is owed to (absent in entries written before they were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) targets: Vec<OwedTarget>,
    /// Targets that confirmed the recording, by target name.
    #[serde(default)]
    pub(crate) shipped: BTreeMap<String, Shipped>,
}

/// What `enter` does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// Rename the source to the destination.
    Move,
    /// The destination already holds identical content: delete the source.
    Reuse,
}

/// One file of an intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IntentFile {
    /// Extension without the dot.
    pub(crate) ext: String,
    /// Absolute path of the file in the caller's work directory.
    pub(crate) source: PathBuf,
    /// Destination relative to the spool root (`recordings/<key>.<ext>`).
    pub(crate) path: String,
    /// Lowercase hex SHA-256 of the content.
    pub(crate) sha256: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Whether the file is moved in or an identical copy is reused.
    pub(crate) action: Action,
}

/// `queue/.intent/<seq:020>.json`: the plan of one `enter`, written before any file moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// Format version, [`VERSION`].
    pub(crate) version: u32,
    /// Sequence number the entry will get.
    pub(crate) seq: u64,
    /// Final key (after any `~N` suffix).
    pub(crate) key: String,
    /// Files to move or reuse, in order.
    pub(crate) files: Vec<IntentFile>,
    /// Opaque call summary from the caller.
    pub(crate) summary: serde_json::Value,
    /// When `enter` was called (RFC 3339, UTC).
    pub(crate) entered_at: String,
    /// Targets the recording is owed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) targets: Vec<OwedTarget>,
}

/// File name of sequence number `seq` in `queue/` and `queue/.intent/`.
pub(crate) fn seq_file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// Parses a queue or intent file name back into its sequence number.
pub(crate) fn parse_seq_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `path` (a spool-relative destination) is inside `recordings/`.
pub(crate) fn is_recording_path(path: &str) -> bool {
    Path::new(path).starts_with("recordings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_names_round_trip_and_sort_like_numbers() {
        assert_eq!(seq_file_name(42), "00000000000000000042.json");
        assert_eq!(parse_seq_file_name(&seq_file_name(42)), Some(42));
        assert_eq!(parse_seq_file_name(&seq_file_name(u64::MAX)), Some(u64::MAX));
        assert!(seq_file_name(9) < seq_file_name(10));
        assert_eq!(parse_seq_file_name("42.json"), None);
        assert_eq!(parse_seq_file_name("0000000000000000004x.json"), None);
        assert_eq!(parse_seq_file_name("00000000000000000042.json.tmp"), None);
    }
}
