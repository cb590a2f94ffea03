//! Mixing: one call's RTP placed on one timeline and written out as it goes.
//!
//! A packet's way through here: [`call::CallMix`] holds the call's two [`side`]s; the side's
//! [`clock`] says where the packet's RTP timestamp puts it (what that took is logged in
//! [`edits`]); the [`timeline`] keeps the G.711 codes ([`g711`]) until the parties' progress
//! settles them, then decodes them into the [`audio`] writer ([`wav`] or FLAC). Beside it:
//! per-stream statistics ([`stream`]), RFC 4733 events ([`dtmf`]), endpoint reports
//! ([`rtcp`]), the E-model ([`quality`]), the call's evidence capture ([`evidence`]), the
//! free-space reserve ([`disk`]) and the crash-recovery [`sidecar`]. A party keyed by SDES has
//! its RTP verified and decrypted ([`srtp`]) before any of that.
//!
//! Architecture invariant: nothing in `mix/` uses [`crate::pending`] or [`crate::finish`]; the
//! flow inside the crate is `mix` → `pending` → `finish`, never back.

pub mod audio;
pub(crate) mod call;
pub(crate) mod clock;
pub(crate) mod disk;
pub mod dtmf;
pub mod edits;
pub mod evidence;
pub mod flacfile;
pub mod g711;
pub(crate) mod g711_avx2;
pub mod g722;
pub mod linear;
pub mod narrow;
pub mod openfiles;
pub mod opus;
pub mod pause;
pub mod quality;
pub mod rtcp;
pub mod series;
pub(crate) mod side;
pub mod sidecar;
pub(crate) mod srtp;
pub(crate) mod stats;
pub mod stream;
pub mod timeline;
pub mod wav;
pub mod wideband;
pub mod writeback;

/// Samples per nanosecond divisor at 8 kHz.
pub(crate) const NS_PER_SAMPLE: i64 = 125_000;
