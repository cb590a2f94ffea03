//! TCP segment header (RFC 9293). Options are skipped, not interpreted: a passive observer
//! only needs the ports, the sequence space and the control flags.

use super::{ErrorKind, Layer, WireError, be16, be32};

/// FIN: the sender has finished sending.
pub const FIN: u8 = 0x01;
/// SYN: synchronise sequence numbers (the first byte of data is `seq + 1`).
pub const SYN: u8 = 0x02;
/// RST: reset the connection.
pub const RST: u8 = 0x04;
/// PSH: push.
pub const PSH: u8 = 0x08;
/// ACK: the acknowledgement number is valid.
pub const ACK: u8 = 0x10;
/// URG: the urgent pointer is valid.
pub const URG: u8 = 0x20;

const MIN_HEADER: usize = 20;

/// Validated fields of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first payload byte (of the SYN itself when SYN is set).
    pub seq: u32,
    /// Acknowledgement number (meaningful when [`ACK`] is set).
    pub ack: u32,
    /// Control flags (the low 8 bits of the flags field: CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
    /// Receive window (unscaled).
    pub window: u16,
    /// Header length in bytes, options included (20..=60).
    pub header_len: usize,
    /// Segment payload: the bytes after the header, as far as they were handed in.
    pub payload: &'a [u8],
}

impl TcpRepr<'_> {
    /// True when every flag in `mask` is set.
    pub fn has(&self, mask: u8) -> bool {
        self.flags & mask == mask
    }

    /// Sequence space the segment occupies: payload bytes, plus one for SYN and one for FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.has(SYN)) + u32::from(self.has(FIN))
    }
}

/// Parses a TCP header. The checksum is not verified (see [`super::udp::parse`] for why).
pub fn parse(b: &[u8]) -> Result<TcpRepr<'_>, WireError> {
    const L: Layer = Layer::Tcp;
    if b.len() < MIN_HEADER {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    let header_len = usize::from(b[12] >> 4) * 4;
    if header_len < MIN_HEADER {
        return Err(WireError::new(L, 12, ErrorKind::BadLength));
    }
    if b.len() < header_len {
        return Err(WireError::new(L, b.len(), ErrorKind::Truncated));
    }
    Ok(TcpRepr {
        src_port: be16(b, 0),
        dst_port: be16(b, 2),
        seq: be32(b, 4),
        ack: be32(b, 8),
        flags: b[13],
        window: be16(b, 14),
        header_len,
        payload: &b[header_len..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 5060 -> 6060, seq 0x01020304, ack 0x0a0b0c0d, 24-byte header (one 4-byte option),
    // PSH|ACK, window 0x1000, payload "SIP".
    const SEGMENT: [u8; 27] = [
        0x13, 0xc4, 0x17, 0xac, // ports
        0x01, 0x02, 0x03, 0x04, // seq
        0x0a, 0x0b, 0x0c, 0x0d, // ack
        0x60, 0x18, 0x10, 0x00, // data offset 6, flags PSH|ACK, window
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS option
        b'S', b'I', b'P',
    ];

    #[test]
    fn fixture() {
        let t = parse(&SEGMENT).unwrap();
        assert_eq!(t.src_port, 5060);
        assert_eq!(t.dst_port, 6060);
        assert_eq!(t.seq, 0x0102_0304);
        assert_eq!(t.ack, 0x0a0b_0c0d);
        assert_eq!(t.flags, PSH | ACK);
        assert!(t.has(ACK) && !t.has(SYN) && !t.has(FIN) && !t.has(RST));
        assert_eq!(t.window, 0x1000);
        assert_eq!(t.header_len, 24);
        assert_eq!(t.payload, b"SIP");
        assert_eq!(t.seq_len(), 3);
    }

    #[test]
    fn syn_and_fin_occupy_sequence_space() {
        let mut b = SEGMENT;
        b[13] = SYN | FIN;
        let t = parse(&b[..24]).unwrap();
        assert_eq!(t.payload, b"");
        assert_eq!(t.seq_len(), 2);
    }

    #[test]
    fn bad_input() {
        assert_eq!(parse(&SEGMENT[..19]).unwrap_err().kind, ErrorKind::Truncated);
        let mut b = SEGMENT;
        b[12] = 0x40; // 16-byte header
        assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::BadLength);
        let mut b = SEGMENT;
        b[12] = 0xf0; // 60-byte header, 27 bytes present
        assert_eq!(parse(&b).unwrap_err().kind, ErrorKind::Truncated);
    }
}
