//! callvault mixer: calls in, recordings out.
//!
//! The [`Mixer`] ([`route`]) consumes capture's events (it is an `EventSink`) and routes each
//! call's RTP into [`mix`]: placed on one timeline by RTP timestamp, G.711 decoded into a WAV
//! or FLAC written as the call goes, with per-stream statistics. When a call ends the mixer
//! closes it into a [`PendingRecording`] ([`pending`], built by `finish::report`) and hands it
//! to the wiring's [`Drain`]; [`finish`] then makes the files durable, hashes them and writes
//! the JSON call record ([`record`]). Nothing here knows about spools or archives.

pub mod finish;
pub mod live;
pub mod mix;
pub mod pending;
pub mod record;
pub mod route;

pub use finish::{Finished, FinishedFile, adopt, finish, finish_group};
pub use live::{LiveCall, LiveSide};
pub use mix::stats::MixerStats;
pub use pending::{Drain, PendingRecording};
pub use route::{Mixer, MixerConfig, PauseAnswer};
