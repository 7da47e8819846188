# Ed25519 on the MicroPython unix port: the RFC 8032 vectors (pure-Python
# SHA-512 included), tampering refused, and the cost of one bundle check.
import gc
import json
from time import ticks_diff, ticks_ms

import ed25519

with open("tests/vectors/ed25519.json") as _f:
    V = json.load(_f)["vectors"]


def _case(v):
    return bytes.fromhex(v["public"]), bytes.fromhex(v["message"]), bytes.fromhex(v["signature"])


def test_rfc8032_vectors_verify():
    for v in V:
        pub, msg, sig = _case(v)
        assert ed25519.verify(pub, msg, sig), v["name"]


def test_sha512_matches_the_vectors_hash():
    # SHA(abc) carries SHA-512("abc") as its message.
    v = next(v for v in V if v["name"] == "TEST SHA(abc)")
    assert ed25519.sha512(b"abc") == bytes.fromhex(v["message"])
    empty = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    assert ed25519.sha512(b"").hex()[:64] == empty
    # Padding edges: 111, 112 and 128 bytes take one, two and two blocks.
    for n in (111, 112, 127, 128, 129):
        assert len(ed25519.sha512(bytes(n))) == 64


def test_tampering_is_refused():
    pub, msg, sig = _case(V[2])
    bad = bytearray(sig)
    bad[5] ^= 0x10
    assert not ed25519.verify(pub, msg, bytes(bad))
    bad = bytearray(sig)
    bad[40] ^= 0x01
    assert not ed25519.verify(pub, msg, bytes(bad))
    assert not ed25519.verify(pub, msg + b"x", sig)
    other, _, _ = _case(V[0])
    assert not ed25519.verify(other, msg, sig)
    # Malformed inputs: short, a non-point key, S >= L.
    assert not ed25519.verify(pub[:31], msg, sig)
    assert not ed25519.verify(pub, msg, sig[:63])
    assert not ed25519.verify(b"\xff" * 32, msg, sig)
    big = sig[:32] + b"\xff" * 32
    assert not ed25519.verify(pub, msg, big)


def test_cost_of_one_bundle_check():
    # What a console pays to check a bundle: one signature over a 32-byte
    # digest (TEST 3's message is as short).  Live heap sampled after a
    # collection at every tick (the tick collects, so timing runs apart).
    pub, msg, sig = _case(V[2])
    gc.collect()
    base = gc.mem_alloc()
    peak = [0]

    def tick():
        gc.collect()
        peak[0] = max(peak[0], gc.mem_alloc() - base)

    assert ed25519.verify(pub, msg, sig, tick)
    t0 = ticks_ms()
    assert ed25519.verify(pub, msg, sig)
    ms = ticks_diff(ticks_ms(), t0)
    print("ed25519 verify: %d ms, live heap above start <= %d bytes" % (ms, peak[0]))
    assert peak[0] < 4096
