//! The shipper: a thread with its own tokio runtime that ships spooled entries to the targets.
//!
//! Entries are shipped oldest first (by seq), up to [`ShipperConfig::concurrency`] entries moving
//! data at a time, never two entries with the same key at once. An entry whose files are all
//! stored and that only waits — for the S3 manifest batch that holds its line, see
//! [`S3Config::manifest_linger`](crate::S3Config::manifest_linger) — gives its slot back, so that
//! the next entries upload meanwhile (up to a few thousand entries may wait so). For each entry
//! the shipper asks every target the entry is owed to (see the spool's `targets`) that has not
//! confirmed it yet to ship it; each success is recorded in the entry (`mark_shipped`), but for
//! the last one it waits for, which completes it (removes it from the queue) instead. Crash
//! points: `ShipAfterCopy` (inside [`LocalDir`](crate::LocalDir)), `ShipAfterPublish` (the target
//! confirmed, nothing recorded yet) and `ShipAfterMark` (the confirmation durable: recorded, or
//! for the last one the entry completed). A crash at any of them is recovered by shipping again:
//! targets recognise files
//! they already hold, and confirmations already recorded are not shipped again.
//!
//! Failures follow [`Disposition`](crate::Disposition): a retryable target failure backs that
//! target off exponentially with jitter (from [`ShipperConfig::retry_initial`] up to
//! [`ShipperConfig::retry_max`]); an entry failure backs off only that entry; a permanent failure
//! stops shipping to that target, logged once with `error!`. Entries always stay queued until
//! every target has confirmed them. When the oldest queued recording is more than a minute old,
//! its age is logged with `warn!` once a minute.
//!
//! Every 30 s the shipper also checks the spool's disk (above the high watermark: `error!` and
//! [`ShipStats::disk_pressure`]) and runs the retention sweep ([`Spool::sweep`]).
//!
//! The shipper holds a small index of the queue in memory (id, key, confirmations, entry time)
//! and takes each entry from the spool's index when shipping it; an entry told by its id
//! ([`Notifier::entered`]) is picked up at once, without a listing of the queue, and a
//! notification without one lists the queue at most every 50 ms. It is the only writer of
//! shipped state: one shipper per spool (the spool's owner lock keeps a second process out).
//! The spool records confirmations of different entries in parallel.
//!
//! Targets are known by name and location. [`ShipperHandle::set_targets`] (a configuration
//! reload) changes the targets new recordings are owed to; the old ones keep shipping the
//! entries owed to them. An entry owed to a target the shipper does not know waits, and the
//! report says so.

mod run;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use crate::spool::{EntryId, Spool};
use crate::target::{ShipError, Target};

/// How long the runtime waits for in-flight blocking file operations when the shipper stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Entered ids kept for the shipper's loop to take (each is 8 bytes); beyond, a listing of the
/// queue finds the entries instead.
const ENTERED_KEPT: usize = 65_536;

/// Settings of the shipper.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Entries moving data (reading, uploading, verifying) at the same time, at least 1; entries
    /// that only wait for their S3 manifest batch do not count. Each S3 upload holds its file
    /// (at most the multipart threshold, or one part) in memory. Default 16.
    pub concurrency: usize,
    /// First retry delay after a retryable failure. Default 500 ms.
    pub retry_initial: Duration,
    /// Longest retry delay; delays double up to it, with jitter. Default 60 s.
    pub retry_max: Duration,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        ShipperConfig { concurrency: 16, retry_initial: Duration::from_millis(500), retry_max: Duration::from_secs(60) }
    }
}

/// How many damaged archive files [`ShipStats::diverted_files`] names.
pub const DIVERTED_KEPT: usize = 10;

/// A snapshot of the shipper's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipStats {
    /// Recordings confirmed by every target and removed from the queue.
    pub shipped_recordings: u64,
    /// Bytes written to targets.
    pub shipped_bytes: u64,
    /// Shipments that found every file already at the target (repeats, e.g. after a crash).
    pub already_shipped: u64,
    /// Shipments that found other content under the recording's key in the archive (a damaged
    /// or replaced file) and stored the recording under `<key>~N`.
    pub diverted: u64,
    /// The archive files that caused the first of them (at most [`DIVERTED_KEPT`]).
    pub diverted_files: Vec<String>,
    /// Failures that will be retried.
    pub failures_retryable: u64,
    /// Failures that stopped a target.
    pub failures_permanent: u64,
    /// Entries in the queue now.
    pub queued: u64,
    /// Age in seconds of the oldest queued recording, if any.
    pub oldest_unshipped_age_secs: Option<u64>,
    /// The most recent error, with its causes.
    pub last_error: Option<String>,
    /// Percentage of the spool's filesystem in use at the last check (every 30 s), if known.
    pub disk_used_percent: Option<u8>,
    /// The spool's filesystem is above its high watermark
    /// ([`SpoolOptions::high_watermark_percent`](crate::SpoolOptions::high_watermark_percent)):
    /// logged at error level; recording goes on while the disk allows, nothing unshipped is
    /// deleted.
    pub disk_pressure: bool,
    /// Files deleted from the spool by the retention policy's sweeps.
    pub retention_deleted_files: u64,
    /// Per target (by name): what it shipped, its failures and what it still owes. The queue's
    /// part (`queued`, `queued_bytes`, `oldest_unshipped`) is recomputed at most once a second
    /// while running, and at the end.
    pub targets: BTreeMap<String, TargetStats>,
}

/// One target's counters, in [`ShipStats::targets`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    /// Recordings this target confirmed (stored and verified, or found already there).
    pub shipped_recordings: u64,
    /// Of them, those stored under `<key>~N` because the archive held other content under the
    /// key ([`ShipStats::diverted`]).
    pub diverted: u64,
    /// Bytes written to this target.
    pub shipped_bytes: u64,
    /// Failures that will be retried, by [`ShipError::kind`].
    pub retries: BTreeMap<&'static str, u64>,
    /// Failures that stopped this target, by [`ShipError::kind`].
    pub permanent_errors: BTreeMap<&'static str, u64>,
    /// Time from the start of a shipment to its confirmation in the spool.
    pub latency: LatencyHistogram,
    /// Queued recordings this target has not confirmed yet.
    pub queued: u64,
    /// Their size in bytes.
    pub queued_bytes: u64,
    /// When the oldest of them entered the spool.
    pub oldest_unshipped: Option<SystemTime>,
}

/// A histogram of shipment durations with fixed bucket bounds ([`LatencyHistogram::BOUNDS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations per bucket: `counts[i]` are those at most `BOUNDS[i]` seconds and more
    /// than the bound before; the last one those above every bound.
    pub counts: [u64; LatencyHistogram::BOUNDS.len() + 1],
    /// Sum of the observations in microseconds.
    pub sum_micros: u64,
}

impl LatencyHistogram {
    /// Upper bounds of the buckets, in seconds.
    pub const BOUNDS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

    /// Counts one observation.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = Self::BOUNDS.iter().position(|&b| secs <= b).unwrap_or(Self::BOUNDS.len());
        self.counts[i] += 1;
        self.sum_micros = self.sum_micros.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// An entry still queued when the shipper stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftQueued {
    /// The entry.
    pub id: EntryId,
    /// Its recording key.
    pub key: String,
    /// Targets that have not confirmed it.
    pub waiting_for: Vec<String>,
    /// The last error shipping this entry, if it was the entry's own problem.
    pub last_error: Option<String>,
}

/// What [`ShipperHandle::drain`] achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShipReport {
    /// Counters at the end.
    pub stats: ShipStats,
    /// Entries still queued, oldest first.
    pub left_queued: Vec<LeftQueued>,
    /// Errors that kept entries queued: per target (permanent, or the last retryable one), from
    /// listing the queue, and per unreadable queue entry.
    pub errors: Vec<String>,
}

impl ShipReport {
    /// Whether the queue was empty when the shipper stopped.
    pub fn is_complete(&self) -> bool {
        self.left_queued.is_empty()
    }
}

/// Namespace of [`Shipper::start`].
#[derive(Debug)]
pub struct Shipper {
    _private: (),
}

/// What the shipper thread is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ship as entries arrive.
    Run,
    /// Ship everything queued, then stop; give up at the deadline.
    Drain { deadline: Option<Instant> },
    /// Stop now.
    Stop,
}

/// State shared between the handle and the shipper thread.
#[derive(Debug)]
struct Shared {
    wake: Notify,
    new_entries: AtomicBool,
    /// Entries this process entered since the loop last looked, by id (see
    /// [`Notifier::entered`]).
    entered: Mutex<Vec<EntryId>>,
    mode: Mutex<Mode>,
    stats: Mutex<(ShipStats, Option<SystemTime>)>,
    /// Targets from a configuration reload, for the shipper thread to pick up.
    new_targets: Mutex<Option<Vec<Target>>>,
}

impl Shared {
    /// Takes the ids [`Notifier::entered`] gave since the last call.
    fn take_entered(&self) -> Vec<EntryId> {
        std::mem::take(&mut *self.entered())
    }

    fn entered(&self) -> MutexGuard<'_, Vec<EntryId>> {
        self.entered.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_targets(&self) -> MutexGuard<'_, Option<Vec<Target>>> {
        self.new_targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mode(&self) -> MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, (ShipStats, Option<SystemTime>)> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The published counters, with the age computed now.
    fn snapshot(&self) -> ShipStats {
        let guard = self.stats();
        let mut stats = guard.0.clone();
        stats.oldest_unshipped_age_secs =
            guard.1.map(|t| SystemTime::now().duration_since(t).unwrap_or_default().as_secs());
        stats
    }
}

/// Controls a running shipper. Dropping it stops the shipper without draining.
#[derive(Debug)]
pub struct ShipperHandle {
    shared: Arc<Shared>,
    spool: Arc<Spool>,
    thread: Option<JoinHandle<ShipReport>>,
}

impl Shipper {
    /// Starts the shipper thread and its runtime. It immediately ships whatever is queued (left
    /// from a previous run), then waits for [`ShipperHandle::notify`].
    ///
    /// Fails if there are no targets, two targets share a name, `concurrency` is 0, or the thread
    /// or runtime cannot be created.
    pub fn start(spool: Arc<Spool>, targets: Vec<Target>, cfg: ShipperConfig) -> Result<ShipperHandle, ShipError> {
        let start_err = |reason: String, source: Option<std::io::Error>| ShipError::Start { reason, source };
        check_targets(&targets)?;
        if cfg.concurrency == 0 {
            return Err(start_err("concurrency must be at least 1".into(), None));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("shipper-io")
            .max_blocking_threads(cfg.concurrency * 2 + 2)
            .build()
            .map_err(|e| start_err("cannot build the tokio runtime".into(), Some(e)))?;
        let shared = Arc::new(Shared {
            wake: Notify::new(),
            new_entries: AtomicBool::new(false),
            entered: Mutex::default(),
            mode: Mutex::new(Mode::Run),
            stats: Mutex::default(),
            new_targets: Mutex::default(),
        });
        spool.set_targets(targets.iter().map(Target::owed).collect());
        // Encrypted copies staged for entries no longer queued (a crash after their
        // confirmation) are of no use.
        if let Ok(pending) = spool.pending() {
            let queued = pending.into_iter().map(|e| e.key).collect();
            let removed = crate::target::seal::sweep(spool.root(), &queued);
            if removed > 0 {
                tracing::info!(removed, "removed encrypted copies staged for recordings no longer queued");
            }
        }
        let worker = run::Worker::new(Arc::clone(&spool), targets, cfg, Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("shipper".into())
            .spawn(move || {
                let report = runtime.block_on(worker.run());
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
                report
            })
            .map_err(|e| start_err("cannot spawn the shipper thread".into(), Some(e)))?;
        Ok(ShipperHandle { shared, spool, thread: Some(thread) })
    }
}

/// Refuses an empty target list and two targets with one name.
fn check_targets(targets: &[Target]) -> Result<(), ShipError> {
    let start_err = |reason: String| ShipError::Start { reason, source: None };
    if targets.is_empty() {
        return Err(start_err("no archive target is configured".into()));
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|u| u.name() == t.name()) {
            return Err(start_err(format!("two targets are named {:?}; give each a unique name", t.name())));
        }
    }
    Ok(())
}

/// A cloneable way to tell a running shipper that new entries were entered, for the threads
/// that enter recordings.
#[derive(Debug, Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// Tells the shipper new entries were entered, without saying which: it lists the queue
    /// (at most every 50 ms). Cheap; never blocks.
    pub fn notify(&self) {
        self.shared.new_entries.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Tells the shipper entry `id` was entered into its spool: it takes the entry from the
    /// spool's index at once, with no listing of the queue. Cheap; never blocks. (Ids the
    /// loop has not taken yet are capped at 65,536: beyond, it lists the queue.)
    pub fn entered(&self, id: EntryId) {
        {
            let mut entered = self.shared.entered();
            if entered.len() < ENTERED_KEPT {
                entered.push(id);
            } else {
                self.shared.new_entries.store(true, Ordering::Release);
            }
        }
        self.shared.wake.notify_one();
    }
}

impl ShipperHandle {
    /// Tells the shipper a new entry was entered. Cheap; never blocks.
    pub fn notify(&self) {
        self.notifier().notify();
    }

    /// A notifier other threads can keep.
    pub fn notifier(&self) -> Notifier {
        Notifier { shared: self.shared.clone() }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ShipStats {
        self.shared.snapshot()
    }

    /// Replaces the configured targets (a configuration reload): recordings entered from now on
    /// are owed to `targets`; queued recordings keep the targets they are owed to, and the
    /// shipper keeps delivering them there. Fails, changing nothing, for an empty list or two
    /// targets with one name.
    pub fn set_targets(&self, targets: Vec<Target>) -> Result<(), ShipError> {
        check_targets(&targets)?;
        self.spool.set_targets(targets.iter().map(Target::owed).collect());
        *self.shared.new_targets() = Some(targets);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Ships everything queued, retrying retryable failures until `deadline` (from now; `None`
    /// waits as long as it takes), then stops the shipper thread. Entries that failed on their
    /// own during the drain and entries waiting only for permanently failed targets are left
    /// queued. When the deadline passes, shipments in flight are abandoned (file copies already
    /// running get a few seconds to finish; either way nothing is confirmed that is not stored).
    /// Returns the final counters, what is left in the queue, and why.
    pub fn drain(mut self, deadline: Option<Duration>) -> ShipReport {
        let deadline = deadline.map(|d| Instant::now() + d);
        self.stop(Mode::Drain { deadline })
    }

    fn stop(&mut self, mode: Mode) -> ShipReport {
        *self.shared.mode() = mode;
        self.shared.wake.notify_one();
        let Some(thread) = self.thread.take() else {
            return ShipReport::default();
        };
        match thread.join() {
            Ok(report) => report,
            Err(_) => {
                let text = "the shipper thread panicked; queued entries are kept in the spool \
                            and will be shipped at the next start"
                    .to_owned();
                tracing::error!("{text}");
                ShipReport { stats: self.shared.snapshot(), left_queued: Vec::new(), errors: vec![text] }
            }
        }
    }
}

impl Drop for ShipperHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Mode::Stop);
        }
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        let mut h = LatencyHistogram::default();
        for ms in [0, 5, 6, 1000, 1001, 30_000, 30_001, 120_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut want = [0u64; LatencyHistogram::BOUNDS.len() + 1];
        want[0] = 2; // 0 and 5 ms: <= 0.005 s
        want[1] = 1; // 6 ms
        want[7] = 1; // 1 s exactly
        want[8] = 1; // 1.001 s
        want[11] = 1; // 30 s exactly
        want[12] = 2; // above every bound
        assert_eq!(h.counts, want);
        assert_eq!(h.count(), 8);
        assert_eq!(h.sum_micros, (5 + 6 + 1000 + 1001 + 30_000 + 30_001 + 120_000) * 1000);
    }
}
