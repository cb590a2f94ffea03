//! The generator: a k-way merge of every call's lazy packet streams into one pcap file.
//!
//! Each call contributes three sources — its SIP messages (and the bare segments of its TCP
//! connection), the callee's RTP and the caller's RTP — each already in capture-time order
//! (see [`crate::timeline`]). A binary heap holds the
//! next capture time of every source, keyed by `(time, call index, source)`, so records come
//! out in non-decreasing time with deterministic tie-breaking. The heap and the per-call state
//! are sized by the number of calls; packets are built one at a time into reused buffers and
//! streamed through a large `BufWriter`, so memory does not grow with the number of packets
//! (unless `keep_payloads` is set). One source event may write several records (the segments of
//! a SIP message over TCP, the fragments of an IP packet); they share its capture time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::frame::Datagram;
use crate::mix::hash;
use crate::net::{self, L4, Wire};
use crate::pcap::PcapWriter;
use crate::rtp::{self, StreamPlan};
use crate::sip::{self, DialogIds};
use crate::spec::{CallSpec, ExtraKind, Hangup, Outcome, Scenario, SctpOptions, SipTransport, WsOptions};
use crate::timeline::{self, Party, RtpSchedule, RtpSend, SipMsg, TcpControl};
use crate::tone::{ToneCache, ToneSource};
use crate::truth::{CallTruth, DtmfTruth, EarlyMediaTruth, HoldTruth, SipTruth, StreamTruth, Truth};

/// Size of the output buffer.
const WRITE_BUFFER: usize = 1 << 20;

/// Heap source ids; the order breaks ties between sources of one call at the same instant.
const SRC_SIP: u8 = 0;
const SRC_CALLEE: u8 = 1;
const SRC_CALLER: u8 = 2;
const SRC_EXTRA: u8 = 3;

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
    let mut pcap = PcapWriter::new(
        BufWriter::with_capacity(WRITE_BUFFER, w),
        scenario.link.linktype(),
        scenario.ts_precision,
        scenario.snaplen,
    )?;
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
    /// The ringback tone of early media.
    ringback: Option<ToneSource>,
    /// Boxed: most of it is lists that are empty in bulk captures, kept out of the call state
    /// the merge loop walks.
    plan: Box<StreamPlan>,
}

/// The SIP-over-TCP connection of a call.
#[derive(Debug)]
struct TcpConn {
    mss: usize,
    coalesce_trying: bool,
    /// Sequence number of the next byte of the caller (0) and of the callee (1).
    next: [u32; 2],
    /// A 100 Trying waiting to go out with the callee's next message.
    pending: Vec<u8>,
    /// SIP over WebSocket: how messages are framed.
    ws: Option<WsFraming>,
}

/// SIP over WebSocket framing of a call's messages.
#[derive(Debug)]
struct WsFraming {
    opts: WsOptions,
    /// Hashed into each masking key.
    seed: u64,
    /// Messages framed so far.
    messages: u64,
}

/// The SCTP association of a call.
#[derive(Debug)]
struct SctpAssoc {
    opts: SctpOptions,
    /// Verification tag of the caller (0) and the callee (1): each sends the other's.
    vtag: [u32; 2],
    /// Next TSN of each sender.
    tsn: [u32; 2],
    /// Next stream sequence number per sender and stream.
    ssn: [Vec<u16>; 2],
    /// Messages sent by each.
    messages: [u32; 2],
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
    tcp: Option<TcpConn>,
    sctp: Option<SctpAssoc>,
    /// Datagrams of the extra (non-audio) media lines, in time order, and the next one.
    extra: Vec<ExtraSend>,
    extra_next: usize,
    truth: CallTruth,
}

/// One datagram of an extra media line: when, which line, who sends it, its number.
#[derive(Debug, Clone, Copy)]
struct ExtraSend {
    t: i64,
    line: usize,
    by_caller: bool,
    n: u32,
}

/// The datagrams of a call's extra media lines: each party's `packets` spread evenly over
/// the talk time (the callee's 7 ms after the caller's), the capture stalls applied.
fn extra_schedule(scenario: &Scenario, spec: &CallSpec) -> Vec<ExtraSend> {
    let Some(answer) = timeline::answer_ns(spec) else { return Vec::new() };
    let mut v = Vec::new();
    for (line, x) in spec.extra_media.iter().enumerate() {
        let step = i64::from(spec.talk_ms) * 1_000_000 / i64::from(x.packets.max(1));
        for n in 0..x.packets {
            let t = answer + 30_000_000 + i64::from(n) * step;
            v.push(ExtraSend { t, line, by_caller: true, n });
            v.push(ExtraSend { t: t + 7_000_000, line, by_caller: false, n });
        }
    }
    v.sort_by_key(|e| (e.t, e.line, e.by_caller));
    for e in &mut v {
        e.t = scenario.capture_time(e.t);
    }
    v
}

/// The payload of an extra media datagram.
fn extra_payload(kind: ExtraKind, ssrc: u32, n: u32, out: &mut Vec<u8>) {
    out.clear();
    match kind {
        ExtraKind::Video => {
            out.extend_from_slice(&[0x80, 96]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&n.wrapping_mul(3000).to_be_bytes());
            out.extend_from_slice(&ssrc.to_be_bytes());
            out.extend((0..288u32).map(|i| (hash(&[u64::from(n), u64::from(i)]) & 0xff) as u8));
        }
        ExtraKind::T38 => {
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend((0..38u32).map(|i| (i * 7 + n) as u8));
        }
        ExtraKind::Bfcp => {
            out.extend_from_slice(&[0x20, 1, 0, 4]);
            out.extend_from_slice(&(ssrc & 0xffff).to_be_bytes());
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&[0; 16]);
        }
    }
}

#[derive(Debug)]
struct Generator<'a> {
    scenario: &'a Scenario,
    calls: Vec<CallState<'a>>,
    heap: BinaryHeap<Reverse<(i64, u32, u8)>>,
    tones: ToneCache,
    wire: Wire,
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
            let sip: Vec<(i64, SipMsg)> =
                timeline::sip_schedule(spec).into_iter().map(|(t, m)| (scenario.capture_time(t), m)).collect();
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
                    Some(_) => tones.source(spec.codec_of(party), tone_hz),
                    None => ToneSource::Direct { codec: spec.codec_of(party), freq_hz: tone_hz },
                };
                let plan = Box::new(StreamPlan::new(spec, party));
                let ringback = plan.early.map(|e| tones.source(spec.codec_of(party), e.tone_hz));
                RtpStream { schedule, head, tone, ringback, plan }
            };
            let rtp = [
                stream(Party::Caller, spec.caller_tone_hz, SRC_CALLER),
                stream(Party::Callee, spec.callee_tone_hz, SRC_CALLEE),
            ];
            let id_seed = hash(&[scenario.seed, 0x1d, index as u64]);
            let isn = hash(&[scenario.seed, 0x7c9, index as u64]);
            let tcp = match spec.sip_transport {
                SipTransport::Udp | SipTransport::Sctp(_) => None,
                SipTransport::Tcp(o) => Some(TcpConn {
                    mss: usize::from(o.mss.max(1)),
                    coalesce_trying: o.coalesce_trying,
                    next: [isn as u32, (isn >> 32) as u32],
                    pending: Vec::new(),
                    ws: None,
                }),
                SipTransport::WebSocket(o) => Some(TcpConn {
                    mss: usize::from(o.mss.max(1)),
                    coalesce_trying: false,
                    next: [isn as u32, (isn >> 32) as u32],
                    pending: Vec::new(),
                    ws: Some(WsFraming { opts: o, seed: hash(&[scenario.seed, 0x3e5, index as u64]), messages: 0 }),
                }),
            };
            let sctp = match spec.sip_transport {
                SipTransport::Sctp(o) => {
                    let h = hash(&[scenario.seed, 0x5c7, index as u64]);
                    let streams = usize::from(o.streams.max(1));
                    Some(SctpAssoc {
                        opts: o,
                        vtag: [h as u32 | 1, (h >> 32) as u32 | 1],
                        tsn: [isn as u32, (isn >> 32) as u32],
                        ssn: [vec![0; streams], vec![0; streams]],
                        messages: [0, 0],
                    })
                }
                _ => None,
            };
            let extra = extra_schedule(scenario, spec);
            if let Some(e) = extra.first() {
                heap.push(Reverse((e.t, key, SRC_EXTRA)));
            }
            calls.push(CallState {
                spec,
                extra,
                extra_next: 0,
                ids: DialogIds::new(scenario.seed, index),
                truth: initial_truth(scenario, spec, &sip, &rtp),
                sip,
                sip_next: 0,
                rtp,
                ip_id: [id_seed as u16, (id_seed >> 16) as u16],
                tcp,
                sctp,
            });
        }
        Generator {
            scenario,
            calls,
            heap,
            tones,
            wire: Wire::new(scenario),
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
        // The top entry is rewritten in place with its source's next time (one sift-down)
        // and only popped when the source is exhausted.
        while let Some(mut top) = self.heap.peek_mut() {
            let Reverse((t, key, src)) = *top;
            let call = &mut self.calls[key as usize];
            let spec = call.spec;
            let captured = precision.quantize(t);
            let (records, next) = if src == SRC_SIP {
                let (_, msg) = call.sip[call.sip_next];
                call.sip_next += 1;
                let next = call.sip.get(call.sip_next).map(|&(t, _)| t);
                let by_caller = sip::sent_by_caller(msg);
                let records = if let SipMsg::Tcp(control) = msg {
                    if call.sctp.is_some() {
                        sctp_control(&mut self.wire, pcap, t, call, control)?
                    } else {
                        tcp_control(&mut self.wire, pcap, t, call, control)?
                    }
                } else if call.sctp.is_some() {
                    sip::render(spec, &call.ids, msg, &mut self.sip_text);
                    let (method, status) = sip::describe(msg);
                    call.truth.sip.push(SipTruth { capture_ns: captured, method, status, from_caller: by_caller });
                    self.sip_messages += 1;
                    sctp_data(&mut self.wire, pcap, t, call, by_caller, self.sip_text.as_bytes())?
                } else {
                    sip::render(spec, &call.ids, msg, &mut self.sip_text);
                    let (method, status) = sip::describe(msg);
                    call.truth.sip.push(SipTruth { capture_ns: captured, method, status, from_caller: by_caller });
                    self.sip_messages += 1;
                    match call.tcp.as_mut() {
                        None => {
                            let datagram = Datagram {
                                media: false,
                                ip_id: next_ip_id(&mut call.ip_id, by_caller),
                                ..sip_datagram(spec, by_caller)
                            };
                            self.wire.write(pcap, t, &datagram, L4::Udp, self.sip_text.as_bytes())?
                        }
                        Some(tcp) if tcp.coalesce_trying && msg == SipMsg::Provisional(100) => {
                            tcp.pending.extend_from_slice(self.sip_text.as_bytes());
                            0
                        }
                        Some(_) => tcp_data(&mut self.wire, pcap, t, call, by_caller, self.sip_text.as_bytes())?,
                    }
                };
                (records, next)
            } else if src == SRC_EXTRA {
                let e = call.extra[call.extra_next];
                call.extra_next += 1;
                let next = call.extra.get(call.extra_next).map(|e| e.t);
                let x = spec.extra_media[e.line];
                let ssrc = hash(&[u64::from(key), e.line as u64, u64::from(e.by_caller)]) as u32;
                extra_payload(x.kind, ssrc, e.n, &mut self.payload);
                let caller = (spec.caller_ip, x.caller_port);
                let callee = (spec.callee_ip, x.callee_port);
                let datagram = Datagram {
                    media: true,
                    ip_id: next_ip_id(&mut call.ip_id, e.by_caller),
                    ..datagram(if e.by_caller { (caller, callee) } else { (callee, caller) })
                };
                (self.wire.write(pcap, t, &datagram, L4::Udp, &self.payload)?, next)
            } else {
                let by_caller = src == SRC_CALLER;
                let stream = &mut call.rtp[usize::from(!by_caller)];
                let Some(send) = stream.head else {
                    PeekMut::pop(top);
                    continue;
                };
                stream.plan.write(&send, &stream.tone, stream.ringback.as_ref(), &mut self.payload);
                let (from, to) = stream.plan.addresses(&send);
                stream.head = stream.schedule.next();
                let next = stream.head.map(|h| h.capture_ns);
                let datagram = Datagram {
                    src: from.ip(),
                    dst: to.ip(),
                    src_port: from.port(),
                    dst_port: to.port(),
                    media: true,
                    ip_id: next_ip_id(&mut call.ip_id, by_caller),
                };
                let truth = if by_caller { &mut call.truth.caller } else { &mut call.truth.callee };
                truth.packets_sent += 1;
                truth.first_capture_ns.get_or_insert(captured);
                truth.last_capture_ns = Some(captured);
                if !send.early && !call.truth.dtmf.is_empty() {
                    let party = if by_caller { Party::Caller } else { Party::Callee };
                    let side = party.name();
                    for (d, t) in spec.dtmf.iter().zip(call.truth.dtmf.iter_mut()) {
                        let event = d.at_packet..d.at_packet + d.packets + 2;
                        if d.party == party && t.side == side && event.contains(&send.index) {
                            t.start_ns = Some(t.start_ns.map_or(captured, |s| s.min(captured)));
                        }
                    }
                }
                self.rtp_packets += 1;
                (self.wire.write(pcap, t, &datagram, L4::Udp, &self.payload)?, next)
            };
            if records > 0 {
                self.packets += records;
                self.first_ns.get_or_insert(captured);
                self.last_ns = Some(captured);
            }
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
        for call in &mut self.calls {
            call.truth.dtmf.sort_by_key(|d| d.start_ns);
        }
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
    let caller = rtp::sip_address(spec, Party::Caller);
    let callee = rtp::sip_address(spec, Party::Callee);
    datagram(if by_caller { (caller, callee) } else { (callee, caller) })
}

/// Writes SIP text of one party as the next segments of the call's TCP connection (after a
/// 100 Trying held back for coalescing, if any). Returns the records written.
fn tcp_data<W: Write>(
    wire: &mut Wire,
    pcap: &mut PcapWriter<W>,
    t: i64,
    call: &mut CallState<'_>,
    by_caller: bool,
    text: &[u8],
) -> io::Result<u64> {
    let Some(tcp) = call.tcp.as_mut() else { return Ok(0) };
    let mut bytes = std::mem::take(&mut tcp.pending);
    match tcp.ws.as_mut() {
        Some(ws) => ws_message(ws, by_caller, text, &mut bytes),
        None => bytes.extend_from_slice(text),
    }
    let (me, peer) = if by_caller { (0, 1) } else { (1, 0) };
    let chunks: Vec<&[u8]> = bytes.chunks(tcp.mss).collect();
    let mut records = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let flags = if i + 1 == chunks.len() { net::ACK | net::PSH } else { net::ACK };
        let l4 = L4::Tcp { seq: tcp.next[me], ack: tcp.next[peer], flags };
        tcp.next[me] = tcp.next[me].wrapping_add(chunk.len() as u32);
        let d = Datagram {
            media: false,
            ip_id: next_ip_id(&mut call.ip_id, by_caller),
            ..sip_datagram(call.spec, by_caller)
        };
        records += wire.write(pcap, t, &d, l4, chunk)?;
    }
    Ok(records)
}

/// Writes one payload-less segment opening or closing the call's TCP connection.
fn tcp_control<W: Write>(
    wire: &mut Wire,
    pcap: &mut PcapWriter<W>,
    t: i64,
    call: &mut CallState<'_>,
    control: TcpControl,
) -> io::Result<u64> {
    let Some(tcp) = call.tcp.as_mut() else { return Ok(0) };
    let by_caller = sip::sent_by_caller(SipMsg::Tcp(control));
    let (me, peer) = if by_caller { (0, 1) } else { (1, 0) };
    let (flags, consumes) = match control {
        TcpControl::Syn => (net::SYN, 1),
        TcpControl::SynAck => (net::SYN | net::ACK, 1),
        TcpControl::HandshakeAck | TcpControl::LastAck => (net::ACK, 0),
        TcpControl::CallerFin | TcpControl::CalleeFin => (net::FIN | net::ACK, 1),
    };
    let l4 = L4::Tcp { seq: tcp.next[me], ack: tcp.next[peer], flags };
    tcp.next[me] = tcp.next[me].wrapping_add(consumes);
    let upgrade = control == TcpControl::HandshakeAck && tcp.ws.is_some();
    let d =
        Datagram { media: false, ip_id: next_ip_id(&mut call.ip_id, by_caller), ..sip_datagram(call.spec, by_caller) };
    let mut records = wire.write(pcap, t, &d, l4, &[])?;
    if upgrade {
        let host = sip_datagram(call.spec, true);
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://{}\r\n\
             Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n",
            host.dst, host.dst_port, host.src
        );
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
        records += raw_tcp_data(wire, pcap, t, call, true, request.as_bytes())?;
        records += raw_tcp_data(wire, pcap, t, call, false, response.as_bytes())?;
    }
    Ok(records)
}

/// Writes bytes as the next segments of the call's TCP connection, as they are.
fn raw_tcp_data<W: Write>(
    wire: &mut Wire,
    pcap: &mut PcapWriter<W>,
    t: i64,
    call: &mut CallState<'_>,
    by_caller: bool,
    bytes: &[u8],
) -> io::Result<u64> {
    let Some(tcp) = call.tcp.as_mut() else { return Ok(0) };
    let (me, peer) = if by_caller { (0, 1) } else { (1, 0) };
    let l4 = L4::Tcp { seq: tcp.next[me], ack: tcp.next[peer], flags: net::ACK | net::PSH };
    tcp.next[me] = tcp.next[me].wrapping_add(bytes.len() as u32);
    let d =
        Datagram { media: false, ip_id: next_ip_id(&mut call.ip_id, by_caller), ..sip_datagram(call.spec, by_caller) };
    wire.write(pcap, t, &d, l4, bytes)
}

/// Appends one SIP message as WebSocket frames (RFC 6455): a text frame and continuations of
/// at most `fragment` bytes, the caller's masked, a control frame between the first two
/// fragments with `ping`.
fn ws_message(ws: &mut WsFraming, by_caller: bool, text: &[u8], out: &mut Vec<u8>) {
    let n = ws.messages;
    ws.messages += 1;
    let step = ws.opts.fragment.map_or(text.len().max(1), |f| usize::from(f.max(1)));
    let pieces: Vec<&[u8]> = if text.is_empty() { vec![text] } else { text.chunks(step).collect() };
    for (i, piece) in pieces.iter().enumerate() {
        let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        ws_frame(fin | opcode, by_caller.then(|| ws_key(ws.seed, n, i as u64)), piece, out);
        if i == 0 && pieces.len() > 1 && ws.opts.ping {
            let (op, key) = if by_caller { (0x89, Some(ws_key(ws.seed, n, 1 << 32))) } else { (0x8a, None) };
            ws_frame(op, key, b"keepalive", out);
        }
    }
}

fn ws_key(seed: u64, message: u64, frame: u64) -> [u8; 4] {
    (hash(&[seed, message, frame]) as u32).to_be_bytes()
}

/// One frame: header (7-bit, 16-bit or 64-bit length), masking key, payload (masked).
fn ws_frame(first: u8, key: Option<[u8; 4]>, payload: &[u8], out: &mut Vec<u8>) {
    out.push(first);
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65_536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match key {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Writes one SIP message as a user message of the call's SCTP association: DATA chunks of at
/// most `fragment` bytes, `bundle` to a packet, the callee's packets led by a SACK.
fn sctp_data<W: Write>(
    wire: &mut Wire,
    pcap: &mut PcapWriter<W>,
    t: i64,
    call: &mut CallState<'_>,
    by_caller: bool,
    text: &[u8],
) -> io::Result<u64> {
    let Some(a) = call.sctp.as_mut() else { return Ok(0) };
    let (me, peer) = if by_caller { (0, 1) } else { (1, 0) };
    let streams = a.ssn[me].len();
    let stream = a.messages[me] as usize % streams;
    a.messages[me] += 1;
    let ssn = a.ssn[me][stream];
    a.ssn[me][stream] = ssn.wrapping_add(1);
    let step = a.opts.fragment.map_or(text.len().max(1), |f| usize::from(f.max(1)));
    let pieces: Vec<&[u8]> = text.chunks(step).collect();
    let mut chunks = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let flags = u8::from(i == 0) << 1 | u8::from(i + 1 == pieces.len());
        let mut c = vec![0, flags];
        c.extend_from_slice(&((16 + piece.len()) as u16).to_be_bytes());
        c.extend_from_slice(&a.tsn[me].to_be_bytes());
        c.extend_from_slice(&(stream as u16).to_be_bytes());
        c.extend_from_slice(&ssn.to_be_bytes());
        c.extend_from_slice(&[0; 4]); // PPID 0 (RFC 4168)
        c.extend_from_slice(piece);
        c.resize(c.len().next_multiple_of(4), 0);
        a.tsn[me] = a.tsn[me].wrapping_add(1);
        chunks.push(c);
    }
    let (vtag, zero_checksum, cum_ack) = (a.vtag[peer], a.opts.zero_checksum, a.tsn[peer].wrapping_sub(1));
    let mut records = 0;
    for group in chunks.chunks(usize::from(a.opts.bundle.max(1))) {
        let mut payload = Vec::new();
        if !by_caller {
            // SACK: cumulative TSN ack, a_rwnd, no gap blocks, no duplicates.
            payload.extend_from_slice(&[3, 0, 0, 16]);
            payload.extend_from_slice(&cum_ack.to_be_bytes());
            payload.extend_from_slice(&65_535u32.to_be_bytes());
            payload.extend_from_slice(&[0; 4]);
        }
        for c in group {
            payload.extend_from_slice(c);
        }
        let d = Datagram {
            media: false,
            ip_id: next_ip_id(&mut call.ip_id, by_caller),
            ..sip_datagram(call.spec, by_caller)
        };
        records += wire.write(pcap, t, &d, L4::Sctp { vtag, zero_checksum }, &payload)?;
    }
    Ok(records)
}

/// Writes one control packet opening or closing the call's SCTP association.
fn sctp_control<W: Write>(
    wire: &mut Wire,
    pcap: &mut PcapWriter<W>,
    t: i64,
    call: &mut CallState<'_>,
    control: TcpControl,
) -> io::Result<u64> {
    let Some(a) = call.sctp.as_ref() else { return Ok(0) };
    let by_caller = sip::sent_by_caller(SipMsg::Tcp(control));
    let (me, peer) = if by_caller { (0, 1) } else { (1, 0) };
    let streams = a.ssn[me].len() as u16;
    let init = |kind: u8, extra: &[u8]| {
        // INIT / INIT ACK: initiate tag, a_rwnd, outbound and inbound streams, initial TSN.
        let mut c = vec![kind, 0];
        c.extend_from_slice(&((20 + extra.len()) as u16).to_be_bytes());
        c.extend_from_slice(&a.vtag[me].to_be_bytes());
        c.extend_from_slice(&65_535u32.to_be_bytes());
        c.extend_from_slice(&streams.to_be_bytes());
        c.extend_from_slice(&streams.to_be_bytes());
        c.extend_from_slice(&a.tsn[me].to_be_bytes());
        c.extend_from_slice(extra);
        c
    };
    // State cookie parameter (type 7) of 8 bytes.
    let cookie = [0, 7, 0, 12, 0xc0, 0x0c, 0x1e, 0x00, 0, 0, 0, 0];
    let (chunk, vtag) = match control {
        TcpControl::Syn => (init(1, &[]), 0),
        TcpControl::SynAck => (init(2, &cookie), a.vtag[peer]),
        TcpControl::HandshakeAck => (vec![10, 0, 0, 12, 0xc0, 0x0c, 0x1e, 0x00, 0, 0, 0, 0], a.vtag[peer]),
        TcpControl::CallerFin => {
            let mut c = vec![7, 0, 0, 8];
            c.extend_from_slice(&a.tsn[peer].wrapping_sub(1).to_be_bytes());
            (c, a.vtag[peer])
        }
        TcpControl::CalleeFin => (vec![8, 0, 0, 4], a.vtag[peer]),
        TcpControl::LastAck => (vec![14, 0, 0, 4], a.vtag[peer]),
    };
    let zero_checksum = a.opts.zero_checksum;
    let d =
        Datagram { media: false, ip_id: next_ip_id(&mut call.ip_id, by_caller), ..sip_datagram(call.spec, by_caller) };
    wire.write(pcap, t, &d, L4::Sctp { vtag, zero_checksum }, &chunk)
}

fn datagram(((src, src_port), (dst, dst_port)): ((std::net::IpAddr, u16), (std::net::IpAddr, u16))) -> Datagram {
    Datagram { src, dst, src_port, dst_port, media: false, ip_id: 0 }
}

/// The payload of every talk packet index of one direction.
fn all_payloads(spec: &CallSpec, party: Party, tones: &mut ToneCache) -> Vec<Vec<u8>> {
    let (silent, tone_hz) = match party {
        Party::Caller => (spec.impair.caller.silent, spec.caller_tone_hz),
        Party::Callee => (spec.impair.callee.silent, spec.callee_tone_hz),
    };
    if silent || timeline::answer_ns(spec).is_none() {
        return Vec::new();
    }
    let tone = tones.source(spec.codec_of(party), tone_hz);
    let plan = StreamPlan::new(spec, party);
    let mut packet = Vec::new();
    (0..spec.packets_per_direction())
        .map(|k| {
            let send = RtpSend { capture_ns: 0, index: k, duplicate: false, early: false };
            plan.write(&send, &tone, None, &mut packet);
            packet[12..].to_vec()
        })
        .collect()
}

/// The truth of a call before any packet is written: everything but the counters of packets
/// actually sent and the SIP log.
fn initial_truth(scenario: &Scenario, spec: &CallSpec, sip: &[(i64, SipMsg)], rtp: &[RtpStream; 2]) -> CallTruth {
    let q = |ns: i64| scenario.ts_precision.quantize(scenario.capture_time(ns));
    let end_ns = sip
        .iter()
        .find(|(_, m)| matches!(m, SipMsg::Bye(_) | SipMsg::Cancel | SipMsg::InviteFinal(_)))
        .map(|&(t, _)| scenario.ts_precision.quantize(t));
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
        Outcome::NoResponse => ("setup", None, None),
        Outcome::NoAck => ("in_call", Some(200), None),
    };
    let stream = |party: Party| {
        let ssrc = match party {
            Party::Caller => spec.caller_ssrc,
            Party::Callee => spec.callee_ssrc,
        };
        let counts = timeline::stream_counts(spec, party);
        StreamTruth {
            ssrc,
            codec: spec.codec_of(party),
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
        answer_ns: timeline::ok_ns(spec).map(q),
        end_ns,
        expected_state,
        final_code,
        hangup,
        caller: stream(Party::Caller),
        callee: stream(Party::Callee),
        sip: Vec::with_capacity(sip.len()),
        holds: hold_truth(spec, q),
        dtmf: spec
            .dtmf
            .iter()
            .map(|d| DtmfTruth {
                digit: event_name(d.event),
                side: d.party.name(),
                start_ns: None,
                duration_ms: d.packets * spec.ptime_ms,
            })
            .collect(),
        early_media: rtp[1].plan.early.filter(|e| e.count > 0 && !spec.impair.callee.silent).map(|e| EarlyMediaTruth {
            packets: e.count,
            first_capture_ns: q(e.time_ns(0)),
            last_capture_ns: q(e.time_ns(e.count - 1)),
            tone_hz: e.tone_hz,
        }),
    }
}

/// The holds of a call, with where the held party's silence falls.
fn hold_truth(spec: &CallSpec, q: impl Fn(i64) -> i64) -> Vec<HoldTruth> {
    let n = spec.packets_per_direction();
    timeline::holds(spec)
        .into_iter()
        .map(|(by, start, end)| {
            let held = match by {
                Party::Caller => Party::Callee,
                Party::Callee => Party::Caller,
            };
            let a = rtp::first_packet_at(spec, held, start + timeline::REPLY_DELAY_NS);
            let b = end.map_or(n, |e| rtp::first_packet_at(spec, held, e + timeline::REPLY_DELAY_NS));
            let nominal = |k: u32| timeline::rtp_nominal_ns(spec, held, k).map(&q);
            let silent = a < b && !held_silent(spec, held);
            HoldTruth {
                by: by.name(),
                start_ns: q(start),
                end_ns: end.map(&q),
                held: held.name(),
                silent_from_ns: if silent { nominal(a) } else { None },
                silent_until_ns: if silent && b < n { nominal(b) } else { None },
            }
        })
        .collect()
}

fn held_silent(spec: &CallSpec, party: Party) -> bool {
    match party {
        Party::Caller => spec.impair.caller.silent,
        Party::Callee => spec.impair.callee.silent,
    }
}

/// The name of telephone-event code `event` (RFC 4733 section 3.2).
fn event_name(event: u8) -> String {
    match event {
        0..=9 => char::from(b'0' + event).to_string(),
        10 => "*".into(),
        11 => "#".into(),
        12..=15 => char::from(b'A' + event - 12).to_string(),
        16 => "flash".into(),
        other => format!("<{other}>"),
    }
}
