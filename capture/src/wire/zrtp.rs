//! ZRTP (RFC 6189 §5) packets on an RTP port: recognised by their first byte and magic cookie.
//! The media ZRTP keys is SRTP, which no passive recorder can decrypt; only the fact is used.
//!
//! ```text
//! |0 0 0 1|Not Used (set to zero) |         Sequence Number       |
//! |                 Magic Cookie 'ZRTP' (0x5a525450)              |
//! |                        Source Identifier                      |
//! ```

/// Byte ranges of the header.
pub mod field {
    use std::ops::Range;

    /// `0x10`: version bits 0001, the rest zero.
    pub const PREAMBLE: usize = 0;
    /// Sequence number.
    pub const SEQUENCE: Range<usize> = 2..4;
    /// Magic cookie.
    pub const COOKIE: Range<usize> = 4..8;
    /// Source identifier.
    pub const SOURCE: Range<usize> = 8..12;
}

/// The first byte of every ZRTP packet.
pub const PREAMBLE: u8 = 0x10;
/// The magic cookie, `ZRTP` (0x5a525450).
pub const COOKIE: [u8; 4] = *b"ZRTP";

/// Whether a datagram is a ZRTP packet.
#[inline]
pub fn is_zrtp(p: &[u8]) -> bool {
    p.len() >= field::SOURCE.end && p[field::PREAMBLE] == PREAMBLE && p[field::COOKIE] == COOKIE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let hello = [0x10, 0x00, 0x00, 0x01, b'Z', b'R', b'T', b'P', 0xde, 0xad, 0xbe, 0xef, 0x50, 0x5a];
        assert!(is_zrtp(&hello));
        assert!(!is_zrtp(&hello[..11]));
        let mut rtp = hello;
        rtp[0] = 0x80;
        assert!(!is_zrtp(&rtp));
        let mut other = hello;
        other[7] = b'Q';
        assert!(!is_zrtp(&other));
    }
}
