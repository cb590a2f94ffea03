//! The dialog tracker: one typed state machine per Call-ID, driven by SIP messages and capture
//! time.
//!
//! Sans-IO, like quinn-proto's `Connection`: [`DialogTracker::handle_sip`] takes a parsed
//! message and the packet's capture time, [`DialogTracker::sweep`] fires the timers due at a
//! capture time, and what happens leaves as [`CallEvent`]s drained with
//! [`DialogTracker::poll_event`]; [`DialogTracker::poll_timeout`] says when the next timer
//! falls. Nothing here reads a clock or does I/O, so replaying a capture is deterministic and
//! tests drive the tracker with SIP messages alone. The media table it claims addresses in and
//! the counters it keeps are lent by the engine per call.
//!
//! * `state.rs`: the call's [`State`] and its `move_to_*` transitions.
//! * `request.rs` and `response.rs`: what each request and each response to the INVITE does.
//! * `sdp.rs`: media claims, hold, announcements to the mixer, giving claims back.
//! * `timers.rs`: the next deadline per call in a heap, and which timer ends a call.
//!
//! A passive observer misses messages, sees retransmissions and sees the same dialog on several
//! hops through proxies. A message that does not fit the call's state is absorbed and counted
//! (`CaptureStats::sip_out_of_state`), never a panic and never a lost call.

mod request;
mod response;
mod sdp;
mod state;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use rustc_hash::{FxHashMap, FxHasher};

use crate::call::codec::PayloadMap;
use crate::call::media::{MediaKind, MediaOwner, MediaTable, SenderHosts};
use crate::events::{
    AmbiguousMedia, CallEvent, CallInfo, CallRef, CallStart, CallState, Challenge, Dtmf, DtmfSource, EndReason, Hold,
    LADDER_MAX, LadderStep, OtherMedia, Party, RecordingControl, Side, event_name,
};
use crate::limits::{Limits, Timeouts};
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::transport::decode::Transport;
use crate::wire::dtmf_info::DtmfInfo;
use crate::wire::sdp as sdp_wire;
use crate::wire::sip::{Method, NameAddr, SipMessage, StartLine, param, parse_name_addr};

use self::sdp::{note_ambiguous, recent_ambiguity};
use self::state::State;
use self::timers::{TimerQueue, TimerSlot};

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
pub(crate) struct Call {
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
    /// Where the call is (set-up, answered, ending), changed only by `State::move_to_*`.
    state: State,
    /// Its place in the timer queue.
    timer: TimerSlot,
    final_code: Option<u16>,
    /// Highest CSeq of an initial (out-of-dialog) INVITE.
    invite_cseq: u32,
    last_activity: Timestamp,
    /// Every challenge to the INVITE.
    challenges: Vec<Challenge>,
    /// Non-audio media lines.
    other_media: Vec<OtherMedia>,
    /// The first SIP messages, for the ladder diagram.
    ladder: Vec<LadderStep>,
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
type Announced =
    (SocketAddr, PayloadMap, sdp_wire::Direction, Option<sdp_wire::Security>, Vec<crate::events::SdesCrypto>);

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

/// What the RTP packets of the call in a slot did since the call was last looked at: kept
/// apart from the call (a kilobyte and more) in a dense array, so a packet writes 16 bytes
/// that stay in the cache, not a line of its call's state. [`absorbed`] folds it into the
/// call before anything reads the call.
#[derive(Debug, Clone, Copy)]
struct Activity {
    /// The generation of the call it is counted for.
    generation: u32,
    /// Capture time of the latest RTP packet ([`Activity::NONE`]: none since last folded in).
    last_rtp: i64,
}

impl Activity {
    const NONE: i64 = i64::MIN;

    fn new(generation: u32) -> Activity {
        Activity { generation, last_rtp: Activity::NONE }
    }

    /// Folds the packets counted here into `call`: it had media, which confirms the dialog,
    /// and was active until the latest of them.
    fn fold_into(&mut self, call: &mut Call) {
        if self.last_rtp != Activity::NONE {
            call.had_media = true;
            call.confirmed = true;
            if self.last_rtp > call.last_activity.0 {
                call.last_activity = Timestamp(self.last_rtp);
            }
            self.last_rtp = Activity::NONE;
        }
    }
}

/// The call in slot `idx`, with its RTP activity folded in: every path to a call but the
/// per-packet one goes through here (or [`DialogTracker::call_mut`], which does).
fn absorbed<'a>(slots: &'a mut [Slot], activity: &mut [Activity], idx: usize) -> Option<&'a mut Call> {
    let call = slots.get_mut(idx)?.call.as_mut()?;
    if let Some(a) = activity.get_mut(idx) {
        a.fold_into(call);
    }
    Some(call)
}

/// Tracks every call on the wire by Call-ID.
#[derive(Debug)]
pub struct DialogTracker {
    slots: Vec<Slot>,
    /// By slot, beside `slots`: what RTP packets did to the call there.
    activity: Vec<Activity>,
    free: Vec<u32>,
    by_id: FxHashMap<Box<[u8]>, u32>,
    limits: Limits,
    timeouts: Timeouts,
    /// Capture time of the last RTP packet of any call: media is visible on this capture.
    last_rtp: Timestamp,
    /// When each call needs looking at next.
    timers: TimerQueue,
    /// Events not yet drained by [`DialogTracker::poll_event`].
    events: VecDeque<CallEvent>,
    /// The header that pauses and resumes recording, if one is configured.
    pause_header: Option<Box<[u8]>>,
}

/// What handling a message may touch besides the call: the media table, the counters and the
/// tracker's event queue.
pub(crate) struct Out<'a> {
    pub(crate) media: &'a mut MediaTable,
    pub(crate) stats: &'a mut CaptureStats,
    pub(crate) events: &'a mut VecDeque<CallEvent>,
}

impl DialogTracker {
    /// A tracker with the given caps and timeouts.
    pub fn new(limits: Limits, timeouts: Timeouts) -> DialogTracker {
        DialogTracker {
            slots: Vec::new(),
            activity: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            limits,
            timeouts,
            last_rtp: Timestamp(i64::MIN),
            timers: TimerQueue::default(),
            events: VecDeque::new(),
            pause_header: None,
        }
    }

    /// Requests carrying header `name` pause or resume their call's recording (see
    /// [`crate::engine::EngineConfig::pause_header`]).
    pub fn with_pause_header(mut self, name: Option<&str>) -> DialogTracker {
        self.pause_header = name.filter(|n| !n.is_empty()).map(|n| n.as_bytes().into());
        self
    }

    /// The next event (call started, media announced, call ended), in the order they happened.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// The earliest capture time at which a timer may end a call: [`DialogTracker::sweep`]
    /// before it does nothing.
    pub fn poll_timeout(&mut self) -> Option<Timestamp> {
        loop {
            let (at, slot, seq) = self.timers.peek()?;
            let call = absorbed(&mut self.slots, &mut self.activity, slot as usize).filter(|c| c.timer.is_live(seq));
            let Some(call) = call else {
                self.timers.drop_first();
                continue;
            };
            // An entry earlier than the call now wants goes back in at the later time.
            if !call.timer.wants_later(at) {
                return Some(at);
            }
            self.timers.drop_first();
            if let Some(want) = call.timer.came_up(at) {
                self.timers.schedule(&mut call.timer, slot, want);
            }
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

    /// Records media activity (an RTP packet) on a call, keeping it from timing out: in the
    /// slot's [`Activity`], folded into the call when it is next looked at.
    #[inline]
    pub fn touch(&mut self, call: CallRef, now: Timestamp) {
        self.last_rtp = now;
        if let Some(a) = self.activity.get_mut(call.slot as usize)
            && a.generation == call.generation
            && now.0 > a.last_rtp
        {
            a.last_rtp = now.0;
        }
    }

    fn call_mut(&mut self, call: CallRef) -> Option<&mut Call> {
        let idx = call.slot as usize;
        if self.slots.get(idx)?.generation != call.generation {
            return None;
        }
        absorbed(&mut self.slots, &mut self.activity, idx)
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

    /// Feeds one SIP message seen at `now` from `src` to `dst` (arrived over `transport`).
    /// Returns the call it belongs to, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_sip(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        msg: &SipMessage<'_>,
        transport: Transport,
        media: &mut MediaTable,
        stats: &mut CaptureStats,
    ) -> Option<CallRef> {
        let Some(call_id) = msg.call_id else {
            stats.sip_without_call_id += 1;
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
                        stats.sip_unknown_dialog += 1;
                    } else {
                        stats.sip_not_call += 1;
                    }
                    return None;
                }
                self.start_call(now, src, dst, call_id, msg, joins, transport, stats)?
            }
        };
        let generation = self.slots[idx as usize].generation;
        let call_ref = CallRef { slot: idx, generation };
        let call = absorbed(&mut self.slots, &mut self.activity, idx as usize)?;
        let mut out = Out { media, stats, events: &mut self.events };
        let fresh = on_message(call, call_ref, now, src, dst, msg, &self.timeouts, &self.limits, &mut out);
        if fresh && let Some(method) = msg.method() {
            recording_control(call, call_ref, now, src, msg, method, self.pause_header.as_deref(), &mut out);
        }
        let at = timers::next_check(call, &self.timeouts);
        self.timers.schedule(&mut call.timer, idx, at);
        Some(call_ref)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_call(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        call_id: &[u8],
        msg: &SipMessage<'_>,
        joined: bool,
        transport: Transport,
        stats: &mut CaptureStats,
    ) -> Option<u32> {
        if self.by_id.len() >= self.limits.max_calls {
            stats.calls_shed += 1;
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
            state: State::new(joined),
            timer: TimerSlot::default(),
            final_code: None,
            invite_cseq: msg.cseq.map_or(0, |c| c.seq),
            last_activity: now,
            challenges: Vec::new(),
            ladder: Vec::new(),
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
                self.activity.push(Activity::new(0));
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
        self.activity[idx as usize] = Activity::new(slot.generation);
        self.by_id.insert(call_id.into(), idx);
        stats.calls_started += 1;
        let call_ref = CallRef { slot: idx, generation: slot.generation };
        self.events.push_back(CallEvent::Started { call: call_ref, info: Box::new(start_info) });
        Some(idx)
    }

    /// Fires every timer due at `now`: lingers after BYE/CANCEL/failures, challenges that were
    /// never answered, 2xx answers never acknowledged, media and setup timeouts. Only the calls
    /// whose next deadline has come are looked at, in slot order.
    pub fn sweep(&mut self, now: Timestamp, media: &mut MediaTable, stats: &mut CaptureStats) {
        let t = self.timeouts.clone();
        // RTP of some call seen lately: media is on this capture, so an answered call without
        // any is not merely one whose media takes another path.
        let media_visible = now.since(self.last_rtp) < t.media;
        let mut due = Vec::new();
        while let Some((at, slot, seq)) = self.timers.pop(now) {
            let Some(call) =
                absorbed(&mut self.slots, &mut self.activity, slot as usize).filter(|c| c.timer.is_live(seq))
            else {
                continue;
            };
            match call.timer.came_up(at) {
                Some(want) if want > now => self.timers.schedule(&mut call.timer, slot, want),
                _ => due.push(slot),
            }
        }
        // In slot order, as a walk over every call would find them.
        due.sort_unstable();
        for idx in due {
            let Some(call) = absorbed(&mut self.slots, &mut self.activity, idx as usize) else { continue };
            match timers::due(call, now, media_visible, &t, media) {
                Some((reason, end)) => self.finalize(idx, reason, end, media, stats),
                None => {
                    let at = timers::next_check(call, &t).max(now.add_nanos(1));
                    self.timers.schedule(&mut call.timer, idx, at);
                }
            }
        }
    }

    /// Finalises every open call (end of input or shutdown). Calls already winding down (BYE,
    /// CANCEL, failure) keep their own reason.
    pub fn finish_all(&mut self, now: Timestamp, reason: EndReason, media: &mut MediaTable, stats: &mut CaptureStats) {
        for idx in 0..self.slots.len() {
            let Some(call) = self.slots[idx].call.as_ref() else { continue };
            let (reason, end) = match call.state.pending_end() {
                // Winding down, or challenged and never re-sent (rejected by the challenge).
                Some(pending) => (pending.reason, pending.at),
                None => (reason, now),
            };
            self.finalize(idx as u32, reason, end, media, stats);
        }
    }

    fn finalize(
        &mut self,
        idx: u32,
        reason: EndReason,
        end: Timestamp,
        media: &mut MediaTable,
        stats: &mut CaptureStats,
    ) {
        let slot = &mut self.slots[idx as usize];
        let Some(mut call) = slot.call.take() else { return };
        let call_ref = CallRef { slot: idx, generation: slot.generation };
        slot.generation = slot.generation.wrapping_add(1);
        // The call's last packets, and none of a later call's.
        let activity = &mut self.activity[idx as usize];
        activity.fold_into(&mut call);
        *activity = Activity::new(slot.generation);
        self.free.push(idx);
        self.by_id.remove(&call.call_id);
        let keys = std::mem::take(&mut call.media_keys);
        for key in &keys {
            note_ambiguous(&mut call, key, media);
        }
        for &(src, dst) in &call.flows {
            media.remove_flow(src, dst, call_ref);
        }
        for key in &keys {
            media.release(&key.addr, call_ref);
        }
        let mut state = call.state.call_state();
        let mut final_code = call.final_code;
        if let Some(code) = call.state.challenge() {
            // Challenged and never re-sent: rejected by the challenge.
            state = CallState::Rejected;
            final_code = Some(code);
        }
        stats.calls_ended += 1;
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
            ended_by: call.state.ended_by(),
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
            ladder_omitted: call.sip_messages.saturating_sub(call.ladder.len() as u32),
            ladder: call.ladder,
        };
        self.events.push_back(CallEvent::Ended { call: call_ref, info: Box::new(info) });
    }
}

/// One SIP message of `call`: retransmissions first, then the request or the response to the
/// INVITE, then its SDP.
#[allow(clippy::too_many_arguments)]
fn on_message(
    call: &mut Call,
    call_ref: CallRef,
    now: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    msg: &SipMessage<'_>,
    timeouts: &Timeouts,
    limits: &Limits,
    out: &mut Out<'_>,
) -> bool {
    call.sip_messages += 1;
    if now > call.last_activity {
        call.last_activity = now;
    }
    // The same message again on the same hop is a retransmission: counted, not acted on
    // twice. The same message on another hop (through a proxy) is acted on, idempotently.
    let fp = fingerprint(msg, src, dst);
    let retransmission = call.recent.contains(&fp);
    if call.ladder.len() < LADDER_MAX {
        call.ladder.push(ladder_step(call, msg, now, src, dst, retransmission));
    }
    if retransmission {
        call.retransmissions += 1;
        if msg.status().is_some_and(|c| (200..300).contains(&c)) && msg.cseq.is_some_and(|c| c.method == Method::Invite)
        {
            call.ok_retransmitted = true;
        }
        return false;
    }
    call.recent[call.recent_next] = fp;
    call.recent_next = (call.recent_next + 1) % RECENT_MESSAGES;
    let sender = sender_side(call, msg, src);
    let to_tag = msg.to.and_then(|to| parse_name_addr(to).tag);

    if let Some(method) = msg.method() {
        request::handle(call, method, msg, sender, to_tag, now, timeouts, out.stats);
    } else if let (Some(code), Some(cseq)) = (msg.status(), msg.cseq)
        && cseq.method == Method::Invite
    {
        response::handle(call, call_ref, code, to_tag, now, timeouts, out);
    }

    if msg.has_sdp() {
        // Media from a branch other than the answered one is not the call's.
        let other_branch = sender == Side::Callee
            && msg.status().is_some()
            && matches!((&call.answered_tag, to_tag), (Some(a), Some(t)) if **a != *t);
        if !other_branch {
            let tag = if sender == Side::Callee { to_tag } else { None };
            sdp::apply_sdp(call, call_ref, sender, tag, src, msg.body, now, limits, out);
        }
    }
    true
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

/// The ladder's line for a message.
fn ladder_step(
    call: &Call,
    msg: &SipMessage<'_>,
    time: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    retransmission: bool,
) -> LadderStep {
    let text = |b: &[u8], max: usize| {
        let t = String::from_utf8_lossy(b);
        t.chars().take(max).collect::<String>()
    };
    let what = match msg.start {
        StartLine::Request { method_raw, .. } => text(method_raw, 32),
        StartLine::Response { code, reason } => match msg.cseq {
            Some(c) => format!("{code} {} ({})", text(reason, 40), c.method.name()),
            None => format!("{code} {}", text(reason, 40)),
        },
    };
    LadderStep { time, from: sender_side(call, msg, src), src, dst, what, sdp: msg.has_sdp(), retransmission }
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

/// What a request (not a retransmission: it asks nothing again) says about recording: the pause header's value, and
/// a DTMF key of a SIP INFO (which may be part of a pause code).
#[allow(clippy::too_many_arguments)]
fn recording_control(
    call: &Call,
    call_ref: CallRef,
    now: Timestamp,
    src: SocketAddr,
    msg: &SipMessage<'_>,
    method: Method,
    pause_header: Option<&[u8]>,
    out: &mut Out<'_>,
) {
    let side = sender_side(call, msg, src);
    let mut emit = |control| out.events.push_back(CallEvent::Control { call: call_ref, time: now, control });
    if let Some(value) = pause_header.and_then(|name| msg.header(name)) {
        let value = crate::wire::sip::trim(value);
        let pause = match value.to_ascii_lowercase().as_slice() {
            b"pause" | b"on" | b"true" | b"yes" | b"1" => Some(true),
            b"resume" | b"off" | b"false" | b"no" | b"0" => Some(false),
            _ => None,
        };
        match pause {
            Some(pause) => emit(RecordingControl::Header { pause, side, method: method.name() }),
            // Counted (`sip_bad_pause_header`); the call goes on as it was.
            None => out.stats.sip_bad_pause_header += 1,
        }
    }
    if method == Method::Info
        && let Some(d) = info_dtmf(msg, side, now)
        && let Some(event) = crate::events::event_number(&d.digit)
    {
        emit(RecordingControl::InfoKey { side, event, duration_ms: d.duration_ms });
    }
}

/// A DTMF digit carried by a SIP INFO (`application/dtmf-relay`: `Signal=5` and
/// `Duration=160`; `application/dtmf`: the digit alone).
fn info_dtmf(msg: &SipMessage<'_>, side: Side, now: Timestamp) -> Option<Dtmf> {
    let DtmfInfo { signal, duration_ms } = crate::wire::dtmf_info::parse(msg.content_type?, msg.body)?;
    let digit = match signal {
        [c] if c.is_ascii_digit() || matches!(c, b'*' | b'#') => char::from(*c).to_string(),
        [c] if matches!(c.to_ascii_uppercase(), b'A'..=b'D') => char::from(c.to_ascii_uppercase()).to_string(),
        other => event_name(u8::try_from(crate::wire::sip::parse_decimal(other)?).ok()?),
    };
    Some(Dtmf { digit, side, time: now, duration_ms, source: DtmfSource::SipInfo })
}
