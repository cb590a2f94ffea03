//! SIP messages (RFC 3261), parsed into borrowed slices without allocation.
//!
//! The parser reads the start line and only the headers callvault acts on; every other header
//! is counted (the count is capped) and skipped. Compact header names (`i: f: t: v: m: l: c:`)
//! are expanded, header names match case-insensitively and folded header lines (a line that
//! starts with a space or tab continues the previous one) are accepted, as RFC 3261 §7.3.1
//! requires. Bare LF line endings are tolerated: a passive observer has to read what
//! endpoints accepted, not what the grammar prefers.

use super::{ErrorKind, Layer, WireError};

/// A SIP request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE: starts a call or changes its media (re-INVITE).
    Invite,
    /// ACK: confirms a final response to an INVITE.
    Ack,
    /// BYE: ends an established call.
    Bye,
    /// CANCEL: abandons a pending INVITE.
    Cancel,
    /// REGISTER.
    Register,
    /// OPTIONS.
    Options,
    /// INFO (carries DTMF on some devices).
    Info,
    /// UPDATE: changes media before or after answer.
    Update,
    /// PRACK: acknowledges a reliable provisional response.
    Prack,
    /// SUBSCRIBE.
    Subscribe,
    /// NOTIFY.
    Notify,
    /// REFER: call transfer.
    Refer,
    /// MESSAGE.
    Message,
    /// PUBLISH.
    Publish,
    /// Any other extension method token.
    Other,
}

impl Method {
    /// The method's token (`OTHER` for an extension method).
    pub fn name(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other => "OTHER",
        }
    }

    /// Maps a method token; unknown tokens are [`Method::Other`].
    pub fn from_token(t: &[u8]) -> Method {
        match t {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }
}

/// The first line of a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD uri SIP/2.0`
    Request {
        /// Parsed method.
        method: Method,
        /// Method token as sent.
        method_raw: &'a [u8],
        /// Request-URI.
        uri: &'a [u8],
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase.
        reason: &'a [u8],
    },
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method the sequence number belongs to.
    pub method: Method,
}

/// A parsed SIP message; all slices borrow from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipMessage<'a> {
    /// Request or status line.
    pub start: StartLine<'a>,
    /// Call-ID (`i:`).
    pub call_id: Option<&'a [u8]>,
    /// From header value (`f:`).
    pub from: Option<&'a [u8]>,
    /// To header value (`t:`).
    pub to: Option<&'a [u8]>,
    /// CSeq.
    pub cseq: Option<CSeq>,
    /// Topmost Via value (`v:`).
    pub via: Option<&'a [u8]>,
    /// Contact value (`m:`).
    pub contact: Option<&'a [u8]>,
    /// Content-Type value (`c:`).
    pub content_type: Option<&'a [u8]>,
    /// Content-Length (`l:`), when present.
    pub content_length: Option<usize>,
    /// P-Asserted-Identity value.
    pub p_asserted_identity: Option<&'a [u8]>,
    /// Number of header lines (folded continuations not counted).
    pub header_count: usize,
    /// Bytes from the start of the message through the blank line ending the headers.
    pub head_len: usize,
    /// Those bytes: the start line and the headers.
    pub head: &'a [u8],
    /// Message body: `Content-Length` bytes, or the rest of the datagram without one.
    pub body: &'a [u8],
    /// The body is shorter than `Content-Length` says.
    pub body_truncated: bool,
}

impl<'a> SipMessage<'a> {
    /// The value of the first header named `name` (ASCII case-insensitive, without the
    /// colon), folded lines joined as they are; for headers the parser does not keep.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        let head = self.head;
        let (_, mut at) = next_line(head, 0)?;
        while let Some((line, next)) = next_line(head, at) {
            let line_start = at;
            at = next;
            if line.is_empty() {
                break;
            }
            let Some(colon) = memchr::memchr(b':', line) else { continue };
            if line[0] == b' ' || line[0] == b'\t' || !trim_end(&line[..colon]).eq_ignore_ascii_case(name) {
                continue;
            }
            let mut value_end = line_start + line.len();
            while at < head.len() && (head[at] == b' ' || head[at] == b'\t') {
                let Some((cont, next)) = next_line(head, at) else { break };
                value_end = at + cont.len();
                at = next;
            }
            return Some(trim(&head[line_start + colon + 1..value_end]));
        }
        None
    }

    /// The request method, if this is a request.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, if this is a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// True when the Content-Type is `application/sdp` (parameters ignored).
    pub fn has_sdp(&self) -> bool {
        self.content_type.is_some_and(|ct| {
            let mime = ct.split(|&c| c == b';').next().unwrap_or(ct);
            trim(mime).eq_ignore_ascii_case(b"application/sdp")
        }) && !self.body.is_empty()
    }
}

/// Header count cap used when the caller has none of its own.
pub const DEFAULT_MAX_HEADERS: usize = 128;

/// Quick test for "could this datagram be SIP": a start line ending in `SIP/2.0` or starting
/// with `SIP/2.0 `. Cheap enough to run on every unmatched datagram: RTP fails on its first byte.
pub fn looks_like_sip(b: &[u8]) -> bool {
    if b.len() < 12 || !b[0].is_ascii_uppercase() {
        return false;
    }
    if b.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let scan = &b[..b.len().min(2048)];
    let Some(eol) = memchr::memchr(b'\n', scan) else {
        return false;
    };
    let line = trim_end(&scan[..eol]);
    line.len() > 8 && line.ends_with(b" SIP/2.0") && token_end(line) > 0
}

fn token_end(line: &[u8]) -> usize {
    line.iter().position(|&c| !is_token_char(c)).unwrap_or(line.len())
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Parses a complete SIP message (a UDP datagram, or a message framed out of a TCP stream).
pub fn parse(b: &[u8], max_headers: usize) -> Result<SipMessage<'_>, WireError> {
    const L: Layer = Layer::Sip;
    let (first, mut at) = next_line(b, 0).ok_or(WireError::new(L, b.len(), ErrorKind::Truncated))?;
    let start = parse_start_line(first)?;

    let mut m = SipMessage {
        start,
        call_id: None,
        from: None,
        to: None,
        cseq: None,
        via: None,
        contact: None,
        content_type: None,
        content_length: None,
        p_asserted_identity: None,
        header_count: 0,
        head_len: 0,
        head: &[],
        body: &[],
        body_truncated: false,
    };

    // Each header: name ':' value, value continued by lines starting with SP/HT.
    loop {
        let line_start = at;
        let Some((line, next)) = next_line(b, at) else {
            return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
        };
        at = next;
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A continuation with no header before it.
            if m.header_count == 0 {
                return Err(WireError::new(L, line_start, ErrorKind::Syntax));
            }
            continue;
        }
        m.header_count += 1;
        if m.header_count > max_headers {
            return Err(WireError::new(L, line_start, ErrorKind::TooMany));
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(WireError::new(L, line_start, ErrorKind::Syntax));
        };
        let name = trim_end(&line[..colon]);
        // Extend the value over folded continuation lines.
        let mut value_end = line_start + line.len();
        while at < b.len() && (b[at] == b' ' || b[at] == b'\t') {
            let Some((cont, next)) = next_line(b, at) else { break };
            value_end = at + cont.len();
            at = next;
        }
        let value = trim(&b[line_start + colon + 1..value_end]);
        match header_kind(name) {
            Some(Header::CallId) => set_once(&mut m.call_id, value),
            Some(Header::From) => set_once(&mut m.from, value),
            Some(Header::To) => set_once(&mut m.to, value),
            Some(Header::Via) => set_once(&mut m.via, value),
            Some(Header::Contact) => set_once(&mut m.contact, value),
            Some(Header::ContentType) => set_once(&mut m.content_type, value),
            Some(Header::Pai) => set_once(&mut m.p_asserted_identity, value),
            Some(Header::CSeq) if m.cseq.is_none() => {
                m.cseq = Some(parse_cseq(value).ok_or(WireError::new(L, line_start, ErrorKind::Syntax))?);
            }
            Some(Header::ContentLength) if m.content_length.is_none() => {
                m.content_length =
                    Some(parse_decimal(value).ok_or(WireError::new(L, line_start, ErrorKind::Syntax))?);
            }
            Some(Header::CSeq | Header::ContentLength) | None => {}
        }
    }
    m.head_len = at;
    m.head = &b[..at];
    let rest = &b[at..];
    match m.content_length {
        Some(n) if n > rest.len() => {
            m.body = rest;
            m.body_truncated = true;
        }
        Some(n) => m.body = &rest[..n],
        None => m.body = rest,
    }
    Ok(m)
}

fn set_once<'a>(slot: &mut Option<&'a [u8]>, v: &'a [u8]) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, WireError> {
    const L: Layer = Layer::Sip;
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let rest = trim_start(rest);
        if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|c| *c != b' ') {
            return Err(WireError::new(L, 8, ErrorKind::Syntax));
        }
        let code = u16::from(rest[0] - b'0') * 100 + u16::from(rest[1] - b'0') * 10 + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(WireError::new(L, 8, ErrorKind::Syntax));
        }
        return Ok(StartLine::Response { code, reason: trim(&rest[3..]) });
    }
    let m_end = token_end(line);
    if m_end == 0 || line.get(m_end) != Some(&b' ') {
        return Err(WireError::new(L, m_end, ErrorKind::Syntax));
    }
    let method_raw = &line[..m_end];
    let rest = &line[m_end + 1..];
    let Some(sp) = memchr::memrchr(b' ', rest) else {
        return Err(WireError::new(L, m_end, ErrorKind::Syntax));
    };
    if &rest[sp + 1..] != b"SIP/2.0" {
        return Err(WireError::new(L, m_end + 1 + sp, ErrorKind::Syntax));
    }
    let uri = trim(&rest[..sp]);
    if uri.is_empty() {
        return Err(WireError::new(L, m_end + 1, ErrorKind::Syntax));
    }
    Ok(StartLine::Request { method: Method::from_token(method_raw), method_raw, uri })
}

#[derive(Clone, Copy)]
enum Header {
    CallId,
    From,
    To,
    Via,
    Contact,
    ContentType,
    ContentLength,
    CSeq,
    Pai,
}

fn header_kind(name: &[u8]) -> Option<Header> {
    let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        1 => match name[0].to_ascii_lowercase() {
            b'i' => Some(Header::CallId),
            b'f' => Some(Header::From),
            b't' => Some(Header::To),
            b'v' => Some(Header::Via),
            b'm' => Some(Header::Contact),
            b'c' => Some(Header::ContentType),
            b'l' => Some(Header::ContentLength),
            _ => None,
        },
        2 if eq(b"To") => Some(Header::To),
        3 if eq(b"Via") => Some(Header::Via),
        4 if eq(b"From") => Some(Header::From),
        4 if eq(b"CSeq") => Some(Header::CSeq),
        7 if eq(b"Call-ID") => Some(Header::CallId),
        7 if eq(b"Contact") => Some(Header::Contact),
        12 if eq(b"Content-Type") => Some(Header::ContentType),
        14 if eq(b"Content-Length") => Some(Header::ContentLength),
        19 if eq(b"P-Asserted-Identity") => Some(Header::Pai),
        _ => None,
    }
}

fn parse_cseq(v: &[u8]) -> Option<CSeq> {
    let v = trim(v);
    let sp = v.iter().position(|c| c.is_ascii_whitespace())?;
    let seq = parse_decimal(&v[..sp])?;
    let method = trim(&v[sp..]);
    if method.is_empty() {
        return None;
    }
    Some(CSeq { seq: u32::try_from(seq).ok()?, method: Method::from_token(method) })
}

/// Parses an unsigned decimal number of at most 10 digits.
pub fn parse_decimal(v: &[u8]) -> Option<usize> {
    let v = trim(v);
    if v.is_empty() || v.len() > 10 {
        return None;
    }
    let mut n: usize = 0;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(c - b'0');
    }
    Some(n)
}

/// Returns the line starting at `at` (without its CR/LF) and the offset after its end.
fn next_line(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(at..)?;
    let lf = memchr::memchr(b'\n', rest)?;
    let line = if lf > 0 && rest[lf - 1] == b'\r' { &rest[..lf - 1] } else { &rest[..lf] };
    Some((line, at + lf + 1))
}

/// Strips ASCII whitespace (including CR/LF of folded lines) from both ends.
pub fn trim(v: &[u8]) -> &[u8] {
    trim_end(trim_start(v))
}

fn trim_start(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &v[n..]
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
    &v[..v.len() - n]
}

/// A `name-addr` or `addr-spec` header value (From, To, P-Asserted-Identity, Contact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameAddr<'a> {
    /// Display name without surrounding quotes, if any.
    pub display: Option<&'a [u8]>,
    /// The URI, without angle brackets.
    pub uri: &'a [u8],
    /// User part of a sip:/sips: URI, or the number of a tel: URI.
    pub user: Option<&'a [u8]>,
    /// The `tag` header parameter.
    pub tag: Option<&'a [u8]>,
}

/// Splits a From/To-style header value into display name, URI, user and tag.
pub fn parse_name_addr(v: &[u8]) -> NameAddr<'_> {
    let v = trim(v);
    let (display, uri, params) = if let Some(lt) = find_unquoted(v, b'<') {
        let after = &v[lt + 1..];
        let gt = memchr::memchr(b'>', after).unwrap_or(after.len());
        let display = trim(&v[..lt]);
        let display = display.strip_prefix(b"\"").and_then(|d| d.strip_suffix(b"\"")).unwrap_or(display);
        let params = after.get(gt + 1..).unwrap_or(&[]);
        ((!display.is_empty()).then_some(display), &after[..gt], params)
    } else {
        // addr-spec: every ';' parameter belongs to the header, not the URI.
        let semi = memchr::memchr(b';', v).unwrap_or(v.len());
        (None, trim(&v[..semi]), &v[semi..])
    };
    NameAddr { display, uri, user: uri_user(uri), tag: param(params, b"tag") }
}

fn find_unquoted(v: &[u8], needle: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &c) in v.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if c == needle && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The user part of a `sip:`/`sips:` URI, or the number of a `tel:` URI.
pub fn uri_user(uri: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', uri)?;
    let scheme = &uri[..colon];
    let rest = &uri[colon + 1..];
    let user = if scheme.eq_ignore_ascii_case(b"tel") {
        rest
    } else if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        &rest[..memchr::memchr(b'@', rest)?]
    } else {
        return None;
    };
    // Drop a password (`user:pass`) and user parameters (`;npdi`).
    let end = user.iter().position(|&c| c == b':' || c == b';').unwrap_or(user.len());
    let user = &user[..end];
    (!user.is_empty()).then_some(user)
}

/// Finds a `;name=value` parameter (name matched case-insensitively).
pub fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params.split(|&c| c == b';').skip(1).find_map(|p| {
        let p = trim(p);
        let eq = memchr::memchr(b'=', p)?;
        trim(&p[..eq]).eq_ignore_ascii_case(name).then(|| trim(&p[eq + 1..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // An INVITE as sipp sends it (from the Wireshark sample capture sip-rtp-g711.pcap).
    const INVITE: &[u8] = b"INVITE sip:test@10.0.2.20:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.2.15:5060;branch=z9hG4bK-1966-1-0\r\n\
From: sipp <sip:sipp@10.0.2.15:5060>;tag=1966SIPpTag001\r\n\
To: test <sip:test@10.0.2.20:5060>\r\n\
Call-ID: 1-1966@10.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@10.0.2.15:5060\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   10\r\n\
\r\n\
v=0\r\no=x\r\n";

    #[test]
    fn any_header_is_found_by_name_whatever_its_case_and_folding() {
        let m = parse(INVITE, DEFAULT_MAX_HEADERS).unwrap();
        assert_eq!(m.header(b"subject"), Some(&b"Performance Test"[..]));
        assert_eq!(m.header(b"MAX-FORWARDS"), Some(&b"70"[..]));
        assert_eq!(m.header(b"X-Missing"), None);
        assert_eq!(m.header(b"v"), None, "a name is matched whole, not as a prefix");
        let folded = b"INFO sip:a@b SIP/2.0\r\nCall-ID: x\r\nX-Record:  pause\r\n  now\r\nX-Record: resume\r\n\r\nX-Record: body\r\n";
        let m = parse(folded, DEFAULT_MAX_HEADERS).unwrap();
        assert_eq!(m.header(b"x-record"), Some(&b"pause\r\n  now"[..]), "the first one, folded; never the body");
    }

    #[test]
    fn invite_fields() {
        let m = parse(INVITE, DEFAULT_MAX_HEADERS).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request { method: Method::Invite, method_raw: b"INVITE", uri: b"sip:test@10.0.2.20:5060" }
        );
        assert_eq!(m.call_id, Some(&b"1-1966@10.0.2.20"[..]));
        assert_eq!(m.cseq, Some(CSeq { seq: 1, method: Method::Invite }));
        assert_eq!(m.via, Some(&b"SIP/2.0/UDP 10.0.2.15:5060;branch=z9hG4bK-1966-1-0"[..]));
        assert_eq!(m.contact, Some(&b"sip:sipp@10.0.2.15:5060"[..]));
        assert_eq!(m.content_length, Some(10));
        assert_eq!(m.header_count, 10);
        assert_eq!(m.body, b"v=0\r\no=x\r\n");
        assert!(!m.body_truncated);
        assert!(m.has_sdp());
        assert_eq!(m.head_len, INVITE.len() - 10);
        let from = parse_name_addr(m.from.unwrap());
        assert_eq!(from.display, Some(&b"sipp"[..]));
        assert_eq!(from.uri, b"sip:sipp@10.0.2.15:5060");
        assert_eq!(from.user, Some(&b"sipp"[..]));
        assert_eq!(from.tag, Some(&b"1966SIPpTag001"[..]));
        let to = parse_name_addr(m.to.unwrap());
        assert_eq!(to.tag, None);
        assert_eq!(to.user, Some(&b"test"[..]));
    }

    #[test]
    fn compact_forms_lf_only_and_folding() {
        let msg = b"SIP/2.0 180 Ringing\n\
v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc\n\
f: \"Alice Smith\" <sip:+15551234;npdi@example.com>;tag=a1\n\
t: <tel:+15559876;phone-context=x>;tag=b2\n\
i: abc\n  def\n\
CSEQ: 7 INVITE\n\
l: 0\n\
\n";
        let m = parse(msg, DEFAULT_MAX_HEADERS).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.call_id, Some(&b"abc\n  def"[..]));
        assert_eq!(m.cseq.unwrap().seq, 7);
        assert_eq!(m.content_length, Some(0));
        assert!(m.body.is_empty());
        let f = parse_name_addr(m.from.unwrap());
        assert_eq!(f.display, Some(&b"Alice Smith"[..]));
        assert_eq!(f.user, Some(&b"+15551234"[..]));
        let t = parse_name_addr(m.to.unwrap());
        assert_eq!(t.user, Some(&b"+15559876"[..]));
        assert_eq!(t.tag, Some(&b"b2"[..]));
    }

    #[test]
    fn addr_spec_params_belong_to_header() {
        let a = parse_name_addr(b"sip:bob@example.org;tag=xyz");
        assert_eq!(a.uri, b"sip:bob@example.org");
        assert_eq!(a.tag, Some(&b"xyz"[..]));
        assert_eq!(a.display, None);
        let quoted = parse_name_addr(b"\"a<b\" <sip:c@d>");
        assert_eq!(quoted.uri, b"sip:c@d");
        assert_eq!(quoted.display, Some(&b"a<b"[..]));
    }

    #[test]
    fn truncated_body_is_flagged() {
        let msg = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 50\r\n\r\nshort";
        let m = parse(msg, DEFAULT_MAX_HEADERS).unwrap();
        assert!(m.body_truncated);
        assert_eq!(m.body, b"short");
    }

    #[test]
    fn errors() {
        let e = |b: &[u8]| parse(b, 4).unwrap_err().kind;
        assert_eq!(e(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n"), ErrorKind::Truncated);
        assert_eq!(e(b"INVITE sip:a@b HTTP/1.1\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"SIP/2.0 99 Low\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"SIP/2.0 2000 OK\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"BYE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"BYE sip:a@b SIP/2.0\r\nContent-Length: x1\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"BYE sip:a@b SIP/2.0\r\nCSeq: INVITE\r\n\r\n"), ErrorKind::Syntax);
        assert_eq!(e(b"BYE sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n"), ErrorKind::TooMany);
    }

    #[test]
    fn detection() {
        assert!(looks_like_sip(INVITE));
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n\r\n"));
        assert!(looks_like_sip(b"OPTIONS sip:x@y SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!looks_like_sip(&[0x80, 0x00, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!looks_like_sip(b"INVITE sip:x@y SIP/2.0"));
    }

    #[test]
    fn uri_users() {
        assert_eq!(uri_user(b"sip:alice:secret@host"), Some(&b"alice"[..]));
        assert_eq!(uri_user(b"sips:bob@host;transport=tls"), Some(&b"bob"[..]));
        assert_eq!(uri_user(b"sip:host.example"), None);
        assert_eq!(uri_user(b"mailto:x@y"), None);
    }
}
