//! The media views on arbitrary bytes: RTP, compound RTCP with its report blocks, RFC 4733
//! events and the ZRTP check, as the engine and the mixer call them.
#![no_main]

use callvault_capture::wire::{rtcp, rtp, telephone_event, zrtp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zrtp::is_zrtp(data);
    let _ = (rtcp::is_muxed(data), rtcp::is_rtcp(data));
    if let Ok(p) = rtp::RtpPacket::new_checked(data) {
        let _ = (p.sequence(), p.timestamp(), p.ssrc(), p.payload_type(), p.marker(), p.padding());
        let _ = (p.csrcs().count(), p.extension());
        assert_eq!(&data[p.payload_range()], p.payload());
        let _ = telephone_event::EventRepr::parse(p.payload());
    }
    for pkt in rtcp::compound(data) {
        let _ = (pkt.packet_type(), pkt.count(), pkt.sender_ssrc());
        for b in pkt.report_blocks() {
            let _ = (b.source(), b.fraction_lost(), b.cumulative_lost(), b.highest_seq(), b.jitter());
            let _ = (b.last_sr(), b.delay_since_last_sr());
        }
    }
});
