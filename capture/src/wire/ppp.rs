//! PPP frames (RFC 1661) as carried in GRE (PPTP) and PPPoE: optional address/control bytes
//! (`ff 03`, absent with address-and-control-field compression) and a 1- or 2-byte protocol
//! (1 byte with protocol-field compression: a protocol's low byte is odd, its high byte even).

use super::{ErrorKind, Layer, WireError, be16};

/// PPP protocol of IPv4.
pub const PROTO_IPV4: u16 = 0x0021;
/// PPP protocol of IPv6.
pub const PROTO_IPV6: u16 = 0x0057;

/// Validated fields of a PPP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PppRepr<'a> {
    /// PPP protocol number (LCP 0xc021, IPCP 0x8021, IPv4 0x0021, ...).
    pub protocol: u16,
    /// Bytes after the protocol field.
    pub payload: &'a [u8],
}

/// Parses a PPP header, accepting address/control and protocol-field compression.
pub fn parse(b: &[u8]) -> Result<PppRepr<'_>, WireError> {
    const L: Layer = Layer::Ppp;
    let b = if b.starts_with(&[0xff, 0x03]) { &b[2..] } else { b };
    match b.first() {
        None => Err(WireError::new(L, 0, ErrorKind::Truncated)),
        Some(&p) if p & 1 == 1 => Ok(PppRepr { protocol: u16::from(p), payload: &b[1..] }),
        Some(_) if b.len() < 2 => Err(WireError::new(L, b.len(), ErrorKind::Truncated)),
        Some(_) => {
            let protocol = be16(b, 0);
            if protocol & 1 == 0 {
                return Err(WireError::new(L, 0, ErrorKind::BadVersion));
            }
            Ok(PppRepr { protocol, payload: &b[2..] })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_header() {
        let p = parse(&[0xff, 0x03, 0x00, 0x21, 0x45]).unwrap();
        assert_eq!(p.protocol, PROTO_IPV4);
        assert_eq!(p.payload, &[0x45]);
    }

    #[test]
    fn compressed_headers() {
        let p = parse(&[0x00, 0x57, 0x60]).unwrap();
        assert_eq!((p.protocol, p.payload), (PROTO_IPV6, &[0x60][..]));
        let p = parse(&[0x21, 0x45, 0x00]).unwrap();
        assert_eq!((p.protocol, p.payload), (PROTO_IPV4, &[0x45, 0x00][..]));
        let p = parse(&[0xc0, 0x21, 1]).unwrap();
        assert_eq!(p.protocol, 0xc021);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&[]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0xff, 0x03]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0x00]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0x00, 0x20]).unwrap_err().kind, ErrorKind::BadVersion);
    }
}
