//! Carrying capture's events to the mixer threads: batches of events with their RTP payloads
//! in one arena, recycled through a return channel so the steady state allocates nothing.
//! Calls are spread over the mixer threads by call slot, so each call's events stay in order
//! on one thread.
//!
//! Replay blocks when a mixer falls behind (a file can wait). Live capture never blocks: a
//! full channel drops the batch's RTP (counted) and carries its call events forward, so no
//! call is ever lost to back-pressure.

use std::collections::HashMap;
use std::sync::Arc;

use capture::events::{CallEvent, CallRef, DropCause, EventSink, RtcpMeta, RtpMeta, SipSeen};
use capture::{LinkType, Timestamp};
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Events in one batch before it is sent.
const BATCH_EVENTS: usize = 512;

/// One event in a batch.
#[derive(Debug)]
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
}

/// A batch of events.
#[derive(Debug, Default)]
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

    /// Replays the batch into `sink` and empties it (keeping its capacity).
    pub fn drain_into<S: EventSink>(&mut self, sink: &mut S) {
        for item in self.items.drain(..) {
            match item {
                Item::Rtp { meta, start, len } => {
                    let s = start as usize;
                    sink.rtp(&meta, &self.payload[s..s + len as usize]);
                }
                Item::Rtcp { meta, start, len } => {
                    let s = start as usize;
                    sink.rtcp(&meta, &self.payload[s..s + len as usize]);
                }
                Item::Frame { call, time, link, start, len } => {
                    let s = start as usize;
                    sink.frame(call, time, link, &self.payload[s..s + len as usize]);
                }
                Item::Call(ev) => sink.call(ev),
            }
        }
        self.payload.clear();
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
                            Item::Rtcp { .. } | Item::Frame { .. } => {}
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
