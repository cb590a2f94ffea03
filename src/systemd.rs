//! The service manager's side of `run` (`Type=notify`): READY once capturing, STATUS lines,
//! RELOADING/READY around a reload, STOPPING on shutdown, and WATCHDOG pings from the capture
//! loop, so that a stuck loop gets the service restarted. Without `NOTIFY_SOCKET` (not run by
//! systemd) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Notifications to the service manager.
#[derive(Debug)]
pub struct Systemd {
    /// Half the watchdog interval, when systemd asked for pings.
    ping_every: Option<Duration>,
    last_ping: Instant,
}

impl Systemd {
    /// Reads the watchdog interval the service manager set (`WATCHDOG_USEC`; for this process
    /// when `WATCHDOG_PID` is unset or names it, as sd_watchdog_enabled(3) says).
    pub fn from_env() -> Systemd {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let for_us = var("WATCHDOG_PID").is_none_or(|pid| pid == u64::from(std::process::id()));
        let ping_every = var("WATCHDOG_USEC").filter(|&u| u > 0 && for_us).map(|u| Duration::from_micros(u) / 2);
        Systemd { ping_every, last_ping: Instant::now() }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!("cannot notify the service manager: {e}");
        }
    }

    /// Start-up is done: capture is running.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A configuration reload begins.
    pub fn reloading(&self) {
        self.send(&[NotifyState::Reloading]);
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Shutdown begins.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping: finishing calls and shipping")]);
    }

    /// Called from the capture loop on every turn: pings the watchdog when due.
    pub fn alive(&mut self) {
        if let Some(every) = self.ping_every
            && self.last_ping.elapsed() >= every
        {
            self.last_ping = Instant::now();
            self.send(&[NotifyState::Watchdog]);
        }
    }
}
