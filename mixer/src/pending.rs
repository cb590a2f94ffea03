//! What a call leaves when it ends, and where it goes: the hand-over between the mixer and the
//! finishers. The mixer builds a [`PendingRecording`] (through `finish::report`) and passes it
//! to a [`Drain`] the wiring owns (the threaded pipeline puts it on the finishers' queue).

use std::fs::File;
use std::path::PathBuf;

use capture::Timestamp;

use crate::mix::openfiles::AudioFile;
use crate::record::CallRecord;

/// What the mixer hands over when a call ends.
#[derive(Debug)]
pub struct PendingRecording {
    /// The call record; `audio.sha256` and `audio.bytes` are filled in by the finisher.
    pub record: CallRecord,
    /// Capture time of the call's first INVITE (names the recording).
    pub start: Timestamp,
    /// The finished (headers patched, not yet fsynced) audio file(s) in the work directory:
    /// one, or one per party for the split layout.
    pub audio: Vec<(PathBuf, AudioFile)>,
    /// The call's evidence capture, when frames are kept.
    pub evidence: Option<(PathBuf, File)>,
}

/// Where the mixer hands each ended call. The wiring owns it: the pipeline queues the
/// recordings for its finisher threads; a test can keep them in a `Vec`.
pub trait Drain {
    /// Takes one ended call's recording.
    fn finished(&mut self, recording: PendingRecording);
}

impl Drain for Vec<PendingRecording> {
    fn finished(&mut self, recording: PendingRecording) {
        self.push(recording);
    }
}
