//! The IP defragmenter on a sequence of fragments, each
//! `[id][offset u16 (x2)][more][time step][length u16]` and then `length` payload bytes.
//! Its caps must hold throughout, and what it reassembles must fit a datagram.
#![no_main]

use callvault_capture::transport::reassembly::ip::{DefragConfig, Defragmenter, FragKey};
use callvault_capture::time::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = DefragConfig { max_reassemblies: 3, max_bytes: 16_384, timeout: 100 };
    let mut f = Defragmenter::new(cfg);
    let mut rest = data;
    let mut now = 0;
    while rest.len() >= 7 {
        let key = FragKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id: u32::from(rest[0] % 4),
            protocol: 17,
            vlan: None,
        };
        let offset = u32::from(u16::from_be_bytes([rest[1], rest[2]])) * 2;
        let more = rest[3] & 1 == 1;
        now += i64::from(rest[4]);
        let len = usize::from(u16::from_be_bytes([rest[5], rest[6]])).min(rest.len() - 7);
        let payload = &rest[7..7 + len];
        rest = &rest[7 + len..];
        if let Some(d) = f.push(Timestamp(now), key, offset, more, payload) {
            assert!(d.len() <= 65_535);
        }
        f.expire(Timestamp(now));
        assert!(f.bytes_held() <= 16_384);
        assert!(f.in_progress() <= 3);
    }
});
