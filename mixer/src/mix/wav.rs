//! The WAV container: a canonical RIFF/WAVE header followed by interleaved samples, either
//! 16-bit little-endian PCM (44-byte header) or G.711 codes, one byte per sample (µ-law, format
//! tag 7, or A-law, tag 6: a 58-byte header with the `cbSize` and `fact` chunk that non-PCM
//! formats carry). Written as the call goes (header sizes patched at the end), readable by
//! anything that reads WAV, and repairable after a crash because the data size is simply the
//! file length minus the header.
//!
//! Samples are not pushed one by one through a general-purpose WAV library: the mixer's ring
//! buffer already holds frames in WAV byte order, so whole chunks go to the file in one write.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use crate::mix::openfiles::AudioFile;

/// Length of the PCM header.
pub const HEADER_LEN: u64 = 44;
/// Length of the G.711 header (`fmt ` of 18 bytes, `fact`).
pub const G711_HEADER_LEN: u64 = 58;

/// How the samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// 16-bit signed little-endian PCM (format tag 1).
    #[default]
    Pcm16,
    /// G.711 µ-law codes (format tag 7).
    Ulaw,
    /// G.711 A-law codes (format tag 6).
    Alaw,
}

impl Encoding {
    /// The record's `encoding` (the names ffmpeg and sox users know).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Pcm16 => "pcm_s16le",
            Encoding::Ulaw => "pcm_mulaw",
            Encoding::Alaw => "pcm_alaw",
        }
    }

    /// Bits per sample in the file.
    pub fn bits(self) -> u16 {
        match self {
            Encoding::Pcm16 => 16,
            Encoding::Ulaw | Encoding::Alaw => 8,
        }
    }

    fn tag(self) -> u16 {
        match self {
            Encoding::Pcm16 => 1,
            Encoding::Alaw => 6,
            Encoding::Ulaw => 7,
        }
    }

    fn from_tag(tag: u16, bits: u16) -> Option<Encoding> {
        match (tag, bits) {
            (1, 16) => Some(Encoding::Pcm16),
            (6, 8) => Some(Encoding::Alaw),
            (7, 8) => Some(Encoding::Ulaw),
            _ => None,
        }
    }
}

/// Sample format of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Channels (1 or 2).
    pub channels: u16,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// How each sample is stored.
    pub encoding: Encoding,
}

impl WavFormat {
    /// 16-bit PCM.
    pub fn pcm(channels: u16, sample_rate: u32) -> WavFormat {
        WavFormat { channels, sample_rate, encoding: Encoding::Pcm16 }
    }

    /// Bytes per frame (all channels).
    pub fn frame_bytes(self) -> u32 {
        u32::from(self.channels) * u32::from(self.encoding.bits() / 8)
    }

    /// Length of the header before the samples.
    pub fn header_len(self) -> u64 {
        match self.encoding {
            Encoding::Pcm16 => HEADER_LEN,
            Encoding::Ulaw | Encoding::Alaw => G711_HEADER_LEN,
        }
    }

    /// The format a header written by [`header`] describes, if `head` (at least the header's
    /// first 36 bytes) is one.
    pub fn parse(head: &[u8]) -> Option<WavFormat> {
        if head.len() < 36 || &head[..4] != b"RIFF" || &head[8..16] != b"WAVEfmt " {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
        let encoding = Encoding::from_tag(u16_at(20), u16_at(34))?;
        let sample_rate = u32::from_le_bytes([head[24], head[25], head[26], head[27]]);
        Some(WavFormat { channels: u16_at(22), sample_rate, encoding })
    }
}

/// Builds the header for `data_len` bytes of samples ([`WavFormat::header_len`] bytes).
pub fn header(fmt: WavFormat, data_len: u32) -> Vec<u8> {
    let g711 = fmt.encoding != Encoding::Pcm16;
    let mut h = Vec::with_capacity(fmt.header_len() as usize);
    let byte_rate = fmt.sample_rate * fmt.frame_bytes();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(fmt.header_len() as u32 - 8).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&(if g711 { 18u32 } else { 16 }).to_le_bytes());
    h.extend_from_slice(&fmt.encoding.tag().to_le_bytes());
    h.extend_from_slice(&fmt.channels.to_le_bytes());
    h.extend_from_slice(&fmt.sample_rate.to_le_bytes());
    h.extend_from_slice(&byte_rate.to_le_bytes());
    h.extend_from_slice(&(fmt.frame_bytes() as u16).to_le_bytes());
    h.extend_from_slice(&fmt.encoding.bits().to_le_bytes());
    if g711 {
        // cbSize: no extension; `fact`: frames (samples per channel).
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&(data_len / fmt.frame_bytes()).to_le_bytes());
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// A WAV file being written.
#[derive(Debug)]
pub struct WavWriter {
    file: AudioFile,
    fmt: WavFormat,
    data_len: u64,
}

/// Largest data chunk a RIFF header can describe (whatever the header's length).
pub const MAX_DATA_LEN: u64 = u32::MAX as u64 - G711_HEADER_LEN;

impl WavWriter {
    /// Creates `path` (which must not exist) with a placeholder header.
    pub fn create(path: &Path, fmt: WavFormat) -> io::Result<WavWriter> {
        let mut file = AudioFile::create_new(path)?;
        file.get()?.write_all(&header(fmt, 0))?;
        file.release();
        Ok(WavWriter { file, fmt, data_len: 0 })
    }

    /// The file's sample format.
    pub fn format(&self) -> WavFormat {
        self.fmt
    }

    /// Appends interleaved samples (in the file's encoding). When the write fails (a full
    /// disk), whatever part of `bytes` did get written is cut off again, so the file holds
    /// exactly `data_len` bytes of whole frames and can still be finished with what it has.
    pub fn write_pcm(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.data_len + bytes.len() as u64 > MAX_DATA_LEN {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "WAV data would exceed 4 GiB"));
        }
        let file = self.file.get()?;
        if let Err(e) = file.write_all(bytes) {
            let good = self.fmt.header_len() + self.data_len;
            let _ = file.set_len(good).and_then(|()| file.seek(SeekFrom::Start(good)));
            return Err(e);
        }
        self.file.wrote(bytes.len());
        self.file.release();
        self.data_len += bytes.len() as u64;
        Ok(())
    }

    /// Changes the sample format of a file that holds no audio yet (an error otherwise).
    pub fn set_format(&mut self, fmt: WavFormat) -> io::Result<()> {
        if self.data_len > 0 {
            return Err(io::Error::other("the sample format of a WAV file with audio cannot change"));
        }
        self.fmt = fmt;
        let file = self.file.get()?;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(self.fmt, 0))?;
        self.file.release();
        Ok(())
    }

    /// Rewrites the file as `fmt`: its samples so far go through `convert` (old bytes in, new
    /// bytes appended) into a new file that then replaces this one, and writing goes on there.
    pub fn rewrite_as(
        &mut self,
        path: &Path,
        fmt: WavFormat,
        mut convert: impl FnMut(&[u8], &mut Vec<u8>),
    ) -> io::Result<()> {
        let tmp = path.with_extension("rate.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut out = WavWriter::create(&tmp, fmt)?;
        self.file.get()?.seek(SeekFrom::Start(self.fmt.header_len()))?;
        let step = 16 * 1024 * self.fmt.frame_bytes() as usize;
        let (mut buf, mut converted) = (vec![0u8; step], Vec::new());
        let mut left = self.data_len;
        while left > 0 {
            let n = (left as usize).min(step);
            io::Read::read_exact(self.file.get()?, &mut buf[..n])?;
            converted.clear();
            convert(&buf[..n], &mut converted);
            out.write_pcm(&converted)?;
            left -= n as u64;
        }
        std::fs::rename(&tmp, path)?;
        out.file.renamed(path);
        *self = out;
        Ok(())
    }

    /// Sample bytes written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.data_len / u64::from(self.fmt.frame_bytes())
    }

    /// Patches the header with the final sizes and returns the file (not yet fsynced).
    pub fn finish(mut self) -> io::Result<AudioFile> {
        let file = self.file.get()?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(self.fmt, self.data_len as u32))?;
        self.file.ended();
        self.file.release();
        Ok(self.file)
    }
}

/// Rewrites the header sizes of a WAV file from its actual length (after a crash left the
/// placeholder in place). Returns the number of sample bytes, trimmed to whole frames.
pub fn repair(path: &Path, fmt: WavFormat) -> io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let head = fmt.header_len();
    if len < head {
        file.set_len(0)?;
        file.write_all(&header(fmt, 0))?;
        return Ok(0);
    }
    let frame = u64::from(fmt.frame_bytes());
    let data = ((len - head) / frame * frame).min(MAX_DATA_LEN / frame * frame);
    file.set_len(head + data)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header(fmt, data as u32))?;
    file.sync_all()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEREO: WavFormat = WavFormat { channels: 2, sample_rate: 8000, encoding: Encoding::Pcm16 };

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
    fn g711_header_has_cbsize_and_fact_and_parses_back() {
        let ulaw = WavFormat { channels: 2, sample_rate: 8000, encoding: Encoding::Ulaw };
        let h = header(ulaw, 320);
        assert_eq!(h.len() as u64, ulaw.header_len());
        let want: [u8; 58] = [
            b'R', b'I', b'F', b'F', 0x72, 0x01, 0, 0, b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ', 18, 0, 0, 0, 7,
            0, 2, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 8, 0, 0, 0, b'f', b'a', b'c', b't', 4, 0, 0, 0, 0xa0, 0,
            0, 0, b'd', b'a', b't', b'a', 0x40, 0x01, 0, 0,
        ];
        assert_eq!(h, want);
        assert_eq!(WavFormat::parse(&h), Some(ulaw));
        let alaw = WavFormat { channels: 1, sample_rate: 8000, encoding: Encoding::Alaw };
        assert_eq!(WavFormat::parse(&header(alaw, 0)), Some(alaw));
        assert_eq!(WavFormat::parse(&header(STEREO, 8)), Some(STEREO));
        assert_eq!(WavFormat::parse(b"RIFF\0\0\0\0WAVEfmt "), None, "too short");
    }

    #[test]
    fn g711_repair_and_format_change_keep_their_header_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let ulaw = WavFormat { channels: 2, sample_rate: 8000, encoding: Encoding::Ulaw };
        let mut w = WavWriter::create(&p, STEREO).unwrap();
        w.set_format(ulaw).unwrap();
        w.write_pcm(&[0x12; 2 * 50 + 1]).unwrap(); // a torn last frame
        drop(w);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 58 + 101);
        assert_eq!(repair(&p, ulaw).unwrap(), 100);
        let b = std::fs::read(&p).unwrap();
        assert_eq!(&b[..58], &header(ulaw, 100)[..]);
        assert_eq!(&b[58..], &[0x12; 100][..]);
        // Once there is audio the format stays.
        let mut w = WavWriter::create(&dir.path().join("b.wav"), STEREO).unwrap();
        w.write_pcm(&[0; 4]).unwrap();
        assert!(w.set_format(ulaw).is_err());
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
