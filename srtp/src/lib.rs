//! SRTP and SRTCP with master keys from the SDP (SDES, RFC 4568): the crypto suites of
//! RFC 4568 / RFC 6188 (AES counter mode with HMAC-SHA1) and RFC 7714 (AES-GCM), the RFC 3711
//! key derivation (key derivation rate 0, the only one SDES uses in practice), the rollover
//! counter a receiver keeps per stream (RFC 3711 §3.3.1), and the packet transforms.
//!
//! A recorder is a receiver that never sends: [`Context::unprotect_rtp`] and
//! [`Context::unprotect_rtcp`] verify the authentication tag *first* and only then decrypt,
//! into a buffer the caller owns (nothing is allocated per packet). The `protect_*` side
//! exists for the test generator.
//!
//! Key material lives in [`MasterKey`] (and the derived session keys in the ciphers): wiped
//! when dropped, never printed (`Debug` shows its length only).

use aes::cipher::{InnerIvInit, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroize;

type HmacSha1 = Hmac<Sha1>;

/// Longest master key plus salt (AES-256 counter mode: 32 + 14 bytes).
pub const MAX_MASTER_LEN: usize = 46;
/// Longest trailer a packet may carry besides its payload (SRTCP index, MKI, tag).
const MAX_MKI: usize = 16;

/// An SRTP crypto suite as named in `a=crypto` (RFC 4568 §6.2, RFC 6188 §7, RFC 7714 §14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// `AES_CM_128_HMAC_SHA1_80`.
    AesCm128Sha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: 32-bit tag on SRTP, 80-bit on SRTCP.
    AesCm128Sha1_32,
    /// `AES_256_CM_HMAC_SHA1_80` (RFC 6188).
    AesCm256Sha1_80,
    /// `AES_256_CM_HMAC_SHA1_32` (RFC 6188): 32-bit tag on SRTP, 80-bit on SRTCP.
    AesCm256Sha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714): 16-byte tag, 12-byte salt.
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714).
    AeadAes256Gcm,
}

impl Suite {
    /// Every suite.
    pub const ALL: [Suite; 6] = [
        Suite::AesCm128Sha1_80,
        Suite::AesCm128Sha1_32,
        Suite::AesCm256Sha1_80,
        Suite::AesCm256Sha1_32,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ];

    /// The suite of an `a=crypto` name, if it is one callvault decrypts.
    pub fn from_name(name: &[u8]) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name().as_bytes() == name)
    }

    /// The name as written in SDP.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128Sha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128Sha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AesCm256Sha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::AesCm256Sha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// AES-GCM (authenticated encryption) rather than counter mode with HMAC-SHA1.
    pub fn is_aead(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }

    /// Master (and session) key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128Sha1_80 | Suite::AesCm128Sha1_32 | Suite::AeadAes128Gcm => 16,
            Suite::AesCm256Sha1_80 | Suite::AesCm256Sha1_32 | Suite::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length in bytes.
    pub fn salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Length of the `inline:` key material: key followed by salt.
    pub fn master_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// Authentication tag length on SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128Sha1_80 | Suite::AesCm256Sha1_80 => 10,
            Suite::AesCm128Sha1_32 | Suite::AesCm256Sha1_32 => 4,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => 16,
        }
    }

    /// Authentication tag length on SRTCP packets (80 bits for every HMAC suite, RFC 4568 §6.2).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() { 16 } else { 10 }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A master key and salt (`inline:` material of `a=crypto`). Wiped on drop; `Debug` prints
/// its length, never its bytes; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    bytes: [u8; MAX_MASTER_LEN],
    len: u8,
}

impl MasterKey {
    /// Key followed by salt; `None` when longer than any suite's.
    pub fn new(key_and_salt: &[u8]) -> Option<MasterKey> {
        if key_and_salt.len() > MAX_MASTER_LEN {
            return None;
        }
        let mut bytes = [0; MAX_MASTER_LEN];
        bytes[..key_and_salt.len()].copy_from_slice(key_and_salt);
        Some(MasterKey { bytes, len: key_and_salt.len() as u8 })
    }

    /// Decodes the base64 text of an `inline:` parameter (padding optional). `None` when it
    /// is not base64 or longer than any suite's material.
    pub fn from_base64(text: &[u8]) -> Option<MasterKey> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut buf = [0u8; 3 * (MAX_MASTER_LEN / 3 + 2)];
        let n = engine.decode_slice(text, &mut buf);
        let key = match n {
            Ok(n) => MasterKey::new(&buf[..n]),
            Err(_) => None,
        };
        buf.zeroize();
        key
    }

    /// Number of bytes (key and salt).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key and salt bytes, for deriving session keys (and for generators writing SDP).
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(<{} bytes, not shown>)", self.len)
    }
}

/// Why a packet was not decrypted. Small and `Copy`; it never carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The packet is shorter than its header and trailer (tag, MKI, SRTCP index).
    #[error("packet too short for its header and SRTP trailer")]
    TooShort,
    /// The authentication tag does not match: wrong key, wrong rollover guess or tampering.
    #[error("authentication failed")]
    AuthFailed,
    /// After decryption the padding count is impossible.
    #[error("padding count larger than the payload")]
    BadPadding,
    /// The output buffer is smaller than the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// Why a master key cannot key a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key and salt are not as long as the suite's.
    #[error("{suite} takes {expected} bytes of key and salt, the SDP gave {got}")]
    WrongLength {
        /// The suite.
        suite: Suite,
        /// Its key and salt length.
        expected: usize,
        /// What the SDP gave.
        got: usize,
    },
    /// An MKI longer than callvault accepts.
    #[error("MKI of {0} bytes is longer than 16")]
    MkiTooLong(usize),
}

// One per direction of a call: the round keys stay inline, where every packet reads them.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Cm128(Aes128),
    Cm256(Aes256),
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
}

/// Session keys of one direction for SRTP or for SRTCP.
struct Session {
    cipher: Cipher,
    /// Session salt (12 bytes for GCM, followed by zeros).
    salt: [u8; 14],
    /// HMAC-SHA1 keyed with the session authentication key (counter-mode suites).
    auth: Option<HmacSha1>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

/// AES counter-mode keystream XORed over `data`, from the 128-bit counter block `iv`.
fn ctr_xor(cipher: &Cipher, iv: &[u8; 16], data: &mut [u8]) {
    match cipher {
        Cipher::Cm128(aes) => ctr::Ctr128BE::<Aes128>::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), iv.into()))
            .apply_keystream(data),
        Cipher::Cm256(aes) => ctr::Ctr128BE::<Aes256>::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), iv.into()))
            .apply_keystream(data),
        Cipher::Gcm128(_) | Cipher::Gcm256(_) => {}
    }
}

/// The RFC 3711 §4.3 key derivation with a key derivation rate of 0: `out` is the AES-CM
/// keystream under the master key from the counter block `(label · 2^48 XOR salt) · 2^16`.
/// The salt is 14 bytes (a 12-byte GCM salt is followed by zeros, as RFC 7714 §11 and libsrtp
/// have it).
pub fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..master_salt.len().min(14)].copy_from_slice(&master_salt[..master_salt.len().min(14)]);
    iv[7] ^= label;
    out.fill(0);
    match master_key.len() {
        16 => ctr::Ctr128BE::<Aes128>::new(master_key.into(), (&iv).into()).apply_keystream(out),
        32 => ctr::Ctr128BE::<Aes256>::new(master_key.into(), (&iv).into()).apply_keystream(out),
        _ => {}
    }
    iv.zeroize();
}

impl Session {
    /// The session keys for labels `base` (encryption), `base + 1` (authentication) and
    /// `base + 2` (salt).
    fn derive(suite: Suite, master: &MasterKey, base: u8) -> Session {
        let (key, salt) = master.expose_secret().split_at(suite.key_len());
        let mut k = [0u8; 32];
        let k = &mut k[..suite.key_len()];
        derive(key, salt, base, k);
        let mut s = [0u8; 14];
        derive(key, salt, base + 2, &mut s[..suite.salt_len()]);
        let cipher = match suite {
            Suite::AesCm128Sha1_80 | Suite::AesCm128Sha1_32 => Cipher::Cm128(Aes128::new((&*k).into())),
            Suite::AesCm256Sha1_80 | Suite::AesCm256Sha1_32 => Cipher::Cm256(Aes256::new((&*k).into())),
            Suite::AeadAes128Gcm => Cipher::Gcm128(Box::new(Aes128Gcm::new((&*k).into()))),
            Suite::AeadAes256Gcm => Cipher::Gcm256(Box::new(Aes256Gcm::new((&*k).into()))),
        };
        let auth = (!suite.is_aead()).then(|| {
            let mut a = [0u8; 20];
            derive(key, salt, base + 1, &mut a);
            let mac = <HmacSha1 as Mac>::new_from_slice(&a).expect("HMAC takes any key length");
            a.zeroize();
            mac
        });
        k.zeroize();
        Session { cipher, salt: s, auth }
    }

    fn gcm_decrypt(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), Error> {
        let (nonce, tag) = (Nonce::from_slice(nonce), Tag::from_slice(tag));
        let r = match &self.cipher {
            Cipher::Gcm128(c) => c.decrypt_in_place_detached(nonce, aad, data, tag),
            Cipher::Gcm256(c) => c.decrypt_in_place_detached(nonce, aad, data, tag),
            Cipher::Cm128(_) | Cipher::Cm256(_) => return Err(Error::AuthFailed),
        };
        r.map_err(|_| Error::AuthFailed)
    }

    fn gcm_encrypt(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let nonce = Nonce::from_slice(nonce);
        let tag = match &self.cipher {
            Cipher::Gcm128(c) => c.encrypt_in_place_detached(nonce, aad, data),
            Cipher::Gcm256(c) => c.encrypt_in_place_detached(nonce, aad, data),
            Cipher::Cm128(_) | Cipher::Cm256(_) => return [0; 16],
        };
        tag.map(Into::into).unwrap_or([0; 16])
    }

    /// The counter-mode IV of RFC 3711 §4.1.1: `salt · 2^16 XOR SSRC · 2^64 XOR index · 2^16`.
    fn cm_iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *d ^= s;
        }
        for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *d ^= s;
        }
        iv
    }

    /// The GCM nonce of RFC 7714 §8.1 (SRTP: `00 00 | SSRC | ROC | SEQ`) and §9.1 (SRTCP:
    /// `00 00 | SSRC | 00 00 | 0 | index`), XORed with the 12-byte salt.
    fn gcm_iv(&self, ssrc: u32, tail: [u8; 6]) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..].copy_from_slice(&tail);
        for (d, s) in iv.iter_mut().zip(&self.salt[..12]) {
            *d ^= s;
        }
        iv
    }
}

/// The rollover counter of one SRTP stream as a receiver estimates it (RFC 3711 §3.3.1 and
/// Appendix A): the highest sequence number seen and how often it wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollover {
    roc: u32,
    high: u16,
    started: bool,
}

impl Rollover {
    /// A stream whose first packet is yet to come (its rollover counter starts at 0).
    pub fn new() -> Rollover {
        Rollover::default()
    }

    /// The rollover counter the sender used for `seq`: this one, one more (the sequence
    /// wrapped since the highest packet) or one less (a packet from before the last wrap).
    pub fn estimate(&self, seq: u16) -> u32 {
        if !self.started {
            return self.roc;
        }
        let (s_l, s) = (i32::from(self.high), i32::from(seq));
        if s_l < 32768 {
            if s - s_l > 32768 { self.roc.wrapping_sub(1) } else { self.roc }
        } else if s_l - 32768 > s {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }

    /// Takes in a packet that authenticated with rollover counter `v` (from [`estimate`]).
    ///
    /// [`estimate`]: Rollover::estimate
    pub fn update(&mut self, seq: u16, v: u32) {
        if !self.started {
            *self = Rollover { roc: v, high: seq, started: true };
        } else if v == self.roc.wrapping_add(1) {
            self.roc = v;
            self.high = seq;
        } else if v == self.roc && seq > self.high {
            self.high = seq;
        }
    }

    /// The current rollover counter.
    pub fn roc(&self) -> u32 {
        self.roc
    }
}

/// Length of an RTP header (fixed part, CSRCs and extension), if the packet holds one.
pub fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut n = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let words = p.get(n + 2..n + 4)?;
        n += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (n <= p.len()).then_some(n)
}

/// One direction's SRTP and SRTCP keys: what a party's `a=crypto` line keys.
pub struct Context {
    suite: Suite,
    mki_len: usize,
    rtp: Session,
    rtcp: Session,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("suite", &self.suite).field("mki_len", &self.mki_len).finish_non_exhaustive()
    }
}

impl Context {
    /// Derives the session keys of `suite` from `master` (key derivation rate 0). `mki_len`
    /// is the MKI length of the `a=crypto` line (0 without one).
    pub fn new(suite: Suite, master: &MasterKey, mki_len: usize) -> Result<Context, KeyError> {
        if master.len() != suite.master_len() {
            return Err(KeyError::WrongLength { suite, expected: suite.master_len(), got: master.len() });
        }
        if mki_len > MAX_MKI {
            return Err(KeyError::MkiTooLong(mki_len));
        }
        Ok(Context { suite, mki_len, rtp: Session::derive(suite, master, 0), rtcp: Session::derive(suite, master, 3) })
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Verifies and decrypts an SRTP packet of the stream whose rollover state is `roc`
    /// (updated only when the packet authenticates). The payload goes into `out` (at least as
    /// long as the packet), padding removed; returns its length.
    pub fn unprotect_rtp(&self, packet: &[u8], roc: &mut Rollover, out: &mut [u8]) -> Result<usize, Error> {
        let header = rtp_header_len(packet).ok_or(Error::TooShort)?;
        let tag_len = self.suite.rtp_tag_len();
        let end = packet.len().checked_sub(tag_len + self.mki_len).filter(|&e| e >= header).ok_or(Error::TooShort)?;
        if out.len() < packet.len() {
            return Err(Error::BufferTooSmall);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let v = roc.estimate(seq);
        let n = end - header;
        if self.suite.is_aead() {
            // header | ciphertext | tag | MKI
            let tag = &packet[end..end + tag_len];
            out[..n].copy_from_slice(&packet[header..end]);
            let mut tail = [0u8; 6];
            tail[..4].copy_from_slice(&v.to_be_bytes());
            tail[4..].copy_from_slice(&seq.to_be_bytes());
            let iv = self.rtp.gcm_iv(ssrc, tail);
            self.rtp.gcm_decrypt(&iv, &packet[..header], &mut out[..n], tag)?;
        } else {
            // header | ciphertext | MKI | tag; the tag covers header, ciphertext and ROC.
            let mut mac = self.rtp.auth.clone().ok_or(Error::AuthFailed)?;
            mac.update(&packet[..end]);
            mac.update(&v.to_be_bytes());
            mac.verify_truncated_left(&packet[packet.len() - tag_len..]).map_err(|_| Error::AuthFailed)?;
            out[..n].copy_from_slice(&packet[header..end]);
            let iv = self.rtp.cm_iv(ssrc, (u64::from(v) << 16) | u64::from(seq));
            ctr_xor(&self.rtp.cipher, &iv, &mut out[..n]);
        }
        roc.update(seq, v);
        if packet[0] & 0x20 != 0 {
            let pad = usize::from(*out[..n].last().ok_or(Error::BadPadding)?);
            if pad == 0 || pad > n {
                return Err(Error::BadPadding);
            }
            return Ok(n - pad);
        }
        Ok(n)
    }

    /// Verifies and, when its E flag says so, decrypts an SRTCP packet. The compound RTCP
    /// packet as sent in the clear goes into `out` (at least as long as the packet); returns
    /// its length.
    pub fn unprotect_rtcp(&self, packet: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let tag_len = self.suite.rtcp_tag_len();
        let trailer = 4 + tag_len + self.mki_len;
        if packet.len() < 8 + trailer {
            return Err(Error::TooShort);
        }
        if out.len() < packet.len() {
            return Err(Error::BufferTooSmall);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let end = packet.len() - trailer;
        if self.suite.is_aead() {
            // header | ciphertext | tag | E+index | MKI
            let at = end + tag_len;
            let e_index: [u8; 4] = packet[at..at + 4].try_into().expect("four bytes");
            let word = u32::from_be_bytes(e_index);
            let tag = &packet[end..at];
            let mut tail = [0u8; 6];
            tail[2..].copy_from_slice(&(word & 0x7fff_ffff).to_be_bytes());
            let iv = self.rtcp.gcm_iv(ssrc, tail);
            out[..end].copy_from_slice(&packet[..end]);
            if word & 0x8000_0000 != 0 {
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&packet[..8]);
                aad[8..].copy_from_slice(&e_index);
                self.rtcp.gcm_decrypt(&iv, &aad, &mut out[8..end], tag)?;
            } else {
                // Not encrypted: everything is associated data.
                out[end..end + 4].copy_from_slice(&e_index);
                let (aad, _) = out.split_at(end + 4);
                self.rtcp.gcm_decrypt(&iv, aad, &mut [], tag)?;
            }
            Ok(end)
        } else {
            // header | ciphertext | E+index | MKI | tag; the tag covers up to the index.
            let e_index = u32::from_be_bytes(packet[end..end + 4].try_into().expect("four bytes"));
            let mut mac = self.rtcp.auth.clone().ok_or(Error::AuthFailed)?;
            mac.update(&packet[..end + 4]);
            mac.verify_truncated_left(&packet[packet.len() - tag_len..]).map_err(|_| Error::AuthFailed)?;
            out[..end].copy_from_slice(&packet[..end]);
            if e_index & 0x8000_0000 != 0 {
                let iv = self.rtcp.cm_iv(ssrc, u64::from(e_index & 0x7fff_ffff));
                ctr_xor(&self.rtcp.cipher, &iv, &mut out[8..end]);
            }
            Ok(end)
        }
    }

    /// Encrypts and authenticates an RTP packet sent with rollover counter `roc`, appending
    /// the SRTP packet to `out` (MKI, if the context has one, as zeros). For generators.
    pub fn protect_rtp(&self, packet: &[u8], roc: u32, out: &mut Vec<u8>) -> Result<(), Error> {
        let header = rtp_header_len(packet).ok_or(Error::TooShort)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let start = out.len();
        out.extend_from_slice(packet);
        if self.suite.is_aead() {
            let mut tail = [0u8; 6];
            tail[..4].copy_from_slice(&roc.to_be_bytes());
            tail[4..].copy_from_slice(&seq.to_be_bytes());
            let iv = self.rtp.gcm_iv(ssrc, tail);
            let (head, body) = out[start..].split_at_mut(header);
            let tag = self.rtp.gcm_encrypt(&iv, head, body);
            out.extend_from_slice(&tag);
            out.resize(out.len() + self.mki_len, 0);
        } else {
            let iv = self.rtp.cm_iv(ssrc, (u64::from(roc) << 16) | u64::from(seq));
            ctr_xor(&self.rtp.cipher, &iv, &mut out[start + header..]);
            let mut mac = self.rtp.auth.clone().ok_or(Error::AuthFailed)?;
            mac.update(&out[start..]);
            mac.update(&roc.to_be_bytes());
            let tag = mac.finalize().into_bytes();
            out.resize(out.len() + self.mki_len, 0);
            out.extend_from_slice(&tag[..self.suite.rtp_tag_len()]);
        }
        Ok(())
    }

    /// Encrypts (E flag set) and authenticates a compound RTCP packet with SRTCP index
    /// `index` (31 bits), appending the SRTCP packet to `out`. For generators.
    pub fn protect_rtcp(&self, packet: &[u8], index: u32, out: &mut Vec<u8>) -> Result<(), Error> {
        if packet.len() < 8 {
            return Err(Error::TooShort);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let e_index = (index & 0x7fff_ffff) | 0x8000_0000;
        let start = out.len();
        out.extend_from_slice(packet);
        if self.suite.is_aead() {
            let mut tail = [0u8; 6];
            tail[2..].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
            let iv = self.rtcp.gcm_iv(ssrc, tail);
            let mut aad = [0u8; 12];
            aad[..8].copy_from_slice(&packet[..8]);
            aad[8..].copy_from_slice(&e_index.to_be_bytes());
            let tag = self.rtcp.gcm_encrypt(&iv, &aad, &mut out[start + 8..]);
            out.extend_from_slice(&tag);
            out.extend_from_slice(&e_index.to_be_bytes());
            out.resize(out.len() + self.mki_len, 0);
        } else {
            let iv = self.rtcp.cm_iv(ssrc, u64::from(index & 0x7fff_ffff));
            ctr_xor(&self.rtcp.cipher, &iv, &mut out[start + 8..]);
            out.extend_from_slice(&e_index.to_be_bytes());
            let mut mac = self.rtcp.auth.clone().ok_or(Error::AuthFailed)?;
            mac.update(&out[start..]);
            let tag = mac.finalize().into_bytes();
            out.resize(out.len() + self.mki_len, 0);
            out.extend_from_slice(&tag[..self.suite.rtcp_tag_len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Context {
    /// A context from session keys directly (RFC 7714's vectors start there).
    fn from_session_keys(suite: Suite, key: &[u8], salt: &[u8]) -> Context {
        let session = || {
            let mut s = [0u8; 14];
            s[..salt.len()].copy_from_slice(salt);
            let cipher = match suite {
                Suite::AeadAes128Gcm => Cipher::Gcm128(Box::new(Aes128Gcm::new(key.into()))),
                Suite::AeadAes256Gcm => Cipher::Gcm256(Box::new(Aes256Gcm::new(key.into()))),
                Suite::AesCm128Sha1_80 | Suite::AesCm128Sha1_32 => Cipher::Cm128(Aes128::new(key.into())),
                Suite::AesCm256Sha1_80 | Suite::AesCm256Sha1_32 => Cipher::Cm256(Aes256::new(key.into())),
            };
            Session { cipher, salt: s, auth: None }
        };
        Context { suite, mki_len: 0, rtp: session(), rtcp: session() }
    }
}
