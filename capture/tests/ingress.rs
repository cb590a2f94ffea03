//! The transport layer end to end on hand-built frames: every tunnel delivers its inner UDP
//! datagram exactly as a plain frame would, fragments and TCP streams are put back together,
//! and the depth cap holds.

mod common_frames;

use callvault_capture::LinkType;
use callvault_capture::limits::{Limits, Timeouts};
use callvault_capture::time::Timestamp;
use callvault_capture::transport::decode::Tunnel::*;
use callvault_capture::transport::ingress::Ingress;
use common_frames::*;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const OUTER_A: [u8; 4] = [192, 168, 0, 1];
const OUTER_B: [u8; 4] = [192, 168, 0, 2];

fn ingress() -> Ingress {
    Ingress::new(&Limits::default(), &Timeouts::default())
}

fn inner_ip() -> Vec<u8> {
    ipv4(A, B, 17, 1, None, &udp(5060, 5062, b"payload"))
}

/// Runs frames through a fresh ingress and returns what it delivered.
fn run(ing: &mut Ingress, link: LinkType, frames: &[Vec<u8>]) -> Collect {
    let mut out = Collect::default();
    for (i, f) in frames.iter().enumerate() {
        ing.handle(link, Timestamp(i as i64), f, &mut out);
    }
    out
}

fn assert_inner(out: &Collect, depth: u8, vlan: Option<u16>) {
    assert_eq!(out.udp.len(), 1, "{out:?}");
    let (src, dst, payload, v, d, _) = &out.udp[0];
    assert_eq!((*src, *dst), (addr(A, 5060), addr(B, 5062)));
    assert_eq!(payload, b"payload");
    assert_eq!((*v, *d), (vlan, depth));
}

#[test]
fn plain_frame_depth_zero() {
    let mut ing = ingress();
    let out = run(&mut ing, LinkType::Ethernet, &[eth(ETH_IPV4, &[7], &inner_ip())]);
    assert_inner(&out, 0, Some(7));
}

#[test]
fn gre_variants() {
    let cases = [
        ("gre ipv4 with key and sequence", gre(0x0800, Some(5), Some(9), &inner_ip()), 1),
        ("gre transparent ethernet bridging", gre(0x6558, None, None, &eth(ETH_IPV4, &[30], &inner_ip())), 1),
        ("gre ppp", gre(0x880b, None, None, &[&[0xff, 0x03, 0x00, 0x21][..], &inner_ip()].concat()), 1),
        (
            "erspan type ii",
            gre(
                0x88be,
                None,
                Some(1),
                &[&[0x10, 0x64, 0x00, 0x01, 0, 0, 0, 0][..], &eth(ETH_IPV4, &[], &inner_ip())].concat(),
            ),
            1,
        ),
        ("erspan type i", gre(0x88be, None, None, &eth(ETH_IPV4, &[], &inner_ip())), 1),
        (
            "erspan type iii",
            gre(
                0x22eb,
                None,
                Some(1),
                &[&[0x20, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], &eth(ETH_IPV4, &[], &inner_ip())].concat(),
            ),
            1,
        ),
        ("ip in ip", inner_ip(), 1),
    ];
    for (name, inner, depth) in cases {
        let mut ing = ingress();
        let proto = if name == "ip in ip" { 4 } else { 47 };
        let frame = eth(ETH_IPV4, &[100], &ipv4(OUTER_A, OUTER_B, proto, 2, None, &inner));
        let out = run(&mut ing, LinkType::Ethernet, &[frame]);
        // The outer frame's VLAN is kept even when the tunnelled frame has its own.
        assert_inner(&out, depth, Some(100));
        let s = ing.stats();
        assert_eq!(s.tunnel(Gre) + s.tunnel(Erspan) + s.tunnel(IpInIp), 1, "{name}");
    }
}

#[test]
fn pptp_gre_in_pppoe_like_the_corpus() {
    // PPTP (GRE v1, K and S set, payload length) inside IPv4 inside a PPPoE session.
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], &inner_ip()].concat();
    let mut g = vec![0x30, 0x01, 0x88, 0x0b];
    g.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    g.extend_from_slice(&[0x00, 0x07, 0, 0, 0, 1]);
    g.extend_from_slice(&ppp);
    let outer = ipv4(OUTER_A, OUTER_B, 47, 3, None, &g);
    let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
    pppoe.extend_from_slice(&((outer.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&outer);
    let mut ing = ingress();
    let out = run(&mut ing, LinkType::Ethernet, &[eth(0x8864, &[10, 20], &pppoe)]);
    assert_inner(&out, 2, Some(10));
    let s = ing.stats();
    assert_eq!((s.tunnel(Pppoe), s.tunnel(Gre)), (1, 1));
}

#[test]
fn vxlan_mpls_and_ipv6_in_ipv4() {
    let mut ing = ingress();
    let vx = [&[0x08, 0, 0, 0, 0, 0, 0x2a, 0][..], &eth(ETH_IPV4, &[55], &inner_ip())].concat();
    let out = run(
        &mut ing,
        LinkType::Ethernet,
        &[eth(ETH_IPV4, &[], &ipv4(OUTER_A, OUTER_B, 17, 4, None, &udp(40000, 4789, &vx)))],
    );
    assert_inner(&out, 1, Some(55));

    let mpls = [&[0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40][..], &inner_ip()].concat();
    let out = run(&mut ing, LinkType::Ethernet, &[eth(0x8847, &[], &mpls)]);
    assert_inner(&out, 1, None);

    let pw = [&[0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0][..], &eth(ETH_IPV4, &[], &inner_ip())].concat();
    let out = run(&mut ing, LinkType::Ethernet, &[eth(0x8847, &[], &pw)]);
    assert_inner(&out, 1, None);

    let v6 = ipv6([0xfd; 16], [0xfe; 16], 17, None, &udp(5060, 5062, b"payload"));
    let out = run(&mut ing, LinkType::RawIp, &[ipv4(OUTER_A, OUTER_B, 41, 5, None, &v6)]);
    assert_eq!(out.udp.len(), 1);
    assert!(out.udp[0].0.is_ipv6());
    let s = ing.stats();
    assert_eq!((s.tunnel(Vxlan), s.tunnel(Mpls), s.tunnel(IpInIp)), (1, 2, 1));
}

#[test]
fn nesting_deeper_than_the_cap_is_dropped_and_counted() {
    let limits = Limits { max_tunnel_depth: 3, ..Limits::default() };
    let mut ing = Ingress::new(&limits, &Timeouts::default());
    let mut pkt = inner_ip();
    for depth in 1..=4u16 {
        pkt = ipv4(OUTER_A, OUTER_B, 47, depth, None, &gre(0x0800, None, None, &pkt));
        let out = run(&mut ing, LinkType::RawIp, &[pkt.clone()]);
        assert_eq!(out.udp.len(), usize::from(depth <= 3), "depth {depth}");
    }
    assert_eq!(ing.stats().tunnel_too_deep, 1);
}

#[test]
fn fragments_inside_a_tunnel_are_reassembled() {
    let sip = sip_request("frag@x", 2000);
    let whole = udp(5060, 5060, &sip);
    let mut frames = Vec::new();
    for (off, chunk) in whole.chunks(1480).enumerate().rev() {
        let more = (off + 1) * 1480 < whole.len();
        let inner = ipv4(A, B, 17, 77, Some(((off * 1480) as u32, more)), chunk);
        frames.push(eth(ETH_IPV4, &[9], &ipv4(OUTER_A, OUTER_B, 47, 1, None, &gre(0x0800, None, None, &inner))));
    }
    let mut ing = ingress();
    let out = run(&mut ing, LinkType::Ethernet, &frames);
    assert_eq!(out.udp.len(), 1);
    assert_eq!(out.udp[0].2, sip);
    assert!(out.udp[0].5, "reassembled");
    assert_eq!(ing.stats().defrag.reassembled, 1);
    assert_eq!(ing.defragmenter().in_progress(), 0);
}

#[test]
fn ipv6_fragment_header_in_linux_cooked_capture() {
    let sip = sip_request("v6@x", 1500);
    let whole = udp(5060, 5060, &sip);
    let frames: Vec<Vec<u8>> = whole
        .chunks(1232)
        .enumerate()
        .map(|(i, c)| {
            let more = (i + 1) * 1232 < whole.len();
            let ip = ipv6([0xfd; 16], [0xfe; 16], 17, Some((0xdead, (i * 1232) as u32, more)), c);
            [&[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd][..], &ip].concat()
        })
        .collect();
    let mut ing = ingress();
    let out = run(&mut ing, LinkType::Sll, &frames);
    assert_eq!(out.udp.len(), 1);
    assert_eq!(out.udp[0].2, sip);
}

#[test]
fn sip_over_tcp_inside_vxlan_on_any_port() {
    let m1 = sip_request("tcp1@x", 300);
    let m2 = sip_request("tcp2@x", 10);
    let stream = [&m1[..], &m2[..]].concat();
    let (c, s) = (addr(A, 41000), addr(B, 7070));
    let mut frames = Vec::new();
    for (seq, chunk) in [(0usize, &stream[..100]), (100, &stream[100..250]), (250, &stream[250..])] {
        let seg = tcp(41000, 7070, 1000 + seq as u32, 1, 0x18, chunk);
        let vx = [&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &eth(ETH_IPV4, &[], &ipv4(A, B, 6, 1, None, &seg))].concat();
        frames.push(eth(ETH_IPV4, &[], &ipv4(OUTER_A, OUTER_B, 17, 1, None, &udp(5555, 4789, &vx))));
    }
    frames.swap(1, 2);
    let mut ing = ingress();
    let out = run(&mut ing, LinkType::Ethernet, &frames);
    assert_eq!(out.sip, vec![(c, s, m1), (c, s, m2)]);
    assert!(out.udp.is_empty());
    assert_eq!(ing.stats().tcp.sip_messages, 2);
}

#[test]
fn expire_runs_the_reassemblers_timers() {
    let mut ing = ingress();
    let frag = ipv4(A, B, 17, 5, Some((0, true)), &[0; 64]);
    let seg = tcp(41000, 5060, 0, 0, 0x18, b"INVITE sip:x SIP/2.0\r\n");
    run(&mut ing, LinkType::RawIp, &[frag, ipv4(A, B, 6, 1, None, &seg)]);
    assert_eq!((ing.defragmenter().in_progress(), ing.tcp().connections()), (1, 1));
    ing.expire(Timestamp(Timeouts::default().tcp_idle + 10));
    assert_eq!((ing.defragmenter().in_progress(), ing.tcp().connections()), (0, 0));
    let s = ing.stats();
    assert_eq!((s.defrag.timeouts, s.tcp.connections_expired), (1, 1));
}

#[test]
fn floods_stay_under_the_caps() {
    let limits = Limits {
        max_frag_reassemblies: 64,
        max_frag_bytes: 64 * 1024,
        max_tcp_connections: 32,
        max_tcp_buffer: 4096,
        max_tcp_bytes: 64 * 1024,
        ..Limits::default()
    };
    let mut ing = Ingress::new(&limits, &Timeouts::default());
    let mut out = Collect::default();
    let partial = b"INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 60000\r\n\r\nv=0";
    for i in 0..20_000u32 {
        let t = Timestamp(i64::from(i));
        let frag = ipv4(A, B, 17, i as u16, Some((0, true)), &[0xab; 1400]);
        ing.handle(LinkType::RawIp, t, &frag, &mut out);
        let seg = tcp(1024 + (i % 60_000) as u16, 5060, 1, 0, 0x18, partial);
        ing.handle(LinkType::RawIp, t, &ipv4(A, B, 6, 0, None, &seg), &mut out);
        assert!(ing.defragmenter().in_progress() <= 64 && ing.defragmenter().bytes_held() <= 64 * 1024);
        assert!(ing.tcp().connections() <= 32 && ing.tcp().bytes_buffered() <= 64 * 1024);
    }
    let s = ing.stats();
    assert!(s.defrag.shed_table_full + s.defrag.shed_bytes >= 20_000 - 64);
    assert_eq!(s.tcp.connections_shed, 20_000 - 32);
    assert!(out.udp.is_empty() && out.sip.is_empty());
}

/// The ends a reader ahead asks for: those of the datagram `handle` delivers on its fast path
/// (UDP in unfragmented IPv4, VLAN tags or not), none for anything else.
#[test]
fn udp_ends_are_the_fast_paths_datagram_ends() {
    for vlans in [&[][..], &[7], &[7, 8]] {
        let frame = eth(ETH_IPV4, vlans, &inner_ip());
        let mut ing = ingress();
        let out = run(&mut ing, LinkType::Ethernet, std::slice::from_ref(&frame));
        let (src, dst, ..) = &out.udp[0];
        assert_eq!(Ingress::udp_ends(LinkType::Ethernet, &frame), Some((*src, *dst)), "vlans {vlans:?}");
    }
    let fragment = eth(ETH_IPV4, &[], &ipv4(A, B, 17, 1, Some((0, true)), &udp(5060, 5062, b"payload")));
    let tcp_frame = eth(ETH_IPV4, &[], &ipv4(A, B, 6, 1, None, &tcp(5060, 5062, 1, 1, 0x18, b"x")));
    let tunnel = eth(ETH_IPV4, &[], &ipv4(A, B, 47, 1, None, &gre(0x0800, None, None, &inner_ip())));
    for (name, frame) in [("fragment", fragment), ("tcp", tcp_frame), ("gre", tunnel), ("runt", vec![0; 10])] {
        assert_eq!(Ingress::udp_ends(LinkType::Ethernet, &frame), None, "{name}");
    }
}
