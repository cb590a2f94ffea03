//! SHA-256 of a file's content, in lowercase hex with the size: what the finisher computes
//! once for every file it hands to the spool, and what the spool and the local target compute
//! to compare a file already in place (or a copy read back) with that. One implementation, so
//! the two sides cannot disagree on what a recording's hash is.
//!
//! Architecture invariant: this crate knows only bytes; the mixer and the shipper both depend
//! on it, and it depends on neither.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Buffer size for reading (and copying) files.
pub const IO_BUF: usize = 256 * 1024;

thread_local! {
    /// Each thread's read buffer, kept between files: a fresh 256 KiB buffer per file would be
    /// mapped, faulted in and zeroed again for every recording hashed.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Lowercase hex SHA-256 and the size of everything `reader` yields.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    BUF.with(|cell| {
        // A reader that hashes in turn (none does) gets a buffer of its own.
        let mut own = Vec::new();
        let mut held = cell.try_borrow_mut();
        let buf = match held.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut own,
        };
        buf.resize(IO_BUF, 0);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((hex::encode(hasher.finalize()), size))
    })
}

/// Lowercase hex SHA-256 and the size of the file at `path`.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    hash_reader(File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_known_vectors() {
        let (sha, size) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
        // Longer than one buffer: the reads are chained.
        let big = vec![b'a'; IO_BUF + 7];
        let (sha, size) = hash_reader(&big[..]).unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(&big)));
        assert_eq!(size, big.len() as u64);
    }
}
