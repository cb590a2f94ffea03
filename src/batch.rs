//! Carrying capture's events to the mixer thread: batches of events with their RTP payloads
//! in one arena, recycled through a return channel so the steady state allocates nothing.
//!
//! Replay blocks when the mixer falls behind (a file can wait). Live capture never blocks: a
//! full channel drops the batch's RTP (counted) and carries its call events forward, so no
//! call is ever lost to back-pressure.

use capture::events::{CallEvent, EventSink, RtpMeta};
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
                Item::Call(ev) => sink.call(ev),
            }
        }
        self.payload.clear();
    }
}

/// What to do when the mixer's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait (replay of files).
    Block,
    /// Drop the batch's RTP, keep its call events (live capture).
    DropMedia,
}

/// The capture side's sink: fills batches and sends them.
#[derive(Debug)]
pub struct BatchSink {
    cur: Batch,
    tx: Sender<Batch>,
    recycle: Receiver<Batch>,
    mode: Backpressure,
    /// RTP packets dropped because the mixer queue was full.
    pub dropped_rtp: u64,
    /// The mixer side has gone away (it failed); events are discarded.
    pub disconnected: bool,
}

impl BatchSink {
    /// A sink sending on `tx`, taking empty batches back from `recycle`.
    pub fn new(tx: Sender<Batch>, recycle: Receiver<Batch>, mode: Backpressure) -> BatchSink {
        BatchSink { cur: Batch::with_capacity(), tx, recycle, mode, dropped_rtp: 0, disconnected: false }
    }

    /// Sends the current batch if it holds anything.
    pub fn flush(&mut self) {
        if self.cur.items.is_empty() || self.disconnected {
            return;
        }
        let next = self.recycle.try_recv().unwrap_or_else(|_| Batch::with_capacity());
        let full = std::mem::replace(&mut self.cur, next);
        match self.mode {
            Backpressure::Block => {
                if self.tx.send(full).is_err() {
                    self.disconnected = true;
                }
            }
            Backpressure::DropMedia => match self.tx.try_send(full) {
                Ok(()) => {}
                Err(TrySendError::Full(mut full)) => {
                    // Keep the call events, in order, at the front of the next batch.
                    let mut kept = Vec::new();
                    for item in full.items.drain(..) {
                        match item {
                            Item::Rtp { .. } => self.dropped_rtp += 1,
                            Item::Call(ev) => kept.push(Item::Call(ev)),
                        }
                    }
                    full.payload.clear();
                    let mut cur = std::mem::replace(&mut self.cur, full);
                    self.cur.items.extend(kept);
                    let base = self.cur.payload.len() as u32;
                    self.cur.payload.extend_from_slice(&cur.payload);
                    for item in cur.items.drain(..) {
                        self.cur.items.push(match item {
                            Item::Rtp { meta, start, len } => Item::Rtp { meta, start: start + base, len },
                            other => other,
                        });
                    }
                }
                Err(TrySendError::Disconnected(_)) => self.disconnected = true,
            },
        }
    }
}

impl EventSink for BatchSink {
    #[inline]
    fn rtp(&mut self, meta: &RtpMeta, payload: &[u8]) {
        let start = self.cur.payload.len() as u32;
        self.cur.payload.extend_from_slice(payload);
        self.cur.items.push(Item::Rtp { meta: *meta, start, len: payload.len() as u32 });
        if self.cur.items.len() >= BATCH_EVENTS {
            self.flush();
        }
    }

    fn call(&mut self, event: CallEvent) {
        self.cur.items.push(Item::Call(event));
        if self.cur.items.len() >= BATCH_EVENTS {
            self.flush();
        }
    }
}
