//! The calls' timers: which one ends a call, and when to look again.
//!
//! Each call has at most one live entry in a min-heap: the earliest capture time at which any
//! of its timers could fire ([`next_check`], a lower bound: media and other activity only
//! push the real time later). An entry is invalidated lazily: a newer entry for the call, or
//! the call's end, leaves the old one to be skipped when it comes up. When an entry comes up
//! the call's timers are evaluated exactly ([`due`]); a call that is not due yet gets a new
//! entry. A sweep therefore costs the calls whose time has come, not every call.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Call, INVITE_RETRANSMIT_MAX, recent_ambiguity};
use crate::call::media::MediaTable;
use crate::events::EndReason;
use crate::limits::Timeouts;
use crate::time::Timestamp;

/// One heap entry: when, which slot, and the sequence number that makes it the call's live one.
type Entry = Reverse<(Timestamp, u32, u64)>;

/// The next time each call needs looking at.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

/// A call's place in the queue.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TimerSlot {
    /// When the call wants looking at.
    want: Timestamp,
    /// Time of its live entry in the heap (never later than `want`), if any.
    queued: Option<Timestamp>,
    /// Sequence number of the live entry.
    seq: u64,
}

impl TimerQueue {
    /// The call in `slot` wants looking at `at`. A new entry only when that is earlier than
    /// its live one; a later time is taken up when the live entry comes up. So a call has at
    /// most one live entry, and the heap holds at most one stale entry per call besides.
    pub(crate) fn schedule(&mut self, timer: &mut TimerSlot, slot: u32, at: Timestamp) {
        timer.want = at;
        if timer.queued.is_some_and(|q| q <= at) {
            return;
        }
        self.next_seq += 1;
        timer.queued = Some(at);
        timer.seq = self.next_seq;
        self.heap.push(Reverse((at, slot, self.next_seq)));
    }

    /// The earliest entry, if it is due at `now`.
    pub(crate) fn pop(&mut self, now: Timestamp) -> Option<(Timestamp, u32, u64)> {
        let Reverse(entry) = *self.heap.peek()?;
        (entry.0 <= now).then(|| self.heap.pop().map(|Reverse(e)| e)).flatten()
    }

    /// The earliest entry.
    pub(crate) fn peek(&self) -> Option<(Timestamp, u32, u64)> {
        self.heap.peek().map(|&Reverse(e)| e)
    }

    /// Drops the earliest entry.
    pub(crate) fn drop_first(&mut self) {
        self.heap.pop();
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl TimerSlot {
    /// Whether `seq` is this call's live entry.
    pub(crate) fn is_live(&self, seq: u64) -> bool {
        self.queued.is_some() && self.seq == seq
    }

    /// Whether the call wants looking at later than its live entry at `at`.
    pub(crate) fn wants_later(&self, at: Timestamp) -> bool {
        self.want > at
    }

    /// The live entry came out of the heap: the time the call wants, if later than `at` (it
    /// goes back in at that time), else `None` (the call is to be looked at now).
    pub(crate) fn came_up(&mut self, at: Timestamp) -> Option<Timestamp> {
        self.queued = None;
        (self.want > at).then_some(self.want)
    }
}

/// The earliest capture time at which one of `call`'s timers could fire. Every input that can
/// change without a SIP message of the call (its RTP, other calls' RTP, ambiguous packets)
/// only moves the real time later, so this bound holds until the call's next SIP message,
/// which schedules it anew.
pub(crate) fn next_check(call: &Call, t: &Timeouts) -> Timestamp {
    if let Some(end) = call.state.pending_end() {
        return end.deadline;
    }
    if call.answer.is_some() || call.joined {
        let idle = call.last_activity.add_nanos(t.media.min(t.signalling_only));
        return match call.answer.filter(|_| !call.confirmed && call.ok_retransmitted) {
            Some(answer) => idle.min(answer.add_nanos(t.no_ack)),
            None => idle,
        };
    }
    if !call.responded {
        return call.invite_at.add_nanos(t.invite).max(call.last_activity.add_nanos(INVITE_RETRANSMIT_MAX));
    }
    call.last_activity.add_nanos(t.setup)
}

/// Whether one of `call`'s timers fires at `now`, with the reason and the call's end time.
/// `media_visible`: RTP of some call was seen lately, so an answered call without any is not
/// merely one whose media takes another path.
pub(crate) fn due(
    call: &Call,
    now: Timestamp,
    media_visible: bool,
    t: &Timeouts,
    media: &MediaTable,
) -> Option<(EndReason, Timestamp)> {
    let idle = now.since(call.last_activity);
    if let Some(end) = call.state.pending_end() {
        // Lingering after BYE, CANCEL or a failure, or a challenge never answered.
        (now >= end.deadline).then_some((end.reason, end.at))
    } else if let Some(answer) = call.answer.filter(|_| !call.confirmed && call.ok_retransmitted) {
        // RFC 3261 13.3.1.4: the answerer retransmitted its 2xx and no ACK (nor RTP, nor any
        // request of the dialog) came within 64*T1: the session is not established.
        (now.since(answer) >= t.no_ack).then_some((EndReason::NoAck, call.last_activity))
    } else if call.answer.is_some() || call.joined {
        let limit = if call.had_media || media_visible { t.media } else { t.signalling_only };
        (idle >= limit && !recent_ambiguity(call, media, now, limit))
            .then_some((EndReason::MediaTimeout, call.last_activity))
    } else if !call.responded {
        // RFC 3261 timer B: an INVITE without any response is given up after 64*T1.
        (now.since(call.invite_at) >= t.invite && idle >= INVITE_RETRANSMIT_MAX)
            .then_some((EndReason::SetupTimeout, call.last_activity))
    } else {
        (idle >= t.setup).then_some((EndReason::SetupTimeout, call.last_activity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_live_entry_per_call() {
        let mut q = TimerQueue::default();
        let mut a = TimerSlot::default();
        q.schedule(&mut a, 7, Timestamp(50));
        q.schedule(&mut a, 7, Timestamp(60)); // later: taken up when the entry comes up
        assert_eq!(q.len(), 1);
        q.schedule(&mut a, 7, Timestamp(40)); // earlier: a new live entry, the old one stale
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(Timestamp(39)), None);
        let (at, slot, seq) = q.pop(Timestamp(100)).unwrap();
        assert_eq!((at, slot, a.is_live(seq)), (Timestamp(40), 7, true));
        assert_eq!(a.came_up(at), None, "wanted at 40: look now");
        let (_, _, stale) = q.pop(Timestamp(100)).unwrap();
        assert!(!a.is_live(stale));
        q.schedule(&mut a, 7, Timestamp(80));
        q.schedule(&mut a, 7, Timestamp(90));
        let (at, _, _) = q.pop(Timestamp(100)).unwrap();
        assert_eq!(a.came_up(at), Some(Timestamp(90)), "wanted later: back in the heap");
    }
}
