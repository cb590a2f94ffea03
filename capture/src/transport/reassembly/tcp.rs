//! TCP stream reassembly for SIP: segments in (any order, with retransmissions and overlaps),
//! framed SIP messages out.
//!
//! Invariants:
//! * A connection is followed only when it can carry SIP: a SYN or data on port 5060, or a
//!   segment that starts like a SIP message or holds a SIP start line, on any port (found by
//!   content). Other TCP traffic costs
//!   one hash lookup and one substring search per segment, and no memory.
//! * Each direction keeps the sequence number of the next byte it expects, the bytes of the
//!   message being received (`buf`) and segments that arrived ahead of a hole (out-of-order
//!   pieces, at most [`MAX_PIECES`] per direction). Bytes already received win over a
//!   retransmission that disagrees with them (counted as a conflict).
//! * At most `max_connections` connections, `max_buffer` bytes per connection (both
//!   directions, out-of-order pieces included) and `max_total` bytes overall are held. A new
//!   connection beyond the cap is not followed; a segment that does not fit is dropped, both
//!   counted. A direction whose out-of-order pieces fill its share gives up the hole in front
//!   of them (a passive capture lost those bytes; waiting longer cannot bring them back).
//! * Holes are also given up when the receiver acknowledges bytes the capture never showed
//!   (an ACK beyond the hole while later data is held): the partial message is dropped and the
//!   direction resynchronises on the next SIP start line.
//! * Framing is by `Content-Length` ([`crate::wire::sip_framing`]). A message larger than
//!   `max_message` is skipped whole when its headers say how long it is, else up to the next
//!   start line; bytes that are not SIP are skipped up to the next start line.
//! * FIN in both directions or RST ends a connection; one idle for `idle_timeout` of capture
//!   time is forgotten by [`TcpReassembler::expire`].
//! * SIP over WebSocket (RFC 7118) is told by its handshake, on any port: a connection whose
//!   first bytes are an HTTP `GET` with `Upgrade: websocket` is followed, its request must
//!   offer the `sip` subprotocol and its answer be `101`; from then on each direction is read
//!   as WebSocket frames (RFC 6455: masked or not, 7/16/64-bit lengths, fragments joined until
//!   FIN, control frames between fragments skipped), and each complete message goes out as
//!   one SIP message, as a UDP datagram would. A frame RFC 6455 forbids but whose length is
//!   readable (reserved bits, unknown opcode, a control frame over 125 bytes or fragmented)
//!   and a message over `max_message` are skipped by their length, so later messages are still
//!   read; a 64-bit length of 2^63 or more, or a hole in the stream, loses that direction (frames
//!   carry no marker to resynchronise on). A connection already up when the capture started
//!   cannot be read as WebSocket. Every such anomaly is counted ([`WsStats`]) and logged at most
//!   once a minute of capture time.
//! * TLS (SIP over TLS, `wss://`) cannot be read passively: ClientHellos to the usual TLS ports
//!   of SIP are counted (`TcpStats::tls_handshakes`), nothing more.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::limits::{Limits, Timeouts};
use crate::stats::{TcpStats, WsStats};
use crate::time::Timestamp;
use crate::transport::decode::Transport;
use crate::wire::sip_framing::{self, Framing};
use crate::wire::tcp::{ACK, FIN, RST, SYN};
use crate::wire::websocket::{self, FrameProblem, Upgrade};

/// Out-of-order pieces one direction may hold.
pub const MAX_PIECES: usize = 32;
/// The standard SIP port: connections on it are followed from their SYN.
pub const SIP_PORT: u16 = 5060;
/// While resynchronising, an unfinished last line longer than this is not kept for later.
const MAX_PROBE_TAIL: usize = 8192;
/// A segment further ahead than this in sequence space is nonsense, not out of order.
const MAX_AHEAD: i64 = 1 << 30;
/// Ports where a TLS ClientHello is counted as encrypted SIP (SIP over TLS, and the usual
/// `wss://` ports of PBXs and WebRTC gateways).
pub const TLS_SIP_PORTS: [u16; 5] = [5061, 443, 7443, 8089, 10443];
/// Capture time between two log lines about the same kind of stream anomaly.
const LOG_EVERY: i64 = 60 * Timestamp::SECOND;

/// Caps and timeout of a [`TcpReassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Connections followed at once.
    pub max_connections: usize,
    /// Bytes held per connection (both directions, out-of-order pieces included).
    pub max_buffer: usize,
    /// Bytes held by all connections.
    pub max_total: usize,
    /// Largest SIP message framed.
    pub max_message: usize,
    /// Nanoseconds of capture time after which a silent connection is forgotten.
    pub idle_timeout: i64,
}

impl TcpConfig {
    /// The TCP settings of an engine configuration.
    pub fn new(limits: &Limits, timeouts: &Timeouts) -> TcpConfig {
        TcpConfig {
            max_connections: limits.max_tcp_connections,
            max_buffer: limits.max_tcp_buffer,
            max_total: limits.max_tcp_bytes,
            max_message: limits.max_sip_message,
            idle_timeout: timeouts.tcp_idle,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig::new(&Limits::default(), &Timeouts::default())
    }
}

/// One TCP segment as the reassembler needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// VLAN the segment was seen on.
    pub vlan: Option<u16>,
    /// Sequence number (of the SYN when SYN is set).
    pub seq: u32,
    /// Acknowledgement number (used when [`ACK`] is in `flags`).
    pub ack: u32,
    /// TCP control flags ([`crate::wire::tcp`] constants).
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnKey {
    a: SocketAddr,
    b: SocketAddr,
    vlan: Option<u16>,
}

impl ConnKey {
    /// The key of the segment's connection and the segment's direction (0: a to b).
    fn of(seg: &Segment<'_>) -> (ConnKey, usize) {
        if seg.src <= seg.dst {
            (ConnKey { a: seg.src, b: seg.dst, vlan: seg.vlan }, 0)
        } else {
            (ConnKey { a: seg.dst, b: seg.src, vlan: seg.vlan }, 1)
        }
    }

    fn endpoints(&self, dir: usize) -> (SocketAddr, SocketAddr) {
        if dir == 0 { (self.a, self.b) } else { (self.b, self.a) }
    }
}

/// How a direction's bytes are read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SIP framed by Content-Length.
    #[default]
    Sip,
    /// The client's WebSocket upgrade request, not complete yet.
    HttpRequest,
    /// The server's answer to it, not complete yet.
    HttpResponse,
    /// WebSocket frames.
    WebSocket,
    /// Given up until the connection ends (bytes skipped and counted).
    Lost,
    /// A WebSocket that does not carry SIP (or was refused): skipped, not counted as lost.
    NotSip,
}

#[derive(Debug, Default)]
struct Half {
    mode: Mode,
    /// WebSocket: the unmasked payload of the message being received (fragments joined).
    ws_msg: Vec<u8>,
    /// WebSocket: a data frame without FIN was seen and its message is still open.
    ws_open: bool,
    /// WebSocket: the rest of the open message is thrown away (it grew too large).
    ws_discard: bool,
    /// Sequence number of the next byte expected; `None` before the first SYN or data.
    next: Option<u32>,
    /// Received bytes not framed yet.
    buf: Vec<u8>,
    /// Pieces ahead of `next`: (sequence number, bytes), sorted, disjoint.
    ooo: Vec<(u32, Vec<u8>)>,
    ooo_bytes: usize,
    /// `buf` starts at a message boundary (else: probe for a start line).
    synced: bool,
    /// Bytes of an oversized message still to be thrown away before the next message.
    skip: usize,
    ever_synced: bool,
    fin: bool,
}

#[derive(Debug)]
struct Conn {
    halves: [Half; 2],
    last_seen: Timestamp,
}

impl Conn {
    fn bytes(&self) -> usize {
        self.halves.iter().map(Half::bytes).sum()
    }
}

/// Follows SIP over TCP connections and frames their messages. Sans-IO: segments in with their
/// capture time, messages out through a callback.
#[derive(Debug)]
pub struct TcpReassembler {
    conns: FxHashMap<ConnKey, Conn>,
    total: usize,
    cfg: TcpConfig,
    stats: TcpStats,
    log: RateLog,
}

/// At most one log line per [`LOG_EVERY`] of capture time; the lines held back are counted
/// and named in the next one.
#[derive(Debug, Default)]
struct RateLog {
    last: Option<Timestamp>,
    held: u64,
}

impl RateLog {
    fn note(&mut self, now: Timestamp, line: impl FnOnce(u64)) {
        if self.last.is_some_and(|l| now.since(l) < LOG_EVERY) {
            self.held += 1;
            return;
        }
        line(self.held);
        self.held = 0;
        self.last = Some(now);
    }
}

impl TcpReassembler {
    /// A reassembler following no connection.
    pub fn new(cfg: TcpConfig) -> TcpReassembler {
        TcpReassembler {
            conns: FxHashMap::default(),
            total: 0,
            cfg,
            stats: TcpStats::default(),
            log: RateLog::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Connections followed.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes held by all connections.
    pub fn bytes_buffered(&self) -> usize {
        self.total
    }

    /// Feeds one segment seen at `now`. Every SIP message it completes is passed to `emit` with
    /// its sender and receiver, in stream order.
    /// The transport says whether it was framed out of the TCP stream itself
    /// ([`Transport::Tcp`]) or was a WebSocket message ([`Transport::Ws`]).
    pub fn segment<F>(&mut self, now: Timestamp, seg: &Segment<'_>, mut emit: F)
    where
        F: FnMut(SocketAddr, SocketAddr, Transport, &[u8]),
    {
        let (key, dir) = ConnKey::of(seg);
        let cfg = self.cfg;
        if !self.conns.contains_key(&key) {
            if seg.flags & RST != 0 || !self.worth_following(seg) {
                if is_tls_client_hello(seg) {
                    self.stats.tls_handshakes += 1;
                }
                return;
            }
            if self.conns.len() >= cfg.max_connections {
                self.stats.connections_shed += 1;
                return;
            }
            self.stats.connections += 1;
            self.conns.insert(key, Conn { halves: Default::default(), last_seen: now });
        }
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let before = conn.bytes();
        if seg.flags & RST != 0 {
            self.conns.remove(&key);
            self.total -= before;
            self.stats.connections_closed += 1;
            return;
        }
        if now > conn.last_seen {
            conn.last_seen = now;
        }
        let stats = &mut self.stats;
        let log = &mut self.log;
        // A WebSocket upgrade at the start of a direction: both directions switch to it.
        let h = &conn.halves[dir];
        if h.mode == Mode::Sip && h.buf.is_empty() && h.ooo.is_empty() && websocket::looks_like_upgrade(seg.payload) {
            for (i, mode) in [(dir, Mode::HttpRequest), (1 - dir, Mode::HttpResponse)] {
                let h = &mut conn.halves[i];
                if h.mode == Mode::Sip && h.buf.is_empty() {
                    h.mode = mode;
                    h.synced = true;
                    h.ever_synced = true;
                }
            }
        }
        // Room for this connection: its own cap, and what the others leave of the global one.
        let room = cfg.max_buffer.min(cfg.max_total.saturating_sub(self.total - before));

        // The ACK says what the other direction's receiver got.
        if seg.flags & ACK != 0 {
            let (s, d) = key.endpoints(1 - dir);
            conn.halves[1 - dir].acked(
                seg.ack,
                &mut Out {
                    max_message: cfg.max_message,
                    stats,
                    log,
                    now,
                    from: s,
                    to: d,
                    emit: &mut |t, m| emit(s, d, t, m),
                },
            );
        }

        let other_bytes = conn.halves[1 - dir].bytes();
        let half = &mut conn.halves[dir];
        let mut seq = seg.seq;
        if seg.flags & SYN != 0 {
            let isn = seq.wrapping_add(1);
            if half.next != Some(isn) {
                *half = Half { next: Some(isn), synced: true, ever_synced: true, ..Half::default() };
            }
            seq = isn;
        }
        if !seg.payload.is_empty() {
            let (s, d) = key.endpoints(dir);
            let out = &mut Out {
                max_message: cfg.max_message,
                stats,
                log,
                now,
                from: s,
                to: d,
                emit: &mut |t, m| emit(s, d, t, m),
            };
            half.data(seq, seg.payload, room.saturating_sub(other_bytes), out, true);
        }
        if seg.flags & FIN != 0 {
            half.fin = true;
        }
        // The request did not ask for SIP or the server refused it: not followed any further.
        if conn.halves.iter().any(|h| h.mode == Mode::NotSip) {
            for h in &mut conn.halves {
                h.mode = Mode::NotSip;
            }
        }
        let after = conn.bytes();
        if conn.halves.iter().all(|h| h.fin) {
            self.conns.remove(&key);
            self.total -= before;
            self.stats.connections_closed += 1;
        } else {
            self.total = self.total - before + after;
        }
    }

    /// Forgets every connection silent for `idle_timeout` or more at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        let idle = self.cfg.idle_timeout;
        let mut freed = 0;
        let mut expired = 0;
        self.conns.retain(|_, c| {
            let keep = now.since(c.last_seen) < idle;
            if !keep {
                freed += c.bytes();
                expired += 1;
            }
            keep
        });
        self.total -= freed;
        self.stats.connections_expired += expired;
    }

    /// Should a segment of a connection not followed yet start following it?
    fn worth_following(&self, seg: &Segment<'_>) -> bool {
        let sip_port = seg.src.port() == SIP_PORT || seg.dst.port() == SIP_PORT;
        if seg.payload.is_empty() {
            seg.flags & SYN != 0 && sip_port
        } else {
            sip_port
                || sip_framing::starts_like_sip(seg.payload)
                || websocket::looks_like_upgrade(seg.payload)
                || sip_framing::find_start_line(seg.payload).is_some()
        }
    }
}

/// A TLS handshake record holding a ClientHello, to one of [`TLS_SIP_PORTS`].
fn is_tls_client_hello(seg: &Segment<'_>) -> bool {
    let p = seg.payload;
    TLS_SIP_PORTS.contains(&seg.dst.port()) && p.len() >= 6 && p[0] == 0x16 && p[1] == 0x03 && p[5] == 0x01
}

impl Half {
    fn bytes(&self) -> usize {
        self.buf.len() + self.ooo_bytes + self.ws_msg.len()
    }

    /// Takes in `payload` at `seq` and frames what it completes; `allowed` is what this
    /// direction may hold in all. `may_give_up`: a hole may be given up to make room.
    fn data(&mut self, seq: u32, payload: &[u8], allowed: usize, out: &mut Out<'_>, may_give_up: bool) {
        let next = *self.next.get_or_insert(seq);
        let rel = i64::from(seq.wrapping_sub(next) as i32);
        let mut p = payload;
        if rel < 0 {
            let old = rel.unsigned_abs() as usize;
            if old >= p.len() {
                out.stats.retransmissions += 1;
                return;
            }
            out.stats.overlaps += 1;
            p = &p[old..];
        } else if rel > MAX_AHEAD {
            out.stats.retransmissions += 1;
            return;
        } else if rel > 0 {
            return self.hold(seq, p, allowed, out, may_give_up);
        }
        if self.bytes() + p.len() > allowed {
            // The partial message cannot be completed within the cap: drop it and these bytes.
            out.stats.buffer_full += 1;
            self.skip_to(next.wrapping_add(p.len() as u32), out.stats);
        } else {
            self.buf.extend_from_slice(p);
            self.next = Some(next.wrapping_add(p.len() as u32));
            self.pull();
        }
        self.frame(out);
    }

    /// Keeps an out-of-order segment (held bytes win over new ones).
    fn hold(&mut self, seq: u32, p: &[u8], allowed: usize, out: &mut Out<'_>, may_give_up: bool) {
        let Some(next) = self.next else { return };
        let rel = |s: u32| i64::from(s.wrapping_sub(next) as i32);
        let start = rel(seq);
        let end = start + p.len() as i64;
        // Parts of [start, end) not yet held, as (offset into p, length).
        let mut fresh: Vec<(usize, usize)> = Vec::new();
        let mut at = start;
        for (s, bytes) in &self.ooo {
            let (cs, ce) = (rel(*s), rel(*s) + bytes.len() as i64);
            if ce <= at || cs >= end {
                continue;
            }
            if cs > at {
                fresh.push(((at - start) as usize, (cs - at) as usize));
            }
            let (lo, hi) = (at.max(cs), end.min(ce));
            if p[(lo - start) as usize..(hi - start) as usize] != bytes[(lo - cs) as usize..(hi - cs) as usize] {
                out.stats.conflicts += 1;
            }
            at = at.max(ce);
        }
        if at < end {
            fresh.push(((at - start) as usize, (end - at) as usize));
        }
        let new_bytes: usize = fresh.iter().map(|f| f.1).sum();
        if new_bytes == 0 {
            out.stats.retransmissions += 1;
            return;
        }
        if new_bytes < p.len() {
            out.stats.overlaps += 1;
        }
        if self.bytes() + new_bytes > allowed {
            out.stats.buffer_full += 1;
            if may_give_up && !self.ooo.is_empty() {
                // The hole in front of the held pieces cannot be waited for within the cap:
                // give it up, frame what follows it, then take the segment once more.
                let first = self.ooo[0].0;
                self.skip_to(first, out.stats);
                self.frame(out);
                self.data(seq, p, allowed, out, false);
            }
            return;
        }
        if self.ooo.len() + fresh.len() > MAX_PIECES {
            out.stats.too_many_pieces += 1;
            return;
        }
        out.stats.out_of_order += 1;
        for (off, len) in fresh {
            let s = seq.wrapping_add(off as u32);
            let bytes = &p[off..off + len];
            let r = rel(s);
            let i = self.ooo.partition_point(|(cs, _)| rel(*cs) < r);
            match i.checked_sub(1).map(|j| &mut self.ooo[j]) {
                Some((cs, cb)) if rel(*cs) + cb.len() as i64 == r => cb.extend_from_slice(bytes),
                _ => self.ooo.insert(i, (s, bytes.to_vec())),
            }
            self.ooo_bytes += len;
        }
    }

    /// Moves held out-of-order pieces that are now in order into `buf`.
    fn pull(&mut self) {
        let Some(mut next) = self.next else { return };
        while let Some((s, _)) = self.ooo.first() {
            let rel = i64::from(s.wrapping_sub(next) as i32);
            if rel > 0 {
                break;
            }
            let (_, bytes) = self.ooo.remove(0);
            self.ooo_bytes -= bytes.len();
            let old = rel.unsigned_abs() as usize;
            if old < bytes.len() {
                self.buf.extend_from_slice(&bytes[old..]);
                next = next.wrapping_add((bytes.len() - old) as u32);
            }
        }
        self.next = Some(next);
    }

    /// Gives up everything before `to`: the partial message is dropped, the stream
    /// resynchronises on the next start line.
    fn skip_to(&mut self, to: u32, stats: &mut TcpStats) {
        stats.gaps += 1;
        self.count_skipped(self.buf.len(), stats);
        self.buf.clear();
        self.synced = false;
        self.skip = 0;
        self.ws_msg.clear();
        self.ws_open = false;
        self.next = Some(to);
        self.pull();
    }

    /// The receiver acknowledged `ack`. If later data is held and the ACK is beyond the hole,
    /// the capture lost the hole: give it up and frame what follows it.
    fn acked(&mut self, ack: u32, out: &mut Out<'_>) {
        let (Some(next), Some((first, _))) = (self.next, self.ooo.first()) else { return };
        if (ack.wrapping_sub(next) as i32) <= 0 {
            return;
        }
        let to = if (ack.wrapping_sub(*first) as i32) >= 0 { *first } else { ack };
        self.skip_to(to, out.stats);
        self.frame(out);
    }

    fn count_skipped(&self, n: usize, stats: &mut TcpStats) {
        if self.ever_synced {
            stats.bytes_skipped += n as u64;
        } else {
            stats.bytes_unsynced += n as u64;
        }
    }

    /// Frames and emits every complete message at the front of `buf`.
    fn frame(&mut self, out: &mut Out<'_>) {
        if self.mode == Mode::Sip { self.frame_sip(out) } else { self.frame_ws(out) }
    }

    /// SIP framed by Content-Length.
    fn frame_sip(&mut self, out: &mut Out<'_>) {
        let Out { max_message, stats, emit, .. } = out;
        let max_message = *max_message;
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len() - pos);
                self.count_skipped(n, stats);
                self.skip -= n;
                pos += n;
                if self.skip > 0 {
                    break;
                }
            }
            if !self.synced {
                let rest = &self.buf[pos..];
                match sip_framing::find_start_line(rest) {
                    Some(i) => {
                        self.count_skipped(i, stats);
                        pos += i;
                        self.synced = true;
                        self.ever_synced = true;
                    }
                    None => {
                        // Keep an unfinished last line: it may become a start line.
                        let line = memchr::memrchr(b'\n', rest).map_or(0, |n| n + 1);
                        let keep = if rest.len() - line > MAX_PROBE_TAIL { rest.len() } else { line };
                        self.count_skipped(keep, stats);
                        pos += keep;
                        break;
                    }
                }
            }
            pos += sip_framing::leading_line_breaks(&self.buf[pos..]);
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                break;
            }
            match sip_framing::frame(rest, max_message) {
                Framing::Complete(n) => {
                    stats.sip_messages += 1;
                    emit(Transport::Tcp, &rest[..n]);
                    pos += n;
                }
                Framing::Incomplete(_) => break,
                Framing::TooLarge { len: Some(n) } => {
                    // Skip exactly the oversized message: the stream stays in step.
                    stats.oversized += 1;
                    self.skip = n;
                }
                bad @ (Framing::TooLarge { len: None } | Framing::Invalid(_)) => {
                    if matches!(bad, Framing::TooLarge { .. }) {
                        stats.oversized += 1;
                    } else {
                        stats.invalid += 1;
                    }
                    let line = memchr::memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
                    self.count_skipped(line, stats);
                    pos += line;
                    self.synced = false;
                }
            }
        }
        self.buf.drain(..pos);
        if self.buf.is_empty() && self.buf.capacity() > 4096 {
            self.buf = Vec::new();
        }
    }
}

impl Half {
    /// Sequence number of `buf[pos]`.
    fn seq_at(&self, pos: usize) -> u32 {
        self.next.unwrap_or(0).wrapping_sub((self.buf.len() - pos) as u32)
    }

    /// The WebSocket handshake, then frames: each complete message is emitted.
    fn frame_ws(&mut self, out: &mut Out<'_>) {
        let max_message = out.max_message;
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len() - pos);
                self.count_skipped(n, out.stats);
                self.skip -= n;
                pos += n;
                if self.skip > 0 {
                    break;
                }
            }
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                break;
            }
            match self.mode {
                Mode::Sip => break,
                Mode::Lost | Mode::NotSip => {
                    if self.mode == Mode::Lost {
                        self.count_skipped(rest.len(), out.stats);
                    }
                    pos = self.buf.len();
                }
                Mode::HttpRequest | Mode::HttpResponse => {
                    let Some(end) = websocket::header_end(rest) else {
                        if rest.len() > websocket::MAX_HANDSHAKE {
                            let seq = self.seq_at(pos);
                            out.ws_anomaly("no end of the upgrade handshake", seq, |w| &mut w.bad_handshakes);
                            self.mode = Mode::Lost;
                            continue;
                        }
                        break;
                    };
                    let head = &rest[..end];
                    let seq = self.seq_at(pos);
                    self.mode = if self.mode == Mode::HttpRequest {
                        match websocket::upgrade_request(head) {
                            Some(Upgrade { sip: true }) => {
                                out.stats.ws.upgrades += 1;
                                Mode::WebSocket
                            }
                            Some(Upgrade { sip: false }) => {
                                out.stats.ws.not_sip += 1;
                                Mode::NotSip
                            }
                            None => {
                                out.ws_anomaly("an unreadable upgrade request", seq, |w| &mut w.bad_handshakes);
                                Mode::Lost
                            }
                        }
                    } else {
                        match websocket::upgrade_response(head) {
                            Some(101) => Mode::WebSocket,
                            Some(_) => {
                                out.stats.ws.refused += 1;
                                Mode::NotSip
                            }
                            None => {
                                out.ws_anomaly("an unreadable upgrade response", seq, |w| &mut w.bad_handshakes);
                                Mode::Lost
                            }
                        }
                    };
                    pos += end;
                }
                Mode::WebSocket => {
                    if !self.synced {
                        // A hole: frames carry nothing to resynchronise on.
                        let seq = self.seq_at(pos);
                        out.ws_anomaly("a hole in the stream (direction given up)", seq, |w| &mut w.lost);
                        self.mode = Mode::Lost;
                        continue;
                    }
                    let h = match websocket::parse_header(rest) {
                        Ok(Some(h)) => h,
                        Ok(None) => break,
                        Err(_) => {
                            let seq = self.seq_at(pos);
                            out.ws_anomaly("a frame length of 2^63 or more (direction given up)", seq, |w| {
                                &mut w.bad_length
                            });
                            out.stats.ws.lost += 1;
                            self.mode = Mode::Lost;
                            self.ws_msg.clear();
                            self.ws_open = false;
                            continue;
                        }
                    };
                    let frame_len = usize::try_from(h.frame_len()).unwrap_or(usize::MAX);
                    if let Some(problem) = h.problem() {
                        let seq = self.seq_at(pos);
                        let (what, counter): (&str, fn(&mut WsStats) -> &mut u64) = match problem {
                            FrameProblem::ReservedBits => ("a frame with reserved bits set", |w| &mut w.reserved_bits),
                            FrameProblem::UnknownOpcode => {
                                ("a frame with a reserved opcode", |w| &mut w.unknown_opcode)
                            }
                            FrameProblem::BadControl => {
                                ("a control frame over 125 bytes or fragmented", |w| &mut w.bad_control)
                            }
                        };
                        out.ws_anomaly(what, seq, counter);
                        self.skip = frame_len;
                        continue;
                    }
                    if h.payload_len > max_message as u64 {
                        let seq = self.seq_at(pos);
                        out.ws_anomaly("a frame larger than the largest SIP message", seq, |w| &mut w.too_large);
                        if !h.is_control() {
                            self.ws_msg.clear();
                            self.ws_discard = !h.fin;
                            self.ws_open = false;
                        }
                        self.skip = frame_len;
                        continue;
                    }
                    if rest.len() < frame_len {
                        break;
                    }
                    let payload = &rest[h.header_len..frame_len];
                    pos += frame_len;
                    if h.is_control() {
                        out.stats.ws.control_frames += 1;
                        continue;
                    }
                    if h.opcode == websocket::OP_CONTINUATION {
                        if !self.ws_open {
                            if !self.ws_discard {
                                let seq = self.seq_at(pos - frame_len);
                                out.ws_anomaly("a continuation frame without a message", seq, |w| {
                                    &mut w.fragment_errors
                                });
                            }
                            if h.fin {
                                self.ws_discard = false;
                            }
                            continue;
                        }
                    } else {
                        if self.ws_open {
                            let seq = self.seq_at(pos - frame_len);
                            out.ws_anomaly("a new message before the last one ended", seq, |w| &mut w.fragment_errors);
                        }
                        self.ws_msg.clear();
                        self.ws_open = true;
                        self.ws_discard = false;
                    }
                    if self.ws_msg.len() + payload.len() > max_message {
                        let seq = self.seq_at(pos - frame_len);
                        out.ws_anomaly("a message larger than the largest SIP message", seq, |w| &mut w.too_large);
                        self.ws_msg.clear();
                        self.ws_open = false;
                        self.ws_discard = !h.fin;
                        continue;
                    }
                    let at = self.ws_msg.len();
                    self.ws_msg.extend_from_slice(payload);
                    if let Some(key) = h.mask {
                        websocket::unmask(key, 0, &mut self.ws_msg[at..]);
                    }
                    if h.fin {
                        out.stats.sip_messages += 1;
                        out.stats.ws.messages += 1;
                        (out.emit)(Transport::Ws, &self.ws_msg);
                        self.ws_msg.clear();
                        self.ws_open = false;
                    }
                }
            }
        }
        self.buf.drain(..pos);
        if self.buf.is_empty() && self.buf.capacity() > 4096 {
            self.buf = Vec::new();
        }
        if self.ws_msg.is_empty() && self.ws_msg.capacity() > 4096 {
            self.ws_msg = Vec::new();
        }
    }
}

/// Where framed messages of one direction go.
struct Out<'a> {
    max_message: usize,
    stats: &'a mut TcpStats,
    log: &'a mut RateLog,
    now: Timestamp,
    /// The direction's sender and receiver (for log lines).
    from: SocketAddr,
    to: SocketAddr,
    emit: &'a mut dyn FnMut(Transport, &[u8]),
}

impl Out<'_> {
    /// Counts a WebSocket anomaly and logs it (rate-limited): what, between whom, and at which
    /// sequence number of the stream.
    fn ws_anomaly(&mut self, what: &str, seq: u32, counter: fn(&mut WsStats) -> &mut u64) {
        *counter(&mut self.stats.ws) += 1;
        let (from, to) = (self.from, self.to);
        self.log.note(self.now, |held| {
            tracing::warn!(
                "SIP over WebSocket from {from} to {to}: {what} at TCP sequence number {seq} \
                 ({held} more such problems since the last line)"
            );
        });
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ws_tests;
