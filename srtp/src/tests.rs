//! Known-answer tests: RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation),
//! RFC 7714 §16 and §17 (AES-GCM SRTP and SRTCP), and round trips through every suite.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    // Session key and salt of B.2, SSRC 0, index 0: the counter starts at salt · 2^16.
    let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
    let ctx = Context::from_session_keys(Suite::AesCm128Sha1_80, &key, &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
    let iv = ctx.rtp.cm_iv(0, 0);
    assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
    let mut stream = vec![0u8; 16 * 0xff02];
    ctr_xor(&ctx.rtp.cipher, &iv, &mut stream);
    let block = |i: usize| stream[16 * i..16 * (i + 1)].to_vec();
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

#[test]
fn rfc3711_b3_key_derivation() {
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut cipher_key = [0u8; 16];
    derive(&key, &salt, 0, &mut cipher_key);
    assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut cipher_salt = [0u8; 14];
    derive(&key, &salt, 2, &mut cipher_salt);
    assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    let mut auth = [0u8; 94];
    derive(&key, &salt, 1, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2")
    );
}

const RFC7714_RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
                           69736120 696e2070 61727465 73207472 6573";
const RFC7714_RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
                            deadbeef deadbeef deadbeef deadbeef deadbeef";
const RFC7714_SALT: &str = "517569642070726f2071756f";
const KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
const KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[test]
fn rfc7714_16_srtp_gcm() {
    let plain = hex(RFC7714_RTP);
    for (suite, key, protected) in [
        (
            Suite::AeadAes128Gcm,
            KEY_128,
            "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
             899d7f27beb16a9152cf765ee4390cce",
        ),
        (
            Suite::AeadAes256Gcm,
            KEY_256,
            "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
             7aa3db36dfffd6b0f9bb7878d7a76c13",
        ),
    ] {
        let ctx = Context::from_session_keys(suite, &hex(key), &hex(RFC7714_SALT));
        assert_eq!(ctx.rtp.gcm_iv(0x5501a0b2, [0, 0, 0, 0, 0xf1, 0x7b]).to_vec(), hex("51753c6580c2726f20718414"));
        let mut out = Vec::new();
        ctx.protect_rtp(&plain, 0, &mut out).unwrap();
        assert_eq!(out, hex(protected), "{suite}");
        let mut buf = vec![0u8; 2048];
        let n = ctx.unprotect_rtp(&out, &mut Rollover::new(), &mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[12..]);
        // One bit anywhere, header included, and the packet does not authenticate.
        for at in [1, 12, out.len() - 1] {
            let mut bad = out.clone();
            bad[at] ^= 0x04;
            assert_eq!(ctx.unprotect_rtp(&bad, &mut Rollover::new(), &mut buf), Err(Error::AuthFailed));
        }
    }
}

#[test]
fn rfc7714_17_srtcp_gcm() {
    let plain = hex(RFC7714_RTCP);
    let ctx = Context::from_session_keys(Suite::AeadAes128Gcm, &hex(KEY_128), &hex(RFC7714_SALT));
    let mut out = Vec::new();
    ctx.protect_rtcp(&plain, 0x5d4, &mut out).unwrap();
    assert_eq!(
        out,
        hex("81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9
             275bc84aa45896cf4d2fc5abf87245d9eade800005d4")
    );
    let mut buf = vec![0u8; 2048];
    let n = ctx.unprotect_rtcp(&out, &mut buf).unwrap();
    assert_eq!(&buf[..n], &plain[..]);

    let ctx = Context::from_session_keys(Suite::AeadAes256Gcm, &hex(KEY_256), &hex(RFC7714_SALT));
    let protected =
        hex("81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad
         1d1eb30c4446839f57ff6f6cb26ac3be800005d4");
    let n = ctx.unprotect_rtcp(&protected, &mut buf).unwrap();
    assert_eq!(&buf[..n], &plain[..]);
    let mut bad = protected.clone();
    bad[20] ^= 1;
    assert_eq!(ctx.unprotect_rtcp(&bad, &mut buf), Err(Error::AuthFailed));
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn every_suite_round_trips_across_the_sequence_wrap() {
    for suite in Suite::ALL {
        let master = MasterKey::new(&(0..suite.master_len() as u8).collect::<Vec<_>>()).unwrap();
        let ctx = Context::new(suite, &master, 0).unwrap();
        let mut rx = Rollover::new();
        let mut buf = vec![0u8; 2048];
        let mut roc = 0u32;
        for k in 0..40u32 {
            let seq = 65520u16.wrapping_add(k as u16);
            if seq == 0 {
                roc += 1;
            }
            let payload: Vec<u8> = (0..160).map(|i| (i as u32 * 7 + k) as u8).collect();
            let mut out = Vec::new();
            ctx.protect_rtp(&rtp(seq, &payload), roc, &mut out).unwrap();
            assert_eq!(out.len(), 12 + 160 + suite.rtp_tag_len());
            let n = ctx.unprotect_rtp(&out, &mut rx, &mut buf).unwrap();
            assert_eq!(&buf[..n], &payload[..], "{suite} seq {seq}");
        }
        assert_eq!(rx.roc(), 1, "{suite}");
    }
}

#[test]
fn rollover_estimate_follows_rfc3711() {
    let mut r = Rollover::new();
    r.update(65500, r.estimate(65500));
    assert_eq!(r.estimate(10), 1, "a small number after a high one wrapped");
    assert_eq!(r.estimate(65000), 0);
    r.update(10, 1);
    assert_eq!((r.roc(), r.estimate(65530)), (1, 0), "a late packet from before the wrap");
    assert_eq!(r.estimate(20), 1);
    r.update(65530, 0);
    assert_eq!(r.roc(), 1, "a late packet does not move the counter back");
}

#[test]
fn keys_are_never_printed() {
    let master = MasterKey::from_base64(b"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz").unwrap();
    assert_eq!(master.len(), 30);
    let shown = format!("{master:?}");
    assert_eq!(shown, "MasterKey(<30 bytes, not shown>)");
    let ctx = Context::new(Suite::AesCm128Sha1_80, &master, 0).unwrap();
    assert!(!format!("{ctx:?}").contains("salt"));
    assert!(Context::new(Suite::AesCm256Sha1_80, &master, 0).is_err());
    assert!(MasterKey::from_base64(b"not base64!").is_none());
}

#[test]
fn srtcp_round_trip_and_wrong_key() {
    for suite in Suite::ALL {
        let master = MasterKey::new(&vec![0x5a; suite.master_len()]).unwrap();
        let other = MasterKey::new(&vec![0x5b; suite.master_len()]).unwrap();
        let (ctx, wrong) = (Context::new(suite, &master, 0).unwrap(), Context::new(suite, &other, 0).unwrap());
        let plain = hex(RFC7714_RTCP);
        let mut out = Vec::new();
        ctx.protect_rtcp(&plain, 7, &mut out).unwrap();
        assert_eq!(out.len(), plain.len() + 4 + suite.rtcp_tag_len());
        let mut buf = vec![0u8; 256];
        let n = ctx.unprotect_rtcp(&out, &mut buf).unwrap();
        assert_eq!(&buf[..n], &plain[..]);
        assert_eq!(wrong.unprotect_rtcp(&out, &mut buf), Err(Error::AuthFailed));
        let mut rtp_out = Vec::new();
        ctx.protect_rtp(&rtp(9, &[1, 2, 3]), 0, &mut rtp_out).unwrap();
        assert_eq!(wrong.unprotect_rtp(&rtp_out, &mut Rollover::new(), &mut buf), Err(Error::AuthFailed));
    }
}

proptest::proptest! {
    /// Whatever arrives, unprotecting it never panics, and a valid packet with any one bit
    /// changed never authenticates.
    #[test]
    fn arbitrary_bytes_and_any_flipped_bit_are_refused(
        suite in 0usize..6,
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        seq in proptest::prelude::any::<u16>(),
        bit in proptest::prelude::any::<usize>(),
    ) {
        let suite = Suite::ALL[suite];
        let master = MasterKey::new(&vec![0x42; suite.master_len()]).unwrap();
        let ctx = Context::new(suite, &master, 0).unwrap();
        let mut buf = vec![0u8; 512];
        let _ = ctx.unprotect_rtp(&bytes, &mut Rollover::new(), &mut buf);
        let _ = ctx.unprotect_rtcp(&bytes, &mut buf);
        let mut out = Vec::new();
        ctx.protect_rtp(&rtp(seq, &payload), 0, &mut out).unwrap();
        let i = bit % (out.len() * 8);
        out[i / 8] ^= 1 << (i % 8);
        let r = ctx.unprotect_rtp(&out, &mut Rollover::new(), &mut buf);
        // A flip in the first byte may make it no RTP at all (version, CSRC count, extension).
        proptest::prop_assert!(matches!(r, Err(Error::AuthFailed | Error::TooShort)), "{:?}", r);
    }
}
