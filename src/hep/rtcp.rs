//! An RTCP compound packet as HOMER stores and charts it: HEP protocol type 5 with a JSON
//! payload in the field names of HOMER's capture agents (the QoS tab reads
//! `sender_information` and `report_blocks`), the Call-ID as correlation id.
//!
//! Fields: `type` (the first sender or receiver report's packet type, 200 or 201), `ssrc` (its
//! sender), `report_count` and `report_blocks` (every report block of the compound's sender
//! and receiver reports, in order: `source_ssrc`, `fraction_lost` (out of 256),
//! `packets_lost` (cumulative), `highest_seq_no` (extended), `ia_jitter` (timestamp units),
//! `lsr`, `dlsr`), and for a sender report `sender_information` (`ntp_timestamp_sec`,
//! `ntp_timestamp_usec` (the NTP fraction in microseconds), `rtp_timestamp`, `packets`,
//! `octets`). A compound without a sender or receiver report is not exported.

use capture::wire::rtcp::{self, PT_RR, PT_SR};
use serde_json::{Value, json};

/// The JSON of a compound RTCP packet, if it holds a sender or receiver report.
pub fn json(compound: &[u8]) -> Option<String> {
    let reports: Vec<rtcp::RtcpPacket<'_>> =
        rtcp::compound(compound).filter(|p| matches!(p.packet_type(), PT_SR | PT_RR)).collect();
    let first = reports.first()?;
    let blocks: Vec<Value> = reports
        .iter()
        .flat_map(|p| p.report_blocks())
        .map(|b| {
            json!({
                "source_ssrc": b.source(),
                "fraction_lost": b.fraction_lost(),
                "packets_lost": b.cumulative_lost(),
                "highest_seq_no": b.highest_seq(),
                "ia_jitter": b.jitter(),
                "lsr": b.last_sr(),
                "dlsr": b.delay_since_last_sr(),
            })
        })
        .collect();
    let mut v = json!({
        "type": first.packet_type(),
        "ssrc": first.sender_ssrc().unwrap_or(0),
        "report_count": blocks.len(),
        "report_blocks": blocks,
    });
    if let Some(info) = reports.iter().find_map(rtcp::RtcpPacket::sender_info) {
        v["sender_information"] = json!({
            "ntp_timestamp_sec": info.ntp_seconds,
            "ntp_timestamp_usec": (u64::from(info.ntp_fraction) * 1_000_000) >> 32,
            "rtp_timestamp": info.rtp_timestamp,
            "packets": info.packets,
            "octets": info.octets,
        });
    }
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_report_with_a_receiver_report_and_sdes() {
        #[rustfmt::skip]
        let compound: Vec<u8> = [
            &[0x81u8, 200, 0x00, 0x0c][..], &[0x11, 0x22, 0x33, 0x44],   // SR, 1 block
            &[0xe5, 0x8b, 0x4a, 0x35, 0x80, 0x00, 0x00, 0x00],            // NTP: .5 s
            &[0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x01, 0x38, 0x80],
            &[0xaa, 0xbb, 0xcc, 0xdd, 0x40, 0xff, 0xff, 0xfe, 0x00, 0x01, 0x02, 0x03],
            &[0x00, 0x00, 0x00, 0xa0, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x80, 0x00],
            &[0x81, 201, 0x00, 0x07, 0, 0, 0, 9],                         // RR, 1 block
            &[0, 0, 0, 7, 0x02, 0x00, 0x00, 0x05, 0, 0, 0, 100, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x81, 202, 0x00, 0x02, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0], // SDES
        ]
        .concat();
        let v: Value = serde_json::from_str(&json(&compound).unwrap()).unwrap();
        let want = json!({
            "type": 200, "ssrc": 0x1122_3344u32, "report_count": 2,
            "sender_information": {"ntp_timestamp_sec": 0xe58b_4a35u32, "ntp_timestamp_usec": 500_000,
                                   "rtp_timestamp": 100_000, "packets": 500, "octets": 80_000},
            "report_blocks": [
                {"source_ssrc": 0xaabb_ccddu32, "fraction_lost": 64, "packets_lost": -2, "highest_seq_no": 0x0001_0203,
                 "ia_jitter": 160, "lsr": 0x1234_5678, "dlsr": 0x8000},
                {"source_ssrc": 7, "fraction_lost": 2, "packets_lost": 5, "highest_seq_no": 100, "ia_jitter": 8,
                 "lsr": 0, "dlsr": 0}
            ]
        });
        assert_eq!(v, want);
        // SDES alone is no report.
        assert_eq!(json(&compound[84..]), None);
        let rr: Value = serde_json::from_str(&json(&compound[52..84]).unwrap()).unwrap();
        assert_eq!((rr["type"].as_u64(), rr.get("sender_information")), (Some(201), None));
    }
}
