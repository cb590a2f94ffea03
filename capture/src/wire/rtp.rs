//! RTP fixed header (RFC 3550 §5.1), CSRC list, header extension and padding.
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers (CC × 4)    |
//! |      defined by profile       |        length (words)         |  (if X)
//! |                        header extension                       |  (if X)
//! |                            payload ...        | padding | count|  (if P)
//! ```

use std::ops::Range;

use super::{ErrorKind, Layer, WireError, be16, be32};

/// Byte ranges of the fixed header.
pub mod field {
    use std::ops::Range;

    /// Version (2 bits), padding, extension, CSRC count (4 bits).
    pub const VPXCC: usize = 0;
    /// Marker (1 bit), payload type (7 bits).
    pub const MPT: usize = 1;
    /// Sequence number.
    pub const SEQUENCE: Range<usize> = 2..4;
    /// Timestamp.
    pub const TIMESTAMP: Range<usize> = 4..8;
    /// SSRC.
    pub const SSRC: Range<usize> = 8..12;
    /// First CSRC (each one 4 bytes, `CSRC_COUNT` of them).
    pub const CSRC: usize = 12;
    /// Header extension: profile-defined identifier and length in 32-bit words, relative to
    /// the end of the CSRC list.
    pub const EXT_ID: Range<usize> = 0..2;
    /// Length of the extension in 32-bit words, after its 4-byte header.
    pub const EXT_LEN: Range<usize> = 2..4;
    /// Size of the extension's own header.
    pub const EXT_HEADER: usize = 4;
}

/// Size of the fixed header.
pub const HEADER_LEN: usize = field::CSRC;
/// The only RTP version.
pub const VERSION: u8 = 2;

const FLAG_PADDING: u8 = 0x20;
const FLAG_EXTENSION: u8 = 0x10;
const MASK_CSRC_COUNT: u8 = 0x0f;
const FLAG_MARKER: u8 = 0x80;
const MASK_PAYLOAD_TYPE: u8 = 0x7f;

/// A checked view of an RTP packet: after [`RtpPacket::new_checked`] no accessor can panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    /// Where the payload starts (after CSRCs and the extension).
    payload_at: usize,
    /// Padding bytes at the end (the count byte included).
    padding: usize,
}

impl<'a> RtpPacket<'a> {
    /// Validates version, CSRC list, extension and padding against the buffer's length.
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<RtpPacket<'a>, WireError> {
        let err = |at: usize, kind| Err(WireError::new(Layer::Rtp, at, kind));
        if buf.len() < HEADER_LEN {
            return err(buf.len(), ErrorKind::Truncated);
        }
        if buf[field::VPXCC] >> 6 != VERSION {
            return err(field::VPXCC, ErrorKind::BadVersion);
        }
        let csrc_end = field::CSRC + 4 * usize::from(buf[field::VPXCC] & MASK_CSRC_COUNT);
        let mut payload_at = csrc_end;
        if buf[field::VPXCC] & FLAG_EXTENSION != 0 {
            let ext = buf.get(csrc_end..csrc_end + field::EXT_HEADER);
            let Some(ext) = ext else { return err(buf.len(), ErrorKind::Truncated) };
            payload_at = csrc_end + field::EXT_HEADER + 4 * usize::from(be16(ext, field::EXT_LEN.start));
        }
        if payload_at > buf.len() {
            return err(buf.len(), ErrorKind::Truncated);
        }
        let mut padding = 0;
        if buf[field::VPXCC] & FLAG_PADDING != 0 {
            // The last byte counts the padding, itself included: at least one byte after the
            // headers, never zero, never reaching into them.
            padding = match buf[payload_at..].last() {
                None | Some(0) => return err(buf.len().saturating_sub(1), ErrorKind::BadLength),
                Some(&n) => usize::from(n),
            };
            if payload_at + padding > buf.len() {
                return err(buf.len() - 1, ErrorKind::BadLength);
            }
        }
        Ok(RtpPacket { buf, payload_at, padding })
    }

    /// Version (always 2 once checked).
    pub fn version(&self) -> u8 {
        self.buf[field::VPXCC] >> 6
    }

    /// Marker bit.
    #[inline]
    pub fn marker(&self) -> bool {
        self.buf[field::MPT] & FLAG_MARKER != 0
    }

    /// Payload type (7 bits).
    #[inline]
    pub fn payload_type(&self) -> u8 {
        self.buf[field::MPT] & MASK_PAYLOAD_TYPE
    }

    /// Sequence number.
    #[inline]
    pub fn sequence(&self) -> u16 {
        be16(self.buf, field::SEQUENCE.start)
    }

    /// RTP timestamp.
    #[inline]
    pub fn timestamp(&self) -> u32 {
        be32(self.buf, field::TIMESTAMP.start)
    }

    /// Synchronisation source.
    #[inline]
    pub fn ssrc(&self) -> u32 {
        be32(self.buf, field::SSRC.start)
    }

    /// Contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let n = usize::from(self.buf[field::VPXCC] & MASK_CSRC_COUNT);
        self.buf[field::CSRC..field::CSRC + 4 * n].chunks_exact(4).map(|c| be32(c, 0))
    }

    /// The header extension: its profile-defined identifier and its bytes.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        if self.buf[field::VPXCC] & FLAG_EXTENSION == 0 {
            return None;
        }
        let at = field::CSRC + 4 * usize::from(self.buf[field::VPXCC] & MASK_CSRC_COUNT);
        Some((be16(self.buf, at + field::EXT_ID.start), &self.buf[at + field::EXT_HEADER..self.payload_at]))
    }

    /// Padding bytes at the end of the packet (the count byte included), if any.
    pub fn padding(&self) -> Option<u8> {
        (self.padding > 0).then_some(self.padding as u8)
    }

    /// Byte range of the payload within the packet.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_at..self.buf.len() - self.padding
    }

    /// The payload, padding removed.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_at..self.buf.len() - self.padding]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PCMU, marker set, one CSRC, a one-word extension, two bytes of payload, 3 of padding.
    const FIXTURE: [u8; 31] = [
        0xb1, 0x80, 0x12, 0x34, // V=2 P X CC=1, M PT=0, seq 0x1234
        0x00, 0x01, 0xe2, 0x40, // timestamp 123456
        0xde, 0xad, 0xbe, 0xef, // SSRC
        0x00, 0x00, 0x00, 0x07, // CSRC 7
        0xbe, 0xde, 0x00, 0x01, // extension id 0xbede, 1 word
        0x10, 0xaa, 0x00, 0x00, // extension
        0xff, 0x7f, // payload
        0x00, 0x00, 0x00, 0x00, 0x05, // padding, 5 bytes with the count
    ];

    #[test]
    fn fixture() {
        let p = RtpPacket::new_checked(&FIXTURE).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence(), 0x1234);
        assert_eq!(p.timestamp(), 123_456);
        assert_eq!(p.ssrc(), 0xdead_beef);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [7]);
        assert_eq!(p.extension(), Some((0xbede, &[0x10, 0xaa, 0, 0][..])));
        assert_eq!(p.padding(), Some(5));
        assert_eq!(p.payload(), &[0xff, 0x7f]);
        assert_eq!(p.payload_range(), 24..26);
    }

    #[test]
    fn plain_header_builds_back() {
        let mut b = [0u8; 14];
        b[field::VPXCC] = VERSION << 6;
        b[field::MPT] = 8;
        b[field::SEQUENCE].copy_from_slice(&7u16.to_be_bytes());
        b[field::TIMESTAMP].copy_from_slice(&160u32.to_be_bytes());
        b[field::SSRC].copy_from_slice(&9u32.to_be_bytes());
        b[12..].copy_from_slice(&[0xd5, 0xd5]);
        let p = RtpPacket::new_checked(&b).unwrap();
        assert_eq!((p.marker(), p.payload_type(), p.sequence(), p.timestamp(), p.ssrc()), (false, 8, 7, 160, 9));
        assert_eq!((p.csrcs().count(), p.extension(), p.padding()), (0, None, None));
        assert_eq!(p.payload(), &[0xd5, 0xd5]);
    }

    #[test]
    fn bad_input() {
        let kind = |b: &[u8]| RtpPacket::new_checked(b).unwrap_err().kind;
        assert_eq!(kind(&FIXTURE[..11]), ErrorKind::Truncated);
        let mut b = FIXTURE;
        b[0] = 0x40 | (b[0] & 0x3f);
        assert_eq!(kind(&b), ErrorKind::BadVersion);
        // The CSRC list or the extension runs past the end.
        assert_eq!(kind(&FIXTURE[..14]), ErrorKind::Truncated);
        assert_eq!(kind(&FIXTURE[..22]), ErrorKind::Truncated);
        // Padding: zero, longer than the payload, or no byte to hold it.
        let mut b = FIXTURE;
        b[30] = 0;
        assert_eq!(kind(&b), ErrorKind::BadLength);
        b[30] = 8;
        assert_eq!(kind(&b), ErrorKind::BadLength);
        assert_eq!(kind(&FIXTURE[..24]), ErrorKind::BadLength);
    }

    proptest::proptest! {
        /// The view accepts exactly what rtp-rs accepts, and reads the same fields.
        #[test]
        fn agrees_with_rtp_rs(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), v2 in proptest::prelude::any::<bool>()) {
            let mut b = b;
            if v2 && !b.is_empty() {
                b[0] = (b[0] & 0x3f) | 0x80;
            }
            let ours = RtpPacket::new_checked(&b);
            let theirs = rtp_rs::RtpReader::new(&b);
            proptest::prop_assert_eq!(ours.is_ok(), theirs.is_ok());
            if let (Ok(o), Ok(t)) = (ours, theirs) {
                proptest::prop_assert_eq!(o.payload(), t.payload());
                proptest::prop_assert_eq!((o.sequence(), o.timestamp(), o.ssrc()), (u16::from(t.sequence_number()), t.timestamp(), t.ssrc()));
                proptest::prop_assert_eq!((o.payload_type(), o.marker(), o.padding()), (t.payload_type(), t.mark(), t.padding()));
                proptest::prop_assert_eq!(o.csrcs().collect::<Vec<_>>(), t.csrc().collect::<Vec<_>>());
                proptest::prop_assert_eq!(o.extension(), t.extension());
            }
        }
    }
}
