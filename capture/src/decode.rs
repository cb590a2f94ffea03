//! From a captured frame to a UDP datagram with its endpoints: link layer dispatch, VLAN
//! stripping, IPv4/IPv6. Stateless; fragments and non-UDP traffic are reported, not followed.

use std::net::SocketAddr;

use crate::wire::{self, ErrorKind, Layer, WireError, ethernet, ip, sll, udp};

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
    /// Outermost VLAN id, if the frame was tagged.
    pub vlan: Option<u16>,
    /// The IP packet or UDP datagram was cut short (see [`ip::IpRepr::truncated`]).
    pub truncated: bool,
}

/// Why a well-formed frame carries nothing callvault follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IPv4 or IPv6 (ARP, LLDP, STP, ...).
    NotIp,
    /// An IP fragment (reassembly is not done at this layer).
    Fragment,
    /// TCP segment.
    Tcp,
    /// Another IP protocol (ICMP, ESP, GRE, ...).
    OtherProtocol,
}

/// Result of decoding one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A UDP datagram.
    Udp(Datagram<'a>),
    /// Something well-formed that is not followed.
    Skipped(Skip),
}

/// Decodes a captured frame of link type `link` down to UDP.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Decoded<'_>, WireError> {
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
                _ => return Ok(Decoded::Skipped(Skip::NotIp)),
            };
            (ethertype, &frame[4..], None)
        }
    };
    let ip = match ethertype {
        ethernet::ETHERTYPE_IPV4 => ip::parse_v4(payload)?,
        ethernet::ETHERTYPE_IPV6 => ip::parse_v6(payload)?,
        _ => return Ok(Decoded::Skipped(Skip::NotIp)),
    };
    if ip.fragment.is_some() {
        return Ok(Decoded::Skipped(Skip::Fragment));
    }
    match ip.protocol {
        ip::PROTO_UDP => {}
        ip::PROTO_TCP => return Ok(Decoded::Skipped(Skip::Tcp)),
        _ => return Ok(Decoded::Skipped(Skip::OtherProtocol)),
    }
    let u = udp::parse(ip.payload)?;
    Ok(Decoded::Udp(Datagram {
        src: SocketAddr::new(ip.src, u.src_port),
        dst: SocketAddr::new(ip.dst, u.dst_port),
        payload: u.payload,
        vlan,
        truncated: ip.truncated || u.truncated,
    }))
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

    #[test]
    fn ethernet_ipv4_ipv6_vlan_qinq() {
        for (v6, vlans, want_vlan) in [
            (false, &[][..], None),
            (true, &[][..], None),
            (false, &[42][..], Some(42)),
            (false, &[100, 200][..], Some(100)),
        ] {
            let f = eth_udp(v6, vlans);
            let Decoded::Udp(d) = decode(LinkType::Ethernet, &f).unwrap() else { panic!("not udp") };
            assert_eq!(d.src.port(), 5060);
            assert_eq!(d.dst.port(), 5062);
            assert_eq!(d.payload, b"hello");
            assert_eq!(d.vlan, want_vlan);
            assert_eq!(d.src.is_ipv6(), v6);
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
            let Decoded::Udp(d) = decode(link, f).unwrap() else { panic!("{link:?} not udp") };
            assert_eq!(d.payload, b"hello", "{link:?}");
        }
    }

    #[test]
    fn skips_and_errors() {
        let mut arp = eth_udp(false, &[]);
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(decode(LinkType::Ethernet, &arp).unwrap(), Decoded::Skipped(Skip::NotIp));
        let mut frag = eth_udp(false, &[]);
        frag[14 + 6] = 0x20; // more fragments
        assert_eq!(decode(LinkType::Ethernet, &frag).unwrap(), Decoded::Skipped(Skip::Fragment));
        let mut tcp = eth_udp(false, &[]);
        tcp[14 + 9] = 6;
        assert_eq!(decode(LinkType::Ethernet, &tcp).unwrap(), Decoded::Skipped(Skip::Tcp));
        let f = eth_udp(false, &[]);
        assert_eq!(decode(LinkType::Ethernet, &f[..30]).unwrap_err().layer, Layer::Ipv4);
        let Decoded::Udp(cut) = decode(LinkType::Ethernet, &f[..f.len() - 2]).unwrap() else { panic!() };
        assert!(cut.truncated);
        assert_eq!(cut.payload, b"hel");
        assert_eq!(decode(LinkType::RawIp, &[0x10]).unwrap_err().layer, Layer::Link);
        assert_eq!(LinkType::from_dlt(147), None);
    }
}
