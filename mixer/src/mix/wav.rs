//! The WAV container: a canonical 44-byte RIFF/WAVE header followed by interleaved 16-bit
//! little-endian PCM. Written as the call goes (header sizes patched at the end), readable by
//! anything that reads WAV, and repairable after a crash because the data size is simply the
//! file length minus the header.
//!
//! Samples are not pushed one by one through a general-purpose WAV library: the mixer's ring
//! buffer already holds frames in WAV byte order, so whole chunks go to the file in one write.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// Length of the canonical header.
pub const HEADER_LEN: u64 = 44;

/// PCM format of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Channels (1 or 2).
    pub channels: u16,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl WavFormat {
    /// Bytes per frame (all channels, 16 bits each).
    pub fn frame_bytes(self) -> u32 {
        u32::from(self.channels) * 2
    }
}

/// Builds the 44-byte header for `data_len` bytes of PCM.
pub fn header(fmt: WavFormat, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let byte_rate = fmt.sample_rate * fmt.frame_bytes();
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&fmt.channels.to_le_bytes());
    h[24..28].copy_from_slice(&fmt.sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&(fmt.frame_bytes() as u16).to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A WAV file being written.
#[derive(Debug)]
pub struct WavWriter {
    file: File,
    fmt: WavFormat,
    data_len: u64,
}

/// Largest data chunk a RIFF header can describe.
pub const MAX_DATA_LEN: u64 = u32::MAX as u64 - 36;

impl WavWriter {
    /// Creates `path` (which must not exist) with a placeholder header.
    pub fn create(path: &Path, fmt: WavFormat) -> io::Result<WavWriter> {
        let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        file.write_all(&header(fmt, 0))?;
        Ok(WavWriter { file, fmt, data_len: 0 })
    }

    /// Appends interleaved PCM bytes. When the write fails (a full disk), whatever part of
    /// `bytes` did get written is cut off again, so the file holds exactly `data_len` bytes of
    /// whole frames and can still be finished with what it has.
    pub fn write_pcm(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.data_len + bytes.len() as u64 > MAX_DATA_LEN {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "WAV data would exceed 4 GiB"));
        }
        if let Err(e) = self.file.write_all(bytes) {
            let good = HEADER_LEN + self.data_len;
            let _ = self.file.set_len(good).and_then(|()| self.file.seek(SeekFrom::Start(good)));
            return Err(e);
        }
        self.data_len += bytes.len() as u64;
        Ok(())
    }

    /// Changes the sample rate of a file that holds no audio yet (an error otherwise).
    pub fn set_rate(&mut self, sample_rate: u32) -> io::Result<()> {
        if self.data_len > 0 {
            return Err(io::Error::other("the sample rate of a WAV file with audio cannot change"));
        }
        self.fmt.sample_rate = sample_rate;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header(self.fmt, 0))
    }

    /// Rewrites the file at `sample_rate`: its PCM so far goes through `convert` (old bytes
    /// in, new bytes appended) into a new file that then replaces this one, and writing goes
    /// on there.
    pub fn rewrite_at(
        &mut self,
        path: &Path,
        sample_rate: u32,
        mut convert: impl FnMut(&[u8], &mut Vec<u8>),
    ) -> io::Result<()> {
        let tmp = path.with_extension("rate.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut out = WavWriter::create(&tmp, WavFormat { sample_rate, ..self.fmt })?;
        self.file.seek(SeekFrom::Start(HEADER_LEN))?;
        let step = 16 * 1024 * self.fmt.frame_bytes() as usize;
        let (mut buf, mut converted) = (vec![0u8; step], Vec::new());
        let mut left = self.data_len;
        while left > 0 {
            let n = (left as usize).min(step);
            io::Read::read_exact(&mut self.file, &mut buf[..n])?;
            converted.clear();
            convert(&buf[..n], &mut converted);
            out.write_pcm(&converted)?;
            left -= n as u64;
        }
        std::fs::rename(&tmp, path)?;
        *self = out;
        Ok(())
    }

    /// PCM bytes written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.data_len / u64::from(self.fmt.frame_bytes())
    }

    /// Patches the header with the final sizes and returns the file (not yet fsynced).
    pub fn finish(mut self) -> io::Result<File> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header(self.fmt, self.data_len as u32))?;
        Ok(self.file)
    }
}

/// Rewrites the header sizes of a WAV file from its actual length (after a crash left the
/// placeholder in place). Returns the number of PCM bytes, trimmed to whole frames.
pub fn repair(path: &Path, fmt: WavFormat) -> io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < HEADER_LEN {
        file.set_len(0)?;
        file.write_all(&header(fmt, 0))?;
        return Ok(0);
    }
    let frame = u64::from(fmt.frame_bytes());
    let data = ((len - HEADER_LEN) / frame * frame).min(MAX_DATA_LEN / frame * frame);
    file.set_len(HEADER_LEN + data)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header(fmt, data as u32))?;
    file.sync_all()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEREO: WavFormat = WavFormat { channels: 2, sample_rate: 8000 };

    #[test]
    fn header_fixture() {
        let h = header(STEREO, 320);
        let want: [u8; 44] = [
            b'R', b'I', b'F', b'F', 0x64, 0x01, 0, 0, b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ', 16, 0, 0, 0, 1,
            0, 2, 0, 0x40, 0x1f, 0, 0, 0x00, 0x7d, 0, 0, 4, 0, 16, 0, b'd', b'a', b't', b'a', 0x40, 0x01, 0, 0,
        ];
        assert_eq!(h, want);
    }

    #[test]
    fn written_file_reads_back_with_hound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = WavWriter::create(&p, STEREO).unwrap();
        let frames: Vec<u8> = [1i16, -1, 300, -300, i16::MAX, i16::MIN].iter().flat_map(|s| s.to_le_bytes()).collect();
        w.write_pcm(&frames).unwrap();
        assert_eq!(w.frames(), 3);
        w.finish().unwrap();
        let mut r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        assert_eq!(r.spec().bits_per_sample, 16);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s, vec![1, -1, 300, -300, i16::MAX, i16::MIN]);
        assert!(WavWriter::create(&p, STEREO).is_err(), "never overwrites");
    }

    #[test]
    fn repair_after_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = WavWriter::create(&p, STEREO).unwrap();
        w.write_pcm(&[7u8; 4 * 100 + 3]).unwrap(); // a torn last frame
        drop(w); // crash: header still says 0 bytes
        assert_eq!(repair(&p, STEREO).unwrap(), 400);
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.duration(), 100);
    }
}
