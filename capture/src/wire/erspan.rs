//! ERSPAN headers (draft-foschiano-erspan): the mirrored frame a switch sends over GRE.
//!
//! Type II (GRE protocol 0x88be, sequence flag set) has an 8-byte header, type III (0x22eb)
//! a 12-byte one plus an optional 8-byte platform sub-header. Both carry the mirrored Ethernet
//! frame after it. Type I (0x88be without a GRE sequence number) has no header at all: the
//! caller hands the GRE payload straight to Ethernet.
//!
//! ```text
//! type II:  |Ver=1|  VLAN  |COS|En|T| Session ID |  Reserved  |        Index        |
//! type III: |Ver=2|  VLAN  |COS|BSO|T| Session ID |          Timestamp            |
//!           |      SGT      |P| FT |  Hw ID  |D|Gra|O|  [8-byte sub-header if O]
//! ```

use super::{ErrorKind, Layer, WireError, be16, be32};

/// ERSPAN version field of type II.
pub const VERSION_II: u8 = 1;
/// ERSPAN version field of type III.
pub const VERSION_III: u8 = 2;
/// Type III frame type of an Ethernet frame.
pub const FRAME_ETHERNET: u8 = 0;

/// Validated fields of an ERSPAN type II or III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErspanRepr<'a> {
    /// Version field: 1 for type II, 2 for type III.
    pub version: u8,
    /// VLAN of the mirrored frame as recorded by the switch.
    pub vlan: u16,
    /// Class of service.
    pub cos: u8,
    /// Mirroring session id (10 bits).
    pub session_id: u16,
    /// The switch truncated the mirrored frame (T bit).
    pub truncated: bool,
    /// Type III timestamp.
    pub timestamp: Option<u32>,
    /// Type III frame type (0 Ethernet, 2 IP); always Ethernet for type II.
    pub frame_type: u8,
    /// The mirrored frame.
    pub payload: &'a [u8],
}

/// Parses an ERSPAN type II header (GRE protocol 0x88be with a sequence number).
pub fn parse_type2(b: &[u8]) -> Result<ErspanRepr<'_>, WireError> {
    const L: Layer = Layer::Erspan;
    if b.len() < 8 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    let w0 = be16(b, 0);
    let w1 = be16(b, 2);
    if (w0 >> 12) as u8 != VERSION_II {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    Ok(ErspanRepr {
        version: VERSION_II,
        vlan: w0 & 0x0fff,
        cos: (w1 >> 13) as u8,
        session_id: w1 & 0x03ff,
        truncated: w1 & 0x0400 != 0,
        timestamp: None,
        frame_type: FRAME_ETHERNET,
        payload: &b[8..],
    })
}

/// Parses an ERSPAN type III header (GRE protocol 0x22eb), skipping the platform sub-header
/// when the O flag announces one.
pub fn parse_type3(b: &[u8]) -> Result<ErspanRepr<'_>, WireError> {
    const L: Layer = Layer::Erspan;
    if b.len() < 12 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    let w0 = be16(b, 0);
    let w1 = be16(b, 2);
    if (w0 >> 12) as u8 != VERSION_III {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    let tail = be16(b, 10);
    let mut at = 12;
    if tail & 0x0001 != 0 {
        if b.len() < 20 {
            return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
        }
        at = 20;
    }
    Ok(ErspanRepr {
        version: VERSION_III,
        vlan: w0 & 0x0fff,
        cos: (w1 >> 13) as u8,
        session_id: w1 & 0x03ff,
        truncated: w1 & 0x0400 != 0,
        timestamp: Some(be32(b, 4)),
        frame_type: ((tail >> 10) & 0x1f) as u8,
        payload: &b[at..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Version 1, VLAN 100, COS 5, T set, session 0x123, index 0xabcde, then two frame bytes.
    const TYPE2: [u8; 10] = [0x10, 0x64, 0xa5, 0x23, 0x00, 0x0a, 0xbc, 0xde, 0x00, 0x11];

    // Version 2, VLAN 7, COS 1, session 5, timestamp 0x01020304, SGT 0, FT 0, O set,
    // 8-byte sub-header, then one frame byte.
    const TYPE3: [u8; 21] = [
        0x20, 0x07, 0x20, 0x05, // ver, vlan, cos, session
        0x01, 0x02, 0x03, 0x04, // timestamp
        0x00, 0x00, 0x00, 0x01, // SGT, P/FT/HwID/D/Gra/O
        1, 2, 3, 4, 5, 6, 7, 8, // platform sub-header
        0x00,
    ];

    #[test]
    fn type2_fixture() {
        let e = parse_type2(&TYPE2).unwrap();
        assert_eq!(e.version, VERSION_II);
        assert_eq!(e.vlan, 100);
        assert_eq!(e.cos, 5);
        assert!(e.truncated);
        assert_eq!(e.session_id, 0x123);
        assert_eq!(e.timestamp, None);
        assert_eq!(e.frame_type, FRAME_ETHERNET);
        assert_eq!(e.payload, &[0x00, 0x11]);
    }

    #[test]
    fn type3_fixture() {
        let e = parse_type3(&TYPE3).unwrap();
        assert_eq!(e.version, VERSION_III);
        assert_eq!(e.vlan, 7);
        assert_eq!(e.cos, 1);
        assert!(!e.truncated);
        assert_eq!(e.session_id, 5);
        assert_eq!(e.timestamp, Some(0x0102_0304));
        assert_eq!(e.frame_type, FRAME_ETHERNET);
        assert_eq!(e.payload, &[0x00]);
        let mut no_sub = TYPE3;
        no_sub[11] = 0;
        assert_eq!(parse_type3(&no_sub).unwrap().payload.len(), 9);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse_type2(&TYPE2[..7]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse_type2(&TYPE3).unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(parse_type3(&TYPE3[..11]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse_type3(&TYPE3[..19]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse_type3(&[0x10; 12]).unwrap_err().kind, ErrorKind::BadVersion);
    }
}
