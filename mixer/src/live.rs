//! The live view: what the mixer knows of each call in progress (parties, codecs, and each
//! direction's packets, loss, jitter and the MOS they would give), for dashboards and the API.
//! Taken on demand ([`crate::Mixer::live`]); nothing here runs per packet.

use capture::Timestamp;
use capture::events::Side;

use crate::mix::call::{CallMix, stream_codec};
use crate::mix::quality::g711_quality;

/// A call in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCall {
    /// SIP Call-ID.
    pub call_id: String,
    /// First INVITE.
    pub start: Timestamp,
    /// From user.
    pub from: Option<String>,
    /// To user.
    pub to: Option<String>,
    /// Caller's direction, then callee's.
    pub sides: [LiveSide; 2],
    /// Recording is paused (PCI DSS) right now.
    pub paused: bool,
}

/// One direction of a call in progress, as of its current stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSide {
    /// Codec of the current stream.
    pub codec: Option<String>,
    /// Packets received (all streams).
    pub packets: u64,
    /// Packets lost in the current stream.
    pub lost: u64,
    /// Loss of the current stream, percent.
    pub loss_pct: f64,
    /// Interarrival jitter of the current stream, ms.
    pub jitter_ms: f64,
    /// MOS of the current stream so far (G.711 only).
    pub mos: Option<f64>,
    /// Capture time of this direction's last packet.
    pub last: Option<Timestamp>,
}

pub(crate) fn of(mix: &CallMix) -> LiveCall {
    let side = |s: Side| {
        let state = &mix.sides[s.index()];
        let streams = state.streams();
        let Some(st) = streams.last() else { return LiveSide::default() };
        let codec = stream_codec(&mix.media, s, st);
        let g711 = !st.is_event_stream() && matches!(codec.as_deref(), Some("PCMU" | "PCMA"));
        let (bursts, _) = st.loss_runs();
        LiveSide {
            mos: g711.then(|| g711_quality(st.loss_pct(), bursts, st.lost(), st.unique, st.jitter_ms()).mos),
            codec,
            packets: streams.iter().map(|s| s.unique).sum(),
            lost: st.lost(),
            loss_pct: st.loss_pct(),
            jitter_ms: st.jitter_ms(),
            last: Some(st.last),
        }
    };
    LiveCall {
        call_id: mix.call_id.clone(),
        start: mix.start,
        from: mix.parties.0.user.clone(),
        to: mix.parties.1.user.clone(),
        sides: [side(Side::Caller), side(Side::Callee)],
        paused: mix.pause.paused(),
    }
}
