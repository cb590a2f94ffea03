//! Where a party's RTP goes on the call's timeline.
//!
//! The rules, which the end-to-end tests hold the recorder to sample by sample:
//!
//! * **RTP time places, arrival time only anchors.** Within a timebase a packet goes at its RTP
//!   timestamp plus the timebase's offset. Jitter, reordering and a burst after a capture stall
//!   change when a packet is seen, never where it goes.
//! * **One anchor per timebase.** A timebase starts with a stream (SSRC, address) or with a
//!   timestamp discontinuity. Its first packets (up to [`PROBATION_PACKETS`], or
//!   [`PROBATION_SPAN`] of RTP time) are held aside, and the least delayed of them ties the
//!   timestamps to the timeline: where that packet arrived, shifted by the *lead* of the mapping
//!   the stream continues (the same side's previous timebase, else the other party's, else none:
//!   capture time). A timebase never starts over its own side's audio or over frames already
//!   written: such a start is moved later, and the record says where it was anchored.
//! * **The floor.** Arrivals feed the least transit (capture time minus RTP time) per block of
//!   2^13 frames (1.024 s) of RTP time, and its minimum over the last [`WINDOW`] blocks (8.2 s).
//!   Network jitter only ever adds delay, so the floor moves with the sender's clock and with
//!   nothing that lasts less than the window (bursty jitter, a capture stall). The floor's change
//!   since the timebase's first window, slewed by at most [`SLEW`] frames per block (about 370
//!   ppm), is the timebase's *drift*. (Network delay that rises and stays up for more than
//!   about 30 s looks like a slower clock and is followed the same way.)
//! * **Only relative drift is corrected, only by inserting silence.** Two parties whose clocks
//!   run alike (even unlike the capture clock, as with tcpreplay at 2x) need nothing. When one
//!   party's drift (carried over its timebases, minus the silence already inserted) exceeds the
//!   other's by [`SLIP_SOFT`] (8 ms), the difference is inserted as silence into the party that
//!   fell behind, at its next talkspurt start or gap; by [`SLIP_HARD`] (16 ms), at its next
//!   packet. Nothing is removed: the fastest clock sets the pace. So with no drift nothing is
//!   ever inserted, whatever the jitter, and with drift the parties stay within 25 ms of their
//!   alignment at the start: 16 ms, the drift over a block, and the floor's lag (at most the
//!   drift over one window, for each party).
//! * **Late is not lost, unless it is.** A packet whose position is still open is placed
//!   however late it arrives; one whose position was already written is counted late and its
//!   samples become a logged gap ([`crate::mix::edits`]).
//! * **Timebase discontinuities.** A packet whose timestamp puts it more than `max_skew` ahead
//!   of what its arrival allows starts a new timebase (a timestamp jump, a sequence restart). One
//!   more than `max_skew` behind is placed by its timestamp while its place is open (a burst
//!   after a stall). Once its place is written it is held with the packets after it: if they
//!   keep the same offset at their normal pace for [`BEHIND_PACE`] the sender's timestamps went
//!   back (a clock reset without a new SSRC) and they start a new timebase, nothing lost; if the
//!   offset shrinks (a burst catching up) they were late, and are logged so.
//!
//! Sans-IO and clock-free: every input is a packet's capture time in frames since the call's
//! origin; the caller places the samples.

use capture::Timestamp;

use crate::mix::edits::{Anchor, AnchorReason, GapCause, Slip, StreamEdits};
use crate::mix::timeline::Law;

/// Frames of RTP time per floor block: 2^13 = 8192, 1.024 s.
const BLOCK_SHIFT: u32 = 13;
/// Blocks in the floor's window.
pub(crate) const WINDOW: usize = 8;
/// Largest change of the drift per block (frames): about 370 ppm, above the ±300 ppm of
/// real crystals. A lasting extra delay (congestion for longer than the window) moves the
/// drift this slowly: it takes some 30 s of it to make a correction.
pub(crate) const SLEW: i64 = 3;
/// Relative drift (frames) corrected at the next silence: 8 ms.
pub(crate) const SLIP_SOFT: i64 = 64;
/// Relative drift (frames) corrected at the next packet: 16 ms.
pub(crate) const SLIP_HARD: i64 = 128;
/// Packets held aside to choose a timebase's anchor.
pub(crate) const PROBATION_PACKETS: usize = 25;
/// RTP time (frames) over which a timebase's anchor is chosen: 500 ms.
pub(crate) const PROBATION_SPAN: i64 = 4000;
/// Payload bytes held aside at most while choosing an anchor.
const PROBATION_BYTES: usize = 6000;
/// Packets that are late by the same offset (within this many frames, 100 ms) ...
const BEHIND_TOLERANCE: i64 = 800;
/// ... for this long in capture time (100 ms) show timestamps that went back.
pub(crate) const BEHIND_PACE: i64 = 800;
/// Shortest RTP time (frames) over which a clock rate is reported: 30 s.
const PPM_SPAN: i64 = 240_000;

/// One audio packet as the clock sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pkt {
    /// Capture time.
    pub(crate) time: Timestamp,
    /// Capture time in frames since the call's origin.
    pub(crate) now: i64,
    pub(crate) ts: u32,
    pub(crate) seq: u16,
    pub(crate) marker: bool,
    /// Next in sequence (not a reordered or probationary packet).
    pub(crate) in_order: bool,
    /// Positions it covers (8 kHz samples).
    pub(crate) len: i64,
    /// Codes of its payload.
    pub(crate) law: Law,
}

/// What the clock needs to know about the rest of the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env {
    /// Frames already written to the file.
    pub(crate) written: i64,
    /// One past the last frame this side placed (0 if none).
    pub(crate) high: i64,
    /// Arrival offsets beyond this (frames) are timestamp discontinuities.
    pub(crate) max_skew: i64,
    /// The other party's mapping (lead, drift), if it has one.
    pub(crate) other: Option<(i64, i64)>,
    /// Nothing of the call has been placed yet: the first anchor may move the origin. The
    /// other party's held packets, if it is choosing its anchor too, start here
    /// ([`Clock::held_start`]): the origin is the earlier of the two.
    pub(crate) rebase: Option<Option<i64>>,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Place its samples at this frame.
    Place(i64),
    /// Its place (this frame) is long written: late.
    Late(i64),
    /// Held aside while the timebase's anchor is chosen.
    Held,
    /// The anchor is chosen: place every held packet ([`Clock::take_held`]), this one
    /// included. The call's origin moves this many frames later (0 unless `Env::rebase`).
    Release(i64),
    /// The packets held as suspects were late after all ([`Clock::take_rejected`]); route
    /// this one again.
    Reject,
}

/// A packet held aside during a probation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) pkt: Pkt,
    ext: i64,
    /// Where its payload is in the held bytes (its length in bytes is not always its
    /// samples: Opus).
    start: usize,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Probation {
    reason: Option<AnchorReason>,
    held: Vec<Held>,
    bytes: Vec<u8>,
    last_ts: u32,
    ext_last: i64,
    /// Where the side's progress is assumed to be meanwhile.
    provisional: i64,
    /// The mapping the timebase continues: lead and drift.
    lead: i64,
    n: i64,
    /// Held because they are behind the current timebase by a discontinuity and late for it:
    /// (capture frame, transit) of the first. The timebase is kept until the decision.
    suspect: Option<(i64, i64)>,
}

/// The least-transit tracker of one timebase. What every packet touches is inline; the
/// window, touched once per block, is boxed.
#[derive(Debug, Clone)]
struct Floor {
    block: Option<i64>,
    block_min: i64,
    /// The minimum of the window's block minima.
    window_min: i64,
    w: Box<Window>,
}

/// The closed blocks of a floor and what follows from them.
#[derive(Debug, Clone)]
struct Window {
    mins: [i64; WINDOW],
    len: usize,
    next: usize,
    blocks: u32,
    reference: Option<(i64, i64)>,
    drift: i64,
    last: Option<(i64, i64)>,
}

impl Floor {
    fn new() -> Floor {
        Floor {
            block: None,
            block_min: i64::MAX,
            window_min: i64::MAX,
            w: Box::new(Window {
                mins: [i64::MAX; WINDOW],
                len: 0,
                next: 0,
                blocks: 0,
                reference: None,
                drift: 0,
                last: None,
            }),
        }
    }

    /// The floor now: the window's minimum and the open block's (`None` before any sample).
    fn current(&self) -> Option<i64> {
        self.block.map(|_| self.window_min.min(self.block_min))
    }

    /// One transit sample; true when it closed a block (the drift may have changed).
    #[inline]
    fn add(&mut self, ext: i64, transit: i64) -> bool {
        let b = ext >> BLOCK_SHIFT;
        match self.block {
            Some(open) if b > open => {
                self.close(open);
                self.block = Some(b);
                self.block_min = transit;
                true
            }
            Some(_) => {
                self.block_min = self.block_min.min(transit);
                false
            }
            None => {
                self.block = Some(b);
                self.block_min = transit;
                false
            }
        }
    }

    #[cold]
    fn close(&mut self, block: i64) {
        let w = &mut *self.w;
        w.mins[w.next] = self.block_min;
        w.next = (w.next + 1) % WINDOW;
        w.len = (w.len + 1).min(WINDOW);
        w.blocks += 1;
        let f = w.mins[..w.len].iter().copied().fold(i64::MAX, i64::min);
        self.window_min = f;
        let at = (block + 1) << BLOCK_SHIFT;
        match w.reference {
            None if w.blocks as usize >= WINDOW => w.reference = Some((f, at)),
            None => {}
            Some((r, _)) => {
                w.drift = (f - r).clamp(w.drift - SLEW, w.drift + SLEW);
                w.last = Some((f, at));
            }
        }
    }

    /// The sender's clock rate against the capture clock, in ppm, once measured long enough.
    fn ppm(&self) -> Option<f64> {
        let ((r, r_at), (f, at)) = (self.w.reference?, self.w.last?);
        let span = at - r_at;
        (span >= PPM_SPAN).then(|| -((f - r) as f64) / span as f64 * 1e6)
    }
}

/// One timebase: RTP timestamps of one stream tied to the timeline.
#[derive(Debug, Clone)]
struct Timebase {
    last_ts: u32,
    /// Extended timestamp (frames since the timebase's first packet) of the newest packet.
    ext_last: i64,
    /// Position of extended timestamp 0, the silence inserted included.
    offset: i64,
    /// Packets older than `slip_from` were placed before the last slip of `slip_len` frames.
    slip_from: i64,
    slip_len: i64,
    /// One past the last frame placed.
    end: i64,
    last_seq: u16,
    floor: Floor,
    /// Silence inserted into this timebase.
    inserted: i64,
}

impl Timebase {
    fn ext(&self, ts: u32) -> i64 {
        self.ext_last + i64::from(ts.wrapping_sub(self.last_ts) as i32)
    }

    fn pos(&self, ext: i64) -> i64 {
        let slipped = if ext < self.slip_from { self.slip_len } else { 0 };
        ext + self.offset - slipped
    }
}

/// Flags the side sets between packets that explain the next gap.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Hints {
    /// The side was put in a state where it sends nothing (hold).
    pub(crate) hold: bool,
    /// The capture dropped packets while the call was up.
    pub(crate) dropped: bool,
    /// The sequence number of the side's latest SRTP packet that failed authentication (not
    /// decoded): the gap it leaves is named for it.
    pub(crate) auth_failed: Option<u16>,
    /// The side sent telephone events or comfort noise (its last such sequence number).
    pub(crate) signal_seq: Option<u16>,
}

/// The placement state of one side of a call.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    tb: Option<Timebase>,
    probation: Option<Box<Probation>>,
    /// The drift carried over from earlier timebases (frames).
    n_base: i64,
    /// Silence to insert at the next chance.
    pending: i64,
    /// A block closed since the last look: the drift may have changed.
    block_closed: bool,
    /// The mapping of the last timebase that ended (lead, drift), for the next one to continue.
    last_mapping: Option<(i64, i64)>,
    /// Something of this side was placed.
    placed: bool,
    pub(crate) hints: Hints,
}

impl Clock {
    /// The mapping this side's next timebase (or the other party's first) continues: the
    /// lead of its least delayed packets over capture time, and its drift.
    pub(crate) fn mapping(&self) -> Option<(i64, i64)> {
        match (&self.tb, &self.probation) {
            (Some(tb), _) => tb.floor.current().map(|f| (tb.offset - f, self.drift())).or(self.last_mapping),
            (None, Some(p)) => Some((p.lead, p.n)),
            (None, None) => self.last_mapping,
        }
    }

    /// Where RTP timestamp `ts` of the current timebase lies on the timeline, if it has one.
    pub(crate) fn position_of(&self, ts: u32) -> Option<i64> {
        let tb = self.tb.as_ref()?;
        Some(tb.pos(tb.ext(ts)))
    }

    /// Whether this side has a mapping of its own (its next timebase continues it).
    pub(crate) fn has_mapping(&self) -> bool {
        self.tb.is_some() || self.probation.is_some() || self.last_mapping.is_some()
    }

    /// This side's drift so far (frames), net of the silence inserted; `None` before its
    /// timebase has a reference window.
    pub(crate) fn measured_drift(&self) -> Option<i64> {
        let tb = self.tb.as_ref()?;
        tb.floor.w.reference.map(|_| self.drift())
    }

    fn drift(&self) -> i64 {
        self.tb.as_ref().map_or(self.n_base, |tb| self.n_base + tb.floor.w.drift - tb.inserted)
    }

    /// Where settling may assume this side has got to (`None`: it has not started).
    pub(crate) fn progress(&self, high: i64) -> Option<i64> {
        match &self.probation {
            Some(p) if !self.placed => Some(p.provisional),
            _ if self.placed || self.tb.is_some() => Some(high),
            _ => None,
        }
    }

    /// Asks for `frames` of silence at this side's next chance (0: none).
    pub(crate) fn set_pending(&mut self, frames: i64) {
        self.pending = frames.max(0);
    }

    /// Whether a block closed since the last call.
    pub(crate) fn take_block_closed(&mut self) -> bool {
        std::mem::take(&mut self.block_closed)
    }

    /// Whether packets are held aside.
    pub(crate) fn holding(&self) -> bool {
        self.probation.is_some()
    }

    /// Forgets the held packets (the side turned out to be encrypted).
    pub(crate) fn discard_held(&mut self) {
        self.probation = None;
    }

    /// The sender's measured clock rate, for the record.
    pub(crate) fn ppm(&self) -> Option<f64> {
        self.tb.as_ref().and_then(|tb| tb.floor.ppm())
    }

    /// Where the held packets would start if the anchor were chosen now (the first stream of
    /// the call: for the origin).
    pub(crate) fn held_start(&self) -> Option<i64> {
        let p = self.probation.as_ref()?;
        let transit = p.held.iter().map(|h| h.pkt.now - h.ext).min()?;
        let first = p.held.iter().map(|h| h.ext).min()?;
        Some(first + transit + p.lead)
    }

    /// Moves every held capture time by `frames` (the call's origin moved).
    pub(crate) fn rebase(&mut self, frames: i64) {
        if let Some(p) = self.probation.as_mut() {
            for h in &mut p.held {
                h.pkt.now -= frames;
            }
            p.provisional -= frames;
        }
    }

    /// A new stream (SSRC or address) starts on this side: its first packet comes next. Held
    /// packets of the stream before must have been released and placed first.
    pub(crate) fn new_stream(&mut self) {
        debug_assert!(self.probation.is_none(), "held packets of the previous stream");
        self.probation = None;
        self.end_timebase();
    }

    fn end_timebase(&mut self) {
        self.last_mapping = self.mapping();
        if let Some(tb) = self.tb.take() {
            self.n_base += tb.floor.w.drift - tb.inserted;
        }
        self.pending = 0;
    }

    /// Routes one audio packet. `payload` is copied aside when the packet is held.
    pub(crate) fn arrive(&mut self, p: Pkt, payload: &[u8], env: &Env, log: &mut StreamEdits) -> Route {
        if let Some(route) = self.suspect(p, env) {
            return route;
        }
        if self.probation.is_some() {
            return self.hold(p, payload, env, log);
        }
        let Some(tb) = self.tb.as_ref() else {
            self.begin(AnchorReason::Start, p.now, env);
            return self.hold(p, payload, env, log);
        };
        let ext = tb.ext(p.ts);
        let transit = p.now - ext;
        let floor = tb.floor.current().unwrap_or(transit);
        if transit < floor - env.max_skew {
            // Ahead of anything its arrival allows: a new timebase (jump, restart).
            self.end_timebase();
            self.begin(AnchorReason::TimestampJump, p.now, env);
            return self.hold(p, payload, env, log);
        }
        let pos = tb.pos(ext);
        if transit > floor + env.max_skew && pos + p.len <= env.written {
            if !p.in_order {
                return Route::Late(pos);
            }
            // Behind by a discontinuity and too late for its place: a burst after a stall, or
            // timestamps that went back. Held until the packets after it tell which.
            self.begin(AnchorReason::TimestampsBack, p.now, env);
            if let Some(pr) = self.probation.as_mut() {
                pr.suspect = Some((p.now, transit));
            }
            return self.hold(p, payload, env, log);
        }
        Route::Place(self.account(p, ext, log))
    }

    /// While packets behind by a discontinuity are held: `Some` route when this packet
    /// decides (or is part of) it, `None` to route it normally.
    fn suspect(&mut self, p: Pkt, env: &Env) -> Option<Route> {
        let pr = self.probation.as_ref()?;
        let (since, t0) = pr.suspect?;
        let tb = self.tb.as_ref()?;
        let ext = tb.ext(p.ts);
        let transit = p.now - ext;
        let placeable = tb.pos(ext) + p.len > env.written;
        let full = pr.held.len() >= PROBATION_PACKETS || pr.bytes.len() >= PROBATION_BYTES;
        if p.in_order && ((transit - t0).abs() > BEHIND_TOLERANCE || placeable || full) {
            // Not the same offset any more (a burst catching up, or back to normal): the held
            // packets were late after all.
            return Some(Route::Reject);
        }
        if p.in_order && p.now - since >= BEHIND_PACE {
            // Arriving at their normal pace with the same offset: the timestamps went back.
            self.end_timebase();
            if let Some(pr) = self.probation.as_mut() {
                pr.suspect = None;
            }
        }
        None
    }

    /// Whether the held packets are suspects (see [`Clock::take_rejected`]).
    pub(crate) fn suspecting(&self) -> bool {
        self.probation.as_ref().is_some_and(|p| p.suspect.is_some())
    }

    /// The packets held as suspects, and where the timebase they turned out to belong to puts
    /// them (their place is written: they are late).
    pub(crate) fn take_rejected(&mut self) -> Vec<(i64, i64)> {
        let (Some(tb), Some(p)) = (self.tb.as_ref(), self.probation.take()) else { return Vec::new() };
        p.held.iter().map(|h| (tb.pos(tb.ext(h.pkt.ts)), h.pkt.len)).collect()
    }

    /// The timebase's bookkeeping for a packet placed at its timestamp; returns its position.
    fn account(&mut self, p: Pkt, ext: i64, log: &mut StreamEdits) -> i64 {
        let hints = self.hints;
        let Some(tb) = self.tb.as_mut() else { return 0 };
        let mut pos = tb.pos(ext);
        if p.in_order {
            let natural = pos - tb.end;
            // What happened since the last in-order packet explains its gap; a hold explains
            // the first gap after it, however long the held party kept sending.
            self.hints.dropped = false;
            self.hints.signal_seq = None;
            // Packets held aside are accounted later: only a packet past the failed one settles it.
            if hints.auth_failed.is_some_and(|f| p.seq.wrapping_sub(f) < 0x8000) {
                self.hints.auth_failed = None;
            }
            if natural > 0 {
                self.hints.hold = false;
                let since = hints.signal_seq.filter(|s| s.wrapping_sub(tb.last_seq) < 0x8000).unwrap_or(tb.last_seq);
                let missing = p.seq.wrapping_sub(since) > 1;
                let cause = match (missing, hints.signal_seq.is_some()) {
                    (true, _)
                        if hints.auth_failed.is_some_and(|f| {
                            let d = f.wrapping_sub(since);
                            d > 0 && d < p.seq.wrapping_sub(since)
                        }) =>
                    {
                        GapCause::AuthFailed
                    }
                    (true, _) if hints.dropped => GapCause::CaptureDrop,
                    (true, _) => GapCause::Lost,
                    (false, true) => GapCause::Signal,
                    (false, false) if hints.hold => GapCause::Hold,
                    (false, false) => GapCause::NotSent,
                };
                log.gap(tb.end, natural, cause);
            }
            if self.pending > 0 && (p.marker || natural > 0 || self.pending >= SLIP_HARD) {
                let d = std::mem::take(&mut self.pending);
                log.slip(Slip {
                    time: p.time,
                    frame: pos,
                    inserted: d as u32,
                    removed: 0,
                    in_silence: p.marker || natural > 0,
                });
                tb.slip_from = ext;
                tb.slip_len = d;
                tb.offset += d;
                tb.inserted += d;
                pos += d;
            }
            tb.ext_last = ext;
            tb.last_ts = p.ts;
            tb.last_seq = p.seq;
        } else {
            log.filled(pos, p.len);
        }
        if tb.floor.add(ext, p.now - ext) {
            self.block_closed = true;
        }
        tb.end = tb.end.max(pos + p.len);
        self.placed = true;
        pos
    }

    /// Starts a probation: the packets that follow are held until the anchor is chosen.
    fn begin(&mut self, reason: AnchorReason, now: i64, env: &Env) {
        let (lead, n) = self.mapping().or(env.other).unwrap_or((0, 0));
        let mut p = self.probation.take().unwrap_or_else(|| {
            Box::new(Probation {
                held: Vec::with_capacity(PROBATION_PACKETS + 1),
                bytes: Vec::with_capacity(PROBATION_BYTES + 480),
                ..Probation::default()
            })
        });
        p.reason = Some(reason);
        p.held.clear();
        p.bytes.clear();
        p.provisional = (now + lead - PROBATION_SPAN).max(env.written);
        p.lead = lead;
        p.n = n;
        p.suspect = None;
        self.probation = Some(p);
    }

    fn hold(&mut self, pkt: Pkt, payload: &[u8], env: &Env, log: &mut StreamEdits) -> Route {
        let Some(p) = self.probation.as_mut() else { return Route::Held };
        let ext = if p.held.is_empty() { 0 } else { p.ext_last + i64::from(pkt.ts.wrapping_sub(p.last_ts) as i32) };
        if p.held.is_empty() || ext > p.ext_last {
            p.ext_last = ext;
            p.last_ts = pkt.ts;
        }
        p.held.push(Held { pkt, ext, start: p.bytes.len(), bytes: payload.len() });
        p.bytes.extend_from_slice(payload);
        let first = p.held.iter().map(|h| h.ext).min().unwrap_or(0);
        let done = p.suspect.is_none()
            && (p.held.len() >= PROBATION_PACKETS
                || p.bytes.len() >= PROBATION_BYTES
                || p.ext_last - first >= PROBATION_SPAN);
        if done { Route::Release(self.release(env, log)) } else { Route::Held }
    }

    /// Chooses the anchor of the held packets and opens the timebase (the packets stay held
    /// until [`Clock::take_held`]). Returns how far the call's origin moves (see
    /// [`Route::Release`]).
    pub(crate) fn release(&mut self, env: &Env, log: &mut StreamEdits) -> i64 {
        let Some(p) = self.probation.as_mut() else { return 0 };
        let Some(&least) = p.held.iter().min_by_key(|h| (h.pkt.now - h.ext, h.ext)) else {
            self.probation = None;
            return 0;
        };
        let Some(&head) = p.held.iter().min_by_key(|h| h.ext) else { return 0 };
        let first = head.ext;
        // Where the least delayed packet's arrival, shifted by the lead of the mapping this
        // timebase continues, puts the timestamps.
        let wanted = least.pkt.now - least.ext + p.lead;
        let (offset, rebase) = if let Some(other) = env.rebase.filter(|_| !self.placed) {
            // The recording starts with the earlier of the parties' first packets.
            let rebase = (first + wanted).min(other.unwrap_or(i64::MAX));
            for h in &mut p.held {
                h.pkt.now -= rebase;
            }
            (wanted - rebase, rebase)
        } else {
            (wanted.max(env.high - first).max(env.written - first).max(-first), 0)
        };
        // Moved later than asked (not to overlap): the start is off by that much, and stays
        // so (a start is never corrected); the drift is what it continues.
        let moved = offset - (wanted - rebase);
        self.n_base = p.n;
        self.pending = 0;
        self.tb = Some(Timebase {
            last_ts: p.last_ts,
            ext_last: p.ext_last,
            offset,
            slip_from: i64::MIN,
            slip_len: 0,
            end: offset + first,
            last_seq: p.held[0].pkt.seq.wrapping_sub(1),
            floor: Floor::new(),
            inserted: 0,
        });
        log.anchor(Anchor {
            time: head.pkt.time,
            rtp_ts: head.pkt.ts,
            frame: offset + first,
            reason: p.reason.take().unwrap_or(AnchorReason::Start),
            moved,
        });
        rebase
    }

    /// The packets held during the probation that just ended, with their payloads, in
    /// arrival order. Place each at [`Clock::place_held`].
    pub(crate) fn take_held(&mut self) -> Option<(Vec<Held>, Vec<u8>)> {
        self.tb.as_ref()?;
        self.probation.take().map(|p| (p.held, p.bytes))
    }

    /// The position of a held packet (its bookkeeping done).
    pub(crate) fn place_held(&mut self, h: &Held, log: &mut StreamEdits) -> i64 {
        self.account(h.pkt, h.ext, log)
    }
}

impl Held {
    /// Where its payload is in the held bytes.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.bytes
    }
}

/// Compares the parties' drift (both active, both measured) and asks the one that fell behind
/// by more than [`SLIP_SOFT`] for the difference as silence.
pub(crate) fn balance(sides: [&mut Clock; 2], active: bool) {
    let [a, b] = sides;
    let d = match (a.measured_drift(), b.measured_drift()) {
        (Some(na), Some(nb)) if active => na - nb,
        _ => 0,
    };
    a.set_pending(if d > SLIP_SOFT { d } else { 0 });
    b.set_pending(if -d > SLIP_SOFT { -d } else { 0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic uniform source in [0, 1).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// How one party's packets travel: sender clock (ppm), extra delay per packet (ms), and
    /// a stall (from, until) in ms of send time during which packets are held and then come
    /// out together.
    struct Path {
        ppm: f64,
        start_ms: f64,
        delay: Box<dyn FnMut(u32) -> f64>,
        stall: Option<(f64, f64)>,
        /// From this packet on, the sender's timestamps are 40 s lower (a clock reset).
        ts_back_at: Option<u32>,
    }

    #[derive(Default)]
    struct Party {
        clock: Clock,
        edits: StreamEdits,
        high: i64,
        /// Packet index -> position (None: late).
        pos: Vec<Option<i64>>,
    }

    struct Sim {
        parties: [Party; 2],
        origin: i64,
        written: i64,
        hold: i64,
    }

    impl Sim {
        fn progress(&self) -> Option<(i64, i64)> {
            let p: Vec<i64> = self.parties.iter().filter_map(|p| p.clock.progress(p.high)).collect();
            Some((*p.iter().min()?, *p.iter().max()?))
        }

        fn settle(&mut self) {
            if let Some((lo, hi)) = self.progress() {
                self.written = self.written.max((lo - 1280).max(hi - self.hold));
            }
        }

        fn put(&mut self, i: usize, k: usize, pos: i64, len: i64) {
            let late = pos + len <= self.written;
            let p = &mut self.parties[i];
            if late {
                p.edits.late(pos, len);
            } else {
                p.high = p.high.max(pos + len);
            }
            p.pos[k] = (!late).then_some(pos);
        }
    }

    /// Runs `n` packets of 20 ms per party; returns the parties.
    fn run(paths: &mut [Path; 2], n: u32, hold: i64) -> [Party; 2] {
        let mut arrivals: Vec<(i64, usize, u32)> = Vec::new();
        for (i, path) in paths.iter_mut().enumerate() {
            let mut last = i64::MIN;
            for k in 0..n {
                let send = path.start_ms + f64::from(k) * 20.0 / (1.0 + path.ppm / 1e6);
                let mut at = send + (path.delay)(k);
                if let Some((from, until)) = path.stall
                    && (from..until).contains(&send)
                {
                    at = until + (send - from) / 100.0;
                }
                // FIFO: nothing overtakes, 10 µs apart at least.
                let at_ns = ((at * 1e6) as i64).max(last + 10_000);
                last = at_ns;
                arrivals.push((at_ns, i, k));
            }
        }
        arrivals.sort();
        let mut sim = Sim { parties: Default::default(), origin: arrivals[0].0, written: 0, hold };
        for p in &mut sim.parties {
            p.pos = vec![None; n as usize];
        }
        let ts0 = [1_000_000u32, 4_000_000_000u32];
        for &(at, i, k) in &arrivals {
            let pkt = Pkt {
                time: Timestamp(at),
                now: (at - sim.origin) / 125_000,
                ts: ts0[i].wrapping_add(k * 160).wrapping_sub(match paths[i].ts_back_at {
                    Some(at) if k >= at => 320_000,
                    _ => 0,
                }),
                seq: k as u16,
                marker: k == 0,
                in_order: true,
                len: 160,
                law: Law::Ulaw,
            };
            loop {
                let env = Env {
                    written: sim.written,
                    high: sim.parties[i].high,
                    max_skew: 8000,
                    other: sim.parties[1 - i].clock.mapping(),
                    rebase: sim.parties.iter().all(|p| p.high == 0).then(|| sim.parties[1 - i].clock.held_start()),
                };
                let p = &mut sim.parties[i];
                match p.clock.arrive(pkt, &[0u8; 160], &env, &mut p.edits) {
                    Route::Place(pos) => sim.put(i, k as usize, pos, 160),
                    Route::Late(pos) => {
                        sim.parties[i].edits.late(pos, 160);
                        sim.parties[i].pos[k as usize] = None;
                    }
                    Route::Held => {}
                    Route::Release(rebase) => {
                        sim.origin += rebase * 125_000;
                        sim.parties[1 - i].clock.rebase(rebase);
                        let p = &mut sim.parties[i];
                        let (held, _) = p.clock.take_held().unwrap();
                        for h in &held {
                            let p = &mut sim.parties[i];
                            let pos = p.clock.place_held(h, &mut p.edits);
                            sim.put(i, h.pkt.seq as usize, pos, 160);
                        }
                    }
                    Route::Reject => {
                        let p = &mut sim.parties[i];
                        for (pos, len) in p.clock.take_rejected() {
                            p.edits.late(pos, len);
                        }
                        continue;
                    }
                }
                break;
            }
            if sim.parties[i].clock.take_block_closed() {
                let [a, b] = &mut sim.parties;
                balance([&mut a.clock, &mut b.clock], true);
            }
            sim.settle();
        }
        sim.parties
    }

    /// A party with a true clock, starting at `start_ms`, its packets delayed by `delay`.
    fn path(start_ms: f64, delay: Box<dyn FnMut(u32) -> f64>) -> Path {
        Path { ppm: 0.0, start_ms, delay, stall: None, ts_back_at: None }
    }

    fn uniform(seed: u64, max_ms: f64) -> Box<dyn FnMut(u32) -> f64> {
        let mut r = Lcg(seed);
        Box::new(move |_| r.next() * max_ms)
    }

    /// Bursts of 40-60 ms extra delay lasting 0.5-3 s, 2-8 s apart.
    fn bursty(seed: u64) -> Box<dyn FnMut(u32) -> f64> {
        let mut r = Lcg(seed);
        let mut until_change = 0u32;
        let mut bad = false;
        let mut level = 0.0;
        Box::new(move |_| {
            if until_change == 0 {
                bad = !bad;
                level = 40.0 + 20.0 * r.next();
                until_change = if bad { 25 + (r.next() * 125.0) as u32 } else { 100 + (r.next() * 300.0) as u32 };
            }
            until_change -= 1;
            if bad { level - 5.0 * r.next() } else { 3.0 * r.next() }
        })
    }

    /// Every packet placed, each party contiguous by RTP time (no slip), anchored near where
    /// its least delayed early packets put it.
    fn assert_untouched(parties: &[Party; 2]) {
        for (i, p) in parties.iter().enumerate() {
            assert_party_untouched(i, p);
        }
    }

    fn assert_party_untouched(i: usize, p: &Party) {
        assert!(p.edits.slips.is_empty(), "party {i}: {:?}", &p.edits.slips[..p.edits.slips.len().min(5)]);
        assert_eq!(p.edits.late_samples, 0, "party {i}");
        let first = p.pos[0].unwrap();
        for (k, pos) in p.pos.iter().enumerate() {
            assert_eq!(*pos, Some(first + 160 * k as i64), "party {i} packet {k}");
        }
    }

    #[test]
    fn no_drift_means_no_slip_whatever_the_jitter() {
        // Ten minutes each, uniform jitter up to 60 ms and bursty jitter up to 60 ms.
        let n = 30_000;
        for seed in 1..4 {
            let mut paths = [path(20.0, uniform(seed, 60.0)), path(0.0, uniform(seed + 100, 60.0))];
            assert_untouched(&run(&mut paths, n, 5600));
            let mut paths = [path(20.0, bursty(seed)), path(0.0, bursty(seed + 100))];
            assert_untouched(&run(&mut paths, n, 5600));
        }
    }

    #[test]
    fn twenty_seconds_of_congestion_are_not_drift() {
        // One party's packets take 60 ms more for 20 s in the middle of ten minutes.
        let mut r = Lcg(12);
        let congested: Box<dyn FnMut(u32) -> f64> =
            Box::new(move |k| if (5000..6000).contains(&k) { 60.0 } else { 0.0 } + 2.0 * r.next());
        let mut paths = [
            Path { ppm: 0.0, start_ms: 20.0, delay: congested, stall: None, ts_back_at: None },
            path(0.0, uniform(13, 2.0)),
        ];
        assert_untouched(&run(&mut paths, 30_000, 5600));
    }

    #[test]
    fn a_common_clock_offset_needs_no_correction() {
        // Both senders 400 ppm fast against the capture clock (or the capture clock slow).
        let mut paths = [
            Path { ppm: 400.0, start_ms: 20.0, delay: uniform(7, 30.0), stall: None, ts_back_at: None },
            Path { ppm: 400.0, start_ms: 0.0, delay: uniform(8, 30.0), stall: None, ts_back_at: None },
        ];
        assert_untouched(&run(&mut paths, 30_000, 5600));
    }

    /// Worst distance (frames) between where each party's packets are and where their send
    /// times put them, relative to the first packet, compared between the parties.
    fn misalignment(parties: &[Party; 2], paths: &[Path; 2]) -> i64 {
        let send = |i: usize, k: usize| {
            ((paths[i].start_ms + k as f64 * 20.0 / (1.0 + paths[i].ppm / 1e6)) * 8.0).round() as i64
        };
        let err = |i: usize, k: usize| parties[i].pos[k].map(|p| p - send(i, k));
        let mut worst = 0;
        for k in (0..parties[0].pos.len()).step_by(50) {
            if let (Some(a), Some(b)) = (err(0, k), err(1, k)) {
                worst = worst.max((a - b).abs());
            }
        }
        worst
    }

    #[test]
    fn drift_is_followed_by_silence_in_the_slower_party_only() {
        for (ppm_a, ppm_b) in [(300.0, -300.0), (-50.0, 50.0), (0.0, 300.0)] {
            let mut paths = [
                Path { ppm: ppm_a, start_ms: 20.0, delay: uniform(3, 20.0), stall: None, ts_back_at: None },
                Path { ppm: ppm_b, start_ms: 0.0, delay: uniform(4, 20.0), stall: None, ts_back_at: None },
            ];
            let parties = run(&mut paths, 30_000, 5600);
            let slower = if ppm_a < ppm_b { 0 } else { 1 };
            assert!(parties[1 - slower].edits.slips.is_empty(), "{ppm_a} {ppm_b}: the faster party is untouched");
            let inserted = parties[slower].edits.inserted as f64;
            // Ten minutes at the relative drift, in samples.
            let expected = (ppm_a - ppm_b).abs() * 1e-6 * 600.0 * 8000.0;
            assert!(
                (inserted - expected).abs() <= 2.0 * SLIP_HARD as f64 + 200.0,
                "{ppm_a} {ppm_b}: {inserted} vs {expected}"
            );
            for p in &parties {
                assert_eq!(p.edits.late_samples, 0);
                // Contiguous by RTP time but for the silence the slips inserted before a packet.
                let first = p.pos[0].unwrap();
                for (k, pos) in p.pos.iter().enumerate() {
                    let mut want = first + 160 * k as i64;
                    for s in &p.edits.slips {
                        if want >= s.frame {
                            want += i64::from(s.inserted);
                        }
                    }
                    assert_eq!(pos.unwrap(), want, "packet {k}");
                }
            }
            let worst = misalignment(&parties, &paths);
            assert!(worst <= SLIP_HARD + 80, "{ppm_a} {ppm_b}: parties {} ms apart", worst as f64 / 8.0);
        }
    }

    #[test]
    fn a_stall_of_one_party_is_kept_up_to_the_hold_and_recorded_beyond() {
        for (stall_ms, kept) in [(500.0, true), (3000.0, false), (10_000.0, false)] {
            let mut paths = [
                Path { stall: Some((20_000.0, 20_000.0 + stall_ms)), ..path(20.0, uniform(5, 5.0)) },
                path(0.0, uniform(6, 5.0)),
            ];
            let parties = run(&mut paths, 3000, 5600);
            if kept {
                assert_untouched(&parties);
                continue;
            }
            let p = &parties[0];
            assert!(p.edits.slips.is_empty());
            let late: Vec<usize> = (0..p.pos.len()).filter(|&k| p.pos[k].is_none()).collect();
            // Only packets of the stall went missing, all of them recorded.
            assert!(!late.is_empty());
            assert!(late.iter().all(|&k| (999..999 + (stall_ms / 20.0) as usize).contains(&k)), "{late:?}");
            assert_eq!(p.edits.late_samples, 160 * late.len() as u64);
            // The rest is contiguous.
            let first = p.pos[0].unwrap();
            for (k, pos) in p.pos.iter().enumerate() {
                if let Some(pos) = pos {
                    assert_eq!(*pos, first + 160 * k as i64);
                }
            }
            assert_eq!(p.edits.gaps.iter().filter(|g| g.cause == GapCause::Late).count(), 1);
        }
    }

    #[test]
    fn timestamps_that_go_back_start_a_new_timebase_and_lose_nothing() {
        let mut paths = [
            Path { ppm: 0.0, start_ms: 20.0, delay: uniform(9, 10.0), stall: None, ts_back_at: Some(1500) },
            path(0.0, uniform(10, 10.0)),
        ];
        let parties = run(&mut paths, 3000, 5600);
        let p = &parties[0];
        assert_eq!(p.edits.late_samples, 0);
        let reasons: Vec<AnchorReason> = p.edits.anchors.iter().map(|a| a.reason).collect();
        assert_eq!(reasons, vec![AnchorReason::Start, AnchorReason::TimestampsBack]);
        let first = p.pos[0].unwrap();
        for (k, pos) in p.pos.iter().enumerate() {
            // Before the reset exactly in place; after it, where capture time puts it (within
            // the jitter of the new anchor), never over the audio before it.
            let want = first + 160 * k as i64;
            let pos = pos.unwrap_or_else(|| panic!("packet {k} placed"));
            if k < 1500 {
                assert_eq!(pos, want, "packet {k}");
            } else {
                assert!((pos - want).abs() <= 80, "packet {k} at {pos}, {want} by capture time");
            }
        }
        assert_party_untouched(1, &parties[1]);
    }

    #[test]
    fn a_stall_of_the_whole_capture_loses_nothing() {
        for stall_ms in [500.0, 1500.0, 3000.0, 10_000.0] {
            let stall = Some((20_000.0, 20_000.0 + stall_ms));
            let mut paths =
                [Path { stall, ..path(20.0, uniform(5, 5.0)) }, Path { stall, ..path(0.0, uniform(6, 5.0)) }];
            assert_untouched(&run(&mut paths, 3000, 5600));
        }
    }
}
