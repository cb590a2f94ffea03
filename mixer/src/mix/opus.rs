//! Opus (RFC 7587) decoded with libopus, at 16 kHz by default: a call with Opus is recorded at
//! 16 kHz like a G.722 one (speech in calls rarely carries more, and the file is a third of
//! the size). `opus_rate = 48000` decodes it at 48 kHz instead, Opus's full band, and such a
//! call is recorded at 48 kHz (see [`crate::mix::wideband`]).
//!
//! Opus's RTP clock runs at 48 kHz whatever the audio; the timeline counts 8 kHz positions,
//! so each party's timestamps are scaled by 6 (from its first packet, so the scaled clock
//! wraps no sooner than the real one) and each packet covers its duration (from its TOC
//! byte, RFC 6716 §3.1) in positions, not its length in bytes.
//!
//! The decoder runs as packets are placed, in the order their party's clock places them. When
//! a packet comes after a gap in its party's audio:
//!
//! * up to [`MAX_CONCEAL`] (60 ms): lost packets. The gap is filled by libopus: its last
//!   frame from the in-band FEC the packet after it carries (LBRR; where the sender put none,
//!   libopus conceals it), the rest by packet loss concealment;
//! * longer: a pause in sending (DTX, hold): silence, as sent.
//!
//! Either way the record's gaps say what was lost.

use opus::{Channels, Decoder};

/// Longest gap filled by concealment (8 kHz positions): 60 ms.
pub const MAX_CONCEAL: i64 = 480;
/// 48 kHz samples in the longest Opus packet (120 ms).
const MAX_SAMPLES_48K: usize = 5760;

/// Duration of an Opus packet in 8 kHz positions, from its TOC; `None` when it is not a
/// valid Opus packet.
pub fn positions(payload: &[u8]) -> Option<i64> {
    let n = opus::packet::get_nb_samples(payload, 48_000).ok()?;
    (n > 0 && n <= MAX_SAMPLES_48K).then_some((n / 6) as i64)
}

/// One party's Opus decoding.
pub struct OpusSide {
    dec: Decoder,
    /// RTP timestamp the scaled clock counts from.
    base: Option<u32>,
    /// Position one past the last audio decoded.
    next: Option<i64>,
    /// Samples per 8 kHz position: 2 at 16 kHz, 6 at 48 kHz.
    per: usize,
    /// Decoded samples of the latest packet (and its concealment), at the decoder's rate.
    pub(crate) pcm: Vec<i16>,
}

impl std::fmt::Debug for OpusSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusSide").field("next", &self.next).finish()
    }
}

impl OpusSide {
    /// A decoder for one party at `rate` (16 or 48 kHz; libopus refuses only on resource
    /// exhaustion).
    pub fn new(rate: u32) -> Result<OpusSide, String> {
        let dec = Decoder::new(rate, Channels::Mono).map_err(|e| format!("cannot start the Opus decoder: {e}"))?;
        let per = (rate / 8000) as usize;
        let most = (MAX_SAMPLES_48K / 6 + MAX_CONCEAL as usize) * per;
        Ok(OpusSide { dec, base: None, next: None, per, pcm: Vec::with_capacity(most) })
    }

    /// Samples per 8 kHz position in [`OpusSide::pcm`].
    pub fn per_position(&self) -> usize {
        self.per
    }

    /// `ts` (48 kHz) on an 8 kHz clock.
    pub fn scaled_ts(&mut self, ts: u32) -> u32 {
        let base = *self.base.get_or_insert(ts);
        let d = i64::from(ts.wrapping_sub(base) as i32);
        (1u32 << 28).wrapping_add(d.div_euclid(6) as u32)
    }

    /// Decodes the packet placed at `pos` (with whatever concealment the gap before it takes)
    /// into [`OpusSide::pcm`]; returns the position the samples start at.
    pub fn decode(&mut self, pos: i64, payload: &[u8]) -> Result<i64, String> {
        let len = positions(payload).ok_or("not an Opus packet")?;
        self.pcm.clear();
        let mut start = pos;
        if let Some(next) = self.next.filter(|&n| pos > n && pos - n <= MAX_CONCEAL) {
            // Lost packets: the last frame of the gap from this packet's FEC, what is before it
            // by concealment (20 ms at a time), in whole 2.5 ms steps (20 positions).
            let per = self.per;
            let gap = ((pos - next) as usize / 20 * 20) * per;
            let fec = gap.min(len as usize * per);
            let mut plc = gap - fec;
            start = pos - (gap / per) as i64;
            while plc > 0 {
                let n = plc.min(160 * per);
                let at = self.pcm.len();
                self.pcm.resize(at + n, 0);
                self.dec.decode(&[], &mut self.pcm[at..], false).map_err(|e| format!("Opus concealment: {e}"))?;
                plc -= n;
            }
            if fec > 0 {
                let at = self.pcm.len();
                self.pcm.resize(at + fec, 0);
                self.dec.decode(payload, &mut self.pcm[at..], true).map_err(|e| format!("Opus FEC: {e}"))?;
            }
        }
        let at = self.pcm.len();
        self.pcm.resize(at + len as usize * self.per, 0);
        let n = self.dec.decode(payload, &mut self.pcm[at..], false).map_err(|e| format!("Opus: {e}"))?;
        self.pcm.truncate(at + n);
        self.next = Some(self.next.map_or(pos + len, |n| n.max(pos + len)));
        Ok(start)
    }
}
