//! Prometheus metrics and the health check.
//!
//! The stages keep their own counters and publish snapshots on the [`Board`] (capture and the
//! shipper from the wiring's loop, each mixer after a batch); the finisher hands every finished
//! call's record to [`Metrics::call`]. At a scrape, the collectors read the board's latest
//! snapshots; nothing is counted twice. `/metrics` and `/health` are served by [`http`] on a
//! runtime of their own; `replay` and `run` can also write the final exposition to a file
//! ([`Metrics::write_textfile`]).
//!
//! Architecture invariant: data flows one way: the stages publish, this module reads. Nothing
//! in capture, the mixer or the shipper depends on it or on the metrics crate.

mod board;
mod calls;
mod collect;
mod health;
mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use mixer::record::CallRecord;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

pub use board::{Board, CaptureView, FinishGauges};
pub use health::{Health, HealthCheck, HealthLimits, health_router, status_router};

use calls::CallMetrics;

/// The registry, the board it reads, and the counters fed by finished calls.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    board: Arc<Board>,
    calls: CallMetrics,
}

impl Metrics {
    /// The metrics of a recorder whose data directory is `data_dir`, with a disk high
    /// watermark of `high_watermark` percent.
    pub fn new(data_dir: PathBuf, high_watermark: u8) -> Metrics {
        let mut registry = Registry::default();
        let board = Arc::new(Board::default());
        let calls = CallMetrics::register(&mut registry);
        registry.register_collector(Box::new(collect::Snapshots { board: board.clone(), data_dir, high_watermark }));
        let start_time =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        registry.register_collector(Box::new(process::Process { start_time }));
        Metrics { registry, board, calls }
    }

    /// The metrics a configuration asks for.
    pub fn from_config(c: &crate::config::Config) -> Metrics {
        Metrics::new(c.storage.data_dir.clone(), c.storage.high_watermark)
    }

    /// Where the stages publish their counters.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// A finished call's record (the finisher's, once per call).
    pub fn call(&self, record: &CallRecord) {
        self.calls.call(record);
    }

    /// A recording entered into the spool.
    pub fn recording_written(&self, bytes: u64, audio_bytes: Option<u64>, recovered: bool) {
        self.calls.written(bytes, audio_bytes, recovered);
    }

    /// A recording that could not be finished or entered.
    pub fn recording_failed(&self) {
        self.calls.failed();
    }

    /// The exposition, Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a collector's formatting error would leave the
        // text cut, which the scraper reports.
        if let Err(e) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!("encoding the metrics failed: {e}");
        }
        text
    }

    /// Writes the exposition to `path` (through a temporary file and a rename, so a textfile
    /// collector never reads half of it).
    pub fn write_textfile(&self, path: &Path) -> anyhow::Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        std::fs::write(&tmp, self.encode()).with_context(|| format!("cannot write metrics to {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write metrics to {}", path.display()))
    }
}

/// `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.encode();
            std::future::ready(([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], text))
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// The finishers' queue and how many are at work, regular and reserve, as they set them.
    #[test]
    fn the_finishers_gauges_are_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new(dir.path().to_owned(), 90);
        let g = metrics.board().finish_gauges();
        g.waiting.store(1500, Ordering::Relaxed);
        g.busy[0].store(4, Ordering::Relaxed);
        g.busy[1].store(2, Ordering::Relaxed);
        let text = metrics.encode();
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("callvault_finish_queue_recordings 1500.0"), "{text}");
        assert!(has("callvault_finishers_busy{role=\"regular\"} 4.0"), "{text}");
        assert!(has("callvault_finishers_busy{role=\"reserve\"} 2.0"), "{text}");
    }

    /// Every help text ends in one period, whether the registry added it or the collector.
    #[test]
    fn help_texts_end_in_one_period() {
        let dir = tempfile::tempdir().unwrap();
        let text = Metrics::new(dir.path().to_owned(), 90).encode();
        let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
        assert!(helps.len() > 40, "{text}");
        for help in helps {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }
}
