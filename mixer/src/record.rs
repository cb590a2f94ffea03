//! The call record: the JSON document written beside each recording. Its field names are a
//! public format (archive consumers parse it); change them only with a version bump.

use capture::Timestamp;
use capture::events::Party;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Format version of the call record.
///
/// * 2: streams have a `kind` (`audio` or `events`), an `events` count and a `placement`
///   (anchors, slips, gaps with causes, late samples, clock rate); their `codec` is the stream's
///   own; `jitter_ms` is null for event streams; codec names are the IANA spellings; end reason
///   `no_ack`; `encrypted`, `other_media`, `sip.challenges`; `capture_complete` is false
///   whenever the audio is not exactly what the wire carried (slips, late audio, encrypted
///   media, packets cut by the snapshot length). Added since, without a version change (new
///   optional fields): streams' `over_time`; for SRTP streams `encryption` and
///   `auth_failures`, and the gap cause `auth_failed` (`silence_ms.auth_failed`); the
///   audio's `encoding`.
/// * 1: the first published format.
pub const RECORD_VERSION: u32 = 2;

/// A party in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartyRecord {
    /// User part of the URI (number or name).
    pub user: Option<String>,
    /// Display name.
    pub display: Option<String>,
    /// Full URI.
    pub uri: String,
}

impl From<&Party> for PartyRecord {
    fn from(p: &Party) -> Self {
        PartyRecord { user: p.user.clone(), display: p.display.clone(), uri: p.uri.clone() }
    }
}

/// Network addresses of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// SIP signalling address (`ip:port`).
    pub signalling: String,
    /// Media (RTP receive) address from its SDP (`ip:port`).
    pub media: Option<String>,
}

/// Statistics of one RTP stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// `caller` or `callee`: who sent it (WAV channel 0 or 1).
    pub side: String,
    /// `audio` (voice, possibly with RFC 4733 events on the same SSRC) or `events` (RFC 4733
    /// telephone events alone).
    pub kind: String,
    /// SSRC as `0x` + 8 hex digits.
    pub ssrc: String,
    /// Sender `ip:port`.
    pub src: String,
    /// Receiver `ip:port`.
    pub dst: String,
    /// Payload types seen.
    pub payload_types: Vec<u8>,
    /// Codec of the stream (IANA encoding name, e.g. `PCMA`; `telephone-event` for an event
    /// stream), as its payload type resolves through the sender's own SDP.
    pub codec: Option<String>,
    /// Packets seen, duplicates included.
    pub packets: u64,
    /// RFC 4733 telephone events carried (distinct events), when the stream carried any.
    pub events: Option<u64>,
    /// Packets expected from the sequence numbers minus distinct packets received.
    pub lost: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets that arrived after a later one.
    pub out_of_order: u64,
    /// Packets that arrived too late for their place in the recording.
    pub late: u64,
    /// Lost packets as a percentage of those expected.
    pub loss_pct: f64,
    /// Runs of consecutive lost packets.
    pub loss_bursts: u64,
    /// Longest run of consecutive lost packets.
    pub longest_loss_burst: u64,
    /// RFC 3550 interarrival jitter at the end of the stream, milliseconds, over its audio
    /// packets (null for an event stream).
    pub jitter_ms: Option<f64>,
    /// Sequence number restarts (a sender resetting its numbering).
    pub seq_restarts: u64,
    /// Estimated conversational quality (G.711 streams only).
    pub quality: Option<QualityRecord>,
    /// What the receiving endpoint reported about this stream in RTCP, when it did.
    pub endpoint_report: Option<EndpointReport>,
    /// First packet.
    pub first: String,
    /// Last packet.
    pub last: String,
    /// Where the stream's audio is in the file and what placing it took (streams with audio;
    /// null for a stream of telephone events alone).
    #[serde(default)]
    pub placement: Option<PlacementRecord>,
    /// The stream's quality over the call, interval by interval (audio streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_time: Option<OverTimeRecord>,
    /// How the stream was encrypted and whether it was decrypted, e.g. `SRTP
    /// (AES_CM_128_HMAC_SHA1_80), decrypted with SDES keys from the SDP` (absent: in the
    /// clear). Never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// SRTP packets of the stream that failed authentication: not decoded, their place is a
    /// gap with cause `auth_failed` (present for SRTP streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_failures: Option<u64>,
}

/// A stream's quality per interval of capture time, from its first packet. Intervals are 5 s
/// until the stream outgrows 32 of them, then twice as wide each time it does again (the
/// memory per stream stays fixed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverTimeRecord {
    /// Width of each interval in seconds.
    pub interval_s: f64,
    /// The intervals in order, the first starting at the stream's `first` packet.
    pub intervals: Vec<IntervalRecord>,
}

/// One interval of [`OverTimeRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// Start, seconds after the stream's first packet.
    pub t_s: f64,
    /// Distinct packets received.
    pub packets: u32,
    /// Packets missing (expected from the sequence numbers, not received).
    pub lost: u32,
    /// `lost` as a percentage of the packets expected.
    pub loss_pct: f64,
    /// The highest RFC 3550 interarrival jitter within the interval, ms.
    pub jitter_max_ms: f64,
    /// MOS of the interval (E-model, G.711 streams; as the stream's `quality.mos`, with the
    /// interval's loss counted as random and its highest jitter).
    pub mos: Option<f64>,
}

/// Where one stream's audio went and every edit made to it. A sample with RTP timestamp `t`
/// after anchor `a` (and before the next anchor) is at frame `a.frame + (t - a.rtp_ts)` (the
/// difference taken modulo 2^32 as a signed 32-bit number), plus the samples inserted by the
/// slips before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacementRecord {
    /// Where the stream's timestamps were tied to the file, first the stream's start.
    pub anchors: Vec<AnchorRecord>,
    /// Silence inserted into (or audio removed from) the stream to keep it aligned with the
    /// other party when the senders' clocks drift apart.
    pub slips: Vec<SlipRecord>,
    /// Slips beyond the ones listed (counted in the totals).
    pub slips_omitted: u32,
    /// Samples of silence inserted by slips.
    pub samples_inserted: u64,
    /// Samples removed by slips.
    pub samples_removed: u64,
    /// Samples that arrived after their place in the file had been written (missing).
    pub late_samples: u64,
    /// Where the stream's channel is silent between its first and last packet, and why.
    pub gaps: Vec<GapRecord>,
    /// Gaps beyond the ones listed (counted in `silence_ms`).
    pub gaps_omitted: u32,
    /// Milliseconds of silence per cause: `lost`, `capture_drop`, `late`, `not_sent`, `hold`,
    /// `signal` (telephone events or comfort noise instead of audio).
    pub silence_ms: SilenceRecord,
    /// The sender's clock rate against the capture clock (ppm; positive: fast), measured over
    /// at least 30 s of the stream.
    pub clock_ppm: Option<f64>,
}

/// An RTP timestamp tied to a frame of the audio file. Two replays of the same packets with
/// other capture times (live and a re-capture) can differ by a frame in the alignment of the
/// parties; the anchors say why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// Capture time of the packet carrying the timestamp.
    pub at: String,
    /// The RTP timestamp.
    pub rtp_ts: u32,
    /// The frame it is placed at (frames since `audio.media_start`).
    pub frame: i64,
    /// `start`, `timestamp_jump` or `timestamps_back`.
    pub reason: String,
    /// Frames it was moved later than its arrival asked, so as not to overlap the party's
    /// own audio or frames already written (normally 0).
    pub moved_frames: i64,
}

/// A slip: samples inserted or removed at one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlipRecord {
    /// Capture time of the packet it was applied at.
    pub at: String,
    /// First frame affected.
    pub frame: i64,
    /// Seconds into the audio file.
    pub offset_s: f64,
    /// Samples of silence inserted.
    pub inserted: u32,
    /// Samples removed.
    pub removed: u32,
    /// Made where the stream was silent anyway (a gap or a talkspurt start).
    pub in_silence: bool,
}

/// A stretch of silence in a stream's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapRecord {
    /// First frame.
    pub frame: i64,
    /// Seconds into the audio file.
    pub offset_s: f64,
    /// Length in milliseconds.
    pub ms: f64,
    /// `lost`, `capture_drop`, `late`, `not_sent`, `hold`, `signal` or `auth_failed`.
    pub cause: String,
}

/// Milliseconds of silence per cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SilenceRecord {
    /// Packets lost in the network.
    pub lost: f64,
    /// Packets missing after the capture dropped some.
    pub capture_drop: f64,
    /// Packets that arrived too late to be placed.
    pub late: f64,
    /// Nothing sent (silence suppression, a pause).
    pub not_sent: f64,
    /// Nothing sent while on hold.
    pub hold: f64,
    /// Telephone events or comfort noise instead of audio.
    pub signal: f64,
    /// SRTP packets that failed authentication.
    #[serde(default)]
    pub auth_failed: f64,
}

/// A party whose media is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedRecord {
    /// `caller` or `callee`: whose RTP.
    pub side: String,
    /// `SRTP (SDES keys)`, `DTLS-SRTP`, `ZRTP` or `SRTP`.
    pub encryption: String,
    /// When it was recognised (the SDP, or the first ZRTP packet).
    pub since: String,
    /// Audio packets not recorded because of it.
    pub packets: u64,
}

/// ITU-T G.107 E-model rating of one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRecord {
    /// Transmission rating R without packet loss concealment.
    pub r_factor: f64,
    /// MOS without packet loss concealment.
    pub mos: f64,
    /// R with G.711 Appendix I packet loss concealment.
    pub r_factor_plc: f64,
    /// MOS with packet loss concealment.
    pub mos_plc: f64,
    /// Burst ratio of the loss pattern (1 = random).
    pub burst_ratio: f64,
    /// One-way delay assumed by the model, milliseconds.
    pub assumed_delay_ms: f64,
}

/// RTCP receiver statistics an endpoint reported about a stream it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// `caller` or `callee`: who reported.
    pub reported_by: String,
    /// Report blocks received.
    pub reports: u32,
    /// Cumulative packets lost, as last reported.
    pub cumulative_lost: i32,
    /// Fraction lost in the last interval, percent.
    pub fraction_lost_pct: f64,
    /// Highest fraction lost reported, percent.
    pub max_fraction_lost_pct: f64,
    /// Interarrival jitter, last reported, milliseconds.
    pub jitter_ms: f64,
    /// Highest jitter reported, milliseconds.
    pub max_jitter_ms: f64,
}

/// The per-call evidence capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// File name (beside the record).
    pub file: String,
    /// Frames in it.
    pub packets: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// A DTMF key press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfRecord {
    /// `0`-`9`, `*`, `#`, `A`-`D`, `flash` or `<code>`.
    pub digit: String,
    /// `caller` or `callee`: who pressed it.
    pub side: String,
    /// When it started.
    pub at: String,
    /// How long it lasted, when known.
    pub duration_ms: Option<u32>,
    /// `rfc4733` (RTP telephone-event) or `sip_info`.
    pub source: String,
}

/// A hold period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// `caller` or `callee`: who put the call on hold.
    pub by: String,
    /// Start.
    pub start: String,
    /// End (resume), if the call was resumed.
    pub end: Option<String>,
}

/// A span where recording was paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseRecord {
    /// What paused it, e.g. `dtmf *1 (caller)`.
    pub trigger: String,
    /// When it was keyed (capture time of the last key's first packet).
    pub at: String,
    /// Start and end of the silence, seconds from the recording's start (`media_start`), exact
    /// to the sample (multiples of 1/8000 s); `end_s` is null when it was never resumed
    /// (silence to the end).
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// What resumed it.
    pub resumed_by: Option<String>,
    /// Seconds it should have covered but could not: already written when it was keyed.
    pub missed_s: f64,
    /// DTMF keys pressed while paused: counted, left out of `dtmf`.
    pub dtmf_withheld: u32,
}

/// One audio file of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioFileRecord {
    /// File name (beside the record).
    pub file: String,
    /// What its channels carry.
    pub channels: Vec<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The recording's audio file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioRecord {
    /// File name (beside the record); the caller's file for the split layout.
    pub file: String,
    /// Every audio file of the recording (one, or one per party for the split layout).
    pub files: Vec<AudioFileRecord>,
    /// Container format (`wav`, `flac`).
    pub format: String,
    /// Channel layout: `stereo` (channel 0 caller, channel 1 callee).
    pub layout: String,
    /// What each channel carries.
    pub channels: Vec<String>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// How samples are stored: `pcm_s16le`, or the G.711 codes as captured, `pcm_mulaw` or
    /// `pcm_alaw` (8 bits per sample); absent in records written before it was added: PCM.
    #[serde(default = "pcm_s16le")]
    pub encoding: String,
    /// Frames (samples per channel).
    pub frames: u64,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Capture time of the first frame.
    pub media_start: String,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

fn pcm_s16le() -> String {
    "pcm_s16le".into()
}

/// SIP facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipRecord {
    /// Messages seen for this Call-ID, retransmissions included.
    pub messages: u32,
    /// INVITE requests (challenged re-sends and re-INVITEs included, retransmissions not).
    pub invites: u32,
    /// Retransmissions recognised.
    pub retransmissions: u32,
    /// Early dialogs (distinct To-tags; more than one means the call forked).
    pub early_dialogs: u32,
    /// Transport the INVITE arrived on.
    pub transport: String,
    /// 401/407 challenges to the INVITE: the call goes on from the INVITE re-sent with
    /// credentials, however late.
    #[serde(default)]
    pub challenges: Vec<ChallengeRecord>,
    /// The call's SIP messages in order, retransmissions included (the first 64), as a ladder
    /// diagram (sngrep) shows them.
    #[serde(default)]
    pub ladder: Vec<LadderRecord>,
    /// Messages after those in `ladder`.
    #[serde(default)]
    pub ladder_omitted: u32,
}

/// One SIP message of the call's ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LadderRecord {
    /// Capture time (RFC 3339).
    pub at: String,
    /// `caller` or `callee`: who sent it.
    pub from: String,
    /// Source address:port.
    pub src: String,
    /// Destination address:port.
    pub dst: String,
    /// The request's method, or the response's code, reason and CSeq method.
    pub what: String,
    /// It carried SDP.
    pub sdp: bool,
    /// A retransmission of a message seen before on this hop.
    pub retransmission: bool,
}

/// A 401/407 challenge to the call's INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// 401 or 407.
    pub code: u16,
    /// When it was sent.
    pub at: String,
    /// When the INVITE was re-sent with credentials, if it was.
    pub retried_at: Option<String>,
}

/// A non-audio media line of the call (video, T.38 fax, BFCP, ...): not recorded, counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherMediaRecord {
    /// Media type (`video`, `image`, `application`, ...).
    pub kind: String,
    /// Transport protocol of the line (`RTP/AVP`, `udptl`, `UDP/BFCP`, ...).
    pub protocol: String,
    /// First format of the line (encoding name, payload type, `t38`, `*`).
    pub format: String,
    /// `caller` or `callee`: whose SDP announced it (it receives there).
    pub announced_by: String,
    /// Where it receives (`ip:port`).
    pub address: String,
    /// Datagrams the caller sent on it.
    pub caller_packets: u64,
    /// Datagrams the callee sent on it.
    pub callee_packets: u64,
}

/// The call record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Format version.
    pub version: u32,
    /// SIP Call-ID.
    pub call_id: String,
    /// From of the initial INVITE.
    pub from: PartyRecord,
    /// To of the initial INVITE.
    pub to: PartyRecord,
    /// P-Asserted-Identity, when present.
    pub asserted_identity: Option<PartyRecord>,
    /// Caller addresses.
    pub caller: Endpoints,
    /// Callee addresses.
    pub callee: Endpoints,
    /// First INVITE (RFC 3339, UTC).
    pub start: String,
    /// First 180/183.
    pub ringing: Option<String>,
    /// Answer (first 2xx to the INVITE).
    pub answer: Option<String>,
    /// End of the call.
    pub end: String,
    /// `end - start` in seconds.
    pub duration_s: f64,
    /// `end - answer` in seconds, for answered calls.
    pub talk_s: Option<f64>,
    /// Last dialog state: completed, in_call, rejected, cancelled, ringing, setup.
    pub state: String,
    /// Why the call ended: bye, cancel, rejected, media_timeout, no_ack, setup_timeout,
    /// end_of_input, shutdown.
    pub end_reason: String,
    /// `caller` or `callee` for BYE/CANCEL.
    pub ended_by: Option<String>,
    /// Final response code to the INVITE.
    pub final_code: Option<u16>,
    /// Audio codec per direction: what each party sent, else what the answer settled on.
    pub codecs: Codecs,
    /// SIP facts.
    pub sip: SipRecord,
    /// RTP streams, caller's first.
    pub streams: Vec<StreamRecord>,
    /// The audio file, absent when the call had no decodable media.
    pub audio: Option<AudioRecord>,
    /// The call's own packets as captured (`--keep-pcap`).
    pub evidence: Option<EvidenceRecord>,
    /// DTMF key presses, in time order (RTP telephone-events and SIP INFO).
    pub dtmf: Vec<DtmfRecord>,
    /// Hold periods.
    pub holds: Vec<HoldRecord>,
    /// Spans where recording was paused (PCI DSS): both channels are silence there.
    #[serde(default)]
    pub pauses: Vec<PauseRecord>,
    /// Parties whose media is encrypted: their audio is not recorded.
    #[serde(default)]
    pub encrypted: Vec<EncryptedRecord>,
    /// Non-audio media lines (video, fax, ...) with their packet counts; not recorded.
    #[serde(default)]
    pub other_media: Vec<OtherMediaRecord>,
    /// True when callvault saw everything of this call it needed to record it and the audio is
    /// exactly what the wire carried; network loss alone does not make a capture incomplete.
    pub capture_complete: bool,
    /// Why the capture is incomplete (empty when complete).
    pub incomplete_reasons: Vec<String>,
    /// Why there is no audio, or what is missing from it (undecodable codec, write error).
    pub notes: Vec<String>,
}

/// Audio codec per direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Codecs {
    /// What the caller sent.
    pub caller: Option<String>,
    /// What the callee sent.
    pub callee: Option<String>,
    /// Each party's audio packets by codec, in time order: one segment per run of one payload
    /// type (a codec change mid-call starts a new one), decoded or not.
    #[serde(default)]
    pub segments: Vec<CodecSegmentRecord>,
    /// Codec changes beyond the 16 segments kept per party (counted on its last one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub segments_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One party's audio in one codec, for as long as it sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecSegmentRecord {
    /// `caller` or `callee`: who sent it.
    pub side: String,
    /// Encoding name (IANA spelling), or `PT<n>` for a payload type nothing names.
    pub codec: String,
    /// RTP payload type.
    pub payload_type: u8,
    /// Whether the audio is decoded into the recording (else only counted).
    pub decoded: bool,
    /// Capture times of its first and last packets (RFC 3339).
    pub first: String,
    pub last: String,
    /// Packets.
    pub packets: u64,
}

/// What is known about a call whose audio file is being written, kept beside it (as
/// `<file>.partial.json`) so that a recording interrupted by a crash can be recovered with its
/// identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRecord {
    /// Format version.
    pub version: u32,
    /// SIP Call-ID.
    pub call_id: String,
    /// First INVITE.
    pub start: String,
    /// Start as Unix nanoseconds (for naming the recording).
    pub start_ns: i64,
    /// From of the INVITE.
    pub from: PartyRecord,
    /// To of the INVITE.
    pub to: PartyRecord,
    /// Capture time of the audio file's first frame.
    pub media_start: String,
}

/// RFC 3339 UTC with microseconds (`2016-11-26T14:52:59.666393Z`).
pub fn rfc3339(t: Timestamp) -> String {
    match DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => format!("{}", t.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(Timestamp::from_parts(1_480_171_979, 666_393_000)), "2016-11-26T14:52:59.666393Z");
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000000Z");
    }
}
