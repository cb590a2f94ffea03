//! Safe wrappers over the reference narrowband decoders Debian ships (`libbcg729-dev`,
//! `libgsm1-dev`): G.729 Annex A/B through libbcg729, GSM 06.10 full rate through libgsm.
//! Each decoder owns its C state, frees it on drop, and decodes one frame at a time into a
//! caller's buffer: nothing is allocated per frame.
//!
//! Architecture invariant: this crate is the only place callvault calls C directly (besides
//! the maintained bindings it depends on); everything unsafe is in [`ffi`], every call there
//! checked against the library's header for argument sizes.

mod ffi;

use std::ptr::NonNull;

/// Samples (8 kHz) in a G.729 frame (10 ms).
pub const G729_SAMPLES: usize = 80;
/// Bytes in a G.729 frame.
pub const G729_FRAME: usize = 10;
/// Bytes in a G.729 Annex B SID (comfort noise) frame.
pub const G729_SID: usize = 2;
/// Samples (8 kHz) in a GSM 06.10 frame (20 ms).
pub const GSM_SAMPLES: usize = 160;
/// Bytes in a GSM 06.10 frame.
pub const GSM_FRAME: usize = 33;

/// The library could not create a decoder (memory exhausted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoDecoder(&'static str);

impl std::fmt::Display for NoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot create a {} decoder", self.0)
    }
}

impl std::error::Error for NoDecoder {}

/// A G.729 (Annex A, with Annex B comfort noise) decoder: libbcg729.
pub struct G729Decoder(NonNull<ffi::Bcg729Decoder>);

// SAFETY: the decoder state belongs to this value alone and is only used through `&mut self`;
// libbcg729 keeps no global or thread-local state.
#[allow(unsafe_code)]
unsafe impl Send for G729Decoder {}

impl std::fmt::Debug for G729Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("G729Decoder")
    }
}

impl G729Decoder {
    /// A decoder in its reset state.
    pub fn new() -> Result<G729Decoder, NoDecoder> {
        ffi::g729_new().map(G729Decoder).ok_or(NoDecoder("G.729"))
    }

    /// Decodes one frame: 10 bytes of speech or a 2-byte SID frame (comfort noise). Any other
    /// length is decoded as a lost frame (concealed).
    pub fn decode(&mut self, frame: &[u8], out: &mut [i16; G729_SAMPLES]) {
        match frame.len() {
            G729_FRAME => ffi::g729_decode(self.0, frame, false, false, out),
            G729_SID => ffi::g729_decode(self.0, frame, false, true, out),
            _ => self.conceal(out),
        }
    }

    /// Conceals one lost frame (the decoder's frame erasure mode).
    pub fn conceal(&mut self, out: &mut [i16; G729_SAMPLES]) {
        ffi::g729_decode(self.0, &[0; G729_FRAME], true, false, out);
    }
}

impl Drop for G729Decoder {
    fn drop(&mut self) {
        ffi::g729_free(self.0);
    }
}

/// A GSM 06.10 full-rate decoder: libgsm.
pub struct GsmDecoder(NonNull<ffi::GsmState>);

// SAFETY: as for G729Decoder; libgsm keeps all its state in the handle.
#[allow(unsafe_code)]
unsafe impl Send for GsmDecoder {}

impl std::fmt::Debug for GsmDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GsmDecoder")
    }
}

impl GsmDecoder {
    /// A decoder in its reset state.
    pub fn new() -> Result<GsmDecoder, NoDecoder> {
        ffi::gsm_new().map(GsmDecoder).ok_or(NoDecoder("GSM"))
    }

    /// Decodes one 33-byte frame; false (and silence) when it lacks the GSM signature (the
    /// high nibble 0xD of its first byte).
    pub fn decode(&mut self, frame: &[u8; GSM_FRAME], out: &mut [i16; GSM_SAMPLES]) -> bool {
        if frame[0] >> 4 != 0xd {
            out.fill(0);
            return false;
        }
        ffi::gsm_decode_frame(self.0, frame, out)
    }
}

impl Drop for GsmDecoder {
    fn drop(&mut self) {
        ffi::gsm_free(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_are_deterministic_from_their_reset_state() {
        let frames: Vec<u8> = (0..100u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let run = || {
            let mut d = G729Decoder::new().unwrap();
            let mut all = Vec::new();
            let mut out = [0i16; G729_SAMPLES];
            for f in frames.chunks(G729_FRAME) {
                d.decode(f, &mut out);
                all.extend_from_slice(&out);
            }
            d.conceal(&mut out);
            all.extend_from_slice(&out);
            all
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert!(a.iter().any(|&s| s != 0));

        let mut g = GsmDecoder::new().unwrap();
        let mut frame = [0u8; GSM_FRAME];
        frame.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 29) as u8);
        frame[0] = 0xd3;
        let mut out = [0i16; GSM_SAMPLES];
        assert!(g.decode(&frame, &mut out));
        frame[0] = 0x13;
        assert!(!g.decode(&frame, &mut out), "no GSM signature");
        assert!(out.iter().all(|&s| s == 0));
    }
}
