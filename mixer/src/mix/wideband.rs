//! Recording a call at 16 kHz: a call where any party sends wideband audio (G.722) is written
//! at 16 kHz, the highest rate in the call, and each channel's narrowband audio (G.711) is
//! brought to it by a ×2 interpolator.
//!
//! The timeline keeps working in 8 kHz positions (G.722's RTP clock is 8 kHz, one code per
//! position, RFC 3551 §4.5.2), so placing, settling and every edit are the same for both;
//! only the decoding of written positions differs. Here each position becomes two samples:
//!
//! * a G.722 code: the decoder's two samples (bit-exact); the decoder is reset before the first
//!   code after a gap or another codec, so a lost packet never smears into what follows;
//! * a G.711 code: its sample, then the half-band interpolation between it and the next one
//!   (a windowed-sinc FIR, linear phase). The even output samples are the G.711 samples
//!   themselves, so nothing of the original is altered, only the points between are added;
//! * nothing (a gap): zero, and the interpolation between its neighbours.
//!
//! The interpolator looks `TAPS` positions ahead, so each channel is emitted `TAPS` positions
//! behind what was pushed, both channels alike (they stay aligned to the sample), and the end
//! of the call pushes `TAPS` empty positions to let the last ones out. Nothing is allocated per
//! position; the state is ~1 KiB per channel, only for calls recorded at 16 kHz.

use std::sync::LazyLock;

use super::g722::G722Decoder;

/// Positions the interpolator reaches on each side of the point it makes.
pub const TAPS: usize = 16;
/// History ring (positions), a power of two above `2 * TAPS`.
const RING: usize = 64;

/// The interpolator's coefficients: `H[k]` weighs the samples `k` positions before and
/// `k + 1` after the half-way point (a sinc at the half-sample offsets, Blackman window,
/// normalised to unit gain at DC).
static H: LazyLock<[f32; TAPS]> = LazyLock::new(|| {
    let mut h = [0f64; TAPS];
    for (k, c) in h.iter_mut().enumerate() {
        let t = k as f64 + 0.5;
        let sinc = (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t);
        // Blackman window over the 2·TAPS span, evaluated at this tap's distance.
        let n = (TAPS as f64 - 0.5 - k as f64) / (2.0 * TAPS as f64 - 1.0);
        let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * n).cos() + 0.08 * (4.0 * std::f64::consts::PI * n).cos();
        *c = sinc * w;
    }
    let sum: f64 = h.iter().sum::<f64>() * 2.0;
    h.map(|c| (c / sum) as f32)
});

/// What a position of a channel holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cell {
    /// Nothing arrived: silence.
    #[default]
    Empty,
    /// A narrowband sample (decoded G.711).
    Narrow(i16),
    /// A G.722 code.
    G722(u8),
    /// Two samples decoded already (Opus).
    Pair([i16; 2]),
}

/// One channel's way from positions to 16 kHz samples.
#[derive(Debug, Clone)]
pub struct WideChannel {
    g722: G722Decoder,
    /// The previous position was a G.722 code that went through the decoder.
    g722_live: bool,
    /// Narrowband input by position (zero where there was none).
    x: [i16; RING],
    /// Decoded G.722 pairs by position (`None`: not G.722).
    pair: [Option<[i16; 2]>; RING],
    /// Positions pushed.
    pushed: u64,
}

impl Default for WideChannel {
    fn default() -> Self {
        WideChannel::new()
    }
}

impl WideChannel {
    /// A channel at the start of the call.
    pub fn new() -> WideChannel {
        WideChannel { g722: G722Decoder::new(), g722_live: false, x: [0; RING], pair: [None; RING], pushed: 0 }
    }

    /// Takes the next position and returns the two samples of the position `TAPS` before it,
    /// once there is one.
    #[inline]
    pub fn push(&mut self, cell: Cell) -> Option<[i16; 2]> {
        let at = (self.pushed as usize) % RING;
        match cell {
            Cell::G722(code) => {
                if !self.g722_live {
                    self.g722.reset();
                }
                self.g722_live = true;
                self.x[at] = 0;
                self.pair[at] = Some(self.g722.decode(code));
            }
            Cell::Pair(p) => {
                self.g722_live = false;
                self.x[at] = 0;
                self.pair[at] = Some(p);
            }
            Cell::Narrow(s) => {
                self.g722_live = false;
                self.x[at] = s;
                self.pair[at] = None;
            }
            Cell::Empty => {
                self.g722_live = false;
                self.x[at] = 0;
                self.pair[at] = None;
            }
        }
        self.pushed += 1;
        let q = self.pushed.checked_sub(TAPS as u64 + 1)?;
        let qi = q as usize;
        if let Some(p) = self.pair[qi % RING] {
            return Some(p);
        }
        let h = &*H;
        let mut acc = 0f32;
        for (k, c) in h.iter().enumerate() {
            // Positions before the call's start are zero (the ring starts zeroed).
            let before = if qi >= k { self.x[(qi - k) % RING] } else { 0 };
            let after = self.x[(qi + 1 + k) % RING];
            acc += c * (f32::from(before) + f32::from(after));
        }
        let mid = acc.round().clamp(-32768.0, 32767.0) as i16;
        Some([self.x[qi % RING], mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cells: &[Cell]) -> Vec<i16> {
        let mut c = WideChannel::new();
        let mut out = Vec::new();
        for &cell in cells.iter().chain(std::iter::repeat_n(&Cell::Empty, TAPS)) {
            if let Some(p) = c.push(cell) {
                out.extend(p);
            }
        }
        out
    }

    #[test]
    fn narrowband_samples_are_kept_and_the_points_between_interpolated() {
        // A 1 kHz tone at 8 kHz: its 16 kHz interpolation must be the same tone sampled at
        // 16 kHz (within rounding and the filter's ripple), and every even sample the input.
        let x: Vec<i16> = (0..800).map(|n| ((n as f64 * std::f64::consts::PI / 4.0).sin() * 10000.0) as i16).collect();
        let out = run(&x.iter().map(|&s| Cell::Narrow(s)).collect::<Vec<_>>());
        assert_eq!(out.len(), 2 * x.len());
        for (n, &s) in x.iter().enumerate() {
            assert_eq!(out[2 * n], s, "even sample {n}");
        }
        for m in (2 * TAPS..out.len() - 2 * TAPS).step_by(2).map(|m| m + 1) {
            let ideal = (m as f64 * std::f64::consts::PI / 8.0).sin() * 10000.0;
            assert!((f64::from(out[m]) - ideal).abs() < 20.0, "odd sample {m}: {} vs {ideal}", out[m]);
        }
    }

    #[test]
    fn g722_codes_pass_through_the_decoder_aligned_with_narrowband() {
        let mut dec = G722Decoder::new();
        let codes: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        let want: Vec<i16> = codes.iter().flat_map(|&c| dec.decode(c)).collect();
        let out = run(&codes.iter().map(|&c| Cell::G722(c)).collect::<Vec<_>>());
        assert_eq!(out, want);
    }

    #[test]
    fn a_gap_resets_the_g722_decoder() {
        let codes: Vec<u8> = (0..100u32).map(|i| (i * 53 % 256) as u8).collect();
        let mut cells: Vec<Cell> = codes.iter().map(|&c| Cell::G722(c)).collect();
        cells.push(Cell::Empty);
        cells.extend(codes.iter().map(|&c| Cell::G722(c)));
        let out = run(&cells);
        assert_eq!(out[..200], out[202..402], "the second run decodes as from the start");
        assert_eq!(out[200..202], [0, 0]);
    }
}
