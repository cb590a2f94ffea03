//! Cost of each stage a recorded packet goes through, one benchmark per stage, so that a change
//! to one stage is measured on its own (the end-to-end numbers are `benches/end_to_end.sh` and
//! `benches/replay.rs`). Every benchmark sets its throughput: criterion prints packets (or
//! messages) per second, or bytes per second, beside the time.
//!
//! `cargo bench --bench stages` (add `-- decode` to run the stages whose name contains
//! `decode`). The stages, in the order a packet meets them:
//!
//! * `decode/eth_ipv4_udp`: capture's transport layer (`Ingress::handle`) walks an RTP frame of
//!   a generated capture down to its UDP datagram, and the RTP header view checks it.
//! * `sip_parse/invite_sdp`, `sip_parse/ok_200_sdp`: the SIP parser and the SDP parser on the
//!   generator's INVITE and 200 OK.
//! * `engine/sip_only`, `engine/all_frames`: the capture engine (`Engine::handle_frame`) fed
//!   the frames of 100 generated calls (5 s of talk each) from a fresh engine: only their SIP
//!   messages (dialog tracking per message), then every frame (SIP and RTP).
//! * `engine/all_frames_mixed`: every frame of those calls through the engine into a `Mixer`
//!   (routing, each party's clock, stream statistics, the timeline, G.711 decode, WAV writes
//!   on `/dev/shm`, each call's record at its end): less `engine/all_frames`, the mixer's cost.
//! * `mixer/place`: `Timeline::place` of 20 ms G.711 packets, both parties, into a fresh
//!   timeline (one second: nothing is written).
//! * `mixer/g711_decode_wav_write`: one second of both parties settled at once: µ-law decoded
//!   and written into a stereo WAV file (on `/dev/shm` when there is one);
//!   `mixer/g711_codes_wav_write` the same into a G.711 WAV (`wav-g711`: the codes as they are).
//! * `mixer/call_place_settle_write`: a whole 10 s call as the mixer drives its timeline:
//!   every packet placed, the timeline settled behind it, the WAV finished.
//! * `mixer_calls/500_alone`, `mixer_calls/2500_grouped`: a mixer thread's work at 1,000 and
//!   5,000 concurrent calls (half of them in each of two mixers): the capture's batches of
//!   500 or 2,500 calls talking at once (2 s each, all started within 0.5 s) handed to a
//!   `Mixer` as the pipeline's mixer thread takes them (`Grouping::take`: one batch at a time
//!   front to back, or from 1,024 calls groups of batches call by call); WAVs on `/dev/shm`. One thread alone: in a replay the capture thread
//!   and the other mixer share the caches, and a call's state has left them more often.
//! * `sha256/buffer`, `sha256/file`: the recordings' hash (the `filehash` crate) over a 60 s
//!   stereo recording, from memory and from a file in the page cache.
//! * `archive/publish_copy`, `archive/publish_link`: one recording (a 60 s WAV and its JSON
//!   record) entered into a spool and shipped to a directory archive with `Target::ship`,
//!   copied and verified or published by hard link; the spool and the archive are in the
//!   temporary directory (`TMPDIR`), so the fsyncs are that filesystem's.

#![allow(clippy::disallowed_methods)] // tests and benchmarks time themselves (clippy.toml)

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callvault::batch::{Backpressure, Batch, BatchSink, Grouping, Item, Lane};
use capture::decode::{Datagram, LinkType, Transport};
use capture::events::{CallEvent, EndReason, EventSink, RtpMeta};
use capture::ingress::{Ingress, IngressSink};
use capture::limits::{Limits, Timeouts};
use capture::source::FileSource;
use capture::wire::rtp::RtpPacket;
use capture::wire::{sdp, sip};
use capture::{Engine, EngineConfig, Timestamp};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mixer::mix::audio::{AudioConfig, AudioFormat};
use mixer::mix::timeline::{Law, Timeline, TimelineConfig, WriteSize};
use mixer::{Mixer, MixerConfig, PendingRecording};
use shipper::{LocalDir, NewFile, NewRecording, Retention, Spool, SpoolOptions, Target};

const T0: i64 = 1_735_689_600 * 1_000_000_000;
/// Samples (8 kHz positions) in a 20 ms packet.
const PACKET: usize = 160;
/// Bytes of a 60 s stereo 16-bit WAV at 8 kHz: what the hash and the archive handle per call.
const RECORDING: usize = 60 * 8000 * 4;

/// The frames of a generated capture: `calls` answered calls of `talk_ms`, 100 ms apart.
fn generated_frames(dir: &Path, calls: u32, talk_ms: u32) -> (LinkType, Vec<(Timestamp, Vec<u8>)>) {
    generated_frames_apart(dir, calls, talk_ms, 100_000_000)
}

/// The frames of a generated capture: `calls` answered calls of `talk_ms`, starting `apart_ns`
/// after one another.
fn generated_frames_apart(
    dir: &Path,
    calls: u32,
    talk_ms: u32,
    apart_ns: i64,
) -> (LinkType, Vec<(Timestamp, Vec<u8>)>) {
    let pcap = dir.join(format!("calls-{calls}-{talk_ms}-{apart_ns}.pcap"));
    let specs = (0..calls).map(|i| callgen::CallSpec::answered(i, T0 + i64::from(i) * apart_ns, talk_ms)).collect();
    callgen::write_pcap(&callgen::Scenario::new(specs), &pcap).expect("generate capture");
    let mut source = FileSource::open(&pcap).expect("open capture");
    let link = source.link();
    let mut frames = Vec::new();
    while let Some(f) = source.next_frame().expect("read capture") {
        frames.push((f.time, f.data.to_vec()));
    }
    (link, frames)
}

/// Takes UDP payloads out of the transport layer.
#[derive(Default)]
struct Datagrams {
    payloads: Vec<Vec<u8>>,
}

impl IngressSink for Datagrams {
    fn udp(&mut self, d: &Datagram<'_>) {
        self.payloads.push(d.payload.to_vec());
    }
    fn sip_stream(&mut self, _: Timestamp, _: std::net::SocketAddr, _: std::net::SocketAddr, _: Transport, _: &[u8]) {}
}

/// Checks each datagram as RTP and keeps what a consumer would read, so nothing is optimised away.
#[derive(Default)]
struct RtpCheck {
    packets: u64,
    payload_bytes: u64,
}

impl IngressSink for RtpCheck {
    #[inline]
    fn udp(&mut self, d: &Datagram<'_>) {
        if let Ok(rtp) = RtpPacket::new_checked(d.payload) {
            self.packets += 1;
            self.payload_bytes += rtp.payload().len() as u64;
        }
    }
    fn sip_stream(&mut self, _: Timestamp, _: std::net::SocketAddr, _: std::net::SocketAddr, _: Transport, _: &[u8]) {}
}

/// Counts what the engine hands on.
#[derive(Default)]
struct Count {
    rtp: u64,
    events: u64,
}

impl EventSink for Count {
    fn rtp(&mut self, meta: &RtpMeta, packet: &[u8]) {
        self.rtp += meta.payload(packet).len() as u64;
    }
    fn call(&mut self, _: CallEvent) {
        self.events += 1;
    }
}

fn decode_and_parse(c: &mut Criterion, scratch: &Path) {
    let (link, frames) = generated_frames(scratch, 10, 2_000);
    let mut ingress = Ingress::new(&Limits::default(), &Timeouts::default());
    let mut datagrams = Datagrams::default();
    let mut rtp_frames = Vec::new();
    for (time, frame) in &frames {
        let before = datagrams.payloads.len();
        ingress.handle(link, *time, frame, &mut datagrams);
        if datagrams.payloads.len() == before + 1 && !sip::looks_like_sip(&datagrams.payloads[before]) {
            rtp_frames.push(frame.clone());
        }
    }
    rtp_frames.truncate(1000);
    assert_eq!(rtp_frames.len(), 1000, "the capture has RTP frames");

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(rtp_frames.len() as u64));
    g.bench_function("eth_ipv4_udp", |b| {
        let mut ingress = Ingress::new(&Limits::default(), &Timeouts::default());
        let mut sink = RtpCheck::default();
        b.iter(|| {
            for frame in &rtp_frames {
                ingress.handle(link, Timestamp(T0), black_box(frame), &mut sink);
            }
        });
        assert!(sink.packets > 0 && sink.payload_bytes == sink.packets * PACKET as u64);
    });
    g.finish();

    let first = |prefix: &[u8]| {
        datagrams
            .payloads
            .iter()
            .find(|p| {
                p.starts_with(prefix) && sip::parse(p, Limits::default().max_sip_headers).is_ok_and(|m| m.has_sdp())
            })
            .expect("the capture has the message")
            .clone()
    };
    let invite = first(b"INVITE ");
    let ok = first(b"SIP/2.0 200");
    let mut g = c.benchmark_group("sip_parse");
    g.throughput(Throughput::Elements(1));
    for (name, message) in [("invite_sdp", &invite), ("ok_200_sdp", &ok)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let m = sip::parse(black_box(message), Limits::default().max_sip_headers).unwrap();
                let sdp = sdp::parse(m.body).unwrap();
                black_box((m.call_id, sdp.audio().map(|a| a.port)))
            });
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion, scratch: &Path) {
    let (link, frames) = generated_frames(scratch, 100, 5_000);
    // Which frames are SIP: what the engine counted as a SIP message.
    let mut probe = Engine::new(EngineConfig::default());
    let mut sink = Count::default();
    let mut sip_frames = Vec::new();
    for (time, frame) in &frames {
        let before = probe.stats().sip_messages;
        probe.handle_frame(link, *time, frame, &mut sink);
        if probe.stats().sip_messages > before {
            sip_frames.push((*time, frame.clone()));
        }
    }
    let feed = |frames: &[(Timestamp, Vec<u8>)]| {
        let mut engine = Engine::new(EngineConfig::default());
        let mut sink = Count::default();
        for (time, frame) in frames {
            engine.handle_frame(link, *time, black_box(frame), &mut sink);
        }
        engine.finish(EndReason::EndOfInput, &mut sink);
        assert!(sink.events >= 200, "every call started and ended: {} events", sink.events);
        sink
    };
    let mut g = c.benchmark_group("engine");
    g.sample_size(20);
    g.throughput(Throughput::Elements(sip_frames.len() as u64));
    g.bench_function("sip_only", |b| b.iter(|| feed(&sip_frames)));
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("all_frames", |b| b.iter(|| feed(&frames)));
    // The same frames through the engine into the mixer, which writes the WAVs and hands each
    // ended call's recording on (kept here, then removed with the work directory's files).
    let work = memory_dir(scratch);
    g.bench_function("all_frames_mixed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut engine = Engine::new(EngineConfig::default());
                let cfg = MixerConfig::new(work.path().to_owned(), "bench".into());
                let mut mixer = Mixer::new(cfg, Vec::<PendingRecording>::new()).unwrap();
                let t = Instant::now();
                for (time, frame) in &frames {
                    engine.handle_frame(link, *time, black_box(frame), &mut mixer);
                }
                engine.finish(EndReason::EndOfInput, &mut mixer);
                total += t.elapsed();
                assert_eq!(mixer.drain_mut().len(), 100, "every call recorded");
                assert_eq!(mixer.stats().rtp_packets, 50_000, "every RTP packet mixed");
                drop(mixer);
                empty_dir(work.path());
            }
            total
        });
    });
    g.finish();
}

/// A temporary directory on `/dev/shm` when there is one (else under `scratch`): what is
/// written there costs the page cache, never the disk.
fn memory_dir(scratch: &Path) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() { shm } else { scratch };
    tempfile::Builder::new().prefix("callvault-stages").tempdir_in(parent).expect("temp dir")
}

/// Removes every file in `dir` (what a benchmark's mixer wrote there).
fn empty_dir(dir: &Path) {
    for item in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(item.unwrap().path()).unwrap();
    }
}

/// One party's µ-law codes for `seconds` of a tone of `freq_hz`.
fn ulaw(seconds: usize, freq_hz: f64) -> Vec<u8> {
    (0..seconds * 8000).map(|n| callgen::linear_to_ulaw(callgen::tone_sample(freq_hz, n as u64))).collect()
}

/// A fresh timeline writing into an unlinked file under `dir` (its pages are freed with it).
fn timeline(dir: &Path, n: &mut u64, audio: AudioConfig) -> Timeline {
    let path = dir.join(format!("t{n}.wav"));
    *n += 1;
    let t = Timeline::create(&path, TimelineConfig::default(), audio, 8000).unwrap();
    std::fs::remove_file(&path).unwrap();
    t
}

fn mixer(c: &mut Criterion, scratch: &Path) {
    let dir = memory_dir(scratch);
    let dir = dir.path();
    let codes = [ulaw(10, 440.0), ulaw(10, 660.0)];
    let mut n = 0;
    let mut g = c.benchmark_group("mixer");

    // One second of both parties (50 packets each) fits the default ring: placing only.
    g.throughput(Throughput::Elements(100));
    g.bench_function("place", |b| {
        let mut scratch = Vec::new();
        b.iter_batched(
            || timeline(dir, &mut n, AudioConfig::default()),
            |mut t| {
                for pos in (0..8000).step_by(PACKET) {
                    for (ch, codes) in codes.iter().enumerate() {
                        t.place(ch, pos as u64, &codes[pos..pos + PACKET], Law::Ulaw, &mut scratch).unwrap();
                    }
                }
                assert_eq!(t.written(), 0, "placing alone writes nothing");
                t
            },
            BatchSize::NumIterations(32),
        );
    });

    // The same second, then settled at once: decoded and written as 16-bit PCM, or (wav-g711)
    // the codes interleaved as they are.
    let g711 = AudioConfig { format: AudioFormat::WavG711, ..AudioConfig::default() };
    for (name, audio, frame) in
        [("g711_decode_wav_write", AudioConfig::default(), 4), ("g711_codes_wav_write", g711, 2)]
    {
        let mut placed = || {
            let mut t = timeline(dir, &mut n, audio);
            for pos in (0..8000).step_by(PACKET) {
                for (ch, codes) in codes.iter().enumerate() {
                    t.place(ch, pos as u64, &codes[pos..pos + PACKET], Law::Ulaw, &mut Vec::new()).unwrap();
                }
            }
            t
        };
        // A write (of the smallest size a mixer asks for) ends the file on a whole block of 8
        // KiB, the rest waiting in the ring: what one settle writes is measured first.
        let whole = {
            let mut t = placed();
            t.settle(8000, WriteSize::MIN, &mut Vec::new()).unwrap();
            t.written()
        };
        assert!(whole + 8192 / frame > 8000, "a settle leaves less than a block behind");
        g.throughput(Throughput::Bytes(whole * frame));
        g.bench_function(name, |b| {
            let mut scratch = Vec::new();
            b.iter_batched(
                &mut placed,
                |mut t| {
                    t.settle(8000, WriteSize::MIN, &mut scratch).unwrap();
                    assert_eq!(t.written(), whole);
                    t
                },
                BatchSize::NumIterations(32),
            );
        });
    }

    // A whole call as the mixer drives it: place each packet, settle a reorder window behind;
    // written in 8 KiB writes (a mixer with 8,192 calls or more) and in 64 KiB ones (1,024
    // calls or fewer).
    let reorder = u64::from(TimelineConfig::default().reorder_frames);
    g.throughput(Throughput::Elements(1000));
    for (name, write) in
        [("call_place_settle_write_8k", WriteSize::MIN), ("call_place_settle_write_64k", WriteSize::MAX)]
    {
        g.bench_function(name, |b| {
            let mut scratch = Vec::new();
            b.iter(|| {
                let mut t = timeline(dir, &mut n, AudioConfig::default());
                for pos in (0..80_000).step_by(PACKET) {
                    for (ch, codes) in codes.iter().enumerate() {
                        t.place(ch, pos as u64, &codes[pos..pos + PACKET], Law::Ulaw, &mut scratch).unwrap();
                    }
                    t.settle(((pos + PACKET) as u64).saturating_sub(reorder), write, &mut scratch).unwrap();
                }
                let done = t.finish(&mut scratch).unwrap();
                assert_eq!(done.frames, 80_000);
                done
            });
        });
    }
    g.finish();
}

/// A recording's bytes: a 60 s stereo WAV's worth of the two parties' µ-law tones, decoded.
fn recording_bytes() -> Vec<u8> {
    let (a, b) = (ulaw(60, 440.0), ulaw(60, 660.0));
    a.iter()
        .zip(&b)
        .flat_map(|(&x, &y)| {
            let [x0, x1] = mixer::mix::g711::ULAW_TO_LINEAR[x as usize].to_le_bytes();
            let [y0, y1] = mixer::mix::g711::ULAW_TO_LINEAR[y as usize].to_le_bytes();
            [x0, x1, y0, y1]
        })
        .collect()
}

fn hash(c: &mut Criterion, scratch: &Path, audio: &[u8]) {
    assert_eq!(audio.len(), RECORDING);
    let file = scratch.join("recording.wav");
    std::fs::write(&file, audio).unwrap();
    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Bytes(RECORDING as u64));
    g.bench_function("buffer", |b| b.iter(|| filehash::hash_reader(black_box(audio)).unwrap()));
    g.bench_function("file", |b| b.iter(|| filehash::hash_file(black_box(&file)).unwrap()));
    // Two and four recordings as a finisher hashes a batch: together, where the CPU has the
    // SHA extensions (throughput per recording, as above).
    let mut many: Vec<std::fs::File> = (0..filehash::LANES)
        .map(|i| {
            let path = scratch.join(format!("recording-{i}.wav"));
            std::fs::write(&path, audio).unwrap();
            std::fs::File::open(path).unwrap()
        })
        .collect();
    for (name, n) in [("two_files", 2), ("four_files", 4)] {
        g.throughput(Throughput::Bytes(n as u64 * RECORDING as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut files: Vec<&mut std::fs::File> = many.iter_mut().take(n).collect();
                filehash::hash_files(&mut files).into_iter().map(Result::unwrap).collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

/// A spool and a directory archive beside it, with the recording to enter.
struct Archive {
    work: PathBuf,
    spool: Spool,
    target: Target,
    archive: PathBuf,
    audio: Vec<u8>,
    sha: String,
    record: Vec<u8>,
    n: u64,
}

impl Archive {
    fn new(root: &Path, audio: Vec<u8>, link: bool) -> Archive {
        let work = root.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let mut options = SpoolOptions::default();
        options.retention = Retention::DeleteWhenShipped;
        let spool = Spool::open_with(&root.join("spool"), options).unwrap();
        let archive = root.join("archive");
        let dir = LocalDir::new("archive", &archive).unwrap();
        dir.set_link_from_spool(link);
        let (sha, _) = filehash::hash_reader(&audio[..]).unwrap();
        let record = serde_json::to_vec(&serde_json::json!({"call_id": "bench", "state": "completed"})).unwrap();
        Archive { work, spool, target: dir.into(), archive, audio, sha, record, n: 0 }
    }

    /// Writes a recording's files into the work directory and enters them into the spool.
    fn enter(&mut self) -> shipper::Entry {
        self.n += 1;
        let key = format!("2025/01/01/bench_{}", self.n);
        let mut files = Vec::new();
        for (ext, bytes, sha) in [
            ("wav", &self.audio, self.sha.clone()),
            ("json", &self.record, filehash::hash_reader(&self.record[..]).unwrap().0),
        ] {
            let source = self.work.join(format!("bench_{}.{ext}", self.n));
            std::fs::write(&source, bytes).unwrap();
            files.push(NewFile { source, ext: ext.into(), sha256: sha, size: bytes.len() as u64 });
        }
        let id = self.spool.enter(NewRecording { key, files, summary: serde_json::json!({}) }).unwrap();
        self.spool.entry(id).unwrap()
    }

    /// Confirms the shipped entry (the spool deletes its files) and removes the archived ones.
    fn clear(&self, entry: &shipper::Entry, location: &str) {
        self.spool.mark_shipped(entry.id, self.target.name(), location).unwrap();
        assert!(self.spool.complete(entry.id, &[self.target.name()]).unwrap());
        for f in &entry.files {
            std::fs::remove_file(self.archive.join(format!("{}.{}", entry.key, f.ext))).unwrap();
        }
    }
}

fn archive(c: &mut Criterion, audio: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut g = c.benchmark_group("archive");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(RECORDING as u64));
    for (name, link) in [("publish_copy", false), ("publish_link", true)] {
        let root = tempfile::Builder::new().prefix("callvault-stages").tempdir().expect("temp dir");
        let mut a = Archive::new(root.path(), audio.to_vec(), link);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let entry = a.enter();
                    let t = Instant::now();
                    let shipment = rt.block_on(a.target.ship(&a.spool, &entry)).unwrap();
                    total += t.elapsed();
                    assert_eq!(shipment.files_copied, 2);
                    a.clear(&entry, &shipment.location);
                }
                total
            });
        });
    }
    g.finish();
}

/// The batches the capture hands one mixer thread for the frames of `calls` concurrent calls,
/// and how many RTP packets they hold.
fn mixer_batches(scratch: &Path, calls: u32) -> (Vec<Batch>, u64) {
    // All of them talking at once: 2 s of talk, started within 0.5 s.
    let (link, frames) = generated_frames_apart(scratch, calls, 2_000, 500_000_000 / i64::from(calls));
    let (tx, rx) = crossbeam_channel::unbounded();
    let (_recycle_tx, recycle) = crossbeam_channel::unbounded();
    let mut sink = BatchSink::new(vec![Lane { tx, recycle }], Backpressure::Block);
    let mut engine = Engine::new(EngineConfig::default());
    for (time, frame) in &frames {
        engine.handle_frame(link, *time, frame, &mut sink);
    }
    engine.finish(EndReason::EndOfInput, &mut sink);
    sink.flush();
    let batches: Vec<Batch> = rx.try_iter().collect();
    let packets = batches.iter().flat_map(|b| &b.items).filter(|i| matches!(i, Item::Rtp { .. })).count();
    (batches, packets as u64)
}

fn mixer_calls(c: &mut Criterion, scratch: &Path) {
    let work = memory_dir(scratch);
    let mut g = c.benchmark_group("mixer_calls");
    g.sample_size(10);
    for (name, calls) in [("500_alone", 500), ("2500_grouped", 2500)] {
        let (batches, packets) = mixer_batches(scratch, calls);
        g.throughput(Throughput::Elements(packets));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // All of them waiting, as for a mixer far behind: taken as the mixer
                    // thread takes them (`Grouping::take`: alone below 1,024 calls, else in
                    // groups).
                    let (tx, waiting) = crossbeam_channel::unbounded();
                    let (recycle, _returned) = crossbeam_channel::unbounded();
                    for batch in batches.iter().cloned() {
                        tx.send(batch).unwrap();
                    }
                    let cfg = MixerConfig::new(work.path().to_owned(), "bench".into());
                    let mut mixer = Mixer::new(cfg, Vec::<PendingRecording>::new()).unwrap();
                    let mut grouping = Grouping::new();
                    let t = Instant::now();
                    while let Ok(first) = waiting.try_recv() {
                        grouping.take(first, &waiting, calls as usize, &mut mixer, &recycle);
                    }
                    total += t.elapsed();
                    assert_eq!(mixer.drain_mut().len(), calls as usize, "every call recorded");
                    assert_eq!(mixer.stats().rtp_packets, packets, "every RTP packet mixed");
                    drop(mixer);
                    empty_dir(work.path());
                }
                total
            });
        });
    }
    g.finish();
}

fn stages(c: &mut Criterion) {
    let scratch = tempfile::Builder::new().prefix("callvault-stages").tempdir().expect("temp dir");
    decode_and_parse(c, scratch.path());
    engine(c, scratch.path());
    mixer(c, scratch.path());
    mixer_calls(c, scratch.path());
    let audio = recording_bytes();
    hash(c, scratch.path(), &audio);
    archive(c, &audio);
}

criterion_group!(benches, stages);
criterion_main!(benches);
