//! SRTP of one party keyed by SDES (RFC 4568): which `a=crypto` line keys it, each stream's
//! rollover counter, and what decrypting cost.
//!
//! Direction: the key in party X's SDP is the key X *sends* with (RFC 4568 §6.1), so it
//! decrypts the RTP (and RTCP) whose sender is X, i.e. the packets the media table attributes
//! to side X (`RtpMeta::side`). An offer may carry several lines; the answer accepts one by its
//! tag, and the offerer then sends with the offered line of that tag.

use capture::events::{MediaAnnounce, MediaSecurity, RtpMeta, SdesCrypto, SdesKey, SdesProblem};

/// Streams (SSRCs) per party whose rollover counters are kept; a further one takes the place
/// of the least recently started.
const MAX_SRTP_STREAMS: usize = 8;

/// A party's SRTP state.
#[derive(Debug, Default)]
pub(crate) enum SideSrtp {
    /// Not SDES-SRTP (in the clear, or encrypted some other way: see `SideState::encrypted`).
    #[default]
    Clear,
    /// The call's SDP says SDES-SRTP, but this party's own SDP with its key has not been seen
    /// (yet): its packets cannot be decrypted and are not decoded.
    Unkeyed {
        /// Packets not decrypted for want of the key.
        packets: u64,
    },
    /// Keyed: its packets are verified and decrypted.
    Keyed(Box<Keyed>),
}

impl SideSrtp {
    /// Whether the party's media is SDES-SRTP (keyed or not).
    pub(crate) fn is_sdes(&self) -> bool {
        !matches!(self, SideSrtp::Clear)
    }
}

/// A party's SRTP context and the rollover counter of each of its streams.
#[derive(Debug)]
pub(crate) struct Keyed {
    /// The key it was derived from (to tell a re-offer with the same key from a new one).
    key: SdesKey,
    ctx: srtp::Context,
    rocs: [(u32, srtp::Rollover); MAX_SRTP_STREAMS],
    used: usize,
    /// Next slot to reuse once all are used.
    evict: usize,
    /// Packets not decrypted before the key was known.
    pub(crate) unkeyed_before: u64,
    /// Packets that authenticated and were decrypted.
    pub(crate) decrypted: u64,
    /// SRTCP packets that failed authentication.
    pub(crate) rtcp_auth_failures: u64,
}

impl Keyed {
    /// The suite.
    pub(crate) fn suite(&self) -> srtp::Suite {
        self.ctx.suite()
    }

    /// Verifies and decrypts one RTP packet of this party into `out`; the payload length.
    #[inline]
    pub(crate) fn unprotect(&mut self, m: &RtpMeta, packet: &[u8], out: &mut [u8]) -> Result<usize, srtp::Error> {
        let i = match self.rocs[..self.used].iter().position(|r| r.0 == m.ssrc) {
            Some(i) => i,
            None => self.slot(m.ssrc),
        };
        let n = self.ctx.unprotect_rtp(packet, &mut self.rocs[i].1, out)?;
        self.decrypted += 1;
        Ok(n)
    }

    #[cold]
    fn slot(&mut self, ssrc: u32) -> usize {
        let i = if self.used < MAX_SRTP_STREAMS {
            self.used += 1;
            self.used - 1
        } else {
            let i = self.evict;
            self.evict = (self.evict + 1) % MAX_SRTP_STREAMS;
            i
        };
        self.rocs[i] = (ssrc, srtp::Rollover::new());
        i
    }

    /// Verifies and decrypts one SRTCP packet into `out`; the RTCP length.
    pub(crate) fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, srtp::Error> {
        self.ctx.unprotect_rtcp(packet, out)
    }
}

/// What a party's SDES lines come to.
#[derive(Debug)]
pub(crate) enum Keying {
    /// A key: SRTP decrypted.
    Key(Box<Keyed>),
    /// The same key as before: keep the rollover counters.
    Unchanged,
    /// No usable key: why.
    Unusable(&'static str),
}

/// The `a=crypto` line of `own` that keys the party's sending: the one the other party's
/// answer accepted (by tag) when it accepted exactly one, else the first usable one.
fn chosen<'a>(own: &'a [SdesCrypto], other: Option<&MediaAnnounce>) -> Option<&'a SdesCrypto> {
    let accepted = other.filter(|o| o.sdes.len() == 1).map(|o| o.sdes[0].tag);
    if own.len() > 1
        && let Some(tag) = accepted
        && let Some(line) = own.iter().find(|c| c.tag == tag)
    {
        return Some(line);
    }
    own.iter().find(|c| c.key.is_ok()).or(own.first())
}

/// The keying of the party whose SDP is `own`, given the other party's SDP and the party's
/// current state.
pub(crate) fn keying(own: &MediaAnnounce, other: Option<&MediaAnnounce>, current: &SideSrtp) -> Keying {
    let Some(line) = chosen(&own.sdes, other) else {
        return Keying::Unusable("no a=crypto line of its SDP could be read");
    };
    let key = match &line.key {
        Ok(k) => k,
        Err(p) => return Keying::Unusable(p.as_str()),
    };
    if let SideSrtp::Keyed(k) = current
        && k.key == *key
    {
        return Keying::Unchanged;
    }
    match srtp::Context::new(key.suite, &key.master, usize::from(key.mki_len)) {
        Ok(ctx) => Keying::Key(Box::new(Keyed {
            key: key.clone(),
            ctx,
            rocs: [(0, srtp::Rollover::new()); MAX_SRTP_STREAMS],
            used: 0,
            evict: 0,
            unkeyed_before: match current {
                SideSrtp::Unkeyed { packets } => *packets,
                SideSrtp::Keyed(k) => k.unkeyed_before,
                SideSrtp::Clear => 0,
            },
            decrypted: 0,
            rtcp_auth_failures: 0,
        })),
        Err(srtp::KeyError::MkiTooLong(_)) => Keying::Unusable("MKI longer than 16 bytes"),
        Err(srtp::KeyError::WrongLength { .. }) => Keying::Unusable(SdesProblem::BadKey.as_str()),
    }
}

/// Whether an SDP says its media is SDES-SRTP.
pub(crate) fn is_sdes(m: Option<&MediaAnnounce>) -> bool {
    m.is_some_and(|m| m.security == Some(MediaSecurity::Sdes))
}

/// What a stream record says about a keyed party's encryption.
pub(crate) fn describe(suite: srtp::Suite) -> String {
    format!("SRTP ({suite}), decrypted with SDES keys from the SDP")
}

#[cfg(test)]
mod tests {
    use capture::Timestamp;
    use capture::codec::PayloadMap;
    use capture::events::{CallEvent, EndReason, EventSink, MediaAnnounce, Side};
    use capture::wire::sdp::Direction;

    use super::*;
    use crate::mix::g711::ULAW_TO_LINEAR;
    use crate::route::tests::{CALL, T0, codes, end, frames, meta, mixer};

    fn key(suite: srtp::Suite, fill: u8) -> SdesKey {
        let bytes: Vec<u8> = (0..suite.master_len() as u8).map(|i| i.wrapping_mul(fill)).collect();
        SdesKey { suite, master: srtp::MasterKey::new(&bytes).unwrap(), mki_len: 0 }
    }

    fn announce(owner: Side, lines: Vec<(u32, SdesKey)>) -> CallEvent {
        let sdes = lines
            .into_iter()
            .map(|(tag, k)| SdesCrypto { tag, suite_name: k.suite.name().into(), key: Ok(k) })
            .collect();
        CallEvent::Media {
            call: CALL,
            media: Box::new(MediaAnnounce {
                owner,
                dest: if owner == Side::Caller { "10.0.0.1:4000" } else { "10.0.0.2:5000" }.parse().unwrap(),
                payloads: PayloadMap::default(),
                ptime_ms: Some(20),
                direction: Direction::SendRecv,
                security: Some(MediaSecurity::Sdes),
                sdes,
                time: Timestamp(T0),
            }),
        }
    }

    /// The SRTP packet of `side`'s packet `k` (sequence numbers from 65530: the stream wraps).
    fn protect(ctx: &srtp::Context, side: Side, k: u16) -> (RtpMeta, Vec<u8>) {
        let mut m = meta(side, k, 0);
        m.seq = 65530u16.wrapping_add(k);
        m.payload_at = 12;
        let mut plain = vec![0x80, u8::from(m.marker) << 7];
        plain.extend_from_slice(&m.seq.to_be_bytes());
        plain.extend_from_slice(&m.rtp_ts.to_be_bytes());
        plain.extend_from_slice(&m.ssrc.to_be_bytes());
        plain.extend_from_slice(&codes(side, k));
        let roc = u32::from(k >= 6);
        let mut out = Vec::new();
        ctx.protect_rtp(&plain, roc, &mut out).unwrap();
        (m, out)
    }

    #[test]
    fn each_party_is_decrypted_with_the_key_it_sends_with_across_the_wrap_and_a_tampered_packet_is_a_gap() {
        use srtp::Suite::*;
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        // The caller offers two lines; the callee's answer accepts tag 2 and gives its own key.
        let (offered_1, offered_2, answer) = (key(AesCm128Sha1_80, 3), key(AeadAes128Gcm, 5), key(AesCm256Sha1_32, 7));
        let caller = srtp::Context::new(AeadAes128Gcm, &offered_2.master, 0).unwrap();
        let callee = srtp::Context::new(AesCm256Sha1_32, &answer.master, 0).unwrap();
        m.call(announce(Side::Caller, vec![(1, offered_1), (2, offered_2)]));
        m.call(announce(Side::Callee, vec![(2, answer)]));
        for k in 0u16..50 {
            for (side, ctx) in [(Side::Caller, &caller), (Side::Callee, &callee)] {
                let (meta, mut packet) = protect(ctx, side, k);
                if side == Side::Caller && k == 20 {
                    packet[30] ^= 0x10;
                }
                m.rtp(&meta, &packet);
            }
        }
        assert_eq!((m.stats().srtp_decrypted, m.stats().srtp_auth_failures), (99, 1));
        let p = end(&mut m, EndReason::Bye);
        let mut want = vec![(0i16, 0i16); 50 * 160];
        for k in 0u16..50 {
            for (i, (&a, &b)) in codes(Side::Caller, k).iter().zip(&codes(Side::Callee, k)).enumerate() {
                let at = usize::from(k) * 160 + i;
                want[at] = (if k == 20 { 0 } else { ULAW_TO_LINEAR[a as usize] }, ULAW_TO_LINEAR[b as usize]);
            }
        }
        assert_eq!(frames(&p), want);
        let streams = &p.record.streams;
        assert_eq!(streams.len(), 2);
        assert_eq!(
            streams[0].encryption.as_deref(),
            Some("SRTP (AEAD_AES_128_GCM), decrypted with SDES keys from the SDP")
        );
        assert_eq!(
            streams[1].encryption.as_deref(),
            Some("SRTP (AES_256_CM_HMAC_SHA1_32), decrypted with SDES keys from the SDP")
        );
        assert_eq!((streams[0].auth_failures, streams[1].auth_failures), (Some(1), Some(0)));
        let gaps = &streams[0].placement.as_ref().unwrap().gaps;
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].frame, gaps[0].cause.as_str()), (20 * 160, "auth_failed"));
        assert!(p.record.encrypted.is_empty());
        assert!(!p.record.capture_complete);
    }

    #[test]
    fn a_wrong_key_is_counted_and_never_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        let suite = srtp::Suite::AesCm128Sha1_80;
        m.call(announce(Side::Caller, vec![(1, key(suite, 3))]));
        m.call(announce(Side::Callee, vec![(1, key(suite, 9))]));
        let wrong = srtp::Context::new(suite, &key(suite, 4).master, 0).unwrap();
        let right = srtp::Context::new(suite, &key(suite, 9).master, 0).unwrap();
        for k in 0u16..30 {
            let (meta, packet) = protect(&wrong, Side::Caller, k);
            m.rtp(&meta, &packet);
            let (meta, packet) = protect(&right, Side::Callee, k);
            m.rtp(&meta, &packet);
        }
        assert_eq!(m.stats().srtp_auth_failures, 30);
        let p = end(&mut m, EndReason::Bye);
        assert!(frames(&p).iter().all(|f| f.0 == 0), "nothing of the caller is decoded");
        let caller = p.record.streams.iter().find(|s| s.side == "caller").unwrap();
        assert_eq!((caller.packets, caller.auth_failures), (0, Some(30)));
        assert_eq!(p.record.encrypted.len(), 1);
        assert_eq!(
            (p.record.encrypted[0].side.as_str(), p.record.encrypted[0].packets),
            ("caller", 30),
            "none of the caller's packets authenticated: encrypted, no audio"
        );
        assert!(p.record.incomplete_reasons.iter().any(|r| r.contains("none of its 30 packets could be decrypted")));
    }

    #[test]
    fn before_its_key_a_party_is_not_decoded_and_an_unusable_key_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        let suite = srtp::Suite::AesCm128Sha1_80;
        m.call(announce(Side::Caller, vec![(1, key(suite, 3))]));
        let callee = srtp::Context::new(suite, &key(suite, 9).master, 0).unwrap();
        let (meta, packet) = protect(&callee, Side::Callee, 0);
        m.rtp(&meta, &packet);
        let mut bad = announce(Side::Callee, vec![]);
        if let CallEvent::Media { media, .. } = &mut bad {
            media.sdes.push(SdesCrypto {
                tag: 1,
                suite_name: "F8_128_HMAC_SHA1_80".into(),
                key: Err(SdesProblem::UnknownSuite),
            });
        }
        m.call(bad);
        let p = end(&mut m, EndReason::Bye);
        assert_eq!(p.record.encrypted.len(), 1);
        assert_eq!(p.record.encrypted[0].side, "callee");
        assert!(p.record.encrypted[0].encryption.contains("crypto suite not supported"), "{:?}", p.record.encrypted);
        assert!(frames_or_none(&p));
    }

    #[test]
    fn srtcp_reports_are_decrypted_with_the_senders_key_and_a_forged_one_is_dropped() {
        use capture::events::RtcpMeta;
        let dir = tempfile::tempdir().unwrap();
        let mut m = mixer(dir.path());
        let suite = srtp::Suite::AesCm128Sha1_32;
        m.call(announce(Side::Caller, vec![(1, key(suite, 3))]));
        m.call(announce(Side::Callee, vec![(1, key(suite, 9))]));
        let caller = srtp::Context::new(suite, &key(suite, 3).master, 0).unwrap();
        let callee = srtp::Context::new(suite, &key(suite, 9).master, 0).unwrap();
        for k in 0u16..30 {
            let (meta, packet) = protect(&caller, Side::Caller, k);
            m.rtp(&meta, &packet);
        }
        // The callee's receiver report about the caller's stream: 25 % lost, 5 in all.
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0x10, 0x01, 0, 0, 0x10, 0x00, 64, 0, 0, 5];
        rr.extend_from_slice(&[0, 1, 0, 20, 0, 0, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0]);
        let meta = RtcpMeta {
            call: CALL,
            side: Side::Callee,
            time: Timestamp(T0 + 700_000_000),
            src: "10.0.0.2:5001".parse().unwrap(),
            dst: "10.0.0.1:4001".parse().unwrap(),
        };
        let mut wire = Vec::new();
        callee.protect_rtcp(&rr, 1, &mut wire).unwrap();
        let mut forged = Vec::new();
        caller.protect_rtcp(&rr, 2, &mut forged).unwrap();
        m.rtcp(&meta, &wire);
        m.rtcp(&meta, &forged);
        assert_eq!((m.stats().srtcp_decrypted, m.stats().srtcp_auth_failures), (1, 1));
        let p = end(&mut m, EndReason::Bye);
        let report = p.record.streams[0].endpoint_report.as_ref().expect("the callee's report, decrypted");
        assert_eq!((report.reported_by.as_str(), report.reports, report.cumulative_lost), ("callee", 1, 5));
        assert_eq!(report.fraction_lost_pct, 25.0);
        assert!(p.record.notes.iter().any(|n| n.contains("1 of the callee's SRTCP packets failed authentication")));
    }

    fn frames_or_none(p: &crate::pending::PendingRecording) -> bool {
        p.audio.is_empty() || frames(p).iter().all(|f| f.1 == 0)
    }
}
