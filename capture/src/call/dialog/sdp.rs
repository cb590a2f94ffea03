//! What a call's SDP bodies do: the media addresses it claims in the media table (audio,
//! RTCP, NAT-learned twins, non-audio lines), hold and resume, the media announcements the
//! mixer gets, and giving claims back.

use std::net::SocketAddr;

use super::{Call, MAX_AMBIGUOUS_ADDRESSES, MAX_HOLDS, MAX_OTHER_MEDIA, MediaKey, Out};
use crate::call::codec::PayloadMap;
use crate::call::media::{MediaKind, MediaOwner, MediaTable, is_private};
use crate::events::{
    AmbiguousMedia, CallEvent, CallRef, Hold, MediaAnnounce, OtherMedia, SdesCrypto, SdesKey, SdesProblem, Side,
};
use crate::limits::Limits;
use crate::stats::CaptureStats;
use crate::time::Timestamp;
use crate::wire::Layer;
use crate::wire::sdp;

/// Gives up `call`'s claim on `key.addr`: the flows it had there go, and the packets that
/// could not be told apart at that address while the call claimed it are counted for the call.
pub(super) fn release_key(call: &mut Call, key: &MediaKey, call_ref: CallRef, media: &mut MediaTable) {
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
pub(super) fn note_ambiguous(call: &mut Call, key: &MediaKey, media: &MediaTable) {
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
pub(super) fn recent_ambiguity(call: &Call, media: &MediaTable, now: Timestamp, limit: i64) -> bool {
    call.media_keys.iter().any(|k| media.ambiguous_at(&k.addr).1.is_some_and(|t| now.since(t) < limit))
}

/// Registers the audio address of an SDP body sent by `owner` and announces it to the mixer.
/// Offers and answers after the answer that put the call on hold or resumed it are recorded.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_sdp(
    call: &mut Call,
    call_ref: CallRef,
    owner: Side,
    tag: Option<&[u8]>,
    src: SocketAddr,
    body: &[u8],
    now: Timestamp,
    limits: &Limits,
    out: &mut Out<'_>,
) {
    let (max_media, max_flows) = (limits.max_media_per_call, limits.max_media_flows_per_call);
    let sdp = match sdp::parse(body) {
        Ok(s) => s,
        Err(_) => {
            out.stats.count_malformed(Layer::Sdp);
            return;
        }
    };
    other_media(call, call_ref, owner, &sdp, max_media, out);
    let Some(audio) = sdp.audio() else {
        // No audio, or audio refused with port 0 (e.g. a T.38-only re-offer).
        return;
    };
    let Some(ip) = sdp.connection_for(audio) else {
        out.stats.sdp_unusable += 1;
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
    let sdes = if security == Some(sdp::Security::Sdes) { sdes_keys(audio) } else { Vec::new() };
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
                release_key(call, &old, call_ref, out.media);
                out.stats.media_retired += 1;
            }
            let ambiguous_base = out.media.ambiguous_at(&addr).0;
            call.media_keys.push(MediaKey { addr, owner, kind, tag: tag.map(Into::into), ambiguous_base });
        }
        let key_owner = MediaOwner { kind, ..MediaOwner::rtp(call_ref, owner.other()) };
        if learned {
            if out.media.learn(addr, key_owner) {
                out.stats.media_learned += 1;
            }
        } else {
            out.media.register(addr, key_owner);
        }
    }
    claim_pairs(call, call_ref, out.media, out.stats, max_flows);
    let announced = &mut call.announced[owner.index()];
    if announced.as_ref().is_some_and(|(d, p, dir, sec, keys)| {
        *d == dest && *p == payloads && *dir == direction && *sec == security && *keys == sdes
    }) {
        return;
    }
    *announced = Some((dest, payloads.clone(), direction, security, sdes.clone()));
    out.events.push_back(CallEvent::Media {
        call: call_ref,
        media: Box::new(MediaAnnounce {
            owner,
            dest,
            payloads,
            ptime_ms: audio.ptime,
            direction,
            security,
            sdes,
            time: now,
        }),
    });
}

/// The SDES keys of an audio line's `a=crypto` lines (RFC 4568), each with its tag, or why it
/// gives none.
fn sdes_keys(audio: &sdp::Media<'_>) -> Vec<SdesCrypto> {
    audio
        .cryptos
        .iter()
        .map(|c| SdesCrypto { tag: c.tag, suite_name: String::from_utf8_lossy(c.suite).into_owned(), key: sdes_key(c) })
        .collect()
}

fn sdes_key(c: &sdp::Crypto<'_>) -> Result<SdesKey, SdesProblem> {
    let suite = srtp::Suite::from_name(c.suite).ok_or(SdesProblem::UnknownSuite)?;
    for p in c.params.split(|&b| b == b' ' || b == b'\t').filter(|p| !p.is_empty()) {
        match p.strip_prefix(b"KDR=") {
            Some(b"0") => {}
            Some(_) => return Err(SdesProblem::KeyDerivationRate),
            // Window size hint: how far the receiver's replay window reaches; not a format change.
            None if p.starts_with(b"WSH=") => {}
            None => return Err(SdesProblem::SessionParameter),
        }
    }
    if c.more_keys > 0 {
        return Err(SdesProblem::SeveralKeys);
    }
    let master = srtp::MasterKey::from_base64(c.key.0).filter(|k| k.len() == suite.master_len());
    let master = master.ok_or(SdesProblem::BadKey)?;
    Ok(SdesKey { suite, master, mki_len: c.mki.map_or(0, |(_, len)| len) })
}

/// Registers the non-audio media lines (video, T.38, BFCP, ...) of an SDP sent by `owner`, so
/// that their datagrams are counted for the call instead of left unmatched.
fn other_media(
    call: &mut Call,
    call_ref: CallRef,
    owner: Side,
    sdp: &sdp::Sdp<'_>,
    max_media: usize,
    out: &mut Out<'_>,
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
        let ambiguous_base = out.media.ambiguous_at(&dest).0;
        call.media_keys.push(MediaKey { addr: dest, owner, kind, tag: None, ambiguous_base });
        out.media.register(dest, MediaOwner { kind, ..MediaOwner::rtp(call_ref, owner.other()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_lines_become_keys_or_say_why_not() {
        let body = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz KDR=0 WSH=64\r\n\
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz KDR=2\r\n\
a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTP\r\n\
a=crypto:5 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:6 AEAD_AES_256_GCM inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:4;inline:QUJD|2:4\r\n";
        let sdp = sdp::parse(body).unwrap();
        let keys = sdes_keys(sdp.audio().unwrap());
        let got: Vec<_> =
            keys.iter().map(|c| (c.tag, c.key.as_ref().map(|k| (k.suite, k.mki_len)).map_err(|p| *p))).collect();
        let cm = srtp::Suite::AesCm128Sha1_80;
        assert_eq!(
            got,
            vec![
                (1, Ok((cm, 4))),
                (2, Ok((cm, 0))),
                (3, Err(SdesProblem::KeyDerivationRate)),
                (4, Err(SdesProblem::SessionParameter)),
                (5, Err(SdesProblem::UnknownSuite)),
                (6, Err(SdesProblem::BadKey)),
                (7, Err(SdesProblem::SeveralKeys)),
            ]
        );
        assert_eq!(keys[0].key.as_ref().unwrap().master.expose_secret()[..4], [0x59, 0x53, 0x5f, 0x5f]);
        assert!(!format!("{keys:?}").contains("WVNf") && !format!("{keys:?}").contains("89, 83, 95"), "{keys:?}");
    }
}
