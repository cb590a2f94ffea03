//! The capture engine: frames in, call events out.
//!
//! Owns the transport layer ([`Ingress`]: tunnels, IP fragments, TCP streams), the dialog
//! tracker, the media table and the counters, and drives all of them from packet capture time.
//! Every UDP datagram the transport layer finds takes the same path (media of a tracked call,
//! else SIP found by content on any port), and SIP framed out of TCP joins the same SIP
//! handling. One engine runs on one thread; it never blocks and never reads the clock (the
//! packet source feeds it ticks when the wire is idle).

use std::net::SocketAddr;

use crate::call::dialog::DialogTracker;
use crate::call::media::{Flow, MediaKind, MediaOwner, MediaTable, Resolution};
use crate::events::{CallEvent, DropCause, EndReason, EventSink, RtcpMeta, RtpMeta, SipSeen};
use crate::held::{HeldMedia, Kept};
use crate::limits::{Limits, Timeouts};
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::transport::decode::{Datagram, LinkType, Transport};
use crate::transport::ingress::{Ingress, IngressSink};
use crate::wire::{Layer, rtcp, rtp, sip, zrtp};

/// Timers are checked at most this often (capture time).
const SWEEP_INTERVAL: i64 = Timestamp::SECOND;

/// Configuration of an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Caps on network-fed state.
    pub limits: Limits,
    /// Capture-time timeouts.
    pub timeouts: Timeouts,
    /// Hand every frame that belongs to a call to the sink ([`EventSink::frame`]), for
    /// per-call evidence captures. SIP reassembled from TCP or IP fragments is not included.
    pub keep_frames: bool,
    /// A SIP header (name without the colon, e.g. `X-Record-Pause`) whose value in a request
    /// of a dialog pauses (`pause`, `on`, `true`, `yes`, `1`) or resumes (`resume`, `off`,
    /// `false`, `no`, `0`) its recording: a [`crate::events::CallEvent::Control`].
    pub pause_header: Option<String>,
    /// Media flows from which [`Engine::wants_lookahead`] says yes; `None`:
    /// [`LOOKAHEAD_FROM_FLOWS`].
    pub lookahead_from_flows: Option<usize>,
}

/// Media flows from which reading a frame ahead to prefetch its flow pays
/// ([`Engine::wants_lookahead`]). Below, the table (a cache line per slot, at most 5/8 full)
/// mostly stays in the cache between packets: 8,192 flows are 1 MiB of it, half a core's L2
/// on the machines measured.
pub const LOOKAHEAD_FROM_FLOWS: usize = 8192;

/// Frames in, call events out.
#[derive(Debug)]
pub struct Engine {
    ingress: Ingress,
    core: Core,
    now: Timestamp,
    next_sweep: Option<Timestamp>,
    /// Transport-layer sheds already reported to the calls.
    sheds_reported: u64,
    /// Media flows from which reading ahead pays.
    lookahead_from_flows: usize,
}

/// Everything above the transport layer: dialogs, media table, counters.
#[derive(Debug)]
struct Core {
    tracker: DialogTracker,
    media: MediaTable,
    stats: CaptureStats,
    limits: Limits,
    keep_frames: bool,
    /// Media that came before the SDP announcing it, kept for a moment.
    held: HeldMedia,
    /// Scratch: the entries of `held` a SIP message claimed.
    claimed: Vec<usize>,
}

impl Engine {
    /// A new engine with no calls.
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            ingress: Ingress::new(&cfg.limits, &cfg.timeouts),
            core: Core {
                tracker: DialogTracker::new(cfg.limits.clone(), cfg.timeouts)
                    .with_pause_header(cfg.pause_header.as_deref()),
                media: MediaTable::new(cfg.limits.max_calls),
                stats: CaptureStats::default(),
                held: HeldMedia::new(cfg.limits.max_held_media),
                claimed: Vec::new(),
                limits: cfg.limits,
                keep_frames: cfg.keep_frames,
            },
            now: Timestamp(i64::MIN),
            next_sweep: None,
            lookahead_from_flows: cfg.lookahead_from_flows.unwrap_or(LOOKAHEAD_FROM_FLOWS),
            sheds_reported: 0,
        }
    }

    /// A snapshot of the counters so far, the transport layer's included.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats { ingress: self.ingress.stats(), ..self.core.stats.clone() }
    }

    /// Calls currently tracked.
    pub fn open_calls(&self) -> usize {
        self.core.tracker.open_calls()
    }

    /// The transport layer (for the occupancy of its reassemblers).
    pub fn ingress(&self) -> &Ingress {
        &self.ingress
    }

    /// Latest capture time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Processes one captured frame.
    #[inline]
    pub fn handle_frame<S: EventSink>(&mut self, link: LinkType, time: Timestamp, frame: &[u8], sink: &mut S) {
        self.core.stats.frames += 1;
        self.core.stats.bytes += frame.len() as u64;
        self.core.stats.largest_frame = self.core.stats.largest_frame.max(frame.len() as u64);
        self.advance(time, sink);
        self.ingress.handle(link, time, frame, &mut Deliver { core: &mut self.core, sink, time, raw: (link, frame) });
    }

    /// Whether a caller that can read ahead should ask for the next frame's flow early
    /// ([`Engine::prefetch_frame`]): from [`LOOKAHEAD_FROM_FLOWS`] media flows (unless
    /// configured otherwise), when the flow table has outgrown the caches.
    #[inline]
    pub fn wants_lookahead(&self) -> bool {
        self.core.media.flows() >= self.lookahead_from_flows
    }

    /// Starts loading what [`Engine::handle_frame`] will look `frame`'s flow up in, if it is a
    /// datagram of the fast path (a prefetch: nothing changes). Called with a frame a few
    /// frames before it is handled, its lookup no longer waits for memory.
    #[inline]
    pub fn prefetch_frame(&self, link: LinkType, frame: &[u8]) {
        if let Some((src, dst)) = Ingress::udp_ends(link, frame) {
            self.core.media.prefetch_flow(src, dst);
        }
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
                self.ingress.expire(now);
                // Work the transport layer shed since the last sweep may belong to any call up.
                let i = self.ingress.stats();
                let sheds = i.defrag.shed_table_full
                    + i.defrag.shed_bytes
                    + i.defrag.too_many_pieces
                    + i.tcp.connections_shed
                    + i.tcp.buffer_full
                    + i.tcp.too_many_pieces
                    + i.tunnel_too_deep;
                if sheds > self.sheds_reported {
                    let n = sheds - self.sheds_reported;
                    self.sheds_reported = sheds;
                    for call in self.core.tracker.open_call_refs() {
                        sink.call(CallEvent::Dropped { call, packets: n, cause: DropCause::Limit });
                    }
                }
                let core = &mut self.core;
                core.stats.udp_unmatched += core.held.expire(Some(now));
                core.tracker.sweep(now, &mut core.media, &mut core.stats);
                core.drain(sink);
            }
        }
    }

    /// Datagrams kept now for an SDP that may still claim them ([`crate::held`]).
    pub fn held_media(&self) -> usize {
        self.core.held.len()
    }

    /// The kernel dropped `packets` since the last report: every call up now may be missing
    /// some, and its record will say so.
    pub fn capture_loss<S: EventSink>(&mut self, packets: u64, sink: &mut S) {
        for call in self.core.tracker.open_call_refs() {
            sink.call(CallEvent::Dropped { call, packets, cause: DropCause::Kernel });
        }
    }

    /// Finalises every open call: at the end of the input (`EndOfInput`) or on shutdown.
    pub fn finish<S: EventSink>(&mut self, reason: EndReason, sink: &mut S) {
        let now = if self.now.0 == i64::MIN { Timestamp(0) } else { self.now };
        let core = &mut self.core;
        core.stats.udp_unmatched += core.held.expire(None);
        core.tracker.sweep(now, &mut core.media, &mut core.stats);
        core.tracker.finish_all(now, reason, &mut core.media, &mut core.stats);
        core.drain(sink);
    }
}

/// Hands what the transport layer finds to the engine's core, with the frame's capture time.
struct Deliver<'a, S> {
    core: &'a mut Core,
    sink: &'a mut S,
    time: Timestamp,
    /// The frame being handled, for evidence captures.
    raw: (LinkType, &'a [u8]),
}

impl<S: EventSink> IngressSink for Deliver<'_, S> {
    #[inline]
    fn udp(&mut self, d: &Datagram<'_>) {
        // A datagram rebuilt from fragments is not the frame at hand: no evidence frame.
        let raw = (self.core.keep_frames && !d.reassembled).then_some(self.raw);
        self.core.udp(self.time, d, raw, self.sink);
    }

    fn sip_stream(&mut self, time: Timestamp, src: SocketAddr, dst: SocketAddr, transport: Transport, message: &[u8]) {
        self.core.sip(time, src, dst, message, transport, None, self.sink);
    }
}

impl Core {
    /// Hands the dialog tracker's events to the sink, in order.
    fn drain<S: EventSink>(&mut self, sink: &mut S) {
        while let Some(event) = self.tracker.poll_event() {
            sink.call(event);
        }
    }

    /// One UDP datagram: media of a tracked call, else SIP found by content, on any port.
    #[inline]
    fn udp<S: EventSink>(&mut self, time: Timestamp, d: &Datagram<'_>, raw: Option<(LinkType, &[u8])>, sink: &mut S) {
        // Hot path: a media flow seen before, found by its 5-tuple.
        let owner = match self.media.flow(d.src, d.dst) {
            Flow::Owned(owner) => owner,
            Flow::Ambiguous => return self.ambiguous(time, d),
            Flow::Miss if self.media.is_claimed(&d.dst) => match self.attribute(time, d, sink) {
                Some(owner) => owner,
                None => return self.ambiguous(time, d),
            },
            Flow::Miss => {
                if sip::looks_like_sip(d.payload) {
                    if d.truncated {
                        self.stats.truncated_sip += 1;
                    }
                    self.sip(time, d.src, d.dst, d.payload, Transport::Udp, raw, sink);
                } else if self.held.wants(d.payload, raw.map(|(_, f)| f)) {
                    self.hold(time, d, raw);
                } else {
                    self.stats.udp_unmatched += 1;
                }
                return;
            }
        };
        let p = d.payload;
        if let MediaKind::Other(line) = owner.kind {
            self.stats.other_media_packets += 1;
            self.tracker.count_other_media(owner.call, line, owner.sender, time);
            if let Some((link, frame)) = raw {
                sink.frame(owner.call, time, link, frame);
            }
            return;
        }
        // ZRTP (RFC 6189) shares the RTP port. The media it keys is SRTP, which no passive
        // recorder can decrypt.
        if zrtp::is_zrtp(p) {
            self.stats.media_not_rtp += 1;
            self.stats.zrtp_packets += 1;
            if self.tracker.note_zrtp(owner.call, owner.sender) {
                sink.call(CallEvent::Encrypted {
                    call: owner.call,
                    side: owner.sender,
                    security: crate::events::MediaSecurity::Zrtp,
                });
            }
            if let Some((link, frame)) = raw {
                sink.frame(owner.call, time, link, frame);
            }
            return;
        }
        // RTCP on its own port, or multiplexed on the RTP port (RFC 5761).
        if owner.kind == MediaKind::Rtcp || rtcp::is_muxed(p) {
            if rtcp::is_rtcp(p) {
                self.stats.rtcp_packets += 1;
                self.stats.rtcp_bytes += p.len() as u64;
                if owner.kind == MediaKind::Rtcp {
                    self.stats.rtcp_port_packets += 1;
                }
                let meta = RtcpMeta { call: owner.call, side: owner.sender, time, src: d.src, dst: d.dst };
                sink.rtcp(&meta, p);
                if let Some((link, frame)) = raw {
                    sink.frame(owner.call, time, link, frame);
                }
            } else {
                self.stats.media_not_rtp += 1;
            }
            return;
        }
        match rtp::RtpPacket::new_checked(p) {
            Ok(rtp) => {
                self.stats.rtp_packets += 1;
                self.stats.rtp_bytes += p.len() as u64;
                self.tracker.touch(owner.call, time);
                if d.truncated {
                    self.stats.truncated_rtp += 1;
                    sink.call(CallEvent::Dropped { call: owner.call, packets: 1, cause: DropCause::Snaplen });
                }
                let meta = RtpMeta {
                    call: owner.call,
                    side: owner.sender,
                    time,
                    src: d.src,
                    dst: d.dst,
                    seq: rtp.sequence(),
                    rtp_ts: rtp.timestamp(),
                    ssrc: rtp.ssrc(),
                    pt: rtp.payload_type(),
                    marker: rtp.marker(),
                    payload_at: rtp.payload_range().start as u16,
                    padding: rtp.padding().unwrap_or(0),
                };
                sink.rtp(&meta, p);
                if let Some((link, frame)) = raw {
                    sink.frame(owner.call, time, link, frame);
                }
            }
            Err(_) => self.stats.media_not_rtp += 1,
        }
    }

    /// The first packet of a flow to a claimed address: ties the flow to a call, or says it is
    /// ambiguous (`None`). A flow that teaches the call where its other party receives
    /// (symmetric RTP) first hands on, before itself, what the hold kept for that address.
    #[cold]
    fn attribute<S: EventSink>(&mut self, time: Timestamp, d: &Datagram<'_>, sink: &mut S) -> Option<MediaOwner> {
        match self.media.resolve(d.src, d.dst, &self.tracker) {
            Resolution::Owner(owner) => {
                let claims = self.media.epoch();
                self.tracker.attribute_flow(owner, d.src, d.dst, &mut self.media, &mut self.stats);
                if self.held.len() > 0 && self.media.epoch() != claims {
                    self.release_held(time, sink);
                }
                Some(owner)
            }
            Resolution::Ambiguous | Resolution::Unclaimed => None,
        }
    }

    /// Media to no announced address: kept for a moment ([`crate::held`]).
    #[cold]
    fn hold(&mut self, time: Timestamp, d: &Datagram<'_>, raw: Option<(LinkType, &[u8])>) {
        self.stats.udp_unmatched += self.held.expire(Some(time));
        match self.held.keep(time, d, raw) {
            Kept::Held { evicted } => {
                self.stats.udp_unmatched += evicted;
                self.stats.media_hold_evicted += evicted;
            }
            Kept::Stale => self.stats.udp_unmatched += 1,
        }
    }

    /// After a SIP message changed the claims: hands on, with their own capture times, the
    /// datagrams kept that now go to a call's address.
    #[cold]
    fn release_held<S: EventSink>(&mut self, now: Timestamp, sink: &mut S) {
        self.stats.udp_unmatched += self.held.expire(Some(now));
        let mut held = std::mem::take(&mut self.held);
        let mut claimed = std::mem::take(&mut self.claimed);
        let media = &self.media;
        held.claimed(&mut claimed, |dst| media.is_claimed(&dst));
        for &i in &claimed {
            held.take(i, |t| {
                self.stats.media_before_sdp += 1;
                self.udp(t.time, &t.datagram, t.frame, sink);
            });
        }
        self.claimed = claimed;
        self.held = held;
    }

    /// A packet to an address several calls use that does not say which one it belongs to:
    /// counted (per address, for the records of the calls using it), recorded in none.
    #[cold]
    fn ambiguous(&mut self, time: Timestamp, d: &Datagram<'_>) {
        self.stats.media_ambiguous += 1;
        self.media.ambiguous(d.src, d.dst, time);
    }

    /// One SIP message: a UDP datagram or a message framed out of a TCP stream.
    #[allow(clippy::too_many_arguments)]
    fn sip<S: EventSink>(
        &mut self,
        time: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        message: &[u8],
        transport: Transport,
        raw: Option<(LinkType, &[u8])>,
        sink: &mut S,
    ) {
        if message.len() > self.limits.max_sip_message {
            self.stats.sip_oversized += 1;
            return;
        }
        match sip::parse(message, self.limits.max_sip_headers) {
            Ok(msg) => {
                self.stats.sip_messages += 1;
                self.stats.sip_bytes += message.len() as u64;
                let claims = self.media.epoch();
                let call = self.tracker.handle_sip(time, src, dst, &msg, transport, &mut self.media, &mut self.stats);
                self.drain(sink);
                if self.held.len() > 0 && self.media.epoch() != claims {
                    self.release_held(time, sink);
                }
                if let (Some(call), Some((link, frame))) = (call, raw) {
                    sink.frame(call, time, link, frame);
                }
                let call_id = msg.call_id.unwrap_or_default();
                sink.sip(&SipSeen { time, src, dst, transport, call_id, message });
            }
            Err(_) => self.stats.count_malformed(Layer::Sip),
        }
    }
}
