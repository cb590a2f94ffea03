//! Errors of the spool.

use std::io;
use std::path::PathBuf;

use super::EntryId;

/// Everything that can go wrong in the spool. Each message names the path or key involved and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A filesystem operation on the spool failed.
    #[error("spool: cannot {op} {path}; check that the spool filesystem is mounted, writable and not full")]
    Io {
        /// What was being done, e.g. "create directory".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `enter` was given a recording that cannot be spooled as it is; nothing was moved.
    #[error("spool: recording {key:?} rejected: {reason}; fix the caller, the files were left where they are")]
    InvalidRecording {
        /// The recording's key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A queue entry does not parse as an entry of this spool.
    #[error("spool: {path} is not a valid queue entry ({reason}); move it out of the queue directory")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Why it does not parse.
        reason: String,
    },
    /// The queue holds no entry with this id: it was completed already, or removed by hand.
    #[error("spool: no queue entry {id} ({path}); it was completed or removed")]
    NotFound {
        /// The id asked for.
        id: EntryId,
        /// Where the entry would be.
        path: PathBuf,
    },
    /// The recording's files are in the spool's hands but its queue entry is not written yet.
    #[error(
        "spool: recording {key:?} is held by intent {intent} but not queued yet; the spool finishes it on the next `enter` or at the next start — do not delete the files"
    )]
    Unfinished {
        /// The recording's key in the spool.
        key: String,
        /// The intent file that describes the pending moves.
        intent: PathBuf,
        /// Why the entry could not be finished.
        #[source]
        source: Box<SpoolError>,
    },
    /// Another process has the spool open (see the `owner` module).
    #[error(
        "another callvault (pid {}) owns {}; stop it, or give this command another data directory",
        pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
        root.display()
    )]
    Owned {
        /// The spool's root.
        root: PathBuf,
        /// The owner's pid, if it could be read.
        pid: Option<u32>,
    },
    /// The directory holds no spool, and the caller asked not to create one.
    #[error(
        "{} is not a callvault data directory (it has no queue/); check the data directory (--output, storage.data_dir)",
        path.display()
    )]
    NotASpool {
        /// The directory.
        path: PathBuf,
    },
    /// Finishing an intent found a different file already at a destination.
    #[error(
        "spool: cannot finish intent {intent}: {dest} already exists with content other than {source_path}; move one of them out of the way and restart"
    )]
    Conflict {
        /// The intent being finished.
        intent: PathBuf,
        /// The occupied destination under `recordings/`.
        dest: PathBuf,
        /// The file that should have been moved there.
        source_path: PathBuf,
    },
}

impl SpoolError {
    /// Builds an [`SpoolError::Io`] for operation `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SpoolError::Io { op, path: path.into(), source }
    }
}

/// Adds the operation and path to an [`io::Error`].
pub(crate) trait IoContext<T> {
    /// Wraps the error as a [`SpoolError::Io`].
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, SpoolError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, SpoolError> {
        self.map_err(|e| SpoolError::io(op, path, e))
    }
}
