//! G.711 compression (µ-law and A-law) following the ITU-T G.191 reference code.
//!
//! Both encoders take a 16-bit linear sample. Like G.191's `ulaw_compress` and `alaw_compress`,
//! negative samples are folded with a one's complement (`!x`), so `-1` lands in the same
//! magnitude bucket as `0`, and the low 2 (µ-law, 14-bit input) or 4 (A-law, 13-bit input)
//! bits are dropped before the segment search.

/// Encodes one 16-bit linear sample as a G.711 µ-law byte (ITU-T G.711, G.191 `ulaw_compress`).
///
/// Reference points: `0 -> 0xFF`, `-1 -> 0x7F`, `32767 -> 0x80`, `-32768 -> 0x00`.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // 14-bit magnitude; one's complement for negative values as in G.191.
    let magnitude = if sample < 0 { (!sample) >> 2 } else { sample >> 2 };
    // Add the bias of 33 and clip to the 13-bit range the segments cover.
    let biased = (i32::from(magnitude) + 33).min(0x1FFF);
    // Segment number: position of the highest set bit above bit 5, 1..=8.
    let mut segment = 1u32;
    let mut rest = biased >> 6;
    while rest != 0 {
        segment += 1;
        rest >>= 1;
    }
    let high_nibble = 8 - segment;
    let low_nibble = 0xF - ((biased >> segment) & 0xF) as u32;
    let code = ((high_nibble << 4) | low_nibble) as u8;
    if sample >= 0 { code | 0x80 } else { code }
}

/// Encodes one 16-bit linear sample as a G.711 A-law byte (ITU-T G.711, G.191 `alaw_compress`).
///
/// Reference points: `0 -> 0xD5`, `-1 -> 0x55`, `32767 -> 0xAA`, `-32768 -> 0x2A`.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // 12-bit magnitude; one's complement for negative values as in G.191.
    let mut magnitude = if sample < 0 { (!sample) >> 4 } else { sample >> 4 };
    if magnitude > 15 {
        // Find the exponent and keep four mantissa bits below the leading one.
        let mut exponent = 1;
        while magnitude > 16 + 15 {
            magnitude >>= 1;
            exponent += 1;
        }
        magnitude -= 16;
        magnitude += exponent << 4;
    }
    if sample >= 0 {
        magnitude |= 0x80;
    }
    // Even-bit inversion.
    (magnitude as u8) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 µ-law expansion, written out from the standard's table definition.
    fn ulaw_to_linear(code: u8) -> i32 {
        let u = !code;
        let exponent = (u >> 4) & 0x7;
        let mantissa = i32::from(u & 0x0F);
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        if u & 0x80 != 0 { -magnitude } else { magnitude }
    }

    /// G.711 A-law expansion, written out from the standard's table definition.
    fn alaw_to_linear(code: u8) -> i32 {
        let a = code ^ 0x55;
        let exponent = (a >> 4) & 0x7;
        let mantissa = i32::from(a & 0x0F) << 4;
        let magnitude = match exponent {
            0 => mantissa + 8,
            e => (mantissa + 0x108) << (e - 1),
        };
        if a & 0x80 != 0 { magnitude } else { -magnitude }
    }

    #[test]
    fn ulaw_reference_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        // First segment boundary: magnitudes 0..=3 share a code, 4 moves one step.
        assert_eq!(linear_to_ulaw(3), 0xFF);
        assert_eq!(linear_to_ulaw(4), 0xFE);
    }

    #[test]
    fn alaw_reference_points() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
        assert_eq!(linear_to_alaw(15), 0xD5);
        assert_eq!(linear_to_alaw(16), 0xD4);
    }

    #[test]
    fn ulaw_is_monotonic_and_close_over_whole_range() {
        let mut previous = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let y = ulaw_to_linear(linear_to_ulaw(x));
            assert!(y >= previous, "µ-law not monotonic at {x}: {y} < {previous}");
            previous = y;
            // Quantisation error is at most half a step of the top segment (1024 / 2 in 16-bit
            // units) plus the clipping above 32124.
            let error = (y - i32::from(x)).abs();
            assert!(error <= 1024, "µ-law error {error} at {x}");
        }
    }

    #[test]
    fn alaw_is_monotonic_and_close_over_whole_range() {
        let mut previous = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let y = alaw_to_linear(linear_to_alaw(x));
            assert!(y >= previous, "A-law not monotonic at {x}: {y} < {previous}");
            previous = y;
            let error = (y - i32::from(x)).abs();
            assert!(error <= 512, "A-law error {error} at {x}");
        }
    }

    #[test]
    fn every_code_is_reachable_and_round_trips() {
        let mut seen_u = [false; 256];
        let mut seen_a = [false; 256];
        for x in i16::MIN..=i16::MAX {
            seen_u[usize::from(linear_to_ulaw(x))] = true;
            seen_a[usize::from(linear_to_alaw(x))] = true;
        }
        // µ-law has two zeros (0xFF and 0x7F); 0x7F is reached through -1..=-4 only via the
        // one's complement, so every one of the 256 codes appears.
        assert!(seen_u.iter().all(|&s| s), "some µ-law code never produced");
        assert!(seen_a.iter().all(|&s| s), "some A-law code never produced");
        for code in 0..=255u8 {
            let y = ulaw_to_linear(code);
            let back = linear_to_ulaw(y.clamp(-32768, 32767) as i16);
            assert_eq!(ulaw_to_linear(back), y, "µ-law code {code:#04x}");
            let y = alaw_to_linear(code);
            assert_eq!(linear_to_alaw(y as i16), code, "A-law code {code:#04x}");
        }
    }
}
