//! A flood of 1,000,000 INVITEs that never complete keeps memory under the configured bound:
//! the call table stops at `Limits::max_calls`, every further INVITE is shed and counted, and
//! the heap's peak (measured with dhat) stays at the cap's worth of calls.

use callvault_capture::events::{CallEvent, EventSink, RtpMeta};
use callvault_capture::limits::Limits;
use callvault_capture::{Engine, EngineConfig, LinkType, Timestamp};
use etherparse::PacketBuilder;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Counts events without keeping them (a recorder would act on them, not store them).
#[derive(Default)]
struct Count {
    started: u64,
}

impl EventSink for Count {
    fn rtp(&mut self, _: &RtpMeta, _: &[u8]) {}
    fn call(&mut self, e: CallEvent) {
        if matches!(e, CallEvent::Started { .. }) {
            self.started += 1;
        }
    }
}

fn invite(i: u32, buf: &mut Vec<u8>, frame: &mut Vec<u8>) {
    buf.clear();
    use std::io::Write;
    write!(
        buf,
        "INVITE sip:{i}@10.9.9.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK{i}\r\nFrom: <sip:attacker@10.1.1.1>;tag={i}\r\nTo: <sip:{i}@10.9.9.9>\r\nCall-ID: flood-{i}@10.1.1.1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 67\r\n\r\nv=0\r\nc=IN IP4 10.1.1.1\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        10_000 + (i % 20_000) * 2
    )
    .unwrap();
    frame.clear();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([10, 1, 1, 1], [10, 9, 9, 9], 64)
        .udp(5060, 5060)
        .write(frame, buf)
        .unwrap();
}

#[test]
fn a_million_never_completing_invites_stay_bounded() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let limits = Limits { max_calls: 20_000, ..Limits::default() };
    let mut engine = Engine::new(EngineConfig { limits, ..EngineConfig::default() });
    let mut sink = Count::default();
    let (mut buf, mut frame) = (Vec::with_capacity(512), Vec::with_capacity(600));
    let t0 = 1_700_000_000 * 1_000_000_000i64;
    // One INVITE every 30 µs: 30 s of capture time, inside the 32 s an INVITE without any
    // response is waited for (timer B), so nothing expires and the cap is what holds.
    for i in 0..1_000_000u32 {
        invite(i, &mut buf, &mut frame);
        engine.handle_frame(LinkType::Ethernet, Timestamp(t0 + i64::from(i) * 30_000), &frame, &mut sink);
    }
    let stats = engine.stats().clone();
    let heap = dhat::HeapStats::get();
    println!(
        "1,000,000 INVITEs: {} calls tracked, {} shed; peak heap {:.1} MiB ({} bytes per tracked call)",
        engine.open_calls(),
        stats.calls_shed,
        heap.max_bytes as f64 / (1 << 20) as f64,
        heap.max_bytes / 20_000
    );
    assert_eq!(engine.open_calls(), 20_000);
    assert_eq!(stats.calls_started, 20_000);
    assert_eq!(stats.calls_shed, 980_000);
    assert_eq!(sink.started, 20_000);
    // 20,000 calls with their media registrations: a few KiB each at most.
    dhat::assert!(heap.max_bytes < 64 << 20, "peak heap {} bytes", heap.max_bytes);
}
