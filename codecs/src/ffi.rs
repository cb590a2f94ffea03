//! The C calls, each wrapped in a safe function whose arguments are sized as the headers
//! (`bcg729/decoder.h`, `gsm.h`) require.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use crate::{G729_FRAME, G729_SAMPLES, GSM_FRAME, GSM_SAMPLES};

#[repr(C)]
pub(crate) struct Bcg729Decoder {
    _opaque: [u8; 0],
}

#[repr(C)]
pub(crate) struct GsmState {
    _opaque: [u8; 0],
}

#[link(name = "bcg729")]
unsafe extern "C" {
    fn initBcg729DecoderChannel() -> *mut Bcg729Decoder;
    fn closeBcg729DecoderChannel(ctx: *mut Bcg729Decoder);
    fn bcg729Decoder(
        ctx: *mut Bcg729Decoder,
        bitstream: *const u8,
        len: u8,
        frame_erasure: u8,
        sid_frame: u8,
        rfc3389_payload: u8,
        signal: *mut i16,
    );
}

#[link(name = "gsm")]
unsafe extern "C" {
    fn gsm_create() -> *mut GsmState;
    fn gsm_destroy(g: *mut GsmState);
    fn gsm_decode(g: *mut GsmState, frame: *const u8, signal: *mut i16) -> i32;
}

pub(crate) fn g729_new() -> Option<NonNull<Bcg729Decoder>> {
    // SAFETY: a constructor without arguments; null on failure.
    NonNull::new(unsafe { initBcg729DecoderChannel() })
}

pub(crate) fn g729_free(d: NonNull<Bcg729Decoder>) {
    // SAFETY: `d` came from g729_new and is freed once (by its owner's drop).
    unsafe { closeBcg729DecoderChannel(d.as_ptr()) }
}

/// `frame`: 10 bytes, or 2 with `sid`.
pub(crate) fn g729_decode(
    d: NonNull<Bcg729Decoder>,
    frame: &[u8],
    erased: bool,
    sid: bool,
    out: &mut [i16; G729_SAMPLES],
) {
    debug_assert!(frame.len() == G729_FRAME || (sid && frame.len() == 2));
    // SAFETY: a live decoder; the library reads `len` bytes of `frame` (10, or 2 for a SID
    // frame) and writes 80 samples.
    unsafe {
        bcg729Decoder(
            d.as_ptr(),
            frame.as_ptr(),
            frame.len() as u8,
            u8::from(erased),
            u8::from(sid),
            0,
            out.as_mut_ptr(),
        )
    }
}

pub(crate) fn gsm_new() -> Option<NonNull<GsmState>> {
    // SAFETY: a constructor without arguments; null on failure.
    NonNull::new(unsafe { gsm_create() })
}

pub(crate) fn gsm_free(g: NonNull<GsmState>) {
    // SAFETY: `g` came from gsm_new and is freed once.
    unsafe { gsm_destroy(g.as_ptr()) }
}

pub(crate) fn gsm_decode_frame(g: NonNull<GsmState>, frame: &[u8; GSM_FRAME], out: &mut [i16; GSM_SAMPLES]) -> bool {
    // SAFETY: a live decoder; the library reads one 33-byte frame and writes 160 samples.
    unsafe { gsm_decode(g.as_ptr(), frame.as_ptr(), out.as_mut_ptr()) == 0 }
}
