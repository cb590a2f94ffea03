//! G.711 µ-law and A-law expansion, bit-exact with ITU-T G.711 (and the G.191 reference
//! implementation): 256-entry tables computed at compile time from the standard's segment
//! definitions.

/// µ-law code -> 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_ulaw();
/// A-law code -> 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_alaw();

/// How one channel's G.711 codes expand to linear samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expand {
    Ulaw,
    Alaw,
    /// No audio (yet): every sample is 0.
    Silence,
}

impl Expand {
    /// The expansion as a table, code -> sample.
    pub(crate) fn table(self) -> &'static [i16; 256] {
        static SILENCE: [i16; 256] = [0; 256];
        match self {
            Expand::Ulaw => &ULAW_TO_LINEAR,
            Expand::Alaw => &ALAW_TO_LINEAR,
            Expand::Silence => &SILENCE,
        }
    }
}

const fn ulaw_expand(code: u8) -> i16 {
    // G.711 §2: the code is transmitted inverted; bit 7 is the sign (1 = positive).
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 { -magnitude as i16 } else { magnitude as i16 }
}

const fn alaw_expand(code: u8) -> i16 {
    // G.711 §3: even bits are inverted on the line (XOR 0x55); bit 7 is the sign (1 = positive).
    let a = code ^ 0x55;
    let exponent = ((a & 0x70) >> 4) as i32;
    let mut t = ((a & 0x0f) as i32) << 4;
    t = match exponent {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (exponent - 1),
    };
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The G.191 `ulaw_expand` formulation, written independently of the table builder.
    fn g191_ulaw(code: u8) -> i16 {
        let sign: i32 = if code < 0x80 { -1 } else { 1 };
        let m = !code;
        let exponent = i32::from((m >> 4) & 0x07);
        let segment = exponent + 1;
        let mantissa = i32::from(m & 0x0f);
        let step = 4 << segment;
        (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
    }

    /// The G.191 `alaw_expand` formulation.
    fn g191_alaw(code: u8) -> i16 {
        let ix = i32::from(code ^ 0x55);
        let iexp = (ix & 0x7f) >> 4;
        let mut mant = ix & 0x0f;
        if iexp > 0 {
            mant += 16;
        }
        mant = (mant << 4) + 0x08;
        if iexp > 1 {
            mant <<= iexp - 1;
        }
        (if ix > 127 { mant } else { -mant }) as i16
    }

    #[test]
    fn every_code_matches_g191() {
        for c in 0..=255u8 {
            assert_eq!(ULAW_TO_LINEAR[c as usize], g191_ulaw(c), "µ-law {c:#04x}");
            assert_eq!(ALAW_TO_LINEAR[c as usize], g191_alaw(c), "A-law {c:#04x}");
        }
    }

    #[test]
    fn published_reference_points() {
        // µ-law: both zero codes, extremes.
        assert_eq!(ULAW_TO_LINEAR[0xff], 0);
        assert_eq!(ULAW_TO_LINEAR[0x7f], 0);
        assert_eq!(ULAW_TO_LINEAR[0x80], 32124);
        assert_eq!(ULAW_TO_LINEAR[0x00], -32124);
        assert_eq!(ULAW_TO_LINEAR[0xfe], 8);
        assert_eq!(ULAW_TO_LINEAR[0xef], 132);
        // A-law: idle code, extremes.
        assert_eq!(ALAW_TO_LINEAR[0xd5], 8);
        assert_eq!(ALAW_TO_LINEAR[0x55], -8);
        assert_eq!(ALAW_TO_LINEAR[0xaa], 32256);
        assert_eq!(ALAW_TO_LINEAR[0x2a], -32256);
    }

    #[test]
    fn tables_are_odd_symmetric_and_monotonic_per_sign() {
        for c in 0..128u8 {
            assert_eq!(ULAW_TO_LINEAR[c as usize], -ULAW_TO_LINEAR[(c | 0x80) as usize]);
            assert_eq!(ALAW_TO_LINEAR[c as usize], -ALAW_TO_LINEAR[(c | 0x80) as usize]);
        }
        // µ-law codes 0x80..=0xff run from loudest positive down to zero.
        for c in 0x80..0xffu8 {
            assert!(ULAW_TO_LINEAR[c as usize] > ULAW_TO_LINEAR[c as usize + 1]);
        }
    }
}
