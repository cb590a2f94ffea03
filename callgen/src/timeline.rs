//! When every packet of a call is captured.
//!
//! With `T = start_ns`, `R = ring_ms` and `A = T + R` (the answer, final response or CANCEL):
//!
//! | event                                   | capture time                                   |
//! |-----------------------------------------|------------------------------------------------|
//! | INVITE                                  | `T`                                            |
//! | 100 Trying                              | `T + min(10 ms, R/4)`                          |
//! | 180 Ringing (answered, cancelled)       | `T + min(100 ms, R/2)`                         |
//! | 200 OK with the SDP answer              | `A` (= `answer_ns`)                            |
//! | ACK (2xx)                               | `A + 10 ms`                                    |
//! | callee RTP packet `k`                   | `A + 20 ms + k·ptime` ± jitter                 |
//! | caller RTP packet `k`                   | `A + 40 ms + k·ptime` ± jitter                 |
//! | BYE (either side)                       | `A + talk_ms + 60 ms` (= `end_ns`)             |
//! | 200 OK to the BYE                       | BYE + 5 ms                                     |
//! | busy / rejected final response          | `A` (= `end_ns`); ACK at `A + 5 ms`            |
//! | CANCEL                                  | `A` (= `end_ns`); 200 at +5 ms, 487 at +10 ms, ACK at +15 ms |
//! | no answer: INVITE retransmissions       | `T + 0.5 s, 1.5 s, 3.5 s, 7.5 s` (RFC 3261 timer A: 0.5, 1, 2, 4 s apart) |
//! | no answer: late 100 and 180             | `T + 7.51 s` and `T + 7.6 s`, then nothing     |
//! | no response: INVITE retransmissions     | `T + 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s` (timer A doubling until timer B, 32 s) |
//! | no ACK: 100, 180, 200 OK                | as for an answered call                        |
//! | no ACK: 200 OK retransmissions          | `A + 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5 s` (T1 doubling up to T2 = 4 s, until 64·T1) |
//!
//! The callee starts its media first (it can send as soon as it answers); the caller starts
//! after it has seen the 200 OK and sent the ACK. Each direction sends `talk_ms / ptime_ms`
//! packets, so all media ends before the BYE. A duplicate follows its original by 1 ms. Jitter
//! is a uniform offset in `±a` with `a = min(jitter_ms, ptime/2 - 1 ms, 15 ms)`: consecutive
//! slots stay at least 2 ms apart, so jitter (and the duplicate's 1 ms) never reorders a
//! direction, and no callee packet is captured before the 200 OK. A reordered packet is held
//! back: it arrives 1 ms after the packet that overtook it, which arrives in its own slot. A
//! sender whose clock is `clock_ppm` off spaces its packets `ptime / (1 + ppm / 10^6)` apart.
//!
//! Options that add messages or packets:
//!
//! | option                                  | capture time                                   |
//! |-----------------------------------------|------------------------------------------------|
//! | early media: 183 with SDP (no 180)      | `T + min(100 ms, R/2)`                         |
//! | early media: ringback RTP               | callee grid slots in `[183 + 20 ms, A - 10 ms]` |
//! | re-INVITE `n` (hold, resume, move)      | `A + at_ms`; 200 OK +5 ms, ACK +10 ms          |
//! | answer seen late: 200 OK, ACK           | `A + answer_seen_late_ms`, +10 ms (media still from `A`) |
//! | SIP over TCP: SYN, SYN-ACK, ACK         | `T - 3 ms`, `T - 2 ms`, `T - 1 ms`             |
//! | SIP over TCP: FIN-ACK, FIN-ACK, ACK     | last SIP message + 50, 51, 52 ms               |
//! | SIP over TCP, `coalesce_trying`: the 100 | with the callee's next message                 |
//!
//! A held party sends no RTP in the slots whose nominal time falls between the 200 OK of the
//! hold and the 200 OK of the resume; a party that moves its media uses its new port for the
//! slots (of either direction) from the 200 OK of the move on.
//!
//! With an auth challenge ([`AuthChallenge`](crate::AuthChallenge)) the first INVITE goes at
//! `start_ns`, the 401/407 5 ms later and its ACK 10 ms later; `T` in the tables above is then
//! the re-sent INVITE, `retry_ms` after the first.
//!
//! Delay models ([`Delay`](crate::Delay)) add a per-packet delay to the slot times above (after
//! the legacy `jitter_ms`), stalls ([`Stall`](crate::Stall)) then hold and release them, and the
//! direction's packets are kept in order: a packet is captured at least 10 µs after the one
//! before it. Capture stalls ([`CaptureStall`](crate::CaptureStall)) finally apply to every
//! packet of the capture, SIP included.

use crate::mix::{hash, unit_f64};
use crate::spec::{CallSpec, Codec, Delay, Hangup, MidCall, Outcome, Scenario, SipTransport};

const MS: i64 = 1_000_000;

/// Upper bound of the 100 Trying delay after the INVITE.
pub const TRYING_MAX_NS: i64 = 10 * MS;
/// Upper bound of the 180 Ringing delay after the INVITE.
pub const RINGING_MAX_NS: i64 = 100 * MS;
/// ACK for a 200 OK, after the 200 OK.
pub const ACK_DELAY_NS: i64 = 10 * MS;
/// Callee's RTP packet 0, after the 200 OK (before jitter).
pub const CALLEE_RTP_DELAY_NS: i64 = 20 * MS;
/// Caller's RTP packet 0, after the 200 OK (before jitter).
pub const CALLER_RTP_DELAY_NS: i64 = 40 * MS;
/// BYE, after `answer_ns + talk_ms`.
pub const BYE_DELAY_NS: i64 = 60 * MS;
/// Gap between a request and its immediate response (200 to BYE/CANCEL, ACK to a non-2xx).
pub const REPLY_DELAY_NS: i64 = 5 * MS;
/// INVITE retransmission times after the first INVITE, for `NoAnswer`.
pub const INVITE_RETRANSMIT_NS: [i64; 4] = [500 * MS, 1500 * MS, 3500 * MS, 7500 * MS];
/// INVITE retransmission times after the first INVITE, for `NoResponse`: timer A doubling
/// from T1 = 500 ms, until timer B (64·T1 = 32 s).
pub const INVITE_TIMER_B_RETRANSMIT_NS: [i64; 6] =
    [500 * MS, 1500 * MS, 3500 * MS, 7500 * MS, 15_500 * MS, 31_500 * MS];
/// 200 OK retransmission times after the first 200 OK, for `NoAck`: T1 doubling up to T2 = 4 s,
/// until 64·T1 = 32 s.
pub const OK_RETRANSMIT_NS: [i64; 10] = [
    500 * MS,
    1500 * MS,
    3500 * MS,
    7500 * MS,
    11_500 * MS,
    15_500 * MS,
    19_500 * MS,
    23_500 * MS,
    27_500 * MS,
    31_500 * MS,
];
/// A duplicated RTP packet's copy, after the original.
pub const DUPLICATE_DELAY_NS: i64 = MS;
/// How long after the packet that overtook it a reordered packet arrives.
const REORDER_DELAY_NS: i64 = MS;

/// SIP over TCP: the SYN, before the INVITE (SYN-ACK and ACK follow 1 ms apart).
pub const TCP_OPEN_NS: i64 = 3 * MS;
/// SIP over TCP: the first FIN, after the call's last SIP message (FIN and ACK follow 1 ms apart).
pub const TCP_CLOSE_NS: i64 = 50 * MS;
/// Early media: the first ringback slot is at least this long after the 183.
pub const EARLY_MEDIA_DELAY_NS: i64 = 20 * MS;
/// Early media: the last ringback slot is at least this long before the 200 OK.
pub const EARLY_MEDIA_STOP_NS: i64 = 10 * MS;

/// Cap on the jitter amplitude regardless of `jitter_ms`.
pub const MAX_JITTER_NS: i64 = 15 * MS;
/// A stall's burst goes this many times faster than the packets were due.
pub const STALL_SPEEDUP: i64 = 100;
/// Least spacing of two packets of one direction in capture time (a queue keeps order).
pub const MIN_SPACING_NS: i64 = 10_000;
/// The 401/407 after the first INVITE, and its ACK after the 401/407.
pub const CHALLENGE_DELAY_NS: i64 = 5 * MS;

/// When something due at `t` is captured through a stall `[from, until)`: held until the
/// stall ends, then released [`STALL_SPEEDUP`] times faster until it has caught up.
pub fn stalled(t: i64, from: i64, until: i64) -> i64 {
    if t < from { t } else { (until + (t - from) / STALL_SPEEDUP).max(t) }
}

impl Scenario {
    /// When something due at `t` is captured, the capture stalls applied.
    pub fn capture_time(&self, t: i64) -> i64 {
        self.capture_stalls.iter().fold(t, |t, s| stalled(t, s.at_ns, s.at_ns + i64::from(s.duration_ms) * MS))
    }
}

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// The side that sends the INVITE; its RTP goes to WAV channel 0.
    Caller,
    /// The side that answers; its RTP goes to WAV channel 1.
    Callee,
}

impl Party {
    /// `"caller"` or `"callee"`.
    pub fn name(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Callee => "callee",
        }
    }

    fn key(self) -> u64 {
        match self {
            Party::Caller => 1,
            Party::Callee => 2,
        }
    }
}

/// Capture time of the 200 OK, if the call is answered and carries media (before timestamp
/// truncation).
pub fn answer_ns(spec: &CallSpec) -> Option<i64> {
    matches!(spec.outcome, Outcome::Answered { .. }).then(|| final_ns(spec))
}

/// Capture time of the (first) 200 OK to the INVITE, if there is one: answered calls
/// (`answer_seen_late_ms` after the answer) and answers never acknowledged.
pub fn ok_ns(spec: &CallSpec) -> Option<i64> {
    match spec.outcome {
        Outcome::Answered { .. } => Some(final_ns(spec) + i64::from(spec.answer_seen_late_ms) * MS),
        Outcome::NoAck => Some(final_ns(spec)),
        _ => None,
    }
}

/// Nominal capture time of RTP packet `k` of `party` (before jitter and reordering), if the
/// call is answered.
pub fn rtp_nominal_ns(spec: &CallSpec, party: Party, k: u32) -> Option<i64> {
    let delay = match party {
        Party::Caller => CALLER_RTP_DELAY_NS,
        Party::Callee => CALLEE_RTP_DELAY_NS,
    };
    let ppm = match party {
        Party::Caller => spec.impair.caller.clock_ppm,
        Party::Callee => spec.impair.callee.clock_ppm,
    };
    answer_ns(spec).map(|a| a + delay + slot_offset_ns(i64::from(spec.ptime_ms) * MS, ppm, k))
}

/// Capture-time offset of slot `k` from slot 0 for a sender whose clock is `ppm` off.
fn slot_offset_ns(ptime_ns: i64, ppm: f64, k: u32) -> i64 {
    if ppm == 0.0 {
        i64::from(k) * ptime_ns
    } else {
        (f64::from(k) * ptime_ns as f64 / (1.0 + ppm / 1e6)).round() as i64
    }
}

/// Time of the INVITE the call goes on from: the first, or the one re-sent after a challenge.
pub fn invite_ns(spec: &CallSpec) -> i64 {
    spec.start_ns + spec.auth.map_or(0, |a| i64::from(a.retry_ms) * MS)
}

/// Time of the 200 OK, final response or CANCEL.
fn final_ns(spec: &CallSpec) -> i64 {
    invite_ns(spec) + i64::from(spec.ring_ms) * MS
}

/// A bound on how long after `start_ns` the call's last packet can be.
pub(crate) fn max_duration_ns(spec: &CallSpec) -> i64 {
    let auth = spec.auth.map_or(0, |a| i64::from(a.retry_ms));
    let stalls: i64 = [&spec.impair.caller, &spec.impair.callee]
        .iter()
        .flat_map(|d| d.stalls.iter())
        .map(|s| i64::from(s.duration_ms))
        .sum();
    (i64::from(spec.ring_ms) + i64::from(spec.talk_ms) + auth + stalls) * MS + 40_000 * MS
}

/// A SIP message of a call, in the order of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SipMsg {
    /// The INVITE (also each retransmission).
    Invite,
    /// A provisional response to the INVITE: 100 (no To tag) or 180.
    Provisional(u16),
    /// 200 OK to the INVITE, with the SDP answer.
    InviteOk,
    /// A final non-2xx response to the INVITE.
    InviteFinal(u16),
    /// ACK for the 200 OK: a new transaction.
    AckOk,
    /// ACK for a non-2xx final response: same branch as the INVITE.
    AckFinal,
    /// CANCEL of the INVITE.
    Cancel,
    /// 200 OK to the CANCEL.
    CancelOk,
    /// BYE sent by this party.
    Bye(Party),
    /// 200 OK to the BYE sent by this party.
    ByeOk(Party),
    /// 183 Session Progress with the callee's SDP (early media).
    SessionProgress,
    /// Re-INVITE number `n` (index into [`reinvites`]), sent by the given party.
    ReInvite(u8, Party),
    /// 200 OK (with the SDP answer) to re-INVITE `n` sent by the given party.
    ReInviteOk(u8, Party),
    /// ACK for the 200 OK to re-INVITE `n` sent by the given party.
    ReAck(u8, Party),
    /// SIP INFO number `n` (index into [`CallSpec::infos`]), sent by the given party.
    Info(u8, Party),
    /// 200 OK to INFO `n`.
    InfoOk(u8, Party),
    /// Not SIP: a TCP segment without payload opening or closing the call's connection.
    Tcp(TcpControl),
    /// The first INVITE of a call whose INVITE is challenged.
    ChallengedInvite,
    /// The 401 or 407 challenging it.
    Challenge(u16),
    /// ACK for the challenge (same branch as the first INVITE).
    ChallengeAck,
}

/// The payload-less segments of a SIP-over-TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpControl {
    /// Caller: SYN.
    Syn,
    /// Callee: SYN-ACK.
    SynAck,
    /// Caller: ACK of the SYN-ACK.
    HandshakeAck,
    /// Caller: FIN-ACK.
    CallerFin,
    /// Callee: FIN-ACK.
    CalleeFin,
    /// Caller: the last ACK.
    LastAck,
}

/// One re-INVITE transaction of a call, with the SDP of its offer and answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReInvite {
    /// Who sends the re-INVITE (the offer).
    pub(crate) by: Party,
    /// Capture time of the re-INVITE (200 OK at +5 ms, ACK at +10 ms).
    pub(crate) at_ns: i64,
    /// What it does.
    pub(crate) kind: ReInviteKind,
    /// Direction attribute of the offer and of the answer.
    pub(crate) offer_dir: &'static str,
    pub(crate) answer_dir: &'static str,
    /// RTP port in the offer (the sender's) and in the answer (the other party's).
    pub(crate) offer_port: u16,
    pub(crate) answer_port: u16,
    /// SDP `o=` version of the offer and of the answer, as an increment of the session id.
    pub(crate) offer_version: u64,
    pub(crate) answer_version: u64,
    /// Codec of the offer and of the answer (the parties' current ones; the new one for a
    /// codec change).
    pub(crate) offer_codec: Codec,
    pub(crate) answer_codec: Codec,
    /// CSeq number of the re-INVITE, as an increment of the sender's first CSeq (the
    /// caller's INVITE CSeq, or the callee's first CSeq).
    pub(crate) cseq_step: u32,
}

/// What a re-INVITE does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReInviteKind {
    Hold,
    Resume,
    Move,
    Codec(Codec),
}

/// The re-INVITEs of a call in time order, with the SDP each side sends (see [`MidCall`]).
pub(crate) fn reinvites(spec: &CallSpec) -> Vec<ReInvite> {
    let Some(a) = answer_ns(spec) else { return Vec::new() };
    let mut events: Vec<(u32, Party, ReInviteKind, Option<u16>)> = Vec::new();
    for m in &spec.midcall {
        match *m {
            MidCall::Hold { by, at_ms, resume_ms } => {
                events.push((at_ms, by, ReInviteKind::Hold, None));
                if let Some(r) = resume_ms {
                    events.push((r, by, ReInviteKind::Resume, None));
                }
            }
            MidCall::MoveMedia { party, at_ms, rtp_port } => {
                events.push((at_ms, party, ReInviteKind::Move, Some(rtp_port)))
            }
            MidCall::ChangeCodec { by, at_ms, codec } => events.push((at_ms, by, ReInviteKind::Codec(codec), None)),
        }
    }
    events.sort_by_key(|e| e.0);
    // Per party (0 caller, 1 callee): current SDP (port, direction), o= version, re-INVITEs sent.
    let mut port = [spec.caller_rtp_port, spec.callee_rtp_port];
    let mut dir = ["sendrecv"; 2];
    let mut version = [0u64; 2];
    let mut sent = [0u32; 2];
    let mut codec = [spec.codec_of(Party::Caller), spec.codec_of(Party::Callee)];
    let idx = |p: Party| usize::from(p == Party::Callee);
    let mut out = Vec::with_capacity(events.len());
    for (at_ms, by, kind, new_port) in events {
        let (o, r) = (idx(by), 1 - idx(by));
        let (offer_dir, answer_dir) = match kind {
            ReInviteKind::Hold => ("sendonly", "recvonly"),
            ReInviteKind::Resume => ("sendrecv", "sendrecv"),
            ReInviteKind::Move | ReInviteKind::Codec(_) => (dir[o], dir[r]),
        };
        if let ReInviteKind::Codec(c) = kind {
            // A new SDP on both sides: new versions whatever else stays.
            codec = [c, c];
            version[o] += 1;
            version[r] += 1;
        }
        let offer_port = new_port.unwrap_or(port[o]);
        let answer_port = port[r];
        let mut bump = |side: usize, p: u16, d: &'static str| {
            if (p, d) != (port[side], dir[side]) {
                version[side] += 1;
                port[side] = p;
                dir[side] = d;
            }
            version[side]
        };
        let offer_version = bump(o, offer_port, offer_dir);
        let answer_version = bump(r, answer_port, answer_dir);
        sent[o] += 1;
        out.push(ReInvite {
            by,
            at_ns: a + i64::from(at_ms) * MS,
            kind,
            offer_dir,
            answer_dir,
            offer_port,
            answer_port,
            offer_version,
            answer_version,
            offer_codec: codec[o],
            answer_codec: codec[r],
            cseq_step: if by == Party::Caller { sent[o] } else { sent[o] - 1 }
                + infos_before(spec, by, |info_ms| info_ms < at_ms),
        });
    }
    out
}

/// INFOs sent by `by` whose `at_ms` passes `before`.
fn infos_before(spec: &CallSpec, by: Party, before: impl Fn(u32) -> bool) -> u32 {
    spec.infos.iter().filter(|i| i.by == by && before(i.at_ms)).count() as u32
}

/// INFO `n`'s CSeq number as an increment of its sender's first CSeq (as
/// [`ReInvite::cseq_step`]): after the sender's re-INVITEs up to its time and its earlier INFOs.
pub(crate) fn info_cseq_step(spec: &CallSpec, n: usize) -> u32 {
    let info = &spec.infos[n];
    let reinvites = spec
        .midcall
        .iter()
        .flat_map(|m| match *m {
            MidCall::Hold { by, at_ms, resume_ms } => vec![(by, at_ms), (by, resume_ms.unwrap_or(u32::MAX))],
            MidCall::MoveMedia { party, at_ms, .. } | MidCall::ChangeCodec { by: party, at_ms, .. } => {
                vec![(party, at_ms)]
            }
        })
        .filter(|&(by, at)| by == info.by && at <= info.at_ms)
        .count() as u32;
    let earlier = spec.infos[..n].iter().filter(|i| i.by == info.by && i.at_ms <= info.at_ms).count()
        + spec.infos[n + 1..].iter().filter(|i| i.by == info.by && i.at_ms < info.at_ms).count();
    let step = reinvites + earlier as u32 + 1;
    if info.by == Party::Caller { step } else { step - 1 }
}

/// Requests a party sends in the dialog after the answer besides its BYE (re-INVITEs, INFOs).
pub(crate) fn requests_sent(spec: &CallSpec, by: Party) -> u32 {
    reinvites(spec).iter().filter(|r| r.by == by).count() as u32 + infos_before(spec, by, |_| true)
}

/// When INFO `n` is sent: after a re-INVITE of the same time and its ACK.
pub(crate) fn info_ns(spec: &CallSpec, n: usize) -> Option<i64> {
    Some(answer_ns(spec)? + i64::from(spec.infos[n].at_ms) * MS + 3 * REPLY_DELAY_NS)
}

/// The holds of a call: (holder, hold re-INVITE time, resume re-INVITE time).
pub(crate) fn holds(spec: &CallSpec) -> Vec<(Party, i64, Option<i64>)> {
    let r = reinvites(spec);
    let mut out: Vec<(Party, i64, Option<i64>)> = Vec::new();
    for x in &r {
        match x.kind {
            ReInviteKind::Hold => out.push((x.by, x.at_ns, None)),
            ReInviteKind::Resume => {
                if let Some(h) = out.iter_mut().rev().find(|h| h.0 == x.by && h.2.is_none()) {
                    h.2 = Some(x.at_ns);
                }
            }
            ReInviteKind::Move | ReInviteKind::Codec(_) => {}
        }
    }
    out
}

/// The SIP messages of a call with their capture times, in order.
pub(crate) fn sip_schedule(spec: &CallSpec) -> Vec<(i64, SipMsg)> {
    let t = invite_ns(spec);
    let ring = i64::from(spec.ring_ms) * MS;
    let a = final_ns(spec);
    let trying = t + TRYING_MAX_NS.min(ring / 4);
    let ringing = t + RINGING_MAX_NS.min(ring / 2);
    let mut s = match spec.auth {
        Some(auth) => vec![
            (spec.start_ns, SipMsg::ChallengedInvite),
            (spec.start_ns + CHALLENGE_DELAY_NS, SipMsg::Challenge(auth.code)),
            (spec.start_ns + 2 * CHALLENGE_DELAY_NS, SipMsg::ChallengeAck),
            (t, SipMsg::Invite),
        ],
        None => vec![(t, SipMsg::Invite)],
    };
    match spec.outcome {
        Outcome::Answered { hangup } => {
            s.push((trying, SipMsg::Provisional(100)));
            s.push((
                ringing,
                if spec.early_media.is_some() { SipMsg::SessionProgress } else { SipMsg::Provisional(180) },
            ));
            let seen = ok_ns(spec).unwrap_or(a);
            s.push((seen, SipMsg::InviteOk));
            s.push((seen + ACK_DELAY_NS, SipMsg::AckOk));
            for (n, r) in reinvites(spec).iter().enumerate() {
                let n = n as u8;
                s.push((r.at_ns, SipMsg::ReInvite(n, r.by)));
                s.push((r.at_ns + REPLY_DELAY_NS, SipMsg::ReInviteOk(n, r.by)));
                s.push((r.at_ns + 2 * REPLY_DELAY_NS, SipMsg::ReAck(n, r.by)));
            }
            for (n, info) in spec.infos.iter().enumerate() {
                let at = info_ns(spec, n).unwrap_or(a);
                s.push((at, SipMsg::Info(n as u8, info.by)));
                s.push((at + REPLY_DELAY_NS, SipMsg::InfoOk(n as u8, info.by)));
            }
            let bye = a + i64::from(spec.talk_ms) * MS + BYE_DELAY_NS;
            let by = match hangup {
                Hangup::Caller => Some(Party::Caller),
                Hangup::Callee => Some(Party::Callee),
                Hangup::None => None,
            };
            if let Some(by) = by {
                s.push((bye, SipMsg::Bye(by)));
                s.push((bye + REPLY_DELAY_NS, SipMsg::ByeOk(by)));
            }
        }
        Outcome::Busy | Outcome::Rejected(_) => {
            let code = match spec.outcome {
                Outcome::Rejected(code) => code,
                _ => 486,
            };
            s.push((trying, SipMsg::Provisional(100)));
            s.push((a, SipMsg::InviteFinal(code)));
            s.push((a + REPLY_DELAY_NS, SipMsg::AckFinal));
        }
        Outcome::Cancelled => {
            s.push((trying, SipMsg::Provisional(100)));
            s.push((ringing, SipMsg::Provisional(180)));
            s.push((a, SipMsg::Cancel));
            s.push((a + REPLY_DELAY_NS, SipMsg::CancelOk));
            s.push((a + 2 * REPLY_DELAY_NS, SipMsg::InviteFinal(487)));
            s.push((a + 3 * REPLY_DELAY_NS, SipMsg::AckFinal));
        }
        Outcome::NoAnswer => {
            for r in INVITE_RETRANSMIT_NS {
                s.push((t + r, SipMsg::Invite));
            }
            let last = t + INVITE_RETRANSMIT_NS[3];
            s.push((last + TRYING_MAX_NS, SipMsg::Provisional(100)));
            s.push((last + RINGING_MAX_NS, SipMsg::Provisional(180)));
        }
        Outcome::NoResponse => {
            for r in INVITE_TIMER_B_RETRANSMIT_NS {
                s.push((t + r, SipMsg::Invite));
            }
        }
        Outcome::NoAck => {
            s.push((trying, SipMsg::Provisional(100)));
            s.push((ringing, SipMsg::Provisional(180)));
            s.push((a, SipMsg::InviteOk));
            for r in OK_RETRANSMIT_NS {
                s.push((a + r, SipMsg::InviteOk));
            }
        }
    }
    let connected = match spec.sip_transport {
        SipTransport::Udp => None,
        SipTransport::Tcp(tcp) => Some(tcp.coalesce_trying),
        SipTransport::WebSocket(_) | SipTransport::Sctp(_) => Some(false),
    };
    if let Some(coalesce_trying) = connected {
        if coalesce_trying
            && let Some(i) = s.iter().position(|m| m.1 == SipMsg::Provisional(100))
            && let Some(&(next, _)) = s[i + 1..].iter().find(|m| !crate::sip::sent_by_caller(m.1))
        {
            s[i].0 = next;
            s.sort_by_key(|m| m.0);
        }
        let last = s.last().map_or(t, |m| m.0);
        let t = spec.start_ns;
        let mut open = vec![
            (t - TCP_OPEN_NS, SipMsg::Tcp(TcpControl::Syn)),
            (t - TCP_OPEN_NS + MS, SipMsg::Tcp(TcpControl::SynAck)),
            (t - TCP_OPEN_NS + 2 * MS, SipMsg::Tcp(TcpControl::HandshakeAck)),
        ];
        open.append(&mut s);
        s = open;
        s.push((last + TCP_CLOSE_NS, SipMsg::Tcp(TcpControl::CallerFin)));
        s.push((last + TCP_CLOSE_NS + MS, SipMsg::Tcp(TcpControl::CalleeFin)));
        s.push((last + TCP_CLOSE_NS + 2 * MS, SipMsg::Tcp(TcpControl::LastAck)));
    }
    s
}

/// One RTP packet put on the wire by a [`RtpSchedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpSend {
    /// Capture time in ns, before the file's timestamp truncation.
    pub capture_ns: i64,
    /// Packet index within the stream (`seq = seq0 + index`).
    pub index: u32,
    /// This is the second copy of a duplicated packet.
    pub duplicate: bool,
    /// An early-media packet (callee only): `index` then counts the ringback packets from 0,
    /// and they all come before talk packet 0.
    pub early: bool,
}

/// The RTP packets one party of one call sends, in capture-time order, with every impairment
/// applied: early media first (callee only), then the talk packets, without those a hold keeps
/// from being sent. This is exactly the sequence the generator writes; [`rtp_packet`](crate::rtp_packet)
/// gives the bytes of each.
#[derive(Debug, Clone)]
pub struct RtpSchedule {
    base_ns: i64,
    ptime_ns: i64,
    ppm: f64,
    count: u32,
    slot: u32,
    jitter_ns: f64,
    jitter_key: u64,
    delay: Option<Delay>,
    /// Network stalls of this direction, `[from, until)` in ns.
    stalls: Vec<(i64, i64)>,
    /// Capture stalls of the whole capture, `[from, until)` in ns.
    capture_stalls: Vec<(i64, i64)>,
    /// Capture time of the last packet put out (order is kept).
    last_ns: i64,
    loss: Vec<u32>,
    duplicate: Vec<u32>,
    reorder: Vec<u32>,
    pending: Option<RtpSend>,
    /// Packet ranges not sent (the party is held).
    muted: Vec<(u32, u32)>,
    early: Option<crate::rtp::Early>,
    early_next: u32,
}

impl RtpSchedule {
    /// The schedule of `party` in call number `call_index` of `scenario`.
    ///
    /// Empty for calls that are not answered, for a silent direction and for an out-of-range
    /// index. The scenario is assumed valid (see [`Scenario::validate`]).
    pub fn new(scenario: &Scenario, call_index: usize, party: Party) -> RtpSchedule {
        let spec = scenario.calls.get(call_index);
        let base = spec.and_then(|s| rtp_nominal_ns(s, party, 0));
        let (Some(spec), Some(base_ns)) = (spec, base) else {
            return RtpSchedule::empty();
        };
        let impair = match party {
            Party::Caller => &spec.impair.caller,
            Party::Callee => &spec.impair.callee,
        };
        if impair.silent {
            return RtpSchedule::empty();
        }
        let ptime_ns = i64::from(spec.ptime_ms) * MS;
        let cap = (ptime_ns / 2 - MS).clamp(0, MAX_JITTER_NS) as f64;
        let plan = crate::rtp::StreamPlan::new(spec, party);
        let answer = answer_ns(spec).unwrap_or(0);
        RtpSchedule {
            base_ns,
            ptime_ns,
            ppm: impair.clock_ppm,
            count: spec.packets_per_direction(),
            slot: 0,
            jitter_ns: (impair.jitter_ms * MS as f64).min(cap),
            jitter_key: hash(&[scenario.seed, 0x717e, call_index as u64, party.key()]),
            delay: impair.delay,
            stalls: impair
                .stalls
                .iter()
                .map(|s| {
                    let from = answer + i64::from(s.at_ms) * MS;
                    (from, from + i64::from(s.duration_ms) * MS)
                })
                .collect(),
            capture_stalls: scenario
                .capture_stalls
                .iter()
                .map(|s| (s.at_ns, s.at_ns + i64::from(s.duration_ms) * MS))
                .collect(),
            last_ns: i64::MIN,
            loss: sorted(&impair.loss),
            duplicate: sorted(&impair.duplicate),
            reorder: sorted(&impair.reorder),
            pending: None,
            muted: plan.muted,
            early: plan.early,
            early_next: 0,
        }
    }

    fn empty() -> RtpSchedule {
        RtpSchedule {
            base_ns: 0,
            ptime_ns: 0,
            ppm: 0.0,
            count: 0,
            slot: 0,
            jitter_ns: 0.0,
            jitter_key: 0,
            delay: None,
            stalls: Vec::new(),
            capture_stalls: Vec::new(),
            last_ns: i64::MIN,
            loss: Vec::new(),
            duplicate: Vec::new(),
            reorder: Vec::new(),
            pending: None,
            muted: Vec::new(),
            early: None,
            early_next: 0,
        }
    }

    /// The packet sent in time slot `s`: `s` itself unless a reordering swapped it.
    fn packet_at_slot(&self, s: u32) -> u32 {
        if has(&self.reorder, s) {
            s + 1
        } else if s > 0 && has(&self.reorder, s - 1) {
            s - 1
        } else {
            s
        }
    }

    /// Capture time of slot `s`: jitter, delay and stalls of this direction included (not
    /// the ordering, not the capture stalls).
    fn slot_ns(&self, s: u32) -> i64 {
        let nominal = self.base_ns + slot_offset_ns(self.ptime_ns, self.ppm, s);
        let mut t = nominal;
        if self.jitter_ns > 0.0 {
            let u = unit_f64(hash(&[self.jitter_key, u64::from(s)]));
            t += (self.jitter_ns * (2.0 * u - 1.0)).round() as i64;
        }
        if let Some(d) = self.delay {
            t += self.extra_delay_ns(d, s, nominal - self.base_ns);
        }
        self.stalls.iter().fold(t, |t, &(from, until)| stalled(t, from, until))
    }

    /// The delay model's extra delay of slot `s`, `since` ns after slot 0's nominal time.
    fn extra_delay_ns(&self, d: Delay, s: u32, since: i64) -> i64 {
        let u = |k: u64, x: u64| unit_f64(hash(&[self.jitter_key, 0xde1a, k, x]));
        let ms = match d {
            Delay::Uniform { max_ms } => u(0, u64::from(s)) * max_ms,
            Delay::Bursty { max_ms, burst_ms, gap_ms } => {
                let period = (i64::from(burst_ms) + i64::from(gap_ms)).max(1) * MS;
                let epoch = since.div_euclid(period) as u64;
                let at = since.rem_euclid(period);
                let start = (u(1, epoch) * f64::from(gap_ms)) as i64 * MS;
                let len = ((0.5 + u(2, epoch)) * f64::from(burst_ms)) as i64 * MS;
                let noise = u(3, u64::from(s)) * max_ms / 20.0;
                if (start..start + len).contains(&at) { max_ms * (0.5 + 0.5 * u(4, epoch)) - noise } else { noise }
            }
        };
        (ms * MS as f64).round() as i64
    }

    /// The capture time of a packet due at `t`: after the one before it, the capture stalls
    /// applied.
    fn out(&mut self, t: i64) -> i64 {
        let t = t.max(self.last_ns.saturating_add(MIN_SPACING_NS));
        self.last_ns = t;
        self.capture_stalls.iter().fold(t, |t, &(from, until)| stalled(t, from, until))
    }
}

impl Iterator for RtpSchedule {
    type Item = RtpSend;

    fn next(&mut self) -> Option<RtpSend> {
        if let Some(mut copy) = self.pending.take() {
            copy.capture_ns = self.out(copy.capture_ns);
            return Some(copy);
        }
        if let Some(e) = self.early
            && self.early_next < e.count
        {
            let index = self.early_next;
            self.early_next += 1;
            let capture_ns = self.out(e.time_ns(index));
            return Some(RtpSend { capture_ns, index, duplicate: false, early: true });
        }
        while self.slot < self.count {
            let s = self.slot;
            self.slot += 1;
            let index = self.packet_at_slot(s);
            if has(&self.loss, index) || self.muted.iter().any(|&(a, b)| (a..b).contains(&index)) {
                continue;
            }
            // A reordered packet is held back in the network: it arrives 1 ms after the packet
            // that follows it, which itself arrives on time.
            let capture_ns = if has(&self.reorder, s) {
                self.slot_ns(s + 1)
            } else if s > 0 && has(&self.reorder, s - 1) {
                self.slot_ns(s) + REORDER_DELAY_NS
            } else {
                self.slot_ns(s)
            };
            let due = capture_ns;
            let capture_ns = self.out(due);
            if has(&self.duplicate, index) {
                // Due 1 ms after the original was (or is) captured, whichever is later.
                let copy = (due + DUPLICATE_DELAY_NS).max(self.last_ns);
                self.pending = Some(RtpSend { capture_ns: copy, index, duplicate: true, early: false });
            }
            return Some(RtpSend { capture_ns, index, duplicate: false, early: false });
        }
        None
    }
}

/// Per-direction counts implied by the impairments (see [`StreamTruth`](crate::StreamTruth)).
pub(crate) struct StreamCounts {
    pub(crate) unique: u32,
    pub(crate) lost: u32,
    pub(crate) duplicates: u32,
    pub(crate) reordered: u32,
}

pub(crate) fn stream_counts(spec: &CallSpec, party: Party) -> StreamCounts {
    let impair = match party {
        Party::Caller => &spec.impair.caller,
        Party::Callee => &spec.impair.callee,
    };
    let n = spec.packets_per_direction();
    if impair.silent || answer_ns(spec).is_none() {
        return StreamCounts { unique: 0, lost: 0, duplicates: 0, reordered: 0 };
    }
    let loss = sorted(&impair.loss);
    let lost = loss.len() as u32;
    let duplicates = sorted(&impair.duplicate).iter().filter(|k| !has(&loss, **k)).count() as u32;
    let reordered = sorted(&impair.reorder).iter().filter(|&&k| !has(&loss, k) && !has(&loss, k + 1)).count() as u32;
    let plan = crate::rtp::StreamPlan::new(spec, party);
    StreamCounts { unique: n - lost - plan.muted_count() + plan.early_count(), lost, duplicates, reordered }
}

fn sorted(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

fn has(sorted: &[u32], k: u32) -> bool {
    sorted.binary_search(&k).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DirImpair;

    fn scenario(call: CallSpec) -> Scenario {
        Scenario::new(vec![call])
    }

    #[test]
    fn impairments_shape_the_schedule() {
        let mut c = CallSpec::answered(0, 0, 200); // 10 packets
        c.impair.caller = DirImpair { loss: vec![2], duplicate: vec![4, 2], reorder: vec![6], ..DirImpair::default() };
        let s = scenario(c);
        let order: Vec<_> = RtpSchedule::new(&s, 0, Party::Caller).map(|p| (p.index, p.duplicate)).collect();
        let expected = [
            (0, false),
            (1, false),
            (3, false),
            (4, false),
            (4, true),
            (5, false),
            (7, false),
            (6, false),
            (8, false),
            (9, false),
        ];
        assert_eq!(order, expected);
        let counts = stream_counts(&s.calls[0], Party::Caller);
        assert_eq!((counts.unique, counts.lost, counts.duplicates, counts.reordered), (9, 1, 1, 1));
    }

    #[test]
    fn jitter_never_reorders_and_is_bounded() {
        let mut c = CallSpec::answered(0, 0, 10_000);
        c.ptime_ms = 10;
        c.impair.callee.jitter_ms = 50.0;
        c.impair.callee.duplicate = (0..1000).step_by(3).collect();
        let s = Scenario { seed: 7, ..scenario(c.clone()) };
        let mut last = i64::MIN;
        let mut moved = 0;
        for p in RtpSchedule::new(&s, 0, Party::Callee) {
            assert!(p.capture_ns > last);
            last = p.capture_ns;
            if !p.duplicate {
                let nominal = rtp_nominal_ns(&c, Party::Callee, p.index).unwrap();
                let off = (p.capture_ns - nominal).abs();
                assert!(off <= 4 * MS, "offset {off}");
                moved += usize::from(off > 0);
            }
        }
        assert!(moved > 900);
    }

    #[test]
    fn delay_models_keep_order_and_their_bounds() {
        for delay in [Delay::Uniform { max_ms: 60.0 }, Delay::Bursty { max_ms: 60.0, burst_ms: 1500, gap_ms: 4000 }] {
            let mut c = CallSpec::answered(0, 0, 60_000);
            c.impair.callee.delay = Some(delay);
            let s = Scenario { seed: 3, ..scenario(c.clone()) };
            let mut last = i64::MIN;
            let (mut big, mut n) = (0, 0);
            for p in RtpSchedule::new(&s, 0, Party::Callee) {
                assert!(p.capture_ns >= last + MIN_SPACING_NS, "{delay:?}: order kept");
                last = p.capture_ns;
                let nominal = rtp_nominal_ns(&c, Party::Callee, p.index).unwrap();
                let extra = p.capture_ns - nominal;
                // FIFO can add to a packet's delay, never make it leave before it was sent.
                assert!((0..=61 * MS).contains(&extra), "{delay:?}: packet {} delayed {extra}", p.index);
                big += usize::from(extra > 30 * MS);
                n += 1;
            }
            assert_eq!(n, 3000);
            match delay {
                // Half of them by the draw, some more behind a packet delayed longer (FIFO).
                Delay::Uniform { .. } => assert!((1400..2100).contains(&big), "about half above 30 ms: {big}"),
                // Bursts take about 1.5 s of every 5.5 s.
                Delay::Bursty { .. } => assert!((400..1300).contains(&big), "in bursts: {big}"),
            }
        }
    }

    #[test]
    fn a_stall_holds_packets_and_lets_them_go_in_a_burst() {
        let mut c = CallSpec::answered(0, 0, 20_000);
        c.impair.caller.stalls = vec![crate::spec::Stall { at_ms: 5000, duration_ms: 3000 }];
        let s = scenario(c.clone());
        let a = answer_ns(&c).unwrap();
        let (from, until) = (a + 5000 * MS, a + 8000 * MS);
        let mut last = i64::MIN;
        let mut burst = 0;
        for p in RtpSchedule::new(&s, 0, Party::Caller) {
            assert!(p.capture_ns > last);
            last = p.capture_ns;
            let nominal = rtp_nominal_ns(&c, Party::Caller, p.index).unwrap();
            if (from..until).contains(&nominal) {
                burst += 1;
                // Released at the end, 100 times faster than they were due.
                assert_eq!(p.capture_ns, until + (nominal - from) / STALL_SPEEDUP, "packet {}", p.index);
            } else {
                assert_eq!(p.capture_ns, nominal.max(stalled(nominal, from, until)), "packet {}", p.index);
            }
        }
        assert_eq!(burst, 150);
        // The whole capture stalls: SIP and both directions alike, order kept.
        let c = CallSpec::answered(0, 0, 20_000);
        let stall = crate::spec::CaptureStall { at_ns: a + 5000 * MS, duration_ms: 3000 };
        let s = Scenario { capture_stalls: vec![stall], ..scenario(c) };
        for party in [Party::Caller, Party::Callee] {
            let times: Vec<i64> = RtpSchedule::new(&s, 0, party).map(|p| p.capture_ns).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]));
            assert!(times.iter().all(|&t| !(from..until).contains(&t)), "nothing captured during the stall");
        }
    }

    #[test]
    fn a_challenge_delays_the_call_and_is_answered_by_a_new_invite() {
        let mut c = CallSpec::answered(1, 1_000, 2000);
        c.auth = Some(crate::spec::AuthChallenge { code: 407, retry_ms: 51_000 });
        let s = sip_schedule(&c);
        assert_eq!(
            s[..4].iter().map(|m| m.1).collect::<Vec<_>>(),
            vec![SipMsg::ChallengedInvite, SipMsg::Challenge(407), SipMsg::ChallengeAck, SipMsg::Invite]
        );
        assert_eq!(s[3].0, 1_000 + 51_000 * MS);
        assert_eq!(answer_ns(&c), Some(1_000 + 52_000 * MS));
    }

    #[test]
    fn sip_schedule_is_ordered_for_every_outcome() {
        for outcome in [
            Outcome::Answered { hangup: Hangup::Callee },
            Outcome::Busy,
            Outcome::Rejected(603),
            Outcome::Cancelled,
            Outcome::NoAnswer,
            Outcome::NoResponse,
            Outcome::NoAck,
        ] {
            for ring in [0, 1, 30, 5000] {
                let mut c = CallSpec::answered(1, 1_000, 100);
                c.ring_ms = ring;
                c.outcome = outcome;
                let s = sip_schedule(&c);
                assert!(s.windows(2).all(|w| w[0].0 <= w[1].0), "{outcome:?} {ring}");
            }
        }
    }
}
