//! The sidecar beside an audio file in progress: the call's identity, so that a recording
//! interrupted by a crash can be given its record at the next start (`finish::recover`).

use std::path::{Path, PathBuf};

use crate::record::{PartialRecord, PartyRecord, RECORD_VERSION, rfc3339};

use super::call::CallMix;

pub(crate) const SIDECAR: &str = "partial.json";

/// The sidecar path of an audio file.
pub fn sidecar_path(wav: &Path) -> PathBuf {
    wav.with_extension(SIDECAR)
}

/// Writes the sidecar of a call whose audio file was just created. Not fsynced: it protects
/// against a crash of callvault, which leaves the page cache intact; after a power loss the
/// audio is still recovered, under an unknown identity.
pub(crate) fn write_sidecar(call: &CallMix) {
    let (from, to) = &*call.parties;
    let partial = PartialRecord {
        version: RECORD_VERSION,
        call_id: call.call_id.clone(),
        start: rfc3339(call.start),
        start_ns: call.start.0,
        from: PartyRecord::from(from),
        to: PartyRecord::from(to),
        media_start: rfc3339(call.origin),
    };
    let path = sidecar_path(&call.wav_path);
    if let Err(e) = serde_json::to_vec(&partial).map_err(std::io::Error::other).and_then(|b| std::fs::write(&path, b)) {
        tracing::warn!(call_id = %call.call_id, "cannot write {}: {e}; a crash would lose the call's identity", path.display());
    }
}
