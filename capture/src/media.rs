//! The media table: which call and which sender an RTP packet belongs to, looked up by the
//! address it was sent to (as announced in the receiving party's SDP).

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use crate::events::{CallRef, Side};

/// Owner of a media address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOwner {
    /// The call.
    pub call: CallRef,
    /// The party that sends RTP to this address.
    pub sender: Side,
}

/// Destination address -> call. One entry per announced receive address.
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

    /// Ties `dst` to `owner`. Returns the previous owner when another call held the address:
    /// the newest announcement wins, since an address is reused only after its old call ended
    /// (or moved) as far as the endpoints are concerned.
    pub fn register(&mut self, dst: SocketAddr, owner: MediaOwner) -> Option<MediaOwner> {
        self.map.insert(dst, owner).filter(|prev| prev.call != owner.call)
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
