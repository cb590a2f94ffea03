//! End to end: what kind of media each stream carries and what each party actually sent.
//! RFC 4733 telephone events on their own stream are reported as an event stream (events,
//! packets; no jitter, no voice quality, not the direction's codec), events on the voice SSRC
//! count in its sequence numbers but not in its jitter; a party sending payload types its own
//! SDP did not declare is named, with the codec actually decoded; codecs per direction are what
//! each party sent, else what the answer settled on.

mod common;
mod gen_check;

use callgen::{CallSpec, Codec, Declared, DtmfDigit, EventStream, Party, Scenario};
use gen_check::{check_all, run};
use serde_json::Value;

const T0: i64 = 1_735_689_600 * 1_000_000_000; // 2025-01-01T00:00:00Z
const MS: i64 = 1_000_000;

fn streams<'a>(rec: &'a Value, side: &str) -> Vec<&'a Value> {
    rec["streams"].as_array().unwrap().iter().filter(|s| s["side"] == side).collect()
}

#[test]
fn telephone_events_on_their_own_stream_and_on_the_voice_ssrc() {
    // The caller sends its digits on a stream of their own; the callee on its voice SSRC.
    let mut c = CallSpec::answered(0, T0, 4000);
    c.codec = Codec::Pcma;
    c.dtmf = vec![
        DtmfDigit { party: Party::Caller, event: 1, at_packet: 40, packets: 4 },
        DtmfDigit { party: Party::Caller, event: 11, at_packet: 100, packets: 6 },
        DtmfDigit { party: Party::Callee, event: 5, at_packet: 60, packets: 5 },
        DtmfDigit { party: Party::Callee, event: 10, at_packet: 150, packets: 3 },
    ];
    c.event_streams = vec![EventStream { party: Party::Caller, ssrc: 0x0e0e_0e0e, seq: 7000 }];
    let mut v6 = CallSpec::answered(1, T0 + 200 * MS, 3000).into_ipv6();
    v6.dtmf = vec![DtmfDigit { party: Party::Callee, event: 9, at_packet: 30, packets: 8 }];
    v6.event_streams = vec![EventStream { party: Party::Callee, ssrc: 0x0f0f_0f0f, seq: 65_530 }];
    let scenario = Scenario { calls: vec![c, v6], seed: 21, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "RFC 4733 streams");

    let rec = &r.record(&r.truth.calls[0].call_id).value;
    let caller = streams(rec, "caller");
    assert_eq!(caller.len(), 2, "voice and events: {caller:?}");
    let events = caller.iter().find(|s| s["kind"] == "events").unwrap();
    assert_eq!(events["ssrc"], "0x0e0e0e0e");
    assert_eq!((events["events"].as_u64(), events["packets"].as_u64()), (Some(2), Some(4 + 2 + 6 + 2)));
    assert_eq!(events["codec"], "telephone-event");
    assert_eq!(events["lost"], 0, "its own numbering, without gaps");
    let voice = caller.iter().find(|s| s["kind"] == "audio").unwrap();
    assert_eq!(voice["events"], Value::Null);
    assert_eq!(voice["lost"], 0, "the voice numbering skips nothing for the event slots");
    assert_eq!(voice["codec"], "PCMA");
    // Events on the voice SSRC: one stream, its jitter that of the audio (none here).
    let callee = streams(rec, "callee");
    assert_eq!(callee.len(), 1);
    assert_eq!((callee[0]["kind"].as_str(), callee[0]["events"].as_u64()), (Some("audio"), Some(2)));
    assert_eq!(callee[0]["jitter_ms"], 0.0, "event timestamps are not jitter");
    assert_eq!((rec["codecs"]["caller"].as_str(), rec["codecs"]["callee"].as_str()), (Some("PCMA"), Some("PCMA")));
    assert_eq!(rec["dtmf"].as_array().unwrap().len(), 4);
}

#[test]
fn a_party_sending_what_its_sdp_did_not_declare_is_named() {
    // sipp's echo UAS: it answers PCMU alone, then echoes the PCMA and the events it gets.
    let mut echo = CallSpec::answered(0, T0, 3000);
    echo.codec = Codec::Pcma;
    echo.callee_declares = Some(Declared { codec: Codec::Pcmu, telephone_event: false });
    echo.dtmf = vec![DtmfDigit { party: Party::Callee, event: 3, at_packet: 50, packets: 4 }];
    // The same answer from a callee that sends nothing: its codec is what the answer said.
    let mut mute = CallSpec::answered(1, T0 + 100 * MS, 3000);
    mute.codec = Codec::Pcma;
    mute.callee_declares = Some(Declared { codec: Codec::Pcmu, telephone_event: false });
    mute.impair.callee.silent = true;
    let scenario = Scenario { calls: vec![echo, mute], seed: 22, ..Scenario::default() };
    let r = run(&scenario, &[]);
    check_all(&scenario, &r, "undeclared payload types");

    let rec = &r.record(&r.truth.calls[0].call_id).value;
    assert_eq!(
        (rec["codecs"]["caller"].as_str(), rec["codecs"]["callee"].as_str()),
        (Some("PCMA"), Some("PCMA")),
        "what was sent"
    );
    let notes = rec["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0],
        "the callee sent PCMA (PT 8), telephone-event (PT 101), which its own SDP did not declare \
         (it declared PCMU (PT 0)); taken as named"
    );
    assert_eq!(rec["dtmf"].as_array().unwrap().len(), 1);

    let rec = &r.record(&r.truth.calls[1].call_id).value;
    assert_eq!(
        (rec["codecs"]["caller"].as_str(), rec["codecs"]["callee"].as_str()),
        (Some("PCMA"), Some("PCMU")),
        "the answer's"
    );
    // Only the caller sent audio: one segment, its packets all counted.
    let segments = rec["codecs"]["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert_eq!((segments[0]["side"].as_str(), segments[0]["codec"].as_str()), (Some("caller"), Some("PCMA")));
    assert!(rec["notes"].as_array().unwrap().is_empty(), "{}", rec["notes"]);
}
