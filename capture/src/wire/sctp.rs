//! SCTP (RFC 9260) as SIP uses it (RFC 4168): the common header, the chunk walk, and DATA
//! and I-DATA (RFC 8260) chunks.
//!
//! [`parse`] validates the 12-byte common header; [`chunks`] walks the chunks after it (each
//! padded to 4 bytes; the walk stops at the first chunk whose length is below 4 or past the
//! packet's end, reporting it); [`data`] reads a DATA or I-DATA chunk. [`checksum_ok`] says
//! whether the CRC32c is right: a capture taken on the sending host often shows packets before
//! the NIC filled the checksum in, so readers count a mismatch and use the packet anyway.

use super::{ErrorKind, Layer, WireError, be16, be32};

/// Chunk type DATA.
pub const CHUNK_DATA: u8 = 0;
/// Chunk type INIT.
pub const CHUNK_INIT: u8 = 1;
/// Chunk type INIT ACK.
pub const CHUNK_INIT_ACK: u8 = 2;
/// Chunk type SACK.
pub const CHUNK_SACK: u8 = 3;
/// Chunk type HEARTBEAT.
pub const CHUNK_HEARTBEAT: u8 = 4;
/// Chunk type ABORT.
pub const CHUNK_ABORT: u8 = 6;
/// Chunk type SHUTDOWN.
pub const CHUNK_SHUTDOWN: u8 = 7;
/// Chunk type I-DATA (RFC 8260).
pub const CHUNK_I_DATA: u8 = 64;

/// DATA/I-DATA flag: the chunk ends a user message.
pub const FLAG_END: u8 = 0x01;
/// DATA/I-DATA flag: the chunk begins a user message.
pub const FLAG_BEGIN: u8 = 0x02;
/// DATA/I-DATA flag: unordered.
pub const FLAG_UNORDERED: u8 = 0x04;

mod field {
    pub(super) const COMMON: usize = 12;
    pub(super) const CHECKSUM: usize = 8;
    pub(super) const CHUNK_HEADER: usize = 4;
    pub(super) const DATA_HEADER: usize = 16;
    pub(super) const I_DATA_HEADER: usize = 20;
}

/// The common header of an SCTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag.
    pub vtag: u32,
    /// CRC32c as sent (see [`checksum_ok`]).
    pub checksum: u32,
    /// The chunks.
    pub chunks: &'a [u8],
}

/// Parses the common header.
pub fn parse(b: &[u8]) -> Result<SctpRepr<'_>, WireError> {
    if b.len() < field::COMMON {
        return Err(WireError::new(Layer::Sctp, b.len(), ErrorKind::Truncated));
    }
    Ok(SctpRepr {
        src_port: be16(b, 0),
        dst_port: be16(b, 2),
        vtag: be32(b, 4),
        checksum: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        chunks: &b[field::COMMON..],
    })
}

/// One chunk: its type, flags and value (without header or padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Chunk type.
    pub kind: u8,
    /// Chunk flags.
    pub flags: u8,
    /// The value, `length - 4` bytes.
    pub value: &'a [u8],
}

/// The chunks of a packet (see [`Chunks`]).
pub fn chunks(b: &[u8]) -> Chunks<'_> {
    Chunks { b, at: 0, done: false }
}

/// Iterator over chunks. Yields an error once (offset relative to the chunk area) for a chunk
/// whose length is below 4 or reaches past the packet, then stops. Missing padding after the
/// last chunk is tolerated.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    b: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.at >= self.b.len() {
            return None;
        }
        let rest = &self.b[self.at..];
        let err =
            |at: usize, kind| Some(Err(WireError { layer: Layer::Sctp, offset: (field::COMMON + at) as u32, kind }));
        if rest.len() < field::CHUNK_HEADER {
            self.done = true;
            return err(self.at + rest.len(), ErrorKind::Truncated);
        }
        let len = usize::from(be16(rest, 2));
        if len < field::CHUNK_HEADER {
            self.done = true;
            return err(self.at + 2, ErrorKind::BadLength);
        }
        if len > rest.len() {
            self.done = true;
            return err(self.at + 2, ErrorKind::Truncated);
        }
        let chunk = Chunk { kind: rest[0], flags: rest[1], value: &rest[field::CHUNK_HEADER..len] };
        self.at += len.next_multiple_of(4);
        Some(Ok(chunk))
    }
}

/// A DATA or I-DATA chunk: a fragment (or the whole) of one user message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// It is an I-DATA chunk (RFC 8260): fragments are ordered by `fsn`, messages told apart
    /// by `mid`.
    pub interleaved: bool,
    /// Transmission sequence number.
    pub tsn: u32,
    /// Stream identifier.
    pub stream: u16,
    /// DATA: the stream sequence number; I-DATA: the message identifier.
    pub mid: u32,
    /// I-DATA: the fragment sequence number (0 for the first fragment); DATA: 0.
    pub fsn: u32,
    /// Payload protocol identifier (I-DATA: only on the first fragment).
    pub ppid: Option<u32>,
    /// First fragment of its message.
    pub begin: bool,
    /// Last fragment of its message.
    pub end: bool,
    /// Unordered delivery.
    pub unordered: bool,
    /// User data.
    pub payload: &'a [u8],
}

/// Reads a DATA or I-DATA chunk (`None` for other kinds).
pub fn data<'a>(c: &Chunk<'a>) -> Option<Result<Data<'a>, WireError>> {
    let v = c.value;
    let (interleaved, header) = match c.kind {
        CHUNK_DATA => (false, field::DATA_HEADER),
        CHUNK_I_DATA => (true, field::I_DATA_HEADER),
        _ => return None,
    };
    let need = header - field::CHUNK_HEADER;
    if v.len() < need {
        return Some(Err(WireError::new(Layer::Sctp, field::CHUNK_HEADER + v.len(), ErrorKind::Truncated)));
    }
    let begin = c.flags & FLAG_BEGIN != 0;
    let (mid, fsn, ppid) = if interleaved {
        let last = be32(v, 12);
        if begin { (be32(v, 8), 0, Some(last)) } else { (be32(v, 8), last, None) }
    } else {
        (u32::from(be16(v, 6)), 0, Some(be32(v, 8)))
    };
    Some(Ok(Data {
        interleaved,
        tsn: be32(v, 0),
        stream: be16(v, 4),
        mid,
        fsn,
        ppid,
        begin,
        end: c.flags & FLAG_END != 0,
        unordered: c.flags & FLAG_UNORDERED != 0,
        payload: &v[need..],
    }))
}

/// True when the packet's CRC32c (RFC 9260 appendix A) is right. Captures on the sender show
/// it unset when the NIC computes it (checksum offload); callers only count a mismatch.
pub fn checksum_ok(packet: &[u8]) -> bool {
    if packet.len() < field::COMMON {
        return false;
    }
    let c = field::CHECKSUM;
    let sent = u32::from_le_bytes([packet[c], packet[c + 1], packet[c + 2], packet[c + 3]]);
    let mut crc = !0u32;
    crc = crc32c_update(crc, &packet[..c]);
    crc = crc32c_update(crc, &[0; 4]);
    crc = crc32c_update(crc, &packet[c + 4..]);
    !crc == sent
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78) without the final inversion.
fn crc32c_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC32C[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

const CRC32C: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    /// 5060 -> 5061, vtag 0x01020304, one DATA chunk (TSN 7, stream 2, SSN 3, PPID 0, B|E)
    /// with "SIP/2.0 2" (9 bytes, padded with 3), then a SACK chunk.
    fn packet() -> Vec<u8> {
        let mut p = vec![0x13, 0xc4, 0x13, 0xc5, 1, 2, 3, 4, 0, 0, 0, 0];
        p.extend_from_slice(&[0, 0x03, 0, 25, 0, 0, 0, 7, 0, 2, 0, 3, 0, 0, 0, 0]);
        p.extend_from_slice(b"SIP/2.0 2\0\0\0");
        p.extend_from_slice(&[3, 0, 0, 16, 0, 0, 0, 6, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        let crc = !crc32c_update(!0, &p);
        p[8..12].copy_from_slice(&crc.to_le_bytes());
        p
    }

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value (RFC 3720 B.4 style): "123456789" -> 0xE3069283.
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xe306_9283);
        // 32 bytes of zeros (RFC 3720 B.4): 0x8A9136AA.
        assert_eq!(!crc32c_update(!0, &[0; 32]), 0x8a91_36aa);
    }

    #[test]
    fn data_and_sack() {
        let p = packet();
        assert!(checksum_ok(&p));
        let s = parse(&p).unwrap();
        assert_eq!((s.src_port, s.dst_port, s.vtag), (5060, 5061, 0x0102_0304));
        let c: Vec<_> = chunks(s.chunks).collect::<Result<_, _>>().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].kind, c[0].value.len()), (CHUNK_DATA, 21));
        let d = data(&c[0]).unwrap().unwrap();
        assert_eq!(
            d,
            Data {
                interleaved: false,
                tsn: 7,
                stream: 2,
                mid: 3,
                fsn: 0,
                ppid: Some(0),
                begin: true,
                end: true,
                unordered: false,
                payload: b"SIP/2.0 2",
            }
        );
        assert_eq!(c[1].kind, CHUNK_SACK);
        assert!(data(&c[1]).is_none());
        let mut bad = p.clone();
        bad[20] ^= 1;
        assert!(!checksum_ok(&bad));
    }

    #[test]
    fn i_data() {
        // I-DATA, middle fragment: TSN 9, stream 1, MID 4, FSN 2.
        let mut c = vec![CHUNK_I_DATA, 0, 0, 22, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, b'a', b'b'];
        let chunk = chunks(&c).next().unwrap().unwrap();
        let d = data(&chunk).unwrap().unwrap();
        assert!(d.interleaved && !d.begin && !d.end);
        assert_eq!((d.tsn, d.stream, d.mid, d.fsn, d.ppid, d.payload), (9, 1, 4, 2, None, &b"ab"[..]));
        c[1] = FLAG_BEGIN;
        let chunk = chunks(&c).next().unwrap().unwrap();
        let d = data(&chunk).unwrap().unwrap();
        assert_eq!((d.fsn, d.ppid), (0, Some(2)));
    }

    #[test]
    fn hostile_lengths() {
        assert!(parse(&[0; 11]).is_err());
        // Length 0: reported once, then the walk stops.
        let zero = [0u8, 0, 0, 0, 0, 0, 0, 0];
        let v: Vec<_> = chunks(&zero).collect();
        assert_eq!(v, vec![Err(WireError::new(Layer::Sctp, 14, ErrorKind::BadLength))]);
        // Past the end.
        let past = [0u8, 3, 0, 40, 1, 2, 3, 4];
        let v: Vec<_> = chunks(&past).collect();
        assert_eq!(v, vec![Err(WireError::new(Layer::Sctp, 14, ErrorKind::Truncated))]);
        // A DATA chunk too short for its header.
        let short = [0u8, 3, 0, 8, 0, 0, 0, 1];
        let c = chunks(&short).next().unwrap().unwrap();
        assert!(data(&c).unwrap().is_err());
        // A 3-byte tail.
        let tail = [3u8, 0, 0, 4, 9, 9, 9];
        let v: Vec<_> = chunks(&tail).collect();
        assert_eq!(v.len(), 2);
        assert!(v[1].is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = checksum_ok(&b);
            if let Ok(s) = parse(&b) {
                for c in chunks(s.chunks) {
                    let Ok(c) = c else { break };
                    if let Some(Ok(d)) = data(&c) {
                        proptest::prop_assert!(d.payload.len() <= c.value.len());
                    }
                }
            }
        }
    }
}
