//! SIP over WebSocket in the TCP reassembler.

use super::*;
use crate::wire::tcp::PSH;

const REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: pbx\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn client() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}

fn server() -> SocketAddr {
    "10.0.0.2:8080".parse().unwrap()
}

fn sip(call: &str) -> Vec<u8> {
    format!("INVITE sip:bob@h SIP/2.0\r\nCall-ID: {call}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// One frame; `len_form` forces the 16-bit (126) or 64-bit (127) length form.
fn frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8], len_form: Option<u8>) -> Vec<u8> {
    let mut f = vec![first];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len_form.unwrap_or(if payload.len() < 126 {
        0
    } else if payload.len() < 65536 {
        126
    } else {
        127
    }) {
        126 => {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        127 => {
            f.push(m | 127);
            f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        _ => f.push(m | payload.len() as u8),
    }
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        f.extend_from_slice(&k);
        websocket::unmask(k, 0, &mut p);
    }
    f.extend_from_slice(&p);
    f
}

struct Conn {
    r: TcpReassembler,
    seq: [u32; 2],
}

impl Conn {
    fn open(cfg: TcpConfig) -> Conn {
        let mut c = Conn { r: TcpReassembler::new(cfg), seq: [1000, 5000] };
        assert!(c.send(true, REQUEST).is_empty());
        assert!(c.send(false, RESPONSE).is_empty());
        c
    }

    fn send(&mut self, from_client: bool, bytes: &[u8]) -> Vec<(Transport, Vec<u8>)> {
        let i = usize::from(!from_client);
        let (src, dst) = if from_client { (client(), server()) } else { (server(), client()) };
        let s = Segment { src, dst, vlan: None, seq: self.seq[i], ack: 0, flags: PSH, payload: bytes };
        self.seq[i] = self.seq[i].wrapping_add(bytes.len() as u32);
        let mut out = Vec::new();
        self.r.segment(Timestamp(0), &s, |_, _, t, m| out.push((t, m.to_vec())));
        out
    }
}

fn ws(v: Vec<Vec<u8>>) -> Vec<(Transport, Vec<u8>)> {
    v.into_iter().map(|m| (Transport::Ws, m)).collect()
}

#[test]
fn masked_fragmented_and_length_forms() {
    let mut c = Conn::open(TcpConfig::default());
    assert_eq!(c.r.stats().ws.upgrades, 1);
    let (a, b) = (sip("a"), sip("b"));
    // A whole masked text frame, then a binary frame in three fragments with a ping and a
    // pong between them, all in one segment.
    let mut s = frame(0x81, Some(KEY), &a, None);
    s.extend(frame(0x02, Some(KEY), &b[..10], Some(126)));
    s.extend(frame(0x89, Some(KEY), b"ping", None));
    s.extend(frame(0x00, Some([1, 2, 3, 4]), &b[10..20], Some(127)));
    s.extend(frame(0x8a, Some(KEY), b"", None));
    s.extend(frame(0x80, Some([9, 8, 7, 6]), &b[20..], None));
    assert_eq!(c.send(true, &s), ws(vec![a.clone(), b.clone()]));
    // The server's unmasked answer, split byte by byte across segments.
    let f = frame(0x81, None, &a, None);
    let mut out = Vec::new();
    for byte in f.chunks(1) {
        out.extend(c.send(false, byte));
    }
    assert_eq!(out, ws(vec![a.clone()]));
    // A 300-byte message (16-bit length).
    let big = format!("SIP/2.0 200 OK\r\nX: {}\r\nContent-Length: 0\r\n\r\n", "y".repeat(260)).into_bytes();
    assert_eq!(c.send(false, &frame(0x81, None, &big, None)), ws(vec![big]));
    assert_eq!((c.r.stats().ws.messages, c.r.stats().ws.control_frames), (4, 2));
    assert_eq!(c.r.bytes_buffered(), 0);
}

#[test]
fn bad_frames_are_skipped_and_later_messages_read() {
    let mut c = Conn::open(TcpConfig { max_message: 200, ..TcpConfig::default() });
    let a = sip("a");
    let mut s = frame(0xc1, Some(KEY), b"reserved", None); // RSV1
    s.extend(frame(0x83, Some(KEY), b"opcode 3", None));
    s.extend(frame(0x89, Some(KEY), &[0; 126], None)); // control frame over 125
    s.extend(frame(0x81, Some(KEY), &[b'x'; 300], None)); // larger than the cap
    s.extend(frame(0x80, Some(KEY), b"stray", None)); // continuation without a message
    s.extend(frame(0x01, Some(KEY), &[b'y'; 150], None)); // a message growing past the cap
    s.extend(frame(0x80, Some(KEY), &[b'y'; 150], None));
    s.extend(frame(0x81, Some(KEY), &a, None));
    assert_eq!(c.send(true, &s), ws(vec![a.clone()]));
    let w = &c.r.stats().ws;
    assert_eq!((w.reserved_bits, w.unknown_opcode, w.bad_control, w.too_large, w.fragment_errors), (1, 1, 1, 2, 1));
    // A 64-bit length of 2^63 loses the client's direction; the server's goes on.
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
    huge.extend_from_slice(&KEY);
    huge.extend(frame(0x81, Some(KEY), &a, None));
    assert!(c.send(true, &huge).is_empty());
    assert!(c.send(true, &frame(0x81, Some(KEY), &a, None)).is_empty());
    assert_eq!((c.r.stats().ws.bad_length, c.r.stats().ws.lost), (1, 1));
    assert_eq!(c.send(false, &frame(0x81, None, &a, None)), ws(vec![a]));
}

#[test]
fn other_subprotocols_refusals_and_tls() {
    let mut r = TcpReassembler::new(TcpConfig::default());
    let chat = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    let s = Segment { src: client(), dst: server(), vlan: None, seq: 1, ack: 0, flags: PSH, payload: chat };
    r.segment(Timestamp(0), &s, |_, _, _, _| panic!("nothing to emit"));
    let f = frame(0x81, None, &sip("a"), None);
    let s = Segment { src: server(), dst: client(), vlan: None, seq: 1, ack: 0, flags: PSH, payload: &f };
    r.segment(Timestamp(0), &s, |_, _, _, _| panic!("not SIP"));
    assert_eq!(r.stats().ws.not_sip, 1);
    // A ClientHello to 5061.
    let hello = [0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0, 0];
    let tls: SocketAddr = "10.0.0.2:5061".parse().unwrap();
    let s = Segment { src: client(), dst: tls, vlan: None, seq: 1, ack: 0, flags: PSH, payload: &hello };
    r.segment(Timestamp(0), &s, |_, _, _, _| {});
    assert_eq!(r.stats().tls_handshakes, 1);
    // A refused upgrade: nothing after it is read.
    let mut c = Conn { r: TcpReassembler::new(TcpConfig::default()), seq: [1, 1] };
    assert!(c.send(true, REQUEST).is_empty());
    assert!(c.send(false, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").is_empty());
    assert!(c.send(true, &frame(0x81, Some(KEY), &sip("a"), None)).is_empty());
    assert_eq!(c.r.stats().ws.refused, 1);
}

proptest::proptest! {
    /// Arbitrary bytes after a good handshake, cut anywhere: no panic, memory bounded.
    #[test]
    fn arbitrary_frames_never_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        cuts in proptest::collection::vec(0usize..600, 0..6),
    ) {
        let mut c = Conn::open(TcpConfig { max_buffer: 512, max_message: 256, ..TcpConfig::default() });
        let mut at = 0;
        let mut cuts = cuts;
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([bytes.len()]) {
            let cut = cut.min(bytes.len()).max(at);
            for (_, m) in c.send(true, &bytes[at..cut]) {
                proptest::prop_assert!(m.len() <= 256);
            }
            proptest::prop_assert!(c.r.bytes_buffered() <= 512);
            at = cut;
        }
    }

    /// Masking then framing any message in any fragments gives it back whole.
    #[test]
    fn any_message_in_any_fragments(len in 1usize..200, pieces in 1usize..5, key in proptest::prelude::any::<[u8; 4]>()) {
        let mut m = b"SIP/2.0 200 OK\r\n".to_vec();
        m.resize(len.max(m.len()), b'z');
        let mut c = Conn::open(TcpConfig::default());
        let step = m.len().div_ceil(pieces);
        let chunks: Vec<&[u8]> = m.chunks(step).collect();
        let mut s = Vec::new();
        for (i, ch) in chunks.iter().enumerate() {
            let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
            let op = if i == 0 { 0x01 } else { 0x00 };
            s.extend(frame(fin | op, Some(key), ch, None));
        }
        proptest::prop_assert_eq!(c.send(true, &s), ws(vec![m]));
    }
}
