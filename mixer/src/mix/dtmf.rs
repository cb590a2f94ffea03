//! RFC 4733 telephone events (DTMF) in RTP: decoded into key presses with their start time
//! and duration. The event packets themselves are silence in the recording.
//!
//! Each event is a run of packets with the same RTP timestamp (the event's start) and a
//! growing duration; the end is flagged by the E bit, sent three times. A new timestamp starts
//! a new event, even if the previous one never showed its end (lost packets).

use capture::Timestamp;
use capture::events::{Dtmf, DtmfSource, Side, event_name};
use capture::wire::telephone_event::EventRepr;

/// Key presses kept per direction.
pub const MAX_EVENTS: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Open {
    rtp_ts: u32,
    event: u8,
    start: Timestamp,
    duration: u16,
}

/// What one packet did to the events: an event it ended (its RTP timestamp and duration), one
/// it started (event and RTP timestamp), and that new one ending at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Edges {
    /// The event before, ended by this packet.
    pub ended: Option<(u32, u16)>,
    /// The event this packet started.
    pub started: Option<(u8, u32)>,
    /// The event this packet started, ended by it too.
    pub started_ended: Option<(u32, u16)>,
}

/// The telephone events of one direction.
#[derive(Debug, Default)]
pub struct DtmfTracker {
    open: Option<Open>,
    last_closed_ts: Option<u32>,
    done: Vec<Dtmf>,
    /// Events beyond [`MAX_EVENTS`].
    pub dropped: u64,
}

impl DtmfTracker {
    /// Accounts one telephone-event packet (duplicates already removed).
    pub fn packet(&mut self, side: Side, rtp_ts: u32, time: Timestamp, payload: &[u8], clock: u32) -> Edges {
        let mut edges = Edges::default();
        let Ok(ev) = EventRepr::parse(payload) else { return edges };
        match &mut self.open {
            Some(o) if o.rtp_ts == rtp_ts && o.event == ev.event => {
                o.duration = o.duration.max(ev.duration);
                if ev.end {
                    edges.ended = self.close(side, clock);
                }
            }
            Some(_) => {
                edges.ended = self.close(side, clock);
                edges.started = Some((ev.event, rtp_ts));
                edges.started_ended = self.start(side, rtp_ts, time, ev, clock);
            }
            // The end packets of an event already closed repeat its timestamp: not a new one.
            None if self.last_closed_ts == Some(rtp_ts) => {}
            None => {
                edges.started = Some((ev.event, rtp_ts));
                edges.started_ended = self.start(side, rtp_ts, time, ev, clock);
            }
        }
        edges
    }

    fn start(&mut self, side: Side, rtp_ts: u32, time: Timestamp, ev: EventRepr, clock: u32) -> Option<(u32, u16)> {
        self.open = Some(Open { rtp_ts, event: ev.event, start: time, duration: ev.duration });
        if ev.end { self.close(side, clock) } else { None }
    }

    /// Closes the open event: its RTP timestamp and duration.
    fn close(&mut self, side: Side, clock: u32) -> Option<(u32, u16)> {
        let o = self.open.take()?;
        self.last_closed_ts = Some(o.rtp_ts);
        if self.done.len() >= MAX_EVENTS {
            self.dropped += 1;
            return Some((o.rtp_ts, o.duration));
        }
        let duration_ms = (u64::from(o.duration) * 1000 / u64::from(clock.max(1))) as u32;
        self.done.push(Dtmf {
            digit: event_name(o.event),
            side,
            time: o.start,
            duration_ms: Some(duration_ms),
            source: DtmfSource::Rfc4733,
        });
        Some((o.rtp_ts, o.duration))
    }

    /// Every event, the one still open included.
    pub fn finish(mut self, side: Side, clock: u32) -> Vec<Dtmf> {
        self.close(side, clock);
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn digits_with_end_retransmissions_and_a_lost_end() {
        let mut t = DtmfTracker::default();
        let ms = |n: i64| Timestamp(n * 1_000_000);
        // "2": three updates, three end packets.
        for (i, (end, dur)) in
            [(false, 160), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)].into_iter().enumerate()
        {
            t.packet(Side::Caller, 1000, ms(100 + 20 * i as i64), &pkt(2, end, dur), 8000);
        }
        // "#": its end never arrives; "5" starts at a new timestamp.
        t.packet(Side::Caller, 5000, ms(600), &pkt(11, false, 160), 8000);
        t.packet(Side::Caller, 5000, ms(620), &pkt(11, false, 800), 8000);
        t.packet(Side::Caller, 9000, ms(900), &pkt(5, false, 160), 8000);
        let d = t.finish(Side::Caller, 8000);
        let digits: Vec<&str> = d.iter().map(|e| e.digit.as_str()).collect();
        assert_eq!(digits, ["2", "#", "5"]);
        assert_eq!(d[0].time, ms(100));
        assert_eq!(d[0].duration_ms, Some(80));
        assert_eq!(d[1].duration_ms, Some(100));
        assert!(d.iter().all(|e| e.source == DtmfSource::Rfc4733 && e.side == Side::Caller));
    }

    #[test]
    fn short_payloads_are_ignored_and_names_cover_all_codes() {
        let mut t = DtmfTracker::default();
        t.packet(Side::Callee, 1, Timestamp(0), &[1, 2], 8000);
        assert!(t.finish(Side::Callee, 8000).is_empty());
        assert_eq!(event_name(10), "*");
        assert_eq!(event_name(15), "D");
        assert_eq!(event_name(16), "flash");
        assert_eq!(event_name(194), "<194>");
    }
}
