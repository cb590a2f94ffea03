//! UDP header.

use super::{ErrorKind, Layer, WireError, be16};

/// Validated fields of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Datagram payload, trimmed to the UDP length field.
    pub payload: &'a [u8],
    /// Fewer bytes were captured than the length field declares; `payload` is what there is.
    pub truncated: bool,
}

/// Parses a UDP header. The checksum is not verified: a passive recorder keeps what the
/// endpoints accepted, and offloaded checksums are often wrong in captures taken on the host.
#[inline]
pub fn parse(b: &[u8]) -> Result<UdpRepr<'_>, WireError> {
    if b.len() < 8 {
        return Err(WireError::new(Layer::Udp, b.len(), ErrorKind::Truncated));
    }
    let len = usize::from(be16(b, 4));
    // Length 0 is legal for IPv6 jumbograms; take the IP payload as is.
    let end = if len == 0 { b.len() } else { len };
    if end < 8 {
        return Err(WireError::new(Layer::Udp, 4, ErrorKind::BadLength));
    }
    let truncated = b.len() < end;
    let end = end.min(b.len());
    Ok(UdpRepr { src_port: be16(b, 0), dst_port: be16(b, 2), payload: &b[8..end], truncated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let b = [0x13, 0xc4, 0x17, 0x70, 0x00, 0x0b, 0xab, 0xcd, b'a', b'b', b'c', 0, 0];
        let u = parse(&b).unwrap();
        assert_eq!(u.src_port, 5060);
        assert_eq!(u.dst_port, 6000);
        assert_eq!(u.payload, b"abc");
        assert!(!u.truncated);
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(parse(&[0; 7]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0, 1, 0, 2, 0, 4, 0, 0]).unwrap_err().kind, ErrorKind::BadLength);
        let short = parse(&[0, 1, 0, 2, 0, 12, 0, 0, 1]).unwrap();
        assert!(short.truncated);
        assert_eq!(short.payload, &[1]);
    }
}
