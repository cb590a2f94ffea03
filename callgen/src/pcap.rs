//! Classic libpcap file writing.
//!
//! Layout (all fields little-endian): a 24-byte file header — magic `0xa1b2c3d4` (µs) or
//! `0xa1b23c4d` (ns), version 2.4, thiszone 0, sigfigs 0, snaplen 262144, link type — then per
//! packet a 16-byte record header — seconds, micro- or nanoseconds, captured length, original
//! length — followed by the frame. Frames are cut to the scenario's snapshot length when it
//! has one (the captured length then says how much was kept).

use std::io::{self, Write};

use crate::spec::TsPrecision;

/// Snapshot length written in the file header.
pub const SNAPLEN: u32 = 262_144;

/// Magic number of a microsecond-resolution file.
pub const MAGIC_MICRO: u32 = 0xa1b2_c3d4;

/// Magic number of a nanosecond-resolution file.
pub const MAGIC_NANO: u32 = 0xa1b2_3c4d;

/// Writes pcap records to `W`, counting bytes.
#[derive(Debug)]
pub(crate) struct PcapWriter<W: Write> {
    w: W,
    precision: TsPrecision,
    bytes: u64,
    snaplen: Option<u32>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub(crate) fn new(mut w: W, linktype: u32, precision: TsPrecision, snaplen: Option<u32>) -> io::Result<Self> {
        let magic = match precision {
            TsPrecision::Micro => MAGIC_MICRO,
            TsPrecision::Nano => MAGIC_NANO,
        };
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&magic.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&snaplen.unwrap_or(SNAPLEN).to_le_bytes());
        header[20..24].copy_from_slice(&linktype.to_le_bytes());
        w.write_all(&header)?;
        Ok(PcapWriter { w, precision, bytes: header.len() as u64, snaplen })
    }

    /// The snapshot length frames are cut to, if any.
    pub(crate) fn snaplen(&self) -> Option<u32> {
        self.snaplen
    }

    /// Writes one record of `frame`, cut to the snapshot length.
    pub(crate) fn record_cut(&mut self, ns: i64, frame: &[u8]) -> io::Result<()> {
        let keep = self.snaplen.map_or(frame.len(), |s| frame.len().min(s as usize));
        let orig = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?;
        self.header(ns, keep as u32, orig)?;
        self.w.write_all(&frame[..keep])?;
        self.bytes += 16 + keep as u64;
        Ok(())
    }

    fn header(&mut self, ns: i64, caplen: u32, len: u32) -> io::Result<()> {
        let secs = u32::try_from(ns.div_euclid(1_000_000_000))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "time outside pcap range"))?;
        let sub = ns.rem_euclid(1_000_000_000) as u32;
        let frac = match self.precision {
            TsPrecision::Micro => sub / 1_000,
            TsPrecision::Nano => sub,
        };
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&frac.to_le_bytes());
        header[8..12].copy_from_slice(&caplen.to_le_bytes());
        header[12..16].copy_from_slice(&len.to_le_bytes());
        self.w.write_all(&header)
    }

    /// Writes one record captured at `ns` (nanoseconds since the epoch): the record header
    /// for a frame of `len` bytes, then the frame itself, which `frame` must write in full.
    pub(crate) fn record<F>(&mut self, ns: i64, len: usize, frame: F) -> io::Result<()>
    where
        F: FnOnce(&mut W) -> io::Result<()>,
    {
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame above snaplen"))?;
        self.header(ns, len, len)?;
        frame(&mut self.w)?;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    /// Flushes and returns the number of bytes written.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.w.flush()?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut buf = Vec::new();
        let mut w = PcapWriter::new(&mut buf, 276, TsPrecision::Nano, None).unwrap();
        w.record(1_700_000_000_123_456_789, 3, |w| w.write_all(&[1, 2, 3])).unwrap();
        assert_eq!(w.finish().unwrap(), 24 + 16 + 3);
        assert_eq!(&buf[0..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&buf[4..8], &[2, 0, 4, 0]);
        assert_eq!(&buf[16..20], &262_144u32.to_le_bytes());
        assert_eq!(&buf[20..24], &276u32.to_le_bytes());
        assert_eq!(&buf[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&buf[28..32], &123_456_789u32.to_le_bytes());
        assert_eq!(&buf[32..36], &3u32.to_le_bytes());
        assert_eq!(&buf[40..], &[1, 2, 3]);
    }

    #[test]
    fn snaplen_cuts_frames_and_keeps_their_length() {
        let mut buf = Vec::new();
        let mut w = PcapWriter::new(&mut buf, 1, TsPrecision::Micro, Some(4)).unwrap();
        w.record_cut(1_000_000_000, &[1, 2, 3, 4, 5, 6]).unwrap();
        w.record_cut(1_000_000_000, &[7, 8]).unwrap();
        assert_eq!(w.finish().unwrap(), 24 + 16 + 4 + 16 + 2);
        assert_eq!(&buf[16..20], &4u32.to_le_bytes());
        assert_eq!(&buf[32..36], &4u32.to_le_bytes());
        assert_eq!(&buf[36..40], &6u32.to_le_bytes());
        assert_eq!(&buf[40..44], &[1, 2, 3, 4]);
        assert_eq!(&buf[52..56], &2u32.to_le_bytes());
    }

    #[test]
    fn micro_truncates() {
        let mut buf = Vec::new();
        let mut w = PcapWriter::new(&mut buf, 1, TsPrecision::Micro, None).unwrap();
        w.record(5_000_001_999, 0, |_| Ok(())).unwrap();
        w.finish().unwrap();
        assert_eq!(&buf[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&buf[24..28], &5u32.to_le_bytes());
        assert_eq!(&buf[28..32], &1u32.to_le_bytes());
    }
}
