//! End to end: every packet in the right call when calls share a media address. Many concurrent
//! calls whose callees all answer with one address (a media server, an SBC, sipp's echo UAS),
//! and separately whose callers all offer one (calls coming in through one SBC port): each
//! call's record must list exactly its own streams and both channels must be its own audio,
//! sample by sample. Where the two ends of a packet cannot say which call it belongs to, it is
//! counted and named in the records of the calls that used the address, and mixed into none.

mod common;
mod gen_check;

use std::net::IpAddr;

use callgen::{CallSpec, Codec, Hangup, Nat, Outcome, Party, Scenario, share_media_address};
use gen_check::{assert_no_stream_in_two_records, check_all, record_streams, run};

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z

/// `n` calls of 3 s, about `n / 2` in progress at once, both codecs, either side hanging up.
fn concurrent_calls(n: u32) -> Vec<CallSpec> {
    let mut calls = callgen::spread_calls(n, n / 2, 3000, T0);
    for (i, c) in calls.iter_mut().enumerate() {
        if i % 3 == 1 {
            c.codec = Codec::Pcma;
        }
        if i % 2 == 1 {
            c.outcome = Outcome::Answered { hangup: Hangup::Callee };
        }
    }
    calls
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `n` concurrent calls whose `party` all use `ip`:6000, checked call by call.
fn sharing(n: u32, party: Party, ip: &str, v6: bool, seed: u64) {
    let mut calls = concurrent_calls(n);
    share_media_address(&mut calls, party, ip.parse().unwrap(), 6000);
    if v6 {
        calls = calls.into_iter().map(CallSpec::into_ipv6).collect();
    }
    let scenario = Scenario { calls, seed, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, &format!("{n} calls whose {} use {ip}:6000 (IPv6: {v6})", party.name()));
}

#[test]
fn callees_answering_with_one_media_address_keep_their_own_calls() {
    sharing(40, Party::Callee, "10.77.0.2", false, 16);
}

#[test]
fn callers_offering_one_media_address_keep_their_own_calls() {
    sharing(40, Party::Caller, "10.77.0.1", false, 17);
}

#[test]
fn shared_addresses_over_ipv6() {
    sharing(12, Party::Callee, "10.77.0.2", true, 18);
}

/// Callers behind one SBC address, callees behind one NAT that rewrites their media ports: a
/// callee's packet to the SBC comes from a port no SDP names, from the host every callee
/// signals from. Once two of these calls are answered, nothing tells their callees apart.
#[test]
fn packets_no_end_can_attribute_are_counted_and_in_no_recording() {
    let mut calls = concurrent_calls(4);
    share_media_address(&mut calls, Party::Caller, ip("10.77.0.1"), 6000);
    for (i, c) in calls.iter_mut().enumerate() {
        c.start_ns = T0 + i as i64 * 100_000_000;
        c.callee_nat =
            Some(Nat { public_ip: ip("203.0.113.7"), sip_port: 40_000 + i as u16, rtp_port: 41_000 + i as u16 });
    }
    let scenario = Scenario { calls, seed: 19, ..Scenario::default() };
    let r = run(&scenario, &[]);
    assert_eq!(r.recs.len(), 4, "{}", common::text(&r.out));
    assert_no_stream_in_two_records(&r, "NAT behind an SBC");
    let summary = String::from_utf8_lossy(&r.out.stdout);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let rec = &r.record(&t.call_id).value;
        if i == 0 {
            // The first callee starts its media while it is the only one answered: its host
            // says whose it is, and the call is recorded whole; its record notes what went
            // unattributed at its address.
            gen_check::check_call(&format!("call {i}"), t, rec);
            assert_eq!(record_streams(rec), gen_check::expected_streams(&scenario, i), "call {i}");
            gen_check::check_audio(&format!("call {i}"), &scenario, i, r.record(&t.call_id));
            let notes = rec["notes"].to_string();
            assert!(notes.contains("this call's own media to it was recognised and recorded"), "{notes}");
            continue;
        }
        // The others: no stream, no audio, and the record says why.
        assert!(rec["streams"].as_array().unwrap().is_empty(), "call {i}: {}", rec["streams"]);
        assert!(rec["audio"].is_null(), "call {i}: nothing mixed");
        assert_eq!(rec["capture_complete"], false, "call {i}");
        let reasons = rec["incomplete_reasons"].to_string();
        assert!(reasons.contains("sent to 10.77.0.1:6000") && reasons.contains("could not be told apart"), "{reasons}");
    }
    // 3 calls' callee media (150 packets each) went to no call; the summary says so.
    assert!(summary.contains("warning: 450 media packets to addresses several calls use"), "{summary}");
}

/// The 200 OK captured late (a mirror of several switch ports, SIP on another interface than
/// the media): the caller's first packets come before the SDP that says where the callee
/// receives them, and before the callee's own packets (which would show its address). The
/// callee is silent in half of the calls (one-way audio) and its packets up to the 200 OK are
/// lost in the others. Each call is still recorded whole, sample by sample, and the summary
/// says how many packets waited for their SDP.
#[test]
fn media_captured_before_the_sdp_announcing_it_is_recorded_whole() {
    let mut calls = concurrent_calls(12);
    let lates = [45, 110, 250, 410];
    for (i, c) in calls.iter_mut().enumerate() {
        c.answer_seen_late_ms = lates[i % lates.len()];
        if i % 2 == 0 {
            c.impair.callee.silent = true;
        } else {
            // The callee's packet k is captured 20 + 20k ms after the answer.
            c.impair.callee.loss = (0..=c.answer_seen_late_ms / 20).collect();
        }
    }
    let scenario = Scenario { calls, seed: 20, ..Scenario::default() };
    let metrics = tempfile::NamedTempFile::new().unwrap();
    let r = run(&scenario, &["--metrics-out", metrics.path().to_str().unwrap()]);
    check_all(&scenario, &r, "200 OK seen late");
    // The caller's packet k is captured 40 + 20k ms after the answer: before a 200 OK seen
    // `late` ms after it come ceil((late - 40) / 20) of them (no packet at exactly `late`).
    let before: u32 = scenario.calls.iter().map(|c| (c.answer_seen_late_ms - 40).div_ceil(20)).sum();
    let summary = String::from_utf8_lossy(&r.out.stdout);
    assert!(
        summary.contains(&format!(
            "{before} media packets came before the SDP or the other party's first packet showed their address"
        )),
        "{before} expected: {summary}"
    );
    let scraped = std::fs::read_to_string(metrics.path()).unwrap();
    let exported = format!("callvault_capture_media_before_sdp_packets_total {before}\n");
    assert!(scraped.contains(&exported), "{exported} expected: {scraped}");
    assert!(scraped.contains("callvault_capture_shed_total{limit=\"max_held_media\"} 0\n"), "{scraped}");
}
