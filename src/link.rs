//! Whether each live interface still has a link and still brings packets: a SPAN port whose
//! mirror session was removed, whose cable was pulled or whose switch rebooted records nothing,
//! and says so only here. The live loop asks once a second ([`Watch::check`]); the state goes on
//! the metrics' board ([`InterfaceView`]) for `/metrics`, `/health` and the dashboard, and each
//! change is logged once (down, up again, quiet, packets again).
//!
//! The link is the kernel's operational state (`/sys/class/net/<name>/operstate`, readable
//! after the privilege drop); an interface that reports none (the `any` pseudo-device, or
//! `unknown`, as tunnels and some virtual devices do) is taken as up. Packets are told from the
//! kernel's count of packets that passed the capture filter, so nothing is added per packet.

#![allow(clippy::disallowed_methods)] // The wall clock: how long an interface has been quiet.

use std::time::{Duration, Instant, SystemTime};

use capture::source::KernelStats;

/// An interface's link, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Up (or not reported: the interface may carry packets).
    Up,
    /// Not up: the kernel's operational state (`down`, `lowerlayerdown`, `dormant`, ...).
    Down(String),
    /// Capture on it failed (it disappeared): it is read no more, the other interfaces are.
    Failed(String),
}

impl Link {
    /// The link of interface `name` now.
    pub fn of(name: &str) -> Link {
        match std::fs::read_to_string(format!("/sys/class/net/{name}/operstate")) {
            Ok(state) => Link::from_operstate(state.trim()),
            Err(_) => Link::Up,
        }
    }

    /// The link an operational state (RFC 2863, as `/sys/class/net/*/operstate` spells it) means.
    pub fn from_operstate(state: &str) -> Link {
        match state {
            "up" | "unknown" | "" => Link::Up,
            other => Link::Down(other.to_owned()),
        }
    }

    /// Whether packets can come.
    pub fn is_up(&self) -> bool {
        matches!(self, Link::Up)
    }

    /// In a word: `up`, the kernel's state when it is not, or `failed`.
    pub fn state(&self) -> &str {
        match self {
            Link::Up => "up",
            Link::Down(state) => state,
            Link::Failed(_) => "failed",
        }
    }
}

/// One interface as last checked.
#[derive(Debug, Clone)]
pub struct InterfaceView {
    /// Its name.
    pub name: String,
    /// The kernel's counters.
    pub kernel: KernelStats,
    /// Its link.
    pub link: Link,
    /// When a check last found new packets on it (`None`: none since the start).
    pub last_packet: Option<SystemTime>,
    /// How long it has brought no packet (since the start, if it has brought none).
    pub quiet_for: Duration,
}

impl InterfaceView {
    /// An interface of which nothing is known but its counters: up, no packet seen.
    pub fn new(name: &str, kernel: KernelStats) -> InterfaceView {
        InterfaceView { name: name.to_owned(), kernel, link: Link::Up, last_packet: None, quiet_for: Duration::ZERO }
    }
}

#[derive(Debug)]
struct Watched {
    received: u64,
    last_packet: Option<SystemTime>,
    active_at: Instant,
    link: Link,
    quiet_told: bool,
}

/// Follows each interface's link and traffic from one check to the next and logs the changes.
#[derive(Debug)]
pub struct Watch {
    watched: Vec<(String, Watched)>,
    /// From how long without a packet an interface is reported quiet (`None`: never).
    quiet_after: Option<Duration>,
}

impl Watch {
    /// A watch starting now; interfaces are reported quiet after `quiet_after` without packets.
    pub fn new(quiet_after: Option<Duration>) -> Watch {
        Watch { watched: Vec::new(), quiet_after }
    }

    /// Checks interface `name` with its kernel counters `kernel` and why capture on it
    /// `failed`, if it did: its link now, whether packets came since the last check; logs what
    /// changed.
    pub fn check(&mut self, name: &str, kernel: KernelStats, failed: Option<&str>) -> InterfaceView {
        let link = failed.map_or_else(|| Link::of(name), |reason| Link::Failed(reason.to_owned()));
        self.check_with(name, kernel, link, Instant::now(), SystemTime::now())
    }

    fn check_with(
        &mut self,
        name: &str,
        kernel: KernelStats,
        link: Link,
        now: Instant,
        wall: SystemTime,
    ) -> InterfaceView {
        let at = match self.watched.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                let first =
                    Watched { received: 0, last_packet: None, active_at: now, link: Link::Up, quiet_told: false };
                self.watched.push((name.to_owned(), first));
                self.watched.len() - 1
            }
        };
        let w = &mut self.watched[at].1;
        if link != w.link {
            match &link {
                Link::Down(state) => tracing::warn!(
                    interface = name,
                    "interface {name} is {state}: nothing on it is recorded until its link is up again \
                     (cable, switch port, mirror session)"
                ),
                Link::Failed(reason) => tracing::error!(
                    interface = name,
                    "capture on interface {name} failed: {reason}; the other interfaces are still recorded; \
                     restart callvault once {name} is back to record it again"
                ),
                Link::Up => tracing::info!(interface = name, "interface {name} is up again"),
            }
            w.link = link.clone();
        }
        if kernel.received > w.received {
            w.received = kernel.received;
            w.last_packet = Some(wall);
            w.active_at = now;
            if w.quiet_told {
                w.quiet_told = false;
                tracing::info!(interface = name, "packets on interface {name} again");
            }
        }
        let quiet_for = now.saturating_duration_since(w.active_at);
        if let Some(limit) = self.quiet_after
            && quiet_for >= limit
            && !w.quiet_told
            && link.is_up()
        {
            w.quiet_told = true;
            tracing::warn!(
                interface = name,
                "no packet on interface {name} for {} s: is the mirror (SPAN) session still sending to it, \
                 and does the capture filter let its traffic through?",
                quiet_for.as_secs()
            );
        }
        InterfaceView { name: name.to_owned(), kernel, link, last_packet: w.last_packet, quiet_for }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn got(received: u64) -> KernelStats {
        KernelStats { received, ..KernelStats::default() }
    }

    #[test]
    fn operational_states_that_carry_packets_are_up_the_others_down() {
        assert_eq!(Link::from_operstate("up"), Link::Up);
        assert_eq!(Link::from_operstate("unknown"), Link::Up);
        for state in ["down", "lowerlayerdown", "dormant", "notpresent", "testing"] {
            assert_eq!(Link::from_operstate(state), Link::Down(state.into()));
        }
        assert_eq!(Link::of("no-such-interface/"), Link::Up);
    }

    #[test]
    fn quiet_counts_from_the_start_and_from_the_last_new_packets() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut w = Watch::new(Some(Duration::from_secs(5)));
        let v = w.check_with("eth1", got(0), Link::Up, t0 + Duration::from_secs(3), wall);
        assert_eq!((v.quiet_for, v.last_packet), (Duration::from_secs(0), None));
        let v = w.check_with("eth1", got(0), Link::Up, t0 + Duration::from_secs(9), wall);
        assert_eq!(v.quiet_for, Duration::from_secs(6));
        let later = wall + Duration::from_secs(10);
        let v = w.check_with("eth1", got(7), Link::Up, t0 + Duration::from_secs(10), later);
        assert_eq!((v.quiet_for, v.last_packet), (Duration::ZERO, Some(later)));
        let v = w.check_with("eth1", got(7), Link::Up, t0 + Duration::from_secs(12), wall);
        assert_eq!((v.quiet_for, v.last_packet), (Duration::from_secs(2), Some(later)));
        // Interfaces are followed apart.
        let v = w.check_with("eth2", got(7), Link::Up, t0 + Duration::from_secs(12), later);
        assert_eq!(v.quiet_for, Duration::ZERO);
        let v = w.check_with("eth2", got(7), Link::Down("down".into()), t0 + Duration::from_secs(20), wall);
        assert_eq!((v.quiet_for, v.link), (Duration::from_secs(8), Link::Down("down".into())));
    }
}
