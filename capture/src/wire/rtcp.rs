//! RTCP (RFC 3550 §6): the common header, compound packets, sender and receiver reports
//! and their report blocks; RTP/RTCP multiplexing on one port (RFC 5761 §4).
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|    RC   |      PT       |        length (words - 1)     |
//! |                       SSRC of sender                          |
//! |            sender info (SR only, 20 bytes)                    |
//! |            report blocks (RC × 24 bytes)                      |
//! ```

use super::{ErrorKind, Layer, WireError, be16, be32};

/// Byte ranges of the common header, the sender report and a report block.
pub mod field {
    use std::ops::Range;

    /// Version (2 bits), padding, report count (5 bits).
    pub const VPRC: usize = 0;
    /// Packet type.
    pub const PACKET_TYPE: usize = 1;
    /// Length in 32-bit words, minus one.
    pub const LENGTH: Range<usize> = 2..4;
    /// SSRC of the sender (SR, RR).
    pub const SENDER_SSRC: Range<usize> = 4..8;
    /// A sender report's sender info (NTP and RTP timestamps, packet and octet counts).
    pub const SENDER_INFO: Range<usize> = 8..28;

    /// Report block: SSRC of the source reported on.
    pub const BLOCK_SOURCE: Range<usize> = 0..4;
    /// Report block: fraction lost since the previous report, out of 256.
    pub const BLOCK_FRACTION_LOST: usize = 4;
    /// Report block: cumulative packets lost, 24-bit signed.
    pub const BLOCK_CUMULATIVE_LOST: Range<usize> = 5..8;
    /// Report block: extended highest sequence number received.
    pub const BLOCK_HIGHEST_SEQ: Range<usize> = 8..12;
    /// Report block: interarrival jitter.
    pub const BLOCK_JITTER: Range<usize> = 12..16;
    /// Report block: middle 32 bits of the last SR's NTP timestamp.
    pub const BLOCK_LSR: Range<usize> = 16..20;
    /// Report block: delay since the last SR, in 1/65536 s.
    pub const BLOCK_DLSR: Range<usize> = 20..24;
    /// Size of a report block.
    pub const BLOCK_LEN: usize = 24;
}

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Packet types RTCP can have when multiplexed with RTP on one port (RFC 5761 §4): an RTP
/// packet's second byte never falls here.
pub const MUX_TYPES: std::ops::RangeInclusive<u8> = 192..=223;

const VERSION: u8 = 2;
const MASK_COUNT: u8 = 0x1f;

/// Whether a datagram on an RTP port is RTCP multiplexed with it (RFC 5761 §4: by the second
/// byte alone).
#[inline]
pub fn is_muxed(p: &[u8]) -> bool {
    p.get(field::PACKET_TYPE).is_some_and(|t| MUX_TYPES.contains(t))
}

/// Whether a datagram can be RTCP at all: version 2 and room for the sender's SSRC.
#[inline]
pub fn is_rtcp(p: &[u8]) -> bool {
    p.len() >= field::SENDER_SSRC.end && p[field::VPRC] >> 6 == VERSION
}

/// One RTCP packet of a compound packet, checked: version 2 and its declared length within
/// the buffer. Accessors cannot panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    /// Exactly the packet's declared length.
    buf: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// The packet at the start of `buf` (a compound packet may follow it).
    pub fn new_checked(buf: &'a [u8]) -> Result<RtcpPacket<'a>, WireError> {
        if buf.len() < field::LENGTH.end {
            return Err(WireError::new(Layer::Rtp, buf.len(), ErrorKind::Truncated));
        }
        if buf[field::VPRC] >> 6 != VERSION {
            return Err(WireError::new(Layer::Rtp, field::VPRC, ErrorKind::BadVersion));
        }
        let len = (usize::from(be16(buf, field::LENGTH.start)) + 1) * 4;
        match buf.get(..len) {
            Some(buf) => Ok(RtcpPacket { buf }),
            None => Err(WireError::new(Layer::Rtp, field::LENGTH.start, ErrorKind::BadLength)),
        }
    }

    /// Packet type.
    pub fn packet_type(&self) -> u8 {
        self.buf[field::PACKET_TYPE]
    }

    /// Report count (or source count, item count: the 5-bit field).
    pub fn count(&self) -> u8 {
        self.buf[field::VPRC] & MASK_COUNT
    }

    /// The whole packet, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// SSRC of the sender, when the packet holds one.
    pub fn sender_ssrc(&self) -> Option<u32> {
        self.buf.get(field::SENDER_SSRC).map(|b| be32(b, 0))
    }

    /// A sender report's sender info (none for other types, or when the packet is too short).
    pub fn sender_info(&self) -> Option<SenderInfo> {
        if self.packet_type() != PT_SR {
            return None;
        }
        let b = self.buf.get(field::SENDER_INFO)?;
        Some(SenderInfo {
            ntp_seconds: be32(b, 0),
            ntp_fraction: be32(b, 4),
            rtp_timestamp: be32(b, 8),
            packets: be32(b, 12),
            octets: be32(b, 16),
        })
    }

    /// The report blocks of a sender or receiver report (none for other types, and none past
    /// the packet's end).
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock<'a>> + 'a {
        let first = match self.packet_type() {
            PT_SR => field::SENDER_INFO.end,
            PT_RR => field::SENDER_SSRC.end,
            _ => 0,
        };
        let count = if first > 0 && self.sender_ssrc().is_some() { usize::from(self.count()) } else { 0 };
        let buf = self.buf;
        (0..count).map_while(move |i| {
            let at = first + i * field::BLOCK_LEN;
            buf.get(at..at + field::BLOCK_LEN).map(|buf| ReportBlock { buf })
        })
    }
}

/// A sender report's sender info (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp, seconds since 1900.
    pub ntp_seconds: u32,
    /// NTP timestamp, fraction of a second (1/2^32 s).
    pub ntp_fraction: u32,
    /// The same instant in RTP timestamp units.
    pub rtp_timestamp: u32,
    /// Packets the sender sent.
    pub packets: u32,
    /// Payload octets the sender sent.
    pub octets: u32,
}

/// The packets of a compound RTCP packet, in order; the walk ends at the first malformed one.
pub fn compound(p: &[u8]) -> impl Iterator<Item = RtcpPacket<'_>> {
    let mut rest = p;
    std::iter::from_fn(move || {
        let pkt = RtcpPacket::new_checked(rest).ok()?;
        rest = &rest[pkt.buf.len()..];
        Some(pkt)
    })
}

/// One report block (24 bytes): a receiver's view of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock<'a> {
    buf: &'a [u8],
}

impl ReportBlock<'_> {
    /// SSRC of the source reported on.
    pub fn source(&self) -> u32 {
        be32(self.buf, field::BLOCK_SOURCE.start)
    }

    /// Fraction lost since the previous report, out of 256.
    pub fn fraction_lost(&self) -> u8 {
        self.buf[field::BLOCK_FRACTION_LOST]
    }

    /// Cumulative packets lost (24-bit signed, sign-extended).
    pub fn cumulative_lost(&self) -> i32 {
        let b = &self.buf[field::BLOCK_CUMULATIVE_LOST];
        (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
    }

    /// Extended highest sequence number received.
    pub fn highest_seq(&self) -> u32 {
        be32(self.buf, field::BLOCK_HIGHEST_SEQ.start)
    }

    /// Interarrival jitter, in timestamp units.
    pub fn jitter(&self) -> u32 {
        be32(self.buf, field::BLOCK_JITTER.start)
    }

    /// Middle 32 bits of the NTP timestamp of the last sender report received.
    pub fn last_sr(&self) -> u32 {
        be32(self.buf, field::BLOCK_LSR.start)
    }

    /// Delay since that sender report, in 1/65536 s.
    pub fn delay_since_last_sr(&self) -> u32 {
        be32(self.buf, field::BLOCK_DLSR.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compound packet: SR with one report block, then SDES.
    const SR_SDES: [u8; 64] = [
        0x81, 200, 0x00, 0x0c, // V=2, RC=1, SR, length 12 words
        0x11, 0x22, 0x33, 0x44, // sender SSRC
        0xe5, 0x8b, 0x4a, 0x35, 0x12, 0x34, 0x56, 0x78, // NTP timestamp
        0x00, 0x01, 0x86, 0xa0, // RTP timestamp
        0x00, 0x00, 0x01, 0xf4, // packet count
        0x00, 0x01, 0x38, 0x80, // octet count
        0xaa, 0xbb, 0xcc, 0xdd, // report block: source SSRC
        0x40, 0xff, 0xff, 0xfe, // fraction 64/256, cumulative -2
        0x00, 0x01, 0x02, 0x03, // extended highest sequence
        0x00, 0x00, 0x00, 0xa0, // jitter 160
        0x12, 0x34, 0x56, 0x78, // LSR
        0x00, 0x00, 0x80, 0x00, // DLSR
        0x81, 202, 0x00, 0x02, // SDES, 1 chunk, 2 words
        0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn compound_fixture() {
        let pkts: Vec<_> = compound(&SR_SDES).collect();
        assert_eq!(pkts.len(), 2);
        let sr = pkts[0];
        assert_eq!((sr.packet_type(), sr.count(), sr.bytes().len()), (PT_SR, 1, 52));
        assert_eq!(sr.sender_ssrc(), Some(0x1122_3344));
        let info = SenderInfo {
            ntp_seconds: 0xe58b_4a35,
            ntp_fraction: 0x1234_5678,
            rtp_timestamp: 100_000,
            packets: 500,
            octets: 80_000,
        };
        assert_eq!(sr.sender_info(), Some(info));
        let blocks: Vec<_> = sr.report_blocks().collect();
        assert_eq!(blocks.len(), 1);
        let b = blocks[0];
        assert_eq!((b.source(), b.fraction_lost(), b.cumulative_lost()), (0xaabb_ccdd, 64, -2));
        assert_eq!((b.highest_seq(), b.jitter()), (0x0001_0203, 160));
        assert_eq!((b.last_sr(), b.delay_since_last_sr()), (0x1234_5678, 0x8000));
        assert_eq!(b.buf, &SR_SDES[28..52]);
        let sdes = pkts[1];
        assert_eq!((sdes.packet_type(), sdes.count(), sdes.report_blocks().count()), (PT_SDES, 1, 0));
        assert!(is_muxed(&SR_SDES) && is_rtcp(&SR_SDES));
    }

    #[test]
    fn receiver_report_and_bad_input() {
        let rr = [
            0x81, 201, 0x00, 0x07, 0, 0, 0, 9, 0, 0, 0, 7, 0x02, 0x00, 0x00, 0x05, 0, 0, 0, 100, 0, 0, 0, 8, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let p = RtcpPacket::new_checked(&rr).unwrap();
        let b: Vec<_> = p.report_blocks().collect();
        assert_eq!((p.sender_ssrc(), b.len(), p.sender_info()), (Some(9), 1, None));
        // A sender report cut before the end of its sender info has none.
        let short = [0x80, 200, 0x00, 0x03, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(RtcpPacket::new_checked(&short).unwrap().sender_info(), None);
        assert_eq!((b[0].source(), b[0].cumulative_lost(), b[0].highest_seq(), b[0].jitter()), (7, 5, 100, 8));
        // The declared length past the end, another version, too short.
        assert_eq!(RtcpPacket::new_checked(&rr[..20]).unwrap_err().kind, ErrorKind::BadLength);
        assert_eq!(RtcpPacket::new_checked(&[0x01, 201, 0, 0]).unwrap_err().kind, ErrorKind::BadVersion);
        assert_eq!(RtcpPacket::new_checked(&[0x81]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(compound(&rr[..20]).count(), 0);
        // A report count larger than the packet holds: the blocks that are there.
        let mut more = rr;
        more[0] = 0x83;
        assert_eq!(RtcpPacket::new_checked(&more).unwrap().report_blocks().count(), 1);
        // A header-only packet has no sender and no blocks.
        let bare = RtcpPacket::new_checked(&[0x81, 201, 0, 0]).unwrap();
        assert_eq!((bare.sender_ssrc(), bare.report_blocks().count()), (None, 0));
        // RTP (PCMU, PT 0 or 0x80 with the marker) is never taken for multiplexed RTCP.
        assert!(!is_muxed(&[0x80, 0x00]) && !is_muxed(&[0x80, 0x80]) && !is_muxed(&[0x80]));
        assert!(!is_rtcp(&rr[..7]) && !is_rtcp(&[0x41, 201, 0, 1, 0, 0, 0, 0]));
    }
}
