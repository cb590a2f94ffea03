//! Starting a file's writeback without waiting for it: `sync_file_range(2)` with
//! `SYNC_FILE_RANGE_WRITE`, the one system call in this crate that `std` and `rustix` do not
//! offer, hence `unsafe` here (the crate denies it; this module and `g711_avx2` allow it).
//!
//! Unlike `fdatasync`, it queues the dirty pages for the disk and returns: no wait for the
//! I/O, no inode write, no cache flush of the device. None of that is needed while a call
//! goes on: the finisher's `fsync` at the end is what makes a recording durable, and it then
//! finds the data already on its way (see [`crate::mix::openfiles`]). Nor does it take the
//! file's error report: a write the disk failed is reported once per open file, to the first
//! fsync after it, and the writeback thread's handle is a duplicate of the finisher's. An
//! `fdatasync` here took that report and dropped it, and the finisher's fsync then succeeded
//! on audio that never reached the disk (`tests/full_disk.rs`,
//! `a_write_error_during_mid_call_writeback_reaches_the_finishers_fsync`).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Queues every dirty page of `file` for writing to its disk and returns without waiting.
/// Where the kernel does not offer it (`ENOSYS`, e.g. a seccomp filter), nothing is started
/// early ([`unavailable`]).
pub fn start(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor is open for the lifetime of the borrow; offset 0 and length 0
    // mean the whole file; the call reads and writes no memory of this process.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        return Ok(());
    }
    unavailable(io::Error::last_os_error())
}

/// What a failed `sync_file_range` means: `ENOSYS` is no failure, the audio is left to the
/// kernel's flusher and the finisher's fsync. Never an `fdatasync` instead: on the writeback
/// thread's duplicate handle it would take the file's one error report from the finisher.
fn unavailable(err: io::Error) -> io::Result<()> {
    if err.raw_os_error() == Some(libc::ENOSYS) { Ok(()) } else { Err(err) }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};

    use super::*;

    #[test]
    fn starts_writeback_of_a_written_file_and_leaves_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut f =
            std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(dir.path().join("a")).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        f.write_all(&data).unwrap();
        start(&f).unwrap();
        f.write_all(b"tail").unwrap();
        start(&f).unwrap();
        let mut back = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(&back[..data.len()], &data[..]);
        assert_eq!(&back[data.len()..], b"tail");
    }

    /// A kernel without the call starts nothing (and syncs nothing: see [`unavailable`]);
    /// any other failure is one.
    #[test]
    fn only_a_missing_system_call_is_no_failure() {
        assert!(unavailable(io::Error::from_raw_os_error(libc::ENOSYS)).is_ok());
        let err = unavailable(io::Error::from_raw_os_error(libc::EIO)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
    }

    #[test]
    fn a_pipe_is_an_error_not_a_silent_success() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let f = File::from(std::os::fd::OwnedFd::from(reader));
        let err = start(&f).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESPIPE), "{err}");
    }
}
