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
//!
//! Builds with the `crash-points` feature (the test command builds the binary with it; release
//! builds do not) also honour `CALLVAULT_CRASH_AT=<point>[:<skip>]` (a point's kebab-case name,
//! e.g. `enter-after-moves:2`): the process kills itself with SIGKILL the `skip + 1`-th time it
//! reaches that point. The end-to-end crash tests use it to `kill -9` the real binary at each
//! point. Without the feature the variable is not even read.

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
    /// Shipping: every file is stored and verified at the target, its manifest line is not
    /// written yet.
    ShipBeforeManifest,
    /// Shipping: the target has published every file and written the manifest line, the spool
    /// has not recorded it yet.
    ShipAfterPublish,
    /// Shipping: the target is recorded as shipped in the entry, the entry is not completed yet.
    ShipAfterMark,
    /// Writing a manifest: the batch is created in the archive, its signature is not.
    ManifestBeforeSignature,
}

#[cfg_attr(any(test, not(feature = "crash-points")), allow(dead_code))]
impl CrashPoint {
    /// Every point, for tests and the `CALLVAULT_CRASH_AT` names.
    pub(crate) const ALL: [CrashPoint; 10] = [
        CrashPoint::EnterAfterIntent,
        CrashPoint::EnterAfterFirstMove,
        CrashPoint::EnterAfterMoves,
        CrashPoint::EnterAfterEntry,
        CrashPoint::ShipAfterCopy,
        CrashPoint::ShipAfterUpload,
        CrashPoint::ShipBeforeManifest,
        CrashPoint::ShipAfterPublish,
        CrashPoint::ShipAfterMark,
        CrashPoint::ManifestBeforeSignature,
    ];

    /// The kebab-case name used by `CALLVAULT_CRASH_AT`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CrashPoint::EnterAfterIntent => "enter-after-intent",
            CrashPoint::EnterAfterFirstMove => "enter-after-first-move",
            CrashPoint::EnterAfterMoves => "enter-after-moves",
            CrashPoint::EnterAfterEntry => "enter-after-entry",
            CrashPoint::ShipAfterCopy => "ship-after-copy",
            CrashPoint::ShipAfterUpload => "ship-after-upload",
            CrashPoint::ShipBeforeManifest => "ship-before-manifest",
            CrashPoint::ShipAfterPublish => "ship-after-publish",
            CrashPoint::ShipAfterMark => "ship-after-mark",
            CrashPoint::ManifestBeforeSignature => "manifest-before-signature",
        }
    }
}

/// `CALLVAULT_CRASH_AT`: the point to die at and how many passes remain before it.
#[cfg(feature = "crash-points")]
#[cfg_attr(test, allow(dead_code))]
struct KillSwitch {
    point: CrashPoint,
    remaining: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "crash-points")]
#[cfg_attr(test, allow(dead_code))]
static KILL_SWITCH: std::sync::OnceLock<Option<KillSwitch>> = std::sync::OnceLock::new();

#[cfg(feature = "crash-points")]
#[cfg_attr(test, allow(dead_code))]
fn kill_switch() -> Option<&'static KillSwitch> {
    KILL_SWITCH
        .get_or_init(|| {
            let spec = std::env::var("CALLVAULT_CRASH_AT").ok()?;
            let (name, skip) = spec.split_once(':').unwrap_or((spec.as_str(), "0"));
            let point = CrashPoint::ALL.into_iter().find(|p| p.name() == name);
            match (point, skip.parse::<usize>()) {
                (Some(point), Ok(skip)) => {
                    Some(KillSwitch { point, remaining: std::sync::atomic::AtomicUsize::new(skip) })
                }
                _ => {
                    tracing::error!("CALLVAULT_CRASH_AT={spec:?} names no crash point; ignored");
                    None
                }
            }
        })
        .as_ref()
}

/// Dies with SIGKILL if `CALLVAULT_CRASH_AT` names `point` and its passes are used up.
#[cfg(feature = "crash-points")]
#[cfg_attr(test, allow(dead_code))]
fn maybe_die(point: CrashPoint) {
    use std::sync::atomic::Ordering;
    let Some(k) = kill_switch() else { return };
    if k.point != point {
        return;
    }
    if k.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

/// Passes a crash point that belongs to no spool operation (the manifest writer's, shared by
/// every shipment of a target): only the `CALLVAULT_CRASH_AT` kill switch acts on it.
#[inline(always)]
pub(crate) fn pass(point: CrashPoint) {
    #[cfg(all(feature = "crash-points", not(test)))]
    maybe_die(point);
    let _ = point;
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
    /// Passes crash point `point` (dies there if `CALLVAULT_CRASH_AT` says so).
    #[inline(always)]
    pub(crate) fn hit(&self, point: CrashPoint) -> io::Result<()> {
        #[cfg(feature = "crash-points")]
        maybe_die(point);
        let _ = point;
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
        if let Some((armed, skip, effect)) = plan.as_mut()
            && *armed == point
        {
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
