//! One owner per spool: an advisory lock (`flock`) on `<root>/callvault.lock`, held for as long
//! as the [`Spool`](super::Spool) is open, with the owner's pid written in the file.
//!
//! A second process that would write the same spool fails at [`Spool::open`](super::Spool::open)
//! with [`SpoolError::Owned`]. The kernel releases the lock when the owner exits, however it
//! exits, so a crash never leaves a stale lock. Read-only inspection ([`owner`]) tests the lock
//! without taking it.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use super::SpoolError;
use crate::filesystem::Fs;

/// Name of the lock file in the spool's root.
pub(crate) const LOCK_FILE: &str = "callvault.lock";

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct OwnerLock<FS: Fs> {
    _lock: FS::Lock,
}

impl<FS: Fs> OwnerLock<FS> {
    /// Takes the lock of the spool at `root` (which exists) and writes this process's pid in it.
    pub(crate) fn acquire(fs: &FS, root: &Path) -> Result<OwnerLock<FS>, SpoolError> {
        let path = root.join(LOCK_FILE);
        match fs.lock_exclusive(&path, format!("{}\n", std::process::id()).as_bytes()) {
            Ok(lock) => Ok(OwnerLock { _lock: lock }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let pid = fs.read(&path).ok().and_then(|text| parse_pid(&text));
                Err(SpoolError::Owned { root: root.to_owned(), pid })
            }
            Err(e) => Err(SpoolError::io("lock", path, e)),
        }
    }
}

/// The pid of the process that owns the spool at `root`, if one does (without taking the lock).
/// `Some(None)` when it is owned but its pid cannot be read.
pub fn owner(root: &Path) -> Result<Option<Option<u32>>, SpoolError> {
    let path: PathBuf = root.join(LOCK_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SpoolError::io("open", path, e)),
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            Ok(None)
        }
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(Some(read_pid(&mut file))),
        Err(e) => Err(SpoolError::io("lock", path, e.into())),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = Vec::new();
    file.rewind().ok()?;
    file.read_to_end(&mut text).ok()?;
    parse_pid(&text)
}

fn parse_pid(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}
