//! Open audio files, bounded. Every call in progress writes its own audio file(s); with tens of
//! thousands of calls they alone would reach the process's limit of open files and new calls
//! would get no audio. So audio files stay open only while fewer than [`set_limit`] of them are
//! open in the process: beyond that, a file is closed after each write and opened again (by
//! name, at its end) for the next one. Any number of calls can then be recorded; the calls
//! beyond the limit pay an open and a close per write chunk (at least ~8 KiB, a quarter second
//! of a call's audio), the others nothing.
//!
//! Writeback starts as a file grows, not at its end: every [`WRITEBACK_EVERY`] bytes written
//! to it, a handle to it goes to the writeback thread, which queues what it holds for the disk
//! ([`crate::mix::writeback::start`]: `sync_file_range`, no waiting, no inode write, no cache
//! flush) while the call goes on, and once more when the file is complete, for what its last
//! writes left. Left to the kernel, a call's audio would sit in the
//! page cache until the finisher's fsync at the call's end (the kernel starts writing only
//! when a tenth of memory is dirty, or after 30 s), and recordings ending together would wait
//! for all their audio at once. The thread never holds up a mixer: when it is behind, the
//! handle is dropped and the finisher's fsync covers that part as before.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_channel::Sender;

/// Audio files open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// How many may stay open between writes.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Times a closed audio file was opened again.
static REOPENED: AtomicU64 = AtomicU64::new(0);

/// Sets how many audio files may stay open between writes.
pub fn set_limit(files: usize) {
    LIMIT.store(files.max(1), Ordering::Relaxed);
}

/// The limit for a process allowed `max_open` open files: all but a reserve for everything
/// else it opens (capture handles, sockets, the spool, the index, finishing recordings).
pub fn limit_for(max_open: u64) -> usize {
    let reserve = (max_open / 8).max(256).min(max_open / 2);
    usize::try_from(max_open - reserve).unwrap_or(usize::MAX)
}

/// Bytes written to an audio file after which its writeback is started: 512 KiB, about 16 s of
/// a 16-bit stereo 8 kHz call.
pub const WRITEBACK_EVERY: u64 = 512 * 1024;

/// Handles waiting for the writeback thread.
const WRITEBACK_QUEUE: usize = 16;

/// Times writeback of an audio file was started before its end.
static WRITEBACKS: AtomicU64 = AtomicU64::new(0);

/// The writeback thread's queue (started at the first use; `None` if it could not start).
fn writeback() -> Option<&'static Sender<File>> {
    static QUEUE: OnceLock<Option<Sender<File>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded::<File>(WRITEBACK_QUEUE);
            let spawned = std::thread::Builder::new().name("writeback".into()).spawn(move || {
                for file in rx {
                    // A failure here is the finisher's to find and report: its fsync fails too.
                    let _ = crate::mix::writeback::start(&file);
                }
            });
            spawned.ok().map(|_| tx)
        })
        .as_ref()
}

/// Times writeback of an audio file was started before its end.
pub fn writebacks() -> u64 {
    WRITEBACKS.load(Ordering::Relaxed)
}

/// Audio files open now.
pub fn open_now() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// Times since start an audio file closed between writes was opened again.
pub fn reopened() -> u64 {
    REOPENED.load(Ordering::Relaxed)
}

/// An audio file being written, open or closed between writes.
#[derive(Debug)]
pub struct AudioFile {
    path: PathBuf,
    file: Option<File>,
    /// Bytes written since writeback was last started.
    unflushed: u64,
}

impl AudioFile {
    /// Creates `path` (which must not exist), open for reading and writing.
    pub fn create_new(path: &Path) -> io::Result<AudioFile> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        OPEN.fetch_add(1, Ordering::Relaxed);
        // The writeback thread starts with the first recording, not in the middle of the
        // packet that takes a file past its first 512 KiB.
        writeback();
        Ok(AudioFile { path: path.to_owned(), file: Some(file), unflushed: 0 })
    }

    /// An audio file written before (recovered after a crash), open for reading and writing.
    pub fn existing(path: &Path) -> io::Result<AudioFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        OPEN.fetch_add(1, Ordering::Relaxed);
        Ok(AudioFile { path: path.to_owned(), file: Some(file), unflushed: 0 })
    }

    /// The file, opened again at its end if it was closed.
    pub fn get(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let mut f = OpenOptions::new().read(true).write(true).open(&self.path)?;
            f.seek(SeekFrom::End(0))?;
            OPEN.fetch_add(1, Ordering::Relaxed);
            REOPENED.fetch_add(1, Ordering::Relaxed);
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    /// After `bytes` were appended: starts the file's writeback once enough were (see the
    /// module's notes). Call before [`AudioFile::release`].
    pub fn wrote(&mut self, bytes: usize) {
        self.unflushed += bytes as u64;
        if self.unflushed >= WRITEBACK_EVERY && self.start_writeback() {
            WRITEBACKS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The file is complete (its header written): starts the writeback of what its last
    /// writes left in the page cache, so that the finisher's fsync finds it on its way when it
    /// comes to the file (later when many calls end together). Call before
    /// [`AudioFile::release`].
    pub fn ended(&mut self) {
        self.start_writeback();
    }

    /// Hands a handle to the writeback thread unless it is behind; whether it did.
    fn start_writeback(&mut self) -> bool {
        let (Some(file), Some(queue)) = (self.file.as_ref(), writeback()) else { return false };
        if queue.is_full() {
            return false;
        }
        let sent = file.try_clone().is_ok_and(|handle| queue.try_send(handle).is_ok());
        if sent {
            self.unflushed = 0;
        }
        sent
    }

    /// After a write: closes the file if more audio files are open than the limit allows.
    pub fn release(&mut self) {
        if self.file.is_some() && OPEN.load(Ordering::Relaxed) > LIMIT.load(Ordering::Relaxed) {
            self.close();
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed to `path` (its writes go on there).
    pub fn renamed(&mut self, path: &Path) {
        path.clone_into(&mut self.path);
    }

    /// The open file, for good (it leaves the count: the caller closes it).
    pub fn into_file(mut self) -> io::Result<File> {
        self.get()?;
        OPEN.fetch_sub(1, Ordering::Relaxed);
        Ok(self.file.take().expect("open"))
    }

    fn close(&mut self) {
        if self.file.take().is_some() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for AudioFile {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_file_goes_to_the_writeback_thread() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut f = AudioFile::create_new(&dir.path().join("a.wav")).unwrap();
        f.get().unwrap().write_all(&[7; 1000]).unwrap();
        f.wrote(1000);
        // Far below the mid-call threshold: nothing started yet.
        assert_eq!(f.unflushed, 1000);
        // At its end the rest is handed over (the queue is shared with other tests: a full
        // one is tried again, for up to 5 s, which a loaded machine's disk may need to drain it).
        for _ in 0..500 {
            f.ended();
            if f.unflushed == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(f.unflushed, 0, "the complete file was not handed to the writeback thread");
    }

    #[test]
    fn limits_keep_a_reserve() {
        assert_eq!(limit_for(65536), 57344);
        assert_eq!(limit_for(1024), 768);
        assert_eq!(limit_for(128), 64);
    }
}
