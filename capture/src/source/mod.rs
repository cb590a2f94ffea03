//! Packet sources: capture files and live interfaces ([`live`]), both through libpcap.
//!
//! This is the only module of capture that may read the wall clock: a live capture reports
//! idle ticks so that timers still fire when the wire is quiet.

#![allow(clippy::disallowed_methods)] // the packet sources are where capture meets the clock (clippy.toml)

mod compressed;
mod live;
mod stdio;

use std::path::{Path, PathBuf};

use pcap::{Capture, Offline};
use thiserror::Error;

use crate::time::Timestamp;
use crate::transport::decode::LinkType;

/// Errors of packet sources. Each names the file or interface and what to do.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The capture file does not exist or cannot be read.
    #[error("cannot open capture file '{path}': {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What the OS or libpcap said.
        reason: String,
    },
    /// The file's link type is not one callvault decodes.
    #[error(
        "capture file '{path}' has link type {dlt} ({name}), which callvault does not decode; supported: {supported}"
    )]
    UnsupportedLink {
        /// The file or interface.
        path: PathBuf,
        /// The DLT number.
        dlt: i32,
        /// libpcap's name for it.
        name: String,
        /// The supported list.
        supported: &'static str,
    },
    /// Reading a packet failed (corrupt or truncated file).
    #[error("capture file '{path}' is corrupt or truncated at packet {packet}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// 1-based number of the packet that could not be read.
        packet: u64,
        /// What libpcap said.
        reason: String,
    },
    /// Opening or reading a live interface failed.
    #[error("live capture on interface '{iface}' failed: {reason}")]
    Live {
        /// The interface.
        iface: String,
        /// What libpcap said, and a hint.
        reason: String,
    },
    /// The BPF filter did not compile.
    #[error("capture filter '{filter}' on '{iface}' is invalid: {reason}")]
    Filter {
        /// The interface.
        iface: String,
        /// The filter expression.
        filter: String,
        /// What libpcap said.
        reason: String,
    },
}

/// One captured frame, borrowed from the source until the next read.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time.
    pub time: Timestamp,
    /// Captured bytes (may be shorter than `wire_len` with a snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
}

fn link_of(dlt: i32, path: &Path) -> Result<LinkType, SourceError> {
    LinkType::from_dlt(dlt).ok_or_else(|| SourceError::UnsupportedLink {
        path: path.to_owned(),
        dlt,
        name: pcap::Linktype(dlt).get_name().unwrap_or_else(|_| "unknown".into()),
        supported: LinkType::SUPPORTED,
    })
}

/// A pcap or pcapng file read through libpcap, compressed (gzip, zstd) or not.
pub struct FileSource {
    // Dropped before `inflater`: libpcap closes the pipe, the decompressing thread ends.
    // Dropped before `_buffer`: the stream reads into it until libpcap closes it.
    cap: Capture<Offline>,
    _buffer: stdio::ReadBuffer,
    inflater: Option<compressed::Inflater>,
    path: PathBuf,
    link: LinkType,
    size: u64,
    packets: u64,
    bytes_read: u64,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource").field("path", &self.path).field("packets", &self.packets).finish()
    }
}

impl FileSource {
    /// Opens a capture file (pcap or pcapng, any byte order, micro- or nanosecond stamps;
    /// gzip- or zstd-compressed, told by its first bytes).
    pub fn open(path: &Path) -> Result<FileSource, SourceError> {
        let open_err = |reason: String| SourceError::Open { path: path.to_owned(), reason };
        let meta = std::fs::metadata(path).map_err(|e| open_err(e.to_string()))?;
        if meta.is_dir() {
            return Err(open_err("is a directory".into()));
        }
        // Only a regular file is looked into first: a pipe (a FIFO, /dev/stdin) would lose what
        // was read, so it is read as it comes, uncompressed.
        let mut head = [0u8; 4];
        let n = if meta.is_file() {
            std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .map_err(|e| open_err(e.to_string()))?
        } else {
            0
        };
        let mut inflater = match Compression::sniff(&head[..n]) {
            Some(c) => Some(
                compressed::Inflater::start(path, c)
                    .map_err(|e| open_err(format!("cannot start {} decompression: {e}", c.name())))?,
            ),
            None => None,
        };
        let read_from = inflater.as_ref().map_or(path, |i| i.pipe_path.as_path());
        let (cap, buffer) = stdio::open(read_from).map_err(|reason| {
            match inflater.as_mut().and_then(compressed::Inflater::failure) {
                Some(why) => open_err(why),
                None if inflater.is_some() => open_err(format!("decompressed, it is not a capture: {reason}")),
                None => open_err(reason),
            }
        })?;
        if let Some(i) = inflater.as_mut() {
            i.opened();
        }
        let link = link_of(cap.get_datalink().0, path)?;
        Ok(FileSource {
            cap,
            _buffer: buffer,
            inflater,
            path: path.to_owned(),
            link,
            size: meta.len(),
            packets: 0,
            bytes_read: 0,
        })
    }

    /// How the file is compressed, if it is.
    pub fn compressed(&self) -> bool {
        self.inflater.is_some()
    }

    /// The file's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Approximate bytes of the file consumed so far (record headers + captured bytes, or the
    /// compressed bytes decompressed), for progress.
    pub fn position(&self) -> u64 {
        match &self.inflater {
            Some(i) => i.consumed.load(std::sync::atomic::Ordering::Relaxed).min(self.size),
            None => self.bytes_read.min(self.size),
        }
    }

    /// Packets read so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The next frame, `Ok(None)` at the end of the file.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.packets += 1;
                self.bytes_read += 16 + u64::from(p.header.caplen);
                Ok(Some(Frame {
                    // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                    time: Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec),
                    data: p.data,
                    wire_len: p.header.len,
                }))
            }
            Err(e) => {
                // A compressed file that ended early says why, whatever libpcap made of it.
                let failure = self.inflater.as_mut().and_then(compressed::Inflater::failure);
                match (e, failure) {
                    (_, Some(reason)) | (pcap::Error::PcapError(reason), None) => {
                        Err(SourceError::Read { path: self.path.clone(), packet: self.packets + 1, reason })
                    }
                    (pcap::Error::NoMorePackets, None) => Ok(None),
                    (e, None) => Err(SourceError::Read {
                        path: self.path.clone(),
                        packet: self.packets + 1,
                        reason: pcap_reason(&e),
                    }),
                }
            }
        }
    }
}

pub use compressed::Compression;
pub use live::{Drained, KernelStats, LiveCapture, LiveOptions, LiveSource, MAX_INTERFACES, MERGE_HOLD};

fn pcap_reason(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The wall clock as a capture timestamp.
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp(d.as_nanos() as i64)
}
