//! The SIP parser, the quick SIP test, the stream framing functions and the INFO DTMF body
//! parser on arbitrary bytes.
#![no_main]

use callvault_capture::wire::{dtmf_info, sip, sip_framing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = sip::parse(data, 32) {
        assert!(m.header_count <= 32);
        if let Some(f) = m.from {
            let _ = sip::parse_name_addr(f);
        }
        if let Some(ct) = m.content_type {
            let _ = dtmf_info::parse(ct, m.body);
        }
    }
    let _ = sip::looks_like_sip(data);
    if let sip_framing::Framing::Complete(n) = sip_framing::frame(data, 4096) {
        assert!(n <= data.len());
    }
    let _ = sip_framing::find_start_line(data);
    let _ = sip_framing::starts_like_sip(data);
});
