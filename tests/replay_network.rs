//! End to end on generated captures of real-network situations: SIP over TCP (messages split
//! across segments, several messages in one segment), IP fragmentation of oversized INVITEs
//! (IPv4 and IPv6, fragments out of order), tunnels (GRE, GRE with Ethernet, ERSPAN II and
//! III, VXLAN) and a callee behind a symmetric NAT. Every record and both channels of every
//! recording are checked against the generator's ground truth.

mod common;
mod gen_check;

use callgen::{
    CallSpec, FragmentOrder, Fragmentation, Hangup, Nat, Outcome, Scenario, SipTransport, TcpOptions, Tunnel,
};
use gen_check::{check_all, run};

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const MS: i64 = 1_000_000;

#[test]
fn sip_over_tcp_with_split_and_coalesced_messages() {
    let mut calls = Vec::new();
    for v6 in [false, true] {
        let base = if v6 { 10 } else { 0 };
        // Every message split into segments of at most 200 bytes; the callee hangs up.
        let mut split = CallSpec::answered(base, T0 + i64::from(base) * 10 * MS, 2000);
        split.sip_transport = SipTransport::Tcp(TcpOptions { mss: 200, coalesce_trying: false });
        split.caller_sip_port = 49_152 + base as u16;
        split.outcome = Outcome::Answered { hangup: Hangup::Callee };
        // A 2.5 kB INVITE in two segments, the 100 and the 180 in one.
        let mut coalesced = CallSpec::answered(base + 1, T0 + 50 * MS + i64::from(base) * 10 * MS, 2000);
        coalesced.sip_transport = SipTransport::Tcp(TcpOptions { mss: 1460, coalesce_trying: true });
        coalesced.invite_padding = 2500;
        coalesced.caller_sip_port = 49_153 + base as u16;
        // A rejected call over TCP too.
        let mut busy = CallSpec::answered(base + 2, T0 + 80 * MS + i64::from(base) * 10 * MS, 2000);
        busy.sip_transport = SipTransport::Tcp(TcpOptions { mss: 300, coalesce_trying: true });
        busy.caller_sip_port = 49_154 + base as u16;
        busy.outcome = Outcome::Busy;
        for c in [split, coalesced, busy] {
            calls.push(if v6 { c.into_ipv6() } else { c });
        }
    }
    let scenario = Scenario { calls, seed: 5, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "SIP over TCP");
    for rec in &r.recs {
        assert_eq!(rec.value["sip"]["transport"], "tcp", "{}", rec.value["call_id"]);
    }
}

#[test]
fn fragmented_invites_in_any_order() {
    for order in [FragmentOrder::InOrder, FragmentOrder::Reverse, FragmentOrder::Shuffled] {
        let mut calls = Vec::new();
        for (i, v6) in [(0u32, false), (1, true)] {
            let mut c = CallSpec::answered(i, T0 + i64::from(i) * 30 * MS, 2000);
            c.invite_padding = 3000;
            calls.push(if v6 { c.into_ipv6() } else { c });
        }
        // SIP over TCP with segments larger than the MTU: the segments are fragmented too.
        let mut tcp = CallSpec::answered(2, T0 + 70 * MS, 2000);
        tcp.invite_padding = 3000;
        tcp.sip_transport = SipTransport::Tcp(TcpOptions { mss: 1460, coalesce_trying: false });
        calls.push(tcp.clone());
        let mut tcp6 = CallSpec::answered(3, T0 + 90 * MS, 2000).into_ipv6();
        tcp6.invite_padding = 3000;
        tcp6.sip_transport = tcp.sip_transport;
        calls.push(tcp6);
        let scenario =
            Scenario { calls, fragmentation: Some(Fragmentation { mtu: 1280, order }), seed: 8, ..Scenario::default() };
        let r = run(&scenario, &[]);
        // Several fragments per INVITE (and per large TCP segment).
        assert!(r.truth.packets > r.truth.sip_messages + r.truth.rtp_packets + 4 * 2, "{order:?}");
        check_all(&scenario, &r, &format!("fragments {order:?}"));
    }
}

/// Calls of every kind, in a tunnel or not.
fn tunnel_scenario(tunnel: Option<Tunnel>, fragmentation: Option<Fragmentation>) -> Scenario {
    let mut a = CallSpec::answered(0, T0, 2000);
    a.invite_padding = 2000;
    let mut b = CallSpec::answered(1, T0 + 100 * MS, 2000).into_ipv6();
    b.outcome = Outcome::Answered { hangup: Hangup::Callee };
    let mut c = CallSpec::answered(2, T0 + 200 * MS, 2000);
    c.outcome = Outcome::Cancelled;
    let mut d = CallSpec::answered(3, T0 + 300 * MS, 2000);
    d.sip_transport = SipTransport::Tcp(TcpOptions { mss: 400, coalesce_trying: true });
    Scenario { calls: vec![a, b, c, d], tunnel, fragmentation, seed: 12, ..Scenario::default() }
}

#[test]
fn tunnelled_calls_give_the_same_records_as_plain_ones() {
    let plain_scenario = tunnel_scenario(None, None);
    let plain = run(&plain_scenario, &[]);
    check_all(&plain_scenario, &plain, "plain");
    let cases = [
        (Tunnel::Gre, None),
        (Tunnel::GreEthernet, None),
        (Tunnel::ErspanII { session: 100 }, None),
        (Tunnel::ErspanIII { session: 200 }, None),
        (Tunnel::Vxlan { vni: 5000 }, None),
        // The INVITE fragmented inside the tunnel, fragments last first.
        (Tunnel::ErspanII { session: 7 }, Some(Fragmentation { mtu: 1280, order: FragmentOrder::Reverse })),
        (Tunnel::Vxlan { vni: 1 }, Some(Fragmentation { mtu: 1280, order: FragmentOrder::Shuffled })),
    ];
    for (tunnel, fragmentation) in cases {
        let what = format!("{tunnel:?} {fragmentation:?}");
        let scenario = tunnel_scenario(Some(tunnel), fragmentation);
        let r = run(&scenario, &[]);
        assert_eq!(r.recs.len(), plain.recs.len(), "{what}\n{}", common::text(&r.out));
        for (got, want) in r.recs.iter().zip(&plain.recs) {
            assert_eq!(got.value, want.value, "{what}: the same record as without the tunnel");
            assert_eq!(got.json.file_name(), want.json.file_name(), "{what}");
        }
    }
}

#[test]
fn callee_behind_symmetric_nat_is_recorded_both_ways() {
    let mut calls = Vec::new();
    for (i, public) in [(0u32, "203.0.113.7"), (1, "2001:db8::7")] {
        let mut c = CallSpec::answered(i, T0 + i64::from(i) * 40 * MS, 3000);
        if i == 1 {
            c = c.into_ipv6();
        }
        // The NAT maps the callee's ports to other ones: its SDP (private address and port)
        // says nothing about where its RTP really comes from.
        c.callee_nat = Some(Nat { public_ip: public.parse().unwrap(), sip_port: 40_000 + i as u16, rtp_port: 41_234 });
        c.outcome = Outcome::Answered { hangup: Hangup::Callee };
        calls.push(c);
    }
    let scenario = Scenario { calls, seed: 6, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "NAT");
    for (c, t) in scenario.calls.iter().zip(&r.truth.calls) {
        let rec = &r.record(&t.call_id).value;
        let nat = c.callee_nat.unwrap();
        let public = std::net::SocketAddr::new(nat.public_ip, nat.rtp_port).to_string();
        let streams = rec["streams"].as_array().unwrap();
        let side = |s: &str| streams.iter().find(|x| x["side"] == s).unwrap();
        assert_eq!(side("callee")["src"], public.as_str(), "callee RTP from the NAT");
        assert_eq!(side("caller")["dst"], public.as_str(), "caller RTP to the NAT");
        assert_eq!(
            rec["callee"]["signalling"],
            std::net::SocketAddr::new(nat.public_ip, nat.sip_port).to_string(),
            "callee signalling through the NAT"
        );
        assert_eq!(
            rec["callee"]["media"],
            std::net::SocketAddr::new(c.callee_ip, c.callee_rtp_port).to_string(),
            "the SDP address"
        );
        assert_eq!(side("caller")["packets"], u64::from(t.caller.packets_sent));
    }
}
