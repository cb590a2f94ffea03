//! MPLS label stacks (RFC 3032), EtherType 0x8847 (unicast) and 0x8848 (multicast).
//!
//! MPLS does not say what follows the bottom of the stack. Like other passive decoders, the
//! first nibble decides: 4 is IPv4, 6 is IPv6, 0 is a pseudowire control word (RFC 4385, 4 bytes)
//! followed by an Ethernet frame, and anything else is an Ethernet pseudowire without one.

use super::{ErrorKind, Layer, WireError, be32};

/// EtherType of MPLS unicast.
pub const ETHERTYPE_UNICAST: u16 = 0x8847;
/// EtherType of MPLS multicast.
pub const ETHERTYPE_MULTICAST: u16 = 0x8848;

/// More labels than this is not a real packet.
pub const MAX_LABELS: usize = 8;

/// What follows the label stack (a guess from its first nibble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MplsPayload {
    /// An IPv4 packet.
    Ipv4,
    /// An IPv6 packet.
    Ipv6,
    /// An Ethernet frame (pseudowire; the control word, if any, already skipped).
    Ethernet,
}

/// Validated fields of an MPLS label stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MplsRepr<'a> {
    /// Number of label stack entries.
    pub depth: usize,
    /// Top (outermost) label.
    pub top_label: u32,
    /// Bottom (innermost) label.
    pub bottom_label: u32,
    /// TTL of the bottom entry.
    pub ttl: u8,
    /// Guessed payload type.
    pub next: MplsPayload,
    /// A pseudowire control word was present (and skipped).
    pub control_word: bool,
    /// Bytes after the stack (and after the control word).
    pub payload: &'a [u8],
}

/// Parses an MPLS label stack down to its bottom-of-stack entry and guesses the payload.
pub fn parse(b: &[u8]) -> Result<MplsRepr<'_>, WireError> {
    const L: Layer = Layer::Mpls;
    let mut at = 0;
    let mut top_label = None;
    loop {
        if at / 4 == MAX_LABELS {
            return Err(WireError::new(L, at, ErrorKind::TooMany));
        }
        if b.len() < at + 4 {
            return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
        }
        let entry = be32(b, at);
        let label = entry >> 12;
        top_label.get_or_insert(label);
        at += 4;
        if entry & 0x100 != 0 {
            let rest = &b[at..];
            let (next, control_word, payload) = match rest.first().map(|v| v >> 4) {
                Some(4) => (MplsPayload::Ipv4, false, rest),
                Some(6) => (MplsPayload::Ipv6, false, rest),
                Some(0) => {
                    if rest.len() < 4 {
                        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
                    }
                    (MplsPayload::Ethernet, true, &rest[4..])
                }
                Some(_) => (MplsPayload::Ethernet, false, rest),
                None => return Err(WireError::new(L, b.len(), ErrorKind::Truncated)),
            };
            return Ok(MplsRepr {
                depth: at / 4,
                top_label: top_label.unwrap_or(label),
                bottom_label: label,
                ttl: entry as u8,
                next,
                control_word,
                payload,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two labels (16, then 17 with bottom of stack, TTL 64), then IPv4.
    const TWO_LABELS_V4: [u8; 10] = [0x00, 0x01, 0x00, 0xff, 0x00, 0x01, 0x11, 0x40, 0x45, 0x00];

    #[test]
    fn ipv4_fixture() {
        let m = parse(&TWO_LABELS_V4).unwrap();
        assert_eq!(m.depth, 2);
        assert_eq!(m.top_label, 16);
        assert_eq!(m.bottom_label, 17);
        assert_eq!(m.ttl, 64);
        assert_eq!(m.next, MplsPayload::Ipv4);
        assert!(!m.control_word);
        assert_eq!(m.payload, &[0x45, 0x00]);
    }

    #[test]
    fn ipv6_and_pseudowires() {
        let m = parse(&[0x00, 0x01, 0x01, 0x40, 0x60, 0x00]).unwrap();
        assert_eq!((m.next, m.payload), (MplsPayload::Ipv6, &[0x60, 0x00][..]));
        let cw = parse(&[0x00, 0x01, 0x01, 0x40, 0, 0, 0, 1, 0xaa]).unwrap();
        assert_eq!((cw.next, cw.control_word, cw.payload), (MplsPayload::Ethernet, true, &[0xaa][..]));
        let raw = parse(&[0x00, 0x01, 0x01, 0x40, 0x52, 0x54]).unwrap();
        assert_eq!((raw.next, raw.control_word, raw.payload), (MplsPayload::Ethernet, false, &[0x52, 0x54][..]));
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&TWO_LABELS_V4[..6]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&TWO_LABELS_V4[..8]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0, 1, 1, 0x40, 0, 0]).unwrap_err().kind, ErrorKind::Truncated);
        let endless = [0u8; 4 * (MAX_LABELS + 1)];
        assert_eq!(parse(&endless).unwrap_err().kind, ErrorKind::TooMany);
    }
}
