//! Where one call is: a state whose variants carry their own data, changed only through the
//! `move_to_*` methods below (each one names the message that causes it and the guard it
//! keeps).
//!
//! ```text
//!            18x                 2xx
//!   Setup ───────▶ Setup{ringing} ───────▶ Answered ──BYE──▶ Ending{Completed}
//!     │  ╲                                   ▲                   │ linger
//!     │   ╲ CANCEL / 3xx-6xx  ┌──────────────┘ 2xx (crossed)     ▼
//!     │    ╲──────────────▶ Ending{Cancelled | Rejected} ──────▶ (ended)
//!     │ 401/407
//!     ▼
//!   Ending{challenge} ──INVITE re-sent with credentials──▶ back where it was
//! ```
//!
//! A passive observer sees what the endpoints did, in whatever order the capture caught it,
//! so a few transitions exist for sequences no endpoint should produce (a 2xx crossing a
//! CANCEL, a BYE while a challenge is pending); they keep what the call record has always
//! said for them. A message no transition accepts is counted by the caller.

use crate::events::{CallState, EndReason, Side};
use crate::time::Timestamp;

/// The end a call is heading for, unless something revives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PendingEnd {
    /// When the message that ends the call was seen (the call's end time).
    pub(crate) at: Timestamp,
    /// When the call is finalised.
    pub(crate) deadline: Timestamp,
    /// Why it ends.
    pub(crate) reason: EndReason,
}

/// State of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// INVITE seen, not answered; `ringing` once a 180-189 came.
    Setup { ringing: bool },
    /// Answered by a 2xx, or joined in progress.
    Answered,
    /// BYE, CANCEL, a final failure or a 401/407 challenge was seen: the call lingers until
    /// `end.deadline`. `outcome` is what the record says; `challenge` the code of a challenge
    /// still waiting for the authenticated INVITE (the call then ends rejected by it).
    Ending { outcome: CallState, by: Option<Side>, end: PendingEnd, challenge: Option<u16> },
    /// An ending interrupted by the authenticated INVITE after a challenge: no timer of its own
    /// (the set-up and media timers apply), the outcome seen so far kept for the record.
    Revived { outcome: CallState, by: Option<Side> },
}

impl State {
    /// The initial state of a call first seen by its INVITE, or joined in progress.
    pub(crate) fn new(joined: bool) -> State {
        if joined { State::Answered } else { State::Setup { ringing: false } }
    }

    /// What the call record says of this state.
    pub(crate) fn call_state(&self) -> CallState {
        match *self {
            State::Setup { ringing: false } => CallState::Setup,
            State::Setup { ringing: true } => CallState::Ringing,
            State::Answered => CallState::InCall,
            State::Ending { outcome, .. } | State::Revived { outcome, .. } => outcome,
        }
    }

    /// The party whose request ended the call.
    pub(crate) fn ended_by(&self) -> Option<Side> {
        match *self {
            State::Ending { by, .. } | State::Revived { by, .. } => by,
            _ => None,
        }
    }

    /// The end the call is heading for.
    pub(crate) fn pending_end(&self) -> Option<PendingEnd> {
        match *self {
            State::Ending { end, .. } => Some(end),
            _ => None,
        }
    }

    /// The code of a challenge waiting for the authenticated INVITE.
    pub(crate) fn challenge(&self) -> Option<u16> {
        match *self {
            State::Ending { challenge, .. } => challenge,
            _ => None,
        }
    }

    fn ending(&self, outcome: CallState, by: Option<Side>, end: PendingEnd, challenge: Option<u16>) -> State {
        State::Ending { outcome, by, end, challenge }
    }

    /// 180-189 to the initial INVITE: a call in set-up is ringing. False when the state has no
    /// such transition (the ringing time is noted by the caller either way).
    pub(crate) fn move_to_ringing(&mut self) -> bool {
        match self {
            State::Setup { ringing } => {
                *ringing = true;
                true
            }
            _ => false,
        }
    }

    /// A 2xx to the initial INVITE. It wins over a CANCEL or a failure on another branch that
    /// crossed it (and over a pending challenge); a call already answered or ended by BYE only
    /// loses its challenge.
    pub(crate) fn move_to_answered(&mut self) {
        match self.call_state() {
            CallState::Setup | CallState::Ringing | CallState::Cancelled | CallState::Rejected => {
                *self = State::Answered
            }
            CallState::InCall | CallState::Completed => {
                if let State::Ending { challenge, .. } = self {
                    *challenge = None;
                }
            }
        }
    }

    /// BYE from `by`: the call completes after `linger`. False (nothing changes) when it is
    /// already ending by a BYE.
    pub(crate) fn move_to_bye(&mut self, by: Side, now: Timestamp, linger: i64) -> bool {
        if self.pending_end().is_some_and(|e| e.reason == EndReason::Bye) {
            return false;
        }
        let end = PendingEnd { at: now, deadline: now.add_nanos(linger), reason: EndReason::Bye };
        *self = self.ending(CallState::Completed, Some(by), end, self.challenge());
        true
    }

    /// CANCEL from `by` before the answer (`answered` false): the call is cancelled after
    /// `linger`. False (nothing changes) after the answer or when already cancelled.
    pub(crate) fn move_to_cancelled(&mut self, by: Side, answered: bool, now: Timestamp, linger: i64) -> bool {
        if answered || self.call_state() == CallState::Cancelled {
            return false;
        }
        let end = PendingEnd { at: now, deadline: now.add_nanos(linger), reason: EndReason::Cancel };
        *self = self.ending(CallState::Cancelled, Some(by), end, self.challenge());
        true
    }

    /// 401/407 to the initial INVITE: the call waits `auth_wait` for the INVITE re-sent with
    /// credentials, else it ends rejected by the challenge.
    pub(crate) fn move_to_challenged(&mut self, code: u16, now: Timestamp, auth_wait: i64) {
        let end = PendingEnd { at: now, deadline: now.add_nanos(auth_wait), reason: EndReason::Rejected };
        *self = self.ending(self.call_state(), self.ended_by(), end, Some(code));
    }

    /// The INVITE re-sent by the same caller after a challenge (RFC 3261 22.2): the call goes
    /// on where it was, however long the caller took. False when no challenge was waiting.
    pub(crate) fn move_to_resumed(&mut self) -> bool {
        let State::Ending { outcome, by, challenge: Some(_), .. } = *self else { return false };
        *self = match outcome {
            CallState::Setup => State::Setup { ringing: false },
            CallState::Ringing => State::Setup { ringing: true },
            CallState::InCall => State::Answered,
            outcome => State::Revived { outcome, by },
        };
        true
    }

    /// A final failure (3xx-6xx other than a challenge) to the initial INVITE: the call is
    /// rejected after `linger`. False when it changes nothing: a cancelled call keeps its
    /// outcome (the 487 that follows a CANCEL), and a rejected one its first failure.
    pub(crate) fn move_to_rejected(&mut self, now: Timestamp, linger: i64) -> bool {
        if self.call_state() == CallState::Cancelled {
            return false;
        }
        let rejected_already = self.pending_end().is_some_and(|e| e.reason == EndReason::Rejected);
        if rejected_already && self.challenge().is_none() {
            return false;
        }
        let end = PendingEnd { at: now, deadline: now.add_nanos(linger), reason: EndReason::Rejected };
        *self = self.ending(CallState::Rejected, self.ended_by(), end, None);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = Timestamp::SECOND;

    fn t(s: i64) -> Timestamp {
        Timestamp(s * S)
    }

    fn end(at: i64, linger: i64, reason: EndReason) -> PendingEnd {
        PendingEnd { at: t(at), deadline: t(at + linger), reason }
    }

    #[test]
    fn setup_rings_then_answers_then_completes() {
        let mut s = State::new(false);
        assert_eq!(s.call_state(), CallState::Setup);
        assert!(s.move_to_ringing());
        assert_eq!(s, State::Setup { ringing: true });
        assert!(s.move_to_ringing(), "a second 18x keeps it ringing");
        s.move_to_answered();
        assert_eq!(s, State::Answered);
        assert!(!s.move_to_ringing());
        assert!(!s.move_to_cancelled(Side::Caller, true, t(5), 2 * S), "CANCEL after the answer");
        assert!(s.move_to_bye(Side::Callee, t(10), 2 * S));
        assert_eq!(
            s,
            State::Ending {
                outcome: CallState::Completed,
                by: Some(Side::Callee),
                end: end(10, 2, EndReason::Bye),
                challenge: None
            }
        );
        assert!(!s.move_to_bye(Side::Caller, t(11), 2 * S), "a second BYE does not restart the linger");
        assert_eq!(s.ended_by(), Some(Side::Callee));
        s.move_to_answered();
        assert_eq!(s.call_state(), CallState::Completed, "a late 2xx does not revive a completed call");
    }

    #[test]
    fn cancel_then_487_then_a_crossing_2xx() {
        let mut s = State::new(false);
        assert!(s.move_to_cancelled(Side::Caller, false, t(3), 32 * S));
        assert_eq!(s.call_state(), CallState::Cancelled);
        assert_eq!(s.pending_end(), Some(end(3, 32, EndReason::Cancel)));
        assert!(!s.move_to_cancelled(Side::Caller, false, t(4), 32 * S), "CANCEL on a second hop");
        assert!(!s.move_to_rejected(t(4), 32 * S), "the 487 keeps the call cancelled");
        s.move_to_answered();
        assert_eq!(s, State::Answered, "a 2xx that crossed the CANCEL wins");
    }

    #[test]
    fn failures_reject_once() {
        let mut s = State::new(false);
        assert!(s.move_to_rejected(t(2), 32 * S));
        assert_eq!(s.pending_end(), Some(end(2, 32, EndReason::Rejected)));
        assert!(!s.move_to_rejected(t(3), 32 * S), "a second failure keeps the first");
        assert_eq!(s.call_state(), CallState::Rejected);
        s.move_to_answered();
        assert_eq!(s, State::Answered, "a 2xx on another branch wins");
    }

    #[test]
    fn challenge_waits_for_the_authenticated_invite() {
        let mut s = State::new(false);
        s.move_to_ringing();
        s.move_to_challenged(407, t(1), 300 * S);
        assert_eq!(s.challenge(), Some(407));
        assert_eq!(s.call_state(), CallState::Ringing);
        assert_eq!(s.pending_end(), Some(end(1, 300, EndReason::Rejected)));
        assert!(s.move_to_resumed());
        assert_eq!(s, State::Setup { ringing: true });
        assert!(!s.move_to_resumed(), "no challenge waiting");
        // Challenged, then refused outright: the failure replaces the challenge.
        s.move_to_challenged(401, t(2), 300 * S);
        assert!(s.move_to_rejected(t(3), 32 * S));
        assert_eq!((s.call_state(), s.challenge()), (CallState::Rejected, None));
        assert_eq!(s.pending_end(), Some(end(3, 32, EndReason::Rejected)));
    }

    #[test]
    fn a_challenge_after_a_cancel_resumes_to_a_revived_call() {
        let mut s = State::new(false);
        s.move_to_cancelled(Side::Caller, false, t(1), 32 * S);
        s.move_to_challenged(401, t(2), 300 * S);
        assert_eq!((s.call_state(), s.ended_by()), (CallState::Cancelled, Some(Side::Caller)));
        assert!(s.move_to_resumed());
        assert_eq!(s, State::Revived { outcome: CallState::Cancelled, by: Some(Side::Caller) });
        assert_eq!(s.pending_end(), None);
        s.move_to_answered();
        assert_eq!(s, State::Answered);
    }

    #[test]
    fn a_joined_call_is_answered_and_a_2xx_clears_its_challenge_only() {
        let mut s = State::new(true);
        assert_eq!(s, State::Answered);
        s.move_to_challenged(401, t(1), 300 * S);
        s.move_to_answered();
        assert_eq!(s.challenge(), None);
        assert_eq!(s.pending_end(), Some(end(1, 300, EndReason::Rejected)));
        assert_eq!(s.call_state(), CallState::InCall);
    }

    #[test]
    fn bye_keeps_a_pending_challenge() {
        let mut s = State::new(false);
        s.move_to_challenged(401, t(1), 300 * S);
        assert!(s.move_to_bye(Side::Caller, t(2), 2 * S));
        assert_eq!(s.challenge(), Some(401));
        assert_eq!(s.pending_end(), Some(end(2, 2, EndReason::Bye)));
    }
}
