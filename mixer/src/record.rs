//! The call record: the JSON document written beside each recording. Its field names are a
//! public format (archive consumers parse it); change them only with a version bump.

use capture::Timestamp;
use capture::events::Party;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Format version of the call record.
///
/// 2: streams have a `kind` (`audio` or `events`), an `events` count and an `anchor`; their
/// `codec` is the stream's own; `jitter_ms` is null for event streams; codec names are the
/// IANA spellings; end reason `no_ack`.
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
    /// How the stream was placed on the recording's timeline, when it carried audio.
    pub anchor: Option<AnchorRecord>,
}

/// Where a stream's first audio packet was placed: the recording follows its RTP timestamps
/// from there. Two replays of the same packets with other capture times (live and a re-capture)
/// can differ by a frame in the alignment of the parties; these say why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// Capture time of that packet.
    pub at: String,
    /// Its RTP timestamp.
    pub rtp_ts: u32,
    /// The frame of the recording it starts at (frames since `audio.media_start`).
    pub frame: u64,
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
    /// True when callvault saw everything of this call it needed to record it; network loss
    /// alone does not make a capture incomplete.
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
