//! No heap allocation per RTP packet: 10,000 RTP packets of calls in progress go through the
//! capture `Engine` and the `Mixer` (placement, settling, G.711 decode, WAV writes) and the
//! heap sees not one allocation (counted with dhat's allocator). Half the calls are SRTP keyed
//! by SDES (every suite), verified and decrypted on the way. Calls are set up, anchored and past
//! their first settled frames before counting starts; that part may allocate.

use callgen::{CallSpec, MediaSecurity, Scenario, Srtp, SrtpSuite};
use capture::source::FileSource;
use capture::{Engine, EngineConfig, Timestamp};
use mixer::{Mixer, MixerConfig, PendingRecording};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const T0: i64 = 1_700_000_000_000_000_000;
const COUNTED: u64 = 10_000;

#[test]
fn rtp_packets_of_calls_in_progress_allocate_nothing() {
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
    let mut frames = frames.iter();
    // Warm-up: every call answered, its streams anchored, the clock floors' windows (8 s) full.
    let warm_until = Timestamp(T0 + 10_000_000_000);
    for (time, data) in frames.by_ref() {
        engine.handle_frame(link, *time, data, &mut mixer);
        if *time >= warm_until {
            break;
        }
    }
    assert_eq!(mixer.open_calls(), 20, "all calls in progress after the warm-up");
    let written_before = bytes_in(&work);
    let (mixed_before, decrypted_before) = (mixer.stats().rtp_packets, mixer.stats().srtp_decrypted);
    let before = (engine.stats().rtp_packets, engine.stats().sip_messages, dhat::HeapStats::get());
    for (time, data) in frames.by_ref().take(COUNTED as usize) {
        engine.handle_frame(link, *time, data, &mut mixer);
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
        "heap allocations during {} RTP packets ({} bytes)",
        COUNTED,
        after.2.total_bytes - before.2.total_bytes
    );
}
