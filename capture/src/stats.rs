//! Counters kept by the capture engine. Plain integers owned by the capture thread; the
//! wiring copies a snapshot out for summaries and metrics.

use crate::transport::decode::Tunnel;
use crate::wire::Layer;

/// Capture counters. Every packet is counted exactly once in `frames`, and then in at most
/// one of the skip/malformed counters or as SIP/RTP.
///
/// Each counter has one owner: the transport layer ([`crate::transport::ingress::Ingress`])
/// keeps its own [`IngressStats`] (decoding, tunnels, reassembly), which an engine's snapshot
/// holds in `ingress`; the fields here are counted by the engine and the call layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed to the engine.
    pub frames: u64,
    /// Captured bytes handed to the engine.
    pub bytes: u64,
    /// Messages that failed to parse above the transport layer (SIP, SDP), by layer (index =
    /// position in [`Layer::ALL`]); the transport layer's are in `ingress.malformed`, and
    /// [`CaptureStats::malformed`] adds both.
    pub malformed: [u64; Layer::COUNT],
    /// Of the datagrams cut short (`ingress.truncated`), SIP messages (found by content) and RTP of a call.
    pub truncated_sip: u64,
    /// RTP packets of a call cut short (their audio is partly missing).
    pub truncated_rtp: u64,
    /// The longest frame captured (bytes): the snapshot length when most frames are cut.
    pub largest_frame: u64,
    /// UDP datagrams that are neither SIP nor media of a tracked call (those that looked like
    /// media are counted when they leave the hold, [`crate::held`], unclaimed).
    pub udp_unmatched: u64,
    /// Datagrams captured before the SDP announcing their address (or the other party's first
    /// packet, symmetric RTP) showed it, kept for a moment and then handed on to their call
    /// ([`crate::held`]).
    pub media_before_sdp: u64,
    /// Datagrams the hold let go unclaimed before their time to make room
    /// (`Limits::max_held_media`): counted in `udp_unmatched` too.
    pub media_hold_evicted: u64,
    /// SIP messages parsed.
    pub sip_messages: u64,
    /// Their bytes (the SIP message: start line, headers and body).
    pub sip_bytes: u64,
    /// SIP messages without a Call-ID.
    pub sip_without_call_id: u64,
    /// SIP messages of dialogs that are not calls (REGISTER, OPTIONS, SUBSCRIBE, ...).
    pub sip_not_call: u64,
    /// In-dialog SIP for a Call-ID whose INVITE was not seen.
    pub sip_unknown_dialog: u64,
    /// SIP messages of a tracked call that fit none of its states (a CANCEL after the answer,
    /// a ringing response after it): counted, then ignored.
    pub sip_out_of_state: u64,
    /// Requests whose pause header (`pause_header`) had a value that neither pauses nor resumes.
    pub sip_bad_pause_header: u64,
    /// SDP bodies that could not be used.
    pub sdp_unusable: u64,
    /// RTP packets tied to a call.
    pub rtp_packets: u64,
    /// Their bytes (the UDP payload: RTP header and media).
    pub rtp_bytes: u64,
    /// RTCP packets of a call (on its own port or multiplexed).
    pub rtcp_packets: u64,
    /// Their bytes (the UDP payload).
    pub rtcp_bytes: u64,
    /// Datagrams to a call's media address that are not RTP (STUN, ZRTP, garbage).
    pub media_not_rtp: u64,
    /// ZRTP packets on a call's media address (counted in `media_not_rtp` too).
    pub zrtp_packets: u64,
    /// Datagrams of calls' non-audio media lines (video, T.38, BFCP): counted, not recorded.
    pub other_media_packets: u64,
    /// Calls started.
    pub calls_started: u64,
    /// Calls ended (finalised).
    pub calls_ended: u64,
    /// New calls refused because `Limits::max_calls` was reached.
    pub calls_shed: u64,
    /// Media addresses retired because a call exceeded `Limits::max_media_per_call`.
    pub media_retired: u64,
    /// Media flows taken over by a later call announcing both of their ends.
    pub media_reassigned: u64,
    /// Media packets to an address several calls use, from a source that does not say which
    /// call they belong to: recorded in none.
    pub media_ambiguous: u64,
    /// Media flows forgotten because a call exceeded `Limits::max_media_flows_per_call`.
    pub media_flows_evicted: u64,
    /// Media addresses learned from traffic (symmetric RTP, NAT).
    pub media_learned: u64,
    /// RTCP packets on their own port.
    pub rtcp_port_packets: u64,
    /// SIP messages larger than `Limits::max_sip_message`.
    pub sip_oversized: u64,
    /// Transport layer: tunnels, IP reassembly, TCP streams.
    pub ingress: IngressStats,
}

impl CaptureStats {
    /// Malformed count for one layer (transport and above).
    pub fn malformed(&self, layer: Layer) -> u64 {
        self.malformed[layer as usize] + self.ingress.malformed[layer as usize]
    }

    /// Total malformed frames over all layers.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().chain(&self.ingress.malformed).sum()
    }

    pub(crate) fn count_malformed(&mut self, layer: Layer) {
        self.malformed[layer as usize] += 1;
    }

    /// Every counter with a stable name, for summaries and metrics.
    pub fn named(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = vec![
            ("frames".into(), self.frames),
            ("bytes".into(), self.bytes),
            ("truncated".into(), self.ingress.truncated),
            ("truncated_sip".into(), self.truncated_sip),
            ("truncated_rtp".into(), self.truncated_rtp),
            ("not_ip".into(), self.ingress.not_ip),
            ("ip_fragments".into(), self.ingress.ip_fragments),
            ("tcp_segments".into(), self.ingress.tcp_segments),
            ("other_ip".into(), self.ingress.other_ip),
            ("udp_unmatched".into(), self.udp_unmatched),
            ("media_before_sdp".into(), self.media_before_sdp),
            ("media_hold_evicted".into(), self.media_hold_evicted),
            ("sip_messages".into(), self.sip_messages),
            ("sip_without_call_id".into(), self.sip_without_call_id),
            ("sip_not_call".into(), self.sip_not_call),
            ("sip_unknown_dialog".into(), self.sip_unknown_dialog),
            ("sip_oversized".into(), self.sip_oversized),
            ("sip_out_of_state".into(), self.sip_out_of_state),
            ("sip_bad_pause_header".into(), self.sip_bad_pause_header),
            ("sdp_unusable".into(), self.sdp_unusable),
            ("rtp_packets".into(), self.rtp_packets),
            ("rtcp_packets".into(), self.rtcp_packets),
            ("media_not_rtp".into(), self.media_not_rtp),
            ("zrtp_packets".into(), self.zrtp_packets),
            ("other_media_packets".into(), self.other_media_packets),
            ("calls_started".into(), self.calls_started),
            ("calls_ended".into(), self.calls_ended),
            ("calls_shed".into(), self.calls_shed),
            ("media_retired".into(), self.media_retired),
            ("media_reassigned".into(), self.media_reassigned),
            ("media_ambiguous".into(), self.media_ambiguous),
            ("media_flows_evicted".into(), self.media_flows_evicted),
            ("media_learned".into(), self.media_learned),
            ("rtcp_port_packets".into(), self.rtcp_port_packets),
        ];
        for layer in Layer::ALL {
            v.push((format!("malformed_{}", layer.name()), self.malformed(layer)));
        }
        self.ingress.push_named(&mut v);
        v
    }
}

/// Counters of the transport layer ([`crate::transport::ingress::Ingress`]): decapsulation, IP fragment
/// reassembly and TCP stream reassembly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressStats {
    /// Frames that failed to decode, by layer (index = position in [`Layer::ALL`]).
    pub malformed: [u64; Layer::COUNT],
    /// IP packets, UDP datagrams or TCP segments shorter than their headers declare.
    pub truncated: u64,
    /// Frames (or tunnel payloads) that are not IP: ARP, LLDP, PPP control, ...
    pub not_ip: u64,
    /// IP protocols other than UDP, TCP and the tunnels followed.
    pub other_ip: u64,
    /// IP fragments seen.
    pub ip_fragments: u64,
    /// TCP segments seen.
    pub tcp_segments: u64,
    /// Truncated TCP segments (their missing bytes become a gap in the stream).
    pub tcp_truncated: u64,
    /// Packets decapsulated, per kind of tunnel (index = `Tunnel as usize`; see
    /// [`IngressStats::tunnel`]).
    pub tunnels: [u64; Tunnel::COUNT],
    /// Frames nested deeper than `Limits::max_tunnel_depth` (dropped).
    pub tunnel_too_deep: u64,
    /// Tunnel payloads of a kind not followed (GRE protocols such as keepalives or NSH,
    /// ERSPAN frame types other than Ethernet).
    pub tunnel_unsupported: u64,
    /// IP fragment reassembly.
    pub defrag: DefragStats,
    /// TCP stream reassembly (SIP over WebSocket included).
    pub tcp: TcpStats,
    /// SCTP packets (IP protocol 132) seen.
    pub sctp_packets: u64,
    /// SIP over SCTP.
    pub sctp: SctpStats,
}

impl IngressStats {
    /// Packets decapsulated from one kind of tunnel.
    pub fn tunnel(&self, kind: Tunnel) -> u64 {
        self.tunnels[kind as usize]
    }

    /// Packets decapsulated from any tunnel.
    pub fn tunnels_total(&self) -> u64 {
        self.tunnels.iter().sum()
    }

    /// Appends every counter except those [`CaptureStats::named`] lists first (`truncated`,
    /// `not_ip`, `ip_fragments`, `tcp_segments`, `other_ip`, `malformed_*`).
    fn push_named(&self, v: &mut Vec<(String, u64)>) {
        let d = &self.defrag;
        let t = &self.tcp;
        v.push(("tcp_truncated".into(), self.tcp_truncated));
        v.extend(Tunnel::ALL.map(|t| (format!("tunnel_{}", t.name()), self.tunnel(t))));
        let named: [(&str, u64); 28] = [
            ("tunnel_too_deep", self.tunnel_too_deep),
            ("tunnel_unsupported", self.tunnel_unsupported),
            ("frag_reassembled", d.reassembled),
            ("frag_duplicates", d.duplicates),
            ("frag_overlaps", d.overlaps),
            ("frag_conflicts", d.conflicts),
            ("frag_timeouts", d.timeouts),
            ("frag_shed_table_full", d.shed_table_full),
            ("frag_shed_bytes", d.shed_bytes),
            ("frag_too_large", d.too_large),
            ("frag_too_many_pieces", d.too_many_pieces),
            ("frag_truncated", d.truncated),
            ("tcp_sip_messages", t.sip_messages),
            ("tcp_connections", t.connections),
            ("tcp_connections_shed", t.connections_shed),
            ("tcp_connections_closed", t.connections_closed),
            ("tcp_connections_expired", t.connections_expired),
            ("tcp_retransmissions", t.retransmissions),
            ("tcp_out_of_order", t.out_of_order),
            ("tcp_overlaps", t.overlaps),
            ("tcp_conflicts", t.conflicts),
            ("tcp_gaps", t.gaps),
            ("tcp_buffer_full", t.buffer_full),
            ("tcp_too_many_pieces", t.too_many_pieces),
            ("tcp_sip_invalid", t.invalid),
            ("tcp_sip_oversized", t.oversized),
            ("tcp_bytes_skipped", t.bytes_skipped),
            ("tcp_bytes_unsynced", t.bytes_unsynced),
        ];
        v.extend(named.into_iter().map(|(n, c)| (n.to_owned(), c)));
        let (w, s) = (&t.ws, &self.sctp);
        let more: [(&str, u64); 26] = [
            ("tls_handshakes", t.tls_handshakes),
            ("ws_upgrades", w.upgrades),
            ("ws_not_sip", w.not_sip),
            ("ws_refused", w.refused),
            ("ws_messages", w.messages),
            ("ws_control_frames", w.control_frames),
            ("ws_bad_handshakes", w.bad_handshakes),
            ("ws_reserved_bits", w.reserved_bits),
            ("ws_unknown_opcode", w.unknown_opcode),
            ("ws_bad_control", w.bad_control),
            ("ws_too_large", w.too_large),
            ("ws_bad_length", w.bad_length),
            ("ws_fragment_errors", w.fragment_errors),
            ("ws_lost", w.lost),
            ("sctp_packets", s.packets),
            ("sctp_sip_messages", s.sip_messages),
            ("sctp_data_chunks", s.data_chunks),
            ("sctp_control_chunks", s.control_chunks),
            ("sctp_fragments", s.fragments),
            ("sctp_reassembled", s.reassembled),
            ("sctp_incomplete", s.incomplete),
            ("sctp_retransmissions", s.retransmissions),
            ("sctp_not_sip", s.not_sip),
            ("sctp_too_large", s.too_large),
            ("sctp_shed", s.shed),
            ("sctp_malformed", s.malformed),
        ];
        v.extend(more.into_iter().map(|(n, c)| (n.to_owned(), c)));
        v.push(("sctp_checksum_mismatch".into(), s.checksum_mismatch));
    }
}

/// Counters of IP fragment reassembly ([`crate::transport::reassembly::ip::Defragmenter`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams reassembled and handed on.
    pub reassembled: u64,
    /// Fragments that brought no new byte (exact duplicates).
    pub duplicates: u64,
    /// Fragments overlapping bytes already held, with the same content (the new bytes kept).
    pub overlaps: u64,
    /// Fragments contradicting what is held (different bytes in an overlap, or a different end
    /// of datagram): the whole datagram is dropped.
    pub conflicts: u64,
    /// Datagrams dropped incomplete after `Timeouts::fragment`.
    pub timeouts: u64,
    /// Fragments dropped because `Limits::max_frag_reassemblies` datagrams were in progress.
    pub shed_table_full: u64,
    /// Fragments dropped because `Limits::max_frag_bytes` were held.
    pub shed_bytes: u64,
    /// Datagrams dropped because a fragment reached past 65,535 bytes.
    pub too_large: u64,
    /// Fragments dropped because their datagram already had the maximum number of disjoint
    /// pieces (a fragment-flood pattern).
    pub too_many_pieces: u64,
    /// Fragments dropped because they were cut short by the capture (cannot be reassembled).
    pub truncated: u64,
}

/// Counters of TCP stream reassembly ([`crate::transport::reassembly::tcp::TcpReassembler`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// SIP messages framed out of TCP streams.
    pub sip_messages: u64,
    /// Connections followed (SYN on port 5060, or SIP seen in a segment).
    pub connections: u64,
    /// Connections not followed because `Limits::max_tcp_connections` were.
    pub connections_shed: u64,
    /// Connections closed by FIN in both directions or by RST.
    pub connections_closed: u64,
    /// Connections forgotten after `Timeouts::tcp_idle`.
    pub connections_expired: u64,
    /// Segments carrying only bytes already delivered.
    pub retransmissions: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub out_of_order: u64,
    /// Segments partly overlapping bytes already held (the held bytes are kept).
    pub overlaps: u64,
    /// Overlaps whose bytes differ from the ones held (the held bytes are kept).
    pub conflicts: u64,
    /// Holes given up on (bytes the capture never saw): the stream resynchronises after them.
    pub gaps: u64,
    /// Segments dropped by `Limits::max_tcp_buffer` or `Limits::max_tcp_bytes`.
    pub buffer_full: u64,
    /// Segments dropped because a direction already held the maximum number of out-of-order
    /// pieces.
    pub too_many_pieces: u64,
    /// Places where the stream did not hold a SIP message (bad start line or Content-Length):
    /// the reader resynchronised on the next start line.
    pub invalid: u64,
    /// Messages larger than `Limits::max_sip_message`: skipped, then resynchronised.
    pub oversized: u64,
    /// Bytes thrown away while looking for the next start line.
    pub bytes_skipped: u64,
    /// Payload bytes of followed connections before the first start line was found.
    pub bytes_unsynced: u64,
    /// TLS ClientHellos to a port of SIP over TLS or `wss://` (`TLS_SIP_PORTS`): signalling
    /// that cannot be read passively.
    pub tls_handshakes: u64,
    /// SIP over WebSocket.
    pub ws: WsStats,
}

/// Counters of SIP over SCTP ([`crate::transport::reassembly::sctp::SctpReassembler`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SctpStats {
    /// SCTP packets read.
    pub packets: u64,
    /// SIP messages handed on (whole or reassembled user messages).
    pub sip_messages: u64,
    /// DATA and I-DATA chunks.
    pub data_chunks: u64,
    /// Other chunks (INIT, SACK, HEARTBEAT, ...): skipped.
    pub control_chunks: u64,
    /// Fragments of user messages held for reassembly.
    pub fragments: u64,
    /// User messages put together from fragments.
    pub reassembled: u64,
    /// Messages dropped incomplete (a fragment lost: timed out, or left outside a complete run).
    pub incomplete: u64,
    /// Chunks whose TSN was already delivered (retransmissions): not delivered twice.
    pub retransmissions: u64,
    /// User messages that are not SIP (Diameter, SIGTRAN, ...).
    pub not_sip: u64,
    /// Messages larger than `Limits::max_sip_message`: dropped.
    pub too_large: u64,
    /// Fragments dropped by a cap (messages held, bytes held, fragments per message).
    pub shed: u64,
    /// Packets or chunks that could not be read (length 0, past the packet's end, too short).
    pub malformed: u64,
    /// Packets whose CRC32c is wrong (often checksum offload on the capturing host): used anyway.
    pub checksum_mismatch: u64,
}

/// Counters of SIP over WebSocket (RFC 7118) read out of TCP connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Upgrade requests offering the `sip` subprotocol (connections read as WebSocket).
    pub upgrades: u64,
    /// Upgrade requests for another subprotocol (the connection is not followed further).
    pub not_sip: u64,
    /// Upgrades answered with another status than 101.
    pub refused: u64,
    /// Complete messages (one SIP message each) handed on; also in `TcpStats::sip_messages`.
    pub messages: u64,
    /// Ping, pong and close frames (skipped).
    pub control_frames: u64,
    /// Handshakes that could not be read (the connection is given up).
    pub bad_handshakes: u64,
    /// Frames with a reserved bit set (skipped by their length).
    pub reserved_bits: u64,
    /// Frames with a reserved opcode (skipped by their length).
    pub unknown_opcode: u64,
    /// Control frames over 125 bytes or fragmented (skipped by their length).
    pub bad_control: u64,
    /// Frames or messages larger than `Limits::max_sip_message` (skipped).
    pub too_large: u64,
    /// Frames whose 64-bit length has its top bit set (the direction is given up).
    pub bad_length: u64,
    /// Continuation frames without a message, or a message begun before the last one ended.
    pub fragment_errors: u64,
    /// Directions given up (a hole in the stream, an unreadable length).
    pub lost: u64,
}
