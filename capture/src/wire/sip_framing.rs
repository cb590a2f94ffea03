//! Framing SIP messages out of a byte stream (RFC 3261 §18.3): a message is its start line and
//! headers up to the blank line, then exactly `Content-Length` (compact `l:`) bytes of body.
//!
//! [`frame`] looks at the front of a stream buffer and says whether a whole message is there
//! ([`Framing::Complete`]), more bytes are needed ([`Framing::Incomplete`]), the message would be
//! larger than the cap ([`Framing::TooLarge`]) or the bytes are not a SIP message at all
//! ([`Framing::Invalid`]). After a gap or garbage a reader resynchronises with
//! [`find_start_line`], which probes for a line ending in ` SIP/2.0` (request) or starting with
//! `SIP/2.0 ` and a status code (response). Bare LF line endings are accepted, as in the parser.
//!
//! A message without `Content-Length` is framed with an empty body: the header is mandatory on
//! stream transports, and the tolerant reading keeps the stream in step with what follows.

use memchr::memmem;

use super::{ErrorKind, Layer, WireError};

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A whole message of this many bytes (headers and body).
    Complete(usize),
    /// Not enough bytes yet: at least this many more are needed (1 while the headers are
    /// still incomplete).
    Incomplete(usize),
    /// The message is (or would grow) larger than the cap. `len` is its whole length when the
    /// headers are complete (a reader can skip exactly that much), `None` when they are not.
    TooLarge {
        /// Length of the whole message, headers and body, when known.
        len: Option<usize>,
    },
    /// Not a SIP message: the start line or a `Content-Length` is wrong.
    Invalid(WireError),
}

/// Frames the SIP message at the start of `b`, allowing at most `max_message` bytes.
///
/// `b` must start at the first byte of a start line (skip keep-alive CR/LF with
/// [`leading_line_breaks`] first).
pub fn frame(b: &[u8], max_message: usize) -> Framing {
    const L: Layer = Layer::Sip;
    let mut at = 0;
    let mut content_length: Option<usize> = None;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &b[at..]) else {
            return if b.len() > max_message { Framing::TooLarge { len: None } } else { Framing::Incomplete(1) };
        };
        let line = trim_cr(&b[at..at + nl]);
        let next = at + nl + 1;
        if at == 0 {
            if !is_start_line(line) {
                return Framing::Invalid(WireError::new(L, 0, ErrorKind::Syntax));
            }
        } else if line.is_empty() {
            let total = next.saturating_add(content_length.unwrap_or(0));
            if total > max_message {
                return Framing::TooLarge { len: Some(total) };
            }
            return if b.len() >= total { Framing::Complete(total) } else { Framing::Incomplete(total - b.len()) };
        } else if !matches!(line[0], b' ' | b'\t')
            && let Some(v) = content_length_value(line)
        {
            match (v, content_length) {
                (None, _) => return Framing::Invalid(WireError::new(L, at, ErrorKind::BadLength)),
                (Some(v), Some(prev)) if v != prev => {
                    return Framing::Invalid(WireError::new(L, at, ErrorKind::BadLength));
                }
                (Some(v), _) => content_length = Some(v),
            }
        }
        if next > max_message {
            return Framing::TooLarge { len: None };
        }
        at = next;
    }
}

/// Number of CR and LF bytes at the start of `b` (RFC 5626 keep-alives between messages).
pub fn leading_line_breaks(b: &[u8]) -> usize {
    b.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(b.len())
}

/// True when `b` begins the way a SIP message does, even before its start line is complete:
/// `SIP/2.0 `, or an upper-case method token, a space and a `sip:`, `sips:` or `tel:` URI.
pub fn starts_like_sip(b: &[u8]) -> bool {
    if b.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let Some(n) = b.iter().take(17).position(|&c| c == b' ') else {
        return false;
    };
    let uri = &b[n + 1..];
    n >= 3
        && b[..n].iter().all(u8::is_ascii_uppercase)
        && [&b"sip:"[..], b"sips:", b"tel:"]
            .iter()
            .any(|p| uri.len() >= p.len() && uri[..p.len()].eq_ignore_ascii_case(p))
}

/// True when `line` (without its line ending) is a SIP request or status line.
pub fn is_start_line(line: &[u8]) -> bool {
    let line = trim_cr(line);
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        return rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) && rest.get(3).is_none_or(|&c| c == b' ');
    }
    let Some(head) = line.strip_suffix(b" SIP/2.0") else {
        return false;
    };
    let method_len = head.iter().position(|&c| !is_token_char(c)).unwrap_or(head.len());
    method_len > 0
        && head[0].is_ascii_uppercase()
        && head.get(method_len) == Some(&b' ')
        && head.len() > method_len + 1
        && head[method_len + 1..].iter().all(|&c| c > b' ' && c != 0x7f)
}

/// Offset of the first complete SIP start line in `b` (its line ending included in `b`), or
/// `None`. Used to find SIP by content and to resynchronise after a gap.
///
/// A request line qualifies only with one of the RFC methods ([`KNOWN_METHODS`]): after a gap
/// the bytes before a start line may be anything, including the tail of a method name (`AGE`
/// of `MESSAGE`), and the tail of a body without a final line break often runs into the next
/// start line. So the method is looked for as a known name ending right before the
/// Request-URI, and a status line as `SIP/2.0 ` and a code, anywhere on the line.
pub fn find_start_line(b: &[u8]) -> Option<usize> {
    let finder = memmem::Finder::new(b"SIP/2.0");
    let mut from = 0;
    while let Some(i) = finder.find(&b[from..]) {
        let p = from + i;
        from = p + 1;
        let eol = p + memchr::memchr(b'\n', &b[p..])?;
        if b[p..].starts_with(b"SIP/2.0 ") && is_start_line(&b[p..eol]) {
            return Some(p);
        }
        if p == 0 || b[p - 1] != b' ' || trim_cr(&b[p..eol]) != b"SIP/2.0" {
            continue;
        }
        let line_start = memchr::memrchr(b'\n', &b[..p]).map_or(0, |n| n + 1);
        let Some(sp) = memchr::memrchr(b' ', &b[line_start..p - 1]) else { continue };
        let method_end = line_start + sp;
        let before = &b[line_start..method_end];
        if let Some(m) = KNOWN_METHODS.iter().find(|m| before.ends_with(m)) {
            let start = method_end - m.len();
            if is_start_line(&b[start..eol]) {
                return Some(start);
            }
        }
    }
    None
}

/// The request methods [`find_start_line`] recognises (RFC 3261 and its extensions).
pub const KNOWN_METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"INFO",
    b"UPDATE",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"REFER",
    b"MESSAGE",
    b"PUBLISH",
];

/// The value of a `Content-Length` or `l` header line: `None` when the line is another header,
/// `Some(None)` when it is one but its value is not a number.
fn content_length_value(line: &[u8]) -> Option<Option<usize>> {
    let colon = memchr::memchr(b':', line)?;
    let name = trim(&line[..colon]);
    if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
        return None;
    }
    let v = trim(&line[colon + 1..]);
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return Some(None);
    }
    Some(Some(v.iter().fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'))))
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
Call-ID: a@b\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    const OK_COMPACT: &[u8] = b"SIP/2.0 200 OK\nv: SIP/2.0/TCP h\nl :2\n\nab";

    #[test]
    fn complete_incomplete_and_pipelined() {
        assert_eq!(frame(INVITE, 65535), Framing::Complete(INVITE.len()));
        assert_eq!(frame(&INVITE[..INVITE.len() - 1], 65535), Framing::Incomplete(1));
        assert_eq!(frame(&INVITE[..INVITE.len() - 4], 65535), Framing::Incomplete(4));
        assert_eq!(frame(&INVITE[..20], 65535), Framing::Incomplete(1));
        let mut two = INVITE.to_vec();
        two.extend_from_slice(OK_COMPACT);
        assert_eq!(frame(&two, 65535), Framing::Complete(INVITE.len()));
        assert_eq!(frame(&two[INVITE.len()..], 65535), Framing::Complete(OK_COMPACT.len()));
    }

    #[test]
    fn without_content_length_body_is_empty() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\nSIP/2.0 200 OK\r\n";
        assert_eq!(frame(m, 65535), Framing::Complete(37));
    }

    #[test]
    fn invalid_and_too_large() {
        assert_eq!(
            frame(b"HTTP/1.1 200 OK\r\n\r\n", 65535),
            Framing::Invalid(WireError::new(Layer::Sip, 0, ErrorKind::Syntax))
        );
        let bad = b"SIP/2.0 200 OK\r\nContent-Length: x1\r\n\r\n";
        assert!(matches!(frame(bad, 65535), Framing::Invalid(e) if e.kind == ErrorKind::BadLength && e.offset == 16));
        let twice = b"SIP/2.0 200 OK\r\nl: 1\r\nContent-Length: 2\r\n\r\nab";
        assert!(matches!(frame(twice, 65535), Framing::Invalid(_)));
        let same_twice = b"SIP/2.0 200 OK\r\nl: 2\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(frame(same_twice, 65535), Framing::Complete(same_twice.len()));
        assert_eq!(frame(INVITE, 40), Framing::TooLarge { len: None });
        assert_eq!(frame(INVITE, INVITE.len() - 1), Framing::TooLarge { len: Some(INVITE.len()) });
        assert_eq!(frame(&INVITE[..INVITE.len() - 3], INVITE.len() - 1), Framing::TooLarge { len: Some(INVITE.len()) });
        assert_eq!(frame(&[b'A'; 100], 50), Framing::TooLarge { len: None });
    }

    #[test]
    fn start_lines() {
        assert!(is_start_line(b"INVITE sip:b@h SIP/2.0\r"));
        assert!(is_start_line(b"SIP/2.0 180 Ringing"));
        assert!(is_start_line(b"SIP/2.0 100"));
        assert!(!is_start_line(b"SIP/2.0 1x0 Bad"));
        assert!(!is_start_line(b"Via: SIP/2.0"));
        assert!(!is_start_line(b"invite sip:b SIP/2.0"));
        assert!(!is_start_line(b"INVITE SIP/2.0"));
        assert!(starts_like_sip(b"INVITE sip:b"));
        assert!(starts_like_sip(b"BYE SIPS:b@h SIP/2.0"));
        assert!(starts_like_sip(b"SIP/2.0 4"));
        assert!(!starts_like_sip(b"GET / HTTP/1.1"));
        assert!(!starts_like_sip(b"INV"));
        assert!(!starts_like_sip(b"INVITE si"));
    }

    #[test]
    fn resynchronisation_probe() {
        let mut junk = b"ent-Length: 0\r\n\r\nVia: SIP/2.0/TCP x\r\n".to_vec();
        let at = junk.len();
        junk.extend_from_slice(INVITE);
        assert_eq!(find_start_line(&junk), Some(at));
        assert_eq!(find_start_line(b"xxSIP/2.0 200 OK\r\n"), Some(2));
        assert_eq!(find_start_line(b"x=1xxINVITE sip:a SIP/2.0\r\n"), Some(5));
        assert_eq!(find_start_line(b"x=1XXBYE sip:a SIP/2.0\r\n"), Some(5));
        assert_eq!(find_start_line(b"x=1XXFOO sip:a SIP/2.0\r\n"), None);
        assert_eq!(find_start_line(b"AGE sip:a SIP/2.0\r\nMESSAGE sip:b SIP/2.0\r\n"), Some(19));
        assert_eq!(find_start_line(b"Via: SIP/2.0/TCP h\r\nx sip:a SIP/2.0\r\n"), None);
        assert_eq!(find_start_line(b"x\nSIP/2.0 200 OK"), None, "line not complete yet");
        assert_eq!(find_start_line(b"x\nSIP/2.0 200 OK\n"), Some(2));
        assert_eq!(leading_line_breaks(b"\r\n\r\nINVITE"), 4);
        assert_eq!(leading_line_breaks(b"\r\n"), 2);
    }
}
