//! Named crash points and the fault-injection seam used by the crash tests.
//!
//! Production builds compile [`Faults`] to a zero-sized no-op. Test builds can arm one point:
//!
//! * a *crash*: when execution reaches the point, the operation fails with an injected I/O error,
//!   the spool is marked crashed, and from then on every crash point and every mutating spool
//!   operation fails too and no cleanup runs — the process is "dead" as far as the filesystem can
//!   tell. The test then drops everything, re-opens the spool from disk and checks what recovery
//!   makes of the state left behind;
//! * a single ordinary I/O error (`fail_once`), after which everything keeps working.

use std::io;

/// A point where a crash leaves a distinct on-disk state that recovery must handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CrashPoint {
    /// `enter`: the intent is durable in `queue/.intent/`, no file has been moved yet.
    EnterAfterIntent,
    /// `enter`: the first file has been moved into `recordings/` (others still in the work dir).
    EnterAfterFirstMove,
    /// `enter`: every file is in `recordings/`, the queue entry is not written yet.
    EnterAfterMoves,
    /// `enter`: the queue entry is written, the intent has not been removed yet.
    EnterAfterEntry,
    /// Shipping to a local directory: a file is copied to its `.part-` temp name and verified, but
    /// not yet published under its final name.
    ShipAfterCopy,
    /// Shipping to S3: an object is uploaded and verified; the following objects and the
    /// manifest line are not written yet.
    ShipAfterUpload,
    /// Shipping: the target has published every file, the spool has not recorded it yet.
    ShipAfterPublish,
    /// Shipping: the target is recorded as shipped in the entry, the entry is not completed yet.
    ShipAfterMark,
}

/// What happens when an armed point is reached.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// The process dies: this and every later operation fails, no cleanup runs.
    Crash,
    /// One ordinary I/O error at this point; everything else keeps working.
    FailOnce,
}

/// Fault-injection state: at most one armed point in tests, nothing in production.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The armed point, how many passes to let through first, and the effect.
    #[cfg(test)]
    plan: std::sync::Mutex<Option<(CrashPoint, usize, Effect)>>,
    /// Set by an injected crash.
    #[cfg(test)]
    crashed: std::sync::atomic::AtomicBool,
}

#[cfg(not(test))]
impl Faults {
    /// Passes crash point `_point`.
    #[inline(always)]
    pub(crate) fn hit(&self, _point: CrashPoint) -> io::Result<()> {
        Ok(())
    }

    /// Fails if an injected crash has happened: never outside tests.
    #[inline(always)]
    pub(crate) fn alive(&self) -> io::Result<()> {
        Ok(())
    }

    /// Whether an injected crash has happened: never outside tests.
    #[inline(always)]
    pub(crate) fn crashed(&self) -> bool {
        false
    }
}

#[cfg(test)]
impl Faults {
    /// Arms a crash at `point`: the `skip + 1`-th time execution reaches it.
    pub(crate) fn arm(&self, point: CrashPoint, skip: usize) {
        *self.plan.lock().unwrap() = Some((point, skip, Effect::Crash));
    }

    /// Arms a single I/O error at `point`, the next time execution reaches it.
    pub(crate) fn fail_once(&self, point: CrashPoint) {
        *self.plan.lock().unwrap() = Some((point, 0, Effect::FailOnce));
    }

    /// Disarms any armed point.
    pub(crate) fn disarm(&self) {
        *self.plan.lock().unwrap() = None;
    }

    /// Passes `point`, failing if it is armed and due.
    pub(crate) fn hit(&self, point: CrashPoint) -> io::Result<()> {
        self.alive()?;
        let mut plan = self.plan.lock().unwrap();
        if let Some((armed, skip, effect)) = plan.as_mut() {
            if *armed == point {
                if *skip == 0 {
                    let effect = *effect;
                    *plan = None;
                    if effect == Effect::Crash {
                        self.crashed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    return Err(io::Error::other(format!("injected fault at {point:?}")));
                }
                *skip -= 1;
            }
        }
        Ok(())
    }

    /// Fails if an injected crash has happened.
    pub(crate) fn alive(&self) -> io::Result<()> {
        if self.crashed() { Err(io::Error::other("injected crash: the process is dead")) } else { Ok(()) }
    }

    /// Whether an injected crash has happened.
    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(std::sync::atomic::Ordering::SeqCst)
    }
}
