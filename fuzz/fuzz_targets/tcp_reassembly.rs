//! The TCP reassembler on a sequence of segments, each
//! `[direction][flags][seq u32][ack u32][time step][length]` and then `length` payload bytes,
//! between three endpoints (one on the SIP port). Its caps must hold throughout.
#![no_main]

use callvault_capture::transport::reassembly::tcp::{Segment, TcpConfig, TcpReassembler};
use callvault_capture::time::Timestamp;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    let cfg = TcpConfig { max_connections: 3, max_buffer: 1024, max_total: 2048, max_message: 512, idle_timeout: 50 };
    let mut r = TcpReassembler::new(cfg);
    let hosts: [SocketAddr; 3] =
        ["10.0.0.1:5060".parse().unwrap(), "10.0.0.2:6060".parse().unwrap(), "[fd00::1]:40000".parse().unwrap()];
    let mut rest = data;
    let mut now = 0;
    while rest.len() >= 12 {
        let dir = usize::from(rest[0]);
        let (src, dst) = (hosts[dir % 3], hosts[(dir / 3) % 3]);
        let flags = rest[1];
        let seq = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let ack = u32::from_be_bytes([rest[6], rest[7], rest[8], rest[9]]);
        now += i64::from(rest[10]);
        let len = usize::from(rest[11]).min(rest.len() - 12);
        let payload = &rest[12..12 + len];
        rest = &rest[12 + len..];
        let seg = Segment { src, dst, vlan: None, seq, ack, flags, payload };
        r.segment(Timestamp(now), &seg, |_, _, _, m| assert!(m.len() <= 512));
        r.expire(Timestamp(now));
        assert!(r.bytes_buffered() <= 2048);
        assert!(r.connections() <= 3);
    }
});
