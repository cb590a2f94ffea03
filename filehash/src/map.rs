//! A file's content mapped into memory, for hashing it without copying it: what
//! [`crate::hash_files`] reads a finisher's batch from where it can. `read(2)` copies each page
//! from the page cache into a buffer first, and that copy (not the hashing) is what waits on
//! memory.
//!
//! A mapping turns a failed read into `SIGBUS`, which would stop the recorder where `read(2)`
//! gives an error for one recording. So a part of a file ([`window`]) is mapped only while all
//! of it is in the page cache (just written, as a finisher's files are), where reading it
//! needs no disk; a part on disk, even partly, is read (and the rest of its file with it), and
//! its disk's errors stay errors.
//!
//! Architecture invariant: with `ni.rs`, the crate's only `unsafe`: the mapping and the page
//! cache query.
#![allow(unsafe_code)]

use std::fs::File;

use memmap2::{Mmap, MmapOptions};

/// `len` bytes of `file` from `offset` (a multiple of the page size), read-only, or `None`
/// where they are not mapped: not all in the page cache, or the call refused. The caller
/// then reads them.
///
/// The files hashed this way are the recorder's own, finished and closed by their writer, in
/// its work directory: nothing else writes them. A process that truncated one while it is
/// hashed would stop the recorder with `SIGBUS`, and its recovery at the next start would
/// hash what is left; so would a page evicted and failing to read back in the moment between
/// the check and the hash (and the recovery would then find it out of the cache, and read).
pub(crate) fn window(file: &File, offset: u64, len: usize) -> Option<Mmap> {
    // SAFETY: the mapping is read-only and private, within the file's size when hashing
    // began, and (above) of a file no process writes or truncates while it is hashed.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file) }.ok()?;
    if !cached(&map) {
        return None;
    }
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

/// Whether every page of `map` is in the page cache (`mincore(2)`; a failure counts as no).
fn cached(map: &Mmap) -> bool {
    // SAFETY: sysconf reads no memory of this process.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => return false,
    };
    let mut resident = vec![0u8; map.len().div_ceil(page)];
    // SAFETY: the range is the whole live mapping (page-aligned: a mapping starts on a page);
    // the vector has one byte per page of it, as mincore writes.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), resident.as_mut_ptr()) };
    rc == 0 && resident.iter().all(|b| b & 1 == 1)
}

/// Drops `file`'s clean pages from `offset` on out of the page cache (where the filesystem
/// can: not tmpfs), for tests of what is not mapped.
#[cfg(test)]
pub(crate) fn drop_cached(file: &File, offset: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise reads and writes no memory of this process.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset as i64, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Records that a part of a test could not run (and why), for the test script's final list
/// (`$CALLVAULT_SKIP_LOG`).
#[cfg(test)]
pub(crate) fn skipped(what: &str) {
    println!("skipped: {what}");
    if let Ok(p) = std::env::var("CALLVAULT_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(p) {
            let _ = writeln!(f, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::*;

    /// All of `file`, mapped if it can be.
    fn map(file: &File, from: u64) -> Option<Mmap> {
        let meta = file.metadata().unwrap();
        (meta.len() >= from).then(|| window(file, 0, meta.len() as usize)).flatten()
    }

    /// Whether the kernel drops `file`'s clean pages when told to (not on tmpfs, whose pages
    /// are the file).
    fn can_drop(file: &File) -> bool {
        // SAFETY: fstatfs writes the struct it is given, nothing else.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) };
        rc == 0 && fs.f_type != libc::TMPFS_MAGIC
    }

    #[test]
    fn a_file_out_of_the_page_cache_is_not_mapped_and_is_once_read_back_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![7u8; 3 << 20]).unwrap();
        f.sync_all().unwrap();
        let mut f = File::open(&path).unwrap();
        assert!(map(&f, 1).is_some(), "just written: all in the cache");
        assert!(map(&f, 4 << 20).is_none(), "smaller than asked");
        if !can_drop(&f) {
            skipped("filehash: a file out of the page cache is read (the temporary directory is on tmpfs)");
            return;
        }
        drop_cached(&f, 0);
        assert!(map(&f, 1).is_none(), "dropped from the cache: to be read, not mapped");
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), 3 << 20);
        assert!(map(&f, 1).is_some(), "read back in");
        // A window is checked alone.
        drop_cached(&f, 2 << 20);
        assert!(window(&f, 0, 2 << 20).is_some());
        assert!(window(&f, 1 << 20, 2 << 20).is_none());
    }
}
