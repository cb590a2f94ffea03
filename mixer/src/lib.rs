//! callvault mixer: calls in, recordings out.
//!
//! The [`mixer::Mixer`] consumes capture's events (it is an `EventSink`), places each call's
//! RTP on one timeline by RTP timestamp, decodes G.711 ([`g711`]) into a stereo WAV written as
//! the call goes ([`timeline`], [`wav`]) and keeps per-stream statistics ([`stream`]). When a
//! call ends it hands a [`mixer::PendingRecording`] to [`finish`], which makes the files
//! durable, hashes them and writes the JSON call record ([`record`]). Nothing here knows about
//! packet capture formats, spools or archives.

pub mod audio;
mod clock;
mod disk;
pub mod dtmf;
pub mod edits;
pub mod evidence;
pub mod finish;
pub mod g711;
pub mod mixer;
pub mod quality;
pub mod record;
pub mod recover;
mod report;
pub mod rtcp;
mod side;
pub mod stream;
pub mod timeline;
pub mod wav;

pub use finish::{Finished, FinishedFile, adopt, finish};
pub use mixer::{Mixer, MixerConfig, MixerStats, PendingRecording};
