//! Counters kept by the capture engine. Plain integers owned by the capture thread; the
//! wiring copies a snapshot out for summaries and metrics.

use crate::wire::Layer;

/// Capture counters. Every packet is counted exactly once in `frames`, and then in at most
/// one of the skip/malformed counters or as SIP/RTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed to the engine.
    pub frames: u64,
    /// Captured bytes handed to the engine.
    pub bytes: u64,
    /// Frames that failed to decode, by layer (index = position in [`Layer::ALL`]).
    pub malformed: [u64; 7],
    /// UDP datagrams shorter than their headers declare (processed with what there is).
    pub truncated: u64,
    /// Frames that are not IP (ARP, LLDP, ...).
    pub not_ip: u64,
    /// IP fragments (not reassembled yet).
    pub ip_fragments: u64,
    /// TCP segments (SIP over TCP is not followed yet).
    pub tcp_segments: u64,
    /// Other IP protocols.
    pub other_ip: u64,
    /// UDP datagrams that are neither SIP nor media of a tracked call.
    pub udp_unmatched: u64,
    /// SIP messages parsed.
    pub sip_messages: u64,
    /// SIP messages without a Call-ID.
    pub sip_without_call_id: u64,
    /// SIP messages of dialogs that are not calls (REGISTER, OPTIONS, SUBSCRIBE, ...).
    pub sip_not_call: u64,
    /// In-dialog SIP for a Call-ID whose INVITE was not seen.
    pub sip_unknown_dialog: u64,
    /// SDP bodies that could not be used.
    pub sdp_unusable: u64,
    /// RTP packets tied to a call.
    pub rtp_packets: u64,
    /// RTCP packets on a call's media address (multiplexed).
    pub rtcp_packets: u64,
    /// Datagrams to a call's media address that are not RTP (STUN, ZRTP, garbage).
    pub media_not_rtp: u64,
    /// Calls started.
    pub calls_started: u64,
    /// Calls ended (finalised).
    pub calls_ended: u64,
    /// New calls refused because `Limits::max_calls` was reached.
    pub calls_shed: u64,
    /// Media addresses retired because a call exceeded `Limits::max_media_per_call`.
    pub media_retired: u64,
    /// Media addresses taken over by a later call announcing the same address.
    pub media_reassigned: u64,
    /// SIP messages larger than `Limits::max_sip_message`.
    pub sip_oversized: u64,
}

impl CaptureStats {
    /// Malformed count for one layer.
    pub fn malformed(&self, layer: Layer) -> u64 {
        self.malformed[layer as usize]
    }

    /// Total malformed frames over all layers.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    pub(crate) fn count_malformed(&mut self, layer: Layer) {
        self.malformed[layer as usize] += 1;
    }

    /// Every counter with a stable name, for summaries and metrics.
    pub fn named(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = vec![
            ("frames".into(), self.frames),
            ("bytes".into(), self.bytes),
            ("truncated".into(), self.truncated),
            ("not_ip".into(), self.not_ip),
            ("ip_fragments".into(), self.ip_fragments),
            ("tcp_segments".into(), self.tcp_segments),
            ("other_ip".into(), self.other_ip),
            ("udp_unmatched".into(), self.udp_unmatched),
            ("sip_messages".into(), self.sip_messages),
            ("sip_without_call_id".into(), self.sip_without_call_id),
            ("sip_not_call".into(), self.sip_not_call),
            ("sip_unknown_dialog".into(), self.sip_unknown_dialog),
            ("sip_oversized".into(), self.sip_oversized),
            ("sdp_unusable".into(), self.sdp_unusable),
            ("rtp_packets".into(), self.rtp_packets),
            ("rtcp_packets".into(), self.rtcp_packets),
            ("media_not_rtp".into(), self.media_not_rtp),
            ("calls_started".into(), self.calls_started),
            ("calls_ended".into(), self.calls_ended),
            ("calls_shed".into(), self.calls_shed),
            ("media_retired".into(), self.media_retired),
            ("media_reassigned".into(), self.media_reassigned),
        ];
        for layer in Layer::ALL {
            v.push((format!("malformed_{}", layer.name()), self.malformed(layer)));
        }
        v
    }
}
