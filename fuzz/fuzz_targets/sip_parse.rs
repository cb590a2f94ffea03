//! The SIP parser, the quick SIP test and the stream framing functions on arbitrary bytes.
#![no_main]

use callvault_capture::wire::{sip, sip_framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = sip::parse(data, 32) {
        assert!(m.header_count <= 32);
        if let Some(f) = m.from {
            let _ = sip::parse_name_addr(f);
        }
    }
    let _ = sip::looks_like_sip(data);
    if let sip_framing::Framing::Complete(n) = sip_framing::frame(data, 4096) {
        assert!(n <= data.len());
    }
    let _ = sip_framing::find_start_line(data);
    let _ = sip_framing::starts_like_sip(data);
});
