//! The running pipeline: capture (on the caller's thread) -> batches -> mixer threads ->
//! finisher threads -> spool -> shipper. Data flows one way; each stage owns its state and
//! hands the next stage finished work over a bounded channel (the mixers through the
//! [`Drain`] this module gives them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use capture::events::EventSink;
use crossbeam_channel::{Receiver, Sender, bounded};
use mixer::mix::audio::AudioConfig;
use mixer::mix::pause::PauseCodes;
use mixer::mix::timeline::TimelineConfig;
use mixer::{Drain, LiveCall, Mixer, MixerConfig, MixerStats, PendingRecording};
use shipper::{EntryId, NewFile, NewRecording, ShipReport, Shipper, ShipperConfig, ShipperHandle, Spool};

use crate::batch::{Backpressure, Batch, BatchSink, Grouping, Lane};
use crate::config::{AudioFormat, AudioLayout, Config};
use crate::index::writer::{IndexWriter, ToIndex, WriterStats};
use crate::index::{Index, IndexedCall, Opened};
use crate::metrics::Metrics;

/// Batches in flight between capture and each mixer: room for a mixer that is behind to take
/// [`crate::batch::GROUP_BATCHES`] at once and the capture to go on filling the next ones.
const BATCH_QUEUE: usize = 96;
/// Finished calls waiting for a finisher.
const FINISH_QUEUE: usize = 4096;

/// How the pipeline is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory: work files, spool, local recordings.
    pub output: PathBuf,
    /// Archive targets, storage and shipping settings (the configuration in effect).
    pub config: Config,
    /// Mixer ring sizing.
    pub timeline: TimelineConfig,
    /// DTMF codes that pause and resume recording.
    pub pause: Option<PauseCodes>,
    /// Recording format and layout.
    pub audio: mixer::mix::audio::AudioConfig,
    /// Finisher threads (fsync + hash + record).
    pub finishers: usize,
    /// Mixer threads (calls are spread over them).
    pub mixers: usize,
    /// What capture does when the mixer falls behind.
    pub backpressure: Backpressure,
    /// How long a mixer with many calls waits for more batches to take them together
    /// ([`Grouping::lingering`]): live capture only, where batches come at the wire's pace.
    pub linger: Option<Duration>,
    /// Prefix of this run's work files (see [`run_id`]).
    pub run_id: String,
}

/// A run id: the start time and the process id, unique per run so that the work files of an
/// earlier run (left by a crash) are never reused. Read once, by the wiring: the mixer is
/// handed it and never reads the clock.
pub fn run_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{secs}-{}", std::process::id())
}

/// The calls in progress, as each mixer last published them ([`mixer::Mixer::live`]), and
/// the way to pause and resume their recording ([`LiveBoard::ask_pause`]).
#[derive(Debug)]
pub struct LiveBoard {
    lanes: std::sync::Mutex<Vec<Vec<LiveCall>>>,
    /// One queue per mixer for pause and resume requests.
    controls: Vec<Sender<PauseRequest>>,
}

/// A pause or resume of a call's recording asked through the API, for the mixer that has it.
#[derive(Debug)]
struct PauseRequest {
    call_id: String,
    pause: bool,
    trigger: String,
    time: capture::Timestamp,
    reply: Sender<Option<mixer::PauseAnswer>>,
}

/// Why a pause or resume request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    /// No mixer has a call in progress with that Call-ID.
    #[error("no call in progress has Call-ID {0:?}")]
    NoSuchCall(String),
    /// The mixers did not answer in time (stopping, or far behind).
    #[error("the mixers did not answer within {0:?}")]
    Timeout(Duration),
}

impl LiveBoard {
    /// How often each mixer republishes its calls.
    pub const EVERY: Duration = Duration::from_secs(1);

    /// How long a pause request waits for the mixers.
    pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

    fn new(controls: Vec<Sender<PauseRequest>>) -> LiveBoard {
        LiveBoard { lanes: std::sync::Mutex::new(vec![Vec::new(); controls.len()]), controls }
    }

    /// Pauses (`pause`) or resumes the recording of the call in progress with SIP Call-ID
    /// `call_id` from now (the wall clock, the time base of live capture), naming `trigger` in
    /// its record. Blocks until the mixer that has the call answers.
    pub fn ask_pause(&self, call_id: &str, pause: bool, trigger: &str) -> Result<mixer::PauseAnswer, PauseError> {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let time = capture::Timestamp::from_parts(since.as_secs() as i64, i64::from(since.subsec_nanos()));
        let (reply, answers) = bounded(self.controls.len());
        let mut asked = 0;
        for lane in &self.controls {
            let request =
                PauseRequest { call_id: call_id.into(), pause, trigger: trigger.into(), time, reply: reply.clone() };
            if lane.send_timeout(request, Self::ASK_TIMEOUT).is_ok() {
                asked += 1;
            }
        }
        drop(reply);
        let deadline = std::time::Instant::now() + Self::ASK_TIMEOUT;
        for _ in 0..asked {
            match answers.recv_deadline(deadline) {
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) => {}
                Err(_) => return Err(PauseError::Timeout(Self::ASK_TIMEOUT)),
            }
        }
        Err(PauseError::NoSuchCall(call_id.into()))
    }

    /// Replaces lane `lane`'s calls with `calls` (left empty, keeping its allocation).
    fn publish(&self, lane: usize, calls: &mut Vec<LiveCall>) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = lanes.get_mut(lane) {
            std::mem::swap(slot, calls);
        }
        calls.clear();
    }

    /// Every call in progress, oldest first.
    pub fn calls(&self) -> Vec<LiveCall> {
        let mut all: Vec<LiveCall> =
            self.lanes.lock().unwrap_or_else(|e| e.into_inner()).iter().flatten().cloned().collect();
        all.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.call_id.cmp(&b.call_id)));
        all
    }
}

/// The mixers' drain: ended calls go onto the finishers' queue.
#[derive(Debug)]
struct ToFinishers(Sender<PendingRecording>);

impl Drain for ToFinishers {
    fn finished(&mut self, recording: PendingRecording) {
        // The finishers outlive the mixers; if they are gone the program is shutting down
        // after an error that has already been reported.
        let _ = self.0.send(recording);
    }
}

/// What the finisher threads did.
#[derive(Debug, Default, Clone)]
pub struct FinishStats {
    /// Recordings entered into the spool.
    pub entered: u64,
    /// Of those, with audio.
    pub with_audio: u64,
    /// Audio bytes entered.
    pub audio_bytes: u64,
    /// Recordings that could not be finished or entered (files kept in the work directory).
    pub failed: u64,
    /// Keys of the first [`KEYS_KEPT`] recordings entered (the summary lists a few); a live
    /// run keeps no per-recording state for months.
    pub keys: Vec<String>,
    /// Recordings per call state, for the summary.
    pub states: BTreeMap<String, u64>,
}

/// Recording keys [`FinishStats`] keeps for the summary.
pub const KEYS_KEPT: usize = 12;

/// Everything the pipeline reports when it is done.
#[derive(Debug)]
pub struct Outcome {
    /// Mixer counters.
    pub mixer: MixerStats,
    /// Finisher counters.
    pub finish: FinishStats,
    /// Shipping report.
    pub ship: ShipReport,
    /// RTP dropped between capture and mixer (live capture only).
    pub dropped_rtp: u64,
    /// A pipeline thread failed (a bug): recordings in progress may be incomplete.
    pub internal_error: bool,
    /// The call index's writer (absent when the index could not be opened).
    pub index: Option<WriterStats>,
}

/// A started pipeline. Feed it through [`Pipeline::sink`], then call [`Pipeline::finish`].
pub struct Pipeline {
    sink: BatchSink,
    mixers: Vec<JoinHandle<MixerStats>>,
    finishers: Vec<JoinHandle<FinishStats>>,
    shipper: ShipperHandle,
    spool: Arc<Spool>,
    index: Option<IndexWriter>,
    hep: Option<crate::hep::Exporter>,
    live: Arc<LiveBoard>,
    metrics: Arc<Metrics>,
    /// The data directory (its audit logs enter the spool through the pipeline).
    data_dir: PathBuf,
    /// Calls the reserve finishers in for the last recordings.
    last_call: LastCall,
}

/// Calls every reserve finisher in once no more recordings can come (the mixers have ended):
/// what waits then is the run's last, the mixers' cores are free, and more finishers overlap
/// more of the fsyncs left (a shutdown of `run` drains sooner too). 1,000 calls × 60 s, 8
/// alternating pairs (4 in each order): from the mixers' end to the last recording entered
/// 0.51-0.71 s (mean 0.61) against 0.48-0.90 s (0.74); wall 0.19 s shorter on average. Eight
/// finishers all along shorten that tail more (0.33-0.49 s), but then take the mixers' CPU.
struct LastCall {
    help: Sender<()>,
    last: Arc<AtomicBool>,
    reserve: usize,
}

impl LastCall {
    fn call_in(self) {
        self.last.store(true, Ordering::Release);
        for _ in 0..self.reserve {
            let _ = self.help.try_send(());
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Options {
    /// The pipeline a configuration asks for.
    pub fn from_config(c: &Config, backpressure: Backpressure, run_id: String) -> Options {
        let r = &c.recording;
        let timeline = TimelineConfig { reorder_frames: r.reorder_ms.saturating_mul(8), ..TimelineConfig::default() };
        let mixers = match r.mixers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            n => n,
        };
        let audio = AudioConfig {
            format: match r.audio_format {
                AudioFormat::Wav => mixer::mix::audio::AudioFormat::Wav,
                AudioFormat::Flac => mixer::mix::audio::AudioFormat::Flac,
                AudioFormat::WavG711 => mixer::mix::audio::AudioFormat::WavG711,
            },
            layout: match r.audio_layout {
                AudioLayout::Stereo => mixer::mix::audio::AudioLayout::Stereo,
                AudioLayout::Mono => mixer::mix::audio::AudioLayout::Mono,
                AudioLayout::Split => mixer::mix::audio::AudioLayout::Split,
            },
            opus_48k: r.opus_rate == 48_000,
        };
        Options {
            output: c.storage.data_dir.clone(),
            config: c.clone(),
            timeline,
            pause: PauseCodes::parse(&r.pause_dtmf, &r.resume_dtmf).ok(),
            audio,
            finishers: r.finishers,
            mixers,
            backpressure,
            linger: (backpressure == Backpressure::DropMedia).then(|| linger_for(r.reorder_ms)),
            run_id,
        }
    }
}

/// A live mixer's linger for a reorder window of `reorder_ms`: half of it, 80 ms at most. A
/// pause asked through the API at a moment reaches the mixer at most that much later, by which
/// time the positions it has closed trail the newest packets by the other half: the moment is
/// still open and the pause starts exactly there.
fn linger_for(reorder_ms: u32) -> Duration {
    Duration::from_millis(u64::from(reorder_ms / 2).min(80))
}

/// Work directory under the data directory.
pub fn work_dir(output: &Path) -> PathBuf {
    output.join("work")
}

impl Pipeline {
    /// Creates the directories, opens the spool (taking ownership of it), starts the shipper,
    /// the finishers and the mixer. The mixers publish their counters on the metrics' board,
    /// and the finishers hand it every finished call's record.
    pub fn start(opts: &Options, metrics: Arc<Metrics>) -> anyhow::Result<Pipeline> {
        // The signing key and the archive targets first: one that cannot be used stops the
        // start before the data directory and the spool are created.
        let targets = crate::targets::build_targets(&opts.config)?;
        std::fs::create_dir_all(&opts.output).with_context(|| {
            let dir = opts.output.display();
            if opts.output.exists() && !opts.output.is_dir() {
                format!("data directory '{dir}' is not a directory; choose another path (--output, storage.data_dir)")
            } else {
                format!("cannot create data directory '{dir}'")
            }
        })?;
        let work = work_dir(&opts.output);
        let spool = Arc::new(Spool::open_with(&opts.output, crate::targets::spool_options(&opts.config.storage))?);
        crate::ship::report_unconfigured(&spool, &targets)?;
        let shipper_cfg =
            ShipperConfig { concurrency: opts.config.shipping.concurrency.max(1), ..ShipperConfig::default() };
        let shipper = Shipper::start(spool.clone(), targets, shipper_cfg)?;

        let mut mixer_cfg = MixerConfig::new(work.clone(), opts.run_id.clone());
        mixer_cfg.timeline = opts.timeline;
        mixer_cfg.pause = opts.pause.clone();
        mixer_cfg.pause_header = Some(opts.config.recording.pause_header.clone()).filter(|h| !h.is_empty());
        mixer_cfg.audio = opts.audio;
        mixer_cfg.min_free_bytes = opts.config.storage.min_free_mb << 20;
        let (pending_tx, pending_rx) = bounded::<PendingRecording>(FINISH_QUEUE);
        let (index, to_index) = match start_index(&opts.output, &opts.config) {
            Some((writer, to)) => (Some(writer), Some(to)),
            None => (None, None),
        };

        let hep = match opts.config.hep.collector {
            Some(_) => {
                crate::hep::Exporter::start(&opts.config.hep, opts.backpressure, metrics.board().hep_counters())?
            }
            None => None,
        };

        // As many again in reserve, which take recordings only while a backlog waits.
        let regular = opts.finishers.max(1);
        let (help_tx, help_rx) = bounded::<()>(regular);
        let last = Arc::new(AtomicBool::new(false));
        let finishers = (0..regular * 2)
            .map(|i| {
                let role = if i < regular {
                    Role::Regular { help: help_tx.clone() }
                } else {
                    Role::Reserve { help: help_rx.clone(), last: last.clone() }
                };
                let hep = hep.as_ref().map(crate::hep::Exporter::feed);
                let rx = pending_rx.clone();
                let spool = spool.clone();
                let notify = shipper.notifier();
                let work = work.clone();
                let to_index = to_index.clone();
                let metrics = metrics.clone();
                std::thread::Builder::new()
                    .name(format!("finish-{i}"))
                    .spawn(move || {
                        let queue = FinishQueue { rx, role };
                        finisher(queue, &spool, &work, to_index.as_ref(), hep.as_ref(), &metrics, |id| {
                            notify.entered(id)
                        })
                    })
                    .context("cannot start finisher thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        drop(pending_rx);
        let last_call = LastCall { help: help_tx, last, reserve: regular };

        let mut lanes = Vec::new();
        let mut mixers = Vec::new();
        let (controls, control_rxs): (Vec<_>, Vec<_>) = (0..opts.mixers.max(1)).map(|_| bounded(16)).unzip();
        let live = Arc::new(LiveBoard::new(controls));
        for (i, control_rx) in control_rxs.into_iter().enumerate() {
            let mut cfg = mixer_cfg.clone();
            cfg.run_id = format!("{}-m{i}", mixer_cfg.run_id);
            let mut mixer = Mixer::new(cfg, ToFinishers(pending_tx.clone()))
                .with_context(|| format!("cannot create work directory '{}'", work.display()))?;
            let (batch_tx, batch_rx) = bounded::<Batch>(BATCH_QUEUE);
            let (recycle_tx, recycle_rx) = bounded::<Batch>(BATCH_QUEUE + 2);
            lanes.push(Lane { tx: batch_tx, recycle: recycle_rx });
            let live = live.clone();
            let board = metrics.board().clone();
            let linger = opts.linger;
            let handle = std::thread::Builder::new()
                .name(format!("mixer-{i}"))
                .spawn(move || {
                    let mut published = std::time::Instant::now();
                    let mut view = Vec::new();
                    let mut grouping = linger.map_or_else(Grouping::new, Grouping::lingering);
                    loop {
                        crossbeam_channel::select! {
                            recv(batch_rx) -> batch => match batch {
                                Ok(batch) => {
                                    let calls = mixer.open_calls();
                                    grouping.take(batch, &batch_rx, calls, &mut mixer, &recycle_tx);
                                    board.publish_mixer(i, mixer.stats());
                                }
                                Err(_) => break,
                            },
                            recv(control_rx) -> request => {
                                if let Ok(r) = request {
                                    let _ = r.reply.send(mixer.ask_pause(&r.call_id, r.pause, r.trigger, r.time));
                                }
                            },
                            default(LiveBoard::EVERY) => {}
                        }
                        if published.elapsed() >= LiveBoard::EVERY {
                            published = std::time::Instant::now();
                            mixer.live(&mut view);
                            live.publish(i, &mut view);
                        }
                    }
                    live.publish(i, &mut Vec::new());
                    let abandoned = mixer.abandon_all();
                    if abandoned > 0 {
                        tracing::error!("{abandoned} calls were still open in the mixer at the end of input");
                    }
                    board.publish_mixer(i, mixer.stats());
                    mixer.stats().clone()
                })
                .context("cannot start mixer thread")?;
            mixers.push(handle);
        }
        // What an earlier run left in the work directory after a crash: finish and ship it.
        let found = mixer::finish::recover::scan(&work).with_context(|| format!("cannot scan '{}'", work.display()))?;
        let (n_fin, n_int) = (found.finished.len(), found.interrupted.len());
        for files in found.finished {
            let adopted = mixer::adopt(&files).map_err(anyhow::Error::from).and_then(|f| {
                let (rec, done) = to_spool(f, to_index.is_some());
                spool.enter(rec).map_err(anyhow::Error::from).map(|_| done)
            });
            match adopted {
                Ok(done) => {
                    if let (Some(to), Some(call)) = (&to_index, done.indexed) {
                        to.send(call);
                    }
                    metrics.recording_written(done.bytes, done.audio_bytes, true);
                    shipper.notify();
                }
                Err(e) => tracing::error!("cannot recover {}: {e:#}", files[files.len() - 1].display()),
            }
        }
        for p in found.interrupted {
            let _ = pending_tx.send(p);
        }
        for (path, why) in &found.failed {
            tracing::error!("cannot recover {}: {why}; the file is left in place", path.display());
        }
        if n_fin + n_int > 0 {
            tracing::warn!(
                "recovered {} recordings interrupted by a crash and {} finished but not yet spooled, from {}",
                n_int,
                n_fin,
                work.display()
            );
        }
        drop(pending_tx);
        drop(to_index);

        let mut sink = BatchSink::new(lanes, opts.backpressure);
        if let Some(exporter) = &hep {
            sink.export_sip(exporter.feed());
        }
        let pipeline = Pipeline {
            sink,
            mixers,
            finishers,
            shipper,
            spool,
            index,
            hep,
            live,
            metrics,
            data_dir: opts.output.clone(),
            last_call,
        };
        pipeline.collect_audit();
        Ok(pipeline)
    }

    /// Enters the data directory's sealed audit logs into the spool, to be shipped like
    /// recordings (see [`crate::audit`]).
    pub fn collect_audit(&self) {
        if crate::audit::collect(&self.data_dir, &self.spool) > 0 {
            self.shipper.notifier().notify();
        }
    }

    /// The calls in progress, republished by every mixer about once a second.
    pub fn live(&self) -> Arc<LiveBoard> {
        self.live.clone()
    }

    /// Applies a reloaded configuration's archive targets and retention; recordings entered from
    /// now on are owed to the new targets, queued ones keep theirs. On error nothing changes.
    pub fn reload(&self, config: &Config) -> anyhow::Result<()> {
        let targets = crate::targets::build_targets(config)?;
        self.shipper.set_targets(targets)?;
        self.spool.set_options(crate::targets::spool_options(&config.storage));
        Ok(())
    }

    /// The sink capture feeds.
    pub fn sink(&mut self) -> &mut BatchSink {
        &mut self.sink
    }

    /// Shipping statistics so far.
    pub fn ship_stats(&self) -> shipper::ShipStats {
        self.shipper.stats()
    }

    /// Flushes capture's last batch, waits for the mixer and finishers, then ships what is
    /// queued (giving up on retries after `ship_deadline`).
    pub fn finish(mut self, ship_deadline: Option<Duration>) -> Outcome {
        self.sink.flush();
        let dropped_rtp = self.sink.dropped_rtp;
        drop(self.sink);
        let mut internal_error = false;
        let mut mixer = MixerStats::default();
        for h in self.mixers {
            match h.join() {
                Ok(s) => mixer.add(&s),
                Err(_) => {
                    tracing::error!("a mixer thread failed; recordings in progress are left in the work directory");
                    internal_error = true;
                }
            }
        }
        // Every recording is in the finishers' queue now.
        self.last_call.call_in();
        let mut finish = FinishStats::default();
        for h in self.finishers {
            match h.join() {
                Ok(s) => {
                    finish.entered += s.entered;
                    finish.with_audio += s.with_audio;
                    finish.audio_bytes += s.audio_bytes;
                    finish.failed += s.failed;
                    finish.keys.extend(s.keys);
                    for (state, n) in s.states {
                        *finish.states.entry(state).or_default() += n;
                    }
                }
                Err(_) => {
                    tracing::error!("a finisher thread failed; unfinished recordings are left in the work directory");
                    internal_error = true;
                }
            }
        }
        finish.keys.sort();
        finish.keys.truncate(KEYS_KEPT);
        let index = self.index.map(IndexWriter::finish);
        if let Some(hep) = self.hep {
            hep.finish();
        }
        crate::audit::collect(&self.data_dir, &self.spool);
        let ship = self.shipper.drain(ship_deadline);
        self.metrics.board().publish_ship(ship.stats.clone());
        Outcome { mixer, finish, ship, dropped_rtp, internal_error, index }
    }
}

/// Recordings a finisher takes from its queue at once when they are waiting: finished (each
/// file fsynced on its own, the work directory once) and entered into the spool together (one
/// directory fsync per step for all of them).
const FINISH_BATCH: usize = 32;

/// Recordings waiting from which the reserve finishers are called in; each works until
/// fewer than half as many wait. At 20,000 calls × 10 s the finishers fall behind (their
/// queue fills), part of the two cores then idles while fsyncs wait on the disk, and the
/// reserve overlaps more of those waits: 24.9-28.3 s against 28.5-30.8 s without it (3
/// alternating pairs), peak RSS 483-486 MiB against 475-477. With 1,000 calls × 60 s the run
/// is CPU-bound, and more finishers only took the CPU the mixers would have had (`--finishers
/// 8`); the reserve never starts there (fewer recordings than this wait at once).
const RESERVE_FROM: usize = 1024;

/// Where a finisher takes its recordings from.
struct FinishQueue<T = PendingRecording> {
    rx: Receiver<T>,
    role: Role,
}

/// A finisher's part in its pool.
enum Role {
    /// Always at work; calls in the reserve (one token each, as many as there are reserve
    /// finishers at most) when it finds a backlog.
    Regular { help: Sender<()> },
    /// Waits to be called in (a backlog, or `last`: no more recordings can come); closed when
    /// every regular finisher has ended.
    Reserve { help: Receiver<()>, last: Arc<AtomicBool> },
}

impl<T> FinishQueue<T> {
    /// The next recording; `None` once the queue is closed and empty (for the reserve: once
    /// the regular finishers have ended, which is only then).
    fn next(&self) -> Option<T> {
        match &self.role {
            Role::Regular { help } => {
                let pending = self.rx.recv().ok()?;
                if self.rx.len() >= RESERVE_FROM {
                    let _ = help.try_send(());
                }
                Some(pending)
            }
            Role::Reserve { help, last } => loop {
                if (self.rx.len() >= RESERVE_FROM / 2 || last.load(Ordering::Acquire))
                    && let Ok(pending) = self.rx.try_recv()
                {
                    return Some(pending);
                }
                help.recv().ok()?;
            },
        }
    }
}

fn finisher(
    queue: FinishQueue,
    spool: &Spool,
    work: &Path,
    to_index: Option<&ToIndex>,
    hep: Option<&crate::hep::Feed>,
    metrics: &Metrics,
    notify: impl Fn(EntryId),
) -> FinishStats {
    let mut stats = FinishStats::default();
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    let gauges = metrics.board().finish_gauges();
    let busy = &gauges.busy[usize::from(matches!(queue.role, Role::Reserve { .. }))];
    while let Some(first) = queue.next() {
        // What is waiting besides: a backlog (calls ending together) is entered as a group.
        batch.push(first);
        while batch.len() < FINISH_BATCH
            && let Ok(next) = queue.rx.try_recv()
        {
            batch.push(next);
        }
        busy.fetch_add(1, Ordering::Relaxed);
        gauges.waiting.store(queue.rx.len(), Ordering::Relaxed);
        for pending in &batch {
            // The mixer built the record when the call ended; finishing adds only the files'
            // names and hashes.
            metrics.call(&pending.record);
            if let Some(hep) = hep
                && pending.record.end_reason != "recovered"
            {
                hep.call(&pending.record);
            }
        }
        let call_ids: Vec<String> = batch.iter().map(|p| p.record.call_id.clone()).collect();
        let mut finished = Vec::with_capacity(batch.len());
        for (result, call_id) in mixer::finish_group(std::mem::take(&mut batch), work).into_iter().zip(call_ids) {
            match result {
                Ok(f) => finished.push(f),
                Err(e) => {
                    stats.failed += 1;
                    metrics.recording_failed();
                    tracing::error!(%call_id, "recording not finished, its files stay in {}: {e}", work.display());
                }
            }
        }
        let (recordings, done): (Vec<NewRecording>, Vec<Done>) =
            finished.into_iter().map(|f| to_spool(f, to_index.is_some())).unzip();
        for (result, done) in spool.enter_all(recordings).into_iter().zip(done) {
            match result {
                Ok(id) => {
                    if let (Some(to), Some(call)) = (to_index, done.indexed) {
                        to.send(call);
                    }
                    stats.entered += 1;
                    if let Some(bytes) = done.audio_bytes {
                        stats.with_audio += 1;
                        stats.audio_bytes += bytes;
                    }
                    if stats.keys.len() < KEYS_KEPT {
                        stats.keys.push(done.key);
                    }
                    metrics.recording_written(done.bytes, done.audio_bytes, done.state == "recovered");
                    *stats.states.entry(done.state).or_default() += 1;
                    notify(id);
                }
                Err(e) => {
                    stats.failed += 1;
                    metrics.recording_failed();
                    tracing::error!(call_id = %done.call_id,
                        "recording not entered into the spool, its files stay in {}: {e}", work.display());
                }
            }
        }
        busy.fetch_sub(1, Ordering::Relaxed);
        gauges.waiting.store(queue.rx.len(), Ordering::Relaxed);
    }
    stats
}

/// What a finisher still needs of a finished recording once its files went to the spool.
struct Done {
    call_id: String,
    key: String,
    /// Every file's bytes, and the audio's (if it has audio).
    bytes: u64,
    audio_bytes: Option<u64>,
    /// The dialog state, or `recovered` (no known dialog state after a crash).
    state: String,
    indexed: Option<IndexedCall>,
}

/// A finished recording as the spool takes it, and what the finisher keeps of it (with its
/// index row if `index`).
fn to_spool(finished: mixer::Finished, index: bool) -> (NewRecording, Done) {
    // Audio is every file but the record and the evidence pcap (one computation for the
    // summary and the metrics).
    let (bytes, audio_bytes) = sizes(&finished);
    let state =
        if finished.record.end_reason == "recovered" { "recovered".into() } else { finished.record.state.clone() };
    let done = Done {
        call_id: finished.record.call_id.clone(),
        key: finished.key.clone(),
        bytes,
        audio_bytes,
        state,
        indexed: index.then(|| indexed(&finished)).flatten(),
    };
    let rec = NewRecording {
        key: finished.key,
        files: finished
            .files
            .into_iter()
            .map(|f| NewFile { source: f.path, ext: f.ext, sha256: f.sha256, size: f.size })
            .collect(),
        summary: finished.summary,
    };
    (rec, done)
}

/// Opens the call index in the data directory and starts its writer, which first indexes the
/// record files not indexed yet: those in the spool, and, when the index is new or was
/// replaced, those of every local archive too (the rebuild). Without an index the pipeline
/// still records (the failure is logged).
fn start_index(output: &Path, config: &Config) -> Option<(IndexWriter, ToIndex)> {
    let path = crate::index::path_in(output);
    let (index, opened) = match Index::open(&path) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("recording without a call index: {e}");
            return None;
        }
    };
    let spool_records = output.join("recordings");
    let mut catch_up = vec![spool_records.clone()];
    match &opened {
        Opened::Existing => {}
        Opened::Created => catch_up.extend(local_archives(config)),
        Opened::Replaced { reason, moved_to } => {
            tracing::warn!(
                "the call index was not usable ({reason}); it was moved to {} and is rebuilt from the record files",
                moved_to.display()
            );
            catch_up.extend(local_archives(config));
        }
    }
    match IndexWriter::start(index, catch_up, spool_records) {
        Ok(started) => Some(started),
        Err(e) => {
            tracing::error!("recording without a call index: cannot start its thread: {e}");
            None
        }
    }
}

/// The local archive directories of a configuration.
pub fn local_archives(config: &Config) -> Vec<PathBuf> {
    config.archives().into_iter().filter_map(|a| a.path).collect()
}

/// The index row of a finished recording (logged and skipped if its record is unusable).
fn indexed(finished: &mixer::Finished) -> Option<IndexedCall> {
    IndexedCall::from_record(&finished.key, &finished.record).map_err(|e| tracing::error!("not indexed: {e}")).ok()
}

/// A finished recording's size in bytes (every file) and its audio's (files other than the
/// record and the evidence pcap), if it has audio.
fn sizes(finished: &mixer::Finished) -> (u64, Option<u64>) {
    let bytes = finished.files.iter().map(|f| f.size).sum();
    let audio: Vec<u64> =
        finished.files.iter().filter(|f| f.ext != "json" && f.ext != "pcap").map(|f| f.size).collect();
    (bytes, (!audio.is_empty()).then(|| audio.iter().sum()))
}

/// Lets capture-side code hand the sink to the engine without naming the type.
pub fn as_sink(p: &mut Pipeline) -> &mut impl EventSink {
    p.sink()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue of numbers to finish, a regular finisher's and a reserve one's view of it (the
    /// reserve with `last`), and the sender that calls the reserve in.
    fn pool(last: Arc<AtomicBool>) -> (Sender<usize>, Sender<()>, FinishQueue<usize>, FinishQueue<usize>) {
        let (tx, rx) = bounded::<usize>(FINISH_QUEUE);
        let (help_tx, help_rx) = bounded::<()>(1);
        let regular = FinishQueue { rx: rx.clone(), role: Role::Regular { help: help_tx.clone() } };
        (tx, help_tx, regular, FinishQueue { rx, role: Role::Reserve { help: help_rx, last } })
    }

    /// What `queue` hands out, into `taken`, until it ends.
    fn take_all(queue: &FinishQueue<usize>, taken: &std::sync::Mutex<Vec<usize>>) {
        while let Some(n) = queue.next() {
            taken.lock().unwrap().push(n);
        }
    }

    /// A reserve finisher takes nothing until a regular one finds a backlog and calls it in;
    /// then it takes until fewer than half the backlog wait, waits to be called in again, and
    /// ends when the regular finishers have.
    #[test]
    fn the_reserve_finishers_work_only_through_a_backlog() {
        let (tx, _, regular, reserve) = pool(Arc::default());
        let taken = std::sync::Mutex::new(Vec::new());
        let settle = || std::thread::sleep(Duration::from_millis(50));
        std::thread::scope(|s| {
            s.spawn(|| take_all(&reserve, &taken));
            // A few waiting: the regular finisher takes them, nobody is called in.
            for n in 0..10 {
                tx.send(n).unwrap();
            }
            settle();
            for n in 0..10 {
                assert_eq!(regular.next(), Some(n));
            }
            settle();
            assert!(taken.lock().unwrap().is_empty(), "no backlog, no reserve");
            // A backlog: the regular finisher's next take calls the reserve in, which takes
            // until fewer than half of it wait.
            let backlog = RESERVE_FROM + 1;
            for n in 10..10 + backlog {
                tx.send(n).unwrap();
            }
            assert_eq!(regular.next(), Some(10));
            for _ in 0..1000 {
                if tx.len() < RESERVE_FROM / 2 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            settle();
            assert_eq!(tx.len(), RESERVE_FROM / 2 - 1, "the reserve left the rest");
            let by_reserve = taken.lock().unwrap().clone();
            assert_eq!(by_reserve, (11..11 + RESERVE_FROM / 2 + 1).collect::<Vec<_>>(), "oldest first");
            // The rest is the regular finisher's, and the reserve ends with it.
            drop(tx);
            let mut by_regular = 0;
            while regular.next().is_some() {
                by_regular += 1;
            }
            assert_eq!(by_regular, RESERVE_FROM / 2 - 1);
            drop(regular);
        });
        assert_eq!(taken.into_inner().unwrap().len(), RESERVE_FROM / 2 + 1, "nothing more after");
    }

    /// Once no more recordings can come, the reserve finishers are called in and take what
    /// waits, however little; then they end with the regular ones.
    #[test]
    fn the_last_call_brings_the_reserve_in_for_what_waits() {
        let last = Arc::new(AtomicBool::new(false));
        let (tx, help_tx, regular, reserve) = pool(last.clone());
        let taken = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| take_all(&reserve, &taken));
            for n in 0..10 {
                tx.send(n).unwrap();
            }
            drop(tx);
            std::thread::sleep(Duration::from_millis(50));
            assert!(taken.lock().unwrap().is_empty(), "10 waiting are no backlog");
            LastCall { help: help_tx, last, reserve: 1 }.call_in();
            for _ in 0..1000 {
                if taken.lock().unwrap().len() == 10 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(*taken.lock().unwrap(), (0..10).collect::<Vec<_>>(), "the reserve took them all");
            assert_eq!(regular.next(), None);
            drop(regular);
        });
    }

    /// Live capture lingers half the reorder window, 80 ms at most, none without a window;
    /// replay never lingers.
    #[test]
    fn live_mixers_linger_half_the_reorder_window() {
        for (reorder_ms, linger_ms) in [(160, 80), (100, 50), (500, 80), (1, 0), (0, 0)] {
            assert_eq!(linger_for(reorder_ms), Duration::from_millis(linger_ms), "{reorder_ms} ms");
        }
        let config = Config::default();
        let live = Options::from_config(&config, Backpressure::DropMedia, "r".into());
        assert_eq!(live.linger, Some(Duration::from_millis(80)));
        assert_eq!(Options::from_config(&config, Backpressure::Block, "r".into()).linger, None);
    }
}
