//! `callvault replay`: capture files -> recordings -> archive.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use capture::events::EndReason;
use capture::source::FileSource;
use capture::{Engine, EngineConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::batch::Backpressure;
use crate::cli::{ReplayArgs, Source};
use crate::config::Config;
use crate::metrics::{CaptureView, Metrics};
use crate::pipeline::{Options, Pipeline};
use crate::readahead::ReadAhead;
use crate::summary::{InputReport, Interrupted, Summary};

/// Capture engine settings from the configuration.
pub fn engine_config(c: &Config) -> EngineConfig {
    EngineConfig {
        limits: c.limits.clone(),
        timeouts: c.timeouts.clone(),
        keep_frames: c.recording.keep_pcap,
        pause_header: Some(c.recording.pause_header.clone()).filter(|h| !h.is_empty()),
        lookahead_from_flows: None,
    }
}

/// Runs `callvault replay`: records, ships, prints the summary.
///
/// SIGINT or SIGTERM stops the reading: the calls in progress end there (`shutdown`) and are
/// recorded and shipped like the others, and the exit status is 128 + the signal. A second
/// one exits at once (the work directory keeps what was in progress; the next start recovers
/// it, as after a crash).
pub fn replay(source: &Source, args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let config = source.load(|c| args.apply(c))?;
    crate::logging::init(&config.log.level, config.log.format);
    let stop = crate::stop::install()?;
    let summary = execute(&config, &args.captures, args.quiet, &stop)?;
    summary.print();
    Ok(summary.exit_code())
}

/// Replays the capture files through the whole pipeline and returns the report unprinted; the
/// final metrics go to `metrics.textfile` when it is set. `stop` set to a signal's number
/// (by [`crate::stop::install`]'s handlers) stops the reading (see [`replay`]).
pub fn execute(config: &Config, captures: &[PathBuf], quiet: bool, stop: &AtomicUsize) -> anyhow::Result<Summary> {
    let opts = Options::from_config(config, Backpressure::Block, crate::pipeline::run_id());
    let mut engine = Engine::new(engine_config(config));
    let metrics = Arc::new(Metrics::from_config(config));
    let mut pipeline = Pipeline::start(&opts, metrics.clone())?;
    let started = Instant::now();

    let total: u64 = captures.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let progress = if !quiet && std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };

    let mut input = InputReport { files: captures.len(), ..InputReport::default() };
    let mut done_bytes = 0u64;
    let mut ahead = ReadAhead::default();
    'files: for path in captures {
        let signal = stop.load(Ordering::Relaxed);
        if signal != 0 {
            input.interrupted = Some(Interrupted { signal: signal as i32, file: path.clone(), packets: 0 });
            break;
        }
        let mut src = match FileSource::open(path) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                input.errors.push(e.to_string());
                continue;
            }
        };
        let link = src.link();
        loop {
            match src.next_frame() {
                Ok(Some(f)) => ahead.handle(&mut engine, link, f.time, f.data, pipeline.sink()),
                Ok(None) => {
                    input.files_read += 1;
                    break;
                }
                Err(e) => {
                    tracing::error!("{e}");
                    input.errors.push(e.to_string());
                    break;
                }
            }
            if src.packets() % 4_096 == 0 {
                let signal = stop.load(Ordering::Relaxed);
                if signal != 0 {
                    tracing::warn!(
                        "interrupted: the calls in progress are ended here, recorded and shipped; interrupt again to stop at once"
                    );
                    input.interrupted =
                        Some(Interrupted { signal: signal as i32, file: path.clone(), packets: src.packets() });
                    break 'files;
                }
                if src.packets() % 65_536 == 0 {
                    progress.set_position(done_bytes + src.position());
                }
            }
        }
        ahead.flush(&mut engine, pipeline.sink());
        done_bytes += src.size();
        progress.set_position(done_bytes);
    }
    ahead.flush(&mut engine, pipeline.sink());
    let reason = if input.interrupted.is_some() { EndReason::Shutdown } else { EndReason::EndOfInput };
    engine.finish(reason, pipeline.sink());
    let capture_time = started.elapsed();
    progress.finish_and_clear();

    metrics.board().publish_capture(CaptureView {
        stats: engine.stats(),
        open_calls: engine.open_calls() as u64,
        ..CaptureView::default()
    });
    let outcome = pipeline.finish(Some(Duration::from_secs(config.shipping.drain_timeout)));
    if let Some(path) = &config.metrics.textfile
        && let Err(e) = metrics.write_textfile(path)
    {
        tracing::error!("{e:#}");
    }
    let summary = Summary {
        command: "replay",
        input,
        capture: engine.stats().clone(),
        capture_time,
        elapsed: started.elapsed(),
        outcome,
        output: opts.output.clone(),
        archive: config.archives().iter().map(|a| a.place()).collect(),
        live: None,
    };
    Ok(summary)
}
