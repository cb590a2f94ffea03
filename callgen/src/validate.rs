//! Checks a [`Scenario`] before any byte is written.

use std::io;

use crate::spec::{CallSpec, DirImpair, Link, Outcome, Scenario};

/// Latest capture time a classic pcap record can hold (its seconds field is a `u32`).
const MAX_TIME_NS: i64 = u32::MAX as i64 * 1_000_000_000;

/// Longest Call-ID, user, display name or P-Asserted-Identity: keeps every SIP message far
/// below the 65,507-byte UDP payload limit.
const MAX_TEXT_LEN: usize = 1024;

/// Why a scenario cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A VLAN id does not fit in 12 bits.
    #[error("VLAN id {0} is above 4095")]
    VlanId(u16),
    /// Something is wrong with one call.
    #[error("call #{index} (Call-ID {call_id:?}): {problem}")]
    Call {
        /// Position of the call in `Scenario::calls`.
        index: usize,
        /// Its Call-ID.
        call_id: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

impl From<SpecError> for io::Error {
    fn from(e: SpecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

impl Scenario {
    /// Checks every call; [`write_pcap`](crate::write_pcap) runs this first.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self.link {
            Link::Vlan(id) if id > 4095 => return Err(SpecError::VlanId(id)),
            Link::QinQ(outer, inner) if outer > 4095 || inner > 4095 => {
                return Err(SpecError::VlanId(outer.max(inner)));
            }
            _ => {}
        }
        for (index, call) in self.calls.iter().enumerate() {
            check_call(call).map_err(|problem| SpecError::Call { index, call_id: call.call_id.clone(), problem })?;
        }
        Ok(())
    }
}

fn check_call(c: &CallSpec) -> Result<(), String> {
    if c.caller_ip.is_ipv4() != c.callee_ip.is_ipv4() {
        return Err(format!("caller {} and callee {} are not the same IP family", c.caller_ip, c.callee_ip));
    }
    if c.call_id.is_empty() || c.from_user.is_empty() || c.to_user.is_empty() {
        return Err("call_id, from_user and to_user must not be empty".into());
    }
    for (name, value) in [
        ("call_id", Some(c.call_id.as_str())),
        ("from_user", Some(c.from_user.as_str())),
        ("to_user", Some(c.to_user.as_str())),
        ("from_display", c.from_display.as_deref()),
        ("pai", c.pai.as_deref()),
    ] {
        if value.is_some_and(|v| v.chars().any(|ch| ch.is_control())) {
            return Err(format!("{name} contains a control character (CR, LF, ...)"));
        }
        if value.is_some_and(|v| v.len() > MAX_TEXT_LEN) {
            return Err(format!("{name} is longer than {MAX_TEXT_LEN} bytes"));
        }
    }
    for (name, value) in [("call_id", &c.call_id), ("from_user", &c.from_user), ("to_user", &c.to_user)] {
        if value.chars().any(|ch| ch.is_whitespace() || ch == '<' || ch == '>' || ch == '"') {
            return Err(format!("{name} {value:?} contains whitespace, '<', '>' or '\"'"));
        }
    }
    if c.from_display.as_deref().is_some_and(|d| d.contains('"') || d.contains('\\')) {
        return Err("from_display must not contain '\"' or '\\'".into());
    }
    if !(10..=60).contains(&c.ptime_ms) {
        return Err(format!("ptime_ms {} is outside 10..=60", c.ptime_ms));
    }
    for (name, f) in [("caller_tone_hz", c.caller_tone_hz), ("callee_tone_hz", c.callee_tone_hz)] {
        if !(f > 0.0 && f < 4000.0) {
            return Err(format!("{name} {f} must be above 0 and below 4000 Hz"));
        }
    }
    if let Outcome::Rejected(code) = c.outcome {
        if !(300..=699).contains(&code) {
            return Err(format!("Rejected({code}) needs a final non-2xx status, 300..=699"));
        }
    }
    let end = c.start_ns.checked_add(crate::timeline::max_duration_ns(c)).unwrap_or(i64::MAX);
    if c.start_ns < 0 || end > MAX_TIME_NS {
        return Err(format!("start_ns {} puts the call outside the pcap time range (1970 to 2106)", c.start_ns));
    }
    if matches!(c.outcome, Outcome::Answered { .. }) {
        let n = c.packets_per_direction();
        check_impair("caller", &c.impair.caller, n)?;
        check_impair("callee", &c.impair.callee, n)?;
    }
    Ok(())
}

fn check_impair(side: &str, d: &DirImpair, n: u32) -> Result<(), String> {
    if !(d.clock_ppm.is_finite() && d.clock_ppm.abs() < 10_000.0) {
        return Err(format!("{side} clock_ppm {} must be finite and within ±10000", d.clock_ppm));
    }
    if !(d.jitter_ms.is_finite() && d.jitter_ms >= 0.0) {
        return Err(format!("{side} jitter_ms {} must be finite and >= 0", d.jitter_ms));
    }
    for (what, list) in [("loss", &d.loss), ("duplicate", &d.duplicate), ("reorder", &d.reorder)] {
        if let Some(bad) = list.iter().find(|&&k| k >= n) {
            return Err(format!("{side} {what} index {bad} is past the stream's {n} packets (talk_ms / ptime_ms)"));
        }
    }
    if let Some(bad) = d.reorder.iter().find(|&&k| k + 1 >= n) {
        return Err(format!("{side} reorder index {bad} has no following packet to swap with"));
    }
    if let Some(bad) = d.reorder.iter().find(|&&k| d.reorder.contains(&(k + 1))) {
        return Err(format!("{side} reorder lists both {bad} and {}: swaps may not overlap", bad + 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CallSpec;

    fn one(call: CallSpec) -> Result<(), SpecError> {
        Scenario::new(vec![call]).validate()
    }

    #[test]
    fn accepts_default_call() {
        assert!(one(CallSpec::answered(0, 1_700_000_000_000_000_000, 1000)).is_ok());
    }

    #[test]
    fn rejects_mixed_families_and_bad_values() {
        let base = CallSpec::answered(0, 1_700_000_000_000_000_000, 1000);
        let mut c = base.clone();
        c.callee_ip = "::1".parse().unwrap();
        assert!(one(c).is_err());
        let mut c = base.clone();
        c.ptime_ms = 5;
        assert!(one(c).is_err());
        let mut c = base.clone();
        c.impair.caller.loss = vec![50];
        assert!(one(c).is_err(), "index past 50 packets");
        let mut c = base.clone();
        c.impair.callee.reorder = vec![3, 4];
        assert!(one(c).is_err(), "overlapping swaps");
        let mut c = base.clone();
        c.call_id = "a\r\nb".into();
        assert!(one(c).is_err());
        let mut c = base.clone();
        c.outcome = Outcome::Rejected(200);
        assert!(one(c).is_err());
        let mut c = base;
        c.start_ns = -1;
        let e = one(c).unwrap_err().to_string();
        assert!(e.contains("call #0"), "{e}");
    }

    #[test]
    fn rejects_bad_vlan() {
        let s = Scenario { link: Link::QinQ(10, 5000), ..Scenario::default() };
        assert!(s.validate().is_err());
    }
}
