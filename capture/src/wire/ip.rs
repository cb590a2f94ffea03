//! IPv4 and IPv6 headers, including IPv6 extension headers and fragment information.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ErrorKind, Layer, WireError, be16, be32};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of SCTP.
pub const PROTO_SCTP: u8 = 132;
/// IP protocol number of GRE.
pub const PROTO_GRE: u8 = 47;
/// IP protocol number of IPv4-in-IP.
pub const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6-in-IP.
pub const PROTO_IPV6: u8 = 41;

const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_DEST_OPTS: u8 = 60;
const V6_NO_NEXT: u8 = 59;
/// Extension headers beyond this count are treated as an attack, not a packet.
const V6_MAX_EXT: usize = 8;

/// Fragmentation fields of an IPv4 header or an IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// Offset of this fragment's payload in the original datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// Validated fields of an IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRepr<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Present when this packet is a fragment (offset > 0 or more fragments follow).
    pub fragment: Option<Fragment>,
    /// Upper-layer bytes, trimmed to the length the header declares (link padding removed).
    pub payload: &'a [u8],
    /// The packet is shorter than its header declares (cut by a snap length or by the capture
    /// device); `payload` holds what there is.
    pub truncated: bool,
}

/// Parses an IPv4 header.
#[inline]
pub fn parse_v4(b: &[u8]) -> Result<IpRepr<'_>, WireError> {
    const L: Layer = Layer::Ipv4;
    if b.len() < 20 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    if b[0] >> 4 != 4 {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(be16(b, 2));
    if ihl < 20 || total < ihl {
        return Err(WireError::new(L, 0, ErrorKind::BadLength));
    }
    if b.len() < ihl {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    let truncated = b.len() < total;
    let total = total.min(b.len());
    let flags_frag = be16(b, 6);
    let more = flags_frag & 0x2000 != 0;
    let offset = u32::from(flags_frag & 0x1fff) * 8;
    let fragment = (more || offset != 0).then_some(Fragment { id: u32::from(be16(b, 4)), offset, more });
    Ok(IpRepr {
        src: IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15])),
        dst: IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19])),
        protocol: b[9],
        fragment,
        payload: &b[ihl..total],
        truncated,
    })
}

/// Parses an IPv6 header and walks its extension headers up to the upper-layer protocol.
pub fn parse_v6(b: &[u8]) -> Result<IpRepr<'_>, WireError> {
    const L: Layer = Layer::Ipv6;
    if b.len() < 40 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    if b[0] >> 4 != 6 {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    let payload_len = usize::from(be16(b, 4));
    // A zero payload length means a jumbogram (hop-by-hop option): take what was captured.
    let declared = if payload_len == 0 { b.len() } else { 40 + payload_len };
    let truncated = b.len() < declared;
    let end = declared.min(b.len());
    let mut src = [0u8; 16];
    src.copy_from_slice(&b[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&b[24..40]);

    let mut next = b[6];
    let mut at = 40;
    let mut fragment = None;
    for _ in 0..=V6_MAX_EXT {
        match next {
            V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS => {
                if end < at + 8 {
                    return Err(WireError::new(L, at, ErrorKind::Truncated));
                }
                let len = (usize::from(b[at + 1]) + 1) * 8;
                if end < at + len {
                    return Err(WireError::new(L, at, ErrorKind::Truncated));
                }
                next = b[at];
                at += len;
            }
            V6_FRAGMENT => {
                if end < at + 8 {
                    return Err(WireError::new(L, at, ErrorKind::Truncated));
                }
                let off_flags = be16(b, at + 2);
                let more = off_flags & 1 != 0;
                let offset = u32::from(off_flags >> 3) * 8;
                // An atomic fragment (offset 0, no more) is a whole datagram.
                if more || offset != 0 {
                    fragment = Some(Fragment { id: be32(b, at + 4), offset, more });
                }
                next = b[at];
                at += 8;
            }
            _ => {
                return Ok(IpRepr {
                    src: IpAddr::V6(Ipv6Addr::from(src)),
                    dst: IpAddr::V6(Ipv6Addr::from(dst)),
                    protocol: next,
                    fragment,
                    payload: &b[at..end],
                    truncated,
                });
            }
        }
        if next == V6_NO_NEXT {
            break;
        }
    }
    Err(WireError::new(L, at, ErrorKind::TooMany))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.2.15 -> 10.0.2.20, UDP, total length 28 (8 bytes of UDP), plus 4 bytes link padding.
    const V4: [u8; 32] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 2, 15, 10, 0, 2,
        20, // header
        0x13, 0xc4, 0x13, 0xc4, 0x00, 0x08, 0x00, 0x00, // udp
        0xde, 0xad, 0xbe, 0xef, // padding
    ];

    #[test]
    fn v4_fields_and_padding_trimmed() {
        let ip = parse_v4(&V4).unwrap();
        assert_eq!(ip.src, "10.0.2.15".parse::<IpAddr>().unwrap());
        assert_eq!(ip.dst, "10.0.2.20".parse::<IpAddr>().unwrap());
        assert_eq!(ip.protocol, PROTO_UDP);
        assert_eq!(ip.fragment, None);
        assert_eq!(ip.payload.len(), 8);
        assert!(!ip.truncated);
    }

    #[test]
    fn v4_fragment_fields() {
        let mut b = V4;
        b[6] = 0x20; // MF, offset 0x0b9 * 8
        b[7] = 0xb9;
        let f = parse_v4(&b).unwrap().fragment.unwrap();
        assert_eq!(f, Fragment { id: 0x1234, offset: 0xb9 * 8, more: true });
    }

    #[test]
    fn v4_rejects_bad_input() {
        assert_eq!(parse_v4(&V4[..19]).unwrap_err().kind, ErrorKind::Truncated);
        let mut b = V4;
        b[0] = 0x65;
        assert_eq!(parse_v4(&b).unwrap_err().kind, ErrorKind::BadVersion);
        let mut b = V4;
        b[0] = 0x44;
        assert_eq!(parse_v4(&b).unwrap_err().kind, ErrorKind::BadLength);
        let mut b = V4;
        b[3] = 0x40; // claims 64 bytes: what was captured is kept, flagged
        let ip = parse_v4(&b).unwrap();
        assert!(ip.truncated);
        assert_eq!(ip.payload.len(), 12);
        let mut b = V4;
        b[0] = 0x4f; // 60-byte header of a 64-byte packet, 32 captured
        b[3] = 0x40;
        assert_eq!(parse_v4(&b).unwrap_err().kind, ErrorKind::Truncated);
    }

    fn v6_header(next: u8, payload_len: u16) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&payload_len.to_be_bytes());
        b.push(next);
        b.push(64);
        b.extend_from_slice(&"fd17::1".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&"fd17::2".parse::<Ipv6Addr>().unwrap().octets());
        b
    }

    #[test]
    fn v6_with_hop_by_hop_and_fragment_header() {
        let mut b = v6_header(V6_HOP_BY_HOP, 8 + 8 + 4);
        b.extend_from_slice(&[V6_FRAGMENT, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, 8 bytes
        b.extend_from_slice(&[PROTO_UDP, 0, 0x00, 0xa1, 0xca, 0xfe, 0xba, 0xbe]); // offset 20*8, M
        b.extend_from_slice(&[1, 2, 3, 4]);
        let ip = parse_v6(&b).unwrap();
        assert_eq!(ip.src, "fd17::1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.protocol, PROTO_UDP);
        assert_eq!(ip.fragment, Some(Fragment { id: 0xcafe_babe, offset: 160, more: true }));
        assert_eq!(ip.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn v6_atomic_fragment_is_whole() {
        let mut b = v6_header(V6_FRAGMENT, 8 + 2);
        b.extend_from_slice(&[PROTO_UDP, 0, 0, 0, 0, 0, 0, 7]);
        b.extend_from_slice(&[9, 9]);
        let ip = parse_v6(&b).unwrap();
        assert_eq!(ip.fragment, None);
        assert_eq!(ip.payload, &[9, 9]);
    }

    #[test]
    fn v6_rejects_bad_input() {
        let mut b = v6_header(PROTO_UDP, 10);
        b.extend_from_slice(&[1, 2, 3]);
        let ip = parse_v6(&b).unwrap();
        assert!(ip.truncated);
        assert_eq!(ip.payload, &[1, 2, 3]);
        let mut b = v6_header(V6_DEST_OPTS, 8);
        b.extend_from_slice(&[PROTO_UDP, 3, 0, 0, 0, 0, 0, 0]); // claims 32 bytes
        assert_eq!(parse_v6(&b).unwrap_err().kind, ErrorKind::Truncated);
        let mut b = v6_header(PROTO_UDP, 0);
        b[0] = 0x40;
        assert_eq!(parse_v6(&b).unwrap_err().kind, ErrorKind::BadVersion);
    }

    #[test]
    fn v6_extension_loop_is_capped() {
        let n = 12;
        let mut b = v6_header(V6_DEST_OPTS, (n * 8) as u16);
        for _ in 0..n {
            b.extend_from_slice(&[V6_DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(parse_v6(&b).unwrap_err().kind, ErrorKind::TooMany);
    }
}
