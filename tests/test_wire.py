"""The wire codec under CPython: shared vectors, round trips, hostile input."""

from __future__ import annotations

import json
from binascii import crc32
from typing import Any

from conftest import REPO
from deskline.wire import NAMES, Message, StreamDecoder, codec, decode, encode, frame
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = json.loads((REPO / "tests" / "vectors" / "wire.json").read_text())


def _value(v: Any) -> Any:
    return bytes.fromhex(v["hex"]) if isinstance(v, dict) else v


def test_vectors_encode_to_the_pinned_frames() -> None:
    assert VECTORS["version"] == codec.VERSION
    for case in VECTORS["frames"]:
        got = frame(case["type"], tuple(_value(v) for v in case["values"]))
        assert got.hex() == case["frame"], case["name"]


def test_vectors_decode_back_to_their_values() -> None:
    for case in VECTORS["frames"]:
        bodies = StreamDecoder().feed(bytes.fromhex(case["frame"]))
        assert len(bodies) == 1, case["name"]
        _, mtype, values = codec.parse(bodies[0])
        want = tuple(_value(v) for v in case["values"])
        want = tuple(v.encode() if isinstance(v, str) else v for v in want)
        assert (mtype, values) == (case["type"], want), case["name"]


def test_cobs_matches_the_published_examples() -> None:
    for case in VECTORS["cobs"]:
        raw = bytes.fromhex(case["raw"])
        dst = bytearray(len(raw) + len(raw) // 254 + 3)
        n = codec.cobs_encode(raw, len(raw), dst)
        assert dst[1 : n - 1].hex() == case["cobs"]
        buf = bytearray.fromhex(case["cobs"])
        m = codec.cobs_decode(buf, len(buf))
        assert bytes(buf[:m]) == raw


def test_crc_is_crc32_ieee() -> None:
    check = VECTORS["crc32_check"]
    assert "%08x" % crc32(bytes.fromhex(check["data"])) == check["crc"]


def test_named_encode_and_decode() -> None:
    frame = encode(codec.CALL, cmd_id=1, op=codec.CALL_START, call_id="17.1", queue="q")
    (body,) = StreamDecoder().feed(frame)
    msg = decode(body)
    assert msg == Message(
        codec.CALL, "call", {"cmd_id": 1, "op": 1, "call_id": "17.1", "queue": "q"}
    )


@settings(max_examples=300)
@given(st.binary(max_size=1200))
def test_cobs_round_trip(raw: bytes) -> None:
    dst = bytearray(len(raw) + len(raw) // 254 + 3)
    n = codec.cobs_encode(raw, len(raw), dst)
    assert 0 not in dst[1 : n - 1]
    assert n <= len(raw) + len(raw) // 254 + 3
    buf = bytearray(dst[1 : n - 1])
    m = codec.cobs_decode(buf, len(buf))
    assert bytes(buf[:m]) == raw


_U8 = st.integers(0, 0xFF)
_I8 = st.integers(-128, 127)
_U16 = st.integers(0, 0xFFFF)
_I16 = st.integers(-0x8000, 0x7FFF)
_U32 = st.integers(0, 0xFFFFFFFF)
_I32 = st.integers(-0x80000000, 0x7FFFFFFF)
_FIELD = {
    "B": _U8,
    "b": _I8,
    "H": _U16,
    "h": _I16,
    "I": _U32,
    "i": _I32,
    "s": st.binary(max_size=255),
    "r": st.binary(max_size=600),
}


@st.composite
def messages(draw: st.DrawFn) -> tuple[int, tuple[Any, ...]]:
    mtype = draw(st.sampled_from(sorted(codec.SCHEMAS)))
    fmt = codec.SCHEMAS[mtype]
    return mtype, tuple(draw(_FIELD[ch]) for ch in fmt)


@settings(max_examples=400)
@given(messages())
def test_every_message_round_trips(msg: tuple[int, tuple[Any, ...]]) -> None:
    mtype, values = msg
    framed = frame(mtype, values)
    assert framed[0] == 0 and framed[-1] == 0 and 0 not in framed[1:-1]
    (body,) = StreamDecoder().feed(framed)
    assert codec.parse(body) == (codec.VERSION, mtype, values)


@settings(max_examples=300)
@given(messages(), st.binary(max_size=300), st.data())
def test_garbage_and_damage_never_raise_and_resync(
    msg: tuple[int, tuple[Any, ...]], junk: bytes, data: st.DataObject
) -> None:
    mtype, values = msg
    framed = frame(mtype, values)
    cut = data.draw(st.integers(0, len(framed)))
    flip = data.draw(st.integers(0, len(framed) - 1))
    damaged = bytearray(framed)
    damaged[flip] ^= data.draw(st.integers(1, 255))
    dec = StreamDecoder()
    stream = junk + framed[:cut] + bytes(damaged) + framed
    bodies = [b for chunk in _chunks(stream, data) for b in dec.feed(chunk)]
    # Whatever came before, the last intact frame is always recovered.
    assert bodies and codec.parse(bodies[-1]) == (codec.VERSION, mtype, values)
    for body in bodies:
        try:
            decode(body)
        except codec.WireError:
            pass


def _chunks(stream: bytes, data: st.DataObject) -> list[bytes]:
    out = []
    i = 0
    while i < len(stream):
        n = data.draw(st.integers(1, 64))
        out.append(stream[i : i + n])
        i += n
    return out


def test_oversize_frames_are_counted_not_kept() -> None:
    dec = StreamDecoder(size=64)
    good = frame(codec.ACK, (3,))
    bodies = dec.feed(b"\x01" * 500 + b"\x00" + good)
    assert dec.oversize == 1
    assert [codec.parse(b)[1] for b in bodies] == [codec.ACK]


def test_push_and_feed_agree() -> None:
    frames = b"".join(frame(codec.ACK, (i,)) for i in range(1, 50))
    a = StreamDecoder()
    pushed = []
    for byte in frames:
        n = a.push(byte)
        if n:
            pushed.append(bytes(a.buf[:n]))
    assert pushed == StreamDecoder().feed(frames)


def test_every_schema_has_one_name_per_field() -> None:
    assert sorted(NAMES) == sorted(codec.SCHEMAS)
    for mtype, fmt in codec.SCHEMAS.items():
        assert len(NAMES[mtype][1]) == len(fmt), NAMES[mtype][0]
