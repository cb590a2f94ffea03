//! Checks a [`Scenario`] before any byte is written.

use std::io;

use crate::rtp::StreamPlan;
use crate::spec::{CallSpec, Delay, DirImpair, Link, MediaSecurity, MidCall, Outcome, Scenario, SipTransport, Tunnel};
use crate::timeline::Party;

/// Latest capture time a classic pcap record can hold (its seconds field is a `u32`).
const MAX_TIME_NS: i64 = u32::MAX as i64 * 1_000_000_000;

/// Longest Call-ID, user, display name or P-Asserted-Identity: keeps every SIP message far
/// below the 65,507-byte UDP payload limit.
const MAX_TEXT_LEN: usize = 1024;

/// Largest `invite_padding`: keeps the INVITE within a UDP datagram.
const MAX_PADDING: u32 = 60_000;

/// Re-INVITEs per call (their index is a `u8`).
const MAX_REINVITES: usize = 64;

/// Why a scenario cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A VLAN id does not fit in 12 bits.
    #[error("VLAN id {0} is above 4095")]
    VlanId(u16),
    /// The tunnel or fragmentation settings are out of range.
    #[error("{0}")]
    Network(String),
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
        match self.tunnel {
            Some(Tunnel::ErspanII { session } | Tunnel::ErspanIII { session }) if session > 1023 => {
                return Err(SpecError::Network(format!("ERSPAN session id {session} is above 1023")));
            }
            Some(Tunnel::Vxlan { vni }) if vni > 0x00ff_ffff => {
                return Err(SpecError::Network(format!("VXLAN VNI {vni} does not fit in 24 bits")));
            }
            _ => {}
        }
        if let Some(f) = self.fragmentation
            && !(576..=9000).contains(&f.mtu)
        {
            return Err(SpecError::Network(format!("MTU {} is outside 576..=9000", f.mtu)));
        }
        if let Some(n) = self.snaplen
            && !(14..=crate::pcap::SNAPLEN).contains(&n)
        {
            return Err(SpecError::Network(format!("snaplen {n} is outside 14..={}", crate::pcap::SNAPLEN)));
        }
        if let Some(s) = self.capture_stalls.iter().find(|s| s.duration_ms == 0 || s.at_ns < 0) {
            return Err(SpecError::Network(format!(
                "capture stall at {} ns of {} ms: needs a length",
                s.at_ns, s.duration_ms
            )));
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
    for codec in [Some(c.codec), c.callee_codec].into_iter().flatten() {
        let frame_ms = match codec {
            crate::Codec::G729 => 10,
            crate::Codec::Gsm => 20,
            _ => 1,
        };
        if !c.ptime_ms.is_multiple_of(frame_ms) {
            return Err(format!("ptime_ms {} is not whole {codec:?} frames of {frame_ms} ms", c.ptime_ms));
        }
    }
    let opus = [Some(c.codec), c.callee_codec]
        .into_iter()
        .flatten()
        .chain(c.midcall.iter().filter_map(|m| match m {
            MidCall::ChangeCodec { codec, .. } => Some(*codec),
            _ => None,
        }))
        .any(|codec| codec == crate::Codec::Opus);
    if opus {
        if ![10, 20, 40, 60].contains(&c.ptime_ms) {
            return Err(format!("ptime_ms {} is not one Opus frame (10, 20, 40 or 60 ms)", c.ptime_ms));
        }
        if c.early_media.is_some() || !c.dtmf.is_empty() {
            return Err("Opus calls are generated without early media and RFC 4733 events".into());
        }
    }
    for (name, f) in [("caller_tone_hz", c.caller_tone_hz), ("callee_tone_hz", c.callee_tone_hz)] {
        if !(f > 0.0 && f < 4000.0) {
            return Err(format!("{name} {f} must be above 0 and below 4000 Hz"));
        }
    }
    if let Outcome::Rejected(code) = c.outcome
        && !(300..=699).contains(&code)
    {
        return Err(format!("Rejected({code}) needs a final non-2xx status, 300..=699"));
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
    check_network(c)?;
    check_media(c)?;
    check_midcall(c)
}

/// Auth challenge, encryption and extra media lines.
fn check_media(c: &CallSpec) -> Result<(), String> {
    if let Some(a) = c.auth {
        if a.code != 401 && a.code != 407 {
            return Err(format!("auth challenge code {} must be 401 or 407", a.code));
        }
        if a.retry_ms < 20 {
            return Err(format!("auth retry_ms {} must be at least 20", a.retry_ms));
        }
        if c.outcome == Outcome::NoAnswer {
            return Err("an auth challenge needs a call that gets a final response (not NoAnswer)".into());
        }
    }
    if c.srtp.is_some() && c.media_security != Some(MediaSecurity::Sdes) {
        return Err("srtp needs media_security Sdes (keys in the SDP)".into());
    }
    if c.extra_media.is_empty() {
        return Ok(());
    }
    if !matches!(c.outcome, Outcome::Answered { .. }) {
        return Err("extra_media needs an answered call".into());
    }
    for x in &c.extra_media {
        if x.caller_port == 0 || x.callee_port == 0 || x.packets == 0 || x.packets > 1_000_000 {
            return Err("an extra media line needs non-zero ports and 1..=1000000 packets".into());
        }
        if x.caller_port == c.caller_rtp_port || x.callee_port == c.callee_rtp_port {
            return Err("an extra media line cannot share the audio RTP port".into());
        }
    }
    Ok(())
}

/// SIP transport, padding and NAT.
fn check_network(c: &CallSpec) -> Result<(), String> {
    if c.invite_padding > MAX_PADDING {
        return Err(format!("invite_padding {} is above {MAX_PADDING}", c.invite_padding));
    }
    if let SipTransport::WebSocket(w) = c.sip_transport
        && (!(1..=65_000).contains(&w.mss) || w.fragment == Some(0))
    {
        return Err(format!("WebSocket mss {} or fragment {:?} out of range", w.mss, w.fragment));
    }
    if let SipTransport::Sctp(o) = c.sip_transport
        && (o.fragment == Some(0) || !(1..=64).contains(&o.bundle) || o.streams == 0)
    {
        return Err(format!("SCTP options out of range: {o:?}"));
    }
    if let SipTransport::Tcp(t) = c.sip_transport {
        if !(1..=65_000).contains(&t.mss) {
            return Err(format!("TCP mss {} is outside 1..=65000", t.mss));
        }
        if matches!(c.outcome, Outcome::NoAnswer | Outcome::NoResponse) {
            return Err("SIP over TCP is not retransmitted: NoAnswer and NoResponse need UDP".into());
        }
        if c.start_ns < crate::timeline::TCP_OPEN_NS {
            return Err("start_ns leaves no room for the TCP handshake before the INVITE".into());
        }
        if c.caller_ip == c.callee_ip && c.caller_sip_port == c.callee_sip_port {
            return Err("the TCP connection needs two different endpoints".into());
        }
    }
    if let Some(nat) = c.callee_nat {
        if nat.public_ip.is_ipv4() != c.caller_ip.is_ipv4() {
            return Err(format!("NAT address {} is not the call's IP family", nat.public_ip));
        }
        if c.midcall.iter().any(|m| matches!(m, MidCall::MoveMedia { party: Party::Callee, .. })) {
            return Err("a callee behind NAT cannot move its media (its public port would change too)".into());
        }
    }
    if let Some(e) = c.early_media {
        if !matches!(c.outcome, Outcome::Answered { .. }) {
            return Err("early media needs an answered call".into());
        }
        if !(e.tone_hz > 0.0 && e.tone_hz < 4000.0) {
            return Err(format!("early media tone_hz {} must be above 0 and below 4000 Hz", e.tone_hz));
        }
    }
    if c.answer_seen_late_ms > 0 {
        if !matches!(c.outcome, Outcome::Answered { .. }) {
            return Err("answer_seen_late_ms needs an answered call".into());
        }
        if c.answer_seen_late_ms > 1000 || c.answer_seen_late_ms >= c.talk_ms {
            return Err(format!(
                "answer_seen_late_ms {} must be at most 1000 and less than talk_ms {}",
                c.answer_seen_late_ms, c.talk_ms
            ));
        }
    }
    Ok(())
}

/// Re-INVITEs, DTMF and numbering changes.
fn check_midcall(c: &CallSpec) -> Result<(), String> {
    let answered = matches!(c.outcome, Outcome::Answered { .. });
    if !answered
        && (!c.midcall.is_empty() || !c.dtmf.is_empty() || !c.stream_changes.is_empty() || !c.event_streams.is_empty())
    {
        return Err("midcall, dtmf, stream_changes and event_streams need an answered call".into());
    }
    if !answered && !c.infos.is_empty() {
        return Err("infos need an answered call".into());
    }
    for (n, info) in c.infos.iter().enumerate() {
        if info.at_ms >= c.talk_ms || c.infos.len() > 200 {
            return Err(format!("info {n} at {} ms: not within the talk time (or more than 200 INFOs)", info.at_ms));
        }
        if let Some((name, value)) = &info.header
            && (name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || value.contains(['\r', '\n']))
        {
            return Err(format!("info {n}: {name:?}: {value:?} is not a header line"));
        }
        if let Some((key, _)) = info.dtmf
            && !matches!(key, '0'..='9' | '*' | '#' | 'A'..='D')
        {
            return Err(format!("info {n}: {key:?} is not a DTMF key"));
        }
    }
    for party in [Party::Caller, Party::Callee] {
        if c.event_streams.iter().filter(|e| e.party == party).count() > 1 {
            return Err(format!("more than one event stream for the {}", party.name()));
        }
    }
    // Re-INVITE times: (ms after the answer, is a hold, is a resume, by).
    let mut times: Vec<(u32, &str)> = Vec::new();
    for m in &c.midcall {
        match *m {
            MidCall::Hold { at_ms, resume_ms, .. } => {
                times.push((at_ms, "hold"));
                if let Some(r) = resume_ms {
                    if r <= at_ms {
                        return Err(format!("hold at {at_ms} ms resumes at {r} ms, not after it"));
                    }
                    times.push((r, "resume"));
                }
            }
            MidCall::MoveMedia { at_ms, rtp_port, .. } => {
                if rtp_port == 0 {
                    return Err("MoveMedia to port 0".into());
                }
                times.push((at_ms, "move"));
            }
            MidCall::ChangeCodec { at_ms, codec, .. } => {
                let frame_ms = match codec {
                    crate::Codec::G729 => 10,
                    crate::Codec::Gsm => 20,
                    _ => 1,
                };
                if !c.ptime_ms.is_multiple_of(frame_ms) || c.media_security.is_some() {
                    return Err(format!("a change to {codec:?} needs whole frames per packet and media in the clear"));
                }
                times.push((at_ms, "codec change"));
            }
        }
    }
    if times.len() > MAX_REINVITES {
        return Err(format!("{} re-INVITEs, at most {MAX_REINVITES}", times.len()));
    }
    times.sort_unstable();
    for (at, what) in &times {
        if *at < 20 || u64::from(*at) + 20 > u64::from(c.talk_ms) {
            return Err(format!(
                "{what} re-INVITE at {at} ms must be at least 20 ms after the answer and 20 ms before the talk time ({} ms) ends",
                c.talk_ms
            ));
        }
    }
    if let Some(w) = times.windows(2).find(|w| w[1].0 - w[0].0 < 20) {
        return Err(format!("re-INVITEs at {} and {} ms are less than 20 ms apart", w[0].0, w[1].0));
    }
    let mut holds: Vec<(u32, u32)> = c
        .midcall
        .iter()
        .filter_map(|m| match *m {
            MidCall::Hold { at_ms, resume_ms, .. } => Some((at_ms, resume_ms.unwrap_or(u32::MAX))),
            _ => None,
        })
        .collect();
    holds.sort_unstable();
    if holds.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err("holds overlap: resume one before the next starts".into());
    }
    if !answered {
        return Ok(());
    }
    let n = c.packets_per_direction();
    let spp = crate::tone::samples_per_packet(c.ptime_ms);
    if let Some(s) = c.silences.iter().find(|s| u64::from(s.at_packet) + u64::from(s.packets) > u64::from(n)) {
        return Err(format!("a silence of the {} ends past the stream's {n} packets", s.party.name()));
    }
    for party in [Party::Caller, Party::Callee] {
        let side = party.name();
        let plan = StreamPlan::new(c, party);
        let impair = match party {
            Party::Caller => &c.impair.caller,
            Party::Callee => &c.impair.callee,
        };
        for (what, list) in [("loss", &impair.loss), ("duplicate", &impair.duplicate), ("reorder", &impair.reorder)] {
            if let Some(k) = list.iter().find(|&&k| plan.is_muted(k) || (what == "reorder" && plan.is_muted(k + 1))) {
                return Err(format!("{side} {what} index {k} falls where the {side} sends nothing (held, or DTX)"));
            }
        }
        let mut events: Vec<(u32, u32)> = Vec::new();
        for d in c.dtmf.iter().filter(|d| d.party == party) {
            let end = u64::from(d.at_packet) + u64::from(d.packets) + 2;
            if d.packets == 0 || end > u64::from(n) {
                return Err(format!(
                    "{side} DTMF at packet {} needs 1 or more packets and {} + 2 must fit in the stream's {n}",
                    d.at_packet, d.packets
                ));
            }
            if u64::from(d.packets) * u64::from(spp) > 0xffff {
                return Err(format!("{side} DTMF of {} packets is too long for the 16-bit duration", d.packets));
            }
            if (d.at_packet..end as u32).any(|k| plan.is_muted(k)) {
                return Err(format!("{side} DTMF at packet {} falls where the {side} is held", d.at_packet));
            }
            events.push((d.at_packet, end as u32));
        }
        events.sort_unstable();
        if events.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(format!("{side} DTMF events overlap"));
        }
        let mut changes: Vec<u32> = c.stream_changes.iter().filter(|s| s.party == party).map(|s| s.at_packet).collect();
        changes.sort_unstable();
        if changes.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("{side} has two stream changes at the same packet"));
        }
        if let Some(k) = changes.iter().find(|&&k| k == 0 || k >= n) {
            return Err(format!("{side} stream change at packet {k} must be within 1..{n}"));
        }
        if let Some(k) = changes.iter().find(|&&k| events.iter().any(|&(a, b)| a < k && k < b)) {
            return Err(format!("{side} stream change at packet {k} falls inside a DTMF event"));
        }
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
    match d.delay {
        Some(Delay::Uniform { max_ms } | Delay::Bursty { max_ms, .. }) if !(0.0..=10_000.0).contains(&max_ms) => {
            return Err(format!("{side} delay max_ms {max_ms} must be within 0..=10000"));
        }
        Some(Delay::Bursty { burst_ms, gap_ms, .. }) if burst_ms == 0 || gap_ms == 0 => {
            return Err(format!("{side} bursty delay needs burst_ms and gap_ms above 0"));
        }
        _ => {}
    }
    if let Some(s) = d.stalls.iter().find(|s| s.duration_ms == 0) {
        return Err(format!("{side} stall at {} ms has no length", s.at_ms));
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
