//! G.711 expansion of both channels into stereo frames, eight frames per step with AVX2: the
//! hot loop of a G.711 recording (every sample of it passes here once). The standard's
//! segment formulas ([`crate::mix::g711`]) are computed in eight 32-bit lanes, one lane per
//! frame, so the two channels' samples meet in their lane and each step is one 32-byte store
//! of eight whole frames, in order. Bit-exact with the tables: the tests compare every pair of
//! codes of every law against them.
//!
//! This module holds the crate's intrinsics and allows `unsafe` (the crate denies it): the
//! one public function is safe; it checks the CPU once per call and hands the rest of its
//! frames, or all of them on a CPU without AVX2, back to the caller's tables.
#![allow(unsafe_code)]

use crate::mix::g711::Expand;

/// Frames decoded per step.
pub(crate) const STEP: usize = 8;

/// Writes `frames[k] = le16(a[k] expanded) ++ le16(b[k] expanded)` for the first frames, a
/// multiple of [`STEP`], and says how many: `frames.len()` rounded down to [`STEP`] with AVX2,
/// 0 without it. `a` and `b` hold at least as many codes as `frames` has frames.
pub(crate) fn decode_pairs(laws: [Expand; 2], a: &[u8], b: &[u8], frames: &mut [[u8; 4]]) -> usize {
    let n = frames.len() / STEP * STEP;
    assert!(a.len() >= n && b.len() >= n, "codes for every frame");
    #[cfg(target_arch = "x86_64")]
    if n > 0 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above); `a`, `b` and `frames` hold at least
        // `n` codes and frames (asserted above), and the function touches nothing beyond.
        unsafe { x86::decode_pairs(laws, a, b, &mut frames[..n]) };
        return n;
    }
    let _ = (laws, a, b);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Expand, STEP};

    /// [`super::decode_pairs`] for `frames.len()` a multiple of [`STEP`].
    ///
    /// # Safety
    /// The CPU has AVX2; `a` and `b` hold at least `frames.len()` codes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode_pairs(laws: [Expand; 2], a: &[u8], b: &[u8], frames: &mut [[u8; 4]]) {
        debug_assert_eq!(frames.len() % STEP, 0);
        let low = _mm256_set1_epi32(0xffff);
        for (k, out) in frames.chunks_exact_mut(STEP).enumerate() {
            let at = k * STEP;
            // SAFETY: `at + STEP <= frames.len() <= a.len(), b.len()`: each 8-byte load is in
            // bounds; `out` is 8 frames, 32 bytes, written by one unaligned store.
            unsafe {
                let sa = expand(laws[0], codes(a.as_ptr().add(at)));
                let sb = expand(laws[1], codes(b.as_ptr().add(at)));
                let frame = _mm256_or_si256(_mm256_and_si256(sa, low), _mm256_slli_epi32::<16>(sb));
                _mm256_storeu_si256(out.as_mut_ptr().cast(), frame);
            }
        }
    }

    /// Eight codes from `p`, one per 32-bit lane.
    #[target_feature(enable = "avx2")]
    unsafe fn codes(p: *const u8) -> __m256i {
        // SAFETY: the caller gives 8 readable bytes at `p`.
        unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())) }
    }

    /// The eight lanes' codes expanded to linear samples (as 32-bit integers).
    #[target_feature(enable = "avx2")]
    fn expand(law: Expand, c: __m256i) -> __m256i {
        match law {
            Expand::Ulaw => ulaw(c),
            Expand::Alaw => alaw(c),
            Expand::Silence => _mm256_setzero_si256(),
        }
    }

    /// G.711 §2: the code inverted; magnitude `(((mantissa << 3) + 0x84) << exponent) - 0x84`,
    /// negative where bit 7 of the inverted code is set.
    #[target_feature(enable = "avx2")]
    fn ulaw(c: __m256i) -> __m256i {
        let u = _mm256_xor_si256(c, _mm256_set1_epi32(0xff));
        let exponent = _mm256_and_si256(_mm256_srli_epi32::<4>(u), _mm256_set1_epi32(7));
        let mantissa = _mm256_and_si256(u, _mm256_set1_epi32(0x0f));
        let base = _mm256_add_epi32(_mm256_slli_epi32::<3>(mantissa), _mm256_set1_epi32(0x84));
        let magnitude = _mm256_sub_epi32(_mm256_sllv_epi32(base, exponent), _mm256_set1_epi32(0x84));
        let negative = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x80)), _mm256_set1_epi32(0x80));
        _mm256_blendv_epi8(magnitude, _mm256_sub_epi32(_mm256_setzero_si256(), magnitude), negative)
    }

    /// G.711 §3: even bits inverted (XOR 0x55); `(mantissa << 4) + 8`, plus 0x100 and shifted
    /// left by `exponent - 1` from segment 1 on; positive where bit 7 is set.
    #[target_feature(enable = "avx2")]
    fn alaw(c: __m256i) -> __m256i {
        let a = _mm256_xor_si256(c, _mm256_set1_epi32(0x55));
        let exponent = _mm256_and_si256(_mm256_srli_epi32::<4>(a), _mm256_set1_epi32(7));
        let mantissa = _mm256_and_si256(a, _mm256_set1_epi32(0x0f));
        let segmented = _mm256_cmpgt_epi32(exponent, _mm256_setzero_si256());
        let t = _mm256_add_epi32(_mm256_slli_epi32::<4>(mantissa), _mm256_set1_epi32(8));
        let t = _mm256_add_epi32(t, _mm256_and_si256(segmented, _mm256_set1_epi32(0x100)));
        let shift = _mm256_max_epi32(_mm256_sub_epi32(exponent, _mm256_set1_epi32(1)), _mm256_setzero_si256());
        let magnitude = _mm256_sllv_epi32(t, shift);
        let positive = _mm256_cmpeq_epi32(_mm256_and_si256(a, _mm256_set1_epi32(0x80)), _mm256_set1_epi32(0x80));
        _mm256_blendv_epi8(_mm256_sub_epi32(_mm256_setzero_si256(), magnitude), magnitude, positive)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mix::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};

    /// What the tables give, frame by frame.
    fn by_table(laws: [Expand; 2], a: &[u8], b: &[u8]) -> Vec<[u8; 4]> {
        let [ta, tb] = laws.map(Expand::table);
        a.iter()
            .zip(b)
            .map(|(&x, &y)| {
                let [a0, a1] = ta[x as usize].to_le_bytes();
                let [b0, b1] = tb[y as usize].to_le_bytes();
                [a0, a1, b0, b1]
            })
            .collect()
    }

    const LAWS: [Expand; 3] = [Expand::Ulaw, Expand::Alaw, Expand::Silence];

    fn avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Every pair of codes, every pair of laws: the frames the tables give.
    #[test]
    fn every_pair_of_codes_matches_the_tables() {
        let a: Vec<u8> = (0..=255u8).flat_map(|x| [x; 256]).collect();
        let b: Vec<u8> = (0..256).flat_map(|_| 0..=255u8).collect();
        for la in LAWS {
            for lb in LAWS {
                let mut frames = vec![[0xaa; 4]; a.len()];
                let done = decode_pairs([la, lb], &a, &b, &mut frames);
                assert_eq!(done, if avx2() { a.len() } else { 0 }, "{la:?} {lb:?}");
                assert_eq!(frames[..done], by_table([la, lb], &a[..done], &b[..done])[..], "{la:?} {lb:?}");
            }
        }
    }

    #[test]
    fn each_expansion_has_its_table() {
        assert_eq!(Expand::Ulaw.table(), &ULAW_TO_LINEAR);
        assert_eq!(Expand::Alaw.table(), &ALAW_TO_LINEAR);
        assert_eq!(Expand::Silence.table(), &[0; 256]);
    }

    proptest! {
        /// Any length and any codes: whole steps done, the rest left alone for the caller.
        #[test]
        fn any_length_does_whole_steps_and_leaves_the_rest(
            codes in proptest::collection::vec(any::<(u8, u8)>(), 0..100),
            la in 0..3usize,
            lb in 0..3usize,
        ) {
            let (a, b): (Vec<u8>, Vec<u8>) = codes.into_iter().unzip();
            let laws = [LAWS[la], LAWS[lb]];
            let mut frames = vec![[0xaa; 4]; a.len()];
            let done = decode_pairs(laws, &a, &b, &mut frames);
            prop_assert_eq!(done, if avx2() { a.len() / STEP * STEP } else { 0 });
            prop_assert_eq!(&frames[..done], &by_table(laws, &a[..done], &b[..done])[..]);
            prop_assert!(frames[done..].iter().all(|f| *f == [0xaa; 4]));
        }
    }
}
