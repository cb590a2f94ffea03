//! The spool's filesystem seam: every file and directory operation the spool performs goes
//! through [`Fs`], so that tests can run the spool on a simulated filesystem that loses what a
//! power loss loses (`sim`, test builds only).
//!
//! [`StdFs`] is the real filesystem (`std::fs`, `flock` and `statvfs` through rustix), and the
//! default type parameter of [`Spool`](crate::Spool): callers write `Spool` and get it. The
//! spool is generic over `FS: Fs` and every call is statically dispatched; `StdFs` is a
//! zero-sized type whose methods are `#[inline]` one-line forwards to `std::fs`, so the real
//! spool compiles to the same system calls as before the seam existed.
//!
//! The operations are exactly those the spool uses: create a new file and write it, read a file,
//! fsync a file, rename, remove, create directories, list a directory, fsync a directory, read
//! metadata, the filesystem's free space, advice that a file need not stay in memory, and the
//! owner's advisory lock.
//!
//! Architecture invariant: nothing in `spool/` or `fsutil.rs` calls `std::fs` directly; the
//! targets (`target/`) and the shipper loop use [`StdFs`] only.

#[cfg(test)]
pub(crate) mod sim;

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// What the spool needs of a filesystem. Paths are absolute.
pub trait Fs: Send + Sync + fmt::Debug + 'static {
    /// An open file.
    type File: FsFile;
    /// The names in a directory.
    type ReadDir: Iterator<Item = io::Result<OsString>>;
    /// A held advisory lock, released when dropped.
    type Lock: Send + Sync + fmt::Debug;

    /// Creates `path`, which must not exist (`O_CREAT | O_EXCL`), open for writing.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens the existing file `path` for reading.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// The whole content of the file `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` if it is a file (`rename(2)`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path` (`unlink(2)`).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates the directory `path`; fails with `AlreadyExists` if something is there.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates `path` and every missing parent directory.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names in directory `path` (without `.` and `..`), in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Self::ReadDir>;
    /// Makes the entries of directory `path` durable: names created, renamed in or out, removed.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Metadata of `path`, following symbolic links.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// Metadata of `path` itself (a final symbolic link is not followed).
    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// Size and free space of the filesystem holding `path`.
    fn disk_space(&self, path: &Path) -> io::Result<DiskSpace>;
    /// Tells the kernel the file `path` need not stay in memory (`posix_fadvise`,
    /// `POSIX_FADV_DONTNEED`): its clean pages leave the page cache, its content stays on
    /// disk. Advice: a filesystem without a page cache does nothing.
    fn drop_cached(&self, path: &Path) -> io::Result<()>;
    /// Takes the exclusive advisory lock on `path` (created if missing) without waiting, then
    /// replaces the file's content with `content`. Fails with `WouldBlock` if another holder has
    /// the lock.
    fn lock_exclusive(&self, path: &Path, content: &[u8]) -> io::Result<Self::Lock>;
}

/// An open file of an [`Fs`].
pub trait FsFile: Read + Write + Send {
    /// Makes the file's content durable (`fsync(2)`).
    fn sync_all(&self) -> io::Result<()>;
}

/// What kind of thing a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (symbolic link, device, socket, fifo).
    Other,
}

/// The metadata the spool reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub len: u64,
    /// Last modification (the Unix epoch if the filesystem does not say).
    pub modified: SystemTime,
    /// The device (filesystem) it is on.
    pub dev: u64,
    /// Its identity and times as the kernel keeps them (a real filesystem only).
    pub stamp: Option<FileStamp>,
}

/// A file's identity and change times: device, inode, size, modification and status change
/// (nanoseconds). Every write moves the times on, and user space cannot set a status change
/// time, so a file whose stamp is still the same has not been written since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &fs::Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            modified_ns: ns(m.mtime(), m.mtime_nsec()),
            changed_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

impl Metadata {
    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// Size and free space of a filesystem, as `statvfs(3)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Fragment size: the unit of the counts below.
    pub fragment_size: u64,
    /// Size of the filesystem, in fragments.
    pub blocks: u64,
    /// Free fragments.
    pub free: u64,
    /// Free fragments available to unprivileged users.
    pub available: u64,
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

/// A directory listing of [`StdFs`].
#[derive(Debug)]
pub struct StdReadDir(fs::ReadDir);

impl Iterator for StdReadDir {
    type Item = io::Result<OsString>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|item| item.map(|e| e.file_name()))
    }
}

impl FsFile for File {
    #[inline]
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}

impl From<fs::Metadata> for Metadata {
    #[inline]
    fn from(m: fs::Metadata) -> Metadata {
        let ft = m.file_type();
        let kind = if ft.is_file() {
            FileKind::File
        } else if ft.is_dir() {
            FileKind::Dir
        } else {
            FileKind::Other
        };
        let stamp = Some(FileStamp::of(&m));
        Metadata { kind, len: m.len(), modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH), dev: m.dev(), stamp }
    }
}

impl Fs for StdFs {
    type File = File;
    type ReadDir = StdReadDir;
    type Lock = File;

    #[inline]
    fn create_new(&self, path: &Path) -> io::Result<File> {
        File::create_new(path)
    }

    #[inline]
    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    #[inline]
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    #[inline]
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    #[inline]
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    #[inline]
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    #[inline]
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    #[inline]
    fn read_dir(&self, path: &Path) -> io::Result<StdReadDir> {
        fs::read_dir(path).map(StdReadDir)
    }

    #[inline]
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    #[inline]
    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        fs::metadata(path).map(Metadata::from)
    }

    #[inline]
    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        fs::symlink_metadata(path).map(Metadata::from)
    }

    fn disk_space(&self, path: &Path) -> io::Result<DiskSpace> {
        let st = rustix::fs::statvfs(path)?;
        Ok(DiskSpace { fragment_size: st.f_frsize, blocks: st.f_blocks, free: st.f_bfree, available: st.f_bavail })
    }

    fn drop_cached(&self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path, content: &[u8]) -> io::Result<File> {
        use rustix::fs::{FlockOperation, flock};
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        file.set_len(0)?;
        file.write_all(content)?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_filesystem_costs_the_spool_nothing() {
        // Zero-sized and statically dispatched: a `Spool<StdFs>` carries no pointer for it, and
        // every call is a direct (inlined) call into `std::fs`.
        assert_eq!(std::mem::size_of::<StdFs>(), 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut f = StdFs.create_new(&path).unwrap();
        f.write_all(b"abc").unwrap();
        FsFile::sync_all(&f).unwrap();
        StdFs.sync_dir(dir.path()).unwrap();
        let meta = StdFs.metadata(&path).unwrap();
        assert!(meta.is_file() && meta.len == 3);
        assert_eq!(StdFs.read_dir(dir.path()).unwrap().map(|n| n.unwrap()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(StdFs.lock_exclusive(&path, b"1\n").and_then(|_| StdFs.read(&path)).unwrap(), b"1\n");
        let held = StdFs.lock_exclusive(&path, b"2\n").unwrap();
        assert_eq!(StdFs.lock_exclusive(&path, b"3\n").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(held);
    }
}
