//! The real-network options of the generator, read back independently: SIP over TCP, IP
//! fragments, tunnels, NAT, early media, re-INVITEs (hold, resume, media moves), RFC 4733
//! events and RTP numbering changes.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;

use callvault_callgen::{
    CallSpec, Codec, Declared, DtmfDigit, EarlyMedia, EventStream, FragmentOrder, Fragmentation, Hangup, MidCall, Nat,
    OPUS_PT, Outcome, Party, RtpSchedule, Scenario, Silence, SipTransport, StreamChange, TUNNEL_DST, TUNNEL_SRC,
    TcpOptions, Truth, Tunnel, expected_payload, rtp_packet, samples_per_packet, share_media_address, timeline,
    write_pcap_to,
};
use common::{Packet, Payload, Rtp, Sip, classify, read_pcap};
use etherparse::{IpNumber, NetSlice, SlicedPacket, TransportSlice, defrag::IpDefragPool};

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn generate(scenario: &Scenario) -> (Truth, Vec<u8>) {
    let mut bytes = Vec::new();
    let truth = write_pcap_to(scenario, &mut bytes).expect("generation succeeds");
    (truth, bytes)
}

/// Lengths of the SIP messages a byte stream starts with (by Content-Length), and whether
/// the stream ends with a whole message.
fn message_lengths(mut stream: &[u8]) -> (Vec<usize>, bool) {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let Some(head_end) = stream.windows(4).position(|w| w == b"\r\n\r\n") else { return (out, false) };
        let head = std::str::from_utf8(&stream[..head_end]).unwrap();
        let len: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Length: ").or_else(|| l.strip_prefix("l: ")))
            .expect("Content-Length")
            .parse()
            .unwrap();
        let total = head_end + 4 + len;
        if total > stream.len() {
            return (out, false);
        }
        out.push(total);
        stream = &stream[total..];
    }
    (out, true)
}

/// Splits a byte stream of whole SIP messages.
fn split_sip(mut stream: &[u8]) -> Vec<Sip> {
    let (lengths, whole) = message_lengths(stream);
    assert!(whole, "stream ends inside a message");
    let mut out = Vec::new();
    for len in lengths {
        let Payload::Sip(sip) = classify(&stream[..len]) else { panic!("not SIP") };
        out.push(sip);
        stream = &stream[len..];
    }
    out
}

/// (CSeq method, status, sent by the caller) of every SIP message in the truth.
fn truth_sip(truth: &Truth, call: usize) -> Vec<(&'static str, Option<u16>, bool)> {
    truth.calls[call].sip.iter().map(|s| (s.method, s.status, s.from_caller)).collect()
}

struct Segment {
    ts_ns: i64,
    src: (IpAddr, u16),
    seq: u32,
    ack: u32,
    syn: bool,
    fin: bool,
    ack_flag: bool,
    psh: bool,
    payload: Vec<u8>,
}

fn tcp_segments(bytes: &[u8]) -> Vec<Segment> {
    let cap = read_pcap(bytes);
    let mut out = Vec::new();
    for r in &cap.records {
        let p = SlicedPacket::from_ethernet(&r.data).unwrap();
        let Some(TransportSlice::Tcp(t)) = &p.transport else {
            // Only RTP is left on UDP.
            let Some(TransportSlice::Udp(u)) = &p.transport else { panic!("neither TCP nor UDP") };
            assert!(matches!(classify(u.payload()), Payload::Rtp(_)), "SIP over UDP in a TCP call");
            continue;
        };
        let (src, sum) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum());
                (IpAddr::from(h.source), t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap())
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                (IpAddr::from(h.source), t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(t.checksum(), sum, "TCP checksum");
        assert_eq!(t.data_offset(), 5);
        out.push(Segment {
            ts_ns: r.ts_ns,
            src: (src, t.source_port()),
            seq: t.sequence_number(),
            ack: t.acknowledgment_number(),
            syn: t.syn(),
            fin: t.fin(),
            ack_flag: t.ack(),
            psh: t.psh(),
            payload: t.payload().to_vec(),
        });
    }
    out
}

#[test]
fn sip_over_tcp_is_one_connection_with_split_and_coalesced_messages() {
    for v6 in [false, true] {
        let mut c = CallSpec::answered(0, T0, 400);
        c.sip_transport = SipTransport::Tcp(TcpOptions { mss: 1200, coalesce_trying: true });
        c.invite_padding = 1500;
        c.caller_sip_port = 49_170;
        c.outcome = Outcome::Answered { hangup: Hangup::Callee };
        let c = if v6 { c.into_ipv6() } else { c };
        let scenario = Scenario::new(vec![c.clone()]);
        let (truth, bytes) = generate(&scenario);
        let segs = tcp_segments(&bytes);
        let caller = (c.caller_ip, c.caller_sip_port);
        // Handshake.
        let (syn, syn_ack, ack) = (&segs[0], &segs[1], &segs[2]);
        assert!(syn.syn && !syn.ack_flag && syn.src == caller && syn.payload.is_empty());
        assert!(syn_ack.syn && syn_ack.ack_flag && syn_ack.ack == syn.seq.wrapping_add(1));
        assert!(!ack.syn && ack.ack_flag && ack.seq == syn.seq.wrapping_add(1));
        assert_eq!(ack.ack, syn_ack.seq.wrapping_add(1));
        assert_eq!(syn.ts_ns, truth.calls[0].start_ns - 3 * MS);
        // Data: contiguous in each direction, acknowledging everything the other side sent.
        let mut next = HashMap::from([(true, ack.seq), (false, ack.ack)]);
        let mut stream: HashMap<bool, Vec<u8>> = HashMap::new();
        let mut invite_segments = 0;
        let mut callee_spoke = false;
        let mut both_provisionals = false;
        for s in &segs[3..segs.len() - 3] {
            let by_caller = s.src == caller;
            assert!(!s.syn && !s.fin && s.ack_flag && !s.payload.is_empty());
            assert_eq!(s.seq, next[&by_caller], "contiguous");
            assert_eq!(s.ack, next[&!by_caller], "acknowledges all");
            assert!(s.payload.len() <= 1200);
            next.insert(by_caller, s.seq.wrapping_add(s.payload.len() as u32));
            callee_spoke |= !by_caller;
            if by_caller && !callee_spoke {
                invite_segments += 1;
            }
            let text = String::from_utf8_lossy(&s.payload);
            both_provisionals |= text.contains("SIP/2.0 100 Trying") && text.contains("SIP/2.0 180 Ringing");
            let st = stream.entry(by_caller).or_default();
            st.extend_from_slice(&s.payload);
            assert_eq!(s.psh, message_lengths(st).1, "PSH on the last segment of a message");
        }
        assert!(both_provisionals, "100 and 180 share a segment");
        // The INVITE (longer than a segment) took two.
        assert!(message_lengths(&stream[&true]).0[0] > 1200);
        assert_eq!(invite_segments, 2);
        // Every message, in order per direction, as the truth says.
        let want = truth_sip(&truth, 0);
        for by_caller in [true, false] {
            let got: Vec<_> =
                split_sip(&stream[&by_caller]).iter().map(|m| (m.cseq_method.clone(), m.status)).collect();
            let expected: Vec<_> = want.iter().filter(|w| w.2 == by_caller).map(|w| (w.0.to_string(), w.1)).collect();
            assert_eq!(got, expected, "v6 {v6} caller {by_caller}");
            for m in split_sip(&stream[&by_caller]) {
                assert!(m.header("Via", "v").unwrap().starts_with("SIP/2.0/TCP "), "{}", m.start_line);
            }
        }
        // The coalesced 100 is stamped with the 180's time.
        let sip = &truth.calls[0].sip;
        assert_eq!(sip[1].status, Some(100));
        assert_eq!(sip[1].capture_ns, sip[2].capture_ns);
        // Close: FIN each way, then the last ACK.
        let n = segs.len();
        let (f1, f2, last) = (&segs[n - 3], &segs[n - 2], &segs[n - 1]);
        assert!(f1.fin && f1.src == caller && f1.seq == next[&true]);
        assert!(f2.fin && f2.src != caller && f2.ack == next[&true].wrapping_add(1));
        assert!(!last.fin && last.ack_flag && last.ack == f2.seq.wrapping_add(1));
        assert_eq!(truth.packets, read_pcap(&bytes).records.len() as u64);
        assert_eq!(truth.sip_messages, want.len() as u64);
    }
}

#[test]
fn small_segments_split_every_message() {
    let mut c = CallSpec::answered(0, T0, 200);
    c.sip_transport = SipTransport::Tcp(TcpOptions { mss: 97, coalesce_trying: false });
    let (truth, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let segs = tcp_segments(&bytes);
    let caller = (c.caller_ip, c.caller_sip_port);
    let mut streams: HashMap<bool, Vec<u8>> = HashMap::new();
    for s in segs.iter().filter(|s| !s.payload.is_empty()) {
        assert!(s.payload.len() <= 97);
        streams.entry(s.src == caller).or_default().extend_from_slice(&s.payload);
    }
    let n: usize = streams.values().map(|s| split_sip(s).len()).sum();
    assert_eq!(n, truth.calls[0].sip.len());
    // Segments of one message share its capture time.
    let invite_time = truth.calls[0].sip[0].capture_ns;
    assert!(segs.iter().filter(|s| s.ts_ns == invite_time).count() >= 5);
}

/// IP packets of a capture (Ethernet link) reassembled with etherparse's defragmenter:
/// (record index of the last fragment, transport, payload) per datagram.
fn reassembled(bytes: &[u8]) -> Vec<(usize, IpNumber, Vec<u8>)> {
    let cap = read_pcap(bytes);
    let mut pool: IpDefragPool<(), ()> = IpDefragPool::new();
    let mut out = Vec::new();
    for (i, r) in cap.records.iter().enumerate() {
        let p = SlicedPacket::from_ethernet(&r.data).unwrap();
        if let Some(whole) = pool.process_sliced_packet(&p, (), ()).unwrap() {
            out.push((i, whole.ip_number, whole.payload));
        }
    }
    out
}

#[test]
fn oversized_invites_are_fragmented_in_the_chosen_order() {
    for v6 in [false, true] {
        for order in [FragmentOrder::InOrder, FragmentOrder::Reverse, FragmentOrder::Shuffled] {
            let mut c = CallSpec::answered(0, T0, 200);
            c.invite_padding = 4000;
            let c = if v6 { c.into_ipv6() } else { c };
            let mtu = 1280;
            let scenario = Scenario {
                calls: vec![c.clone()],
                fragmentation: Some(Fragmentation { mtu, order }),
                seed: 4,
                ..Scenario::default()
            };
            let (truth, bytes) = generate(&scenario);
            let plain = generate(&Scenario { fragmentation: None, ..scenario.clone() }).1;
            let cap = read_pcap(&bytes);
            let plain_cap = read_pcap(&plain);
            let ctx = format!("v6 {v6} {order:?}");
            // Only the INVITE is fragmented: 4 kB in fragments of at most the MTU.
            let fragments = cap.records.len() - plain_cap.records.len() + 1;
            assert!(fragments >= 4, "{ctx}: {fragments}");
            assert_eq!(truth.packets, cap.records.len() as u64);
            let mut offsets = Vec::new();
            for r in &cap.records[..fragments] {
                assert!(r.data.len() - 14 <= usize::from(mtu), "{ctx}");
                assert_eq!(r.ts_ns, truth.calls[0].start_ns);
                let p = SlicedPacket::from_ethernet(&r.data).unwrap();
                match &p.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        let h = ip.header().to_header();
                        assert!(!h.dont_fragment, "{ctx}: DF clear on fragments");
                        assert_eq!(h.header_checksum, h.calc_header_checksum());
                        offsets.push((h.fragment_offset.byte_offset(), h.more_fragments));
                    }
                    Some(NetSlice::Ipv6(_)) => {
                        let raw = &r.data[14..];
                        assert_eq!(raw[6], 44, "{ctx}: fragment header");
                        assert_eq!(raw[40], 17, "{ctx}: UDP inside");
                        let off = u16::from_be_bytes([raw[42], raw[43]]);
                        offsets.push((off & !7, off & 1 == 1));
                    }
                    other => panic!("{other:?}"),
                }
            }
            let mut sorted = offsets.clone();
            sorted.sort();
            assert!(sorted.iter().rev().skip(1).all(|o| o.1) && !sorted.last().unwrap().1, "{ctx}: MF");
            match order {
                FragmentOrder::InOrder => assert_eq!(offsets, sorted, "{ctx}"),
                FragmentOrder::Reverse => assert_eq!(offsets, sorted.iter().rev().copied().collect::<Vec<_>>()),
                FragmentOrder::Shuffled => assert_ne!(offsets, sorted, "{ctx}"),
            }
            // Reassembled, the INVITE is exactly the unfragmented datagram.
            let whole = reassembled(&bytes);
            assert_eq!(whole.len(), 1, "{ctx}");
            let (at, proto, ref udp) = whole[0];
            assert_eq!(at, fragments - 1);
            assert_eq!(proto, IpNumber::UDP);
            let plain_invite = SlicedPacket::from_ethernet(&plain_cap.records[0].data).unwrap();
            let Some(TransportSlice::Udp(u)) = plain_invite.transport else { panic!() };
            assert_eq!(udp[..], *u.slice(), "{ctx}: same UDP datagram, checksum and all");
            let Payload::Sip(sip) = classify(&udp[8..]) else { panic!() };
            assert_eq!(sip.method.as_deref(), Some("INVITE"));
            assert_eq!(sip.headers.iter().filter(|h| h.0.starts_with("X-Padding-")).count(), 40);
            // Everything after the INVITE is as without fragmentation.
            for (a, b) in cap.records[fragments..].iter().zip(&plain_cap.records[1..]) {
                assert_eq!(a.data, b.data, "{ctx}");
            }
        }
    }
}

#[test]
fn tunnels_carry_the_plain_frames() {
    let mut calls = vec![CallSpec::answered(0, T0, 300), CallSpec::answered(1, T0 + 50 * MS, 300).into_ipv6()];
    calls[1].outcome = Outcome::Busy;
    let plain_scenario = Scenario { calls, seed: 2, ..Scenario::default() };
    let (plain_truth, plain) = generate(&plain_scenario);
    let plain = read_pcap(&plain);
    let tunnels = [
        Tunnel::Gre,
        Tunnel::GreEthernet,
        Tunnel::ErspanII { session: 300 },
        Tunnel::ErspanIII { session: 5 },
        Tunnel::Vxlan { vni: 0x12_3456 },
    ];
    for tunnel in tunnels {
        let scenario = Scenario { tunnel: Some(tunnel), ..plain_scenario.clone() };
        let (truth, bytes) = generate(&scenario);
        assert_eq!(truth.calls, plain_truth.calls, "{tunnel:?}");
        let cap = read_pcap(&bytes);
        assert_eq!(cap.records.len(), plain.records.len());
        let mut last_seq = None;
        let mut last_id = None;
        for (r, p) in cap.records.iter().zip(&plain.records) {
            assert_eq!(r.ts_ns, p.ts_ns);
            let outer = SlicedPacket::from_ethernet(&r.data).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &outer.net else { panic!("outer IPv4") };
            let h = ip.header().to_header();
            assert_eq!((h.source, h.destination), (TUNNEL_SRC.octets(), TUNNEL_DST.octets()));
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            if let Some(prev) = last_id {
                assert_eq!(h.identification, u16::wrapping_add(prev, 1), "outer ids count up");
            }
            last_id = Some(h.identification);
            let ip_payload = ip.payload().payload;
            let inner: &[u8] = match tunnel {
                Tunnel::Vxlan { vni } => {
                    let Some(TransportSlice::Udp(u)) = &outer.transport else { panic!("VXLAN in UDP") };
                    assert_eq!(u.destination_port(), 4789);
                    assert_eq!(u.checksum(), u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap());
                    let v = u.payload();
                    assert_eq!(v[0], 0x08);
                    assert_eq!(u32::from_be_bytes([0, v[4], v[5], v[6]]), vni);
                    &v[8..]
                }
                _ => {
                    assert_eq!(h.protocol, IpNumber::GRE);
                    let flags = u16::from_be_bytes([ip_payload[0], ip_payload[1]]);
                    let proto = u16::from_be_bytes([ip_payload[2], ip_payload[3]]);
                    match tunnel {
                        Tunnel::Gre => {
                            assert_eq!(flags, 0);
                            let want = if p.data[12..14] == [0x08, 0x00] { 0x0800 } else { 0x86dd };
                            assert_eq!(proto, want);
                            &ip_payload[4..]
                        }
                        Tunnel::GreEthernet => {
                            assert_eq!((flags, proto), (0, 0x6558));
                            &ip_payload[4..]
                        }
                        Tunnel::ErspanII { session } | Tunnel::ErspanIII { session } => {
                            assert_eq!(flags, 0x1000, "sequence number present");
                            let seq = u32::from_be_bytes(ip_payload[4..8].try_into().unwrap());
                            if let Some(prev) = last_seq {
                                assert_eq!(seq, prev + 1);
                            }
                            last_seq = Some(seq);
                            let e = &ip_payload[8..];
                            let version = e[0] >> 4;
                            assert_eq!(u16::from_be_bytes([e[2], e[3]]) & 0x3ff, session);
                            if matches!(tunnel, Tunnel::ErspanII { .. }) {
                                assert_eq!((proto, version), (0x88be, 1));
                                &e[8..]
                            } else {
                                assert_eq!((proto, version), (0x22eb, 2));
                                let ts = u32::from_be_bytes(e[4..8].try_into().unwrap());
                                assert_eq!(ts, (r.ts_ns / 100_000) as u32);
                                assert_eq!(u16::from_be_bytes([e[10], e[11]]) >> 10 & 0x1f, 0, "frame type Ethernet");
                                &e[12..]
                            }
                        }
                        Tunnel::Vxlan { .. } => unreachable!(),
                    }
                }
            };
            match tunnel {
                // The IP packet alone.
                Tunnel::Gre => assert_eq!(inner, &p.data[14..], "{tunnel:?}"),
                // The whole Ethernet frame, MAC addresses included.
                _ => assert_eq!(inner, &p.data[..], "{tunnel:?}"),
            }
        }
    }
}

#[test]
fn nat_puts_the_public_address_on_the_wire_only() {
    let mut c = CallSpec::answered(0, T0, 400);
    let public: IpAddr = "203.0.113.9".parse().unwrap();
    c.callee_nat = Some(Nat { public_ip: public, sip_port: 34_000, rtp_port: 35_002 });
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let mut rtp = (0, 0);
    for p in &packets {
        let from_callee = p.udp.src == public;
        assert!(from_callee || p.udp.src == c.caller_ip);
        let (peer, peer_port) = if from_callee { (p.udp.dst, p.udp.dst_port) } else { (p.udp.src, p.udp.src_port) };
        assert_eq!(peer, c.caller_ip);
        let public_port = if from_callee { p.udp.src_port } else { p.udp.dst_port };
        match &p.content {
            Payload::Sip(s) => {
                assert_eq!((public_port, peer_port), (34_000, c.caller_sip_port));
                if s.status == Some(200) && s.cseq_method == "INVITE" {
                    // The SDP still names the private address and port.
                    assert!(s.body.contains(&format!("c=IN IP4 {}\r\n", c.callee_ip)));
                    assert!(s.body.contains(&format!("m=audio {} ", c.callee_rtp_port)));
                }
            }
            Payload::Rtp(_) => {
                assert_eq!((public_port, peer_port), (35_002, c.caller_rtp_port));
                if from_callee {
                    rtp.1 += 1;
                } else {
                    rtp.0 += 1;
                }
            }
        }
    }
    assert_eq!(rtp, (20, 20));
    // The first callee packet precedes the first caller packet (symmetric RTP can learn it).
    let first = packets.iter().find(|p| matches!(p.content, Payload::Rtp(_))).unwrap();
    assert_eq!(first.udp.src, public);
}

fn rtp_of(packets: &[Packet], src: IpAddr) -> Vec<(i64, u16, u16, Rtp)> {
    packets
        .iter()
        .filter_map(|p| match &p.content {
            Payload::Rtp(r) if p.udp.src == src => Some((p.ts_ns, p.udp.src_port, p.udp.dst_port, r.clone())),
            _ => None,
        })
        .collect()
}

fn sips(packets: &[Packet]) -> Vec<(i64, Sip)> {
    packets
        .iter()
        .filter_map(|p| match &p.content {
            Payload::Sip(s) => Some((p.ts_ns, s.clone())),
            _ => None,
        })
        .collect()
}

fn sdp_attr(s: &Sip, prefix: &str) -> String {
    s.body.split("\r\n").find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {}", s.body)).to_string()
}

#[test]
fn hold_resume_and_move_are_reinvites_with_matching_rtp() {
    let mut c = CallSpec::answered(0, T0, 3000);
    c.midcall = vec![
        MidCall::MoveMedia { party: Party::Callee, at_ms: 2200, rtp_port: 31_000 },
        MidCall::Hold { by: Party::Caller, at_ms: 800, resume_ms: Some(1600) },
    ];
    c.outcome = Outcome::Answered { hangup: Hangup::Callee };
    let scenario = Scenario::new(vec![c.clone()]);
    let (truth, bytes) = generate(&scenario);
    let (_, packets) = common::packets(&bytes);
    let a = truth.calls[0].answer_ns.unwrap();
    // SIP: INVITE 100 180 200 ACK, three re-INVITE transactions, BYE 200.
    let s = sips(&packets);
    let got: Vec<(i64, String, Option<u16>)> =
        s.iter().map(|(t, m)| (*t - a, m.cseq_method.clone(), m.status)).collect();
    let reinv = |at: i64| {
        [
            (at * MS, "INVITE".to_string(), None),
            (at * MS + 5 * MS, "INVITE".into(), Some(200)),
            (at * MS + 10 * MS, "ACK".into(), None),
        ]
    };
    assert_eq!(got[5..14], [reinv(800), reinv(1600), reinv(2200)].concat());
    let direction = |m: &Sip| {
        let dirs = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"];
        let found: Vec<&str> = m.body.split("\r\n").filter(|l| dirs.contains(l)).collect();
        assert_eq!(found.len(), 1, "{}", m.body);
        found[0].to_string()
    };
    let dirs: Vec<String> = s[5..14].iter().filter(|m| !m.1.body.is_empty()).map(|m| direction(&m.1)).collect();
    assert_eq!(dirs, ["a=sendonly", "a=recvonly", "a=sendrecv", "a=sendrecv", "a=sendrecv", "a=sendrecv"]);
    // CSeq: the caller's re-INVITEs follow its INVITE; the callee's start its own space; the
    // callee's BYE follows its re-INVITE. Branches are all different.
    let cseq = |m: &Sip| m.header("CSeq", "CSeq").unwrap().split(' ').next().unwrap().parse::<u32>().unwrap();
    let invite_cseq = cseq(&s[0].1);
    assert_eq!(cseq(&s[5].1), invite_cseq + 1);
    assert_eq!(cseq(&s[8].1), invite_cseq + 2);
    assert_eq!(cseq(&s[14].1), cseq(&s[11].1) + 1, "callee BYE after its re-INVITE");
    let branches: std::collections::HashSet<&str> = s
        .iter()
        .filter(|m| m.1.method.is_some() && m.1.method.as_deref() != Some("CANCEL"))
        .map(|m| m.1.header("Via", "v").unwrap().split(";branch=").nth(1).unwrap())
        .collect();
    assert_eq!(branches.len(), 9, "INVITE, ACK, 3 re-INVITEs and their ACKs, BYE: {branches:?}");
    // o= versions grow with each change of a party's SDP.
    assert!(sdp_attr(&s[5].1, "o=") != sdp_attr(&s[0].1, "o="));
    let move_sdp = &s[11].1;
    assert_eq!(move_sdp.start_line.split(' ').nth(1).unwrap(), format!("sip:{}@{}:5060", c.from_user, c.caller_ip));
    assert!(move_sdp.body.contains("m=audio 31000 "));

    // Held callee: nothing between the 200 OKs of hold and resume, no sequence gap, the
    // timestamp follows the time, marker on the first packet after.
    let callee = rtp_of(&packets, c.callee_ip);
    let hold = truth.calls[0].holds[0];
    assert_eq!((hold.by, hold.held), ("caller", "callee"));
    assert_eq!(hold.start_ns, a + 800 * MS);
    assert_eq!(hold.end_ns, Some(a + 1600 * MS));
    let (from, until) = (hold.silent_from_ns.unwrap(), hold.silent_until_ns.unwrap());
    assert_eq!(from, timeline::rtp_nominal_ns(&c, Party::Callee, 40).unwrap(), "first slot after 805 ms");
    assert_eq!(until, timeline::rtp_nominal_ns(&c, Party::Callee, 80).unwrap());
    assert!(callee.iter().all(|p| p.0 < from || p.0 >= until));
    for w in callee.windows(2) {
        assert_eq!(w[1].3.seq, w[0].3.seq.wrapping_add(1), "no sequence gap");
        let dt = (w[1].0 - w[0].0) / 125_000;
        assert_eq!(i64::from(w[1].3.ts.wrapping_sub(w[0].3.ts)), dt, "timestamp follows time");
        assert_eq!(w[1].3.marker, w[1].0 == until);
    }
    assert_eq!(callee.len(), 150 - 40);
    assert_eq!(truth.calls[0].callee.unique_packets, 110);
    // The callee's media moves from the 200 OK of its re-INVITE on, both ways.
    let moved = a + 2205 * MS;
    assert!(callee.iter().all(|p| p.1 == if p.0 >= moved { 31_000 } else { c.callee_rtp_port }));
    let caller = rtp_of(&packets, c.caller_ip);
    assert_eq!(caller.len(), 150, "the holder keeps sending");
    assert!(caller.iter().all(|p| p.2 == if p.0 >= moved { 31_000 } else { c.callee_rtp_port }));
    // Payloads: the tone of the packet's slot.
    for (i, p) in caller.iter().enumerate() {
        assert_eq!(p.3.payload, expected_payload(c.codec, c.caller_tone_hz, 20, i as u32));
    }
}

/// A 2 s call with the caller pressing `#` at packet 60 (3 packets) and `1` at packet 10 (6).
fn call_with_two_digits() -> CallSpec {
    let mut c = CallSpec::answered(0, T0, 2000);
    c.dtmf = vec![
        DtmfDigit { party: Party::Caller, event: 11, at_packet: 60, packets: 3 },
        DtmfDigit { party: Party::Caller, event: 1, at_packet: 10, packets: 6 },
    ];
    c
}

#[test]
fn rfc4733_events_replace_packets_of_the_stream() {
    let c = call_with_two_digits();
    let scenario = Scenario { keep_payloads: true, ..Scenario::new(vec![c.clone()]) };
    let (truth, bytes) = generate(&scenario);
    let (_, packets) = common::packets(&bytes);
    let caller = rtp_of(&packets, c.caller_ip);
    assert_eq!(caller.len(), 100);
    let spp = samples_per_packet(20);
    for (k, p) in caller.iter().enumerate() {
        let k = k as u32;
        let r = &p.3;
        assert_eq!(r.seq, c.caller_seq0.wrapping_add(k as u16));
        let event = [(10u32, 6u32, 1u8), (60, 3, 11)].into_iter().find(|&(at, n, _)| (at..at + n + 2).contains(&k));
        match event {
            Some((at, n, code)) => {
                let i = k - at;
                assert_eq!(r.pt, 101);
                assert_eq!(r.ts, c.caller_ts0.wrapping_add(at * spp), "event timestamp is its start");
                assert_eq!(r.marker, i == 0);
                assert_eq!(r.payload[0], code);
                assert_eq!(r.payload[1] & 0x80 != 0, i + 1 >= n, "E bit on the last 3");
                assert_eq!(u16::from_be_bytes([r.payload[2], r.payload[3]]) as u32, (i + 1).min(n) * spp);
                assert_eq!(r.payload.len(), 4);
            }
            None => {
                assert_eq!(r.pt, 0);
                assert_eq!(r.ts, c.caller_ts0.wrapping_add(k * spp));
                assert_eq!(r.payload, expected_payload(c.codec, c.caller_tone_hz, 20, k));
            }
        }
        assert_eq!(truth.calls[0].caller.payloads.as_ref().unwrap()[k as usize], r.payload);
    }
    let d = &truth.calls[0].dtmf;
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].digit.as_str(), d[0].side, d[0].duration_ms), ("1", "caller", 120));
    assert_eq!((d[1].digit.as_str(), d[1].duration_ms), ("#", 60));
    assert_eq!(d[0].start_ns, Some(caller[10].0));
    assert_eq!(d[1].start_ns, Some(caller[60].0));
    // The callee's stream is untouched.
    assert!(rtp_of(&packets, c.callee_ip).iter().all(|p| p.3.pt == 0));
}

#[test]
fn rfc4733_events_on_their_own_stream_leave_the_voice_numbering_whole() {
    let mut c = call_with_two_digits();
    c.event_streams = vec![EventStream { party: Party::Caller, ssrc: 0x0e0e_0e0e, seq: 65_534 }];
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let caller = rtp_of(&packets, c.caller_ip);
    assert_eq!(caller.len(), 100);
    let voice: Vec<&Rtp> = caller.iter().map(|p| &p.3).filter(|r| r.pt == 0).collect();
    let events: Vec<&Rtp> = caller.iter().map(|p| &p.3).filter(|r| r.pt == 101).collect();
    assert_eq!((voice.len(), events.len()), (100 - 8 - 5, 8 + 5));
    assert!(voice.iter().all(|r| r.ssrc == c.caller_ssrc));
    assert!(events.iter().all(|r| r.ssrc == 0x0e0e_0e0e));
    // Each stream numbered without gaps; the event stream across both digits, wrapping.
    for (i, r) in voice.iter().enumerate() {
        assert_eq!(r.seq, c.caller_seq0.wrapping_add(i as u16), "voice {i}");
    }
    for (i, r) in events.iter().enumerate() {
        assert_eq!(r.seq, 65_534u16.wrapping_add(i as u16), "event {i}");
    }
    // The voice timestamps still count the slots the events took.
    let spp = samples_per_packet(20);
    assert_eq!(voice[10].ts, c.caller_ts0.wrapping_add(18 * spp));
    assert_eq!(events[0].ts, c.caller_ts0.wrapping_add(10 * spp));
}

#[test]
fn sdps_can_declare_other_payload_types_than_the_party_sends() {
    let mut c = CallSpec::answered(0, T0, 1000);
    c.codec = Codec::Pcma;
    c.callee_declares = Some(Declared { codec: Codec::Pcmu, telephone_event: false });
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let s = sips(&packets);
    let offer = &s.iter().find(|(_, m)| m.method.as_deref() == Some("INVITE")).unwrap().1.body;
    let answer = &s.iter().find(|(_, m)| m.status == Some(200)).unwrap().1.body;
    assert!(
        offer.contains("m=audio 10000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    );
    assert!(answer.contains("m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"), "{answer}");
    assert!(rtp_of(&packets, c.callee_ip).iter().all(|p| p.3.pt == 8), "the callee still sends PCMA");
}

#[test]
fn answers_never_acknowledged_and_invites_never_answered() {
    let mut no_ack = CallSpec::answered(0, T0, 1000);
    no_ack.outcome = Outcome::NoAck;
    let mut no_response = CallSpec::answered(1, T0 + MS, 1000);
    no_response.outcome = Outcome::NoResponse;
    let (truth, bytes) = generate(&Scenario::new(vec![no_ack.clone(), no_response]));
    let (_, packets) = common::packets(&bytes);
    assert!(packets.iter().all(|p| matches!(p.content, Payload::Sip(_))), "no media");
    let t = &truth.calls[0];
    let oks: Vec<i64> = t.sip.iter().filter(|m| m.status == Some(200)).map(|m| m.capture_ns).collect();
    let answer = t.answer_ns.unwrap();
    assert_eq!(oks.len(), 11);
    assert_eq!(oks[0], answer);
    assert_eq!(*oks.last().unwrap(), answer + 31_500 * MS, "64*T1 after the first");
    assert!(oks.windows(2).all(|w| w[1] - w[0] <= 4000 * MS), "T2 caps the interval");
    assert!(t.sip.iter().all(|m| m.method != "ACK"));
    assert_eq!((t.expected_state, t.final_code), ("in_call", Some(200)));
    let t = &truth.calls[1];
    assert!(t.sip.iter().all(|m| m.method == "INVITE" && m.status.is_none() && m.from_caller));
    let times: Vec<i64> = t.sip.iter().map(|m| m.capture_ns - t.start_ns).collect();
    assert_eq!(times, [0, 500, 1500, 3500, 7500, 15_500, 31_500].map(|ms| ms * MS));
    assert_eq!((t.expected_state, t.final_code, t.answer_ns), ("setup", None, None));
}

#[test]
fn one_media_address_for_every_callee() {
    let mut calls = callvault_callgen::spread_calls(5, 5, 1000, T0);
    share_media_address(&mut calls, Party::Callee, "10.77.0.2".parse().unwrap(), 6000);
    let (_, bytes) = generate(&Scenario::new(calls.clone()));
    let (_, packets) = common::packets(&bytes);
    let from_callee: Vec<&Packet> = packets
        .iter()
        .filter(|p| matches!(p.content, Payload::Rtp(_)) && p.udp.src == "10.77.0.2".parse::<IpAddr>().unwrap())
        .collect();
    assert_eq!(from_callee.len(), 5 * 50);
    assert!(from_callee.iter().all(|p| p.udp.src_port == 6000));
    let callers: std::collections::HashSet<(IpAddr, u16)> =
        from_callee.iter().map(|p| (p.udp.dst, p.udp.dst_port)).collect();
    assert_eq!(callers.len(), 5, "each call its own caller end");
}

#[test]
fn stream_changes_renumber_and_keep_the_audio() {
    let mut c = CallSpec::answered(0, T0, 2000);
    c.stream_changes = vec![
        StreamChange { party: Party::Callee, at_packet: 40, ssrc: 0x0bad_cafe, seq: 9, ts: 77 },
        StreamChange { party: Party::Caller, at_packet: 70, ssrc: c.caller_ssrc, seq: 30_000, ts: 1 << 30 },
    ];
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let spp = samples_per_packet(20);
    for (party, ip, at, ssrc, seq, ts, seq0, ts0, ssrc0, tone) in [
        (
            Party::Callee,
            c.callee_ip,
            40u32,
            0x0bad_cafe,
            9u16,
            77u32,
            c.callee_seq0,
            c.callee_ts0,
            c.callee_ssrc,
            c.callee_tone_hz,
        ),
        (
            Party::Caller,
            c.caller_ip,
            70,
            c.caller_ssrc,
            30_000,
            1 << 30,
            c.caller_seq0,
            c.caller_ts0,
            c.caller_ssrc,
            c.caller_tone_hz,
        ),
    ] {
        let rtp = rtp_of(&packets, ip);
        assert_eq!(rtp.len(), 100, "{party:?}");
        for (k, p) in rtp.iter().enumerate() {
            let k = k as u32;
            let r = &p.3;
            if k < at {
                assert_eq!((r.ssrc, r.seq, r.ts), (ssrc0, seq0.wrapping_add(k as u16), ts0.wrapping_add(k * spp)));
            } else {
                assert_eq!(
                    (r.ssrc, r.seq, r.ts),
                    (ssrc, seq.wrapping_add((k - at) as u16), ts.wrapping_add((k - at) * spp))
                );
            }
            assert_eq!(r.marker, k == 0 || k == at);
            assert_eq!(r.payload, expected_payload(c.codec, tone, 20, k), "the audio goes on");
        }
    }
}

#[test]
fn silences_send_the_codes_of_zero_and_opus_dtx_sends_nothing_in_them() {
    // G.711: the silent packets carry µ-law zero, the others the tone.
    let mut c = CallSpec::answered(0, T0, 1000);
    c.silences = vec![Silence { party: Party::Caller, at_packet: 10, packets: 5 }];
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let rtp = rtp_of(&packets, c.caller_ip);
    assert_eq!(rtp.len(), 50);
    for (k, p) in rtp.iter().enumerate() {
        let want = if (10..15).contains(&k) {
            vec![0xff; 160]
        } else {
            expected_payload(c.codec, c.caller_tone_hz, 20, k as u32)
        };
        assert_eq!(p.3.payload, want, "packet {k}");
    }
    // Opus with DTX: in the callee's silence the encoder stops; no sequence number is
    // skipped, the timestamps count 48 kHz on through the gap, and the first packet after it
    // has the marker bit.
    let mut c = CallSpec::answered(1, T0, 4000);
    c.codec = Codec::Opus;
    c.opus_dtx = true;
    c.silences = vec![Silence { party: Party::Callee, at_packet: 50, packets: 100 }];
    let (_, bytes) = generate(&Scenario::new(vec![c.clone()]));
    let (_, packets) = common::packets(&bytes);
    let caller = rtp_of(&packets, c.caller_ip);
    assert_eq!(caller.len(), 200, "the caller talks throughout");
    let rtp = rtp_of(&packets, c.callee_ip);
    assert!(rtp.len() < 200 - 60, "{} packets sent", rtp.len());
    let mut jumps = 0;
    for (k, w) in rtp.windows(2).enumerate() {
        let (a, b) = (&w[0].3, &w[1].3);
        assert_eq!(b.pt, OPUS_PT);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "packet {k}");
        let slots = b.ts.wrapping_sub(a.ts) / 960;
        assert_eq!(b.ts.wrapping_sub(a.ts), 960 * slots);
        assert_eq!(b.marker, slots > 1, "packet {}", k + 1);
        if slots > 1 {
            assert!(w[1].0 - w[0].0 >= i64::from(slots - 1) * 20 * MS);
            jumps += 1;
        }
    }
    assert!(jumps >= 2, "libopus sends a frame every 400 ms of DTX: {jumps} gaps");
}

#[test]
fn early_media_plays_ringback_before_the_answer() {
    let mut c = CallSpec::answered(0, T0, 1000);
    c.ring_ms = 2000;
    c.early_media = Some(EarlyMedia { tone_hz: 425.0 });
    let scenario = Scenario::new(vec![c.clone()]);
    let (truth, bytes) = generate(&scenario);
    let (_, packets) = common::packets(&bytes);
    let s = sips(&packets);
    assert_eq!(s[2].1.status, Some(183));
    assert!(s.iter().all(|m| m.1.status != Some(180)));
    assert_eq!(sdp_attr(&s[2].1, "m="), sdp_attr(&s[3].1, "m="), "183 and 200 carry the same SDP");
    assert!(s[2].1.header("Contact", "m").is_some());
    let t183 = s[2].0;
    let a = truth.calls[0].answer_ns.unwrap();
    let callee = rtp_of(&packets, c.callee_ip);
    let early: Vec<_> = callee.iter().filter(|p| p.0 < a).collect();
    let e = truth.calls[0].early_media.unwrap();
    assert_eq!(e.packets as usize, early.len());
    // Grid slots from 183 + 20 ms to 200 OK - 10 ms, on the talk grid (A + 20 ms + k·20 ms).
    assert_eq!(early[0].0, t183 + 20 * MS);
    assert_eq!(early.last().unwrap().0, a - 20 * MS);
    assert_eq!((e.first_capture_ns, e.last_capture_ns), (early[0].0, early.last().unwrap().0));
    assert_eq!(early.len(), 94);
    assert!(early[0].3.marker && callee[early.len()].3.marker);
    for w in callee.windows(2) {
        assert_eq!(w[1].3.seq, w[0].3.seq.wrapping_add(1));
        assert_eq!(i64::from(w[1].3.ts.wrapping_sub(w[0].3.ts)), (w[1].0 - w[0].0) / 125_000);
        assert_eq!(w[1].3.ssrc, c.callee_ssrc);
    }
    assert_eq!(callee[early.len()].3.seq, c.callee_seq0);
    for (i, p) in early.iter().enumerate() {
        assert_eq!(p.3.payload, expected_payload(c.codec, 425.0, 20, i as u32), "ringback tone");
    }
    assert_eq!(truth.calls[0].callee.unique_packets, 94 + 50);
    assert_eq!(truth.calls[0].callee.first_capture_ns, Some(early[0].0));
    // The public helpers give the same bytes.
    let sends: Vec<_> = RtpSchedule::new(&scenario, 0, Party::Callee).collect();
    assert_eq!(sends.len(), callee.len());
    let raw = rtp_packet(&scenario, 0, Party::Callee, &sends[3]);
    assert_eq!(raw[12..], callee[3].3.payload[..]);
    assert_eq!(u16::from_be_bytes([raw[2], raw[3]]), callee[3].3.seq);
}

#[test]
fn invalid_options_are_rejected() {
    let base = CallSpec::answered(0, T0, 2000);
    let bad = |f: &dyn Fn(&mut CallSpec)| {
        let mut c = base.clone();
        f(&mut c);
        Scenario::new(vec![c]).validate().is_err()
    };
    assert!(bad(&|c| c.midcall = vec![MidCall::Hold { by: Party::Caller, at_ms: 5, resume_ms: None }]));
    assert!(bad(&|c| c.midcall = vec![MidCall::Hold { by: Party::Caller, at_ms: 500, resume_ms: Some(400) }]));
    assert!(bad(&|c| c.midcall = vec![MidCall::Hold { by: Party::Caller, at_ms: 1990, resume_ms: None }]));
    assert!(bad(&|c| {
        c.midcall = vec![
            MidCall::Hold { by: Party::Caller, at_ms: 100, resume_ms: Some(900) },
            MidCall::Hold { by: Party::Callee, at_ms: 500, resume_ms: None },
        ]
    }));
    assert!(bad(&|c| c.dtmf = vec![DtmfDigit { party: Party::Caller, event: 1, at_packet: 97, packets: 2 }]));
    assert!(bad(&|c| {
        c.midcall = vec![MidCall::Hold { by: Party::Callee, at_ms: 100, resume_ms: Some(900) }];
        c.impair.caller.loss = vec![20];
    }));
    assert!(!bad(&|c| c.outcome = Outcome::NoAnswer));
    assert!(bad(&|c| {
        c.outcome = Outcome::NoAnswer;
        c.sip_transport = SipTransport::Tcp(TcpOptions::default());
    }));
    assert!(bad(&|c| {
        c.outcome = Outcome::Busy;
        c.early_media = Some(EarlyMedia { tone_hz: 425.0 });
    }));
    assert!(bad(&|c| c.callee_nat = Some(Nat { public_ip: "2001:db8::1".parse().unwrap(), sip_port: 1, rtp_port: 2 })));
    assert!(bad(
        &|c| c.stream_changes = vec![StreamChange { party: Party::Callee, at_packet: 0, ssrc: 1, seq: 1, ts: 1 }]
    ));
    let frag = Scenario {
        fragmentation: Some(Fragmentation { mtu: 100, order: FragmentOrder::InOrder }),
        ..Scenario::new(vec![base.clone()])
    };
    assert!(frag.validate().is_err());
    let vxlan = Scenario { tunnel: Some(Tunnel::Vxlan { vni: 1 << 24 }), ..Scenario::new(vec![base]) };
    assert!(vxlan.validate().is_err());
}
