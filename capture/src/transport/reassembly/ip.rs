//! IPv4 and IPv6 fragment reassembly, bounded against memory exhaustion.
//!
//! Invariants:
//! * A datagram in progress is keyed by (source, destination, identification, protocol, VLAN):
//!   the RFC 791 / RFC 8200 key plus the VLAN, so equal private addresses on two VLANs of a
//!   mirror port never mix.
//! * At most `max_reassemblies` datagrams are in progress and at most `max_bytes` are held by
//!   all of them (each counted at the length of its buffer, i.e. up to the highest fragment end
//!   seen, so a lone fragment at offset 60,000 costs what it really allocates). No datagram may
//!   reach past [`MAX_DATAGRAM`] bytes, and a datagram keeps at most [`MAX_PIECES`] disjoint
//!   pieces. A fragment that would break a cap is dropped and counted; what is already held is
//!   kept (the newest work is shed).
//! * Overlaps: bytes already held win, and a fragment may only repeat them. An overlap with the
//!   same content is accepted (a re-fragmented retransmission) and only fills holes; an overlap
//!   with different content, or a second, different end of datagram, is a conflict and drops the
//!   whole datagram (RFC 5722, and what Linux does for IPv4 too): a passive observer cannot know
//!   which copy the receiver kept, and an attacker must not choose for it.
//! * A datagram not complete `timeout` after its first fragment arrived (capture time) is
//!   dropped by [`Defragmenter::expire`].

use std::net::IpAddr;

use arrayvec::ArrayVec;
use rustc_hash::FxHashMap;

use crate::limits::{Limits, Timeouts};
use crate::stats::DefragStats;
use crate::time::Timestamp;

/// Largest datagram payload that can be reassembled (the 16-bit length of IPv4 and IPv6).
pub const MAX_DATAGRAM: usize = 65_535;
/// Disjoint pieces one datagram may consist of before further fragments are refused.
pub const MAX_PIECES: usize = 64;

/// Identifies one datagram being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (IPv4: 16 bits, IPv6 fragment header: 32 bits).
    pub id: u32,
    /// Upper-layer protocol.
    pub protocol: u8,
    /// VLAN the fragments were seen on.
    pub vlan: Option<u16>,
}

/// Caps and timeout of a [`Defragmenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragConfig {
    /// Datagrams in progress at once.
    pub max_reassemblies: usize,
    /// Bytes held by all datagrams in progress.
    pub max_bytes: usize,
    /// Nanoseconds of capture time a datagram may take to complete.
    pub timeout: i64,
}

impl DefragConfig {
    /// The defragmenter settings of an engine configuration.
    pub fn new(limits: &Limits, timeouts: &Timeouts) -> DefragConfig {
        DefragConfig {
            max_reassemblies: limits.max_frag_reassemblies,
            max_bytes: limits.max_frag_bytes,
            timeout: timeouts.fragment,
        }
    }
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig::new(&Limits::default(), &Timeouts::default())
    }
}

#[derive(Debug)]
struct Pending {
    started: Timestamp,
    data: Vec<u8>,
    /// Byte ranges received, sorted, disjoint and not adjacent.
    pieces: ArrayVec<(u32, u32), MAX_PIECES>,
    /// End of the datagram, once the last fragment (more = false) was seen.
    end: Option<u32>,
}

/// Reassembles fragmented IP datagrams. Sans-IO: fragments in with their capture time, whole
/// upper-layer payloads out.
#[derive(Debug)]
pub struct Defragmenter {
    table: FxHashMap<FragKey, Pending>,
    held: usize,
    cfg: DefragConfig,
    stats: DefragStats,
}

impl Defragmenter {
    /// An empty defragmenter.
    pub fn new(cfg: DefragConfig) -> Defragmenter {
        Defragmenter { table: FxHashMap::default(), held: 0, cfg, stats: DefragStats::default() }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by the datagrams in progress.
    pub fn bytes_held(&self) -> usize {
        self.held
    }

    /// Counts a fragment that cannot be used because the capture cut it short.
    pub fn count_truncated(&mut self) {
        self.stats.truncated += 1;
    }

    /// Adds the fragment of `key` carrying `payload` at byte `offset` of the datagram (`more`:
    /// more fragments follow). Returns the datagram's whole upper-layer payload when this
    /// fragment completed it.
    pub fn push(&mut self, now: Timestamp, key: FragKey, offset: u32, more: bool, payload: &[u8]) -> Option<Vec<u8>> {
        let start = offset as usize;
        let end = start + payload.len();
        if end > MAX_DATAGRAM {
            self.stats.too_large += 1;
            self.remove(&key);
            return None;
        }
        let (start, end) = (start as u32, end as u32);
        let cfg = self.cfg;
        let held = self.held;
        let p = match self.table.get_mut(&key) {
            Some(p) => p,
            None => {
                if self.table.len() >= cfg.max_reassemblies {
                    self.stats.shed_table_full += 1;
                    return None;
                }
                if held + end as usize > cfg.max_bytes {
                    self.stats.shed_bytes += 1;
                    return None;
                }
                self.table.entry(key).or_insert(Pending {
                    started: now,
                    data: Vec::new(),
                    pieces: ArrayVec::new(),
                    end: None,
                })
            }
        };

        // The end of the datagram must be consistent with every fragment.
        let known_end = p.end.or((!more).then_some(end));
        let max_seen = p.pieces.last().map_or(0, |r| r.1).max(end);
        let conflict = match known_end {
            Some(e) => (!more && p.end.is_some_and(|pe| pe != end)) || max_seen > e,
            None => false,
        };
        if conflict || !same_bytes(p, start, payload) {
            self.stats.conflicts += 1;
            self.remove(&key);
            return None;
        }

        // Merge the new range into the pieces (computed aside, so a refusal changes nothing).
        let Some((pieces, added)) = merge(&p.pieces, start, end) else {
            self.stats.too_many_pieces += 1;
            return None;
        };
        // Nothing new, unless it is the first word on where the datagram ends.
        if added == 0 && (p.end.is_some() || more) {
            self.stats.duplicates += 1;
            return None;
        }
        if added < end - start {
            self.stats.overlaps += 1;
        }
        let growth = (end as usize).saturating_sub(p.data.len());
        if held + growth > cfg.max_bytes {
            self.stats.shed_bytes += 1;
            return None;
        }
        if growth > 0 {
            p.data.resize(end as usize, 0);
            self.held += growth;
        }
        p.data[start as usize..end as usize].copy_from_slice(payload);
        p.pieces = pieces;
        p.end = known_end;

        let complete = p.end.is_some_and(|e| p.pieces.len() == 1 && p.pieces[0] == (0, e))
            || p.end == Some(0) && p.pieces.is_empty();
        if !complete {
            return None;
        }
        let p = self.table.remove(&key)?;
        self.held -= p.data.len();
        self.stats.reassembled += 1;
        let mut data = p.data;
        data.truncate(p.end.unwrap_or(0) as usize);
        Some(data)
    }

    /// Drops every datagram whose first fragment is `timeout` or more older than `now`.
    pub fn expire(&mut self, now: Timestamp) {
        let timeout = self.cfg.timeout;
        let mut freed = 0;
        let mut expired = 0;
        self.table.retain(|_, p| {
            let keep = now.since(p.started) < timeout;
            if !keep {
                freed += p.data.len();
                expired += 1;
            }
            keep
        });
        self.held -= freed;
        self.stats.timeouts += expired;
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(p) = self.table.remove(key) {
            self.held -= p.data.len();
        }
    }
}

/// True when `payload` at `start` agrees with every byte already held.
fn same_bytes(p: &Pending, start: u32, payload: &[u8]) -> bool {
    let end = start + payload.len() as u32;
    p.pieces.iter().all(|&(s, e)| {
        let (lo, hi) = (s.max(start), e.min(end));
        lo >= hi || p.data[lo as usize..hi as usize] == payload[(lo - start) as usize..(hi - start) as usize]
    })
}

/// The pieces with `[start, end)` merged in, and how many bytes were new; `None` when the
/// result would exceed [`MAX_PIECES`].
fn merge(pieces: &[(u32, u32)], start: u32, end: u32) -> Option<(ArrayVec<(u32, u32), MAX_PIECES>, u32)> {
    let mut out = ArrayVec::new();
    if start == end {
        out.try_extend_from_slice(pieces).ok()?;
        return Some((out, 0));
    }
    let mut covered = 0;
    let (mut s, mut e) = (start, end);
    let mut placed = false;
    for &(ps, pe) in pieces {
        if pe < s {
            out.try_push((ps, pe)).ok()?;
        } else if e < ps {
            if !placed {
                out.try_push((s, e)).ok()?;
                placed = true;
            }
            out.try_push((ps, pe)).ok()?;
        } else {
            covered += pe.min(end).saturating_sub(ps.max(start));
            s = s.min(ps);
            e = e.max(pe);
        }
    }
    if !placed {
        out.try_push((s, e)).ok()?;
    }
    Some((out, (end - start) - covered))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = Timestamp::SECOND;

    fn key(id: u32) -> FragKey {
        FragKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id, protocol: 17, vlan: None }
    }

    fn cfg(max_reassemblies: usize, max_bytes: usize) -> DefragConfig {
        DefragConfig { max_reassemblies, max_bytes, timeout: 30 * S }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn in_order_and_reversed() {
        let d = data(3000);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut f = Defragmenter::new(DefragConfig::default());
            let parts = [(0, true, &d[..1480]), (1480, true, &d[1480..2960]), (2960, false, &d[2960..])];
            let mut out = None;
            for i in order {
                let (off, more, p) = parts[i];
                out = f.push(Timestamp(0), key(1), off, more, p);
            }
            assert_eq!(out.as_deref(), Some(&d[..]), "{order:?}");
            assert_eq!((f.in_progress(), f.bytes_held(), f.stats().reassembled), (0, 0, 1));
        }
    }

    #[test]
    fn duplicates_and_identical_overlaps_are_absorbed() {
        let d = data(100);
        let mut f = Defragmenter::new(DefragConfig::default());
        assert_eq!(f.push(Timestamp(0), key(1), 0, true, &d[..48]), None);
        assert_eq!(f.push(Timestamp(0), key(1), 0, true, &d[..48]), None);
        assert_eq!(f.stats().duplicates, 1);
        assert_eq!(f.push(Timestamp(0), key(1), 40, true, &d[40..64]), None);
        assert_eq!(f.stats().overlaps, 1);
        assert_eq!(f.push(Timestamp(0), key(1), 64, false, &d[64..]).as_deref(), Some(&d[..]));
    }

    #[test]
    fn conflicting_overlap_drops_the_datagram() {
        let d = data(100);
        let mut f = Defragmenter::new(DefragConfig::default());
        f.push(Timestamp(0), key(1), 0, true, &d[..48]);
        let mut other = d[40..64].to_vec();
        other[0] ^= 1;
        assert_eq!(f.push(Timestamp(0), key(1), 40, true, &other), None);
        assert_eq!((f.stats().conflicts, f.in_progress(), f.bytes_held()), (1, 0, 0));
        // Two different ends, and data past the end.
        f.push(Timestamp(0), key(2), 48, false, &d[48..]);
        assert_eq!(f.push(Timestamp(0), key(2), 48, false, &d[48..90]), None);
        assert_eq!(f.stats().conflicts, 2);
        f.push(Timestamp(0), key(3), 8, false, &d[8..40]);
        assert_eq!(f.push(Timestamp(0), key(3), 40, true, &d[40..48]), None);
        assert_eq!(f.stats().conflicts, 3);
    }

    #[test]
    fn limits_shed_the_newest_work() {
        let d = data(2000);
        let mut f = Defragmenter::new(cfg(2, 2500));
        f.push(Timestamp(0), key(1), 0, true, &d[..1000]);
        f.push(Timestamp(0), key(2), 0, true, &d[..1000]);
        assert_eq!(f.push(Timestamp(0), key(3), 0, true, &d[..8]), None);
        assert_eq!(f.stats().shed_table_full, 1);
        assert_eq!(f.push(Timestamp(0), key(1), 1000, true, &d[1000..2000]), None);
        assert_eq!(f.stats().shed_bytes, 1);
        assert_eq!(f.bytes_held(), 2000);
        // What was held still completes.
        assert_eq!(f.push(Timestamp(0), key(2), 1000, false, &d[1000..1200]).as_deref(), Some(&d[..1200]));
        // A new datagram whose first fragment alone is over the byte cap is refused.
        let mut f = Defragmenter::new(cfg(8, 100));
        assert_eq!(f.push(Timestamp(0), key(1), 96, true, &d[..8]), None);
        assert_eq!((f.stats().shed_bytes, f.in_progress()), (1, 0));
    }

    #[test]
    fn oversize_and_too_many_pieces() {
        let mut f = Defragmenter::new(DefragConfig::default());
        f.push(Timestamp(0), key(1), 0, true, &[0; 8]);
        assert_eq!(f.push(Timestamp(0), key(1), 65_528, true, &[0; 16]), None);
        assert_eq!((f.stats().too_large, f.in_progress()), (1, 0));
        for i in 0..MAX_PIECES as u32 {
            f.push(Timestamp(0), key(2), i * 16, true, &[0; 8]);
        }
        assert_eq!(f.push(Timestamp(0), key(2), 5000, true, &[0; 8]), None);
        assert_eq!(f.stats().too_many_pieces, 1);
        // Filling a hole still works (it merges pieces).
        assert_eq!(f.push(Timestamp(0), key(2), 8, true, &[0; 8]), None);
        assert_eq!(f.stats().too_many_pieces, 1);
    }

    #[test]
    fn timeout_in_capture_time() {
        let mut f = Defragmenter::new(DefragConfig::default());
        f.push(Timestamp(0), key(1), 0, true, &[1; 8]);
        f.expire(Timestamp(29 * S));
        assert_eq!(f.in_progress(), 1);
        f.expire(Timestamp(30 * S));
        assert_eq!((f.in_progress(), f.bytes_held(), f.stats().timeouts), (0, 0, 1));
        // The late last fragment starts a new (incomplete) datagram instead of completing.
        assert_eq!(f.push(Timestamp(31 * S), key(1), 8, false, &[2; 8]), None);
    }

    #[test]
    fn keys_keep_datagrams_apart() {
        let mut f = Defragmenter::new(DefragConfig::default());
        let mut other_vlan = key(1);
        other_vlan.vlan = Some(10);
        let mut other_proto = key(1);
        other_proto.protocol = 6;
        f.push(Timestamp(0), key(1), 0, true, &[1; 8]);
        f.push(Timestamp(0), other_vlan, 0, true, &[2; 8]);
        f.push(Timestamp(0), other_proto, 0, true, &[3; 8]);
        assert_eq!(
            f.push(Timestamp(0), other_vlan, 8, false, &[4; 2]).as_deref(),
            Some(&[2, 2, 2, 2, 2, 2, 2, 2, 4, 4][..])
        );
        assert_eq!(f.in_progress(), 2);
    }
}
