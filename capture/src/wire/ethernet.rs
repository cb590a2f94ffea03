//! Ethernet II frames with any number of 802.1Q / 802.1ad VLAN tags (QinQ).

use super::{ErrorKind, Layer, WireError, be16};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service VLAN tag (outer tag of QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still seen on older switches.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

const HEADER_LEN: usize = 14;
const TAG_LEN: usize = 4;
/// More tags than this is not a real frame.
const MAX_TAGS: usize = 4;

/// The validated fields of an Ethernet frame, VLAN tags stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr<'a> {
    /// EtherType of the payload after all VLAN tags.
    pub ethertype: u16,
    /// Outermost VLAN id, if tagged.
    pub outer_vlan: Option<u16>,
    /// Innermost VLAN id when double tagged (QinQ).
    pub inner_vlan: Option<u16>,
    /// Bytes after the last tag.
    pub payload: &'a [u8],
}

/// Parses an Ethernet II frame and strips its VLAN tags.
#[inline]
pub fn parse(frame: &[u8]) -> Result<EthernetRepr<'_>, WireError> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::new(Layer::Link, frame.len(), ErrorKind::Truncated));
    }
    let mut ethertype = be16(frame, 12);
    let mut at = HEADER_LEN;
    let mut outer_vlan = None;
    let mut inner_vlan = None;
    let mut tags = 0;
    while matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        if tags == MAX_TAGS {
            return Err(WireError::new(Layer::Link, at, ErrorKind::TooMany));
        }
        if frame.len() < at + TAG_LEN {
            return Err(WireError::new(Layer::Link, frame.len(), ErrorKind::Truncated));
        }
        let vid = be16(frame, at) & 0x0fff;
        if outer_vlan.is_none() {
            outer_vlan = Some(vid);
        } else {
            inner_vlan = Some(vid);
        }
        ethertype = be16(frame, at + 2);
        at += TAG_LEN;
        tags += 1;
    }
    Ok(EthernetRepr { ethertype, outer_vlan, inner_vlan, payload: &frame[at..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // dst
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, // payload
    ];

    const QINQ: [u8; 26] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, //
        0x88, 0xa8, 0x20, 0x64, // S-tag, PCP 1, VID 100
        0x81, 0x00, 0x00, 0xc8, // C-tag, VID 200
        0x86, 0xdd, // IPv6
        0x60, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn untagged() {
        let e = parse(&UNTAGGED).unwrap();
        assert_eq!(e.ethertype, ETHERTYPE_IPV4);
        assert_eq!(e.outer_vlan, None);
        assert_eq!(e.inner_vlan, None);
        assert_eq!(e.payload, &[0x45, 0x00]);
    }

    #[test]
    fn double_tagged() {
        let e = parse(&QINQ).unwrap();
        assert_eq!(e.ethertype, ETHERTYPE_IPV6);
        assert_eq!(e.outer_vlan, Some(100));
        assert_eq!(e.inner_vlan, Some(200));
        assert_eq!(e.payload, &[0x60, 0, 0, 0]);
    }

    #[test]
    fn truncated_header_and_tag() {
        assert_eq!(parse(&UNTAGGED[..13]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&QINQ[..16]).unwrap_err().kind, ErrorKind::Truncated);
    }

    #[test]
    fn endless_tags_rejected() {
        let mut f = UNTAGGED[..12].to_vec();
        for _ in 0..8 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01]);
        }
        f.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(parse(&f).unwrap_err().kind, ErrorKind::TooMany);
    }
}
