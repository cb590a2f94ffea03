//! Generate captures, read them back independently and check them against the spec and the
//! returned truth.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use callvault_callgen::{
    CallSpec, Codec, DirImpair, Hangup, Link, Outcome, Party, RtpSchedule, Scenario, Truth, TsPrecision,
    expected_payload, samples_per_packet, timeline, write_pcap, write_pcap_to,
};
use common::{Packet, Payload, Rtp, Sip};

const T0: i64 = 1_700_000_000_000_000_000;

fn generate(scenario: &Scenario) -> (Truth, Vec<u8>) {
    let mut bytes = Vec::new();
    let truth = write_pcap_to(scenario, &mut bytes).expect("generation succeeds");
    (truth, bytes)
}

/// The SIP messages expected for an outcome: (CSeq method, status, sent by caller).
fn expected_sip(outcome: Outcome) -> Vec<(&'static str, Option<u16>, bool)> {
    let invite = ("INVITE", None, true);
    let resp = |code| ("INVITE", Some(code), false);
    match outcome {
        Outcome::Answered { hangup } => {
            let mut v = vec![invite, resp(100), resp(180), resp(200), ("ACK", None, true)];
            match hangup {
                Hangup::Caller => v.extend([("BYE", None, true), ("BYE", Some(200), false)]),
                Hangup::Callee => v.extend([("BYE", None, false), ("BYE", Some(200), true)]),
                Hangup::None => {}
            }
            v
        }
        Outcome::Busy => vec![invite, resp(100), resp(486), ("ACK", None, true)],
        Outcome::Rejected(code) => vec![invite, resp(100), resp(code), ("ACK", None, true)],
        Outcome::Cancelled => vec![
            invite,
            resp(100),
            resp(180),
            ("CANCEL", None, true),
            ("CANCEL", Some(200), false),
            resp(487),
            ("ACK", None, true),
        ],
        Outcome::NoAnswer => vec![invite, invite, invite, invite, invite, resp(100), resp(180)],
        Outcome::NoResponse => vec![invite; 7],
        Outcome::NoAck => {
            let mut v = vec![invite, resp(100), resp(180)];
            v.extend([resp(200); 11]);
            v
        }
    }
}

fn branch(sip: &Sip) -> &str {
    let via = sip.header("Via", "v").expect("Via");
    via.split(";branch=").nth(1).expect("branch")
}

fn to_tag(sip: &Sip) -> Option<&str> {
    sip.header("To", "t").expect("To").split(";tag=").nth(1)
}

fn sdp_line<'a>(sip: &'a Sip, prefix: &str) -> &'a str {
    sip.body.split("\r\n").find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in SDP: {}", sip.body))
}

/// Checks the SIP dialog of one call in detail.
fn check_dialog(spec: &CallSpec, msgs: &[(i64, Packet, Sip)]) {
    let invite = &msgs[0].2;
    assert_eq!(invite.method.as_deref(), Some("INVITE"));
    assert!(branch(invite).starts_with("z9hG4bK"));
    assert!(to_tag(invite).is_none());
    let from = invite.header("From", "f").unwrap();
    assert!(from.contains(&format!("<sip:{}@", spec.from_user)), "{from}");
    assert!(from.contains(";tag="));
    if let Some(display) = &spec.from_display {
        assert!(from.starts_with(&format!("\"{display}\" <")), "{from}");
    }
    assert_eq!(invite.header("P-Asserted-Identity", "P-Asserted-Identity"), spec.pai.as_deref());
    let family = if spec.caller_ip.is_ipv4() { "IP4" } else { "IP6" };
    assert_eq!(sdp_line(invite, "c="), format!("c=IN {family} {}", spec.caller_ip));
    let pt = spec.codec.payload_type();
    assert_eq!(sdp_line(invite, "m="), format!("m=audio {} RTP/AVP {pt} 101", spec.caller_rtp_port));
    assert_eq!(
        sdp_line(invite, &format!("a=rtpmap:{pt} ")),
        format!("a=rtpmap:{pt} {}/8000", spec.codec.encoding_name())
    );
    assert_eq!(sdp_line(invite, "a=ptime:"), format!("a=ptime:{}", spec.ptime_ms));
    let cseq = invite.header("CSeq", "CSeq").unwrap().to_string();

    for (_, packet, sip) in msgs {
        // Compact forms exactly when asked for.
        let long = ["Via", "From", "To", "Call-ID", "Contact", "Content-Length", "Content-Type"];
        let has_long = sip.headers.iter().any(|(n, _)| long.contains(&n.as_str()));
        assert_eq!(has_long, !spec.compact_headers, "{}", sip.start_line);
        let from_caller = packet.udp.src == spec.caller_ip;
        let (sport, dport) = if from_caller {
            (spec.caller_sip_port, spec.callee_sip_port)
        } else {
            (spec.callee_sip_port, spec.caller_sip_port)
        };
        assert_eq!((packet.udp.src_port, packet.udp.dst_port), (sport, dport));
        match (sip.cseq_method.as_str(), sip.status) {
            ("INVITE" | "CANCEL", _) => {
                assert_eq!(branch(sip), branch(invite), "{}", sip.start_line);
                assert_eq!(sip.header("From", "f").unwrap(), from);
            }
            ("ACK", _) => {
                let after_2xx = msgs.iter().any(|m| m.2.status == Some(200) && m.2.cseq_method == "INVITE");
                assert_eq!(branch(sip) == branch(invite), !after_2xx, "ACK branch");
                assert!(to_tag(sip).is_some());
                assert_eq!(sip.header("CSeq", "CSeq").unwrap().split(' ').next(), cseq.split(' ').next());
            }
            ("BYE", _) => {
                assert_ne!(branch(sip), branch(invite));
                assert!(to_tag(sip).is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        if sip.method.is_none() && sip.cseq_method == "INVITE" {
            assert_eq!(sip.header("CSeq", "CSeq").unwrap(), cseq);
            assert_eq!(to_tag(sip).is_some(), sip.status != Some(100));
        }
        if sip.status == Some(200) && sip.cseq_method == "INVITE" {
            assert_eq!(sdp_line(sip, "c="), format!("c=IN {family} {}", spec.callee_ip));
            assert_eq!(sdp_line(sip, "m="), format!("m=audio {} RTP/AVP {pt} 101", spec.callee_rtp_port));
        }
    }
}

/// Checks a whole capture against its scenario and truth.
fn verify(scenario: &Scenario, truth: &Truth, bytes: &[u8]) {
    let (cap, packets) = common::packets(bytes);
    assert_eq!(cap.linktype, scenario.link.linktype());
    assert_eq!(cap.nano, scenario.ts_precision == TsPrecision::Nano);
    assert_eq!(cap.snaplen, 262_144);
    assert_eq!(packets.len() as u64, truth.packets);
    assert_eq!(bytes.len() as u64, truth.bytes);
    assert!(packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "timestamps go back");
    assert_eq!(packets.first().map(|p| p.ts_ns), truth.first_ns);
    assert_eq!(packets.last().map(|p| p.ts_ns), truth.last_ns);
    assert_eq!(truth.calls.len(), scenario.calls.len());

    let by_call_id: HashMap<&str, usize> =
        scenario.calls.iter().enumerate().map(|(i, c)| (c.call_id.as_str(), i)).collect();
    let mut by_flow: HashMap<(IpAddr, u16, IpAddr, u16), (usize, Party)> = HashMap::new();
    for (i, c) in scenario.calls.iter().enumerate() {
        by_flow.insert((c.caller_ip, c.caller_rtp_port, c.callee_ip, c.callee_rtp_port), (i, Party::Caller));
        by_flow.insert((c.callee_ip, c.callee_rtp_port, c.caller_ip, c.caller_rtp_port), (i, Party::Callee));
    }
    let n = scenario.calls.len();
    let mut sip: Vec<Vec<(i64, Packet, Sip)>> = vec![Vec::new(); n];
    let mut rtp: HashMap<(usize, Party), Vec<(i64, Rtp)>> = HashMap::new();
    let mut ip_ids: HashMap<IpAddr, Vec<u16>> = HashMap::new();
    let (mut sip_count, mut rtp_count) = (0, 0);
    for p in packets {
        if let Some(id) = p.udp.ipv4_id {
            ip_ids.entry(p.udp.src).or_default().push(id);
        }
        match &p.content {
            Payload::Sip(s) => {
                sip_count += 1;
                let i = by_call_id[s.call_id.as_str()];
                sip[i].push((p.ts_ns, p.clone(), s.clone()));
            }
            Payload::Rtp(r) => {
                rtp_count += 1;
                let flow = (p.udp.src, p.udp.src_port, p.udp.dst, p.udp.dst_port);
                let key = by_flow[&flow];
                rtp.entry(key).or_default().push((p.ts_ns, r.clone()));
            }
        }
    }
    assert_eq!(sip_count, truth.sip_messages);
    assert_eq!(rtp_count, truth.rtp_packets);
    // IPv4 identification counts up per sending host (when each host is used by one call).
    for ids in ip_ids.values() {
        assert!(ids.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "IP ids {ids:?}");
    }

    let q = |ns: i64| scenario.ts_precision.quantize(ns);
    for (i, (spec, ct)) in scenario.calls.iter().zip(&truth.calls).enumerate() {
        let msgs = &sip[i];
        // SIP order, directions and times.
        let seen: Vec<_> =
            msgs.iter().map(|(_, p, s)| (s.cseq_method.as_str(), s.status, p.udp.src == spec.caller_ip)).collect();
        assert_eq!(seen, expected_sip(spec.outcome), "call {i} SIP sequence");
        let file_sip: Vec<_> = msgs.iter().zip(&seen).map(|((t, _, _), &(m, s, c))| (*t, m, s, c)).collect();
        let truth_sip: Vec<_> = ct.sip.iter().map(|s| (s.capture_ns, s.method, s.status, s.from_caller)).collect();
        assert_eq!(file_sip, truth_sip, "call {i} SIP truth");
        check_dialog(spec, msgs);

        assert_eq!(ct.call_id, spec.call_id);
        assert_eq!(ct.from_user, spec.from_user);
        assert_eq!(ct.to_user, spec.to_user);
        assert_eq!(ct.start_ns, q(spec.start_ns));
        assert_eq!(ct.start_ns, msgs[0].0);
        let time_of = |pred: &dyn Fn(&Sip) -> bool| msgs.iter().find(|m| pred(&m.2)).map(|m| m.0);
        assert_eq!(ct.answer_ns, time_of(&|s| s.status == Some(200) && s.cseq_method == "INVITE"));
        let end = time_of(&|s| {
            s.method.as_deref() == Some("BYE")
                || s.method.as_deref() == Some("CANCEL")
                || (s.cseq_method == "INVITE" && s.status.is_some_and(|c| c >= 300))
        });
        assert_eq!(ct.end_ns, end);
        let (state, code, hangup) = match spec.outcome {
            Outcome::Answered { hangup: Hangup::Caller } => ("completed", Some(200), Some("caller")),
            Outcome::Answered { hangup: Hangup::Callee } => ("completed", Some(200), Some("callee")),
            Outcome::Answered { hangup: Hangup::None } => ("in_call", Some(200), None),
            Outcome::Busy => ("rejected", Some(486), None),
            Outcome::Rejected(c) => ("rejected", Some(c), None),
            Outcome::Cancelled => ("cancelled", Some(487), None),
            Outcome::NoAnswer => ("ringing", None, None),
            Outcome::NoResponse => ("setup", None, None),
            Outcome::NoAck => ("in_call", Some(200), None),
        };
        assert_eq!((ct.expected_state, ct.final_code, ct.hangup), (state, code, hangup));

        for party in [Party::Caller, Party::Callee] {
            let st = match party {
                Party::Caller => &ct.caller,
                Party::Callee => &ct.callee,
            };
            let (imp, ssrc, seq0, ts0, tone) = match party {
                Party::Caller => {
                    (&spec.impair.caller, spec.caller_ssrc, spec.caller_seq0, spec.caller_ts0, spec.caller_tone_hz)
                }
                Party::Callee => {
                    (&spec.impair.callee, spec.callee_ssrc, spec.callee_seq0, spec.callee_ts0, spec.callee_tone_hz)
                }
            };
            let got = rtp.remove(&(i, party)).unwrap_or_default();
            let answered = matches!(spec.outcome, Outcome::Answered { .. });
            assert_eq!(st.ssrc, ssrc);
            assert_eq!(st.codec, spec.codec);
            assert_eq!(st.packets_sent as usize, got.len(), "call {i} {party:?} count");
            if !answered || imp.silent {
                assert!(got.is_empty());
                assert_eq!(st.unique_packets, 0);
                continue;
            }
            let count = spec.packets_per_direction();
            let spp = samples_per_packet(spec.ptime_ms);
            let mut indexes = Vec::new();
            for (_, r) in &got {
                assert_eq!(r.ssrc, ssrc);
                assert_eq!(r.pt, spec.codec.payload_type());
                let k = u32::from(r.seq.wrapping_sub(seq0));
                assert!(k < count, "seq {} out of stream", r.seq);
                assert_eq!(r.ts, ts0.wrapping_add(k * spp), "timestamp of packet {k}");
                assert_eq!(r.marker, k == 0, "marker of packet {k}");
                let expected = expected_payload(spec.codec, tone, spec.ptime_ms, k);
                assert_eq!(r.payload, expected, "payload of packet {k}");
                if let Some(kept) = &st.payloads {
                    assert_eq!(kept[k as usize], expected);
                }
                indexes.push(k);
            }
            if let Some(kept) = &st.payloads {
                assert_eq!(kept.len() as u32, count);
            }
            // Exact times and order, as the public schedule says.
            let schedule: Vec<_> = RtpSchedule::new(scenario, i, party).map(|s| (q(s.capture_ns), s.index)).collect();
            let file: Vec<_> = got.iter().zip(&indexes).map(|((t, _), &k)| (*t, k)).collect();
            assert_eq!(file, schedule, "call {i} {party:?} schedule");
            // Impairments.
            let unique: BTreeSet<u32> = indexes.iter().copied().collect();
            let lost: BTreeSet<u32> = imp.loss.iter().copied().collect();
            for k in 0..count {
                assert_eq!(unique.contains(&k), !lost.contains(&k), "packet {k} lost?");
            }
            for &k in &imp.duplicate {
                let copies = indexes.iter().filter(|&&x| x == k).count();
                assert_eq!(copies, if lost.contains(&k) { 0 } else { 2 }, "duplicate {k}");
            }
            for &k in &imp.reorder {
                let pos = |x: u32| indexes.iter().position(|&y| y == x);
                if let (Some(a), Some(b)) = (pos(k), pos(k + 1)) {
                    assert!(a > b, "packet {k} should follow {}", k + 1);
                }
            }
            let in_order = indexes.windows(2).filter(|w| w[1] < w[0]).count() as u32;
            assert_eq!(in_order, st.reordered, "reordered count");
            assert_eq!(st.unique_packets, unique.len() as u32);
            assert_eq!(st.lost, count - unique.len() as u32);
            assert_eq!(st.duplicates as usize, got.len() - unique.len());
            assert_eq!(st.first_capture_ns, got.first().map(|g| g.0));
            assert_eq!(st.last_capture_ns, got.last().map(|g| g.0));
            // Media stays between the answer and the BYE.
            if let (Some(a), Some(first)) = (ct.answer_ns, st.first_capture_ns) {
                assert!(first > a);
            }
            if let (Some(e), Some(last)) = (ct.end_ns, st.last_capture_ns) {
                assert!(last < e);
            }
            // Without jitter or reordering, packet k is captured at its nominal time (its
            // copy, if any, 1 ms later).
            if imp.jitter_ms == 0.0 && imp.reorder.is_empty() {
                let mut seen = BTreeSet::new();
                for ((t, _), &k) in got.iter().zip(&indexes) {
                    let mut nominal = timeline::rtp_nominal_ns(spec, party, k).unwrap();
                    if !seen.insert(k) {
                        nominal += timeline::DUPLICATE_DELAY_NS;
                    }
                    assert_eq!(*t, q(nominal), "packet {k} time");
                }
            }
        }
    }
    assert!(rtp.is_empty(), "RTP to unknown flows: {:?}", rtp.keys());
}

fn every_outcome() -> Vec<CallSpec> {
    let outcomes = [
        Outcome::Answered { hangup: Hangup::Caller },
        Outcome::Answered { hangup: Hangup::Callee },
        Outcome::Answered { hangup: Hangup::None },
        Outcome::Busy,
        Outcome::Rejected(603),
        Outcome::Rejected(480),
        Outcome::Cancelled,
        Outcome::NoAnswer,
    ];
    outcomes
        .iter()
        .enumerate()
        .map(|(i, &outcome)| {
            let i = i as u32;
            let mut c = CallSpec::answered(i, T0 + i64::from(i) * 137_000_123, 1_000);
            c.outcome = outcome;
            c.ring_ms = 300 + 250 * i;
            c.codec = if i.is_multiple_of(2) { Codec::Pcmu } else { Codec::Pcma };
            c
        })
        .collect()
}

#[test]
fn every_outcome_round_trips() {
    let scenario = Scenario { calls: every_outcome(), keep_payloads: true, seed: 42, ..Scenario::default() };
    let (truth, bytes) = generate(&scenario);
    verify(&scenario, &truth, &bytes);
    // 3 answered calls x 2 directions x 50 packets.
    assert_eq!(truth.rtp_packets, 300);
    let kept = truth.calls[3].caller.payloads.as_ref().unwrap();
    assert!(kept.is_empty(), "busy call has no media");
}

#[test]
fn timing_follows_the_documented_table() {
    let mut c = CallSpec::answered(0, T0, 1_000);
    c.ring_ms = 2_000;
    let scenario = Scenario { ts_precision: TsPrecision::Nano, ..Scenario::new(vec![c]) };
    let (truth, _) = generate(&scenario);
    let ct = &truth.calls[0];
    let ms = 1_000_000;
    let times: Vec<i64> = ct.sip.iter().map(|s| s.capture_ns - T0).collect();
    assert_eq!(times, [0, 10 * ms, 100 * ms, 2_000 * ms, 2_010 * ms, 3_060 * ms, 3_065 * ms]);
    assert_eq!(ct.answer_ns, Some(T0 + 2_000 * ms));
    assert_eq!(ct.callee.first_capture_ns, Some(T0 + 2_020 * ms));
    assert_eq!(ct.caller.first_capture_ns, Some(T0 + 2_040 * ms));
    assert_eq!(ct.caller.last_capture_ns, Some(T0 + 2_040 * ms + 49 * 20 * ms));
    assert_eq!(ct.end_ns, Some(T0 + 3_060 * ms));

    let mut n = CallSpec::answered(1, T0, 1_000);
    n.outcome = Outcome::NoAnswer;
    let (truth, _) = generate(&Scenario::new(vec![n]));
    let times: Vec<i64> = truth.calls[0].sip.iter().map(|s| s.capture_ns - T0).collect();
    assert_eq!(times, [0, 500 * ms, 1_500 * ms, 3_500 * ms, 7_500 * ms, 7_510 * ms, 7_600 * ms]);
}

#[test]
fn impairments_and_wraparound() {
    let mut c = CallSpec::answered(7, T0, 2_000); // 100 packets each way
    c.caller_seq0 = 65_530;
    c.caller_ts0 = u32::MAX - 500;
    c.callee_seq0 = 65_535;
    c.callee_ts0 = u32::MAX;
    c.impair.caller = DirImpair {
        loss: vec![0, 10, 11, 99],
        duplicate: vec![3, 10, 50, 98],
        reorder: vec![20, 40, 97],
        jitter_ms: 0.0,
        silent: false,
        clock_ppm: 0.0,
        ..DirImpair::default()
    };
    c.impair.callee = DirImpair {
        loss: vec![5],
        duplicate: vec![6, 7],
        reorder: vec![4, 30],
        jitter_ms: 7.5,
        silent: false,
        clock_ppm: 0.0,
        ..DirImpair::default()
    };
    let mut one_way = CallSpec::answered(8, T0 + 5_000_000, 1_000);
    one_way.impair.callee.silent = true;
    one_way.impair.caller.jitter_ms = 100.0; // capped at 9 ms for 20 ms ptime
    let scenario = Scenario { calls: vec![c, one_way], seed: 9, keep_payloads: true, ..Scenario::default() };
    let (truth, bytes) = generate(&scenario);
    verify(&scenario, &truth, &bytes);
    let caller = &truth.calls[0].caller;
    assert_eq!(caller.lost, 4);
    assert_eq!(caller.duplicates, 3, "duplicate of lost packet 10 is not sent");
    assert_eq!(caller.reordered, 3);
    assert_eq!(caller.packets_sent, 96 + 3);
    let callee = &truth.calls[0].callee;
    assert_eq!((callee.lost, callee.duplicates, callee.reordered), (1, 2, 1), "swap 4<->5 void: 5 lost");
    assert_eq!(truth.calls[1].callee.packets_sent, 0);
    assert_eq!(truth.calls[1].callee.first_capture_ns, None);
    assert_eq!(truth.calls[1].caller.packets_sent, 50);
}

#[test]
fn every_link_type_and_family_decodes() {
    let links = [Link::Ethernet, Link::Vlan(42), Link::QinQ(300, 7), Link::Sll, Link::Sll2, Link::RawIp];
    for link in links {
        for v6 in [false, true] {
            let calls = every_outcome().into_iter().map(|c| if v6 { c.into_ipv6() } else { c }).collect();
            let scenario = Scenario { calls, link, seed: 3, ..Scenario::default() };
            let (truth, bytes) = generate(&scenario);
            verify(&scenario, &truth, &bytes);
            let (cap, packets) = common::packets(&bytes);
            let ip_type = if v6 { common::IPV6 } else { common::IPV4 };
            for (p, r) in packets.iter().zip(&cap.records) {
                assert_eq!(p.udp.src.is_ipv6(), v6);
                match link {
                    Link::Ethernet => {
                        assert_eq!(p.udp.outer_ether_type, Some(ip_type));
                        assert!(p.udp.vlans.is_empty());
                    }
                    Link::Vlan(id) => {
                        assert_eq!(p.udp.outer_ether_type, Some(common::VLAN));
                        assert_eq!(p.udp.vlans, [id]);
                    }
                    Link::QinQ(outer, inner) => {
                        assert_eq!(p.udp.outer_ether_type, Some(common::QINQ));
                        assert_eq!(p.udp.vlans, [outer, inner]);
                        assert_eq!(&r.data[16..18], &common::VLAN.to_be_bytes());
                    }
                    Link::Sll => assert_eq!(p.udp.outer_ether_type, Some(ip_type)),
                    Link::Sll2 => assert_eq!(&r.data[..2], &ip_type.to_be_bytes()),
                    Link::RawIp => assert_eq!(r.data[0] >> 4, if v6 { 6 } else { 4 }),
                }
            }
        }
    }
}

#[test]
fn sip_on_other_ports_and_compact_headers() {
    let mut a = CallSpec::answered(0, T0, 400);
    a.caller_sip_port = 5080;
    a.callee_sip_port = 15_060;
    a.compact_headers = true;
    a.pai = Some("\"Alice\" <sip:+15551234@example.com>".into());
    let mut b = CallSpec::answered(1, T0 + 1_000, 400).into_ipv6();
    b.compact_headers = true;
    b.from_display = None;
    b.outcome = Outcome::Cancelled;
    let scenario = Scenario::new(vec![a, b]);
    let (truth, bytes) = generate(&scenario);
    verify(&scenario, &truth, &bytes);
}

#[test]
fn timestamps_are_truncated_to_the_precision() {
    let start = T0 + 123_456_789;
    let mut c = CallSpec::answered(0, start, 200);
    c.impair.caller.jitter_ms = 3.0;
    for precision in [TsPrecision::Micro, TsPrecision::Nano] {
        let scenario = Scenario { ts_precision: precision, ..Scenario::new(vec![c.clone()]) };
        let (truth, bytes) = generate(&scenario);
        verify(&scenario, &truth, &bytes);
        let expected = match precision {
            TsPrecision::Micro => start - 789,
            TsPrecision::Nano => start,
        };
        assert_eq!(truth.calls[0].start_ns, expected);
        assert_eq!(truth.first_ns, Some(expected));
    }
}

#[test]
fn output_is_deterministic_and_seeded() {
    let mut calls = every_outcome();
    for c in &mut calls {
        c.impair.caller.jitter_ms = 5.0;
    }
    let s1 = Scenario { calls, seed: 1, ..Scenario::default() };
    let (t1, b1) = generate(&s1);
    let (t2, b2) = generate(&s1);
    assert_eq!(b1, b2);
    assert_eq!(t1, t2);
    let s2 = Scenario { seed: 2, ..s1.clone() };
    let (t3, b3) = generate(&s2);
    assert_ne!(b1, b3);
    assert_eq!(t1.packets, t3.packets);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pcap");
    let t4 = write_pcap(&s1, &path).unwrap();
    assert_eq!(t4, t1);
    assert_eq!(std::fs::read(&path).unwrap(), b1);
}

#[test]
fn many_concurrent_calls_stream_in_order() {
    let calls = callvault_callgen::spread_calls(300, 300, 3_000, T0);
    let scenario = Scenario { calls, link: Link::Vlan(10), seed: 5, ..Scenario::default() };
    let (truth, bytes) = generate(&scenario);
    verify(&scenario, &truth, &bytes);
    assert_eq!(truth.rtp_packets, 300 * 2 * 150);
    assert_eq!(truth.sip_messages, 300 * 7);
}

#[test]
fn invalid_scenarios_are_input_errors() {
    let mut c = CallSpec::answered(0, T0, 1_000);
    c.impair.caller.reorder = vec![49];
    let err = write_pcap_to(&Scenario::new(vec![c]), Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("reorder index 49"), "{err}");
}

#[test]
fn empty_scenario_is_just_a_header() {
    let (truth, bytes) = generate(&Scenario::default());
    assert_eq!(bytes.len(), 24);
    assert_eq!((truth.packets, truth.first_ns), (0, None));
}
