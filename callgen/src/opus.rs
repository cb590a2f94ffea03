//! Opus packets of one party (RFC 7587, RFC 6716), made by libopus (the `opus` crate).
//!
//! Each run of a party's talk packets in Opus (the whole stream, or the part after or before
//! a codec change) is encoded in order by one encoder, started fresh at the run's first
//! packet: the party's tone (zeros where a [`Silence`](crate::Silence) says so) at 8 kHz,
//! mono, `Application::Voip`, 24 kbit/s, one frame of `ptime_ms` per packet (10, 20, 40 or
//! 60 ms), in-band FEC on and a packet loss of [`LOSS_PERC`] % announced, so every SILK frame
//! after the first also carries the previous one at a lower rate (LBRR) for a receiver that
//! lost it. Every slot is encoded, sent or not (the encoder runs on through losses and
//! holds, as a sender's does).
//!
//! DTX (`OPUS_SET_DTX`, when [`CallSpec::opus_dtx`](crate::CallSpec) is set): after about
//! 200 ms without speech libopus stops coding and returns one-byte packets (the TOC alone),
//! except one real frame every 400 ms that refreshes the receiver's comfort noise. Like
//! WebRTC, the generator does not send packets of at most [`DTX_BYTES`] bytes (RFC 7587
//! §3.1.3 lets a DTX sender send nothing): those slots are not sent and use no sequence
//! number (as a held party's), the timestamps go on, and the packet after them has the
//! marker bit.
//!
//! Encoding is sequential and the generator and tests ask for packets one at a time, so a
//! stream's packets are encoded once and kept in a small cache of the latest streams.

use std::sync::{Arc, Mutex};

use opus::{Application, Bitrate, Channels, Encoder};

use crate::tone::tone_sample;

/// Packet loss (percent) the encoder is told to expect: it turns in-band FEC on.
pub(crate) const LOSS_PERC: i32 = 10;
/// Encoder bitrate (bit/s): enough for SILK to carry LBRR at 8 kHz.
pub(crate) const BITRATE: i32 = 24_000;
/// Packets of at most this many bytes are DTX: not sent.
pub(crate) const DTX_BYTES: usize = 2;
/// Streams kept encoded.
const CACHE: usize = 8;

/// What a party's Opus packets are made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpusKey {
    /// The tone's frequency (bits of the `f64`).
    pub(crate) tone_bits: u64,
    /// Samples (8 kHz) per packet.
    pub(crate) spp: u32,
    /// DTX on.
    pub(crate) dtx: bool,
    /// Runs of talk packets `[a, b)` in Opus, each from a fresh encoder.
    pub(crate) runs: Vec<(u32, u32)>,
    /// Silent packets `[a, b)`.
    pub(crate) silent: Vec<(u32, u32)>,
}

/// Payload of every talk packet (by index; empty outside the Opus runs).
pub(crate) type OpusPackets = Arc<Vec<Vec<u8>>>;

static STREAMS: Mutex<Vec<(OpusKey, OpusPackets)>> = Mutex::new(Vec::new());

/// The packets of `key`, encoded on first use.
pub(crate) fn packets(key: OpusKey) -> OpusPackets {
    let mut cache = STREAMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = cache.iter().position(|(k, _)| *k == key) {
        let hit = cache.remove(i);
        let packets = Arc::clone(&hit.1);
        cache.push(hit);
        return packets;
    }
    let packets = Arc::new(encode(&key));
    if cache.len() == CACHE {
        cache.remove(0);
    }
    cache.push((key, Arc::clone(&packets)));
    packets
}

fn encode(key: &OpusKey) -> Vec<Vec<u8>> {
    let end = key.runs.iter().map(|r| r.1).max().unwrap_or(0);
    let mut out = vec![Vec::new(); end as usize];
    let freq = f64::from_bits(key.tone_bits);
    let spp = key.spp as usize;
    let mut pcm = vec![0i16; spp];
    let mut buf = [0u8; 1500];
    for &(a, b) in &key.runs {
        let mut enc = encoder(key.dtx);
        for k in a..b {
            let silent = key.silent.iter().any(|&(s, e)| (s..e).contains(&k));
            let first = u64::from(k) * spp as u64;
            for (j, x) in pcm.iter_mut().enumerate() {
                *x = if silent { 0 } else { tone_sample(freq, first + j as u64) };
            }
            let n = enc.encode(&pcm, &mut buf).expect("libopus encodes a whole frame");
            out[k as usize] = buf[..n].to_vec();
        }
    }
    out
}

fn encoder(dtx: bool) -> Encoder {
    let mut enc = Encoder::new(8000, Channels::Mono, Application::Voip).expect("an Opus encoder");
    enc.set_bitrate(Bitrate::Bits(BITRATE)).expect("bitrate");
    enc.set_inband_fec(true).expect("in-band FEC");
    enc.set_packet_loss_perc(LOSS_PERC).expect("packet loss");
    enc.set_dtx(dtx).expect("DTX");
    enc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dtx: bool, silent: Vec<(u32, u32)>) -> OpusKey {
        OpusKey { tone_bits: 440f64.to_bits(), spp: 160, dtx, runs: vec![(0, 150)], silent }
    }

    #[test]
    fn packets_are_opus_frames_of_20_ms() {
        let p = packets(key(false, Vec::new()));
        assert_eq!(p.len(), 150);
        for pkt in p.iter() {
            assert_eq!(opus::packet::get_nb_samples(pkt, 48_000).unwrap(), 960);
            assert!(pkt.len() > 20, "{} bytes", pkt.len());
        }
        // Encoded once: the same stream comes back.
        assert!(Arc::ptr_eq(&p, &packets(key(false, Vec::new()))));
    }

    #[test]
    fn dtx_leaves_only_toc_bytes_in_long_silence_but_refreshes_it() {
        let p = packets(key(true, vec![(50, 120)]));
        let dtx: Vec<usize> = (0..150).filter(|&k| p[k].len() <= DTX_BYTES).collect();
        assert!(dtx.len() > 40, "{dtx:?}");
        assert!(dtx.iter().all(|&k| (50..121).contains(&k)), "{dtx:?}");
        // Within the silence, some frames are still sent (comfort noise updates).
        assert!((dtx[0]..*dtx.last().unwrap()).any(|k| p[k].len() > DTX_BYTES), "{dtx:?}");
        let off = packets(key(false, vec![(50, 120)]));
        assert!(off.iter().all(|p| p.len() > DTX_BYTES));
    }
}
