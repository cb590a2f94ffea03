//! Reading frames ahead: each frame is copied out of libpcap's buffer (which the next read
//! reuses) and held while the [`DEPTH`] before it are handled, so that its flow's slot in the
//! media table is asked for ([`Engine::prefetch_frame`]) that many packets before its lookup.
//! With thousands of calls the table has outgrown the caches: at 20,000 calls, 73 % of
//! `Ingress::udp` was the slot's first load. One frame ahead, replay of 20,000 calls × 10 s,
//! alternating runs: the capture thread's CPU 7.5-9.1 s without, 4.8-6.1 s with (4 pairs);
//! 5,000 × 60 s: 7.0-9.6 s, 6.3-8.5 s (4 pairs); 1,000 × 60 s (below the threshold)
//! unchanged. One frame ahead still left the slot's load 70 % of `Core::udp` at 5,000 calls
//! when the host was slow to serve memory; four ahead, 5,000 × 60 s, 6 alternating pairs
//! (`benches/compare.sh`): in an hour when the host was slow, the capture thread's CPU
//! 5.53-7.14 s against 7.82-8.88 s (3 pairs); in a calm hour 4.57-6.13 s against 5.17-6.20 s
//! (3 pairs, less in 2). In live capture at 2,000 calls with reading ahead forced on, no
//! change showed in the capture thread's CPU (2 pairs, one frame ahead), so live capture keeps
//! the same threshold.

use capture::events::EventSink;
use capture::{Engine, LinkType, Timestamp};

/// How many frames are held: each frame's slot is asked for this many frames before its
/// lookup, time enough for a load from memory when the host is slow to serve it.
const DEPTH: usize = 4;

/// The frames read ahead, if any are held. Frames are held only while the engine wants it
/// ([`Engine::wants_lookahead`]: thousands of calls), and handled in their order either way;
/// a caller flushes the ones held before it waits for more or stops.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// A ring of held frames (their buffers kept for their capacity): `held` of them, the
    /// oldest at `first`.
    frames: [Held; DEPTH],
    first: usize,
    held: usize,
}

#[derive(Debug, Default)]
struct Held {
    frame: Vec<u8>,
    time: Timestamp,
    link: Option<LinkType>,
}

impl ReadAhead {
    /// Hands `frame` on: after the frames held, the oldest of which it replaces once
    /// [`DEPTH`] are held, while the engine wants to read ahead; else at once.
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
        if self.held == DEPTH {
            self.hand_oldest(engine, sink);
        }
        let slot = &mut self.frames[(self.first + self.held) % DEPTH];
        slot.frame.clear();
        slot.frame.extend_from_slice(frame);
        slot.time = time;
        slot.link = Some(link);
        self.held += 1;
    }

    /// Hands the frames held on, oldest first.
    pub fn flush<S: EventSink>(&mut self, engine: &mut Engine, sink: &mut S) {
        while self.held > 0 {
            self.hand_oldest(engine, sink);
        }
    }

    fn hand_oldest<S: EventSink>(&mut self, engine: &mut Engine, sink: &mut S) {
        let oldest = &mut self.frames[self.first];
        self.first = (self.first + 1) % DEPTH;
        self.held -= 1;
        if let Some(link) = oldest.link.take() {
            engine.handle_frame(link, oldest.time, &oldest.frame, sink);
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
                held += usize::from(ahead.held > 0);
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
