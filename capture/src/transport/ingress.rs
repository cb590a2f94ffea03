//! The transport layer of capture: one frame in, UDP datagrams and SIP messages framed out of
//! TCP, WebSocket and SCTP out.
//!
//! [`Ingress`] walks a frame down with the stateless steps of [`crate::transport::decode`], through every
//! encapsulation seen on mirror ports (GRE, ERSPAN, VXLAN, MPLS, PPPoE, IP-in-IP; at most
//! `Limits::max_tunnel_depth` deep), reassembles IP fragments ([`Defragmenter`]) and TCP
//! streams ([`TcpReassembler`]), and hands what it finds to an [`IngressSink`]:
//! every UDP datagram (whole, reassembled or decapsulated) and every complete SIP message
//! framed out of TCP. Inner packets take exactly the same path as outer ones.
//!
//! Sans-IO like the rest of capture: time comes in with each frame, timers fire in
//! [`Ingress::expire`]. A plain UDP packet costs the header parses and one call to the sink:
//! no allocation, no hashing.

use std::net::{IpAddr, SocketAddr};

use crate::limits::{Limits, Timeouts};
use crate::stats::IngressStats;
use crate::time::Timestamp;
use crate::transport::decode::{self, Datagram, Inner, LinkType, Step, Transport, Tunnel};
use crate::transport::reassembly::ip::{DefragConfig, Defragmenter, FragKey};
use crate::transport::reassembly::sctp::{self, SctpConfig, SctpReassembler};
use crate::transport::reassembly::tcp::{Segment, TcpConfig, TcpReassembler};
use crate::wire::{WireError, ethernet, ip, tcp, udp};

/// Receives what the transport layer finds, in packet order.
pub trait IngressSink {
    /// A UDP datagram (whole, reassembled from fragments, or found inside a tunnel).
    fn udp(&mut self, d: &Datagram<'_>);
    /// A complete SIP message framed out of a TCP stream, a WebSocket or an SCTP association
    /// (`transport`) from `src` to `dst`, completed by a packet captured at `time`.
    fn sip_stream(&mut self, time: Timestamp, src: SocketAddr, dst: SocketAddr, transport: Transport, message: &[u8]);
}

/// Where the walk is: what the layers above said.
#[derive(Debug, Clone, Copy)]
struct Path {
    time: Timestamp,
    vlan: Option<u16>,
    depth: u8,
}

/// Decodes frames through tunnels, IP fragments and TCP streams. See the module docs.
#[derive(Debug)]
pub struct Ingress {
    defrag: Defragmenter,
    tcp: TcpReassembler,
    sctp: SctpReassembler,
    max_depth: usize,
    stats: IngressStats,
}

impl Ingress {
    /// A transport layer with the given caps and timeouts.
    pub fn new(limits: &Limits, timeouts: &Timeouts) -> Ingress {
        Ingress {
            defrag: Defragmenter::new(DefragConfig::new(limits, timeouts)),
            tcp: TcpReassembler::new(TcpConfig::new(limits, timeouts)),
            sctp: SctpReassembler::new(SctpConfig::new(limits, timeouts)),
            max_depth: limits.max_tunnel_depth,
            stats: IngressStats::default(),
        }
    }

    /// Counters so far (the reassemblers' included).
    pub fn stats(&self) -> IngressStats {
        let mut s = self.stats.clone();
        s.defrag = self.defrag.stats().clone();
        s.tcp = self.tcp.stats().clone();
        s.sctp = self.sctp.stats().clone();
        s
    }

    /// The IP defragmenter (for its occupancy).
    pub fn defragmenter(&self) -> &Defragmenter {
        &self.defrag
    }

    /// The TCP reassembler (for its occupancy).
    pub fn tcp(&self) -> &TcpReassembler {
        &self.tcp
    }

    /// Decodes one frame of link type `link` captured at `time`.
    #[inline]
    pub fn handle<S: IngressSink>(&mut self, link: LinkType, time: Timestamp, frame: &[u8], sink: &mut S) {
        let l = match decode::link_layer(link, frame) {
            Ok(l) => l,
            Err(e) => return self.malformed(e),
        };
        let path = Path { time, vlan: l.vlan, depth: 0 };
        // Fast path: an unfragmented UDP datagram in IPv4 (every RTP packet of most captures)
        // goes straight to the UDP layer.
        if l.ethertype == ethernet::ETHERTYPE_IPV4 {
            match ip::parse_v4(l.payload) {
                Ok(ip) if ip.fragment.is_none() && ip.protocol == ip::PROTO_UDP => {
                    self.udp(path, ip.src, ip.dst, ip.payload, ip.truncated, false, sink);
                }
                Ok(ip) => self.ip(path, &ip, sink),
                Err(e) => self.malformed(e),
            }
            return;
        }
        self.ethertype(path, l.ethertype, l.payload, sink);
    }

    /// The ends of the frame's datagram when it takes [`Ingress::handle`]'s fast path (UDP in
    /// unfragmented IPv4; for a tunnel in UDP, the outer datagram's), without counting or
    /// keeping anything: what a caller reading ahead needs to ask for the frame's flow early.
    #[inline]
    pub fn udp_ends(link: LinkType, frame: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
        let l = decode::link_layer(link, frame).ok()?;
        if l.ethertype != ethernet::ETHERTYPE_IPV4 {
            return None;
        }
        let ip = ip::parse_v4(l.payload).ok()?;
        if ip.fragment.is_some() || ip.protocol != ip::PROTO_UDP {
            return None;
        }
        let u = udp::parse(ip.payload).ok()?;
        Some((SocketAddr::new(ip.src, u.src_port), SocketAddr::new(ip.dst, u.dst_port)))
    }

    /// Fires the reassemblers' timers: drops fragments and TCP connections that timed out.
    pub fn expire(&mut self, now: Timestamp) {
        self.defrag.expire(now);
        self.tcp.expire(now);
        self.sctp.expire(now);
    }

    fn malformed(&mut self, e: WireError) {
        self.stats.malformed[e.layer as usize] += 1;
    }

    #[inline]
    fn ethertype<S: IngressSink>(&mut self, path: Path, ethertype: u16, b: &[u8], sink: &mut S) {
        match decode::ethertype_step(ethertype, b) {
            Ok(Step::Ip(ip)) => self.ip(path, &ip, sink),
            Ok(step) => self.step(path, step, sink),
            Err(e) => self.malformed(e),
        }
    }

    /// Follows a step that is not a plain IP packet.
    fn step<S: IngressSink>(&mut self, path: Path, step: Step<'_>, sink: &mut S) {
        match step {
            Step::Ip(ip) => self.ip(path, &ip, sink),
            Step::Tunnel(kind, inner) => self.tunnel(path, kind, inner, sink),
            Step::NotIp => self.stats.not_ip += 1,
            Step::Unsupported => self.stats.tunnel_unsupported += 1,
        }
    }

    fn tunnel<S: IngressSink>(&mut self, mut path: Path, kind: Tunnel, inner: Inner<'_>, sink: &mut S) {
        if usize::from(path.depth) >= self.max_depth {
            self.stats.tunnel_too_deep += 1;
            return;
        }
        path.depth += 1;
        self.stats.tunnels[kind as usize] += 1;
        match inner {
            Inner::EtherType(ethertype, b) => self.ethertype(path, ethertype, b, sink),
            Inner::Ethernet(b) => match ethernet::parse(b) {
                Ok(e) => {
                    path.vlan = path.vlan.or(e.outer_vlan);
                    self.ethertype(path, e.ethertype, e.payload, sink);
                }
                Err(e) => self.malformed(e),
            },
        }
    }

    fn ip<S: IngressSink>(&mut self, path: Path, ip: &ip::IpRepr<'_>, sink: &mut S) {
        let Some(frag) = ip.fragment else {
            return self.transport(path, ip.src, ip.dst, ip.protocol, ip.payload, ip.truncated, false, sink);
        };
        self.stats.ip_fragments += 1;
        if ip.truncated {
            self.defrag.count_truncated();
            return;
        }
        let key = FragKey { src: ip.src, dst: ip.dst, id: frag.id, protocol: ip.protocol, vlan: path.vlan };
        if let Some(whole) = self.defrag.push(path.time, key, frag.offset, frag.more, ip.payload) {
            self.transport(path, ip.src, ip.dst, ip.protocol, &whole, false, true, sink);
        }
    }

    /// The upper layer of an IP packet (or of a reassembled datagram).
    #[allow(clippy::too_many_arguments)]
    fn transport<S: IngressSink>(
        &mut self,
        path: Path,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: &[u8],
        truncated: bool,
        reassembled: bool,
        sink: &mut S,
    ) {
        match protocol {
            ip::PROTO_UDP => self.udp(path, src, dst, payload, truncated, reassembled, sink),
            ip::PROTO_TCP => self.tcp_segment(path, src, dst, payload, truncated, sink),
            ip::PROTO_SCTP => self.sctp_packet(path, src, dst, payload, truncated, sink),
            _ => match decode::ip_step(protocol, payload) {
                Some(Ok(step)) => self.step(path, step, sink),
                Some(Err(e)) => self.malformed(e),
                None => self.stats.other_ip += 1,
            },
        }
    }

    /// A UDP datagram: VXLAN is decapsulated, everything else goes to the sink.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn udp<S: IngressSink>(
        &mut self,
        path: Path,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
        truncated: bool,
        reassembled: bool,
        sink: &mut S,
    ) {
        let u = match udp::parse(payload) {
            Ok(u) => u,
            Err(e) => return self.malformed(e),
        };
        if let Some(step) = decode::udp_step(u.dst_port, u.payload) {
            return self.step(path, step, sink);
        }
        let truncated = truncated || u.truncated;
        if truncated {
            self.stats.truncated += 1;
        }
        sink.udp(&Datagram {
            src: SocketAddr::new(src, u.src_port),
            dst: SocketAddr::new(dst, u.dst_port),
            payload: u.payload,
            vlan: path.vlan,
            truncated,
            depth: path.depth,
            reassembled,
        });
    }

    fn tcp_segment<S: IngressSink>(
        &mut self,
        path: Path,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
        truncated: bool,
        sink: &mut S,
    ) {
        self.stats.tcp_segments += 1;
        let t = match tcp::parse(payload) {
            Ok(t) => t,
            Err(e) => return self.malformed(e),
        };
        if truncated {
            // The missing bytes would be taken for a hole; leave the hole to gap recovery.
            self.stats.truncated += 1;
            self.stats.tcp_truncated += 1;
            return;
        }
        let seg = Segment {
            src: SocketAddr::new(src, t.src_port),
            dst: SocketAddr::new(dst, t.dst_port),
            vlan: path.vlan,
            seq: t.seq,
            ack: t.ack,
            flags: t.flags,
            payload: t.payload,
        };
        let time = path.time;
        self.tcp.segment(time, &seg, |s, d, t, m| sink.sip_stream(time, s, d, t, m));
    }

    fn sctp_packet<S: IngressSink>(
        &mut self,
        path: Path,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
        truncated: bool,
        sink: &mut S,
    ) {
        self.stats.sctp_packets += 1;
        if truncated {
            // A cut chunk would be taken for a malformed one.
            self.stats.truncated += 1;
            return;
        }
        let p = sctp::Packet {
            src: SocketAddr::new(src, 0),
            dst: SocketAddr::new(dst, 0),
            vlan: path.vlan,
            bytes: payload,
        };
        let time = path.time;
        self.sctp.packet(time, &p, |s, d, t, m| sink.sip_stream(time, s, d, t, m));
    }
}
