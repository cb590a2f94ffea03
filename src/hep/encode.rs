//! HEPv3 (EEP) packets: a 6-byte header (`HEP3` and the total length, big-endian u16) and
//! a run of chunks, each with a 6-byte header (vendor id u16, type id u16, length u16
//! including the header) and its value. callvault writes only generic chunks (vendor 0):
//!
//! | type   | value                                   | size      |
//! |--------|-----------------------------------------|-----------|
//! | 0x0001 | IP protocol family (2 IPv4, 10 IPv6)    | u8        |
//! | 0x0002 | IP protocol (17 UDP, 6 TCP)             | u8        |
//! | 0x0003 | IPv4 source address                     | 4 bytes   |
//! | 0x0004 | IPv4 destination address                | 4 bytes   |
//! | 0x0005 | IPv6 source address                     | 16 bytes  |
//! | 0x0006 | IPv6 destination address                | 16 bytes  |
//! | 0x0007 | source port                             | u16       |
//! | 0x0008 | destination port                        | u16       |
//! | 0x0009 | timestamp, seconds since the epoch      | u32       |
//! | 0x000a | timestamp, microseconds within it       | u32       |
//! | 0x000b | protocol type (1 SIP, 5 RTCP, 34 QoS)   | u8        |
//! | 0x000c | capture agent id                        | u32       |
//! | 0x000e | authentication key                      | bytes     |
//! | 0x000f | captured payload                        | bytes     |
//! | 0x0011 | correlation id                          | bytes     |
//! | 0x0013 | capture node name                       | bytes     |
//! | 0x0020 | MOS × 100                               | u16       |
//!
//! Everything is big-endian (HEP3 network protocol specification, sipcapture/HEP).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use capture::Timestamp;

/// Protocol type of a SIP message.
pub const PROTO_SIP: u8 = 1;
/// Protocol type of an RTCP packet, as JSON.
pub const PROTO_RTCP: u8 = 5;
/// Protocol type of a full per-stream quality (MOS) report, JSON (what HOMER's RTP agents
/// send; heplify-server stores it in its report table, which the call's QoS tab reads).
pub const PROTO_QOS_REPORT: u8 = 34;

/// IP protocol numbers.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Largest HEP packet: its length field is 16 bits.
pub const MAX_PACKET: usize = u16::MAX as usize;

mod chunk {
    pub(super) const FAMILY: u16 = 0x0001;
    pub(super) const IP_PROTO: u16 = 0x0002;
    pub(super) const IPV4_SRC: u16 = 0x0003;
    pub(super) const IPV4_DST: u16 = 0x0004;
    pub(super) const IPV6_SRC: u16 = 0x0005;
    pub(super) const IPV6_DST: u16 = 0x0006;
    pub(super) const SRC_PORT: u16 = 0x0007;
    pub(super) const DST_PORT: u16 = 0x0008;
    pub(super) const TIME_SEC: u16 = 0x0009;
    pub(super) const TIME_USEC: u16 = 0x000a;
    pub(super) const PROTO_TYPE: u16 = 0x000b;
    pub(super) const CAPTURE_ID: u16 = 0x000c;
    pub(super) const AUTH_KEY: u16 = 0x000e;
    pub(super) const PAYLOAD: u16 = 0x000f;
    pub(super) const CORRELATION_ID: u16 = 0x0011;
    pub(super) const NODE_NAME: u16 = 0x0013;
    pub(super) const MOS: u16 = 0x0020;
}

/// Address families as HEP writes them (the BSD `AF_INET`, Linux `AF_INET6` values).
const FAMILY_IPV4: u8 = 2;
const FAMILY_IPV6: u8 = 10;

/// Who sends: the same for every packet of an exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// Capture agent id (`node_id`).
    pub id: u32,
    /// Authentication key, if the collector wants one.
    pub key: Option<Vec<u8>>,
    /// Capture node name, if set.
    pub name: Option<String>,
}

/// One packet to encode.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Sender of the encapsulated message.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// [`IPPROTO_UDP`], [`IPPROTO_TCP`] or [`IPPROTO_SCTP`].
    pub ip_proto: u8,
    /// Capture time of the message (or the report's time).
    pub time: Timestamp,
    /// [`PROTO_SIP`], [`PROTO_QOS_REPORT`].
    pub proto_type: u8,
    /// Correlation id (the Call-ID); left out when empty.
    pub correlation_id: &'a [u8],
    /// MOS of a report.
    pub mos: Option<f64>,
    /// The payload, as it was on the wire.
    pub payload: &'a [u8],
}

/// The packet would be longer than a HEP length field can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a HEP packet of {0} bytes is longer than 65535")]
pub struct TooLarge(pub usize);

/// Both addresses of one family: IPv4 when both are, else IPv6 (an IPv4 one mapped).
fn addresses(src: IpAddr, dst: IpAddr) -> (u8, [u8; 16], [u8; 16], usize) {
    let v6 = |ip: IpAddr| -> Ipv6Addr {
        match ip {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
            a[..4].copy_from_slice(&s.octets());
            b[..4].copy_from_slice(&d.octets());
            (FAMILY_IPV4, a, b, 4)
        }
        _ => (FAMILY_IPV6, v6(src).octets(), v6(dst).octets(), 16),
    }
}

fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    // Lengths were checked against MAX_PACKET before anything was written.
    out.extend_from_slice(&((6 + value.len()) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Encodes `p` as sent by `agent` into `out` (cleared first).
pub fn encode(agent: &Agent, p: &Packet<'_>, out: &mut Vec<u8>) -> Result<(), TooLarge> {
    let (family, src, dst, alen) = addresses(p.src.ip(), p.dst.ip());
    let key = agent.key.as_deref().unwrap_or_default();
    let name = agent.name.as_deref().unwrap_or_default().as_bytes();
    let optional = |v: &[u8]| if v.is_empty() { 0 } else { 6 + v.len() };
    let len = 6
        + 2 * (6 + 1)
        + 2 * (6 + alen)
        + 2 * (6 + 2)
        + 2 * (6 + 4)
        + (6 + 1)
        + (6 + 4)
        + optional(key)
        + optional(name)
        + optional(p.correlation_id)
        + if p.mos.is_some() { 6 + 2 } else { 0 }
        + 6
        + p.payload.len();
    if len > MAX_PACKET {
        return Err(TooLarge(len));
    }
    out.clear();
    out.reserve(len);
    out.extend_from_slice(b"HEP3");
    out.extend_from_slice(&(len as u16).to_be_bytes());
    put(out, chunk::FAMILY, &[family]);
    put(out, chunk::IP_PROTO, &[p.ip_proto]);
    let (src_kind, dst_kind) =
        if alen == 4 { (chunk::IPV4_SRC, chunk::IPV4_DST) } else { (chunk::IPV6_SRC, chunk::IPV6_DST) };
    put(out, src_kind, &src[..alen]);
    put(out, dst_kind, &dst[..alen]);
    put(out, chunk::SRC_PORT, &p.src.port().to_be_bytes());
    put(out, chunk::DST_PORT, &p.dst.port().to_be_bytes());
    // HEP's seconds are 32 bits: capture times before 1970 or after 2106 do not fit.
    put(out, chunk::TIME_SEC, &(p.time.secs().clamp(0, u32::MAX.into()) as u32).to_be_bytes());
    put(out, chunk::TIME_USEC, &(p.time.subsec_nanos() / 1000).to_be_bytes());
    put(out, chunk::PROTO_TYPE, &[p.proto_type]);
    put(out, chunk::CAPTURE_ID, &agent.id.to_be_bytes());
    if !key.is_empty() {
        put(out, chunk::AUTH_KEY, key);
    }
    if !name.is_empty() {
        put(out, chunk::NODE_NAME, name);
    }
    if !p.correlation_id.is_empty() {
        put(out, chunk::CORRELATION_ID, p.correlation_id);
    }
    if let Some(mos) = p.mos {
        put(out, chunk::MOS, &((mos * 100.0).round().clamp(0.0, 500.0) as u16).to_be_bytes());
    }
    put(out, chunk::PAYLOAD, p.payload);
    debug_assert_eq!(out.len(), len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip_packet<'a>(src: &str, dst: &str, payload: &'a [u8]) -> Packet<'a> {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_proto: IPPROTO_UDP,
            time: Timestamp::from_parts(1_480_171_979, 666_393_123),
            proto_type: PROTO_SIP,
            correlation_id: b"abc@h",
            mos: None,
            payload,
        }
    }

    /// The bytes written out by hand from the specification's chunk table.
    #[test]
    fn ipv4_sip_message_byte_for_byte() {
        let agent = Agent { id: 2001, key: Some(b"myHep".to_vec()), name: None };
        let mut out = Vec::new();
        encode(&agent, &sip_packet("10.0.0.1:5060", "192.168.1.2:5062", b"OPTIONS"), &mut out).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &b"HEP3"[..], &[0x00, 0x80],                     // total length 128
            &[0, 0, 0, 1, 0, 7, 2],                          // family IPv4
            &[0, 0, 0, 2, 0, 7, 17],                         // UDP
            &[0, 0, 0, 3, 0, 10, 10, 0, 0, 1],               // source 10.0.0.1
            &[0, 0, 0, 4, 0, 10, 192, 168, 1, 2],            // destination 192.168.1.2
            &[0, 0, 0, 7, 0, 8, 0x13, 0xc4],                 // source port 5060
            &[0, 0, 0, 8, 0, 8, 0x13, 0xc6],                 // destination port 5062
            &[0, 0, 0, 9, 0, 10, 0x58, 0x39, 0xa1, 0xcb],    // 1480171979 s
            &[0, 0, 0, 10, 0, 10, 0x00, 0x0a, 0x2b, 0x19],   // 666393 us (nanoseconds cut)
            &[0, 0, 0, 11, 0, 7, 1],                         // SIP
            &[0, 0, 0, 12, 0, 10, 0, 0, 0x07, 0xd1],         // capture id 2001
            &[0, 0, 0, 14, 0, 11], b"myHep",                 // auth key
            &[0, 0, 0, 17, 0, 11], b"abc@h",                 // correlation id
            &[0, 0, 0, 15, 0, 13], b"OPTIONS",               // payload
        ]
        .concat();
        assert_eq!(out, want);
        assert_eq!(out.len(), 128);
    }

    #[test]
    fn ipv6_addresses_take_the_ipv6_chunks() {
        let agent = Agent { id: 7, key: None, name: Some("sbc".into()) };
        let mut out = Vec::new();
        encode(&agent, &sip_packet("[2001:db8::1]:5060", "[2001:db8::2]:5080", b"X"), &mut out).unwrap();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &b"HEP3"[..], &[0x00, 0x90],                     // total length 144
            &[0, 0, 0, 1, 0, 7, 10],                         // family IPv6
            &[0, 0, 0, 2, 0, 7, 17],
            &[0, 0, 0, 5, 0, 22, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 6, 0, 22, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            &[0, 0, 0, 7, 0, 8, 0x13, 0xc4],
            &[0, 0, 0, 8, 0, 8, 0x13, 0xd8],                 // 5080
            &[0, 0, 0, 9, 0, 10, 0x58, 0x39, 0xa1, 0xcb],
            &[0, 0, 0, 10, 0, 10, 0x00, 0x0a, 0x2b, 0x19],
            &[0, 0, 0, 11, 0, 7, 1],
            &[0, 0, 0, 12, 0, 10, 0, 0, 0, 7],
            &[0, 0, 0, 19, 0, 9], b"sbc",                    // node name
            &[0, 0, 0, 17, 0, 11], b"abc@h",
            &[0, 0, 0, 15, 0, 7], b"X",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn a_report_carries_its_mos_and_mixed_families_become_ipv6() {
        let agent = Agent { id: 1, key: None, name: None };
        let mut p = sip_packet("10.0.0.1:4000", "[2001:db8::2]:4002", b"{}");
        p.proto_type = PROTO_QOS_REPORT;
        p.mos = Some(4.386);
        p.correlation_id = b"";
        let mut out = Vec::new();
        encode(&agent, &p, &mut out).unwrap();
        assert_eq!(&out[6..13], &[0, 0, 0, 1, 0, 7, 10]);
        let src = &out[20..42];
        assert_eq!(&src[..6], &[0, 0, 0, 5, 0, 22]);
        assert_eq!(&src[6..], &"::ffff:10.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        let tail = &out[out.len() - 16..];
        assert_eq!(tail, &[0, 0, 0, 0x20, 0, 8, 0x01, 0xb7, 0, 0, 0, 15, 0, 8, b'{', b'}'], "MOS 439, payload");
        assert_eq!(u16::from_be_bytes([out[4], out[5]]) as usize, out.len());
        assert!(!out.windows(4).any(|w| w == [0, 0, 0, 0x11]), "no empty correlation id chunk");
    }

    #[test]
    fn a_packet_longer_than_the_length_field_is_refused() {
        let agent = Agent::default();
        let big = vec![b'a'; MAX_PACKET];
        let mut out = Vec::new();
        let err = encode(&agent, &sip_packet("10.0.0.1:1", "10.0.0.2:2", &big), &mut out).unwrap_err();
        assert!(err.0 > MAX_PACKET);
        let fits = vec![b'a'; MAX_PACKET - 110];
        encode(&agent, &sip_packet("10.0.0.1:1", "10.0.0.2:2", &fits), &mut out).unwrap();
        assert_eq!(out.len(), MAX_PACKET);
    }
}
