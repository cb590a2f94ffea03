//! Reading a frame ahead: each frame is copied out of libpcap's buffer (which the next read
//! reuses) and held while the one before it is handled, so that its flow's slot in the media
//! table is asked for ([`Engine::prefetch_frame`]) a packet before its lookup. With thousands
//! of calls the table has outgrown the caches: at 20,000 calls, 73 % of `Ingress::udp` was the
//! slot's first load. Replay of 20,000 calls × 10 s, alternating runs: the capture thread's
//! CPU 7.5-9.1 s without, 4.8-6.1 s with (4 pairs); 5,000 × 60 s: 7.0-9.6 s, 6.3-8.5 s (4
//! pairs); 1,000 × 60 s (below the threshold) unchanged. In live capture at 2,000 calls with
//! reading ahead forced on, no change showed in the capture thread's CPU (2 pairs), so live
//! capture keeps the same threshold.

use capture::events::EventSink;
use capture::{Engine, LinkType, Timestamp};

/// The frame read ahead, if one is held. Frames are held only while the engine wants it
/// ([`Engine::wants_lookahead`]: thousands of calls), and handled in their order either way;
/// a caller flushes the one held before it waits for more or stops.
#[derive(Debug, Default)]
pub struct ReadAhead {
    frame: Vec<u8>,
    time: Timestamp,
    link: Option<LinkType>,
}

impl ReadAhead {
    /// Hands `frame` on: after the frame held, which it replaces while the engine wants to
    /// read ahead, else at once.
    #[inline]
    pub fn handle<S: EventSink>(
        &mut self,
        engine: &mut Engine,
        link: LinkType,
        time: Timestamp,
        frame: &[u8],
        sink: &mut S,
    ) {
        if !engine.wants_lookahead() {
            self.flush(engine, sink);
            return engine.handle_frame(link, time, frame, sink);
        }
        engine.prefetch_frame(link, frame);
        self.flush(engine, sink);
        self.frame.clear();
        self.frame.extend_from_slice(frame);
        self.time = time;
        self.link = Some(link);
    }

    /// Hands the frame held on, if there is one.
    pub fn flush<S: EventSink>(&mut self, engine: &mut Engine, sink: &mut S) {
        if let Some(link) = self.link.take() {
            engine.handle_frame(link, self.time, &self.frame, sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use callgen::{CallSpec, Scenario};
    use capture::EngineConfig;
    use capture::events::{EndReason, VecSink};
    use capture::source::FileSource;

    use super::*;

    /// Reading ahead changes when a frame's flow is loaded, never what becomes of the frames:
    /// one capture gives the same events in the same order, read ahead or not.
    #[test]
    fn reading_ahead_hands_on_the_same_events_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("calls.pcap");
        let t0 = 1_700_000_000_000_000_000i64;
        let calls = (0..30).map(|i| CallSpec::answered(i, t0 + i64::from(i) * 50_000_000, 3_000)).collect();
        callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
        let run = |from_flows: usize| {
            let mut engine =
                Engine::new(EngineConfig { lookahead_from_flows: Some(from_flows), ..EngineConfig::default() });
            let (mut sink, mut ahead, mut held) = (VecSink::default(), ReadAhead::default(), 0);
            let mut src = FileSource::open(&pcap).unwrap();
            let link = src.link();
            while let Some(f) = src.next_frame().unwrap() {
                ahead.handle(&mut engine, link, f.time, f.data, &mut sink);
                held += usize::from(ahead.link.is_some());
            }
            ahead.flush(&mut engine, &mut sink);
            engine.finish(EndReason::EndOfInput, &mut sink);
            (sink, held, engine.stats().frames)
        };
        let (direct, held_direct, frames) = run(usize::MAX);
        let (read_ahead, held_ahead, frames_ahead) = run(0);
        assert_eq!(held_direct, 0, "below the threshold nothing is read ahead");
        assert_eq!((held_ahead, frames_ahead), (frames as usize, frames), "every frame read ahead, none lost");
        assert!(direct.rtp.len() >= 30 * 2 * 140, "the calls' packets: {}", direct.rtp.len());
        assert_eq!(direct.calls, read_ahead.calls);
        assert!(direct.rtp == read_ahead.rtp, "the same RTP packets in the same order");
    }
}
