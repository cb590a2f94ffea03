//! No heap allocation per RTP packet: 10,000 RTP packets of calls in progress go through the
//! capture `Engine` and the `Mixer` (placement, settling, G.711 decode, WAV writes) and the
//! heap sees not one allocation (counted with dhat's allocator). Half the calls are SRTP keyed
//! by SDES (every suite), verified and decrypted on the way. Calls are set up, anchored and past
//! their first settled frames before counting starts; that part may allocate. The same again
//! with the batches between them as the pipeline has them (`BatchSink`, recycled batches, taken
//! by the mixer sixteen at a time, call by call, as a mixer that is behind takes them).

use callgen::{CallSpec, MediaSecurity, Scenario, Srtp, SrtpSuite};
use callvault::batch::{Backpressure, Batch, BatchSink, GROUP_BATCHES, GROUP_FROM_CALLS, Grouping, Lane};
use capture::source::FileSource;
use capture::{Engine, EngineConfig, LinkType, Timestamp};
use crossbeam_channel::{Receiver, Sender};
use mixer::{Mixer, MixerConfig, PendingRecording};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const T0: i64 = 1_700_000_000_000_000_000;
const COUNTED: u64 = 10_000;

type Recorder = Mixer<Vec<PendingRecording>>;

/// The capture side's batches and the way back for the empty ones, as the pipeline wires them
/// for one mixer thread (here the test's own thread).
struct Batches {
    sink: BatchSink,
    full: Receiver<Batch>,
    back: Sender<Batch>,
    grouping: Grouping,
}

impl Batches {
    fn new() -> Batches {
        let (tx, full) = crossbeam_channel::bounded(GROUP_BATCHES);
        let (back, recycle) = crossbeam_channel::bounded(GROUP_BATCHES + 2);
        let sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
        Batches { sink, full, back, grouping: Grouping::new() }
    }

    /// Hands the batches waiting to the mixer once as many are waiting as it takes at once (or
    /// at `all`, whatever is waiting), taken together as a mixer with thousands of calls takes
    /// them, and returns them empty.
    fn deliver(&mut self, mixer: &mut Recorder, all: bool) {
        if self.full.len() < GROUP_BATCHES && !all {
            return;
        }
        if let Ok(first) = self.full.try_recv() {
            self.grouping.take(first, &self.full, GROUP_FROM_CALLS, mixer, &self.back);
        }
    }
}

/// One frame through the engine, into the mixer directly or through batches.
fn feed(
    engine: &mut Engine,
    mixer: &mut Recorder,
    batches: Option<&mut Batches>,
    link: LinkType,
    frame: (Timestamp, &[u8]),
) {
    match batches {
        None => engine.handle_frame(link, frame.0, frame.1, mixer),
        Some(b) => {
            engine.handle_frame(link, frame.0, frame.1, &mut b.sink);
            b.deliver(mixer, false);
        }
    }
}

#[test]
fn rtp_packets_of_calls_in_progress_allocate_nothing() {
    count_allocations(false);
    count_allocations(true);
}

fn count_allocations(through_batches: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    // 20 calls, 30 s of talk each, starting 100 ms apart: 1,000 RTP packets per second.
    let calls = (0..20)
        .map(|i| {
            let mut c = CallSpec::answered(i, T0 + i64::from(i) * 100_000_000, 30_000);
            if i % 2 == 1 {
                c.media_security = Some(MediaSecurity::Sdes);
                let suite = SrtpSuite::ALL[(i as usize / 2) % SrtpSuite::ALL.len()];
                c.srtp = Some(Srtp { suite, offer_two: false, wrong_key: None });
            }
            c
        })
        .collect();
    callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let mut source = FileSource::open(&pcap).unwrap();
    let link = source.link();
    let mut frames: Vec<(Timestamp, Vec<u8>)> = Vec::new();
    while let Some(f) = source.next_frame().unwrap() {
        frames.push((f.time, f.data.to_vec()));
    }
    let work = dir.path().join("work");
    let bytes_in = |d: &std::path::Path| -> u64 {
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    std::fs::create_dir(&work).unwrap();

    let _profiler = dhat::Profiler::builder().testing().file_name(dir.path().join("dhat-heap.json")).build();
    let mut engine = Engine::new(EngineConfig::default());
    let mut mixer = Mixer::new(MixerConfig::new(work.clone(), "test".into()), Vec::<PendingRecording>::new()).unwrap();
    let mut batches = through_batches.then(Batches::new);
    let mut frames = frames.iter();
    // Warm-up: every call answered, its streams anchored, the clock floors' windows (8 s) full,
    // batches filled and returned, and the pool of ring pages at its high-water mark (sixteen
    // batches hold 4 s of every call here, placed call by call: the pages in flight peak later
    // than with the calls taken packet by packet).
    let warm_until = Timestamp(T0 + 20_000_000_000);
    for (time, data) in frames.by_ref() {
        feed(&mut engine, &mut mixer, batches.as_mut(), link, (*time, data));
        if *time >= warm_until {
            break;
        }
    }
    if let Some(b) = batches.as_mut() {
        b.sink.flush();
        b.deliver(&mut mixer, true);
    }
    assert_eq!(mixer.open_calls(), 20, "all calls in progress after the warm-up");
    // The writeback thread (started with the first recording) has set itself up and waits for
    // work: what it allocated starting is not counted as the packets'.
    wait_until_waiting("writeback");
    let written_before = bytes_in(&work);
    let (mixed_before, decrypted_before) = (mixer.stats().rtp_packets, mixer.stats().srtp_decrypted);
    let before = (engine.stats().rtp_packets, engine.stats().sip_messages, dhat::HeapStats::get());
    for (time, data) in frames.by_ref().take(COUNTED as usize) {
        feed(&mut engine, &mut mixer, batches.as_mut(), link, (*time, data));
    }
    if let Some(b) = batches.as_mut() {
        b.sink.flush();
        b.deliver(&mut mixer, true);
    }
    let after = (engine.stats().rtp_packets, engine.stats().sip_messages, dhat::HeapStats::get());
    assert_eq!(after.0 - before.0, COUNTED, "the counted frames are all RTP tied to calls");
    assert_eq!(after.1, before.1, "no SIP among the counted frames");
    assert_eq!(mixer.stats().rtp_packets - mixed_before, COUNTED, "the mixer placed every counted packet");
    assert!(bytes_in(&work) > written_before, "audio was written while counting");
    let decrypted = mixer.stats().srtp_decrypted - decrypted_before;
    assert!((4_000..6_000).contains(&decrypted), "half the packets were SRTP, decrypted: {decrypted}");
    assert_eq!(mixer.stats().srtp_auth_failures, 0);
    dhat::assert_eq!(
        after.2.total_blocks - before.2.total_blocks,
        0,
        "heap allocations during {} RTP packets ({} bytes; through batches: {through_batches})",
        COUNTED,
        after.2.total_bytes - before.2.total_bytes
    );
}

/// Waits until this process's thread named `name` is asleep (blocked waiting for work).
fn wait_until_waiting(name: &str) {
    // Up to 30 s, in steps of 10 ms.
    for _ in 0..3000 {
        let asleep = std::fs::read_dir("/proc/self/task").unwrap().flatten().any(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            comm.trim() == name && stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('S'))
        });
        if asleep {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no {name} thread waiting for work");
}
