//! The capture engine: frames in, call events out.
//!
//! Owns the decoder counters, the dialog tracker and the media table, and drives all of them
//! from packet capture time. One engine runs on one thread; it never blocks and never reads
//! the clock (the packet source feeds it ticks when the wire is idle).

use crate::decode::{self, Decoded, LinkType, Skip};
use crate::dialog::{Ctx, DialogTracker};
use crate::events::{EndReason, EventSink, RtpMeta};
use crate::limits::{Limits, Timeouts};
use crate::media::MediaTable;
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::wire::{Layer, sip};

/// Timers are checked at most this often (capture time).
const SWEEP_INTERVAL: i64 = Timestamp::SECOND;

/// Configuration of an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Caps on network-fed state.
    pub limits: Limits,
    /// Capture-time timeouts.
    pub timeouts: Timeouts,
}

/// Frames in, call events out.
#[derive(Debug)]
pub struct Engine {
    tracker: DialogTracker,
    media: MediaTable,
    stats: CaptureStats,
    limits: Limits,
    now: Timestamp,
    next_sweep: Option<Timestamp>,
}

impl Engine {
    /// A new engine with no calls.
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            tracker: DialogTracker::new(cfg.limits.clone(), cfg.timeouts),
            media: MediaTable::default(),
            stats: CaptureStats::default(),
            limits: cfg.limits,
            now: Timestamp(i64::MIN),
            next_sweep: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Calls currently tracked.
    pub fn open_calls(&self) -> usize {
        self.tracker.open_calls()
    }

    /// Latest capture time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Processes one captured frame.
    #[inline]
    pub fn handle_frame<S: EventSink>(&mut self, link: LinkType, time: Timestamp, frame: &[u8], sink: &mut S) {
        self.stats.frames += 1;
        self.stats.bytes += frame.len() as u64;
        self.advance(time, sink);
        let d = match decode::decode(link, frame) {
            Ok(Decoded::Udp(d)) => d,
            Ok(Decoded::Skipped(skip)) => {
                match skip {
                    Skip::NotIp => self.stats.not_ip += 1,
                    Skip::Fragment => self.stats.ip_fragments += 1,
                    Skip::Tcp => self.stats.tcp_segments += 1,
                    Skip::OtherProtocol => self.stats.other_ip += 1,
                }
                return;
            }
            Err(e) => {
                self.stats.count_malformed(e.layer);
                return;
            }
        };

        if d.truncated {
            self.stats.truncated += 1;
        }

        // Hot path: media of a tracked call, found by the address it was sent to.
        if let Some(owner) = self.media.lookup(&d.dst) {
            let p = d.payload;
            // RFC 5761: RTCP multiplexed on the RTP port has packet types 192..=223.
            if p.len() >= 2 && p[0] >> 6 == 2 && (192..=223).contains(&p[1]) {
                self.stats.rtcp_packets += 1;
                return;
            }
            match rtp_rs::RtpReader::new(p) {
                Ok(rtp) => {
                    self.stats.rtp_packets += 1;
                    self.tracker.touch(owner.call, time);
                    let meta = RtpMeta {
                        call: owner.call,
                        side: owner.sender,
                        time,
                        src: d.src,
                        dst: d.dst,
                        seq: u16::from(rtp.sequence_number()),
                        rtp_ts: rtp.timestamp(),
                        ssrc: rtp.ssrc(),
                        pt: rtp.payload_type(),
                        marker: rtp.mark(),
                    };
                    sink.rtp(&meta, rtp.payload());
                }
                Err(_) => self.stats.media_not_rtp += 1,
            }
            return;
        }

        if sip::looks_like_sip(d.payload) {
            if d.payload.len() > self.limits.max_sip_message {
                self.stats.sip_oversized += 1;
                return;
            }
            match sip::parse(d.payload, self.limits.max_sip_headers) {
                Ok(msg) => {
                    self.stats.sip_messages += 1;
                    let mut ctx = Ctx { media: &mut self.media, stats: &mut self.stats, sink };
                    self.tracker.handle_sip(time, d.src, d.dst, &msg, &mut ctx);
                }
                Err(_) => self.stats.count_malformed(Layer::Sip),
            }
            return;
        }
        self.stats.udp_unmatched += 1;
    }

    /// Advances capture time to `now` (if later) and fires the timers that are due. Packet
    /// sources call this when the wire is idle so calls still time out.
    pub fn advance<S: EventSink>(&mut self, now: Timestamp, sink: &mut S) {
        if now <= self.now {
            return;
        }
        self.now = now;
        match self.next_sweep {
            Some(at) if now < at => {}
            _ => {
                self.next_sweep = Some(now.add_nanos(SWEEP_INTERVAL));
                let mut ctx = Ctx { media: &mut self.media, stats: &mut self.stats, sink };
                self.tracker.sweep(now, &mut ctx);
            }
        }
    }

    /// Finalises every open call: at the end of the input (`EndOfInput`) or on shutdown.
    pub fn finish<S: EventSink>(&mut self, reason: EndReason, sink: &mut S) {
        let now = if self.now.0 == i64::MIN { Timestamp(0) } else { self.now };
        let mut ctx = Ctx { media: &mut self.media, stats: &mut self.stats, sink };
        self.tracker.sweep(now, &mut ctx);
        self.tracker.finish_all(now, reason, &mut ctx);
    }
}
