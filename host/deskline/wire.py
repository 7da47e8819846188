"""Typed host view of the shared wire codec (firmware/wire.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deskline.firmware import wire as _w

codec: Any = _w  # the shared module itself: constants, Encoder, Decoder
WireError = _w.WireError
_BINARY = {"sha256", "data"}
# Field names per message type, in the order of the shared codec's SCHEMAS
# (a test holds the two in step).  The console never needs the names.
_FIELDS: dict[int, tuple[str, str]] = {
    _w.HELLO: (
        "hello",
        (
            "proto flags boot_count uptime_ms next_seq first_unacked journal_depth "
            "config_version reset_cause reboot_reason app_slot device_id board "
            "fw_version app_version"
        ),
    ),
    _w.EVENT: ("event", "seq uptime_ms epoch kind a b c ref text"),
    _w.HEARTBEAT: (
        "heartbeat",
        (
            "uptime_ms free_heap min_free_heap reset_cause reboot_reason rx_frames "
            "rx_errors rx_dropped tx_frames retransmits journal_depth "
            "dropped_telemetry refused_events torn_records boot_count"
        ),
    ),
    _w.STATUS: (
        "status",
        (
            "state top led_floor led_personal led_escalation acw_left typed esc_id "
            "esc_status esc_left line0 line1 line2 line3"
        ),
    ),
    _w.RESULT: ("result", "cmd_id status text"),
    _w.LOG: ("log", "level text"),
    _w.XFER_ACK: ("xfer_ack", "xfer_id offset status"),
    _w.ACK: ("ack", "seq"),
    _w.KEEPALIVE: ("keepalive", "epoch ms"),
    _w.FLOOR: ("floor", "band sl_permille target_pct waiting longest_wait"),
    _w.CALL: ("call", "cmd_id op call_id queue"),
    _w.ESC_STATUS: ("esc_status", "cmd_id esc_id kind status deadline_s ticket hotline"),
    _w.REBOOT: ("reboot", "cmd_id mode"),
    _w.REPL: ("repl", "cmd_id"),
    _w.HELLO_REQ: ("hello_req", ""),
    _w.XFER_BEGIN: ("xfer_begin", "cmd_id xfer_id kind size sha256 name"),
    _w.XFER_DATA: ("xfer_data", "xfer_id offset data"),
    _w.XFER_END: ("xfer_end", "cmd_id xfer_id"),
}
NAMES: dict[int, tuple[str, list[str]]] = {
    code: (name, fields.split()) for code, (name, fields) in _FIELDS.items()
}


def frame(mtype: int, values: tuple[Any, ...]) -> bytes:
    """A complete frame (with delimiters) of mtype for positional values."""
    return bytes(_w.Encoder().encode(mtype, values))


class StreamDecoder(_w.Decoder):  # type: ignore[misc]
    """The shared byte-wise decoder, fed a chunk at a time on the host."""

    def feed(self, data: bytes) -> list[bytes]:
        """Feeds a chunk; returns the good bodies it completed."""
        out: list[bytes] = []
        buf = self.buf
        start = 0
        size = len(buf)
        while start < len(data):
            z = data.find(b"\x00", start)
            stop = len(data) if z < 0 else z
            take = min(stop - start, size - self.n)
            if take < stop - start:
                self.overrun = True
            buf[self.n : self.n + take] = data[start : start + take]
            self.n += take
            if z < 0:
                break
            m = self.push(0)
            if m:
                out.append(bytes(buf[:m]))
            start = z + 1
        return out


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
    name, names = NAMES[mtype]
    fields: dict[str, Any] = {}
    for key, value in zip(names, values, strict=True):
        text = isinstance(value, bytes) and key not in _BINARY
        fields[key] = value.decode("utf-8", "replace") if text else value
    return Message(mtype, name, fields)


def encode(mtype: int, **fields: Any) -> bytes:
    """A complete frame of mtype from named fields (missing ones are errors)."""
    label, names = NAMES[mtype]
    missing = [n for n in names if n not in fields]
    if missing:
        raise WireError(f"{label}: missing {', '.join(missing)}")
    extra = set(fields) - set(names)
    if extra:
        raise WireError(f"{label}: unknown {', '.join(sorted(extra))}")
    return frame(mtype, tuple(fields[n] for n in names))


def type_code(name: str) -> int:
    for code, (label, _) in NAMES.items():
        if label == name:
            return code
    raise KeyError(name)
