//! VXLAN header (RFC 7348): 8 bytes in a UDP datagram to port 4789, then an Ethernet frame.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use super::{ErrorKind, Layer, WireError, be32};

/// IANA UDP port of VXLAN.
pub const PORT: u16 = 4789;

const FLAG_I: u8 = 0x08;

/// Validated fields of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr<'a> {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The encapsulated Ethernet frame.
    pub payload: &'a [u8],
}

/// Parses a VXLAN header. The I flag (valid VNI) must be set; anything else on port 4789 is
/// not VXLAN (`BadVersion`).
pub fn parse(b: &[u8]) -> Result<VxlanRepr<'_>, WireError> {
    if b.len() < 8 {
        return Err(WireError::new(Layer::Vxlan, b.len(), ErrorKind::Truncated));
    }
    if b[0] & FLAG_I == 0 {
        return Err(WireError::new(Layer::Vxlan, 0, ErrorKind::BadVersion));
    }
    Ok(VxlanRepr { vni: be32(b, 4) >> 8, payload: &b[8..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [u8; 10] = [0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, 0xaa, 0xbb];

    #[test]
    fn fixture() {
        let v = parse(&FIXTURE).unwrap();
        assert_eq!(v.vni, 0x12_3456);
        assert_eq!(v.payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&FIXTURE[..7]).unwrap_err().kind, ErrorKind::Truncated);
        let mut b = FIXTURE;
        b[0] = 0;
        assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BadVersion);
    }
}
