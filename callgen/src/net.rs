//! Packets that are more than one UDP datagram in one frame: TCP segments, IP fragments and
//! tunnels. Headers are laid out here byte by byte (with the Internet checksum of RFC 1071);
//! the plain UDP path of [`crate::frame`] stays as it is for speed.

use std::io::{self, Write};
use std::net::IpAddr;

use crate::frame::{self, Datagram};
use crate::mix::hash;
use crate::pcap::PcapWriter;
use crate::spec::{FragmentOrder, Fragmentation, Link, Scenario, TUNNEL_DST, TUNNEL_SRC, Tunnel};

/// TCP flag bits.
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

/// TCP receive window advertised by both ends.
const TCP_WINDOW: u16 = 65_535;
const PROTO_TCP: u8 = 6;
const PROTO_SCTP: u8 = 132;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
const PROTO_IPV6_FRAG: u8 = 44;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_II: u16 = 0x88be;
const GRE_ERSPAN_III: u16 = 0x22eb;
const VXLAN_PORT: u16 = 4789;
/// DSCP EF (RTP) and CS3 (SIP and TCP control), as in [`crate::frame`].
const DSCP_EF: u8 = 46;
const DSCP_CS3: u8 = 24;
const TTL: u8 = 64;

/// The transport header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4 {
    Udp,
    Tcp {
        seq: u32,
        ack: u32,
        flags: u8,
    },
    /// An SCTP packet: the payload is its chunks (each padded to 4 bytes).
    Sctp {
        vtag: u32,
        zero_checksum: bool,
    },
}

/// Writes packets through fragmentation and tunnels; keeps the counters those need.
#[derive(Debug)]
pub(crate) struct Wire {
    link: Link,
    tunnel: Option<Tunnel>,
    frag: Option<Fragmentation>,
    seed: u64,
    /// IPv4 identification of the next outer (tunnel) packet.
    outer_id: u16,
    /// GRE sequence number of the next ERSPAN packet.
    gre_seq: u32,
}

impl Wire {
    pub(crate) fn new(scenario: &Scenario) -> Wire {
        let h = hash(&[scenario.seed, 0x7e11]);
        Wire {
            link: scenario.link,
            tunnel: scenario.tunnel,
            frag: scenario.fragmentation,
            seed: scenario.seed,
            outer_id: h as u16,
            gre_seq: 1,
        }
    }

    /// Whether a UDP datagram with `payload_len` bytes goes out as one plain frame.
    #[inline]
    pub(crate) fn plain_udp(&self, d: &Datagram, payload_len: usize) -> bool {
        self.tunnel.is_none() && self.frag.is_none_or(|f| ip_len(d.src, 8 + payload_len) <= usize::from(f.mtu))
    }

    /// Writes the frame(s) of one packet captured at `t`: the fragments of the IP packet, each
    /// in the tunnel if there is one. Returns the number of records written.
    pub(crate) fn write<W: Write>(
        &mut self,
        pcap: &mut PcapWriter<W>,
        t: i64,
        d: &Datagram,
        l4: L4,
        payload: &[u8],
    ) -> io::Result<u64> {
        if l4 == L4::Udp && self.plain_udp(d, payload.len()) {
            if pcap.snaplen().is_some() {
                let mut frame = Vec::with_capacity(frame::frame_len(self.link, d, payload.len()));
                frame::write(self.link, d, payload, &mut frame)?;
                pcap.record_cut(t, &frame)?;
                return Ok(1);
            }
            let len = frame::frame_len(self.link, d, payload.len());
            pcap.record(t, len, |w| frame::write(self.link, d, payload, w))?;
            return Ok(1);
        }
        let segment = transport(d, l4, payload)?;
        let packets = self.ip_packets(d, l4, &segment)?;
        for p in &packets {
            let frame = self.frame(t, d, p)?;
            pcap.record_cut(t, &frame)?;
        }
        Ok(packets.len() as u64)
    }

    /// The IP packet(s) carrying a transport segment: one, or its fragments in capture order.
    fn ip_packets(&self, d: &Datagram, l4: L4, segment: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let proto = match l4 {
            L4::Udp => PROTO_UDP,
            L4::Tcp { .. } => PROTO_TCP,
            L4::Sctp { .. } => PROTO_SCTP,
        };
        let dscp = if d.media { DSCP_EF } else { DSCP_CS3 };
        let mtu = self.frag.map(|f| usize::from(f.mtu));
        let whole = mtu.is_none_or(|m| ip_len(d.src, segment.len()) <= m);
        let mut out = Vec::new();
        match (d.src, d.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let (src, dst) = (src.octets(), dst.octets());
                if whole {
                    let mut p = ipv4_header(src, dst, proto, dscp, d.ip_id, true, 0, false, segment.len());
                    p.extend_from_slice(segment);
                    out.push(p);
                } else {
                    let step = (mtu.unwrap_or(0).saturating_sub(20) / 8 * 8).max(8);
                    for (i, chunk) in segment.chunks(step).enumerate() {
                        let offset = i * step;
                        let more = offset + chunk.len() < segment.len();
                        let mut p = ipv4_header(src, dst, proto, dscp, d.ip_id, false, offset, more, chunk.len());
                        p.extend_from_slice(chunk);
                        out.push(p);
                    }
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let (src, dst) = (src.octets(), dst.octets());
                if whole {
                    let mut p = ipv6_header(src, dst, proto, dscp, segment.len());
                    p.extend_from_slice(segment);
                    out.push(p);
                } else {
                    // 32-bit identification: the sender's 16-bit counter under seeded high bits.
                    let id = (hash(&[self.seed, 0x6f12]) as u32 & 0xffff_0000) | u32::from(d.ip_id);
                    let step = (mtu.unwrap_or(0).saturating_sub(48) / 8 * 8).max(8);
                    for (i, chunk) in segment.chunks(step).enumerate() {
                        let offset = i * step;
                        let more = offset + chunk.len() < segment.len();
                        let mut p = ipv6_header(src, dst, PROTO_IPV6_FRAG, dscp, 8 + chunk.len());
                        p.push(proto);
                        p.push(0);
                        let off = ((offset / 8) as u16) << 3 | u16::from(more);
                        p.extend_from_slice(&off.to_be_bytes());
                        p.extend_from_slice(&id.to_be_bytes());
                        p.extend_from_slice(chunk);
                        out.push(p);
                    }
                }
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "addresses of different IP families")),
        }
        if out.len() > 1 {
            match self.frag.map(|f| f.order).unwrap_or_default() {
                FragmentOrder::InOrder => {}
                FragmentOrder::Reverse => out.reverse(),
                FragmentOrder::Shuffled => {
                    let key = hash(&[self.seed, 0xf7a6, u64::from(d.ip_id), u64::from(d.src_port)]);
                    for i in (1..out.len()).rev() {
                        let j = (hash(&[key, i as u64]) % (i as u64 + 1)) as usize;
                        out.swap(i, j);
                    }
                    // Never the identity: at least one fragment out of place.
                    if out.windows(2).all(|w| frag_offset(&w[0]) < frag_offset(&w[1])) {
                        out.rotate_left(1);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One frame around an IP packet of `d`'s hosts: the link header, or the tunnel.
    fn frame(&mut self, t: i64, d: &Datagram, ip: &[u8]) -> io::Result<Vec<u8>> {
        let net_type = if ip[0] >> 4 == 4 { ETHERTYPE_IPV4 } else { ETHERTYPE_IPV6 };
        let Some(tunnel) = self.tunnel else {
            let mut f = frame::link_header(self.link, net_type, d.src, d.dst)?;
            f.extend_from_slice(ip);
            return Ok(f);
        };
        // The inner Ethernet frame, for the tunnels that carry one.
        let ethernet = || {
            let mut e = Vec::with_capacity(14 + ip.len());
            e.extend_from_slice(&frame::mac(d.dst));
            e.extend_from_slice(&frame::mac(d.src));
            e.extend_from_slice(&net_type.to_be_bytes());
            e.extend_from_slice(ip);
            e
        };
        let mut gre_seq = || {
            let s = self.gre_seq;
            self.gre_seq = self.gre_seq.wrapping_add(1);
            s
        };
        let (proto, inner) = match tunnel {
            Tunnel::Gre => (PROTO_GRE, gre(0, net_type, None, ip)),
            Tunnel::GreEthernet => (PROTO_GRE, gre(0, GRE_TEB, None, &ethernet())),
            Tunnel::ErspanII { session } => {
                let mut e = Vec::with_capacity(8);
                e.extend_from_slice(&(1u16 << 12).to_be_bytes()); // version 1, VLAN 0
                e.extend_from_slice(&(session & 0x03ff).to_be_bytes()); // COS 0, En 0, T 0
                e.extend_from_slice(&0u32.to_be_bytes()); // reserved, index 0
                e.extend_from_slice(&ethernet());
                (PROTO_GRE, gre(0x1000, GRE_ERSPAN_II, Some(gre_seq()), &e))
            }
            Tunnel::ErspanIII { session } => {
                let mut e = Vec::with_capacity(12);
                e.extend_from_slice(&(2u16 << 12).to_be_bytes()); // version 2, VLAN 0
                e.extend_from_slice(&(session & 0x03ff).to_be_bytes()); // COS 0, BSO 0, T 0
                e.extend_from_slice(&((t / 100_000) as u32).to_be_bytes()); // 100 µs units
                e.extend_from_slice(&0u32.to_be_bytes()); // SGT 0, P 0, FT 0 (Ethernet), Gra 00, O 0
                e.extend_from_slice(&ethernet());
                (PROTO_GRE, gre(0x1000, GRE_ERSPAN_III, Some(gre_seq()), &e))
            }
            Tunnel::Vxlan { vni } => {
                let mut v = Vec::with_capacity(8);
                v.extend_from_slice(&[0x08, 0, 0, 0]);
                v.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
                v.extend_from_slice(&ethernet());
                let flow = hash(&[ip_key(d.src), ip_key(d.dst), u64::from(d.src_port), u64::from(d.dst_port)]);
                let src_port = 49_152 + (flow % 16_384) as u16;
                let outer = Datagram {
                    src: IpAddr::V4(TUNNEL_SRC),
                    dst: IpAddr::V4(TUNNEL_DST),
                    src_port,
                    dst_port: VXLAN_PORT,
                    media: false,
                    ip_id: 0,
                };
                (PROTO_UDP, transport(&outer, L4::Udp, &v)?)
            }
        };
        let id = self.outer_id;
        self.outer_id = self.outer_id.wrapping_add(1);
        let mut f = frame::link_header(self.link, ETHERTYPE_IPV4, IpAddr::V4(TUNNEL_SRC), IpAddr::V4(TUNNEL_DST))?;
        f.extend(ipv4_header(TUNNEL_SRC.octets(), TUNNEL_DST.octets(), proto, 0, id, true, 0, false, inner.len()));
        f.extend_from_slice(&inner);
        Ok(f)
    }
}

/// Length of the IP packet (unfragmented) around `l4_len` bytes of transport.
fn ip_len(src: IpAddr, l4_len: usize) -> usize {
    l4_len + if src.is_ipv4() { 20 } else { 40 }
}

/// Fragment offset of an IPv4 packet or of an IPv6 packet with a fragment header.
fn frag_offset(p: &[u8]) -> u16 {
    if p[0] >> 4 == 4 { u16::from_be_bytes([p[6], p[7]]) & 0x1fff } else { u16::from_be_bytes([p[42], p[43]]) >> 3 }
}

fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            (x as u64) ^ ((x >> 64) as u64)
        }
    }
}

/// A GRE header (RFC 2784/2890) with the given flags, protocol and optional sequence number,
/// followed by `payload`.
fn gre(flags: u16, protocol: u16, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut g = Vec::with_capacity(8 + payload.len());
    g.extend_from_slice(&flags.to_be_bytes());
    g.extend_from_slice(&protocol.to_be_bytes());
    if let Some(s) = seq {
        g.extend_from_slice(&s.to_be_bytes());
    }
    g.extend_from_slice(payload);
    g
}

/// RFC 1071 one's complement sum of `parts`, folded, not inverted.
fn sum16(parts: &[&[u8]]) -> u32 {
    let mut sum = 0u32;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
        // Parts are even-length except possibly the last.
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum
}

fn checksum(parts: &[&[u8]]) -> u16 {
    !(sum16(parts) as u16)
}

/// The UDP or TCP segment (header with checksum, then payload) of `d`.
fn transport(d: &Datagram, l4: L4, payload: &[u8]) -> io::Result<Vec<u8>> {
    if let L4::Sctp { vtag, zero_checksum } = l4 {
        // RFC 9260: common header, chunks; CRC32c over the packet with the field zero, written
        // least significant byte first (appendix A).
        let mut p = Vec::with_capacity(12 + payload.len());
        p.extend_from_slice(&d.src_port.to_be_bytes());
        p.extend_from_slice(&d.dst_port.to_be_bytes());
        p.extend_from_slice(&vtag.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(payload);
        if !zero_checksum {
            let c = crc32c(&p);
            p[8..12].copy_from_slice(&c.to_le_bytes());
        }
        return Ok(p);
    }
    let (proto, mut seg) = match l4 {
        L4::Udp => {
            let len = u16::try_from(8 + payload.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "UDP payload too long"))?;
            let mut h = Vec::with_capacity(8 + payload.len());
            h.extend_from_slice(&d.src_port.to_be_bytes());
            h.extend_from_slice(&d.dst_port.to_be_bytes());
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[0, 0]);
            (PROTO_UDP, h)
        }
        L4::Tcp { seq, ack, flags } => {
            let mut h = Vec::with_capacity(20 + payload.len());
            h.extend_from_slice(&d.src_port.to_be_bytes());
            h.extend_from_slice(&d.dst_port.to_be_bytes());
            h.extend_from_slice(&seq.to_be_bytes());
            h.extend_from_slice(&(if flags & ACK != 0 { ack } else { 0 }).to_be_bytes());
            h.push(5 << 4); // data offset: 5 words, no options
            h.push(flags);
            h.extend_from_slice(&TCP_WINDOW.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            (PROTO_TCP, h)
        }
        L4::Sctp { .. } => unreachable!("SCTP returned above"),
    };
    let seg_len = seg.len() + payload.len();
    let len32 = (seg_len as u32).to_be_bytes();
    let pseudo: Vec<u8> = match (d.src, d.dst) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let mut p = Vec::with_capacity(12);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&t.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(seg_len as u16).to_be_bytes());
            p
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let mut p = Vec::with_capacity(40);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&t.octets());
            p.extend_from_slice(&len32);
            p.extend_from_slice(&[0, 0, 0, proto]);
            p
        }
        _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "addresses of different IP families")),
    };
    let mut c = checksum(&[&pseudo, &seg, payload]);
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    let at = if proto == PROTO_UDP { 6 } else { 16 };
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg.extend_from_slice(payload);
    Ok(seg)
}

/// CRC32c (Castagnoli), bit by bit.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 20-byte IPv4 header for `payload_len` bytes of payload, with its checksum.
#[allow(clippy::too_many_arguments)]
fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    dscp: u8,
    id: u16,
    dont_fragment: bool,
    offset: usize,
    more: bool,
    payload_len: usize,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(20 + payload_len);
    h.push(0x45);
    h.push(dscp << 2);
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    let flags = (u16::from(dont_fragment) << 14) | (u16::from(more) << 13) | ((offset / 8) as u16 & 0x1fff);
    h.extend_from_slice(&flags.to_be_bytes());
    h.push(TTL);
    h.push(proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// A 40-byte IPv6 header for `payload_len` bytes of payload.
fn ipv6_header(src: [u8; 16], dst: [u8; 16], next: u8, dscp: u8, payload_len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(40 + payload_len);
    let first = (6u32 << 28) | (u32::from(dscp << 2) << 20);
    h.extend_from_slice(&first.to_be_bytes());
    h.extend_from_slice(&(payload_len as u16).to_be_bytes());
    h.push(next);
    h.push(TTL);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn d(v6: bool) -> Datagram {
        let (src, dst) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.1.0.1".parse().unwrap(), "10.2.0.1".parse().unwrap())
        };
        Datagram { src, dst, src_port: 5060, dst_port: 5070, media: false, ip_id: 0x4242 }
    }

    #[test]
    fn udp_and_tcp_checksums_match_etherparse() {
        for v6 in [false, true] {
            let dg = d(v6);
            for l4 in [L4::Udp, L4::Tcp { seq: 7, ack: 9, flags: ACK | PSH }] {
                let seg = transport(&dg, l4, b"INVITE x").unwrap();
                let w = Wire { link: Link::RawIp, tunnel: None, frag: None, seed: 0, outer_id: 0, gre_seq: 0 };
                let ip = w.ip_packets(&dg, l4, &seg).unwrap().remove(0);
                let p = SlicedPacket::from_ip(&ip).unwrap();
                match (p.net.unwrap(), p.transport.unwrap()) {
                    (NetSlice::Ipv4(ip), TransportSlice::Udp(u)) => {
                        let h = ip.header().to_header();
                        assert_eq!(h.header_checksum, h.calc_header_checksum());
                        assert_eq!(u.checksum(), u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap());
                    }
                    (NetSlice::Ipv4(ip), TransportSlice::Tcp(t)) => {
                        let h = ip.header().to_header();
                        assert_eq!(t.checksum(), t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap());
                        assert_eq!((t.sequence_number(), t.acknowledgment_number()), (7, 9));
                        assert!(t.psh() && t.ack() && !t.syn());
                    }
                    (NetSlice::Ipv6(ip), TransportSlice::Udp(u)) => {
                        let h = ip.header().to_header();
                        assert_eq!(u.checksum(), u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap());
                    }
                    (NetSlice::Ipv6(ip), TransportSlice::Tcp(t)) => {
                        let h = ip.header().to_header();
                        assert_eq!(t.checksum(), t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap());
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}
