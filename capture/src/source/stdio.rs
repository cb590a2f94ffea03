//! Opening a capture file for libpcap on a stdio stream with a 1 MiB buffer and no lock.
//!
//! libpcap reads a file through `fread` on the `FILE` it opens, and glibc gives that stream a
//! buffer of the file system's block size, 4 KiB: one `read(2)` per 4 KiB, 337,000 of them for a
//! 1.38 GB capture, whose cost was about a seventh of the capture thread's time (1,000 calls
//! × 60 s). A stream's buffer can only be set before its first read, so this module opens the
//! file itself (`fopen`), sets the buffer (`setvbuf`) and hands the stream to libpcap
//! (`pcap_fopen_offline_with_tstamp_precision`, which the `pcap` crate does not offer for a
//! `FILE`). The stream takes no lock around each read either (`__fsetlocking`): the recorder
//! has threads, so glibc would lock it twice per packet for the one thread that reads it (1,000
//! calls × 60 s: the capture thread's CPU 0.87-1.05 s in 4 runs, 1.01-1.36 s with the locks).
//! With [`crate::prefetch`], one of the capture crate's two `unsafe` modules (the crate
//! denies `unsafe` elsewhere).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use pcap::{Capture, Offline};

/// Bytes read from the file at a time.
pub(crate) const READ_BUFFER: usize = 1 << 20;

/// libpcap's `PCAP_ERRBUF_SIZE`.
const ERRBUF: usize = 256;

/// libpcap's `PCAP_TSTAMP_PRECISION_NANO`: time stamps in nanoseconds, whatever the file holds.
const NANO: c_uint = 1;

unsafe extern "C" {
    fn pcap_fopen_offline_with_tstamp_precision(
        fp: *mut libc::FILE,
        precision: c_uint,
        errbuf: *mut c_char,
    ) -> *mut c_void;
    /// glibc's `__fsetlocking` (`<stdio_ext.h>`).
    fn __fsetlocking(fp: *mut libc::FILE, kind: c_int) -> c_int;
}

/// `FSETLOCKING_BYCALLER`: the stream takes no lock of its own around each call.
const FSETLOCKING_BYCALLER: c_int = 2;

/// The memory a stream reads into. It must outlive the stream: the owner drops it only after
/// the [`Capture`] (whose `pcap_close` closes the stream). Nothing in Rust reads or writes it
/// after it is handed over; a `Vec` moves without moving its memory.
pub(crate) struct ReadBuffer(#[allow(dead_code)] Vec<u8>);

/// Opens `path` for libpcap, nanosecond time stamps, reading [`READ_BUFFER`] bytes at a time.
/// The error is what the OS or libpcap said.
pub(crate) fn open(path: &Path) -> Result<(Capture<Offline>, ReadBuffer), String> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the path holds a NUL byte".to_string())?;
    let mut memory = vec![0u8; READ_BUFFER];
    // SAFETY: both arguments are NUL-terminated strings that outlive the call. "e": close on exec.
    let file = unsafe { libc::fopen(c_path.as_ptr(), c"rbe".as_ptr()) };
    if file.is_null() {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: `file` is an open stream on which nothing has been read yet (setvbuf must come
    // first); the memory is `READ_BUFFER` bytes long and stays allocated, untouched by Rust,
    // until after the stream is closed (`ReadBuffer`'s contract).
    let rc = unsafe { libc::setvbuf(file, memory.as_mut_ptr().cast::<c_char>(), libc::_IOFBF, memory.len()) };
    if rc != 0 {
        // Not fatal: the stream keeps its own buffer.
        tracing::debug!("setvbuf failed for {}; reading with the default buffer", path.display());
    }
    // In a process with threads glibc locks a stream around every `fread`, and libpcap reads
    // each record in two (header, then data): 12 M lock and unlock pairs for a 6 M packet
    // capture. The stream is only ever read by the one thread that owns the handle (a
    // `Capture` is not `Sync`), so it needs no lock.
    // SAFETY: `file` is an open stream no other thread knows of.
    let _: c_int = unsafe { __fsetlocking(file, FSETLOCKING_BYCALLER) };
    let mut errbuf = [0 as c_char; ERRBUF];
    // SAFETY: `file` is an open stream; `errbuf` is PCAP_ERRBUF_SIZE bytes. On success the
    // returned handle owns the stream (pcap_close closes it); on failure the stream is still
    // ours to close.
    let handle = unsafe { pcap_fopen_offline_with_tstamp_precision(file, NANO, errbuf.as_mut_ptr()) };
    match NonNull::new(handle) {
        // The pcap crate takes a handle it did not open this way (`From<NonNull<pcap_t>>`).
        Some(h) => Ok((Capture::from(h.cast()), ReadBuffer(memory))),
        None => {
            // SAFETY: libpcap did not take the stream; it is closed once, here. errbuf is
            // NUL-terminated by libpcap (and zeroed before).
            let reason = unsafe {
                let _: c_int = libc::fclose(file);
                CStr::from_ptr(errbuf.as_ptr()).to_string_lossy().into_owned()
            };
            Err(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use pcap::{Linktype, Packet, PacketHeader};

    use super::super::FileSource;

    /// Writes `n` Ethernet frames of different lengths and bytes with libpcap's own writer.
    fn write_capture(path: &std::path::Path, n: u32) {
        let dead = pcap::Capture::dead(Linktype::ETHERNET).unwrap();
        let mut out = dead.savefile(path).unwrap();
        for k in 0..n {
            let len = 60 + (k * 7919 % 1400) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i as u32 ^ k.wrapping_mul(2654435761)) as u8).collect();
            let ts = libc::timeval { tv_sec: 1_700_000_000 + i64::from(k / 50), tv_usec: i64::from(k % 50) * 20_000 };
            let header = PacketHeader { ts, caplen: len as u32, len: len as u32 };
            out.write(&Packet::new(&header, &data));
        }
        out.flush().unwrap();
    }

    /// `read(2)` calls this thread has made.
    fn read_calls() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines().find_map(|l| l.strip_prefix("syscr: ")).unwrap().parse().unwrap()
    }

    /// A file of many read buffers comes back frame by frame as libpcap's own reader gives it
    /// (lengths, bytes, time stamps in nanoseconds), across every buffer boundary.
    #[test]
    fn a_capture_larger_than_many_buffers_reads_as_libpcap_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pcap");
        write_capture(&path, 20_000);
        assert!(std::fs::metadata(&path).unwrap().len() > 10 * super::READ_BUFFER as u64);
        let mut reference = pcap::Capture::from_file(&path).unwrap();
        let mut frames = Vec::new();
        let reads_before = read_calls();
        let mut source = FileSource::open(&path).unwrap();
        while let Some(frame) = source.next_frame().unwrap() {
            frames.push((frame.data.to_vec(), frame.wire_len, frame.time.0));
        }
        // 15.5 MB in 1 MiB reads, not in the 3,800 reads of a 4 KiB buffer.
        let reads = read_calls() - reads_before;
        assert!(reads <= 40, "{reads} read calls");
        let mut n = 0;
        for (data, wire_len, time) in frames {
            let want = reference.next_packet().unwrap();
            assert_eq!(data, want.data, "frame {n}");
            assert_eq!(wire_len, want.header.len);
            let ns = want.header.ts.tv_sec * 1_000_000_000 + want.header.ts.tv_usec * 1000;
            assert_eq!(time, ns, "frame {n}");
            n += 1;
        }
        assert!(matches!(reference.next_packet(), Err(pcap::Error::NoMorePackets)));
        assert_eq!(n, 20_000);
        // Every record read: all but the file's 24-byte header.
        assert_eq!(source.position(), source.size() - 24);
    }

    /// A file name need not be UTF-8 (libpcap is given the bytes).
    #[test]
    fn a_capture_whose_name_is_not_utf8_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(std::ffi::OsStr::from_bytes(b"calls-\xff.pcap"));
        // libpcap's writer as the pcap crate offers it takes UTF-8 names only.
        write_capture(&dir.path().join("calls.pcap"), 3);
        std::fs::rename(dir.path().join("calls.pcap"), &path).unwrap();
        let mut source = FileSource::open(&path).unwrap();
        let mut n = 0;
        while source.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    /// What is not a capture is refused with libpcap's reason, and the stream is closed.
    #[test]
    fn a_file_that_is_not_a_capture_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.pcap");
        std::fs::write(&path, b"these are not packets, just notes\n").unwrap();
        let err = FileSource::open(&path).unwrap_err().to_string();
        assert!(err.contains("notes.pcap") && err.contains("unknown file format"), "{err}");
    }
}
