//! Caps on every table and buffer fed by the network, and the capture-time timeouts.
//!
//! A limit that is hit sheds the newest work, increments a named counter in
//! [`crate::stats::CaptureStats`] and never grows memory. Tests shrink these to run the edges.

/// Hard caps on state kept per capture engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Calls tracked at once. A new INVITE beyond this is counted in `calls_shed` and ignored.
    /// Default 20,000.
    pub max_calls: usize,
    /// Media addresses (SDP `c=`/`m=` pairs) registered per call; older ones are retired first.
    /// Default 8.
    pub max_media_per_call: usize,
    /// Header lines per SIP message. Default 128.
    pub max_sip_headers: usize,
    /// Bytes in one SIP message. Default 65,535.
    pub max_sip_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_calls: 20_000, max_media_per_call: 8, max_sip_headers: 128, max_sip_message: 65_535 }
    }
}

/// Capture-time timeouts, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// An answered call with no RTP and no SIP for this long is ended (`media_timeout`).
    /// Default 30 s.
    pub media: i64,
    /// After BYE, trailing RTP is still accepted for this long before the call is finalised.
    /// Default 2 s.
    pub bye_linger: i64,
    /// After a final failure response (or CANCEL/487), retransmissions and ACK are absorbed for
    /// this long before the call is finalised. Default 2 s.
    pub failure_linger: i64,
    /// After a 401/407 challenge, how long to wait for the authenticated INVITE. Default 32 s
    /// (SIP timer B).
    pub auth_wait: i64,
    /// An INVITE without a final response (and without media) for this long is ended
    /// (`setup_timeout`). Default 300 s.
    pub setup: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        const S: i64 = 1_000_000_000;
        Timeouts { media: 30 * S, bye_linger: 2 * S, failure_linger: 2 * S, auth_wait: 32 * S, setup: 300 * S }
    }
}
