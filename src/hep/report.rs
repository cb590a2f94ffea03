//! A finished call's quality, as HOMER shows it: one report per audio stream (per direction
//! and SSRC), HEP protocol type 34 with a JSON payload in the field names HOMER's RTP agents
//! use (the call's QoS tab charts `TOTAL_PK`, `EXPECTED_PK`, `PACKET_LOSS`, `JITTER`, `MOS`,
//! `OUT_ORDER`), the Call-ID as correlation id, the stream's RTP addresses as the packet's,
//! and the call's end as its time. Every value is the call record's: nothing is recomputed.
//!
//! Fields: `CORRELATION_ID` and `RTP_SIP_CALL_ID` (the Call-ID), `TYPE` (`HANGUP`: a final
//! report), `REPORT_TS` (the call's end, seconds since the epoch), `SRC_IP`, `SRC_PORT`,
//! `DST_IP`, `DST_PORT`, `SSRC`, `DIR` and `PARTY` (0: sent by the caller, 1: by the callee),
//! `CODEC_NAME`, `CODEC_PT`, `TOTAL_PK` (packets, duplicates included), `EXPECTED_PK` (from the
//! sequence numbers), `PACKET_LOSS` (lost packets), `LOSS_PCT`, `OUT_ORDER`, `JITTER` (RFC 3550
//! interarrival jitter at the end, milliseconds), and for G.711 streams `MOS` and `RFACTOR`
//! (ITU-T G.107 E-model, without loss concealment); fields the record does not have are left out.

use std::net::SocketAddr;

use capture::Timestamp;
use mixer::record::{CallRecord, StreamRecord};
use serde_json::{Map, Value, json};

/// One stream's report, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    /// Sender of the stream.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The call's end.
    pub time: Timestamp,
    /// MOS, when the record has one.
    pub mos: Option<f64>,
    /// The JSON payload.
    pub json: String,
}

/// Seconds since the epoch of an RFC 3339 time in a record.
fn parse_time(s: &str) -> Option<Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(Timestamp::from_parts(t.timestamp(), i64::from(t.timestamp_subsec_nanos())))
}

/// The reports of a finished call: one per audio stream whose addresses and end are readable.
pub fn reports(record: &CallRecord) -> Vec<StreamReport> {
    let Some(end) = parse_time(&record.end) else { return Vec::new() };
    record.streams.iter().filter(|s| s.kind == "audio").filter_map(|s| stream(record, s, end)).collect()
}

fn stream(record: &CallRecord, s: &StreamRecord, end: Timestamp) -> Option<StreamReport> {
    let src: SocketAddr = s.src.parse().ok()?;
    let dst: SocketAddr = s.dst.parse().ok()?;
    let dir = u8::from(s.side != "caller");
    let distinct = s.packets.saturating_sub(s.duplicates);
    let mut m = Map::new();
    m.insert("CORRELATION_ID".into(), json!(record.call_id));
    m.insert("RTP_SIP_CALL_ID".into(), json!(record.call_id));
    m.insert("TYPE".into(), json!("HANGUP"));
    // Seconds plus microseconds, added as such (the HEP timestamp's precision).
    let ts = end.secs() as f64 + f64::from(end.subsec_nanos() / 1000) / 1e6;
    m.insert("REPORT_TS".into(), json!(ts));
    m.insert("SRC_IP".into(), json!(src.ip().to_string()));
    m.insert("SRC_PORT".into(), json!(src.port()));
    m.insert("DST_IP".into(), json!(dst.ip().to_string()));
    m.insert("DST_PORT".into(), json!(dst.port()));
    m.insert("SSRC".into(), json!(s.ssrc));
    m.insert("DIR".into(), json!(dir));
    m.insert("PARTY".into(), json!(dir));
    if let Some(codec) = &s.codec {
        m.insert("CODEC_NAME".into(), json!(codec));
    }
    if let Some(pt) = s.payload_types.first() {
        m.insert("CODEC_PT".into(), json!(pt));
    }
    m.insert("TOTAL_PK".into(), json!(s.packets));
    m.insert("EXPECTED_PK".into(), json!(distinct + s.lost));
    m.insert("PACKET_LOSS".into(), json!(s.lost));
    m.insert("LOSS_PCT".into(), json!(s.loss_pct));
    m.insert("OUT_ORDER".into(), json!(s.out_of_order));
    if let Some(j) = s.jitter_ms {
        m.insert("JITTER".into(), json!(j));
    }
    if let Some(q) = &s.quality {
        m.insert("MOS".into(), json!(q.mos));
        m.insert("RFACTOR".into(), json!(q.r_factor));
    }
    Some(StreamReport {
        src,
        dst,
        time: end,
        mos: s.quality.as_ref().map(|q| q.mos),
        json: Value::Object(m).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CallRecord {
        let stream = |side: &str, kind: &str, src: &str, dst: &str| -> Value {
            json!({
                "side": side, "kind": kind, "ssrc": "0x0000abcd", "src": src, "dst": dst,
                "payload_types": [8], "codec": "PCMA", "packets": 500, "events": null, "lost": 7,
                "duplicates": 2, "out_of_order": 3, "late": 0, "loss_pct": 1.4, "loss_bursts": 2,
                "longest_loss_burst": 4, "jitter_ms": 2.5, "seq_restarts": 0,
                "quality": {"r_factor": 80.1, "mos": 4.02, "r_factor_plc": 85.0, "mos_plc": 4.2,
                            "burst_ratio": 1.0, "assumed_delay_ms": 50.0},
                "endpoint_report": null, "first": "2026-01-01T00:00:00.000000Z",
                "last": "2026-01-01T00:00:10.000000Z", "placement": null
            })
        };
        serde_json::from_value(json!({
            "version": 2, "call_id": "c1@h", "from": {"user": "a", "display": null, "uri": "sip:a@h"},
            "to": {"user": "b", "display": null, "uri": "sip:b@h"}, "asserted_identity": null,
            "caller": {"signalling": "10.0.0.1:5060", "media": null},
            "callee": {"signalling": "10.0.0.2:5060", "media": null},
            "start": "2026-01-01T00:00:00.000000Z", "ringing": null, "answer": null,
            "end": "2026-01-01T00:00:12.250000Z", "duration_s": 12.25, "talk_s": null,
            "state": "completed", "end_reason": "bye", "ended_by": null, "final_code": 200,
            "codecs": {"caller": "PCMA", "callee": "PCMA"},
            "sip": {"messages": 6, "invites": 1, "retransmissions": 0, "early_dialogs": 1,
                    "transport": "udp", "challenges": [], "ladder": [], "ladder_omitted": 0},
            "streams": [
                stream("caller", "audio", "10.0.0.1:4000", "10.0.0.2:4002"),
                stream("callee", "events", "10.0.0.2:4002", "10.0.0.1:4000"),
                stream("callee", "audio", "[2001:db8::2]:4002", "[2001:db8::1]:4000"),
            ],
            "audio": null, "evidence": null, "dtmf": [], "holds": [],
            "capture_complete": true, "incomplete_reasons": [], "notes": []
        }))
        .unwrap()
    }

    #[test]
    fn one_report_per_audio_stream_with_the_records_values() {
        let r = reports(&record());
        assert_eq!(r.len(), 2, "the event stream has none");
        assert_eq!(r[0].src, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(r[0].time, Timestamp::from_parts(1_767_225_612, 250_000_000));
        assert_eq!(r[0].mos, Some(4.02));
        let v: Value = serde_json::from_str(&r[0].json).unwrap();
        let want = json!({
            "CORRELATION_ID": "c1@h", "RTP_SIP_CALL_ID": "c1@h", "TYPE": "HANGUP",
            "REPORT_TS": 1_767_225_612.25, "SRC_IP": "10.0.0.1", "SRC_PORT": 4000, "DST_IP": "10.0.0.2",
            "DST_PORT": 4002, "SSRC": "0x0000abcd", "DIR": 0, "PARTY": 0, "CODEC_NAME": "PCMA", "CODEC_PT": 8,
            "TOTAL_PK": 500, "EXPECTED_PK": 505, "PACKET_LOSS": 7, "LOSS_PCT": 1.4, "OUT_ORDER": 3,
            "JITTER": 2.5, "MOS": 4.02, "RFACTOR": 80.1
        });
        assert_eq!(v, want);
        let v: Value = serde_json::from_str(&r[1].json).unwrap();
        assert_eq!((v["DIR"].as_u64(), v["SRC_IP"].as_str()), (Some(1), Some("2001:db8::2")));
    }
}
