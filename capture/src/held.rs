//! Media that came before the SDP announcing it, kept for a moment.
//!
//! A datagram that looks like RTP or RTCP but goes to no address a call announced is not
//! dropped at once: the SDP that claims it may be captured just after it (a mirror of several
//! switch ports, SIP on another interface than the media, a TCP segment recovered late, a
//! callee sending as soon as it answers). It is kept for [`HOLD`] of capture time; when a SIP
//! message changes the claims, the engine looks at what is kept again and hands on what now
//! belongs to a call, with its own capture time. What ages out, or makes room for newer
//! datagrams beyond `Limits::max_held_media`, is counted as unmatched UDP as before.
//!
//! A flow (source and destination) that has gone on unclaimed for longer than [`HOLD`] is the
//! media of a call whose signalling the capture never saw (one already up when the capture
//! started): its datagrams are counted at once instead of crowding out those of new calls. A
//! flow silent for longer than that starts afresh (its ports may serve a new call).
//!
//! Copies go into buffers kept for reuse: once the hold has been full, its copies do not
//! allocate (the table of unclaimed flows grows up to its cap, then starts over).

use std::collections::VecDeque;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::time::Timestamp;
use crate::transport::decode::{Datagram, LinkType};

/// How long (capture time) a datagram is kept for an SDP that may still claim it: 500 ms,
/// longer than a multi-interface capture's merge hold (300 ms) and a TCP retransmission's
/// first timeout (200 ms).
pub const HOLD: i64 = 500 * 1_000_000;

/// The largest datagram (payload, or frame with evidence captures) kept: an audio packet is
/// far smaller, and a jumbo frame of something else is not worth the copy.
pub const MAX_HELD_BYTES: usize = 2048;

/// Unclaimed flows remembered at most (about 3 MiB); beyond, they are forgotten all at once
/// and each starts afresh.
const MAX_FLOWS: usize = 32_768;

/// When an unclaimed flow's datagrams came.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: Timestamp,
    last: Timestamp,
}

/// One datagram kept, and the frame it came in (evidence captures).
#[derive(Debug)]
struct Held {
    time: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    vlan: Option<u16>,
    depth: u8,
    truncated: bool,
    reassembled: bool,
    /// The payload, then the frame (if kept): `frame_at..`.
    bytes: Vec<u8>,
    frame_at: usize,
    link: Option<LinkType>,
    /// Handed on (or counted) already: its buffer went back to the spares.
    gone: bool,
}

/// Datagrams kept for a moment, oldest first.
#[derive(Debug, Default)]
pub(crate) struct HeldMedia {
    held: VecDeque<Held>,
    /// Entries still kept (not `gone`).
    live: usize,
    spare: Vec<Vec<u8>>,
    max: usize,
    /// Unclaimed flows of the datagrams offered.
    flows: FxHashMap<(SocketAddr, SocketAddr), Seen>,
}

/// What [`HeldMedia::keep`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Kept; this many older datagrams went to make room.
    Held { evicted: u64 },
    /// Not kept: its flow has gone on unclaimed for longer than [`HOLD`].
    Stale,
}

/// What [`HeldMedia::take`] hands back: a kept datagram, borrowed from its buffer.
pub(crate) struct Taken<'a> {
    pub(crate) time: Timestamp,
    pub(crate) datagram: Datagram<'a>,
    pub(crate) frame: Option<(LinkType, &'a [u8])>,
}

impl HeldMedia {
    /// Keeps at most `max` datagrams (0: none).
    pub(crate) fn new(max: usize) -> HeldMedia {
        HeldMedia { max, ..HeldMedia::default() }
    }

    /// Datagrams kept now.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether `payload` is worth keeping: RTP or RTCP by its version bits, small enough.
    #[inline]
    pub(crate) fn wants(&self, payload: &[u8], frame: Option<&[u8]>) -> bool {
        self.max > 0
            && payload.len() >= 8
            && payload[0] >> 6 == 2
            && payload.len() + frame.map_or(0, <[u8]>::len) <= MAX_HELD_BYTES
    }

    /// Keeps `d` (captured at `time`, in `frame` for evidence captures) unless its flow is
    /// stale; older datagrams that had to go to make room are counted unmatched by the caller.
    pub(crate) fn keep(&mut self, time: Timestamp, d: &Datagram<'_>, frame: Option<(LinkType, &[u8])>) -> Kept {
        if self.flows.len() >= MAX_FLOWS {
            self.flows.clear();
        }
        let seen = self.flows.entry((d.src, d.dst)).or_insert(Seen { first: time, last: time });
        if time.since(seen.last) > HOLD {
            seen.first = time;
        }
        seen.last = seen.last.max(time);
        if time.since(seen.first) > HOLD {
            return Kept::Stale;
        }
        let mut evicted = 0;
        while self.live >= self.max {
            if self.pop_oldest() {
                evicted += 1;
            }
        }
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(d.payload);
        let frame_at = bytes.len();
        if let Some((_, f)) = frame {
            bytes.extend_from_slice(f);
        }
        self.held.push_back(Held {
            time,
            src: d.src,
            dst: d.dst,
            vlan: d.vlan,
            depth: d.depth,
            truncated: d.truncated,
            reassembled: d.reassembled,
            bytes,
            frame_at,
            link: frame.map(|(l, _)| l),
            gone: false,
        });
        self.live += 1;
        Kept::Held { evicted }
    }

    /// Forgets what was captured more than [`HOLD`] before `now` (all of it with `None`).
    /// Returns how many datagrams went.
    pub(crate) fn expire(&mut self, now: Option<Timestamp>) -> u64 {
        let mut n = 0;
        while let Some(h) = self.held.front() {
            if now.is_some_and(|now| now.since(h.time) <= HOLD) && !h.gone {
                break;
            }
            if self.pop_oldest() {
                n += 1;
            }
        }
        n
    }

    /// Removes the oldest entry; whether it was still kept.
    fn pop_oldest(&mut self) -> bool {
        let Some(h) = self.held.pop_front() else { return false };
        if h.gone {
            return false;
        }
        self.live -= 1;
        self.spare.push(h.bytes);
        true
    }

    /// Indices of the datagrams kept whose destination `claimed` says a call now claims,
    /// oldest first.
    pub(crate) fn claimed(&self, out: &mut Vec<usize>, mut claimed: impl FnMut(SocketAddr) -> bool) {
        out.clear();
        out.extend(self.held.iter().enumerate().filter(|(_, h)| !h.gone && claimed(h.dst)).map(|(i, _)| i));
    }

    /// Hands entry `i` (from [`HeldMedia::claimed`]) to `f` and lets it go.
    pub(crate) fn take(&mut self, i: usize, f: impl FnOnce(Taken<'_>)) {
        let Some(h) = self.held.get_mut(i).filter(|h| !h.gone) else { return };
        h.gone = true;
        self.live -= 1;
        let bytes = std::mem::take(&mut h.bytes);
        let datagram = Datagram {
            src: h.src,
            dst: h.dst,
            payload: &bytes[..h.frame_at],
            vlan: h.vlan,
            truncated: h.truncated,
            depth: h.depth,
            reassembled: h.reassembled,
        };
        let frame = h.link.map(|l| (l, &bytes[h.frame_at..]));
        f(Taken { time: h.time, datagram, frame });
        self.spare.push(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(payload: &[u8], port: u16) -> Datagram<'_> {
        Datagram {
            src: SocketAddr::from(([10, 0, 0, 1], 4000)),
            dst: SocketAddr::from(([10, 0, 0, 2], port)),
            payload,
            vlan: None,
            truncated: false,
            depth: 0,
            reassembled: false,
        }
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn only_small_datagrams_of_rtp_version_two_are_wanted() {
        let h = HeldMedia::new(4);
        assert!(h.wants(&[0x80; 12], None));
        assert!(!h.wants(&[0x40; 12], None), "version 1");
        assert!(!h.wants(&[0x80; 7], None), "too short for RTCP");
        assert!(!h.wants(&[0x80; 1500], Some(&[0; 600])), "frame and payload beyond the cap");
        assert!(!HeldMedia::new(0).wants(&[0x80; 12], None), "holding switched off");
    }

    #[test]
    fn kept_datagrams_age_out_and_the_oldest_make_room() {
        let mut h = HeldMedia::new(2);
        let p = [0x80u8; 20];
        assert_eq!(h.keep(Timestamp(0), &d(&p, 1), None), Kept::Held { evicted: 0 });
        assert_eq!(h.keep(Timestamp(100 * MS), &d(&p, 2), None), Kept::Held { evicted: 0 });
        assert_eq!(h.keep(Timestamp(200 * MS), &d(&p, 3), None), Kept::Held { evicted: 1 }, "the first made room");
        assert_eq!(h.len(), 2);
        assert_eq!(h.expire(Some(Timestamp(600 * MS))), 0, "500 ms old: still kept");
        assert_eq!(h.expire(Some(Timestamp(601 * MS))), 1);
        assert_eq!(h.expire(None), 1);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_flow_unclaimed_for_longer_than_the_hold_is_not_kept_until_it_pauses() {
        let mut h = HeldMedia::new(1000);
        let p = [0x80u8; 20];
        for k in 0..=25 {
            assert_eq!(h.keep(Timestamp(k * 20 * MS), &d(&p, 1), None), Kept::Held { evicted: 0 }, "packet {k}");
        }
        assert_eq!(h.keep(Timestamp(520 * MS), &d(&p, 1), None), Kept::Stale, "520 ms on, unclaimed");
        assert_eq!(h.keep(Timestamp(520 * MS), &d(&p, 2), None), Kept::Held { evicted: 0 }, "another flow");
        // Silent for longer than the hold: its ports may serve a new call.
        assert_eq!(h.keep(Timestamp(1100 * MS), &d(&p, 1), None), Kept::Held { evicted: 0 });
    }

    #[test]
    fn a_claimed_datagram_comes_back_as_it_was_kept_once() {
        let mut h = HeldMedia::new(8);
        let (a, b) = ([0x80u8, 1, 2, 3, 4, 5, 6, 7, 8], [0x80u8, 9, 9, 9, 9, 9, 9, 9]);
        h.keep(Timestamp(5), &d(&a, 1), Some((LinkType::Ethernet, &[7u8; 30])));
        h.keep(Timestamp(6), &d(&b, 2), None);
        let mut idx = Vec::new();
        h.claimed(&mut idx, |dst| dst.port() == 1);
        assert_eq!(idx, [0]);
        let mut seen = Vec::new();
        h.take(0, |t| seen.push((t.time, t.datagram.payload.to_vec(), t.frame.map(|(_, f)| f.len()))));
        h.take(0, |_| panic!("taken twice"));
        assert_eq!(seen, [(Timestamp(5), a.to_vec(), Some(30))]);
        assert_eq!(h.len(), 1);
        h.claimed(&mut idx, |_| true);
        assert_eq!(idx, [1], "the taken one is not offered again");
        assert_eq!(h.expire(None), 1, "only the one still kept is counted");
    }
}
