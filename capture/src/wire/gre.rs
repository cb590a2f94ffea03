//! GRE headers: RFC 2784 with the key and sequence number extensions of RFC 2890, and the
//! "enhanced GRE" of PPTP (RFC 2637, version 1) that carries PPP.
//!
//! ```text
//!  0                   1                   2                   3
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (optional)    |   C
//! |                         Key (optional)                        |   K (v1: payload length, call id)
//! |                 Sequence Number (optional)                    |   S
//! |               Acknowledgment Number (optional)                |   A (v1 only)
//! ```

use super::{ErrorKind, Layer, WireError, be16, be32};

/// GRE protocol type of transparent Ethernet bridging (an Ethernet frame follows).
pub const PROTO_TEB: u16 = 0x6558;
/// GRE protocol type of PPP (PPTP).
pub const PROTO_PPP: u16 = 0x880b;
/// GRE protocol type of ERSPAN type II (type I when the sequence flag is clear).
pub const PROTO_ERSPAN_II: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
pub const PROTO_ERSPAN_III: u16 = 0x22eb;

const FLAG_C: u16 = 0x8000;
const FLAG_R: u16 = 0x4000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
const FLAG_A: u16 = 0x0080;

/// Validated fields of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr<'a> {
    /// 0 (RFC 2784) or 1 (PPTP enhanced GRE).
    pub version: u8,
    /// EtherType of the payload.
    pub protocol: u16,
    /// Checksum field, when the C flag is set (not verified).
    pub checksum: Option<u16>,
    /// Key, when the K flag is set. Version 1 puts payload length (high 16 bits) and call id
    /// (low 16 bits) here.
    pub key: Option<u32>,
    /// Sequence number, when the S flag is set.
    pub sequence: Option<u32>,
    /// Acknowledgement number (version 1 with the A flag).
    pub ack: Option<u32>,
    /// Bytes after the header (for version 1, trimmed to the payload length in the key).
    pub payload: &'a [u8],
}

/// Parses a GRE header. Source-routed GRE (RFC 1701 R flag) and versions other than 0 and 1 are
/// rejected as `BadVersion`.
pub fn parse(b: &[u8]) -> Result<GreRepr<'_>, WireError> {
    const L: Layer = Layer::Gre;
    if b.len() < 4 {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    let flags = be16(b, 0);
    let version = (flags & 0x7) as u8;
    if flags & FLAG_R != 0 || version > 1 {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    if version == 1 && flags & FLAG_K == 0 {
        return Err(WireError::new(L, 0, ErrorKind::BadVersion));
    }
    let protocol = be16(b, 2);
    let mut at = 4;
    let mut field = |present: bool| -> Result<Option<u32>, WireError> {
        if !present {
            return Ok(None);
        }
        if b.len() < at + 4 {
            return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
        }
        let v = be32(b, at);
        at += 4;
        Ok(Some(v))
    };
    let checksum = field(flags & FLAG_C != 0)?.map(|v| (v >> 16) as u16);
    let key = field(flags & FLAG_K != 0)?;
    let sequence = field(flags & FLAG_S != 0)?;
    let ack = field(version == 1 && flags & FLAG_A != 0)?;
    let mut payload = &b[at..];
    if version == 1
        && let Some(k) = key
    {
        let len = (k >> 16) as usize;
        payload = &payload[..len.min(payload.len())];
    }
    Ok(GreRepr { version, protocol, checksum, key, sequence, ack, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Version 0, C|K|S, IPv4: checksum 0xbeef, key 0x00000064, sequence 7.
    const GRE_CKS: [u8; 18] = [
        0xb0, 0x00, 0x08, 0x00, // flags C K S, version 0, IPv4
        0xbe, 0xef, 0x00, 0x00, // checksum, reserved1
        0x00, 0x00, 0x00, 0x64, // key
        0x00, 0x00, 0x00, 0x07, // sequence
        0x45, 0x00,
    ];

    // PPTP: version 1, K|S|A, PPP, payload length 3, call id 0x1234, seq 9, ack 8.
    const PPTP: [u8; 21] = [
        0x30, 0x81, 0x88, 0x0b, // K S, A, version 1, PPP
        0x00, 0x03, 0x12, 0x34, // payload length, call id
        0x00, 0x00, 0x00, 0x09, // sequence
        0x00, 0x00, 0x00, 0x08, // ack
        0xff, 0x03, 0x21, 0xaa, 0xbb, // 3 bytes of payload then trailing bytes
    ];

    #[test]
    fn rfc2784_2890_fixture() {
        let g = parse(&GRE_CKS).unwrap();
        assert_eq!(g.version, 0);
        assert_eq!(g.protocol, 0x0800);
        assert_eq!(g.checksum, Some(0xbeef));
        assert_eq!(g.key, Some(100));
        assert_eq!(g.sequence, Some(7));
        assert_eq!(g.ack, None);
        assert_eq!(g.payload, &[0x45, 0x00]);
    }

    #[test]
    fn minimal_header() {
        let g = parse(&[0x00, 0x00, 0x65, 0x58, 1, 2]).unwrap();
        assert_eq!(g.protocol, PROTO_TEB);
        assert_eq!((g.checksum, g.key, g.sequence), (None, None, None));
        assert_eq!(g.payload, &[1, 2]);
    }

    #[test]
    fn pptp_fixture() {
        let g = parse(&PPTP).unwrap();
        assert_eq!(g.version, 1);
        assert_eq!(g.protocol, PROTO_PPP);
        assert_eq!(g.key, Some(0x0003_1234));
        assert_eq!(g.sequence, Some(9));
        assert_eq!(g.ack, Some(8));
        assert_eq!(g.payload, &[0xff, 0x03, 0x21]);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&GRE_CKS[..3]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&GRE_CKS[..15]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0x40, 0, 8, 0, 0, 0, 0, 0]).unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(parse(&[0x00, 0x02, 8, 0]).unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(parse(&[0x00, 0x01, 0x88, 0x0b]).unwrap_err().kind, ErrorKind::BadVersion);
    }
}
