//! What to generate: a [`Scenario`] of [`CallSpec`]s and how they are put on the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::g711::{linear_to_alaw, linear_to_ulaw};
use crate::mix::hash;
use crate::timeline::Party;

/// A capture to generate: the calls, the link layer and the timestamp precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The calls, in any order; their packets are interleaved by capture time.
    pub calls: Vec<CallSpec>,
    /// Link-layer framing of every packet (and the file's link type).
    pub link: Link,
    /// Resolution of the record timestamps.
    pub ts_precision: TsPrecision,
    /// Seed of everything random-looking: jitter, SIP tags and branches, IPv4 identifications.
    pub seed: u64,
    /// Keep every packet's G.711 payload in [`StreamTruth::payloads`](crate::StreamTruth).
    /// Memory then grows with the number of packets, so leave it off for large captures.
    pub keep_payloads: bool,
    /// Carry every packet inside this encapsulation (as a mirror port fed by a remote SPAN or
    /// an overlay network shows it). `None`: packets as the hosts sent them.
    pub tunnel: Option<Tunnel>,
    /// Fragment IP packets longer than a path MTU (the tunnelled packet, inside the tunnel).
    /// `None`: no fragmentation (and DF set on every IPv4 packet).
    pub fragmentation: Option<Fragmentation>,
    /// Stalls of the capture itself (a busy mirror port, a paused capture): every packet of
    /// every call that would be captured during a stall is captured when it ends, in a burst
    /// (see [`Stall`]).
    pub capture_stalls: Vec<CaptureStall>,
    /// Snapshot length: every record keeps at most this many bytes of its frame (the rest is
    /// cut, as `tcpdump -s N` does). `None`: whole frames.
    pub snaplen: Option<u32>,
}

/// A stall of the whole capture (see [`Scenario::capture_stalls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaptureStall {
    /// Start, in nanoseconds since the Unix epoch.
    pub at_ns: i64,
    /// How long nothing is captured.
    pub duration_ms: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            calls: Vec::new(),
            link: Link::Ethernet,
            ts_precision: TsPrecision::Micro,
            seed: 0,
            keep_payloads: false,
            tunnel: None,
            fragmentation: None,
            capture_stalls: Vec::new(),
            snaplen: None,
        }
    }
}

impl Scenario {
    /// A scenario of `calls` with the defaults: Ethernet, microsecond timestamps, seed 0.
    pub fn new(calls: Vec<CallSpec>) -> Self {
        Scenario { calls, ..Scenario::default() }
    }
}

/// Link-layer framing. The pcap link type is given for each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Ethernet II with made-up MAC addresses (DLT 1).
    Ethernet,
    /// Ethernet with one 802.1Q tag carrying this VLAN id (DLT 1).
    Vlan(u16),
    /// Ethernet with an 802.1ad outer tag (TPID 0x88a8) and an 802.1Q inner tag: `(outer, inner)`
    /// VLAN ids (DLT 1).
    QinQ(u16, u16),
    /// Linux cooked capture v1, 16-byte header (DLT 113).
    Sll,
    /// Linux cooked capture v2, 20-byte header (DLT 276).
    Sll2,
    /// No link header: each frame starts with the IP header (LINKTYPE_RAW, 101).
    RawIp,
}

impl Link {
    /// The pcap LINKTYPE value written in the file header.
    pub fn linktype(self) -> u32 {
        match self {
            Link::Ethernet | Link::Vlan(_) | Link::QinQ(..) => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::RawIp => 101,
        }
    }
}

/// Resolution of the pcap record timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TsPrecision {
    /// Microseconds (magic 0xa1b2c3d4). Capture times are truncated to whole microseconds.
    #[default]
    Micro,
    /// Nanoseconds (magic 0xa1b23c4d).
    Nano,
}

impl TsPrecision {
    /// Truncates a capture time to what a record of this precision can hold.
    pub fn quantize(self, ns: i64) -> i64 {
        match self {
            TsPrecision::Micro => ns - ns.rem_euclid(1_000),
            TsPrecision::Nano => ns,
        }
    }
}

/// An encapsulation around every packet of a capture.
///
/// The outer packets go from [`TUNNEL_SRC`] to [`TUNNEL_DST`] over IPv4 (DF set, TTL 64, an
/// identification counting up from a seeded value), framed by the scenario's [`Link`]. The
/// inner packet is the one the hosts sent (IPv4 or IPv6, possibly a fragment); tunnels that
/// carry Ethernet put it in an Ethernet II frame with the made-up MAC addresses of the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// GRE (RFC 2784), no optional fields, protocol type 0x0800 or 0x86dd: the inner IP packet.
    Gre,
    /// GRE with transparent Ethernet bridging (protocol type 0x6558): the inner Ethernet frame.
    GreEthernet,
    /// ERSPAN type II (Cisco remote SPAN): GRE with a sequence number, protocol type 0x88be,
    /// the 8-byte ERSPAN II header (version 1, this session id, VLAN 0) and the Ethernet frame.
    ErspanII {
        /// Mirroring session id (10 bits).
        session: u16,
    },
    /// ERSPAN type III: GRE with a sequence number, protocol type 0x22eb, the 12-byte ERSPAN
    /// III header (version 2, this session id, a 100 µs timestamp, frame type Ethernet, no
    /// platform sub-header) and the Ethernet frame.
    ErspanIII {
        /// Mirroring session id (10 bits).
        session: u16,
    },
    /// VXLAN (RFC 7348): UDP to port 4789 (source port hashed from the inner flow, checksum
    /// filled in), the 8-byte header with the I flag and this VNI, and the Ethernet frame.
    Vxlan {
        /// VXLAN network identifier (24 bits).
        vni: u32,
    },
}

/// Outer source address of tunnelled packets (TEST-NET-1).
pub const TUNNEL_SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Outer destination address of tunnelled packets (TEST-NET-1).
pub const TUNNEL_DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// IP fragmentation on the path: every IP packet longer than `mtu` bytes (IP header included)
/// is sent as fragments of at most `mtu` bytes, all captured at the packet's time.
///
/// IPv4 fragments clear DF and share the sender's identification; IPv6 fragments carry a
/// fragment header (RFC 8200) with a 32-bit identification. Every fragment but the last holds
/// a multiple of 8 payload bytes, as large as the MTU allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragmentation {
    /// Path MTU in bytes, 576..=9000 (IPv6 needs at least 1280 by RFC 8200, but smaller values
    /// are accepted to force fragmentation).
    pub mtu: u16,
    /// The order the fragments of one packet are captured in.
    pub order: FragmentOrder,
}

/// Capture order of the fragments of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FragmentOrder {
    /// By offset, first fragment first.
    #[default]
    InOrder,
    /// Last fragment first (as some stacks send them).
    Reverse,
    /// A permutation drawn from the scenario seed and the packet (never the identity when
    /// there are at least two fragments).
    Shuffled,
}

/// How a call's SIP messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SipTransport {
    /// One message per UDP datagram.
    #[default]
    Udp,
    /// One TCP connection from the caller's SIP port to the callee's, carrying every message
    /// of the call both ways (see [`TcpOptions`]). Via headers say `SIP/2.0/TCP`.
    Tcp(TcpOptions),
    /// SIP over WebSocket (RFC 7118, `ws://`): the TCP connection of [`SipTransport::Tcp`]
    /// opened with an HTTP upgrade, each message one WebSocket message (see [`WsOptions`]).
    /// Via headers say `SIP/2.0/WS`.
    WebSocket(WsOptions),
    /// SIP over SCTP (RFC 4168): one association from the caller's SIP port to the callee's,
    /// each message one user message (see [`SctpOptions`]). Via headers say `SIP/2.0/SCTP`.
    Sctp(SctpOptions),
}

/// SIP over WebSocket.
///
/// The TCP connection opens and closes as with [`TcpOptions`] (with `coalesce_trying` off);
/// right after the TCP handshake the caller sends the HTTP/1.1 upgrade request (`GET /ws`,
/// `Upgrade: websocket`, `Sec-WebSocket-Protocol: sip`) and the callee answers `101 Switching
/// Protocols`, both at the handshake's last ACK's time. Each SIP message is one text message:
/// the caller's frames masked with a key hashed from the seed and the message's number, the
/// callee's unmasked. With `fragment`, a message is sent as frames of at most that many
/// payload bytes (text, then continuations, FIN on the last), and with `ping` a ping (from the
/// caller, masked) or pong (from the callee) goes between its first two fragments. The frames
/// of a message are written back to back as TCP segments of at most `mss` bytes: several
/// frames share a segment and frames span segments as the sizes fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WsOptions {
    /// Largest payload of one TCP segment (1..=65000).
    pub mss: u16,
    /// Largest payload of one frame (1..): messages longer than this are fragmented.
    pub fragment: Option<u16>,
    /// A control frame between the first two fragments of each fragmented message.
    pub ping: bool,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions { mss: 1460, fragment: None, ping: false }
    }
}

/// SIP over SCTP.
///
/// The association opens with INIT, INIT ACK and COOKIE ECHO (3, 2 and 1 ms before the INVITE;
/// no COOKIE ACK) and closes with SHUTDOWN, SHUTDOWN ACK and SHUTDOWN COMPLETE 50 ms after the
/// call's last message. Each SIP message is one user message on stream `n % streams` (n: the
/// sender's message number), payload protocol identifier 0, in DATA chunks of at most
/// `fragment` bytes (B on the first, E on the last); TSNs and stream sequence numbers count up
/// per sender from values hashed from the seed. At most `bundle` chunks go in one packet; the
/// callee's packets start with a SACK chunk acknowledging the caller's data. The CRC32c is
/// written right unless `zero_checksum` (as a capture on the sending host shows it with
/// checksum offload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SctpOptions {
    /// Largest user data of one DATA chunk (1..): longer messages are fragmented.
    pub fragment: Option<u16>,
    /// DATA chunks per packet (1..=64).
    pub bundle: u8,
    /// Outbound streams used (1..).
    pub streams: u16,
    /// Leave the checksum 0.
    pub zero_checksum: bool,
}

impl Default for SctpOptions {
    fn default() -> Self {
        SctpOptions { fragment: None, bundle: 4, streams: 1, zero_checksum: false }
    }
}

/// SIP over TCP.
///
/// The caller opens the connection with a three-way handshake (SYN, SYN-ACK, ACK at 3, 2 and
/// 1 ms before the INVITE; initial sequence numbers hashed from the seed, no options, window
/// 65535) and closes it 50 ms after the call's last SIP message (FIN-ACK each way, then the
/// last ACK, 1 ms apart). Each message (or group of coalesced messages) is written as
/// consecutive segments of at most `mss` bytes, all captured at the message's time, ACK set
/// and PSH on the last; every segment acknowledges all the other side has sent. No segment is
/// lost or retransmitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpOptions {
    /// Largest payload of one segment (1..=65000). A message longer than this is split.
    pub mss: u16,
    /// The callee's 100 Trying is not sent on its own: it goes out in the same segment(s) as
    /// the callee's next message, at that message's time (and [`SipTruth`](crate::SipTruth)
    /// gives it that time).
    pub coalesce_trying: bool,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions { mss: 1460, coalesce_trying: false }
    }
}

/// The callee sits behind a NAT that maps its SIP and RTP ports to a public address.
///
/// Its SIP and SDP keep naming its private `callee_ip` and ports, but on the wire (the public
/// side, where the capture is taken) its packets come from `public_ip` and the caller sends to
/// `public_ip`: SIP from and to `public_ip:sip_port`, RTP from and to `public_ip:rtp_port`
/// (the caller does symmetric RTP: it answers the source of the callee's media, which starts
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nat {
    /// The NAT's public address (same family as the call).
    pub public_ip: IpAddr,
    /// Public port of the callee's SIP.
    pub sip_port: u16,
    /// Public port of the callee's RTP.
    pub rtp_port: u16,
}

/// Early media: a `183 Session Progress` with the callee's SDP replaces the `180 Ringing`, and
/// the callee plays a ringback tone over RTP until it answers.
///
/// The ringback packets lie on the callee's RTP grid extended backwards from its first packet
/// after the answer (same SSRC, timestamps consistent with capture time, consecutive sequence
/// numbers ending right before the talk packet 0): every grid slot at least 20 ms after the 183
/// and at least 10 ms before the 200 OK carries one. The first one has the marker bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyMedia {
    /// Frequency of the ringback tone (0 < f < 4000); its samples are numbered from 0 at the
    /// first ringback packet.
    pub tone_hz: f64,
}

/// Something that happens during an answered call, by a re-INVITE: the re-INVITE at
/// `answer + at_ms`, its 200 OK 5 ms later, the ACK 10 ms later. Times are relative to the
/// answer; re-INVITEs must be at least 20 ms apart, at least 20 ms after the answer and end
/// before the talk time does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MidCall {
    /// `by` puts the call on hold: it re-INVITEs with `a=sendonly`, the other party answers
    /// `a=recvonly` and sends no RTP from its 200 OK until the 200 OK of the resume; `by`
    /// resumes with a re-INVITE with `a=sendrecv` at `resume_ms` (answered `a=sendrecv`), or
    /// never (`None`). The held party's sequence numbers go on without a gap and its
    /// timestamps jump by the time it was silent; its first packet after the hold has the
    /// marker bit. The holder keeps sending.
    Hold {
        /// Who puts the call on hold.
        by: Party,
        /// When (ms after the answer).
        at_ms: u32,
        /// When it resumes (ms after the answer), if it does.
        resume_ms: Option<u32>,
    },
    /// `party` moves its media to `rtp_port` of the same address: its re-INVITE offers the new
    /// port. From the 200 OK on, its RTP is sent from and received on the new port.
    MoveMedia {
        /// Who moves.
        party: Party,
        /// When (ms after the answer).
        at_ms: u32,
        /// The new RTP port.
        rtp_port: u16,
    },
    /// `by` re-INVITEs offering only `codec`, the other party answers it, and from the 200 OK
    /// on both send `codec` (same SSRCs, sequence numbers and timestamps going on; the new
    /// payload type; the timestamps count on at the new codec's clock: `Codec::rtp_clock`).
    /// Later re-INVITEs offer it too.
    ChangeCodec {
        /// Who re-INVITEs.
        by: Party,
        /// When (ms after the answer).
        at_ms: u32,
        /// The codec both parties send from then on.
        codec: Codec,
    },
}

/// A SIP INFO request of an answered call, sent by `by` at `answer + at_ms` (its 200 OK 5 ms
/// later), carrying an extra header line and/or a DTMF key as `application/dtmf-relay`
/// (`Signal=<key>`, `Duration=<ms>`). Its CSeq follows the sender's other requests in time
/// order (re-INVITEs sent at the same `at_ms` come first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipInfo {
    /// Who sends it.
    pub by: Party,
    /// When (ms after the answer).
    pub at_ms: u32,
    /// An extra header (name, value), e.g. `("X-Record-Pause", "on")`.
    pub header: Option<(String, String)>,
    /// A DTMF key (`0`-`9`, `*`, `#`, `A`-`D`) and its duration in ms.
    pub dtmf: Option<(char, u32)>,
}

/// An RFC 4733 telephone event (DTMF) sent in a party's RTP stream with payload type 101 (the
/// SDPs map `101 telephone-event/8000`).
///
/// It replaces `packets + 2` consecutive packets of the stream, starting at packet index
/// `at_packet`: `packets` updates with the event's RTP timestamp (that of packet `at_packet`)
/// and durations `spp`, `2·spp`, ... (the first with the marker bit, the last with the E bit),
/// then the end packet twice more (the usual retransmissions), each with its own sequence
/// number. The key press lasts `packets · ptime_ms`; it starts at the capture time of the
/// first event packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit {
    /// Who presses the key.
    pub party: Party,
    /// Event code: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D` (16 flash).
    pub event: u8,
    /// Index of the first packet replaced.
    pub at_packet: u32,
    /// Update packets before the end (at least 1); the duration is `packets · ptime_ms`.
    pub packets: u32,
}

/// A party sends its RFC 4733 telephone events ([`DtmfDigit`]) on an RTP stream of their own
/// (as some gateways do, and sipp's `uac_pcap` scenario): the event packets carry `ssrc` and
/// sequence numbers `seq`, `seq + 1`, ... (counting on across the party's digits), and the
/// voice stream's sequence numbers skip nothing for the slots they take (its timestamps go on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventStream {
    /// Whose events.
    pub party: Party,
    /// SSRC of the event stream.
    pub ssrc: u32,
    /// Sequence number of its first packet.
    pub seq: u16,
}

/// What a party's SDP declares when it is not the call's codec with `telephone-event`: the
/// party still sends the call's codec (and its events with payload type 101), so it sends
/// payload types its own SDP did not declare (sipp's echo UAS answers PCMU alone and echoes
/// the PCMA and events it is sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Declared {
    /// The one codec in the party's `m=audio` line.
    pub codec: Codec,
    /// Whether `101 telephone-event/8000` is declared beside it.
    pub telephone_event: bool,
}

/// A party's RTP numbering starts over at packet `at_packet` (a new SSRC after a transfer, or
/// the same SSRC with a sequence and timestamp jump): packet `at_packet + i` has sequence
/// number `seq + i` and timestamp `ts + i·spp` (minus the packets not sent while held), and the
/// marker bit on the first. The audio goes on without a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamChange {
    /// Whose stream.
    pub party: Party,
    /// First packet with the new numbering.
    pub at_packet: u32,
    /// SSRC from there on (may equal the old one).
    pub ssrc: u32,
    /// Sequence number of packet `at_packet`.
    pub seq: u16,
    /// RTP timestamp of packet `at_packet`.
    pub ts: u32,
}

/// The audio codec of a call: G.711 at 8000 Hz, one byte per sample, or G.722 (8000 Hz RTP
/// clock, one byte per 125 µs: RFC 3551 §4.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// G.711 µ-law, static RTP payload type 0.
    Pcmu,
    /// G.711 A-law, static RTP payload type 8.
    Pcma,
    /// G.722, static RTP payload type 9. The generator has no G.722 encoder: each code is
    /// the µ-law code of the tone's sample, a fixed, known byte stream that a reference
    /// decoder turns into the exact samples a recorder must write.
    G722,
    /// G.729, static RTP payload type 18: no encoder either; each 10 ms frame's 10 bytes are
    /// every 8th µ-law code of the tone's 80 samples (see [`Codec::pack`]), decoded by a
    /// reference decoder for the truth.
    G729,
    /// GSM 06.10, static RTP payload type 3: each 20 ms frame's 33 bytes are every 4th µ-law
    /// code of its 160 samples, the first byte's high nibble set to the GSM signature 0xD.
    Gsm,
    /// Opus (RFC 7587), dynamic payload type [`OPUS_PT`] (`opus/48000/2`, `useinbandfec=1`):
    /// real packets from libopus, one frame of `ptime_ms` each, with in-band FEC, and DTX when
    /// [`CallSpec::opus_dtx`] is set (see `crate::opus`). The RTP clock counts 48 kHz
    /// whatever the audio (the tone, encoded at 8 kHz): [`Codec::rtp_clock`].
    Opus,
    /// L16 (RFC 3551 §4.5.11), mono at 8 kHz, dynamic payload type [`L16_PT`]
    /// (`L16/8000`): the tone's samples, 16-bit big-endian.
    L16,
    /// L16 mono at 16 kHz, dynamic payload type [`L16_WIDE_PT`] (`L16/16000`, the RTP clock
    /// 16 kHz too): the tone computed at 16 kHz ([`tone_sample_16k`](crate::tone_sample_16k)),
    /// two samples per 8 kHz sample.
    L16Wide,
}

/// Payload type of Opus in the generated SDP.
pub const OPUS_PT: u8 = 111;
/// Payload type of L16 at 8 kHz in the generated SDP.
pub const L16_PT: u8 = 96;
/// Payload type of L16 at 16 kHz in the generated SDP.
pub const L16_WIDE_PT: u8 = 97;

impl Codec {
    /// Static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::G729 => 18,
            Codec::Gsm => 3,
            Codec::Opus => OPUS_PT,
            Codec::L16 => L16_PT,
            Codec::L16Wide => L16_WIDE_PT,
        }
    }

    /// RTP clock rate: 48000 for Opus (RFC 7587), 16000 for L16 at 16 kHz, 8000 for the
    /// others (G.722's too).
    pub fn rtp_clock(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::L16Wide => 16_000,
            _ => 8000,
        }
    }

    /// The SDP `a=rtpmap` value after the payload type, and the `a=fmtp` value if any.
    pub fn rtpmap(self) -> (String, Option<&'static str>) {
        match self {
            Codec::Opus => ("opus/48000/2".to_owned(), Some("useinbandfec=1")),
            Codec::L16Wide => ("L16/16000".to_owned(), None),
            c => (format!("{}/8000", c.encoding_name()), None),
        }
    }

    /// Encoding name used in SDP `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::G729 => "G729",
            Codec::Gsm => "GSM",
            Codec::Opus => "opus",
            Codec::L16 | Codec::L16Wide => "L16",
        }
    }

    /// Encodes one linear sample (for Opus and L16, whose packets are not made a byte per
    /// sample, the µ-law code, never sent).
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu | Codec::G722 | Codec::G729 | Codec::Gsm | Codec::Opus | Codec::L16 | Codec::L16Wide => {
                linear_to_ulaw(sample)
            }
            Codec::Pcma => linear_to_alaw(sample),
        }
    }
}

impl Codec {
    /// Bytes of the payload of a packet of `samples` samples (for Opus, whose packets vary,
    /// the length of the stand-in ciphertext of an encrypted call: a 24 kbit/s packet).
    pub fn payload_len(self, samples: usize) -> usize {
        match self {
            Codec::G729 => samples / 80 * 10,
            Codec::Gsm => samples / 160 * 33,
            Codec::Opus => samples * 3 / 8,
            Codec::L16 => samples * 2,
            Codec::L16Wide => samples * 4,
            _ => samples,
        }
    }

    /// Turns the codes of `out[at..]` (one per sample, from [`Codec::encode`]) into the
    /// payload: unchanged for the sample-per-byte codecs, frames for G.729 and GSM.
    pub fn pack(self, out: &mut Vec<u8>, at: usize) {
        let (frame_samples, frame_bytes, step) = match self {
            Codec::G729 => (80, 10, 8),
            Codec::Gsm => (160, 33, 4),
            _ => return,
        };
        let frames = (out.len() - at) / frame_samples;
        for f in 0..frames {
            for j in 0..frame_bytes {
                out[at + f * frame_bytes + j] = out[at + f * frame_samples + j * step];
            }
            if self == Codec::Gsm {
                out[at + f * frame_bytes] = 0xd0 | (out[at + f * frame_bytes] & 0x0f);
            }
        }
        out.truncate(at + frames * frame_bytes);
    }
}

/// How a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// INVITE, 100, 180, 200 (SDP answer), ACK, media both ways, then a BYE per `hangup`.
    Answered {
        /// Which side sends the BYE, if any.
        hangup: Hangup,
    },
    /// INVITE, 100, 486 Busy Here, ACK. No media.
    Busy,
    /// INVITE, 100, the given final status (300..=699, e.g. 403, 480, 603), ACK. No media.
    Rejected(u16),
    /// INVITE, 100, 180, CANCEL, 200 (to the CANCEL), 487, ACK. No media.
    Cancelled,
    /// INVITE and its retransmissions, then a late 100 and 180, and nothing else.
    NoAnswer,
    /// INVITE and its retransmissions until RFC 3261 timer B (32 s), and no response at all.
    NoResponse,
    /// INVITE, 100, 180, 200 OK with the SDP answer retransmitted until 64·T1 (32 s), and no
    /// ACK, no media, no BYE.
    NoAck,
}

/// Who hangs up an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hangup {
    /// The caller sends the BYE.
    Caller,
    /// The callee sends the BYE.
    Callee,
    /// Nobody: media stops at the end of the talk time and the dialog is left open.
    None,
}

/// Extra delay of each packet of one RTP direction in the network, on top of the nominal
/// schedule. Packets wait in one queue: none overtakes the one before it (a packet that would
/// arrives 10 µs after it), so delay variation bunches packets up but never reorders them.
/// Every value is drawn from the scenario seed, call and direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// Each packet is delayed by an independent uniform amount in `[0, max_ms]`.
    Uniform {
        /// Largest extra delay.
        max_ms: f64,
    },
    /// Congestion episodes: outside them packets are delayed by at most `max_ms / 20`;
    /// during one (it lasts 0.5 to 1.5 times `burst_ms`) by a level between `max_ms / 2` and
    /// `max_ms`, minus up to `max_ms / 20`. Episodes start once per `burst_ms + gap_ms` of
    /// nominal time, at a random point of the first `gap_ms` of it.
    Bursty {
        /// Largest extra delay.
        max_ms: f64,
        /// Mean length of an episode.
        burst_ms: u32,
        /// Mean time between episodes.
        gap_ms: u32,
    },
}

/// The network holds one direction's packets (or the capture holds every packet) from
/// `at_ms` for `duration_ms`, then lets them go at 100 times their rate until the burst has
/// caught up with the live packets: a packet sent (or due) at `t` inside the stall is captured
/// at `max(end + (t - start) / 100, t)`. Order is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stall {
    /// Start, in ms after the answer (the 200 OK).
    pub at_ms: u32,
    /// Length.
    pub duration_ms: u32,
}

/// Encryption of a call's media, announced in its SDP (both parties). Without [`Srtp`] the RTP
/// payloads are random-looking bytes (the samples of a packet plus a 10-byte authentication
/// tag), as SRTP would carry, that no key decrypts; with it ([`CallSpec::srtp`], SDES only)
/// the RTP is real SRTP keyed by the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaSecurity {
    /// SDES-keyed SRTP: `RTP/SAVP` with `a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<key>`.
    Sdes,
    /// DTLS-SRTP: `UDP/TLS/RTP/SAVPF`, a session-level `a=fingerprint:sha-256 ...` and
    /// `a=setup` (actpass in the offer, active in the answer).
    Dtls,
    /// ZRTP announced by `a=zrtp-hash` on an `RTP/AVP` line.
    Zrtp,
}

/// Real SRTP for a call announced as SDES-SRTP ([`MediaSecurity::Sdes`]): each party's SDP
/// carries its own master key in `a=crypto` and its RTP is encrypted and authenticated with
/// it (RFC 3711, RFC 7714), so a recorder that reads the SDP can decrypt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Srtp {
    /// The crypto suite both parties use.
    pub suite: srtp::Suite,
    /// The caller's offer lists another suite with another key first (tag 1) and this one as
    /// tag 2; the callee's answer accepts tag 2.
    pub offer_two: bool,
    /// This party encrypts with another key than the one its SDP announces (nothing it sends
    /// authenticates with the SDP's key).
    pub wrong_key: Option<Party>,
}

/// The first INVITE is challenged (RFC 3261 section 22): the proxy answers `code` (401 or
/// 407) 5 ms after it, the caller ACKs 5 ms later, and re-sends the INVITE `retry_ms` after
/// the first one with the same Call-ID and From tag, CSeq + 1, a new branch and an
/// `Authorization` (401) or `Proxy-Authorization` (407) header. The call then goes on from
/// that INVITE as it would have from the first (`ring_ms` counts from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthChallenge {
    /// 401 or 407.
    pub code: u16,
    /// Time from the first INVITE to the authenticated one (at least 20 ms).
    pub retry_ms: u32,
}

/// A non-audio media line in both parties' SDP (after the audio line), with `packets` UDP
/// datagrams each way during the talk time, evenly spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtraMedia {
    /// What kind of media.
    pub kind: ExtraKind,
    /// The caller's port for it.
    pub caller_port: u16,
    /// The callee's port for it.
    pub callee_port: u16,
    /// Datagrams each party sends.
    pub packets: u32,
}

/// A kind of non-audio media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtraKind {
    /// `m=video <port> RTP/AVP 96`, `a=rtpmap:96 H264/90000`: RTP packets of 300 bytes.
    Video,
    /// `m=image <port> udptl t38`: UDPTL packets of 40 bytes.
    T38,
    /// `m=application <port> UDP/BFCP *`: BFCP messages of 24 bytes.
    Bfcp,
}

impl ExtraKind {
    /// The SDP media type.
    pub fn media(self) -> &'static str {
        match self {
            ExtraKind::Video => "video",
            ExtraKind::T38 => "image",
            ExtraKind::Bfcp => "application",
        }
    }
}

/// Network impairments, one set per direction of RTP.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Impairments {
    /// Applied to the RTP the caller sends.
    pub caller: DirImpair,
    /// Applied to the RTP the callee sends.
    pub callee: DirImpair,
}

/// Impairments of one RTP direction. Packet indexes are 0-based within the stream (packet `k`
/// has `seq = seq0 + k`) and must be below the stream's packet count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirImpair {
    /// Packets never sent.
    pub loss: Vec<u32>,
    /// Packets sent twice; the copy follows 1 ms after the original.
    pub duplicate: Vec<u32>,
    /// Packet `i` is held back in the network and arrives 1 ms after packet `i + 1`, which
    /// arrives on time. Two entries may not be adjacent (`i` and `i + 1` both listed).
    pub reorder: Vec<u32>,
    /// Each packet's capture time moves by a uniform random offset in `±jitter_ms`. The
    /// effective amplitude is capped at `min(ptime/2 - 1 ms, 15 ms)` so that packets of one
    /// direction never change order by jitter alone.
    pub jitter_ms: f64,
    /// This direction sends no RTP at all (one-way audio).
    pub silent: bool,
    /// The sender's clock runs this many parts per million fast (negative: slow): its packets
    /// are `ptime / (1 + ppm / 10^6)` apart in capture time while its RTP timestamps advance by
    /// the nominal samples per packet. Real crystals are within about ±100 ppm.
    pub clock_ppm: f64,
    /// Delay variation in the network, packets kept in order (on top of `jitter_ms`).
    pub delay: Option<Delay>,
    /// Times the network holds this direction's packets and then releases them in a burst.
    pub stalls: Vec<Stall>,
}

/// One call: who, where, when, how it sounds and how it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    /// SIP Call-ID.
    pub call_id: String,
    /// User part of the caller's URI (From).
    pub from_user: String,
    /// Display name in the From header, if any.
    pub from_display: Option<String>,
    /// User part of the callee's URI (To and Request-URI).
    pub to_user: String,
    /// Caller address (same family as `callee_ip`).
    pub caller_ip: IpAddr,
    /// Callee address (same family as `caller_ip`).
    pub callee_ip: IpAddr,
    /// Caller's SIP UDP port.
    pub caller_sip_port: u16,
    /// Callee's SIP UDP port.
    pub callee_sip_port: u16,
    /// Caller's RTP UDP port (offered in the INVITE's SDP).
    pub caller_rtp_port: u16,
    /// Callee's RTP UDP port (answered in the 200 OK's SDP).
    pub callee_rtp_port: u16,
    /// Capture time of the first INVITE, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Time from the INVITE to the 200 OK, final response or CANCEL (unused for `NoAnswer`).
    pub ring_ms: u32,
    /// Media duration after the answer (answered calls only). Each direction sends
    /// `talk_ms / ptime_ms` packets.
    pub talk_ms: u32,
    /// Codec of both directions.
    pub codec: Codec,
    /// The callee sends (and declares) this codec instead of `codec`, if set.
    pub callee_codec: Option<Codec>,
    /// Packetisation time in ms, 10..=60.
    pub ptime_ms: u32,
    /// Frequency of the caller's tone in Hz (0 < f < 4000).
    pub caller_tone_hz: f64,
    /// Frequency of the callee's tone in Hz (0 < f < 4000).
    pub callee_tone_hz: f64,
    /// SSRC of the caller's RTP.
    pub caller_ssrc: u32,
    /// SSRC of the callee's RTP.
    pub callee_ssrc: u32,
    /// Sequence number of the caller's packet 0.
    pub caller_seq0: u16,
    /// RTP timestamp of the caller's packet 0.
    pub caller_ts0: u32,
    /// Sequence number of the callee's packet 0.
    pub callee_seq0: u16,
    /// RTP timestamp of the callee's packet 0.
    pub callee_ts0: u32,
    /// Use compact header names (`v: f: t: i: m: l: c:`) in every SIP message.
    pub compact_headers: bool,
    /// P-Asserted-Identity value to put on the INVITE.
    pub pai: Option<String>,
    /// Impairments of each RTP direction.
    pub impair: Impairments,
    /// How the call ends.
    pub outcome: Outcome,
    /// Transport of the call's SIP.
    pub sip_transport: SipTransport,
    /// About this many bytes of extra `X-Padding-<n>` headers (lines of up to 100 bytes) in
    /// the initial INVITE, to make it larger than an MTU or a TCP segment. 0: none.
    pub invite_padding: u32,
    /// The callee is behind a NAT (see [`Nat`]).
    pub callee_nat: Option<Nat>,
    /// Early media before the answer (answered calls only).
    pub early_media: Option<EarlyMedia>,
    /// Re-INVITEs during the call (answered calls only), in any order.
    pub midcall: Vec<MidCall>,
    /// RFC 4733 DTMF key presses (answered calls only).
    pub dtmf: Vec<DtmfDigit>,
    /// SIP INFO requests (answered calls only).
    pub infos: Vec<SipInfo>,
    /// Changes of RTP numbering (answered calls only).
    pub stream_changes: Vec<StreamChange>,
    /// Parties whose DTMF travels on a stream of its own (answered calls only).
    pub event_streams: Vec<EventStream>,
    /// What the caller's SDP declares, when not the call's codec and `telephone-event`.
    pub caller_declares: Option<Declared>,
    /// What the callee's SDP declares, when not the call's codec and `telephone-event`.
    pub callee_declares: Option<Declared>,
    /// Encrypted media (see [`MediaSecurity`]).
    pub media_security: Option<MediaSecurity>,
    /// Real SRTP keyed by the SDP (with `media_security: Some(MediaSecurity::Sdes)`).
    pub srtp: Option<Srtp>,
    /// The first INVITE is challenged and re-sent with credentials (see [`AuthChallenge`]).
    pub auth: Option<AuthChallenge>,
    /// Non-audio media lines and their packets (answered calls only).
    pub extra_media: Vec<ExtraMedia>,
    /// Stretches where a party's tone stops (answered calls only).
    pub silences: Vec<Silence>,
    /// Opus senders use DTX (libopus's `OPUS_SET_DTX`): the frames libopus marks as DTX are
    /// not sent (see `crate::opus`).
    pub opus_dtx: bool,
    /// The capture sees the 200 OK answering the INVITE and its ACK this many ms after they
    /// were sent (answered calls only; 0: as sent): a mirror of several switch ports, SIP on
    /// another interface than the media, or a TCP segment recovered late. The media still
    /// starts from the answer, so up to this long of it comes before the SDP announcing
    /// where the callee receives it.
    pub answer_seen_late_ms: u32,
}

/// A party says nothing: talk packets `at_packet .. at_packet + packets` carry silence (zero
/// samples, encoded as the packet's codec encodes them) instead of the tone. Packets are
/// still sent (an Opus sender with [`CallSpec::opus_dtx`] stops sending where libopus says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Silence {
    /// Who is silent.
    pub party: Party,
    /// First silent packet.
    pub at_packet: u32,
    /// Silent packets.
    pub packets: u32,
}

impl CallSpec {
    /// A sensible answered call number `i`, hung up by the caller.
    ///
    /// - Call-ID unique per `i`; users `1000+i` (caller, display name "Caller 1000+i") and
    ///   `2000+i` (callee).
    /// - Caller `10.1.b.c`, callee `10.2.b.c` with `b = (i / 250) % 256`, `c = 1 + i % 250`:
    ///   different /24s, unique for `i < 64000`. SIP on port 5060 at both ends.
    /// - Even RTP ports: caller `10000 + 2·(i % 10000)`, callee `30000 + 2·(i % 10000)`.
    /// - Tones: caller `300 + (37·i mod 1500)` Hz, callee `1900 + (53·i mod 1500)` Hz, so
    ///   both are distinct across any 1500 consecutive calls and never equal each other.
    /// - SSRCs, first sequence numbers and timestamps are hashed from `i` (some land near the
    ///   wrap-around), PCMU, 20 ms ptime, 1 s ringing, no impairments.
    /// - SIP over UDP, no padding, no NAT, no early media, nothing mid-call, events on the voice
    ///   stream, SDPs declaring the call's codec and `telephone-event`.
    pub fn answered(i: u32, start_ns: i64, talk_ms: u32) -> CallSpec {
        let n = u64::from(i);
        let h = |k: u64| hash(&[0xca11, n, k]);
        let b = ((i / 250) % 256) as u8;
        let c = (1 + i % 250) as u8;
        let port_slot = (i % 10_000) as u16;
        CallSpec {
            call_id: format!("{:012x}-{i}@callvault.test", h(0) >> 16),
            from_user: (1000 + n).to_string(),
            from_display: Some(format!("Caller {}", 1000 + n)),
            to_user: (2000 + n).to_string(),
            caller_ip: IpAddr::V4(Ipv4Addr::new(10, 1, b, c)),
            callee_ip: IpAddr::V4(Ipv4Addr::new(10, 2, b, c)),
            caller_sip_port: 5060,
            callee_sip_port: 5060,
            caller_rtp_port: 10_000 + 2 * port_slot,
            callee_rtp_port: 30_000 + 2 * port_slot,
            start_ns,
            ring_ms: 1000,
            talk_ms,
            codec: Codec::Pcmu,
            callee_codec: None,
            ptime_ms: 20,
            caller_tone_hz: f64::from(300 + (37 * i) % 1500),
            callee_tone_hz: f64::from(1900 + (53 * i) % 1500),
            caller_ssrc: h(1) as u32,
            callee_ssrc: h(2) as u32,
            caller_seq0: h(3) as u16,
            caller_ts0: h(4) as u32,
            callee_seq0: h(5) as u16,
            callee_ts0: h(6) as u32,
            compact_headers: false,
            pai: None,
            impair: Impairments::default(),
            outcome: Outcome::Answered { hangup: Hangup::Caller },
            sip_transport: SipTransport::Udp,
            invite_padding: 0,
            callee_nat: None,
            early_media: None,
            midcall: Vec::new(),
            infos: Vec::new(),
            dtmf: Vec::new(),
            stream_changes: Vec::new(),
            event_streams: Vec::new(),
            caller_declares: None,
            callee_declares: None,
            media_security: None,
            srtp: None,
            auth: None,
            extra_media: Vec::new(),
            silences: Vec::new(),
            opus_dtx: false,
            answer_seen_late_ms: 0,
        }
    }

    /// The codec `party` sends.
    pub fn codec_of(&self, party: Party) -> Codec {
        match party {
            Party::Callee => self.callee_codec.unwrap_or(self.codec),
            Party::Caller => self.codec,
        }
    }

    /// The same call over IPv6: each IPv4 address `a.b.c.d` becomes `fd00::a:b:c:d`.
    ///
    /// A NAT's public IPv4 address `a.b.c.d` becomes `2001:db8::a:b:c:d` (documentation
    /// space, not a private range).
    pub fn into_ipv6(mut self) -> CallSpec {
        self.caller_ip = to_v6(self.caller_ip);
        self.callee_ip = to_v6(self.callee_ip);
        if let Some(nat) = self.callee_nat.as_mut()
            && let IpAddr::V4(v4) = nat.public_ip
        {
            let [a, b, c, d] = v4.octets();
            let [a, b, c, d] = [a, b, c, d].map(u16::from);
            nat.public_ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, a, b, c, d));
        }
        self
    }

    /// Number of RTP packets each direction sends when answered: `talk_ms / ptime_ms`.
    pub fn packets_per_direction(&self) -> u32 {
        match self.ptime_ms {
            0 => 0,
            p => self.talk_ms / p,
        }
    }
}

fn to_v6(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, u16::from(a), u16::from(b), u16::from(c), u16::from(d)))
        }
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn answered_defaults_are_unique_and_sane() {
        let calls: Vec<_> = (0..1500).map(|i| CallSpec::answered(i, 0, 1000)).collect();
        let ids: HashSet<_> = calls.iter().map(|c| c.call_id.clone()).collect();
        assert_eq!(ids.len(), calls.len());
        let tones: HashSet<_> =
            calls.iter().flat_map(|c| [c.caller_tone_hz.to_bits(), c.callee_tone_hz.to_bits()]).collect();
        assert_eq!(tones.len(), 2 * calls.len());
        for c in &calls {
            assert_eq!(c.caller_rtp_port % 2, 0);
            assert_eq!(c.callee_rtp_port % 2, 0);
            assert!(c.callee_tone_hz < 4000.0);
            let (IpAddr::V4(a), IpAddr::V4(b)) = (c.caller_ip, c.callee_ip) else {
                panic!("not IPv4");
            };
            assert_ne!(a.octets()[..3], b.octets()[..3]);
        }
    }

    #[test]
    fn ipv6_mapping() {
        let c = CallSpec::answered(3, 0, 100).into_ipv6();
        assert_eq!(c.caller_ip, "fd00::a:1:0:4".parse::<IpAddr>().unwrap());
        let mut n = CallSpec::answered(3, 0, 100);
        n.callee_nat = Some(Nat { public_ip: "203.0.113.7".parse().unwrap(), sip_port: 1, rtp_port: 2 });
        let n = n.into_ipv6();
        assert_eq!(n.callee_nat.unwrap().public_ip, "2001:db8::cb:0:71:7".parse::<IpAddr>().unwrap());
    }
}
