//! SHA-256 of a file's content, in lowercase hex with the size: what the finisher computes
//! once for every file it hands to the spool, and what the spool and the local target compute
//! to compare a file already in place (or a copy read back) with that. One implementation, so
//! the two sides cannot disagree on what a recording's hash is.
//!
//! Architecture invariant: this crate knows only bytes; the mixer and the shipper both depend
//! on it, and it depends on neither.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use sha2::{Digest, Sha256};

#[cfg(target_arch = "x86_64")]
mod map;
#[cfg(target_arch = "x86_64")]
mod ni;

/// Buffer size for reading (and copying) files.
pub const IO_BUF: usize = 256 * 1024;

thread_local! {
    /// Each thread's read buffer, kept between files: a fresh 256 KiB buffer per file would be
    /// mapped, faulted in and zeroed again for every recording hashed.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's read buffer, `len` bytes of it (a caller that hashes in turn,
/// which none does, gets a buffer of its own).
fn with_buf<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with(|cell| {
        let mut own = Vec::new();
        let mut held = cell.try_borrow_mut();
        let buf = match held.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut own,
        };
        if buf.len() < len {
            buf.resize(len, 0);
        }
        f(&mut buf[..len])
    })
}

/// Lowercase hex SHA-256 and the size of everything `reader` yields.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    with_buf(IO_BUF, |buf| {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((hex::encode(hasher.finalize()), size))
    })
}

/// A writer that hashes what goes through it to `inner`: a copy and its SHA-256 in one pass.
#[derive(Debug)]
pub struct Tee<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: io::Write> Tee<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Tee<W> {
        Tee { inner, hasher: Sha256::new(), size: 0 }
    }

    /// Lowercase hex SHA-256 and the size of what was written.
    pub fn finish(self) -> (String, u64) {
        self.into_parts().1
    }

    /// The writer, and the lowercase hex SHA-256 and size of what was written.
    pub fn into_parts(self) -> (W, (String, u64)) {
        (self.inner, (hex::encode(self.hasher.finalize()), self.size))
    }
}

impl<W: io::Write> io::Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Which side of [`copy_hashed`] failed.
#[derive(Debug)]
pub enum CopyError {
    /// Reading.
    Read(io::Error),
    /// Writing.
    Write(io::Error),
}

/// Copies everything `reader` yields into `writer`, hashing it on the way: its lowercase hex
/// SHA-256 and size.
pub fn copy_hashed(mut reader: impl Read, writer: impl io::Write) -> Result<(String, u64), CopyError> {
    use io::Write;
    let mut tee = Tee::new(writer);
    with_buf(IO_BUF, |buf| {
        loop {
            let n = match reader.read(buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            tee.write_all(&buf[..n]).map_err(CopyError::Write)?;
        }
    })?;
    tee.flush().map_err(CopyError::Write)?;
    Ok(tee.finish())
}

/// Lowercase hex SHA-256 and the size of the file at `path`.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    hash_reader(File::open(path)?)
}

/// [`hash_reader`] of each file, in order, read from its start: what a finisher does with a
/// batch of recordings. Where the CPU has the SHA extensions, up to [`LANES`] files are hashed
/// at a time (those of the nearest sizes together), which is twice the speed of one at a time,
/// and files of a megabyte or more are mapped rather than copied out of the page cache.
pub fn hash_files(files: &mut [&mut File]) -> Vec<io::Result<(String, u64)>> {
    #[cfg(target_arch = "x86_64")]
    if ni::available() && files.len() > 1 {
        return lanes::hash(files, lanes::Source::Mapped { from: lanes::MAP_FROM, window: lanes::MAP_WINDOW });
    }
    files.iter_mut().map(|f| from_start(f)).collect()
}

/// Files [`hash_files`] hashes together at most.
pub const LANES: usize = 4;

fn from_start(file: &mut File) -> io::Result<(String, u64)> {
    file.seek(SeekFrom::Start(0))?;
    hash_reader(file)
}

/// Several files at a time through [`ni::compress4`] and [`ni::compress2`].
#[cfg(target_arch = "x86_64")]
mod lanes {
    use memmap2::Mmap;

    use super::*;

    /// SHA-256's initial state (FIPS 180-4, 5.3.3).
    const H0: [u32; 8] =
        [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

    /// Read buffer per file: four of them stay in a core's L2 cache with room to spare, so
    /// the hash reads what the kernel just copied from there.
    const LANE_BUF: usize = IO_BUF / 2;

    /// A file's hash and size, or why it could not be read.
    type Hashed = io::Result<(String, u64)>;

    /// A lane's file as mapped: its size when hashing began, and the part of it mapped now
    /// (from the offset given), if any yet.
    struct Mapping {
        len: u64,
        window: Option<(u64, Mmap)>,
    }

    /// How the lanes get the files' bytes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Source {
        /// Mapped ([`map::window`]: no copy from the page cache) `window` bytes at a time
        /// (a multiple of [`LANE_BUF`]) where they can be and have at least `from` bytes, read
        /// where not.
        Mapped { from: u64, window: usize },
        /// Read (`read(2)`) into a buffer per lane.
        #[cfg_attr(not(test), allow(dead_code))]
        Read,
    }

    /// Size from which a finisher's files are mapped rather than read. Measured on this
    /// project's 2-core machine: at 1,000 calls × 60 s (1.9 MB per recording) mapping took the
    /// finishers' CPU from 1.23-1.31 s to 1.10-1.20 s; at 2,000 calls × 1 s (32 KB each),
    /// mapping every file put it up from 0.89-0.91 s to 1.03-1.08 s, about 70 µs a recording,
    /// what copying 300 KB out of the cache costs. (Unmapping also flushes the mapping from
    /// the other core, where the recorder's other threads run.)
    pub(super) const MAP_FROM: u64 = 1 << 20;

    /// How much of a file is mapped at a time: 16 lanes' worth (four finishers of four lanes)
    /// is at most 32 MiB of page cache counted in the recorder's resident size, whatever the
    /// length of the calls (64 MiB while the recorder's four reserve finishers work too), and
    /// each window still saves the copy of 2 MiB for the cost of copying about 300 KB.
    pub(super) const MAP_WINDOW: usize = 2 << 20;

    pub(super) fn hash(files: &mut [&mut File], source: Source) -> Vec<Hashed> {
        let mut results: Vec<Option<Hashed>> = files.iter().map(|_| None).collect();
        // Files of about the same size together: the part of a longer one past the end of a
        // shorter one is hashed with fewer files beside it, at a lower speed.
        // A regular file's size is also what may be mapped of it.
        let sizes: Vec<(u64, bool)> =
            files.iter().map(|f| f.metadata().map_or((0, false), |m| (m.len(), m.is_file()))).collect();
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| sizes[i].0);
        let mut slots: Vec<Option<&mut File>> = files.iter_mut().map(|f| Some(&mut **f)).collect();
        for group in order.chunks(LANES) {
            let lanes = group
                .iter()
                .map(|&i| {
                    let (len, regular) = sizes[i];
                    Lane::new(slots[i].take().expect("each file once"), regular.then_some(len))
                })
                .collect();
            for (&i, result) in group.iter().zip(together(lanes, source)) {
                results[i] = Some(result);
            }
        }
        results.into_iter().map(|r| r.expect("every file hashed")).collect()
    }

    /// One file being hashed: the state after its whole blocks so far, and its size.
    struct Lane<'f> {
        file: &'f mut File,
        /// The file's size when hashing began, if it is a regular file (one that may be mapped).
        regular_len: Option<u64>,
        state: [u32; 8],
        size: u64,
        /// Set once the file is read to its end or failed.
        result: Option<Hashed>,
    }

    impl<'f> Lane<'f> {
        fn new(file: &'f mut File, regular_len: Option<u64>) -> Self {
            let result = file.seek(SeekFrom::Start(0)).err().map(Err);
            Self { file, regular_len, state: H0, size: 0, result }
        }

        fn live(&self) -> bool {
            self.result.is_none()
        }

        /// The next [`LANE_BUF`] bytes of the file from `window`, the part of it mapped from
        /// the offset given (less only at the window's end; nothing without a window).
        fn take<'m>(&mut self, window: Option<&'m (u64, Mmap)>) -> &'m [u8] {
            let Some((start, map)) = window else { return &[] };
            let at = (self.size - start) as usize;
            let end = map.len().min(at + LANE_BUF);
            self.size = start + end as u64;
            &map[at..end]
        }

        /// Moves `mapping`'s window on to the next bytes to hash once the lane has taken all
        /// of it; where they cannot be mapped, the rest of the file is read instead (`None`).
        fn slide(&mut self, mapping: &mut Option<Mapping>, window: usize) {
            let Some(m) = mapping else { return };
            let used = m.window.as_ref().is_none_or(|(start, map)| self.size >= start + map.len() as u64);
            if !used || self.size >= m.len {
                return;
            }
            let len = window.min((m.len - self.size) as usize);
            m.window = map::window(self.file, self.size, len).map(|map| (self.size, map));
            if m.window.is_none() {
                *mapping = None;
                if let Err(e) = self.file.seek(SeekFrom::Start(self.size)) {
                    self.result = Some(Err(e));
                }
            }
        }

        /// Fills `buf` from the file (less only at its end); a read error ends the lane.
        fn fill(&mut self, buf: &mut [u8]) -> usize {
            let mut n = 0;
            while n < buf.len() {
                match self.file.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.result = Some(Err(e));
                        return 0;
                    }
                }
            }
            self.size += n as u64;
            n
        }

        /// Hashes what is left of a filled buffer: the file's last bytes (padded) when it was
        /// not filled, else more whole blocks.
        fn rest(&mut self, rest: &[u8], filled: bool) {
            let whole = rest.len() / 64 * 64;
            ni::compress1(&mut self.state, &rest[..whole]);
            if !filled {
                self.result = Some(Ok((self.digest(&rest[whole..]), self.size)));
            }
        }

        /// The padding (FIPS 180-4, 5.1.1) after the last `tail` (< 64) bytes, and the digest.
        fn digest(&mut self, tail: &[u8]) -> String {
            let mut last = [0u8; 128];
            last[..tail.len()].copy_from_slice(tail);
            last[tail.len()] = 0x80;
            let len = if tail.len() < 56 { 64 } else { 128 };
            last[len - 8..len].copy_from_slice(&(self.size * 8).to_be_bytes());
            ni::compress1(&mut self.state, &last[..len]);
            let bytes: Vec<u8> = self.state.iter().flat_map(|w| w.to_be_bytes()).collect();
            hex::encode(bytes)
        }
    }

    /// Hashes up to [`LANES`] files side by side: each round takes the next piece of every live
    /// file (from its mapping, or read into its buffer), hashes the blocks they all have
    /// together, and the rest of each piece alone.
    fn together(mut lanes: Vec<Lane<'_>>, source: Source) -> Vec<Hashed> {
        debug_assert!(lanes.len() <= LANES);
        let (from, window) = match source {
            Source::Mapped { from, window } => (from, window),
            Source::Read => (u64::MAX, 0),
        };
        debug_assert!(source == Source::Read || (window > 0 && window % LANE_BUF == 0));
        let mut maps: Vec<Option<Mapping>> = lanes
            .iter()
            .map(|l| {
                let len = l.regular_len.filter(|&n| l.live() && n >= from.max(1))?;
                Some(Mapping { len, window: None })
            })
            .collect();
        with_buf(LANES * LANE_BUF, |buf| {
            let mut bufs: Vec<&mut [u8]> = buf.chunks_mut(LANE_BUF).take(lanes.len()).collect();
            while lanes.iter().any(Lane::live) {
                for (lane, mapping) in lanes.iter_mut().zip(&mut maps) {
                    if lane.live() {
                        lane.slide(mapping, window);
                    }
                }
                let chunks: Vec<&[u8]> = lanes
                    .iter_mut()
                    .zip(bufs.iter_mut())
                    .zip(&maps)
                    .map(|((l, b), m)| match m {
                        _ if !l.live() => &[][..],
                        Some(m) => l.take(m.window.as_ref()),
                        None => {
                            let n = l.fill(b);
                            &b[..n]
                        }
                    })
                    .collect();
                let live: Vec<usize> = (0..lanes.len()).filter(|&i| lanes[i].live()).collect();
                let common = live.iter().map(|&i| chunks[i].len()).min().unwrap_or(0) / 64 * 64;
                let mut states: Vec<&mut [u32; 8]> = Vec::with_capacity(LANES);
                let mut blocks: Vec<&[u8]> = Vec::with_capacity(LANES);
                for (i, lane) in lanes.iter_mut().enumerate() {
                    if live.contains(&i) {
                        states.push(&mut lane.state);
                        blocks.push(&chunks[i][..common]);
                    }
                }
                compress_all(states, &blocks);
                for &i in &live {
                    lanes[i].rest(&chunks[i][common..], chunks[i].len() == LANE_BUF);
                }
            }
            lanes.into_iter().map(|l| l.result.expect("a lane runs until it has a result")).collect()
        })
    }

    /// The same number of blocks of each message, four, two or one at a time.
    fn compress_all(mut states: Vec<&mut [u32; 8]>, blocks: &[&[u8]]) {
        let mut at = 0;
        while at < states.len() {
            match &mut states[at..] {
                [a, b, c, d, ..] => {
                    ni::compress4([a, b, c, d], [blocks[at], blocks[at + 1], blocks[at + 2], blocks[at + 3]]);
                    at += 4;
                }
                [a, b, ..] => {
                    ni::compress2(a, blocks[at], b, blocks[at + 1]);
                    at += 2;
                }
                [a, ..] => {
                    ni::compress1(a, blocks[at]);
                    at += 1;
                }
                [] => unreachable!("at < len"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tee_copies_and_hashes_in_one_pass() {
        use std::io::Write;
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut tee = Tee::new(Vec::new());
        for chunk in data.chunks(4097) {
            tee.write_all(chunk).unwrap();
        }
        let want = hash_reader(data.as_slice()).unwrap();
        let copy = tee.inner.clone();
        assert_eq!(tee.finish(), want);
        assert!(copy == data);
        let mut out = Vec::new();
        assert_eq!(copy_hashed(data.as_slice(), &mut out).unwrap(), want);
        assert!(out == data);
        // A writer that fails is named as the side that failed.
        let mut small = [0u8; 10];
        let full = std::io::Cursor::new(&mut small[..]);
        assert!(matches!(copy_hashed(data.as_slice(), full), Err(CopyError::Write(_))));
    }

    #[test]
    fn hash_matches_known_vectors() {
        let (sha, size) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(size, 3);
        // Longer than one buffer: the reads are chained.
        let big = vec![b'a'; IO_BUF + 7];
        let (sha, size) = hash_reader(&big[..]).unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(&big)));
        assert_eq!(size, big.len() as u64);
    }

    /// Files with the given contents, open for reading.
    fn files(contents: &[Vec<u8>]) -> (tempfile::TempDir, Vec<File>) {
        let dir = tempfile::tempdir().unwrap();
        let files = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = dir.path().join(i.to_string());
                std::fs::write(&path, c).unwrap();
                File::open(path).unwrap()
            })
            .collect();
        (dir, files)
    }

    /// [`hash_files`] of `files`; where the lanes run, also with every file mapped and with
    /// every file read, which must give the same (a failure the same way).
    fn hashed(files: &mut [File]) -> Vec<io::Result<(String, u64)>> {
        let got = hash_files(&mut files.iter_mut().collect::<Vec<_>>());
        #[cfg(target_arch = "x86_64")]
        if ni::available() && files.len() > 1 {
            let same = |r: &io::Result<(String, u64)>| r.as_ref().ok().cloned();
            // Windows of one and of three read buffers: the proptest's files span several.
            let mapped = |window| lanes::Source::Mapped { from: 1, window };
            for source in [mapped(IO_BUF / 2), mapped(3 * IO_BUF / 2), lanes::Source::Read] {
                let other = lanes::hash(&mut files.iter_mut().collect::<Vec<_>>(), source);
                assert_eq!(got.iter().map(same).collect::<Vec<_>>(), other.iter().map(same).collect::<Vec<_>>());
            }
        }
        got
    }

    #[test]
    fn files_hashed_together_match_the_standard_vectors() {
        // FIPS 180-2 examples: one block, and 56 bytes (the padding takes a second block).
        let abc = b"abc".to_vec();
        let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec();
        let (_dir, mut f) = files(&[abc, two_blocks, Vec::new()]);
        let got: Vec<(String, u64)> = hashed(&mut f).into_iter().map(Result::unwrap).collect();
        assert_eq!(got[0], ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(), 3));
        assert_eq!(got[1], ("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1".into(), 56));
        assert_eq!(got[2], ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(), 0));
    }

    #[test]
    fn a_file_that_cannot_be_read_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let contents: Vec<Vec<u8>> =
            [3 * IO_BUF + 100, IO_BUF, 10].iter().map(|&n| (0..n).map(|i| (i % 251) as u8).collect()).collect();
        let mut group = vec![File::open(dir.path()).unwrap()];
        for (i, content) in contents.iter().enumerate() {
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, content).unwrap();
            group.push(File::open(&path).unwrap());
        }
        // A directory opens, but reading it fails (EISDIR): the others are hashed as if alone.
        let got = hashed(&mut group);
        assert!(got[0].is_err());
        for (g, c) in got[1..].iter().zip(&contents) {
            assert_eq!(g.as_ref().unwrap(), &(hex::encode(Sha256::digest(c)), c.len() as u64));
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn a_file_partly_out_of_the_page_cache_is_mapped_then_read() {
        if !ni::available() {
            map::skipped("filehash: lanes falling back from mapping to reading (no SHA extensions)");
            return;
        }
        // Dropped from 2 MiB on: the page cache's folios (up to 2 MiB, aligned) do not cross
        // it, so none of them is kept for holding a page before it.
        let contents: Vec<Vec<u8>> =
            [(4 << 20) + 100, IO_BUF].iter().map(|&n| (0..n).map(|i| (i % 247) as u8).collect()).collect();
        let (_dir, mut f) = files(&contents);
        f[0].sync_all().unwrap();
        map::drop_cached(&f[0], 2 << 20);
        if map::window(&f[0], 2 << 20, IO_BUF / 2).is_some() {
            map::skipped("filehash: lanes falling back from mapping to reading (temporary directory on tmpfs)");
            return;
        }
        assert!(map::window(&f[0], 0, IO_BUF / 2).is_some(), "the first windows are mapped");
        let [a, b] = &mut f[..] else { unreachable!() };
        let got = lanes::hash(&mut [a, b], lanes::Source::Mapped { from: 1, window: IO_BUF / 2 });
        for (g, c) in got.iter().zip(&contents) {
            assert_eq!(g.as_ref().unwrap(), &(hex::encode(Sha256::digest(c)), c.len() as u64));
        }
    }

    #[test]
    fn files_are_read_from_their_start() {
        let (_dir, mut f) = files(&[vec![1; 1000], vec![2; 70_000]]);
        for file in &mut f {
            let mut skip = [0; 10];
            file.read_exact(&mut skip).unwrap();
        }
        let got: Vec<(String, u64)> = hashed(&mut f).into_iter().map(Result::unwrap).collect();
        assert_eq!(got[0].1, 1000);
        assert_eq!(got[1], (hex::encode(Sha256::digest(vec![2; 70_000])), 70_000));
    }

    /// Lengths around the block, padding and buffer edges, and random ones.
    fn length() -> impl proptest::strategy::Strategy<Value = usize> {
        use proptest::prelude::*;
        prop_oneof![
            prop::sample::select(vec![
                0,
                1,
                55,
                56,
                63,
                64,
                65,
                119,
                120,
                128,
                IO_BUF / 2,
                IO_BUF - 1,
                IO_BUF,
                IO_BUF + 1
            ]),
            (0..5usize, 0..200usize).prop_map(|(k, r)| k * IO_BUF / 2 + r),
            0..3 * IO_BUF,
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn files_hashed_together_hash_as_each_alone(
            specs in proptest::collection::vec((length(), proptest::prelude::any::<u8>()), 0..11)
        ) {
            let contents: Vec<Vec<u8>> = specs
                .iter()
                .map(|&(len, seed)| (0..len).map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add((i >> 8) as u8)).collect())
                .collect();
            let (_dir, mut f) = files(&contents);
            let got = hashed(&mut f);
            proptest::prop_assert_eq!(got.len(), contents.len());
            for (g, c) in got.iter().zip(&contents) {
                proptest::prop_assert_eq!(g.as_ref().unwrap(), &(hex::encode(Sha256::digest(c)), c.len() as u64));
            }
        }
    }
}
