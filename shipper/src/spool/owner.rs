//! One owner per spool: an advisory lock (`flock`) on `<root>/callvault.lock`, held for as long
//! as the [`Spool`](super::Spool) is open, with the owner's pid written in the file.
//!
//! A second process that would write the same spool fails at [`Spool::open`](super::Spool::open)
//! with [`SpoolError::Owned`]. The kernel releases the lock when the owner exits, however it
//! exits, so a crash never leaves a stale lock. Read-only inspection ([`owner`]) tests the lock
//! without taking it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use super::SpoolError;
use super::error::IoContext;

/// Name of the lock file in the spool's root.
pub(crate) const LOCK_FILE: &str = "callvault.lock";

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock of the spool at `root` (which exists) and writes this process's pid in it.
    pub(crate) fn acquire(root: &Path) -> Result<OwnerLock, SpoolError> {
        let path = root.join(LOCK_FILE);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).ctx("open", &path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(SpoolError::Owned { root: root.to_owned(), pid: read_pid(&mut file) });
            }
            Err(e) => return Err(SpoolError::io("lock", path, e.into())),
        }
        file.set_len(0).ctx("write", &path)?;
        file.rewind().ctx("write", &path)?;
        writeln!(file, "{}", std::process::id()).ctx("write", &path)?;
        Ok(OwnerLock { _file: file })
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
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
