//! L16 (RFC 3551 §4.5.11): linear 16-bit PCM, big-endian, mono, at 8000 or 16000 Hz (the
//! rate its `a=rtpmap` gives, which is also its RTP clock). Nothing to decode but the byte
//! order: at 8 kHz one sample per timeline position (placed as [`Law::Decoded8k`]), at 16 kHz
//! two (placed as Opus is, [`Law::Opus`]; the call is recorded at 16 kHz), the timestamps
//! scaled by 2 to the timeline's 8 kHz positions (from the party's first L16 packet, so the
//! scaled clock wraps no sooner than the real one). L16 has no concealment: a gap is silence.
//!
//! [`Law::Decoded8k`]: crate::mix::timeline::Law::Decoded8k
//! [`Law::Opus`]: crate::mix::timeline::Law::Opus

/// 16-bit samples in the longest L16 packet decoded (120 ms at 16 kHz).
const MAX_SAMPLES: usize = 1920;

/// Positions (8 kHz) an L16 payload covers; `None` when it is not whole samples (of both
/// 16 kHz samples of a position, for `wide`) or longer than 120 ms.
pub fn positions(wide: bool, payload: &[u8]) -> Option<i64> {
    let bytes = if wide { 4 } else { 2 };
    let n = payload.len() / bytes;
    (payload.len().is_multiple_of(bytes) && n > 0 && n * bytes / 2 <= MAX_SAMPLES).then_some(n as i64)
}

/// One party's L16: the scaled clock of its 16 kHz packets and the samples of the latest one.
#[derive(Debug)]
pub struct L16Side {
    /// RTP timestamp the scaled clock counts from (16 kHz packets).
    base: Option<u32>,
    /// Samples of the latest packet, in host order.
    pub(crate) pcm: Vec<i16>,
}

impl L16Side {
    /// An empty one (its buffer is allocated once, here).
    pub fn new() -> L16Side {
        L16Side { base: None, pcm: Vec::with_capacity(MAX_SAMPLES) }
    }

    /// `ts` (16 kHz) on an 8 kHz clock.
    pub fn scaled_ts(&mut self, ts: u32) -> u32 {
        let base = *self.base.get_or_insert(ts);
        let d = i64::from(ts.wrapping_sub(base) as i32);
        (1u32 << 28).wrapping_add(d.div_euclid(2) as u32)
    }

    /// The payload's samples into [`L16Side::pcm`].
    pub fn decode(&mut self, payload: &[u8]) {
        self.pcm.clear();
        self.pcm.extend(payload.chunks_exact(2).take(MAX_SAMPLES).map(|b| i16::from_be_bytes([b[0], b[1]])));
    }
}

impl L16Side {
    /// The samples of the latest packet decoded.
    pub fn samples(&self) -> &[i16] {
        &self.pcm
    }
}

impl Default for L16Side {
    fn default() -> Self {
        L16Side::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_big_endian_and_positions_count_8_khz() {
        assert_eq!(positions(false, &[0; 320]), Some(160));
        assert_eq!(positions(true, &[0; 640]), Some(160));
        assert_eq!(positions(false, &[0; 321]), None);
        assert_eq!(positions(true, &[0; 642]), None);
        assert_eq!(positions(false, &[]), None);
        assert_eq!(positions(false, &[0; 3842]), None);
        let mut s = L16Side::new();
        s.decode(&[0x12, 0x34, 0xff, 0xfe, 0x80, 0x00]);
        assert_eq!(s.pcm, [0x1234, -2, i16::MIN]);
        assert_eq!(s.scaled_ts(1000), 1 << 28);
        assert_eq!(s.scaled_ts(1320), (1 << 28) + 160);
        assert_eq!(s.scaled_ts(1000u32.wrapping_sub(320)), (1 << 28) - 160);
    }
}
