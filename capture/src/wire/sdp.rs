//! SDP session descriptions (RFC 4566 / RFC 8866), as far as a recorder needs them:
//! connection addresses, audio media lines, payload type maps, packetisation time and
//! direction attributes, SDES crypto attributes (RFC 4568). Parsed into fixed-capacity arrays
//! of borrowed slices.

use std::net::IpAddr;

use arrayvec::ArrayVec;

use super::sip::{parse_decimal, trim};
use super::{ErrorKind, Layer, WireError};

/// Media lines kept per description; further `m=` lines are ignored (and flagged).
pub const MAX_MEDIA: usize = 8;
/// `a=rtpmap` lines kept per media line.
pub const MAX_RTPMAP: usize = 16;
/// Payload types kept per media line.
pub const MAX_FORMATS: usize = 32;
/// `a=crypto` lines kept per media line.
pub const MAX_CRYPTO: usize = 8;

/// The base64 `key||salt` text of an `inline:` key parameter. `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineKey<'a>(pub &'a [u8]);

impl std::fmt::Debug for InlineKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InlineKey(<{} characters, not shown>)", self.0.len())
    }
}

/// One `a=crypto:<tag> <suite> inline:<key||salt>[|<lifetime>][|<mki>:<length>] [<session
/// parameters>]` attribute (RFC 4568 §9.1). Only the first key parameter is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto<'a> {
    /// The tag that an answer uses to say which offered line it accepts.
    pub tag: u32,
    /// Crypto suite as written (`AES_CM_128_HMAC_SHA1_80`, `AEAD_AES_128_GCM`, ...).
    pub suite: &'a [u8],
    /// The key and salt, base64.
    pub key: InlineKey<'a>,
    /// Master key lifetime as written (`2^31`, `1048576`), if given.
    pub lifetime: Option<&'a [u8]>,
    /// MKI value and its length in bytes, if given.
    pub mki: Option<(u32, u8)>,
    /// Key parameters beyond the first (several master keys told apart by MKI).
    pub more_keys: u8,
    /// The session parameters (`KDR=`, `UNENCRYPTED_SRTP`, ...), as written.
    pub params: &'a [u8],
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`: the describing party sends and does not receive.
    SendOnly,
    /// `a=recvonly`: the describing party receives and does not send.
    RecvOnly,
    /// `a=inactive`: no media either way (hold).
    Inactive,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Direction {
    /// Attribute name as written in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the describing party may send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing party accepts media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_attr(a: &[u8]) -> Option<Direction> {
        match a {
            b"sendrecv" => Some(Direction::SendRecv),
            b"sendonly" => Some(Direction::SendOnly),
            b"recvonly" => Some(Direction::RecvOnly),
            b"inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// One `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMap<'a> {
    /// Payload type number.
    pub pt: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`, `G726-32`).
    pub encoding: &'a [u8],
    /// Clock rate in Hz.
    pub clock: u32,
    /// Channel count (1 when absent).
    pub channels: u8,
}

/// One `m=` line with the attributes that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Media type: `audio`, `video`, `image`, ...
    pub kind: &'a [u8],
    /// Transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `RTP/SAVP`, `udptl`, ...).
    pub proto: &'a [u8],
    /// Numeric payload types in preference order.
    pub formats: ArrayVec<u8, MAX_FORMATS>,
    /// The first format as written (also when it is not a number: `t38`, `*`).
    pub format_text: &'a [u8],
    /// Media-level `c=` address, if any.
    pub connection: Option<IpAddr>,
    /// Media-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u16>,
    /// `a=rtcp:<port>`.
    pub rtcp_port: Option<u16>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// `a=rtpmap` attributes.
    pub rtpmap: ArrayVec<RtpMap<'a>, MAX_RTPMAP>,
    /// Any `a=crypto` line (SDES keys for SRTP, RFC 4568), also one that does not parse.
    pub crypto: bool,
    /// The `a=crypto` lines that parse, in order (at most [`MAX_CRYPTO`]).
    pub cryptos: ArrayVec<Crypto<'a>, MAX_CRYPTO>,
    /// Media-level `a=fingerprint` (DTLS, RFC 8122).
    pub fingerprint: bool,
    /// Media-level `a=zrtp-hash` (RFC 6189).
    pub zrtp_hash: bool,
}

/// How a media line says its RTP is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    /// SRTP with keys in the SDP (`a=crypto`, RFC 4568).
    Sdes,
    /// SRTP keyed by DTLS on the media path (`UDP/TLS/RTP/SAVP(F)`, `a=fingerprint`).
    Dtls,
    /// ZRTP (`a=zrtp-hash`).
    Zrtp,
    /// A secure RTP profile (`RTP/SAVP`, `RTP/SAVPF`) without a recognised keying.
    Srtp,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp<'a> {
    /// `o=` session version, used to recognise unchanged re-offers.
    pub version: Option<u64>,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Media lines (at most [`MAX_MEDIA`]).
    pub media: ArrayVec<Media<'a>, MAX_MEDIA>,
    /// More media lines or attributes were present than the fixed capacities hold.
    pub overflow: bool,
    /// Session-level `a=fingerprint`.
    pub fingerprint: bool,
    /// Session-level `a=zrtp-hash`.
    pub zrtp_hash: bool,
}

impl<'a> Sdp<'a> {
    /// The first audio media line with a non-zero port, if any.
    pub fn audio(&self) -> Option<&Media<'a>> {
        self.media.iter().find(|m| m.kind == b"audio" && m.port != 0)
    }

    /// The connection address that applies to `m` (media level, else session level).
    pub fn connection_for(&self, m: &Media<'a>) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The direction that applies to `m` (media level, else session level, else sendrecv).
    pub fn direction_for(&self, m: &Media<'a>) -> Direction {
        m.direction.or(self.direction).unwrap_or(Direction::SendRecv)
    }

    /// Whether `m`'s RTP is encrypted, and how it is keyed: ZRTP by its hash, DTLS-SRTP by
    /// its profile (`UDP/TLS/...`) or a fingerprint on a secure profile, SDES by `a=crypto`,
    /// else a secure profile alone.
    pub fn security_for(&self, m: &Media<'a>) -> Option<Security> {
        let proto = m.proto;
        let secure = proto.ends_with(b"/SAVP") || proto.ends_with(b"/SAVPF");
        let tls = proto.windows(4).any(|w| w.eq_ignore_ascii_case(b"/TLS"));
        if m.zrtp_hash || self.zrtp_hash {
            Some(Security::Zrtp)
        } else if tls || (secure && (m.fingerprint || self.fingerprint)) {
            Some(Security::Dtls)
        } else if m.crypto {
            Some(Security::Sdes)
        } else if secure {
            Some(Security::Srtp)
        } else {
            None
        }
    }
}

/// Parses an SDP body. Unknown lines are skipped; only a malformed `m=` or `c=` line, or a
/// body that is not `v=0`, is an error.
pub fn parse(b: &[u8]) -> Result<Sdp<'_>, WireError> {
    const L: Layer = Layer::Sdp;
    let mut sdp = Sdp {
        version: None,
        connection: None,
        direction: None,
        media: ArrayVec::new(),
        overflow: false,
        fingerprint: false,
        zrtp_hash: false,
    };
    let mut at = 0;
    let mut first = true;
    // Attributes after an ignored (overflowing) m= line must not land on the previous one.
    let mut skipping_media = false;
    for raw in b.split(|&c| c == b'\n') {
        let line_at = at;
        at += raw.len() + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if first {
            if trim(line) != b"v=0" {
                return Err(WireError::new(L, line_at, ErrorKind::BadVersion));
            }
            first = false;
            continue;
        }
        if line.len() < 2 || line[1] != b'=' {
            continue;
        }
        let value = &line[2..];
        match line[0] {
            b'o' => sdp.version = value.split(|&c| c == b' ').nth(2).and_then(parse_decimal).map(|v| v as u64),
            b'c' => {
                let addr = parse_connection(value).ok_or(WireError::new(L, line_at, ErrorKind::Syntax))?;
                if skipping_media {
                    continue;
                }
                match sdp.media.last_mut() {
                    Some(m) => m.connection = addr,
                    None => sdp.connection = addr,
                }
            }
            b'm' => {
                let m = parse_media(value).ok_or(WireError::new(L, line_at, ErrorKind::Syntax))?;
                skipping_media = sdp.media.try_push(m).is_err();
                sdp.overflow |= skipping_media;
            }
            b'a' => {
                if skipping_media {
                    continue;
                }
                let (name, arg) = match memchr::memchr(b':', value) {
                    Some(c) => (&value[..c], Some(&value[c + 1..])),
                    None => (value, None),
                };
                let name = trim(name);
                if let Some(dir) = Direction::from_attr(name) {
                    match sdp.media.last_mut() {
                        Some(m) => m.direction = Some(dir),
                        None => sdp.direction = Some(dir),
                    }
                    continue;
                }
                let Some(m) = sdp.media.last_mut() else {
                    match name {
                        b"fingerprint" => sdp.fingerprint = true,
                        b"zrtp-hash" => sdp.zrtp_hash = true,
                        _ => {}
                    }
                    continue;
                };
                match (name, arg) {
                    (b"rtpmap", Some(arg)) => {
                        if let Some(map) = parse_rtpmap(arg) {
                            sdp.overflow |= m.rtpmap.try_push(map).is_err();
                        }
                    }
                    (b"ptime", Some(arg)) => m.ptime = parse_decimal(arg).and_then(|v| u16::try_from(v).ok()),
                    (b"rtcp", Some(arg)) => {
                        let port = trim(arg).split(|&c| c == b' ').next().unwrap_or(b"");
                        m.rtcp_port = parse_decimal(port).and_then(|v| u16::try_from(v).ok());
                    }
                    (b"rtcp-mux", _) => m.rtcp_mux = true,
                    (b"crypto", Some(arg)) => {
                        m.crypto = true;
                        if let Some(c) = parse_crypto(arg) {
                            sdp.overflow |= m.cryptos.try_push(c).is_err();
                        }
                    }
                    (b"fingerprint", Some(_)) => m.fingerprint = true,
                    (b"zrtp-hash", Some(_)) => m.zrtp_hash = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if first {
        return Err(WireError::new(L, 0, ErrorKind::Truncated));
    }
    Ok(sdp)
}

/// `IN IP4 192.0.2.1[/ttl[/n]]` -> address. Returns `Some(None)` for an unparseable address
/// family we do not follow, `None` for a syntax error.
fn parse_connection(v: &[u8]) -> Option<Option<IpAddr>> {
    let mut parts = trim(v).split(|&c| c == b' ').filter(|p| !p.is_empty());
    let net = parts.next()?;
    let family = parts.next()?;
    let addr = parts.next()?;
    if net != b"IN" {
        return Some(None);
    }
    let addr = addr.split(|&c| c == b'/').next().unwrap_or(addr);
    let text = std::str::from_utf8(addr).ok()?;
    match family {
        b"IP4" | b"IP6" => text.parse().ok().map(Some),
        _ => Some(None),
    }
}

fn parse_media(v: &[u8]) -> Option<Media<'_>> {
    let mut parts = trim(v).split(|&c| c == b' ').filter(|p| !p.is_empty());
    let kind = parts.next()?;
    let port_field = parts.next()?;
    // `port/count` is legal; the count is ignored.
    let port = port_field.split(|&c| c == b'/').next()?;
    let port = u16::try_from(parse_decimal(port)?).ok()?;
    let proto = parts.next()?;
    let mut formats = ArrayVec::new();
    let mut format_text: &[u8] = b"";
    for f in parts {
        if format_text.is_empty() {
            format_text = f;
        }
        if let Some(pt) = parse_decimal(f).and_then(|v| u8::try_from(v).ok()).filter(|pt| *pt < 128) {
            let _ = formats.try_push(pt);
        }
    }
    Some(Media {
        kind,
        port,
        proto,
        formats,
        format_text,
        connection: None,
        direction: None,
        ptime: None,
        rtcp_port: None,
        rtcp_mux: false,
        rtpmap: ArrayVec::new(),
        crypto: false,
        cryptos: ArrayVec::new(),
        fingerprint: false,
        zrtp_hash: false,
    })
}

/// `<tag> <suite> inline:<key>[|<lifetime>][|<mki>:<len>][;inline:...] [<params>]`.
fn parse_crypto(v: &[u8]) -> Option<Crypto<'_>> {
    let v = trim(v);
    let mut rest = v;
    let mut field = || {
        let start = rest.iter().position(|&c| c != b' ' && c != b'\t')?;
        let r = &rest[start..];
        let end = r.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(r.len());
        let (f, after) = r.split_at(end);
        rest = after;
        Some(f)
    };
    let tag = u32::try_from(parse_decimal(field()?)?).ok()?;
    let suite = field()?;
    let key_params = field()?;
    let params = trim(rest);
    let mut keys = key_params.split(|&c| c == b';');
    let first = keys.next()?;
    let more_keys = u8::try_from(keys.count()).unwrap_or(u8::MAX);
    let info = first.strip_prefix(b"inline:")?;
    let mut parts = info.split(|&c| c == b'|');
    let key = parts.next().filter(|k| !k.is_empty())?;
    let (mut lifetime, mut mki) = (None, None);
    for p in parts {
        match memchr::memchr(b':', p) {
            Some(c) => {
                let value = u32::try_from(parse_decimal(&p[..c])?).ok()?;
                let len = u8::try_from(parse_decimal(&p[c + 1..])?).ok()?;
                mki = Some((value, len));
            }
            None if mki.is_none() && lifetime.is_none() => lifetime = Some(p),
            None => return None,
        }
    }
    Some(Crypto { tag, suite, key: InlineKey(key), lifetime, mki, more_keys, params })
}

fn parse_rtpmap(v: &[u8]) -> Option<RtpMap<'_>> {
    let v = trim(v);
    let sp = memchr::memchr(b' ', v)?;
    let pt = u8::try_from(parse_decimal(&v[..sp])?).ok().filter(|pt| *pt < 128)?;
    let mut enc = trim(&v[sp + 1..]).split(|&c| c == b'/');
    let encoding = enc.next().filter(|e| !e.is_empty())?;
    let clock = u32::try_from(parse_decimal(enc.next()?)?).ok()?;
    let channels = match enc.next() {
        Some(c) => u8::try_from(parse_decimal(c)?).ok()?,
        None => 1,
    };
    Some(RtpMap { pt, encoding, clock, channels })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] = b"v=0\r\n\
o=user1 53655765 2353687637 IN IP4 10.0.2.15\r\n\
s=-\r\n\
c=IN IP4 10.0.2.15\r\n\
t=0 0\r\n\
m=audio 27942 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendonly\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 10.0.2.99\r\n";

    #[test]
    fn offer_fields() {
        let s = parse(OFFER).unwrap();
        assert_eq!(s.version, Some(2_353_687_637));
        assert_eq!(s.connection, Some("10.0.2.15".parse().unwrap()));
        assert_eq!(s.media.len(), 2);
        let a = s.audio().unwrap();
        assert_eq!(a.port, 27942);
        assert_eq!(a.proto, b"RTP/AVP");
        assert_eq!(a.formats.as_slice(), &[0, 101]);
        assert_eq!(a.ptime, Some(20));
        assert_eq!(s.direction_for(a), Direction::SendOnly);
        assert_eq!(s.connection_for(a), Some("10.0.2.15".parse().unwrap()));
        assert_eq!(a.rtpmap.len(), 2);
        assert_eq!(a.rtpmap[1], RtpMap { pt: 101, encoding: b"telephone-event", clock: 8000, channels: 1 });
        let v = &s.media[1];
        assert_eq!(v.port, 0);
        assert_eq!(v.connection, Some("10.0.2.99".parse().unwrap()));
        assert!(!s.overflow);
    }

    #[test]
    fn ipv6_multicast_ttl_and_lf_only() {
        let s = parse(b"v=0\nc=IN IP6 fd17:625c:f037:2::10\nm=audio 4000/2 RTP/AVP 8\nc=IN IP4 224.2.1.1/127\na=rtcp:4001 IN IP4 1.2.3.4\na=rtcp-mux\na=inactive\n").unwrap();
        assert_eq!(s.connection, Some("fd17:625c:f037:2::10".parse().unwrap()));
        let a = s.audio().unwrap();
        assert_eq!(a.port, 4000);
        assert_eq!(a.connection, Some("224.2.1.1".parse().unwrap()));
        assert_eq!(a.rtcp_port, Some(4001));
        assert!(a.rtcp_mux);
        assert_eq!(s.direction_for(a), Direction::Inactive);
    }

    #[test]
    fn rejects_non_sdp_and_bad_lines() {
        assert_eq!(parse(b"hello").unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(parse(b"").unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n").unwrap_err().kind, ErrorKind::Syntax);
        assert_eq!(parse(b"v=0\r\nc=IN IP4\r\n").unwrap_err().kind, ErrorKind::Syntax);
        assert_eq!(parse(b"v=0\r\nc=IN IP4 999.1.1.1\r\n").unwrap_err().kind, ErrorKind::Syntax);
    }

    #[test]
    fn encrypted_media_lines() {
        let sdes = parse(
            b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n",
        )
        .unwrap();
        assert!(sdes.media[0].crypto);
        assert_eq!(sdes.security_for(&sdes.media[0]), Some(Security::Sdes));
        assert_eq!(
            sdes.media[0].cryptos.as_slice(),
            &[Crypto {
                tag: 1,
                suite: b"AES_CM_128_HMAC_SHA1_80",
                key: InlineKey(b"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
                lifetime: Some(b"2^20"),
                mki: Some((1, 32)),
                more_keys: 0,
                params: b"",
            }]
        );
        assert!(!format!("{sdes:?}").contains("WVNf"), "the key is not printed");
        let dtls = parse(
            b"v=0\r\na=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\r\n\
c=IN IP4 10.0.0.1\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=setup:actpass\r\n",
        )
        .unwrap();
        assert!(dtls.fingerprint && !dtls.media[0].fingerprint);
        assert_eq!(dtls.security_for(&dtls.media[0]), Some(Security::Dtls));
        let zrtp = parse(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=zrtp-hash:1.10 fe30efd02423cb05\r\n").unwrap();
        assert_eq!(zrtp.security_for(&zrtp.media[0]), Some(Security::Zrtp));
        let bare = parse(b"v=0\r\nm=audio 4000 RTP/SAVPF 0\r\n").unwrap();
        assert_eq!(bare.security_for(&bare.media[0]), Some(Security::Srtp));
        let plain = parse(OFFER).unwrap();
        assert_eq!(plain.security_for(plain.audio().unwrap()), None);
    }

    #[test]
    fn several_crypto_lines_mki_lifetime_and_session_parameters() {
        let s = parse(
            b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKg==\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2:1;inline:QUJD|3:1 KDR=1 UNENCRYPTED_SRTCP\r\n\
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:QUJD|2^31\r\n\
a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:QUJD\r\n\
a=crypto:4 AES_CM_128_HMAC_SHA1_80 key:QUJD\r\n",
        )
        .unwrap();
        let c = &s.media[0].cryptos;
        assert!(s.media[0].crypto);
        assert_eq!(c.len(), 3, "the lines without a number tag or an inline key are left out");
        assert_eq!((c[0].tag, c[0].suite, c[0].lifetime, c[0].mki), (1, &b"AEAD_AES_256_GCM"[..], None, None));
        assert_eq!(c[0].key.0.len(), 60);
        assert_eq!(
            (c[1].tag, c[1].mki, c[1].more_keys, c[1].params),
            (2, Some((2, 1)), 1, &b"KDR=1 UNENCRYPTED_SRTCP"[..])
        );
        assert_eq!((c[2].tag, c[2].lifetime, c[2].mki), (3, Some(&b"2^31"[..]), None));
    }

    #[test]
    fn overflow_is_flagged_and_bounded() {
        let mut b = b"v=0\r\n".to_vec();
        for i in 0..(MAX_MEDIA + 3) {
            b.extend_from_slice(format!("m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", 1000 + i).as_bytes());
        }
        let s = parse(&b).unwrap();
        assert_eq!(s.media.len(), MAX_MEDIA);
        assert!(s.overflow);
        assert!(s.media.iter().all(|m| m.rtpmap.len() == 1));
    }
}
