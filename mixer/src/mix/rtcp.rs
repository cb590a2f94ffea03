//! RTCP (RFC 3550 §6): what the endpoints themselves report about the streams they receive.
//! Sender and receiver reports carry, per source, the fraction and number of packets lost and
//! the interarrival jitter as the receiver computed them; the call record shows them beside
//! the values callvault measured at the tap. The bytes are read by [`capture::wire::rtcp`].

use capture::wire::rtcp;

/// One report block: the reporter's view of a source it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the reporting party (the packet's sender).
    pub reporter: u32,
    /// SSRC of the source reported on.
    pub source: u32,
    /// Fraction lost since the previous report, out of 256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
}

/// Report blocks of a (compound) RTCP packet; malformed parts end the walk. At most 32 blocks
/// are returned per packet.
pub fn report_blocks(p: &[u8]) -> Vec<ReportBlock> {
    let mut out = Vec::new();
    for pkt in rtcp::compound(p) {
        if out.len() >= 32 {
            break;
        }
        let Some(reporter) = pkt.sender_ssrc() else { continue };
        out.extend(pkt.report_blocks().map(|b| ReportBlock {
            reporter,
            source: b.source(),
            fraction_lost: b.fraction_lost(),
            cumulative_lost: b.cumulative_lost(),
            highest_seq: b.highest_seq(),
            jitter: b.jitter(),
        }));
    }
    out
}

/// What the endpoints reported about one source over the call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EndpointView {
    /// Reports received.
    pub reports: u32,
    /// Last cumulative loss reported.
    pub cumulative_lost: i32,
    /// Last fraction lost, in percent.
    pub fraction_lost_pct: f64,
    /// Highest fraction lost seen, in percent.
    pub max_fraction_lost_pct: f64,
    /// Last jitter reported, in milliseconds (8 kHz clock).
    pub jitter_ms: f64,
    /// Highest jitter reported, in milliseconds.
    pub max_jitter_ms: f64,
}

impl EndpointView {
    /// Folds in a report block (the clock rate of the source's payload in Hz).
    pub fn add(&mut self, b: &ReportBlock, clock: u32) {
        self.reports += 1;
        self.cumulative_lost = b.cumulative_lost;
        self.fraction_lost_pct = f64::from(b.fraction_lost) * 100.0 / 256.0;
        self.max_fraction_lost_pct = self.max_fraction_lost_pct.max(self.fraction_lost_pct);
        self.jitter_ms = f64::from(b.jitter) * 1000.0 / f64::from(clock.max(1));
        self.max_jitter_ms = self.max_jitter_ms.max(self.jitter_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compound packet: SR with one report block, then SDES (skipped).
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
        0x00, 0x00, 0x00, 0x00, // LSR
        0x00, 0x00, 0x00, 0x00, // DLSR
        0x81, 202, 0x00, 0x02, // SDES, 1 chunk, 2 words
        0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn sender_report_block_fields() {
        let b = report_blocks(&SR_SDES);
        assert_eq!(
            b,
            vec![ReportBlock {
                reporter: 0x1122_3344,
                source: 0xaabb_ccdd,
                fraction_lost: 64,
                cumulative_lost: -2,
                highest_seq: 0x0001_0203,
                jitter: 160
            }]
        );
        let mut v = EndpointView::default();
        v.add(&b[0], 8000);
        assert_eq!(v.fraction_lost_pct, 25.0);
        assert_eq!(v.jitter_ms, 20.0);
        assert_eq!(v.cumulative_lost, -2);
    }

    #[test]
    fn receiver_report_and_garbage() {
        let rr = [
            0x81, 201, 0x00, 0x07, 0, 0, 0, 9, 0, 0, 0, 7, 0x02, 0x00, 0x00, 0x05, 0, 0, 0, 100, 0, 0, 0, 8, 0, 0, 0,
            0, 0, 0, 0, 0,
        ];
        let b = report_blocks(&rr);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].reporter, b[0].source, b[0].cumulative_lost, b[0].jitter), (9, 7, 5, 8));
        // Truncated, wrong version, empty: nothing, no panic.
        assert!(report_blocks(&rr[..20]).is_empty());
        assert!(report_blocks(&[0x01, 201, 0, 0]).is_empty());
        assert!(report_blocks(&[]).is_empty());
    }
}
