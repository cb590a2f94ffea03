//! The generator: a k-way merge of every call's lazy packet streams into one pcap file.
//!
//! Each call contributes three sources — its SIP messages, the callee's RTP and the caller's
//! RTP — each already in capture-time order (see [`crate::timeline`]). A binary heap holds the
//! next capture time of every source, keyed by `(time, call index, source)`, so records come
//! out in non-decreasing time with deterministic tie-breaking. The heap and the per-call state
//! are sized by the number of calls; packets are built one at a time into reused buffers and
//! streamed through a large `BufWriter`, so memory does not grow with the number of packets
//! (unless `keep_payloads` is set).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::frame::{self, Datagram};
use crate::mix::hash;
use crate::pcap::PcapWriter;
use crate::sip::{self, DialogIds};
use crate::spec::{CallSpec, Hangup, Outcome, Scenario};
use crate::timeline::{self, Party, RtpSchedule, RtpSend, SipMsg};
use crate::tone::{ToneCache, ToneSource, samples_per_packet};
use crate::truth::{CallTruth, SipTruth, StreamTruth, Truth};

/// Size of the output buffer.
const WRITE_BUFFER: usize = 1 << 20;

/// Heap source ids; the order breaks ties between sources of one call at the same instant.
const SRC_SIP: u8 = 0;
const SRC_CALLEE: u8 = 1;
const SRC_CALLER: u8 = 2;

/// Generates the capture of `scenario` into the file at `path` (created or truncated).
///
/// Returns the ground truth. The scenario is validated first; an invalid one is an
/// `InvalidInput` error carrying a [`SpecError`](crate::SpecError).
pub fn write_pcap(scenario: &Scenario, path: &Path) -> io::Result<Truth> {
    let file = File::create(path)?;
    write_pcap_to(scenario, file)
}

/// Generates the capture of `scenario` into `w` (buffered internally) and returns the truth.
pub fn write_pcap_to<W: Write>(scenario: &Scenario, w: W) -> io::Result<Truth> {
    scenario.validate()?;
    let mut pcap =
        PcapWriter::new(BufWriter::with_capacity(WRITE_BUFFER, w), scenario.link.linktype(), scenario.ts_precision)?;
    let mut generator = Generator::new(scenario);
    generator.run(&mut pcap)?;
    let bytes = pcap.finish()?;
    Ok(generator.finish(bytes))
}

/// One direction of RTP in progress.
#[derive(Debug)]
struct RtpStream {
    schedule: RtpSchedule,
    head: Option<RtpSend>,
    tone: ToneSource,
}

/// Everything the generator keeps about one call.
#[derive(Debug)]
struct CallState<'a> {
    spec: &'a CallSpec,
    ids: DialogIds,
    sip: Vec<(i64, SipMsg)>,
    sip_next: usize,
    /// Index 0: caller, 1: callee.
    rtp: [RtpStream; 2],
    /// Next IPv4 identification of the caller and the callee.
    ip_id: [u16; 2],
    truth: CallTruth,
}

#[derive(Debug)]
struct Generator<'a> {
    scenario: &'a Scenario,
    calls: Vec<CallState<'a>>,
    heap: BinaryHeap<Reverse<(i64, u32, u8)>>,
    tones: ToneCache,
    sip_text: String,
    payload: Vec<u8>,
    packets: u64,
    sip_messages: u64,
    rtp_packets: u64,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
}

impl<'a> Generator<'a> {
    fn new(scenario: &'a Scenario) -> Generator<'a> {
        let mut tones = ToneCache::default();
        let mut heap = BinaryHeap::with_capacity(scenario.calls.len() * 3);
        let mut calls = Vec::with_capacity(scenario.calls.len());
        for (index, spec) in scenario.calls.iter().enumerate() {
            let key = index as u32;
            let sip = timeline::sip_schedule(spec);
            if let Some(&(t, _)) = sip.first() {
                heap.push(Reverse((t, key, SRC_SIP)));
            }
            let mut stream = |party: Party, tone_hz: f64, src: u8| {
                let mut schedule = RtpSchedule::new(scenario, index, party);
                let head = schedule.next();
                if let Some(h) = head {
                    heap.push(Reverse((h.capture_ns, key, src)));
                }
                // Streams that send nothing get no period table.
                let tone = match head {
                    Some(_) => tones.source(spec.codec, tone_hz),
                    None => ToneSource::Direct { codec: spec.codec, freq_hz: tone_hz },
                };
                RtpStream { schedule, head, tone }
            };
            let rtp = [
                stream(Party::Caller, spec.caller_tone_hz, SRC_CALLER),
                stream(Party::Callee, spec.callee_tone_hz, SRC_CALLEE),
            ];
            let id_seed = hash(&[scenario.seed, 0x1d, index as u64]);
            calls.push(CallState {
                spec,
                ids: DialogIds::new(scenario.seed, index),
                truth: initial_truth(scenario, spec, &sip),
                sip,
                sip_next: 0,
                rtp,
                ip_id: [id_seed as u16, (id_seed >> 16) as u16],
            });
        }
        Generator {
            scenario,
            calls,
            heap,
            tones,
            sip_text: String::with_capacity(2048),
            payload: Vec::with_capacity(2048),
            packets: 0,
            sip_messages: 0,
            rtp_packets: 0,
            first_ns: None,
            last_ns: None,
        }
    }

    fn run<W: Write>(&mut self, pcap: &mut PcapWriter<W>) -> io::Result<()> {
        let precision = self.scenario.ts_precision;
        let link = self.scenario.link;
        // The top entry is rewritten in place with its source's next time (one sift-down)
        // and only popped when the source is exhausted.
        while let Some(mut top) = self.heap.peek_mut() {
            let Reverse((t, key, src)) = *top;
            let call = &mut self.calls[key as usize];
            let spec = call.spec;
            let captured = precision.quantize(t);
            let (datagram, payload, next) = if src == SRC_SIP {
                let (_, msg) = call.sip[call.sip_next];
                call.sip_next += 1;
                sip::render(spec, &call.ids, msg, &mut self.sip_text);
                let by_caller = sip::sent_by_caller(msg);
                let datagram = Datagram {
                    media: false,
                    ip_id: next_ip_id(&mut call.ip_id, by_caller),
                    ..sip_datagram(spec, by_caller)
                };
                let (method, status) = sip::describe(msg);
                call.truth.sip.push(SipTruth { capture_ns: captured, method, status, from_caller: by_caller });
                self.sip_messages += 1;
                let next = call.sip.get(call.sip_next).map(|&(t, _)| t);
                (datagram, self.sip_text.as_bytes(), next)
            } else {
                let by_caller = src == SRC_CALLER;
                let stream = &mut call.rtp[usize::from(!by_caller)];
                let Some(send) = stream.head else {
                    PeekMut::pop(top);
                    continue;
                };
                rtp_packet(spec, by_caller, send.index, &stream.tone, &mut self.payload);
                stream.head = stream.schedule.next();
                let datagram = Datagram {
                    media: true,
                    ip_id: next_ip_id(&mut call.ip_id, by_caller),
                    ..rtp_datagram(spec, by_caller)
                };
                let truth = if by_caller { &mut call.truth.caller } else { &mut call.truth.callee };
                truth.packets_sent += 1;
                truth.first_capture_ns.get_or_insert(captured);
                truth.last_capture_ns = Some(captured);
                self.rtp_packets += 1;
                let next = stream.head.map(|h| h.capture_ns);
                (datagram, self.payload.as_slice(), next)
            };
            let len = frame::frame_len(link, &datagram, payload.len());
            pcap.record(t, len, |w| frame::write(link, &datagram, payload, w))?;
            self.packets += 1;
            self.first_ns.get_or_insert(captured);
            self.last_ns = Some(captured);
            match next {
                Some(next) => {
                    debug_assert!(next >= t, "source went back in time");
                    *top = Reverse((next, key, src));
                }
                None => {
                    PeekMut::pop(top);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, bytes: u64) -> Truth {
        if self.scenario.keep_payloads {
            for call in &mut self.calls {
                let spec = call.spec;
                for (party, truth) in [(Party::Caller, &mut call.truth.caller), (Party::Callee, &mut call.truth.callee)]
                {
                    truth.payloads = Some(all_payloads(spec, party, &mut self.tones));
                }
            }
        }
        Truth {
            calls: self.calls.into_iter().map(|c| c.truth).collect(),
            packets: self.packets,
            sip_messages: self.sip_messages,
            rtp_packets: self.rtp_packets,
            bytes,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
        }
    }
}

/// Returns the sender's next IPv4 identification and counts it up.
fn next_ip_id(ids: &mut [u16; 2], by_caller: bool) -> u16 {
    let id = &mut ids[usize::from(!by_caller)];
    let current = *id;
    *id = id.wrapping_add(1);
    current
}

fn sip_datagram(spec: &CallSpec, by_caller: bool) -> Datagram {
    let caller = (spec.caller_ip, spec.caller_sip_port);
    let callee = (spec.callee_ip, spec.callee_sip_port);
    datagram(if by_caller { (caller, callee) } else { (callee, caller) })
}

fn rtp_datagram(spec: &CallSpec, by_caller: bool) -> Datagram {
    let caller = (spec.caller_ip, spec.caller_rtp_port);
    let callee = (spec.callee_ip, spec.callee_rtp_port);
    datagram(if by_caller { (caller, callee) } else { (callee, caller) })
}

fn datagram(((src, src_port), (dst, dst_port)): ((std::net::IpAddr, u16), (std::net::IpAddr, u16))) -> Datagram {
    Datagram { src, dst, src_port, dst_port, media: false, ip_id: 0 }
}

/// Writes RTP packet `k` of one direction (12-byte header and G.711 payload) into `out`.
fn rtp_packet(spec: &CallSpec, by_caller: bool, k: u32, tone: &ToneSource, out: &mut Vec<u8>) {
    let (ssrc, seq0, ts0) = if by_caller {
        (spec.caller_ssrc, spec.caller_seq0, spec.caller_ts0)
    } else {
        (spec.callee_ssrc, spec.callee_seq0, spec.callee_ts0)
    };
    let spp = samples_per_packet(spec.ptime_ms);
    let marker = if k == 0 { 0x80 } else { 0 };
    out.clear();
    out.push(0x80); // version 2, no padding, no extension, no CSRC
    out.push(marker | spec.codec.payload_type());
    // Sequence numbers and timestamps wrap by design (RFC 3550).
    out.extend_from_slice(&seq0.wrapping_add(k as u16).to_be_bytes());
    out.extend_from_slice(&ts0.wrapping_add(k.wrapping_mul(spp)).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    tone.fill(u64::from(k) * u64::from(spp), spp as usize, out);
}

/// The payload of every packet index of one direction.
fn all_payloads(spec: &CallSpec, party: Party, tones: &mut ToneCache) -> Vec<Vec<u8>> {
    let (silent, tone_hz) = match party {
        Party::Caller => (spec.impair.caller.silent, spec.caller_tone_hz),
        Party::Callee => (spec.impair.callee.silent, spec.callee_tone_hz),
    };
    if silent || timeline::answer_ns(spec).is_none() {
        return Vec::new();
    }
    let tone = tones.source(spec.codec, tone_hz);
    let spp = samples_per_packet(spec.ptime_ms);
    (0..spec.packets_per_direction())
        .map(|k| {
            let mut p = Vec::with_capacity(spp as usize);
            tone.fill(u64::from(k) * u64::from(spp), spp as usize, &mut p);
            p
        })
        .collect()
}

/// The truth of a call before any packet is written: everything but the counters of packets
/// actually sent and the SIP log.
fn initial_truth(scenario: &Scenario, spec: &CallSpec, sip: &[(i64, SipMsg)]) -> CallTruth {
    let q = |ns: i64| scenario.ts_precision.quantize(ns);
    let end_ns = sip
        .iter()
        .find(|(_, m)| matches!(m, SipMsg::Bye(_) | SipMsg::Cancel | SipMsg::InviteFinal(_)))
        .map(|&(t, _)| q(t));
    let (expected_state, final_code, hangup) = match spec.outcome {
        Outcome::Answered { hangup } => match hangup {
            Hangup::Caller => ("completed", Some(200), Some("caller")),
            Hangup::Callee => ("completed", Some(200), Some("callee")),
            Hangup::None => ("in_call", Some(200), None),
        },
        Outcome::Busy => ("rejected", Some(486), None),
        Outcome::Rejected(code) => ("rejected", Some(code), None),
        Outcome::Cancelled => ("cancelled", Some(487), None),
        Outcome::NoAnswer => ("ringing", None, None),
    };
    let stream = |party: Party| {
        let (impair, ssrc) = match party {
            Party::Caller => (&spec.impair.caller, spec.caller_ssrc),
            Party::Callee => (&spec.impair.callee, spec.callee_ssrc),
        };
        let counts = timeline::stream_counts(spec, impair);
        StreamTruth {
            ssrc,
            codec: spec.codec,
            packets_sent: 0,
            unique_packets: counts.unique,
            lost: counts.lost,
            duplicates: counts.duplicates,
            reordered: counts.reordered,
            first_capture_ns: None,
            last_capture_ns: None,
            payloads: None,
        }
    };
    CallTruth {
        call_id: spec.call_id.clone(),
        from_user: spec.from_user.clone(),
        to_user: spec.to_user.clone(),
        start_ns: q(spec.start_ns),
        answer_ns: timeline::answer_ns(spec).map(q),
        end_ns,
        expected_state,
        final_code,
        hangup,
        caller: stream(Party::Caller),
        callee: stream(Party::Callee),
        sip: Vec::with_capacity(sip.len()),
    }
}
