//! The media table: which call and which sender an RTP (or RTCP) packet belongs to.
//!
//! A packet is tied to a call by both of its ends, never by its destination alone: media
//! servers, SBCs and gateways answer many calls with one media address (and callers behind one
//! SBC offer one), so a destination can be shared by several calls in progress, each told apart
//! by the other end.
//!
//! Two maps:
//!
//! * **Claims**, by receive address: every call whose SDP announced the address (or that
//!   learned it from traffic) holds a claim on it, saying which of its parties sends there.
//!   *Announced* addresses are the receive addresses in a party's SDP and the RTCP port beside
//!   them; *learned* ones are what field recorders do for NAT: with symmetric RTP a party
//!   receives where it sends from, so the source of its packets (and its public signalling
//!   address with the SDP's port, when the SDP names a private address) is where the other
//!   party's media will go. A learned claim never shadows another call's announcement.
//! * **Flows**, by the full 5-tuple (UDP, source, destination): once the first packet of a flow
//!   has been attributed, every later packet is one hash lookup. Flows belong to their call and
//!   leave with it (the dialog tracker removes them).
//!
//! The first packet of a flow is attributed by [`MediaTable::resolve`]:
//!
//! 1. A destination claimed by one call only: that call (whatever the source: NAT, multi-homed
//!    gateways and relays send from addresses no SDP names).
//! 2. A shared destination: the claimant whose sending party is known to receive at the
//!    packet's source (both ends announced, or learned). When several calls announced the very
//!    same pair of addresses, the newest announcement (of the destination, then of the source)
//!    wins: endpoints reuse a pair only after its old call ended as far as they are concerned,
//!    and a B2BUA that hands both legs the same pair re-announces the leg it means last.
//! 3. Else the one claimant whose sending party announced media from, or signals from, the
//!    source's host.
//! 4. Else the packet is **ambiguous**: it is counted (per destination, so each call that used
//!    the address can say how many packets may have been its own) and recorded in no call.
//!
//! A later announcement of a pair moves the flow of that pair to the announcing call
//! ([`MediaTable::claim_flow`]). Ambiguity is remembered per flow until the claims change.
//!
//! Memory: one claim per call and address (capped per call by `Limits::max_media_per_call`),
//! flows capped per call by the tracker, ambiguity markers capped by the table.

use std::net::{IpAddr, SocketAddr};

use rustc_hash::FxHashMap;

use crate::call::flows::FlowTable;
use crate::events::{CallRef, Side};
use crate::time::Timestamp;

/// What arrives at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// RTP (possibly with RTCP multiplexed, RFC 5761).
    Rtp,
    /// RTCP on its own port.
    Rtcp,
    /// A non-audio media line of the call (its index in the call's list): counted, not
    /// recorded.
    Other(u8),
}

/// Who a media packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOwner {
    /// The call.
    pub call: CallRef,
    /// The party that sends to this address.
    pub sender: Side,
    /// RTP or RTCP.
    pub kind: MediaKind,
    /// Learned from traffic rather than announced in SDP.
    pub learned: bool,
}

impl MediaOwner {
    /// An announced RTP address.
    pub fn rtp(call: CallRef, sender: Side) -> MediaOwner {
        MediaOwner { call, sender, kind: MediaKind::Rtp, learned: false }
    }
}

/// One call's claim on a receive address.
#[derive(Debug, Clone, Copy)]
struct Claim {
    owner: MediaOwner,
    /// Order of the announcement (newer is larger).
    seq: u64,
}

/// A receive address and the calls that claim it.
#[derive(Debug, Default)]
struct Address {
    claims: Vec<Claim>,
    /// Packets sent here that could not be told apart (all time).
    ambiguous: u64,
    /// Capture time of the last of them.
    last_ambiguous: Option<Timestamp>,
}

/// A UDP flow (source and destination address) as plain integers: hashing it is five
/// multiply-adds, where a pair of `SocketAddr`s would hash their octets as byte slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct FlowKey {
    src: u128,
    dst: u128,
    ports: u32,
}

impl FlowKey {
    #[inline]
    fn new(src: SocketAddr, dst: SocketAddr) -> FlowKey {
        // IPv4 addresses as IPv4-mapped IPv6 ones: one address space, no collisions.
        let ip = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        FlowKey { src: ip(src), dst: ip(dst), ports: u32::from(src.port()) << 16 | u32::from(dst.port()) }
    }
}

/// What the flow map holds for a 5-tuple.
#[derive(Debug, Clone, Copy)]
enum FlowEntry {
    Owned(MediaOwner),
    /// Attribution was ambiguous while the claims were at this epoch.
    Ambiguous(u64),
}

/// The result of the per-packet lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// A flow attributed before.
    Owned(MediaOwner),
    /// A flow found ambiguous, with no claim changed since.
    Ambiguous,
    /// Not seen yet (or its ambiguity is to be looked at again): see [`MediaTable::resolve`].
    Miss,
}

/// How [`MediaTable::resolve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The packet belongs to this owner.
    Owner(MediaOwner),
    /// Several calls claim the destination and the source does not say which one.
    Ambiguous,
    /// No call claims the destination: not media.
    Unclaimed,
}

/// What [`MediaTable::resolve`] asks about the calls that claim a destination.
pub trait SenderHosts {
    /// Whether `ip` is a host the sending party of `call` announced media from or signals from.
    fn is_sender_host(&self, call: CallRef, sender: Side, ip: IpAddr) -> bool;
}

/// Claims by receive address, flows by 5-tuple.
#[derive(Debug)]
pub struct MediaTable {
    addrs: FxHashMap<SocketAddr, Address>,
    flows: FlowTable<FlowKey, FlowEntry>,
    /// Changes whenever a claim is added or removed: ambiguity markers of older epochs are
    /// looked at again.
    epoch: u64,
    next_seq: u64,
    markers: usize,
    max_markers: usize,
}

impl Default for MediaTable {
    fn default() -> Self {
        MediaTable::new(crate::limits::Limits::default().max_calls)
    }
}

impl MediaTable {
    /// A table keeping at most `max_markers` ambiguous flows (beyond that, ambiguity is worked
    /// out again for every packet).
    pub fn new(max_markers: usize) -> MediaTable {
        MediaTable {
            addrs: FxHashMap::default(),
            flows: FlowTable::new(),
            epoch: 0,
            next_seq: 0,
            markers: 0,
            max_markers,
        }
    }

    /// The per-packet lookup: one hash of the 5-tuple.
    #[inline]
    pub fn flow(&self, src: SocketAddr, dst: SocketAddr) -> Flow {
        match self.flows.get(&FlowKey::new(src, dst)) {
            Some(FlowEntry::Owned(o)) => Flow::Owned(*o),
            Some(FlowEntry::Ambiguous(epoch)) if *epoch == self.epoch => Flow::Ambiguous,
            _ => Flow::Miss,
        }
    }

    /// Starts loading where [`MediaTable::flow`] will look `src -> dst` up (a prefetch: a
    /// packet's lookup asked for while the one before it is handled waits less for memory).
    #[inline]
    pub fn prefetch_flow(&self, src: SocketAddr, dst: SocketAddr) {
        self.flows.prefetch(&FlowKey::new(src, dst));
    }

    /// Whether any call claims `dst`.
    #[inline]
    pub fn is_claimed(&self, dst: &SocketAddr) -> bool {
        self.addrs.contains_key(dst)
    }

    /// Attributes the first packet of a flow (see the module documentation).
    pub fn resolve(&self, src: SocketAddr, dst: SocketAddr, hosts: &impl SenderHosts) -> Resolution {
        let Some(a) = self.addrs.get(&dst) else { return Resolution::Unclaimed };
        let claims = a.claims.as_slice();
        match claims {
            [] => return Resolution::Unclaimed,
            [only] => return Resolution::Owner(only.owner),
            _ => {}
        }
        // Both ends: the claimant whose sender receives at `src` in the same call; among
        // several (the same pair announced by several calls), the newest announcement of the
        // destination, then of the source.
        if let Some(s) = self.addrs.get(&src) {
            let mut best: Option<((u64, u64), MediaOwner)> = None;
            for c in claims {
                for sc in &s.claims {
                    if sc.owner.call == c.owner.call && sc.owner.sender == c.owner.sender.other() {
                        let seq = (c.seq, sc.seq);
                        if best.is_none_or(|(b, _)| seq > b) {
                            best = Some((seq, c.owner));
                        }
                    }
                }
            }
            if let Some((_, owner)) = best {
                return Resolution::Owner(owner);
            }
        }
        // The sender's host.
        let mut found = None;
        for c in claims {
            if hosts.is_sender_host(c.owner.call, c.owner.sender, src.ip()) {
                if found.is_some() {
                    return Resolution::Ambiguous;
                }
                found = Some(c.owner);
            }
        }
        found.map_or(Resolution::Ambiguous, Resolution::Owner)
    }

    /// Remembers that the flow `src -> dst` belongs to `owner`.
    pub fn insert_flow(&mut self, src: SocketAddr, dst: SocketAddr, owner: MediaOwner) {
        if let Some(FlowEntry::Ambiguous(_)) = self.flows.insert(FlowKey::new(src, dst), FlowEntry::Owned(owner)) {
            self.markers -= 1;
        }
    }

    /// Forgets the flow `src -> dst` if `call` owns it.
    pub fn remove_flow(&mut self, src: SocketAddr, dst: SocketAddr, call: CallRef) {
        if let Some(FlowEntry::Owned(o)) = self.flows.get(&FlowKey::new(src, dst))
            && o.call == call
        {
            self.flows.remove(&FlowKey::new(src, dst));
        }
    }

    /// A newer announcement of both ends of `src -> dst` by `owner.call`: an existing flow of
    /// another call moves to it. Returns whether one did.
    pub fn claim_flow(&mut self, src: SocketAddr, dst: SocketAddr, owner: MediaOwner) -> bool {
        match self.flows.get_mut(&FlowKey::new(src, dst)) {
            Some(FlowEntry::Owned(o)) if o.call != owner.call => {
                *o = MediaOwner { learned: false, ..owner };
                true
            }
            _ => false,
        }
    }

    /// Counts one ambiguous packet of the flow `src -> dst` and remembers the flow as
    /// ambiguous until the claims change.
    pub fn ambiguous(&mut self, src: SocketAddr, dst: SocketAddr, now: Timestamp) {
        if let Some(a) = self.addrs.get_mut(&dst) {
            a.ambiguous += 1;
            a.last_ambiguous = Some(now);
        }
        let epoch = self.epoch;
        if let Some(FlowEntry::Ambiguous(e)) = self.flows.get_mut(&FlowKey::new(src, dst)) {
            *e = epoch;
            return;
        }
        if self.markers >= self.max_markers {
            // Forget markers of older epochs; if every one is current, do without.
            self.flows.retain(|f| !matches!(f, FlowEntry::Ambiguous(e) if *e != epoch));
            self.markers = self.flows.values().filter(|f| matches!(f, FlowEntry::Ambiguous(_))).count();
            if self.markers >= self.max_markers {
                return;
            }
        }
        if self.flows.insert(FlowKey::new(src, dst), FlowEntry::Ambiguous(epoch)).is_none() {
            self.markers += 1;
        }
    }

    /// Ambiguous packets ever sent to `addr` (0 when unclaimed), and when the last came.
    pub fn ambiguous_at(&self, addr: &SocketAddr) -> (u64, Option<Timestamp>) {
        self.addrs.get(addr).map_or((0, None), |a| (a.ambiguous, a.last_ambiguous))
    }

    /// Adds an announced claim of `owner.call` on `addr` (or renews it: the newest
    /// announcement of a pair wins). Returns whether other calls claim the address too.
    pub fn register(&mut self, addr: SocketAddr, owner: MediaOwner) -> bool {
        self.next_seq += 1;
        let seq = self.next_seq;
        let a = self.addrs.entry(addr).or_default();
        match a.claims.iter_mut().find(|c| c.owner.call == owner.call) {
            Some(c) => *c = Claim { owner, seq },
            None => {
                a.claims.push(Claim { owner, seq });
                self.epoch += 1;
            }
        }
        a.claims.len() > 1
    }

    /// Adds a learned claim of `owner.call` on `addr` unless the call already claims it or
    /// another call announced it. Returns whether it was added.
    pub fn learn(&mut self, addr: SocketAddr, owner: MediaOwner) -> bool {
        let a = self.addrs.entry(addr).or_default();
        if a.claims.iter().any(|c| c.owner.call == owner.call || !c.owner.learned) {
            return false;
        }
        self.next_seq += 1;
        a.claims.push(Claim { owner: MediaOwner { learned: true, ..owner }, seq: self.next_seq });
        self.epoch += 1;
        true
    }

    /// Removes `call`'s claim on `addr`.
    pub fn release(&mut self, addr: &SocketAddr, call: CallRef) {
        let Some(a) = self.addrs.get_mut(addr) else { return };
        let before = a.claims.len();
        a.claims.retain(|c| c.owner.call != call);
        if a.claims.len() != before {
            self.epoch += 1;
        }
        if a.claims.is_empty() {
            self.addrs.remove(addr);
        }
    }

    /// Changes whenever a claim is added or removed.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of claimed addresses.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when no address is claimed.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Flows remembered (attributed or ambiguous).
    pub fn flows(&self) -> usize {
        self.flows.len()
    }
}

/// Whether an SDP address cannot be where a party on the other side of a NAT is reached:
/// RFC 1918, carrier-grade NAT, link-local, unique local, loopback.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || v4.is_loopback() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(slot: u32) -> CallRef {
        CallRef { slot, generation: 0 }
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flow_is_one_cache_line() {
        assert_eq!(FlowTable::<FlowKey, FlowEntry>::slot_bytes(), 64);
    }

    /// Hosts: call `n`'s sender is at 10.0.0.n.
    struct Hosts;
    impl SenderHosts for Hosts {
        fn is_sender_host(&self, call: CallRef, _: Side, ip: IpAddr) -> bool {
            ip == IpAddr::from([10, 0, 0, call.slot as u8])
        }
    }

    /// Call `n`: caller at 10.0.0.n:4000 (announced), callee at `callee`.
    fn announce(t: &mut MediaTable, n: u32, callee: &str) {
        t.register(a(&format!("10.0.0.{n}:4000")), MediaOwner::rtp(call(n), Side::Callee));
        t.register(a(callee), MediaOwner::rtp(call(n), Side::Caller));
    }

    #[test]
    fn a_shared_destination_is_told_apart_by_the_source() {
        let mut t = MediaTable::default();
        for n in 1..=3 {
            announce(&mut t, n, "192.0.2.1:6000");
        }
        for n in 1..=3 {
            let src = a(&format!("10.0.0.{n}:4000"));
            assert_eq!(
                t.resolve(src, a("192.0.2.1:6000"), &Hosts),
                Resolution::Owner(MediaOwner::rtp(call(n), Side::Caller))
            );
            // The other direction: a destination of its own.
            assert_eq!(
                t.resolve(a("192.0.2.1:6000"), src, &Hosts),
                Resolution::Owner(MediaOwner::rtp(call(n), Side::Callee))
            );
        }
        // Another port of a caller's host: that caller (asymmetric RTP).
        assert_eq!(
            t.resolve(a("10.0.0.2:4100"), a("192.0.2.1:6000"), &Hosts),
            Resolution::Owner(MediaOwner::rtp(call(2), Side::Caller))
        );
        // A stranger: ambiguous, counted at the destination.
        let stranger = a("198.51.100.9:7000");
        assert_eq!(t.resolve(stranger, a("192.0.2.1:6000"), &Hosts), Resolution::Ambiguous);
        t.ambiguous(stranger, a("192.0.2.1:6000"), Timestamp(5));
        assert_eq!(t.flow(stranger, a("192.0.2.1:6000")), Flow::Ambiguous);
        assert_eq!(t.ambiguous_at(&a("192.0.2.1:6000")), (1, Some(Timestamp(5))));
        // A claim changes: the marker is looked at again.
        t.release(&a("192.0.2.1:6000"), call(3));
        assert_eq!(t.flow(stranger, a("192.0.2.1:6000")), Flow::Miss);
    }

    #[test]
    fn the_newest_announcement_of_the_same_pair_wins() {
        let mut t = MediaTable::default();
        t.register(a("10.0.0.1:4000"), MediaOwner::rtp(call(1), Side::Callee));
        t.register(a("192.0.2.1:6000"), MediaOwner::rtp(call(1), Side::Caller));
        t.insert_flow(a("10.0.0.1:4000"), a("192.0.2.1:6000"), MediaOwner::rtp(call(1), Side::Caller));
        // Call 2 announces the very same pair.
        t.register(a("10.0.0.1:4000"), MediaOwner::rtp(call(2), Side::Callee));
        t.register(a("192.0.2.1:6000"), MediaOwner::rtp(call(2), Side::Caller));
        assert_eq!(
            t.resolve(a("10.0.0.1:4000"), a("192.0.2.1:6000"), &Hosts),
            Resolution::Owner(MediaOwner::rtp(call(2), Side::Caller))
        );
        assert!(t.claim_flow(a("10.0.0.1:4000"), a("192.0.2.1:6000"), MediaOwner::rtp(call(2), Side::Caller)));
        assert_eq!(
            t.flow(a("10.0.0.1:4000"), a("192.0.2.1:6000")),
            Flow::Owned(MediaOwner::rtp(call(2), Side::Caller))
        );
        // The old call's end does not remove the flow it lost.
        t.remove_flow(a("10.0.0.1:4000"), a("192.0.2.1:6000"), call(1));
        assert!(matches!(t.flow(a("10.0.0.1:4000"), a("192.0.2.1:6000")), Flow::Owned(_)));
    }

    #[test]
    fn learned_claims_never_shadow_announcements_and_coexist_otherwise() {
        let mut t = MediaTable::default();
        let x = a("203.0.113.5:4000");
        assert!(t.learn(x, MediaOwner::rtp(call(1), Side::Caller)));
        assert!(!t.learn(x, MediaOwner::rtp(call(1), Side::Caller)), "once per call");
        assert!(t.learn(x, MediaOwner::rtp(call(2), Side::Caller)), "beside another call's learned claim");
        t.register(x, MediaOwner::rtp(call(3), Side::Callee));
        assert!(!t.learn(x, MediaOwner::rtp(call(4), Side::Caller)), "never beside an announcement");
        assert_eq!(t.len(), 1);
        for n in [1, 2, 3] {
            t.release(&x, call(n));
        }
        assert!(t.is_empty());
    }

    #[test]
    fn ambiguity_markers_are_capped() {
        let mut t = MediaTable::new(2);
        announce(&mut t, 1, "192.0.2.1:6000");
        announce(&mut t, 2, "192.0.2.1:6000");
        for p in 0..5u16 {
            t.ambiguous(SocketAddr::new([198, 51, 100, 1].into(), 7000 + p), a("192.0.2.1:6000"), Timestamp(0));
        }
        assert_eq!(t.flows(), 2);
        assert_eq!(t.ambiguous_at(&a("192.0.2.1:6000")).0, 5, "every packet counted");
    }

    #[test]
    fn private_ranges() {
        for ip in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1", "fd00::1", "fe80::1"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.113.7", "8.8.8.8", "100.128.0.1", "2001:db8::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
