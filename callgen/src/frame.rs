//! Link, IP and UDP headers around a payload.
//!
//! IPv4 headers have DF set, TTL 64, an identification that counts up per sending host and a
//! correct header checksum; IPv6 headers have hop limit 64. UDP checksums are always filled in.
//! RTP is marked DSCP EF, SIP CS3. MAC addresses are made up from the IP address: `02:00:`
//! and the four IPv4 bytes, or four bytes hashed from an IPv6 address.
//!
//! etherparse's header types serialise every header and compute the checksums; only the SLL2
//! header, which etherparse does not know, is laid out here. (etherparse's `PacketBuilder`
//! would do the same, but it moves its multi-kilobyte IPv6 extension-header storage around
//! for every packet, which dominated generation time.)

use std::io::{self, Write};
use std::net::IpAddr;

use etherparse::{
    ArpHardwareId, EtherType, Ethernet2Header, IpDscp, Ipv4Header, Ipv6Header, LinuxSllHeader, LinuxSllPacketType,
    LinuxSllProtocolType, SingleVlanHeader, UdpHeader, VlanId, VlanPcp, ether_type, ip_number,
};

use crate::mix::hash;
use crate::spec::Link;

const TTL: u8 = 64;
/// Interface index written in SLL2 headers.
const SLL2_IFINDEX: u32 = 2;
/// ARPHRD_ETHER.
const HATYPE_ETHER: u16 = 1;
/// Longest header stack: Ethernet + two VLAN tags (22) + IPv6 (40) + UDP (8).
const MAX_HEADERS: usize = 72;

/// Addresses and marking of one UDP datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) src_port: u16,
    pub(crate) dst_port: u16,
    /// True for RTP (DSCP EF), false for SIP (DSCP CS3).
    pub(crate) media: bool,
    /// IPv4 identification (ignored for IPv6).
    pub(crate) ip_id: u16,
}

/// The headers of one frame, assembled on the stack.
struct Headers {
    buf: [u8; MAX_HEADERS],
    len: usize,
}

impl Headers {
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// A made-up, locally administered MAC address for a host.
pub(crate) fn mac(ip: IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => (hash(&[u128::from(v6) as u64, (u128::from(v6) >> 64) as u64]) as u32).to_be_bytes(),
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// Length of the frame of `d` around a payload of `payload_len` bytes.
pub(crate) fn frame_len(link: Link, d: &Datagram, payload_len: usize) -> usize {
    let link_len = match link {
        Link::Ethernet => 14,
        Link::Vlan(_) => 18,
        Link::QinQ(..) => 22,
        Link::Sll => 16,
        Link::Sll2 => 20,
        Link::RawIp => 0,
    };
    let ip_len = if d.src.is_ipv4() { 20 } else { 40 };
    link_len + ip_len + 8 + payload_len
}

/// Writes the whole frame of `d` carrying `payload` to `w`: exactly
/// [`frame_len`]`(link, d, payload.len())` bytes.
pub(crate) fn write<W: Write>(link: Link, d: &Datagram, payload: &[u8], w: &mut W) -> io::Result<()> {
    let mut h = Headers { buf: [0; MAX_HEADERS], len: 0 };
    let net_type = if d.src.is_ipv4() { ether_type::IPV4 } else { ether_type::IPV6 };
    push_link(&mut h, link, net_type, mac(d.src), mac(d.dst))?;
    let dscp = if d.media { IpDscp::EF } else { IpDscp::CS3 };
    let udp_len = UdpHeader::LEN + payload.len();
    match (d.src, d.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let mut ip = Ipv4Header {
                dscp,
                identification: d.ip_id,
                dont_fragment: true,
                time_to_live: TTL,
                protocol: ip_number::UDP,
                source: src.octets(),
                destination: dst.octets(),
                ..Ipv4Header::default()
            };
            ip.set_payload_len(udp_len).map_err(invalid_data)?;
            ip.header_checksum = ip.calc_header_checksum();
            h.push(&ip.to_bytes());
            let udp = UdpHeader::with_ipv4_checksum(d.src_port, d.dst_port, &ip, payload).map_err(invalid_data)?;
            h.push(&udp.to_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut ip = Ipv6Header {
                traffic_class: dscp.value() << 2,
                next_header: ip_number::UDP,
                hop_limit: TTL,
                source: src.octets(),
                destination: dst.octets(),
                ..Ipv6Header::default()
            };
            ip.set_payload_length(udp_len).map_err(invalid_data)?;
            h.push(&ip.to_bytes());
            let udp = UdpHeader::with_ipv6_checksum(d.src_port, d.dst_port, &ip, payload).map_err(invalid_data)?;
            h.push(&udp.to_bytes());
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} and {} are not the same IP family", d.src, d.dst),
            ));
        }
    }
    w.write_all(&h.buf[..h.len])?;
    w.write_all(payload)
}

/// Appends the link-layer header of `link` for a payload of `net_type` to `h`.
fn push_link(h: &mut Headers, link: Link, net_type: EtherType, src_mac: [u8; 6], dst_mac: [u8; 6]) -> io::Result<()> {
    let ethernet = |ether_type: EtherType| Ethernet2Header { source: src_mac, destination: dst_mac, ether_type };
    let tag = |id: u16, ether_type: EtherType| -> io::Result<[u8; 4]> {
        Ok(SingleVlanHeader { pcp: VlanPcp::ZERO, drop_eligible_indicator: false, vlan_id: vlan_id(id)?, ether_type }
            .to_bytes())
    };
    match link {
        Link::Ethernet => h.push(&ethernet(net_type).to_bytes()),
        Link::Vlan(id) => {
            h.push(&ethernet(ether_type::VLAN_TAGGED_FRAME).to_bytes());
            h.push(&tag(id, net_type)?);
        }
        Link::QinQ(outer, inner) => {
            h.push(&ethernet(ether_type::PROVIDER_BRIDGING).to_bytes());
            h.push(&tag(outer, ether_type::VLAN_TAGGED_FRAME)?);
            h.push(&tag(inner, net_type)?);
        }
        Link::Sll => {
            let mut sender_address = [0u8; 8];
            sender_address[..6].copy_from_slice(&src_mac);
            let sll = LinuxSllHeader {
                packet_type: LinuxSllPacketType::HOST,
                arp_hrd_type: ArpHardwareId::ETHERNET,
                sender_address_valid_length: 6,
                sender_address,
                protocol_type: LinuxSllProtocolType::EtherType(net_type),
            };
            h.push(&sll.to_bytes());
        }
        Link::Sll2 => h.push(&sll2_header(net_type, src_mac)),
        Link::RawIp => {}
    }
    Ok(())
}

/// The link-layer header of `link` for a packet of `net_type` (an EtherType) from the host at
/// `src` to the host at `dst`.
pub(crate) fn link_header(link: Link, net_type: u16, src: IpAddr, dst: IpAddr) -> io::Result<Vec<u8>> {
    let mut h = Headers { buf: [0; MAX_HEADERS], len: 0 };
    push_link(&mut h, link, EtherType(net_type), mac(src), mac(dst))?;
    Ok(h.buf[..h.len].to_vec())
}

fn invalid_data<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn vlan_id(id: u16) -> io::Result<VlanId> {
    VlanId::try_new(id).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The 20-byte Linux cooked capture v2 header: protocol, reserved, interface index, ARPHRD
/// type, packet type, address length, address (padded to 8).
fn sll2_header(protocol: EtherType, src_mac: [u8; 6]) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..2].copy_from_slice(&protocol.0.to_be_bytes());
    // 2..4 reserved.
    h[4..8].copy_from_slice(&SLL2_IFINDEX.to_be_bytes());
    h[8..10].copy_from_slice(&HATYPE_ETHER.to_be_bytes());
    h[10] = u16::from(LinuxSllPacketType::HOST) as u8;
    h[11] = 6;
    h[12..18].copy_from_slice(&src_mac);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn datagram(v6: bool) -> Datagram {
        let (src, dst) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.1.0.1".parse().unwrap(), "10.2.0.1".parse().unwrap())
        };
        Datagram { src, dst, src_port: 5060, dst_port: 5080, media: false, ip_id: 0x1234 }
    }

    fn build(link: Link, d: &Datagram, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(link, d, payload, &mut out).unwrap();
        assert_eq!(out.len(), frame_len(link, d, payload.len()), "{link:?}");
        out
    }

    #[test]
    fn frame_len_is_exact() {
        for link in [Link::Ethernet, Link::Vlan(1), Link::QinQ(2, 3), Link::Sll, Link::Sll2, Link::RawIp] {
            for v6 in [false, true] {
                build(link, &datagram(v6), &[0; 100]);
            }
        }
    }

    #[test]
    fn ipv4_header_fields() {
        let out = build(Link::RawIp, &datagram(false), b"hello");
        let p = SlicedPacket::from_ip(&out).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4");
        };
        let h = ip.header().to_header();
        assert!(h.dont_fragment);
        assert_eq!(h.time_to_live, 64);
        assert_eq!(h.identification, 0x1234);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Udp(udp)) = p.transport else {
            panic!("not UDP");
        };
        let expected = udp.to_header().calc_checksum_ipv4(&h, udp.payload()).unwrap();
        assert_eq!(udp.checksum(), expected);
        assert_eq!(udp.payload(), b"hello");
    }

    #[test]
    fn sll2_header_layout() {
        let out = build(Link::Sll2, &datagram(true), b"x");
        assert_eq!(&out[..2], &[0x86, 0xdd]);
        assert_eq!(&out[4..8], &[0, 0, 0, 2]);
        assert_eq!(&out[8..10], &[0, 1]);
        assert_eq!(out[11], 6);
        let p = SlicedPacket::from_ether_type(ether_type::IPV6, &out[20..]).unwrap();
        assert!(matches!(p.net, Some(NetSlice::Ipv6(_))));
    }
}
