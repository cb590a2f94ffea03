//! A file's content mapped into memory, for hashing it without copying it: what
//! [`crate::hash_files`] reads a finisher's batch from where it can. `read(2)` copies each page
//! from the page cache into a buffer first, and that copy (not the hashing) is what waits on
//! memory.
//!
//! Architecture invariant: with `ni.rs`, the crate's only `unsafe`: the mapping itself.
#![allow(unsafe_code)]

use std::fs::File;

use memmap2::Mmap;

/// `file`'s content as it is now, read-only, or `None` where it is not mapped (smaller than
/// `from` bytes or empty, not a regular file, the call refused): the caller then reads it.
///
/// The files hashed this way are the recorder's own, finished and closed by their writer, in
/// its work directory: nothing else writes them. A process that truncated one while it is
/// hashed would stop the recorder with `SIGBUS`, and its recovery at the next start would
/// hash what is left.
pub(crate) fn map(file: &File, from: u64) -> Option<Mmap> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 || meta.len() < from {
        return None;
    }
    // SAFETY: the mapping is read-only and private; its length is the file's size now, and
    // (above) the file is one no process writes or truncates while it is hashed.
    let map = unsafe { Mmap::map(file) }.ok()?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}
