//! callvault capture: bytes in, calls out.
//!
//! Three layers, each driven by packet capture time:
//!
//! * [`wire`]: zero-copy views of every byte format (link layers, IP, tunnels, UDP/TCP, SIP,
//!   SDP, RTP, RTCP, RFC 4733 events, ZRTP). No state, no allocation.
//! * [`transport`]: frames in, UDP datagrams and SIP messages out: tunnels, IP fragments and
//!   TCP streams ([`transport::ingress`], [`transport::decode`], [`transport::reassembly`]).
//! * [`call`]: every dialog followed ([`call::dialog`]) and media tied to calls
//!   ([`call::media`], [`call::codec`]).
//!
//! Packet sources ([`source`]: libpcap files and live interfaces) feed frames to an
//! [`engine::Engine`], which drives the layers and hands what it learns on as [`events`]
//! through an [`events::EventSink`]. Nothing in this crate knows about WAV files, spools or
//! archives.

pub mod call;
pub mod engine;
pub mod events;
pub mod held;
pub mod limits;
pub mod prefetch;
pub mod source;
pub mod stats;
pub mod time;
pub mod transport;
pub mod wire;

// The modules under their earlier flat paths.
pub use call::{codec, dialog, media};
pub use transport::{decode, ingress, reassembly};

pub use decode::LinkType;
pub use engine::{Engine, EngineConfig};
pub use events::{CallEvent, CallRef, EventSink, RtpMeta, Side};
pub use time::Timestamp;
