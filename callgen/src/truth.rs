//! Ground truth: what was written, per call and per RTP direction.
//!
//! Every time here is a capture time as it appears in the file, i.e. truncated to whole
//! microseconds when the scenario uses [`TsPrecision::Micro`](crate::TsPrecision).

use serde::Serialize;

use crate::spec::Codec;

/// What a generated capture contains.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    /// One entry per call, in the order of `Scenario::calls`.
    pub calls: Vec<CallTruth>,
    /// Records in the file.
    pub packets: u64,
    /// SIP messages among them (INVITE retransmissions included).
    pub sip_messages: u64,
    /// RTP packets among them (duplicates included).
    pub rtp_packets: u64,
    /// Size of the file in bytes, headers included.
    pub bytes: u64,
    /// Capture time of the first record.
    pub first_ns: Option<i64>,
    /// Capture time of the last record.
    pub last_ns: Option<i64>,
}

/// What a correct recorder should report for one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallTruth {
    /// SIP Call-ID.
    pub call_id: String,
    /// Caller's user.
    pub from_user: String,
    /// Callee's user.
    pub to_user: String,
    /// Capture time of the first INVITE.
    pub start_ns: i64,
    /// Capture time of the 200 OK to the INVITE, when answered.
    pub answer_ns: Option<i64>,
    /// Capture time of the BYE, the CANCEL or the final non-2xx response; `None` when the call
    /// is left open (answered without BYE, or never answered).
    pub end_ns: Option<i64>,
    /// `"completed"` (answered and BYE), `"in_call"` (answered, no BYE), `"rejected"` (busy or
    /// rejected), `"cancelled"` or `"ringing"` (no answer; a 180 was seen).
    pub expected_state: &'static str,
    /// Final response to the INVITE: 200, 486, the rejection code, 487; `None` for no answer.
    pub final_code: Option<u16>,
    /// `"caller"` or `"callee"` for a completed call.
    pub hangup: Option<&'static str>,
    /// RTP sent by the caller (WAV channel 0).
    pub caller: StreamTruth,
    /// RTP sent by the callee (WAV channel 1).
    pub callee: StreamTruth,
    /// Every SIP message of the call, in capture order. With SIP over TCP, a message's time
    /// is that of the segment(s) carrying it (see [`TcpOptions`](crate::TcpOptions)).
    pub sip: Vec<SipTruth>,
    /// Hold periods ([`MidCall::Hold`](crate::MidCall)), in time order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldTruth>,
    /// RFC 4733 key presses ([`DtmfDigit`](crate::DtmfDigit)), in time order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dtmf: Vec<DtmfTruth>,
    /// Early media ([`EarlyMedia`](crate::EarlyMedia)), when the callee sent any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_media: Option<EarlyMediaTruth>,
}

/// One hold period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HoldTruth {
    /// `"caller"` or `"callee"`: who put the call on hold.
    pub by: &'static str,
    /// Capture time of the re-INVITE with `a=sendonly`.
    pub start_ns: i64,
    /// Capture time of the re-INVITE with `a=sendrecv`, if the call was resumed.
    pub end_ns: Option<i64>,
    /// `"caller"` or `"callee"`: the party that stopped sending.
    pub held: &'static str,
    /// Nominal capture time of the held party's first packet not sent (`None` when the hold
    /// covers none of its slots).
    pub silent_from_ns: Option<i64>,
    /// Nominal capture time of the held party's first packet after the hold (`None` when its
    /// stream ended first).
    pub silent_until_ns: Option<i64>,
}

/// One RFC 4733 key press.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtmfTruth {
    /// `0`-`9`, `*`, `#`, `A`-`D`, `flash` or `<code>`.
    pub digit: String,
    /// `"caller"` or `"callee"`.
    pub side: &'static str,
    /// Capture time of the first event packet sent (`None` if none was).
    pub start_ns: Option<i64>,
    /// `packets · ptime_ms`: the duration in the end packets.
    pub duration_ms: u32,
}

/// The callee's early media.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EarlyMediaTruth {
    /// Ringback packets sent (they are counted in the callee's [`StreamTruth`] too).
    pub packets: u32,
    /// Capture time of the first one.
    pub first_capture_ns: i64,
    /// Capture time of the last one.
    pub last_capture_ns: i64,
    /// Frequency of the ringback tone.
    pub tone_hz: f64,
}

/// One SIP message as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SipTruth {
    /// Capture time.
    pub capture_ns: i64,
    /// The method in the CSeq header (the request method, or the method a response answers).
    pub method: &'static str,
    /// Status code for a response, `None` for a request.
    pub status: Option<u16>,
    /// Sent by the caller (else by the callee).
    pub from_caller: bool,
}

/// One RTP direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamTruth {
    /// SSRC of every packet (of the packets before the first
    /// [`StreamChange`](crate::StreamChange), when there is one).
    pub ssrc: u32,
    /// Payload codec.
    pub codec: Codec,
    /// Packets put on the wire, duplicates included.
    pub packets_sent: u32,
    /// Distinct packets sent (stream length minus lost, minus packets not sent while held or
    /// in Opus DTX, plus early-media packets).
    pub unique_packets: u32,
    /// Indexes never sent.
    pub lost: u32,
    /// Extra copies sent (duplicates of lost packets are not sent and not counted).
    pub duplicates: u32,
    /// Swaps that took place: reorder entries `i` where neither `i` nor `i + 1` was lost.
    pub reordered: u32,
    /// Capture time of the first packet sent.
    pub first_capture_ns: Option<i64>,
    /// Capture time of the last packet sent.
    pub last_capture_ns: Option<i64>,
    /// The payload of every talk packet index, lost ones and ones not sent while held
    /// included (for an Opus slot DTX left unsent, the one-byte frame libopus made),
    /// telephone-event payloads for RFC 4733 packets (`Scenario::keep_payloads`
    /// only; empty when the direction sends nothing; early media is not included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payloads: Option<Vec<Vec<u8>>>,
}
