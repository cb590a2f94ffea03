//! The board the stages publish their counters on, and the metrics and health checks read.
//!
//! Each stage keeps owning its counters and copies a snapshot here at its own pace (the live
//! loop once a second, each mixer after every batch); readers take the latest snapshot. The
//! board depends on the stages' snapshot types only; no stage depends on the board.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use capture::stats::CaptureStats;
use mixer::MixerStats;
use shipper::ShipStats;

use crate::hep::HepCounters;
use crate::link::InterfaceView;

/// What capture last published.
#[derive(Debug, Clone, Default)]
pub struct CaptureView {
    /// The engine's counters.
    pub stats: CaptureStats,
    /// Calls the engine is following now.
    pub open_calls: u64,
    /// Each live interface: its kernel counters, link and last packet (empty for capture files).
    pub interfaces: Vec<InterfaceView>,
    /// RTP dropped between capture and the mixers (a full queue on a live capture).
    pub queue_dropped_rtp: u64,
    /// Packets of several live interfaces handed on out of capture-time order
    /// (`LiveCapture::merged_late`).
    pub merged_late: u64,
}

impl CaptureView {
    /// Packets lost before callvault could record them: kernel, interface and queue drops.
    pub fn drops(&self) -> u64 {
        let kernel: u64 = self.interfaces.iter().map(|i| i.kernel.dropped + i.kernel.if_dropped).sum();
        kernel + self.queue_dropped_rtp
    }
}

/// One point of the history `/health` judges a window by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) drops: u64,
    pub(crate) confirmations: u64,
    pub(crate) failures: u64,
}

/// Samples older than this are forgotten (the longest health window).
const HISTORY: Duration = Duration::from_secs(86_400);
/// At most this many samples are kept (one a second covers the default window many times).
const MAX_SAMPLES: usize = 4096;

#[derive(Debug, Default)]
struct Published {
    capture: Option<CaptureView>,
    mixers: Vec<MixerStats>,
    ship: Option<ShipStats>,
    history: VecDeque<Sample>,
    hep: Option<Arc<HepCounters>>,
    http: Option<Arc<crate::http::HttpCounters>>,
}

/// The finishers' queue and how many of them are at work, as they last set them (after
/// taking recordings and after finishing them).
#[derive(Debug, Default)]
pub struct FinishGauges {
    /// Finished calls waiting for a finisher.
    pub waiting: AtomicUsize,
    /// Finishers at work now: the regular ones, and the reserve.
    pub busy: [AtomicUsize; 2],
}

/// The latest snapshot of every stage's counters.
#[derive(Debug, Default)]
pub struct Board {
    inner: Mutex<Published>,
    finish: Arc<FinishGauges>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Published> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Capture's counters (the live loop: once a second; replay: at the end).
    pub fn publish_capture(&self, view: CaptureView) {
        self.lock().capture = Some(view);
    }

    /// Mixer `lane`'s counters.
    pub fn publish_mixer(&self, lane: usize, stats: &MixerStats) {
        let mut p = self.lock();
        if p.mixers.len() <= lane {
            p.mixers.resize(lane + 1, MixerStats::default());
        }
        p.mixers[lane] = stats.clone();
    }

    /// The shipper's counters; also takes a sample of the history `/health` reads.
    pub fn publish_ship(&self, stats: ShipStats) {
        let mut p = self.lock();
        let now = Instant::now();
        let sample = Sample {
            at: now,
            drops: p.capture.as_ref().map_or(0, CaptureView::drops),
            confirmations: stats.targets.values().map(|t| t.shipped_recordings).sum(),
            failures: stats.failures_retryable + stats.failures_permanent,
        };
        p.ship = Some(stats);
        p.history.push_back(sample);
        while p.history.len() > MAX_SAMPLES || p.history.front().is_some_and(|s| now.duration_since(s.at) > HISTORY) {
            p.history.pop_front();
        }
    }

    /// The finishers' gauges, which they set themselves.
    pub fn finish_gauges(&self) -> &Arc<FinishGauges> {
        &self.finish
    }

    /// The HEP exporter's counters (created at the first call; exported from then on).
    pub fn hep_counters(&self) -> Arc<HepCounters> {
        self.lock().hep.get_or_insert_with(Arc::default).clone()
    }

    /// Counts the HTTP listeners' refusals and downloads from now on.
    pub fn set_http(&self, counters: Arc<crate::http::HttpCounters>) {
        self.lock().http = Some(counters);
    }

    /// The HTTP listeners' counters, if they were set.
    pub fn http(&self) -> Option<Arc<crate::http::HttpCounters>> {
        self.lock().http.clone()
    }

    /// The HEP exporter's counters, if one was started.
    pub fn hep(&self) -> Option<Arc<HepCounters>> {
        self.lock().hep.clone()
    }

    /// Capture's latest counters.
    pub fn capture(&self) -> Option<CaptureView> {
        self.lock().capture.clone()
    }

    /// Every mixer's counters added up.
    pub fn mixers(&self) -> MixerStats {
        let mut sum = MixerStats::default();
        for m in &self.lock().mixers {
            sum.add(m);
        }
        sum
    }

    /// The shipper's latest counters.
    pub fn ship(&self) -> Option<ShipStats> {
        self.lock().ship.clone()
    }

    /// The latest sample and the one to compare it with: the newest taken at least `window`
    /// before it, else the oldest kept.
    pub(crate) fn window(&self, window: Duration) -> Option<(Sample, Sample)> {
        let p = self.lock();
        let last = *p.history.back()?;
        let base = p
            .history
            .iter()
            .rev()
            .find(|s| last.at.duration_since(s.at) >= window)
            .or_else(|| p.history.front())
            .copied()?;
        Some((base, last))
    }
}
