//! WebSocket (RFC 6455) as SIP uses it (RFC 7118): the HTTP/1.1 upgrade handshake and the
//! frame header.
//!
//! [`upgrade_request`] and [`upgrade_response`] read the handshake's header block (found with
//! [`header_end`]); [`parse_header`] reads one frame header from the front of a stream buffer
//! and says how long the frame is; [`FrameHeader::problem`] names what RFC 6455 forbids in
//! it (a reader skips such a frame by its length and stays in step); [`unmask`] undoes the
//! client's masking in place.

use crate::wire::sip::trim;
use crate::wire::sip_framing::trim_cr;
use memchr::memmem;

use super::{ErrorKind, Layer, WireError, be16};

/// Continuation frame.
pub const OP_CONTINUATION: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xa;
/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;
/// Longest handshake header block read (request or response).
pub const MAX_HANDSHAKE: usize = 8192;

mod field {
    /// Byte 0: FIN (0x80), RSV1-3 (0x70), opcode (0x0f).
    pub(super) const FIN: u8 = 0x80;
    pub(super) const RSV: u8 = 0x70;
    pub(super) const OPCODE: u8 = 0x0f;
    /// Byte 1: MASK (0x80), payload length (0x7f; 126: 16-bit length follows, 127: 64-bit).
    pub(super) const MASK: u8 = 0x80;
    pub(super) const LEN: u8 = 0x7f;
}

/// The validated fields of one frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last fragment of its message.
    pub fin: bool,
    /// RSV1..RSV3 (bits 6..4 of the first byte); must be 0 without a negotiated extension.
    pub rsv: u8,
    /// Opcode.
    pub opcode: u8,
    /// Masking key (client-to-server frames).
    pub mask: Option<[u8; 4]>,
    /// Payload length (at most 2^63 - 1).
    pub payload_len: u64,
    /// Header length: 2 to 14 bytes.
    pub header_len: usize,
}

/// What RFC 6455 forbids in a frame whose length is still readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameProblem {
    /// A reserved bit is set (no extension is negotiated for SIP).
    ReservedBits,
    /// An opcode RFC 6455 reserves (3-7, 0xb-0xf).
    UnknownOpcode,
    /// A control frame longer than 125 bytes or fragmented.
    BadControl,
}

impl FrameHeader {
    /// Ping, pong or close.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// Header and payload together (saturating).
    pub fn frame_len(&self) -> u64 {
        self.payload_len.saturating_add(self.header_len as u64)
    }

    /// What is wrong with the frame, if anything.
    pub fn problem(&self) -> Option<FrameProblem> {
        if self.rsv != 0 {
            Some(FrameProblem::ReservedBits)
        } else if !matches!(self.opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
            Some(FrameProblem::UnknownOpcode)
        } else if self.is_control() && (self.payload_len > MAX_CONTROL_PAYLOAD || !self.fin) {
            Some(FrameProblem::BadControl)
        } else {
            None
        }
    }
}

/// Reads the frame header at the front of `b`: `Ok(None)` when more bytes are needed. The one
/// error is a 64-bit length with its most significant bit set (RFC 6455 §5.2): the frame's end
/// cannot be known, so the stream cannot be followed further.
pub fn parse_header(b: &[u8]) -> Result<Option<FrameHeader>, WireError> {
    if b.len() < 2 {
        return Ok(None);
    }
    let masked = b[1] & field::MASK != 0;
    let (payload_len, len_bytes) = match b[1] & field::LEN {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (u64::from(be16(b, 2)), 2)
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[2..10]);
            let n = u64::from_be_bytes(v);
            if n >> 63 != 0 {
                return Err(WireError::new(Layer::WebSocket, 2, ErrorKind::BadLength));
            }
            (n, 8)
        }
        n => (u64::from(n), 0),
    };
    let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
    if b.len() < header_len {
        return Ok(None);
    }
    let mask = masked.then(|| {
        let k = 2 + len_bytes;
        [b[k], b[k + 1], b[k + 2], b[k + 3]]
    });
    Ok(Some(FrameHeader {
        fin: b[0] & field::FIN != 0,
        rsv: (b[0] & field::RSV) >> 4,
        opcode: b[0] & field::OPCODE,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `payload` with the masking key, `offset` being the position of `payload[0]` within
/// the frame's payload (RFC 6455 §5.3). Masking and unmasking are the same operation.
pub fn unmask(key: [u8; 4], offset: usize, payload: &mut [u8]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

/// Length of the HTTP header block at the front of `b`, its blank line included, or `None`
/// while it is incomplete. Bare LF line endings are accepted.
pub fn header_end(b: &[u8]) -> Option<usize> {
    let crlf = memmem::find(b, b"\r\n\r\n").map(|i| i + 4);
    let lf = memmem::find(b, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// True when `b` starts like an HTTP GET asking for a WebSocket upgrade (the first segment of
/// a connection worth following).
pub fn looks_like_upgrade(b: &[u8]) -> bool {
    let head = &b[..b.len().min(MAX_HANDSHAKE)];
    b.starts_with(b"GET ") && contains_ci(head, b"websocket")
}

/// What an upgrade request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// `Sec-WebSocket-Protocol` offers `sip` (RFC 7118 §4).
    pub sip: bool,
}

/// Reads an HTTP/1.1 request header block: `Some` when it is a GET with `Upgrade: websocket`.
pub fn upgrade_request(head: &[u8]) -> Option<Upgrade> {
    let mut lines = head.split(|&c| c == b'\n').map(trim_cr);
    let first = lines.next()?;
    if !first.starts_with(b"GET ") || !first.ends_with(b" HTTP/1.1") {
        return None;
    }
    let mut upgrade = false;
    let mut sip = false;
    for line in lines {
        let Some((name, value)) = header(line) else { continue };
        if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            sip |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"sip"));
        }
    }
    upgrade.then_some(Upgrade { sip })
}

/// Reads an HTTP/1.1 response header block: `Some(status)`, or `None` when it is not one.
/// A WebSocket is open after status 101.
pub fn upgrade_response(head: &[u8]) -> Option<u16> {
    let first = trim_cr(head.split(|&c| c == b'\n').next()?);
    let rest = first.strip_prefix(b"HTTP/1.1 ").or_else(|| first.strip_prefix(b"HTTP/1.0 "))?;
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(rest[..3].iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
}

fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    Some((trim(&line[..colon]), trim(&line[colon + 1..])))
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',').map(trim)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6455 §5.7: a single-frame masked text message "Hello".
    const MASKED_HELLO: [u8; 11] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];

    #[test]
    fn rfc_6455_examples() {
        let h = parse_header(&MASKED_HELLO).unwrap().unwrap();
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OP_TEXT,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                payload_len: 5,
                header_len: 6
            }
        );
        let mut p = MASKED_HELLO[6..].to_vec();
        unmask(h.mask.unwrap(), 0, &mut p);
        assert_eq!(p, b"Hello");
        // The same, unmasked in two pieces.
        let mut p = MASKED_HELLO[6..].to_vec();
        let (a, b) = p.split_at_mut(3);
        unmask(h.mask.unwrap(), 0, a);
        unmask(h.mask.unwrap(), 3, b);
        assert_eq!(p, b"Hello");
        // A fragmented unmasked text message: "Hel" then "lo".
        let first = parse_header(&[0x01, 0x03, b'H', b'e', b'l']).unwrap().unwrap();
        assert!(!first.fin && first.opcode == OP_TEXT && first.mask.is_none() && first.header_len == 2);
        let last = parse_header(&[0x80, 0x02, b'l', b'o']).unwrap().unwrap();
        assert!(last.fin && last.opcode == OP_CONTINUATION);
        // Unmasked ping "Hello".
        let ping = parse_header(&[0x89, 0x05]).unwrap().unwrap();
        assert!(ping.is_control() && ping.problem().is_none());
        // 256 bytes binary, 16-bit length; 64 KiB, 64-bit length.
        let h = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len, h.frame_len()), (256, 4, 260));
        let h = parse_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
    }

    #[test]
    fn incomplete_and_bad_headers() {
        assert_eq!(parse_header(&[]), Ok(None));
        assert_eq!(parse_header(&[0x81]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0xfe, 0x01]), Ok(None));
        assert_eq!(parse_header(&[0x81, 0xfe, 0x01, 0x00, 1, 2, 3]), Ok(None), "mask key cut");
        assert_eq!(parse_header(&[0x81, 0x7f, 0, 0, 0, 0, 0, 0, 1]), Ok(None));
        let huge = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_header(&huge), Err(WireError::new(Layer::WebSocket, 2, ErrorKind::BadLength)));
        let max = parse_header(&[0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
        let max = max.unwrap().unwrap();
        assert_eq!((max.payload_len, max.frame_len()), (i64::MAX as u64, i64::MAX as u64 + 14));
        let rsv = parse_header(&[0xc1, 0x00]).unwrap().unwrap();
        assert_eq!(rsv.problem(), Some(FrameProblem::ReservedBits));
        let op = parse_header(&[0x83, 0x00]).unwrap().unwrap();
        assert_eq!(op.problem(), Some(FrameProblem::UnknownOpcode));
        let long_ping = parse_header(&[0x89, 0x7e, 0x00, 0x7e]).unwrap().unwrap();
        assert_eq!(long_ping.problem(), Some(FrameProblem::BadControl));
        let split_ping = parse_header(&[0x09, 0x01]).unwrap().unwrap();
        assert_eq!(split_ping.problem(), Some(FrameProblem::BadControl));
    }

    #[test]
    fn handshake() {
        let req = b"GET /ws HTTP/1.1\r\nHost: pbx.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85";
        assert!(looks_like_upgrade(req));
        let end = header_end(req).unwrap();
        assert_eq!(&req[end..], b"\x81\x85");
        assert_eq!(upgrade_request(&req[..end]), Some(Upgrade { sip: true }));
        let other = b"GET / HTTP/1.1\nUpgrade: WebSocket\nSec-WebSocket-Protocol: chat, superchat\n\n";
        assert_eq!(upgrade_request(other), Some(Upgrade { sip: false }));
        assert_eq!(upgrade_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(upgrade_request(b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), None);
        assert!(!looks_like_upgrade(b"INVITE sip:a SIP/2.0\r\n"));
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
        assert_eq!(header_end(resp), Some(resp.len()));
        assert_eq!(upgrade_response(resp), Some(101));
        assert_eq!(upgrade_response(b"HTTP/1.1 400 Bad Request\r\n\r\n"), Some(400));
        assert_eq!(upgrade_response(b"SIP/2.0 200 OK\r\n\r\n"), None);
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(Some(h)) = parse_header(&b) {
                proptest::prop_assert!(h.header_len <= b.len() && h.header_len <= 14);
                let _ = h.problem();
            }
            let _ = (header_end(&b), upgrade_request(&b), upgrade_response(&b), looks_like_upgrade(&b));
        }
    }
}
