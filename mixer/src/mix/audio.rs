//! Audio file writers behind the timeline: what the settled frames become on disk.
//!
//! The timeline hands over stereo frames (channel 0 caller, channel 1 callee) as 16-bit
//! little-endian PCM. Each writer streams them to its file as they come, never holding the
//! call in memory, and fixes up its header at the end:
//!
//! * WAV, stereo: the frames as they are (the default; the most widely playable).
//! * WAV of G.711 codes (`wav-g711`, stereo or split): while every party's audio is G.711 of
//!   one law, the timeline hands over the codes as captured (one byte per sample, half the
//!   bytes of PCM, bit-exact by construction) and the file is µ-law or A-law WAV. Audio no
//!   such file can hold exactly (the other law, another codec, 16 kHz) turns it into 16-bit PCM
//!   first: what it holds is expanded (G.711 expansion is exact) and writing goes on in PCM.
//! * WAV, mono: both parties mixed into one channel (sum, saturated).
//! * FLAC, stereo or mono: lossless, about half the size of WAV for speech; written frame by
//!   frame (4096 samples), STREAMINFO (sample count, MD5 of the audio) patched at the end.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, StreamInfo};
use flacenc::config;
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};
use md5::{Digest, Md5};

use crate::mix::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
use crate::mix::openfiles::AudioFile;
use crate::mix::wav::{Encoding, WavFormat, WavWriter};
use crate::mix::wideband::{Cell, UpChannel};

/// Container of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioFormat {
    /// RIFF/WAVE, 16-bit PCM.
    #[default]
    Wav,
    /// FLAC, 16-bit, lossless.
    Flac,
    /// RIFF/WAVE holding the G.711 codes as captured while the call is G.711 of one law,
    /// 16-bit PCM otherwise (see the module's notes).
    WavG711,
}

impl AudioFormat {
    /// File extension and the record's `format`.
    pub fn ext(self) -> &'static str {
        match self {
            AudioFormat::Wav | AudioFormat::WavG711 => "wav",
            AudioFormat::Flac => "flac",
        }
    }
}

/// Channel layout of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioLayout {
    /// Two channels: caller, callee.
    #[default]
    Stereo,
    /// One channel: both parties mixed.
    Mono,
    /// One mono file per party: `<name>.caller.<ext>` and `<name>.callee.<ext>`.
    Split,
}

impl AudioLayout {
    /// The record's `layout`.
    pub fn name(self) -> &'static str {
        match self {
            AudioLayout::Stereo => "stereo",
            AudioLayout::Mono => "mono",
            AudioLayout::Split => "split",
        }
    }

    /// What each channel carries, for the record.
    pub fn channel_names(self) -> Vec<String> {
        match self {
            AudioLayout::Stereo | AudioLayout::Split => vec!["caller".into(), "callee".into()],
            AudioLayout::Mono => vec!["caller+callee".into()],
        }
    }

    #[cfg(test)]
    fn channels(self) -> u16 {
        match self {
            AudioLayout::Stereo => 2,
            AudioLayout::Mono | AudioLayout::Split => 1,
        }
    }
}

/// How recordings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioConfig {
    /// Container.
    pub format: AudioFormat,
    /// Channels.
    pub layout: AudioLayout,
    /// Opus decoded at 48 kHz (its calls recorded at 48 kHz) instead of 16 kHz.
    pub opus_48k: bool,
}

/// What a writer takes from each stereo frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Both channels.
    Both,
    /// Both mixed into one.
    Mix,
    /// One party's channel.
    Channel(usize),
}

impl Pick {
    fn sample(self, f: &[u8]) -> i16 {
        match self {
            Pick::Channel(c) => i16::from_le_bytes([f[2 * c], f[2 * c + 1]]),
            Pick::Both | Pick::Mix => mix(f),
        }
    }
}

/// One audio file being written.
#[derive(Debug)]
enum OneFile {
    Wav { writer: WavWriter, pick: Pick, buf: Vec<u8> },
    Flac(Box<FlacWriter>),
}

impl OneFile {
    fn create(path: &Path, format: AudioFormat, pick: Pick, sample_rate: u32) -> io::Result<OneFile> {
        let channels = if pick == Pick::Both { 2 } else { 1 };
        Ok(match format {
            AudioFormat::Wav | AudioFormat::WavG711 => OneFile::Wav {
                writer: WavWriter::create(path, WavFormat::pcm(channels, sample_rate))?,
                pick,
                buf: Vec::new(),
            },
            AudioFormat::Flac => OneFile::Flac(Box::new(FlacWriter::create(path, pick, sample_rate)?)),
        })
    }

    fn set_rate(&mut self, sample_rate: u32) -> io::Result<()> {
        match self {
            OneFile::Wav { writer, .. } => writer.set_format(WavFormat { sample_rate, ..writer.format() }),
            OneFile::Flac(w) => w.set_rate(sample_rate),
        }
    }

    /// The WAV writer, for a file that can hold codes (not a mix, not FLAC).
    fn code_writer(&mut self) -> Option<(&mut WavWriter, Pick, &mut Vec<u8>)> {
        match self {
            OneFile::Wav { writer, pick: pick @ (Pick::Both | Pick::Channel(_)), buf } => Some((writer, *pick, buf)),
            _ => None,
        }
    }

    fn write_stereo(&mut self, frames: &[u8]) -> io::Result<()> {
        match self {
            OneFile::Wav { writer, pick: Pick::Both, .. } => writer.write_pcm(frames),
            OneFile::Wav { writer, pick, buf } => {
                buf.clear();
                buf.extend(frames.chunks_exact(4).flat_map(|f| pick.sample(f).to_le_bytes()));
                writer.write_pcm(buf)
            }
            OneFile::Flac(w) => w.write_stereo(frames),
        }
    }

    fn frames(&self) -> u64 {
        match self {
            OneFile::Wav { writer, .. } => writer.frames(),
            OneFile::Flac(w) => w.total + (w.pending.len() / w.channels) as u64,
        }
    }

    fn finish(self) -> io::Result<AudioFile> {
        match self {
            OneFile::Wav { writer, .. } => writer.finish(),
            OneFile::Flac(w) => w.finish(),
        }
    }

    /// Frames durably in the file (not counting samples an encoder still holds).
    fn frames_written(&self) -> u64 {
        match self {
            OneFile::Wav { writer, .. } => writer.frames(),
            OneFile::Flac(w) => w.total,
        }
    }

    fn finish_partial(self) -> io::Result<AudioFile> {
        match self {
            OneFile::Wav { writer, .. } => writer.finish(),
            OneFile::Flac(w) => w.finish_partial(),
        }
    }
}

/// The audio file(s) of one call being written.
#[derive(Debug)]
pub struct AudioOut {
    files: Vec<(PathBuf, OneFile)>,
    codes: CodeState,
}

/// Whether the file(s) hold G.711 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeState {
    /// 16-bit PCM (or FLAC), for good.
    Off,
    /// Codes wanted, no audio written yet: the first audio decides.
    Open,
    /// Codes of this law ([`Encoding::Ulaw`] or [`Encoding::Alaw`]).
    Law(Encoding),
}

/// The paths a recording's audio is written to, for `path` (`<stem>.<ext>`): the path itself,
/// or `<stem>.caller.<ext>` and `<stem>.callee.<ext>` for the split layout.
pub fn audio_paths(path: &Path, layout: AudioLayout) -> Vec<PathBuf> {
    match layout {
        AudioLayout::Split => {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("wav");
            ["caller", "callee"].iter().map(|p| path.with_extension(format!("{p}.{ext}"))).collect()
        }
        _ => vec![path.to_owned()],
    }
}

impl AudioOut {
    /// Creates the file(s) for `path` (see [`audio_paths`]), which must not exist, at
    /// `sample_rate` Hz.
    pub fn create(path: &Path, cfg: AudioConfig, sample_rate: u32) -> io::Result<AudioOut> {
        let picks: &[Pick] = match cfg.layout {
            AudioLayout::Stereo => &[Pick::Both],
            AudioLayout::Mono => &[Pick::Mix],
            AudioLayout::Split => &[Pick::Channel(0), Pick::Channel(1)],
        };
        let mut files = Vec::with_capacity(picks.len());
        for (p, pick) in audio_paths(path, cfg.layout).into_iter().zip(picks) {
            let f = OneFile::create(&p, cfg.format, *pick, sample_rate)?;
            files.push((p, f));
        }
        // A mixed channel is a sum no law can hold exactly: PCM.
        let codes = if cfg.format == AudioFormat::WavG711 && cfg.layout != AudioLayout::Mono {
            CodeState::Open
        } else {
            CodeState::Off
        };
        Ok(AudioOut { files, codes })
    }

    /// Whether the file(s) hold G.711 codes.
    pub fn codes(&self) -> CodeState {
        self.codes
    }

    /// How the samples are stored.
    pub fn encoding(&self) -> Encoding {
        match self.codes {
            CodeState::Law(e) => e,
            CodeState::Off | CodeState::Open => Encoding::Pcm16,
        }
    }

    /// Starts writing codes of `law` ([`Encoding::Ulaw`] or [`Encoding::Alaw`]) into file(s)
    /// that wanted codes and hold no audio yet.
    pub fn start_codes(&mut self, law: Encoding) -> io::Result<()> {
        debug_assert_eq!(self.codes, CodeState::Open);
        for (_, f) in &mut self.files {
            if let Some((w, _, _)) = f.code_writer() {
                w.set_format(WavFormat { encoding: law, ..w.format() })?;
            }
        }
        self.codes = CodeState::Law(law);
        Ok(())
    }

    /// From now on 16-bit PCM: file(s) holding codes are rewritten, every code expanded (as
    /// [`crate::mix::timeline`] would have written it, except that A-law's idle code where a
    /// party had no audio reads +8 instead of 0).
    pub fn stop_codes(&mut self) -> io::Result<()> {
        if let CodeState::Law(law) = self.codes {
            let table = match law {
                Encoding::Alaw => &ALAW_TO_LINEAR,
                _ => &ULAW_TO_LINEAR,
            };
            for (path, f) in &mut self.files {
                if let Some((w, _, _)) = f.code_writer() {
                    w.rewrite_as(path, WavFormat { encoding: Encoding::Pcm16, ..w.format() }, |codes, out| {
                        out.extend(codes.iter().flat_map(|&c| table[c as usize].to_le_bytes()));
                    })?;
                }
            }
        }
        self.codes = CodeState::Off;
        Ok(())
    }

    /// Appends frames of codes (one byte per channel, caller then callee) to file(s) holding
    /// codes ([`AudioOut::start_codes`]).
    pub fn write_codes(&mut self, frames: &[u8]) -> io::Result<()> {
        for (_, f) in &mut self.files {
            let Some((writer, pick, buf)) = f.code_writer() else { continue };
            match pick {
                Pick::Channel(c) => {
                    buf.clear();
                    buf.extend(frames.chunks_exact(2).map(|f| f[c]));
                    writer.write_pcm(buf)?;
                }
                _ => writer.write_pcm(frames)?,
            }
        }
        Ok(())
    }

    /// Changes the sample rate of file(s) that hold no audio yet (an error otherwise).
    pub fn set_rate(&mut self, sample_rate: u32) -> io::Result<()> {
        for (_, f) in &mut self.files {
            f.set_rate(sample_rate)?;
        }
        Ok(())
    }

    /// Moves file(s) holding audio at `from` (8 or 16 kHz) to the rate of `up`: each
    /// channel's samples so far go through its interpolators in `up` (which then hold the
    /// positions they have not let out yet), so the files become what a recording at that rate
    /// from the start would hold. WAV files with the parties in their own channels only
    /// (stereo, split): a mixed channel or a FLAC stream cannot be taken apart again.
    pub fn raise(&mut self, up: &mut [UpChannel; 2], from: u32) -> io::Result<()> {
        self.stop_codes()?;
        let rate = up[0].rate();
        // Frames of the file per position: one at 8 kHz, two at 16 kHz.
        let per = (from / 8000) as usize;
        for (path, f) in &mut self.files {
            let (writer, channels) = match f {
                OneFile::Wav { writer, pick: Pick::Both, .. } => (writer, [Some(0), Some(1)]),
                OneFile::Wav { writer, pick: Pick::Channel(c), .. } => (writer, [Some(*c), None]),
                _ => {
                    return Err(io::Error::other(format!(
                        "audio at {rate} Hz came after audio at {from} Hz was written, and a FLAC or mono \
                         recording cannot change its rate"
                    )));
                }
            };
            let width = channels.iter().flatten().count();
            // Rewritten in steps of whole positions (an even number of frames).
            writer.rewrite_as(path, WavFormat { sample_rate: rate, ..writer.format() }, |pcm, out| {
                for position in pcm.chunks_exact(2 * width * per) {
                    let mut got = [None; 2];
                    for (k, c) in channels.iter().flatten().enumerate() {
                        let s = |j: usize| {
                            let at = 2 * (j * width + k);
                            i16::from_le_bytes([position[at], position[at + 1]])
                        };
                        got[k] = if per == 1 { up[*c].push(Cell::Narrow(s(0))) } else { up[*c].push16([s(0), s(1)]) };
                    }
                    if got[..width].iter().all(Option::is_some) {
                        let samples = got.map(|g| g.unwrap_or_default());
                        for i in 0..samples[0].as_slice().len() {
                            for s in &samples[..width] {
                                out.extend_from_slice(&s.as_slice()[i].to_le_bytes());
                            }
                        }
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Appends stereo frames (16-bit little-endian, caller then callee).
    pub fn write_stereo(&mut self, frames: &[u8]) -> io::Result<()> {
        for (_, f) in &mut self.files {
            f.write_stereo(frames)?;
        }
        Ok(())
    }

    /// The first file's WAV format as the next write stores it, and its writer; `None` for a
    /// file whose bytes per frame are not fixed (FLAC, a mixed channel).
    fn next_wav_format(&self) -> Option<(WavFormat, &WavWriter)> {
        let Some((_, OneFile::Wav { writer, pick: Pick::Both | Pick::Channel(_), .. })) = self.files.first() else {
            return None;
        };
        let mut fmt = writer.format();
        if self.codes == CodeState::Open {
            // The first write stores the codes as they are (see `start_codes`).
            fmt.encoding = Encoding::Ulaw;
        }
        Some((fmt, writer))
    }

    /// Bytes of the (first) file per position: what a write size is counted in (16-bit
    /// stereo PCM's for a file without a fixed frame size).
    pub fn position_bytes(&self, frames_per_position: u64) -> u64 {
        let frame = self.next_wav_format().map_or(PCM_STEREO_FRAME, |(fmt, _)| u64::from(fmt.frame_bytes()));
        frame * frames_per_position
    }

    /// How many of `n` positions, after the `ahead` positions not yet written that come
    /// first, to take so that the file(s) would end on a whole `block` (a power of two, at
    /// least [`BLOCK`]) once all are written: the kernel then fills whole page-cache pages (and
    /// folios of up to `block`), none written in two steps (a page half written is zeroed,
    /// then found and locked again by the next write); the rest waits in the ring.
    /// All `n` when the files cannot end on a block with fewer (FLAC, a mixed channel, a
    /// frame size that does not divide the block, or already on a block).
    pub fn whole_blocks(&self, ahead: u64, n: u64, frames_per_position: u64, block: u64) -> u64 {
        let Some((fmt, writer)) = self.next_wav_format() else { return n };
        let per = u64::from(fmt.frame_bytes()) * frames_per_position;
        let over = (fmt.header_len() + writer.shift() + writer.data_len() + (ahead + n) * per) % block;
        if over.is_multiple_of(per) && over / per < n { n - over / per } else { n }
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.files.first().map_or(0, |(_, f)| f.frames())
    }

    /// Finishes the file(s) (headers patched) and returns them, not yet fsynced.
    pub fn finish(self) -> io::Result<Vec<(PathBuf, AudioFile)>> {
        self.files.into_iter().map(|(p, f)| f.finish().map(|file| (p, file))).collect()
    }

    /// Finishes the file(s) with what they already hold, after a write failed (a full disk):
    /// nothing more is written, the headers describe the whole frames in each file. Returns
    /// them with the number of frames every file holds.
    pub fn finish_partial(self) -> io::Result<(Vec<(PathBuf, AudioFile)>, u64)> {
        let frames = self.files.iter().map(|(_, f)| f.frames_written()).min().unwrap_or(0);
        let files: io::Result<Vec<_>> =
            self.files.into_iter().map(|(p, f)| f.finish_partial().map(|file| (p, file))).collect();
        Ok((files?, frames))
    }
}

fn mix(frame: &[u8]) -> i16 {
    let a = i16::from_le_bytes([frame[0], frame[1]]);
    let b = i16::from_le_bytes([frame[2], frame[3]]);
    a.saturating_add(b)
}

/// Samples per FLAC frame.
const FLAC_BLOCK: usize = 4096;

/// The smallest file block audio writes end on ([`AudioOut::whole_blocks`]): the page size.
pub const BLOCK: u64 = 4096;

/// Bytes of a 16-bit stereo PCM frame.
const PCM_STEREO_FRAME: u64 = 4;

/// `fLaC` + metadata block header: STREAMINFO starts here.
const STREAMINFO_AT: u64 = 8;

/// A FLAC file written block by block.
pub struct FlacWriter {
    file: AudioFile,
    channels: usize,
    pick: Pick,
    config: Verified<config::Encoder>,
    info: StreamInfo,
    buf: FrameBuf,
    /// Interleaved samples waiting for a full block.
    pending: Vec<i32>,
    sink: ByteSink,
    md5: Md5,
    frame_no: usize,
    total: u64,
    /// File length up to the last whole frame written.
    good_len: u64,
}

impl std::fmt::Debug for FlacWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacWriter").field("channels", &self.channels).field("total", &self.total).finish()
    }
}

fn flac_err(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("FLAC encoder: {e:?}"))
}

impl FlacWriter {
    fn create(path: &Path, pick: Pick, sample_rate: u32) -> io::Result<FlacWriter> {
        let channels = if pick == Pick::Both { 2 } else { 1 };
        let file = AudioFile::create_new(path)?;
        let mut cfg = config::Encoder::default();
        cfg.block_size = FLAC_BLOCK;
        cfg.multithread = false;
        let config = cfg.into_verified().map_err(flac_err)?;
        let info = StreamInfo::new(sample_rate as usize, channels, 16).map_err(flac_err)?;
        let mut w = FlacWriter {
            file,
            channels,
            pick,
            config,
            info,
            buf: FrameBuf::with_size(channels, FLAC_BLOCK).map_err(flac_err)?,
            pending: Vec::with_capacity(FLAC_BLOCK * channels),
            sink: ByteSink::new(),
            md5: Md5::new(),
            frame_no: 0,
            total: 0,
            good_len: 0,
        };
        // Header with a placeholder STREAMINFO (patched in `finish`).
        let mut head = vec![b'f', b'L', b'a', b'C', 0x80, 0, 0, 34];
        head.extend_from_slice(&w.streaminfo_bytes()?);
        let file = w.file.get()?;
        file.write_all(&head)?;
        w.good_len = file.stream_position()?;
        w.file.release();
        Ok(w)
    }

    fn set_rate(&mut self, sample_rate: u32) -> io::Result<()> {
        if self.total > 0 || !self.pending.is_empty() {
            return Err(io::Error::other("the sample rate of a FLAC file with audio cannot change"));
        }
        self.info = StreamInfo::new(sample_rate as usize, self.channels, 16).map_err(flac_err)?;
        let info = self.streaminfo_bytes()?;
        let file = self.file.get()?;
        file.seek(SeekFrom::Start(STREAMINFO_AT))?;
        file.write_all(&info)?;
        file.seek(SeekFrom::Start(self.good_len))?;
        self.file.release();
        Ok(())
    }

    fn streaminfo_bytes(&mut self) -> io::Result<Vec<u8>> {
        self.sink.clear();
        self.info.write(&mut self.sink).map_err(flac_err)?;
        Ok(self.sink.as_slice().to_vec())
    }

    fn write_stereo(&mut self, frames: &[u8]) -> io::Result<()> {
        for f in frames.chunks_exact(4) {
            if self.channels == 2 {
                self.pending.push(i32::from(i16::from_le_bytes([f[0], f[1]])));
                self.pending.push(i32::from(i16::from_le_bytes([f[2], f[3]])));
                self.md5.update(&f[..4]);
            } else {
                let m = self.pick.sample(f);
                self.pending.push(i32::from(m));
                self.md5.update(m.to_le_bytes());
            }
            if self.pending.len() == FLAC_BLOCK * self.channels {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    fn encode_pending(&mut self) -> io::Result<()> {
        let samples = self.pending.len() / self.channels;
        if samples == 0 {
            return Ok(());
        }
        if samples != FLAC_BLOCK {
            self.buf.resize(samples);
        }
        self.buf.fill_interleaved(&self.pending).map_err(flac_err)?;
        let frame =
            flacenc::encode_fixed_size_frame(&self.config, &self.buf, self.frame_no, &self.info).map_err(flac_err)?;
        self.info.update_frame_info(&frame);
        self.sink.clear();
        frame.write(&mut self.sink).map_err(flac_err)?;
        let file = self.file.get()?;
        if let Err(e) = file.write_all(self.sink.as_slice()) {
            // Cut a partly written frame off again: the file stays decodable up to `total`.
            let good = self.good_len;
            let _ = file.set_len(good).and_then(|()| file.seek(SeekFrom::Start(good)).map(drop));
            return Err(e);
        }
        self.file.wrote(self.sink.as_slice().len());
        self.file.release();
        self.good_len += self.sink.as_slice().len() as u64;
        self.frame_no += 1;
        self.total += samples as u64;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<AudioFile> {
        self.encode_pending()?;
        let digest: [u8; 16] = self.md5.clone().finalize().into();
        self.info.set_md5_digest(&digest);
        self.patch_streaminfo()
    }

    /// Finishes with the whole frames already in the file, after a write failed: samples
    /// still pending are dropped and the MD5 of the audio is left unset (all zeros, "unknown").
    fn finish_partial(mut self) -> io::Result<AudioFile> {
        self.info.set_md5_digest(&[0; 16]);
        self.patch_streaminfo()
    }

    fn patch_streaminfo(mut self) -> io::Result<AudioFile> {
        self.info.set_total_samples(self.total as usize);
        let si = self.streaminfo_bytes()?;
        let file = self.file.get()?;
        file.seek(SeekFrom::Start(STREAMINFO_AT))?;
        file.write_all(&si)?;
        self.file.release();
        Ok(self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let a = ((i as f64 * 0.05).sin() * 8000.0) as i16;
                let b = ((i as f64 * 0.11).cos() * 12000.0) as i16;
                [a.to_le_bytes(), b.to_le_bytes()].concat()
            })
            .collect()
    }

    #[test]
    fn mono_wav_mixes_and_saturates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.wav");
        let mut out = AudioOut::create(
            &p,
            AudioConfig { format: AudioFormat::Wav, layout: AudioLayout::Mono, ..AudioConfig::default() },
            8000,
        )
        .unwrap();
        let f: Vec<u8> = [[100i16, 23], [30000, 10000], [-30000, -10000]]
            .iter()
            .flat_map(|[a, b]| [a.to_le_bytes(), b.to_le_bytes()].concat())
            .collect();
        out.write_stereo(&f).unwrap();
        out.finish().unwrap();
        let mut r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.spec().channels, 1);
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(s, vec![123, i16::MAX, i16::MIN]);
    }

    #[test]
    fn flac_decodes_back_bit_exact_with_the_reference_decoder() {
        let Ok(status) = std::process::Command::new("flac").arg("--version").output() else {
            eprintln!("skipped: the flac command is not installed");
            return;
        };
        assert!(status.status.success());
        let dir = tempfile::tempdir().unwrap();
        for layout in [AudioLayout::Stereo, AudioLayout::Mono] {
            let p = dir.path().join(format!("{}.flac", layout.name()));
            let mut out =
                AudioOut::create(&p, AudioConfig { format: AudioFormat::Flac, layout, ..AudioConfig::default() }, 8000)
                    .unwrap();
            let f = frames(10_000); // 2 full blocks and a short one
            for chunk in f.chunks(4 * 777) {
                out.write_stereo(chunk).unwrap();
            }
            assert_eq!(out.frames(), 10_000);
            out.finish().unwrap();
            let wav = dir.path().join(format!("{}.wav", layout.name()));
            let ok = std::process::Command::new("flac")
                .args(["--silent", "--decode", "--force", "-o"])
                .arg(&wav)
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success(), "flac -d verifies frame CRCs and the MD5 of the audio");
            let mut r = hound::WavReader::open(&wav).unwrap();
            let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
            let want: Vec<i16> = match layout {
                AudioLayout::Stereo => f.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect(),
                AudioLayout::Mono | AudioLayout::Split => f.chunks_exact(4).map(mix).collect(),
            };
            assert_eq!(got, want);
            assert!(std::fs::metadata(&p).unwrap().len() < (f.len() as u64) / u64::from(3 - layout.channels()));
        }
    }

    #[test]
    fn split_writes_one_file_per_party() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.wav");
        let mut out = AudioOut::create(
            &p,
            AudioConfig { format: AudioFormat::Wav, layout: AudioLayout::Split, ..AudioConfig::default() },
            8000,
        )
        .unwrap();
        let f = frames(1000);
        out.write_stereo(&f).unwrap();
        let files = out.finish().unwrap();
        assert_eq!(files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), audio_paths(&p, AudioLayout::Split));
        for (ch, (path, _)) in files.iter().enumerate() {
            assert!(path.to_string_lossy().ends_with(["s.caller.wav", "s.callee.wav"][ch]));
            let mut r = hound::WavReader::open(path).unwrap();
            assert_eq!(r.spec().channels, 1);
            let got: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
            let want: Vec<i16> = f.chunks_exact(4).map(|b| i16::from_le_bytes([b[2 * ch], b[2 * ch + 1]])).collect();
            assert_eq!(got, want);
        }
    }
}
