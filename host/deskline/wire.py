"""Typed host view of the shared wire codec (firmware/wire.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deskline.firmware import wire as _w

codec: Any = _w  # the shared module itself: constants, Encoder, Decoder
WireError = _w.WireError
_BINARY = {"sha256", "data"}


@dataclass(frozen=True)
class Message:
    """One decoded frame: its type code, schema name and named fields."""

    mtype: int
    name: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def decode(body: bytes) -> Message:
    """A checked frame body into a Message; WireError if it fits no schema."""
    _, mtype, values = _w.parse(body)
    name, _, names = _w.SCHEMAS[mtype]
    fields: dict[str, Any] = {}
    for key, value in zip(names.split(), values, strict=True):
        if isinstance(value, bytes) and key not in _BINARY:
            value = value.decode("utf-8", "replace")
        fields[key] = value
    return Message(mtype, name, fields)


def encode(mtype: int, **fields: Any) -> bytes:
    """A complete frame of mtype from named fields (missing ones are errors)."""
    names = _w.SCHEMAS[mtype][2].split()
    missing = [n for n in names if n not in fields]
    if missing:
        raise WireError(f"{_w.SCHEMAS[mtype][0]}: missing {', '.join(missing)}")
    extra = set(fields) - set(names)
    if extra:
        raise WireError(f"{_w.SCHEMAS[mtype][0]}: unknown {', '.join(sorted(extra))}")
    return bytes(_w.encode(mtype, tuple(fields[n] for n in names)))


def type_code(name: str) -> int:
    for code, schema in _w.SCHEMAS.items():
        if schema[0] == name:
            return int(code)
    raise KeyError(name)
