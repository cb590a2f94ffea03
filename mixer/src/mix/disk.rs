//! The free-space reserve of the work directory's filesystem.
//!
//! Audio is by far the largest thing callvault writes; call records are a few KB. When the
//! disk fills, every call must still get its record (the audio it managed to keep, and why the
//! rest is missing), so audio stops being written while less than the reserve is free: calls in
//! progress keep the audio written so far, new calls get records without audio, and audio
//! resumes for new calls once space is freed (shipping with a delete retention, an operator).
//!
//! The filesystem is asked (`statvfs`) at each new call while space is low, and otherwise
//! before a write would take the audio written since the last answer past `check_every` bytes
//! (an eighth of the reserve, 64 KiB to 4 MiB). Every write (the end of a call's too) asks
//! first, so what the mixer writes after an answer that there was room is bounded by that
//! amount: the reserve can shrink by at most `check_every` per mixer, whatever the number of
//! calls or the size of their writes.

use std::path::PathBuf;

/// Checks the free space of one directory's filesystem against a reserve.
#[derive(Debug)]
pub(crate) struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    check_every: u64,
    since_check: u64,
    low: bool,
    /// The last statvfs error was logged (logged once, not per check).
    error_logged: bool,
    /// Times the filesystem was asked.
    checks: u64,
}

const MIB: u64 = 1 << 20;

impl DiskGuard {
    /// A guard keeping `reserve` bytes free on `dir`'s filesystem (0: no reserve).
    pub(crate) fn new(dir: PathBuf, reserve: u64) -> DiskGuard {
        let check_every = (reserve / 8).clamp(64 << 10, 4 * MIB);
        DiskGuard { dir, reserve, check_every, since_check: u64::MAX / 2, low: false, error_logged: false, checks: 0 }
    }

    /// Whether `bytes` more of audio may be written (asks the filesystem if they would take
    /// what was written since the last answer past `check_every`); charges them if so.
    #[inline]
    pub(crate) fn room_for(&mut self, bytes: u64) -> bool {
        if self.since_check + bytes > self.check_every {
            self.check();
        }
        if !self.low {
            self.since_check += bytes;
        }
        !self.low
    }

    /// Accounts for `bytes` of audio written without asking first (a write the ring forced).
    #[inline]
    pub(crate) fn wrote(&mut self, bytes: u64) {
        self.since_check += bytes;
    }

    /// Whether a new call may start writing audio.
    pub(crate) fn room_for_new(&mut self) -> bool {
        if self.low || self.since_check >= self.check_every {
            self.check();
        }
        !self.low
    }

    /// Why audio is not being written.
    pub(crate) fn reason(&self) -> String {
        format!(
            "the disk is full: less than the reserve of {} MiB is free on {}",
            self.reserve / MIB,
            self.dir.display()
        )
    }

    fn check(&mut self) {
        self.since_check = 0;
        if self.reserve == 0 {
            return;
        }
        self.checks += 1;
        match rustix::fs::statvfs(&self.dir) {
            Ok(st) => {
                self.error_logged = false;
                let free = st.f_bavail.saturating_mul(st.f_frsize);
                let low = free < self.reserve;
                if low && !self.low {
                    tracing::error!(
                        dir = %self.dir.display(),
                        free_mib = free / MIB,
                        reserve_mib = self.reserve / MIB,
                        "disk nearly full: audio recording paused (calls in progress keep what they have, \
                         new calls get call records without audio) until space is freed"
                    );
                } else if !low && self.low {
                    tracing::warn!(dir = %self.dir.display(), free_mib = free / MIB, "disk space freed: audio recording resumes for new calls");
                }
                self.low = low;
            }
            Err(e) => {
                if !self.error_logged {
                    tracing::warn!(dir = %self.dir.display(), "cannot check free disk space: {e}");
                    self.error_logged = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_reserve_never_stops_audio() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = DiskGuard::new(dir.path().into(), 0);
        assert!(g.room_for_new());
        assert!(g.room_for(1 << 40));
    }

    #[test]
    fn the_filesystem_is_asked_before_a_write_would_pass_the_check_interval() {
        let dir = tempfile::tempdir().unwrap();
        // A reserve of 1 MiB: asked every 128 KiB of audio (the directory has at least 1 MiB free).
        let mut g = DiskGuard::new(dir.path().into(), MIB);
        assert!(g.room_for_new());
        assert_eq!(g.checks, 1);
        let every = g.check_every;
        assert_eq!(every, 128 << 10);
        assert!(g.room_for(every / 2));
        assert!(g.room_for(every / 2));
        assert_eq!(g.checks, 1, "two writes make up the interval: not asked yet");
        assert!(g.room_for(1));
        assert_eq!(g.checks, 2, "one byte more would pass it: asked before it is written");
        g.wrote(every);
        assert!(g.room_for(1));
        assert_eq!(g.checks, 3, "a forced write counts towards the interval");
        // The answer stands until the next question: a write larger than the interval asks
        // every time.
        assert!(g.room_for(every + 1));
        assert!(g.room_for(every + 1));
        assert_eq!(g.checks, 5);
    }

    #[test]
    fn a_reserve_larger_than_the_disk_stops_audio_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let st = rustix::fs::statvfs(dir.path()).unwrap();
        let size = st.f_blocks * st.f_frsize;
        let mut g = DiskGuard::new(dir.path().into(), size + MIB);
        assert!(!g.room_for_new());
        assert!(!g.room_for(1));
        assert!(g.reason().contains(&dir.path().display().to_string()), "{}", g.reason());
        // A small reserve on the same filesystem leaves room (it has at least 1 MiB free).
        let mut g = DiskGuard::new(dir.path().into(), 1);
        assert!(g.room_for_new());
    }
}
