//! `callvault run`: live interfaces -> recordings -> archive, until SIGINT/SIGTERM; SIGHUP
//! reloads the configuration's targets, retention and log level.
//!
//! The capture loop never waits on the wire for longer than [`WAIT`]: timers, finalisation,
//! reloads, the heartbeat, the watchdog and shutdown all run whether or not packets arrive. On
//! SIGTERM it stops taking new work, reads what the kernel had already captured (counted in the
//! summary), ends every open call with `end_reason: shutdown`, flushes the spool, ships for at
//! most `shipping.shutdown_timeout` seconds and exits 0 (recordings still queued are safe in
//! the spool).
//!
//! Prometheus metrics and the health check are served on `http.metrics_listen` (loopback, or
//! HTTPS with authentication; bound before the privilege drop, served from their own thread
//! after it), and the API on `http.api_listen` (stopped before the last shipping, so that its
//! audit log ships too); the loop publishes capture's and the shipper's counters for them once
//! a second (`crate::metrics`), and enters sealed audit logs into the spool every 10 s.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use capture::Engine;
use capture::events::EndReason;
use capture::source::{KernelStats, LiveCapture, LiveOptions, LiveSource, MERGE_HOLD};

use crate::batch::Backpressure;
use crate::cli::{RunArgs, Source};
use crate::config::Config;
use crate::http::{HttpServer, Listen};
use crate::link::{InterfaceView, Watch};
use crate::logging::Logging;
use crate::metrics::{CaptureView, HealthCheck, HealthLimits, Metrics};
use crate::pipeline::{Options, Pipeline};
use crate::readahead::ReadAhead;
use crate::replay::engine_config;
use crate::summary::{InputReport, LiveReport, Summary};
use crate::systemd::Systemd;

/// Longest wait for packets before the loop does its timed work.
const WAIT: Duration = Duration::from_millis(100);
/// Frames handled per turn of the loop at most.
const TURN_FRAMES: usize = 4096;
/// Batches go to the mixers at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Kernel counters are read this often; new drops are told to the calls up.
const KERNEL_CHECK: Duration = Duration::from_secs(1);
/// How long the shutdown drain waits for packets the kernel still holds.
const DRAIN_WITHIN: Duration = Duration::from_secs(2);
/// How often sealed audit logs of downloads are entered into the spool.
const AUDIT_EVERY: Duration = Duration::from_secs(10);

/// Runs `callvault run`.
pub fn run(source: &Source, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = source.load(|c| args.apply(c))?;
    let logging = crate::logging::init(&config.log.level, config.log.format);
    let signals = Signals::install()?;
    if config.capture.interfaces.is_empty() {
        bail!("no interface to capture on: set capture.interfaces in {} or give --interface", source.origin());
    }
    let listen = Listen::from_config(
        "http.metrics_listen",
        config.http.metrics_listen.as_deref(),
        crate::config::DEFAULT_METRICS_LISTEN,
        &config.http,
    )?;
    let api_listen = Listen::from_config(
        "http.api_listen",
        config.http.api_listen.as_deref(),
        crate::api::DEFAULT_LISTEN,
        &config.http,
    )?;
    // Read now: the key may be readable by root only.
    let security = crate::http::Security::from_config(&config.http, Default::default())?;
    let live = live_options(&config);
    let mut capture = LiveCapture::open(&config.capture.interfaces, &live)?;
    // Bound now, while a privileged port could still be bound; served once privileges are gone.
    let listener = crate::http::bind(&listen, "http.metrics_listen", "/metrics and /health")?;
    let api_listener = crate::http::bind(&api_listen, "http.api_listen", "the API and dashboard")?;

    // Least privilege: the handles are open, nothing else needs any.
    let archives = config.archives();
    let dirs: Vec<&Path> = std::iter::once(config.storage.data_dir.as_path())
        .chain(archives.iter().filter_map(|a| a.path.as_deref()))
        .collect();
    crate::privileges::prepare_dirs(&config.service, &dirs)?;
    let running = crate::privileges::drop_privileges(&config.service)?;
    for (iface, reason) in capture.missing() {
        let others: Vec<&str> = capture.sources().iter().map(LiveSource::name).collect();
        tracing::error!(
            interface = %iface,
            "cannot capture on interface {iface}: {reason}; recording on {} without it; restart callvault once \
             it is there to record it too",
            others.join(", ")
        );
    }
    let first = capture.sources()[0].name().to_owned();
    if LiveSource::open(&first, &live).is_ok() {
        bail!("privilege drop failed: a new capture on {first} can still be opened");
    }
    tracing::info!(
        user = %running.user, uid = running.uid, gid = running.gid,
        "privileges dropped: no capabilities, no new privileges; a new capture cannot be opened (checked)"
    );

    let opts = Options::from_config(&config, Backpressure::DropMedia, crate::pipeline::run_id());
    let metrics = Arc::new(Metrics::from_config(&config));
    metrics.board().set_http(security.counters());
    let pipeline = Pipeline::start(&opts, metrics.clone())?;
    let http = match listener {
        Some(l) => {
            let health = HealthCheck::new(metrics.board().clone(), HealthLimits::from_config(&config.metrics));
            let router = crate::metrics::metrics_router(metrics.clone()).merge(crate::metrics::health_router(health));
            let server = HttpServer::start(l, router, "http-metrics", &security)?;
            tracing::info!("serving /metrics and /health on {}://{}", security.scheme(), server.addr());
            Some(server)
        }
        None => None,
    };
    let mut live_run = LiveRun {
        engine: Engine::new(engine_config(&config)),
        ahead: ReadAhead::default(),
        pipeline,
        config,
        systemd: Systemd::from_env(),
        logging,
        metrics,
        http,
        api: None,
    };
    // Served after the privilege drop: the listener's thread runs as the service user too.
    if let Some(l) = api_listener {
        let health =
            HealthCheck::new(live_run.metrics.board().clone(), HealthLimits::from_config(&live_run.config.metrics));
        let more = crate::metrics::health_router(health.clone()).merge(crate::metrics::status_router(health));
        let live = Some(live_run.pipeline.live());
        live_run.api = Some(crate::api::serve(&live_run.config, l, live, Some(more), &security)?);
    }
    let ifaces = live_run.config.capture.interfaces.join(", ");
    tracing::info!(
        interfaces = %ifaces,
        filter = %live_run.config.capture.filter,
        "capturing; recordings go to {} and {}",
        opts.output.display(),
        live_run.targets_text()
    );
    live_run.systemd.ready(&format!("capturing on {ifaces}"));
    let started = Instant::now();
    let mut input = InputReport { files: 0, ..InputReport::default() };
    if let Err(e) = live_run.capture_until_stopped(&mut capture, &signals, source, args) {
        tracing::error!("{e}");
        input.errors.push(e.to_string());
    }
    live_run.shutdown(capture, input, started)
}

/// The signals `run` acts on, as flags the loop polls.
struct Signals {
    /// The first SIGINT/SIGTERM's number, 0 until one came.
    stop: Arc<AtomicUsize>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        // A second SIGINT/SIGTERM exits at once (`crate::stop`).
        let stop = crate::stop::install()?;
        let reload = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
            .context("cannot install signal handler")?;
        Ok(Signals { stop, reload })
    }
}

/// Live capture settings from `[capture]`.
fn live_options(c: &Config) -> LiveOptions {
    LiveOptions {
        snaplen: i32::try_from(c.capture.snaplen).unwrap_or(i32::MAX),
        buffer_bytes: i32::try_from(u64::from(c.capture.buffer_mib) << 20).unwrap_or(i32::MAX),
        promisc: c.capture.promiscuous,
        filter: Some(c.capture.filter.clone()).filter(|f| !f.trim().is_empty()),
        ..LiveOptions::default()
    }
}

/// A running live capture's state besides the capture handles.
struct LiveRun {
    engine: Engine,
    /// The frame read ahead within a round of the capture's frames.
    ahead: ReadAhead,
    pipeline: Pipeline,
    /// The configuration in effect (reloads replace the parts they apply).
    config: Config,
    systemd: Systemd,
    logging: Logging,
    metrics: Arc<Metrics>,
    /// The `/metrics` and `/health` listener, if one is served.
    http: Option<HttpServer>,
    /// The API and dashboard, if served (stopped before the last shipping, so that its audit
    /// log is shipped too).
    api: Option<HttpServer>,
}

/// Counters as of the last heartbeat.
#[derive(Default)]
struct Beat {
    frames: u64,
    kernel_dropped: u64,
    queue_dropped: u64,
}

impl LiveRun {
    /// Reads and records until SIGINT/SIGTERM (or a capture error).
    fn capture_until_stopped(
        &mut self,
        capture: &mut LiveCapture,
        signals: &Signals,
        source: &Source,
        args: &RunArgs,
    ) -> anyhow::Result<()> {
        let mut last_flush = Instant::now();
        let mut last_check = Instant::now();
        let mut last_beat = Instant::now();
        let mut last_audit = Instant::now();
        let mut beat = Beat::default();
        let mut kernel_dropped = vec![0u64; capture.sources().len()];
        let mut merged_late = 0u64;
        let max_quiet = self.config.metrics.health_max_quiet;
        let mut watch = Watch::new((max_quiet > 0).then(|| Duration::from_secs(max_quiet)));
        while signals.stop.load(Ordering::Relaxed) == 0 {
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload(source, args);
            }
            let n = {
                let (engine, pipeline, ahead) = (&mut self.engine, &mut self.pipeline, &mut self.ahead);
                let n = capture.dispatch(TURN_FRAMES, WAIT, |_, link, f| {
                    ahead.handle(engine, link, f.time, f.data, pipeline.sink())
                });
                // Nothing is held while waiting for the wire: a frame's handling never waits
                // for the next frame.
                ahead.flush(engine, pipeline.sink());
                n?
            };
            if n == 0 {
                // A quiet wire: timers run on the wall clock, up to what capture has handed on.
                self.engine.advance(capture.horizon(), self.pipeline.sink());
            }
            if last_flush.elapsed() >= FLUSH_EVERY {
                self.pipeline.sink().flush();
                last_flush = Instant::now();
            }
            if last_check.elapsed() >= KERNEL_CHECK {
                last_check = Instant::now();
                let mut interfaces = Vec::new();
                for (s, seen) in capture.sources_mut().iter_mut().zip(&mut kernel_dropped) {
                    let Ok(k) = s.kernel_stats() else { continue };
                    interfaces.push(watch.check(s.name(), k, s.failed()));
                    let dropped = k.dropped + k.if_dropped;
                    if dropped > *seen {
                        tracing::warn!(
                            interface = s.name(),
                            "the kernel dropped {} packets (capture buffer full)",
                            dropped - *seen
                        );
                        self.engine.capture_loss(dropped - *seen, self.pipeline.sink());
                        *seen = dropped;
                    }
                }
                for (name, reason) in capture.missing() {
                    interfaces.push(watch.check(name, KernelStats::default(), Some(reason)));
                }
                let late = capture.merged_late();
                self.publish(interfaces, late);
                if late > merged_late {
                    tracing::warn!(
                        "{} packets came from their interface after packets captured later on another had been \
                         handed on (their block took longer than the {} ms merge hold: the machine is too busy); \
                         media among them that came before the SIP message announcing it is kept for it up to \
                         500 ms (metric callvault_capture_media_before_sdp_packets_total)",
                        late - merged_late,
                        MERGE_HOLD.as_millis()
                    );
                    merged_late = late;
                }
            }
            if last_audit.elapsed() >= AUDIT_EVERY {
                last_audit = Instant::now();
                self.pipeline.collect_audit();
            }
            let every = self.config.log.heartbeat;
            if every > 0 && last_beat.elapsed() >= Duration::from_secs(every) {
                last_beat = Instant::now();
                self.heartbeat(capture, &kernel_dropped, &mut beat);
            }
            self.systemd.alive();
        }
        Ok(())
    }

    /// Puts capture's and the shipper's counters on the metrics' board.
    fn publish(&mut self, interfaces: Vec<InterfaceView>, merged_late: u64) {
        let board = self.metrics.board();
        board.publish_capture(CaptureView {
            stats: self.engine.stats(),
            open_calls: self.engine.open_calls() as u64,
            interfaces,
            queue_dropped_rtp: self.pipeline.sink().dropped_rtp,
            merged_late,
        });
        board.publish_ship(self.pipeline.ship_stats());
    }

    /// One info line that says the recorder is alive and how it is doing.
    fn heartbeat(&mut self, capture: &LiveCapture, kernel_dropped: &[u64], beat: &mut Beat) {
        let frames = capture.frames();
        let kernel: u64 = kernel_dropped.iter().sum();
        let queue = self.pipeline.sink().dropped_rtp;
        let ship = self.pipeline.ship_stats();
        let calls = self.engine.open_calls();
        tracing::info!(
            packets = frames - beat.frames,
            calls_up = calls,
            queued = ship.queued,
            oldest_unshipped_s = ship.oldest_unshipped_age_secs.unwrap_or(0),
            kernel_drops = kernel - beat.kernel_dropped,
            queue_drops = queue - beat.queue_dropped,
            "heartbeat"
        );
        self.systemd.status(&format!("{calls} calls up, {} recordings queued", ship.queued));
        *beat = Beat { frames, kernel_dropped: kernel, queue_dropped: queue };
    }

    /// Reads the configuration again and applies its targets, retention and log level; a
    /// configuration that does not load or apply is logged and the old one kept.
    fn reload(&mut self, source: &Source, args: &RunArgs) {
        self.systemd.reloading();
        let origin = source.origin();
        match source.load(|c| args.apply(c)) {
            Err(e) => tracing::error!("configuration reload from {origin} failed, keeping the previous one:\n{e}"),
            Ok(new) => match self.pipeline.reload(&new) {
                Err(e) => tracing::error!("configuration reload from {origin} failed, keeping the previous one: {e:#}"),
                Ok(()) => {
                    self.logging.set_level(&new.log.level);
                    let old = std::mem::replace(&mut self.config, new.clone());
                    let mut kept = old.clone();
                    kept.archive = new.archive.clone();
                    kept.storage.retention = new.storage.retention;
                    kept.storage.high_watermark = new.storage.high_watermark;
                    kept.log.level = new.log.level.clone();
                    kept.log.heartbeat = new.log.heartbeat;
                    if kept != new {
                        tracing::warn!(
                            "configuration reloaded: settings other than [[archive]], storage.retention, \
                             storage.high_watermark, log.level and log.heartbeat take effect at the next start"
                        );
                    }
                    self.config = kept;
                    tracing::info!(
                        retention = %self.config.storage.retention,
                        level = %self.config.log.level,
                        "configuration reloaded from {origin}; recordings now go to {}",
                        self.targets_text()
                    );
                }
            },
        }
        self.systemd.ready(&format!("capturing on {}", self.config.capture.interfaces.join(", ")));
    }

    fn targets_text(&self) -> String {
        self.config.archives().iter().map(|a| a.place()).collect::<Vec<_>>().join(", ")
    }

    /// Reads what the kernel already captured, ends every call, ships for a bounded time and
    /// reports.
    fn shutdown(
        mut self,
        mut capture: LiveCapture,
        mut input: InputReport,
        started: Instant,
    ) -> anyhow::Result<ExitCode> {
        self.systemd.stopping();
        // An interface that failed or was missing while the others went on: the run's report
        // says so too.
        for (iface, reason) in capture.set_aside() {
            let error = capture::source::SourceError::Live { iface: iface.to_owned(), reason: reason.to_owned() };
            if !input.errors.contains(&error.to_string()) {
                input.errors.push(error.to_string());
            }
        }
        let drained = {
            let (engine, pipeline) = (&mut self.engine, &mut self.pipeline);
            capture.drain(DRAIN_WITHIN, |_, link, f| engine.handle_frame(link, f.time, f.data, pipeline.sink()))
        };
        let mut live = LiveReport::default();
        match drained {
            Ok(d) => {
                live.drained = d.frames;
                live.unread = d.unread;
                if d.unread > 0 {
                    tracing::warn!("{} packets captured before the stop could not be read in time", d.unread);
                }
            }
            Err(e) => tracing::error!("reading the last captured packets failed: {e}"),
        }
        for s in capture.sources_mut() {
            let k = s.kernel_stats().unwrap_or_else(|_| KernelStats::default());
            live.interfaces.push((s.name().to_owned(), k, s.frames()));
        }
        live.merged_late = capture.merged_late();
        drop(capture);
        // The last check's views (links, quiet times, interfaces set aside), with the final counters.
        let mut interfaces = self.metrics.board().capture().map(|c| c.interfaces).unwrap_or_default();
        for (name, kernel, _) in &live.interfaces {
            match interfaces.iter_mut().find(|i| &i.name == name) {
                Some(i) => i.kernel = *kernel,
                None => interfaces.push(InterfaceView::new(name, *kernel)),
            }
        }
        let open = self.engine.open_calls();
        tracing::info!("stopping: finalising {open} open calls");
        self.engine.finish(EndReason::Shutdown, self.pipeline.sink());
        if let Some(api) = self.api.take() {
            api.stop(); // Seals its audit log, which `finish` enters and ships.
        }
        let capture_time = started.elapsed();
        let queue_dropped_rtp = self.pipeline.sink().dropped_rtp;
        let outcome = self.pipeline.finish(Some(Duration::from_secs(self.config.shipping.shutdown_timeout)));
        // The final counters: for the textfile, and for a scrape during the last moments.
        self.metrics.board().publish_capture(CaptureView {
            stats: self.engine.stats(),
            open_calls: self.engine.open_calls() as u64,
            interfaces,
            queue_dropped_rtp,
            merged_late: live.merged_late,
        });
        if let Some(path) = &self.config.metrics.textfile
            && let Err(e) = self.metrics.write_textfile(path)
        {
            tracing::error!("{e:#}");
        }
        if let Some(server) = self.http.take() {
            server.stop();
        }
        let summary = Summary {
            command: "run",
            input,
            capture: self.engine.stats(),
            capture_time,
            elapsed: started.elapsed(),
            outcome,
            output: self.config.storage.data_dir.clone(),
            archive: self.config.archives().iter().map(|a| a.place()).collect(),
            live: Some(live),
        };
        summary.print();
        Ok(summary.exit_code())
    }
}
