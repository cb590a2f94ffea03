//! Compressed capture files (gzip, zstd), read transparently as tshark does: a thread
//! decompresses into a pipe and libpcap reads the pipe's other end (`/dev/fd/N`), so the
//! decoding of pcap and pcapng stays libpcap's. Nothing is written to disk.
//!
//! Which compression is told by the file's first bytes, not its name. A decompression error
//! (a corrupt or truncated file) ends the stream; the source then reports it with the file's
//! name and the compressed byte offset.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A compression callvault reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (RFC 1952), any number of members.
    Gzip,
    /// Zstandard (RFC 8878), any number of frames.
    Zstd,
}

impl Compression {
    /// The compression `head` (the file's first bytes) starts with, if any.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The decompressing thread of one file, and what it has read so far.
#[derive(Debug)]
pub(crate) struct Inflater {
    /// The path libpcap opens: the pipe's read end.
    pub(crate) pipe_path: PathBuf,
    reader: Option<io::PipeReader>,
    thread: Option<JoinHandle<()>>,
    /// Compressed bytes consumed (for progress).
    pub(crate) consumed: Arc<AtomicU64>,
    /// Why decompression stopped early, if it did.
    failure: Arc<Mutex<Option<String>>>,
}

impl Inflater {
    /// Starts decompressing `path` into a pipe.
    pub(crate) fn start(path: &Path, compression: Compression) -> io::Result<Inflater> {
        let file = std::fs::File::open(path)?;
        let (reader, writer) = io::pipe()?;
        let pipe_path = PathBuf::from(format!("/dev/fd/{}", reader.as_raw_fd()));
        let consumed = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(Mutex::new(None));
        let (counted, failed) = (consumed.clone(), failure.clone());
        let thread = std::thread::Builder::new().name("decompress".into()).spawn(move || {
            let mut writer = writer;
            let input = BufReader::with_capacity(1 << 16, Counting { inner: file, consumed: counted.clone() });
            let result = inflate(input, compression, &mut writer);
            if let Err(e) = result
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                let at = counted.load(Ordering::Relaxed);
                *failed.lock().unwrap() =
                    Some(format!("{} data is corrupt or truncated near compressed byte {at}: {e}", compression.name()));
            }
            // Closed only now: whoever reads the end of the stream finds the failure set.
            drop(writer);
        })?;
        Ok(Inflater { pipe_path, reader: Some(reader), thread: Some(thread), consumed, failure })
    }

    /// Once libpcap has opened the pipe: our own descriptor of its read end is not needed.
    pub(crate) fn opened(&mut self) {
        self.reader = None;
    }

    /// Why decompression stopped early, if it did (set before the pipe is closed).
    pub(crate) fn failure(&mut self) -> Option<String> {
        self.failure.lock().unwrap().clone()
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // The reader is gone (libpcap closed its end first, see `FileSource`): the thread sees
        // a broken pipe and ends.
        self.reader = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn inflate(mut input: impl BufRead, compression: Compression, out: &mut io::PipeWriter) -> io::Result<()> {
    match compression {
        Compression::Gzip => {
            io::copy(&mut flate2::bufread::MultiGzDecoder::new(input), out)?;
        }
        Compression::Zstd => {
            // One decoder per frame, until the input ends.
            while !input.fill_buf()?.is_empty() {
                let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                io::copy(&mut frame, out)?;
            }
        }
    }
    out.flush()
}

struct Counting {
    inner: std::fs::File,
    consumed: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressions_are_told_by_their_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Some(Compression::Gzip));
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
        // pcap (both byte orders, nanosecond) and pcapng are not compressed.
        for head in
            [[0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x4d, 0x3c, 0xb2, 0xa1], [0x0a, 0x0d, 0x0d, 0x0a]]
        {
            assert_eq!(Compression::sniff(&head), None);
        }
        assert_eq!(Compression::sniff(&[0x1f]), None);
    }
}
