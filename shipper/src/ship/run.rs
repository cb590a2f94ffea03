//! The shipper's event loop and its shipping tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, Semaphore};
use tokio::task::{Id, JoinError, JoinSet};

use super::{LeftQueued, Mode, Shared, ShipReport, ShipStats, ShipperConfig};
use crate::faults::CrashPoint;
use crate::fsutil::random_u64;
use crate::spool::{Entry, EntryId, OwedTarget, Spool, SpoolError};
use crate::target::{Disposition, ShipError, ShipSlot, Shipment, Target};

/// How often the queue directory is re-listed even without a notification.
const LOAD_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest time between two listings of the queue prompted by notifications: a recorder that
/// enters hundreds of recordings a second gets them picked up in batches, not one listing each.
const NOTIFIED_LOAD_INTERVAL: Duration = Duration::from_millis(50);
/// Entries that may wait (for their S3 manifest batch) besides the `concurrency` moving data.
const MAX_WAITING: usize = 4096;
/// Entries read from disk per blocking call when loading the queue.
const LOAD_CHUNK: usize = 256;
/// Age of the oldest queued recording above which a warning is logged, at most this often.
const AGE_WARNING: Duration = Duration::from_secs(60);
/// How often the per-target queue figures are recomputed while running (they cost a walk of
/// the queue index).
const TARGET_QUEUE_EVERY: Duration = Duration::from_secs(1);
/// How often the disk is checked and the retention sweep runs.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);
/// How often directory archives with a retention are pruned (the first time at start).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Exponential backoff with "equal jitter": each delay is between half and all of the current
/// step, and the step doubles up to the maximum.
#[derive(Debug, Clone)]
struct Backoff {
    initial: Duration,
    max: Duration,
    step: Option<Duration>,
}

impl Backoff {
    fn new(cfg: &ShipperConfig) -> Backoff {
        let initial = cfg.retry_initial.max(Duration::from_millis(1));
        Backoff { initial, max: cfg.retry_max.max(initial), step: None }
    }

    /// The delay before the next attempt.
    fn next_delay(&mut self) -> Duration {
        let step = match self.step {
            None => self.initial,
            Some(s) => (s * 2).min(self.max),
        };
        self.step = Some(step);
        let half = step / 2;
        let jitter_nanos = random_u64() % (half.as_nanos() as u64).max(1);
        half + Duration::from_nanos(jitter_nanos)
    }

    fn reset(&mut self) {
        self.step = None;
    }
}

/// A target the shipper knows: configured now, or configured earlier and still owed by queued
/// entries. Slots are never removed while the shipper runs, so their indexes stay valid.
#[derive(Debug)]
struct TargetSlot {
    target: Arc<Target>,
    owed: OwedTarget,
    /// Entered recordings are owed to it now (false: replaced by a configuration reload).
    configured: bool,
    state: TargetState,
}

/// Per-target shipping state.
#[derive(Debug)]
struct TargetState {
    backoff: Backoff,
    /// No attempts before this instant.
    retry_at: Option<Instant>,
    /// Set after a permanent failure: the target is no longer used.
    permanent: Option<String>,
    /// The last failure since the last success.
    last_error: Option<String>,
}

/// What the loop knows about a queued entry.
#[derive(Debug)]
struct Queued {
    key: String,
    entered: Option<SystemTime>,
    /// Size of its files in bytes.
    bytes: u64,
    /// The targets it is owed to; empty for entries from before targets were recorded, which
    /// are owed to the configured targets.
    owed: Vec<OwedTarget>,
    /// Targets that confirmed it.
    shipped: HashSet<String>,
    in_flight: bool,
    backoff: Backoff,
    /// No attempts before this instant (after an entry failure).
    retry_at: Option<Instant>,
    /// The last entry failure.
    last_error: Option<String>,
    /// An entry failure happened while draining: not retried again in this drain.
    failed_in_drain: bool,
}

/// What a shipping task reports.
#[derive(Debug)]
struct Outcome {
    id: EntryId,
    /// The entry disappeared from the queue (removed by hand).
    gone: bool,
    /// Per target slot: the shipment, `None` if it was already confirmed, or the failure; and
    /// how long the attempt took.
    results: Vec<(usize, Result<Option<Shipment>, ShipError>, Duration)>,
    /// Whether the entry was completed, or why completing failed.
    completed: Result<bool, ShipError>,
}

/// The shipper thread's state.
#[derive(Debug)]
pub(super) struct Worker {
    spool: Arc<Spool>,
    targets: Vec<TargetSlot>,
    cfg: ShipperConfig,
    shared: Arc<Shared>,
    index: BTreeMap<EntryId, Queued>,
    tasks: JoinSet<Outcome>,
    task_ids: HashMap<Id, EntryId>,
    /// One permit per shipment moving data ([`ShipperConfig::concurrency`]); a shipment that only
    /// waits gives its permit back and `freed` wakes the loop.
    slots: Arc<Semaphore>,
    freed: Arc<Notify>,
    in_flight_keys: HashSet<String>,
    stats: ShipStats,
    need_load: bool,
    /// New entries were notified: list the queue once `NOTIFIED_LOAD_INTERVAL` has passed since
    /// the last listing.
    notified: bool,
    last_load: Option<Instant>,
    next_load: Instant,
    load_error: Option<String>,
    /// Entries that could not be read, with the error (logged once each).
    unreadable: BTreeMap<EntryId, String>,
    last_age_warning: Option<Instant>,
    draining: bool,
    next_housekeeping: Instant,
    /// When directory archives with a retention are pruned next.
    next_prune: Instant,
    /// Prunings running (finished before the worker ends, unless it is stopped).
    prunes: JoinSet<()>,
    /// Owed targets without a slot that were already reported.
    reported_unconfigured: HashSet<OwedTarget>,
    /// When the per-target queue figures were last computed.
    last_target_queue: Option<Instant>,
    /// The entries [`Worker::schedule`] looks at: every entry after a listing of the queue or
    /// a change of which targets are due (`last_due`), then only those that may have work
    /// since it last looked (new, back from a shipment, their retry time come). An entry found
    /// with nothing to do (its archive unreachable, in backoff) leaves it: with a backlog of
    /// 100,000 the loop no longer walks all of them at every event.
    candidates: BTreeSet<EntryId>,
    /// Which target slots were due when entries were last scheduled.
    last_due: Vec<bool>,
    /// Entries given a time of their own to be retried at (after a failure of the entry
    /// itself): the loop wakes for them, and they become candidates again then.
    retrying: BTreeSet<EntryId>,
}

/// What woke the loop.
enum Event {
    Wake,
    Done(Result<(Id, Outcome), JoinError>),
    Timer,
}

impl Worker {
    pub(super) fn new(spool: Arc<Spool>, targets: Vec<Target>, cfg: ShipperConfig, shared: Arc<Shared>) -> Worker {
        let slots = Arc::new(Semaphore::new(cfg.concurrency));
        let mut worker = Worker {
            spool,
            targets: Vec::new(),
            cfg,
            shared,
            index: BTreeMap::new(),
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
            slots,
            freed: Arc::new(Notify::new()),
            in_flight_keys: HashSet::new(),
            stats: ShipStats::default(),
            need_load: true,
            notified: false,
            last_load: None,
            next_load: Instant::now(),
            load_error: None,
            unreadable: BTreeMap::new(),
            last_age_warning: None,
            draining: false,
            next_housekeeping: Instant::now(),
            next_prune: Instant::now(),
            prunes: JoinSet::new(),
            reported_unconfigured: HashSet::new(),
            last_target_queue: None,
            candidates: BTreeSet::new(),
            last_due: Vec::new(),
            retrying: BTreeSet::new(),
        };
        worker.replace_targets(targets);
        worker
    }

    /// Makes `targets` the configured ones. Targets no longer configured keep their slot for
    /// the entries still owed to them; a target configured again (same name and location) gets
    /// a fresh start (a permanent failure is retried after a reload).
    fn replace_targets(&mut self, targets: Vec<Target>) {
        for slot in &mut self.targets {
            slot.configured = false;
        }
        for target in targets {
            let owed = target.owed();
            let state =
                TargetState { backoff: Backoff::new(&self.cfg), retry_at: None, permanent: None, last_error: None };
            match self.targets.iter_mut().find(|s| s.owed == owed) {
                Some(slot) => {
                    slot.target = Arc::new(target);
                    slot.configured = true;
                    slot.state = state;
                }
                None => self.targets.push(TargetSlot { target: Arc::new(target), owed, configured: true, state }),
            }
        }
        self.need_load = true;
        self.look_at_all();
    }

    /// Makes every queued entry a candidate again.
    fn look_at_all(&mut self) {
        self.candidates = self.index.keys().copied().collect();
    }

    /// The targets entry `q` is owed to, by name, with the slot that ships to it (`None`: no
    /// target with that name and location is known).
    fn owed_slots(&self, q: &Queued) -> Vec<(String, Option<usize>)> {
        if q.owed.is_empty() {
            return (0..self.targets.len())
                .filter(|&i| self.targets[i].configured)
                .map(|i| (self.targets[i].owed.name.clone(), Some(i)))
                .collect();
        }
        q.owed.iter().map(|o| (o.name.clone(), self.targets.iter().position(|s| &s.owed == o))).collect()
    }

    /// Runs until stopped or drained; returns the report.
    pub(super) async fn run(mut self) -> ShipReport {
        loop {
            if self.spool.faults().crashed() {
                break;
            }
            let reloaded = self.shared.new_targets().take();
            if let Some(targets) = reloaded {
                self.replace_targets(targets);
            }
            let mode = *self.shared.mode();
            let now = Instant::now();
            let deadline = match mode {
                Mode::Run => None,
                Mode::Stop => break,
                Mode::Drain { deadline } => {
                    if deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                    if !self.draining {
                        self.draining = true;
                        self.need_load = true;
                    }
                    deadline
                }
            };
            if self.shared.new_entries.swap(false, Ordering::AcqRel) {
                self.notified = true;
            }
            self.take_entered();
            if self.need_load || now >= self.next_load || (self.notified && now >= self.notified_load_at(now)) {
                self.load().await;
            }
            if now >= self.next_housekeeping {
                self.housekeeping().await;
            }
            let now = Instant::now();
            self.schedule(now);
            self.publish_stats();
            self.warn_age(now);
            if self.draining && !self.notified && self.tasks.is_empty() && !self.work_remains() {
                break;
            }

            let wake_at = self.next_wake(now, deadline);
            let event = tokio::select! {
                () = self.shared.wake.notified() => Event::Wake,
                () = self.freed.notified() => Event::Wake,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    Event::Done(done)
                }
                () = tokio::time::sleep_until(wake_at.into()) => Event::Timer,
            };
            match event {
                Event::Wake | Event::Timer => {}
                Event::Done(done) => self.finish(done),
            }
        }
        self.tasks.shutdown().await;
        if matches!(*self.shared.mode(), Mode::Stop) || self.spool.faults().crashed() {
            // A pruning cut short is finished by the next one (its log entry comes first).
            self.prunes.shutdown().await;
        }
        while self.prunes.join_next().await.is_some() {}
        if !self.spool.faults().crashed() {
            self.load().await;
        }
        self.last_target_queue = None;
        self.publish_stats();
        self.report()
    }

    /// When a notified listing of the queue may run.
    fn notified_load_at(&self, now: Instant) -> Instant {
        self.last_load.map_or(now, |t| t + NOTIFIED_LOAD_INTERVAL)
    }

    /// Adds the entries this process entered since the last look (their ids, given by
    /// [`super::Notifier::entered`]), from the spool's index: no listing of the queue, no
    /// wait for the next one (a recording entered last ships at once, not up to 50 ms later).
    fn take_entered(&mut self) {
        for id in self.shared.take_entered() {
            if self.index.contains_key(&id) || self.unreadable.contains_key(&id) {
                continue;
            }
            // None: already shipped and completed (a listing found it first).
            if let Some(entry) = self.spool.known_entry(id) {
                self.add(id, &entry);
            }
        }
    }

    /// Indexes queue entry `id` as a candidate for shipping.
    fn add(&mut self, id: EntryId, entry: &Entry) {
        self.report_unconfigured(entry);
        self.index.insert(id, self.queued(entry));
        self.candidates.insert(id);
    }

    /// Adds queue entries not yet in the index.
    async fn load(&mut self) {
        self.need_load = false;
        self.notified = false;
        self.last_load = Some(Instant::now());
        self.next_load = Instant::now() + LOAD_INTERVAL;
        let spool = Arc::clone(&self.spool);
        let ids = match blocking(move || spool.queued_ids()).await {
            Ok(ids) => ids,
            Err(e) => return self.load_failed(e),
        };
        let on_disk: HashSet<EntryId> = ids.iter().copied().collect();
        // Entries removed by hand disappear from the index (in-flight ones are kept: their
        // task reports them).
        self.index.retain(|id, q| q.in_flight || on_disk.contains(id));
        self.unreadable.retain(|id, _| on_disk.contains(id));
        // Every listing looks at every entry again: what may have been missed is found here.
        self.look_at_all();
        let new: Vec<EntryId> =
            ids.into_iter().filter(|id| !self.index.contains_key(id) && !self.unreadable.contains_key(id)).collect();
        if new.is_empty() {
            self.load_error = None;
            return;
        }
        // Read in chunks so that a large backlog never sits in memory in full: the index keeps
        // only keys and confirmations.
        for chunk in new.chunks(LOAD_CHUNK) {
            let (spool, chunk) = (Arc::clone(&self.spool), chunk.to_vec());
            let read = blocking(move || Ok(chunk.into_iter().map(|id| (id, spool.entry(id))).collect()));
            let entries: Vec<(EntryId, Result<Entry, SpoolError>)> = match read.await {
                Ok(entries) => entries,
                Err(e) => return self.load_failed(e),
            };
            for (id, entry) in entries {
                match entry {
                    Ok(entry) => self.add(id, &entry),
                    Err(SpoolError::NotFound { .. }) => {}
                    Err(e) => {
                        let text = crate::chain(&e);
                        tracing::error!(error = %text, "cannot read a queue entry; skipping it");
                        self.stats.last_error = Some(text.clone());
                        self.unreadable.insert(id, text);
                    }
                }
            }
        }
        self.load_error = None;
    }

    /// Starts the pruning of every configured directory archive with a retention (at most once
    /// per [`PRUNE_INTERVAL`], each in a task of its own: the loop never waits for it).
    fn prune_archives(&mut self) {
        let now = Instant::now();
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_INTERVAL;
        for slot in self.targets.iter().filter(|s| s.configured) {
            let Target::LocalDir(dir) = &*slot.target else { continue };
            let Some(days) = dir.retention_days() else { continue };
            if !dir.start_pruning() {
                continue;
            }
            let target = Arc::clone(&slot.target);
            let dir = dir.clone();
            self.prunes.spawn(async move {
                let today = chrono::Utc::now().date_naive();
                let who = crate::target::retention::Who::this_process();
                match crate::target::retention::prune(&target, days, today, &who, false).await {
                    Ok(p) if p.recordings.is_empty() => {}
                    Ok(p) => tracing::info!(target_name = %target.name(), recordings = p.recordings.len(),
                        objects = p.objects, held = p.held.len(), entry = ?p.entry,
                        "pruned recordings older than the archive's retention_days"),
                    Err(e) => tracing::error!(target_name = %target.name(), error = %crate::chain(&e),
                        "cannot prune the archive; expired recordings are kept"),
                }
                dir.end_pruning();
            });
        }
    }

    /// Checks the spool's disk and runs the retention sweep.
    async fn housekeeping(&mut self) {
        self.next_housekeeping = Instant::now() + HOUSEKEEPING_INTERVAL;
        self.prune_archives();
        let spool = Arc::clone(&self.spool);
        let result = blocking(move || {
            let swept = spool.sweep();
            Ok((swept, spool.disk_usage()))
        })
        .await;
        let Ok((swept, usage)) = result else { return };
        match swept {
            Ok(report) => self.stats.retention_deleted_files += report.files_deleted,
            Err(e) => tracing::warn!(error = %crate::chain(&e), "the retention sweep failed; will retry"),
        }
        match usage {
            Ok(usage) => {
                self.stats.disk_used_percent = Some(usage.used_percent.round().clamp(0.0, 100.0) as u8);
                self.stats.disk_pressure = usage.above_high_watermark;
                if usage.above_high_watermark {
                    tracing::error!(used_percent = format!("{:.1}", usage.used_percent),
                        available_bytes = usage.available_bytes, spool = %self.spool.root().display(),
                        queued = self.index.len(),
                        "the spool's disk is above its high watermark; unshipped recordings are kept, \
                         recording continues while space lasts — free space or fix shipping");
                }
            }
            Err(e) => tracing::warn!(error = %crate::chain(&e), "cannot check the spool's disk"),
        }
    }

    /// Logs once per target when an entry is owed to a target this shipper does not have.
    fn report_unconfigured(&mut self, entry: &Entry) {
        for owed in &entry.targets {
            if entry.shipped.contains_key(&owed.name) || self.targets.iter().any(|s| &s.owed == owed) {
                continue;
            }
            if self.reported_unconfigured.insert(owed.clone()) {
                tracing::error!(target_name = %owed.name, location = %owed.location, key = %entry.key,
                    "queued recordings are owed to a target that is not configured; they stay queued until \
                     it is configured again, or until `callvault ship --retarget` sends them elsewhere");
            }
        }
    }

    fn load_failed(&mut self, e: SpoolError) {
        let text = crate::chain(&e);
        tracing::warn!(error = %text, "cannot read the spool queue; will retry");
        self.stats.last_error = Some(text.clone());
        self.load_error = Some(text);
        self.next_load = Instant::now() + self.cfg.retry_initial.max(Duration::from_secs(1));
    }

    fn queued(&self, entry: &Entry) -> Queued {
        Queued {
            key: entry.key.clone(),
            entered: chrono::DateTime::parse_from_rfc3339(&entry.entered_at).ok().map(SystemTime::from),
            bytes: entry.size(),
            owed: entry.targets.clone(),
            shipped: entry.shipped.keys().cloned().collect(),
            in_flight: false,
            backoff: Backoff::new(&self.cfg),
            retry_at: None,
            last_error: None,
            failed_in_drain: false,
        }
    }

    /// Starts tasks for the oldest entries that have work, while a slot is free (and fewer than
    /// `concurrency + MAX_WAITING` tasks run).
    fn schedule(&mut self, now: Instant) {
        if self.slots.available_permits() == 0 {
            return;
        }
        let mut starts = Vec::new();
        let mut starting_keys = HashSet::new();
        // Which target slots may be shipped to now: an entry none of whose unconfirmed targets
        // is due (an archive in backoff, unreachable) is passed over without a look at more.
        let due: Vec<bool> = self
            .targets
            .iter()
            .map(|t| t.state.permanent.is_none() && t.state.retry_at.is_none_or(|at| at <= now))
            .collect();
        if due != self.last_due {
            self.last_due.clone_from(&due);
            self.look_at_all();
        }
        let (index, candidates) = (&self.index, &mut self.candidates);
        self.retrying.retain(|id| match index.get(id).and_then(|q| q.retry_at) {
            Some(t) if t > now => true,
            Some(_) => {
                candidates.insert(*id);
                false
            }
            None => false,
        });
        // Candidates with nothing to do now leave the set; what brings each back is named.
        let mut leave = Vec::new();
        for &id in &self.candidates {
            if self.tasks.len() + starts.len() >= self.cfg.concurrency + MAX_WAITING {
                break;
            }
            let Some(q) = self.index.get(&id) else {
                leave.push(id);
                continue;
            };
            // Back when its shipment ends (`finish`).
            if q.in_flight {
                leave.push(id);
                continue;
            }
            // Back when its retry time comes (`retrying`); a drain starts with a listing.
            let entry_ready = if self.draining { !q.failed_in_drain } else { q.retry_at.is_none_or(|t| t <= now) };
            if !entry_ready {
                leave.push(id);
                continue;
            }
            // Back when the targets due change, or with the next listing.
            if !self.may_start(q, &due) {
                leave.push(id);
                continue;
            }
            // Stays: its twin's shipment ends.
            if self.in_flight_keys.contains(&q.key) {
                continue;
            }
            let owed = self.owed_slots(q);
            let todo: Vec<usize> = owed
                .iter()
                .filter_map(|(name, slot)| {
                    let i = (*slot)?;
                    let t = &self.targets[i].state;
                    let due =
                        !q.shipped.contains(name) && t.permanent.is_none() && t.retry_at.is_none_or(|at| at <= now);
                    due.then_some(i)
                })
                .collect();
            let all_confirmed = owed.iter().all(|(n, _)| q.shipped.contains(n));
            if todo.is_empty() && !all_confirmed {
                continue;
            }
            // Two entries with the same key never ship at once.
            if !starting_keys.insert(q.key.as_str()) {
                continue;
            }
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                break;
            };
            let slot = ShipSlot::new(Arc::clone(&self.slots), Arc::clone(&self.freed), permit);
            let names: Vec<String> = owed.into_iter().map(|(n, _)| n).collect();
            starts.push((id, todo, names, slot));
        }
        for id in leave {
            self.candidates.remove(&id);
        }
        for (id, todo, names, slot) in starts {
            let q = self.index.get_mut(&id).expect("scheduled entry is indexed");
            q.in_flight = true;
            self.in_flight_keys.insert(q.key.clone());
            let targets = todo.into_iter().map(|i| (i, Arc::clone(&self.targets[i].target))).collect();
            let task = ship_entry(Arc::clone(&self.spool), targets, names, id, slot);
            let handle = self.tasks.spawn(task);
            self.task_ids.insert(handle.id(), id);
        }
    }

    /// Whether entry `q` has work now: a target it still waits for whose slot is `due`, or a
    /// confirmation from every target (left to complete). What [`Worker::schedule`] asks of
    /// every queued entry, so without allocating (with a backlog of 100,000 entries and the
    /// archive unreachable, the loop ran this for all of them at every event).
    fn may_start(&self, q: &Queued, due: &[bool]) -> bool {
        let (mut all_confirmed, mut any_due) = (true, false);
        let mut look = |name: &str, slot: Option<usize>| {
            if !q.shipped.contains(name) {
                all_confirmed = false;
                any_due |= slot.is_some_and(|i| due[i]);
            }
        };
        if q.owed.is_empty() {
            for (i, slot) in self.targets.iter().enumerate().filter(|(_, s)| s.configured) {
                look(&slot.owed.name, Some(i));
            }
        } else {
            for o in &q.owed {
                look(&o.name, self.targets.iter().position(|s| &s.owed == o));
            }
        }
        any_due || all_confirmed
    }

    /// Applies a finished task's outcome.
    fn finish(&mut self, done: Result<(Id, Outcome), JoinError>) {
        let outcome = match done {
            Ok((task, outcome)) => {
                self.task_ids.remove(&task);
                outcome
            }
            Err(e) => {
                let Some(id) = self.task_ids.remove(&e.id()) else {
                    return;
                };
                Outcome { id, gone: false, results: Vec::new(), completed: Err(ShipError::Internal(e.to_string())) }
            }
        };
        let id = outcome.id;
        let Some(mut q) = self.index.remove(&id) else {
            return;
        };
        q.in_flight = false;
        self.in_flight_keys.remove(&q.key);
        if outcome.gone {
            tracing::warn!(key = %q.key, entry = %id, "a queue entry disappeared while shipping");
            return;
        }
        let now = Instant::now();
        for (i, result, took) in outcome.results {
            let name = self.targets[i].owed.name.clone();
            match result {
                Ok(shipment) => {
                    let counts = self.stats.targets.entry(name.clone()).or_default();
                    if let Some(s) = &shipment {
                        counts.shipped_recordings += 1;
                        if s.diverted.is_some() {
                            counts.diverted += 1;
                        }
                        counts.shipped_bytes += s.bytes_copied;
                        counts.latency.observe(took);
                    }
                    let state = &mut self.targets[i].state;
                    state.backoff.reset();
                    state.retry_at = None;
                    state.last_error = None;
                    if let Some(s) = shipment {
                        self.stats.shipped_bytes += s.bytes_copied;
                        if s.already_shipped() {
                            self.stats.already_shipped += 1;
                        }
                        if let Some(damaged) = &s.diverted {
                            self.stats.diverted += 1;
                            if self.stats.diverted_files.len() < super::DIVERTED_KEPT {
                                self.stats.diverted_files.push(damaged.clone());
                            }
                        }
                        tracing::debug!(target_name = %name, key = %q.key, location = %s.location,
                            bytes = s.bytes_copied, already_shipped = s.already_shipped(), "shipped");
                    }
                    q.shipped.insert(name);
                }
                Err(e) => self.failed(Some(i), &mut q, &e, now),
            }
        }
        match outcome.completed {
            Ok(true) => {
                self.stats.shipped_recordings += 1;
                return;
            }
            Ok(false) => {}
            Err(ShipError::Spool(SpoolError::NotFound { .. })) => {
                tracing::warn!(key = %q.key, entry = %id, "a queue entry disappeared while shipping");
                return;
            }
            Err(e) => self.failed(None, &mut q, &e, now),
        }
        if q.retry_at.is_some() {
            self.retrying.insert(id);
        }
        self.candidates.insert(id);
        self.index.insert(id, q);
    }

    /// Records a failure of target `target` (or of the entry itself, `None`) on entry `q`.
    fn failed(&mut self, target: Option<usize>, q: &mut Queued, e: &ShipError, now: Instant) {
        let text = crate::chain(e);
        self.stats.last_error = Some(text.clone());
        let disposition = match (target, e.disposition()) {
            (None, Disposition::RetryTarget) => Disposition::RetryEntry,
            (_, d) => d,
        };
        match (disposition, target) {
            (Disposition::RetryTarget, Some(i)) => {
                self.stats.failures_retryable += 1;
                let name = self.targets[i].owed.name.clone();
                *self.stats.targets.entry(name).or_default().retries.entry(e.kind()).or_default() += 1;
                let slot = &mut self.targets[i];
                let state = &mut slot.state;
                // Failures of attempts started before the current backoff do not extend it.
                if state.retry_at.is_none_or(|at| at <= now) {
                    let delay = state.backoff.next_delay();
                    state.retry_at = Some(now + delay);
                    tracing::warn!(target_name = %slot.owed.name, key = %q.key, error = %text,
                        retry_in_ms = delay.as_millis() as u64, "shipping failed; will retry");
                }
                state.last_error = Some(text);
            }
            (Disposition::Permanent, Some(i)) => {
                self.stats.failures_permanent += 1;
                let name = self.targets[i].owed.name.clone();
                *self.stats.targets.entry(name).or_default().permanent_errors.entry(e.kind()).or_default() += 1;
                let slot = &mut self.targets[i];
                let state = &mut slot.state;
                if state.permanent.is_none() {
                    tracing::error!(target_name = %slot.owed.name, error = %text,
                        "target disabled until restart; every recording stays queued");
                    state.permanent = Some(text);
                }
            }
            _ => {
                self.stats.failures_retryable += 1;
                let delay = q.backoff.next_delay();
                q.retry_at = Some(now + delay);
                q.failed_in_drain |= self.draining;
                if matches!(e, ShipError::SourceMismatch { .. }) {
                    tracing::error!(key = %q.key, error = %text, "recording cannot be shipped");
                } else {
                    tracing::warn!(key = %q.key, error = %text,
                        retry_in_ms = delay.as_millis() as u64, "shipping failed; will retry");
                }
                q.last_error = Some(text);
            }
        }
    }

    /// While draining: whether any queued entry can still make progress.
    fn work_remains(&self) -> bool {
        self.index.values().any(|q| {
            let owed = self.owed_slots(q);
            let all_confirmed = owed.iter().all(|(n, _)| q.shipped.contains(n));
            let target_usable = owed.iter().any(|(n, slot)| {
                !q.shipped.contains(n) && slot.is_some_and(|i| self.targets[i].state.permanent.is_none())
            });
            !q.failed_in_drain && (all_confirmed || target_usable)
        })
    }

    /// When the loop must wake up even without events.
    fn next_wake(&self, now: Instant, deadline: Option<Instant>) -> Instant {
        let mut wake = self.next_load.min(self.next_housekeeping);
        if self.notified {
            wake = wake.min(self.notified_load_at(now));
        }
        if !self.index.is_empty() {
            wake = wake.min(now + AGE_WARNING);
        }
        let later = |t: &Option<Instant>| t.filter(|&t| t > now);
        for slot in &self.targets {
            if let Some(t) = later(&slot.state.retry_at) {
                wake = wake.min(t);
            }
        }
        if !self.draining {
            for q in self.retrying.iter().filter_map(|id| self.index.get(id)) {
                if let Some(t) = later(&q.retry_at) {
                    wake = wake.min(t);
                }
            }
        }
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        wake.max(now)
    }

    /// The oldest entry: the first by sequence number with a time (numbers are taken in the
    /// order of the entry times, under the spool's lock; a clock set back can only make this
    /// one a little younger than the oldest). Looked at on every turn of the loop: never a
    /// walk of the whole queue.
    fn oldest(&self) -> Option<(&Queued, SystemTime)> {
        self.index.values().find_map(|q| q.entered.map(|t| (q, t)))
    }

    fn publish_stats(&mut self) {
        self.stats.queued = self.index.len() as u64;
        if self.last_target_queue.is_none_or(|t| t.elapsed() >= TARGET_QUEUE_EVERY) {
            self.last_target_queue = Some(Instant::now());
            self.count_owed();
        }
        let oldest = self.oldest().map(|(_, t)| t);
        *self.shared.stats() = (self.stats.clone(), oldest);
    }

    /// Recomputes what each target still owes: queued recordings, bytes, the oldest.
    fn count_owed(&mut self) {
        for t in self.stats.targets.values_mut() {
            (t.queued, t.queued_bytes, t.oldest_unshipped) = (0, 0, None);
        }
        for slot in &self.targets {
            self.stats.targets.entry(slot.owed.name.clone()).or_default();
        }
        for q in self.index.values() {
            for (name, _) in self.owed_slots(q) {
                if q.shipped.contains(&name) {
                    continue;
                }
                let t = self.stats.targets.entry(name).or_default();
                t.queued += 1;
                t.queued_bytes += q.bytes;
                if let Some(entered) = q.entered {
                    t.oldest_unshipped = Some(t.oldest_unshipped.map_or(entered, |o| o.min(entered)));
                }
            }
        }
    }

    fn warn_age(&mut self, now: Instant) {
        if self.last_age_warning.is_some_and(|t| now.duration_since(t) < AGE_WARNING) {
            return;
        }
        let Some((q, entered)) = self.oldest() else {
            return;
        };
        let age = SystemTime::now().duration_since(entered).unwrap_or_default();
        if age > AGE_WARNING {
            tracing::warn!(age_secs = age.as_secs(), key = %q.key, queued = self.index.len(),
                "the oldest recording is still not shipped");
            self.last_age_warning = Some(now);
        }
    }

    fn report(&self) -> ShipReport {
        let left_queued = self
            .index
            .iter()
            .map(|(&id, q)| LeftQueued {
                id,
                key: q.key.clone(),
                waiting_for: self
                    .owed_slots(q)
                    .into_iter()
                    .filter(|(n, _)| !q.shipped.contains(n))
                    .map(|(n, slot)| if slot.is_some() { n } else { format!("{n} (not configured)") })
                    .collect(),
                last_error: q.last_error.clone(),
            })
            .collect();
        let mut errors: Vec<String> = self
            .targets
            .iter()
            .filter_map(|slot| {
                let text = slot.state.permanent.as_ref().or(slot.state.last_error.as_ref())?;
                // Target errors name their target already.
                let name = format!("{:?}", slot.owed.name);
                Some(if text.contains(&name) { text.clone() } else { format!("target {name}: {text}") })
            })
            .collect();
        for owed in &self.reported_unconfigured {
            let n = self.index.values().filter(|q| q.owed.contains(owed) && !q.shipped.contains(&owed.name)).count();
            if n > 0 {
                errors.push(format!(
                    "{n} recording(s) are owed to target {owed}, which is not configured; configure it again, \
                     or send them to the configured targets with `callvault ship --retarget`"
                ));
            }
        }
        errors.extend(self.load_error.clone());
        errors.extend(self.unreadable.values().cloned());
        ShipReport { stats: self.shared.snapshot(), left_queued, errors }
    }
}

/// Ships entry `id` to `targets`, records each confirmation, and completes the entry when every
/// target in `names` has confirmed it. Holds `slot` while it moves data (a target may give it
/// back while it waits; it is taken again before the next target).
async fn ship_entry(
    spool: Arc<Spool>,
    targets: Vec<(usize, Arc<Target>)>,
    names: Vec<String>,
    id: EntryId,
    slot: ShipSlot,
) -> Outcome {
    let mut outcome = Outcome { id, gone: false, results: Vec::new(), completed: Ok(false) };
    // From memory; the disk (on the blocking pool) only for an entry the index lacks.
    let reader = Arc::clone(&spool);
    let read = match spool.known_entry(id) {
        Some(entry) => Ok(entry),
        None => blocking(move || reader.entry(id)).await,
    };
    let entry = match read {
        Ok(entry) => entry,
        Err(SpoolError::NotFound { .. }) => {
            outcome.gone = true;
            return outcome;
        }
        Err(e) => {
            outcome.completed = Err(e.into());
            return outcome;
        }
    };
    let mut confirmed: HashSet<String> = entry.shipped.keys().cloned().collect();
    // The confirmation the entry waits for last is not written into it: completing the entry
    // records it (one entry rewrite, with its fsync, fewer per recording).
    let mut unrecorded: Option<(usize, String, String)> = None;
    for (i, target) in targets {
        let name = target.name().to_owned();
        if confirmed.contains(&name) {
            outcome.results.push((i, Ok(None), Duration::ZERO));
            continue;
        }
        let last = names.iter().all(|n| *n == name || confirmed.contains(n));
        slot.acquire().await;
        let started = Instant::now();
        let result = ship_one(&spool, &target, &entry, &slot, !last).await;
        if let Ok(shipment) = &result {
            if last {
                unrecorded = Some((outcome.results.len(), name.clone(), shipment.location.clone()));
            }
            confirmed.insert(name);
        }
        outcome.results.push((i, result.map(Some), started.elapsed()));
    }
    if names.iter().all(|n| confirmed.contains(n)) {
        let completer = Arc::clone(&spool);
        let last = unrecorded.as_ref().map(|(_, name, _)| name.clone());
        outcome.completed = blocking(move || {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            completer.complete_confirming(id, &names, last.as_deref())
        })
        .await
        .map_err(ShipError::from);
        if let Some((at, name, location)) = unrecorded {
            let crash = |e| ShipError::from(SpoolError::io("record shipment", spool.root(), e));
            match &outcome.completed {
                Ok(true) => {
                    if let Err(e) = spool.faults().hit(CrashPoint::ShipAfterMark).map_err(crash) {
                        outcome.completed = Err(e);
                    }
                }
                // Not completed: the confirmation is recorded after all, or, if that fails too,
                // the target is shipped to again (it finds the recording there).
                _ => {
                    let writer = Arc::clone(&spool);
                    if let Err(e) = blocking(move || writer.mark_shipped(id, &name, &location)).await {
                        outcome.results[at].1 = Err(e.into());
                    }
                }
            }
        }
    }
    outcome
}

/// Ships `entry` to one target and, if `record`, records the confirmation in the spool.
async fn ship_one(
    spool: &Arc<Spool>,
    target: &Target,
    entry: &Entry,
    slot: &ShipSlot,
    record: bool,
) -> Result<Shipment, ShipError> {
    let shipment = target.ship_in(spool, entry, slot).await?;
    let crash = |e| ShipError::from(SpoolError::io("record shipment", spool.root(), e));
    spool.faults().hit(CrashPoint::ShipAfterPublish).map_err(crash)?;
    if record {
        let (writer, id) = (Arc::clone(spool), entry.id);
        let (name, location) = (target.name().to_owned(), shipment.location.clone());
        blocking(move || writer.mark_shipped(id, &name, &location)).await?;
        spool.faults().hit(CrashPoint::ShipAfterMark).map_err(crash)?;
    }
    Ok(shipment)
}

/// Runs a blocking spool operation on the blocking thread pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(SpoolError::io("run a spool task", "", std::io::Error::other(e.to_string()))),
    }
}
