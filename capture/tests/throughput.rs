//! Capture-stage throughput on a large capture file (not run by default).
//!
//! `CALLVAULT_THROUGHPUT_PCAP=/tmp/x.pcap cargo test --release -p callvault-capture --test throughput -- --ignored --nocapture`

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

use std::time::Instant;

use callvault_capture::events::{CallEvent, EndReason, EventSink, RtpMeta};
use callvault_capture::source::FileSource;
use callvault_capture::{Engine, EngineConfig};

#[derive(Default)]
struct CountSink {
    rtp: u64,
    bytes: u64,
    calls: u64,
}

impl EventSink for CountSink {
    fn rtp(&mut self, meta: &RtpMeta, packet: &[u8]) {
        let payload = meta.payload(packet);
        self.rtp += 1;
        self.bytes += payload.len() as u64;
    }
    fn call(&mut self, _event: CallEvent) {
        self.calls += 1;
    }
}

#[test]
#[ignore = "needs CALLVAULT_THROUGHPUT_PCAP; run in release"]
fn engine_throughput() {
    let Some(path) = std::env::var_os("CALLVAULT_THROUGHPUT_PCAP") else {
        eprintln!("set CALLVAULT_THROUGHPUT_PCAP");
        return;
    };
    // Load every frame first so the timing measures the engine, not libpcap or the disk.
    let mut src = FileSource::open(std::path::Path::new(&path)).unwrap();
    let link = src.link();
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        frames.push((f.time, f.data.to_vec()));
    }
    for round in 0..3 {
        let mut engine = Engine::new(EngineConfig::default());
        let mut sink = CountSink::default();
        let t = Instant::now();
        for (time, data) in &frames {
            engine.handle_frame(link, *time, data, &mut sink);
        }
        engine.finish(EndReason::EndOfInput, &mut sink);
        let el = t.elapsed();
        eprintln!(
            "round {round}: {} frames in {:.3} s = {:.0} ns/frame, {:.2} Mpps; rtp {} calls events {}",
            frames.len(),
            el.as_secs_f64(),
            el.as_nanos() as f64 / frames.len() as f64,
            frames.len() as f64 / el.as_secs_f64() / 1e6,
            sink.rtp,
            sink.calls
        );
    }
}
