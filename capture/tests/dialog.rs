//! Dialog tracking driven by timestamped frames: every call outcome, timers in capture time,
//! limits, and RTP attribution.

use std::net::SocketAddr;

use callvault_capture::events::{
    AmbiguousMedia, CallEvent, CallInfo, CallState, Challenge, EndReason, MediaSecurity, Side, VecSink,
};
use callvault_capture::limits::{Limits, Timeouts};
use callvault_capture::{Engine, EngineConfig, LinkType, Timestamp};
use etherparse::PacketBuilder;

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000 * S;

fn frame(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let src: SocketAddr = src.parse().unwrap();
    let dst: SocketAddr = dst.parse().unwrap();
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else { panic!("v4 only here") };
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(s.ip().octets(), d.ip().octets(), 64)
        .udp(s.port(), d.port())
        .write(&mut out, payload)
        .unwrap();
    out
}

const CALLER: &str = "10.0.0.1:5060";
const CALLEE: &str = "10.0.0.2:5060";

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// A SIP message with the usual headers; `to_tag` empty for none, `body` empty for none.
fn sip(start: &str, call_id: &str, cseq: &str, to_tag: &str, body: &str) -> Vec<u8> {
    let to = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
    let ct = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>{to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// BYE from the callee: From/To swapped.
fn bye_from_callee(call_id: &str) -> Vec<u8> {
    format!(
        "BYE sip:alice@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK9\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: \"Alice\" <sip:alice@example.com>;tag=a1\r\nCall-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

struct Harness {
    engine: Engine,
    sink: VecSink,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(EngineConfig::default())
    }
    fn with(cfg: EngineConfig) -> Harness {
        Harness { engine: Engine::new(cfg), sink: VecSink::default() }
    }
    fn at(&mut self, t: i64, src: &str, dst: &str, payload: &[u8]) {
        let f = frame(src, dst, payload);
        self.engine.handle_frame(LinkType::Ethernet, Timestamp(T0 + t), &f, &mut self.sink);
    }
    fn advance(&mut self, t: i64) {
        self.engine.advance(Timestamp(T0 + t), &mut self.sink);
    }
    fn ended(&self) -> Vec<&CallInfo> {
        self.sink
            .calls
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended { info, .. } => Some(&**info),
                _ => None,
            })
            .collect()
    }
    /// The one call that is still open at `before` and ended by `after`.
    fn ends_between(&mut self, before: i64, after: i64) -> CallInfo {
        self.advance(before);
        assert!(self.ended().is_empty(), "ended before {before} ns");
        self.advance(after);
        let ended = self.ended();
        assert_eq!(ended.len(), 1, "one call ended by {after} ns");
        ended[0].clone()
    }
    /// INVITE of call `id` at `t` offering `offer`, 200 OK (To-tag `tag`) 50 ms later answering
    /// `answer`; no ACK.
    fn offer_answer(&mut self, t: i64, id: &str, tag: &str, offer: (&str, u16), answer: (&str, u16)) {
        self.at(t, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp(offer.0, offer.1)));
        let ok = sip("SIP/2.0 200 OK", id, "1 INVITE", tag, &sdp(answer.0, answer.1));
        self.at(t + 50 * MS, CALLEE, CALLER, &ok);
    }
    /// Sets up an answered call "c1" at t=0..100 ms with media 10.0.0.1:4000 / 10.0.0.2:5000.
    fn answered(&mut self, id: &str) {
        self.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
        self.at(10 * MS, CALLEE, CALLER, &sip("SIP/2.0 100 Trying", id, "1 INVITE", "", ""));
        self.at(20 * MS, CALLEE, CALLER, &sip("SIP/2.0 180 Ringing", id, "1 INVITE", "b1", ""));
        self.at(100 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
        self.at(110 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "b1", ""));
    }
}

#[test]
fn answered_call_hung_up_by_callee() {
    let mut h = Harness::new();
    h.answered("c1");
    for k in 0..50u16 {
        let t = 150 * MS + i64::from(k) * 20 * MS;
        h.at(t, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(k, u32::from(k) * 160, 0xaaaa));
        h.at(t + MS, "10.0.0.2:5000", "10.0.0.1:4000", &rtp(k, u32::from(k) * 160, 0xbbbb));
    }
    h.at(2 * S, CALLEE, CALLER, &bye_from_callee("c1"));
    h.at(2 * S + 10 * MS, CALLER, CALLEE, &sip("SIP/2.0 200 OK", "c1", "1 BYE", "b1", ""));
    assert!(h.ended().is_empty(), "linger for trailing RTP");
    h.at(2 * S + 500 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(50, 50 * 160, 0xaaaa));
    h.advance(5 * S);
    let ended = h.ended();
    assert_eq!(ended.len(), 1);
    let c = ended[0];
    assert_eq!(c.call_id, "c1");
    assert_eq!(c.state, CallState::Completed);
    assert_eq!(c.end_reason, EndReason::Bye);
    assert_eq!(c.ended_by, Some(Side::Callee));
    assert_eq!(c.final_code, Some(200));
    assert_eq!(c.start, Timestamp(T0));
    assert_eq!(c.ringing, Some(Timestamp(T0 + 20 * MS)));
    assert_eq!(c.answer, Some(Timestamp(T0 + 100 * MS)));
    assert_eq!(c.end, Timestamp(T0 + 2 * S));
    assert_eq!(c.from.user.as_deref(), Some("alice"));
    assert_eq!(c.from.display.as_deref(), Some("Alice"));
    assert_eq!(c.to.user.as_deref(), Some("bob"));
    assert_eq!(c.caller_media, Some("10.0.0.1:4000".parse().unwrap()));
    assert_eq!(c.callee_media, Some("10.0.0.2:5000".parse().unwrap()));
    assert_eq!(c.caller_signalling, CALLER.parse().unwrap());
    assert_eq!(c.sip_messages, 7);
    let caller_rtp = h.sink.rtp.iter().filter(|(m, _)| m.side == Side::Caller).count();
    let callee_rtp = h.sink.rtp.iter().filter(|(m, _)| m.side == Side::Callee).count();
    assert_eq!((caller_rtp, callee_rtp), (51, 50));
    assert!(h.sink.rtp.iter().all(|(m, p)| p.len() == 160 && (m.side == Side::Caller) == (m.ssrc == 0xaaaa)));
    // Media announcements: one per side, the callee's says RTP to 10.0.0.2:5000 is the caller's.
    let media: Vec<_> = h
        .sink
        .calls
        .iter()
        .filter_map(|e| if let CallEvent::Media { media, .. } = e { Some(media) } else { None })
        .collect();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].owner, Side::Caller);
    assert_eq!(media[1].owner, Side::Callee);
    assert_eq!(h.engine.stats().rtp_packets, 101);
    assert_eq!(h.engine.open_calls(), 0);
}

#[test]
fn cancelled_before_answer() {
    let mut h = Harness::new();
    let id = "c2";
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    h.at(20 * MS, CALLEE, CALLER, &sip("SIP/2.0 180 Ringing", id, "1 INVITE", "b1", ""));
    h.at(3 * S, CALLER, CALLEE, &sip("CANCEL sip:bob@10.0.0.2 SIP/2.0", id, "1 CANCEL", "", ""));
    h.at(3 * S + 5 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 CANCEL", "b1", ""));
    h.at(3 * S + 6 * MS, CALLEE, CALLER, &sip("SIP/2.0 487 Request Terminated", id, "1 INVITE", "b1", ""));
    h.at(3 * S + 7 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "b1", ""));
    h.advance(10 * S);
    let c = h.ended()[0];
    assert_eq!(c.state, CallState::Cancelled);
    assert_eq!(c.end_reason, EndReason::Cancel);
    assert_eq!(c.ended_by, Some(Side::Caller));
    assert_eq!(c.final_code, Some(487));
    assert_eq!(c.answer, None);
    assert_eq!(c.end, Timestamp(T0 + 3 * S));
}

#[test]
fn busy_is_rejected_with_its_code() {
    let mut h = Harness::new();
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c3", "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    h.at(50 * MS, CALLEE, CALLER, &sip("SIP/2.0 486 Busy Here", "c3", "1 INVITE", "b1", ""));
    h.at(60 * MS, CALLEE, CALLER, &sip("SIP/2.0 486 Busy Here", "c3", "1 INVITE", "b1", "")); // retransmission
    h.at(70 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", "c3", "1 ACK", "b1", ""));
    h.advance(3 * S);
    let c = h.ended()[0];
    assert_eq!(c.state, CallState::Rejected);
    assert_eq!(c.final_code, Some(486));
    assert_eq!(c.end, Timestamp(T0 + 50 * MS));
    assert_eq!(h.engine.stats().calls_started, 1);
}

#[test]
fn auth_challenge_then_answer_is_one_answered_call() {
    let mut h = Harness::new();
    let id = "c4";
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    h.at(10 * MS, CALLEE, CALLER, &sip("SIP/2.0 407 Proxy Authentication Required", id, "1 INVITE", "x", ""));
    h.at(20 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "x", ""));
    h.at(30 * MS, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "2 INVITE", "", &sdp("10.0.0.1", 4000)));
    h.at(5 * S, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "2 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    h.at(5 * S + 100 * MS, "10.0.0.2:5000", "10.0.0.1:4000", &rtp(1, 160, 7));
    h.advance(40 * S);
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let c = h.ended()[0];
    assert_eq!(c.state, CallState::InCall);
    assert_eq!(c.final_code, Some(200));
    assert_eq!(c.invites, 2);
    assert_eq!(c.end_reason, EndReason::MediaTimeout, "RTP, then 35 s without RTP or SIP");
    assert_eq!(c.end, Timestamp(T0 + 5 * S + 100 * MS));
}

#[test]
fn an_answered_call_without_rtp_waits_for_its_bye() {
    // The media is not on the mirrored port (or the capture is SIP only): the call lasts as
    // long as its signalling, not 30 s.
    let mut h = Harness::new();
    h.answered("sip-only");
    h.advance(3600 * S);
    assert!(h.ended().is_empty(), "an hour without RTP is not a media timeout");
    h.at(3600 * S + MS, CALLEE, CALLER, &bye_from_callee("sip-only"));
    h.advance(3610 * S);
    let c = h.ended()[0];
    assert_eq!((c.state, c.end_reason), (CallState::Completed, EndReason::Bye));
}

#[test]
fn unanswered_challenge_becomes_a_rejection() {
    let mut h = Harness::new();
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c5", "1 INVITE", "", ""));
    h.at(10 * MS, CALLEE, CALLER, &sip("SIP/2.0 401 Unauthorized", "c5", "1 INVITE", "x", ""));
    h.advance(60 * S);
    assert!(h.ended().is_empty(), "still waiting for the authenticated INVITE");
    h.advance(301 * S);
    let c = h.ended()[0];
    assert_eq!(c.state, CallState::Rejected);
    assert_eq!(c.final_code, Some(401));
    assert_eq!(c.end, Timestamp(T0 + 10 * MS), "ended by the challenge");
    assert_eq!(c.challenges, vec![Challenge { code: 401, time: Timestamp(T0 + 10 * MS), retried: None }]);
}

#[test]
fn an_invite_re_sent_long_after_its_challenge_continues_the_same_call() {
    for retry in [17 * S, 32 * S, 51 * S, 290 * S] {
        let mut h = Harness::new();
        let id = "late-auth";
        h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
        h.at(MS, CALLEE, CALLER, &sip("SIP/2.0 407 Proxy Authentication Required", id, "1 INVITE", "x", ""));
        h.at(2 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "x", ""));
        h.at(
            retry,
            CALLER,
            CALLEE,
            &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "2 INVITE", "", &sdp("10.0.0.1", 4000)),
        );
        h.at(retry + S, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "2 INVITE", "b1", &sdp("10.0.0.2", 5000)));
        h.at(retry + 2 * S, CALLER, CALLEE, &sip("BYE sip:bob@10.0.0.2 SIP/2.0", id, "3 BYE", "b1", ""));
        h.advance(retry + 10 * S);
        h.engine.finish(EndReason::EndOfInput, &mut h.sink);
        let ended = h.ended();
        assert_eq!(ended.len(), 1, "one call after a retry {} s late", retry / S);
        let c = ended[0];
        assert_eq!((c.state, c.end_reason, c.final_code), (CallState::Completed, EndReason::Bye, Some(200)));
        assert_eq!(c.start, Timestamp(T0));
        assert_eq!(c.invites, 2);
        assert_eq!(
            c.challenges,
            vec![Challenge { code: 407, time: Timestamp(T0 + MS), retried: Some(Timestamp(T0 + retry)) }]
        );
    }
}

#[test]
fn open_calls_end_at_end_of_input_with_their_state() {
    let mut h = Harness::new();
    h.answered("c6");
    h.at(200 * MS, CALLER, CALLEE, &sip("INVITE sip:carol@10.0.0.3 SIP/2.0", "c7", "1 INVITE", "", ""));
    h.at(250 * MS, CALLEE, CALLER, &sip("SIP/2.0 183 Session Progress", "c7", "1 INVITE", "z", ""));
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let ended = h.ended();
    assert_eq!(ended.len(), 2);
    let c6 = ended.iter().find(|c| c.call_id == "c6").unwrap();
    assert_eq!((c6.state, c6.end_reason), (CallState::InCall, EndReason::EndOfInput));
    let c7 = ended.iter().find(|c| c.call_id == "c7").unwrap();
    assert_eq!((c7.state, c7.end_reason), (CallState::Ringing, EndReason::EndOfInput));
    assert_eq!(c7.end, Timestamp(T0 + 250 * MS));
}

#[test]
fn setup_timeout_in_capture_time() {
    let cfg = EngineConfig { timeouts: Timeouts { setup: 60 * S, ..Timeouts::default() }, ..EngineConfig::default() };
    let mut h = Harness::with(cfg);
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c8", "1 INVITE", "", ""));
    h.at(10 * MS, CALLEE, CALLER, &sip("SIP/2.0 100 Trying", "c8", "1 INVITE", "", ""));
    h.advance(59 * S);
    assert!(h.ended().is_empty());
    h.advance(61 * S);
    let c = h.ended()[0];
    assert_eq!((c.state, c.end_reason), (CallState::Setup, EndReason::SetupTimeout));
}

#[test]
fn call_limit_sheds_new_calls_and_counts_them() {
    let cfg = EngineConfig { limits: Limits { max_calls: 2, ..Limits::default() }, ..EngineConfig::default() };
    let mut h = Harness::with(cfg);
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        h.at(i as i64 * MS, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", ""));
    }
    assert_eq!(h.engine.open_calls(), 2);
    assert_eq!(h.engine.stats().calls_shed, 1);
    assert_eq!(h.engine.stats().calls_started, 2);
}

#[test]
fn compact_headers_on_any_port() {
    let mut h = Harness::new();
    let body = sdp("10.0.0.1", 4000);
    let invite = format!(
        "INVITE sip:bob@10.0.0.2:5099 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1:5099;branch=z9hG4bKx\r\nf: <sip:alice@x>;tag=t1\r\nt: <sip:bob@x>\r\ni: compact-1\r\nCSeq: 1 INVITE\r\nc: application/sdp\r\nl: {}\r\n\r\n{body}",
        body.len()
    );
    h.at(0, "10.0.0.1:5099", "10.0.0.2:5099", invite.as_bytes());
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let c = h.ended()[0];
    assert_eq!(c.call_id, "compact-1");
    assert_eq!(c.caller_media, Some("10.0.0.1:4000".parse().unwrap()));
}

/// Call refs by Call-ID.
fn call_ref(h: &Harness, id: &str) -> callvault_capture::CallRef {
    h.sink
        .calls
        .iter()
        .find_map(|e| match e {
            CallEvent::Started { call, info } if info.call_id == id => Some(*call),
            _ => None,
        })
        .unwrap()
}

#[test]
fn calls_sharing_a_callee_media_address_are_told_apart_by_the_caller_end() {
    let mut h = Harness::new();
    h.answered("old");
    // "new" gets the same callee address (a media server) while "old" is still up.
    h.offer_answer(S, "new", "b2", ("10.0.0.9", 4100), ("10.0.0.2", 5000));
    let (old, new) = (call_ref(&h, "old"), call_ref(&h, "new"));
    h.at(S + 100 * MS, "10.0.0.9:4100", "10.0.0.2:5000", &rtp(1, 160, 0xcccc));
    h.at(S + 101 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(1, 160, 0xaaaa));
    h.at(S + 102 * MS, "10.0.0.2:5000", "10.0.0.9:4100", &rtp(1, 160, 0xdddd));
    h.at(S + 103 * MS, "10.0.0.2:5000", "10.0.0.1:4000", &rtp(1, 160, 0xbbbb));
    let got: Vec<_> = h.sink.rtp.iter().map(|(m, _)| (m.ssrc, m.call, m.side)).collect();
    assert_eq!(
        got,
        vec![
            (0xcccc, new, Side::Caller),
            (0xaaaa, old, Side::Caller),
            (0xdddd, new, Side::Callee),
            (0xbbbb, old, Side::Callee)
        ]
    );
    assert_eq!(h.engine.stats().media_reassigned, 0, "nothing was taken from anyone");
    // Ending "old" leaves "new" its claim on the shared address.
    h.at(2 * S, CALLEE, CALLER, &bye_from_callee("old"));
    h.advance(5 * S);
    h.at(5 * S + MS, "10.0.0.9:4100", "10.0.0.2:5000", &rtp(2, 320, 0xcccc));
    assert_eq!(h.sink.rtp.last().unwrap().0.call, new);
}

#[test]
fn a_later_call_announcing_the_same_pair_of_addresses_takes_its_flows() {
    let mut h = Harness::new();
    h.answered("old");
    h.at(200 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(1, 160, 0xaaaa));
    // The same two endpoints, the same two addresses: the old call is over for them.
    h.offer_answer(S, "new", "b2", ("10.0.0.1", 4000), ("10.0.0.2", 5000));
    h.at(S + 100 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(2, 320, 0xaaaa));
    let new = call_ref(&h, "new");
    assert_eq!(h.sink.rtp.last().unwrap().0.call, new);
    assert_eq!(h.engine.stats().media_reassigned, 1, "the flow the old call had");
}

#[test]
fn media_no_source_can_tell_apart_is_counted_and_in_no_call() {
    let mut h = Harness::new();
    // Two calls whose callers both answer at 10.0.0.2:5000 and whose callers are unknown hosts.
    for (id, caller) in [("x", "10.0.0.7"), ("y", "10.0.0.8")] {
        h.offer_answer(0, id, "b1", (caller, 4000), ("10.0.0.2", 5000));
        h.at(60 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "b1", ""));
    }
    // RTP to the shared address from a host neither call announced: recorded in neither.
    for k in 0..5u16 {
        h.at(100 * MS + i64::from(k) * 20 * MS, "198.51.100.1:7000", "10.0.0.2:5000", &rtp(k, 160, 0xeeee));
    }
    assert!(h.sink.rtp.is_empty());
    assert_eq!(h.engine.stats().media_ambiguous, 5);
    // Each caller's own packets are still theirs.
    h.at(300 * MS, "10.0.0.7:4000", "10.0.0.2:5000", &rtp(1, 160, 0x7777));
    assert_eq!(h.sink.rtp.last().unwrap().0.call, call_ref(&h, "x"));
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    for c in h.ended() {
        let own_flow = c.call_id == "x";
        let want = AmbiguousMedia { addr: "10.0.0.2:5000".parse().unwrap(), packets: 5, own_flow };
        assert_eq!(c.ambiguous_media, vec![want], "{}", c.call_id);
    }
}

#[test]
fn an_answered_call_without_rtp_times_out_when_media_is_on_the_capture() {
    let mut h = Harness::new();
    h.answered("silent");
    // Another call's RTP shows that media is on this capture.
    h.offer_answer(S, "talk", "b3", ("10.0.0.5", 4000), ("10.0.0.6", 5000));
    for k in 0..2000u16 {
        h.at(S + 100 * MS + i64::from(k) * 20 * MS, "10.0.0.5:4000", "10.0.0.6:5000", &rtp(k, u32::from(k) * 160, 5));
    }
    let ended = h.ended();
    assert_eq!(ended.len(), 1, "the silent call ended, the talking one did not");
    let c = ended[0];
    assert_eq!((c.call_id.as_str(), c.state, c.end_reason), ("silent", CallState::InCall, EndReason::MediaTimeout));
    assert_eq!(c.end, Timestamp(T0 + 110 * MS), "its last sign of life, the ACK");
}

#[test]
fn an_answer_retransmitted_and_never_acknowledged_ends_the_call() {
    let mut h = Harness::new();
    let id = "no-ack";
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    for t in [100, 600, 1600, 3600, 7600, 11_600, 15_600, 19_600, 23_600, 27_600, 31_600] {
        h.at(t * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    }
    // 64*T1 after the answer is not over yet.
    let c = h.ends_between(32 * S, 33 * S);
    assert_eq!((c.state, c.end_reason), (CallState::InCall, EndReason::NoAck));
    assert_eq!(c.end, Timestamp(T0 + 31_600 * MS));
    assert_eq!(c.retransmissions, 10);
    // An answer sent once whose ACK took another path (not on the capture) is a call.
    let mut h = Harness::new();
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    h.at(100 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    h.advance(600 * S);
    assert!(h.ended().is_empty());
}

#[test]
fn an_invite_without_any_response_is_given_up_after_timer_b() {
    let mut h = Harness::new();
    for t in [0, 500, 1500, 3500, 7500, 15_500, 31_500] {
        h.at(t * MS, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "lost", "1 INVITE", "", ""));
    }
    // At 35 s the last retransmission is only 3.5 s old.
    let c = h.ends_between(35 * S, 36 * S);
    assert_eq!((c.state, c.end_reason), (CallState::Setup, EndReason::SetupTimeout));
    assert_eq!(c.end, Timestamp(T0 + 31_500 * MS));
}

#[test]
fn a_challenged_invite_waits_past_timer_b_for_its_re_send_and_timer_b_runs_again_from_it() {
    let mut h = Harness::new();
    let id = "auth-timer-b";
    let invite = |cseq: &str| sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, cseq, "", &sdp("10.0.0.1", 4000));
    h.at(0, CALLER, CALLEE, &invite("1 INVITE"));
    h.at(MS, CALLEE, CALLER, &sip("SIP/2.0 407 Proxy Authentication Required", id, "1 INVITE", "x", ""));
    h.at(2 * MS, CALLER, CALLEE, &sip("ACK sip:bob@10.0.0.2 SIP/2.0", id, "1 ACK", "x", ""));
    // Swept every second, far past timer B (32 s) of the first INVITE: the challenge answered
    // it, and the call waits for the INVITE re-sent with credentials.
    for t in 1..=100 {
        h.advance(t * S);
    }
    assert!(h.ended().is_empty(), "a challenged INVITE is not ended by timer B");
    // The re-sent INVITE is never answered: timer B runs from it.
    let retry = 100 * S;
    for t in [0, 500, 1500, 3500, 7500, 15_500, 31_500] {
        h.at(retry + t * MS, CALLER, CALLEE, &invite("2 INVITE"));
    }
    let c = h.ends_between(retry + 35 * S, retry + 36 * S);
    assert_eq!((c.state, c.end_reason, c.final_code), (CallState::Setup, EndReason::SetupTimeout, None));
    assert_eq!(c.end, Timestamp(T0 + retry + 31_500 * MS));
    assert_eq!(c.invites, 2);
    assert_eq!(
        c.challenges,
        vec![Challenge { code: 407, time: Timestamp(T0 + MS), retried: Some(Timestamp(T0 + retry)) }]
    );
}

#[test]
fn media_addresses_per_call_are_capped() {
    let cfg = EngineConfig { limits: Limits { max_media_per_call: 4, ..Limits::default() }, ..EngineConfig::default() };
    let mut h = Harness::with(cfg);
    h.answered("c9");
    for (i, port) in [6000u16, 6002, 6004].iter().enumerate() {
        let t = S + i as i64 * S;
        h.at(
            t,
            CALLER,
            CALLEE,
            &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c9", &format!("{} INVITE", i + 2), "b1", &sdp("10.0.0.1", *port)),
        );
    }
    // Each move (RTP and RTCP) retires the caller's previous addresses; the callee's stay.
    assert_eq!(h.engine.stats().media_retired, 6);
    let before = h.engine.stats().rtp_packets;
    h.at(5 * S, "10.0.0.2:5000", "10.0.0.1:4000", &rtp(1, 160, 1));
    assert_eq!(h.engine.stats().rtp_packets, before, "retired address");
    h.at(5 * S + MS, "10.0.0.2:5000", "10.0.0.1:6004", &rtp(2, 320, 1));
    h.at(5 * S + 2 * MS, "10.0.0.1:6004", "10.0.0.2:5000", &rtp(2, 320, 2));
    assert_eq!(h.engine.stats().rtp_packets, before + 2);
}

#[test]
fn garbage_is_counted_never_fatal() {
    let mut h = Harness::new();
    h.at(0, CALLER, CALLEE, b"INVITE sip:x SIP/2.0\r\nCall-ID: broken"); // no blank line
    h.at(MS, CALLER, CALLEE, b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n");
    h.engine.handle_frame(LinkType::Ethernet, Timestamp(T0 + 2 * MS), &[0u8; 5], &mut h.sink);
    assert_eq!(h.engine.stats().malformed_total(), 3);
    assert!(h.sink.calls.is_empty());
}

#[test]
fn a_call_already_up_when_the_capture_starts_is_joined_at_its_reinvite() {
    let mut h = Harness::new();
    // No INVITE seen: a re-INVITE from the callee with SDP, then RTP both ways, then BYE.
    let reinvite = format!(
        "INVITE sip:alice@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKre\r\nFrom: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\nCall-ID: old-call\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
        sdp("10.0.0.2", 5000).len(),
        sdp("10.0.0.2", 5000)
    );
    h.at(0, CALLEE, CALLER, reinvite.as_bytes());
    h.at(10 * MS, CALLER, CALLEE, &sip("SIP/2.0 200 OK", "old-call", "7 INVITE", "a1", &sdp("10.0.0.1", 4000)));
    h.at(50 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(1, 160, 9));
    h.at(60 * MS, "10.0.0.2:5000", "10.0.0.1:4000", &rtp(1, 160, 8));
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let c = h.ended()[0];
    assert_eq!(c.call_id, "old-call");
    assert!(c.joined);
    assert_eq!(c.state, CallState::InCall);
    assert_eq!(h.sink.rtp.len(), 2);
    // A BYE alone for an unknown dialog creates nothing.
    let mut h = Harness::new();
    h.at(0, CALLEE, CALLER, &bye_from_callee("nobody"));
    assert_eq!(h.engine.stats().calls_started, 0);
    assert_eq!(h.engine.stats().sip_unknown_dialog, 1);
}

#[test]
fn calls_up_when_a_capture_limit_sheds_are_told() {
    use callvault_capture::events::DropCause;
    let cfg =
        EngineConfig { limits: Limits { max_frag_reassemblies: 1, ..Limits::default() }, ..EngineConfig::default() };
    let mut h = Harness::with(cfg);
    h.answered("c10");
    // Three first fragments of different datagrams that never complete: one fits, two are shed.
    for id in 1..=3u16 {
        let mut f = frame("10.0.0.7:9", "10.0.0.8:9", &[0u8; 64]);
        f[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        f[14 + 6] = 0x20; // more fragments, offset 0
        f[14 + 10] = 0;
        f[14 + 11] = 0;
        h.engine.handle_frame(LinkType::Ethernet, Timestamp(T0 + S + i64::from(id)), &f, &mut h.sink);
    }
    h.advance(3 * S);
    let drops: Vec<_> = h
        .sink
        .calls
        .iter()
        .filter_map(|e| match e {
            CallEvent::Dropped { packets, cause, .. } => Some((*packets, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(drops, vec![(2, DropCause::Limit)]);
}

#[test]
fn encrypted_media_is_announced_and_zrtp_packets_are_reported_once() {
    let mut h = Harness::new();
    let srtp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n\
                a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "s1", "1 INVITE", "", srtp));
    h.at(100 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", "s1", "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    let security: Vec<_> = h
        .sink
        .calls
        .iter()
        .filter_map(|e| match e {
            CallEvent::Media { media, .. } => Some((media.owner, media.security)),
            _ => None,
        })
        .collect();
    assert_eq!(security, vec![(Side::Caller, Some(MediaSecurity::Sdes)), (Side::Callee, None)]);
    // ZRTP on the callee's media port (first byte 0x10, cookie "ZRTP" at offset 4), twice.
    let mut zrtp = vec![0x10, 0, 0, 1];
    zrtp.extend_from_slice(b"ZRTP");
    zrtp.extend_from_slice(&[0xaa; 4]);
    zrtp.extend_from_slice(&[0x50, 0x5a, 0, 0x1d]);
    zrtp.extend_from_slice(b"Hello   ");
    h.at(150 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &zrtp);
    h.at(160 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &zrtp);
    let reported: Vec<_> = h
        .sink
        .calls
        .iter()
        .filter_map(|e| match e {
            CallEvent::Encrypted { side, security, .. } => Some((*side, *security)),
            _ => None,
        })
        .collect();
    assert_eq!(reported, vec![(Side::Caller, MediaSecurity::Zrtp)]);
    assert_eq!(h.engine.stats().zrtp_packets, 2);
    assert!(h.sink.rtp.is_empty(), "ZRTP is not RTP");
}

#[test]
fn non_audio_media_lines_are_followed_and_counted() {
    let mut h = Harness::new();
    let with_video = |ip: &str, audio: u16, video: u16| {
        format!("{}m=video {video} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=image 0 udptl t38\r\n", sdp(ip, audio))
    };
    h.at(
        0,
        CALLER,
        CALLEE,
        &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "v1", "1 INVITE", "", &with_video("10.0.0.1", 4000, 4002)),
    );
    h.at(100 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", "v1", "1 INVITE", "b1", &with_video("10.0.0.2", 5000, 5002)));
    for k in 0..5u16 {
        h.at(200 * MS + i64::from(k) * MS, "10.0.0.1:4002", "10.0.0.2:5002", &rtp(k, 0, 7));
    }
    h.at(300 * MS, "10.0.0.2:5002", "10.0.0.1:4002", &rtp(0, 0, 8));
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let c = h.ended()[0];
    let video: Vec<(Side, &str, &str, [u64; 2])> =
        c.other_media.iter().map(|o| (o.owner, o.kind.as_str(), o.format.as_str(), o.packets)).collect();
    assert_eq!(video, vec![(Side::Caller, "video", "H264", [0, 1]), (Side::Callee, "video", "H264", [5, 0])]);
    assert!(h.sink.rtp.is_empty(), "video RTP is not the call's audio");
    assert_eq!(h.engine.stats().other_media_packets, 6);
}

#[test]
fn media_captured_before_the_answer_announcing_it_is_handed_on_within_500_ms() {
    let mut h = Harness::new();
    let id = "late-answer";
    h.at(0, CALLER, CALLEE, &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)));
    // The caller's RTP to the callee's address before the 200 OK that names it comes, and a
    // datagram there that is no RTP at all.
    h.at(400 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(1, 160, 0xaaaa));
    h.at(600 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(2, 320, 0xaaaa));
    h.at(650 * MS, "10.0.0.1:4000", "10.0.0.2:5000", b"not media at all");
    assert!(h.sink.rtp.is_empty());
    assert_eq!(h.engine.stats().udp_unmatched, 1, "what is not RTP is counted at once");
    h.at(1000 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    // 600 ms old by then: gone. 400 ms old: the caller's, with its own capture time.
    let got: Vec<_> = h.sink.rtp.iter().map(|(m, _)| (m.seq, m.side, m.time)).collect();
    assert_eq!(got, vec![(2, Side::Caller, Timestamp(T0 + 600 * MS))]);
    let s = h.engine.stats();
    assert_eq!((s.media_before_sdp, s.udp_unmatched, s.rtp_packets), (1, 2, 1));
    assert_eq!(h.engine.held_media(), 0);
    h.at(1020 * MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(3, 480, 0xaaaa));
    assert_eq!(h.sink.rtp.len(), 2, "the flow goes on as any other");
}

#[test]
fn media_no_answer_ever_claims_is_counted_unmatched_at_the_end() {
    let mut h = Harness::new();
    h.at(0, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(1, 160, 0xaaaa));
    h.at(MS, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(2, 320, 0xaaaa));
    assert_eq!((h.engine.held_media(), h.engine.stats().udp_unmatched), (2, 0));
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    assert_eq!((h.engine.held_media(), h.engine.stats().udp_unmatched), (0, 2));
    assert_eq!(h.engine.stats().media_before_sdp, 0);
}

#[test]
fn media_of_calls_the_capture_never_saw_set_up_does_not_crowd_out_a_new_calls() {
    // Room for 8 datagrams; a call already up when the capture started keeps sending (every
    // 5 ms) to an address no SDP of this capture names.
    let limits = Limits { max_held_media: 8, ..Limits::default() };
    let mut h = Harness::with(EngineConfig { limits, ..EngineConfig::default() });
    let mut junk_sent = 0;
    let mut junk = |h: &mut Harness, from: i64, to: i64| {
        for k in (from + 5 * MS - 1) / (5 * MS)..(to + 5 * MS - 1) / (5 * MS) {
            h.at(k * 5 * MS, "10.9.0.1:7000", "10.9.0.2:7002", &rtp(k as u16, k as u32 * 40, 0x9999));
            junk_sent += 1;
        }
    };
    junk(&mut h, 0, 1000 * MS);
    let id = "new";
    h.at(
        1000 * MS,
        CALLER,
        CALLEE,
        &sip("INVITE sip:bob@10.0.0.2 SIP/2.0", id, "1 INVITE", "", &sdp("10.0.0.1", 4000)),
    );
    for k in 0..3u16 {
        let t = 1050 * MS + i64::from(k) * 20 * MS;
        junk(&mut h, t - 20 * MS + 1, t);
        h.at(t, "10.0.0.1:4000", "10.0.0.2:5000", &rtp(k, u32::from(k) * 160, 0xaaaa));
    }
    junk(&mut h, 1090 * MS + 1, 1100 * MS);
    h.at(1100 * MS, CALLEE, CALLER, &sip("SIP/2.0 200 OK", id, "1 INVITE", "b1", &sdp("10.0.0.2", 5000)));
    let got: Vec<_> = h.sink.rtp.iter().map(|(m, _)| (m.seq, m.ssrc)).collect();
    assert_eq!(got, vec![(0, 0xaaaa), (1, 0xaaaa), (2, 0xaaaa)], "the new call's packets waited for its answer");
    // The old call's flow was kept only for its first 500 ms (packets at 0, 5, ... 500 ms: 101,
    // 93 of them making room for the next); from then on it went straight to unmatched.
    assert_eq!(h.engine.stats().media_hold_evicted, 93);
    h.engine.finish(EndReason::EndOfInput, &mut h.sink);
    let s = h.engine.stats();
    assert_eq!((s.udp_unmatched, s.media_before_sdp), (junk_sent, 3), "{s:?}");
}

#[test]
fn media_to_an_address_learned_from_the_other_partys_first_packet_is_handed_on_before_it() {
    let mut h = Harness::new();
    h.answered("sym");
    // The callee receives (and sends) on 5002, which no SDP names; the caller sends there
    // first, then the callee's first packet shows the address (symmetric RTP).
    h.at(150 * MS, "10.0.0.1:4000", "10.0.0.2:5002", &rtp(1, 160, 0xaaaa));
    h.at(170 * MS, "10.0.0.1:4000", "10.0.0.2:5002", &rtp(2, 320, 0xaaaa));
    assert!(h.sink.rtp.is_empty());
    h.at(180 * MS, "10.0.0.2:5002", "10.0.0.1:4000", &rtp(1, 160, 0xbbbb));
    let got: Vec<_> = h.sink.rtp.iter().map(|(m, _)| (m.ssrc, m.seq, m.side, m.time)).collect();
    assert_eq!(
        got,
        vec![
            (0xaaaa, 1, Side::Caller, Timestamp(T0 + 150 * MS)),
            (0xaaaa, 2, Side::Caller, Timestamp(T0 + 170 * MS)),
            (0xbbbb, 1, Side::Callee, Timestamp(T0 + 180 * MS)),
        ],
        "the kept packets first, in capture order"
    );
    let s = h.engine.stats();
    assert_eq!((s.media_learned, s.media_before_sdp, s.udp_unmatched), (1, 2, 0));
}
