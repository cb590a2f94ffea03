//! Carrying capture's events to the mixer threads: batches of events with their RTP payloads
//! in one arena, recycled through a return channel so the steady state allocates nothing.
//! Calls are spread over the mixer threads by call slot, so each call's events stay in order
//! on one thread; a mixer takes the batches waiting for it together, call by call (see
//! [`Grouping`]).
//!
//! Replay blocks when a mixer falls behind (a file can wait). Live capture never blocks: a
//! full channel drops the batch's RTP (counted) and carries its call events forward, so no
//! call is ever lost to back-pressure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture::events::{CallEvent, CallRef, DropCause, EventSink, RtcpMeta, RtpMeta, SipSeen};
use capture::{LinkType, Timestamp};
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Events in one batch before it is sent.
const BATCH_EVENTS: usize = 512;

/// One event in a batch.
#[derive(Debug, Clone)]
pub enum Item {
    /// An RTP packet; its payload is `payload[start..start + len]` of the batch.
    Rtp {
        /// Header fields.
        meta: RtpMeta,
        /// Offset in the batch's payload arena.
        start: u32,
        /// Payload length.
        len: u32,
    },
    /// An RTCP packet; its bytes are `payload[start..start + len]` of the batch.
    Rtcp {
        /// Who sent it, when.
        meta: RtcpMeta,
        /// Offset in the batch's payload arena.
        start: u32,
        /// Length.
        len: u32,
    },
    /// A frame for a call's evidence capture; its bytes are `payload[start..start + len]`.
    Frame {
        /// The call.
        call: CallRef,
        /// Capture time.
        time: Timestamp,
        /// Link type of the bytes.
        link: LinkType,
        /// Offset in the batch's payload arena.
        start: u32,
        /// Length.
        len: u32,
    },
    /// A call event.
    Call(CallEvent),
    /// An event already handed on by [`Grouping::drain`].
    Done,
}

impl Item {
    /// The call the event belongs to.
    fn call(&self) -> Option<CallRef> {
        match self {
            Item::Rtp { meta, .. } => Some(meta.call),
            Item::Rtcp { meta, .. } => Some(meta.call),
            Item::Frame { call, .. } => Some(*call),
            Item::Call(ev) => Some(call_of(ev)),
            Item::Done => None,
        }
    }
}

/// A batch of events (cloned only by the benchmarks, to hand the same ones on again).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Events in capture order.
    pub items: Vec<Item>,
    /// RTP payloads, back to back.
    pub payload: Vec<u8>,
}

impl Batch {
    fn with_capacity() -> Batch {
        Batch { items: Vec::with_capacity(BATCH_EVENTS), payload: Vec::with_capacity(BATCH_EVENTS * 200) }
    }

    /// Replays the batch into `sink` in capture order and empties it (keeping its capacity).
    /// Each packet's payload and call state are asked for [`STATE_AHEAD`] events before its
    /// turn: with 500 calls in a mixer they have left the cache between two of its packets
    /// (1,000 calls × 60 s, 18 alternating pairs: the mixers' user time 1.33 s against 1.47 s
    /// on average, and per unit of the capture thread's 1.34 against 1.43, lower in 12 pairs,
    /// higher in 5).
    pub fn drain_into<S: EventSink>(&mut self, sink: &mut S) {
        for i in 0..self.items.len() {
            if i + STATE_AHEAD < self.items.len() {
                self.warm(i + STATE_AHEAD, sink);
            }
            if i + PAGE_AHEAD < self.items.len() {
                self.warm_later(i + PAGE_AHEAD, sink);
            }
            self.hand_on(i, sink);
        }
        self.items.clear();
        self.payload.clear();
    }

    /// Starts loading what handing on event `i` will read: its payload and, through
    /// [`EventSink::warm`], its call's state.
    #[inline]
    fn warm<S: EventSink>(&self, i: usize, sink: &S) {
        if let Item::Rtp { meta, start, len } = &self.items[i] {
            capture::prefetch::bytes(self.payload[*start as usize..].as_ptr(), *len as usize, 256);
            sink.warm(meta);
        }
    }

    /// Starts loading, through [`EventSink::warm_later`], what event `i`'s call state points
    /// to (that state is in the cache by now: [`Batch::warm`] asked for it earlier).
    #[inline]
    fn warm_later<S: EventSink>(&self, i: usize, sink: &S) {
        if let Item::Rtp { meta, .. } = &self.items[i] {
            sink.warm_later(meta);
        }
    }

    /// Hands event `i` to `sink` (a call event is moved out, [`Item::Done`] left in its place).
    #[inline]
    fn hand_on<S: EventSink>(&mut self, i: usize, sink: &mut S) {
        match &self.items[i] {
            Item::Rtp { meta, start, len } => {
                let s = *start as usize;
                sink.rtp(meta, &self.payload[s..s + *len as usize]);
            }
            Item::Rtcp { meta, start, len } => {
                let s = *start as usize;
                sink.rtcp(meta, &self.payload[s..s + *len as usize]);
            }
            Item::Frame { call, time, link, start, len } => {
                let s = *start as usize;
                sink.frame(*call, *time, *link, &self.payload[s..s + *len as usize]);
            }
            Item::Call(_) => {
                if let Item::Call(ev) = std::mem::replace(&mut self.items[i], Item::Done) {
                    sink.call(ev);
                }
            }
            Item::Done => {}
        }
    }
}

/// Batches a mixer takes together at most: the ones waiting for it when it takes the next,
/// up to 24,576 events. The more of them, the more packets of each call are handed on while
/// its state is in the cache: at 5,000 calls × 60 s (2,500 per mixer) a call has about 3
/// packets in 16 batches and 10 in 48, and the mixers' user time per unit of the capture
/// thread's (the same work either way) fell from 2.39-2.47 to 2.12-2.23; 20,000 calls × 10 s
/// peak at 478 MiB instead of 460 (96 batches in flight per mixer instead of 64, which the
/// deeper groups need).
pub const GROUP_BATCHES: usize = 48;

/// Calls in a mixer from which it takes batches together. With fewer, its calls' state stays
/// in the cache between their packets and the batches are best read as they are, front to
/// back (measured on 2-core machines with 2 MiB of L2 per core: 150 and 500 calls per mixer
/// lose by grouping, 2,500 gain a quarter of the mixers' time).
pub const GROUP_FROM_CALLS: usize = 1024;

/// Calls in a mixer from which it lingers, when told to ([`Grouping::lingering`]): with fewer
/// their state stays in the cache between their packets even in live capture (on a veth pair
/// at 300,000-400,000 packets/s, 200 calls per mixer: 1.5-1.7 us of CPU per packet captured
/// either way over 2 pairs; 500: 3.5 us without, 1.55 with, one pair).
pub const LINGER_FROM_CALLS: usize = 256;

/// How many events ahead a grouped mixer starts loading an event (its place in the batches
/// taken is known from the order), and how many ahead, once that is in the cache, what the
/// event's handing on reads: its payload and its call's state (the latter also front to back,
/// where the events themselves come in order).
const ITEM_AHEAD: usize = 16;
const STATE_AHEAD: usize = 8;
/// How many events ahead what the call state points to is asked for ([`Batch::warm_later`]):
/// the page of the party's ring its codes go to, whose `filled` bitmap placing them reads, and
/// the slot of the page after it. With 10,000 calls in a mixer those two reads were 84 % of
/// the placing's time and 92 % of the page look-up's, waiting on memory (20,000 calls × 10 s,
/// profiled). Asked for ahead, the mixers' user time fell by 4-6 % there (per unit of the
/// capture thread's: 2.85 on average over 4 runs, and 2.91 with the page alone over 7, against
/// 3.02 over 7 without; the runs alternated); at 1,000 calls × 60 s it made no difference
/// (the page alone, 6 alternating pairs).
const PAGE_AHEAD: usize = 3;

/// A mixer's way of taking several batches at once: call by call, each call's events in
/// capture order. Calls are independent of each other, so only the order within a call
/// matters; taking a call's packets together brings its state and ring into the cache once
/// for all of them instead of once per packet, which is what a packet costs with thousands of
/// calls up (from [`GROUP_FROM_CALLS`]). Only batches already waiting are taken together: a
/// mixer that keeps up gets each batch as it comes, as soon as it comes.
#[derive(Debug, Default)]
pub struct Grouping {
    /// The batches being handed on.
    taken: Vec<Batch>,
    /// Each event of the batches taken as its call slot (high half) and where it is (low
    /// half: batch × [`BATCH_EVENTS`] + position in its batch), sorted by slot: the order they
    /// are handed on in, read front to back with nothing else to look up (kept for their
    /// capacity, like the radix sort's spare).
    order: Vec<u64>,
    spare: Vec<u64>,
    /// How long a mixer with [`LINGER_FROM_CALLS`] calls or more waits for batches to come
    /// after the first, to take them together (live capture; see [`Grouping::lingering`]).
    linger: Option<Duration>,
}

impl Grouping {
    /// Buffers for [`GROUP_BATCHES`] full batches.
    pub fn new() -> Grouping {
        let n = GROUP_BATCHES * BATCH_EVENTS;
        let buffer = || Vec::with_capacity(n);
        let taken = Vec::with_capacity(GROUP_BATCHES);
        Grouping { taken, order: buffer(), spare: buffer(), linger: None }
    }

    /// A grouping for a mixer fed at the wire's pace (live capture). Such a mixer keeps up, so
    /// no batch is ever waiting when it takes one, and it would hand every packet on alone,
    /// finding its call's state and ring gone from the cache since the call's last packet
    /// (other threads ran on its core meanwhile). From [`LINGER_FROM_CALLS`] calls it waits
    /// up to `linger` for the batches that come after the first (at most [`GROUP_BATCHES`]),
    /// and takes them together call by call: with 2,000 calls on a veth pair (`benches/live.sh
    /// 2000 20`), 80 ms took the mixers' CPU from 6.2-6.8 s to 2.1-2.4 s at 300,000-370,000
    /// packets/s and from 5.0-5.1 s to 3.3-3.5 s at the calls' own pace (72,000 packets/s),
    /// 4 million packets each time. A call's packets are handed on in capture order either
    /// way, so what is recorded does not change; only when (up to `linger` later). Pause
    /// requests wait as long ([`crate::pipeline`] keeps `linger` within half the reorder
    /// window, so that a pause asked at a moment still finds that moment open).
    pub fn lingering(linger: Duration) -> Grouping {
        Grouping { linger: Some(linger).filter(|l| !l.is_zero()), ..Grouping::new() }
    }

    /// Hands `first` to `sink`: alone and front to back for a sink with fewer than
    /// [`GROUP_FROM_CALLS`] `calls`, else with the batches `waiting` behind it, call by call
    /// (with the batches that come within the linger too, if it lingers and has enough calls).
    /// The batches go back to `recycle` empty.
    pub fn take<S: EventSink>(
        &mut self,
        first: Batch,
        waiting: &Receiver<Batch>,
        calls: usize,
        sink: &mut S,
        recycle: &Sender<Batch>,
    ) {
        self.taken.push(first);
        let linger = self.linger.filter(|_| calls >= LINGER_FROM_CALLS);
        if calls < GROUP_FROM_CALLS && linger.is_none() {
            self.taken[0].drain_into(sink);
        } else {
            self.taken.extend(waiting.try_iter().take(GROUP_BATCHES - 1));
            if let Some(linger) = linger {
                let until = Instant::now() + linger;
                while self.taken.len() < GROUP_BATCHES {
                    match waiting.recv_deadline(until) {
                        Ok(batch) => self.taken.push(batch),
                        Err(_) => break,
                    }
                }
            }
            let mut taken = std::mem::take(&mut self.taken);
            self.drain(&mut taken, sink);
            self.taken = taken;
        }
        for batch in self.taken.drain(..) {
            let _ = recycle.try_send(batch);
        }
    }

    /// Replays `batches` (in the order they came) into `sink` call by call and empties them
    /// (keeping their capacity).
    pub fn drain<S: EventSink>(&mut self, batches: &mut [Batch], sink: &mut S) {
        debug_assert!(batches.len() <= GROUP_BATCHES && batches.iter().all(|b| b.items.len() <= BATCH_EVENTS));
        self.order.clear();
        for (k, b) in batches.iter().enumerate() {
            self.order.extend(b.items.iter().enumerate().map(|(i, item)| {
                let slot = item.call().map_or(0, |c| c.slot);
                (u64::from(slot) << 32) | (k * BATCH_EVENTS + i) as u64
            }));
        }
        group_by_slot(&mut self.order, &mut self.spare);
        let order = &self.order;
        let place = |k: usize| order.get(k).map(|&key| key as u32 as usize);
        for (k, &key) in order.iter().enumerate() {
            if let Some(a) = place(k + ITEM_AHEAD) {
                let b = &batches[a / BATCH_EVENTS];
                capture::prefetch::value(&b.items[a % BATCH_EVENTS], 128);
            }
            if let Some(a) = place(k + STATE_AHEAD) {
                batches[a / BATCH_EVENTS].warm(a % BATCH_EVENTS, sink);
            }
            if let Some(a) = place(k + PAGE_AHEAD) {
                batches[a / BATCH_EVENTS].warm_later(a % BATCH_EVENTS, sink);
            }
            let a = key as u32 as usize;
            batches[a / BATCH_EVENTS].hand_on(a % BATCH_EVENTS, sink);
        }
        for b in batches.iter_mut() {
            b.items.clear();
            b.payload.clear();
        }
    }
}

/// Sorts `keys` by their high half (a call slot), keys of one slot in the order they came: a
/// stable radix sort, a byte of the slot per pass (one pass below 256 calls, two below
/// 65,536), so ordering a batch costs a few nanoseconds an event. Each key carries its slot,
/// so no pass looks anything up elsewhere.
fn group_by_slot(keys: &mut Vec<u64>, spare: &mut Vec<u64>) {
    spare.clear();
    spare.resize(keys.len(), 0);
    let max = keys.iter().map(|&key| key >> 32).max().unwrap_or(0);
    let mut shift = 32;
    while shift < u64::BITS && max >> (shift - 32) != 0 {
        let digit = |key: u64| ((key >> shift) & 0xff) as usize;
        let mut next = [0usize; 256];
        for &key in keys.iter() {
            next[digit(key)] += 1;
        }
        let mut at = 0;
        for n in &mut next {
            (*n, at) = (at, at + *n);
        }
        for &key in keys.iter() {
            let d = digit(key);
            spare[next[d]] = key;
            next[d] += 1;
        }
        std::mem::swap(keys, spare);
        shift += 8;
    }
}

/// What to do when a mixer's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait (replay of files).
    Block,
    /// Drop the batch's RTP, keep its call events (live capture).
    DropMedia,
}

/// The channel ends of one mixer thread, as seen from capture.
#[derive(Debug)]
pub struct Lane {
    /// Full batches to the mixer.
    pub tx: Sender<Batch>,
    /// Empty batches back from the mixer.
    pub recycle: Receiver<Batch>,
}

#[derive(Debug)]
struct Shard {
    cur: Batch,
    lane: Lane,
    disconnected: bool,
}

/// The capture side's sink: fills one batch per mixer thread and sends them.
#[derive(Debug)]
pub struct BatchSink {
    shards: Vec<Shard>,
    mode: Backpressure,
    /// RTP packets dropped because a mixer queue was full.
    pub dropped_rtp: u64,
    /// Where parsed SIP messages go for HEP export, when `[hep]` is on.
    hep: Option<crate::hep::Feed>,
    /// The Call-ID of each call up, for the RTCP HEP exports (kept only when it does).
    call_ids: HashMap<CallRef, Arc<str>>,
}

fn call_of(ev: &CallEvent) -> CallRef {
    match ev {
        CallEvent::Started { call, .. }
        | CallEvent::Media { call, .. }
        | CallEvent::Dropped { call, .. }
        | CallEvent::Encrypted { call, .. }
        | CallEvent::Control { call, .. }
        | CallEvent::Ended { call, .. } => *call,
    }
}

impl BatchSink {
    /// A sink feeding one lane per mixer thread.
    pub fn new(lanes: Vec<Lane>, mode: Backpressure) -> BatchSink {
        let shards =
            lanes.into_iter().map(|lane| Shard { cur: Batch::with_capacity(), lane, disconnected: false }).collect();
        BatchSink { shards, mode, dropped_rtp: 0, hep: None, call_ids: HashMap::new() }
    }

    /// Hands every SIP message capture parses to `feed` (HEP export).
    pub fn export_sip(&mut self, feed: crate::hep::Feed) {
        self.hep = Some(feed);
    }

    /// Whether a mixer thread has gone away (it failed; its events are discarded).
    pub fn disconnected(&self) -> bool {
        self.shards.iter().any(|s| s.disconnected)
    }

    #[inline]
    fn shard(&self, call: CallRef) -> usize {
        call.slot as usize % self.shards.len()
    }

    /// Sends every batch that holds anything.
    pub fn flush(&mut self) {
        for i in 0..self.shards.len() {
            self.flush_shard(i);
        }
    }

    fn flush_shard(&mut self, i: usize) {
        let mode = self.mode;
        let shard = &mut self.shards[i];
        if shard.cur.items.is_empty() || shard.disconnected {
            return;
        }
        let next = shard.lane.recycle.try_recv().unwrap_or_else(|_| Batch::with_capacity());
        let full = std::mem::replace(&mut shard.cur, next);
        match mode {
            Backpressure::Block => {
                if shard.lane.tx.send(full).is_err() {
                    shard.disconnected = true;
                }
            }
            Backpressure::DropMedia => match shard.lane.tx.try_send(full) {
                Ok(()) => {}
                Err(TrySendError::Full(mut full)) => {
                    // Keep the call events, in order, at the front of the next batch, and tell
                    // each call how much of its RTP was dropped (its record says so).
                    let mut kept = Vec::new();
                    let mut dropped: Vec<(CallRef, u64)> = Vec::new();
                    for item in full.items.drain(..) {
                        match item {
                            Item::Rtp { meta, .. } => {
                                self.dropped_rtp += 1;
                                match dropped.iter_mut().find(|(c, _)| *c == meta.call) {
                                    Some((_, n)) => *n += 1,
                                    None => dropped.push((meta.call, 1)),
                                }
                            }
                            Item::Rtcp { .. } | Item::Frame { .. } | Item::Done => {}
                            Item::Call(ev) => kept.push(Item::Call(ev)),
                        }
                    }
                    // Before any Ended event of those calls in the kept ones.
                    let mut notices: Vec<Item> = dropped
                        .into_iter()
                        .map(|(call, packets)| {
                            Item::Call(CallEvent::Dropped { call, packets, cause: DropCause::Queue })
                        })
                        .collect();
                    notices.append(&mut kept);
                    let kept = notices;
                    full.payload.clear();
                    let mut cur = std::mem::replace(&mut shard.cur, full);
                    shard.cur.items.extend(kept);
                    let base = shard.cur.payload.len() as u32;
                    shard.cur.payload.extend_from_slice(&cur.payload);
                    for item in cur.items.drain(..) {
                        shard.cur.items.push(match item {
                            Item::Rtp { meta, start, len } => Item::Rtp { meta, start: start + base, len },
                            other => other,
                        });
                    }
                }
                Err(TrySendError::Disconnected(_)) => shard.disconnected = true,
            },
        }
    }
}

impl EventSink for BatchSink {
    #[inline]
    fn rtp(&mut self, meta: &RtpMeta, payload: &[u8]) {
        let i = self.shard(meta.call);
        let cur = &mut self.shards[i].cur;
        let start = cur.payload.len() as u32;
        cur.payload.extend_from_slice(payload);
        cur.items.push(Item::Rtp { meta: *meta, start, len: payload.len() as u32 });
        if cur.items.len() >= BATCH_EVENTS {
            self.flush_shard(i);
        }
    }

    fn rtcp(&mut self, meta: &RtcpMeta, packet: &[u8]) {
        if let Some(feed) = &self.hep
            && let Some(call_id) = self.call_ids.get(&meta.call)
        {
            feed.rtcp(meta, call_id, packet);
        }
        let i = self.shard(meta.call);
        let cur = &mut self.shards[i].cur;
        let start = cur.payload.len() as u32;
        cur.payload.extend_from_slice(packet);
        cur.items.push(Item::Rtcp { meta: *meta, start, len: packet.len() as u32 });
        if cur.items.len() >= BATCH_EVENTS {
            self.flush_shard(i);
        }
    }

    fn frame(&mut self, call: CallRef, time: Timestamp, link: LinkType, frame: &[u8]) {
        let i = self.shard(call);
        let cur = &mut self.shards[i].cur;
        let start = cur.payload.len() as u32;
        cur.payload.extend_from_slice(frame);
        cur.items.push(Item::Frame { call, time, link, start, len: frame.len() as u32 });
        if cur.items.len() >= BATCH_EVENTS {
            self.flush_shard(i);
        }
    }

    fn sip(&mut self, seen: &SipSeen<'_>) {
        if let Some(feed) = &self.hep {
            feed.sip(seen);
        }
    }

    fn call(&mut self, event: CallEvent) {
        if self.hep.as_ref().is_some_and(crate::hep::Feed::wants_rtcp) {
            match &event {
                CallEvent::Started { call, info } => {
                    self.call_ids.insert(*call, info.call_id.as_str().into());
                }
                CallEvent::Ended { call, .. } => {
                    self.call_ids.remove(call);
                }
                _ => {}
            }
        }
        let i = self.shard(call_of(&event));
        let cur = &mut self.shards[i].cur;
        cur.items.push(Item::Call(event));
        if cur.items.len() >= BATCH_EVENTS {
            self.flush_shard(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use capture::events::Side;

    use std::collections::HashSet;

    use super::*;

    /// An RTP packet: slot, generation, sequence number.
    type Packet = (u32, u32, u16);

    /// What a mixer is handed.
    #[derive(Default)]
    struct Log {
        /// In order: (slot, generation, RTP sequence number or `None` for a call event,
        /// payload).
        handed: Vec<(u32, u32, Option<u16>, Vec<u8>)>,
        /// The RTP packets it was told of ahead ([`EventSink::warm`]), in order and as a set.
        warmed: std::cell::RefCell<(Vec<Packet>, HashSet<Packet>)>,
        /// RTP packets handed on after they were told of.
        handed_warm: usize,
        /// The RTP packets it was told of again, nearer their turn ([`EventSink::warm_later`]),
        /// in order, each with whether it had been told of already then.
        later: std::cell::RefCell<Vec<(Packet, bool)>>,
    }

    impl EventSink for Log {
        fn rtp(&mut self, m: &RtpMeta, payload: &[u8]) {
            self.handed.push((m.call.slot, m.call.generation, Some(m.seq), payload.to_vec()));
            self.handed_warm += usize::from(self.warmed.borrow().1.contains(&(m.call.slot, m.call.generation, m.seq)));
        }
        fn warm(&self, m: &RtpMeta) {
            let mut warmed = self.warmed.borrow_mut();
            warmed.0.push((m.call.slot, m.call.generation, m.seq));
            warmed.1.insert((m.call.slot, m.call.generation, m.seq));
        }
        fn warm_later(&self, m: &RtpMeta) {
            let packet = (m.call.slot, m.call.generation, m.seq);
            let before = self.warmed.borrow().1.contains(&packet);
            self.later.borrow_mut().push((packet, before));
        }
        fn call(&mut self, ev: CallEvent) {
            let c = call_of(&ev);
            self.handed.push((c.slot, c.generation, None, Vec::new()));
        }
    }

    fn meta(call: CallRef, seq: u16) -> RtpMeta {
        let addr = SocketAddr::from(([10, 0, 0, 1], 4000));
        RtpMeta {
            call,
            side: Side::Caller,
            time: Timestamp(i64::from(seq)),
            src: addr,
            dst: addr,
            seq,
            rtp_ts: u32::from(seq) * 160,
            ssrc: call.slot,
            pt: 0,
            marker: false,
            payload_at: 0,
            padding: 0,
        }
    }

    proptest::proptest! {
        /// The order is the stable sort by slot, whatever the slots' size (one to four passes).
        #[test]
        fn events_are_ordered_by_slot_stably(slots in proptest::collection::vec(
            proptest::prop_oneof![0u32..4, 0u32..300, 0u32..70_000, proptest::prelude::any::<u32>()], 0..600)
        ) {
            let mut keys: Vec<u64> =
                slots.iter().enumerate().map(|(i, &slot)| (u64::from(slot) << 32) | i as u64).collect();
            group_by_slot(&mut keys, &mut Vec::new());
            let mut want: Vec<u32> = (0..slots.len() as u32).collect();
            want.sort_by_key(|&i| slots[i as usize]);
            let order: Vec<u32> = keys.iter().map(|&key| key as u32).collect();
            proptest::prop_assert_eq!(order, want);
        }
    }

    #[test]
    fn batches_taken_together_are_handed_on_call_by_call_each_in_capture_order() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let (_recycle_tx, recycle) = crossbeam_channel::bounded(4);
        let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
        // Calls interleaved packet by packet, call events among their packets, and a slot
        // reused by a new call (another generation) within the batch.
        let calls = [3u32, 1, 2, 5].map(|slot| CallRef { slot, generation: 1 });
        let reused = CallRef { slot: 5, generation: 2 };
        let mut sent = Vec::new();
        for seq in 0..400u16 {
            for (k, &call) in calls.iter().enumerate() {
                let call = if call.slot == 5 && seq >= 200 { reused } else { call };
                if seq == 10 + k as u16 || seq == 300 + k as u16 {
                    sink.call(CallEvent::Dropped { call, packets: 1, cause: DropCause::Queue });
                    sent.push((call.slot, call.generation, None, Vec::new()));
                }
                let payload = vec![call.slot as u8, seq as u8, call.generation as u8];
                sink.rtp(&meta(call, seq), &payload);
                sent.push((call.slot, call.generation, Some(seq), payload));
            }
        }
        sink.flush();
        // Several batches waiting, taken together.
        let mut batches: Vec<Batch> = rx.try_iter().collect();
        assert!(batches.len() > 1, "the events fill several batches");
        let mut grouping = Grouping::new();
        let mut log = Log::default();
        grouping.drain(&mut batches, &mut log);
        assert!(batches.iter().all(|b| b.items.is_empty() && b.payload.is_empty()), "drained");
        // Every event once; each slot's events (both generations of slot 5) in the order they
        // were captured; the slots one after the other.
        assert_eq!(log.handed.len(), sent.len());
        for slot in [1, 2, 3, 5] {
            let of = |v: &Vec<(u32, u32, Option<u16>, Vec<u8>)>| {
                v.iter().filter(|e| e.0 == slot).cloned().collect::<Vec<_>>()
            };
            assert_eq!(of(&log.handed), of(&sent), "slot {slot}");
        }
        let slots: Vec<u32> = log.handed.iter().map(|e| e.0).collect();
        assert!(slots.is_sorted(), "grouped by call: {slots:?}");
        // One batch alone, the same way.
        sink.rtp(&meta(calls[0], 99), &[7]);
        sink.rtp(&meta(calls[1], 99), &[8]);
        sink.flush();
        let mut next = [rx.try_recv().unwrap()];
        let mut log = Log::default();
        grouping.drain(&mut next, &mut log);
        assert_eq!(log.handed, vec![(1, 1, Some(99), vec![8]), (3, 1, Some(99), vec![7])]);
        // Taken by a mixer: with few calls front to back, with many call by call; the batches
        // go back empty either way.
        let (back, returned) = crossbeam_channel::bounded(GROUP_BATCHES);
        for (calls, want) in [(2, [vec![7], vec![8]]), (GROUP_FROM_CALLS, [vec![8], vec![7]])] {
            sink.rtp(&meta(calls_of(3), 100), &[7]);
            sink.rtp(&meta(calls_of(1), 100), &[8]);
            sink.flush();
            let mut log = Log::default();
            grouping.take(rx.try_recv().unwrap(), &rx, calls, &mut log, &back);
            assert_eq!(log.handed.into_iter().map(|e| e.3).collect::<Vec<_>>(), want, "{calls} calls");
            let batch = returned.try_recv().unwrap();
            assert!(batch.items.is_empty() && batch.payload.is_empty());
        }
    }

    /// A mixer far behind takes a whole group at once, no more: every event of its
    /// [`GROUP_BATCHES`] full batches once, each call's in capture order, the calls one after
    /// the other; the batches behind the group stay queued.
    #[test]
    fn a_full_group_is_handed_on_call_by_call_and_no_more_is_taken() {
        let (tx, rx) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let (_recycle_tx, recycle) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
        let calls = 37u32;
        let mut sent = Vec::new();
        for n in 0..(GROUP_BATCHES + 2) * BATCH_EVENTS {
            let (slot, seq) = ((n as u32 * 7) % calls, (n / calls as usize) as u16);
            let payload = vec![slot as u8, seq as u8, (seq >> 8) as u8];
            sink.rtp(&meta(calls_of(slot), seq), &payload);
            sent.push((slot, 1, Some(seq), payload));
        }
        sink.flush();
        assert_eq!(rx.len(), GROUP_BATCHES + 2, "the events fill the group and two batches more");
        let (back, returned) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let mut log = Log::default();
        Grouping::new().take(rx.recv().unwrap(), &rx, GROUP_FROM_CALLS, &mut log, &back);
        assert_eq!(rx.len(), 2, "the batches behind the group wait");
        assert_eq!(returned.len(), GROUP_BATCHES, "the group's batches go back");
        let group = &sent[..GROUP_BATCHES * BATCH_EVENTS];
        assert_eq!(log.handed.len(), group.len());
        for slot in 0..calls {
            let of =
                |v: &[(u32, u32, Option<u16>, Vec<u8>)]| v.iter().filter(|e| e.0 == slot).cloned().collect::<Vec<_>>();
            assert_eq!(of(&log.handed), of(group), "slot {slot}");
        }
        assert!(log.handed.iter().map(|e| e.0).is_sorted(), "grouped by call");
        // Each packet was named to the sink ahead of its turn, but the first few (nothing
        // came before them to name them), and each only once.
        let warmed = log.warmed.borrow();
        assert_eq!(warmed.0.len(), group.len() - STATE_AHEAD, "packets warmed");
        assert_eq!(warmed.1.len(), warmed.0.len(), "each packet warmed once");
        assert_eq!(log.handed_warm, group.len() - STATE_AHEAD, "packets handed on after their warming");
        // And again nearer their turn, after the first time where there was one.
        let later = log.later.borrow();
        assert_eq!(later.len(), group.len() - PAGE_AHEAD, "packets warmed later");
        assert!(later[STATE_AHEAD - PAGE_AHEAD..].iter().all(|(_, before)| *before), "warmed later after warmed");
        assert_eq!(later.iter().map(|(p, _)| p).collect::<HashSet<_>>().len(), later.len(), "each once");
    }

    /// A mixer with few calls takes one batch front to back, in capture order, and names each
    /// packet to the sink [`STATE_AHEAD`] events before its turn (all but the first few).
    #[test]
    fn a_batch_taken_alone_is_handed_on_in_capture_order_each_packet_warmed_ahead() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let (_recycle_tx, recycle) = crossbeam_channel::bounded(2);
        let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
        let mut sent = Vec::new();
        for n in 0..100u16 {
            let slot = u32::from(n % 3);
            sink.rtp(&meta(calls_of(slot), n), &[n as u8]);
            sent.push((slot, 1, Some(n), vec![n as u8]));
        }
        sink.flush();
        let (back, _returned) = crossbeam_channel::bounded(2);
        let mut log = Log::default();
        Grouping::new().take(rx.recv().unwrap(), &rx, 3, &mut log, &back);
        assert_eq!(log.handed, sent, "capture order");
        let ahead: Vec<Packet> = sent[STATE_AHEAD..].iter().map(|e| (e.0, e.1, e.2.unwrap())).collect();
        assert_eq!(log.warmed.borrow().0, ahead, "each packet named once, the look-ahead's distance before it");
        assert_eq!(log.handed_warm, sent.len() - STATE_AHEAD, "packets handed on after their warming");
        let later: Vec<Packet> = log.later.borrow().iter().map(|(p, _)| *p).collect();
        let ahead: Vec<Packet> = sent[PAGE_AHEAD..].iter().map(|e| (e.0, e.1, e.2.unwrap())).collect();
        assert_eq!(later, ahead, "each packet named again, the second look-ahead's distance before it");
    }

    /// A lingering mixer with enough calls takes the batches that come within its linger with
    /// the first, call by call; with fewer calls it takes the first alone, at once.
    #[test]
    fn a_lingering_mixer_takes_what_comes_within_its_linger_together() {
        let (back, _returned) = crossbeam_channel::bounded(8);
        let mut grouping = Grouping::lingering(Duration::from_secs(600));
        for (calls, together) in [(LINGER_FROM_CALLS, true), (LINGER_FROM_CALLS - 1, false)] {
            let (tx, rx) = crossbeam_channel::bounded(4);
            let (_recycle_tx, recycle) = crossbeam_channel::bounded(4);
            let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
            sink.rtp(&meta(calls_of(3), 1), &[31]);
            sink.rtp(&meta(calls_of(1), 1), &[11]);
            sink.flush();
            let first = rx.recv().unwrap();
            let mut log = Log::default();
            std::thread::scope(|s| {
                // The next batch comes while the mixer lingers (or has already handed the
                // first on); the sink goes away after it, which ends the linger.
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    sink.rtp(&meta(calls_of(3), 2), &[32]);
                    sink.rtp(&meta(calls_of(1), 2), &[12]);
                    sink.flush();
                });
                grouping.take(first, &rx, calls, &mut log, &back);
            });
            let handed: Vec<u8> = log.handed.iter().map(|e| e.3[0]).collect();
            if together {
                assert_eq!(handed, [11, 12, 31, 32], "{calls} calls: both batches, call by call");
                assert!(rx.is_empty());
            } else {
                assert_eq!(handed, [31, 11], "{calls} calls: the first batch alone, front to back");
                let mut log = Log::default();
                grouping.take(rx.recv().unwrap(), &rx, calls, &mut log, &back);
                assert_eq!(log.handed.iter().map(|e| e.3[0]).collect::<Vec<_>>(), [32, 12]);
            }
        }
    }

    /// A linger ends when it is over, when a whole group has come, or when capture is gone:
    /// a mixer never lingers past any of them.
    #[test]
    fn a_linger_ends_at_its_time_at_a_full_group_or_when_capture_ends() {
        let (tx, rx) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let (_recycle_tx, recycle) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
        let (back, _returned) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let calls = LINGER_FROM_CALLS;
        // Its time: nothing more comes and the sink is still there.
        let linger = Duration::from_millis(100);
        sink.rtp(&meta(calls_of(1), 1), &[1]);
        sink.flush();
        let started = Instant::now();
        let mut log = Log::default();
        Grouping::lingering(linger).take(rx.recv().unwrap(), &rx, calls, &mut log, &back);
        assert!(started.elapsed() >= linger, "waited its linger out");
        assert_eq!(log.handed.len(), 1);
        // A full group: the batches beyond it stay queued however long the linger.
        for n in 0..(GROUP_BATCHES + 2) * BATCH_EVENTS {
            sink.rtp(&meta(calls_of(n as u32 % 7), n as u16), &[n as u8]);
        }
        sink.flush();
        let mut log = Log::default();
        let mut long = Grouping::lingering(Duration::from_secs(3600));
        long.take(rx.recv().unwrap(), &rx, calls, &mut log, &back);
        assert_eq!(log.handed.len(), GROUP_BATCHES * BATCH_EVENTS);
        assert_eq!(rx.len(), 2, "the batches behind the group wait");
        // Capture gone: what is queued is taken and the linger ends.
        drop(sink);
        let mut log = Log::default();
        long.take(rx.recv().unwrap(), &rx, calls, &mut log, &back);
        assert_eq!(log.handed.len(), 2 * BATCH_EVENTS);
        // A linger of nothing is none.
        assert!(Grouping::lingering(Duration::ZERO).linger.is_none());
    }

    fn calls_of(slot: u32) -> CallRef {
        CallRef { slot, generation: 1 }
    }
}
