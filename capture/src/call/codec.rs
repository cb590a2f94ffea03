//! Payload types and codecs: resolving an RTP payload type number to a codec, per call, from
//! the static RFC 3551 table and the `a=rtpmap` lines of the call's SDP.

use crate::wire::sdp::Media;

/// Codecs callvault recognises by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (PCMU).
    Pcmu,
    /// G.711 A-law (PCMA).
    Pcma,
    /// G.722.
    G722,
    /// G.729 / G.729A / G.729B.
    G729,
    /// G.723.1.
    G723,
    /// G.726 (any bit rate, including AAL2 packing).
    G726,
    /// GSM 06.10.
    Gsm,
    /// iLBC.
    Ilbc,
    /// Opus.
    Opus,
    /// Speex.
    Speex,
    /// AMR / AMR-WB.
    Amr,
    /// L16 (RFC 3551 §4.5.11: linear 16-bit big-endian PCM), mono at 8000 or 16000 Hz; L16 at
    /// other rates or with more channels (the static types 10 and 11: 44.1 kHz) is [`Codec::Other`].
    L16,
    /// RFC 4733 telephone-event (DTMF).
    TelephoneEvent,
    /// RFC 3389 comfort noise.
    ComfortNoise,
    /// RFC 2198 redundancy.
    Red,
    /// Anything else.
    Other,
}

impl Codec {
    /// True for codecs the mixer decodes to audio.
    pub fn is_decodable(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma | Codec::G722 | Codec::Opus | Codec::G729 | Codec::Gsm | Codec::L16)
    }

    /// True for payloads that carry no audio of their own (events, comfort noise).
    pub fn is_signal(self) -> bool {
        matches!(self, Codec::TelephoneEvent | Codec::ComfortNoise)
    }

    fn from_encoding(name: &[u8]) -> Codec {
        let up = |s: &[u8]| name.eq_ignore_ascii_case(s);
        if up(b"PCMU") {
            Codec::Pcmu
        } else if up(b"PCMA") {
            Codec::Pcma
        } else if up(b"G722") {
            Codec::G722
        } else if up(b"G729") || up(b"G729A") || up(b"G729B") || up(b"G729AB") {
            Codec::G729
        } else if up(b"G723") {
            Codec::G723
        } else if name.len() >= 4 && (name[..4].eq_ignore_ascii_case(b"G726") || contains_ci(name, b"G726")) {
            Codec::G726
        } else if up(b"GSM") {
            Codec::Gsm
        } else if up(b"iLBC") {
            Codec::Ilbc
        } else if up(b"opus") {
            Codec::Opus
        } else if up(b"speex") {
            Codec::Speex
        } else if up(b"AMR") || up(b"AMR-WB") {
            Codec::Amr
        } else if up(b"L16") {
            Codec::L16
        } else if up(b"telephone-event") {
            Codec::TelephoneEvent
        } else if up(b"CN") {
            Codec::ComfortNoise
        } else if up(b"red") {
            Codec::Red
        } else {
            Codec::Other
        }
    }
}

/// RTP encoding names as the IANA registry spells them ("RTP Payload Format media types"),
/// for audio and the payloads that travel with it. Matching is case-insensitive (RFC 4855).
const IANA_ENCODINGS: &[&str] = &[
    "PCMU",
    "PCMA",
    "G722",
    "G723",
    "G726-16",
    "G726-24",
    "G726-32",
    "G726-40",
    "AAL2-G726-16",
    "AAL2-G726-24",
    "AAL2-G726-32",
    "AAL2-G726-40",
    "G728",
    "G729",
    "G729D",
    "G729E",
    "G7221",
    "G719",
    "GSM",
    "GSM-EFR",
    "GSM-HR-08",
    "iLBC",
    "opus",
    "speex",
    "AMR",
    "AMR-WB",
    "AMR-WB+",
    "EVS",
    "SILK",
    "DVI4",
    "VDVI",
    "LPC",
    "QCELP",
    "MPA",
    "L8",
    "L16",
    "L20",
    "L24",
    "telephone-event",
    "tone",
    "CN",
    "red",
    "t140",
];

/// The canonical spelling of an encoding name: the IANA registry's when it is registered
/// (`pcmu` -> `PCMU`, `OPUS` -> `opus`, `Telephone-Event` -> `telephone-event`), else the name
/// as signalled.
pub fn canonical_encoding(name: &[u8]) -> String {
    match IANA_ENCODINGS.iter().find(|e| e.as_bytes().eq_ignore_ascii_case(name)) {
        Some(e) => (*e).to_owned(),
        None => String::from_utf8_lossy(name).into_owned(),
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// One payload type's meaning within a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadDesc {
    /// Payload type number.
    pub pt: u8,
    /// Recognised codec.
    pub codec: Codec,
    /// Encoding name in its canonical (IANA) spelling ([`canonical_encoding`]), from the
    /// `a=rtpmap` or the static table, e.g. `PCMU`, `G726-32`, `opus`.
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock: u32,
}

/// The payload types of one media description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadMap {
    entries: Vec<PayloadDesc>,
}

/// RFC 3551 static payload types that carry audio.
fn static_pt(pt: u8) -> Option<(Codec, &'static str, u32)> {
    Some(match pt {
        0 => (Codec::Pcmu, "PCMU", 8000),
        3 => (Codec::Gsm, "GSM", 8000),
        4 => (Codec::G723, "G723", 8000),
        5 => (Codec::Other, "DVI4", 8000),
        6 => (Codec::Other, "DVI4", 16000),
        7 => (Codec::Other, "LPC", 8000),
        8 => (Codec::Pcma, "PCMA", 8000),
        9 => (Codec::G722, "G722", 8000),
        10 | 11 => (Codec::Other, "L16", 44100),
        12 => (Codec::Other, "QCELP", 8000),
        13 => (Codec::ComfortNoise, "CN", 8000),
        14 => (Codec::Other, "MPA", 90000),
        15 => (Codec::Other, "G728", 8000),
        18 => (Codec::G729, "G729", 8000),
        _ => return None,
    })
}

impl PayloadMap {
    /// Builds the map for one media line: every listed format, named by its `a=rtpmap` or,
    /// for static payload types without one, by the RFC 3551 table.
    pub fn from_media(m: &Media<'_>) -> PayloadMap {
        let mut entries = Vec::with_capacity(m.formats.len());
        for &pt in &m.formats {
            let desc = if let Some(map) = m.rtpmap.iter().find(|r| r.pt == pt) {
                let codec = match Codec::from_encoding(map.encoding) {
                    Codec::L16 if map.channels != 1 || !matches!(map.clock, 8000 | 16000) => Codec::Other,
                    c => c,
                };
                PayloadDesc { pt, codec, encoding: canonical_encoding(map.encoding), clock: map.clock }
            } else if let Some((codec, name, clock)) = static_pt(pt) {
                PayloadDesc { pt, codec, encoding: name.to_owned(), clock }
            } else {
                PayloadDesc { pt, codec: Codec::Other, encoding: format!("PT{pt}"), clock: 8000 }
            };
            entries.push(desc);
        }
        PayloadMap { entries }
    }

    /// Looks up a payload type; falls back to the static table for unsignalled static types.
    pub fn get(&self, pt: u8) -> Option<PayloadDesc> {
        if let Some(d) = self.entries.iter().find(|d| d.pt == pt) {
            return Some(d.clone());
        }
        static_pt(pt).map(|(codec, name, clock)| PayloadDesc { pt, codec, encoding: name.to_owned(), clock })
    }

    /// All signalled payload types in preference order.
    pub fn entries(&self) -> &[PayloadDesc] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sdp;

    #[test]
    fn dynamic_types_resolve_per_description() {
        let s = sdp::parse(
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 99 8 101 18\r\na=rtpmap:99 AAL2-G726-32/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        )
        .unwrap();
        let map = PayloadMap::from_media(s.audio().unwrap());
        assert_eq!(map.get(99).unwrap().codec, Codec::G726);
        assert_eq!(map.get(99).unwrap().encoding, "AAL2-G726-32");
        assert_eq!(map.get(8).unwrap().codec, Codec::Pcma);
        assert_eq!(map.get(101).unwrap().codec, Codec::TelephoneEvent);
        assert_eq!(map.get(18).unwrap().codec, Codec::G729);
        assert_eq!(map.get(0).unwrap().codec, Codec::Pcmu, "static fallback");
        assert_eq!(map.get(100), None);
        let l16 = sdp::parse(
            b"v=0\r\nm=audio 1 RTP/AVP 96 97 98 99 10\r\na=rtpmap:96 L16/8000\r\na=rtpmap:97 l16/16000/1\r\n\
              a=rtpmap:98 L16/16000/2\r\na=rtpmap:99 L16/44100\r\n",
        )
        .unwrap();
        let map = PayloadMap::from_media(&l16.media[0]);
        let l16: Vec<(Codec, &str, u32)> =
            map.entries().iter().map(|d| (d.codec, d.encoding.as_str(), d.clock)).collect();
        assert_eq!(
            l16,
            [
                (Codec::L16, "L16", 8000),
                (Codec::L16, "L16", 16000),
                (Codec::Other, "L16", 16000),
                (Codec::Other, "L16", 44100),
                (Codec::Other, "L16", 44100)
            ]
        );
        let opus = sdp::parse(b"v=0\r\nm=audio 1 RTP/AVP 99\r\na=rtpmap:99 opus/48000/2\r\n").unwrap();
        let map = PayloadMap::from_media(&opus.media[0]);
        assert_eq!(map.get(99).unwrap().codec, Codec::Opus);
        assert_eq!(map.get(99).unwrap().clock, 48000);
    }

    #[test]
    fn encoding_names_take_one_canonical_spelling() {
        let s = sdp::parse(
            b"v=0\r\nm=audio 4000 RTP/AVP 0 8 9 96 97 98 99\r\na=rtpmap:0 pcmu/8000\r\na=rtpmap:8 Pcma/8000\r\n\
              a=rtpmap:9 g722/8000\r\na=rtpmap:96 OPUS/48000/2\r\na=rtpmap:97 Telephone-Event/8000\r\n\
              a=rtpmap:98 ilbc/8000\r\na=rtpmap:99 X-Private/8000\r\n",
        )
        .unwrap();
        let map = PayloadMap::from_media(s.audio().unwrap());
        let names: Vec<&str> = map.entries().iter().map(|d| d.encoding.as_str()).collect();
        assert_eq!(names, ["PCMU", "PCMA", "G722", "opus", "telephone-event", "iLBC", "X-Private"]);
        assert_eq!(canonical_encoding(b"cn"), "CN");
        assert_eq!(canonical_encoding(b"aal2-g726-32"), "AAL2-G726-32");
    }
}
