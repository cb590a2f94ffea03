//! SIP over SCTP (RFC 4168): packets in, user messages out, each one SIP message.
//!
//! Invariants:
//! * Every DATA and I-DATA (RFC 8260) chunk of every packet is read; other chunks (INIT, SACK,
//!   HEARTBEAT, ...) are counted and skipped. A chunk whose length is below 4 or reaches past
//!   the packet ends the walk (counted as malformed); the chunks before it are kept.
//! * A user message in one chunk (B and E set) goes out at once; fragments are held per
//!   direction, stream and message (DATA: stream sequence number, fragments ordered by TSN;
//!   I-DATA: message identifier, ordered by FSN) until a run from B to E is complete, in any
//!   arrival order. Messages of different streams of one association are independent.
//! * A message whose first fragment is not SIP is dropped (SCTP also carries Diameter and
//!   SIGTRAN); one larger than `max_message` is dropped when it grows past it. At most
//!   `max_partials` messages are held at once, `MAX_FRAGMENTS` fragments each, and
//!   `max_total` bytes in all; a fragment beyond them is dropped and counted. A message not
//!   completed within `idle_timeout` of capture time lost a fragment: [`SctpReassembler::expire`]
//!   drops it and counts it.
//! * A chunk whose TSN was among the last [`RECENT_TSNS`] of its direction is a
//!   retransmission: counted, not delivered twice.
//! * The CRC32c is checked but not required: a capture on the sending host shows it before the
//!   NIC computed it (checksum offload). A mismatch is counted (`checksum_mismatch`), the
//!   packet is used.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::limits::{Limits, Timeouts};
use crate::stats::SctpStats;
use crate::time::Timestamp;
use crate::transport::decode::Transport;
use crate::wire::sctp::{self, Data};
use crate::wire::sip_framing;

/// Fragments one message may have.
pub const MAX_FRAGMENTS: usize = 64;
/// Delivered TSNs remembered per direction, to drop retransmissions.
pub const RECENT_TSNS: usize = 32;

/// Caps and timeout of an [`SctpReassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpConfig {
    /// Messages held in fragments at once (`Limits::max_tcp_connections`).
    pub max_partials: usize,
    /// Bytes held in all (`Limits::max_tcp_bytes`).
    pub max_total: usize,
    /// Largest SIP message (`Limits::max_sip_message`).
    pub max_message: usize,
    /// Nanoseconds after which an incomplete message is dropped (`Timeouts::tcp_idle`).
    pub idle_timeout: i64,
}

impl SctpConfig {
    /// The SCTP settings of an engine configuration (the TCP limits, reused).
    pub fn new(limits: &Limits, timeouts: &Timeouts) -> SctpConfig {
        SctpConfig {
            max_partials: limits.max_tcp_connections,
            max_total: limits.max_tcp_bytes,
            max_message: limits.max_sip_message,
            idle_timeout: timeouts.tcp_idle,
        }
    }
}

/// One SCTP packet as the reassembler needs it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Sender (address and SCTP port).
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// VLAN it was seen on.
    pub vlan: Option<u16>,
    /// The SCTP packet: common header and chunks.
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Dir {
    src: SocketAddr,
    dst: SocketAddr,
    vlan: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MsgKey {
    dir: Dir,
    stream: u16,
    mid: u32,
    unordered: bool,
    interleaved: bool,
}

#[derive(Debug)]
struct Fragment {
    /// DATA: TSN; I-DATA: FSN.
    seq: u32,
    begin: bool,
    end: bool,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Partial {
    frags: Vec<Fragment>,
    bytes: usize,
    last_seen: Timestamp,
}

/// Reassembles SIP messages out of SCTP packets. Sans-IO: packets in with their capture time,
/// messages out through a callback.
#[derive(Debug)]
pub struct SctpReassembler {
    partials: FxHashMap<MsgKey, Partial>,
    recent: FxHashMap<Dir, ([u32; RECENT_TSNS], usize)>,
    total: usize,
    cfg: SctpConfig,
    stats: SctpStats,
}

impl SctpReassembler {
    /// A reassembler holding nothing.
    pub fn new(cfg: SctpConfig) -> SctpReassembler {
        SctpReassembler {
            partials: FxHashMap::default(),
            recent: FxHashMap::default(),
            total: 0,
            cfg,
            stats: SctpStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &SctpStats {
        &self.stats
    }

    /// Bytes held in fragments.
    pub fn bytes_buffered(&self) -> usize {
        self.total
    }

    /// Messages held in fragments.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Feeds one SCTP packet seen at `now`; every SIP message it completes goes to `emit`.
    pub fn packet<F>(&mut self, now: Timestamp, p: &Packet<'_>, mut emit: F)
    where
        F: FnMut(SocketAddr, SocketAddr, Transport, &[u8]),
    {
        self.stats.packets += 1;
        let s = match sctp::parse(p.bytes) {
            Ok(s) => s,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if !sctp::checksum_ok(p.bytes) {
            self.stats.checksum_mismatch += 1;
        }
        let dir = Dir {
            src: SocketAddr::new(p.src.ip(), s.src_port),
            dst: SocketAddr::new(p.dst.ip(), s.dst_port),
            vlan: p.vlan,
        };
        for chunk in sctp::chunks(s.chunks) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(_) => {
                    self.stats.malformed += 1;
                    break;
                }
            };
            match sctp::data(&chunk) {
                None => self.stats.control_chunks += 1,
                Some(Err(_)) => self.stats.malformed += 1,
                Some(Ok(d)) => {
                    self.stats.data_chunks += 1;
                    self.data(now, dir, &d, &mut emit);
                }
            }
        }
    }

    /// Drops every message left incomplete for `idle_timeout` or more at `now`.
    pub fn expire(&mut self, now: Timestamp) {
        let idle = self.cfg.idle_timeout;
        let mut freed = 0;
        let mut lost = 0;
        self.partials.retain(|_, m| {
            let keep = now.since(m.last_seen) < idle;
            if !keep {
                freed += m.bytes;
                lost += 1;
            }
            keep
        });
        self.total -= freed;
        self.stats.incomplete += lost;
        if self.partials.is_empty() {
            self.recent.clear();
        }
    }

    /// True (and remembered) when `tsn` was not delivered before in this direction.
    fn fresh(&mut self, dir: Dir, tsn: u32) -> bool {
        let (ring, at) = self.recent.entry(dir).or_insert(([u32::MAX; RECENT_TSNS], 0));
        if ring.contains(&tsn) {
            return false;
        }
        ring[*at % RECENT_TSNS] = tsn;
        *at = (*at + 1) % RECENT_TSNS;
        true
    }

    fn data<F>(&mut self, now: Timestamp, dir: Dir, d: &Data<'_>, emit: &mut F)
    where
        F: FnMut(SocketAddr, SocketAddr, Transport, &[u8]),
    {
        if !self.fresh(dir, d.tsn) {
            self.stats.retransmissions += 1;
            return;
        }
        if d.begin && d.end {
            return self.deliver(dir, d.payload, emit);
        }
        // A first fragment too short to tell is kept; the whole message is checked at the end.
        if d.begin && d.payload.len() >= 24 && !sip_framing::starts_like_sip(d.payload) {
            self.stats.not_sip += 1;
            return;
        }
        self.stats.fragments += 1;
        let key = MsgKey { dir, stream: d.stream, mid: d.mid, unordered: d.unordered, interleaved: d.interleaved };
        let seq = if d.interleaved { d.fsn } else { d.tsn };
        let cfg = self.cfg;
        if !self.partials.contains_key(&key) && self.partials.len() >= cfg.max_partials {
            self.stats.shed += 1;
            return;
        }
        if self.total + d.payload.len() > cfg.max_total {
            self.stats.shed += 1;
            return;
        }
        let m = self.partials.entry(key).or_insert(Partial { frags: Vec::new(), bytes: 0, last_seen: now });
        m.last_seen = now;
        if m.bytes + d.payload.len() > cfg.max_message {
            self.stats.too_large += 1;
            self.total -= m.bytes;
            self.partials.remove(&key);
            return;
        }
        if m.frags.len() >= MAX_FRAGMENTS {
            self.stats.shed += 1;
            return;
        }
        // Sorted by sequence number relative to the first fragment held (serial arithmetic).
        let base = m.frags.first().map_or(seq, |f| f.seq.min(seq));
        let rel = |s: u32| s.wrapping_sub(base) as i32;
        let i = m.frags.partition_point(|f| rel(f.seq) < rel(seq));
        m.frags.insert(i, Fragment { seq, begin: d.begin, end: d.end, bytes: d.payload.to_vec() });
        m.bytes += d.payload.len();
        self.total += d.payload.len();
        // A complete run from a B to an E, consecutive?
        let Some(b) = m.frags.iter().position(|f| f.begin) else { return };
        let mut e = b;
        while !m.frags[e].end {
            if e + 1 >= m.frags.len() || m.frags[e + 1].seq != m.frags[e].seq.wrapping_add(1) {
                return;
            }
            e += 1;
        }
        let Some(m) = self.partials.remove(&key) else { return };
        self.total -= m.bytes;
        if b > 0 || e + 1 < m.frags.len() {
            // Fragments outside the run belong to no message that can complete.
            self.stats.incomplete += 1;
        }
        let mut msg = Vec::with_capacity(m.bytes);
        for f in &m.frags[b..=e] {
            msg.extend_from_slice(&f.bytes);
        }
        self.stats.reassembled += 1;
        self.deliver(dir, &msg, emit);
    }

    fn deliver<F>(&mut self, dir: Dir, msg: &[u8], emit: &mut F)
    where
        F: FnMut(SocketAddr, SocketAddr, Transport, &[u8]),
    {
        if !sip_framing::starts_like_sip(msg) {
            self.stats.not_sip += 1;
            return;
        }
        self.stats.sip_messages += 1;
        emit(dir.src, dir.dst, Transport::Sctp, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:5060";
    const B: &str = "10.0.0.2:5060";

    fn packet(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
        for c in chunks {
            p.extend_from_slice(c);
            p.resize(p.len().next_multiple_of(4), 0);
        }
        p
    }

    fn data(flags: u8, tsn: u32, stream: u16, ssn: u16, payload: &[u8]) -> Vec<u8> {
        let mut c = vec![0, flags];
        c.extend_from_slice(&((16 + payload.len()) as u16).to_be_bytes());
        c.extend_from_slice(&tsn.to_be_bytes());
        c.extend_from_slice(&stream.to_be_bytes());
        c.extend_from_slice(&ssn.to_be_bytes());
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(payload);
        c
    }

    fn run(r: &mut SctpReassembler, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for p in packets {
            let pk = Packet { src: A.parse().unwrap(), dst: B.parse().unwrap(), vlan: None, bytes: p };
            r.packet(Timestamp(0), &pk, |_, _, t, m| {
                assert_eq!(t, Transport::Sctp);
                out.push(m.to_vec());
            });
        }
        out
    }

    fn cfg() -> SctpConfig {
        SctpConfig::new(&Limits::default(), &Timeouts::default())
    }

    #[test]
    fn whole_fragmented_and_streams() {
        let m1 = b"OPTIONS sip:a SIP/2.0\r\n\r\n";
        let m2 = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut r = SctpReassembler::new(cfg());
        // m1 whole on stream 0 beside a SACK; m2 in three fragments on stream 1, out of
        // order, with a whole m1 on stream 2 between them.
        let sack = vec![3, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
        let p = vec![
            packet(&[sack.clone(), data(3, 10, 0, 0, m1)]),
            packet(&[data(2, 11, 1, 0, &m2[..5]), data(1, 13, 1, 0, &m2[20..])]),
            packet(&[data(3, 14, 2, 0, m1)]),
            packet(&[data(0, 12, 1, 0, &m2[5..20])]),
            packet(&[data(3, 14, 2, 0, m1)]), // retransmission
        ];
        let out = run(&mut r, &p);
        assert_eq!(out, vec![m1.to_vec(), m1.to_vec(), m2.to_vec()]);
        let s = r.stats();
        assert_eq!((s.sip_messages, s.reassembled, s.retransmissions, s.control_chunks), (3, 1, 1, 1));
        assert_eq!(r.bytes_buffered(), 0);
    }

    /// An I-DATA chunk (RFC 8260): TSN, stream, reserved, MID, then PPID (first) or FSN.
    fn i_data(flags: u8, tsn: u32, stream: u16, mid: u32, ppid_or_fsn: u32, payload: &[u8]) -> Vec<u8> {
        let mut c = vec![64, flags];
        c.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        c.extend_from_slice(&tsn.to_be_bytes());
        c.extend_from_slice(&stream.to_be_bytes());
        c.extend_from_slice(&[0, 0]);
        c.extend_from_slice(&mid.to_be_bytes());
        c.extend_from_slice(&ppid_or_fsn.to_be_bytes());
        c.extend_from_slice(payload);
        c
    }

    #[test]
    fn interleaved_i_data_messages() {
        let m1 = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let m2 = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut r = SctpReassembler::new(cfg());
        // Two messages of one stream interleaved (MID 1 and 2), fragments out of order.
        let p = vec![
            packet(&[i_data(2, 1, 0, 1, 0, &m1[..10]), i_data(2, 2, 0, 2, 0, &m2[..10])]),
            packet(&[i_data(1, 4, 0, 2, 2, &m2[20..]), i_data(0, 3, 0, 2, 1, &m2[10..20])]),
            packet(&[i_data(1, 5, 0, 1, 1, &m1[10..])]),
        ];
        assert_eq!(run(&mut r, &p), vec![m2.to_vec(), m1.to_vec()]);
        assert_eq!((r.stats().reassembled, r.bytes_buffered(), r.partials()), (2, 0, 0));
    }

    #[test]
    fn lost_fragment_expires_and_hostile_chunks() {
        let m2 = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut r = SctpReassembler::new(cfg());
        let out = run(&mut r, &[packet(&[data(2, 1, 0, 0, &m2[..5]), data(1, 3, 0, 0, &m2[20..])])]);
        assert!(out.is_empty());
        assert_eq!(r.partials(), 1);
        r.expire(Timestamp(cfg().idle_timeout));
        assert_eq!((r.partials(), r.bytes_buffered(), r.stats().incomplete), (0, 0, 1));
        // Length 0, past the end, a DATA chunk too short: counted, no panic.
        let mut zero = packet(&[data(3, 9, 0, 0, b"SIP/2.0 200 OK\r\n\r\n")]);
        zero.extend_from_slice(&[0, 0, 0, 0]);
        let mut past = packet(&[]);
        past.extend_from_slice(&[0, 3, 0xff, 0xff, 0, 0]);
        let short = packet(&[vec![0, 3, 0, 8, 0, 0, 0, 1]]);
        let out = run(&mut r, &[zero, past, short, vec![1, 2, 3]]);
        assert_eq!(out.len(), 1, "the chunk before the bad one is kept");
        assert_eq!(r.stats().malformed, 4);
    }

    #[test]
    fn not_sip_and_too_large() {
        let mut r = SctpReassembler::new(SctpConfig { max_message: 30, ..cfg() });
        let out = run(
            &mut r,
            &[
                packet(&[data(3, 1, 0, 0, b"\x01\x00\x00\x14diameter")]),
                packet(&[data(2, 2, 0, 1, b"SIP/2.0 200 OK\r\n"), data(0, 3, 0, 1, b"Content-Length: 0\r\n")]),
            ],
        );
        assert!(out.is_empty());
        assert_eq!((r.stats().not_sip, r.stats().too_large, r.bytes_buffered()), (1, 1, 0));
    }

    proptest::proptest! {
        /// Random packets (and random chunk areas behind a good header) never panic, and what
        /// is held stays within the caps.
        #[test]
        fn random_bytes_never_panic(
            packets in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..8),
        ) {
            let mut r = SctpReassembler::new(SctpConfig { max_partials: 4, max_total: 600, max_message: 300, ..cfg() });
            for p in &packets {
                let mut q = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 1, 0, 0, 0, 0];
                q.extend_from_slice(p);
                for bytes in [&p[..], &q[..]] {
                    let pk = Packet { src: A.parse().unwrap(), dst: B.parse().unwrap(), vlan: None, bytes };
                    r.packet(Timestamp(0), &pk, |_, _, _, m| assert!(m.len() <= 300));
                    proptest::prop_assert!(r.bytes_buffered() <= 600 && r.partials() <= 4);
                }
            }
        }
    }
}
