//! Reads generated captures back, independently of the generator: a hand-written classic
//! pcap reader, etherparse for the link/IP/UDP layers, and minimal SIP/RTP field extraction.

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice, ether_type};

/// One pcap record.
#[derive(Debug, Clone)]
pub struct Record {
    pub ts_ns: i64,
    pub data: Vec<u8>,
}

/// A whole capture file.
#[derive(Debug)]
pub struct Capture {
    pub linktype: u32,
    pub nano: bool,
    pub snaplen: u32,
    pub records: Vec<Record>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a little-endian classic pcap file.
pub fn read_pcap(bytes: &[u8]) -> Capture {
    assert!(bytes.len() >= 24, "no file header");
    let nano = match le32(bytes, 0) {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        m => panic!("bad magic {m:#x}"),
    };
    assert_eq!(&bytes[4..8], &[2, 0, 4, 0], "version 2.4");
    let snaplen = le32(bytes, 16);
    let linktype = le32(bytes, 20);
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        assert!(at + 16 <= bytes.len(), "truncated record header at {at}");
        let secs = i64::from(le32(bytes, at));
        let frac = i64::from(le32(bytes, at + 4));
        let incl = le32(bytes, at + 8) as usize;
        let orig = le32(bytes, at + 12) as usize;
        assert_eq!(incl, orig, "record at {at} truncated");
        assert!(frac < if nano { 1_000_000_000 } else { 1_000_000 });
        let ts_ns = secs * 1_000_000_000 + if nano { frac } else { frac * 1_000 };
        let start = at + 16;
        assert!(start + incl <= bytes.len(), "truncated record at {at}");
        records.push(Record { ts_ns, data: bytes[start..start + incl].to_vec() });
        at = start + incl;
    }
    Capture { linktype, nano, snaplen, records }
}

/// A decoded UDP datagram.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
    /// VLAN ids, outermost first.
    pub vlans: Vec<u16>,
    /// EtherType of the outermost tag / the link header, when there is one.
    pub outer_ether_type: Option<u16>,
    pub ipv4_id: Option<u16>,
}

/// Decodes one frame of a capture with the given link type, checking IP and UDP checksums.
pub fn decode(linktype: u32, frame: &[u8]) -> Datagram {
    let sliced = match linktype {
        1 => SlicedPacket::from_ethernet(frame),
        113 => SlicedPacket::from_linux_sll(frame),
        276 => {
            assert!(frame.len() >= 20, "short SLL2 frame");
            let protocol = u16::from_be_bytes([frame[0], frame[1]]);
            assert_eq!(&frame[2..4], &[0, 0], "SLL2 reserved");
            assert_eq!(&frame[8..10], &[0, 1], "SLL2 ARPHRD_ETHER");
            assert_eq!(frame[11], 6, "SLL2 address length");
            SlicedPacket::from_ether_type(etherparse::EtherType(protocol), &frame[20..])
        }
        101 => SlicedPacket::from_ip(frame),
        other => panic!("unexpected link type {other}"),
    }
    .unwrap_or_else(|e| panic!("etherparse failed: {e:?}"));
    let outer_ether_type = match &sliced.link {
        Some(LinkSlice::Ethernet2(eth)) => Some(eth.ether_type().0),
        Some(LinkSlice::LinuxSll(sll)) => match sll.protocol_type() {
            etherparse::LinuxSllProtocolType::EtherType(t) => Some(t.0),
            other => panic!("SLL protocol {other:?}"),
        },
        _ => None,
    };
    let vlans = sliced.vlan_ids().iter().map(|id| id.value()).collect();
    let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
        panic!("not UDP: {:?}", sliced.transport);
    };
    let udp_header = udp.to_header();
    let (src, dst, ipv4_id, checksum) = match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
            assert!(h.dont_fragment, "DF");
            assert_eq!(h.time_to_live, 64, "TTL");
            let sum = udp_header.calc_checksum_ipv4(&h, udp.payload()).unwrap();
            (IpAddr::from(h.source), IpAddr::from(h.destination), Some(h.identification), sum)
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            assert_eq!(h.hop_limit, 64, "hop limit");
            let sum = udp_header.calc_checksum_ipv6(&h, udp.payload()).unwrap();
            (IpAddr::from(h.source), IpAddr::from(h.destination), None, sum)
        }
        other => panic!("not IP: {other:?}"),
    };
    assert_eq!(udp.checksum(), checksum, "UDP checksum");
    Datagram {
        src,
        dst,
        src_port: udp.source_port(),
        dst_port: udp.destination_port(),
        payload: udp.payload().to_vec(),
        vlans,
        outer_ether_type,
        ipv4_id,
    }
}

/// The parts of a SIP message the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    pub start_line: String,
    /// Request method, or `None` for a response.
    pub method: Option<String>,
    pub status: Option<u16>,
    pub call_id: String,
    pub cseq_method: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sip {
    /// The first header called `full` or `compact` (case-insensitive).
    pub fn header(&self, full: &str, compact: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(full) || n.eq_ignore_ascii_case(compact))
            .map(|(_, v)| v.as_str())
    }
}

/// The parts of an RTP packet the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtp {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// What a UDP payload carries.
#[derive(Debug, Clone)]
pub enum Payload {
    Sip(Sip),
    Rtp(Rtp),
}

/// Tells SIP from RTP by content (SIP is text starting with a method or `SIP/2.0`).
pub fn classify(payload: &[u8]) -> Payload {
    if payload.first().is_some_and(|&b| b >= 0x80) {
        assert!(payload.len() >= 12, "short RTP");
        assert_eq!(payload[0], 0x80, "RTP version 2, no padding/extension/CSRC");
        return Payload::Rtp(Rtp {
            marker: payload[1] & 0x80 != 0,
            pt: payload[1] & 0x7f,
            seq: u16::from_be_bytes([payload[2], payload[3]]),
            ts: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
            ssrc: u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]),
            payload: payload[12..].to_vec(),
        });
    }
    let text = std::str::from_utf8(payload).expect("SIP is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("blank line after headers");
    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap().to_string();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header has a colon");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let (method, status) = match start_line.strip_prefix("SIP/2.0 ") {
        Some(rest) => (None, Some(rest[..3].parse().unwrap())),
        None => {
            assert!(start_line.ends_with(" SIP/2.0"), "{start_line}");
            (Some(start_line.split(' ').next().unwrap().to_string()), None)
        }
    };
    let mut sip = Sip {
        start_line,
        method,
        status,
        call_id: String::new(),
        cseq_method: String::new(),
        headers,
        body: body.to_string(),
    };
    sip.call_id = sip.header("Call-ID", "i").expect("Call-ID").to_string();
    let cseq = sip.header("CSeq", "CSeq").expect("CSeq");
    sip.cseq_method = cseq.split_whitespace().nth(1).expect("CSeq method").to_string();
    let len: usize = sip.header("Content-Length", "l").expect("Content-Length").parse().unwrap();
    assert_eq!(len, sip.body.len(), "Content-Length");
    Payload::Sip(sip)
}

/// A decoded record: capture time, datagram, content.
#[derive(Debug, Clone)]
pub struct Packet {
    pub ts_ns: i64,
    pub udp: Datagram,
    pub content: Payload,
}

/// Reads and decodes every record of a capture.
pub fn packets(bytes: &[u8]) -> (Capture, Vec<Packet>) {
    let cap = read_pcap(bytes);
    let packets = cap
        .records
        .iter()
        .map(|r| {
            let udp = decode(cap.linktype, &r.data);
            let content = classify(&udp.payload);
            Packet { ts_ns: r.ts_ns, udp, content }
        })
        .collect();
    (cap, packets)
}

/// EtherType constants used in assertions.
pub const VLAN: u16 = ether_type::VLAN_TAGGED_FRAME.0;
pub const QINQ: u16 = ether_type::PROVIDER_BRIDGING.0;
pub const IPV4: u16 = ether_type::IPV4.0;
pub const IPV6: u16 = ether_type::IPV6.0;
