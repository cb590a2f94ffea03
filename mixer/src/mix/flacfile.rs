//! Repairing a FLAC recording a crash interrupted. The writer ([`crate::mix::audio`]) appends
//! whole frames as the call goes and patches STREAMINFO (the sample count, the MD5 of the
//! audio) only at the end, so after a crash the file holds a placeholder STREAMINFO, the frames
//! written, and perhaps a torn last one. Repair walks the frames from the first, each checked
//! by its header's CRC-8, its frame number (one more than the last: the writer's blocks are of
//! fixed size) and its CRC-16 over the whole frame; cuts the file after the last whole one;
//! and writes the count of samples they hold into STREAMINFO (the MD5 stays all zeros:
//! "unknown"). The audio is not decoded: the frames' lengths are found by where the next
//! valid header starts, or the end of the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crc::{CRC_8_SMBUS, CRC_16_UMTS, Crc};

/// FLAC's frame header CRC: polynomial x^8 + x^2 + x + 1, initial 0.
const CRC8: Crc<u8> = Crc::<u8>::new(&CRC_8_SMBUS);
/// FLAC's frame CRC: polynomial x^16 + x^15 + x^2 + 1, initial 0, not reflected.
const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_UMTS);

/// Longest frame the search for the next header covers: a verbatim frame of 65,535 stereo
/// 16-bit samples (the largest block FLAC's header can name) is under 300 KiB.
const MAX_FRAME: usize = 320 << 10;

/// Longest frame header: sync and codes (4 bytes), a 7-byte number, 2 bytes each of block size
/// and rate, the CRC-8.
const MAX_HEADER: usize = 16;

/// How much of the file is read at a time.
const READ_CHUNK: usize = 4 << 20;

/// What a repaired FLAC file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Samples per second (STREAMINFO).
    pub sample_rate: u32,
    /// Channels (STREAMINFO).
    pub channels: u16,
    /// Samples per channel in the whole frames kept.
    pub frames: u64,
    /// Bytes cut off the end (a torn frame).
    pub cut: u64,
}

/// A frame header: its length in bytes, the samples of its block and its frame number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    len: usize,
    block: u32,
    number: u64,
}

/// Repairs the FLAC file at `path` (see the module's notes).
pub fn repair(path: &Path) -> io::Result<Repaired> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let (info_at, first) = metadata(&mut file)?;
    let mut info = [0u8; 34];
    file.seek(SeekFrom::Start(info_at))?;
    file.read_exact(&mut info)?;
    let sample_rate = u32::from(info[10]) << 12 | u32::from(info[11]) << 4 | u32::from(info[12]) >> 4;
    let channels = u16::from((info[12] >> 1) & 7) + 1;

    // `buf` holds the file from `base` on, read as the walk needs it.
    let (mut buf, mut base) = (Vec::new(), first);
    file.seek(SeekFrom::Start(first))?;
    let (mut at, mut frames, mut number) = (first, 0u64, 0u64);
    loop {
        // What the next frame and the header after it can span, read in chunks of 4 MiB.
        let left = len - at;
        let start = (at - base) as usize;
        if ((buf.len() - start) as u64) < left.min(2 * MAX_FRAME as u64) {
            buf.drain(..start);
            base = at;
            let read = left.min(READ_CHUNK.max(2 * MAX_FRAME) as u64) as usize - buf.len();
            let old = buf.len();
            buf.resize(old + read, 0);
            file.read_exact(&mut buf[old..])?;
        }
        let here = &buf[(at - base) as usize..];
        match frame_at(here, number, at + here.len() as u64 == len) {
            Some((size, block)) => {
                at += size as u64;
                frames += u64::from(block);
                number += 1;
            }
            None => break,
        }
    }
    if at < len {
        file.set_len(at)?;
    }
    let mut counts = [0u8; 5];
    counts[0] = (info[13] & 0xf0) | ((frames >> 32) & 0x0f) as u8;
    counts[1..].copy_from_slice(&(frames as u32).to_be_bytes());
    file.seek(SeekFrom::Start(info_at + 13))?;
    file.write_all(&counts)?;
    file.write_all(&[0; 16])?; // MD5: unknown
    file.sync_all()?;
    Ok(Repaired { sample_rate, channels, frames, cut: len - at })
}

/// Where STREAMINFO's 34 bytes are and where the first frame starts.
fn metadata(file: &mut File) -> io::Result<(u64, u64)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("not a FLAC file: {what}"));
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)?;
    if &magic != b"fLaC" {
        return Err(bad("no fLaC marker"));
    }
    let (mut at, mut info) = (4u64, None);
    loop {
        let mut h = [0u8; 4];
        file.read_exact(&mut h)?;
        let size = u64::from(u32::from_be_bytes([0, h[1], h[2], h[3]]));
        if h[0] & 0x7f == 0 && size == 34 {
            info = Some(at + 4);
        }
        at += 4 + size;
        file.seek(SeekFrom::Start(at))?;
        if h[0] & 0x80 != 0 {
            break;
        }
    }
    Ok((info.ok_or_else(|| bad("no STREAMINFO"))?, at))
}

/// The whole frame at the start of `b` with frame number `number`: its length and its samples.
/// Its end is where a valid header starts with the CRC-16 before it right (whether that next
/// frame is whole is the next call's to find), or (`to_end`: `b` runs to the end of the file)
/// the end of `b`.
fn frame_at(b: &[u8], number: u64, to_end: bool) -> Option<(usize, u32)> {
    let h = header(b).filter(|h| h.number == number)?;
    let crc_ok =
        |end: usize| end >= h.len + 2 && CRC16.checksum(&b[..end - 2]) == u16::from_be_bytes([b[end - 2], b[end - 1]]);
    let mut p = h.len + 2;
    while p + 1 < b.len() {
        if b[p] == 0xff && b[p + 1] == 0xf8 && header(&b[p..]).is_some() && crc_ok(p) {
            return Some((p, h.block));
        }
        p += 1;
    }
    if !to_end {
        return None;
    }
    if crc_ok(b.len()) {
        return Some((b.len(), h.block));
    }
    // The file ends inside the next frame's header (torn in its first bytes).
    let torn = b.len().saturating_sub(MAX_HEADER - 1).max(h.len + 2)..b.len();
    torn.into_iter()
        .find(|&p| b[p] == 0xff && b.get(p + 1).is_none_or(|&c| c == 0xf8) && crc_ok(p))
        .map(|p| (p, h.block))
}

/// The frame header (fixed block size) at the start of `b`, if its CRC-8 is right.
fn header(b: &[u8]) -> Option<Header> {
    if b.len() < 6 || b[0] != 0xff || b[1] != 0xf8 || b[3] & 1 != 0 {
        return None;
    }
    // The frame number, coded as UTF-8 is (up to 6 bytes for 31 bits).
    let lead = b[4];
    let extra = match lead {
        0x00..=0x7f => 0,
        0xc0..=0xdf => 1,
        0xe0..=0xef => 2,
        0xf0..=0xf7 => 3,
        0xf8..=0xfb => 4,
        0xfc..=0xfd => 5,
        _ => return None,
    };
    let mut number = u64::from(lead & (0x7f >> extra));
    let mut at = 5;
    for _ in 0..extra {
        let c = *b.get(at)?;
        if c & 0xc0 != 0x80 {
            return None;
        }
        number = number << 6 | u64::from(c & 0x3f);
        at += 1;
    }
    let block = match b[2] >> 4 {
        0 => return None,
        1 => 192,
        c @ 2..=5 => 576 << (c - 2),
        6 => {
            at += 1;
            u32::from(*b.get(at - 1)?) + 1
        }
        7 => {
            at += 2;
            u32::from(u16::from_be_bytes([*b.get(at - 2)?, *b.get(at - 1)?])) + 1
        }
        c => 256 << (c - 8),
    };
    at += match b[2] & 0x0f {
        12 => 1,
        13 | 14 => 2,
        15 => return None,
        _ => 0,
    };
    (CRC8.checksum(b.get(..at)?) == *b.get(at)?).then_some(Header { len: at + 1, block, number })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_with_their_frame_numbers_and_block_sizes() {
        // fLaC frame header: sync, block size code 12 (4096), rate code 4 (8 kHz), stereo.
        let mut h = vec![0xff, 0xf8, 0xc4, 0x18, 0x05];
        h.push(CRC8.checksum(&h));
        assert_eq!(header(&h), Some(Header { len: 6, block: 4096, number: 5 }));
        // Frame 300 takes two bytes (UTF-8 style), a block size of 1000 two more.
        let mut h = vec![0xff, 0xf8, 0x74, 0x18, 0xc4, 0xac, 0x03, 0xe7];
        h.push(CRC8.checksum(&h));
        assert_eq!(header(&h), Some(Header { len: 9, block: 1000, number: 300 }));
        let mut bad = h.clone();
        bad[8] ^= 1;
        assert_eq!(header(&bad), None, "a wrong CRC-8");
        bad = h.clone();
        bad[1] = 0xf9;
        assert_eq!(header(&bad), None, "variable block size: not what the writer writes");
    }

    /// A FLAC recording as a crash leaves it: 6 whole blocks written, the STREAMINFO still the
    /// placeholder. The samples of the first 5, and where each frame starts.
    fn interrupted(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<i16>, Vec<usize>) {
        use crate::mix::audio::{AudioConfig, AudioFormat, AudioOut};
        let p = dir.join(format!("{name}.flac"));
        let mut out =
            AudioOut::create(&p, AudioConfig { format: AudioFormat::Flac, ..AudioConfig::default() }, 8000).unwrap();
        // A tone with some noise in it: frames of different lengths.
        let samples: Vec<i16> =
            (0..4096 * 6 * 2).map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16 + ((i * 7919) % 61) as i16).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        out.write_stereo(&bytes).unwrap();
        drop(out); // the crash: nothing patched
        let b = std::fs::read(&p).unwrap();
        let mut starts = vec![42usize];
        while let Some(next) = (starts.last().unwrap() + 8..b.len() - 1)
            .find(|&i| b[i] == 0xff && b[i + 1] == 0xf8 && header(&b[i..]).is_some())
        {
            starts.push(next);
        }
        assert_eq!(starts.len(), 6);
        (p, samples[..4096 * 5 * 2].to_vec(), starts)
    }

    /// What the reference decoder makes of `p` (`flac -d` checks every frame's CRC and, when
    /// STREAMINFO has one, the MD5): the samples, or `None` if it fails.
    fn decoded(p: &Path) -> Option<Vec<i16>> {
        let wav = p.with_extension("wav");
        let ok = std::process::Command::new("flac")
            .args(["--silent", "--decode", "--force", "-o"])
            .arg(&wav)
            .arg(p)
            .status();
        if !ok.ok()?.success() {
            return None;
        }
        let mut r = hound::WavReader::open(&wav).unwrap();
        Some(r.samples::<i16>().map(Result::unwrap).collect())
    }

    fn total_samples(p: &Path) -> u64 {
        let mut info = [0u8; 34];
        let mut f = File::open(p).unwrap();
        f.seek(SeekFrom::Start(8)).unwrap();
        f.read_exact(&mut info).unwrap();
        u64::from(info[13] & 0x0f) << 32 | u64::from(u32::from_be_bytes([info[14], info[15], info[16], info[17]]))
    }

    #[test]
    fn a_torn_last_frame_is_cut_off_and_the_sample_count_written() {
        if std::process::Command::new("flac").arg("--version").output().is_err() {
            eprintln!("skipped: the flac command is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cut = |p: &Path, len: usize| OpenOptions::new().write(true).open(p).unwrap().set_len(len as u64).unwrap();
        // Whole frames only: nothing cut, the count written.
        let (p, want, starts) = interrupted(dir.path(), "whole");
        cut(&p, starts[5]);
        assert_eq!(total_samples(&p), 0, "the placeholder: unknown");
        let r = repair(&p).unwrap();
        assert_eq!(r, Repaired { sample_rate: 8000, channels: 2, frames: 4096 * 5, cut: 0 });
        assert_eq!(total_samples(&p), 4096 * 5);
        assert_eq!(decoded(&p).unwrap(), want);

        // The sixth frame torn: its first 700 bytes, or its first 5 (inside its header).
        for (name, left) in [("torn", 700), ("torn header", 5)] {
            let (p, want, starts) = interrupted(dir.path(), name);
            cut(&p, starts[5] + left);
            assert!(decoded(&p).is_none_or(|d| d != want), "{name}: the damage is seen before the repair");
            let r = repair(&p).unwrap();
            assert_eq!(r.frames, 4096 * 5, "{name}");
            assert_eq!(
                std::fs::metadata(&p).unwrap().len(),
                starts[5] as u64,
                "{name}: cut after the last whole frame"
            );
            assert_eq!(decoded(&p).unwrap(), want, "{name}");
        }

        // A bit flipped inside the third frame: only the first two are kept.
        let (p, want, starts) = interrupted(dir.path(), "flipped");
        let mut b = std::fs::read(&p).unwrap();
        b[starts[2] + 100] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(repair(&p).unwrap().frames, 4096 * 2);
        assert_eq!(decoded(&p).unwrap(), want[..4096 * 2 * 2]);
        // Garbage after the fifth (a header with a wrong CRC-8): what ends there is not known to
        // be a whole frame, only the first four are kept.
        let (p, want, starts) = interrupted(dir.path(), "garbage");
        cut(&p, starts[5]);
        let garbage = [[0xff, 0xf8, 0xc4, 0x18, 0x05, 0x00].as_slice(), &[1; 14]].concat();
        OpenOptions::new().append(true).open(&p).unwrap().write_all(&garbage).unwrap();
        assert_eq!(repair(&p).unwrap().frames, 4096 * 4);
        assert_eq!(decoded(&p).unwrap(), want[..4096 * 4 * 2]);
        assert!(repair(&dir.path().join("whole.wav")).is_err(), "not a FLAC file");
    }
}
