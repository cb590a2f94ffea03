//! The WAV container: a canonical RIFF/WAVE header followed by interleaved samples, either
//! 16-bit little-endian PCM (44-byte header) or G.711 codes, one byte per sample (µ-law, format
//! tag 7, or A-law, tag 6: a 58-byte header with the `cbSize` and `fact` chunk that non-PCM
//! formats carry). Written as the call goes (header sizes patched at the end), readable by
//! anything that reads WAV, and repairable after a crash because the data size is simply the
//! file length minus the header.
//!
//! A RIFF header's sizes are 32-bit: a file stops at 4 GiB, 37 hours of a stereo 8 kHz call,
//! 18.6 of a 16 kHz one, 6.2 at 48 kHz. A file about to pass that becomes RF64 (EBU Tech 3306,
//! read by ffmpeg, libsndfile and the audio tools built on them): its samples move one
//! filesystem block ([`RF64_SHIFT`]) down the file, which on ext4 and XFS moves no data
//! (`fallocate` with `FALLOC_FL_INSERT_RANGE` shifts the file's extents; elsewhere the file is
//! copied, in the kernel, into a new one), and the room before them holds the `RF64` header
//! with its `ds64` chunk of 64-bit sizes, the same `fmt ` (and `fact`) chunk, and a `JUNK`
//! chunk up to the `data` chunk. The call is recorded on in the same file, whatever its length.
//!
//! Samples are not pushed one by one through a general-purpose WAV library: the mixer's ring
//! buffer already holds frames in WAV byte order, so whole chunks go to the file in one write.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::mix::openfiles::AudioFile;

/// Length of the PCM header.
pub const HEADER_LEN: u64 = 44;
/// Length of the G.711 header (`fmt ` of 18 bytes, `fact`).
pub const G711_HEADER_LEN: u64 = 58;
/// How far the samples of a file that becomes RF64 move down it: a filesystem block.
pub const RF64_SHIFT: u64 = 4096;
/// Length of the `ds64` chunk (header and body, no table).
const DS64_LEN: usize = 36;

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
    /// first 36 bytes) is one. An RF64 header ([`rf64_header`]: at least 72 bytes) too.
    pub fn parse(head: &[u8]) -> Option<WavFormat> {
        if head.len() >= 36 + DS64_LEN && &head[..4] == b"RF64" && &head[8..16] == b"WAVEds64" {
            // The same chunks after the `ds64` one.
            let mut plain = head[..12].to_vec();
            plain.extend_from_slice(&head[12 + DS64_LEN..]);
            plain[..4].copy_from_slice(b"RIFF");
            return WavFormat::parse(&plain);
        }
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

/// The RF64 header for `data_len` bytes of samples starting [`RF64_SHIFT`] further down the
/// file than [`header`]'s do (see the module's notes): `RF64`, `ds64`, the `fmt ` (and
/// `fact`) chunk as [`header`] writes it, `JUNK`, `data`. The 32-bit sizes say -1: "in `ds64`".
pub fn rf64_header(fmt: WavFormat, data_len: u64) -> Vec<u8> {
    let plain = header(fmt, u32::MAX);
    let at = (RF64_SHIFT + fmt.header_len()) as usize;
    let mut h = Vec::with_capacity(at);
    h.extend_from_slice(b"RF64");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEds64");
    h.extend_from_slice(&(DS64_LEN as u32 - 8).to_le_bytes());
    h.extend_from_slice(&(at as u64 + data_len - 8).to_le_bytes());
    h.extend_from_slice(&data_len.to_le_bytes());
    h.extend_from_slice(&(data_len / u64::from(fmt.frame_bytes())).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // no table
    h.extend_from_slice(&plain[12..plain.len() - 8]); // `fmt ` (and `fact`)
    if fmt.encoding != Encoding::Pcm16 {
        let n = h.len();
        h[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes()); // `fact`'s count: in `ds64`
    }
    let junk = at - 8 - h.len() - 8;
    h.extend_from_slice(b"JUNK");
    h.extend_from_slice(&(junk as u32).to_le_bytes());
    h.resize(at - 8, 0);
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}

/// Where the samples of a WAV file start, and its format, from its first bytes (at least
/// [`RF64_SHIFT`] + 72 of them, or the whole file if shorter): a RIFF or RF64 header this module
/// writes, or a file a crash left in the middle of becoming RF64 (its first block zeros, the
/// RIFF header after it).
pub fn layout(head: &[u8]) -> Option<(WavFormat, u64)> {
    if let Some(fmt) = WavFormat::parse(head) {
        let shift = if &head[..4] == b"RF64" { RF64_SHIFT } else { 0 };
        return Some((fmt, shift + fmt.header_len()));
    }
    let shifted = head.get(RF64_SHIFT as usize..)?;
    let fmt = WavFormat::parse(shifted).filter(|_| head[..RF64_SHIFT as usize].iter().all(|&b| b == 0))?;
    Some((fmt, RF64_SHIFT + fmt.header_len()))
}

/// A WAV file being written.
#[derive(Debug)]
pub struct WavWriter {
    file: AudioFile,
    fmt: WavFormat,
    data_len: u64,
    /// Whether it is RF64 (its samples [`RF64_SHIFT`] further down).
    rf64: bool,
    /// Sample bytes past which it becomes RF64.
    limit: u64,
}

/// Largest data chunk a RIFF header can describe (whatever the header's length).
pub const MAX_DATA_LEN: u64 = u32::MAX as u64 - G711_HEADER_LEN;

impl WavWriter {
    /// Creates `path` (which must not exist) with a placeholder header.
    pub fn create(path: &Path, fmt: WavFormat) -> io::Result<WavWriter> {
        let mut file = AudioFile::create_new(path)?;
        file.get()?.write_all(&header(fmt, 0))?;
        file.release();
        Ok(WavWriter { file, fmt, data_len: 0, rf64: false, limit: MAX_DATA_LEN })
    }

    /// Makes the file RF64 once it holds more than `bytes` of samples (tests: [`MAX_DATA_LEN`]
    /// otherwise, where RIFF's sizes end).
    #[cfg(test)]
    pub(crate) fn rf64_beyond(&mut self, bytes: u64) {
        self.limit = bytes;
    }

    /// How much further down than its format's header the samples start: [`RF64_SHIFT`] in an
    /// RF64 file.
    pub fn shift(&self) -> u64 {
        if self.rf64 { RF64_SHIFT } else { 0 }
    }

    /// Where the samples start.
    fn data_at(&self) -> u64 {
        self.fmt.header_len() + self.shift()
    }

    /// The header as it is now.
    fn header_now(&self) -> Vec<u8> {
        if self.rf64 { rf64_header(self.fmt, self.data_len) } else { header(self.fmt, self.data_len as u32) }
    }

    /// Turns the file into RF64 (see the module's notes): its samples move [`RF64_SHIFT`]
    /// down, by `FALLOC_FL_INSERT_RANGE` or else by copying the file into a new one.
    fn become_rf64(&mut self) -> io::Result<()> {
        use rustix::io::Errno;
        let file = self.file.get()?;
        match rustix::fs::fallocate(&*file, rustix::fs::FallocateFlags::INSERT_RANGE, 0, RF64_SHIFT) {
            Ok(()) => {}
            // The filesystem cannot move extents (or not these): copy.
            Err(e @ (Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS)) => {
                let path = self.file.path().to_owned();
                tracing::info!(path = %path.display(), "the file passes 4 GiB: copied into an RF64 file (its extents cannot move: {e})");
                let tmp = path.with_extension("rf64.tmp");
                let copied = self.copy_shifted(&tmp);
                if copied.is_err() {
                    // The file is as it was; the copy would only hold the disk's space.
                    let _ = std::fs::remove_file(&tmp);
                }
                let mut out = copied?;
                std::fs::rename(&tmp, &path)?;
                out.renamed(&path);
                self.file = out;
            }
            Err(e) => return Err(e.into()),
        }
        self.rf64 = true;
        let head = self.header_now();
        let file = self.file.get()?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&head)?;
        file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    /// A copy of the file at `tmp`, its content [`RF64_SHIFT`] further down.
    fn copy_shifted(&mut self, tmp: &Path) -> io::Result<AudioFile> {
        let len = self.data_at() + self.data_len;
        let _ = std::fs::remove_file(tmp);
        let mut out = AudioFile::create_new(tmp)?;
        let (src, dst) = (self.file.get()?, out.get()?);
        src.seek(SeekFrom::Start(0))?;
        dst.seek(SeekFrom::Start(RF64_SHIFT))?;
        // File to file: the kernel copies (copy_file_range).
        if io::copy(&mut Read::by_ref(src).take(len), dst)? != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was copied"));
        }
        Ok(out)
    }

    /// The file's sample format.
    pub fn format(&self) -> WavFormat {
        self.fmt
    }

    /// Appends interleaved samples (in the file's encoding). When the write fails (a full
    /// disk), whatever part of `bytes` did get written is cut off again, so the file holds
    /// exactly `data_len` bytes of whole frames and can still be finished with what it has.
    pub fn write_pcm(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.rf64 && self.data_len + bytes.len() as u64 > self.limit {
            self.become_rf64()?;
        }
        let good = self.data_at() + self.data_len;
        let file = self.file.get()?;
        if let Err(e) = file.write_all(bytes) {
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
        let from = self.data_at();
        self.file.get()?.seek(SeekFrom::Start(from))?;
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
        let head = self.header_now();
        let file = self.file.get()?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&head)?;
        self.file.ended();
        self.file.release();
        Ok(self.file)
    }
}

/// Rewrites the header sizes of a WAV file from its actual length (after a crash left the
/// placeholder in place), its samples starting at `data_at` ([`layout`]: further down than
/// `fmt`'s header in an RF64 file, which stays one). Returns the number of sample bytes,
/// trimmed to whole frames.
pub fn repair(path: &Path, fmt: WavFormat, data_at: u64) -> io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let rf64 = data_at > fmt.header_len();
    if len < data_at {
        file.set_len(0)?;
        file.write_all(&header(fmt, 0))?;
        return Ok(0);
    }
    let frame = u64::from(fmt.frame_bytes());
    let mut data = (len - data_at) / frame * frame;
    if !rf64 {
        data = data.min(MAX_DATA_LEN / frame * frame);
    }
    file.set_len(data_at + data)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&if rf64 { rf64_header(fmt, data) } else { header(fmt, data as u32) })?;
    file.sync_all()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
        assert_eq!(repair(&p, ulaw, 58).unwrap(), 100);
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
        assert_eq!(repair(&p, STEREO, 44).unwrap(), 400);
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.duration(), 100);
    }

    /// What ffprobe (ffmpeg's reader) makes of a WAV or RF64 file: its sample format, channels,
    /// rate and samples per channel; `None` when ffprobe is not installed.
    fn ffprobe(p: &Path) -> Option<(String, u64, u64, u64)> {
        if std::process::Command::new("ffprobe").arg("-version").output().is_err() {
            eprintln!("skipped: ffprobe is not installed, {} not read by it", p.display());
            return None;
        }
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate,duration_ts"])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(p)
            .output()
            .ok()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap().to_owned();
        let num = |k: &str| field(k).parse::<u64>().unwrap();
        Some((field("codec_name"), num("channels"), num("sample_rate"), num("duration_ts")))
    }

    /// The sample bytes of a file whose samples start at `at`.
    fn samples_of(p: &Path, at: u64) -> Vec<u8> {
        std::fs::read(p).unwrap()[at as usize..].to_vec()
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn a_file_past_its_limit_becomes_rf64_and_is_recorded_on() {
        let ulaw = WavFormat { channels: 2, sample_rate: 8000, encoding: Encoding::Ulaw };
        // On the development filesystem (ext4: the extents move) and on tmpfs (which cannot
        // move them: the file is copied).
        let shm = std::path::Path::new("/dev/shm");
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir_in(shm).unwrap()];
        for dir in &dirs {
            for fmt in [STEREO, ulaw] {
                let p = dir.path().join(format!("{}.wav", fmt.encoding.name()));
                let mut w = WavWriter::create(&p, fmt).unwrap();
                w.rf64_beyond(10_000);
                let (a, b) = (pattern(8_000, 1), pattern(6_000, 2));
                w.write_pcm(&a).unwrap();
                assert_eq!(&std::fs::read(&p).unwrap()[..4], b"RIFF");
                let before = std::fs::metadata(&p).unwrap().ino();
                w.write_pcm(&b).unwrap(); // past the limit
                assert_eq!(&std::fs::read(&p).unwrap()[..4], b"RF64", "{}", dir.path().display());
                // ext4 and XFS move the extents (the same file), tmpfs copies (a new one).
                let fs = rustix::fs::statfs(dir.path()).unwrap().f_type;
                let moves = [0xef53, 0x5846_5342].contains(&fs);
                assert_eq!(std::fs::metadata(&p).unwrap().ino() == before, moves, "filesystem {fs:#x}");
                w.write_pcm(&a).unwrap();
                w.finish().unwrap();
                let at = RF64_SHIFT + fmt.header_len();
                let bytes = std::fs::read(&p).unwrap();
                assert_eq!(bytes.len() as u64, at + 22_000);
                assert_eq!(bytes[..at as usize], rf64_header(fmt, 22_000)[..]);
                assert_eq!(layout(&bytes), Some((fmt, at)));
                assert_eq!(samples_of(&p, at), [a.clone(), b, a].concat(), "every sample where it was, in order");
                // ds64: RIFF size, data size, sample count.
                let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
                assert_eq!(
                    (u64_at(20), u64_at(28), u64_at(36)),
                    (at + 22_000 - 8, 22_000, 22_000 / u64::from(fmt.frame_bytes()))
                );
                let frames = 22_000 / u64::from(fmt.frame_bytes());
                if let Some(probed) = ffprobe(&p) {
                    assert_eq!(probed, (fmt.encoding.name().to_owned(), 2, 8000, frames), "{}", p.display());
                }
            }
        }
    }

    /// No room for the copy (a full tmpfs): the write fails, the copy is removed, and the file
    /// is as it was, finished with what it holds.
    #[test]
    fn a_full_disk_while_becoming_rf64_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: mounting a small tmpfs needs root");
            return;
        }
        let p = dir.path().join("a.wav");
        let run = || {
            let mut w = WavWriter::create(&p, STEREO).unwrap();
            w.rf64_beyond(40_000);
            w.write_pcm(&pattern(40_000, 7)).unwrap();
            let err = w.write_pcm(&pattern(400, 8)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(names, ["a.wav"], "the copy is removed");
            w.finish().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(bytes[..44], header(STEREO, 40_000)[..]);
            assert_eq!(samples_of(&p, 44), pattern(40_000, 7));
        };
        let result = std::panic::catch_unwind(run);
        let _ = std::process::Command::new("umount").arg(dir.path()).status();
        result.unwrap();
    }

    #[test]
    fn an_rf64_file_a_crash_interrupted_is_repaired_as_rf64() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut w = WavWriter::create(&p, STEREO).unwrap();
        w.rf64_beyond(400);
        w.write_pcm(&pattern(400, 3)).unwrap();
        w.write_pcm(&pattern(803, 4)).unwrap(); // RF64 now; a torn last frame
        drop(w); // crash: the header's sizes are the ones of 400 bytes
        let head = std::fs::read(&p).unwrap();
        let (fmt, at) = layout(&head).unwrap();
        assert_eq!((fmt, at), (STEREO, RF64_SHIFT + 44));
        assert_eq!(repair(&p, fmt, at).unwrap(), 1200);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes[..at as usize], rf64_header(STEREO, 1200)[..]);
        assert_eq!(samples_of(&p, at), [pattern(400, 3), pattern(800, 4)].concat());

        // Interrupted while becoming RF64: the extents moved, the new header not yet written.
        let q = dir.path().join("b.wav");
        let mut w = WavWriter::create(&q, STEREO).unwrap();
        w.write_pcm(&pattern(400, 5)).unwrap();
        drop(w);
        let mut moved = vec![0u8; RF64_SHIFT as usize];
        moved.extend_from_slice(&std::fs::read(&q).unwrap());
        std::fs::write(&q, &moved).unwrap();
        let (fmt, at) = layout(&moved).unwrap();
        assert_eq!(at, RF64_SHIFT + 44);
        assert_eq!(repair(&q, fmt, at).unwrap(), 400);
        assert_eq!(&std::fs::read(&q).unwrap()[..4], b"RF64");
        assert_eq!(samples_of(&q, at), pattern(400, 5));
        if let Some(probed) = ffprobe(&q) {
            assert_eq!(probed, ("pcm_s16le".to_owned(), 2, 8000, 100));
        }
    }

    /// Past 4 GiB for real: a file written beyond RIFF's sizes is RF64, every byte of it there.
    #[test]
    fn a_recording_longer_than_4_gib_is_one_rf64_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("long.wav");
        let mut w = WavWriter::create(&p, STEREO).unwrap();
        let chunk = pattern(1 << 20, 6);
        let chunks = (MAX_DATA_LEN >> 20) + 2;
        for _ in 0..chunks {
            w.write_pcm(&chunk).unwrap();
        }
        w.finish().unwrap();
        let data = chunks << 20;
        let at = RF64_SHIFT + HEADER_LEN;
        assert_eq!(std::fs::metadata(&p).unwrap().len(), at + data);
        let mut f = std::fs::File::open(&p).unwrap();
        let mut head = vec![0u8; at as usize];
        f.read_exact(&mut head).unwrap();
        assert_eq!(head, rf64_header(STEREO, data));
        // The first and the last megabyte, and one across where the file passed 4 GiB.
        for from in [at, at + (MAX_DATA_LEN & !((1 << 20) - 1)), at + data - (1 << 20)] {
            let mut got = vec![0u8; 1 << 20];
            f.seek(SeekFrom::Start(from)).unwrap();
            f.read_exact(&mut got).unwrap();
            assert!(got == chunk, "at {from}");
        }
        if let Some(probed) = ffprobe(&p) {
            assert_eq!(probed, ("pcm_s16le".to_owned(), 2, 8000, data / 4));
        }
    }
}
