//! The SDP parser on arbitrary bytes.
#![no_main]

use callvault_capture::wire::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = sdp::parse(data) {
        if let Some(a) = s.audio() {
            let _ = s.connection_for(a);
            let _ = s.direction_for(a);
        }
    }
});
