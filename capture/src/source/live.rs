//! Live interfaces: non-blocking libpcap handles waited on together with `poll(2)`, so that a
//! quiet wire never holds up timers, shutdown or finalisation, and several interfaces (two SPAN
//! ports, both directions of a TAP) feed one pipeline.
//!
//! On Linux libpcap reads a TPACKET_V3 ring that the kernel hands over in blocks: a block
//! becomes readable when it is full or, on a quiet wire, within about twice
//! [`LiveOptions::timeout_ms`] of its first packet. A wait for packets ends when a block is
//! handed over, when the wait's own time is up, or when a signal arrives.
//!
//! Each interface delivers its frames in capture order, but two interfaces do not interleave
//! theirs: a block of one may be read before an earlier block of the other. With several
//! interfaces, frames are therefore held for [`MERGE_HOLD`] (longer than the kernel holds a
//! block) and handed on in capture-time order, so that, for instance, a 200 OK with its SDP
//! seen on one port comes before the RTP it announces seen on the other. A single interface
//! needs no merge and has no added delay. [`LiveCapture::horizon`] is the capture time up to
//! which every frame has been handed on: timers may run up to it on a quiet wire.
//!
//! On shutdown, [`LiveCapture::drain`] reads what the kernel had already accepted into the ring
//! when it was called (the kernel's own counters say how much that is), waiting for the last
//! partly filled blocks to be handed over, and reports any shortfall.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use pcap::{Active, Capture, Precision};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::{Frame, SourceError, link_of, pcap_reason};
use crate::time::Timestamp;
use crate::transport::decode::LinkType;

/// Interfaces one [`LiveCapture`] reads at most.
pub const MAX_INTERFACES: usize = 16;

/// Frames read from one interface before the next one gets its turn.
const TURN: usize = 64;

/// How long frames of several interfaces are held to be put in capture-time order. The kernel
/// hands a block over at most about twice its block timeout after its first packet (its retire
/// timer closes a block that did not change between two ticks): 100 ms with the default
/// [`LiveOptions::timeout_ms`]; the rest is margin for a busy machine.
pub const MERGE_HOLD: Duration = Duration::from_millis(300);

/// Settings of a live capture (the same for every interface).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Bytes captured per packet. Default 65,535 (whole SIP messages).
    pub snaplen: i32,
    /// Kernel ring buffer size in bytes, per interface. Default 256 MiB: deep enough to ride
    /// out disk stalls.
    pub buffer_bytes: i32,
    /// Promiscuous mode (needed on a SPAN port). Default on.
    pub promisc: bool,
    /// The kernel's block timeout (ms): it hands captured packets over at most about twice this
    /// long after they arrived. Default 50.
    pub timeout_ms: i32,
    /// BPF filter expression, if any.
    pub filter: Option<String>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { snaplen: 65_535, buffer_bytes: 256 << 20, promisc: true, timeout_ms: 50, filter: None }
    }
}

/// Kernel-side counters of one interface's capture since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets that passed the filter, including those dropped for want of room.
    pub received: u64,
    /// Packets dropped because the ring buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or driver.
    pub if_dropped: u64,
}

impl KernelStats {
    /// Packets the kernel put in the ring for callvault to read.
    pub fn delivered(&self) -> u64 {
        self.received.saturating_sub(self.dropped)
    }

    /// Adds another interface's counters.
    pub fn add(&mut self, other: &KernelStats) {
        self.received += other.received;
        self.dropped += other.dropped;
        self.if_dropped += other.if_dropped;
    }
}

/// One live interface read through libpcap, in non-blocking mode.
pub struct LiveSource {
    cap: Capture<Active>,
    iface: String,
    link: LinkType,
    frames: u64,
    /// libpcap's last 32-bit counters (they wrap), and the 64-bit totals kept from them.
    raw: [u32; 3],
    totals: KernelStats,
    /// Why reading it failed (the interface disappeared, ...): it is read no more.
    failed: Option<String>,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource").field("iface", &self.iface).field("frames", &self.frames).finish()
    }
}

impl LiveSource {
    /// Opens `iface` for capture. Needs CAP_NET_RAW (or root).
    pub fn open(iface: &str, opts: &LiveOptions) -> Result<LiveSource, SourceError> {
        let live = |reason: String| SourceError::Live { iface: iface.to_owned(), reason };
        let cap = Capture::from_device(iface)
            .map_err(|e| live(pcap_reason(&e)))?
            .promisc(opts.promisc)
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_bytes)
            .timeout(opts.timeout_ms)
            .precision(Precision::Nano)
            .open()
            .map_err(|e| {
                let r = pcap_reason(&e);
                let hint = if r.contains("ermission") || r.contains("not permitted") {
                    " (run as root, or grant the capability CAP_NET_RAW)"
                } else if r.contains("No such device") || r.contains("doesn't exist") {
                    " (check the interface name with `ip link`)"
                } else {
                    ""
                };
                live(format!("{r}{hint}"))
            })?;
        let mut cap = cap.setnonblock().map_err(|e| live(pcap_reason(&e)))?;
        if let Some(filter) = &opts.filter {
            cap.filter(filter, true).map_err(|e| SourceError::Filter {
                iface: iface.to_owned(),
                filter: filter.clone(),
                reason: pcap_reason(&e),
            })?;
        }
        let link = link_of(cap.get_datalink().0, std::path::Path::new(iface))?;
        Ok(LiveSource {
            cap,
            iface: iface.to_owned(),
            link,
            frames: 0,
            raw: [0; 3],
            totals: KernelStats::default(),
            failed: None,
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.iface
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Why reading the interface failed, once it has (it is then read no more, and its
    /// counters stay those of its last good reading).
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The kernel's counters since the interface was opened (drops are what monitoring must
    /// show). Kept in 64 bits across the wrap of libpcap's 32-bit counters, provided this is
    /// called more often than 2^32 packets arrive.
    pub fn kernel_stats(&mut self) -> Result<KernelStats, SourceError> {
        if self.failed.is_some() {
            return Ok(self.totals);
        }
        let s =
            self.cap.stats().map_err(|e| SourceError::Live { iface: self.iface.clone(), reason: pcap_reason(&e) })?;
        let now = [s.received, s.dropped, s.if_dropped];
        let t = &mut self.totals;
        for ((total, n), r) in [&mut t.received, &mut t.dropped, &mut t.if_dropped].into_iter().zip(now).zip(self.raw) {
            *total += u64::from(n.wrapping_sub(r));
        }
        self.raw = now;
        Ok(self.totals)
    }

    /// Reads up to `budget` frames that are ready, without waiting; returns how many.
    fn read_ready<F>(&mut self, index: usize, budget: usize, f: &mut F) -> Result<usize, SourceError>
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let mut n = 0;
        while n < budget {
            match self.cap.next_packet() {
                Ok(p) => {
                    let frame = Frame {
                        time: Timestamp::from_parts(p.header.ts.tv_sec, p.header.ts.tv_usec),
                        data: p.data,
                        wire_len: p.header.len,
                    };
                    f(index, self.link, frame);
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => return Err(SourceError::Live { iface: self.iface.clone(), reason: pcap_reason(&e) }),
            }
        }
        self.frames += n as u64;
        Ok(n)
    }
}

/// What [`LiveCapture::drain`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Frames read by the drain.
    pub frames: u64,
    /// Frames the kernel had accepted into the rings but that could not be read in time.
    pub unread: u64,
}

/// A frame held by [`Merge`]: ordered by capture time, then by arrival.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    time: i64,
    seq: u64,
    source: usize,
    wire_len: u32,
    data: Vec<u8>,
}

/// Frames of several interfaces, held until they can be handed on in capture-time order. The
/// frames' buffers are recycled, so the steady state allocates nothing.
#[derive(Debug)]
struct Merge {
    held: BinaryHeap<Reverse<Held>>,
    pool: Vec<Vec<u8>>,
    seq: u64,
    /// The latest capture time handed on.
    released: i64,
    /// Frames that reached the merge after a frame captured later had been handed on (their
    /// interface's block came later than [`MERGE_HOLD`]): handed on out of capture-time order.
    late: u64,
}

impl Default for Merge {
    fn default() -> Self {
        Merge { held: BinaryHeap::new(), pool: Vec::new(), seq: 0, released: i64::MIN, late: 0 }
    }
}

impl Merge {
    fn hold(&mut self, source: usize, frame: Frame<'_>) {
        if frame.time.0 < self.released {
            self.late += 1;
        }
        let mut data = self.pool.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(frame.data);
        self.seq += 1;
        self.held.push(Reverse(Held { time: frame.time.0, seq: self.seq, source, wire_len: frame.wire_len, data }));
    }

    /// Hands on, in capture-time order, every frame captured at or before `horizon`; returns
    /// how many.
    fn release<F>(&mut self, horizon: Timestamp, links: &[LinkType], f: &mut F) -> usize
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let mut n = 0;
        while self.held.peek().is_some_and(|Reverse(h)| h.time <= horizon.0) {
            let Some(Reverse(h)) = self.held.pop() else { break };
            self.released = self.released.max(h.time);
            f(h.source, links[h.source], Frame { time: Timestamp(h.time), data: &h.data, wire_len: h.wire_len });
            self.pool.push(h.data);
            n += 1;
        }
        n
    }

    /// The capture time of the oldest held frame.
    fn oldest(&self) -> Option<i64> {
        self.held.peek().map(|Reverse(h)| h.time)
    }
}

/// Several live interfaces read as one capture.
#[derive(Debug)]
pub struct LiveCapture {
    sources: Vec<LiveSource>,
    links: Vec<LinkType>,
    /// The interface whose turn it is.
    next: usize,
    /// With more than one interface: frames being put in order.
    merge: Option<Merge>,
    /// Interfaces that could not be opened while others could: name and why.
    missing: Vec<(String, String)>,
}

impl LiveCapture {
    /// Opens every interface in `ifaces` (at least one, at most [`MAX_INTERFACES`]). One that
    /// cannot be opened while others can (it is not there now) is left out and listed in
    /// [`LiveCapture::missing`]; the first error when none can be opened, or when a filter
    /// does not compile.
    pub fn open(ifaces: &[String], opts: &LiveOptions) -> Result<LiveCapture, SourceError> {
        if ifaces.is_empty() || ifaces.len() > MAX_INTERFACES {
            return Err(SourceError::Live {
                iface: ifaces.join(","),
                reason: format!("give between 1 and {MAX_INTERFACES} interfaces (capture.interfaces, --interface)"),
            });
        }
        let mut sources = Vec::new();
        let mut missing = Vec::new();
        let mut first = None;
        for iface in ifaces {
            match LiveSource::open(iface, opts) {
                Ok(source) => sources.push(source),
                Err(SourceError::Live { iface, reason }) => {
                    missing.push((iface.clone(), reason.clone()));
                    first.get_or_insert(SourceError::Live { iface, reason });
                }
                Err(e) => return Err(e),
            }
        }
        if let (true, Some(e)) = (sources.is_empty(), first) {
            return Err(e);
        }
        let links = sources.iter().map(LiveSource::link).collect();
        let merge = (sources.len() > 1).then(Merge::default);
        Ok(LiveCapture { sources, links, next: 0, merge, missing })
    }

    /// The interfaces that could not be opened while the others were: name and why.
    pub fn missing(&self) -> &[(String, String)] {
        &self.missing
    }

    /// Every interface not read: those that failed while the others went on, then those
    /// missing at the start; name and why.
    pub fn set_aside(&self) -> impl Iterator<Item = (&str, &str)> {
        let failed = self.sources.iter().filter_map(|s| Some((s.name(), s.failed()?)));
        failed.chain(self.missing.iter().map(|(name, why)| (name.as_str(), why.as_str())))
    }

    /// The capture time up to which every frame has been handed on: now, or with several
    /// interfaces [`MERGE_HOLD`] ago.
    pub fn horizon(&self) -> Timestamp {
        let now = super::wall_clock();
        match self.merge {
            Some(_) => now.add_nanos(-(MERGE_HOLD.as_nanos() as i64)),
            None => now,
        }
    }

    /// Frames of several interfaces handed on out of capture-time order so far: each came from
    /// its interface after a frame captured later on another had been handed on, its block
    /// having taken longer than [`MERGE_HOLD`] (a machine too busy to read the rings in time).
    /// Media handed on before the SIP message that announces it waits for it in the engine's
    /// hold ([`crate::held`], 500 ms).
    pub fn merged_late(&self) -> u64 {
        self.merge.as_ref().map_or(0, |m| m.late)
    }

    /// The interfaces.
    pub fn sources(&self) -> &[LiveSource] {
        &self.sources
    }

    /// The interfaces, for their counters.
    pub fn sources_mut(&mut self) -> &mut [LiveSource] {
        &mut self.sources
    }

    /// Frames read so far from every interface.
    pub fn frames(&self) -> u64 {
        self.sources.iter().map(LiveSource::frames).sum()
    }

    /// Hands the frames that are ready (up to about `max`) to `f` with the index of their
    /// interface and its link type, taking the interfaces in turn (in capture-time order with
    /// several). When none is ready, waits up to `wait` for some (less if a signal arrives or a
    /// held frame becomes due). Returns how many frames were handed on; 0 means the wire was
    /// quiet.
    pub fn dispatch<F>(&mut self, max: usize, wait: Duration, mut f: F) -> Result<usize, SourceError>
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let n = self.read_and_release(max, &mut f)?;
        if n > 0 {
            return Ok(n);
        }
        let wait = match self.merge.as_ref().and_then(Merge::oldest) {
            Some(t) => wait.min(Duration::from_nanos(t.saturating_sub(self.horizon().0).max(0) as u64)),
            None => wait,
        };
        self.wait(wait)?;
        self.read_and_release(max, &mut f)
    }

    /// Reads what is ready; with several interfaces holds it and hands on what is due.
    fn read_and_release<F>(&mut self, max: usize, f: &mut F) -> Result<usize, SourceError>
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let Some(mut merge) = self.merge.take() else {
            return self.read_round(max, f);
        };
        let read = self.read_round(max, &mut |i, _, frame| merge.hold(i, frame));
        let released = merge.release(self.horizon(), &self.links, f);
        self.merge = Some(merge);
        read.map(|_| released)
    }

    /// Reads what the kernel had accepted into the rings when this was called, waiting up to
    /// `within` for blocks still held by the kernel. Stop feeding new work to the caller first;
    /// frames that arrive meanwhile may be read too.
    pub fn drain<F>(&mut self, within: Duration, mut f: F) -> Result<Drained, SourceError>
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let deadline = Instant::now() + within;
        let mut targets = Vec::with_capacity(self.sources.len());
        for s in &mut self.sources {
            // A failed interface has nothing more to read.
            targets.push(if s.failed.is_some() { s.frames } else { s.kernel_stats()?.delivered() });
        }
        let before = self.frames();
        let mut merge = self.merge.take();
        let result = loop {
            let read = match merge.as_mut() {
                Some(m) => self.read_round(usize::MAX, &mut |i, _, frame| m.hold(i, frame)),
                None => self.read_round(usize::MAX, &mut f),
            };
            match read {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => break Err(e),
            }
            let unread: u64 = self.sources.iter().zip(&targets).map(|(s, t)| t.saturating_sub(s.frames)).sum();
            let now = Instant::now();
            if unread == 0 || now >= deadline {
                break Ok(Drained { frames: self.frames() - before, unread });
            }
            if let Err(e) = self.wait((deadline - now).min(Duration::from_millis(20))) {
                break Err(e);
            }
        };
        // Everything still held goes on, in order.
        if let Some(mut m) = merge {
            m.release(Timestamp(i64::MAX), &self.links, &mut f);
            self.merge = Some(m);
        }
        result
    }

    /// One round over the interfaces: up to [`TURN`] frames each, `max` in all. An interface
    /// that fails (it disappeared) is set aside ([`LiveSource::failed`]) and the others go on;
    /// the error is returned only when none is left.
    fn read_round<F>(&mut self, max: usize, f: &mut F) -> Result<usize, SourceError>
    where
        F: FnMut(usize, LinkType, Frame<'_>),
    {
        let count = self.sources.len();
        let mut n = 0;
        for k in 0..count {
            if n >= max {
                break;
            }
            let i = (self.next + k) % count;
            if self.sources[i].failed.is_some() {
                continue;
            }
            match self.sources[i].read_ready(i, TURN.min(max - n), f) {
                Ok(read) => n += read,
                Err(e) => {
                    let SourceError::Live { reason, .. } = &e else { return Err(e) };
                    self.sources[i].failed = Some(reason.clone());
                    if self.sources.iter().all(|s| s.failed.is_some()) {
                        return Err(e);
                    }
                }
            }
        }
        self.next = (self.next + 1) % count;
        Ok(n)
    }

    /// Waits until an interface has something to read, `wait` passes, or a signal arrives.
    fn wait(&self, wait: Duration) -> Result<(), SourceError> {
        let mut fds: ArrayVec<PollFd<'_>, MAX_INTERFACES> =
            self.sources.iter().filter(|s| s.failed.is_none()).map(|s| PollFd::new(&s.cap, PollFlags::IN)).collect();
        let timeout = Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) };
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(SourceError::Live {
                iface: self.sources.iter().map(LiveSource::name).collect::<Vec<_>>().join(","),
                reason: format!("waiting for packets failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(time: i64, data: &[u8]) -> Frame<'_> {
        Frame { time: Timestamp(time), data, wire_len: data.len() as u32 }
    }

    #[test]
    fn frames_of_two_interfaces_leave_in_capture_time_order_once_due() {
        let links = [LinkType::Ethernet, LinkType::Sll];
        let mut m = Merge::default();
        // Interface 1's block is read first although interface 0 captured earlier frames.
        m.hold(1, frame(20, b"b20"));
        m.hold(1, frame(40, b"b40"));
        m.hold(0, frame(10, b"a10"));
        m.hold(0, frame(20, b"a20"));
        m.hold(0, frame(50, b"a50"));
        let mut out = Vec::new();
        let mut take = |i: usize, link: LinkType, f: Frame<'_>| out.push((i, link, f.time.0, f.data.to_vec()));
        assert_eq!(m.release(Timestamp(30), &links, &mut take), 3);
        assert_eq!(m.oldest(), Some(40), "later frames stay held");
        assert_eq!(m.release(Timestamp(i64::MAX), &links, &mut take), 2);
        assert_eq!(m.oldest(), None);
        let order: Vec<_> =
            out.iter().map(|(i, link, t, d)| (*i, *link, *t, String::from_utf8_lossy(d).into_owned())).collect();
        assert_eq!(
            order,
            vec![
                (0, LinkType::Ethernet, 10, "a10".into()),
                (1, LinkType::Sll, 20, "b20".into()),
                (0, LinkType::Ethernet, 20, "a20".into()),
                (1, LinkType::Sll, 40, "b40".into()),
                (0, LinkType::Ethernet, 50, "a50".into()),
            ],
            "by capture time; equal times in the order they were read"
        );
        // Buffers come back for reuse.
        assert_eq!(m.pool.len(), 5);
        assert_eq!(m.late, 0, "every frame came before its turn");
    }

    #[test]
    fn a_frame_older_than_one_handed_on_is_counted_late_and_still_handed_on() {
        let links = [LinkType::Ethernet, LinkType::Ethernet];
        let mut m = Merge::default();
        m.hold(0, frame(10, b"a10"));
        m.hold(0, frame(30, b"a30"));
        let mut out = Vec::new();
        let mut take = |i: usize, _: LinkType, f: Frame<'_>| out.push((i, f.time.0));
        assert_eq!(m.release(Timestamp(30), &links, &mut take), 2);
        // Interface 1's block, with a frame captured at 20, comes after 30 was handed on; one
        // captured at 30 itself is not out of order, nor is 40.
        m.hold(1, frame(20, b"b20"));
        m.hold(1, frame(30, b"b30"));
        m.hold(1, frame(40, b"b40"));
        assert_eq!(m.late, 1);
        assert_eq!(m.release(Timestamp(i64::MAX), &links, &mut take), 3);
        assert_eq!(out, vec![(0, 10), (0, 30), (1, 20), (1, 30), (1, 40)]);
        assert_eq!(m.late, 1, "counted once, when it came");
    }
}
