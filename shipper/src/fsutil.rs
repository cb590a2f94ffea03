//! Small filesystem helpers shared by the spool and the targets: durable directory creation,
//! directory fsync, atomic file replacement, hashing and random names.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Buffer size for copying and hashing files.
pub(crate) const IO_BUF: usize = 256 * 1024;

/// Makes the directory entries of `dir` durable (new, renamed or removed names).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates every missing directory of `rel` under `base` and fsyncs the parent of each directory
/// it created, so that the new directories survive a power loss. `base` must exist.
pub(crate) fn create_dirs_durable(base: &Path, rel: &Path) -> io::Result<()> {
    let mut current = base.to_path_buf();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let next = current.join(name);
        match fs::create_dir(&next) {
            Ok(()) => sync_dir(&current)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        current = next;
    }
    Ok(())
}

/// Writes `bytes` to `dest` atomically: the bytes go to a fresh file in `tmp_dir` (same
/// filesystem), which is fsynced, renamed over `dest`, and then `dest`'s directory is fsynced.
/// A reader (or a crash) sees either the old content or the new one, never a mix.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tmp_dir.join(format!("{file_name}.{:016x}", random_u64()));
    let result = (|| {
        let mut file = File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Returns the lowercase hex SHA-256 and the size of everything `reader` yields.
pub(crate) fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Returns the lowercase hex SHA-256 and the size of the file at `path`.
pub(crate) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    hash_reader(File::open(path)?)
}

/// Whether `s` is a SHA-256 in lowercase hex (64 characters `0-9a-f`).
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A random number for temporary names and retry jitter; not for cryptography.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_durable_makes_nested_dirs_and_tolerates_existing() {
        let dir = tempfile::tempdir().unwrap();
        create_dirs_durable(dir.path(), Path::new("a/b/c")).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        create_dirs_durable(dir.path(), Path::new("a/b/d")).unwrap();
        assert!(dir.path().join("a/b/d").is_dir());
    }

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("x.json");
        write_atomic(&tmp, &dest, b"one").unwrap();
        write_atomic(&tmp, &dest, b"two").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn hash_matches_known_vector() {
        let (sha, size) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
        assert!(is_sha256_hex(&sha));
        assert!(!is_sha256_hex(&sha.to_uppercase()));
        assert!(!is_sha256_hex("abc"));
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
