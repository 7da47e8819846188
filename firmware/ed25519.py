# Ed25519 signature check (RFC 8032) for signed app bundles, in plain
# MicroPython: loaded only while an update is checked, then dropped.
#
# Points are extended coordinates (X, Y, Z, T) on the twisted Edwards curve
# -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19).  Big ints are immutable,
# so every step makes garbage; nothing is kept but a handful of 255-bit
# numbers, so the live heap stays under ~2 KB while the collector works.
# The bundle signs the SHA-256 of its manifest, so the SHA-512 input is
# 96 bytes (one block) and the pure-Python SHA-512 below is cheap enough.
from struct import pack, unpack

_P = (1 << 255) - 19
_L = (1 << 252) + 27742317777372353535851937790883648493
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = (2 * _D) % _P
_I = 19681161376707505956807079304988542015446066515923890162744021073123829784752  # sqrt(-1)
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960
_M64 = 0xFFFFFFFFFFFFFFFF


def _add(p, q):
    # add-2008-hwcd-3 (a = -1): also right for p == q.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 % _P * t2 % _P
    d = 2 * z1 * z2 % _P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p):
    # dbl-2008-hwcd (a = -1).
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    s = x1 + y1
    e = h - s * s % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _decode(s):
    # A 32-byte point encoding to extended coordinates; None if invalid.
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    yy = y * y % _P
    u = (yy - 1) % _P
    v = (_D * yy + 1) % _P
    # x = sqrt(u / v) = u v^3 (u v^7)^((p - 5) / 8)
    v3 = v * v % _P * v % _P
    x = u * v3 % _P * pow(u * v3 % _P * v3 % _P * v % _P, (_P - 5) >> 3, _P) % _P
    vxx = v * x % _P * x % _P
    if vxx != u:
        if vxx != (_P - u) % _P:
            return None
        x = x * _I % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode(p):
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


# --- SHA-512 (FIPS 180-4), for ports whose hashlib lacks it ----------------
# No tables: a fragmented heap may have no 640 bytes in one piece, so each
# round constant (the first 64 bits of the fractional part of the cube root
# of the next prime) is worked out as the round comes.
def _next_prime(n):
    while True:
        n += 1
        d = 2
        while d * d <= n and n % d:
            d += 1
        if d * d > n:
            return n


def _k(q):
    # floor(cbrt(q) * 2^64) mod 2^64: Newton down from just above the root
    # (a float guess, single precision on an ESP32, plus a margin).
    t = q << 192
    r = int(q ** (1 / 3) * 18446744073709551616.0) + (1 << 48)
    while True:
        s = (2 * r + t // (r * r)) // 3
        if s >= r:
            break
        r = s
    while r * r * r > t:
        r -= 1
    return r & _M64


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & _M64


def _block(h, w):
    # One 128-byte block; w holds its 16 words and is reused as the
    # rolling message schedule (16 live words, not 80).
    a, b, c, d, e, f, g, hh = h
    q = 1
    for i in range(80):
        if i >= 16:
            x = w[(i - 15) & 15]
            y = w[(i - 2) & 15]
            s0 = _rotr(x, 1) ^ _rotr(x, 8) ^ (x >> 7)
            s1 = _rotr(y, 19) ^ _rotr(y, 61) ^ (y >> 6)
            w[i & 15] = (w[i & 15] + s0 + w[(i - 7) & 15] + s1) & _M64
        q = _next_prime(q)
        t1 = (
            hh
            + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41))
            + ((e & f) ^ ((e ^ _M64) & g))
            + _k(q)
            + w[i & 15]
        ) & _M64
        t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))) & _M64
        hh = g
        g = f
        f = e
        e = (d + t1) & _M64
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M64
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        h[i] = (h[i] + v) & _M64


def sha512(data):
    # The digest of data (bytes-like) as 64 bytes.
    import hashlib

    native = getattr(hashlib, "sha512", None)  # few ports build it in
    if native is not None:
        return native(data).digest()
    h = [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ]
    n = len(data)
    tail = bytes(data[n - n % 128 :]) + b"\x80"
    tail += bytes((112 - len(tail)) % 128) + pack(">QQ", 0, n * 8)
    for src, count in ((data, n - n % 128), (tail, len(tail))):
        for off in range(0, count, 128):
            _block(h, list(unpack(">16Q", src[off : off + 128])))
    return pack(">8Q", *h)


def verify(public, msg, sig, tick=None):
    # True when sig (64 bytes) is public's (32 bytes) Ed25519 signature of
    # msg.  tick, if given, is called now and then (a watchdog feed).
    if len(public) != 32 or len(sig) != 64:
        return False
    a = _decode(public)
    if a is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(sha512(bytes(sig[:32]) + bytes(public) + bytes(msg)), "little") % _L
    # [s]B - [k]A, both scalars at once (Straus): one doubling per bit.
    na = ((_P - a[0]) % _P, a[1], 1, (_P - a[3]) % _P)
    b = (_BX, _BY, 1, _BX * _BY % _P)
    table = (None, b, na, _add(b, na))
    q = (0, 1, 1, 0)
    for i in range(252, -1, -1):  # s, k < L < 2^253
        q = _double(q)
        j = ((s >> i) & 1) | (((k >> i) & 1) << 1)
        if j:
            q = _add(q, table[j])
        if tick is not None and not i & 31:
            tick()
    return _encode(q) == bytes(sig[:32])
