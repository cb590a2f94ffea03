//! Codecs: wideband calls (G.722) recorded at 16 kHz, sample by sample, and codecs without
//! a decoder named in the record, never guessed.
//!
//! * G.722 is decoded to the bit: every sample equals what an independent decoder (ffmpeg's
//!   `g722`) makes of the same codes, each run of codes between gaps decoded from the reset
//!   state, as the recorder documents.
//! * A call where one party sends G.722 and the other G.711 is recorded at 16 kHz with both
//!   parties aligned: the G.711 party's samples are the even samples of its channel, exactly,
//!   at the right place, and the points between follow the tone it sent.
//! * The real corpus G.722 captures give 16 kHz recordings that ffmpeg agrees with.
//! * G.729 and GSM 06.10 are decoded as the reference decoders decode the same frames
//!   (libbcg729 called directly; ffmpeg's GSM decoder), lost G.729 frames concealed by the
//!   decoder's erasure mode; the corpus G.729 call to the sample, and ffmpeg's own G.729
//!   decoder hears the same speech.
//! * Opus is decoded as libopus decodes the same packets (called on its own): the corpus
//!   capture, and generated calls of real libopus packets (in-band FEC, DTX) with losses
//!   recovered from the next packet's FEC, DTX silences, and codec changes to and from PCMU.
//!   With `--opus-rate 48000` the same at 48 kHz: the FEC calls and the codec changes (a
//!   PCMU recording rewritten at 48 kHz mid-call), PCMU every sixth sample; and the corpus
//!   capture's 48 kHz channel is what opusdec makes of its packets in an Ogg Opus file.
//! * L16 at 8 and 16 kHz is recorded sample for sample as the generator sent it; at 44.1 kHz
//!   it is named, not decoded.
//! * G.726 calls from the corpus: no audio, each codec named with its packets.

mod common;
mod gen_check;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use callgen::{CallSpec, Codec, Hangup, Outcome, Party, Scenario, TONE_AMPLITUDE, samples_per_packet};
use common::{channels_at, records, replay, rfc3339, skipped, text};
use gen_check::{Sent, run, sent};
use mixer::mix::g711::ULAW_TO_LINEAR;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// Runs `cmd` with `input` on its standard input; its standard output as 16-bit samples.
fn pipe_pcm(cmd: &mut Command, input: &[u8]) -> Vec<i16> {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run the reference decoder");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// ffmpeg's own decoder for raw `format` (`g722`, `gsm`, `g729`) on `input`.
fn ffmpeg(format: &str, input: &[u8]) -> Vec<i16> {
    pipe_pcm(Command::new("ffmpeg").args(["-v", "error", "-f", format, "-i", "pipe:0", "-f", "s16le", "pipe:1"]), input)
}

/// ffmpeg's decoding of G.722 `codes` (from the decoder's reset state).
fn ffmpeg_g722(codes: &[u8]) -> Vec<i16> {
    ffmpeg("g722", codes)
}

fn have_ffmpeg(test: &str) -> bool {
    if common::have("ffmpeg") {
        return true;
    }
    skipped(&format!("{test}: ffmpeg (the reference G.722 decoder) is not installed"));
    false
}

/// The audio packets one party sent (no duplicates, no events), with their 8 kHz position.
fn audio(scenario: &Scenario, call: usize, party: Party, origin: i64) -> Vec<(usize, Sent)> {
    sent(scenario, call, party)
        .into_iter()
        .filter(|s| !s.duplicate && s.pt != 101 && !s.payload.is_empty())
        .map(|s| (((s.capture_ns - origin) / 125_000) as usize, s))
        .collect()
}

/// Where call `i`'s recording starts (its first audio packet's capture time) and each party's
/// audio packets from there.
fn both_parties(scenario: &Scenario, i: usize) -> (i64, [Vec<(usize, Sent)>; 2]) {
    let origin = [Party::Caller, Party::Callee]
        .into_iter()
        .flat_map(|p| audio(scenario, i, p, 0))
        .map(|(_, s)| s.capture_ns)
        .min()
        .unwrap();
    (origin, [Party::Caller, Party::Callee].map(|p| audio(scenario, i, p, origin)))
}

/// The 16 kHz channel a correct recorder writes for a G.722 sender: each run of contiguous
/// codes decoded by ffmpeg from the reset state.
fn expected_g722(packets: &[(usize, Sent)], positions: usize) -> Vec<i16> {
    let mut ch = vec![0i16; 2 * positions];
    let mut i = 0;
    while i < packets.len() {
        let start = packets[i].0;
        let mut codes = packets[i].1.payload.clone();
        let mut j = i + 1;
        while j < packets.len() && packets[j].0 == start + codes.len() {
            codes.extend_from_slice(&packets[j].1.payload);
            j += 1;
        }
        let pcm = ffmpeg_g722(&codes);
        assert_eq!(pcm.len(), 2 * codes.len());
        ch[2 * start..2 * start + pcm.len()].copy_from_slice(&pcm);
        i = j;
    }
    ch
}

fn assert_same(ctx: &str, got: &[i16], want: &[i16]) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let run = (i..got.len()).take_while(|&j| got[j] != want[j]).count();
        panic!("{ctx}: differs from sample {i} for {run} samples: got {}, want {}", got[i], want[i]);
    }
}

fn call(i: u32, talk_ms: u32) -> CallSpec {
    let mut c = CallSpec::answered(i, T0 + i64::from(i) * 1_000_000_000, talk_ms);
    c.outcome = Outcome::Answered { hangup: Hangup::Caller };
    c
}

#[test]
fn g722_calls_are_decoded_bit_exact_at_16_khz_and_mixed_rate_calls_stay_aligned() {
    if !have_ffmpeg("g722_calls_are_decoded_bit_exact") {
        return;
    }
    // 0: G.722 both ways, lossless. 1: G.722 both ways, losses on both sides (a reset after each
    // gap). 2: the caller G.722, the callee PCMU with a lost packet.
    let mut both = call(0, 8_000);
    both.codec = Codec::G722;
    let mut lossy = call(1, 8_000);
    lossy.codec = Codec::G722;
    lossy.impair.caller.loss = vec![10, 11, 57, 200];
    lossy.impair.callee.loss = vec![3, 150];
    let mut mixed = call(2, 8_000);
    mixed.codec = Codec::G722;
    mixed.callee_codec = Some(Codec::Pcmu);
    mixed.impair.callee.loss = vec![100];
    let scenario = Scenario { calls: vec![both, lossy, mixed], seed: 5, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = r.record(&t.call_id);
        let audio_rec = &rec.value["audio"];
        assert_eq!(audio_rec["sample_rate"], 16000, "{ctx}: {audio_rec}");
        let spec = &scenario.calls[i];
        let (origin, parties) = both_parties(&scenario, i);
        assert_eq!(audio_rec["media_start"], rfc3339(origin), "{ctx}");
        let positions = parties.iter().flatten().map(|(at, s)| at + s.payload.len()).max().unwrap();
        assert_eq!(audio_rec["frames"].as_u64(), Some(2 * positions as u64), "{ctx}: frames");
        let got = channels_at(rec.wav.as_deref().unwrap(), 16000);
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            match spec.codec_of(party) {
                Codec::G722 => assert_same(&ctx, &got[k], &expected_g722(&parties[k], positions)),
                Codec::Pcmu => {
                    // Even samples: the G.711 samples, exactly where they belong.
                    let want = expected_pcmu(&parties[k], positions);
                    let even: Vec<i16> = got[k].iter().step_by(2).copied().collect();
                    assert_same(&ctx, &even, &want);
                    // Odd samples: the tone between them (away from the edges of the audio,
                    // within µ-law's quantisation), so the interpolation is in phase.
                    let present: std::collections::HashSet<usize> =
                        parties[k].iter().flat_map(|(at, s)| *at..at + s.payload.len()).collect();
                    let first = parties[k][0].0;
                    let tone = spec.callee_tone_hz;
                    let mut checked = 0;
                    for p in 0..positions {
                        if p >= 20 && (p - 20..p + 20).all(|q| present.contains(&q)) {
                            let n = (p - first) as f64 + 0.5;
                            let ideal = TONE_AMPLITUDE * (std::f64::consts::TAU * tone * n / 8000.0).sin();
                            let odd = f64::from(got[k][2 * p + 1]);
                            assert!(
                                (odd - ideal).abs() < 700.0,
                                "{ctx}: sample {}: {odd} vs the tone's {ideal}",
                                2 * p + 1
                            );
                            checked += 1;
                        }
                    }
                    assert!(checked > positions / 2, "{ctx}: {checked} interpolated samples checked");
                }
                other => unreachable!("{other:?}"),
            }
        }
        let codecs: Vec<&str> =
            rec.value["streams"].as_array().unwrap().iter().map(|s| s["codec"].as_str().unwrap()).collect();
        let want: Vec<&str> = [Party::Caller, Party::Callee].map(|p| spec.codec_of(p).encoding_name()).to_vec();
        assert_eq!(codecs, want, "{ctx}: codecs in the record");
        // One codec segment per party, with every audio packet it sent.
        let segments = rec.value["codecs"]["segments"].as_array().unwrap();
        assert_eq!(segments.len(), 2, "{ctx}: {segments:?}");
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let side = if k == 0 { "caller" } else { "callee" };
            let seg = segments.iter().find(|g| g["side"] == side).unwrap();
            let codec = spec.codec_of(party);
            assert_eq!(seg["codec"], codec.encoding_name(), "{ctx}");
            assert_eq!(seg["payload_type"], codec.payload_type(), "{ctx}");
            assert_eq!(seg["decoded"], true, "{ctx}");
            assert_eq!(seg["packets"].as_u64(), Some(parties[k].len() as u64), "{ctx}: {seg}");
            assert_eq!(seg["first"], rfc3339(parties[k].first().unwrap().1.capture_ns), "{ctx}");
            assert_eq!(seg["last"], rfc3339(parties[k].last().unwrap().1.capture_ns), "{ctx}");
        }
    }
}

/// The C library's own decoding (called directly through `tests/reference/narrowband.py`) of
/// `frames` of `codec` (`g729`, `gsm`) in order, `None` a lost G.729 frame.
fn reference(codec: &str, frames: &[Option<&[u8]>]) -> Vec<i16> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/narrowband.py");
    let input: String = frames
        .iter()
        .map(|f| f.map_or_else(|| "-".to_owned(), |f| f.iter().map(|b| format!("{b:02x}")).collect()) + "\n")
        .collect();
    pipe_pcm(Command::new("python3").arg(script).arg(codec), input.as_bytes())
}

/// ffmpeg's decoding (its own GSM 06.10 decoder) of `frames` (33 bytes each), in order.
fn ffmpeg_gsm(frames: &[u8]) -> Vec<i16> {
    ffmpeg("gsm", frames)
}

fn have_libraries(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import ctypes; ctypes.CDLL('libbcg729.so.0'); ctypes.CDLL('libgsm.so.1')"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skipped(&format!("{test}: python3 with libbcg729 and libgsm (the reference decoders) is not there"));
    }
    ok
}

/// Signal to difference ratio (dB) of `a` against `b`.
fn snr_db(a: &[i16], b: &[i16]) -> f64 {
    let signal: f64 = a.iter().map(|&s| f64::from(s).powi(2)).sum();
    let noise: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    10.0 * (signal / noise.max(1.0)).log10()
}

/// The 8 kHz channel a correct recorder writes for a G.729 sender: its frames decoded in
/// order by the reference, each gap of up to 60 ms concealed frame by frame (erasure mode), a
/// longer one silence.
fn expected_g729(packets: &[(usize, Sent)], positions: usize) -> Vec<i16> {
    let mut frames: Vec<(usize, Option<&[u8]>)> = Vec::new();
    let mut next: Option<usize> = None;
    for (at, s) in packets {
        if let Some(n) = next.filter(|&n| *at > n && at - n <= 480) {
            let lost = (at - n) / 80;
            frames.extend((0..lost).map(|k| (at - (lost - k) * 80, None)));
        }
        frames.extend(s.payload.chunks(10).enumerate().map(|(k, f)| (at + 80 * k, Some(f))));
        next = Some(at + s.payload.len() / 10 * 80);
    }
    let pcm = reference("g729", &frames.iter().map(|f| f.1).collect::<Vec<_>>());
    assert_eq!(pcm.len(), 80 * frames.len());
    let mut ch = vec![0i16; positions];
    for ((at, _), samples) in frames.iter().zip(pcm.chunks_exact(80)) {
        ch[*at..at + 80].copy_from_slice(samples);
    }
    ch
}

/// The same for a GSM sender: its frames decoded in order by libgsm, gaps silence (GSM has no
/// concealment). (The generator's frames are not an encoder's: decoders that agree on real
/// frames may part ways on them, so only libgsm itself is the reference here; see
/// [`gsm_frames_from_a_real_encoder_decode_as_ffmpeg_decodes_them`] for an independent one.)
fn expected_gsm(packets: &[(usize, Sent)], positions: usize) -> Vec<i16> {
    let frames: Vec<u8> = packets.iter().flat_map(|(_, s)| s.payload.iter().copied()).collect();
    let pcm = reference("gsm", &frames.chunks(33).map(Some).collect::<Vec<_>>());
    let mut ch = vec![0i16; positions];
    let mut decoded = pcm.chunks_exact(160);
    for (at, s) in packets {
        for k in 0..s.payload.len() / 33 {
            ch[at + 160 * k..at + 160 * (k + 1)].copy_from_slice(decoded.next().unwrap());
        }
    }
    ch
}

#[test]
fn g729_and_gsm_calls_are_decoded_as_the_reference_decoders_decode_them() {
    let test = "g729_and_gsm_calls_are_decoded_as_the_reference_decoders_decode_them";
    if !have_ffmpeg(test) || !have_libraries(test) {
        return;
    }
    // 0: G.729 both ways (20 ms packets), the caller losing single packets and a burst of
    // four (concealed), the callee one of 10 (silence). 1: GSM both ways with losses (silence).
    // 2: a GSM caller, a PCMU callee. 3: G.729 with 30 ms packets.
    let mut g729 = call(0, 6_000);
    g729.codec = Codec::G729;
    g729.impair.caller.loss = vec![10, 50, 51, 52, 53, 120];
    g729.impair.callee.loss = (100..110).collect();
    let mut gsm = call(1, 6_000);
    gsm.codec = Codec::Gsm;
    gsm.impair.caller.loss = vec![7, 8, 200];
    gsm.impair.callee.loss = vec![30];
    let mut mixed = call(2, 4_000);
    mixed.codec = Codec::Gsm;
    mixed.callee_codec = Some(Codec::Pcmu);
    let mut g729_30 = call(3, 3_000);
    g729_30.codec = Codec::G729;
    g729_30.ptime_ms = 30;
    let scenario = Scenario { calls: vec![g729, gsm, mixed, g729_30], seed: 11, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = r.record(&t.call_id);
        let spec = &scenario.calls[i];
        assert_eq!(rec.value["audio"]["sample_rate"], 8000, "{ctx}");
        let (_, parties) = both_parties(&scenario, i);
        let samples = |party: Party, s: &Sent| match spec.codec_of(party) {
            Codec::G729 => s.payload.len() / 10 * 80,
            Codec::Gsm => s.payload.len() / 33 * 160,
            _ => s.payload.len(),
        };
        let positions = [Party::Caller, Party::Callee]
            .into_iter()
            .zip(&parties)
            .flat_map(|(p, packets)| packets.iter().map(move |(at, s)| at + samples(p, s)))
            .max()
            .unwrap();
        let got = channels_at(rec.wav.as_deref().unwrap(), 8000);
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            let want = match spec.codec_of(party) {
                Codec::G729 => expected_g729(&parties[k], positions),
                Codec::Gsm => expected_gsm(&parties[k], positions),
                Codec::Pcmu => expected_pcmu(&parties[k], positions),
                other => unreachable!("{other:?}"),
            };
            assert!(want.iter().filter(|&&s| s != 0).count() > positions / 2, "{ctx}: the reference decoded audio");
            assert_same(&ctx, &got[k], &want);
        }
        let segments = rec.value["codecs"]["segments"].as_array().unwrap();
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let side = if k == 0 { "caller" } else { "callee" };
            let seg = segments.iter().find(|g| g["side"] == side).unwrap();
            assert_eq!(seg["codec"], spec.codec_of(party).encoding_name(), "{ctx}");
            assert_eq!(seg["decoded"], true, "{ctx}");
            assert_eq!(seg["packets"].as_u64(), Some(parties[k].len() as u64), "{ctx}: {seg}");
        }
    }
}

#[test]
fn a_codec_change_by_reinvite_keeps_every_sample_and_lists_each_codec_segment() {
    let test = "a_codec_change_by_reinvite";
    if !have_ffmpeg(test) || !have_libraries(test) {
        return;
    }
    // 0: PCMU both ways, the caller re-INVITEs to G.722 after 2.5 s: the recording turns 16 kHz
    // (what was written is rewritten), both codecs' audio exact. 1: G.729 both ways, the
    // callee re-INVITEs to PCMU after 2 s: 8 kHz throughout.
    let mut up = call(0, 6_000);
    up.midcall = vec![callgen::MidCall::ChangeCodec { by: Party::Caller, at_ms: 2_500, codec: Codec::G722 }];
    let mut down = call(1, 5_000);
    down.codec = Codec::G729;
    down.midcall = vec![callgen::MidCall::ChangeCodec { by: Party::Callee, at_ms: 2_000, codec: Codec::Pcmu }];
    let scenario = Scenario { calls: vec![up, down], seed: 13, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = r.record(&t.call_id);
        let (first, then) = if i == 0 { (Codec::Pcmu, Codec::G722) } else { (Codec::G729, Codec::Pcmu) };
        let rate = if i == 0 { 16000 } else { 8000 };
        assert_eq!(rec.value["audio"]["sample_rate"], rate, "{ctx}");
        let (_, parties) = both_parties(&scenario, i);
        let len = |s: &Sent| if s.pt == 18 { s.payload.len() / 10 * 80 } else { s.payload.len() };
        let positions = parties.iter().flatten().map(|(at, s)| at + len(s)).max().unwrap();
        let got = channels_at(rec.wav.as_deref().unwrap(), rate);
        let segments = rec.value["codecs"]["segments"].as_array().unwrap();
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            let before: Vec<(usize, Sent)> =
                parties[k].iter().filter(|(_, s)| s.pt == first.payload_type()).cloned().collect();
            let after: Vec<(usize, Sent)> =
                parties[k].iter().filter(|(_, s)| s.pt == then.payload_type()).cloned().collect();
            assert!(before.len() > 50 && after.len() > 50, "{ctx}: both codecs sent");
            assert_eq!(before.len() + after.len(), parties[k].len());
            assert!(before.last().unwrap().0 < after[0].0, "{ctx}: one switch");
            let ulaw = |packets: &[(usize, Sent)], step: usize, ch: &mut [i16]| {
                for (at, s) in packets {
                    for (j, &b) in s.payload.iter().enumerate() {
                        ch[step * (at + j)] = ULAW_TO_LINEAR[b as usize];
                    }
                }
            };
            if i == 0 {
                // The PCMU part: the even samples exact; the G.722 part: exact, decoded from
                // the reset state at its first code.
                let mut want = expected_g722(&after, positions);
                ulaw(&before, 2, &mut want);
                let end = 2 * (before.last().unwrap().0 + 160);
                let even = |v: &[i16]| v[..end].iter().step_by(2).copied().collect::<Vec<_>>();
                assert_same(&format!("{ctx} PCMU part"), &even(&got[k]), &even(&want));
                let from = 2 * after[0].0;
                assert_same(&format!("{ctx} G.722 part"), &got[k][from..], &want[from..]);
            } else {
                let mut want = expected_g729(&before, positions);
                ulaw(&after, 1, &mut want);
                assert_same(&ctx, &got[k], &want);
            }
            // Two segments for the party, in order, each with its packets and times.
            let side = if k == 0 { "caller" } else { "callee" };
            let mine: Vec<&serde_json::Value> = segments.iter().filter(|g| g["side"] == side).collect();
            assert_eq!(mine.len(), 2, "{ctx}: {segments:?}");
            for (seg, (codec, packets)) in mine.iter().zip([(first, &before), (then, &after)]) {
                check_segment(&ctx, seg, codec, packets);
            }
        }
    }
}

#[test]
fn gsm_frames_from_a_real_encoder_decode_as_ffmpeg_decodes_them() {
    if !have_ffmpeg("gsm_frames_from_a_real_encoder") {
        return;
    }
    // Two seconds of a sweep through libgsm's encoder (ffmpeg), decoded by ffmpeg's own GSM
    // decoder and by the recorder's.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "aevalsrc=0.6*sin(2*PI*(200+900*t)*t):s=8000:d=2"])
        .args(["-c:a", "libgsm", "-f", "gsm", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success() && out.stdout.len() == 100 * 33, "{} bytes", out.stdout.len());
    let want = ffmpeg_gsm(&out.stdout);
    let mut dec = codecs::GsmDecoder::new().unwrap();
    let mut got = Vec::new();
    let mut pcm = [0i16; codecs::GSM_SAMPLES];
    for frame in out.stdout.chunks_exact(codecs::GSM_FRAME) {
        assert!(dec.decode(frame.try_into().unwrap(), &mut pcm));
        got.extend_from_slice(&pcm);
    }
    assert!(want.iter().filter(|&&s| s.abs() > 1000).count() > 8000, "a loud sweep");
    assert_same("GSM", &got, &want);
}

#[test]
fn the_corpus_g729_call_is_decoded_as_libbcg729_decodes_it_and_ffmpeg_hears_the_same_speech() {
    let test = "the_corpus_g729_call_is_decoded";
    if !have_ffmpeg(test) || !have_libraries(test) {
        return;
    }
    let Some((_dir, recs)) = corpus_wav("sip-rtp-g729a-sipp.pcap") else { return };
    let rec = recs.iter().find(|r| r.wav.is_some()).expect("a recording with audio");
    // The capture's 425 G.729 packets (MANIFEST.md), in order, as tshark reads them.
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(corpus("sip-rtp-g729a-sipp.pcap"))
        .args(["-Y", "rtp.p_type == 18", "-T", "fields", "-e", "rtp.payload"])
        .output()
        .expect("run tshark");
    let payloads: Vec<Vec<u8>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap()).collect())
        .collect();
    assert_eq!(payloads.len(), 425);
    let frames: Vec<Option<&[u8]>> = payloads.iter().flat_map(|p| p.chunks(10)).map(Some).collect();
    let want = reference("g729", &frames);
    let got = channels_at(rec.wav.as_deref().unwrap(), 8000);
    // One-way audio: the sender's channel is the reference's decoding, sample for sample.
    let k = (0..2).find(|&k| got[k].iter().any(|&s| s != 0)).expect("a channel with audio");
    assert_same("the G.729 channel", &got[k], &want);
    assert!(got[1 - k].iter().all(|&s| s == 0));
    // ffmpeg's own G.729 decoder (a different implementation, not bit-exact) hears the same
    // speech: the two agree to well over 15 dB.
    let ff = ffmpeg("g729", &payloads.concat());
    assert_eq!(ff.len(), want.len());
    let snr = snr_db(&got[k], &ff);
    assert!(snr > 15.0, "ffmpeg's G.729 decoding differs: {snr:.1} dB");
    let segments = rec.value["codecs"]["segments"].as_array().unwrap();
    assert_eq!(
        (segments[0]["codec"].as_str(), &segments[0]["decoded"]),
        (Some("G729"), &serde_json::Value::Bool(true))
    );
}

#[test]
fn codecs_without_a_decoder_are_named_with_their_packets_and_no_audio() {
    let g726: &[&str] =
        &["G726-16", "G726-24", "G726-32", "G726-40", "AAL2-G726-16", "AAL2-G726-24", "AAL2-G726-32", "AAL2-G726-40"];
    for (name, codecs) in [("sip-rtp-g726-eight-calls.pcap", g726)] {
        let Some((_dir, recs)) = corpus_wav(name) else { return };
        let with_media: Vec<_> = recs.iter().filter(|r| !r.value["streams"].as_array().unwrap().is_empty()).collect();
        assert_eq!(with_media.len(), codecs.len(), "{name}: one call per codec");
        let mut named = Vec::new();
        for rec in with_media {
            let ctx = format!("{name} {}", rec.value["call_id"]);
            assert!(rec.wav.is_none(), "{ctx}: no audio file for a codec without a decoder");
            let segments = rec.value["codecs"]["segments"].as_array().unwrap();
            assert_eq!(segments.len(), 1, "{ctx}: one-way audio in one codec: {segments:?}");
            let seg = &segments[0];
            assert_eq!(seg["decoded"], false, "{ctx}");
            // Every one of the capture's 425 audio packets (MANIFEST.md), counted, none decoded.
            assert_eq!(seg["packets"], 425, "{ctx}: {seg}");
            let codec = seg["codec"].as_str().unwrap().to_owned();
            assert_eq!(rec.value["capture_complete"], false, "{ctx}");
            let notes = rec.value["notes"].to_string() + &rec.value["incomplete_reasons"].to_string();
            assert!(notes.contains(&codec), "{ctx}: the record says which codec was not decoded: {notes}");
            named.push(codec);
        }
        named.sort();
        let mut want: Vec<String> = codecs.iter().map(|c| (*c).to_owned()).collect();
        want.sort();
        assert_eq!(named, want, "{name}: each call's codec named from its own SDP");
    }
}

#[test]
fn l16_calls_at_8_and_16_khz_are_recorded_sample_for_sample() {
    // 0: L16 at 8 kHz both ways, the caller losing two packets in a row. 1: L16 at 16 kHz both
    // ways, the callee losing one. 2: an L16/16000 caller, a PCMU callee. 3: an L16/8000
    // caller, a PCMU callee. 4: PCMU both ways, the callee re-INVITEs to L16/16000 after 2 s.
    let mut narrow = call(0, 4_000);
    narrow.codec = Codec::L16;
    narrow.impair.caller.loss = vec![30, 31];
    let mut wide = call(1, 4_000);
    wide.codec = Codec::L16Wide;
    wide.impair.callee.loss = vec![50];
    let mut mixed_wide = call(2, 3_000);
    mixed_wide.codec = Codec::L16Wide;
    mixed_wide.callee_codec = Some(Codec::Pcmu);
    let mut mixed = call(3, 3_000);
    mixed.codec = Codec::L16;
    mixed.callee_codec = Some(Codec::Pcmu);
    let mut up = call(4, 5_000);
    up.midcall = vec![callgen::MidCall::ChangeCodec { by: Party::Callee, at_ms: 2_000, codec: Codec::L16Wide }];
    let scenario = Scenario { calls: vec![narrow, wide, mixed_wide, mixed, up], seed: 29, ..Scenario::default() };
    let r = run(&scenario, &[]);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let spec = &scenario.calls[i];
        let rec = r.record(&t.call_id);
        let rate = if i == 0 || i == 3 { 8000 } else { 16000 };
        let step = (rate / 8000) as usize;
        assert_eq!(rec.value["audio"]["sample_rate"], rate, "{ctx}");
        let (origin, parties) = both_parties(&scenario, i);
        assert_eq!(rec.value["audio"]["media_start"], rfc3339(origin), "{ctx}");
        // Positions (8 kHz) a packet covers: L16 two bytes a sample, four at 16 kHz.
        let len = |s: &Sent| match s.pt {
            callgen::L16_PT => s.payload.len() / 2,
            callgen::L16_WIDE_PT => s.payload.len() / 4,
            _ => s.payload.len(),
        };
        let positions = parties.iter().flatten().map(|(at, s)| at + len(s)).max().unwrap();
        let got = channels_at(rec.wav.as_deref().unwrap(), rate);
        assert_eq!(got[0].len(), step * positions, "{ctx}: frames");
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            let tone = if k == 0 { spec.caller_tone_hz } else { spec.callee_tone_hz };
            let spp = samples_per_packet(spec.ptime_ms) as u64;
            // What a correct recorder writes: every L16 sample where it belongs (the tone the
            // generator sent, at its rate), silence in the gaps; G.711 samples as every
            // `step`-th sample (the points between are the interpolator's, checked elsewhere).
            let mut want = vec![0i16; step * positions];
            let mut mask = vec![step == 1; step * positions];
            for (at, s) in &parties[k] {
                let first = u64::from(s.index) * spp;
                match s.pt {
                    callgen::L16_PT | callgen::L16_WIDE_PT => {
                        let per = if s.pt == callgen::L16_PT { 1 } else { 2 };
                        let samples: Vec<i16> =
                            s.payload.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])).collect();
                        let tone: Vec<i16> = (0..samples.len() as u64)
                            .map(|j| {
                                if per == 1 {
                                    callgen::tone_sample(tone, first + j)
                                } else {
                                    callgen::tone_sample_16k(tone, 2 * first + j)
                                }
                            })
                            .collect();
                        assert_eq!(samples, tone, "{ctx}: packet {} is the tone", s.index);
                        assert_eq!(per, step, "{ctx}: an L16/8000 packet in a 16 kHz call is not tested here");
                        for (j, &x) in samples.iter().enumerate() {
                            want[step * at + j] = x;
                            mask[step * at + j] = true;
                        }
                    }
                    0 => {
                        for (j, &b) in s.payload.iter().enumerate() {
                            want[step * (at + j)] = ULAW_TO_LINEAR[b as usize];
                            mask[step * (at + j)] = true;
                        }
                    }
                    other => panic!("{ctx}: payload type {other}"),
                }
            }
            // Silence where the party sent nothing (lost packets): no concealment for L16 (in a
            // 16 kHz call, the points between of a G.711 party are the interpolator's).
            let sent: std::collections::HashSet<usize> =
                parties[k].iter().flat_map(|(at, s)| *at..at + len(s)).collect();
            let whole = if parties[k].iter().all(|(_, s)| s.pt == callgen::L16_WIDE_PT) { step } else { 1 };
            for p in parties[k][0].0..positions {
                if !sent.contains(&p) {
                    for j in 0..whole {
                        mask[step * p + j] = true;
                    }
                }
            }
            let pick = |v: &[i16]| v.iter().zip(&mask).filter(|m| *m.1).map(|m| *m.0).collect::<Vec<_>>();
            assert!(mask.iter().filter(|&&m| m).count() >= positions, "{ctx}");
            assert_same(&ctx, &pick(&got[k]), &pick(&want));
            let segments = rec.value["codecs"]["segments"].as_array().unwrap();
            let side = if k == 0 { "caller" } else { "callee" };
            let mine: Vec<&serde_json::Value> = segments.iter().filter(|g| g["side"] == side).collect();
            let mut runs: Vec<(u8, usize)> = Vec::new();
            for (_, s) in &parties[k] {
                match runs.last_mut() {
                    Some(r) if r.0 == s.pt => r.1 += 1,
                    _ => runs.push((s.pt, 1)),
                }
            }
            assert_eq!(mine.len(), runs.len(), "{ctx}: {segments:?}");
            for (seg, (pt, packets)) in mine.iter().zip(runs) {
                assert_eq!(seg["codec"], if pt == 0 { "PCMU" } else { "L16" }, "{ctx}");
                assert_eq!(seg["payload_type"], pt, "{ctx}");
                assert_eq!(seg["decoded"], true, "{ctx}");
                assert_eq!(seg["packets"].as_u64(), Some(packets as u64), "{ctx}");
            }
        }
    }
}

#[test]
fn l16_at_44_1_khz_is_named_with_its_packets_and_not_decoded() {
    // An L16/16000 call whose SDPs are rewritten to say L16/44100 (the same length, so the
    // capture stays whole; UDP checksums are not verified): the rate the recorder does not
    // decode, as for the static payload types 10 and 11.
    let mut c = call(0, 2_000);
    c.codec = Codec::L16Wide;
    let scenario = Scenario::new(vec![c]);
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    callgen::write_pcap_to(&scenario, &mut bytes).unwrap();
    let (from, to) = (b"L16/16000", b"L16/44100");
    let mut rewritten = 0;
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + to.len()].copy_from_slice(to);
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 2, "the offer and the answer");
    let pcap = dir.path().join("in.pcap");
    std::fs::write(&pcap, &bytes).unwrap();
    let out = replay(&[&pcap], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert!(rec.wav.is_none(), "no audio file for a codec without a decoder");
    let segments = rec.value["codecs"]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{segments:?}");
    for (seg, party) in segments.iter().zip([Party::Caller, Party::Callee]) {
        let sent = sent(&scenario, 0, party);
        assert_eq!((seg["codec"].as_str(), &seg["decoded"]), (Some("L16"), &serde_json::json!(false)), "{seg}");
        assert_eq!(seg["packets"].as_u64(), Some(sent.len() as u64), "{seg}");
    }
    assert_eq!(rec.value["capture_complete"], false);
    let notes = rec.value["notes"].to_string() + &rec.value["incomplete_reasons"].to_string();
    assert!(notes.contains("L16"), "the record says which codec was not decoded: {notes}");
}

/// Replays a corpus capture; its records (skipped when the corpus is not there).
fn corpus_wav(name: &str) -> Option<(tempfile::TempDir, Vec<common::Rec>)> {
    corpus_wav_with(name, &[])
}

/// [`corpus_wav`] with `extra` options.
fn corpus_wav_with(name: &str, extra: &[&str]) -> Option<(tempfile::TempDir, Vec<common::Rec>)> {
    let pcap = corpus(name);
    if !pcap.exists() {
        skipped(&format!("corpus capture {name} not found"));
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = replay(&[&pcap], dir.path(), extra);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    Some((dir, recs))
}

/// A corpus capture: under `$CALLVAULT_CORPUS` (set by the test command), else
/// `../shared/corpus` beside the repository.
fn corpus(name: &str) -> std::path::PathBuf {
    std::env::var_os("CALLVAULT_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
        .join(name)
}

/// The G.722 payloads of one RTP stream of a capture, in capture order, as tshark reads them.
fn tshark_payloads(pcap: &Path, ssrc: u32) -> Vec<u8> {
    tshark_packets(pcap, ssrc, 9).concat()
}

#[test]
fn corpus_g722_capture_is_recorded_at_16_khz_as_ffmpeg_decodes_it() {
    if !have_ffmpeg("corpus_g722_capture") || !common::have("tshark") {
        return;
    }
    let name = "sip-rtp-g722-sipp.pcap";
    let Some((_dir, recs)) = corpus_wav(name) else { return };
    assert_eq!(recs.len(), 1, "one call");
    let rec = &recs[0];
    assert_eq!(rec.value["audio"]["sample_rate"], 16000);
    let stream = &rec.value["streams"][0];
    assert_eq!(stream["codec"], "G722");
    assert_eq!(stream["lost"], 0);
    let ssrc = u32::from_str_radix(stream["ssrc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let codes = tshark_payloads(&corpus(name), ssrc);
    assert_eq!(codes.len(), 425 * 160, "all 425 packets' codes");
    let want = ffmpeg_g722(&codes);
    let got = channels_at(rec.wav.as_deref().unwrap(), 16000);
    let k = usize::from(stream["side"] == "callee");
    // One-way audio starting with the recording: the whole channel is the decoded stream.
    assert_same(name, &got[k], &want);
    assert!(got[1 - k].iter().all(|&s| s == 0), "the silent party's channel is silent");
}

#[test]
fn corpus_g722_call_through_a_proxy_is_recorded_at_16_khz_as_ffmpeg_decodes_it() {
    if !have_ffmpeg("corpus_g722_call_through_a_proxy") || !common::have("tshark") {
        return;
    }
    let name = "sip-rtp-g722-ipfrag-proxy.pcapng";
    let Some((_dir, recs)) = corpus_wav(name) else { return };
    let answered: Vec<_> = recs.iter().filter(|r| r.wav.is_some()).collect();
    assert_eq!(answered.len(), 1, "{name}: the one answered call");
    let rec = answered[0];
    assert_eq!(rec.value["audio"]["sample_rate"], 16000);
    for seg in rec.value["codecs"]["segments"].as_array().unwrap() {
        assert_eq!((&seg["codec"], &seg["decoded"]), (&serde_json::json!("G722"), &serde_json::json!(true)));
    }
    // The caller's 1686 packets are one unbroken stream: somewhere in its channel, the whole
    // of ffmpeg's decoding of them, to the sample (it is a quiet lab call: the samples are
    // small, so only exactness says anything).
    let stream = rec.value["streams"].as_array().unwrap().iter().find(|s| s["side"] == "caller").unwrap();
    assert_eq!((stream["packets"].as_u64(), stream["lost"].as_u64()), (Some(1686), Some(0)));
    let ssrc = u32::from_str_radix(stream["ssrc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let want = ffmpeg_g722(&tshark_payloads(&corpus(name), ssrc));
    assert_eq!(want.len(), 2 * 1686 * 160);
    let got = channels_at(rec.wav.as_deref().unwrap(), 16000);
    let at = (0..=got[0].len() - want.len()).find(|&o| got[0][o..o + 64] == want[..64]).expect("the stream's start");
    assert_same(name, &got[0][at..at + want.len()], &want);
    assert!(got[0][..at].iter().all(|&s| s == 0) && got[0][at + want.len()..].iter().all(|&s| s == 0));
}

/// One call of libopus's decoder (`opus_decode`).
#[derive(Debug, Clone)]
enum OpusOp {
    /// Decode a packet (`decode_fec` 0).
    Decode(Vec<u8>),
    /// Decode the in-band FEC of a packet for the frame before it (`decode_fec` 1) into this
    /// many 16 kHz samples (libopus conceals when the packet carries none).
    Fec(Vec<u8>, usize),
    /// Conceal a lost frame of this many samples (no packet).
    Conceal(usize),
}

/// libopus's own decoding at `rate` (Hz), one decoder, the calls `ops` in order; what each
/// call returned. libopus is called on its own from Python (ctypes), outside the recorder.
/// opusdec is not usable here: at 16 kHz it decodes at 48 kHz and resamples (checked: at
/// 48 kHz it is bit-exact with libopus).
fn libopus_ops(ops: &[OpusOp], rate: u32) -> Vec<Vec<i16>> {
    let script = r#"
import ctypes, struct, sys
lib = ctypes.CDLL("libopus.so.0")
lib.opus_decoder_create.restype = ctypes.c_void_p
lib.opus_decoder_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_int]
err = ctypes.c_int()
dec = lib.opus_decoder_create(int(sys.argv[1]), 1, ctypes.byref(err))
buf = (ctypes.c_short * 5760)()
out = bytearray()
for line in sys.stdin.read().splitlines():
    op = line.split()
    if op[0] == "D":
        p = bytes.fromhex(op[1])
        n = lib.opus_decode(dec, p, len(p), buf, 5760, 0)
    elif op[0] == "F":
        p = bytes.fromhex(op[2])
        n = lib.opus_decode(dec, p, len(p), buf, int(op[1]), 1)
    else:
        n = lib.opus_decode(dec, None, 0, buf, int(op[1]), 0)
    assert n >= 0, n
    out += struct.pack("<i", n) + bytes(ctypes.string_at(buf, 2 * n))
sys.stdout.buffer.write(out)
"#;
    let hex = |p: &[u8]| p.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let input: String = ops
        .iter()
        .map(|op| match op {
            OpusOp::Decode(p) => format!("D {}\n", hex(p)),
            OpusOp::Fec(p, n) => format!("F {n} {}\n", hex(p)),
            OpusOp::Conceal(n) => format!("C {n}\n"),
        })
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", script, &rate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "libopus via ctypes failed");
    let mut rest = &out.stdout[..];
    let mut calls = Vec::with_capacity(ops.len());
    while !rest.is_empty() {
        let n = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        calls.push(rest[4..4 + 2 * n].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect());
        rest = &rest[4 + 2 * n..];
    }
    assert_eq!(calls.len(), ops.len());
    calls
}

/// libopus's decoding at 16 kHz of `packets` in order, `None` a lost packet: the frame after
/// a lost one decoded first from its in-band FEC (`decode_fec` 1, 20 ms), then as itself.
fn libopus_16k(packets: &[Option<Vec<u8>>]) -> Vec<i16> {
    libopus_at(packets, 16_000)
}

/// [`libopus_16k`] at `rate`.
fn libopus_at(packets: &[Option<Vec<u8>>], rate: u32) -> Vec<i16> {
    let mut ops = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let Some(p) = p else { continue };
        if i > 0 && packets[i - 1].is_none() {
            ops.push(OpusOp::Fec(p.clone(), rate as usize / 50));
        }
        ops.push(OpusOp::Decode(p.clone()));
    }
    libopus_ops(&ops, rate).concat()
}

fn have_libopus(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import ctypes; ctypes.CDLL('libopus.so.0')"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skipped(&format!("{test}: python3 with libopus (the reference decoder) is not there"));
    }
    ok
}

/// 8 kHz positions an Opus packet covers (from its TOC: 48 kHz samples / 6).
fn opus_len(payload: &[u8]) -> usize {
    opus::packet::get_nb_samples(payload, 48_000).unwrap() / 6
}

/// The libopus calls that make the channel of an Opus sender decoded at `per` samples per
/// 8 kHz position (2: 16 kHz, 6: 48 kHz), as the recorder documents its decoding
/// (mixer/src/mix/opus.rs), with the position (8 kHz) each call's samples start at: its packets in order through one decoder; after a gap of lost packets of up to 60 ms
/// the gap's last frame from the next packet's in-band FEC (`decode_fec` 1) and the 20 ms
/// frames before it by concealment (libopus decodes FEC as long as the packet's own frame);
/// a longer gap (DTX, hold) silence, no call.
fn opus_calls(packets: &[(usize, Sent)], fec: bool, per: usize) -> Vec<(usize, OpusOp)> {
    let mut ops = Vec::new();
    let mut next: Option<usize> = None;
    for (at, s) in packets {
        let len = opus_len(&s.payload);
        if let Some(n) = next.filter(|&n| *at > n && at - n <= 480) {
            // The packet's FEC is a frame of its own length (LBRR: the frame before it again).
            let gap = at - n;
            let from_fec = gap.min(len);
            assert!((gap - from_fec).is_multiple_of(160), "a gap of {gap} positions: whole 20 ms frames only here");
            for k in 0..(gap - from_fec) / 160 {
                ops.push((n + 160 * k, OpusOp::Conceal(160 * per)));
            }
            let last = at - from_fec;
            let n = per * from_fec;
            ops.push((last, if fec { OpusOp::Fec(s.payload.clone(), n) } else { OpusOp::Conceal(n) }));
        }
        ops.push((*at, OpusOp::Decode(s.payload.clone())));
        next = Some(at + len);
    }
    ops
}

/// The channel at `rate` (`rate / 8000 · positions` samples) a correct recorder writes for an
/// Opus sender (see [`opus_calls`]); `fec: false` conceals the FEC frame instead (to show the
/// FEC is there).
fn expected_opus(packets: &[(usize, Sent)], positions: usize, fec: bool, rate: u32) -> Vec<i16> {
    let per = (rate / 8000) as usize;
    let calls = opus_calls(packets, fec, per);
    let pcm = libopus_ops(&calls.iter().map(|c| c.1.clone()).collect::<Vec<_>>(), rate);
    let mut ch = vec![0i16; per * positions];
    for ((at, _), samples) in calls.iter().zip(&pcm) {
        ch[per * at..per * at + samples.len()].copy_from_slice(samples);
    }
    ch
}

/// Every audio packet of `packets` covers its 8 kHz positions (Opus by its TOC).
fn extent(packets: &[(usize, Sent)]) -> usize {
    packets
        .iter()
        .map(|(at, s)| at + if s.pt == callgen::OPUS_PT { opus_len(&s.payload) } else { s.payload.len() })
        .max()
        .unwrap_or(0)
}

/// The impairments of what `party` sends.
fn impaired(spec: &CallSpec, party: Party) -> &callgen::DirImpair {
    match party {
        Party::Caller => &spec.impair.caller,
        Party::Callee => &spec.impair.callee,
    }
}

/// A party's PCMU packets decoded where they belong on `positions` 8 kHz positions (silence
/// elsewhere).
fn expected_pcmu(packets: &[(usize, Sent)], positions: usize) -> Vec<i16> {
    let mut want = vec![0i16; positions];
    for (at, s) in packets {
        for (j, &b) in s.payload.iter().enumerate() {
            want[at + j] = ULAW_TO_LINEAR[b as usize];
        }
    }
    want
}

/// The record's stream of `side`.
fn stream_of<'a>(rec: &'a serde_json::Value, side: &str) -> &'a serde_json::Value {
    rec["streams"].as_array().unwrap().iter().find(|s| s["side"] == side).unwrap()
}

/// The record's codec segment of a party that sent one codec throughout.
fn check_one_segment(ctx: &str, rec: &serde_json::Value, side: &str, codec: Codec, packets: &[(usize, Sent)]) {
    let segments = rec["codecs"]["segments"].as_array().unwrap();
    let mine: Vec<&serde_json::Value> = segments.iter().filter(|g| g["side"] == side).collect();
    assert_eq!(mine.len(), 1, "{ctx}: {segments:?}");
    check_segment(ctx, mine[0], codec, packets);
}

/// One codec segment of the record: its codec, decoded, with these packets and their times.
fn check_segment(ctx: &str, seg: &serde_json::Value, codec: Codec, packets: &[(usize, Sent)]) {
    assert_eq!(seg["codec"], codec.encoding_name(), "{ctx}");
    assert_eq!(seg["payload_type"], codec.payload_type(), "{ctx}");
    assert_eq!(seg["decoded"], true, "{ctx}");
    assert_eq!(seg["packets"].as_u64(), Some(packets.len() as u64), "{ctx}: {seg}");
    assert_eq!(seg["first"], rfc3339(packets[0].1.capture_ns), "{ctx}");
    assert_eq!(seg["last"], rfc3339(packets.last().unwrap().1.capture_ns), "{ctx}");
}

/// A recording above 8 kHz: its record, each party's audio packets, positions, the two
/// channels.
type RecordedWide<'a> = (&'a common::Rec, [Vec<(usize, Sent)>; 2], usize, [Vec<i16>; 2]);

/// Call `i`'s recording, which must be at 16 kHz: its record, each party's audio packets (from
/// the recording's start), the 8 kHz positions they cover and the two channels.
fn recorded_16k<'a>(r: &'a gen_check::Run, scenario: &Scenario, i: usize) -> RecordedWide<'a> {
    recorded_at(r, scenario, i, 16_000)
}

/// [`recorded_16k`] for a recording at `rate`.
fn recorded_at<'a>(r: &'a gen_check::Run, scenario: &Scenario, i: usize, rate: u32) -> RecordedWide<'a> {
    let ctx = format!("call {i}");
    let rec = r.record(&r.truth.calls[i].call_id);
    assert_eq!(rec.value["audio"]["sample_rate"], rate, "{ctx}");
    let (origin, parties) = both_parties(scenario, i);
    assert_eq!(rec.value["audio"]["media_start"], rfc3339(origin), "{ctx}");
    let positions = parties.iter().map(|p| extent(p)).max().unwrap();
    let got = channels_at(rec.wav.as_deref().unwrap(), rate);
    assert_eq!(got[0].len(), (rate / 8000) as usize * positions, "{ctx}: frames");
    assert_eq!(rec.value["audio"]["frames"].as_u64(), Some(got[0].len() as u64), "{ctx}: frames");
    (rec, parties, positions, got)
}

#[test]
fn opus_calls_with_lost_packets_are_decoded_as_libopus_decodes_them_with_fec() {
    opus_calls_with_lost_packets_at(
        16_000,
        "opus_calls_with_lost_packets_are_decoded_as_libopus_decodes_them_with_fec",
    );
}

/// `opus_rate = 48000`: the same calls recorded at 48 kHz, Opus as libopus decodes it at
/// 48 kHz (FEC, concealment), the PCMU party's samples every sixth sample of its channel.
#[test]
fn opus_at_48k_is_decoded_as_libopus_decodes_it_at_48k_and_pcmu_beside_it_stays_aligned() {
    opus_calls_with_lost_packets_at(48_000, "opus_at_48k_is_decoded_as_libopus_decodes_it_at_48k");
}

/// Opus calls with lost packets (and one with a PCMU party) recorded with `opus_rate = rate`,
/// each channel checked sample by sample against libopus at that rate or the PCMU codes.
fn opus_calls_with_lost_packets_at(rate: u32, test: &str) {
    if !have_libopus(test) {
        return;
    }
    let per = (rate / 8000) as usize;
    // Real Opus from libopus (in-band FEC on), 20 ms packets. 0: both ways, the caller losing
    // single packets, the callee one and two in a row. 1: 40 ms packets, the callee losing
    // single ones; the caller lossless. 2: an Opus caller, a PCMU callee.
    let mut lossy = call(0, 6_000);
    lossy.codec = Codec::Opus;
    lossy.impair.caller.loss = vec![10, 57, 200];
    lossy.impair.callee.loss = vec![30, 31, 150];
    let mut long = call(1, 4_000);
    long.codec = Codec::Opus;
    long.ptime_ms = 40;
    long.impair.callee.loss = vec![20, 61];
    let mut mixed = call(2, 4_000);
    mixed.codec = Codec::Opus;
    mixed.callee_codec = Some(Codec::Pcmu);
    mixed.impair.caller.loss = vec![40];
    let scenario = Scenario { calls: vec![lossy, long, mixed], seed: 17, ..Scenario::default() };
    let r = run(&scenario, &["--opus-rate", &rate.to_string()]);
    for i in 0..scenario.calls.len() {
        let ctx = format!("call {i}");
        let spec = &scenario.calls[i];
        let (rec, parties, positions, got) = recorded_at(&r, &scenario, i, rate);
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            let side = if k == 0 { "caller" } else { "callee" };
            let codec = spec.codec_of(party);
            check_one_segment(&ctx, &rec.value, side, codec, &parties[k]);
            let packets = &parties[k];
            match codec {
                Codec::Opus => {
                    // RFC 7587: a 48 kHz RTP clock whatever the audio.
                    let step = 48 * spec.ptime_ms;
                    assert!(
                        packets
                            .windows(2)
                            .all(|w| w[1].1.ts.wrapping_sub(w[0].1.ts) == step * (w[1].1.index - w[0].1.index)),
                        "{ctx}: timestamps"
                    );
                    let want = expected_opus(packets, positions, true, rate);
                    assert!(want.iter().filter(|s| s.unsigned_abs() > 2000).count() > positions / 2, "{ctx}: sound");
                    assert_same(&ctx, &got[k], &want);
                    // The FEC is real: each gap recovered from it differs from libopus's
                    // concealment of the same frame.
                    let lost = &impaired(spec, party).loss;
                    if !lost.is_empty() {
                        let concealed = expected_opus(packets, positions, false, rate);
                        for &l in lost.iter().filter(|&&l| !lost.contains(&(l + 1))) {
                            let at = packets.iter().find(|(_, s)| s.index == l + 1).unwrap().0;
                            let frame = per * (at - 8 * spec.ptime_ms as usize)..per * at;
                            assert_ne!(want[frame.clone()], concealed[frame], "{ctx}: packet {l} from FEC");
                        }
                    }
                    let stream = stream_of(&rec.value, side);
                    assert_eq!(stream["lost"].as_u64(), Some(lost.len() as u64), "{ctx}: {stream}");
                    assert_eq!(stream["codec"], "opus", "{ctx}");
                }
                Codec::Pcmu => {
                    let want = expected_pcmu(packets, positions);
                    let own: Vec<i16> = got[k].iter().step_by(per).copied().collect();
                    assert_same(&ctx, &own, &want);
                }
                other => unreachable!("{other:?}"),
            }
        }
    }
}

#[test]
fn opus_dtx_silences_are_silent_and_the_talk_around_them_is_decoded_as_libopus_decodes_it() {
    let test = "opus_dtx_silences_are_silent";
    if !have_libopus(test) {
        return;
    }
    // Both parties pause for 1.5 s and 1 s; their encoders (DTX on) stop sending after about
    // 200 ms of silence but for a frame every 400 ms. The caller also loses a packet.
    let mut c = call(0, 8_000);
    c.codec = Codec::Opus;
    c.opus_dtx = true;
    c.silences = vec![
        callgen::Silence { party: Party::Caller, at_packet: 100, packets: 75 },
        callgen::Silence { party: Party::Callee, at_packet: 150, packets: 50 },
        callgen::Silence { party: Party::Callee, at_packet: 300, packets: 60 },
    ];
    c.impair.caller.loss = vec![40];
    let scenario = Scenario { calls: vec![c], seed: 19, ..Scenario::default() };
    let r = run(&scenario, &[]);
    let spec = &scenario.calls[0];
    let (rec, parties, positions, got) = recorded_16k(&r, &scenario, 0);
    for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
        let ctx = format!("{party:?}");
        let side = if k == 0 { "caller" } else { "callee" };
        let packets = &parties[k];
        // DTX took packets out of each silence (and only there), sequence numbers unbroken.
        let silent: Vec<(u32, u32)> =
            spec.silences.iter().filter(|s| s.party == party).map(|s| (s.at_packet, s.at_packet + s.packets)).collect();
        let sent: std::collections::HashSet<u32> = packets.iter().map(|(_, s)| s.index).collect();
        let lost = &impaired(spec, party).loss;
        let unsent: Vec<u32> =
            (0..spec.packets_per_direction()).filter(|i| !sent.contains(i) && !lost.contains(i)).collect();
        for &(a, b) in &silent {
            assert!(unsent.iter().filter(|&&i| (a..=b).contains(&i)).count() > 20, "{ctx}: DTX in {a}..{b}");
        }
        assert!(unsent.iter().all(|&i| silent.iter().any(|&(a, b)| (a..=b).contains(&i))), "{ctx}: {unsent:?}");
        let mut seqs: Vec<u16> = packets.iter().map(|(_, s)| s.seq).collect();
        for &l in lost {
            seqs.push(packets.iter().find(|(_, s)| s.index == l + 1).unwrap().1.seq.wrapping_sub(1));
        }
        seqs.sort_by_key(|&q| q.wrapping_sub(packets[0].1.seq));
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{ctx}: sequence numbers");
        let want = expected_opus(packets, positions, true, 16_000);
        // Silence where nothing was sent for longer than 60 ms.
        for w in packets.windows(2) {
            let end = w[0].0 + opus_len(&w[0].1.payload);
            if w[1].0 - end > 480 {
                assert!(want[2 * end..2 * w[1].0].iter().all(|&s| s == 0), "{ctx}");
            }
        }
        assert_same(&ctx, &got[k], &want);
        check_one_segment(&ctx, &rec.value, side, Codec::Opus, packets);
        let stream = stream_of(&rec.value, side);
        assert_eq!(stream["lost"].as_u64(), Some(lost.len() as u64), "{ctx}: DTX is not loss: {stream}");
    }
}

#[test]
fn a_codec_change_to_and_from_opus_keeps_every_sample_and_lists_each_codec_segment() {
    codec_change_to_and_from_opus_at(16_000, "a_codec_change_to_and_from_opus");
}

/// The same codec changes with `opus_rate = 48000`: the PCMU call that turns Opus is rewritten
/// from 8 kHz to 48 kHz mid-call, every PCMU sample still every sixth sample in its place.
#[test]
fn a_codec_change_to_and_from_opus_at_48k_keeps_every_sample() {
    codec_change_to_and_from_opus_at(48_000, "a_codec_change_to_and_from_opus_at_48k");
}

fn codec_change_to_and_from_opus_at(rate: u32, test: &str) {
    if !have_libopus(test) {
        return;
    }
    let per = (rate / 8000) as usize;
    // 0: Opus both ways, the caller re-INVITEs to PCMU after 2.5 s. 1: PCMU both ways, the
    // callee re-INVITEs to Opus after 2 s (the recording turns to `rate`: what was written is
    // rewritten). Both recorded at `rate`; the RTP timestamps count on at the new clock.
    let mut down = call(0, 6_000);
    down.codec = Codec::Opus;
    down.midcall = vec![callgen::MidCall::ChangeCodec { by: Party::Caller, at_ms: 2_500, codec: Codec::Pcmu }];
    let mut up = call(1, 5_000);
    up.midcall = vec![callgen::MidCall::ChangeCodec { by: Party::Callee, at_ms: 2_000, codec: Codec::Opus }];
    let scenario = Scenario { calls: vec![down, up], seed: 23, ..Scenario::default() };
    let r = run(&scenario, &["--opus-rate", &rate.to_string()]);
    for i in 0..scenario.calls.len() {
        let ctx = format!("call {i}");
        let (first, then) = if i == 0 { (Codec::Opus, Codec::Pcmu) } else { (Codec::Pcmu, Codec::Opus) };
        let (rec, parties, positions, got) = recorded_at(&r, &scenario, i, rate);
        let segments = rec.value["codecs"]["segments"].as_array().unwrap();
        for (k, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let ctx = format!("{ctx} {party:?}");
            let part = |c: Codec| -> Vec<(usize, Sent)> {
                parties[k].iter().filter(|(_, s)| s.pt == c.payload_type()).cloned().collect()
            };
            let (before, after) = (part(first), part(then));
            assert!(before.len() > 50 && after.len() > 50, "{ctx}: both codecs sent");
            assert_eq!(before.len() + after.len(), parties[k].len());
            assert!(before.last().unwrap().0 < after[0].0, "{ctx}: one switch");
            // The timestamps go on across the switch, each codec at its own clock.
            let (b, a) = (&before.last().unwrap().1, &after[0].1);
            assert_eq!(a.ts.wrapping_sub(b.ts), first.rtp_clock() / 50, "{ctx}: timestamps across the switch");
            // Each part exact: Opus against libopus (a fresh decoder at its first packet),
            // PCMU's samples as every `per`-th sample.
            let (opus, pcmu) = if i == 0 { (&before, &after) } else { (&after, &before) };
            let want = expected_opus(opus, positions, true, rate);
            assert!(want.iter().filter(|s| s.unsigned_abs() > 2000).count() > opus.len() * 100, "{ctx}: sound");
            let ulaw = expected_pcmu(pcmu, positions);
            let (o_from, o_to) = (opus[0].0, extent(opus));
            let (p_from, p_to) = (pcmu[0].0, extent(pcmu));
            let (o, p) = (per * o_from..per * o_to, per * p_from..per * p_to);
            assert_same(&format!("{ctx} Opus part"), &got[k][o.clone()], &want[o]);
            let own: Vec<i16> = got[k][p].iter().step_by(per).copied().collect();
            assert_same(&format!("{ctx} PCMU part"), &own, &ulaw[p_from..p_to]);
            // Two segments for the party, in order, each with its packets and times.
            let side = if k == 0 { "caller" } else { "callee" };
            let mine: Vec<&serde_json::Value> = segments.iter().filter(|g| g["side"] == side).collect();
            assert_eq!(mine.len(), 2, "{ctx}: {segments:?}");
            for (seg, (codec, packets)) in mine.iter().zip([(first, &before), (then, &after)]) {
                check_segment(&ctx, seg, codec, packets);
            }
        }
    }
}

/// The payloads of one RTP stream of a capture, packet by packet, as tshark reads them.
fn tshark_packets(pcap: &Path, ssrc: u32, pt: u8) -> Vec<Vec<u8>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-o", "rtp.heuristic_rtp:TRUE", "-Y"])
        .arg(format!("rtp.ssrc == {ssrc:#x} && rtp.p_type == {pt}"))
        .args(["-T", "fields", "-e", "rtp.payload"])
        .output()
        .expect("run tshark");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let hex: String = l.chars().filter(char::is_ascii_hexdigit).collect();
            (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
        })
        .collect()
}

#[test]
fn corpus_opus_capture_is_recorded_at_16_and_48_khz_as_libopus_decodes_it() {
    if !common::have("tshark") || !common::have("editcap") {
        skipped("corpus_opus_capture: tshark or editcap is not installed");
        return;
    }
    let name = "sip-rtp-opus-sipp.pcap";
    let Some((_dir, recs)) = corpus_wav(name) else { return };
    assert_eq!(recs.len(), 1, "one call");
    let rec = &recs[0];
    assert_eq!(rec.value["audio"]["sample_rate"], 16000);
    let stream = &rec.value["streams"][0];
    assert_eq!((stream["codec"].as_str(), stream["lost"].as_u64()), (Some("opus"), Some(0)));
    let seg = &rec.value["codecs"]["segments"][0];
    assert_eq!(
        (seg["codec"].as_str(), seg["decoded"].as_bool(), seg["packets"].as_u64()),
        (Some("opus"), Some(true), Some(425))
    );
    let ssrc = u32::from_str_radix(stream["ssrc"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let packets: Vec<Option<Vec<u8>>> = tshark_packets(&corpus(name), ssrc, 99).into_iter().map(Some).collect();
    assert_eq!(packets.len(), 425);
    let want = libopus_16k(&packets);
    let got = channels_at(rec.wav.as_deref().unwrap(), 16000);
    let k = usize::from(stream["side"] == "callee");
    assert_same(name, &got[k], &want);
    assert!(want.iter().filter(|s| s.unsigned_abs() > 1000).count() > 10_000, "the reference has sound");
    assert!(got[1 - k].iter().all(|&s| s == 0), "the silent party's channel is silent");

    // The same capture with one RTP packet (the 100th of the stream) cut out: the gap is
    // filled from the next packet (FEC, or libopus's concealment where it carries none),
    // and everything after it decodes as libopus does after that.
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let frames = Command::new("tshark")
        .arg("-r")
        .arg(corpus(name))
        .args(["-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp.p_type == 99", "-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    let frame: String = String::from_utf8(frames.stdout).unwrap().lines().nth(99).unwrap().to_owned();
    assert!(Command::new("editcap").arg(corpus(name)).arg(&cut).arg(&frame).status().unwrap().success());
    let out = replay(&[&cut], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    let rec = &recs[0];
    assert_eq!(rec.value["streams"][0]["lost"], 1);
    let mut lossy = packets.clone();
    lossy[99] = None;
    let want = libopus_16k(&lossy);
    let got = channels_at(rec.wav.as_deref().unwrap(), 16000);
    assert_same("one packet lost", &got[k], &want);

    // With `--opus-rate 48000`: a 48 kHz recording, libopus's own decoding at 48 kHz.
    let Some((_dir, recs)) = corpus_wav_with(name, &["--opus-rate", "48000"]) else { return };
    let rec = &recs[0];
    assert_eq!(rec.value["audio"]["sample_rate"], 48000);
    let got = channels_at(rec.wav.as_deref().unwrap(), 48000);
    let want = libopus_at(&packets, 48_000);
    assert_eq!(want.len(), 3 * libopus_16k(&packets).len());
    assert_same("at 48 kHz", &got[k], &want);
    assert!(got[1 - k].iter().all(|&s| s == 0), "the silent party's channel is silent");
    // And as opusdec (opus-tools) decodes the same packets from an Ogg Opus file.
    if !common::have("opusdec") {
        skipped("corpus_opus_capture: opusdec is not installed; the 48 kHz cross-check with it did not run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ogg = dir.path().join("stream.opus");
    std::fs::write(&ogg, ogg_opus(&packets.iter().flatten().cloned().collect::<Vec<_>>())).unwrap();
    let raw = dir.path().join("stream.raw");
    let out = Command::new("opusdec")
        .args(["--quiet", "--rate", "48000", "--no-dither"])
        .arg(&ogg)
        .arg(&raw)
        .output()
        .expect("run opusdec");
    assert!(out.status.success(), "opusdec: {}", String::from_utf8_lossy(&out.stderr));
    let decoded: Vec<i16> =
        std::fs::read(&raw).unwrap().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert_same("opusdec at 48 kHz", &got[k], &decoded);
}

/// An Ogg Opus file (RFC 7845) of mono `packets`, one per page: OpusHead without pre-skip,
/// an empty OpusTags, each page's granule position the 48 kHz samples up to its end.
fn ogg_opus(packets: &[Vec<u8>]) -> Vec<u8> {
    fn crc(bytes: &[u8]) -> u32 {
        // The Ogg CRC: polynomial 0x04c11db7, not reflected, initial 0, no final xor.
        bytes.iter().fold(0u32, |mut c, &b| {
            c ^= u32::from(b) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04c1_1db7 } else { c << 1 };
            }
            c
        })
    }
    let mut file = Vec::new();
    let mut page = |packet: &[u8], flags: u8, granule: u64, seq: u32| {
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&0x6361_6c6cu32.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(lacing.len() as u8);
        p.extend_from_slice(&lacing);
        p.extend_from_slice(packet);
        let sum = crc(&p);
        p[22..26].copy_from_slice(&sum.to_le_bytes());
        file.extend_from_slice(&p);
    };
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1, 0, 0]); // version, mono, pre-skip 0
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]); // gain 0, mapping family 0
    page(&head, 0x02, 0, 0);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&4u32.to_le_bytes());
    tags.extend_from_slice(b"test");
    tags.extend_from_slice(&0u32.to_le_bytes());
    page(&tags, 0, 0, 1);
    let mut granule = 0u64;
    for (i, packet) in packets.iter().enumerate() {
        granule += opus::packet::get_nb_samples(packet, 48_000).unwrap() as u64;
        let flags = if i + 1 == packets.len() { 0x04 } else { 0 };
        page(packet, flags, granule, i as u32 + 2);
    }
    file
}
