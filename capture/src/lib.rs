//! callvault capture: bytes in, calls out.
//!
//! Packet sources (libpcap files and live interfaces) feed frames to an [`engine::Engine`],
//! which decodes frames through tunnels, IP fragments and TCP streams ([`ingress`], [`decode`],
//! [`reassembly`]), parses SIP and SDP ([`wire`]), follows every
//! dialog ([`dialog`]) and ties RTP to calls through the [`media`] table. What it learns leaves
//! as [`events`] through an [`events::EventSink`]. Nothing in this crate knows about WAV files,
//! spools or archives.

pub mod codec;
pub mod decode;
pub mod dialog;
pub mod engine;
pub mod events;
pub mod ingress;
pub mod limits;
pub mod media;
pub mod reassembly;
pub mod source;
pub mod stats;
pub mod time;
pub mod wire;

pub use decode::LinkType;
pub use engine::{Engine, EngineConfig};
pub use events::{CallEvent, CallRef, EventSink, RtpMeta, Side};
pub use time::Timestamp;
