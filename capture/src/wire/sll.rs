//! Linux "cooked" capture headers: SLL (DLT 113) and SLL2 (DLT 276).
//!
//! Captures on `any` interface use these instead of Ethernet. Both carry the EtherType of
//! the payload in a `protocol` field; SLL has it last (offset 14 of 16), SLL2 first.

use super::{ErrorKind, Layer, WireError, be16};

const SLL_LEN: usize = 16;
const SLL2_LEN: usize = 20;

/// Validated fields of a cooked-capture header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SllRepr<'a> {
    /// EtherType of the payload.
    pub protocol: u16,
    /// Packet type: 0 to us, 1 broadcast, 2 multicast, 3 to someone else, 4 sent by us.
    pub packet_type: u16,
    /// ARPHRD type of the interface (1 = Ethernet).
    pub hatype: u16,
    /// Bytes after the header.
    pub payload: &'a [u8],
}

/// Parses an SLL (version 1) header.
pub fn parse_v1(b: &[u8]) -> Result<SllRepr<'_>, WireError> {
    if b.len() < SLL_LEN {
        return Err(WireError::new(Layer::Link, b.len(), ErrorKind::Truncated));
    }
    Ok(SllRepr { packet_type: be16(b, 0), hatype: be16(b, 2), protocol: be16(b, 14), payload: &b[SLL_LEN..] })
}

/// Parses an SLL2 header.
pub fn parse_v2(b: &[u8]) -> Result<SllRepr<'_>, WireError> {
    if b.len() < SLL2_LEN {
        return Err(WireError::new(Layer::Link, b.len(), ErrorKind::Truncated));
    }
    Ok(SllRepr { protocol: be16(b, 0), hatype: be16(b, 8), packet_type: u16::from(b[10]), payload: &b[SLL2_LEN..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_v1_fixture() {
        let b = [
            0x00, 0x04, // sent by us
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // address length
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, // address
            0x86, 0xdd, // IPv6
            0x60, 0x01,
        ];
        let s = parse_v1(&b).unwrap();
        assert_eq!(s.packet_type, 4);
        assert_eq!(s.hatype, 1);
        assert_eq!(s.protocol, 0x86dd);
        assert_eq!(s.payload, &[0x60, 0x01]);
        assert_eq!(parse_v1(&b[..15]).unwrap_err().kind, ErrorKind::Truncated);
    }

    #[test]
    fn sll_v2_fixture() {
        let b = [
            0x08, 0x00, // IPv4
            0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x02, // ifindex
            0x00, 0x01, // ARPHRD_ETHER
            0x00, // to us
            0x06, // address length
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, // address
            0x45,
        ];
        let s = parse_v2(&b).unwrap();
        assert_eq!(s.protocol, 0x0800);
        assert_eq!(s.hatype, 1);
        assert_eq!(s.packet_type, 0);
        assert_eq!(s.payload, &[0x45]);
        assert_eq!(parse_v2(&b[..19]).unwrap_err().kind, ErrorKind::Truncated);
    }
}
