//! Caps on every table and buffer fed by the network, and the capture-time timeouts.
//!
//! A limit that is hit sheds the newest work, increments a named counter in
//! [`crate::stats::CaptureStats`] and never grows memory. Tests shrink these to run the edges.

/// Hard caps on state kept per capture engine. With the `serde` feature this is also the
/// `[limits]` table of the configuration file, key for field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct Limits {
    /// Calls tracked at once. A new INVITE beyond this is counted in `calls_shed` and ignored.
    /// Default 20,000.
    pub max_calls: usize,
    /// Media addresses registered per call (announced RTP and RTCP addresses and those learned
    /// from traffic); the announcing party's oldest ones are retired first. Default 16.
    pub max_media_per_call: usize,
    /// Media flows (source and destination address) remembered per call once their first packet
    /// was attributed; the call's oldest flow makes room (counted in `media_flows_evicted`; a
    /// later packet of it is attributed again). Default 32.
    pub max_media_flows_per_call: usize,
    /// Header lines per SIP message. Default 128.
    pub max_sip_headers: usize,
    /// Bytes in one SIP message, over UDP or framed out of TCP. Default 65,535.
    pub max_sip_message: usize,
    /// IP datagrams (IPv4 and IPv6) being reassembled from fragments at once. A fragment that
    /// would start one more is dropped and counted in `frag_shed_table_full`. Default 1,024.
    pub max_frag_reassemblies: usize,
    /// Bytes held by all fragment reassemblies together (each counted at the size of its
    /// buffer, i.e. up to the highest fragment end seen). A fragment that would grow past it is
    /// dropped and counted in `frag_shed_bytes`. Default 8 MiB.
    pub max_frag_bytes: usize,
    /// TCP connections followed for SIP at once. A new one beyond this is not followed and is
    /// counted in `tcp_connections_shed`. Default 4,096.
    pub max_tcp_connections: usize,
    /// Bytes buffered per TCP connection, both directions, the partial message and the
    /// out-of-order segments included. A segment that would exceed it is dropped and counted in
    /// `tcp_buffer_full`. Default 128 KiB (two maximal SIP messages).
    pub max_tcp_buffer: usize,
    /// Bytes buffered by all TCP connections together. A segment that would exceed it is
    /// dropped and counted in `tcp_buffer_full`. Default 64 MiB.
    pub max_tcp_bytes: usize,
    /// Encapsulations (GRE, ERSPAN, VXLAN, MPLS, PPPoE, IP-in-IP) followed inside one frame. A
    /// frame nested deeper is dropped and counted in `tunnel_too_deep`. Default 8.
    pub max_tunnel_depth: usize,
    /// Datagrams that look like RTP or RTCP but go to no announced address, kept for up to
    /// 500 ms for an SDP captured just after them (see [`crate::held`]). Beyond it the oldest
    /// one is counted unmatched at once (`media_hold_evicted`). 0: none kept. Default 4,096.
    pub max_held_media: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_calls: 20_000,
            max_media_per_call: 16,
            max_media_flows_per_call: 32,
            max_sip_headers: 128,
            max_sip_message: 65_535,
            max_frag_reassemblies: 1_024,
            max_frag_bytes: 8 << 20,
            max_tcp_connections: 4_096,
            max_tcp_buffer: 128 << 10,
            max_tcp_bytes: 64 << 20,
            max_tunnel_depth: 8,
            max_held_media: 4_096,
        }
    }
}

/// Capture-time timeouts, in nanoseconds. With the `serde` feature this is also the
/// `[timeouts]` table of the configuration file, key for field, written in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct Timeouts {
    /// An answered call with no RTP and no SIP for this long is ended (`media_timeout`): one
    /// that had RTP, and one that never had any while other calls' RTP is seen on the capture
    /// (its media should be there too; the time runs from its last SIP message, the ACK).
    /// Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub media: i64,
    /// An answered call that never had RTP, on a capture where no call's RTP was seen within
    /// the media timeout (the capture is SIP only, or media takes another path), with no SIP for
    /// this long is ended (`media_timeout`). Default 4 h.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub signalling_only: i64,
    /// A 2xx answer that the answerer retransmitted (it is waiting for the ACK) and that no ACK,
    /// request of the dialog or RTP followed for this long after the answer ends the call
    /// (`no_ack`): RFC 3261 13.3.1.4, 64*T1. Default 32 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub no_ack: i64,
    /// An INVITE that got no response at all (not even 100 Trying) is given up this long after
    /// it was first sent (`setup_timeout`): RFC 3261 timer B, 64*T1. Default 32 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub invite: i64,
    /// After BYE, trailing RTP is still accepted for this long before the call is finalised.
    /// Default 2 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub bye_linger: i64,
    /// After a final failure response (or CANCEL/487), retransmissions and ACK are absorbed for
    /// this long before the call is finalised. Default 2 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub failure_linger: i64,
    /// After a 401/407 challenge, how long to wait for the INVITE re-sent with credentials (same
    /// Call-ID and From tag, RFC 3261 section 22), which continues the same call however late it
    /// comes within this time; a challenge never answered makes the call `rejected` with the
    /// challenge's code. Default 300 s, the setup timeout (a user may take a while to type a
    /// password).
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub auth_wait: i64,
    /// An INVITE with a provisional response but no final one (and without media) for this
    /// long since the call's last SIP message is ended (`setup_timeout`). Default 300 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub setup: i64,
    /// A fragmented datagram not complete this long after its first fragment arrived is
    /// dropped (`frag_timeouts`). Default 30 s, the IPv4 reassembly time of Linux; RFC 8200
    /// allows 60 s for IPv6, but a SIP sender retransmits long before either.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub fragment: i64,
    /// A TCP connection with no segment for this long is forgotten (`tcp_connections_expired`);
    /// if it speaks again it is picked up by content. Default 300 s.
    #[cfg_attr(feature = "serde", serde(with = "seconds"))]
    pub tcp_idle: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        const S: i64 = 1_000_000_000;
        Timeouts {
            media: 30 * S,
            signalling_only: 4 * 3600 * S,
            no_ack: 32 * S,
            invite: 32 * S,
            bye_linger: 2 * S,
            failure_linger: 2 * S,
            auth_wait: 300 * S,
            setup: 300 * S,
            fragment: 30 * S,
            tcp_idle: 300 * S,
        }
    }
}

/// Nanoseconds of capture time as whole seconds in the configuration file (a value too large
/// for nanoseconds saturates).
#[cfg(feature = "serde")]
mod seconds {
    const NANOS: i64 = 1_000_000_000;

    pub(super) fn serialize<S: serde::Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64((*ns / NANOS).max(0) as u64)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let secs: u64 = serde::Deserialize::deserialize(d)?;
        Ok(i64::try_from(secs).unwrap_or(i64::MAX / NANOS).saturating_mul(NANOS))
    }
}
