//! The dialog tracker: one state machine per Call-ID, driven by SIP messages and capture time.
//!
//! Sans-IO: `handle_sip` takes a parsed message and the packet's capture time, `sweep` fires
//! timers at a given capture time, and every outcome leaves as a [`CallEvent`] through the sink
//! or as a media-table registration. Nothing here reads a clock or does I/O, so replaying a
//! capture is deterministic.
//!
//! A passive observer misses messages, sees retransmissions and sees the same dialog on several
//! hops through proxies. A message that does not fit the call's state is absorbed (counted where
//! it matters), never a panic and never a lost call.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use rustc_hash::{FxHashMap, FxHasher};

use crate::call::codec::PayloadMap;
use crate::call::media::{MediaKind, MediaOwner, MediaTable, SenderHosts, is_private};
use crate::events::{
    AmbiguousMedia, CallEvent, CallInfo, CallRef, CallStart, CallState, Challenge, Dtmf, DtmfSource, EndReason,
    EventSink, Hold, MediaAnnounce, OtherMedia, Party, Side, event_name,
};
use crate::limits::{Limits, Timeouts};
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::transport::decode::Transport;
use crate::wire::Layer;
use crate::wire::sdp;
use crate::wire::sip::{Method, NameAddr, SipMessage, param, parse_name_addr, trim};

/// Recent messages remembered per call to recognise retransmissions.
const RECENT_MESSAGES: usize = 16;
/// DTMF digits (SIP INFO) kept per call.
const MAX_DTMF: usize = 256;
/// Hold periods kept per call.
const MAX_HOLDS: usize = 64;
/// Distinct To-tags (early dialogs) remembered per call.
const MAX_TAGS: usize = 8;
/// Addresses with ambiguous packets named per call.
const MAX_AMBIGUOUS_ADDRESSES: usize = 8;
/// RFC 3261 T2: the longest gap between retransmissions of an INVITE over UDP.
const INVITE_RETRANSMIT_MAX: i64 = 4 * Timestamp::SECOND;
/// Challenges remembered per call.
const MAX_CHALLENGES: usize = 8;
/// Non-audio media lines followed per call.
const MAX_OTHER_MEDIA: usize = 8;

/// State of one call.
#[derive(Debug)]
struct Call {
    call_id: Box<[u8]>,
    caller_tag: Option<Box<[u8]>>,
    from: Party,
    to: Party,
    asserted: Option<Party>,
    caller_signalling: SocketAddr,
    callee_signalling: SocketAddr,
    caller_media: Option<SocketAddr>,
    callee_media: Option<SocketAddr>,
    /// Addresses this call registered in the media table, oldest first.
    media_keys: Vec<MediaKey>,
    /// Flows (source, destination) attributed to this call in the media table, oldest first.
    flows: Vec<(SocketAddr, SocketAddr)>,
    /// Packets sent to this call's addresses that could not be told apart from other calls'
    /// media there, per address.
    ambiguous: Vec<AmbiguousMedia>,
    /// Last media announcement per owner side, to skip re-announcing retransmitted SDP.
    announced: [Option<Announced>; 2],
    /// ZRTP was seen on the media address of each receiving side (reported once).
    zrtp: [bool; 2],
    start: Timestamp,
    ringing: Option<Timestamp>,
    answer: Option<Timestamp>,
    end: Option<Timestamp>,
    state: CallState,
    ended_by: Option<Side>,
    final_code: Option<u16>,
    /// Highest CSeq of an initial (out-of-dialog) INVITE.
    invite_cseq: u32,
    last_activity: Timestamp,
    /// When the call is to be finalised, and with which reason.
    deadline: Option<(Timestamp, EndReason)>,
    /// A 401/407 challenge is waiting for the authenticated INVITE.
    challenged: Option<u16>,
    /// Every challenge to the INVITE.
    challenges: Vec<Challenge>,
    /// Non-audio media lines.
    other_media: Vec<OtherMedia>,
    sip_messages: u32,
    invites: u32,
    retransmissions: u32,
    /// Fingerprints of recent messages (a ring), to recognise retransmissions.
    recent: [u64; RECENT_MESSAGES],
    recent_next: usize,
    /// To-tags seen in responses to the INVITE (early dialogs; several = forking).
    to_tags: Vec<Box<[u8]>>,
    /// To-tag of the dialog that was answered.
    answered_tag: Option<Box<[u8]>>,
    dtmf: Vec<Dtmf>,
    holds: Vec<Hold>,
    /// First seen mid-dialog (the capture started after the call did).
    joined: bool,
    /// Transport of the first INVITE.
    transport: Transport,
    /// RTP was seen for this call.
    had_media: bool,
    /// First INVITE of the latest initial INVITE transaction (timer B runs from it).
    invite_at: Timestamp,
    /// Any response to the initial INVITE was seen.
    responded: bool,
    /// The dialog is confirmed: an ACK for the 2xx, or any later request or RTP, was seen.
    confirmed: bool,
    /// The 2xx answer was seen again (the answerer is waiting for the ACK).
    ok_retransmitted: bool,
}

/// What a party's last media announcement said: address, payload types, direction, encryption.
type Announced = (SocketAddr, PayloadMap, sdp::Direction, Option<sdp::Security>);

/// A media address registered by a call.
#[derive(Debug, Clone)]
struct MediaKey {
    addr: SocketAddr,
    /// The party that receives there (whose SDP announced it, or who was seen sending from it).
    owner: Side,
    kind: MediaKind,
    /// For the callee's addresses: the To-tag of the (early) dialog that announced it.
    tag: Option<Box<[u8]>>,
    /// Ambiguous packets the address had seen when this call claimed it.
    ambiguous_base: u64,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    call: Option<Call>,
}

/// Tracks every call on the wire by Call-ID.
#[derive(Debug)]
pub struct DialogTracker {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_id: FxHashMap<Box<[u8]>, u32>,
    limits: Limits,
    timeouts: Timeouts,
    /// Capture time of the last RTP packet of any call: media is visible on this capture.
    last_rtp: Timestamp,
}

/// Everything the tracker touches besides itself, borrowed from the engine per message.
pub(crate) struct Ctx<'a, S> {
    pub(crate) media: &'a mut MediaTable,
    pub(crate) stats: &'a mut CaptureStats,
    pub(crate) sink: &'a mut S,
}

impl DialogTracker {
    /// A tracker with the given caps and timeouts.
    pub fn new(limits: Limits, timeouts: Timeouts) -> DialogTracker {
        DialogTracker {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            limits,
            timeouts,
            last_rtp: Timestamp(i64::MIN),
        }
    }

    /// Calls currently tracked.
    pub fn open_calls(&self) -> usize {
        self.by_id.len()
    }

    /// Every call currently tracked.
    pub fn open_call_refs(&self) -> impl Iterator<Item = CallRef> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.call.is_some())
            .map(|(i, s)| CallRef { slot: i as u32, generation: s.generation })
    }

    /// Records media activity (an RTP packet) on a call, keeping it from timing out.
    #[inline]
    pub fn touch(&mut self, call: CallRef, now: Timestamp) {
        self.last_rtp = now;
        if let Some(c) = self.call_mut(call) {
            c.had_media = true;
            c.confirmed = true;
            if now > c.last_activity {
                c.last_activity = now;
            }
        }
    }

    fn call_mut(&mut self, call: CallRef) -> Option<&mut Call> {
        let slot = self.slots.get_mut(call.slot as usize)?;
        if slot.generation != call.generation {
            return None;
        }
        slot.call.as_mut()
    }

    fn call_ref(&self, call: CallRef) -> Option<&Call> {
        let slot = self.slots.get(call.slot as usize)?;
        if slot.generation != call.generation {
            return None;
        }
        slot.call.as_ref()
    }

    /// Ties the flow `src -> dst` to `owner` (its first packet was attributed) and learns where
    /// the sender receives (symmetric RTP: where it sends from). The call's oldest flow makes
    /// room when it holds `Limits::max_media_flows_per_call`.
    pub(crate) fn attribute_flow(
        &mut self,
        owner: MediaOwner,
        src: SocketAddr,
        dst: SocketAddr,
        media: &mut MediaTable,
        stats: &mut CaptureStats,
    ) {
        let max_flows = self.limits.max_media_flows_per_call.max(1);
        let max_media = self.limits.max_media_per_call.max(1);
        let Some(c) = self.call_mut(owner.call) else { return };
        if c.flows.len() >= max_flows {
            let (s, d) = c.flows.remove(0);
            media.remove_flow(s, d, owner.call);
            stats.media_flows_evicted += 1;
        }
        c.flows.push((src, dst));
        media.insert_flow(src, dst, owner);
        // Symmetric RTP: the sender receives where it sends from. Learned once per flow, never
        // beside another call's announcement, and within the call's media cap.
        let receiver = owner.sender;
        if c.media_keys.len() < max_media && !c.media_keys.iter().any(|k| k.addr == src) {
            let learned = MediaOwner { call: owner.call, sender: receiver.other(), kind: owner.kind, learned: true };
            if media.learn(src, learned) {
                let ambiguous_base = media.ambiguous_at(&src).0;
                c.media_keys.push(MediaKey { addr: src, owner: receiver, kind: owner.kind, tag: None, ambiguous_base });
                stats.media_learned += 1;
            }
        }
    }

    /// A datagram of `call`'s non-audio media line `line`, sent by `sender`.
    pub(crate) fn count_other_media(&mut self, call: CallRef, line: u8, sender: Side, now: Timestamp) {
        if let Some(c) = self.call_mut(call)
            && let Some(m) = c.other_media.get_mut(usize::from(line))
        {
            m.packets[sender.index()] += 1;
            c.had_media = true;
            if now > c.last_activity {
                c.last_activity = now;
            }
        }
    }

    /// ZRTP was seen on a media address of `call` that `sender` sends to. True the first time
    /// for that sender (the mixer is told once).
    pub(crate) fn note_zrtp(&mut self, call: CallRef, sender: Side) -> bool {
        match self.call_mut(call) {
            Some(c) if !c.zrtp[sender.index()] => {
                c.zrtp[sender.index()] = true;
                true
            }
            _ => false,
        }
    }

    /// Feeds one SIP message seen at `now` from `src` to `dst`.
    pub(crate) fn handle_sip<S: EventSink>(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMessage<'_>,
        transport: Transport,
        ctx: &mut Ctx<'_, S>,
    ) -> Option<CallRef> {
        let Some(call_id) = msg.call_id else {
            ctx.stats.sip_without_call_id += 1;
            return None;
        };
        let idx = match self.by_id.get(call_id) {
            Some(&idx) => idx,
            None => {
                let has_to_tag = msg.to.is_some_and(|to| parse_name_addr(to).tag.is_some());
                let is_initial_invite = msg.method() == Some(Method::Invite) && !has_to_tag;
                // A re-INVITE or UPDATE with SDP of a dialog that started before the capture:
                // the call is joined in progress, so its media is recorded from here on.
                let joins =
                    matches!(msg.method(), Some(Method::Invite | Method::Update)) && has_to_tag && msg.has_sdp();
                if !is_initial_invite && !joins {
                    let in_dialog_call_method =
                        matches!(
                            msg.method(),
                            Some(
                                Method::Invite
                                    | Method::Bye
                                    | Method::Ack
                                    | Method::Cancel
                                    | Method::Update
                                    | Method::Prack
                            )
                        ) || msg.cseq.is_some_and(|c| matches!(c.method, Method::Invite | Method::Bye));
                    if in_dialog_call_method {
                        ctx.stats.sip_unknown_dialog += 1;
                    } else {
                        ctx.stats.sip_not_call += 1;
                    }
                    return None;
                }
                self.start_call(now, src, dst, call_id, msg, joins, transport, ctx)?
            }
        };
        let generation = self.slots[idx as usize].generation;
        let call_ref = CallRef { slot: idx, generation };
        let call = self.slots[idx as usize].call.as_mut()?;
        call.sip_messages += 1;
        if now > call.last_activity {
            call.last_activity = now;
        }
        // The same message again on the same hop is a retransmission: counted, not acted on
        // twice. The same message on another hop (through a proxy) is acted on, idempotently.
        let fp = fingerprint(msg, src, dst);
        if call.recent.contains(&fp) {
            call.retransmissions += 1;
            if msg.status().is_some_and(|c| (200..300).contains(&c))
                && msg.cseq.is_some_and(|c| c.method == Method::Invite)
            {
                call.ok_retransmitted = true;
            }
            return Some(call_ref);
        }
        call.recent[call.recent_next] = fp;
        call.recent_next = (call.recent_next + 1) % RECENT_MESSAGES;
        let sender = sender_side(call, msg, src);
        let to_tag = msg.to.and_then(|to| parse_name_addr(to).tag);
        let timeouts = &self.timeouts;
        let limits = &self.limits;

        if let Some(method) = msg.method() {
            // Any request in the dialog after the answer (the ACK first) confirms it.
            if call.answer.is_some() && method != Method::Cancel && to_tag.is_some() {
                call.confirmed = true;
            }
            match method {
                Method::Invite => {
                    call.invites += 1;
                    let in_dialog = msg.to.is_some_and(|to| parse_name_addr(to).tag.is_some());
                    let from_tag = msg.from.and_then(|f| parse_name_addr(f).tag);
                    let same_caller = match (from_tag, call.caller_tag.as_deref()) {
                        (Some(t), Some(c)) => t == c,
                        _ => true,
                    };
                    if !in_dialog
                        && let Some(cseq) = msg.cseq
                        && cseq.seq > call.invite_cseq
                    {
                        // The INVITE re-sent after a 401/407 challenge (or a new fork hop).
                        call.invite_cseq = cseq.seq;
                        call.invite_at = now;
                        call.responded = false;
                        if same_caller && call.challenged.take().is_some() {
                            // RFC 3261 22.2: the same call goes on, however long the caller took.
                            call.deadline = None;
                            call.final_code = None;
                            call.end = None;
                            if let Some(c) = call.challenges.last_mut() {
                                c.retried.get_or_insert(now);
                            }
                        }
                    }
                }
                Method::Bye if call.deadline.is_none_or(|(_, r)| r != EndReason::Bye) => {
                    call.state = CallState::Completed;
                    call.ended_by = Some(sender);
                    call.end = Some(now);
                    call.deadline = Some((now.add_nanos(timeouts.bye_linger), EndReason::Bye));
                }
                Method::Cancel if call.answer.is_none() && call.state != CallState::Cancelled => {
                    call.state = CallState::Cancelled;
                    call.ended_by = Some(sender);
                    call.end = Some(now);
                    call.deadline = Some((now.add_nanos(timeouts.failure_linger), EndReason::Cancel));
                }
                Method::Info if call.dtmf.len() < MAX_DTMF => {
                    if let Some(d) = info_dtmf(msg, sender, now) {
                        call.dtmf.push(d);
                    }
                }
                _ => {}
            }
        } else if let (Some(code), Some(cseq)) = (msg.status(), msg.cseq)
            && cseq.method == Method::Invite
        {
            let initial = call.answer.is_none();
            if initial {
                call.responded = true;
            }
            if initial
                && (101..=299).contains(&code)
                && let Some(tag) = to_tag
                && call.to_tags.len() < MAX_TAGS
                && !call.to_tags.iter().any(|t| **t == *tag)
            {
                call.to_tags.push(tag.into());
            }
            match code {
                180..=189 if initial => {
                    if call.state == CallState::Setup {
                        call.state = CallState::Ringing;
                    }
                    call.ringing.get_or_insert(now);
                }
                200..=299 if call.answer.is_none() => {
                    call.answer = Some(now);
                    call.final_code = Some(code);
                    // Forking: the answered dialog's media is the call's; early media of the
                    // other branches stops being attributed to it.
                    if let Some(tag) = to_tag {
                        call.answered_tag = Some(tag.into());
                        let other_branch =
                            |k: &MediaKey| k.owner == Side::Callee && k.tag.as_deref().is_some_and(|t| t != tag);
                        let (gone, kept) = std::mem::take(&mut call.media_keys).into_iter().partition(other_branch);
                        call.media_keys = kept;
                        for k in gone {
                            release_key(call, &k, call_ref, ctx.media);
                        }
                    }
                    // A 2xx wins over a CANCEL or a failure on another branch that crossed it.
                    if matches!(
                        call.state,
                        CallState::Setup | CallState::Ringing | CallState::Cancelled | CallState::Rejected
                    ) {
                        call.state = CallState::InCall;
                        call.ended_by = None;
                        call.end = None;
                        call.deadline = None;
                    }
                    call.challenged = None;
                }
                401 | 407 if initial => {
                    if call.challenged.is_none() && call.challenges.len() < MAX_CHALLENGES {
                        call.challenges.push(Challenge { code, time: now, retried: None });
                    }
                    call.challenged = Some(code);
                    call.final_code = Some(code);
                    call.end = Some(now);
                    call.deadline = Some((now.add_nanos(timeouts.auth_wait), EndReason::Rejected));
                }
                300..=699 if initial => {
                    if call.state == CallState::Cancelled {
                        call.final_code.get_or_insert(code);
                    } else if call.deadline.is_none_or(|(_, r)| r != EndReason::Rejected) || call.challenged.is_some() {
                        call.challenged = None;
                        call.state = CallState::Rejected;
                        call.final_code = Some(code);
                        call.end = Some(now);
                        call.deadline = Some((now.add_nanos(timeouts.failure_linger), EndReason::Rejected));
                    }
                }
                _ => {}
            }
        }

        if msg.has_sdp() {
            // Media from a branch other than the answered one is not the call's.
            let other_branch = sender == Side::Callee
                && msg.status().is_some()
                && matches!((&call.answered_tag, to_tag), (Some(a), Some(t)) if **a != *t);
            if !other_branch {
                let tag = if sender == Side::Callee { to_tag } else { None };
                apply_sdp(call, call_ref, sender, tag, src, msg.body, now, limits, ctx);
            }
        }
        Some(call_ref)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_call<S: EventSink>(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        call_id: &[u8],
        msg: &SipMessage<'_>,
        joined: bool,
        transport: Transport,
        ctx: &mut Ctx<'_, S>,
    ) -> Option<u32> {
        if self.by_id.len() >= self.limits.max_calls {
            ctx.stats.calls_shed += 1;
            return None;
        }
        let from = msg.from.map(parse_name_addr).unwrap_or_default();
        let to = msg.to.map(parse_name_addr).unwrap_or_default();
        let call = Call {
            call_id: call_id.into(),
            caller_tag: from.tag.map(Into::into),
            from: party(&from),
            to: party(&to),
            asserted: msg.p_asserted_identity.map(|v| party(&parse_name_addr(v))),
            caller_signalling: src,
            callee_signalling: dst,
            caller_media: None,
            callee_media: None,
            media_keys: Vec::new(),
            flows: Vec::new(),
            ambiguous: Vec::new(),
            announced: [None, None],
            zrtp: [false, false],
            start: now,
            ringing: None,
            answer: None,
            end: None,
            state: if joined { CallState::InCall } else { CallState::Setup },
            ended_by: None,
            final_code: None,
            invite_cseq: msg.cseq.map_or(0, |c| c.seq),
            last_activity: now,
            deadline: None,
            challenged: None,
            challenges: Vec::new(),
            other_media: Vec::new(),
            sip_messages: 0,
            invites: 0,
            retransmissions: 0,
            recent: [0; RECENT_MESSAGES],
            recent_next: 0,
            to_tags: Vec::new(),
            answered_tag: None,
            dtmf: Vec::new(),
            holds: Vec::new(),
            joined,
            transport,
            had_media: false,
            invite_at: now,
            responded: false,
            confirmed: joined,
            ok_retransmitted: false,
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let start_info = CallStart {
            call_id: String::from_utf8_lossy(call_id).into_owned(),
            start: now,
            from: call.from.clone(),
            to: call.to.clone(),
        };
        let slot = &mut self.slots[idx as usize];
        slot.call = Some(call);
        self.by_id.insert(call_id.into(), idx);
        ctx.stats.calls_started += 1;
        let call_ref = CallRef { slot: idx, generation: slot.generation };
        ctx.sink.call(CallEvent::Started { call: call_ref, info: Box::new(start_info) });
        Some(idx)
    }

    /// Fires every timer due at `now`: lingers after BYE/CANCEL/failures, challenges that were
    /// never answered, 2xx answers never acknowledged, media and setup timeouts.
    pub(crate) fn sweep<S: EventSink>(&mut self, now: Timestamp, ctx: &mut Ctx<'_, S>) {
        let t = self.timeouts.clone();
        // RTP of some call seen lately: media is on this capture, so an answered call without
        // any is not merely one whose media takes another path.
        let media_visible = now.since(self.last_rtp) < t.media;
        for idx in 0..self.slots.len() {
            let Some(call) = self.slots[idx].call.as_ref() else { continue };
            let idle = now.since(call.last_activity);
            let due = if let Some((at, reason)) = call.deadline {
                (now >= at).then_some((reason, call.end.unwrap_or(call.last_activity)))
            } else if let Some(answer) = call.answer.filter(|_| !call.confirmed && call.ok_retransmitted) {
                // RFC 3261 13.3.1.4: the answerer retransmitted its 2xx and no ACK (nor RTP, nor
                // any request of the dialog) came within 64*T1: the session is not established.
                (now.since(answer) >= t.no_ack).then_some((EndReason::NoAck, call.last_activity))
            } else if call.answer.is_some() || call.joined {
                let limit = if call.had_media || media_visible { t.media } else { t.signalling_only };
                (idle >= limit && !recent_ambiguity(call, ctx.media, now, limit))
                    .then_some((EndReason::MediaTimeout, call.last_activity))
            } else if !call.responded {
                // RFC 3261 timer B: an INVITE without any response is given up after 64*T1.
                (now.since(call.invite_at) >= t.invite && idle >= INVITE_RETRANSMIT_MAX)
                    .then_some((EndReason::SetupTimeout, call.last_activity))
            } else {
                (idle >= t.setup).then_some((EndReason::SetupTimeout, call.last_activity))
            };
            if let Some((reason, end)) = due {
                self.finalize(idx as u32, reason, end, ctx);
            }
        }
    }

    /// Finalises every open call (end of input or shutdown). Calls already winding down (BYE,
    /// CANCEL, failure) keep their own reason.
    pub(crate) fn finish_all<S: EventSink>(&mut self, now: Timestamp, reason: EndReason, ctx: &mut Ctx<'_, S>) {
        for idx in 0..self.slots.len() {
            let Some(call) = self.slots[idx].call.as_ref() else { continue };
            let (reason, end) = match call.deadline {
                // Winding down, or challenged and never re-sent (rejected by the challenge).
                Some((_, pending)) => (pending, call.end.unwrap_or(now)),
                _ => (reason, now),
            };
            self.finalize(idx as u32, reason, end, ctx);
        }
    }

    fn finalize<S: EventSink>(&mut self, idx: u32, reason: EndReason, end: Timestamp, ctx: &mut Ctx<'_, S>) {
        let slot = &mut self.slots[idx as usize];
        let Some(call) = slot.call.take() else { return };
        let call_ref = CallRef { slot: idx, generation: slot.generation };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx);
        self.by_id.remove(&call.call_id);
        let mut call = call;
        let keys = std::mem::take(&mut call.media_keys);
        for key in &keys {
            note_ambiguous(&mut call, key, ctx.media);
        }
        for &(src, dst) in &call.flows {
            ctx.media.remove_flow(src, dst, call_ref);
        }
        for key in &keys {
            ctx.media.release(&key.addr, call_ref);
        }
        let mut state = call.state;
        let mut final_code = call.final_code;
        if let Some(code) = call.challenged {
            state = CallState::Rejected;
            final_code = Some(code);
        }
        ctx.stats.calls_ended += 1;
        let info = CallInfo {
            call_id: String::from_utf8_lossy(&call.call_id).into_owned(),
            from: call.from,
            to: call.to,
            asserted: call.asserted,
            caller_signalling: call.caller_signalling,
            callee_signalling: call.callee_signalling,
            caller_media: call.caller_media,
            callee_media: call.callee_media,
            start: call.start,
            ringing: call.ringing,
            answer: call.answer,
            end: end.max(call.start),
            state,
            end_reason: reason,
            ended_by: call.ended_by,
            final_code,
            sip_messages: call.sip_messages,
            invites: call.invites,
            retransmissions: call.retransmissions,
            early_dialogs: call.to_tags.len() as u32,
            dtmf: call.dtmf,
            holds: call.holds,
            transport: call.transport,
            joined: call.joined,
            ambiguous_media: call.ambiguous,
            challenges: call.challenges,
            other_media: call.other_media,
        };
        ctx.sink.call(CallEvent::Ended { call: call_ref, info: Box::new(info) });
    }
}

impl SenderHosts for DialogTracker {
    fn is_sender_host(&self, call: CallRef, sender: Side, ip: IpAddr) -> bool {
        let Some(c) = self.call_ref(call) else { return false };
        let (media, signalling) = match sender {
            Side::Caller => (c.caller_media, c.caller_signalling),
            Side::Callee => (c.callee_media, c.callee_signalling),
        };
        // Only a party that announced media can be sending it.
        media.is_some_and(|m| m.ip() == ip || signalling.ip() == ip)
    }
}

/// Gives up `call`'s claim on `key.addr`: the flows it had there go, and the packets that
/// could not be told apart at that address while the call claimed it are counted for the call.
fn release_key(call: &mut Call, key: &MediaKey, call_ref: CallRef, media: &mut MediaTable) {
    note_ambiguous(call, key, media);
    media.release(&key.addr, call_ref);
    call.flows.retain(|&(src, dst)| {
        let gone = src == key.addr || dst == key.addr;
        if gone {
            media.remove_flow(src, dst, call_ref);
        }
        !gone
    });
}

/// Counts for `call` the packets that could not be told apart at `key.addr` while the call
/// claimed it.
fn note_ambiguous(call: &mut Call, key: &MediaKey, media: &MediaTable) {
    let (ambiguous, _) = media.ambiguous_at(&key.addr);
    let n = ambiguous.saturating_sub(key.ambiguous_base);
    if n > 0 {
        let own_flow = call.flows.iter().any(|&(_, dst)| dst == key.addr);
        let full = call.ambiguous.len() >= MAX_AMBIGUOUS_ADDRESSES;
        match call.ambiguous.iter().position(|a| a.addr == key.addr) {
            Some(i) => {
                call.ambiguous[i].packets += n;
                call.ambiguous[i].own_flow |= own_flow;
            }
            None if !full => call.ambiguous.push(AmbiguousMedia { addr: key.addr, packets: n, own_flow }),
            None => {
                if let Some(last) = call.ambiguous.last_mut() {
                    last.packets += n;
                }
            }
        }
    }
}

/// The newest announcement of both ends of a flow wins it: flows between two of the call's
/// addresses that another call held (an older call on the same pair, or one that got the flow
/// before both ends were known) move to this call.
fn claim_pairs(call: &mut Call, call_ref: CallRef, media: &mut MediaTable, stats: &mut CaptureStats, max_flows: usize) {
    for from in &call.media_keys {
        for to in call.media_keys.iter().filter(|k| k.owner != from.owner) {
            let owner = MediaOwner { call: call_ref, sender: from.owner, kind: to.kind, learned: false };
            if media.claim_flow(from.addr, to.addr, owner) {
                stats.media_reassigned += 1;
                if !call.flows.contains(&(from.addr, to.addr)) {
                    if call.flows.len() >= max_flows.max(1) {
                        let (s, d) = call.flows.remove(0);
                        media.remove_flow(s, d, call_ref);
                        stats.media_flows_evicted += 1;
                    }
                    call.flows.push((from.addr, to.addr));
                }
            }
        }
    }
}

/// Whether packets that could not be told apart kept arriving at the call's addresses within
/// `limit` of `now` (its own media may be among them: the call is not idle).
fn recent_ambiguity(call: &Call, media: &MediaTable, now: Timestamp, limit: i64) -> bool {
    call.media_keys.iter().any(|k| media.ambiguous_at(&k.addr).1.is_some_and(|t| now.since(t) < limit))
}

fn party(n: &NameAddr<'_>) -> Party {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Party { user: n.user.map(s), display: n.display.map(s), uri: s(n.uri) }
}

/// Which party sent `msg`. Requests come from the party named in From; responses from the
/// other one. From is matched by tag, else by user, else by signalling address.
fn sender_side(call: &Call, msg: &SipMessage<'_>, src: SocketAddr) -> Side {
    let from = msg.from.map(parse_name_addr).unwrap_or_default();
    let from_is_caller = match (from.tag, call.caller_tag.as_deref()) {
        (Some(tag), Some(caller_tag)) => tag == caller_tag,
        _ => match (from.user, call.from.user.as_deref()) {
            (Some(u), Some(cu)) => u == cu.as_bytes(),
            _ => src == call.caller_signalling,
        },
    };
    let request = msg.method().is_some();
    if from_is_caller == request { Side::Caller } else { Side::Callee }
}

/// A stable fingerprint of a message on one hop: start line, CSeq, top Via branch, To-tag and
/// the addresses. Equal fingerprints = a retransmission.
fn fingerprint(msg: &SipMessage<'_>, src: SocketAddr, dst: SocketAddr) -> u64 {
    let mut h = FxHasher::default();
    match msg.start {
        crate::wire::sip::StartLine::Request { method_raw, .. } => method_raw.hash(&mut h),
        crate::wire::sip::StartLine::Response { code, .. } => code.hash(&mut h),
    }
    msg.cseq.map(|c| (c.seq, c.method)).hash(&mut h);
    msg.via.and_then(|v| param(v, b"branch")).hash(&mut h);
    msg.to.and_then(|t| parse_name_addr(t).tag).hash(&mut h);
    src.hash(&mut h);
    dst.hash(&mut h);
    // Never 0, the value of an empty ring cell.
    h.finish() | 1
}

/// A DTMF digit carried by a SIP INFO (`application/dtmf-relay`: `Signal=5` and
/// `Duration=160`; `application/dtmf`: the digit alone).
fn info_dtmf(msg: &SipMessage<'_>, side: Side, now: Timestamp) -> Option<Dtmf> {
    let ct = msg.content_type?;
    let mime = trim(ct.split(|&c| c == b';').next().unwrap_or(ct));
    let field = |name: &[u8]| {
        msg.body.split(|&c| c == b'\n').find_map(|line| {
            let eq = memchr::memchr(b'=', line)?;
            trim(&line[..eq]).eq_ignore_ascii_case(name).then(|| trim(&line[eq + 1..]))
        })
    };
    let (signal, duration) = if mime.eq_ignore_ascii_case(b"application/dtmf-relay") {
        (field(b"Signal")?, field(b"Duration"))
    } else if mime.eq_ignore_ascii_case(b"application/dtmf") {
        (trim(msg.body), None)
    } else {
        return None;
    };
    let digit = match signal {
        [c] if c.is_ascii_digit() || matches!(c, b'*' | b'#') => char::from(*c).to_string(),
        [c] if matches!(c.to_ascii_uppercase(), b'A'..=b'D') => char::from(c.to_ascii_uppercase()).to_string(),
        other => event_name(u8::try_from(crate::wire::sip::parse_decimal(other)?).ok()?),
    };
    let duration_ms = duration.and_then(crate::wire::sip::parse_decimal).and_then(|d| u32::try_from(d).ok());
    Some(Dtmf { digit, side, time: now, duration_ms, source: DtmfSource::SipInfo })
}

/// Registers the audio address of an SDP body sent by `owner` and announces it to the mixer.
/// Offers and answers after the answer that put the call on hold or resumed it are recorded.
#[allow(clippy::too_many_arguments)]
fn apply_sdp<S: EventSink>(
    call: &mut Call,
    call_ref: CallRef,
    owner: Side,
    tag: Option<&[u8]>,
    src: SocketAddr,
    body: &[u8],
    now: Timestamp,
    limits: &Limits,
    ctx: &mut Ctx<'_, S>,
) {
    let (max_media, max_flows) = (limits.max_media_per_call, limits.max_media_flows_per_call);
    let sdp = match sdp::parse(body) {
        Ok(s) => s,
        Err(_) => {
            ctx.stats.count_malformed(Layer::Sdp);
            return;
        }
    };
    other_media(call, call_ref, owner, &sdp, max_media, ctx);
    let Some(audio) = sdp.audio() else {
        // No audio, or audio refused with port 0 (e.g. a T.38-only re-offer).
        return;
    };
    let Some(ip) = sdp.connection_for(audio) else {
        ctx.stats.sdp_unusable += 1;
        return;
    };
    let direction = sdp.direction_for(audio);
    // Hold: sendonly/inactive, or the RFC 2543 c=0.0.0.0, in an offer after the answer.
    if call.answer.is_some() {
        let on_hold = ip.is_unspecified() || matches!(direction, sdp::Direction::SendOnly | sdp::Direction::Inactive);
        let open = call.holds.iter().rposition(|h| h.by == owner && h.end.is_none());
        match (on_hold, open) {
            (true, None) if call.holds.len() < MAX_HOLDS => call.holds.push(Hold { by: owner, start: now, end: None }),
            (false, Some(i)) => call.holds[i].end = Some(now),
            _ => {}
        }
    }
    if ip.is_unspecified() {
        // Nothing to register for c=0.0.0.0.
        return;
    }
    let security = sdp.security_for(audio);
    let dest = SocketAddr::new(ip, audio.port);
    let payloads = PayloadMap::from_media(audio);
    match owner {
        Side::Caller => call.caller_media = Some(dest),
        Side::Callee => call.callee_media = Some(dest),
    }
    // RTP at the announced address, RTCP beside it (RFC 3605 a=rtcp, else port + 1) unless
    // multiplexed; and when the SDP names a private address but the message came from a public
    // one, the same ports at that public address (the NAT's), learned rather than announced.
    let rtcp_port = audio.rtcp_port.unwrap_or(audio.port.wrapping_add(1));
    let mut keys = vec![(dest, MediaKind::Rtp, false)];
    if !audio.rtcp_mux && rtcp_port != 0 {
        keys.push((SocketAddr::new(ip, rtcp_port), MediaKind::Rtcp, false));
    }
    if is_private(ip) && src.ip() != ip && !is_private(src.ip()) {
        keys.push((SocketAddr::new(src.ip(), audio.port), MediaKind::Rtp, true));
        if !audio.rtcp_mux && rtcp_port != 0 {
            keys.push((SocketAddr::new(src.ip(), rtcp_port), MediaKind::Rtcp, true));
        }
    }
    for (addr, kind, learned) in keys {
        if !call.media_keys.iter().any(|k| k.addr == addr) {
            if call.media_keys.len() >= max_media.max(1) {
                // Retire the owner's own oldest address first: a party that moves its media
                // does not take the other party's address down with it.
                let i = call.media_keys.iter().position(|k| k.owner == owner).unwrap_or(0);
                let old = call.media_keys.remove(i);
                release_key(call, &old, call_ref, ctx.media);
                ctx.stats.media_retired += 1;
            }
            let ambiguous_base = ctx.media.ambiguous_at(&addr).0;
            call.media_keys.push(MediaKey { addr, owner, kind, tag: tag.map(Into::into), ambiguous_base });
        }
        let key_owner = MediaOwner { kind, ..MediaOwner::rtp(call_ref, owner.other()) };
        if learned {
            if ctx.media.learn(addr, key_owner) {
                ctx.stats.media_learned += 1;
            }
        } else {
            ctx.media.register(addr, key_owner);
        }
    }
    claim_pairs(call, call_ref, ctx.media, ctx.stats, max_flows);
    let announced = &mut call.announced[owner.index()];
    if announced
        .as_ref()
        .is_some_and(|(d, p, dir, sec)| *d == dest && *p == payloads && *dir == direction && *sec == security)
    {
        return;
    }
    *announced = Some((dest, payloads.clone(), direction, security));
    ctx.sink.call(CallEvent::Media {
        call: call_ref,
        media: Box::new(MediaAnnounce { owner, dest, payloads, ptime_ms: audio.ptime, direction, security, time: now }),
    });
}

/// Registers the non-audio media lines (video, T.38, BFCP, ...) of an SDP sent by `owner`, so
/// that their datagrams are counted for the call instead of left unmatched.
fn other_media<S: EventSink>(
    call: &mut Call,
    call_ref: CallRef,
    owner: Side,
    sdp: &sdp::Sdp<'_>,
    max_media: usize,
    ctx: &mut Ctx<'_, S>,
) {
    for m in sdp.media.iter().filter(|m| m.kind != b"audio" && m.port != 0) {
        let Some(ip) = sdp.connection_for(m).filter(|ip| !ip.is_unspecified()) else { continue };
        let dest = SocketAddr::new(ip, m.port);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let format = m.rtpmap.first().map_or_else(
            || m.formats.first().map_or_else(|| text(m.format_text), |pt| pt.to_string()),
            |r| text(r.encoding),
        );
        let line = match call.other_media.iter().position(|o| o.owner == owner && o.kind.as_bytes() == m.kind) {
            Some(i) => {
                call.other_media[i].dest = dest;
                i
            }
            None if call.other_media.len() < MAX_OTHER_MEDIA => {
                call.other_media.push(OtherMedia {
                    kind: text(m.kind),
                    proto: text(m.proto),
                    format,
                    owner,
                    dest,
                    packets: [0, 0],
                });
                call.other_media.len() - 1
            }
            None => continue,
        };
        if call.media_keys.iter().any(|k| k.addr == dest) || call.media_keys.len() >= max_media.max(1) {
            continue;
        }
        let kind = MediaKind::Other(line as u8);
        let ambiguous_base = ctx.media.ambiguous_at(&dest).0;
        call.media_keys.push(MediaKey { addr: dest, owner, kind, tag: None, ambiguous_base });
        ctx.media.register(dest, MediaOwner { kind, ..MediaOwner::rtp(call_ref, owner.other()) });
    }
}
