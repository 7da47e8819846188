# The wire codec under the MicroPython unix port: the same pinned vectors
# the host checks, so both interpreters speak one format.
import json

import wire as W

with open("tests/vectors/wire.json") as _f:
    V = json.load(_f)


def _value(v):
    if isinstance(v, dict):
        return bytes.fromhex(v["hex"])
    return v


def test_vectors_encode():
    assert V["version"] == W.VERSION
    enc = W.Encoder()
    for case in V["frames"]:
        vals = tuple(_value(v) for v in case["values"])
        got = bytes(enc.encode(case["type"], vals)).hex()
        assert got == case["frame"], case["name"]


def test_vectors_decode_bytewise():
    dec = W.Decoder()
    for case in V["frames"]:
        n = 0
        for b in bytes.fromhex(case["frame"]):
            n = dec.push(b) or n
        assert n, case["name"]
        _, mtype, vals = W.parse(dec.buf, n)
        want = tuple(_value(v) for v in case["values"])
        want = tuple(v.encode() if isinstance(v, str) else v for v in want)
        assert mtype == case["type"] and vals == want, case["name"]


def test_cobs_examples():
    for case in V["cobs"]:
        raw = bytes.fromhex(case["raw"])
        dst = bytearray(len(raw) + len(raw) // 254 + 3)
        n = W.cobs_encode(raw, len(raw), dst)
        assert bytes(dst[1 : n - 1]).hex() == case["cobs"]


def test_crc_check_value():
    from binascii import crc32

    c = V["crc32_check"]
    assert "%08x" % (crc32(bytes.fromhex(c["data"])) & 0xFFFFFFFF) == c["crc"]


def test_garbage_never_raises():
    import random

    random.seed(7)
    dec = W.Decoder()
    good = bytes(W.Encoder().encode(W.ACK, (9,)))
    for _ in range(200):
        junk = bytes(random.getrandbits(8) for _ in range(random.randint(0, 40)))
        n = 0
        for b in junk + good:
            n = dec.push(b) or n
        assert n and W.parse(dec.buf, n)[2] == (9,)


def test_framing_does_not_allocate():
    # COBS into the preallocated frame and the per-byte receive path run
    # heap-locked; only a completed frame costs a memoryview and a tuple.
    import micropython

    enc = W.Encoder()
    frame = bytes(enc.encode(W.ACK, (5,)))
    dec = W.Decoder()
    micropython.heap_lock()
    try:
        for _ in range(10):
            n = W.cobs_encode(enc.body, 10, enc.frame)
            for i in range(1, len(frame) - 1):
                dec.push(frame[i])
            dec.n = 0
    finally:
        micropython.heap_unlock()
    assert n > 10
