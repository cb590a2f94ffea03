//! `/health`: ready or degraded, with the reasons, judged from the [`Board`].
//!
//! Degraded when, within the last `metrics.health_window` seconds, capture lost packets
//! (kernel, interface or queue drops) or shipping failed without a single confirmation while
//! recordings were queued; when a target was stopped by a permanent failure while it is owed
//! recordings; when the data directory's disk is above the high watermark; or when the oldest
//! unshipped recording is older than `metrics.health_max_unshipped_age`; when a live interface's
//! link is down, or it brought no packet for `metrics.health_max_quiet` seconds. HTTP 200 when ready,
//! 503 when degraded, so a load balancer or a plain `curl -f` can act on it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::board::Board;

/// The thresholds `/health` judges by.
#[derive(Debug, Clone, Copy)]
pub struct HealthLimits {
    /// The window drops and shipping progress are judged over.
    pub window: Duration,
    /// The oldest unshipped recording may be at most this old.
    pub max_unshipped_age: Duration,
    /// An interface may bring no packet for at most this long (`None`: as long as it likes).
    pub max_quiet: Option<Duration>,
}

impl HealthLimits {
    /// From the `[metrics]` configuration.
    pub fn from_config(c: &crate::config::Metrics) -> HealthLimits {
        HealthLimits {
            window: Duration::from_secs(c.health_window),
            max_unshipped_age: Duration::from_secs(c.health_max_unshipped_age),
            max_quiet: (c.health_max_quiet > 0).then(|| Duration::from_secs(c.health_max_quiet)),
        }
    }
}

/// The answer of `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// "ready" or "degraded".
    pub status: &'static str,
    /// Why degraded (empty when ready), one sentence each.
    pub reasons: Vec<String>,
}

/// What `/health` reads: the board and the thresholds.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    board: Arc<Board>,
    limits: HealthLimits,
}

impl HealthCheck {
    /// A check over `board`.
    pub fn new(board: Arc<Board>, limits: HealthLimits) -> HealthCheck {
        HealthCheck { board, limits }
    }

    /// Judges the latest snapshots.
    pub fn evaluate(&self) -> Health {
        let mut reasons = Vec::new();
        let window = self.limits.window.as_secs();
        let ship = self.board.ship();
        if let Some((base, last)) = self.board.window(self.limits.window) {
            if last.drops > base.drops {
                reasons.push(format!(
                    "capture dropped {} packets in the last {window} s (kernel, interface or queue)",
                    last.drops - base.drops
                ));
            }
            let queued = ship.as_ref().is_some_and(|s| s.queued > 0);
            if queued && last.failures > base.failures && last.confirmations == base.confirmations {
                reasons.push(format!(
                    "shipping stalled: {} failures and no recording confirmed in the last {window} s",
                    last.failures - base.failures
                ));
            }
        }
        for i in self.board.capture().map(|c| c.interfaces).unwrap_or_default() {
            if let crate::link::Link::Down(state) = &i.link {
                reasons.push(format!("interface {} is {state}: nothing on it is recorded", i.name));
            } else if let crate::link::Link::Failed(reason) = &i.link {
                reasons.push(format!("capture on interface {} failed: {reason}", i.name));
            } else if let Some(limit) = self.limits.max_quiet
                && i.quiet_for >= limit
            {
                reasons.push(format!(
                    "no packet on interface {} for {} s (limit {} s)",
                    i.name,
                    i.quiet_for.as_secs(),
                    limit.as_secs()
                ));
            }
        }
        if let Some(s) = &ship {
            for (name, t) in &s.targets {
                if !t.permanent_errors.is_empty() && t.queued > 0 {
                    reasons.push(format!(
                        "target {name:?} stopped after a permanent failure; {} recordings wait for it",
                        t.queued
                    ));
                }
            }
            if s.disk_pressure {
                let used = s.disk_used_percent.map_or_else(String::new, |p| format!(" ({p}% in use)"));
                reasons.push(format!("the data directory's disk is above its high watermark{used}"));
            }
            if let Some(age) = s.oldest_unshipped_age_secs
                && age > self.limits.max_unshipped_age.as_secs()
            {
                reasons.push(format!(
                    "the oldest unshipped recording is {age} s old (limit {} s)",
                    self.limits.max_unshipped_age.as_secs()
                ));
            }
        }
        Health { status: if reasons.is_empty() { "ready" } else { "degraded" }, reasons }
    }
}

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        let code = if self.reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (code, axum::Json(self)).into_response()
    }
}

/// `GET /health`, for any server to mount (the metrics listener does; so can the API's).
pub fn health_router(check: HealthCheck) -> Router {
    Router::new().route("/health", get(move || std::future::ready(check.evaluate())))
}

/// `GET /api/v1/status`: the dashboard's view of the same snapshots as the metrics — health,
/// capture counters and drops per interface, calls followed, shipping per target, disk.
pub fn status_router(check: HealthCheck) -> Router {
    Router::new().route("/api/v1/status", get(move || std::future::ready(axum::Json(status(&check)))))
}

fn status(check: &HealthCheck) -> serde_json::Value {
    let health = check.evaluate();
    let capture = check.board.capture().map(|c| {
        let s = &c.stats;
        serde_json::json!({
            "frames": s.frames, "bytes": s.bytes, "sip_messages": s.sip_messages, "rtp_packets": s.rtp_packets,
            "rtcp_packets": s.rtcp_packets, "drops": c.drops(), "queue_dropped_rtp": c.queue_dropped_rtp,
            "open_calls": c.open_calls,
            "interfaces": c.interfaces.iter().map(|i| serde_json::json!({
                "name": i.name, "received": i.kernel.received, "dropped": i.kernel.dropped,
                "if_dropped": i.kernel.if_dropped, "up": i.link.is_up(),
                "link": i.link.state(),
                "quiet_s": i.quiet_for.as_secs(),
            })).collect::<Vec<_>>(),
        })
    });
    let shipping =
        check.board.ship().map(|s| {
            let targets: serde_json::Map<String, serde_json::Value> = s
            .targets
            .iter()
            .map(|(name, t)| {
                (name.clone(), serde_json::json!({
                    "queued": t.queued, "queued_bytes": t.queued_bytes, "shipped": t.shipped_recordings,
                    "shipped_bytes": t.shipped_bytes, "retries": t.retries, "permanent_errors": t.permanent_errors,
                }))
            })
            .collect();
            serde_json::json!({
                "queued": s.queued, "oldest_unshipped_age_s": s.oldest_unshipped_age_secs,
                "shipped": s.shipped_recordings, "failures_retryable": s.failures_retryable,
                "failures_permanent": s.failures_permanent, "last_error": s.last_error,
                "disk_used_percent": s.disk_used_percent, "disk_pressure": s.disk_pressure, "targets": targets,
            })
        });
    serde_json::json!({ "health": health, "capture": capture, "shipping": shipping })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipper::{ShipStats, TargetStats};

    fn check(board: &Arc<Board>) -> HealthCheck {
        HealthCheck::new(
            board.clone(),
            HealthLimits {
                window: Duration::from_secs(60),
                max_unshipped_age: Duration::from_secs(600),
                max_quiet: None,
            },
        )
    }

    #[test]
    fn ready_until_something_goes_wrong() {
        let board = Arc::new(Board::default());
        assert_eq!(check(&board).evaluate(), Health { status: "ready", reasons: vec![] });
        board.publish_ship(ShipStats::default());
        assert_eq!(check(&board).evaluate().status, "ready");
    }

    #[test]
    fn drops_in_the_window_degrade() {
        let board = Arc::new(Board::default());
        board.publish_ship(ShipStats::default());
        board.publish_capture(super::super::board::CaptureView { queue_dropped_rtp: 7, ..Default::default() });
        board.publish_ship(ShipStats::default());
        let h = check(&board).evaluate();
        assert_eq!(h.status, "degraded");
        assert!(h.reasons[0].contains("dropped 7 packets"), "{h:?}");
    }

    #[test]
    fn failures_without_progress_stall_and_age_and_disk_degrade() {
        let board = Arc::new(Board::default());
        let mut s = ShipStats { queued: 3, ..ShipStats::default() };
        board.publish_ship(s.clone());
        s.failures_retryable = 4;
        s.oldest_unshipped_age_secs = Some(601);
        s.disk_pressure = true;
        board.publish_ship(s.clone());
        let h = check(&board).evaluate();
        assert_eq!(h.reasons.len(), 3, "{h:?}");
        assert!(h.reasons[0].starts_with("shipping stalled: 4 failures"), "{h:?}");
        assert!(h.reasons[1].contains("high watermark"), "{h:?}");
        assert!(h.reasons[2].contains("601 s old"), "{h:?}");
        // A confirmation in the window is progress: no longer stalled.
        s.targets.insert("archive".into(), TargetStats { shipped_recordings: 1, ..TargetStats::default() });
        s.disk_pressure = false;
        s.oldest_unshipped_age_secs = Some(600);
        board.publish_ship(s);
        assert_eq!(check(&board).evaluate().status, "ready");
    }

    #[test]
    fn an_interface_down_or_quiet_past_the_limit_degrades() {
        use crate::link::{InterfaceView, Link};
        let board = Arc::new(Board::default());
        let iface = |name: &str, link: Link, quiet: u64| InterfaceView {
            link,
            quiet_for: Duration::from_secs(quiet),
            ..InterfaceView::new(name, Default::default())
        };
        let limits = |max_quiet| HealthLimits { max_quiet, ..check(&board).limits };
        let interfaces = vec![iface("eth1", Link::Up, 299), iface("eth2", Link::Down("lowerlayerdown".into()), 0)];
        board.publish_capture(super::super::board::CaptureView { interfaces, ..Default::default() });
        let quiet = Some(Duration::from_secs(300));
        let h = HealthCheck::new(board.clone(), limits(quiet)).evaluate();
        assert_eq!(h.reasons, ["interface eth2 is lowerlayerdown: nothing on it is recorded"], "{h:?}");
        let interfaces = vec![iface("eth1", Link::Up, 300), iface("eth2", Link::Up, 0)];
        board.publish_capture(super::super::board::CaptureView { interfaces, ..Default::default() });
        let h = HealthCheck::new(board.clone(), limits(quiet)).evaluate();
        assert_eq!(h.reasons, ["no packet on interface eth1 for 300 s (limit 300 s)"], "{h:?}");
        assert_eq!(HealthCheck::new(board.clone(), limits(None)).evaluate().status, "ready");
    }
}
