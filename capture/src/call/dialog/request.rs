//! What a request does to its call: INVITE (a re-send after a challenge continues the call),
//! BYE, CANCEL, INFO with DTMF; any request of the dialog after the answer confirms it.

use super::{Call, MAX_DTMF, info_dtmf};
use crate::events::Side;
use crate::limits::Timeouts;
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::wire::sip::{Method, SipMessage, parse_name_addr};

/// Handles a request `method` sent by `sender` (its To-tag `to_tag`) at `now`.
#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    call: &mut Call,
    method: Method,
    msg: &SipMessage<'_>,
    sender: Side,
    to_tag: Option<&[u8]>,
    now: Timestamp,
    t: &Timeouts,
    stats: &mut CaptureStats,
) {
    // Any request in the dialog after the answer (the ACK first) confirms it.
    if call.answer.is_some() && method != Method::Cancel && to_tag.is_some() {
        call.confirmed = true;
    }
    match method {
        Method::Invite => invite(call, msg, now),
        Method::Bye => {
            // A BYE while the call already ends by one (seen on another hop) changes nothing.
            call.state.move_to_bye(sender, now, t.bye_linger);
        }
        Method::Cancel => {
            if call.answer.is_some() {
                // RFC 3261 9.2: a CANCEL after the final response has no effect.
                stats.sip_out_of_state += 1;
            } else {
                call.state.move_to_cancelled(sender, false, now, t.failure_linger);
            }
        }
        Method::Info if call.dtmf.len() < MAX_DTMF => {
            if let Some(d) = info_dtmf(msg, sender, now) {
                call.dtmf.push(d);
            }
        }
        // ACK, PRACK, UPDATE, OPTIONS, REFER, NOTIFY, ... in the dialog: nothing to change
        // (UPDATE's SDP is applied by the caller).
        _ => {}
    }
}

/// An INVITE: a re-INVITE in the dialog, or the initial INVITE again with a higher CSeq (sent
/// again after a 401/407 challenge, or a new fork hop).
fn invite(call: &mut Call, msg: &SipMessage<'_>, now: Timestamp) {
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
        call.invite_cseq = cseq.seq;
        call.invite_at = now;
        call.responded = false;
        if same_caller && call.state.move_to_resumed() {
            // RFC 3261 22.2: the same call goes on, however long the caller took.
            call.final_code = None;
            if let Some(c) = call.challenges.last_mut() {
                c.retried.get_or_insert(now);
            }
        }
    }
}
