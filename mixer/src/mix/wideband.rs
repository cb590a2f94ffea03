//! Recording a call at 16 kHz or 48 kHz: a call where any party sends wideband audio (G.722,
//! Opus, L16 at 16 kHz) is written at 16 kHz, and one with Opus decoded at 48 kHz (a
//! configuration choice) at 48 kHz: the highest rate in the call. Each channel's audio at a
//! lower rate is brought to it by interpolators: narrowband (G.711) ×2 to 16 kHz, then 16 kHz
//! ×3 to 48 kHz.
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
//!
//! At 48 kHz ([`UpChannel`] with its [`Triple`]) each position becomes six samples: Opus
//! decoded at 48 kHz as it is (bit-exact with libopus), everything else first as at 16 kHz,
//! then each 16 kHz sample followed by the interpolations a third and two thirds of the way to
//! the next one (windowed sinc again, [`TAPS3`] samples on each side). Every 16 kHz sample is
//! kept, so a G.711 sample is every sixth one. The second stage adds [`HALF3`] positions of
//! delay; native 48 kHz audio waits the same, so both channels and every codec stay aligned.
//! To the interpolation of its neighbours a native position is silence (as a decoded pair is
//! at 16 kHz): nothing of one codec's audio leaks into the positions of another, or of none.

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

/// 16 kHz samples the ×3 interpolator reaches on each side of the points it makes.
pub const TAPS3: usize = 16;
/// Positions (two 16 kHz samples each) the ×3 interpolator holds back.
pub const HALF3: usize = TAPS3 / 2;
/// History ring of the ×3 interpolator (16 kHz samples), a power of two above `2 * TAPS3 + 2`.
const RING3: usize = 64;

/// The ×3 interpolator's coefficients: `H3[j][k]` weighs the 16 kHz sample at distance
/// `k + (j + 1) / 3` from the point made (Blackman-windowed sinc over ±[`TAPS3`]). The point a
/// third of the way takes `H3[0]` before it and `H3[1]` after, the one two thirds of the way
/// the reverse; both sums are normalised to unit gain at DC.
static H3: LazyLock<[[f32; TAPS3]; 2]> = LazyLock::new(|| {
    let pi = std::f64::consts::PI;
    let tap = |d: f64| {
        let sinc = (pi * d).sin() / (pi * d);
        let w = 0.42 + 0.5 * (pi * d / TAPS3 as f64).cos() + 0.08 * (2.0 * pi * d / TAPS3 as f64).cos();
        sinc * w
    };
    let mut h = [[0f64; TAPS3]; 2];
    for (j, row) in h.iter_mut().enumerate() {
        for (k, c) in row.iter_mut().enumerate() {
            *c = tap(k as f64 + (j as f64 + 1.0) / 3.0);
        }
    }
    let sum: f64 = h.iter().flatten().sum();
    h.map(|row| row.map(|c| (c / sum) as f32))
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
    /// Two samples decoded already (Opus at 16 kHz, L16 at 16 kHz).
    Pair([i16; 2]),
    /// Six samples decoded already (Opus at 48 kHz): only in a 48 kHz recording.
    Six([i16; 6]),
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
            // A 48 kHz position: its six samples pass the ×3 stage on their own (see
            // `UpChannel`); to the interpolation of its neighbours it is silence, as a decoded
            // pair is here.
            Cell::Six(_) => {
                self.g722_live = false;
                self.x[at] = 0;
                self.pair[at] = Some([0, 0]);
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

/// One channel's way from positions to the recording's rate: 16 kHz (the [`WideChannel`]
/// alone) or 48 kHz (then through its [`Triple`] too).
#[derive(Debug, Clone)]
pub struct UpChannel {
    wide: WideChannel,
    /// The ×3 stage, in a 48 kHz recording.
    full: Option<Box<Triple>>,
}

/// What a channel lets out for one position: 2 samples at 16 kHz, 6 at 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Samples {
    s: [i16; 6],
    n: u8,
}

impl Samples {
    /// The samples, in order.
    pub fn as_slice(&self) -> &[i16] {
        &self.s[..self.n as usize]
    }

    fn pair(p: [i16; 2]) -> Samples {
        Samples { s: [p[0], p[1], 0, 0, 0, 0], n: 2 }
    }
}

impl UpChannel {
    /// A channel at the start of the call, for a recording at `rate` (16 or 48 kHz).
    pub fn new(rate: u32) -> UpChannel {
        let mut up = UpChannel { wide: WideChannel::new(), full: None };
        if rate > 16_000 {
            up.raise_to_48k();
        }
        up
    }

    /// From now on at 48 kHz: what comes out of the 16 kHz stage from here on goes through
    /// the ×3 stage (what came out before is for the caller to push again, [`Self::push16`]).
    pub fn raise_to_48k(&mut self) {
        if self.full.is_none() {
            self.full = Some(Box::new(Triple::new()));
        }
    }

    /// The rate this channel makes (Hz).
    pub fn rate(&self) -> u32 {
        if self.full.is_some() { 48_000 } else { 16_000 }
    }

    /// Positions held back: pushing this many more lets out the last one pushed.
    pub fn delay(&self) -> usize {
        if self.full.is_some() { TAPS + HALF3 } else { TAPS }
    }

    /// Takes the next position; returns the samples of the position [`Self::delay`] before it,
    /// once there is one.
    #[inline]
    pub fn push(&mut self, cell: Cell) -> Option<Samples> {
        let Some(full) = self.full.as_mut() else { return self.wide.push(cell).map(Samples::pair) };
        let six = if let Cell::Six(s) = cell { Some(s) } else { None };
        full.native[(self.wide.pushed as usize) % RING] = six;
        let pair = self.wide.push(cell)?;
        full.push16(pair)
    }

    /// Takes the next position as the two 16 kHz samples it came out of the 16 kHz stage as
    /// (a 16 kHz recording moving to 48 kHz: what it wrote goes through the ×3 stage again).
    pub fn push16(&mut self, pair: [i16; 2]) -> Option<Samples> {
        match self.full.as_mut() {
            Some(full) => full.push16(pair),
            None => Some(Samples::pair(pair)),
        }
    }
}

/// The ×3 stage of a 48 kHz channel: 16 kHz samples in, six 48 kHz samples per position out,
/// [`HALF3`] positions behind; positions that were 48 kHz audio already (kept in `native`, by
/// the position they were pushed at) come out as they are.
#[derive(Debug, Clone)]
pub struct Triple {
    /// 16 kHz samples by index.
    x: [i16; RING3],
    /// The six samples of positions that were 48 kHz audio already, by position (stored as
    /// the 16 kHz stage takes them; positions before this stage was added have none).
    native: [Option<[i16; 6]>; RING],
    /// Positions pushed to this stage.
    pushed: u64,
}

impl Triple {
    fn new() -> Triple {
        Triple { x: [0; RING3], native: [None; RING], pushed: 0 }
    }

    /// Takes the 16 kHz samples of the next position and returns the six samples of the
    /// position [`HALF3`] before it, once there is one.
    #[inline]
    fn push16(&mut self, pair: [i16; 2]) -> Option<Samples> {
        let q = self.pushed as usize;
        self.x[(2 * q) % RING3] = pair[0];
        self.x[(2 * q + 1) % RING3] = pair[1];
        self.pushed += 1;
        let r = self.pushed.checked_sub(HALF3 as u64 + 1)? as usize;
        if let Some(six) = self.native[r % RING] {
            return Some(Samples { s: six, n: 6 });
        }
        let h = &*H3;
        let mut s = [0i16; 6];
        for (half, i) in [2 * r, 2 * r + 1].into_iter().enumerate() {
            let (mut third, mut two_thirds) = (0f32, 0f32);
            for (k, (near, far)) in h[0].iter().zip(&h[1]).enumerate() {
                // Samples before the call's start are zero (the ring starts zeroed).
                let before = f32::from(if i >= k { self.x[(i - k) % RING3] } else { 0 });
                let after = f32::from(self.x[(i + 1 + k) % RING3]);
                third += near * before + far * after;
                two_thirds += far * before + near * after;
            }
            let round = |v: f32| v.round().clamp(-32768.0, 32767.0) as i16;
            s[3 * half] = self.x[i % RING3];
            s[3 * half + 1] = round(third);
            s[3 * half + 2] = round(two_thirds);
        }
        Some(Samples { s, n: 6 })
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

    /// Everything a 48 kHz channel lets out for `cells`, and the positions it still held.
    fn run48(cells: &[Cell]) -> Vec<i16> {
        let mut c = UpChannel::new(48_000);
        assert_eq!(c.delay(), TAPS + HALF3);
        let mut out = Vec::new();
        for &cell in cells.iter().chain(std::iter::repeat_n(&Cell::Empty, c.delay())) {
            if let Some(s) = c.push(cell) {
                out.extend_from_slice(s.as_slice());
            }
        }
        out
    }

    #[test]
    fn at_48k_narrowband_is_every_sixth_sample_and_the_points_between_follow_the_tone() {
        // A 1 kHz tone at 8 kHz: at 48 kHz the same tone, every sixth sample the input.
        let x: Vec<i16> = (0..800).map(|n| ((n as f64 * std::f64::consts::PI / 4.0).sin() * 10000.0) as i16).collect();
        let out = run48(&x.iter().map(|&s| Cell::Narrow(s)).collect::<Vec<_>>());
        assert_eq!(out.len(), 6 * x.len());
        for (n, &s) in x.iter().enumerate() {
            assert_eq!(out[6 * n], s, "sample {n}");
        }
        let mut worst = 0f64;
        for (m, &s) in out.iter().enumerate().take(out.len() - 6 * 2 * TAPS).skip(6 * 2 * TAPS) {
            let ideal = (m as f64 * std::f64::consts::PI / 24.0).sin() * 10000.0;
            worst = worst.max((f64::from(s) - ideal).abs());
        }
        assert!(worst < 10.0, "{worst}");
    }

    #[test]
    fn at_48k_a_16k_tone_keeps_its_samples_and_the_thirds_between_follow_it() {
        // A 3 kHz tone at 16 kHz (G.722-like pairs, placed as decoded pairs).
        let x: Vec<i16> =
            (0..1600).map(|n| ((n as f64 * 2.0 * std::f64::consts::PI * 3.0 / 16.0).sin() * 12000.0) as i16).collect();
        let out = run48(&x.chunks_exact(2).map(|p| Cell::Pair([p[0], p[1]])).collect::<Vec<_>>());
        assert_eq!(out.len(), 3 * x.len());
        for (n, &s) in x.iter().enumerate() {
            assert_eq!(out[3 * n], s, "sample {n}");
        }
        let mut worst = 0f64;
        for (m, &s) in out.iter().enumerate().take(out.len() - 6 * 2 * TAPS).skip(6 * 2 * TAPS) {
            let ideal = (m as f64 * 2.0 * std::f64::consts::PI * 3.0 / 48.0).sin() * 12000.0;
            worst = worst.max((f64::from(s) - ideal).abs());
        }
        assert!(worst < 2.0, "{worst}");
    }

    #[test]
    fn at_48k_native_positions_come_out_as_they_are_in_their_place() {
        // Narrowband, then 48 kHz audio, then narrowband again: the native positions are
        // exactly their samples, at their positions; the narrowband around them keeps its
        // own samples every sixth.
        let mut cells: Vec<Cell> = (0..100).map(|n| Cell::Narrow((n * 97 % 2000) as i16 - 1000)).collect();
        let six = |p: usize| -> [i16; 6] { std::array::from_fn(|j| (p * 6 + j) as i16 * 3 - 900) };
        cells.extend((100..200).map(|p| Cell::Six(six(p))));
        cells.extend((200..300).map(|n| Cell::Narrow((n * 31 % 1500) as i16)));
        let out = run48(&cells);
        assert_eq!(out.len(), 6 * 300);
        for (p, cell) in cells.iter().enumerate() {
            let got = &out[6 * p..6 * p + 6];
            match cell {
                Cell::Six(s) => assert_eq!(got, s, "position {p}"),
                Cell::Narrow(s) => assert_eq!(got[0], *s, "position {p}"),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn a_16k_channel_moved_to_48k_comes_out_as_one_at_48k_from_the_start() {
        // What a 16 kHz channel let out, pushed again through the ×3 stage once it moves to
        // 48 kHz, then the rest of the positions: the same as a 48 kHz channel throughout.
        let cells: Vec<Cell> = (0..400u32)
            .map(|n| match n % 3 {
                0 => Cell::Narrow((n * 53 % 3000) as i16 - 1500),
                1 => Cell::G722((n * 37 % 251) as u8),
                _ => Cell::Empty,
            })
            .chain((0..200).map(|p| Cell::Six(std::array::from_fn(|j| (p * 6 + j) as i16))))
            .collect();
        let want = run48(&cells);
        let mut c = UpChannel::new(16_000);
        let mut wrote = Vec::new();
        for &cell in &cells[..250] {
            wrote.extend(c.push(cell));
        }
        c.raise_to_48k();
        let mut out = Vec::new();
        for pair in wrote {
            if let Some(s) = c.push16([pair.as_slice()[0], pair.as_slice()[1]]) {
                out.extend_from_slice(s.as_slice());
            }
        }
        for &cell in cells[250..].iter().chain(std::iter::repeat_n(&Cell::Empty, c.delay())) {
            if let Some(s) = c.push(cell) {
                out.extend_from_slice(s.as_slice());
            }
        }
        assert_eq!(out, want);
    }
}
