//! The tracker driven by SIP messages alone: one test per transition through
//! [`DialogTracker::handle_sip`], and a stateful property test of random message sequences
//! with the tracker's invariants checked after every step.

use std::collections::HashMap;
use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;
use crate::events::CallEvent;
use crate::wire::sip;

const S: i64 = Timestamp::SECOND;
const CALLER: &str = "10.0.0.1:5060";
const CALLEE: &str = "10.0.0.2:5060";

/// A SIP message of call `n`, written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    /// The initial INVITE (no To-tag) with CSeq `seq`.
    Invite {
        seq: u32,
    },
    /// A re-INVITE in the dialog, from the caller, with SDP.
    Reinvite {
        seq: u32,
    },
    /// A response to the INVITE with CSeq `seq`.
    Response {
        code: u16,
        seq: u32,
    },
    Ack {
        seq: u32,
    },
    Bye {
        seq: u32,
        from_callee: bool,
    },
    Cancel {
        seq: u32,
    },
}

impl Msg {
    fn text(self, n: u32) -> (String, bool) {
        let sdp = |port: u16, ip: &str| {
            format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
        };
        let caller = format!("<sip:alice@a>;tag=ft{n}");
        let callee_untagged = "<sip:bob@b>".to_string();
        let callee = format!("<sip:bob@b>;tag=tt{n}");
        let (start, from, to, cseq, body, from_caller) = match self {
            Msg::Invite { seq } => (
                "INVITE sip:bob@b SIP/2.0".to_string(),
                caller,
                callee_untagged,
                format!("{seq} INVITE"),
                sdp(4000 + 2 * n as u16, "10.0.1.1"),
                true,
            ),
            Msg::Reinvite { seq } => (
                "INVITE sip:bob@b SIP/2.0".into(),
                caller,
                callee,
                format!("{seq} INVITE"),
                sdp(5000 + 2 * n as u16, "10.0.1.1"),
                true,
            ),
            Msg::Response { code, seq } => {
                let body = if (200..300).contains(&code) || code == 183 {
                    sdp(6000 + 2 * n as u16, "10.0.2.1")
                } else {
                    String::new()
                };
                (format!("SIP/2.0 {code} X"), caller, callee, format!("{seq} INVITE"), body, false)
            }
            Msg::Ack { seq } => {
                ("ACK sip:bob@b SIP/2.0".into(), caller, callee, format!("{seq} ACK"), String::new(), true)
            }
            Msg::Bye { seq, from_callee: false } => {
                ("BYE sip:bob@b SIP/2.0".into(), caller, callee, format!("{seq} BYE"), String::new(), true)
            }
            Msg::Bye { seq, from_callee: true } => (
                "BYE sip:alice@a SIP/2.0".into(),
                format!("<sip:bob@b>;tag=tt{n}"),
                format!("<sip:alice@a>;tag=ft{n}"),
                format!("{seq} BYE"),
                String::new(),
                false,
            ),
            Msg::Cancel { seq } => (
                "CANCEL sip:bob@b SIP/2.0".into(),
                caller,
                callee_untagged,
                format!("{seq} CANCEL"),
                String::new(),
                true,
            ),
        };
        let ct = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK{n}x{cseq_b}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: c{n}\r\nCSeq: {cseq}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            cseq_b = cseq.replace(' ', ""),
        );
        (text, from_caller)
    }
}

/// A tracker with its media table and counters, and everything it said.
struct Harness {
    t: DialogTracker,
    media: MediaTable,
    stats: CaptureStats,
    events: Vec<CallEvent>,
    now: Timestamp,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            t: DialogTracker::new(Limits::default(), Timeouts::default()),
            media: MediaTable::new(64),
            stats: CaptureStats::default(),
            events: Vec::new(),
            now: Timestamp(0),
        }
    }

    fn at(&mut self, secs: i64) -> &mut Harness {
        self.now = Timestamp(secs * S);
        self
    }

    fn send(&mut self, n: u32, msg: Msg) -> Option<CallRef> {
        let (text, from_caller) = msg.text(n);
        self.raw(&text, from_caller)
    }

    fn raw(&mut self, text: &str, from_caller: bool) -> Option<CallRef> {
        let (a, b): (SocketAddr, SocketAddr) = (CALLER.parse().unwrap(), CALLEE.parse().unwrap());
        let (src, dst) = if from_caller { (a, b) } else { (b, a) };
        let msg = sip::parse(text.as_bytes(), 64).expect("test message parses");
        let r = self.t.handle_sip(self.now, src, dst, &msg, Transport::Udp, &mut self.media, &mut self.stats);
        self.drain();
        r
    }

    fn sweep(&mut self) {
        self.t.sweep(self.now, &mut self.media, &mut self.stats);
        self.drain();
    }

    fn finish(&mut self) {
        self.t.finish_all(self.now, EndReason::EndOfInput, &mut self.media, &mut self.stats);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.t.poll_event() {
            self.events.push(e);
        }
    }

    fn ended(&self) -> Vec<&CallInfo> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended { info, .. } => Some(&**info),
                _ => None,
            })
            .collect()
    }

    /// Sweeps once per second from the current time to `secs`, as the engine does.
    fn run_to(&mut self, secs: i64) {
        let from = self.now.0 / S;
        for s in from..=secs {
            self.at(s).sweep();
        }
    }
}

#[test]
fn answered_call_ends_by_bye_after_the_linger() {
    let mut h = Harness::new();
    let call = h.send(1, Msg::Invite { seq: 1 }).unwrap();
    assert!(matches!(h.events[0], CallEvent::Started { call: c, .. } if c == call));
    h.at(1).send(1, Msg::Response { code: 180, seq: 1 });
    h.at(2).send(1, Msg::Response { code: 200, seq: 1 });
    h.at(2).send(1, Msg::Ack { seq: 1 });
    h.at(10).send(1, Msg::Bye { seq: 2, from_callee: true });
    assert_eq!(h.t.poll_timeout(), Some(Timestamp(12 * S)), "the BYE linger is the next deadline");
    h.run_to(11);
    assert!(h.ended().is_empty());
    h.run_to(12);
    let e = h.ended();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].state, e[0].end_reason, e[0].ended_by),
        (CallState::Completed, EndReason::Bye, Some(Side::Callee))
    );
    assert_eq!((e[0].ringing, e[0].answer, e[0].end), (Some(Timestamp(S)), Some(Timestamp(2 * S)), Timestamp(10 * S)));
    assert_eq!(e[0].final_code, Some(200));
    assert_eq!(h.t.open_calls(), 0);
    assert!(h.media.is_empty() && h.media.flows() == 0, "claims given back");
    assert_eq!(h.t.poll_timeout(), None);
}

#[test]
fn cancel_then_487_ends_cancelled() {
    let mut h = Harness::new();
    h.send(2, Msg::Invite { seq: 1 });
    h.at(1).send(2, Msg::Response { code: 180, seq: 1 });
    h.at(3).send(2, Msg::Cancel { seq: 1 });
    h.at(3).send(2, Msg::Response { code: 487, seq: 1 });
    h.run_to(5);
    let e = h.ended();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].state, e[0].end_reason, e[0].final_code), (CallState::Cancelled, EndReason::Cancel, Some(487)));
    assert_eq!((e[0].ended_by, e[0].end), (Some(Side::Caller), Timestamp(3 * S)));
}

#[test]
fn failure_rejects_after_the_linger() {
    let mut h = Harness::new();
    h.send(3, Msg::Invite { seq: 1 });
    h.at(1).send(3, Msg::Response { code: 486, seq: 1 });
    h.at(1).send(3, Msg::Response { code: 500, seq: 1 });
    h.run_to(3);
    let e = h.ended();
    assert_eq!((e[0].state, e[0].end_reason, e[0].final_code), (CallState::Rejected, EndReason::Rejected, Some(486)));
}

#[test]
fn challenge_never_answered_rejects_at_auth_wait() {
    let mut h = Harness::new();
    h.send(4, Msg::Invite { seq: 1 });
    h.at(1).send(4, Msg::Response { code: 407, seq: 1 });
    assert_eq!(h.t.poll_timeout(), Some(Timestamp(301 * S)));
    h.run_to(300);
    assert!(h.ended().is_empty());
    h.run_to(301);
    let e = h.ended();
    assert_eq!((e[0].state, e[0].end_reason, e[0].final_code), (CallState::Rejected, EndReason::Rejected, Some(407)));
    assert_eq!(e[0].end, Timestamp(S));
    assert_eq!(e[0].challenges.len(), 1);
}

#[test]
fn challenge_answered_late_continues_the_call() {
    let mut h = Harness::new();
    h.send(5, Msg::Invite { seq: 1 });
    h.at(1).send(5, Msg::Response { code: 401, seq: 1 });
    h.at(200).send(5, Msg::Invite { seq: 2 });
    h.at(201).send(5, Msg::Response { code: 200, seq: 2 });
    h.at(201).send(5, Msg::Ack { seq: 2 });
    h.at(210).send(5, Msg::Bye { seq: 3, from_callee: false });
    h.run_to(212);
    let e = h.ended();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].state, e[0].end_reason, e[0].final_code), (CallState::Completed, EndReason::Bye, Some(200)));
    assert_eq!(e[0].challenges[0].retried, Some(Timestamp(200 * S)));
}

#[test]
fn invite_without_any_response_ends_by_timer_b() {
    let mut h = Harness::new();
    h.send(6, Msg::Invite { seq: 1 });
    h.run_to(31);
    assert!(h.ended().is_empty());
    h.run_to(32);
    let e = h.ended();
    assert_eq!((e[0].state, e[0].end_reason), (CallState::Setup, EndReason::SetupTimeout));
}

#[test]
fn answer_retransmitted_without_ack_ends_by_no_ack() {
    let mut h = Harness::new();
    h.send(7, Msg::Invite { seq: 1 });
    h.at(1).send(7, Msg::Response { code: 200, seq: 1 });
    h.at(2).send(7, Msg::Response { code: 200, seq: 1 });
    assert_eq!(h.t.calls().retransmissions_of(7), 1);
    h.run_to(32);
    assert!(h.ended().is_empty());
    h.run_to(33);
    let e = h.ended();
    assert_eq!((e[0].state, e[0].end_reason), (CallState::InCall, EndReason::NoAck));
}

#[test]
fn answered_call_without_media_anywhere_ends_by_the_signalling_timeout() {
    let mut h = Harness::new();
    h.send(8, Msg::Invite { seq: 1 });
    h.at(1).send(8, Msg::Response { code: 200, seq: 1 });
    h.at(1).send(8, Msg::Ack { seq: 1 });
    let limit = Timeouts::default().signalling_only / S;
    h.at(1 + limit - 1).sweep();
    assert!(h.ended().is_empty());
    h.at(1 + limit).sweep();
    assert_eq!(h.ended()[0].end_reason, EndReason::MediaTimeout);
}

#[test]
fn out_of_state_messages_are_counted_and_change_nothing() {
    let mut h = Harness::new();
    h.send(9, Msg::Invite { seq: 1 });
    h.at(1).send(9, Msg::Response { code: 200, seq: 1 });
    h.at(1).send(9, Msg::Ack { seq: 1 });
    h.at(2).send(9, Msg::Cancel { seq: 1 });
    h.at(2).send(9, Msg::Response { code: 180, seq: 1 });
    assert_eq!(h.stats.sip_out_of_state, 2);
    h.finish();
    let e = h.ended();
    assert_eq!((e[0].state, e[0].end_reason, e[0].ringing), (CallState::InCall, EndReason::EndOfInput, None));
}

#[test]
fn retransmission_on_the_same_hop_is_not_acted_on_twice() {
    let mut h = Harness::new();
    h.send(10, Msg::Invite { seq: 1 });
    h.at(1).send(10, Msg::Response { code: 200, seq: 1 });
    h.at(1).send(10, Msg::Ack { seq: 1 });
    h.at(5).send(10, Msg::Bye { seq: 2, from_callee: false });
    h.at(6).send(10, Msg::Bye { seq: 2, from_callee: false });
    h.run_to(7);
    let e = h.ended();
    assert_eq!((e[0].end, e[0].retransmissions), (Timestamp(5 * S), 1));
}

#[test]
fn the_ladder_lists_every_message_in_order_with_its_sender() {
    let mut h = Harness::new();
    h.send(3, Msg::Invite { seq: 1 });
    h.at(1).send(3, Msg::Response { code: 180, seq: 1 });
    h.at(2).send(3, Msg::Response { code: 200, seq: 1 });
    h.at(2).send(3, Msg::Ack { seq: 1 });
    h.at(5).send(3, Msg::Bye { seq: 2, from_callee: true });
    h.at(6).send(3, Msg::Bye { seq: 2, from_callee: true });
    h.run_to(9);
    let e = h.ended();
    let steps: Vec<(i64, Side, &str, bool, bool)> =
        e[0].ladder.iter().map(|l| (l.time.0 / S, l.from, l.what.as_str(), l.sdp, l.retransmission)).collect();
    assert_eq!(
        steps,
        [
            (0, Side::Caller, "INVITE", true, false),
            (1, Side::Callee, "180 X (INVITE)", false, false),
            (2, Side::Callee, "200 X (INVITE)", true, false),
            (2, Side::Caller, "ACK", false, false),
            (5, Side::Callee, "BYE", false, false),
            (6, Side::Callee, "BYE", false, true),
        ]
    );
    assert_eq!(e[0].ladder[0].src, CALLER.parse().unwrap());
    assert_eq!(e[0].ladder_omitted, 0);
}

#[test]
fn the_ladder_keeps_the_first_messages_and_counts_the_rest() {
    let mut h = Harness::new();
    h.send(4, Msg::Invite { seq: 1 });
    for i in 0..LADDER_MAX as i64 + 9 {
        h.at(i / 10).send(4, Msg::Response { code: 180, seq: 1 });
    }
    h.at(20).send(4, Msg::Response { code: 486, seq: 1 });
    h.run_to(60);
    let e = h.ended();
    assert_eq!(e[0].ladder.len(), LADDER_MAX);
    assert_eq!(e[0].ladder_omitted, 11, "{} messages in all", e[0].sip_messages);
}

/// Test-only access to a call by its number in these tests.
struct Calls<'a>(&'a DialogTracker);

impl DialogTracker {
    fn calls(&self) -> Calls<'_> {
        Calls(self)
    }
}

impl Calls<'_> {
    fn retransmissions_of(&self, n: u32) -> u32 {
        let idx = self.0.by_id[format!("c{n}").as_bytes()];
        self.0.slots[idx as usize].call.as_ref().unwrap().retransmissions
    }
}

/// One step of a random SIP exchange over a few calls.
#[derive(Debug, Clone)]
enum Op {
    /// The caller's INVITE (the first, or re-sent after a challenge with a higher CSeq).
    Invite(u32),
    Reinvite(u32),
    Response(u32, u16),
    Ack(u32),
    Bye(u32, bool),
    Cancel(u32),
    /// The last message again, on the same hop.
    Retransmit,
    /// Capture time moves on by this many milliseconds (swept once per second on the way).
    Wait(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let call = 0u32..3;
    prop_oneof![
        call.clone().prop_map(Op::Invite),
        call.clone().prop_map(Op::Reinvite),
        (call.clone(), prop::sample::select(vec![100u16, 180, 183, 200, 401, 407, 486, 487, 500, 603]))
            .prop_map(|(c, code)| Op::Response(c, code)),
        call.clone().prop_map(Op::Ack),
        (call.clone(), any::<bool>()).prop_map(|(c, b)| Op::Bye(c, b)),
        call.clone().prop_map(Op::Cancel),
        Just(Op::Retransmit),
        prop_oneof![0u32..3_000, 0u32..400_000].prop_map(Op::Wait),
    ]
}

/// What the events said about each call so far.
#[derive(Default)]
struct Seen {
    started: HashMap<CallRef, Timestamp>,
    ended: HashMap<CallRef, Timestamp>,
}

impl Seen {
    fn check(&mut self, events: &[CallEvent], now: Timestamp) -> Result<(), TestCaseError> {
        for e in events {
            match e {
                CallEvent::Started { call, info } => {
                    prop_assert!(self.started.insert(*call, info.start).is_none(), "started twice");
                }
                CallEvent::Ended { call, info } => {
                    prop_assert!(self.started.contains_key(call), "ended, never started");
                    prop_assert!(self.ended.insert(*call, info.end).is_none(), "ended twice");
                    prop_assert!(info.end >= info.start && info.end <= now, "end {:?} outside the call", info.end);
                }
                CallEvent::Media { call, .. } => {
                    prop_assert!(self.started.contains_key(call) && !self.ended.contains_key(call), "event after end");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sip_sequences_keep_the_invariants(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        let mut seen = Seen::default();
        let mut seq = [0u32; 3];
        let mut last: Option<(String, bool)> = None;
        let mut checked = 0;
        for op in ops {
            let msg = match op {
                Op::Invite(c) => { seq[c as usize] += 1; Some((c, Msg::Invite { seq: seq[c as usize] })) }
                Op::Reinvite(c) => { seq[c as usize] += 1; Some((c, Msg::Reinvite { seq: seq[c as usize] })) }
                Op::Response(c, code) => Some((c, Msg::Response { code, seq: seq[c as usize].max(1) })),
                Op::Ack(c) => Some((c, Msg::Ack { seq: seq[c as usize].max(1) })),
                Op::Bye(c, callee) => { seq[c as usize] += 1; Some((c, Msg::Bye { seq: seq[c as usize], from_callee: callee })) }
                Op::Cancel(c) => Some((c, Msg::Cancel { seq: seq[c as usize].max(1) })),
                Op::Retransmit => {
                    if let Some((text, from_caller)) = last.clone() {
                        h.raw(&text, from_caller);
                    }
                    None
                }
                Op::Wait(ms) => {
                    let target = h.now.add_nanos(i64::from(ms) * Timestamp::MILLI);
                    // Sweep once per capture second on the way, as the engine does.
                    let mut next = Timestamp((h.now.0 / S + 1) * S);
                    while next <= target {
                        h.now = next;
                        h.sweep();
                        // Nothing due is left behind: the next deadline is in the future.
                        if let Some(at) = h.t.poll_timeout() {
                            prop_assert!(at > h.now, "deadline {:?} left behind at {:?}", at, h.now);
                        }
                        next = next.add_nanos(S);
                    }
                    h.now = target;
                    None
                }
            };
            if let Some((c, m)) = msg {
                let (text, from_caller) = m.text(c);
                h.raw(&text, from_caller);
                last = Some((text, from_caller));
            }
            seen.check(&h.events[checked..], h.now)?;
            checked = h.events.len();
            // Counters agree with the events and the table.
            prop_assert_eq!(h.stats.calls_started as usize, seen.started.len());
            prop_assert_eq!(h.stats.calls_ended as usize, seen.ended.len());
            prop_assert_eq!(h.t.open_calls(), seen.started.len() - seen.ended.len());
            // Every open call has a timer.
            prop_assert_eq!(h.t.open_calls() > 0, h.t.poll_timeout().is_some());
        }
        h.finish();
        seen.check(&h.events[checked..], h.now)?;
        // Every call that started ended exactly once, and gave back what it claimed.
        prop_assert_eq!(seen.started.len(), seen.ended.len());
        prop_assert_eq!(h.t.open_calls(), 0);
        prop_assert!(h.media.is_empty() && h.media.flows() == 0, "claims left: {} addresses, {} flows", h.media.len(), h.media.flows());
        prop_assert_eq!(h.t.poll_timeout(), None);
    }
}

/// Call `n` invited at `at` seconds, answered and acknowledged at `at + 1`.
fn answered(h: &mut Harness, n: u32, at: i64) -> CallRef {
    let call = h.at(at).send(n, Msg::Invite { seq: 1 }).unwrap();
    h.at(at + 1).send(n, Msg::Response { code: 200, seq: 1 });
    h.at(at + 1).send(n, Msg::Ack { seq: 1 });
    call
}

/// RTP packets (`touch`) once a second from `from` to `to` seconds, with a sweep each second.
fn rtp_each_second(h: &mut Harness, call: CallRef, from: i64, to: i64) {
    for s in from..=to {
        h.at(s);
        h.t.touch(call, h.now);
        h.sweep();
    }
}

#[test]
fn rtp_keeps_an_answered_call_until_the_media_timeout_after_its_last_packet() {
    let mut h = Harness::new();
    let call = answered(&mut h, 40, 0);
    rtp_each_second(&mut h, call, 2, 100);
    let media = Timeouts::default().media / S;
    h.at(100 + media - 1).sweep();
    assert!(h.ended().is_empty(), "{:?}", h.ended());
    h.at(100 + media).sweep();
    let e = h.ended();
    assert_eq!((e[0].end_reason, e[0].end), (EndReason::MediaTimeout, Timestamp(100 * S)));
}

#[test]
fn rtp_confirms_an_answer_whose_ack_was_not_seen() {
    let mut h = Harness::new();
    let call = h.send(41, Msg::Invite { seq: 1 }).unwrap();
    h.at(1).send(41, Msg::Response { code: 200, seq: 1 });
    h.at(2).send(41, Msg::Response { code: 200, seq: 1 });
    rtp_each_second(&mut h, call, 2, 60);
    assert!(h.ended().is_empty(), "no NoAck once media flows: {:?}", h.ended());
    h.at(90).sweep();
    assert_eq!(h.ended()[0].end_reason, EndReason::MediaTimeout);
}

#[test]
fn a_late_packet_of_an_ended_call_does_not_touch_the_call_that_took_its_slot() {
    let mut h = Harness::new();
    let old = answered(&mut h, 42, 0);
    h.at(2).send(42, Msg::Bye { seq: 2, from_callee: false });
    h.at(100).sweep();
    assert_eq!(h.ended().len(), 1);
    let new = answered(&mut h, 43, 100);
    assert_eq!((new.slot, new.generation), (old.slot, old.generation.wrapping_add(1)));
    // The old call's stream goes on: media is visible, but the new call has none of its own.
    rtp_each_second(&mut h, old, 102, 131);
    let e = h.ended();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[1].end_reason, e[1].end), (EndReason::MediaTimeout, Timestamp(101 * S)));
}
