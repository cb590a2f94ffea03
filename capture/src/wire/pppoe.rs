//! PPPoE session frames (RFC 2516, EtherType 0x8864): a 6-byte header and a PPP frame.
//!
//! ```text
//! | VER=1 | TYPE=1 |   CODE=0   |          SESSION_ID           |
//! |            LENGTH             |  PPP protocol ... payload     |
//! ```

use super::ppp::{self, PppRepr};
use super::{ErrorKind, Layer, WireError, be16};

/// EtherType of PPPoE discovery (PADI, PADO, ...): carries no IP.
pub const ETHERTYPE_DISCOVERY: u16 = 0x8863;
/// EtherType of PPPoE session data.
pub const ETHERTYPE_SESSION: u16 = 0x8864;

/// Validated fields of a PPPoE session frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PppoeRepr<'a> {
    /// PPPoE session id.
    pub session_id: u16,
    /// PPP protocol of the payload.
    pub protocol: u16,
    /// Bytes after the PPP protocol field, trimmed to the PPPoE length (link padding removed).
    pub payload: &'a [u8],
}

/// Parses a PPPoE session header and the PPP protocol field after it.
pub fn parse(b: &[u8]) -> Result<PppoeRepr<'_>, WireError> {
    const L: Layer = Layer::Ppp;
    if b.len() < 6 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    if b[0] != 0x11 || b[1] != 0 {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    let len = usize::from(be16(b, 4));
    let body = &b[6..];
    let body = &body[..len.min(body.len())];
    let PppRepr { protocol, payload } = ppp::parse(body)?;
    Ok(PppoeRepr { session_id: be16(b, 2), protocol, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Session 0x0042, length 4: PPP IPv4, two payload bytes, then two bytes of link padding.
    const SESSION: [u8; 12] = [0x11, 0x00, 0x00, 0x42, 0x00, 0x04, 0x00, 0x21, 0x45, 0x00, 0xee, 0xee];

    #[test]
    fn fixture() {
        let p = parse(&SESSION).unwrap();
        assert_eq!(p.session_id, 0x42);
        assert_eq!(p.protocol, ppp::PROTO_IPV4);
        assert_eq!(p.payload, &[0x45, 0x00]);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&SESSION[..5]).unwrap_err().kind, ErrorKind::Truncated);
        let mut b = SESSION;
        b[0] = 0x21;
        assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BadVersion);
        let mut b = SESSION;
        b[1] = 0x09; // PADI code on a session frame
        assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(parse(&SESSION[..6]).unwrap_err().layer, Layer::Ppp);
    }
}
