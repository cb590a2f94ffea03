//! The media table: which call and which sender an RTP (or RTCP) packet belongs to, looked up
//! by the address it was sent to.
//!
//! Addresses come from two places. *Announced* ones are the receive addresses in a party's
//! SDP (and the RTCP port beside them). *Learned* ones are what field recorders do for NAT:
//! with symmetric RTP a party receives where it sends from, so the source address of its
//! packets (and its public signalling address with the SDP's port, when the SDP names a private
//! address) is where the other party's media will go. An announcement always wins over a
//! learned address, and a learned address never takes one from another call.

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::events::{CallRef, Side};

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

/// Owner of a media address.
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
    /// The source address last seen sending here (symmetric RTP learning is done once per
    /// source, not per packet).
    pub peer: Option<SocketAddr>,
}

impl MediaOwner {
    /// An announced RTP address.
    pub fn rtp(call: CallRef, sender: Side) -> MediaOwner {
        MediaOwner { call, sender, kind: MediaKind::Rtp, learned: false, peer: None }
    }
}

/// Destination address -> call.
#[derive(Debug, Default)]
pub struct MediaTable {
    map: FxHashMap<SocketAddr, MediaOwner>,
}

impl MediaTable {
    /// Looks up the call that receives media at `dst`.
    #[inline]
    pub fn lookup(&self, dst: &SocketAddr) -> Option<MediaOwner> {
        self.map.get(dst).copied()
    }

    /// Remembers the source last seen sending to `dst`.
    #[inline]
    pub fn set_peer(&mut self, dst: &SocketAddr, src: SocketAddr) {
        if let Some(o) = self.map.get_mut(dst) {
            o.peer = Some(src);
        }
    }

    /// Ties an announced address to `owner`. Returns the previous owner when another call held
    /// the address: the newest announcement wins, since an address is reused only after its old
    /// call ended (or moved) as far as the endpoints are concerned.
    pub fn register(&mut self, dst: SocketAddr, owner: MediaOwner) -> Option<MediaOwner> {
        self.map.insert(dst, owner).filter(|prev| prev.call != owner.call)
    }

    /// Ties a learned address to `owner` unless the address is already taken (by an
    /// announcement, or by anything of another call). Returns whether it was registered.
    pub fn learn(&mut self, dst: SocketAddr, owner: MediaOwner) -> bool {
        match self.map.get(&dst) {
            Some(o) if o.call != owner.call || !o.learned => false,
            _ => {
                self.map.insert(dst, MediaOwner { learned: true, ..owner });
                true
            }
        }
    }

    /// Removes `dst` if `call` still owns it.
    pub fn release(&mut self, dst: &SocketAddr, call: CallRef) {
        if self.map.get(dst).is_some_and(|o| o.call == call) {
            self.map.remove(dst);
        }
    }

    /// Number of registered addresses.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no address is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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

    #[test]
    fn learned_addresses_never_take_from_announcements_or_other_calls() {
        let mut t = MediaTable::default();
        let a: SocketAddr = "203.0.113.5:4000".parse().unwrap();
        assert!(t.learn(a, MediaOwner::rtp(call(1), Side::Caller)));
        assert!(t.lookup(&a).unwrap().learned);
        // Another call cannot learn it; an announcement takes it.
        assert!(!t.learn(a, MediaOwner::rtp(call(2), Side::Caller)));
        assert!(t.register(a, MediaOwner::rtp(call(2), Side::Callee)).is_some());
        assert!(!t.lookup(&a).unwrap().learned);
        // Now announced: not even its own call can turn it into a learned one.
        assert!(!t.learn(a, MediaOwner::rtp(call(2), Side::Caller)));
        assert_eq!(t.lookup(&a).unwrap().sender, Side::Callee);
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
