use super::*;
use crate::wire::tcp::PSH;

const S: i64 = Timestamp::SECOND;

fn client() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}

fn server() -> SocketAddr {
    "10.0.0.2:6060".parse().unwrap()
}

fn msg(call: &str, body: &str) -> Vec<u8> {
    format!("INVITE sip:bob@h SIP/2.0\r\nCall-ID: {call}\r\nl: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn seg<'a>(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &'a [u8]) -> Segment<'a> {
    Segment { src, dst, vlan: None, seq, ack: 0, flags, payload }
}

/// Feeds a segment and returns the messages it completed.
fn feed(r: &mut TcpReassembler, now: i64, s: &Segment<'_>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    r.segment(Timestamp(now), s, |src, dst, _, m| {
        assert!((src, dst) == (s.src, s.dst) || (src, dst) == (s.dst, s.src));
        out.push(m.to_vec());
    });
    out
}

fn small(max_connections: usize, max_buffer: usize, max_message: usize) -> TcpConfig {
    TcpConfig { max_connections, max_buffer, max_total: 1 << 30, max_message, idle_timeout: 60 * S }
}

#[test]
fn split_pipelined_and_keepalives() {
    let m1 = msg("one", "v=0\r\n");
    let m2 = msg("two", "");
    let mut stream = m1.clone();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(&m2);
    stream.extend_from_slice(&m1);
    let mut r = TcpReassembler::new(TcpConfig::default());
    let (c, s) = (client(), server());
    // Split in the middle of the first message's headers, then the rest in one segment.
    assert_eq!(feed(&mut r, 0, &seg(c, s, 1000, PSH, &stream[..30])), Vec::<Vec<u8>>::new());
    let out = feed(&mut r, 0, &seg(c, s, 1030, PSH, &stream[30..])).into_iter().collect::<Vec<_>>();
    assert_eq!(out, vec![m1.clone(), m2, m1]);
    assert_eq!((r.stats().sip_messages, r.stats().connections, r.connections()), (3, 1, 1));
    assert_eq!(r.bytes_buffered(), 0);
}

#[test]
fn out_of_order_retransmitted_and_overlapping_segments() {
    let m = msg("a", "0123456789abcdef");
    let mut r = TcpReassembler::new(TcpConfig::default());
    let c = client();
    // SYN first (on the SIP port): the stream starts at 101.
    let s: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    feed(&mut r, 0, &seg(c, s, 100, SYN, b""));
    assert!(feed(&mut r, 0, &seg(c, s, 101 + 40, PSH, &m[40..])).is_empty());
    assert!(feed(&mut r, 0, &seg(c, s, 101 + 20, PSH, &m[20..50])).is_empty(), "overlaps the held piece");
    assert_eq!(r.bytes_buffered(), m.len() - 20);
    assert_eq!(feed(&mut r, 0, &seg(c, s, 101, PSH, &m[..25])), vec![m.clone()]);
    assert!(feed(&mut r, 0, &seg(c, s, 101, PSH, &m[..25])).is_empty(), "retransmission");
    let st = r.stats();
    assert_eq!((st.out_of_order, st.overlaps, st.retransmissions, st.conflicts), (2, 1, 1, 0));
    assert_eq!(r.bytes_buffered(), 0);
}

#[test]
fn held_bytes_win_over_a_conflicting_retransmission() {
    let m = msg("a", "0123456789");
    let mut r = TcpReassembler::new(TcpConfig::default());
    let (c, s) = (client(), server());
    feed(&mut r, 0, &seg(c, s, 0, PSH, &m[..12]));
    feed(&mut r, 0, &seg(c, s, 20, PSH, &m[20..]));
    let mut other = m[15..30].to_vec();
    other[10] ^= 0x20;
    feed(&mut r, 0, &seg(c, s, 15, PSH, &other));
    assert_eq!(feed(&mut r, 0, &seg(c, s, 10, PSH, &m[10..20])), vec![m]);
    assert_eq!(r.stats().conflicts, 1);
}

#[test]
fn ack_beyond_a_hole_gives_it_up_and_resyncs() {
    let m1 = msg("lost", "xxxxxxxxxx");
    let m2 = msg("kept", "");
    let mut stream = m1.clone();
    stream.extend_from_slice(&m2);
    let mut r = TcpReassembler::new(TcpConfig::default());
    let (c, s) = (client(), server());
    feed(&mut r, 0, &seg(c, s, 0, PSH, &stream[..20]));
    // Bytes 20..40 are never captured; the rest arrives and is held.
    assert!(feed(&mut r, 0, &seg(c, s, 40, PSH, &stream[40..])).is_empty());
    // The server acknowledges everything: the hole is lost for good.
    let ack = Segment { ack: stream.len() as u32, flags: ACK, ..seg(s, c, 0, ACK, b"") };
    assert_eq!(feed(&mut r, 0, &ack), vec![m2]);
    assert_eq!(r.stats().gaps, 1);
    // The 20 bytes held before the hole and the tail of the lost message after it.
    assert_eq!(r.stats().bytes_skipped + r.stats().bytes_unsynced, m1.len() as u64 - 20);
}

#[test]
fn garbage_and_oversized_messages_are_skipped() {
    let good = msg("good", "");
    let big = msg("big", &"x".repeat(300));
    let mut stream = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    stream.extend_from_slice(&good);
    stream.extend_from_slice(b"SIP/2.0 200 OK\r\nl: zz\r\n\r\n");
    stream.extend_from_slice(&big);
    stream.extend_from_slice(&good);
    let mut r = TcpReassembler::new(small(8, 1 << 16, 200));
    let (c, s) = (client(), server());
    // Port 5060 is followed whatever the first bytes are.
    let s5060: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let out = feed(&mut r, 0, &seg(c, s5060, 7, PSH, &stream));
    assert_eq!(out, vec![good.clone(), good]);
    let st = r.stats();
    assert_eq!((st.oversized, st.invalid), (1, 1));
    assert!(st.bytes_unsynced > 0 && st.bytes_skipped > 0);
    // Another port without SIP content is not followed at all.
    assert!(feed(&mut r, 0, &seg(c, s, 1, PSH, b"GET / HTTP/1.1\r\n\r\n")).is_empty());
    assert_eq!(r.connections(), 1);
}

#[test]
fn connection_cap_sheds_new_connections() {
    let m = msg("a", "");
    let mut r = TcpReassembler::new(small(1, 1 << 16, 65535));
    let other: SocketAddr = "10.0.0.3:40000".parse().unwrap();
    assert_eq!(feed(&mut r, 0, &seg(client(), server(), 0, PSH, &m)).len(), 1);
    assert!(feed(&mut r, 0, &seg(other, server(), 0, PSH, &m)).is_empty());
    assert_eq!((r.stats().connections, r.stats().connections_shed), (1, 1));
}

#[test]
fn buffer_cap_drops_and_then_gives_up_the_hole() {
    let m = msg("a", &"y".repeat(100));
    let mut r = TcpReassembler::new(small(8, 150, 65535));
    let (c, s) = (client(), server());
    feed(&mut r, 0, &seg(c, s, 0, PSH, &m[..12]));
    // Held ahead of a hole at 10..20, up to the cap.
    feed(&mut r, 0, &seg(c, s, 20, PSH, &m[20..100]));
    assert!(r.bytes_buffered() <= 150);
    // This one does not fit: the hole is given up and the stream restarts after it.
    let m2 = msg("b", "");
    let mut tail = m[100..].to_vec();
    tail.extend_from_slice(&m2);
    let out = feed(&mut r, 0, &seg(c, s, 100, PSH, &tail));
    assert_eq!(out, vec![m2]);
    let st = r.stats();
    assert_eq!((st.buffer_full, st.gaps), (1, 1));
    assert!(r.bytes_buffered() <= 150);
}

#[test]
fn too_many_pieces() {
    let mut r = TcpReassembler::new(TcpConfig::default());
    let (c, s) = (client(), server());
    let m = msg("a", "");
    feed(&mut r, 0, &seg(c, s, 0, PSH, &m));
    let base = m.len() as u32;
    for i in 0..=MAX_PIECES as u32 {
        feed(&mut r, 0, &seg(c, s, base + 10 + i * 10, PSH, b"12345"));
    }
    assert_eq!(r.stats().too_many_pieces, 1);
}

#[test]
fn fin_rst_and_idle_expiry() {
    let m = msg("a", "");
    let (c, s) = (client(), server());
    let mut r = TcpReassembler::new(small(8, 1 << 16, 65535));
    feed(&mut r, 0, &seg(c, s, 0, PSH | FIN, &m));
    assert_eq!(r.connections(), 1);
    feed(&mut r, 0, &seg(s, c, 0, FIN | ACK, b""));
    assert_eq!((r.connections(), r.stats().connections_closed), (0, 1));

    feed(&mut r, 0, &seg(c, s, 0, PSH, &m[..12]));
    assert_eq!(r.bytes_buffered(), 12);
    feed(&mut r, 0, &seg(s, c, 0, RST, b""));
    assert_eq!((r.connections(), r.stats().connections_closed, r.bytes_buffered()), (0, 2, 0));

    feed(&mut r, 0, &seg(c, s, 0, PSH, &m[..12]));
    r.expire(Timestamp(59 * S));
    assert_eq!(r.connections(), 1);
    r.expire(Timestamp(60 * S));
    assert_eq!((r.connections(), r.stats().connections_expired, r.bytes_buffered()), (0, 1, 0));
}

#[test]
fn syn_on_the_sip_port_starts_in_step() {
    let m = msg("a", "");
    let c = client();
    let s: SocketAddr = "10.0.0.2:5060".parse().unwrap();
    let mut r = TcpReassembler::new(TcpConfig::default());
    feed(&mut r, 0, &seg(c, s, u32::MAX - 3, SYN, b""));
    assert_eq!(r.connections(), 1);
    // The sequence space wraps inside the message.
    assert!(feed(&mut r, 0, &seg(c, s, u32::MAX - 2, PSH, &m[..10])).is_empty());
    assert_eq!(feed(&mut r, 0, &seg(c, s, 7, PSH, &m[10..])), vec![m]);
    // A SYN elsewhere is not followed.
    let mut r = TcpReassembler::new(TcpConfig::default());
    feed(&mut r, 0, &seg(c, server(), 1, SYN, b""));
    assert_eq!(r.connections(), 0);
}
