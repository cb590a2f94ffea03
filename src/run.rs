//! `callvault run`: a live interface -> recordings -> archive, until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use capture::Engine;
use capture::Timestamp;
use capture::events::EndReason;
use capture::source::{LiveEvent, LiveOptions, LiveSource};

use crate::batch::Backpressure;
use crate::cli::RunArgs;
use crate::pipeline::Pipeline;
use crate::replay::{engine_config, options};
use crate::summary::{InputReport, Summary};

/// Batches are sent at least this often (capture time) when traffic is light.
const FLUSH_EVERY: i64 = 200 * Timestamp::MILLI;

/// Runs `callvault run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    let live = LiveOptions {
        filter: args.filter.clone(),
        buffer_bytes: i32::try_from(u64::from(args.buffer_mib) << 20).unwrap_or(i32::MAX),
        ..LiveOptions::default()
    };
    let mut src = LiveSource::open(&args.interface, &live)?;
    let link = src.link();
    let opts = options(&args.common, Backpressure::DropMedia);
    let mut engine = Engine::new(engine_config(&args.common));
    let mut pipeline = Pipeline::start(&opts)?;
    tracing::info!(
        interface = %args.interface,
        filter = args.filter.as_deref().unwrap_or(""),
        "capturing; recordings go to {} and {}",
        opts.output.display(),
        opts.targets.archive.join(", ")
    );
    let started = Instant::now();
    let mut input = InputReport { files: 0, ..InputReport::default() };
    let mut last_flush = Timestamp(0);
    // Kernel drops are checked once a second; calls up at that moment are told.
    let mut last_check = Instant::now();
    let mut kernel_dropped = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match src.next_event() {
            Ok(LiveEvent::Frame(f)) => {
                let t = f.time;
                engine.handle_frame(link, t, f.data, pipeline.sink());
                if t.since(last_flush) >= FLUSH_EVERY {
                    pipeline.sink().flush();
                    last_flush = t;
                }
            }
            Ok(LiveEvent::Idle(now)) => {
                engine.advance(now, pipeline.sink());
                pipeline.sink().flush();
                last_flush = now;
            }
            Err(e) => {
                tracing::error!("{e}");
                input.errors.push(e.to_string());
                break;
            }
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let Ok(k) = src.kernel_stats() {
                let dropped = k.dropped + k.if_dropped;
                if dropped > kernel_dropped {
                    tracing::warn!("the kernel dropped {} packets (capture buffer full)", dropped - kernel_dropped);
                    engine.capture_loss(dropped - kernel_dropped, pipeline.sink());
                    kernel_dropped = dropped;
                }
            }
        }
    }
    tracing::info!("stopping: finalising {} open calls", engine.open_calls());
    let kernel = src.kernel_stats().ok();
    engine.finish(EndReason::Shutdown, pipeline.sink());
    let capture_time = started.elapsed();
    let outcome = pipeline.finish(Some(Duration::from_secs(args.ship_timeout)));
    let summary = Summary {
        command: "run",
        input,
        capture: engine.stats().clone(),
        capture_time,
        elapsed: started.elapsed(),
        outcome,
        output: opts.output.clone(),
        archive: opts.targets.archive.clone(),
        kernel,
    };
    summary.print();
    Ok(summary.exit_code())
}
