//! Property tests of both reassemblers against a naive model: random fragmentation or
//! segmentation, reordering, duplication and overlap must give back exactly the bytes that were
//! sent, or a counted drop when a limit or a conflict applies.

use std::net::SocketAddr;

use callvault_capture::time::Timestamp;
use callvault_capture::transport::reassembly::ip::{DefragConfig, Defragmenter, FragKey, MAX_PIECES};
use callvault_capture::transport::reassembly::tcp::{Segment, TcpConfig, TcpReassembler};
use callvault_capture::wire::tcp::{PSH, SYN};
use proptest::prelude::*;

/// A datagram and how it is cut and delivered: piece boundaries (multiples of 8, as IP
/// requires), a delivery order, and pieces sent twice, some re-cut so that they overlap.
fn fragmented() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>)> {
    (1usize..4000).prop_flat_map(|len| {
        (
            proptest::collection::vec(any::<u8>(), len),
            proptest::collection::vec(1usize..64, 1..40),
            proptest::collection::vec((0usize..64, 1usize..80), 0..6),
        )
            .prop_map(move |(data, cuts, extra)| {
                // Pieces: consecutive, lengths from `cuts` in units of 8 bytes.
                let mut pieces = Vec::new();
                let mut at = 0;
                for c in cuts.iter().cycle() {
                    if at >= len {
                        break;
                    }
                    let end = (at + c * 8).min(len);
                    pieces.push((at, end));
                    at = end;
                }
                // Overlapping copies with the same content.
                for (start8, n8) in extra {
                    let s = (start8 * 8).min(len - 1) / 8 * 8;
                    let e = (s + n8 * 8).min(len);
                    if s < e {
                        pieces.push((s, e));
                    }
                }
                (data, pieces)
            })
    })
}

fn key() -> FragKey {
    FragKey { src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), id: 7, protocol: 17, vlan: Some(3) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn defrag_gives_back_the_datagram((data, pieces) in fragmented(), order in any::<u64>()) {
        let mut pieces = pieces;
        shuffle(&mut pieces, order);
        let mut f = Defragmenter::new(DefragConfig::default());
        let mut outs = Vec::new();
        let mut completed_at = None;
        for (i, (s, e)) in pieces.iter().enumerate() {
            let more = *e < data.len();
            if let Some(out) = f.push(Timestamp(0), key(), *s as u32, more, &data[*s..*e]) {
                completed_at.get_or_insert(i);
                outs.push(out);
            }
        }
        // Model: the datagram completes once every byte and its end were seen; every output is
        // the datagram itself (pieces repeated after completion may start and finish another).
        // Only a datagram cut into more disjoint pieces than it may hold is a (counted) drop.
        prop_assert!(!outs.is_empty() || f.stats().too_many_pieces > 0);
        if pieces.len() <= MAX_PIECES {
            prop_assert!(!outs.is_empty());
        }
        for out in &outs {
            prop_assert_eq!(out, &data);
        }
        prop_assert_eq!(f.stats().conflicts, 0);
        prop_assert_eq!(f.stats().reassembled, outs.len() as u64);
        let held_ok = f.bytes_held() <= 65_535 * f.in_progress();
        prop_assert!(held_ok);
    }

    #[test]
    fn defrag_conflicts_and_limits_are_counted_drops(
        (data, pieces) in fragmented(),
        order in any::<u64>(),
        flip in any::<prop::sample::Index>(),
        max_bytes in 8usize..5000,
    ) {
        let mut pieces = pieces;
        shuffle(&mut pieces, order);
        // One repeated piece carries a flipped byte.
        let victim = flip.index(pieces.len());
        let (vs, ve) = pieces[victim];
        pieces.insert(victim + 1, (vs, ve));
        let mut f = Defragmenter::new(DefragConfig { max_reassemblies: 1, max_bytes, timeout: i64::MAX });
        let mut outs = Vec::new();
        for (i, (s, e)) in pieces.iter().enumerate() {
            let mut bytes = data[*s..*e].to_vec();
            if i == victim + 1 {
                bytes[0] ^= 0x80;
            }
            if let Some(out) = f.push(Timestamp(0), key(), *s as u32, *e < data.len(), &bytes) {
                outs.push(out);
            }
            prop_assert!(f.bytes_held() <= max_bytes);
            prop_assert!(f.in_progress() <= 1);
        }
        // Whatever comes out is a datagram made of bytes that were sent: the original, or (when
        // the flipped copy came first and the original piece was refused as a conflict after
        // it) nothing. A missing output is always explained by a counter.
        for out in &outs {
            prop_assert_eq!(out.len(), data.len());
            let differs = out.iter().zip(&data).filter(|(a, b)| a != b).count();
            prop_assert!(differs <= 1);
        }
        if outs.is_empty() {
            let s = f.stats();
            prop_assert!(s.conflicts + s.shed_bytes + s.shed_table_full + s.too_many_pieces > 0, "{:?}", s);
        }
    }

    #[test]
    fn tcp_gives_back_every_message_in_order(
        msgs in proptest::collection::vec((0usize..400, any::<bool>()), 1..12),
        cuts in proptest::collection::vec(1usize..200, 1..200),
        order in any::<u64>(),
        dups in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..50, 1usize..120), 0..8),
        isn in any::<u32>(),
        keepalive in any::<bool>(),
    ) {
        let messages: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(i, (body, compact))| message(i, *body, *compact)).collect();
        let mut stream = Vec::new();
        for m in &messages {
            stream.extend_from_slice(m);
            if keepalive {
                stream.extend_from_slice(b"\r\n\r\n");
            }
        }
        // Segments: consecutive cuts, plus re-cut overlapping retransmissions.
        let mut segs = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + c).min(stream.len());
            segs.push((at, end));
            at = end;
        }
        for (i, back, len) in dups {
            let (s, _) = segs[i.index(segs.len())];
            let s = s.saturating_sub(back);
            segs.push((s, (s + len).min(stream.len())));
        }
        // Reordering within windows of 8 segments: never more out-of-order pieces than a
        // direction may hold (a deeper reordering is a counted drop, tested below).
        for (i, w) in segs.chunks_mut(8).enumerate() {
            shuffle(w, order.wrapping_add(i as u64));
        }
        let (c, s): (SocketAddr, SocketAddr) = ("10.0.0.1:33000".parse().unwrap(), "10.0.0.2:5060".parse().unwrap());
        let mut r = TcpReassembler::new(TcpConfig::default());
        let mut out = Vec::new();
        r.segment(Timestamp(0), &Segment { src: c, dst: s, vlan: None, seq: isn, ack: 0, flags: SYN, payload: b"" }, |_, _, _, _| {});
        for (a, b) in segs {
            let seg = Segment { src: c, dst: s, vlan: None, seq: isn.wrapping_add(1 + a as u32), ack: 0, flags: PSH, payload: &stream[a..b] };
            r.segment(Timestamp(0), &seg, |src, dst, _, m| {
                assert_eq!((src, dst), (c, s));
                out.push(m.to_vec());
            });
        }
        prop_assert_eq!(&out, &messages);
        prop_assert_eq!(r.bytes_buffered(), 0);
        let st = r.stats();
        prop_assert_eq!((st.gaps, st.buffer_full, st.invalid, st.oversized, st.conflicts), (0, 0, 0, 0, 0));
    }

    #[test]
    fn tcp_under_tight_limits_delivers_only_whole_messages(
        msgs in proptest::collection::vec((0usize..300, any::<bool>()), 1..10),
        cuts in proptest::collection::vec(1usize..120, 1..100),
        order in any::<u64>(),
        max_buffer in 64usize..1500,
        max_message in 64usize..600,
    ) {
        let messages: Vec<Vec<u8>> = msgs.iter().enumerate().map(|(i, (body, compact))| message(i, *body, *compact)).collect();
        let stream: Vec<u8> = messages.concat();
        let mut segs = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + c).min(stream.len());
            segs.push((at, end));
            at = end;
        }
        shuffle(&mut segs, order);
        let (c, s): (SocketAddr, SocketAddr) = ("10.0.0.1:33000".parse().unwrap(), "10.0.0.2:5060".parse().unwrap());
        let cfg = TcpConfig { max_connections: 1, max_buffer, max_total: max_buffer, max_message, idle_timeout: i64::MAX };
        let mut r = TcpReassembler::new(cfg);
        r.segment(Timestamp(0), &Segment { src: c, dst: s, vlan: None, seq: 99, ack: 0, flags: SYN, payload: b"" }, |_, _, _, _| {});
        let mut out = Vec::new();
        for (a, b) in segs {
            let seg = Segment { src: c, dst: s, vlan: None, seq: 100 + a as u32, ack: 0, flags: PSH, payload: &stream[a..b] };
            r.segment(Timestamp(0), &seg, |_, _, _, m| out.push(m.to_vec()));
            prop_assert!(r.bytes_buffered() <= max_buffer);
        }
        // Every message delivered is one that was sent, whole, in order, and within the cap.
        let mut next = 0;
        for m in &out {
            prop_assert!(m.len() <= max_message);
            let i = messages[next..].iter().position(|x| x == m);
            prop_assert!(i.is_some(), "not a sent message: {:?}", String::from_utf8_lossy(m));
            next += i.unwrap_or(0) + 1;
        }
        // Messages under the cap are only missing with a counted reason.
        let fitting = messages.iter().filter(|m| m.len() <= max_message).count();
        if out.len() < fitting {
            let st = r.stats();
            prop_assert!(st.buffer_full + st.gaps + st.too_many_pieces > 0, "{:?}", st);
        }
    }
}

/// A SIP request with a `body`-byte body, its length in `Content-Length` or `l:`.
fn message(i: usize, body: usize, compact: bool) -> Vec<u8> {
    let name = if compact { "l" } else { "Content-Length" };
    let body: String = (0..body).map(|j| (b'a' + ((i + j) % 26) as u8) as char).collect();
    format!("MESSAGE sip:u{i}@h SIP/2.0\r\nCall-ID: m{i}\r\n{name}: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Deterministic shuffle driven by a proptest value (so failures shrink and replay).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}
