//! Zero-copy views of the wire formats callvault reads.
//!
//! Every view here validates lengths once in its checked constructor; after that no accessor
//! can panic. Nothing in this module allocates, logs or reads a clock: it turns bytes into
//! borrowed, validated fields and nothing else. State (dialogs, flows, reassembly) lives in
//! the modules above, which only ever see the views' high-level fields.

pub mod dtmf_info;
pub mod erspan;
pub mod ethernet;
pub mod gre;
pub mod ip;
pub mod mpls;
pub mod ppp;
pub mod pppoe;
pub mod rtcp;
pub mod rtp;
pub mod sctp;
pub mod sdp;
pub mod sip;
pub mod sip_framing;
pub mod sll;
pub mod tcp;
pub mod telephone_event;
pub mod udp;
pub mod vxlan;
pub mod websocket;
pub mod zrtp;

use std::fmt;

/// The protocol layer at which a packet failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Link layer: Ethernet, VLAN tags, Linux cooked capture, loopback.
    Link,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header or one of its extension headers.
    Ipv6,
    /// UDP header.
    Udp,
    /// SIP start line or headers.
    Sip,
    /// SDP body.
    Sdp,
    /// RTP header.
    Rtp,
    /// TCP header.
    Tcp,
    /// GRE header (RFC 2784/2890, and the PPTP variant of RFC 2637).
    Gre,
    /// ERSPAN type II or III header.
    Erspan,
    /// VXLAN header.
    Vxlan,
    /// MPLS label stack (and a pseudowire control word).
    Mpls,
    /// PPPoE session header or PPP header.
    Ppp,
    /// SCTP common header or chunks.
    Sctp,
    /// WebSocket frame header or upgrade handshake.
    WebSocket,
}

impl Layer {
    /// Number of layers (length of [`Layer::ALL`]).
    pub const COUNT: usize = 15;

    /// Every layer, in declaration order (index = `layer as usize`), for counters and reports.
    pub const ALL: [Layer; Layer::COUNT] = [
        Layer::Link,
        Layer::Ipv4,
        Layer::Ipv6,
        Layer::Udp,
        Layer::Sip,
        Layer::Sdp,
        Layer::Rtp,
        Layer::Tcp,
        Layer::Gre,
        Layer::Erspan,
        Layer::Vxlan,
        Layer::Mpls,
        Layer::Ppp,
        Layer::Sctp,
        Layer::WebSocket,
    ];

    /// Lower-case name used in counters and log lines.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Udp => "udp",
            Layer::Sip => "sip",
            Layer::Sdp => "sdp",
            Layer::Rtp => "rtp",
            Layer::Tcp => "tcp",
            Layer::Gre => "gre",
            Layer::Erspan => "erspan",
            Layer::Vxlan => "vxlan",
            Layer::Mpls => "mpls",
            Layer::Ppp => "ppp",
            Layer::Sctp => "sctp",
            Layer::WebSocket => "websocket",
        }
    }
}

/// What was wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Fewer bytes than the header (or the length it declares) needs.
    Truncated,
    /// A version or type field holds a value this layer cannot be.
    BadVersion,
    /// A length field is smaller than the header it belongs to.
    BadLength,
    /// Syntax error in a text protocol.
    Syntax,
    /// More elements (headers, media lines, ...) than the configured cap.
    TooMany,
}

/// A decode failure: which layer, at which byte offset of that layer's input, and why.
///
/// Small and `Copy`: it is returned on the hot path and counted, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// Layer that rejected the bytes.
    pub layer: Layer,
    /// Offset within the bytes handed to that layer.
    pub offset: u32,
    /// Reason.
    pub kind: ErrorKind,
}

impl WireError {
    pub(crate) const fn new(layer: Layer, offset: usize, kind: ErrorKind) -> WireError {
        WireError { layer, offset: offset as u32, kind }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadVersion => "bad version or type",
            ErrorKind::BadLength => "bad length field",
            ErrorKind::Syntax => "syntax error",
            ErrorKind::TooMany => "too many elements",
        };
        write!(f, "{} {} at offset {}", self.layer.name(), what, self.offset)
    }
}

impl std::error::Error for WireError {}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
