"""Reference decoding of narrowband codecs by the C libraries called directly (ctypes), for
the tests: G.729 with libbcg729, GSM 06.10 with libgsm.

    narrowband.py g729|gsm < frames > pcm

Reads frames from stdin, one per line: hex bytes (G.729: 10 for speech, 2 for a SID frame;
GSM: 33), or "-" for a lost G.729 frame (decoded in the library's frame erasure mode).
Writes the decoded 8 kHz samples (80 per G.729 frame, 160 per GSM frame) as signed 16-bit
little-endian to stdout.
"""

import ctypes
import sys

codec = sys.argv[1]
pcm = bytearray()
if codec == "g729":
    lib = ctypes.CDLL("libbcg729.so.0")
    lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
    lib.bcg729Decoder.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint8, ctypes.c_uint8,
                                  ctypes.c_uint8, ctypes.c_uint8, ctypes.POINTER(ctypes.c_int16)]
    decoder = lib.initBcg729DecoderChannel()
    out = (ctypes.c_int16 * 80)()
    for line in sys.stdin:
        line = line.strip()
        if line == "-":
            lib.bcg729Decoder(decoder, bytes(10), 10, 1, 0, 0, out)
        else:
            frame = bytes.fromhex(line)
            lib.bcg729Decoder(decoder, frame, len(frame), 0, 1 if len(frame) == 2 else 0, 0, out)
        pcm += bytes(out)
elif codec == "gsm":
    lib = ctypes.CDLL("libgsm.so.1")
    lib.gsm_create.restype = ctypes.c_void_p
    lib.gsm_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int16)]
    decoder = lib.gsm_create()
    out = (ctypes.c_int16 * 160)()
    for line in sys.stdin:
        if lib.gsm_decode(decoder, bytes.fromhex(line.strip()), out) != 0:
            sys.exit("not a GSM frame")
        pcm += bytes(out)
else:
    sys.exit(f"unknown codec {codec}")
sys.stdout.buffer.write(pcm)
