//! Checks of `callvault replay` on generated captures against the generator's ground truth,
//! shared by the end-to-end tests of network situations and mid-call events.
//!
//! The expected audio is built from the generator's own packet list ([`RtpSchedule`] and
//! [`rtp_packet`]): every audio packet sent (not a duplicate, not a telephone event) decoded
//! at `(capture time - origin) / 125 µs`, the origin being the first audio packet of the call.
//! Those captures have no jitter, and their RTP timestamps follow capture time (also across
//! holds, early media and numbering changes), so a correct recorder puts every sample exactly
//! there.
//!
//! Captures with jitter, drift or stalls are checked by RTP time instead ([`check_audio_rtp`]):
//! every sample of every packet sent must be in the file exactly where the record's anchors and
//! slips for its stream put it, and nowhere else is there anything but silence; the anchors
//! themselves must be near where the sender's clock put the packets.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::process::Output;

use callgen::timeline::rtp_nominal_ns;
use callgen::{CallTruth, Codec, Party, RtpSchedule, Scenario, Truth, rtp_addresses, rtp_packet_clear};
use mixer::mix::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
use serde_json::{Value, json};

use crate::common::{self, Rec, channels, records, replay, rfc3339, text};

/// A replay of a generated capture.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub truth: Truth,
    pub out: Output,
    pub recs: Vec<Rec>,
}

impl Run {
    /// The record of a Call-ID (panics with the replay's output when there is none).
    pub fn record(&self, call_id: &str) -> &Rec {
        self.recs
            .iter()
            .find(|r| r.value["call_id"] == call_id)
            .unwrap_or_else(|| panic!("no record for {call_id}\n{}", text(&self.out)))
    }
}

/// Generates `scenario`, replays it with `extra` arguments and reads the archived records.
pub fn run(scenario: &Scenario, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    let truth = callgen::write_pcap(scenario, &pcap).unwrap();
    let out = replay(&[&pcap], dir.path(), extra);
    assert!(out.status.success(), "{}", text(&out));
    let recs = records(&dir.path().join("archive"));
    Run { dir, truth, out, recs }
}

fn decode(pt: u8, payload: &[u8]) -> Vec<i16> {
    let table = match pt {
        0 => &ULAW_TO_LINEAR,
        8 => &ALAW_TO_LINEAR,
        other => panic!("no audio payload type {other}"),
    };
    payload.iter().map(|&b| table[b as usize]).collect()
}

/// One RTP packet the generator wrote.
#[derive(Debug, Clone)]
pub struct Sent {
    pub capture_ns: i64,
    pub duplicate: bool,
    pub early: bool,
    pub index: u32,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    pub payload: Vec<u8>,
}

/// Every RTP packet of one direction, in capture order, with its exact content (before SRTP,
/// for an SRTP call: what a recorder with its keys recovers).
pub fn sent(scenario: &Scenario, call: usize, party: Party) -> Vec<Sent> {
    let q = |ns: i64| scenario.ts_precision.quantize(ns);
    RtpSchedule::new(scenario, call, party)
        .map(|s| {
            let p = rtp_packet_clear(scenario, call, party, &s);
            let (src, dst) = rtp_addresses(scenario, call, party, &s);
            Sent {
                capture_ns: q(s.capture_ns),
                duplicate: s.duplicate,
                early: s.early,
                index: s.index,
                pt: p[1] & 0x7f,
                seq: u16::from_be_bytes([p[2], p[3]]),
                ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                src,
                dst,
                payload: p[12..].to_vec(),
            }
        })
        .collect()
}

fn is_audio(s: &Sent, codec: Codec) -> bool {
    !s.duplicate && s.pt == codec.payload_type() && !s.payload.is_empty()
}

/// Capture time of the call's first audio packet: where its recording starts.
pub fn origin(scenario: &Scenario, call: usize) -> Option<i64> {
    let codec = scenario.calls[call].codec;
    [Party::Caller, Party::Callee]
        .into_iter()
        .flat_map(|p| sent(scenario, call, p))
        .filter(|s| is_audio(s, codec))
        .map(|s| s.capture_ns)
        .min()
}

/// Frames of a correct recording: up to the end of the last audio packet.
pub fn expected_frames(scenario: &Scenario, call: usize, origin: i64) -> usize {
    let codec = scenario.calls[call].codec;
    [Party::Caller, Party::Callee]
        .into_iter()
        .flat_map(|p| sent(scenario, call, p))
        .filter(|s| is_audio(s, codec))
        .map(|s| ((s.capture_ns - origin) / 125_000) as usize + s.payload.len())
        .max()
        .unwrap_or(0)
}

/// The channel a correct recorder writes for `party`.
pub fn expected_channel(scenario: &Scenario, call: usize, party: Party, origin: i64, len: usize) -> Vec<i16> {
    let codec = scenario.calls[call].codec;
    let mut ch = vec![0i16; len];
    for s in sent(scenario, call, party).iter().filter(|s| is_audio(s, codec)) {
        let at = ((s.capture_ns - origin) / 125_000) as usize;
        let pcm = decode(s.pt, &s.payload);
        let end = (at + pcm.len()).min(len);
        if at < end {
            ch[at..end].copy_from_slice(&pcm[..end - at]);
        }
    }
    ch
}

/// Panics at the first frame where `got` differs from `want`, saying where it is in time and
/// how long the difference runs.
pub fn assert_channel(ctx: &str, name: &str, got: &[i16], want: &[i16], origin: i64) {
    assert_eq!(got.len(), want.len(), "{ctx}: {name} channel length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let run = (i..got.len()).take_while(|&j| got[j] != want[j]).count();
        let silent_got = got[i..i + run].iter().all(|&x| x == 0);
        let silent_want = want[i..i + run].iter().all(|&x| x == 0);
        panic!(
            "{ctx}: {name} channel differs from frame {i} ({}) for {run} frames: got {} (silent: {silent_got}), \
             want {} (silent: {silent_want})",
            rfc3339(origin + i as i64 * 125_000),
            got[i],
            want[i]
        );
    }
}

/// Both channels of a call's recording, sample by sample, and the recording's extent.
pub fn check_audio(ctx: &str, scenario: &Scenario, call: usize, rec: &Rec) {
    let origin = origin(scenario, call).expect("the call has audio");
    let frames = expected_frames(scenario, call, origin);
    let audio = &rec.value["audio"];
    assert_eq!(audio["media_start"], rfc3339(origin), "{ctx}: media_start");
    assert_eq!(audio["frames"].as_u64(), Some(frames as u64), "{ctx}: frames");
    let wav = rec.wav.as_deref().unwrap_or_else(|| panic!("{ctx}: no audio file"));
    let [c0, c1] = channels(wav);
    for (name, party, got) in [("caller", Party::Caller, &c0), ("callee", Party::Callee, &c1)] {
        let want = expected_channel(scenario, call, party, origin, frames);
        assert_channel(ctx, name, got, &want, origin);
    }
    assert_eq!(audio["sha256"], common::sha256(wav), "{ctx}");
}

/// Identity, state and times of a call's record against the truth.
pub fn check_call(ctx: &str, t: &CallTruth, rec: &Value) {
    assert_eq!(rec["state"], t.expected_state, "{ctx}: state");
    assert_eq!(rec["from"]["user"], t.from_user.as_str(), "{ctx}");
    assert_eq!(rec["to"]["user"], t.to_user.as_str(), "{ctx}");
    assert_eq!(rec["start"], rfc3339(t.start_ns), "{ctx}: start");
    assert_eq!(rec["answer"].as_str().map(str::to_owned), t.answer_ns.map(rfc3339), "{ctx}: answer");
    if let Some(end) = t.end_ns {
        assert_eq!(rec["end"], rfc3339(end), "{ctx}: end");
    }
    let ended_by = if t.expected_state == "cancelled" { Some("caller") } else { t.hangup };
    assert_eq!(rec["ended_by"].as_str(), ended_by, "{ctx}: ended_by");
    assert_eq!(rec["final_code"].as_u64().map(|c| c as u16), t.final_code, "{ctx}: final_code");
    assert_eq!(rec["sip"]["messages"].as_u64(), Some(t.sip.len() as u64), "{ctx}: SIP messages seen");
    assert_eq!(rec["sip"]["retransmissions"], 0, "{ctx}");
    assert_eq!(rec["capture_complete"], true, "{ctx}: {}", rec["incomplete_reasons"]);
}

/// The RTP streams a correct recorder reports for a call, as RTP analysers key them (SSRC,
/// source, destination): (side, SSRC, source, destination, packets), sorted.
pub fn expected_streams(scenario: &Scenario, call: usize) -> Vec<(String, String, String, String, u64)> {
    let mut out: HashMap<(String, String, String, String), u64> = HashMap::new();
    for party in [Party::Caller, Party::Callee] {
        for s in sent(scenario, call, party) {
            let key = (party.name().to_owned(), format!("{:#010x}", s.ssrc), s.src.to_string(), s.dst.to_string());
            *out.entry(key).or_default() += 1;
        }
    }
    let mut v: Vec<_> = out.into_iter().map(|((a, b, c, d), n)| (a, b, c, d, n)).collect();
    v.sort();
    v
}

/// The streams of a record in the same form as [`expected_streams`].
pub fn record_streams(rec: &Value) -> Vec<(String, String, String, String, u64)> {
    let mut v: Vec<_> = rec["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap().to_owned();
            (f("side"), f("ssrc"), f("src"), f("dst"), s["packets"].as_u64().unwrap())
        })
        .collect();
    v.sort();
    v
}

/// What a correct recorder says of each stream beyond its key: kind, codec, events, jitter and
/// quality presence, and where its first audio packet was placed.
pub fn check_stream_facts(ctx: &str, scenario: &Scenario, call: usize, rec: &Value) {
    let codec = scenario.calls[call].codec;
    let origin = origin(scenario, call);
    for party in [Party::Caller, Party::Callee] {
        let sent = sent(scenario, call, party);
        for s in rec["streams"].as_array().unwrap().iter().filter(|s| s["side"] == party.name()) {
            let ctx = format!("{ctx} {} stream {}", party.name(), s["ssrc"]);
            let mine: Vec<&Sent> = sent
                .iter()
                .filter(|p| {
                    format!("{:#010x}", p.ssrc) == s["ssrc"]
                        && p.src.to_string() == s["src"]
                        && p.dst.to_string() == s["dst"]
                })
                .collect();
            let events: Vec<&&Sent> = mine.iter().filter(|p| p.pt == callgen::TELEPHONE_EVENT_PT).collect();
            let events_only = events.len() == mine.len();
            assert_eq!(s["kind"], if events_only { "events" } else { "audio" }, "{ctx}");
            let name = if events_only { "telephone-event" } else { codec.encoding_name() };
            assert_eq!(s["codec"], name, "{ctx}");
            let mut stamps: Vec<u32> = events.iter().filter(|p| !p.duplicate).map(|p| p.ts).collect();
            stamps.dedup();
            let want_events = (!events.is_empty()).then_some(stamps.len() as u64);
            assert_eq!(s["events"].as_u64(), want_events, "{ctx}: events");
            assert_eq!(s["jitter_ms"].is_null(), events_only, "{ctx}: jitter of audio only");
            assert_eq!(s["quality"].is_null(), events_only, "{ctx}: quality of audio only");
            // These captures have no jitter: every anchor is one of the stream's audio packets,
            // at the frame its capture time gives, and the stream starts where its first audio
            // packet was captured.
            let placement = &s["placement"];
            match mine.iter().find(|p| is_audio(p, codec)) {
                Some(first) => {
                    let origin = origin.expect("audio");
                    let frame = |p: &Sent| (p.capture_ns - origin) / 125_000;
                    let anchors = placement["anchors"].as_array().unwrap_or_else(|| panic!("{ctx}: no anchors"));
                    assert_eq!(anchors[0]["reason"], "start", "{ctx}: first anchor");
                    for a in anchors {
                        let p = mine
                            .iter()
                            .find(|p| is_audio(p, codec) && a["at"] == rfc3339(p.capture_ns) && a["rtp_ts"] == p.ts)
                            .unwrap_or_else(|| panic!("{ctx}: anchor {a} is none of the stream's audio packets"));
                        assert_eq!(a["frame"].as_i64(), Some(frame(p)), "{ctx}: anchor {a}");
                        assert_eq!(a["moved_frames"], 0, "{ctx}: anchor {a}");
                    }
                    assert_eq!(
                        placed_frame(placement, first.ts, first.capture_ns),
                        frame(first),
                        "{ctx}: first packet"
                    );
                }
                None => assert!(placement.is_null(), "{ctx}: no audio, no placement"),
            }
        }
    }
}

/// The codec per direction a correct recorder names: what the party sent, else what the
/// answer (the callee's SDP) settled on, else nothing.
pub fn check_codecs(ctx: &str, scenario: &Scenario, call: usize, t: &CallTruth, rec: &Value) {
    let spec = &scenario.calls[call];
    let answer = (t.answer_ns.is_some() || spec.early_media.is_some())
        .then(|| spec.callee_declares.map_or(spec.codec, |d| d.codec).encoding_name());
    for (party, st) in [(Party::Caller, &t.caller), (Party::Callee, &t.callee)] {
        let sent_audio = sent(scenario, call, party).iter().any(|p| is_audio(p, spec.codec));
        let want = if sent_audio { Some(spec.codec.encoding_name()) } else { answer };
        assert_eq!(
            rec["codecs"][party.name()].as_str(),
            want,
            "{ctx}: {} codec ({} packets)",
            party.name(),
            st.packets_sent
        );
    }
}

/// Checks every call of a replay against the truth: one record per call, the record's facts,
/// streams and holds, and both channels of the audio (calls with media; none for the others).
pub fn check_all(scenario: &Scenario, r: &Run, what: &str) {
    assert_eq!(r.recs.len(), scenario.calls.len(), "{what}: one record per call\n{}", text(&r.out));
    assert_no_stream_in_two_records(r, what);
    for (i, t) in r.truth.calls.iter().enumerate() {
        let ctx = format!("{what} call {}", t.call_id);
        let rec = r.record(&t.call_id);
        check_call(&ctx, t, &rec.value);
        assert_eq!(record_streams(&rec.value), expected_streams(scenario, i), "{ctx}: streams");
        check_stream_facts(&ctx, scenario, i, &rec.value);
        check_codecs(&ctx, scenario, i, t, &rec.value);
        if t.caller.packets_sent + t.callee.packets_sent > 0 {
            check_audio(&ctx, scenario, i, rec);
        } else {
            assert!(rec.wav.is_none(), "{ctx}: no audio expected");
        }
        let holds: Vec<Value> = t
            .holds
            .iter()
            .map(|h| json!({ "by": h.by, "start": rfc3339(h.start_ns), "end": h.end_ns.map(rfc3339) }))
            .collect();
        assert_eq!(rec.value["holds"], Value::Array(holds), "{ctx}: holds");
    }
}

/// No RTP stream (SSRC, source, destination) is listed in two records.
pub fn assert_no_stream_in_two_records(r: &Run, what: &str) {
    let mut seen: HashMap<(String, String, String), String> = HashMap::new();
    for rec in &r.recs {
        let id = rec.value["call_id"].as_str().unwrap().to_owned();
        for s in rec.value["streams"].as_array().unwrap() {
            let key = (s["ssrc"].to_string(), s["src"].to_string(), s["dst"].to_string());
            if let Some(other) = seen.insert(key.clone(), id.clone()) {
                panic!("{what}: stream {key:?} is in the records of {other} and {id}");
            }
        }
    }
}

/// RFC 3339 in a record back to nanoseconds.
pub fn ns_of(rfc: &Value) -> i64 {
    let dt = chrono::DateTime::parse_from_rfc3339(rfc.as_str().expect("a time")).expect("RFC 3339");
    dt.timestamp() * 1_000_000_000 + i64::from(dt.timestamp_subsec_nanos())
}

/// Where the record says a packet of a stream went: its anchor (the last one set by a packet
/// captured at or before it) plus the slips before it.
pub fn placed_frame(placement: &Value, ts: u32, capture_ns: i64) -> i64 {
    let anchors = placement["anchors"].as_array().unwrap();
    let a = anchors.iter().rev().find(|a| ns_of(&a["at"]) <= capture_ns).unwrap_or(&anchors[0]);
    let mut pos =
        a["frame"].as_i64().unwrap() + i64::from(ts.wrapping_sub(a["rtp_ts"].as_u64().unwrap() as u32) as i32);
    for s in placement["slips"].as_array().unwrap() {
        if pos >= s["frame"].as_i64().unwrap() {
            pos += s["inserted"].as_i64().unwrap() - s["removed"].as_i64().unwrap();
        }
    }
    pos
}

/// What [`check_audio_rtp`] measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placement {
    /// Worst distance (ms) between where a stream was anchored and where its sender's clock
    /// put that packet.
    pub anchor_error_ms: f64,
    /// Worst difference (ms) between the parties' placement errors (placed frame minus the
    /// sender's clock) at the same moment: how far apart the parties drifted.
    pub misalignment_ms: f64,
    /// Slips recorded, both parties.
    pub slips: usize,
    /// Samples of silence inserted, both parties.
    pub inserted: i64,
    /// Samples that arrived too late (recorded as such and absent from the file), both parties.
    pub late_samples: i64,
    /// Difference (ms) between the parties' placement errors at the start.
    pub initial_misalignment_ms: f64,
}

/// Both channels of a call checked sample by sample against what the record says it did with
/// each stream: every audio sample sent decoded at its placed frame, silence elsewhere; the
/// samples the record lists as late are exactly the ones missing. Anchors must lie within
/// `anchor_tolerance_ms` of the sender's clock.
pub fn check_audio_rtp(ctx: &str, scenario: &Scenario, call: usize, rec: &Rec, anchor_tolerance_ms: f64) -> Placement {
    let spec = &scenario.calls[call];
    let audio = &rec.value["audio"];
    let origin = ns_of(&audio["media_start"]);
    let frames = audio["frames"].as_u64().unwrap() as usize;
    let wav = rec.wav.as_deref().unwrap_or_else(|| panic!("{ctx}: no audio file"));
    let chans = channels(wav);
    let streams = rec.value["streams"].as_array().unwrap();
    let mut out = Placement::default();
    // Per party: (capture time, placed frame - the sender's clock in frames) of talk packets.
    let mut errors: [Vec<(i64, i64)>; 2] = [Vec::new(), Vec::new()];
    let mut end = 0usize;
    for (ch, party) in [(0usize, Party::Caller), (1, Party::Callee)] {
        let mut want = vec![0i16; frames];
        // Samples the record says arrived too late, and how many of the sent samples those are.
        let mut late_samples = 0i64;
        for s in sent(scenario, call, party).iter().filter(|s| is_audio(s, spec.codec)) {
            let st = streams
                .iter()
                .find(|x| {
                    x["ssrc"] == format!("{:#010x}", s.ssrc)
                        && x["src"] == s.src.to_string()
                        && x["dst"] == s.dst.to_string()
                })
                .unwrap_or_else(|| panic!("{ctx}: no stream for {:?} {:#x}", party, s.ssrc));
            let placement = &st["placement"];
            assert!(placement.is_object(), "{ctx}: stream without placement: {st}");
            let pos = placed_frame(placement, s.ts, s.capture_ns);
            let late: Vec<(i64, i64)> = placement["gaps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["cause"] == "late")
                .map(|g| {
                    let f = g["frame"].as_i64().unwrap();
                    (f, f + (g["ms"].as_f64().unwrap() * 8.0).round() as i64)
                })
                .collect();
            let pcm = decode(s.pt, &s.payload);
            for (i, &x) in pcm.iter().enumerate() {
                let at = pos + i as i64;
                if late.iter().any(|&(a, b)| (a..b).contains(&at)) {
                    late_samples += 1;
                    continue;
                }
                assert!(at >= 0 && (at as usize) < frames, "{ctx}: {party:?} packet {} placed at {pos}", s.index);
                want[at as usize] = x;
                end = end.max(at as usize + 1);
            }
            if !s.early {
                let nominal = rtp_nominal_ns(spec, party, s.index).unwrap();
                errors[ch].push((s.capture_ns, pos - (nominal - origin).div_euclid(125_000)));
            }
        }
        let recorded_late: i64 = streams
            .iter()
            .filter(|st| st["side"] == party.name() && st["placement"].is_object())
            .map(|st| st["placement"]["late_samples"].as_i64().unwrap())
            .sum();
        assert_eq!(recorded_late, late_samples, "{ctx}: {party:?}: the late samples recorded are the ones missing");
        out.late_samples += late_samples;
        let got = &chans[ch];
        assert_eq!(got.len(), frames, "{ctx}");
        if let Some(i) = (0..frames).find(|&i| got[i] != want[i]) {
            let run = (i..frames).take_while(|&j| got[j] != want[j]).count();
            panic!(
                "{ctx}: {party:?} channel differs from frame {i} ({:.3} s) for {run} frames: got {} want {}",
                i as f64 / 8000.0,
                got[i],
                want[i]
            );
        }
        for st in streams.iter().filter(|s| s["side"] == party.name()) {
            let p = &st["placement"];
            if p.is_null() {
                continue;
            }
            out.slips += p["slips"].as_array().unwrap().len();
            out.inserted += p["samples_inserted"].as_i64().unwrap();
        }
    }
    assert_eq!(frames, end, "{ctx}: the recording ends with the last sample placed");
    // Anchors: the first packets' placement error (by stream start) against the tolerance.
    for (ch, e) in errors.iter().enumerate() {
        if let Some(&(_, first)) = e.first() {
            let ms = first as f64 / 8.0;
            out.anchor_error_ms = out.anchor_error_ms.max(ms.abs());
            assert!(ms.abs() <= anchor_tolerance_ms, "{ctx}: channel {ch} anchored {ms} ms from its sender's clock");
        }
    }
    // Alignment: each caller packet against the callee packet captured closest to it.
    if !errors[0].is_empty() && !errors[1].is_empty() {
        out.initial_misalignment_ms = (errors[0][0].1 - errors[1][0].1).abs() as f64 / 8.0;
        let mut j = 0;
        for &(t, e0) in &errors[0] {
            while j + 1 < errors[1].len() && (errors[1][j + 1].0 - t).abs() <= (errors[1][j].0 - t).abs() {
                j += 1;
            }
            out.misalignment_ms = out.misalignment_ms.max((e0 - errors[1][j].1).abs() as f64 / 8.0);
        }
    }
    out
}
