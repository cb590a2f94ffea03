"""Checks SRTP and SRTCP packets against implementations that share no code with callvault.

Reads one JSON document on stdin: a list of cases
    {"suite": "AES_CM_128_HMAC_SHA1_80", "key": "<hex key||salt>",
     "rtp": [["<hex wire>", "<hex clear>"], ...], "rtcp": [["<hex wire>", "<hex clear>"], ...]}
in send order. For the suites libsrtp offers through pylibsrtp (AES_CM_128_HMAC_SHA1_80/32,
AEAD_AES_128_GCM, AEAD_AES_256_GCM) libsrtp unprotects every wire packet (following the
rollover counter itself) and must get the clear packet; it also protects every clear packet
and must get the wire bytes. pylibsrtp does not offer the RFC 6188 AES-256 counter-mode
suites: those are checked with the `cryptography` package's AES and HMAC (RFC 3711 key
derivation, index estimate, tag, keystream written out here from the RFC). Prints one line
per case; exits non-zero at the first difference.
"""

import hmac
import hashlib
import json
import sys

import pylibsrtp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def with_libsrtp(case):
    key = bytes.fromhex(case["key"])
    profile = PROFILES[case["suite"]]
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    for i, (wire, clear) in enumerate(case["rtp"]):
        wire, clear = bytes.fromhex(wire), bytes.fromhex(clear)
        got = rx.unprotect(wire)
        assert got == clear, f"{case['suite']}: RTP packet {i}: libsrtp decrypts {got.hex()}, want {clear.hex()}"
        again = tx.protect(clear)
        assert again == wire, f"{case['suite']}: RTP packet {i}: libsrtp encrypts {again.hex()}, callvault {wire.hex()}"
    for i, (wire, clear) in enumerate(case["rtcp"]):
        wire, clear = bytes.fromhex(wire), bytes.fromhex(clear)
        got = rx.unprotect_rtcp(wire)
        assert got == clear, f"{case['suite']}: RTCP packet {i}: libsrtp decrypts {got.hex()}, want {clear.hex()}"
        again = tx.protect_rtcp(clear)
        assert again == wire, f"{case['suite']}: RTCP packet {i}: libsrtp encrypts {again.hex()}, callvault {wire.hex()}"


def aes_ctr(key, counter, data):
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return enc.update(data) + enc.finalize()


def kdf(master_key, master_salt, label, length):
    x = bytearray(master_salt + b"\0\0")
    x[7] ^= label
    return aes_ctr(master_key, bytes(x), b"\0" * length)


def iv(salt, ssrc, index):
    v = int.from_bytes(salt, "big") << 16
    v ^= ssrc << 64
    v ^= index << 16
    return v.to_bytes(16, "big")


def with_cryptography(case):
    """AES_256_CM_HMAC_SHA1_80/32 (RFC 6188: RFC 3711 with a 256-bit AES key)."""
    tag_len = 10 if case["suite"].endswith("_80") else 4
    material = bytes.fromhex(case["key"])
    mk, ms = material[:32], material[32:]
    k_e, k_a, k_s = kdf(mk, ms, 0, 32), kdf(mk, ms, 1, 20), kdf(mk, ms, 2, 14)
    roc, s_l, started = 0, 0, False
    for i, (wire, clear) in enumerate(case["rtp"]):
        wire, clear = bytes.fromhex(wire), bytes.fromhex(clear)
        seq = int.from_bytes(wire[2:4], "big")
        ssrc = int.from_bytes(wire[8:12], "big")
        if not started:
            v = roc
        elif s_l < 32768:
            v = roc - 1 if seq - s_l > 32768 else roc
        else:
            v = roc + 1 if s_l - 32768 > seq else roc
        body, tag = wire[:-tag_len], wire[-tag_len:]
        want = hmac.new(k_a, body + v.to_bytes(4, "big"), hashlib.sha1).digest()[:tag_len]
        assert hmac.compare_digest(want, tag), f"{case['suite']}: RTP packet {i}: tag does not verify"
        plain = body[:12] + aes_ctr(k_e, iv(k_s, ssrc, (v << 16) | seq), body[12:])
        assert plain == clear, f"{case['suite']}: RTP packet {i}: decrypts to {plain.hex()}, want {clear.hex()}"
        if not started:
            roc, s_l, started = v, seq, True
        elif v == roc + 1:
            roc, s_l = v, seq
        elif v == roc and seq > s_l:
            s_l = seq
    k_e, k_a, k_s = kdf(mk, ms, 3, 32), kdf(mk, ms, 4, 20), kdf(mk, ms, 5, 14)
    for i, (wire, clear) in enumerate(case["rtcp"]):
        wire, clear = bytes.fromhex(wire), bytes.fromhex(clear)
        body, tag = wire[:-10], wire[-10:]
        want = hmac.new(k_a, body, hashlib.sha1).digest()[:10]
        assert hmac.compare_digest(want, tag), f"{case['suite']}: RTCP packet {i}: tag does not verify"
        e_index = int.from_bytes(body[-4:], "big")
        assert e_index >> 31 == 1, f"{case['suite']}: RTCP packet {i}: E flag not set"
        ssrc = int.from_bytes(body[4:8], "big")
        plain = body[:8] + aes_ctr(k_e, iv(k_s, ssrc, e_index & 0x7FFFFFFF), body[8:-4])
        assert plain == clear, f"{case['suite']}: RTCP packet {i}: decrypts to {plain.hex()}, want {clear.hex()}"


def main():
    for case in json.load(sys.stdin):
        if case["suite"] in PROFILES:
            with_libsrtp(case)
            how = "libsrtp (pylibsrtp " + getattr(pylibsrtp, "__version__", "?") + ")"
        else:
            with_cryptography(case)
            how = "cryptography (AES-CTR, HMAC-SHA1)"
        print(f"{case['suite']}: {len(case['rtp'])} RTP and {len(case['rtcp'])} RTCP packets agree with {how}")


if __name__ == "__main__":
    main()
