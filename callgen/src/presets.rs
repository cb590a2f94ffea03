//! Ready-made call sets: many concurrent answered calls, and a realistic demo mix.

use crate::mix::{hash, unit_f64};
use std::net::IpAddr;

use crate::spec::{CallSpec, Codec, Hangup, Outcome};
use crate::timeline::Party;
use crate::timeline::{BYE_DELAY_NS, REPLY_DELAY_NS};

/// `n` answered calls ([`CallSpec::answered`]) of `talk_ms` each, with start times spaced so
/// that about `concurrency` are in progress at once.
///
/// A call occupies `D = ring_ms + talk_ms + 65 ms` (up to the 200 OK to its BYE); starts are
/// `D / concurrency` apart (Little's law), so once the first `concurrency` calls have started
/// the number in progress stays at about `concurrency`, and it peaks at `min(n, concurrency)`.
pub fn spread_calls(n: u32, concurrency: u32, talk_ms: u32, start_ns: i64) -> Vec<CallSpec> {
    let mut calls: Vec<_> = (0..n).map(|i| CallSpec::answered(i, start_ns, talk_ms)).collect();
    let Some(first) = calls.first() else {
        return calls;
    };
    let busy_ns = (i64::from(first.ring_ms) + i64::from(talk_ms)) * 1_000_000 + BYE_DELAY_NS + REPLY_DELAY_NS;
    let gap_ns = busy_ns / i64::from(concurrency.max(1));
    for (i, call) in calls.iter_mut().enumerate() {
        call.start_ns = start_ns + i as i64 * gap_ns;
    }
    calls
}

/// Gives `party` of every call one media address, `ip:port` (its SIP too goes to and from
/// `ip`): a media server, SBC or gateway answering (or, for the caller, offering) every call
/// with the same address, the calls told apart only by their other end.
pub fn share_media_address(calls: &mut [CallSpec], party: Party, ip: IpAddr, port: u16) {
    for call in calls {
        match party {
            Party::Caller => (call.caller_ip, call.caller_rtp_port) = (ip, port),
            Party::Callee => (call.callee_ip, call.callee_rtp_port) = (ip, port),
        }
    }
}

/// Turns a call set into a realistic mix for a demo, deterministically from `seed`.
///
/// Most calls stay answered and are hung up by either side, with both codecs, talk times
/// between 50% and 150% of the original and ring times of 0.5 to 4 s; some use compact
/// headers or carry a P-Asserted-Identity. With at least four calls, call 1 is busy, call 2
/// is cancelled and call 3 is never answered.
pub fn demo_mix(calls: &mut [CallSpec], seed: u64) {
    let n = calls.len();
    for (i, call) in calls.iter_mut().enumerate() {
        let u = |k: u64| unit_f64(hash(&[seed, 0xde70, i as u64, k]));
        call.codec = if (i / 2) % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
        call.talk_ms = (f64::from(call.talk_ms) * (0.5 + u(1))) as u32;
        call.ring_ms = 500 + (3500.0 * u(2)) as u32;
        call.compact_headers = i % 5 == 4;
        if i % 3 == 0 {
            call.pai = Some(format!(
                "\"{}\" <sip:+1555{:07}@pbx.callvault.test>",
                call.from_display.as_deref().unwrap_or("Caller"),
                call.from_user.parse::<u64>().unwrap_or(0) % 10_000_000
            ));
        }
        let hangup = if i % 2 == 0 { Hangup::Caller } else { Hangup::Callee };
        call.outcome = match i {
            1 if n >= 4 => Outcome::Busy,
            2 if n >= 4 => Outcome::Cancelled,
            3 if n >= 4 => Outcome::NoAnswer,
            _ => Outcome::Answered { hangup },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_reaches_the_concurrency() {
        let calls = spread_calls(200, 50, 10_000, 0);
        let busy = |c: &CallSpec| (c.start_ns, c.start_ns + i64::from(c.ring_ms + c.talk_ms) * 1_000_000);
        let mid = calls[150].start_ns;
        let active = calls.iter().filter(|c| busy(c).0 <= mid && mid < busy(c).1).count();
        assert!((48..=51).contains(&active), "{active}");
    }

    #[test]
    fn mix_has_every_outcome_and_both_codecs() {
        let mut calls = spread_calls(12, 4, 20_000, 0);
        demo_mix(&mut calls, 1);
        assert_eq!(calls[1].outcome, Outcome::Busy);
        assert_eq!(calls[2].outcome, Outcome::Cancelled);
        assert_eq!(calls[3].outcome, Outcome::NoAnswer);
        assert!(calls.iter().any(|c| c.codec == Codec::Pcma));
        assert!(calls.iter().any(|c| c.codec == Codec::Pcmu));
        assert!(calls.iter().any(|c| c.outcome == Outcome::Answered { hangup: Hangup::Callee }));
        assert!(crate::Scenario::new(calls).validate().is_ok());
    }
}
