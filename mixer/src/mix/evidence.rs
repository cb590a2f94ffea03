//! Per-call evidence captures: the call's own SIP, RTP and RTCP frames, as they were on the
//! wire, written as a classic pcap file (nanosecond timestamps) beside the recording.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use capture::{LinkType, Timestamp};

/// Capture-file magic for nanosecond timestamps.
const MAGIC_NANO: u32 = 0xa1b2_3c4d;

/// A call's evidence capture being written.
#[derive(Debug)]
pub struct Evidence {
    path: PathBuf,
    out: BufWriter<File>,
    link: LinkType,
    /// Frames written.
    pub packets: u64,
    /// Frames not written because their link type differs from the first one's.
    pub skipped: u64,
}

impl Evidence {
    /// Creates `path` (which must not exist) for frames of `link`.
    pub fn create(path: &Path, link: LinkType) -> io::Result<Evidence> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(8192, file);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_NANO.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&link.dlt().to_le_bytes());
        out.write_all(&h)?;
        Ok(Evidence { path: path.to_owned(), out, link, packets: 0, skipped: 0 })
    }

    /// Appends one frame.
    pub fn write(&mut self, time: Timestamp, link: LinkType, frame: &[u8]) -> io::Result<()> {
        if link != self.link {
            self.skipped += 1;
            return Ok(());
        }
        let len = frame.len() as u32;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(time.secs() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&time.subsec_nanos().to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and returns the file (not yet fsynced).
    pub fn finish(self) -> io::Result<(PathBuf, File)> {
        let file = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok((self.path, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_capture_reads_back_with_libpcap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.pcap");
        let mut e = Evidence::create(&p, LinkType::Ethernet).unwrap();
        e.write(Timestamp::from_parts(1_700_000_000, 123_456_789), LinkType::Ethernet, &[1, 2, 3]).unwrap();
        e.write(Timestamp::from_parts(1_700_000_001, 0), LinkType::Sll, &[9]).unwrap();
        e.write(Timestamp::from_parts(1_700_000_002, 5), LinkType::Ethernet, &[4, 5]).unwrap();
        assert_eq!((e.packets, e.skipped), (2, 1));
        e.finish().unwrap();
        let mut src = capture::source::FileSource::open(&p).unwrap();
        assert_eq!(src.link(), LinkType::Ethernet);
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.time, f.data), (Timestamp::from_parts(1_700_000_000, 123_456_789), &[1u8, 2, 3][..]));
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!(f.data, &[4, 5]);
        assert!(src.next_frame().unwrap().is_none());
    }
}
