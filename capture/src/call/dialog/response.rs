//! What a response to an INVITE does to its call: ringing, the answer (forking: the answered
//! branch keeps the media), 401/407 challenges, final failures. Responses to the initial
//! INVITE drive the state; those after the answer (to re-INVITEs) only add their SDP.

use super::sdp::release_key;
use super::{Call, MAX_CHALLENGES, MAX_TAGS, MediaKey, Out};
use crate::events::{CallRef, CallState, Challenge, Side};
use crate::limits::Timeouts;
use crate::time::Timestamp;

/// Handles a response `code` to an INVITE, with its To-tag, seen at `now`.
pub(super) fn handle(
    call: &mut Call,
    call_ref: CallRef,
    code: u16,
    to_tag: Option<&[u8]>,
    now: Timestamp,
    t: &Timeouts,
    out: &mut Out<'_>,
) {
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
            call.state.move_to_ringing();
            call.ringing.get_or_insert(now);
        }
        // A ringing response after the answer: no state has a place for it.
        180..=189 => out.stats.sip_out_of_state += 1,
        200..=299 if initial => answered(call, call_ref, code, to_tag, now, out),
        401 | 407 if initial => {
            if call.state.challenge().is_none() && call.challenges.len() < MAX_CHALLENGES {
                call.challenges.push(Challenge { code, time: now, retried: None });
            }
            call.final_code = Some(code);
            call.state.move_to_challenged(code, now, t.auth_wait);
        }
        300..=699 if initial => {
            if call.state.call_state() == CallState::Cancelled {
                // The 487 that follows a CANCEL (or any failure after it): still cancelled.
                call.final_code.get_or_insert(code);
            } else if call.state.move_to_rejected(now, t.failure_linger) {
                call.final_code = Some(code);
            }
        }
        // 100 Trying, other provisional responses, and responses to re-INVITEs.
        _ => {}
    }
}

/// The first 2xx to the initial INVITE.
fn answered(call: &mut Call, call_ref: CallRef, code: u16, to_tag: Option<&[u8]>, now: Timestamp, out: &mut Out<'_>) {
    call.answer = Some(now);
    call.final_code = Some(code);
    // Forking: the answered dialog's media is the call's; early media of the other branches
    // stops being attributed to it.
    if let Some(tag) = to_tag {
        call.answered_tag = Some(tag.into());
        let other_branch = |k: &MediaKey| k.owner == Side::Callee && k.tag.as_deref().is_some_and(|t| t != tag);
        let (gone, kept) = std::mem::take(&mut call.media_keys).into_iter().partition(other_branch);
        call.media_keys = kept;
        for k in gone {
            release_key(call, &k, call_ref, out.media);
        }
    }
    // A 2xx wins over a CANCEL or a failure on another branch that crossed it.
    call.state.move_to_answered();
}
