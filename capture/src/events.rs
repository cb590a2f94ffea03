//! What capture tells the mixer: RTP packets tied to a call and a side, and call lifecycle
//! events. Capture pushes these into an [`EventSink`]; how they travel (batches over bounded
//! channels) is the wiring's business, not capture's.

use std::net::SocketAddr;

use crate::call::codec::PayloadMap;
use crate::time::Timestamp;
use crate::transport::decode::{LinkType, Transport};
use crate::wire::sdp::Direction;

/// A handle to a tracked call: a slot index plus a generation, so a reused slot is never
/// mistaken for the call that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallRef {
    /// Slot index (dense, reused).
    pub slot: u32,
    /// Generation of the slot.
    pub generation: u32,
}

/// A party of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The party that sent the initial INVITE.
    Caller,
    /// The party the INVITE was sent to.
    Callee,
}

impl Side {
    /// The other party.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// Lower-case name for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }

    /// 0 for the caller, 1 for the callee (also the WAV channel).
    pub fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }
}

/// Header fields of one RTP packet tied to a call. The packet travels beside it, whole (the
/// header is what SRTP authenticates); [`RtpMeta::payload`] cuts the payload out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpMeta {
    /// Call the packet belongs to.
    pub call: CallRef,
    /// Which party sent it.
    pub side: Side,
    /// Capture time.
    pub time: Timestamp,
    /// Sender address.
    pub src: SocketAddr,
    /// Receiver address.
    pub dst: SocketAddr,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub rtp_ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Where the payload starts in the packet (after CSRCs and header extension).
    pub payload_at: u16,
    /// Padding bytes at the packet's end (RTP padding, as its last byte says; for SRTP that
    /// byte is encrypted and the receiver of the keys reads it after decryption).
    pub padding: u8,
}

impl RtpMeta {
    /// The payload of `packet` (the bytes handed over with this meta), padding removed.
    #[inline]
    pub fn payload<'p>(&self, packet: &'p [u8]) -> &'p [u8] {
        let end = packet.len().saturating_sub(usize::from(self.padding));
        packet.get(usize::from(self.payload_at)..end).unwrap_or(&[])
    }
}

/// An RTCP packet tied to a call. Its payload (the compound packet) travels beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpMeta {
    /// Call the packet belongs to.
    pub call: CallRef,
    /// Which party sent it.
    pub side: Side,
    /// Capture time.
    pub time: Timestamp,
    /// Sender address.
    pub src: SocketAddr,
    /// Receiver address.
    pub dst: SocketAddr,
}

/// A party as named in SIP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    /// User part of the URI (number or name), if any.
    pub user: Option<String>,
    /// Display name, if any.
    pub display: Option<String>,
    /// The URI.
    pub uri: String,
}

/// The dialog state a call was last in (Wireshark VoIP-calls vocabulary, lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// INVITE sent, no provisional response beyond 100 Trying.
    Setup,
    /// 180 or 183 seen.
    Ringing,
    /// 2xx seen, no BYE.
    InCall,
    /// Answered, then BYE.
    Completed,
    /// CANCEL before answer.
    Cancelled,
    /// Final response >= 300 (other than the 487 that follows a CANCEL).
    Rejected,
}

impl CallState {
    /// Name used in records and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Setup => "setup",
            CallState::Ringing => "ringing",
            CallState::InCall => "in_call",
            CallState::Completed => "completed",
            CallState::Cancelled => "cancelled",
            CallState::Rejected => "rejected",
        }
    }

    /// Every state, in a stable order for summaries.
    pub const ALL: [CallState; 6] = [
        CallState::Completed,
        CallState::InCall,
        CallState::Rejected,
        CallState::Cancelled,
        CallState::Ringing,
        CallState::Setup,
    ];
}

/// Why callvault stopped following a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// BYE (and the linger for trailing RTP passed).
    Bye,
    /// CANCEL before answer.
    Cancel,
    /// Final failure response.
    Rejected,
    /// Answered call with no RTP and no SIP for the media timeout.
    MediaTimeout,
    /// The answer (2xx) was retransmitted and never acknowledged (RFC 3261 13.3.1.4).
    NoAck,
    /// No final response within the setup timeout.
    SetupTimeout,
    /// The capture file(s) ended with the call still open.
    EndOfInput,
    /// callvault was stopped with the call still open.
    Shutdown,
}

impl EndReason {
    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Bye => "bye",
            EndReason::Cancel => "cancel",
            EndReason::Rejected => "rejected",
            EndReason::MediaTimeout => "media_timeout",
            EndReason::NoAck => "no_ack",
            EndReason::SetupTimeout => "setup_timeout",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What the mixer learns when a call starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStart {
    /// SIP Call-ID.
    pub call_id: String,
    /// Time of the first INVITE.
    pub start: Timestamp,
    /// From of the INVITE.
    pub from: Party,
    /// To of the INVITE.
    pub to: Party,
}

/// Encryption of a party's RTP, as recognised on the wire. Without its keys callvault cannot
/// decrypt it, so that audio is never written.
pub use crate::wire::sdp::Security as MediaSecurity;

/// Name of an encryption for records and logs.
pub fn security_name(s: MediaSecurity) -> &'static str {
    match s {
        MediaSecurity::Sdes => "SRTP (SDES keys)",
        MediaSecurity::Dtls => "DTLS-SRTP",
        MediaSecurity::Zrtp => "ZRTP",
        MediaSecurity::Srtp => "SRTP",
    }
}

/// The SRTP master key of one `a=crypto` line (RFC 4568): the key the line's author *sends*
/// with (§6.1). Wiped on drop; `Debug` shows no key byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesKey {
    /// The crypto suite.
    pub suite: srtp::Suite,
    /// Master key and salt.
    pub master: srtp::MasterKey,
    /// Length of the MKI each packet carries (0: none).
    pub mki_len: u8,
}

/// Why an `a=crypto` line gives no usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdesProblem {
    /// A crypto suite callvault does not decrypt (e.g. `F8_128_HMAC_SHA1_80`, `AES_192_CM_*`).
    UnknownSuite,
    /// The `inline:` key is not base64, or not as long as the suite's key and salt.
    BadKey,
    /// A key derivation rate other than 0 (`KDR=`).
    KeyDerivationRate,
    /// A session parameter that changes the packet format (`UNENCRYPTED_SRTP`,
    /// `UNAUTHENTICATED_SRTP`, `UNENCRYPTED_SRTCP`, `FEC_ORDER`, `FEC_KEY`, ...).
    SessionParameter,
    /// Several master keys told apart by MKI.
    SeveralKeys,
}

impl SdesProblem {
    /// Words for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SdesProblem::UnknownSuite => "crypto suite not supported",
            SdesProblem::BadKey => "key is not base64 of the suite's key and salt length",
            SdesProblem::KeyDerivationRate => "key derivation rate other than 0 (KDR) not supported",
            SdesProblem::SessionParameter => "SRTP session parameters not supported",
            SdesProblem::SeveralKeys => "several master keys (MKI) not supported",
        }
    }
}

/// One `a=crypto` line of a party's SDP, its key or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesCrypto {
    /// The line's tag (an answer accepts one offered line by its tag).
    pub tag: u32,
    /// The suite's name as written (for the record when it is not supported).
    pub suite_name: String,
    /// The key, or why it cannot be used.
    pub key: Result<SdesKey, SdesProblem>,
}

/// A media description announced by one party: where it receives RTP and which payload
/// types it uses. RTP sent *to* `dest` is sent by the other party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAnnounce {
    /// The party whose SDP this is (it receives at `dest`).
    pub owner: Side,
    /// Receive address from `c=` and `m=audio`.
    pub dest: SocketAddr,
    /// Payload types of the audio line.
    pub payloads: PayloadMap,
    /// `a=ptime`, if given.
    pub ptime_ms: Option<u16>,
    /// Direction attribute of the owner's audio line (`sendrecv` when absent).
    pub direction: Direction,
    /// The media line's encryption, if it says its RTP is encrypted.
    pub security: Option<MediaSecurity>,
    /// Its `a=crypto` lines (SDES keys the owner sends with), in order; empty without any.
    pub sdes: Vec<SdesCrypto>,
    /// Capture time of the SIP message that carried it.
    pub time: Timestamp,
}

/// Where a DTMF digit was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RFC 4733 / RFC 2833 telephone-event RTP packets.
    Rfc4733,
    /// A SIP INFO request (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
}

impl DtmfSource {
    /// Name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip_info",
        }
    }
}

/// One DTMF key press (or other telephone event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// `0`-`9`, `*`, `#`, `A`-`D`, `flash`, or `<N>` for other event codes.
    pub digit: String,
    /// Who pressed it.
    pub side: Side,
    /// When it started (capture time).
    pub time: Timestamp,
    /// How long it lasted, when known.
    pub duration_ms: Option<u32>,
    /// How it was signalled.
    pub source: DtmfSource,
}

/// Recording control carried by a call's SIP messages (PCI DSS pause; the recorder decides
/// what to do with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingControl {
    /// A request of the dialog carried the configured pause header (see
    /// [`crate::engine::EngineConfig::pause_header`]): pause (`true`) or resume (`false`).
    Header {
        /// Pause or resume.
        pause: bool,
        /// Who sent the request.
        side: Side,
        /// The request's method, e.g. `INFO`.
        method: &'static str,
    },
    /// A DTMF key sent in a SIP INFO (RFC 4733 event number).
    InfoKey {
        /// Who keyed it.
        side: Side,
        /// The event number (0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`).
        event: u8,
        /// How long it lasted, when the INFO says.
        duration_ms: Option<u32>,
    },
}

/// The telephone-event number of a digit named as [`event_name`] names it (`0`-`9`, `*`,
/// `#`, `A`-`D`, `flash`, `<N>`).
pub fn event_number(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [c @ b'0'..=b'9'] => Some(c - b'0'),
        b"*" => Some(10),
        b"#" => Some(11),
        [c @ b'A'..=b'D'] => Some(c - b'A' + 12),
        b"flash" => Some(16),
        [b'<', n @ .., b'>'] => std::str::from_utf8(n).ok()?.parse().ok(),
        _ => None,
    }
}

/// The name of telephone-event code `event` (RFC 4733 §3.2).
pub fn event_name(event: u8) -> String {
    match event {
        0..=9 => char::from(b'0' + event).to_string(),
        10 => "*".into(),
        11 => "#".into(),
        12..=15 => char::from(b'A' + event - 12).to_string(),
        16 => "flash".into(),
        other => format!("<{other}>"),
    }
}

/// A party putting the call on hold (SDP `sendonly`/`inactive`/`c=0.0.0.0` in a re-offer)
/// until it offers `sendrecv` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Who put the call on hold.
    pub by: Side,
    /// When.
    pub start: Timestamp,
    /// When it was resumed, if it was.
    pub end: Option<Timestamp>,
}

/// A 401/407 challenge to the call's INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// 401 or 407.
    pub code: u16,
    /// When it was sent.
    pub time: Timestamp,
    /// When the INVITE was re-sent with credentials (same Call-ID and From tag), if it was.
    pub retried: Option<Timestamp>,
}

/// A non-audio media line (video, T.38 fax, BFCP, ...) of a call and the datagrams seen
/// for it. Its content is not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherMedia {
    /// Media type of the `m=` line (`video`, `image`, `application`, ...).
    pub kind: String,
    /// Its transport protocol (`RTP/AVP`, `udptl`, `UDP/BFCP`, ...).
    pub proto: String,
    /// Its first format (payload type or `t38`, `*`).
    pub format: String,
    /// The party whose SDP announced it (it receives there).
    pub owner: Side,
    /// Where it receives (latest announcement).
    pub dest: SocketAddr,
    /// Datagrams seen, sent by the caller and by the callee.
    pub packets: [u64; 2],
}

/// Everything known about a call when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// SIP Call-ID.
    pub call_id: String,
    /// From of the initial INVITE.
    pub from: Party,
    /// To of the initial INVITE.
    pub to: Party,
    /// P-Asserted-Identity of the initial INVITE, if present.
    pub asserted: Option<Party>,
    /// Signalling address the first INVITE came from.
    pub caller_signalling: SocketAddr,
    /// Signalling address the first INVITE went to.
    pub callee_signalling: SocketAddr,
    /// Latest media address announced by the caller.
    pub caller_media: Option<SocketAddr>,
    /// Latest media address announced by the callee.
    pub callee_media: Option<SocketAddr>,
    /// First INVITE.
    pub start: Timestamp,
    /// First 180/183.
    pub ringing: Option<Timestamp>,
    /// First 2xx to the INVITE.
    pub answer: Option<Timestamp>,
    /// BYE, CANCEL, final failure, last activity before a timeout, or end of input.
    pub end: Timestamp,
    /// Last dialog state.
    pub state: CallState,
    /// Why following stopped.
    pub end_reason: EndReason,
    /// Who sent the BYE or CANCEL.
    pub ended_by: Option<Side>,
    /// Final response code to the INVITE, if seen.
    pub final_code: Option<u16>,
    /// SIP messages seen for this call.
    pub sip_messages: u32,
    /// INVITE requests seen (challenged re-sends and re-INVITEs included, retransmissions not).
    pub invites: u32,
    /// SIP retransmissions recognised (same message again on the same hop).
    pub retransmissions: u32,
    /// Distinct To-tags in responses to the INVITE (more than one: the call forked).
    pub early_dialogs: u32,
    /// DTMF sent with SIP INFO.
    pub dtmf: Vec<Dtmf>,
    /// Hold periods.
    pub holds: Vec<Hold>,
    /// Transport the initial INVITE arrived on (written `udp` or `tcp` in call records).
    pub transport: Transport,
    /// The call was already up when the capture started (first seen mid-dialog).
    pub joined: bool,
    /// Media packets sent to one of the call's addresses, while it used it, that could not be
    /// told apart from other calls' media there (and so are in no recording): per address.
    pub ambiguous_media: Vec<AmbiguousMedia>,
    /// 401/407 challenges to the INVITE, in order.
    pub challenges: Vec<Challenge>,
    /// Non-audio media lines.
    pub other_media: Vec<OtherMedia>,
    /// The call's SIP messages in order (the first [`LADDER_MAX`]), as a ladder diagram shows them.
    pub ladder: Vec<LadderStep>,
    /// Messages after the first [`LADDER_MAX`], not in `ladder`.
    pub ladder_omitted: u32,
}

/// SIP messages kept per call for its ladder.
pub const LADDER_MAX: usize = 64;

/// One SIP message of a call, for its ladder diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderStep {
    /// Capture time.
    pub time: Timestamp,
    /// Which party sent it.
    pub from: Side,
    /// Source address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// `INVITE`, `180 Ringing (INVITE)`, …: the start line's method, or code, reason and the
    /// CSeq method.
    pub what: String,
    /// It carried SDP.
    pub sdp: bool,
    /// The same message was seen on this hop before.
    pub retransmission: bool,
}

/// Media packets to an address several calls used that no end could attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousMedia {
    /// The address (one of the call's receive addresses).
    pub addr: SocketAddr,
    /// Packets sent there, while the call used it, that were recorded in no call.
    pub packets: u64,
    /// Media of this call to that address was recognised (by its source) and recorded: the
    /// ambiguous packets are most likely other calls'.
    pub own_flow: bool,
}

/// Where the capture lost packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// callvault's own queue to the recorder was full: this call's RTP was dropped.
    Queue,
    /// The kernel's capture buffer overflowed while the call was up (any packet may be
    /// missing, this call's or others').
    Kernel,
    /// A capture limit (fragment reassemblies, TCP connections or buffers, tunnel depth) shed
    /// packets while the call was up.
    Limit,
    /// This call's RTP packets were cut short by the capture's snapshot length.
    Snaplen,
}

/// A call lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A new call (first INVITE with a new Call-ID).
    Started {
        /// The call.
        call: CallRef,
        /// Identity and start time.
        info: Box<CallStart>,
    },
    /// A party announced (or changed) where it receives media.
    Media {
        /// The call.
        call: CallRef,
        /// The announcement.
        media: Box<MediaAnnounce>,
    },
    /// Packets were lost by the capture itself while this call was up.
    Dropped {
        /// The call.
        call: CallRef,
        /// Packets dropped.
        packets: u64,
        /// Where.
        cause: DropCause,
    },
    /// A party's RTP turned out to be encrypted by something the SDP did not announce
    /// (ZRTP packets on its media address).
    Encrypted {
        /// The call.
        call: CallRef,
        /// The party whose media address carried the evidence (both directions are keyed
        /// together).
        side: Side,
        /// How.
        security: MediaSecurity,
    },
    /// The signalling asked to pause or resume recording, or keyed a DTMF digit that may
    /// belong to a pause code (see [`RecordingControl`]).
    Control {
        /// The call.
        call: CallRef,
        /// Capture time of the message.
        time: Timestamp,
        /// What it asked.
        control: RecordingControl,
    },
    /// The call is over; no further RTP will be sent for it.
    Ended {
        /// The call.
        call: CallRef,
        /// Final call facts.
        info: Box<CallInfo>,
    },
}

/// A SIP message the engine parsed, as it was on the wire (for export to a HOMER collector).
/// Every slice is only valid during the call that hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipSeen<'a> {
    /// Capture time of the packet that completed it.
    pub time: Timestamp,
    /// Sender address.
    pub src: SocketAddr,
    /// Receiver address.
    pub dst: SocketAddr,
    /// UDP datagram or framed out of a TCP stream.
    pub transport: Transport,
    /// The Call-ID header's value (empty when the message has none).
    pub call_id: &'a [u8],
    /// The whole message, start line to the end of its body.
    pub message: &'a [u8],
}

/// Receives what capture produces, in packet order.
pub trait EventSink {
    /// An RTP packet tied to a call, whole (header and payload: [`RtpMeta::payload`]). `packet`
    /// is only valid during the call.
    fn rtp(&mut self, meta: &RtpMeta, packet: &[u8]);
    /// A hint that [`EventSink::rtp`] is coming soon for `meta`: a sink may start loading the
    /// state that will need ([`crate::prefetch`]), so that its wait overlaps other packets'
    /// work. The default does nothing.
    #[inline]
    fn warm(&self, meta: &RtpMeta) {
        let _ = meta;
    }
    /// A later hint for the same packet, nearer its turn: what [`EventSink::warm`] loaded is
    /// in the cache by then, so a sink may follow the pointers it holds to the state behind
    /// them. The default does nothing.
    #[inline]
    fn warm_later(&self, meta: &RtpMeta) {
        let _ = meta;
    }
    /// An RTCP packet tied to a call (the whole compound packet).
    fn rtcp(&mut self, meta: &RtcpMeta, packet: &[u8]) {
        let _ = (meta, packet);
    }
    /// A captured frame (SIP, RTP or RTCP) that belongs to `call`, as it was on the wire, for
    /// a per-call evidence capture. Only sent when the engine keeps frames.
    fn frame(&mut self, call: CallRef, time: Timestamp, link: LinkType, frame: &[u8]) {
        let _ = (call, time, link, frame);
    }
    /// A SIP message was parsed (whether or not it belongs to a call callvault follows).
    /// Called after the message has been handled, for exporters; the default ignores it.
    fn sip(&mut self, seen: &SipSeen<'_>) {
        let _ = seen;
    }
    /// A call lifecycle event.
    fn call(&mut self, event: CallEvent);
}

/// A sink that keeps everything, for tests and tools.
#[derive(Debug, Default)]
pub struct VecSink {
    /// RTP packets with their payloads (padding removed), owned.
    pub rtp: Vec<(RtpMeta, Vec<u8>)>,
    /// Call events.
    pub calls: Vec<CallEvent>,
}

impl EventSink for VecSink {
    fn rtp(&mut self, meta: &RtpMeta, packet: &[u8]) {
        self.rtp.push((*meta, meta.payload(packet).to_vec()));
    }
    fn call(&mut self, event: CallEvent) {
        self.calls.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_numbers_and_names_go_both_ways() {
        for event in 0..=255u8 {
            assert_eq!(event_number(&event_name(event)), Some(event), "{event}");
        }
        assert_eq!(event_number("E"), None);
        assert_eq!(event_number("<300>"), None);
    }
}
