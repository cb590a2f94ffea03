//! The packet decoder through `Ingress`: a sequence of frames, each `[link type][length u16]
//! [bytes]`, so fragments and TCP segments can meet across frames. Tight limits make the caps
//! and the tunnel depth cap reachable.
#![no_main]

use callvault_capture::transport::decode::{Datagram, Transport};
use callvault_capture::transport::ingress::{Ingress, IngressSink};
use callvault_capture::limits::{Limits, Timeouts};
use callvault_capture::time::Timestamp;
use callvault_capture::LinkType;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Sll,
    LinkType::Sll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

struct Sink;

impl IngressSink for Sink {
    fn udp(&mut self, d: &Datagram<'_>) {
        assert!(d.payload.len() <= 65_535);
    }
    fn sip_stream(&mut self, _time: Timestamp, _src: SocketAddr, _dst: SocketAddr, _transport: Transport, message: &[u8]) {
        assert!(message.len() <= 2048);
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frag_reassemblies: 4,
        max_frag_bytes: 8192,
        max_tcp_connections: 4,
        max_tcp_buffer: 4096,
        max_tcp_bytes: 8192,
        max_sip_message: 2048,
        max_tunnel_depth: 4,
        ..Limits::default()
    };
    let mut ing = Ingress::new(&limits, &Timeouts::default());
    let mut rest = data;
    let mut t = 0;
    while rest.len() >= 3 {
        let link = LINKS[usize::from(rest[0]) % LINKS.len()];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        t += 1_000_000;
        ing.handle(link, Timestamp(t), frame, &mut Sink);
        assert!(ing.defragmenter().bytes_held() <= 8192);
        assert!(ing.tcp().bytes_buffered() <= 8192);
    }
    ing.expire(Timestamp(i64::MAX / 2));
});
