//! Small filesystem helpers shared by the spool and the targets: durable directory creation,
//! directory fsync, atomic file replacement and random names; file hashes come from the
//! `filehash` crate the finisher uses too. Every helper works through the [`Fs`] seam (the
//! targets pass [`StdFs`](crate::filesystem::StdFs)).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::filesystem::{Fs, FsFile};

/// Makes the directory entries of `dir` durable (new, renamed or removed names).
#[inline]
pub(crate) fn sync_dir<F: Fs>(fs: &F, dir: &Path) -> io::Result<()> {
    fs.sync_dir(dir)
}

/// Group commit of one directory's entries: each thread that changed a name in it and needs
/// the change durable calls [`DirSync::sync`] after the change, and an fsync of the directory
/// that started after the change covers it. Threads changing it at once (the shipper
/// completing many entries) share one fsync instead of taking one each.
#[derive(Debug, Default)]
pub(crate) struct DirSync {
    /// Changes announced so far (each caller's ticket).
    changes: AtomicU64,
    /// The highest ticket an fsync that has returned covers.
    synced: std::sync::Mutex<u64>,
}

impl DirSync {
    /// Makes `dir`'s entries as they are now durable: returns at once if an fsync that started
    /// after this call did so, else fsyncs `dir` (one caller at a time; the others wait and
    /// usually find themselves covered).
    pub(crate) fn sync<F: Fs>(&self, fs: &F, dir: &Path) -> io::Result<()> {
        let ticket = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= ticket {
            return Ok(());
        }
        // Every change with a ticket up to here was made before the fsync starts.
        let covers = self.changes.load(Ordering::SeqCst);
        sync_dir(fs, dir)?;
        *synced = covers;
        Ok(())
    }
}

/// Creates every missing directory of `rel` under `base` and fsyncs the parent of each directory
/// it created, so that the new directories survive a power loss. `base` must exist.
pub(crate) fn create_dirs_durable<F: Fs>(fs: &F, base: &Path, rel: &Path) -> io::Result<()> {
    // Already there (the day's directory, asked for with every file of every recording): one
    // lookup instead of a mkdir per component, each of which locks its parent even when the
    // name exists. Found there is what an existing component already meant below: not synced.
    if fs.symlink_metadata(&base.join(rel)).is_ok_and(|m| m.kind == crate::filesystem::FileKind::Dir) {
        return Ok(());
    }
    let mut current = base.to_path_buf();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        let next = current.join(name);
        match fs.create_dir(&next) {
            Ok(()) => sync_dir(fs, &current)?,
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
pub(crate) fn write_atomic<F: Fs>(fs: &F, tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_renamed(fs, tmp_dir, dest, bytes)?;
    if let Some(dir) = dest.parent() {
        sync_dir(fs, dir)?;
    }
    Ok(())
}

/// [`write_atomic`] but for the fsync of `dest`'s directory, which is the caller's (once for
/// several files): until it, a crash may leave the old content.
pub(crate) fn write_renamed<F: Fs>(fs: &F, tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tmp_dir.join(format!("{file_name}.{:016x}", random_u64()));
    let result = (|| {
        let mut file = fs.create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs.rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    result
}

/// Lowercase hex SHA-256 and size of the file at `path`, read through `fs`.
pub(crate) fn hash_file<F: Fs>(fs: &F, path: &Path) -> io::Result<(String, u64)> {
    filehash::hash_reader(fs.open(path)?)
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
    use std::fs;

    use super::*;
    use crate::filesystem::StdFs;
    use crate::filesystem::sim::SimFs;

    /// A new file at `path` with its content fsynced, its name not yet.
    fn write_file(fs: &SimFs, path: &Path) {
        let mut f = fs.create_new(path).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
    }

    /// Files `/q/<thread>-<n>` written durably by `threads` threads, each then making its name
    /// durable through one shared [`DirSync`].
    fn names_synced_by(threads: usize, each: usize) -> SimFs {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/q")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let sync = DirSync::default();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (fs, sync) = (&fs, &sync);
                s.spawn(move || {
                    for n in 0..each {
                        write_file(fs, &Path::new("/q").join(format!("{t}-{n}")));
                        sync.sync(fs, Path::new("/q")).unwrap();
                    }
                });
            }
        });
        fs
    }

    #[test]
    fn a_shared_directory_sync_leaves_no_callers_name_behind() {
        let fs = names_synced_by(8, 25);
        // Whatever else a power loss keeps or drops, every name whose sync returned is there.
        for seed in [0, 1, 2, 3, 7, 42] {
            assert_eq!(fs.power_loss(seed).files_under(Path::new("/q")).len(), 200, "seed {seed}");
        }
        // Without the syncs the names could be lost (the check above can fail).
        let unsynced = SimFs::new();
        unsynced.create_dir(Path::new("/q")).unwrap();
        unsynced.sync_dir(Path::new("/")).unwrap();
        write_file(&unsynced, Path::new("/q/a"));
        assert!(unsynced.power_loss(0).files_under(Path::new("/q")).is_empty());
    }

    #[test]
    fn callers_covered_by_a_sync_under_way_take_none_of_their_own() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/q")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let sync = DirSync::default();
        // A sync holds the directory while four callers change it and queue up behind it.
        let held = sync.synced.lock().unwrap();
        let mut before = 0;
        std::thread::scope(|s| {
            for t in 0..4 {
                let (fs, sync) = (&fs, &sync);
                s.spawn(move || {
                    write_file(fs, &Path::new("/q").join(format!("{t}")));
                    sync.sync(fs, Path::new("/q")).unwrap();
                });
            }
            while sync.changes.load(Ordering::SeqCst) < 4 {
                std::thread::yield_now();
            }
            // The fsync under way started after their changes: it covers them all.
            before = fs.mutations();
            let covers = sync.changes.load(Ordering::SeqCst);
            sync_dir(&fs, Path::new("/q")).unwrap();
            let mut held = held;
            *held = covers;
        });
        // Every caller returned, and none fsynced again.
        assert_eq!(fs.mutations() - before, 1);
        assert_eq!(fs.power_loss(0).files_under(Path::new("/q")).len(), 4);
        // A later change is not covered by that sync: its caller takes one.
        write_file(&fs, Path::new("/q/late"));
        let before = fs.mutations();
        sync.sync(&fs, Path::new("/q")).unwrap();
        assert_eq!(fs.mutations() - before, 1);
        assert_eq!(fs.power_loss(0).files_under(Path::new("/q")).len(), 5);
    }

    #[test]
    fn create_dirs_durable_makes_nested_dirs_and_tolerates_existing() {
        let dir = tempfile::tempdir().unwrap();
        create_dirs_durable(&StdFs, dir.path(), Path::new("a/b/c")).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        create_dirs_durable(&StdFs, dir.path(), Path::new("a/b/d")).unwrap();
        assert!(dir.path().join("a/b/d").is_dir());
    }

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("x.json");
        write_atomic(&StdFs, &tmp, &dest, b"one").unwrap();
        write_atomic(&StdFs, &tmp, &dest, b"two").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn sha256_hex_is_lowercase_and_64_digits() {
        let (sha, _) = filehash::hash_reader(&b"abc"[..]).unwrap();
        assert!(is_sha256_hex(&sha));
        assert!(!is_sha256_hex(&sha.to_uppercase()));
        assert!(!is_sha256_hex("abc"));
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
