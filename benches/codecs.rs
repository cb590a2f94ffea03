//! Decode cost per codec: one iteration is one second of one party's audio, so criterion's
//! time per iteration is the CPU time a second of audio costs (µs per second of audio).
//!
//! `cargo bench --bench codecs`. G.711 is a table lookup per sample; G.722 the ITU-T decoder
//! (two 16 kHz samples per code); the ×2 interpolator is what a G.711 party costs in a call
//! recorded at 16 kHz, and ×6 (the ×2 then the ×3 stage) at 48 kHz; Opus is libopus at
//! 16 kHz (and 48 kHz, `opus_rate = 48000`) on 20 ms packets of a 24 kbit/s voice encoding of
//! a tone sweep; G.729 (libbcg729, 100 frames) and GSM (libgsm, 50 frames) on
//! the libraries' own decoders; L16 (8 and 16 kHz) is a byte swap per sample.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mixer::mix::g711::ULAW_TO_LINEAR;
use mixer::mix::g722::G722Decoder;
use mixer::mix::wideband::{Cell, UpChannel, WideChannel};

/// One second of a varying signal at 8 kHz.
fn speechlike(rate: usize) -> Vec<i16> {
    (0..rate)
        .map(|n| {
            let t = n as f64 / rate as f64;
            ((t * 2000.0 * (1.0 + t) * std::f64::consts::TAU).sin() * 8000.0 * (1.0 + (t * 7.0).sin()) / 2.0) as i16
        })
        .collect()
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_one_second");
    let codes: Vec<u8> = speechlike(8000).iter().map(|&s| (s >> 8) as u8).collect();
    g.bench_function("g711", |b| {
        let mut out = vec![0i16; 8000];
        b.iter(|| {
            for (o, &c) in out.iter_mut().zip(black_box(&codes)) {
                *o = ULAW_TO_LINEAR[c as usize];
            }
            black_box(&out);
        });
    });
    g.bench_function("g722", |b| {
        let mut dec = G722Decoder::new();
        let mut out = vec![0i16; 16000];
        b.iter(|| {
            for (o, &c) in out.chunks_exact_mut(2).zip(black_box(&codes)) {
                o.copy_from_slice(&dec.decode(c));
            }
            black_box(&out);
        });
    });
    g.bench_function("g711_to_16khz", |b| {
        let mut ch = WideChannel::new();
        let pcm = speechlike(8000);
        b.iter(|| {
            for &s in black_box(&pcm) {
                black_box(ch.push(Cell::Narrow(s)));
            }
        });
    });
    g.bench_function("interpolate_x6_to_48khz", |b| {
        let mut ch = UpChannel::new(48_000);
        let pcm = speechlike(8000);
        b.iter(|| {
            for &s in black_box(&pcm) {
                black_box(ch.push(Cell::Narrow(s)));
            }
        });
    });
    for rate in [48_000, 16_000] {
        g.bench_function(format!("opus_{}khz", rate / 1000), |b| {
            let mut enc = opus::Encoder::new(16000, opus::Channels::Mono, opus::Application::Voip).unwrap();
            enc.set_bitrate(opus::Bitrate::Bits(24000)).unwrap();
            let pcm = speechlike(16000);
            let packets: Vec<Vec<u8>> = pcm.chunks_exact(320).map(|f| enc.encode_vec(f, 1500).unwrap()).collect();
            let mut dec = opus::Decoder::new(rate, opus::Channels::Mono).unwrap();
            let mut out = vec![0i16; rate as usize / 50];
            b.iter(|| {
                for p in black_box(&packets) {
                    dec.decode(p, &mut out, false).unwrap();
                }
                black_box(&out);
            });
        });
    }
    // G.729 and GSM: the libraries' decoders on the generator's frames (any bits decode; the
    // cost does not depend on what they say).
    g.bench_function("g729", |b| {
        let frames: Vec<u8> = codes.iter().step_by(8).copied().collect();
        let mut dec = codecs::G729Decoder::new().unwrap();
        let mut out = [0i16; codecs::G729_SAMPLES];
        b.iter(|| {
            for f in black_box(&frames).chunks_exact(codecs::G729_FRAME) {
                dec.decode(f, &mut out);
            }
            black_box(&out);
        });
    });
    g.bench_function("gsm", |b| {
        let mut frames: Vec<u8> = codes.iter().step_by(4).take(50 * codecs::GSM_FRAME).copied().collect();
        frames.iter_mut().step_by(codecs::GSM_FRAME).for_each(|b| *b = 0xd0 | (*b & 0x0f));
        let mut dec = codecs::GsmDecoder::new().unwrap();
        let mut out = [0i16; codecs::GSM_SAMPLES];
        b.iter(|| {
            for f in black_box(&frames).chunks_exact(codecs::GSM_FRAME) {
                dec.decode(f.try_into().unwrap(), &mut out);
            }
            black_box(&out);
        });
    });
    // L16: 20 ms packets of big-endian samples through the mixer's L16 decoding (byte order
    // into the party's buffer), at 8 and 16 kHz.
    for (name, rate) in [("l16_8khz", 8000), ("l16_16khz", 16000)] {
        g.bench_function(name, |b| {
            let bytes: Vec<u8> = speechlike(rate).iter().flat_map(|s| s.to_be_bytes()).collect();
            let mut side = mixer::mix::linear::L16Side::new();
            b.iter(|| {
                for p in black_box(&bytes).chunks_exact(rate / 50 * 2) {
                    side.decode(p);
                    black_box(side.samples());
                }
            });
        });
    }
    g.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
