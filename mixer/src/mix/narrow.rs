//! Narrowband codecs decoded by the reference libraries Debian ships, as packets are placed:
//! G.729 (Annex A and B: 10-byte frames and 2-byte SID frames, RFC 3551 §4.5.6) with
//! libbcg729, and GSM 06.10 full rate (33-byte frames, RFC 3551 §4.5.8) with libgsm. Both are
//! 8 kHz audio on an 8 kHz RTP clock: one decoded sample per timeline position.
//!
//! Decoders keep state from frame to frame, so each party's frames are decoded in the order
//! their clock places them. When a packet comes after a gap in its party's audio of up to
//! [`MAX_CONCEAL`] (60 ms: lost packets), G.729 conceals the missing frames (the decoder's
//! frame erasure mode); GSM has no concealment, the gap stays silence. A longer gap (DTX,
//! hold) is silence, as sent. Either way the record's gaps say what was lost.

use codecs::{G729_FRAME, G729_SAMPLES, G729_SID, G729Decoder, GSM_FRAME, GSM_SAMPLES, GsmDecoder};

/// Longest gap concealed (positions): 60 ms.
pub const MAX_CONCEAL: i64 = 480;
/// Longest packet decoded (positions): 120 ms.
const MAX_POSITIONS: usize = 960;

/// A narrowband codec decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NarrowCodec {
    /// G.729, G.729A, G.729B.
    G729,
    /// GSM 06.10 full rate.
    Gsm,
}

/// Positions (8 kHz samples) a payload of `codec` covers; `None` when its length is not a
/// whole number of frames.
pub fn positions(codec: NarrowCodec, payload: &[u8]) -> Option<i64> {
    let n = match codec {
        NarrowCodec::G729 => match payload.len() % G729_FRAME {
            0 => payload.len() / G729_FRAME * G729_SAMPLES,
            G729_SID => (payload.len() / G729_FRAME + 1) * G729_SAMPLES,
            _ => return None,
        },
        NarrowCodec::Gsm if payload.len().is_multiple_of(GSM_FRAME) => payload.len() / GSM_FRAME * GSM_SAMPLES,
        NarrowCodec::Gsm => return None,
    };
    (n > 0 && n <= MAX_POSITIONS).then_some(n as i64)
}

#[derive(Debug)]
enum Decoder {
    G729(G729Decoder),
    Gsm(GsmDecoder),
}

/// One party's decoding of one narrowband codec.
#[derive(Debug)]
pub struct NarrowSide {
    codec: NarrowCodec,
    dec: Decoder,
    /// Position one past the last audio decoded.
    next: Option<i64>,
    /// Decoded samples of the latest packet (and its concealment).
    pub(crate) pcm: Vec<i16>,
}

impl NarrowSide {
    /// A decoder for one party (the libraries fail only when memory is exhausted).
    pub fn new(codec: NarrowCodec) -> Result<NarrowSide, String> {
        let dec = match codec {
            NarrowCodec::G729 => G729Decoder::new().map(Decoder::G729),
            NarrowCodec::Gsm => GsmDecoder::new().map(Decoder::Gsm),
        }
        .map_err(|e| e.to_string())?;
        Ok(NarrowSide { codec, dec, next: None, pcm: Vec::with_capacity(MAX_POSITIONS + MAX_CONCEAL as usize) })
    }

    /// The codec it decodes.
    pub fn codec(&self) -> NarrowCodec {
        self.codec
    }

    /// Decodes the packet placed at `pos` (with the concealment the gap before it takes) into
    /// [`NarrowSide::pcm`]; returns the position the samples start at.
    pub fn decode(&mut self, pos: i64, payload: &[u8]) -> Result<i64, String> {
        let len = positions(self.codec, payload).ok_or("not a whole number of frames")?;
        self.pcm.clear();
        let mut start = pos;
        match &mut self.dec {
            Decoder::G729(d) => {
                let mut out = [0i16; G729_SAMPLES];
                if let Some(next) = self.next.filter(|&n| pos > n && pos - n <= MAX_CONCEAL) {
                    // Lost frames: the whole 10 ms frames of the gap, concealed.
                    let frames = (pos - next) as usize / G729_SAMPLES;
                    start = pos - (frames * G729_SAMPLES) as i64;
                    for _ in 0..frames {
                        d.conceal(&mut out);
                        self.pcm.extend_from_slice(&out);
                    }
                }
                for frame in payload.chunks(G729_FRAME) {
                    d.decode(frame, &mut out);
                    self.pcm.extend_from_slice(&out);
                }
            }
            Decoder::Gsm(d) => {
                let mut out = [0i16; GSM_SAMPLES];
                for frame in payload.chunks_exact(GSM_FRAME) {
                    // A frame without the GSM signature is silence; the packet still counts.
                    d.decode(frame.try_into().map_err(|_| "a GSM frame is 33 bytes")?, &mut out);
                    self.pcm.extend_from_slice(&out);
                }
            }
        }
        self.next = Some(self.next.map_or(pos + len, |n| n.max(pos + len)));
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_lengths_are_whole_frames() {
        assert_eq!(positions(NarrowCodec::G729, &[0; 20]), Some(160));
        assert_eq!(positions(NarrowCodec::G729, &[0; 22]), Some(240), "two frames and a SID frame");
        assert_eq!(positions(NarrowCodec::G729, &[0; 2]), Some(80));
        assert_eq!(positions(NarrowCodec::G729, &[0; 15]), None);
        assert_eq!(positions(NarrowCodec::G729, &[]), None);
        assert_eq!(positions(NarrowCodec::Gsm, &[0xd0; 66]), Some(320));
        assert_eq!(positions(NarrowCodec::Gsm, &[0xd0; 32]), None);
    }

    #[test]
    fn a_lost_g729_frame_is_concealed_and_a_long_gap_is_not() {
        let mut d = NarrowSide::new(NarrowCodec::G729).unwrap();
        let frames: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(37)).collect();
        assert_eq!(d.decode(0, &frames).unwrap(), 0);
        assert_eq!(d.pcm.len(), 160);
        // One 20 ms packet lost: its two frames concealed before this one's.
        assert_eq!(d.decode(320, &frames).unwrap(), 160);
        assert_eq!(d.pcm.len(), 320);
        // A second of nothing: silence, decoding starts where the packet is.
        assert_eq!(d.decode(8480, &frames).unwrap(), 8480);
        assert_eq!(d.pcm.len(), 160);
        let mut g = NarrowSide::new(NarrowCodec::Gsm).unwrap();
        assert_eq!(g.decode(0, &[0xd0; 33]).unwrap(), 0);
        assert_eq!(g.decode(320, &[0xd0; 33]).unwrap(), 320, "GSM conceals nothing");
        assert_eq!(g.pcm.len(), 160);
    }
}
