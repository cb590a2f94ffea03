//! One call's audio timeline: a small stereo ring buffer in WAV byte order between the
//! packets (placed by RTP timestamp, possibly out of order) and the WAV file (written in
//! order, in large chunks, as the call goes).
//!
//! Invariant: every sample placed lies in `[written, written + capacity)`; everything before
//! `written` is in the file. Ring cells are zero (silence) until a packet fills them and are
//! zeroed again as soon as they are written out, so gaps are silence without extra work.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::wav::{WavFormat, WavWriter};

/// Bytes per stereo frame.
const FRAME: usize = 4;

/// Sizing of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Ring size in frames (power of two). Memory per call is 4 bytes per frame.
    pub ring_frames: u32,
    /// How long a position stays open for reordered packets at least, in frames.
    pub reorder_frames: u32,
    /// How long a position may wait at most for a party whose packets are held up in the
    /// network (bursty jitter), in frames. Bounded by the ring size.
    pub max_wait_frames: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        // 8192 frames (1.024 s, 32 KiB): positions settle 160-500 ms behind capture time,
        // written in chunks of ~14 KiB.
        TimelineConfig { ring_frames: 8192, reorder_frames: 1280, max_wait_frames: 4000 }
    }
}

/// What happened to a placed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placed {
    /// Samples dropped because their position had already been written.
    pub late_samples: u32,
}

/// The ring buffer and the file behind it.
#[derive(Debug)]
pub struct Timeline {
    ring: Box<[u8]>,
    mask: u64,
    written: u64,
    end: u64,
    chunk: u64,
    writer: WavWriter,
}

impl Timeline {
    /// Creates the WAV file at `path` and an empty timeline.
    pub fn create(path: &Path, cfg: TimelineConfig) -> io::Result<Timeline> {
        let cap = u64::from(cfg.ring_frames.next_power_of_two().max(1024));
        let wait = u64::from(cfg.max_wait_frames.max(cfg.reorder_frames)).min(cap / 2);
        let writer = WavWriter::create(path, WavFormat { channels: 2, sample_rate: 8000 })?;
        Ok(Timeline {
            ring: vec![0u8; cap as usize * FRAME].into_boxed_slice(),
            mask: cap - 1,
            written: 0,
            end: 0,
            // Write once at least this much is settled: what the ring holds besides the longest
            // wait and a 60 ms packet.
            chunk: (cap - wait - 480).max(256),
            writer,
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

    /// Places `payload` (one byte per sample) decoded through `table` on `channel` starting at
    /// frame `pos`. Forces out older frames if the packet reaches past the ring.
    #[inline]
    pub fn place(&mut self, channel: usize, pos: u64, payload: &[u8], table: &[i16; 256]) -> io::Result<Placed> {
        let n = payload.len() as u64;
        if pos + n <= self.written {
            return Ok(Placed { late_samples: n as u32 });
        }
        let skip = self.written.saturating_sub(pos);
        let last = pos + n;
        if last > self.written + self.capacity() {
            self.flush_to(last - self.capacity())?;
        }
        let mask = self.mask;
        let ring = &mut self.ring;
        let ch = channel * 2;
        for (i, &code) in payload.iter().enumerate().skip(skip as usize) {
            let f = pos + i as u64;
            let off = (f & mask) as usize * FRAME + ch;
            let s = table[code as usize].to_le_bytes();
            ring[off] = s[0];
            ring[off + 1] = s[1];
        }
        if last > self.end {
            self.end = last;
        }
        Ok(Placed { late_samples: skip as u32 })
    }

    /// Declares every frame before `target` settled (no packet will be placed there any
    /// more); settled frames are written once there is a chunk of them.
    #[inline]
    pub fn settle(&mut self, target: u64) -> io::Result<()> {
        let settled = target.min(self.end);
        if settled >= self.written + self.chunk {
            self.flush_to(settled)?;
        }
        Ok(())
    }

    fn flush_to(&mut self, upto: u64) -> io::Result<()> {
        while self.written < upto {
            let start = (self.written & self.mask) as usize;
            let n = (upto - self.written).min(self.capacity() - start as u64) as usize;
            let bytes = &mut self.ring[start * FRAME..(start + n) * FRAME];
            self.writer.write_pcm(bytes)?;
            bytes.fill(0);
            self.written += n as u64;
        }
        Ok(())
    }

    /// Writes everything up to the last placed sample, patches the header and returns the
    /// file (not yet fsynced) with its frame count.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        self.flush_to(self.end)?;
        let frames = self.written;
        Ok((self.writer.finish()?, frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::ULAW_TO_LINEAR;

    fn samples(path: &Path) -> Vec<[i16; 2]> {
        let mut r = hound::WavReader::open(path).unwrap();
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        s.chunks(2).map(|c| [c[0], c[1]]).collect()
    }

    fn cfg() -> TimelineConfig {
        TimelineConfig { ring_frames: 1024, reorder_frames: 160, max_wait_frames: 160 }
    }

    #[test]
    fn out_of_order_gaps_and_late_packets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut t = Timeline::create(&p, cfg()).unwrap();
        let a = [0xefu8; 160]; // 132
        let b = [0xfeu8; 160]; // 8
        // Channel 0: packets 0, 2, 1 (reordered); channel 1: packet 1 only.
        t.place(0, 0, &a, &ULAW_TO_LINEAR).unwrap();
        t.place(0, 320, &a, &ULAW_TO_LINEAR).unwrap();
        t.place(0, 160, &b, &ULAW_TO_LINEAR).unwrap();
        t.place(1, 160, &b, &ULAW_TO_LINEAR).unwrap();
        // Far ahead: forces older frames out; then a packet for an already written position.
        t.place(0, 5000, &a, &ULAW_TO_LINEAR).unwrap();
        assert!(t.written() >= 5160 - 1024);
        let late = t.place(1, 480, &b, &ULAW_TO_LINEAR).unwrap();
        assert_eq!(late.late_samples, 160);
        let (_, frames) = t.finish().unwrap();
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
    fn writes_only_settled_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut t = Timeline::create(&p, cfg()).unwrap();
        let a = [0xefu8; 160];
        for k in 0..20u64 {
            t.place(0, k * 160, &a, &ULAW_TO_LINEAR).unwrap();
            t.settle(k * 160).unwrap();
            assert!(t.written() <= k * 160, "never writes what is not settled");
        }
        assert!(t.written() > 0, "a chunk was written");
        let (_, frames) = t.finish().unwrap();
        assert_eq!(frames, 3200);
        assert!(samples(&p).iter().all(|f| *f == [132, 0]));
    }
}
