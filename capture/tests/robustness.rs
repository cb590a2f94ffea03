//! Arbitrary bytes into every entry point the network feeds: the packet decoder (through
//! `Ingress`), the SIP and SDP parsers, SIP framing, the TCP reassembler and the defragmenter.
//! Nothing may panic, and the reassemblers' caps must hold whatever arrives. (The same entry
//! points have cargo-fuzz targets under `fuzz/`.)

mod common_frames;

use std::net::SocketAddr;

use callvault_capture::LinkType;
use callvault_capture::limits::{Limits, Timeouts};
use callvault_capture::time::Timestamp;
use callvault_capture::transport::ingress::Ingress;
use callvault_capture::transport::reassembly::ip::{DefragConfig, Defragmenter, FragKey};
use callvault_capture::transport::reassembly::tcp::{Segment, TcpConfig, TcpReassembler};
use callvault_capture::wire::{rtcp, rtp, sdp, sip, sip_framing, telephone_event, zrtp};
use common_frames::*;
use proptest::prelude::*;

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

fn tight() -> Limits {
    Limits {
        max_frag_reassemblies: 4,
        max_frag_bytes: 4096,
        max_tcp_connections: 4,
        max_tcp_buffer: 2048,
        max_tcp_bytes: 4096,
        max_sip_message: 1024,
        max_tunnel_depth: 3,
        ..Limits::default()
    }
}

/// Bytes that look like the inside of SIP messages, so random input reaches deep states.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"INVITE sip:a@b SIP/2.0\r\n".to_vec()),
        Just(b"SIP/2.0 200 OK\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"l: 99999\r\n".to_vec()),
        Just(b"Call-ID: x\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoder_survives_arbitrary_frames(frames in proptest::collection::vec((0usize..8, proptest::collection::vec(any::<u8>(), 0..200)), 1..20)) {
        let mut ing = Ingress::new(&tight(), &Timeouts::default());
        let mut out = Collect::default();
        for (i, (link, f)) in frames.iter().enumerate() {
            ing.handle(LINKS[*link], Timestamp(i as i64), f, &mut out);
        }
        ing.expire(Timestamp(i64::MAX / 2));
    }

    #[test]
    fn decoder_survives_arbitrary_ip_payloads(
        packets in proptest::collection::vec((prop::sample::select(vec![4u8, 6, 17, 41, 47, 50]), any::<u16>(), proptest::option::of((0u32..9000, any::<bool>())), sipish()), 1..30)
    ) {
        let mut ing = Ingress::new(&tight(), &Timeouts::default());
        let mut out = Collect::default();
        for (i, (proto, id, frag, payload)) in packets.iter().enumerate() {
            let frag = frag.map(|(o, m)| (o / 8 * 8, m));
            let frame = eth(ETH_IPV4, &[1], &ipv4([10, 0, 0, 1], [10, 0, 0, 2], *proto, *id % 4, frag, payload));
            ing.handle(LinkType::Ethernet, Timestamp(i as i64), &frame, &mut out);
            prop_assert!(ing.defragmenter().bytes_held() <= 4096);
            prop_assert!(ing.tcp().bytes_buffered() <= 4096);
        }
        for (_, _, p, _, depth, _) in &out.udp {
            prop_assert!(*depth <= 3);
            prop_assert!(p.len() <= 65_535);
        }
    }

    #[test]
    fn sip_parser_survives(b in prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), sipish()]) {
        if let Ok(m) = sip::parse(&b, 16) {
            prop_assert!(m.header_count <= 16);
            prop_assert!(m.head_len <= b.len());
        }
        let _ = sip::looks_like_sip(&b);
    }

    #[test]
    fn media_views_survive(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = (zrtp::is_zrtp(&b), rtcp::is_muxed(&b), rtcp::is_rtcp(&b));
        if let Ok(p) = rtp::RtpPacket::new_checked(&b) {
            prop_assert_eq!(&b[p.payload_range()], p.payload());
            let _ = (p.csrcs().count(), p.extension(), telephone_event::EventRepr::parse(p.payload()));
        }
        let mut walked = 0;
        for pkt in rtcp::compound(&b) {
            walked += pkt.bytes().len();
            prop_assert!(pkt.report_blocks().count() <= usize::from(pkt.count()));
        }
        prop_assert!(walked <= b.len());
    }

    #[test]
    fn sdp_parser_survives(b in prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), sipish()]) {
        let _ = sdp::parse(&b);
    }

    #[test]
    fn sip_framing_survives(b in prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), sipish()], max in 0usize..2000) {
        match sip_framing::frame(&b, max) {
            sip_framing::Framing::Complete(n) => prop_assert!(n <= b.len() && n <= max),
            sip_framing::Framing::TooLarge { len: Some(n) } => prop_assert!(n > max),
            _ => {}
        }
        if let Some(at) = sip_framing::find_start_line(&b) {
            prop_assert!(at < b.len());
        }
        let _ = sip_framing::starts_like_sip(&b);
    }

    #[test]
    fn tcp_reassembler_holds_its_caps(
        segs in proptest::collection::vec((0u8..3, 0u8..3, 0u32..3000, any::<u32>(), any::<u8>(), sipish(), 0i64..400), 1..60)
    ) {
        let limits = tight();
        let cfg = TcpConfig::new(&limits, &Timeouts { tcp_idle: 200, ..Timeouts::default() });
        let mut r = TcpReassembler::new(cfg);
        let hosts: [SocketAddr; 3] = ["10.0.0.1:5060".parse().unwrap(), "10.0.0.2:6060".parse().unwrap(), "10.0.0.3:40000".parse().unwrap()];
        let mut now = 0;
        for (a, b, seq, ack, flags, payload, dt) in &segs {
            now += dt;
            let seg = Segment { src: hosts[*a as usize], dst: hosts[*b as usize], vlan: None, seq: *seq, ack: *ack, flags: *flags, payload };
            r.segment(Timestamp(now), &seg, |_, _, _, m| assert!(m.len() <= 1024));
            r.expire(Timestamp(now));
            prop_assert!(r.bytes_buffered() <= limits.max_tcp_bytes);
            prop_assert!(r.connections() <= limits.max_tcp_connections);
        }
    }

    #[test]
    fn defragmenter_holds_its_caps(
        frags in proptest::collection::vec((0u32..4, 0u32..70_000, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..1500), 0i64..10), 1..60)
    ) {
        let cfg = DefragConfig { max_reassemblies: 3, max_bytes: 20_000, timeout: 20 };
        let mut f = Defragmenter::new(cfg);
        let mut now = 0;
        for (id, offset, more, payload, dt) in &frags {
            now += dt;
            let key = FragKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id: *id, protocol: 17, vlan: None };
            if let Some(d) = f.push(Timestamp(now), key, *offset, *more, payload) {
                prop_assert!(d.len() <= 65_535);
            }
            f.expire(Timestamp(now));
            prop_assert!(f.bytes_held() <= 20_000);
            prop_assert!(f.in_progress() <= 3);
        }
    }
}
