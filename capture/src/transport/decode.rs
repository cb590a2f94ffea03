//! Stateless decoding steps from a captured frame down to UDP and TCP: link layer dispatch,
//! VLAN stripping, IPv4/IPv6, and one step of decapsulation for every tunnel seen on mirror
//! ports (GRE with PPP or transparent Ethernet bridging, ERSPAN I/II/III, VXLAN, MPLS, PPPoE,
//! IP-in-IP).
//!
//! Each function here looks at one layer and says what comes next ([`Step`]); the walk itself,
//! with its depth cap, IP fragment reassembly and TCP streams, is [`crate::transport::ingress::Ingress`].

use std::net::SocketAddr;

use crate::wire::{self, ErrorKind, Layer, WireError, erspan, ethernet, gre, ip, mpls, ppp, pppoe, sll, vxlan};

/// The link-layer header type of a capture (its libpcap DLT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// DLT_EN10MB (1): Ethernet II, with or without VLAN tags.
    Ethernet,
    /// DLT_LINUX_SLL (113): Linux cooked capture v1.
    Sll,
    /// DLT_LINUX_SLL2 (276): Linux cooked capture v2.
    Sll2,
    /// DLT_RAW (12/14/101): the frame starts at the IP header, version from the first nibble.
    RawIp,
    /// DLT_IPV4 (228).
    Ipv4,
    /// DLT_IPV6 (229).
    Ipv6,
    /// DLT_NULL (0): 4-byte address family in the capturing host's byte order.
    Null,
    /// DLT_LOOP (108): 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    /// Maps a libpcap DLT number; `None` for link types callvault does not decode.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::Sll,
            276 => LinkType::Sll2,
            12 | 14 | 101 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// The libpcap DLT number to write this link type under.
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Sll => 113,
            LinkType::Sll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Null => 0,
            LinkType::Loop => 108,
        }
    }

    /// Names of the supported link types, for error messages.
    pub const SUPPORTED: &'static str = "EN10MB (1), LINUX_SLL (113), LINUX_SLL2 (276), RAW (12, 14, 101), IPV4 (228), IPV6 (229), NULL (0), LOOP (108)";
}

/// A UDP datagram and where it came from and went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sender address and port.
    pub src: SocketAddr,
    /// Receiver address and port.
    pub dst: SocketAddr,
    /// UDP payload.
    pub payload: &'a [u8],
    /// Outermost VLAN id seen on the way down (outer frame first, then tunnelled frames).
    pub vlan: Option<u16>,
    /// The IP packet or UDP datagram was cut short (see [`ip::IpRepr::truncated`]).
    pub truncated: bool,
    /// Encapsulations the datagram was found in (0 for a plain frame).
    pub depth: u8,
    /// The datagram was reassembled from IP fragments.
    pub reassembled: bool,
}

/// The transport a SIP message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One message per UDP datagram.
    Udp,
    /// Framed out of a TCP byte stream.
    Tcp,
    /// One WebSocket message (RFC 7118) on a TCP connection.
    Ws,
    /// One SCTP user message (RFC 4168).
    Sctp,
}

impl Transport {
    /// Lower-case name, as in a Via header's transport parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Sctp => "sctp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written out (in call records) by its lower-case name.
impl From<Transport> for String {
    fn from(t: Transport) -> String {
        t.as_str().to_owned()
    }
}

/// The network-layer payload of a link-layer frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPayload<'a> {
    /// EtherType of the payload (0 for a loopback address family that is not IP).
    pub ethertype: u16,
    /// Bytes after the link-layer header (and VLAN tags).
    pub payload: &'a [u8],
    /// Outermost VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
}

/// Strips the link-layer header of a frame of link type `link`.
#[inline]
pub fn link_layer(link: LinkType, frame: &[u8]) -> Result<LinkPayload<'_>, WireError> {
    let (ethertype, payload, vlan) = match link {
        LinkType::Ethernet => {
            let e = ethernet::parse(frame)?;
            (e.ethertype, e.payload, e.outer_vlan)
        }
        LinkType::Sll => {
            let s = sll::parse_v1(frame)?;
            (s.protocol, s.payload, None)
        }
        LinkType::Sll2 => {
            let s = sll::parse_v2(frame)?;
            (s.protocol, s.payload, None)
        }
        LinkType::RawIp => match frame.first().map(|b| b >> 4) {
            Some(4) => (ethernet::ETHERTYPE_IPV4, frame, None),
            Some(6) => (ethernet::ETHERTYPE_IPV6, frame, None),
            Some(_) => return Err(WireError::new(Layer::Link, 0, ErrorKind::BadVersion)),
            None => return Err(WireError::new(Layer::Link, 0, ErrorKind::Truncated)),
        },
        LinkType::Ipv4 => (ethernet::ETHERTYPE_IPV4, frame, None),
        LinkType::Ipv6 => (ethernet::ETHERTYPE_IPV6, frame, None),
        LinkType::Null | LinkType::Loop => {
            if frame.len() < 4 {
                return Err(WireError::new(Layer::Link, frame.len(), ErrorKind::Truncated));
            }
            let raw = [frame[0], frame[1], frame[2], frame[3]];
            // DLT_NULL uses the capturing host's byte order: accept either.
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(raw)
            } else {
                let le = u32::from_le_bytes(raw);
                if le < 256 { le } else { u32::from_be_bytes(raw) }
            };
            let ethertype = match family {
                2 => ethernet::ETHERTYPE_IPV4,
                10 | 24 | 28 | 30 => ethernet::ETHERTYPE_IPV6,
                _ => 0,
            };
            (ethertype, &frame[4..], None)
        }
    };
    Ok(LinkPayload { ethertype, payload, vlan })
}

/// A kind of encapsulation, for counters (`IngressStats::tunnels`, indexed by `kind as usize`).
///
/// A new encapsulation takes its wire view in `wire/`, a variant here (named in
/// [`Tunnel::ALL`] and [`Tunnel::name`]) and an arm in the one step that finds it
/// ([`ethertype_step`], [`gre_step`], [`ip_step`] or [`udp_step`]); the walk, the depth cap and
/// the counters follow from those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// GRE (RFC 2784/2890) or PPTP's enhanced GRE.
    Gre,
    /// ERSPAN type I, II or III (inside GRE).
    Erspan,
    /// VXLAN (UDP port 4789).
    Vxlan,
    /// An MPLS label stack.
    Mpls,
    /// A PPPoE session.
    Pppoe,
    /// IPv4 or IPv6 directly in IP (protocol 4 or 41).
    IpInIp,
}

impl Tunnel {
    /// Number of kinds.
    pub const COUNT: usize = 6;
    /// Every kind, in declaration order (index = `kind as usize`).
    pub const ALL: [Tunnel; Tunnel::COUNT] =
        [Tunnel::Gre, Tunnel::Erspan, Tunnel::Vxlan, Tunnel::Mpls, Tunnel::Pppoe, Tunnel::IpInIp];

    /// Lower-case name used in counters (`tunnel_<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Tunnel::Gre => "gre",
            Tunnel::Erspan => "erspan",
            Tunnel::Vxlan => "vxlan",
            Tunnel::Mpls => "mpls",
            Tunnel::Pppoe => "pppoe",
            Tunnel::IpInIp => "ipip",
        }
    }
}

/// What an encapsulation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An Ethernet frame (VLAN tags and all).
    Ethernet(&'a [u8]),
    /// A payload named by its EtherType.
    EtherType(u16, &'a [u8]),
}

/// The step below an IP header that is neither UDP nor TCP: GRE and IP-in-IP; `None` for
/// protocols not followed.
pub fn ip_step(protocol: u8, payload: &[u8]) -> Option<Result<Step<'_>, WireError>> {
    Some(match protocol {
        ip::PROTO_GRE => gre_step(payload),
        ip::PROTO_IPIP => Ok(Step::Tunnel(Tunnel::IpInIp, Inner::EtherType(ethernet::ETHERTYPE_IPV4, payload))),
        ip::PROTO_IPV6 => Ok(Step::Tunnel(Tunnel::IpInIp, Inner::EtherType(ethernet::ETHERTYPE_IPV6, payload))),
        _ => return None,
    })
}

/// A tunnel carried in UDP, found by its port and header (VXLAN); `None` for any other
/// datagram, which is delivered as it is.
#[inline]
pub fn udp_step(dst_port: u16, payload: &[u8]) -> Option<Step<'_>> {
    match dst_port {
        vxlan::PORT => vxlan::parse(payload).ok().map(|v| Step::Tunnel(Tunnel::Vxlan, Inner::Ethernet(v.payload))),
        _ => None,
    }
}

/// One step down from a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An IP packet.
    Ip(ip::IpRepr<'a>),
    /// One more encapsulation, and what it carries.
    Tunnel(Tunnel, Inner<'a>),
    /// Well-formed, but nothing callvault follows (ARP, LLDP, PPP control, ...).
    NotIp,
    /// A tunnel payload of a kind not followed (GRE keepalive protocols, ERSPAN of IP frames).
    Unsupported,
}

/// Decodes the payload named by `ethertype` one step: IP, MPLS or PPPoE.
#[inline]
pub fn ethertype_step(ethertype: u16, b: &[u8]) -> Result<Step<'_>, WireError> {
    Ok(match ethertype {
        ethernet::ETHERTYPE_IPV4 => Step::Ip(ip::parse_v4(b)?),
        ethernet::ETHERTYPE_IPV6 => Step::Ip(ip::parse_v6(b)?),
        mpls::ETHERTYPE_UNICAST | mpls::ETHERTYPE_MULTICAST => {
            let m = mpls::parse(b)?;
            let inner = match m.next {
                mpls::MplsPayload::Ipv4 => Inner::EtherType(ethernet::ETHERTYPE_IPV4, m.payload),
                mpls::MplsPayload::Ipv6 => Inner::EtherType(ethernet::ETHERTYPE_IPV6, m.payload),
                mpls::MplsPayload::Ethernet => Inner::Ethernet(m.payload),
            };
            Step::Tunnel(Tunnel::Mpls, inner)
        }
        pppoe::ETHERTYPE_SESSION => {
            let p = pppoe::parse(b)?;
            match ppp_inner(p.protocol, p.payload) {
                Some(inner) => Step::Tunnel(Tunnel::Pppoe, inner),
                None => Step::NotIp,
            }
        }
        _ => Step::NotIp,
    })
}

/// Decodes a GRE packet (the payload of IP protocol 47) one step.
pub fn gre_step(b: &[u8]) -> Result<Step<'_>, WireError> {
    let g = gre::parse(b)?;
    let payload = g.payload;
    Ok(match g.protocol {
        ethernet::ETHERTYPE_IPV4 | ethernet::ETHERTYPE_IPV6 | mpls::ETHERTYPE_UNICAST | mpls::ETHERTYPE_MULTICAST => {
            Step::Tunnel(Tunnel::Gre, Inner::EtherType(g.protocol, payload))
        }
        gre::PROTO_TEB => Step::Tunnel(Tunnel::Gre, Inner::Ethernet(payload)),
        gre::PROTO_PPP => {
            let p = ppp::parse(payload)?;
            match ppp_inner(p.protocol, p.payload) {
                Some(inner) => Step::Tunnel(Tunnel::Gre, inner),
                None => Step::NotIp,
            }
        }
        gre::PROTO_ERSPAN_II if g.sequence.is_none() => Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(payload)),
        gre::PROTO_ERSPAN_II => Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(erspan::parse_type2(payload)?.payload)),
        gre::PROTO_ERSPAN_III => {
            let e = erspan::parse_type3(payload)?;
            if e.frame_type != erspan::FRAME_ETHERNET {
                return Ok(Step::Unsupported);
            }
            Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(e.payload))
        }
        _ => Step::Unsupported,
    })
}

/// The IP packet in a PPP frame of `protocol`, if it is one.
fn ppp_inner(protocol: u16, payload: &[u8]) -> Option<Inner<'_>> {
    match protocol {
        ppp::PROTO_IPV4 => Some(Inner::EtherType(ethernet::ETHERTYPE_IPV4, payload)),
        ppp::PROTO_IPV6 => Some(Inner::EtherType(ethernet::ETHERTYPE_IPV6, payload)),
        _ => None,
    }
}

/// Re-exported so callers can name decode errors without reaching into `wire`.
pub type DecodeError = wire::WireError;

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn eth_udp(v6: bool, vlans: &[u16]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        let payload = b"hello";
        let mut out = Vec::new();
        match (vlans, v6) {
            ([], false) => b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(5060, 5062).write(&mut out, payload),
            ([], true) => b.ipv6([0xfd; 16], [0xfe; 16], 64).udp(5060, 5062).write(&mut out, payload),
            ([a], _) => b
                .single_vlan(etherparse::VlanId::try_new(*a).unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(5060, 5062)
                .write(&mut out, payload),
            ([a, c], _) => b
                .double_vlan(etherparse::VlanId::try_new(*a).unwrap(), etherparse::VlanId::try_new(*c).unwrap())
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(5060, 5062)
                .write(&mut out, payload),
            _ => unreachable!(),
        }
        .unwrap();
        out
    }

    fn ip_of(link: LinkType, f: &[u8]) -> ip::IpRepr<'_> {
        let l = link_layer(link, f).unwrap();
        match ethertype_step(l.ethertype, l.payload).unwrap() {
            Step::Ip(ip) => ip,
            other => panic!("{link:?}: {other:?}"),
        }
    }

    #[test]
    fn ethernet_ipv4_ipv6_vlan_qinq() {
        for (v6, vlans, want_vlan) in [
            (false, &[][..], None),
            (true, &[][..], None),
            (false, &[42][..], Some(42)),
            (false, &[100, 200][..], Some(100)),
        ] {
            let f = eth_udp(v6, vlans);
            assert_eq!(link_layer(LinkType::Ethernet, &f).unwrap().vlan, want_vlan);
            let ip = ip_of(LinkType::Ethernet, &f);
            assert_eq!(ip.protocol, ip::PROTO_UDP);
            assert_eq!(ip.src.is_ipv6(), v6);
            assert_eq!(&ip.payload[8..], b"hello");
        }
    }

    #[test]
    fn sll_raw_and_loop() {
        let eth = eth_udp(false, &[]);
        let ip = &eth[14..];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll2.extend_from_slice(ip);
        let mut lo = vec![0, 0, 0, 2];
        lo.extend_from_slice(ip);
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(ip);
        for (link, f) in [
            (LinkType::Sll, &sll[..]),
            (LinkType::Sll2, &sll2[..]),
            (LinkType::RawIp, ip),
            (LinkType::Ipv4, ip),
            (LinkType::Loop, &lo[..]),
            (LinkType::Null, &null[..]),
        ] {
            assert_eq!(&ip_of(link, f).payload[8..], b"hello", "{link:?}");
        }
        let mut other_family = lo.clone();
        other_family[3] = 7;
        assert_eq!(link_layer(LinkType::Loop, &other_family).unwrap().ethertype, 0);
    }

    #[test]
    fn skips_and_errors() {
        let arp = eth_udp(false, &[]);
        assert_eq!(ethertype_step(0x0806, &arp[14..]).unwrap(), Step::NotIp);
        let f = eth_udp(false, &[]);
        let l = link_layer(LinkType::Ethernet, &f[..30]).unwrap();
        assert_eq!(ethertype_step(l.ethertype, l.payload).unwrap_err().layer, Layer::Ipv4);
        assert_eq!(link_layer(LinkType::RawIp, &[0x10]).unwrap_err().layer, Layer::Link);
        assert_eq!(link_layer(LinkType::RawIp, &[]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(LinkType::from_dlt(147), None);
    }

    #[test]
    fn mpls_and_pppoe_steps() {
        let v4 = [0x45u8, 0, 0, 20];
        let mut mpls = vec![0x00, 0x01, 0x01, 0x40];
        mpls.extend_from_slice(&v4);
        assert_eq!(
            ethertype_step(mpls::ETHERTYPE_UNICAST, &mpls).unwrap(),
            Step::Tunnel(Tunnel::Mpls, Inner::EtherType(ethernet::ETHERTYPE_IPV4, &v4))
        );
        let pw = [0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0, 0xaa];
        assert_eq!(
            ethertype_step(mpls::ETHERTYPE_MULTICAST, &pw).unwrap(),
            Step::Tunnel(Tunnel::Mpls, Inner::Ethernet(&[0xaa]))
        );
        let pppoe = [0x11, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00, 0x57, 0x60];
        assert_eq!(
            ethertype_step(pppoe::ETHERTYPE_SESSION, &pppoe).unwrap(),
            Step::Tunnel(Tunnel::Pppoe, Inner::EtherType(ethernet::ETHERTYPE_IPV6, &[0x60]))
        );
        let lcp = [0x11, 0x00, 0x00, 0x01, 0x00, 0x03, 0xc0, 0x21, 0x01];
        assert_eq!(ethertype_step(pppoe::ETHERTYPE_SESSION, &lcp).unwrap(), Step::NotIp);
        assert_eq!(ethertype_step(pppoe::ETHERTYPE_DISCOVERY, &lcp).unwrap(), Step::NotIp);
    }

    #[test]
    fn gre_steps() {
        let ipv4 = [0x00, 0x00, 0x08, 0x00, 0x45];
        assert_eq!(gre_step(&ipv4).unwrap(), Step::Tunnel(Tunnel::Gre, Inner::EtherType(0x0800, &[0x45])));
        let teb = [0x00, 0x00, 0x65, 0x58, 0xee];
        assert_eq!(gre_step(&teb).unwrap(), Step::Tunnel(Tunnel::Gre, Inner::Ethernet(&[0xee])));
        let lcp = [0x30, 0x01, 0x88, 0x0b, 0x00, 0x05, 0x00, 0x01, 0, 0, 0, 1, 0xff, 0x03, 0xc0, 0x21, 0x01];
        assert_eq!(gre_step(&lcp).unwrap(), Step::NotIp);
        let pptp_ip = [0x30, 0x01, 0x88, 0x0b, 0x00, 0x04, 0x00, 0x01, 0, 0, 0, 1, 0xff, 0x03, 0x21, 0x45];
        assert_eq!(gre_step(&pptp_ip).unwrap(), Step::Tunnel(Tunnel::Gre, Inner::EtherType(0x0800, &[0x45])));
        let erspan1 = [0x00, 0x00, 0x88, 0xbe, 0xee];
        assert_eq!(gre_step(&erspan1).unwrap(), Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(&[0xee])));
        let erspan2 = [0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0xee];
        assert_eq!(gre_step(&erspan2).unwrap(), Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(&[0xee])));
        let erspan3 = [0x00, 0x00, 0x22, 0xeb, 0x20, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0xee];
        assert_eq!(gre_step(&erspan3).unwrap(), Step::Tunnel(Tunnel::Erspan, Inner::Ethernet(&[0xee])));
        let mut erspan3_ip = erspan3;
        erspan3_ip[14] = 0x08; // frame type 2 (IP)
        assert_eq!(gre_step(&erspan3_ip).unwrap(), Step::Unsupported);
        assert_eq!(gre_step(&[0x00, 0x00, 0x89, 0x4f]).unwrap(), Step::Unsupported);
        assert_eq!(gre_step(&[0x00]).unwrap_err().layer, Layer::Gre);
    }
}
