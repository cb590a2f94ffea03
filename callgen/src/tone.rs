//! The test tone each party sends, and the G.711 payloads made from it.
//!
//! Sample `n` of a party's stream is `round(TONE_AMPLITUDE * sin(2π f n / 8000))`, with the
//! phase reduced exactly before the sine is taken (see [`tone_sample`]). Samples are numbered
//! continuously over the stream: RTP packet `k` carries samples `k·spp .. (k+1)·spp`, where
//! `spp = ptime_ms · 8`.
//!
//! Computing a sine per sample would dominate generation time for large captures, so the
//! generator encodes one period of each integer-frequency tone once ([`ToneCache`]) and copies
//! from it. The table is built from [`tone_sample`] itself, so the bytes are identical to the
//! direct formula that tests use.

use std::collections::HashMap;
use std::f64::consts::TAU;
use std::rc::Rc;

use crate::spec::Codec;

/// G.711 sample rate in Hz.
pub const SAMPLE_RATE: u32 = 8000;

/// Peak amplitude of the test tones: 16384 of 32767, about -6 dBFS.
pub const TONE_AMPLITUDE: f64 = 16384.0;

/// Longest period, in samples, that [`ToneCache`] tabulates (one second at 8 kHz).
const MAX_TABLE_PERIOD: u64 = SAMPLE_RATE as u64;

/// Linear sample `n` of a sine of `freq_hz` at 8 kHz and amplitude [`TONE_AMPLITUDE`].
///
/// The phase is reduced before the sine: `sin(2π · ((f·n) mod 8000) / 8000)`, which is
/// `sin(2π f n / 8000)` computed without losing precision for large `n`. For an integer `f`
/// the reduction is done in integers, so it is exact and the sequence exactly periodic; other
/// frequencies use `f64::rem_euclid`.
pub fn tone_sample(freq_hz: f64, n: u64) -> i16 {
    let rate = f64::from(SAMPLE_RATE);
    let reduced = if freq_hz.fract() == 0.0 && (0.0..rate).contains(&freq_hz) {
        ((freq_hz as u128 * u128::from(n)) % u128::from(SAMPLE_RATE)) as f64
    } else {
        (freq_hz * n as f64).rem_euclid(rate)
    };
    let value = (TONE_AMPLITUDE * (TAU * (reduced / rate)).sin()).round();
    value.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Sample `n` of the same tone computed at 16 kHz: `round(TONE_AMPLITUDE * sin(2π f n /
/// 16000))` (phase reduced as in [`tone_sample`]), so sample `2n` is [`tone_sample`]`(f, n)`.
pub fn tone_sample_16k(freq_hz: f64, n: u64) -> i16 {
    if n.is_multiple_of(2) {
        return tone_sample(freq_hz, n / 2);
    }
    let rate = 2.0 * f64::from(SAMPLE_RATE);
    let reduced = if freq_hz.fract() == 0.0 && (0.0..rate).contains(&freq_hz) {
        ((freq_hz as u128 * u128::from(n)) % (2 * u128::from(SAMPLE_RATE))) as f64
    } else {
        (freq_hz * n as f64).rem_euclid(rate)
    };
    let value = (TONE_AMPLITUDE * (TAU * (reduced / rate)).sin()).round();
    value.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Number of samples (= payload bytes) in one G.711 packet of `ptime_ms`.
pub fn samples_per_packet(ptime_ms: u32) -> u32 {
    ptime_ms * (SAMPLE_RATE / 1000)
}

/// The G.711 payload of RTP packet `k` of a stream carrying a `tone_hz` tone.
///
/// Tests use this to compute the exact bytes the generator sent (or would have sent, for a lost
/// packet) and so the exact samples a correct recorder must decode.
pub fn expected_payload(codec: Codec, tone_hz: f64, ptime_ms: u32, k: u32) -> Vec<u8> {
    let spp = u64::from(samples_per_packet(ptime_ms));
    let first = u64::from(k) * spp;
    (first..first + spp).map(|n| codec.encode(tone_sample(tone_hz, n))).collect()
}

/// Encoded tone periods shared by every stream with the same tone and codec.
///
/// Memory is bounded by the number of distinct (tone, codec) pairs in a scenario, at most
/// 8000 bytes each; it does not grow with the number of packets.
#[derive(Debug, Default)]
pub(crate) struct ToneCache {
    tables: HashMap<(u64, Codec), Rc<[u8]>>,
}

/// How to fill one stream's payloads: from a shared period table, or sample by sample.
#[derive(Debug, Clone)]
pub(crate) enum ToneSource {
    /// One encoded period of the tone; sample `n` is `table[n % table.len()]`.
    Table(Rc<[u8]>),
    /// A tone without a short period: every sample is computed.
    Direct { codec: Codec, freq_hz: f64 },
}

impl ToneCache {
    /// The source for a stream of `freq_hz` encoded with `codec`.
    pub(crate) fn source(&mut self, codec: Codec, freq_hz: f64) -> ToneSource {
        let Some(period) = period_samples(freq_hz) else {
            return ToneSource::Direct { codec, freq_hz };
        };
        let table = self
            .tables
            .entry((freq_hz.to_bits(), codec))
            .or_insert_with(|| (0..period).map(|n| codec.encode(tone_sample(freq_hz, n))).collect());
        ToneSource::Table(Rc::clone(table))
    }
}

impl ToneSource {
    /// Appends samples `first .. first + count` to `out`.
    pub(crate) fn fill(&self, first: u64, count: usize, out: &mut Vec<u8>) {
        match self {
            ToneSource::Table(table) => {
                let len = table.len();
                // `len` is at most 8000, so the remainder fits in usize.
                let mut pos = (first % len as u64) as usize;
                let mut left = count;
                while left > 0 {
                    let take = left.min(len - pos);
                    out.extend_from_slice(&table[pos..pos + take]);
                    left -= take;
                    pos = 0;
                }
            }
            ToneSource::Direct { codec, freq_hz } => {
                out.extend((first..first + count as u64).map(|n| codec.encode(tone_sample(*freq_hz, n))));
            }
        }
    }
}

/// The exact period in samples of an integer-frequency tone, if it is short enough to table.
fn period_samples(freq_hz: f64) -> Option<u64> {
    if freq_hz.fract() != 0.0 || !(1.0..f64::from(SAMPLE_RATE)).contains(&freq_hz) {
        return None;
    }
    let f = freq_hz as u64;
    let period = u64::from(SAMPLE_RATE) / gcd(f, u64::from(SAMPLE_RATE));
    (period <= MAX_TABLE_PERIOD).then_some(period)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_matches_plain_formula_for_small_n() {
        for n in 0..2000u64 {
            let plain = (TONE_AMPLITUDE * (TAU * 1000.0 * n as f64 / 8000.0).sin()).round() as i16;
            assert_eq!(tone_sample(1000.0, n), plain, "n = {n}");
        }
        assert_eq!(tone_sample(2000.0, 1), 16384);
        assert_eq!(tone_sample(2000.0, 3), -16384);
        // The integer reduction agrees with the float one wherever the float one is exact.
        for n in [0u64, 1, 7_999, 8_000, 1 << 40] {
            let float = (337.0 * n as f64).rem_euclid(8000.0);
            let expected = (TONE_AMPLITUDE * (TAU * (float / 8000.0)).sin()).round() as i16;
            assert_eq!(tone_sample(337.0, n), expected);
        }
    }

    #[test]
    fn table_and_direct_agree() {
        let mut cache = ToneCache::default();
        for &(f, codec) in &[(337.0, Codec::Pcmu), (1999.0, Codec::Pcma), (440.5, Codec::Pcmu)] {
            let source = cache.source(codec, f);
            let direct = ToneSource::Direct { codec, freq_hz: f };
            for first in [0u64, 7, 7_999, 8_000, 123_456_789] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                source.fill(first, 480, &mut a);
                direct.fill(first, 480, &mut b);
                assert_eq!(a, b, "f = {f}, first = {first}");
            }
        }
    }

    #[test]
    fn expected_payload_numbers_samples_continuously() {
        let p0 = expected_payload(Codec::Pcmu, 500.0, 20, 0);
        let p1 = expected_payload(Codec::Pcmu, 500.0, 20, 1);
        assert_eq!(p0.len(), 160);
        assert_eq!(p1[0], linear(Codec::Pcmu, 500.0, 160));
        fn linear(codec: Codec, f: f64, n: u64) -> u8 {
            codec.encode(tone_sample(f, n))
        }
    }

    #[test]
    fn periods() {
        assert_eq!(period_samples(1000.0), Some(8));
        assert_eq!(period_samples(337.0), Some(8000));
        assert_eq!(period_samples(440.5), None);
        assert_eq!(period_samples(0.0), None);
    }
}
