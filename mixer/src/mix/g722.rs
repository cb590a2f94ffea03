//! ITU-T G.722 decoding (64 kbit/s, the mode RTP uses: RFC 3551 §4.5.2), from the
//! Recommendation's block diagrams: sub-band ADPCM (a 6-bit lower band, a 2-bit upper band),
//! each band's pole-zero predictor and scale factor adaptation, then the 24-tap receive QMF
//! that turns each code (one per 125 µs) into two 16 kHz samples.
//!
//! Integer arithmetic throughout, as the Recommendation specifies it, so the output is the
//! reference decoder's to the bit (checked against an independent decoder in
//! `tests/replay_codecs.rs`). The decoder holds state from code to code: a gap in the codes
//! (a lost packet) is followed by a reset, which the record names.

/// Inverse quantiser of the 6-bit lower-band code (the reconstructed signal).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576,
    -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040,
    -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
    4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Inverse quantiser of the lower band's 4 leading bits (what the predictor adapts on).
const QM4: [i32; 16] =
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
/// Inverse quantiser of the 2-bit upper-band code.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Lower band: 4-bit code → index into `WL`.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Lower band log scale factor multipliers.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Upper band: 2-bit code → index into `WH`.
const RH2: [usize; 4] = [2, 1, 2, 1];
/// Upper band log scale factor multipliers.
const WH: [i32; 3] = [0, -214, 798];
/// Inverse log table for the scale factor.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025,
    3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Receive QMF coefficients (half of the symmetric 24-tap filter).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

fn sat(v: i32) -> i32 {
    v.clamp(-32768, 32767)
}

/// One sub-band's ADPCM state: two poles, six zeros, the scale factor.
#[derive(Debug, Clone, Copy, Default)]
struct Band {
    /// Predicted signal (`s`), its zero part (`sz`).
    s: i32,
    sz: i32,
    /// Reconstructed signal, partial reconstructed signal, quantised difference: newest first.
    r: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    /// Pole and zero coefficients (index 0 unused).
    a: [i32; 3],
    b: [i32; 7],
    /// Log scale factor and scale factor.
    nb: i32,
    det: i32,
}

impl Band {
    fn new(det: i32) -> Band {
        Band { det, ..Band::default() }
    }

    /// Log scale factor adaptation (LOGSCL/LOGSCH) and the scale factor (SCALEL/SCALEH).
    fn scale(&mut self, step: i32, limit: i32, shift: i32) {
        let nb = ((self.nb * 127) >> 7) + step;
        self.nb = nb.clamp(0, limit);
        let wd1 = (self.nb >> 6 & 31) as usize;
        let wd2 = shift - (self.nb >> 11);
        let wd3 = if wd2 < 0 { ILB[wd1] << -wd2 } else { ILB[wd1] >> wd2 };
        self.det = wd3 << 2;
    }

    /// Block 4: reconstruction and predictor adaptation for quantised difference `d`.
    fn adapt(&mut self, d: i32) {
        // RECONS, PARREC
        let r0 = sat(self.s + d);
        let p0 = sat(self.sz + d);
        // UPPOL2
        let sg = [p0 >> 15, self.p[1] >> 15, self.p[2] >> 15];
        let wd1 = sat(self.a[1] << 2);
        let wd2 = if sg[0] == sg[1] { -wd1 } else { wd1 }.min(32767);
        let wd3 = (wd2 >> 7) + if sg[0] == sg[2] { 128 } else { -128 } + ((self.a[2] * 32512) >> 15);
        let ap2 = wd3.clamp(-12288, 12288);
        // UPPOL1
        let wd1 = if sg[0] == sg[1] { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        let limit = sat(15360 - ap2);
        let ap1 = sat(wd1 + wd2).clamp(-limit, limit);
        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        let sg0 = d >> 15;
        let mut bp = [0i32; 7];
        for ((bp, &b), &d) in bp.iter_mut().zip(&self.b).zip(&self.d).skip(1) {
            let wd2 = if d >> 15 == sg0 { step } else { -step };
            *bp = sat(wd2 + ((b * 32640) >> 15));
        }
        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = d;
        self.b = bp;
        self.r = [0, r0, self.r[1]];
        self.p = [0, p0, self.p[1]];
        self.a = [0, ap1, ap2];
        // FILTEP, FILTEZ, PREDIC
        let sp =
            sat(((self.a[1] * sat(self.r[1] + self.r[1])) >> 15) + ((self.a[2] * sat(self.r[2] + self.r[2])) >> 15));
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * sat(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = sat(sz);
        self.s = sat(sp + self.sz);
    }
}

/// A G.722 decoder: one per channel, fed its codes in order.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay line, oldest first.
    qmf: [i32; 24],
}

impl Default for G722Decoder {
    fn default() -> Self {
        G722Decoder::new()
    }
}

impl G722Decoder {
    /// A decoder in the Recommendation's reset state.
    pub fn new() -> G722Decoder {
        G722Decoder { low: Band::new(32), high: Band::new(8), qmf: [0; 24] }
    }

    /// Back to the reset state (after a gap in the codes).
    pub fn reset(&mut self) {
        *self = G722Decoder::new();
    }

    /// Decodes one code (8 bits: 2 upper-band, 6 lower-band) into two 16 kHz samples.
    #[inline]
    pub fn decode(&mut self, code: u8) -> [i16; 2] {
        let ilow = usize::from(code & 0x3f);
        let ihigh = usize::from(code >> 6);
        // Lower band: INVQBL, RECONS, LIMIT with the 6-bit code; the predictor adapts on the
        // 4-bit one (INVQAL).
        let low = &mut self.low;
        let rlow = (low.s + ((low.det * QM6[ilow]) >> 15)).clamp(-16384, 16383);
        let ilow4 = ilow >> 2;
        let dlow = (low.det * QM4[ilow4]) >> 15;
        low.scale(WL[RL42[ilow4]], 18432, 8);
        low.adapt(dlow);
        // Upper band: INVQAH, RECONS, LIMIT.
        let high = &mut self.high;
        let dhigh = (high.det * QM2[ihigh]) >> 15;
        let rhigh = (dhigh + high.s).clamp(-16384, 16383);
        high.scale(WH[RH2[ihigh]], 22528, 10);
        high.adapt(dhigh);
        // Receive QMF.
        self.qmf.copy_within(2.., 0);
        self.qmf[22] = rlow + rhigh;
        self.qmf[23] = rlow - rhigh;
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 0..12 {
            even += self.qmf[2 * i] * QMF[i];
            odd += self.qmf[2 * i + 1] * QMF[11 - i];
        }
        [sat(odd >> 11) as i16, sat(even >> 11) as i16]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes_decode_to_near_silence_and_reset_restores_the_start() {
        // 0xff is the encoder's output for digital silence in steady state.
        let mut d = G722Decoder::new();
        let first: Vec<[i16; 2]> = (0..400).map(|_| d.decode(0xff)).collect();
        assert!(first[200..].iter().all(|s| s[0].abs() < 16 && s[1].abs() < 16), "{:?}", &first[200..210]);
        d.reset();
        let again: Vec<[i16; 2]> = (0..400).map(|_| d.decode(0xff)).collect();
        assert_eq!(first, again);
    }
}
