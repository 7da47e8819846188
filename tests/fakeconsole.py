"""A scripted console on a pseudo-terminal: says what a test wants it to say.

For what the real firmware will not do on request: speak another protocol
version, claim an identity nobody configured, or babble garbage.
"""

from __future__ import annotations

import binascii
import os
import pty
import struct
import threading
import tty
from typing import Any

from deskline.wire import Message, StreamDecoder, codec, decode, encode


def reframe(frame: bytes, version: int) -> bytes:
    """The same frame re-encoded under another protocol version."""
    body = bytearray(StreamDecoder().feed(frame)[0])
    body[0] = version
    sealed = bytes(body) + struct.pack("<I", binascii.crc32(body) & 0xFFFFFFFF)
    out = bytearray(len(sealed) + len(sealed) // 254 + 3)
    return bytes(out[: codec.cobs_encode(sealed, len(sealed), out)])


def hello_frame(device: str, proto: int = 1, **over: Any) -> bytes:
    fields: dict[str, Any] = {
        "proto": proto,
        "flags": 0,
        "boot_count": 1,
        "uptime_ms": 100,
        "next_seq": 1,
        "first_unacked": 1,
        "journal_depth": 0,
        "config_version": 0,
        "reset_cause": 1,
        "reboot_reason": 1,
        "app_slot": 0,
        "device_id": device,
        "board": "fake",
        "fw_version": "fake",
        "app_version": "fake",
    }
    fields.update(over)
    return encode(codec.HELLO, **fields)


class FakeConsole:
    """Answers HELLO_REQ with a hello (of any version) and records host frames."""

    def __init__(self, device: str, version: int = codec.VERSION) -> None:
        self.device = device
        self.version = version
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.received: list[Message] = []
        self.next_seq = 1
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, frame: bytes) -> None:
        data = frame if self.version == codec.VERSION else reframe(frame, self.version)
        os.write(self.master, data)

    def event(self, kind: int = codec.EV_PRESS, a: int = 1) -> int:
        seq = self.next_seq
        self.next_seq += 1
        self.send(
            encode(
                codec.EVENT,
                seq=seq,
                uptime_ms=seq,
                epoch=0,
                kind=kind,
                a=a,
                b=60,
                c=0,
                ref=0,
                text="",
            )
        )
        return seq

    def acked(self) -> int:
        with self._lock:
            acks = [m["seq"] for m in self.received if m.name == "ack"]
        return max(acks, default=0)

    def names(self) -> list[str]:
        with self._lock:
            return [m.name for m in self.received]

    def _run(self) -> None:
        dec = StreamDecoder()
        while not self._stop:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for body in dec.feed(data):
                msg = decode(body)
                with self._lock:
                    self.received.append(msg)
                if msg.name == "hello_req":
                    self.send(
                        hello_frame(
                            self.device,
                            proto=self.version,
                            next_seq=self.next_seq,
                            first_unacked=self.acked() + 1,
                        )
                    )

    def close(self) -> None:
        self._stop = True
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
