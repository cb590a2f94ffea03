//! `--audio-format wav-g711`: a call that is G.711 of one law is stored as the codes the wire
//! carried (µ-law or A-law WAV, one byte per sample), byte for byte what the generator sent,
//! with the law's idle code where a party sent nothing; a standard reader (ffmpeg) decodes it
//! to exactly the 16-bit WAV recording of the same capture. A call with the other law or a
//! wideband codec on one side is stored as that 16-bit recording.

mod common;
mod gen_check;

use std::path::Path;
use std::process::Command;

use callgen::{CallSpec, Codec, Party, Scenario};
use common::{channels, channels_at, records, replay, skipped, text};
use gen_check::sent;

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// The data of a G.711 WAV (checking its header says `law`, stereo, 8 kHz).
fn g711_data(path: &Path, tag: u16) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"RIFF", "{}", path.display());
    assert_eq!(&b[8..16], b"WAVEfmt ");
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    assert_eq!((u32_at(16), u16_at(20), u16_at(22), u32_at(24)), (18, tag, 2, 8000), "format tag, channels, rate");
    assert_eq!((u32_at(28), u16_at(32), u16_at(34)), (16000, 2, 8), "byte rate, block align, bits");
    assert_eq!(&b[38..42], b"fact");
    assert_eq!(&b[50..54], b"data");
    let len = u32_at(54) as usize;
    assert_eq!(len, b.len() - 58, "data size in the header");
    assert_eq!(u32_at(46) as usize, len / 2, "fact: frames");
    assert_eq!(u32_at(4) as usize, b.len() - 8, "RIFF size");
    b[58..].to_vec()
}

/// The codes a correct recorder stores for `party` of call `i`: every audio packet's payload
/// at its RTP timestamp's position (the first packet anchored at its capture time), `idle`
/// elsewhere.
fn expected_codes(scenario: &Scenario, i: usize, party: Party, origin: i64, frames: usize, idle: u8) -> Vec<u8> {
    let codec = scenario.calls[i].codec;
    let packets: Vec<_> = sent(scenario, i, party)
        .into_iter()
        .filter(|s| !s.duplicate && s.pt == codec.payload_type() && !s.payload.is_empty())
        .collect();
    let mut out = vec![idle; frames];
    let Some(first) = packets.iter().min_by_key(|s| s.seq.wrapping_sub(packets[0].seq)) else { return out };
    let at0 = ((first.capture_ns - origin) / 125_000) as usize;
    for s in &packets {
        let at = at0 + s.ts.wrapping_sub(first.ts) as usize;
        out[at..at + s.payload.len()].copy_from_slice(&s.payload);
    }
    out
}

/// ffmpeg's decode of an audio file to 16-bit stereo samples.
fn ffmpeg_decode(path: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-acodec", "pcm_s16le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

#[test]
fn g711_calls_are_stored_as_the_codes_on_the_wire_and_others_as_pcm() {
    let mut calls: Vec<CallSpec> =
        (0..5).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 300_000_000, 6000)).collect();
    // 0: µ-law, packets reordered and lost; 1: A-law with losses; 2: µ-law caller,
    // A-law callee; 3: µ-law caller, G.722 callee; 4: A-law, a silent callee.
    calls[0].impair.caller.reorder = vec![5, 40, 120];
    calls[0].impair.caller.loss = vec![10, 11, 200];
    calls[1].codec = Codec::Pcma;
    calls[1].impair.callee.loss = vec![0, 1, 2, 150];
    calls[2].callee_codec = Some(Codec::Pcma);
    calls[3].callee_codec = Some(Codec::G722);
    calls[4].codec = Codec::Pcma;
    calls[4].impair.callee.silent = true;
    let scenario = Scenario::new(calls);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    callgen::write_pcap(&scenario, &pcap).unwrap();

    let g711 = dir.path().join("g711");
    let out = replay(&[&pcap], &g711, &["--audio-format", "wav-g711"]);
    assert!(out.status.success(), "{}", text(&out));
    let plain = dir.path().join("plain");
    let out = replay(&[&pcap], &plain, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let plain = records(&plain.join("archive"));
    let recs = records(&g711.join("archive"));
    assert_eq!(recs.len(), 5, "{}", text(&out));
    let have_ffmpeg = Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());

    for (i, spec) in scenario.calls.iter().enumerate() {
        let ctx = format!("call {i}");
        let rec = recs.iter().find(|r| r.value["call_id"] == spec.call_id.as_str()).unwrap();
        let reference = plain.iter().find(|r| r.value["call_id"] == spec.call_id.as_str()).unwrap();
        let (audio, wav) = (&rec.value["audio"], rec.wav.as_deref().unwrap());
        let ref_wav = reference.wav.as_deref().unwrap();
        assert_eq!(audio["format"], "wav", "{ctx}");
        assert_eq!(audio["sha256"], common::sha256(wav), "{ctx}");
        assert_eq!(audio["frames"], reference.value["audio"]["frames"], "{ctx}");
        assert_eq!(audio["media_start"], reference.value["audio"]["media_start"], "{ctx}");
        let one_law = spec.callee_codec.is_none();
        if !one_law {
            // Stored as 16-bit PCM: exactly the plain recording's audio.
            assert_eq!((&audio["encoding"], &audio["bits_per_sample"]), (&"pcm_s16le".into(), &16.into()), "{ctx}");
            let rate = audio["sample_rate"].as_u64().unwrap() as u32;
            assert_eq!(channels_at(wav, rate), channels_at(ref_wav, rate), "{ctx}: the 16-bit recording");
            continue;
        }
        let (name, tag, idle) = if spec.codec == Codec::Pcma { ("pcm_alaw", 6, 0xd5) } else { ("pcm_mulaw", 7, 0xff) };
        assert_eq!((&audio["encoding"], &audio["bits_per_sample"]), (&name.into(), &8.into()), "{ctx}");
        let data = g711_data(wav, tag);
        let frames = audio["frames"].as_u64().unwrap() as usize;
        assert_eq!(data.len(), 2 * frames, "{ctx}");
        let origin = gen_check::ns_of(&audio["media_start"]);
        for (c, party) in [Party::Caller, Party::Callee].into_iter().enumerate() {
            let got: Vec<u8> = data.iter().skip(c).step_by(2).copied().collect();
            let want = expected_codes(&scenario, i, party, origin, frames, idle);
            if let Some(k) = (0..frames).find(|&k| got[k] != want[k]) {
                panic!("{ctx}: {party:?} code {k} is {:#04x}, the wire's is {:#04x}", got[k], want[k]);
            }
            assert!(want.iter().filter(|&&b| b != idle).count() > frames / 2 || spec.impair.callee.silent);
        }
        // Half the bytes of the 16-bit recording, which a standard reader gets back exactly
        // (A-law's idle code reads +8 where the 16-bit recording has digital silence).
        assert_eq!(std::fs::metadata(wav).unwrap().len(), 58 + 2 * frames as u64, "{ctx}");
        assert_eq!(std::fs::metadata(ref_wav).unwrap().len(), 44 + 4 * frames as u64, "{ctx}");
        if have_ffmpeg {
            let got = ffmpeg_decode(wav);
            let [r0, r1] = channels(ref_wav);
            let want: Vec<i16> = r0
                .iter()
                .zip(&r1)
                .flat_map(|(a, b)| [*a, *b])
                .map(|s| if s == 0 && idle == 0xd5 { 8 } else { s })
                .collect();
            assert!(got == want, "{ctx}: ffmpeg's decode differs from the 16-bit recording");
        }
    }
    if !have_ffmpeg {
        skipped("wav-g711: decoding with ffmpeg (not installed)");
    }
}

#[test]
fn a_mono_g711_wav_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = replay(
        &[Path::new("/nonexistent.pcap")],
        dir.path(),
        &["--audio-format", "wav-g711", "--audio-layout", "mono"],
    );
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("recording.audio_format") && t.contains("mono"), "{t}");
}
