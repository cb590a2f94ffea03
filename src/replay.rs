//! `callvault replay`: capture files -> recordings -> archive.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use capture::events::EndReason;
use capture::limits::Timeouts;
use capture::source::FileSource;
use capture::{Engine, EngineConfig};
use indicatif::{ProgressBar, ProgressStyle};
use mixer::audio::{AudioConfig, AudioFormat, AudioLayout};
use mixer::timeline::TimelineConfig;

use crate::batch::Backpressure;
use crate::cli::{Common, FormatArg, LayoutArg, ReplayArgs};
use crate::pipeline::{Options, Pipeline};
use crate::summary::{InputReport, Summary};

/// Pipeline options from the shared command-line options.
pub fn options(c: &Common, backpressure: Backpressure) -> Options {
    let timeline = TimelineConfig { reorder_frames: c.reorder_ms.saturating_mul(8), ..TimelineConfig::default() };
    let mixers = c.mixers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)));
    let audio = AudioConfig {
        format: match c.audio_format {
            FormatArg::Wav => AudioFormat::Wav,
            FormatArg::Flac => AudioFormat::Flac,
        },
        layout: match c.audio_layout {
            LayoutArg::Stereo => AudioLayout::Stereo,
            LayoutArg::Mono => AudioLayout::Mono,
            LayoutArg::Split => AudioLayout::Split,
        },
    };
    Options {
        output: c.output.clone(),
        targets: c.targets.clone(),
        retention: c.retention.clone(),
        timeline,
        audio,
        finishers: c.finishers,
        mixers,
        backpressure,
    }
}

/// Capture engine settings from the shared command-line options.
pub fn engine_config(c: &Common) -> EngineConfig {
    let timeouts = Timeouts { media: c.media_timeout as i64 * 1_000_000_000, ..Timeouts::default() };
    EngineConfig { timeouts, keep_frames: c.keep_pcap, ..EngineConfig::default() }
}

/// Runs `callvault replay`: records, ships, prints the summary.
pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let summary = execute(&args)?;
    summary.print();
    Ok(summary.exit_code())
}

/// Replays the capture files through the whole pipeline and returns the report unprinted.
pub fn execute(args: &ReplayArgs) -> anyhow::Result<Summary> {
    let opts = options(&args.common, Backpressure::Block);
    let mut engine = Engine::new(engine_config(&args.common));
    let mut pipeline = Pipeline::start(&opts)?;
    let started = Instant::now();

    let total: u64 = args.captures.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let progress = if !args.quiet && std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };

    let mut input = InputReport { files: args.captures.len(), ..InputReport::default() };
    let mut done_bytes = 0u64;
    for path in &args.captures {
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
                Ok(Some(f)) => {
                    engine.handle_frame(link, f.time, f.data, pipeline.sink());
                }
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
            if src.packets() % 65_536 == 0 {
                progress.set_position(done_bytes + src.position());
            }
        }
        done_bytes += src.size();
        progress.set_position(done_bytes);
    }
    engine.finish(EndReason::EndOfInput, pipeline.sink());
    let capture_time = started.elapsed();
    progress.finish_and_clear();

    let outcome = pipeline.finish(Some(Duration::from_secs(args.ship_timeout)));
    let summary = Summary {
        command: "replay",
        input,
        capture: engine.stats().clone(),
        capture_time,
        elapsed: started.elapsed(),
        outcome,
        output: opts.output.clone(),
        archive: opts.targets.archive.clone(),
        kernel: None,
    };
    Ok(summary)
}
