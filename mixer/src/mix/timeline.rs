//! One call's audio timeline: a small ring between the packets (placed by RTP timestamp,
//! possibly out of order) and the WAV file (written in order, in large chunks, as the call
//! goes).
//!
//! The ring keeps each party's G.711 codes as they arrived (one byte per sample, one plane per
//! channel) plus one bit per sample saying whether anything arrived there. A packet is a plain
//! copy of its payload into its channel's plane; decoding to 16-bit PCM happens only when
//! frames are written out, into a scratch buffer the caller reuses across calls (so it stays in
//! cache). Per packet the memory touched is the payload itself.
//!
//! Each plane is kept in pages of [`PAGE`] positions (codes and their bits): a page exists only
//! while it holds positions placed and not yet written, and goes back to its thread's spare
//! pages once written (so nothing is allocated per packet). The ring's capacity is what the
//! hold bound and the largest write chunk need; what a call costs is the positions in flight:
//! in a call whose parties keep pace, the reorder window, a write chunk (its size chosen by
//! the mixer, [`WriteSize`]) and what waits for the file to end on a whole block: about 5 KiB
//! for both channels with 8 KiB writes, 40 KiB with 64 KiB ones; while a party is held up,
//! up to the hold bound more.
//!
//! Invariant: every sample placed lies in `[written, written + capacity)`; everything before
//! `written` is in the file. Samples with their bit clear are written as digital silence.

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use crate::mix::audio::{AudioConfig, AudioOut, BLOCK, CodeState};
use crate::mix::g711::Expand;
use crate::mix::g711_avx2;
use crate::mix::openfiles::AudioFile;
use crate::mix::wav::Encoding;
use crate::mix::wideband::{Cell, Samples, UpChannel};

/// Bytes per stereo frame in the file.
const FRAME: usize = 4;

/// What a channel's codes are: one byte per 8 kHz position in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// G.711 µ-law (PCMU).
    Ulaw,
    /// G.711 A-law (PCMA).
    Alaw,
    /// G.722 at 64 kbit/s: one code per position, two 16 kHz samples each.
    G722,
    /// Opus, decoded as placed (see [`crate::mix::opus`]): two 16 kHz samples per position.
    Opus,
    /// Opus decoded at 48 kHz (`opus_rate = 48000`): six samples per position; a call with any
    /// is recorded at 48 kHz.
    Opus48,
    /// A narrowband codec decoded as placed (G.729, GSM, see [`crate::mix::narrow`]): one
    /// sample per position.
    Decoded8k,
    /// L16 at 8 kHz (see [`crate::mix::linear`]): placed as [`Law::Decoded8k`].
    L16,
    /// L16 at 16 kHz: placed as [`Law::Opus`] (two samples per position).
    L16Wide,
}

/// Every rate (Hz) a recording is written at: [`Law::rate`] of some audio.
pub const RATES: [u32; 3] = [8_000, 16_000, 48_000];

impl Law {
    /// The G.711 expansion; `None` for the other codecs.
    fn expand(self) -> Option<Expand> {
        match self {
            Law::Ulaw => Some(Expand::Ulaw),
            Law::Alaw => Some(Expand::Alaw),
            Law::G722 | Law::Opus | Law::Opus48 | Law::Decoded8k | Law::L16 | Law::L16Wide => None,
        }
    }

    /// The G.711 expansion table; `None` for the other codecs.
    fn table(self) -> Option<&'static [i16; 256]> {
        self.expand().map(Expand::table)
    }

    /// The rate of this audio (Hz): a call is recorded at the highest rate in it.
    pub fn rate(self) -> u32 {
        match self {
            Law::G722 | Law::Opus | Law::L16Wide => 16_000,
            Law::Opus48 => 48_000,
            Law::Ulaw | Law::Alaw | Law::Decoded8k | Law::L16 => 8_000,
        }
    }
}

/// Sizing of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Ring size in frames (rounded up to a power of two, at least 1024). Memory per call is
    /// 2.25 bytes per frame in flight (placed and not yet written), in pages of 512 frames per
    /// channel: the whole ring only while a party is held up.
    pub ring_frames: u32,
    /// How far behind the slowest sending party's progress (in RTP time) a position stays
    /// open for reordered packets, in frames.
    pub reorder_frames: u32,
    /// How far at most the written audio may trail the leading party's progress, in frames:
    /// what can be held for a party whose packets are held up (in the network or the capture)
    /// while the other one's come on. Packets of a party held up longer arrive after their
    /// place closed (see [`Timeline::settle`]): they are counted late and the record names the
    /// gap. Bounded by the ring less a minimal write chunk.
    pub max_hold_frames: u32,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        // 32,768 frames (4.1 s, 72 KiB if ever full): a party may be held up 700 ms while the
        // other one's audio waits in the ring, and settled positions are written in chunks of
        // up to 64 KiB of the file ([`WriteSize::MAX`]: 16,384 frames of 16-bit stereo).
        TimelineConfig { ring_frames: 32_768, reorder_frames: 1280, max_hold_frames: 5600 }
    }
}

impl TimelineConfig {
    /// The hold bound as it applies to a ring of this size.
    pub fn hold(&self) -> u32 {
        let cap = self.ring_frames.next_power_of_two().max(1024);
        self.max_hold_frames.max(self.reorder_frames).min(cap - MIN_CHUNK - MAX_PACKET)
    }
}

/// Smallest write chunk (frames).
const MIN_CHUNK: u32 = 256;

/// How much of the file a call's settled audio is written in: a timeline writes once that
/// much is settled (or as much as its ring allows), ending each write on a whole block of up
/// to this size. Larger writes cost the kernel less per byte: a write fills its page-cache
/// pages as one folio of up to its size, so 1 GiB written in 8 KiB writes took 0.6 s of system
/// time on the development machine, in 64 KiB writes 0.3 s. Smaller ones hold less memory
/// per call (the codes wait in the ring until written): a mixer chooses by the calls it has
/// ([`WriteSize::for_calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSize(u32);

impl WriteSize {
    /// The smallest: 8 KiB (what a mixer with many calls writes).
    pub const MIN: WriteSize = WriteSize(8 << 10);
    /// The largest: 64 KiB (larger ones save little more).
    pub const MAX: WriteSize = WriteSize(64 << 10);
    /// File bytes a mixer's calls may gather between writes, all together (the ring holds
    /// them as codes: about 36 MiB of memory at most, half of that on average).
    const BUDGET: u64 = 64 << 20;

    /// The write size for a mixer with `calls` calls: the budget shared among them, between
    /// [`WriteSize::MIN`] and [`WriteSize::MAX`] (64 KiB up to 1,024 calls, 8 KiB from
    /// 8,192 on).
    pub fn for_calls(calls: usize) -> WriteSize {
        let each = WriteSize::BUDGET / calls.max(1) as u64;
        WriteSize(each.clamp(u64::from(WriteSize::MIN.0), u64::from(WriteSize::MAX.0)) as u32)
    }

    /// In bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.0)
    }
}
/// Longest packet the ring leaves room for beyond the hold (60 ms).
const MAX_PACKET: u32 = 480;

/// When positions are closed or written: once `chunk` of them are settled (or closed), up to
/// where the file ends on a multiple of `block` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    chunk: u64,
    block: u64,
}

/// What happened to a placed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Placed {
    /// Samples dropped because their position was closed (see [`Timeline::settle`]).
    pub late_samples: u32,
}

/// What a packet puts on its channel: codes (one byte per position), decoded 16 kHz
/// samples (two per position), decoded 8 kHz samples (one per position) or decoded 48 kHz
/// samples (six per position).
#[derive(Debug, Clone, Copy)]
enum Codes<'a> {
    Bytes(&'a [u8]),
    Pcm(&'a [i16]),
    Pcm8(&'a [i16]),
    Pcm48(&'a [i16]),
}

impl<'a> Codes<'a> {
    /// Positions covered.
    fn len(&self) -> usize {
        match self {
            Codes::Bytes(b) => b.len(),
            Codes::Pcm(s) => s.len() / 2,
            Codes::Pcm8(s) => s.len(),
            Codes::Pcm48(s) => s.len() / 6,
        }
    }

    /// Without its first `n` positions.
    fn skip(self, n: usize) -> Codes<'a> {
        match self {
            Codes::Bytes(b) => Codes::Bytes(&b[n..]),
            Codes::Pcm(s) => Codes::Pcm(&s[2 * n..]),
            Codes::Pcm8(s) => Codes::Pcm8(&s[n..]),
            Codes::Pcm48(s) => Codes::Pcm48(&s[6 * n..]),
        }
    }
}

/// Positions per page of a plane: a multiple of 64 (a page's bits are whole words) that
/// divides the ring.
const PAGE: usize = 512;

/// Spare pages a thread keeps for the next ones needed; pages beyond go back to the allocator.
const MAX_SPARE: usize = 4096;

thread_local! {
    /// Pages written out, for the timelines of this thread to reuse.
    #[allow(clippy::vec_box, reason = "pages move between here and a plane without being copied or allocated")]
    static SPARE: RefCell<Vec<Box<Page>>> = const { RefCell::new(Vec::new()) };
}

/// [`PAGE`] positions of one channel: their codes and one bit each saying whether anything
/// arrived there.
#[derive(Debug)]
struct Page {
    codes: [u8; PAGE],
    filled: [u64; PAGE / 64],
}

impl Page {
    /// An empty page: a spare one if this thread has one.
    fn take() -> Box<Page> {
        let mut page = SPARE
            .with_borrow_mut(Vec::pop)
            .unwrap_or_else(|| Box::new(Page { codes: [0; PAGE], filled: [0; PAGE / 64] }));
        page.filled = [0; PAGE / 64];
        page
    }

    /// Marks cells `[start, start + n)` of this page as filled.
    fn mark(&mut self, start: usize, n: usize) {
        let (mut i, end) = (start, start + n);
        while i < end {
            let word = i / 64;
            let bit = i % 64;
            let take = (64 - bit).min(end - i);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << bit };
            self.filled[word] |= mask;
            i += take;
        }
    }

    /// Gives `page` back to this thread's spares.
    fn give(page: Box<Page>) {
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < MAX_SPARE {
                if spare.capacity() == 0 {
                    // Once per thread: pushing never allocates after this.
                    spare.reserve_exact(MAX_SPARE);
                }
                spare.push(page);
            }
        });
    }
}

/// One channel's plane of the ring.
#[derive(Debug)]
struct Plane {
    /// The page of the latest position placed, by its index in `pages`, where its slot is
    /// `None` meanwhile: a channel's next packet mostly lands where the one before it ended,
    /// and finds the page here, on a line the placing reads anyway, instead of behind a load
    /// of its slot.
    recent: Option<(usize, Box<Page>)>,
    /// By ring cell / [`PAGE`]: a page exists while it holds positions placed and not yet
    /// written (the recent one is in `recent`).
    pages: Box<[Option<Box<Page>>]>,
    /// Law of the codes, set by the first packet.
    law: Option<Law>,
    /// Samples decoded as placed, for a channel that carried such a codec (boxed apart: most
    /// channels carry G.711 and never have them).
    decoded: Option<Box<Decoded>>,
}

/// A channel's samples decoded as they were placed, by position.
#[derive(Debug, Default)]
struct Decoded {
    /// For a channel that carried Opus (two 16 kHz samples) or a narrowband codec decoded as
    /// placed (the first of the two); allocated then.
    pcm: Option<Box<[[i16; 2]]>>,
    /// 48 kHz samples, for a channel that carried Opus at 48 kHz.
    pcm6: Option<Box<[[i16; 6]]>>,
}

impl Plane {
    fn new(cap: usize) -> Plane {
        Plane { recent: None, pages: (0..cap / PAGE).map(|_| None).collect(), law: None, decoded: None }
    }

    /// The decoded samples of the ring's `cap` cells (two per cell), allocated when first asked.
    fn pcm_mut(&mut self, cap: usize) -> &mut [[i16; 2]] {
        let decoded = self.decoded.get_or_insert_with(Box::default);
        decoded.pcm.get_or_insert_with(|| vec![[0i16; 2]; cap].into_boxed_slice())
    }

    /// The decoded 48 kHz samples of the ring's `cap` cells, allocated when first asked.
    fn pcm6_mut(&mut self, cap: usize) -> &mut [[i16; 6]] {
        let decoded = self.decoded.get_or_insert_with(Box::default);
        decoded.pcm6.get_or_insert_with(|| vec![[0i16; 6]; cap].into_boxed_slice())
    }

    /// The decoded samples, if the channel has any.
    fn pcm(&self) -> Option<&[[i16; 2]]> {
        self.decoded.as_ref()?.pcm.as_deref()
    }

    /// The decoded 48 kHz samples, if the channel has any.
    fn pcm6(&self) -> Option<&[[i16; 6]]> {
        self.decoded.as_ref()?.pcm6.as_deref()
    }

    /// Page `k`, if it exists.
    fn slot(&self, k: usize) -> Option<&Page> {
        match &self.recent {
            Some((r, page)) if *r == k => Some(page),
            _ => self.pages[k].as_deref(),
        }
    }

    /// Page `k`, if it exists, to change.
    fn slot_mut(&mut self, k: usize) -> Option<&mut Page> {
        match &mut self.recent {
            Some((r, page)) if *r == k => Some(page),
            _ => self.pages[k].as_deref_mut(),
        }
    }

    /// The page holding ring cell `cell`, if any.
    fn page(&self, cell: usize) -> Option<&Page> {
        self.slot(cell / PAGE)
    }

    /// The page holding ring cell `cell`, taken if it has none; it becomes the recent page.
    fn page_or_take(&mut self, cell: usize) -> &mut Page {
        let k = cell / PAGE;
        if self.recent.as_ref().is_none_or(|(r, _)| *r != k) {
            let page = self.pages[k].take().unwrap_or_else(Page::take);
            if let Some((r, parked)) = self.recent.replace((k, page)) {
                self.pages[r] = Some(parked);
            }
        }
        &mut self.recent.as_mut().expect("the recent page was just set").1
    }

    /// How this channel's codes expand, silence for a channel with no audio yet; `None` for
    /// audio that is not G.711.
    fn g711(&self) -> Option<Expand> {
        match self.law {
            None => Some(Expand::Silence),
            Some(law) => law.expand(),
        }
    }

    /// Gives back page `k`: every position it held is written.
    fn release(&mut self, k: usize) {
        let recent = self.recent.take_if(|(r, _)| *r == k).map(|(_, page)| page);
        if let Some(page) = recent.or_else(|| self.pages[k].take()) {
            Page::give(page);
        }
    }

    /// Marks ring cells `[start, start + n)` (no wrap) as empty.
    fn clear(&mut self, start: usize, n: usize) {
        for cell in start..start + n {
            self.take_filled(cell);
        }
    }

    /// Whether ring cell `cell` holds a code; clears its bit.
    fn take_filled(&mut self, cell: usize) -> bool {
        let Some(page) = self.slot_mut(cell / PAGE) else { return false };
        let (word, bit) = ((cell % PAGE) / 64, cell % 64);
        let was = page.filled[word] >> bit & 1 != 0;
        page.filled[word] &= !(1u64 << bit);
        was
    }

    /// The code in ring cell `cell` (0 where no page is).
    fn code(&self, cell: usize) -> u8 {
        self.page(cell).map_or(0, |page| page.codes[cell % PAGE])
    }

    /// One past the last filled position in `[written, end)` (`written` when none is).
    fn filled_until(&self, written: u64, end: u64, mask: u64) -> u64 {
        (written..end)
            .rev()
            .find(|&p| {
                let cell = (p & mask) as usize;
                self.page(cell).is_some_and(|page| page.filled[(cell % PAGE) / 64] >> (cell % 64) & 1 != 0)
            })
            .map_or(written, |p| p + 1)
    }

    /// Stores `codes` at ring cells `[start, start + codes.len())` (within one page) and marks
    /// them filled.
    fn store(&mut self, start: usize, codes: &[u8]) {
        let at = start % PAGE;
        let page = self.page_or_take(start);
        page.codes[at..at + codes.len()].copy_from_slice(codes);
        page.mark(at, codes.len());
    }

    /// Marks ring cells `[start, start + n)` (within one page) as filled.
    fn mark(&mut self, start: usize, n: usize) {
        self.page_or_take(start).mark(start % PAGE, n);
    }

    /// Reads a byte of each cache line of the pages holding ring cells `[start, start + n)`
    /// (no wrap), before they are decoded: the codes were placed up to a write's worth of
    /// audio ago (seconds, with large writes) and have mostly left the cache. Loads that do
    /// not depend on each other miss together; decoding page by page would wait for each
    /// page's first line in turn (a third of the decoding time at 1,000 calls).
    fn touch(&self, start: usize, n: usize) {
        let mut sum = 0u8;
        for page in (start / PAGE..(start + n).div_ceil(PAGE)).filter_map(|k| self.slot(k)) {
            for line in page.codes.iter().step_by(64) {
                sum ^= line;
            }
            sum ^= page.filled[0] as u8 ^ page.filled[PAGE / 64 - 1] as u8;
        }
        std::hint::black_box(sum);
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let recent = self.recent.take().map(|(_, page)| page);
        for page in self.pages.iter_mut().filter_map(Option::take).chain(recent) {
            Page::give(page);
        }
    }
}

/// The ring buffer and the file behind it.
#[derive(Debug)]
pub struct Timeline {
    planes: [Plane; 2],
    mask: u64,
    /// Positions decoded (in the file, or for a 16 kHz recording in its interpolators).
    written: u64,
    /// Positions before this are closed: a packet for them is late. They close as writes of
    /// [`WriteSize::MIN`] would write them (see [`Timeline::settle`]), written yet or not, so
    /// which packets a recording keeps never depends on the size its writes actually have
    /// (the calls beside it in its mixer).
    closed: u64,
    end: u64,
    /// The largest write chunk the ring allows (positions): what it holds besides the hold
    /// and a 60 ms packet.
    max_chunk: u64,
    /// How positions close ([`WriteSize::MIN`]'s plan).
    closing: Plan,
    /// The write size [`Timeline::writing`] was planned for.
    write: WriteSize,
    /// How closed positions are written.
    writing: Plan,
    out: AudioOut,
    /// The channels' way to 16 or 48 kHz, for a call recorded at that rate (see
    /// [`crate::mix::wideband`]).
    up: Option<Box<[UpChannel; 2]>>,
    /// Paused spans not yet written past (`[from, to)`, `to` = `u64::MAX` while open): both
    /// channels are silence there (see [`crate::mix::pause`]).
    muted: Vec<(u64, u64)>,
}

impl Timeline {
    /// Creates the audio file at `path` and an empty timeline, recorded at `rate` (8, 16 or 48
    /// kHz; raised when audio at a higher rate comes, see [`Timeline::raise`]).
    pub fn create(path: &Path, cfg: TimelineConfig, audio: AudioConfig, rate: u32) -> io::Result<Timeline> {
        let cap = u64::from(cfg.ring_frames.next_power_of_two().max(1024));
        let hold = u64::from(cfg.hold());
        let out = AudioOut::create(path, audio, rate)?;
        let mut t = Timeline {
            planes: [Plane::new(cap as usize), Plane::new(cap as usize)],
            mask: cap - 1,
            written: 0,
            closed: 0,
            end: 0,
            max_chunk: (cap - hold - u64::from(MAX_PACKET)).max(u64::from(MIN_CHUNK)),
            closing: Plan { chunk: 0, block: BLOCK },
            write: WriteSize::MIN,
            writing: Plan { chunk: 0, block: BLOCK },
            out,
            up: (rate > 8000).then(|| Box::new([UpChannel::new(rate), UpChannel::new(rate)])),
            muted: Vec::new(),
        };
        t.replan();
        Ok(t)
    }

    /// The plan for writes of `size` as the file stores audio now.
    fn plan(&self, size: WriteSize) -> Plan {
        let per = self.out.position_bytes(self.per_position());
        let chunk = (size.bytes() / per).clamp(u64::from(MIN_CHUNK), self.max_chunk);
        // The largest power of two the chunk covers, so that every write ends on one.
        Plan { chunk, block: (1u64 << (chunk * per).ilog2()).clamp(BLOCK, WriteSize::MAX.bytes()) }
    }

    /// Plans closing and writing again: bytes per position change with the rate and when
    /// G.711 codes start or stop.
    fn replan(&mut self) {
        self.closing = self.plan(WriteSize::MIN);
        self.writing = self.plan(self.write);
    }

    /// Both channels are silence from `pos` on (positions already closed excepted, written
    /// yet or not: what a pause silences does not depend on the write size), until
    /// [`Timeline::unmute_at`].
    pub fn mute_from(&mut self, pos: u64) {
        self.muted.push((pos.max(self.closed()), u64::MAX));
    }

    /// Ends the open pause at `pos`.
    pub fn unmute_at(&mut self, pos: u64) {
        if let Some(span) = self.muted.last_mut().filter(|s| s.1 == u64::MAX) {
            span.1 = pos.max(span.0);
        }
    }

    /// Clears what was placed in paused positions of the ring cells `[start, start + n)`, which
    /// hold positions from `self.written` on.
    fn silence_muted(&mut self, start: usize, n: usize) {
        let (lo, hi) = (self.written, self.written + n as u64);
        for &(from, to) in &self.muted {
            let (a, b) = (from.max(lo), to.min(hi));
            if a < b {
                for plane in &mut self.planes {
                    plane.clear(start + (a - lo) as usize, (b - a) as usize);
                }
            }
        }
        self.muted.retain(|&(_, to)| to > hi);
    }

    /// Sample rate of the recording (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.up.as_ref().map_or(8000, |up| up[0].rate())
    }

    /// Output samples per position.
    fn per_position(&self) -> u64 {
        u64::from(self.sample_rate() / 8000)
    }

    /// Frames written to the file so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Positions before this are closed to packets (written, or as far as writes of
    /// [`WriteSize::MIN`] would have written them).
    pub fn closed(&self) -> u64 {
        self.written.max(self.closed)
    }

    /// One past the last frame any packet reached.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Pages the planes hold now.
    #[cfg(test)]
    fn pages_held(&self) -> usize {
        self.planes.iter().map(|p| p.pages.iter().flatten().count() + usize::from(p.recent.is_some())).sum()
    }

    /// Starts loading the latest page of `channel`, whose `filled` bitmap placing codes there
    /// reads and writes, and the slot of the page after it, which placing reads when the codes
    /// cross into it (every third packet of 20 ms) (the timeline itself in the cache already:
    /// [`CallMix::warm`]).
    ///
    /// [`CallMix::warm`]: super::call::CallMix::warm
    #[inline]
    pub(crate) fn warm(&self, channel: usize) {
        let plane = &self.planes[channel];
        if let Some((k, page)) = &plane.recent {
            capture::prefetch::line(&page.filled);
            // The ring wraps: the page after the last is the first (no division on this path).
            let n = if k + 1 == plane.pages.len() { 0 } else { k + 1 };
            if let Some(next) = plane.pages.get(n) {
                capture::prefetch::line(next);
            }
        }
    }

    /// Places `payload` (G.711 codes in `law`, one byte per sample) on `channel` starting at
    /// frame `pos`. Forces out older frames if the packet reaches past the ring. `scratch` is
    /// reused for decoding when frames have to be written.
    #[inline]
    pub fn place(
        &mut self,
        channel: usize,
        pos: u64,
        payload: &[u8],
        law: Law,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        self.place_with(channel, pos, Codes::Bytes(payload), law, scratch)
    }

    /// Places decoded 16 kHz samples (two per position) on `channel` from frame `pos`.
    pub fn place_pcm(
        &mut self,
        channel: usize,
        pos: u64,
        samples: &[i16],
        law: Law,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        self.place_with(channel, pos, Codes::Pcm(samples), law, scratch)
    }

    /// Places decoded 48 kHz samples (six per position, [`Law::Opus48`]) on `channel` from
    /// position `pos`.
    pub fn place_pcm48(
        &mut self,
        channel: usize,
        pos: u64,
        samples: &[i16],
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        self.place_with(channel, pos, Codes::Pcm48(samples), Law::Opus48, scratch)
    }

    /// Places decoded 8 kHz `samples` (one per position, [`Law::Decoded8k`]) on `channel` from
    /// position `pos`, as [`Timeline::place`] does codes.
    pub fn place_pcm8(
        &mut self,
        channel: usize,
        pos: u64,
        samples: &[i16],
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        self.place_with(channel, pos, Codes::Pcm8(samples), Law::Decoded8k, scratch)
    }

    fn place_with(
        &mut self,
        channel: usize,
        pos: u64,
        payload: Codes<'_>,
        law: Law,
        scratch: &mut Vec<u8>,
    ) -> io::Result<Placed> {
        let n = payload.len() as u64;
        match self.planes[channel].law {
            Some(l) if l == law => {}
            Some(_) => {
                // A channel changing law mid-call (re-INVITE): write out what it has under the
                // old one first, up to its own last code (not the other channel's: its packets
                // for those positions may still be coming).
                let upto = self.planes[channel].filled_until(self.written, self.end, self.mask);
                if upto > self.written {
                    self.flush_to(upto, scratch)?;
                }
                self.planes[channel].law = Some(law);
            }
            None => self.planes[channel].law = Some(law),
        }
        if law.rate() > self.sample_rate() {
            self.raise(law.rate())?;
        }
        let closed = self.closed();
        if pos + n <= closed {
            return Ok(Placed { late_samples: n as u32 });
        }
        let skip = closed.saturating_sub(pos);
        let last = pos + n;
        if last > self.written + self.capacity() {
            self.flush_to(last - self.capacity(), scratch)?;
        }
        let cap = self.capacity();
        let plane = &mut self.planes[channel];
        let mut from = pos + skip;
        let mut codes = payload.skip(skip as usize);
        while codes.len() > 0 {
            let start = (from & self.mask) as usize;
            // A run ends at the wrap or its page's end.
            let run = codes.len().min((cap - start as u64) as usize).min(PAGE - start % PAGE);
            // Codes are stored and marked in one look-up of their page (the per-packet case);
            // decoded samples go to their own plane, and their positions are marked after.
            match codes {
                Codes::Bytes(b) => plane.store(start, &b[..run]),
                Codes::Pcm(s) => {
                    let pcm = plane.pcm_mut(cap as usize);
                    for (cell, pair) in pcm[start..start + run].iter_mut().zip(s.chunks_exact(2)) {
                        *cell = [pair[0], pair[1]];
                    }
                }
                Codes::Pcm8(s) => {
                    let pcm = plane.pcm_mut(cap as usize);
                    for (cell, &sample) in pcm[start..start + run].iter_mut().zip(s) {
                        *cell = [sample, 0];
                    }
                }
                Codes::Pcm48(s) => {
                    let pcm = plane.pcm6_mut(cap as usize);
                    for (cell, six) in pcm[start..start + run].iter_mut().zip(s.chunks_exact(6)) {
                        cell.copy_from_slice(six);
                    }
                }
            }
            if !matches!(codes, Codes::Bytes(_)) {
                plane.mark(start, run);
            }
            codes = codes.skip(run);
            from += run as u64;
        }
        if last > self.end {
            self.end = last;
        }
        Ok(Placed { late_samples: skip as u32 })
    }

    /// Declares every frame before `target` settled (no packet will be placed there any
    /// more). Settled positions close once there is a chunk of them for writes of
    /// [`WriteSize::MIN`], up to where such writes would end the file on a whole block
    /// (less than a block's worth stays open); closed positions are written once there is a
    /// chunk of them for writes of `write` (as far as the ring allows), up to where the file
    /// ends on a whole block of that size ([`AudioOut::whole_blocks`]).
    #[inline]
    pub fn settle(&mut self, target: u64, write: WriteSize, scratch: &mut Vec<u8>) -> io::Result<()> {
        self.settle_within(target, write, scratch, |_| true).map(|_| ())
    }

    /// [`Timeline::settle`], asking `room` first whether the bytes a write is about to add
    /// (at most) may go to disk; `Ok(false)`: it said no, and nothing was written.
    #[inline]
    pub fn settle_within(
        &mut self,
        target: u64,
        write: WriteSize,
        scratch: &mut Vec<u8>,
        room: impl FnOnce(u64) -> bool,
    ) -> io::Result<bool> {
        if write != self.write {
            self.write = write;
            self.writing = self.plan(write);
        }
        let settled = target.min(self.end);
        let fpp = self.per_position();
        let closed = self.closed();
        if settled >= closed + self.closing.chunk {
            let ahead = closed - self.written;
            self.closed = closed + self.out.whole_blocks(ahead, settled - closed, fpp, self.closing.block);
        }
        // Writes of the smallest size follow the closing as it comes (it ended the file on a
        // block); larger ones wait for their chunk.
        let closed = self.closed();
        let due = if self.writing == self.closing {
            closed > self.written
        } else {
            closed >= self.written + self.writing.chunk
        };
        if due {
            let upto = self.written + self.out.whole_blocks(0, closed - self.written, fpp, self.writing.block);
            if !room(self.bytes_at_most(upto - self.written)) {
                return Ok(false);
            }
            self.flush_to(upto, scratch)?;
        }
        Ok(true)
    }

    /// The most bytes writing `positions` adds to the files (16-bit stereo; stored codes take
    /// less).
    pub fn bytes_at_most(&self, positions: u64) -> u64 {
        positions * self.per_position() * 4
    }

    /// Moves the recording to `rate` (16 or 48 kHz): audio at that rate came. Nothing written
    /// yet: the file simply starts at `rate`; else what was written is rewritten through the
    /// interpolators (see [`AudioOut::raise`]), exactly as if the call had been recorded at
    /// `rate` from its start.
    fn raise(&mut self, rate: u32) -> io::Result<()> {
        self.out.stop_codes()?;
        let from = self.sample_rate();
        let mut up = match self.up.take() {
            Some(mut up) => {
                up.iter_mut().for_each(UpChannel::raise_to_48k);
                up
            }
            None => Box::new([UpChannel::new(rate), UpChannel::new(rate)]),
        };
        let done = if self.out.frames() == 0 { self.out.set_rate(rate) } else { self.out.raise(&mut up, from) };
        self.up = Some(up);
        self.replan();
        done
    }

    fn flush_to(&mut self, upto: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        let done = self.flush_as_stored(upto, scratch);
        // Written positions are closed (a write the ring forced, or a change of law).
        self.closed = self.closed.max(self.written);
        // The file may store audio differently from now on (codes started or stopped).
        self.replan();
        done
    }

    fn flush_as_stored(&mut self, upto: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        if self.up.is_some() {
            return self.flush_wide(upto, scratch);
        }
        if self.out.codes() != CodeState::Off {
            return self.flush_codes(upto, scratch);
        }
        self.flush_runs(upto, scratch, None)
    }

    /// Writes the positions up to `upto` run by run (runs end at the ring's wrap): decoded to
    /// 16-bit PCM, or with `idle` (the law's idle code) the codes as they are.
    fn flush_runs(&mut self, upto: u64, scratch: &mut Vec<u8>, idle: Option<u8>) -> io::Result<()> {
        while self.written < upto {
            let start = (self.written & self.mask) as usize;
            let n = (upto - self.written).min(self.capacity() - start as u64) as usize;
            if !self.muted.is_empty() {
                self.silence_muted(start, n);
            }
            for plane in &self.planes {
                plane.touch(start, n);
            }
            match idle {
                Some(idle) => {
                    scratch.clear();
                    scratch.resize(n * 2, idle);
                    for (ch, plane) in self.planes.iter_mut().enumerate() {
                        code_run(plane, start, n, ch, scratch);
                    }
                    self.out.write_codes(scratch)?;
                }
                None => {
                    let [a, b] = &mut self.planes;
                    if let (Some(la), Some(lb)) = (a.g711(), b.g711()) {
                        // Every frame is written, both channels at once: no zeroing first.
                        if scratch.len() < n * FRAME {
                            scratch.resize(n * FRAME, 0);
                        }
                        decode_pair(a, b, [la, lb], start, n, &mut scratch[..n * FRAME]);
                        self.out.write_stereo(&scratch[..n * FRAME])?;
                    } else {
                        scratch.clear();
                        scratch.resize(n * FRAME, 0);
                        for (ch, plane) in self.planes.iter_mut().enumerate() {
                            decode_run(plane, start, n, ch, scratch);
                        }
                        self.out.write_stereo(scratch)?;
                    }
                }
            }
            self.advance(start, n);
        }
        Ok(())
    }

    /// The law both channels' codes are in, if the file(s) can hold them as they are: G.711,
    /// one law (a channel without audio yet takes any).
    fn one_law(&self) -> Option<Encoding> {
        let mut one = None;
        for plane in &self.planes {
            let law = match plane.law {
                None => continue,
                Some(Law::Ulaw) => Encoding::Ulaw,
                Some(Law::Alaw) => Encoding::Alaw,
                Some(_) => return None,
            };
            if one.is_some_and(|l| l != law) {
                return None;
            }
            one = Some(law);
        }
        one
    }

    /// [`Timeline::flush_to`] for file(s) that hold G.711 codes: each channel's codes are
    /// copied as they are, a position without audio gets the law's idle code. Audio the file
    /// cannot hold exactly turns it into PCM first ([`AudioOut::stop_codes`]).
    fn flush_codes(&mut self, upto: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        match (self.one_law(), self.out.codes()) {
            (Some(law), CodeState::Open) => self.out.start_codes(law)?,
            (Some(law), CodeState::Law(l)) if l == law => {}
            _ => {
                self.out.stop_codes()?;
                return self.flush_to(upto, scratch);
            }
        }
        let idle = if self.out.encoding() == Encoding::Alaw { ALAW_IDLE } else { ULAW_IDLE };
        self.flush_runs(upto, scratch, Some(idle))
    }

    /// [`Timeline::flush_to`] for a 16 or 48 kHz recording: every position goes through its
    /// channel's [`UpChannel`], which hands back the samples (two or six) of the position
    /// [`UpChannel::delay`] before it.
    fn flush_wide(&mut self, upto: u64, scratch: &mut Vec<u8>) -> io::Result<()> {
        while self.written < upto {
            let start = (self.written & self.mask) as usize;
            let n = (upto - self.written).min(self.capacity() - start as u64) as usize;
            if !self.muted.is_empty() {
                self.silence_muted(start, n);
            }
            let cells = |plane: &mut Plane, k: usize| -> Cell {
                let cell = start + k;
                if !plane.take_filled(cell) {
                    return Cell::Empty;
                }
                let code = plane.code(cell);
                match plane.law {
                    Some(Law::G722) => Cell::G722(code),
                    Some(Law::Opus) => plane.pcm().map_or(Cell::Empty, |p| Cell::Pair(p[cell])),
                    Some(Law::Opus48) => plane.pcm6().map_or(Cell::Empty, |p| Cell::Six(p[cell])),
                    Some(Law::Decoded8k) => plane.pcm().map_or(Cell::Empty, |p| Cell::Narrow(p[cell][0])),
                    Some(law) => law.table().map_or(Cell::Empty, |t| Cell::Narrow(t[code as usize])),
                    None => Cell::Empty,
                }
            };
            scratch.clear();
            let up = self.up.as_mut().expect("a 16 or 48 kHz timeline");
            for k in 0..n {
                let a = up[0].push(cells(&mut self.planes[0], k));
                let b = up[1].push(cells(&mut self.planes[1], k));
                interleave(a, b, scratch);
            }
            self.out.write_stereo(scratch)?;
            self.advance(start, n);
        }
        Ok(())
    }

    /// Ring cells `[start, start + n)` (no wrap) are written: the pages written to their end
    /// are given back, unless the ring is full and one already holds positions of its next lap.
    fn advance(&mut self, start: usize, n: usize) {
        // The position of the first cell of `start`'s page.
        let first = self.written - (start % PAGE) as u64;
        self.written += n as u64;
        for k in start / PAGE..(start + n) / PAGE {
            let from = first + ((k - start / PAGE) * PAGE) as u64;
            if self.end <= from + self.capacity() {
                for plane in &mut self.planes {
                    plane.release(k);
                }
            }
        }
    }

    /// The last positions a 16 or 48 kHz recording's interpolators still hold.
    fn flush_wide_tail(&mut self, scratch: &mut Vec<u8>) -> io::Result<()> {
        let Some(up) = self.up.as_mut() else { return Ok(()) };
        scratch.clear();
        let delay = up[0].delay();
        for _ in 0..delay {
            let a = up[0].push(Cell::Empty);
            let b = up[1].push(Cell::Empty);
            interleave(a, b, scratch);
        }
        // Pushing positions past the end lets out exactly the ones still held.
        let behind = (self.written as usize).min(delay);
        scratch.truncate(behind * self.per_position() as usize * FRAME);
        self.out.write_stereo(scratch)
    }

    /// Writes everything up to the last placed sample, patches the header(s) and returns the
    /// file(s) (not yet fsynced) with the frame count.
    pub fn finish(mut self, scratch: &mut Vec<u8>) -> io::Result<Finished> {
        let done = self.flush_to(self.end, scratch).and_then(|()| self.flush_wide_tail(scratch));
        if let Err(e) = done {
            return self.finish_partial().map(|f| Finished { cut: Some(e), ..f });
        }
        let frames = self.written * self.per_position();
        let (sample_rate, encoding) = (self.sample_rate(), self.out.encoding());
        Ok(Finished { files: self.out.finish()?, frames, sample_rate, encoding, cut: None })
    }

    /// After a write failed (a full disk): keeps what the file(s) already hold, writes
    /// nothing more, and returns them with the frames they hold.
    pub fn finish_partial(self) -> io::Result<Finished> {
        let (sample_rate, encoding) = (self.sample_rate(), self.out.encoding());
        let (files, frames) = self.out.finish_partial()?;
        Ok(Finished { files, frames, sample_rate, encoding, cut: None })
    }
}

/// Appends the stereo frames of one position as two channels let it out (both or neither: they
/// are pushed alike).
#[inline]
fn interleave(a: Option<Samples>, b: Option<Samples>, out: &mut Vec<u8>) {
    if let (Some(a), Some(b)) = (a, b) {
        for (x, y) in a.as_slice().iter().zip(b.as_slice()) {
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        }
    }
}

/// The audio file(s) of a finished timeline.
#[derive(Debug)]
pub struct Finished {
    /// The file(s), headers patched, not yet fsynced.
    pub files: Vec<(PathBuf, AudioFile)>,
    /// Frames in each file.
    pub frames: u64,
    /// Their sample rate (Hz).
    pub sample_rate: u32,
    /// How their samples are stored.
    pub encoding: Encoding,
    /// The write error that cut the audio short while finishing, if any.
    pub cut: Option<io::Error>,
}

/// Decodes ring cells `[start, start + n)` of `plane` into channel `ch` of the interleaved
/// `out` (which is zero), and clears their filled bits.
fn decode_run(plane: &mut Plane, start: usize, n: usize, ch: usize, out: &mut [u8]) {
    if plane.law == Some(Law::Decoded8k) {
        return copy_run(plane, start, n, ch, out);
    }
    let Some(table) = plane.law.and_then(Law::table) else { return };
    // Page by page; positions without a page are silence.
    for (p, k, at, in_page) in page_runs(start, n) {
        if let Some(page) = plane.slot_mut(k) {
            decode_page(page, at, in_page, table, ch, &mut out[p * FRAME..]);
        }
    }
}

/// Ring cells `[start, start + n)` page by page: (offset in the run, page, first cell in the
/// page, cells).
fn page_runs(start: usize, n: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut p = 0;
    std::iter::from_fn(move || {
        (p < n).then(|| {
            let cell = start + p;
            let in_page = (PAGE - cell % PAGE).min(n - p);
            let run = (p, cell / PAGE, cell % PAGE, in_page);
            p += in_page;
            run
        })
    })
}

/// [`decode_run`] of both channels at once, when both are G.711 (or have no audio yet): each
/// frame is written once, whole, instead of each channel's half in a pass of its own over
/// frames zeroed first.
fn decode_pair(a: &mut Plane, b: &mut Plane, laws: [Expand; 2], start: usize, n: usize, out: &mut [u8]) {
    for (p, k, at, in_page) in page_runs(start, n) {
        let frames = &mut out[p * FRAME..(p + in_page) * FRAME];
        decode_pair_page([a.slot_mut(k), b.slot_mut(k)], laws, at, frames);
    }
}

/// [`decode_pair`] within one page: cells `[start, start + frames / FRAME)`; a channel without
/// the page, or a cell not filled, is silence. Runs where both channels are filled go eight
/// frames at a time through [`g711_avx2`] (the tables do what it leaves).
fn decode_pair_page(mut pages: [Option<&mut Page>; 2], laws: [Expand; 2], start: usize, out: &mut [u8]) {
    let (frames, _) = out.as_chunks_mut::<FRAME>();
    let n = frames.len();
    let [ta, tb] = laws.map(Expand::table);
    for Span { i, cell, word, bit, take, mask } in spans(start, n) {
        let present = pages.each_ref().map(|p| p.as_ref().map_or(0, |p| (p.filled[word] >> bit) & mask));
        let codes = pages.each_ref().map(|p| p.as_ref().map_or(&[][..], |p| &p.codes[cell..cell + take]));
        let frames = &mut frames[i..i + take];
        if present == [mask, mask] {
            let done = g711_avx2::decode_pairs(laws, codes[0], codes[1], frames);
            for ((frame, &ca), &cb) in frames[done..].iter_mut().zip(&codes[0][done..]).zip(&codes[1][done..]) {
                let [a0, a1] = ta[ca as usize].to_le_bytes();
                let [b0, b1] = tb[cb as usize].to_le_bytes();
                *frame = [a0, a1, b0, b1];
            }
        } else {
            for (k, frame) in frames.iter_mut().enumerate() {
                let sample = |ch: usize, table: &[i16; 256]| {
                    if present[ch] >> k & 1 != 0 { table[codes[ch][k] as usize] } else { 0 }
                };
                let [a0, a1] = sample(0, ta).to_le_bytes();
                let [b0, b1] = sample(1, tb).to_le_bytes();
                *frame = [a0, a1, b0, b1];
            }
        }
        for (page, present) in pages.iter_mut().zip(present) {
            if let Some(page) = page
                && present != 0
            {
                page.filled[word] &= !(mask << bit);
            }
        }
    }
}

/// [`decode_run`] within one page: cells `[start, start + n)` of `page`.
fn decode_page(page: &mut Page, start: usize, n: usize, table: &[i16; 256], ch: usize, out: &mut [u8]) {
    debug_assert!(ch < 2, "stereo frames");
    // The channel as a constant: each sample is then one two-byte store at a fixed place in
    // its frame, without a bounds check (this loop writes every sample of the recording).
    if ch == 0 {
        decode_page_into::<0>(page, start, n, table, out);
    } else {
        decode_page_into::<1>(page, start, n, table, out);
    }
}

/// [`decode_page`] into channel `CH`.
fn decode_page_into<const CH: usize>(page: &mut Page, start: usize, n: usize, table: &[i16; 256], out: &mut [u8]) {
    for Span { i, cell, word, bit, take, mask } in spans(start, n) {
        let present = page.filled[word] >> bit & mask;
        if present != 0 {
            let codes = &page.codes[cell..cell + take];
            let (frames, _) = out[i * FRAME..(i + take) * FRAME].as_chunks_mut::<FRAME>();
            if present == mask {
                for (frame, &code) in frames.iter_mut().zip(codes) {
                    frame[CH * 2..CH * 2 + 2].copy_from_slice(&table[code as usize].to_le_bytes());
                }
            } else {
                for (k, (frame, &code)) in frames.iter_mut().zip(codes).enumerate() {
                    if present >> k & 1 != 0 {
                        frame[CH * 2..CH * 2 + 2].copy_from_slice(&table[code as usize].to_le_bytes());
                    }
                }
            }
            page.filled[word] &= !(mask << bit);
        }
    }
}

/// µ-law's code for 0.
const ULAW_IDLE: u8 = 0xff;
/// A-law's code nearest 0 (+8: A-law has no zero), its idle pattern on a line.
const ALAW_IDLE: u8 = 0xd5;

/// [`decode_run`] for file(s) holding codes: copies the codes of ring cells `[start, start +
/// n)` of `plane` into channel `ch` of the interleaved two-byte frames `out` (which holds the
/// idle code), and clears their filled bits.
fn code_run(plane: &mut Plane, start: usize, n: usize, ch: usize, out: &mut [u8]) {
    // Page by page; positions without a page keep the idle code.
    for (p, k, at, in_page) in page_runs(start, n) {
        if let Some(page) = plane.slot_mut(k) {
            code_page(page, at, in_page, ch, &mut out[p * 2..]);
        }
    }
}

/// [`code_run`] within one page: cells `[start, start + n)` of `page`.
fn code_page(page: &mut Page, start: usize, n: usize, ch: usize, out: &mut [u8]) {
    for Span { i, cell, word, bit, take, mask } in spans(start, n) {
        let present = page.filled[word] >> bit & mask;
        if present != 0 {
            let codes = &page.codes[cell..cell + take];
            let frames = &mut out[i * 2..(i + take) * 2];
            if present == mask {
                for (frame, &code) in frames.chunks_exact_mut(2).zip(codes) {
                    frame[ch] = code;
                }
            } else {
                for (k, (frame, &code)) in frames.chunks_exact_mut(2).zip(codes).enumerate() {
                    if present >> k & 1 != 0 {
                        frame[ch] = code;
                    }
                }
            }
            page.filled[word] &= !(mask << bit);
        }
    }
}

/// A stretch of a page's cells within one word of its `filled` bitmap.
struct Span {
    /// Offset of its first cell in the run.
    i: usize,
    /// Its first cell in the page.
    cell: usize,
    /// The bitmap word, and the first cell's bit in it.
    word: usize,
    bit: usize,
    /// Cells in it, and their bits (shifted down to bit 0).
    take: usize,
    mask: u64,
}

/// Cells `[start, start + n)` of a page, word by word of its bitmap.
fn spans(start: usize, n: usize) -> impl Iterator<Item = Span> {
    let mut i = 0;
    std::iter::from_fn(move || {
        (i < n).then(|| {
            let cell = start + i;
            let (word, bit) = (cell / 64, cell % 64);
            let take = (64 - bit).min(n - i);
            let mask = if take == 64 { u64::MAX } else { (1u64 << take) - 1 };
            let span = Span { i, cell, word, bit, take, mask };
            i += take;
            span
        })
    })
}

/// [`decode_run`] for samples decoded already ([`Law::Decoded8k`]).
fn copy_run(plane: &mut Plane, start: usize, n: usize, ch: usize, out: &mut [u8]) {
    for (k, frame) in out[..n * FRAME].chunks_exact_mut(FRAME).enumerate() {
        let cell = start + k;
        if plane.take_filled(cell)
            && let Some(pcm) = plane.pcm()
        {
            frame[ch * 2..ch * 2 + 2].copy_from_slice(&pcm[cell][0].to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(path: &Path) -> Vec<[i16; 2]> {
        let mut r = hound::WavReader::open(path).unwrap();
        let s: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        s.chunks(2).map(|c| [c[0], c[1]]).collect()
    }

    fn mono_samples(path: &Path) -> Vec<i16> {
        hound::WavReader::open(path).unwrap().samples::<i16>().map(Result::unwrap).collect()
    }

    fn cfg() -> TimelineConfig {
        TimelineConfig { ring_frames: 1024, reorder_frames: 160, max_hold_frames: 160 }
    }

    proptest::proptest! {
        /// Both channels' G.711 (µ-law on one, A-law on the other) with random packet lengths
        /// and gaps: every position is its own channel's decoded code, or 0 where that party
        /// sent nothing, whether both, one or neither filled the positions around it.
        #[test]
        fn both_channels_decode_to_each_partys_samples(
            parts in proptest::collection::vec((0usize..2, 0u64..90, 1usize..200, proptest::prelude::any::<u8>()), 1..60)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.wav");
            let mut s = Vec::new();
            let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
            let laws = [Law::Ulaw, Law::Alaw];
            let mut next = [0u64; 2];
            let mut want: Vec<[i16; 2]> = Vec::new();
            for (ch, gap, len, seed) in parts {
                let pos = next[ch] + gap;
                let codes: Vec<u8> = (0..len).map(|k| seed.wrapping_add((k * 37) as u8)).collect();
                // Positions written out already (the other party ran a ring ahead) are late.
                let late = t.place(ch, pos, &codes, laws[ch], &mut s).unwrap().late_samples as usize;
                let end = (pos + len as u64) as usize;
                if want.len() < end {
                    want.resize(end, [0, 0]);
                }
                for (k, &c) in codes.iter().enumerate().skip(late) {
                    want[pos as usize + k][ch] = laws[ch].table().unwrap()[c as usize];
                }
                next[ch] = pos + len as u64;
                // The other party keeps pace now and then, so positions settle with both, one
                // or none filled.
                t.settle(next[0].min(next[1]), WriteSize::MIN, &mut s).unwrap();
            }
            t.finish(&mut s).unwrap();
            proptest::prop_assert_eq!(samples(&p), want);
        }
    }

    #[test]
    fn out_of_order_gaps_and_late_packets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        let a = [0xefu8; 160]; // µ-law 132
        let b = [0xfeu8; 160]; // µ-law 8
        // Channel 0: packets 0, 2, 1 (reordered); channel 1: packet 1 only.
        t.place(0, 0, &a, Law::Ulaw, &mut s).unwrap();
        t.place(0, 320, &a, Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &b, Law::Ulaw, &mut s).unwrap();
        t.place(1, 160, &b, Law::Ulaw, &mut s).unwrap();
        // Far ahead: forces older frames out; then a packet for an already written position.
        t.place(0, 5000, &a, Law::Ulaw, &mut s).unwrap();
        assert!(t.written() >= 5160 - 1024);
        let late = t.place(1, 480, &b, Law::Ulaw, &mut s).unwrap();
        assert_eq!(late.late_samples, 160);
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 5160);
        let s = samples(&p);
        assert_eq!(s.len(), 5160);
        assert_eq!(s[0], [132, 0]);
        assert_eq!(s[159], [132, 0]);
        assert_eq!(s[160], [8, 8]);
        assert_eq!(s[319], [8, 8]);
        assert_eq!(s[320], [132, 0]);
        assert_eq!(s[480], [0, 0]);
        assert_eq!(s[4999], [0, 0]);
        assert_eq!(s[5000], [132, 0]);
    }

    #[test]
    fn unaligned_packets_partial_words_and_a_law_silence_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        // A-law idle code decodes to +8; gaps must still be exact zeros.
        t.place(0, 3, &[0xd5; 7], Law::Alaw, &mut s).unwrap();
        t.place(1, 61, &[0x2a; 10], Law::Alaw, &mut s).unwrap(); // crosses a 64-bit word
        t.place(0, 1020, &[0xd5; 10], Law::Alaw, &mut s).unwrap(); // wraps the ring
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 1030);
        let s = samples(&p);
        assert_eq!(s[0..3], [[0, 0]; 3]);
        assert_eq!(s[3..10], [[8, 0]; 7]);
        assert_eq!(s[10], [0, 0]);
        assert_eq!(s[60], [0, 0]);
        assert_eq!(s[61..71], [[0, -32256]; 10]);
        assert_eq!(s[71], [0, 0]);
        assert_eq!(s[1019], [0, 0]);
        assert_eq!(s[1020..1030], [[8, 0]; 10]);
    }

    #[test]
    fn law_change_with_a_late_packet_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        t.place(0, 0, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        // The law changes with a packet whose place the forced write-out passes.
        let late = t.place(0, 100, &[0xaa; 160], Law::Alaw, &mut s).unwrap();
        assert_eq!(late.late_samples, 160);
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 320);
    }

    #[test]
    fn law_change_is_not_forced_past_by_the_other_channel() {
        // The other channel is a packet ahead when this one changes law: the first packet of
        // the new law is placed, not written over as silence.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        t.place(0, 0, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        t.place(1, 0, &[0xef; 320], Law::Ulaw, &mut s).unwrap();
        let placed = t.place(0, 160, &[0xaa; 160], Law::Alaw, &mut s).unwrap();
        assert_eq!(placed.late_samples, 0);
        assert_eq!(t.finish(&mut s).unwrap().frames, 320);
        let s = samples(&p);
        assert_eq!((s[159], s[160], s[319]), ([132, 132], [32256, 132], [32256, 132]));
    }

    #[test]
    fn law_change_mid_call() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        t.place(0, 0, &[0xef; 160], Law::Ulaw, &mut s).unwrap();
        t.place(0, 160, &[0xaa; 160], Law::Alaw, &mut s).unwrap();
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 320);
        let s = samples(&p);
        assert_eq!(s[159], [132, 0]);
        assert_eq!(s[160], [32256, 0]);
    }

    #[test]
    fn writes_only_settled_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut s = Vec::new();
        let mut t = Timeline::create(&p, cfg(), AudioConfig::default(), 8000).unwrap();
        let a = [0xefu8; 160];
        for k in 0..20u64 {
            t.place(0, k * 160, &a, Law::Ulaw, &mut s).unwrap();
            t.settle(k * 160, WriteSize::MIN, &mut s).unwrap();
            assert!(t.written() <= k * 160, "never writes what is not settled");
        }
        assert!(t.written() > 0, "a chunk was written");
        let frames = t.finish(&mut s).unwrap().frames;
        assert_eq!(frames, 3200);
        assert!(samples(&p).iter().all(|f| *f == [132, 0]));
    }

    /// Audio is written in chunks of the write size asked, so that the file ends on a whole
    /// block after every write in the call (16-bit PCM, stereo, and G.711 codes as captured:
    /// half the bytes, so the ring's bound makes their largest writes smaller), and the last
    /// write at the end of the call puts in what is left: every sample, in order. A write size
    /// that changes during the call (calls come and go in the mixer) changes the writes from
    /// then on.
    #[test]
    fn writes_end_on_whole_blocks_of_the_write_size() {
        use crate::mix::audio::AudioFormat;
        let small = WriteSize::MIN;
        let large = WriteSize::MAX;
        // (format, write size in the first half, in the second, the block each half ends on)
        let cases = [
            (AudioFormat::Wav, small, small, [8 << 10, 8 << 10]),
            (AudioFormat::Wav, large, large, [64 << 10, 64 << 10]),
            (AudioFormat::Wav, large, small, [64 << 10, 8 << 10]),
            (AudioFormat::Wav, small, large, [8 << 10, 64 << 10]),
            (AudioFormat::WavG711, small, small, [8 << 10, 8 << 10]),
            (AudioFormat::WavG711, large, large, [32 << 10, 32 << 10]),
        ];
        const PACKETS: u64 = 2000;
        for (format, first, second, blocks) in cases {
            let case = format!("{format:?} {first:?} then {second:?}");
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.wav");
            let mut s = Vec::new();
            let audio = AudioConfig { format, ..AudioConfig::default() };
            let mut t = Timeline::create(&p, TimelineConfig::default(), audio, 8000).unwrap();
            let code = |ch: u64, k: u64, i: u64| ((k * 131 + i * 7 + ch * 59) % 251) as u8;
            // The header is there from the start.
            let (mut writes, mut last_len) = ([0, 0], std::fs::metadata(&p).unwrap().len());
            for k in 0..PACKETS {
                for ch in 0..2 {
                    let codes: Vec<u8> = (0..160).map(|i| code(ch, k, i)).collect();
                    t.place(ch as usize, k * 160, &codes, Law::Ulaw, &mut s).unwrap();
                }
                let half = usize::from(k >= PACKETS / 2);
                let write = if half == 0 { first } else { second };
                t.settle((k * 160).saturating_sub(1280), write, &mut s).unwrap();
                let len = std::fs::metadata(&p).unwrap().len();
                if len > last_len {
                    assert_eq!(len % blocks[half], 0, "{case}: the file ends at {len} after a write");
                    // (the first write in a half may be shorter: it brings the file to the
                    // half's block)
                    if writes[half] > 0 {
                        assert!(len - last_len >= blocks[half] / 2, "{case}: a write of {} bytes", len - last_len);
                    }
                    writes[half] += 1;
                    last_len = len;
                }
            }
            // 20 s of audio a half: 160 KB of codes or 320 KB of PCM.
            for (half, n) in writes.iter().enumerate() {
                let least = 320_000 / (if format == AudioFormat::Wav { 1 } else { 2 }) / blocks[half] - 2;
                assert!(*n >= least, "{case}: {n} writes in half {half}, at least {least} expected");
            }
            let done = t.finish(&mut s).unwrap();
            assert_eq!(done.frames, PACKETS * 160);
            let want = |pos: usize| {
                let (k, i) = (pos as u64 / 160, pos as u64 % 160);
                [code(0, k, i), code(1, k, i)]
            };
            if done.encoding == Encoding::Ulaw {
                let data = std::fs::read(&p).unwrap();
                for (pos, frame) in data[58..].chunks(2).enumerate() {
                    assert_eq!(frame, want(pos), "{case}: frame {pos}");
                }
            } else {
                for (pos, frame) in samples(&p).iter().enumerate() {
                    assert_eq!(*frame, want(pos).map(ulaw), "{case}: frame {pos}");
                }
            }
        }
    }

    /// What a mixer's calls write at once: the budget shared, within its bounds.
    #[test]
    fn write_size_shares_the_budget_among_calls() {
        assert_eq!(WriteSize::for_calls(0), WriteSize::MAX);
        assert_eq!(WriteSize::for_calls(1024), WriteSize::MAX);
        assert_eq!(WriteSize::for_calls(2048).bytes(), 32 << 10);
        assert_eq!(WriteSize::for_calls(8192), WriteSize::MIN);
        assert_eq!(WriteSize::for_calls(100_000), WriteSize::MIN);
    }

    /// Wideband codes after narrowband audio was written: the file is rewritten at 16 kHz and
    /// comes out exactly as a recording made at 16 kHz from the start (WAV stereo and split).
    #[test]
    fn wideband_codes_after_written_audio_rewrite_the_file_as_if_wide_from_the_start() {
        for layout in [crate::mix::audio::AudioLayout::Stereo, crate::mix::audio::AudioLayout::Split] {
            let audio = AudioConfig { layout, ..AudioConfig::default() };
            let dir = tempfile::tempdir().unwrap();
            let play = |t: &mut Timeline, s: &mut Vec<u8>| play_then(t, s, Law::G722);
            let b = raised_as_if_from_the_start(dir.path(), audio, 8000, 16000, play);
            assert_eq!(b.frames, 2 * 40 * 160);
        }
    }

    /// Plays `play` on a timeline created at `from` (which it must raise to `to`) and on one
    /// created at `to`: both leave the same file(s) and no temporary one. Returns the second's.
    fn raised_as_if_from_the_start(
        dir: &Path,
        audio: AudioConfig,
        from: u32,
        to: u32,
        play: impl Fn(&mut Timeline, &mut Vec<u8>),
    ) -> Finished {
        let mut s = Vec::new();
        let mut t = Timeline::create(&dir.join("raised.wav"), cfg(), audio, from).unwrap();
        play(&mut t, &mut s);
        assert_eq!(t.sample_rate(), to);
        let a = t.finish(&mut s).unwrap();
        let mut t = Timeline::create(&dir.join("started.wav"), cfg(), audio, to).unwrap();
        play(&mut t, &mut s);
        let b = t.finish(&mut s).unwrap();
        assert_eq!((a.frames, a.sample_rate), (b.frames, b.sample_rate));
        for ((pa, _), (pb, _)) in a.files.iter().zip(&b.files) {
            assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap(), "{:?} {from} Hz", audio.layout);
        }
        assert_no_tmp(dir);
        b
    }

    /// Opus at 48 kHz after 8 kHz or 16 kHz audio was written: the file is rewritten at 48 kHz
    /// and comes out exactly as a recording made at 48 kHz from the start (WAV stereo and
    /// split); the 48 kHz samples are in it as placed.
    #[test]
    fn audio_at_48k_after_written_audio_rewrites_the_file_as_if_at_48k_from_the_start() {
        let six: Vec<i16> = (0..960).map(|j| (j * 37 % 4000) as i16 - 2000).collect();
        for layout in [crate::mix::audio::AudioLayout::Stereo, crate::mix::audio::AudioLayout::Split] {
            for first in [Law::Ulaw, Law::G722] {
                let audio = AudioConfig { layout, ..AudioConfig::default() };
                let dir = tempfile::tempdir().unwrap();
                let play = |t: &mut Timeline, s: &mut Vec<u8>| {
                    let tone: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
                    for k in 0..30u64 {
                        t.place(0, k * 160, &tone, first, s).unwrap();
                        t.settle(k * 160, WriteSize::MIN, s).unwrap();
                    }
                    assert!(t.written() > 0);
                    for k in 30..40u64 {
                        t.place(0, k * 160, &tone, first, s).unwrap();
                        t.place_pcm48(1, k * 160, &six, s).unwrap();
                    }
                };
                let b = raised_as_if_from_the_start(dir.path(), audio, first.rate(), 48000, play);
                assert_eq!(b.frames, 6 * 40 * 160);
                // The callee's Opus samples, exactly where they were placed.
                let callee: Vec<i16> = if layout == crate::mix::audio::AudioLayout::Stereo {
                    samples(&b.files[0].0).iter().map(|f| f[1]).collect()
                } else {
                    mono_samples(&b.files[1].0)
                };
                for k in 30..40usize {
                    assert_eq!(callee[k * 960..(k + 1) * 960], six[..], "{layout:?} {first:?} packet {k}");
                }
                assert!(callee[..30 * 960].iter().all(|&x| x == 0));
            }
        }
    }

    /// A 400 ms µ-law tone on channel 0, the first 300 ms settled (and written) before channel
    /// 1 joins in `law` for the last 100 ms.
    fn play_then(t: &mut Timeline, s: &mut Vec<u8>, law: Law) {
        let tone: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
        for k in 0..30u64 {
            t.place(0, k * 160, &tone, Law::Ulaw, s).unwrap();
            t.settle(k * 160, WriteSize::MIN, s).unwrap();
        }
        assert!(t.written() > 0);
        for k in 30..40u64 {
            t.place(0, k * 160, &tone, Law::Ulaw, s).unwrap();
            t.place(1, k * 160, &tone, law, s).unwrap();
        }
    }

    /// No rewrite left a temporary file behind.
    fn assert_no_tmp(dir: &Path) {
        let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")), "{names:?}");
    }

    /// `wav-g711`: codes of one law are stored as they are; when the other law or a wideband
    /// codec comes after codes were written, the file(s) become exactly the 16-bit recording.
    #[test]
    fn g711_files_hold_the_codes_until_audio_they_cannot_hold_comes() {
        use crate::mix::audio::{AudioFormat, AudioLayout};
        let tone: Vec<u8> = (0..160u32).map(|i| (i * 7 % 256) as u8).collect();
        for layout in [AudioLayout::Stereo, AudioLayout::Split] {
            for then in [None, Some(Law::Alaw), Some(Law::G722)] {
                let ctx = format!("{layout:?}, then {then:?}");
                let play = |t: &mut Timeline, s: &mut Vec<u8>| play_then(t, s, then.unwrap_or(Law::Ulaw));
                let dir = tempfile::tempdir().unwrap();
                let mut s = Vec::new();
                let codes = AudioConfig { format: AudioFormat::WavG711, layout, ..AudioConfig::default() };
                let mut t = Timeline::create(&dir.path().join("g.wav"), cfg(), codes, 8000).unwrap();
                play(&mut t, &mut s);
                let a = t.finish(&mut s).unwrap();
                let pcm = AudioConfig { format: AudioFormat::Wav, layout, ..AudioConfig::default() };
                let mut t = Timeline::create(&dir.path().join("p.wav"), cfg(), pcm, 8000).unwrap();
                play(&mut t, &mut s);
                let b = t.finish(&mut s).unwrap();
                assert_eq!((a.frames, a.sample_rate), (b.frames, b.sample_rate), "{ctx}");
                if then.is_some() {
                    assert_eq!(a.encoding, Encoding::Pcm16, "{ctx}");
                    for ((pa, _), (pb, _)) in a.files.iter().zip(&b.files) {
                        assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap(), "{ctx}");
                    }
                    continue;
                }
                assert_eq!(a.encoding, Encoding::Ulaw, "{ctx}");
                let mut want = vec![Vec::new(), Vec::new()];
                for k in 0..40 {
                    want[0].extend_from_slice(&tone);
                    want[1].extend(if k < 30 { vec![ULAW_IDLE; 160] } else { tone.clone() });
                }
                let data: Vec<Vec<u8>> =
                    a.files.iter().map(|(p, _)| std::fs::read(p).unwrap()[58..].to_vec()).collect();
                if layout == AudioLayout::Split {
                    assert_eq!(data, want, "{ctx}");
                } else {
                    let stereo: Vec<u8> = want[0].iter().zip(&want[1]).flat_map(|(x, y)| [*x, *y]).collect();
                    assert_eq!(data, vec![stereo], "{ctx}");
                }
                assert_no_tmp(dir.path());
            }
        }
    }

    /// µ-law expansion as G.711 defines it, written out here rather than taken from the
    /// recorder's table.
    fn ulaw(code: u8) -> i16 {
        let u = !code;
        let t = ((i16::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
        if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }
    }

    /// Two parties at the default sizes, packets reordered within the reorder window, then
    /// the second party held up 600 ms (its packets come in a burst), settled as the mixer
    /// settles: every sample comes out as placed, across many laps of the ring and pages
    /// given back and taken again; in pace a call holds only the pages of the positions in
    /// flight, held up more, and finishing gives them all back.
    #[test]
    fn paged_ring_across_laps_reorder_and_a_held_up_party() {
        for write in [WriteSize::MIN, WriteSize::MAX] {
            paged_ring_with(write);
        }
    }

    fn paged_ring_with(write: WriteSize) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let cfg = TimelineConfig::default();
        let (reorder, hold) = (u64::from(cfg.reorder_frames), u64::from(cfg.hold()));
        let mut t = Timeline::create(&p, cfg, AudioConfig::default(), 8000).unwrap();
        let mut s = Vec::new();
        const PACKETS: u64 = 1700; // 34 s: 8 laps of the ring
        let code = |ch: u64, k: u64, i: u64| ((k * 131 + i * 7 + ch * 59) % 251) as u8;
        // Arrival order: packet k of each channel, every third pair swapped (reordering);
        // channel 1's packets 230..260 come in a burst after channel 0's packet 258 (580 ms late at
        // most).
        let mut arrivals: Vec<(u64, u64)> = Vec::new();
        for k in 0..PACKETS {
            let ks = if k % 3 == 1 && k + 1 < PACKETS {
                k + 1
            } else if k % 3 == 2 {
                k - 1
            } else {
                k
            };
            if k == 259 {
                arrivals.extend((230..260).map(|k| (1, k)));
            }
            arrivals.push((0, ks));
            if !(230..260).contains(&ks) {
                arrivals.push((1, ks));
            }
        }
        let mut high = [0u64; 2];
        let (mut in_pace_max, mut held_up_max) = (0, 0);
        // Positions the ring keeps (placed or waiting, not yet written).
        let (mut in_pace_span, mut held_up_span) = (0, 0);
        for &(ch, k) in &arrivals {
            let codes: Vec<u8> = (0..160).map(|i| code(ch, k, i)).collect();
            let placed = t.place(ch as usize, k * 160, &codes, Law::Ulaw, &mut s).unwrap();
            assert_eq!(placed.late_samples, 0, "packet {k} of channel {ch}");
            high[ch as usize] = high[ch as usize].max(k * 160 + 160);
            let (lo, hi) = (high[0].min(high[1]), high[0].max(high[1]));
            let target = lo.saturating_sub(reorder).max(hi.saturating_sub(hold));
            t.settle(target, write, &mut s).unwrap();
            assert!(t.end() - t.written() <= t.capacity());
            if hi - lo <= 320 {
                in_pace_max = in_pace_max.max(t.pages_held());
                in_pace_span = in_pace_span.max(t.end() - t.written());
            } else {
                held_up_max = held_up_max.max(t.pages_held());
                held_up_span = held_up_span.max(t.end() - t.written());
            }
        }
        // In pace: the reorder window, a chunk and less than a block's worth (at 4 bytes a
        // frame) settled and not yet closed, the same of the write size closed and not yet
        // written, and a packet or two, in each plane.
        let (closing, writing) = (t.closing, t.writing);
        let in_flight = reorder + closing.chunk + closing.block / 4 + writing.chunk + writing.block / 4 + 320;
        let bound = 2 * (in_flight as usize).div_ceil(PAGE) + 2;
        assert!(in_pace_max <= bound, "{write:?}: {in_pace_max} pages held in pace, at most {bound} expected");
        // Held up: up to the hold instead of the reorder window; with small writes the ring
        // then keeps more positions than in pace.
        let bound = 2 * ((in_flight + hold) as usize).div_ceil(PAGE) + 2;
        assert!(held_up_max <= bound, "{write:?}: {held_up_max} pages held, at most {bound} expected");
        if writing.chunk < hold {
            assert!(
                held_up_span > in_pace_span,
                "{write:?}: a held-up party keeps more ({held_up_span} vs {in_pace_span})"
            );
        }
        let spare = SPARE.with_borrow(Vec::len);
        let held = t.pages_held();
        assert_eq!(t.finish(&mut s).unwrap().frames, PACKETS * 160);
        assert_eq!(SPARE.with_borrow(Vec::len), spare + held, "{write:?}: finishing gives every page back");
        let out = samples(&p);
        for (pos, frame) in out.iter().enumerate() {
            let (k, i) = (pos as u64 / 160, pos as u64 % 160);
            assert_eq!(*frame, [ulaw(code(0, k, i)), ulaw(code(1, k, i))], "{write:?}: frame {pos}");
        }
    }

    /// Which packets a recording keeps does not depend on the size of its writes: a party
    /// held up 1.5 s (beyond the hold: part of its audio comes after its place settled), a
    /// party's burst released just behind the settle point, and the write size changing
    /// during the call (calls come and go in the mixer) give the same late samples and the
    /// same file, sample for sample, as writes of the smallest size all along.
    #[test]
    fn what_a_recording_keeps_does_not_depend_on_its_write_size() {
        let cfg = TimelineConfig::default();
        let (reorder, hold) = (u64::from(cfg.reorder_frames), u64::from(cfg.hold()));
        const PACKETS: u64 = 1000;
        let code = |ch: u64, k: u64, i: u64| ((k * 131 + i * 7 + ch * 59) % 251) as u8;
        // Channel 1 holds packets 200..275 (1.5 s) back until after channel 0's packet 274,
        // and packets 600..612 until after channel 0's packet 619 (just past the reorder
        // window).
        let mut arrivals: Vec<(u64, u64)> = Vec::new();
        for k in 0..PACKETS {
            arrivals.push((0, k));
            match k {
                200..275 | 600..612 => {}
                _ => arrivals.push((1, k)),
            }
            if k == 274 {
                arrivals.extend((200..275).map(|k| (1, k)));
            }
            if k == 619 {
                arrivals.extend((600..612).map(|k| (1, k)));
            }
        }
        let run = |sizes: &dyn Fn(u64) -> WriteSize| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.wav");
            let mut t = Timeline::create(&p, cfg, AudioConfig::default(), 8000).unwrap();
            let mut s = Vec::new();
            let (mut high, mut late) = ([0u64; 2], 0u64);
            for &(ch, k) in &arrivals {
                let codes: Vec<u8> = (0..160).map(|i| code(ch, k, i)).collect();
                late += u64::from(t.place(ch as usize, k * 160, &codes, Law::Ulaw, &mut s).unwrap().late_samples);
                high[ch as usize] = high[ch as usize].max(k * 160 + 160);
                let (lo, hi) = (high[0].min(high[1]), high[0].max(high[1]));
                let target = lo.saturating_sub(reorder).max(hi.saturating_sub(hold));
                t.settle(target, sizes(k), &mut s).unwrap();
            }
            t.finish(&mut s).unwrap();
            (late, samples(&p))
        };
        let (late, smallest) = run(&|_| WriteSize::MIN);
        assert!(late > 0 && late < 75 * 160, "part of the held-up audio is late: {late} samples");
        for (name, sizes) in [
            ("64 KiB", &(|_| WriteSize::MAX) as &dyn Fn(u64) -> WriteSize),
            ("16 KiB", &|_| WriteSize::for_calls(4096)),
            ("changing", &|k| if (k / 150) % 2 == 0 { WriteSize::MAX } else { WriteSize::for_calls(3000) }),
        ] {
            let (l, out) = run(sizes);
            assert_eq!(l, late, "{name}: late samples");
            assert_eq!(out.len(), smallest.len(), "{name}: frames");
            if let Some(pos) = (0..out.len()).find(|&i| out[i] != smallest[i]) {
                panic!("{name}: frame {pos} differs: {:?} vs {:?}", out[pos], smallest[pos]);
            }
        }
    }

    /// A pause asked for a position already closed but not yet written (large writes hold
    /// closed audio in the ring) starts where it would with the smallest writes: at the
    /// first position not closed. The file is the same either way.
    #[test]
    fn a_pause_behind_the_closed_point_does_not_depend_on_the_write_size() {
        let code = |ch: u64, k: u64, i: u64| ((k * 131 + i * 7 + ch * 59) % 251) as u8;
        let run = |write: WriteSize| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("t.wav");
            let mut t = Timeline::create(&p, TimelineConfig::default(), AudioConfig::default(), 8000).unwrap();
            let mut s = Vec::new();
            for k in 0..300u64 {
                for ch in 0..2 {
                    let codes: Vec<u8> = (0..160).map(|i| code(ch, k, i)).collect();
                    t.place(ch as usize, k * 160, &codes, Law::Ulaw, &mut s).unwrap();
                }
                t.settle((k * 160 + 160).saturating_sub(1280), write, &mut s).unwrap();
                if k == 200 {
                    // 1 s back: behind the closed point, in the ring with 64 KiB writes.
                    t.mute_from(k * 160 - 8000);
                }
                if k == 250 {
                    t.unmute_at(k * 160);
                }
            }
            t.finish(&mut s).unwrap();
            samples(&p)
        };
        let small = run(WriteSize::MIN);
        let large = run(WriteSize::MAX);
        assert_eq!(small.len(), large.len());
        if let Some(pos) = (0..small.len()).find(|&i| small[i] != large[i]) {
            panic!("frame {pos} differs: {:?} with 8 KiB writes, {:?} with 64 KiB", small[pos], large[pos]);
        }
        // From the closed point (within the reorder window and a closing step of packet 200's
        // end) to packet 250: not the whole second asked back.
        let silent = small.iter().filter(|f| **f == [0, 0]).count();
        assert!(silent > 50 * 160 && silent < 100 * 160, "the pause silenced {silent} frames");
    }
}
