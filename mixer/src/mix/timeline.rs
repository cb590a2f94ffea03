//! One call's audio timeline: a small ring between the packets (placed by RTP timestamp,
//! possibly out of order) and the WAV file (written in order, in large chunks, as the call
//! goes).
//!
//! The ring keeps each party's G.711 codes as they arrived (one byte per sample, one plane per
//! channel) plus one bit per sample saying whether anything arrived there. A packet is a plain
//! copy of its payload into its channel's plane; decoding to 16-bit PCM happens only when
//! frames are written out, into a scratch buffer the caller reuses across calls (so it stays in
//! cache). Per call that is 2 x (ring bytes + ring / 8 bits), and per packet the memory touched
//! is the payload itself.
//!
//! Invariant: every sample placed lies in `[written, written + capacity)`; everything before
//! `written` is in the file. Samples with their bit clear are written as digital silence.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::mix::audio::{AudioConfig, AudioOut};
use crate::mix::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};

/// Bytes per stereo frame in the file.
const FRAME: usize = 4;

/// Companding law of a channel's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// G.711 µ-law (PCMU).
    Ulaw,
    /// G.711 A-law (PCMA).
    Alaw,
}

impl Law {
    fn table(self) -> &'static [i16; 256] {
        match self {
            Law::Ulaw => &ULAW_TO_LINEAR,
            Law::Alaw => &ALAW_TO_LINEAR,
        }
    }
}

/// Sizing of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Ring size in frames (rounded up to a power of two, at least 1024). Memory per call is
    /// 2.25 bytes per frame.
    pub ring_frames: u32,
    /// How far behind the slowest sending party's progress (in RTP time) a position stays
    /// open for reordered packets, in frames.
    pub reorder_frames: u32,
    /// How far at most the written audio may trail the leading party's progress, in frames:
    /// what can be held for a party whose packets are held up (in the network or the capture)
    /// while the other one's come on. Packets of a party held up longer arrive after their
    /// place was written: they are counted late and the record names the gap. Bounded by the
    /// ring less a minimal write chunk.
    pub max_hold_frames: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        // 8192 frames (1.024 s, 18 KiB): a party may be held up 700 ms while the other one's
        // audio waits in the ring; settled positions are written in chunks of at least ~8 KiB.
        TimelineConfig { ring_frames: 8192, reorder_frames: 1280, max_hold_frames: 5600 }
    }
}

impl TimelineConfig {
    /// The hold bound as it applies to a ring of this size.
    pub fn hold(&self) -> u32 {
        let cap = self.ring_frames.next_power_of_two().max(1024);
        self.max_hold_frames.max(self.reorder_frames).min(cap - MIN_CHUNK - MAX_PACKET)
    }
}

/// Smallest write chunk (frames).
const MIN_CHUNK: u32 = 256;
/// Longest packet the ring leaves room for beyond the hold (60 ms).
const MAX_PACKET: u32 = 480;

/// What happened to a placed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placed {
    /// Samples dropped because their position had already been written.
    pub late_samples: u32,
}

/// One channel's plane of the ring.
#[derive(Debug)]
struct Plane {
    codes: Box<[u8]>,
    filled: Box<[u64]>,
    /// Law of the codes, set by the first packet.
    law: Option<Law>,
}

impl Plane {
    fn new(cap: usize) -> Plane {
        Plane { codes: vec![0u8; cap].into_boxed_slice(), filled: vec![0u64; cap / 64].into_boxed_slice(), law: None }
    }

    /// Marks ring cells `[start, start + n)` (no wrap) as filled.
    fn mark(&mut self, start: usize, n: usize) {
        let (mut i, end) = (start, start + n);
        while i < end {
            let word = i / 64;
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << bit };
            self.filled[word] |= mask;
            i += take;
        }
    }
}

/// The ring buffer and the file behind it.
#[derive(Debug)]
pub struct Timeline {
    planes: [Plane; 2],
    mask: u64,
    written: u64,
    end: u64,
    chunk: u64,
    out: AudioOut,
}

impl Timeline {
    /// Creates the audio file at `path` and an empty timeline.
    pub fn create(path: &Path, cfg: TimelineConfig, audio: AudioConfig) -> io::Result<Timeline> {
        let cap = u64::from(cfg.ring_frames.next_power_of_two().max(1024));
        let hold = u64::from(cfg.hold());
        let out = AudioOut::create(path, audio)?;
        Ok(Timeline {
            planes: [Plane::new(cap as usize), Plane::new(cap as usize)],
            mask: cap - 1,
            written: 0,
            end: 0,
            // Write once at least this much is settled: what the ring holds besides the hold
            // and a 60 ms packet.
            chunk: (cap - hold - u64::from(MAX_PACKET)).max(u64::from(MIN_CHUNK)),
            out,
        })
    }

    /// Frames written to the file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// One past the last frame any packet reached.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Places `payload` (G.711 codes in `law`, one byte per sample) on `channel` starting at
    /// frame `pos`. Forces out older frames if the packet reaches past the ring. `scratch` is
    /// reused for decoding when frames have to be written.
    #[inline]
    pub fn place(
        &mut self,
        channel: usize,
        pos: u64,
        payload: &[u8],
        law: Law,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        let n = payload.len() as u64;
        match self.planes[channel].law {
            Some(l) if l == law => {}
            Some(_) => {
                // A channel changing law mid-call (re-INVITE): write out what it has under the
                // old one first.
                if self.end > self.written {
                    self.flush_to(self.end, scratch)?;
                }
                self.planes[channel].law = Some(law);
            }
            None => self.planes[channel].law = Some(law),
        }
        if pos + n <= self.written {
            return Ok(Placed { late_samples: n as u32 });
        }
        let skip = self.written.saturating_sub(pos);
        let last = pos + n;
        if last > self.written + self.capacity() {
            self.flush_to(last - self.capacity(), scratch)?;
        }
        let cap = self.capacity();
        let plane = &mut self.planes[channel];
        let mut from = pos + skip;
        let mut codes = &payload[skip as usize..];
        while !codes.is_empty() {
            let start = (from & self.mask) as usize;
            let run = codes.len().min((cap - start as u64) as usize);
            plane.codes[start..start + run].copy_from_slice(&codes[..run]);
            plane.mark(start, run);
            codes = &codes[run..];
            from += run as u64;
        }
        if last > self.end {
            self.end = last;
        }
        Ok(Placed { late_samples: skip as u32 })
    }

    /// Declares every frame before `target` settled (no packet will be placed there any
    /// more); settled frames are written once there is a chunk of them.
    #[inline]
    pub fn settle(&mut self, target: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        let settled = target.min(self.end);
        if settled >= self.written + self.chunk {
            self.flush_to(settled, scratch)?;
        }
        Ok(())
    }

    fn flush_to(&mut self, upto: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        while self.written < upto {
            let start = (self.written & self.mask) as usize;
            // Whole bitmap words at a time keep the decode loop simple; runs end at the wrap.
            let n = (upto - self.written).min(self.capacity() - start as u64) as usize;
            scratch.clear();
            scratch.resize(n * FRAME, 0);
            for (ch, plane) in self.planes.iter_mut().enumerate() {
                decode_run(plane, start, n, ch, scratch);
            }
            self.out.write_stereo(scratch)?;
            self.written += n as u64;
        }
        Ok(())
    }

    /// Writes everything up to the last placed sample, patches the header(s) and returns the
    /// file(s) (not yet fsynced) with the frame count.
    pub fn finish(mut self, scratch: &mut Vec<u8>) -> io::Result<Finished> {
        if let Err(e) = self.flush_to(self.end, scratch) {
            return self.finish_partial().map(|f| Finished { cut: Some(e), ..f });
        }
        let frames = self.written;
        Ok(Finished { files: self.out.finish()?, frames, cut: None })
    }

    /// After a write failed (a full disk): keeps what the file(s) already hold, writes
    /// nothing more, and returns them with the frames they hold.
    pub fn finish_partial(self) -> io::Result<Finished> {
        let (files, frames) = self.out.finish_partial()?;
        Ok(Finished { files, frames, cut: None })
    }
}

/// The audio file(s) of a finished timeline.
#[derive(Debug)]
pub struct Finished {
    /// The file(s), headers patched, not yet fsynced.
    pub files: Vec<(PathBuf, File)>,
    /// Frames in each file.
    pub frames: u64,
    /// The write error that cut the audio short while finishing, if any.
    pub cut: Option<io::Error>,
}

/// Decodes ring cells `[start, start + n)` of `plane` into channel `ch` of the interleaved
/// `out` (which is zero), and clears their filled bits.
fn decode_run(plane: &mut Plane, start: usize, n: usize, ch: usize, out: &mut [u8]) {
    let Some(law) = plane.law else { return };
    let table = law.table();
    let mut i = 0;
    while i < n {
        let cell = start + i;
        let word = cell / 64;
        let bit = cell % 64;
        let take = (64 - bit).min(n - i);
        let bits = plane.filled[word] >> bit;
        let mask = if take == 64 { u64::MAX } else { (1u64 << take) - 1 };
        let present = bits & mask;
        if present != 0 {
            let codes = &plane.codes[cell..cell + take];
            let frames = &mut out[i * FRAME..(i + take) * FRAME];
            if present == mask {
                for (frame, &code) in frames.chunks_exact_mut(FRAME).zip(codes) {
                    let s = table[code as usize].to_le_bytes();
                    frame[ch * 2] = s[0];
                    frame[ch * 2 + 1] = s[1];
                }
            } else {
                for (k, (frame, &code)) in frames.chunks_exact_mut(FRAME).zip(codes).enumerate() {
                    if present >> k & 1 != 0 {
                        let s = table[code as usize].to_le_bytes();
                        frame[ch * 2] = s[0];
                        frame[ch * 2 + 1] = s[1];
                    }
                }
            }
            plane.filled[word] &= !(mask << bit);
        }
        i += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(path: &Path) -> Vec<[i16; 2]> {
        let mut r = hound::WavReader::open(path).unwrap();
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        s.chunks(2).map(|c| [c[0], c[1]]).collect()
    }

    fn cfg() -> TimelineConfig {
        TimelineConfig { ring_frames: 1024, reorder_frames: 160, max_hold_frames: 160 }
    }

    #[test]
    fn out_of_order_gaps_and_late_packets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default()).unwrap();
        let a = [0xefu8; 160]; // µ-law 132
        let b = [0xfeu8; 160]; // µ-law 8
        // Channel 0: packets 0, 2, 1 (reordered); channel 1: packet 1 only.
        t.place(0, 0, &a, Law::Ulaw, &mut s).unwrap();
        t.place(0, 320, &a, Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &b, Law::Ulaw, &mut s).unwrap();
        t.place(1, 160, &b, Law::Ulaw, &mut s).unwrap();
        // Far ahead: forces older frames out; then a packet for an already written position.
        t.place(0, 5000, &a, Law::Ulaw, &mut s).unwrap();
        assert!(t.written() >= 5160 - 1024);
        let late = t.place(1, 480, &b, Law::Ulaw, &mut s).unwrap();
        assert_eq!(late.late_samples, 160);
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 5160);
        let s = samples(&p);
        assert_eq!(s.len(), 5160);
        assert_eq!(s[0], [132, 0]);
        assert_eq!(s[159], [132, 0]);
        assert_eq!(s[160], [8, 8]);
        assert_eq!(s[319], [8, 8]);
        assert_eq!(s[320], [132, 0]);
        assert_eq!(s[480], [0, 0]);
        assert_eq!(s[4999], [0, 0]);
        assert_eq!(s[5000], [132, 0]);
    }

    #[test]
    fn unaligned_packets_partial_words_and_a_law_silence_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default()).unwrap();
        // A-law idle code decodes to +8; gaps must still be exact zeros.
        t.place(0, 3, &[0xd5; 7], Law::Alaw, &mut s).unwrap();
        t.place(1, 61, &[0x2a; 10], Law::Alaw, &mut s).unwrap(); // crosses a 64-bit word
        t.place(0, 1020, &[0xd5; 10], Law::Alaw, &mut s).unwrap(); // wraps the ring
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 1030);
        let s = samples(&p);
        assert_eq!(s[0..3], [[0, 0]; 3]);
        assert_eq!(s[3..10], [[8, 0]; 7]);
        assert_eq!(s[10], [0, 0]);
        assert_eq!(s[60], [0, 0]);
        assert_eq!(s[61..71], [[0, -32256]; 10]);
        assert_eq!(s[71], [0, 0]);
        assert_eq!(s[1019], [0, 0]);
        assert_eq!(s[1020..1030], [[8, 0]; 10]);
    }

    #[test]
    fn law_change_with_a_late_packet_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default()).unwrap();
        t.place(0, 0, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        // The law changes with a packet whose place the forced write-out passes.
        let late = t.place(0, 100, &[0xaa; 160], Law::Alaw, &mut s).unwrap();
        assert_eq!(late.late_samples, 160);
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 320);
    }

    #[test]
    fn law_change_mid_call() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default()).unwrap();
        t.place(0, 0, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &[0xaa; 160], Law::Alaw, &mut s).unwrap();
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 320);
        let s = samples(&p);
        assert_eq!(s[159], [132, 0]);
        assert_eq!(s[160], [32256, 0]);
    }

    #[test]
    fn writes_only_settled_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default()).unwrap();
        let a = [0xefu8; 160];
        for k in 0..20u64 {
            t.place(0, k * 160, &a, Law::Ulaw, &mut s).unwrap();
            t.settle(k * 160, &mut s).unwrap();
            assert!(t.written() <= k * 160, "never writes what is not settled");
        }
        assert!(t.written() > 0, "a chunk was written");
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 3200);
        assert!(samples(&p).iter().all(|f| *f == [132, 0]));
    }
}
