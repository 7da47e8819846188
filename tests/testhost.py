"""A minimal host for end-to-end tests: keeps a console online, collects its
frames, acknowledges events (or not) and deduplicates them by sequence."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from deskline.serial_link import ConsoleLink
from deskline.wire import Message, codec


class TestHost:
    __test__ = False  # not a pytest class

    def __init__(self, port: str, auto_ack: bool = True) -> None:
        self.link = ConsoleLink(port)
        self.auto_ack = auto_ack
        self.events: dict[int, Message] = {}
        self.duplicates = 0
        self.frames: list[Message] = []
        self.acked = 0
        self.keepalive = True
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self.link.send(codec.HELLO_REQ)

    def _run(self) -> None:
        next_keepalive = 0.0
        while not self._stop:
            now = time.monotonic()
            if self.keepalive and now >= next_keepalive:
                t = time.time()
                try:
                    self.link.send(codec.KEEPALIVE, epoch=int(t), ms=int(t * 1000) % 1000)
                except OSError:
                    pass
                next_keepalive = now + 1.0
            msg = self.link.recv(0.05)
            if msg is None:
                continue
            with self._cond:
                self.frames.append(msg)
                if msg.name == "event":
                    seq = msg["seq"]
                    if seq in self.events:
                        self.duplicates += 1
                    else:
                        self.events[seq] = msg
                    # Cumulative: acknowledge only a gap-free prefix.
                    while self.acked + 1 in self.events:
                        self.acked += 1
                elif msg.name == "hello":
                    self.acked = max(self.acked, msg["first_unacked"] - 1)
                self._cond.notify_all()
            if self.auto_ack and msg.name == "event":
                try:
                    self.link.send(codec.ACK, seq=self.acked)
                except OSError:
                    pass

    def wait(self, pred: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def last(self, name: str, pred: Callable[[Message], bool] | None = None) -> Message | None:
        with self._cond:
            for msg in reversed(self.frames):
                if msg.name == name and (pred is None or pred(msg)):
                    return msg
        return None

    def wait_frame(
        self,
        name: str,
        pred: Callable[[Message], bool] | None = None,
        timeout: float = 10.0,
        after: int = 0,
    ) -> Message:
        found: list[Message] = []

        def seen() -> bool:
            for msg in self.frames[after:]:
                if msg.name == name and (pred is None or pred(msg)):
                    found.append(msg)
                    return True
            return False

        if not self.wait(seen, timeout):
            raise AssertionError(f"no {name} frame within {timeout} s")
        return found[0]

    def kinds(self) -> list[int]:
        with self._cond:
            return [self.events[s]["kind"] for s in sorted(self.events)]

    def events_of(self, kind: int) -> list[Message]:
        with self._cond:
            return [self.events[s] for s in sorted(self.events) if self.events[s]["kind"] == kind]

    def push_config(
        self, cfg: dict[str, Any] | bytes, xfer_id: int = 1, chunk: int = 200
    ) -> Message:
        """Sends a config by XFER and returns the console's RESULT for the end."""
        raw = cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode()
        cmd = self.link.next_cmd()
        mark = len(self.frames)
        self.link.send(
            codec.XFER_BEGIN,
            cmd_id=cmd,
            xfer_id=xfer_id,
            kind=codec.XFER_CONFIG,
            size=len(raw),
            sha256=hashlib.sha256(raw).digest(),
            name="config.json",
        )
        begin = self.wait_frame("result", lambda m: m["cmd_id"] == cmd, after=mark)
        if begin["status"] != codec.OK:
            return begin
        for off in range(0, len(raw), chunk):
            mark = len(self.frames)
            end = min(off + chunk, len(raw))
            self.link.send(codec.XFER_DATA, xfer_id=xfer_id, offset=off, data=raw[off:end])
            self.wait_frame("xfer_ack", lambda m, end=end: m["offset"] >= end, after=mark)
        cmd = self.link.next_cmd()
        mark = len(self.frames)
        self.link.send(codec.XFER_END, cmd_id=cmd, xfer_id=xfer_id)
        return self.wait_frame("result", lambda m: m["cmd_id"] == cmd, after=mark)

    def command(self, mtype: int, **fields: Any) -> Message:
        cmd = self.link.next_cmd()
        mark = len(self.frames)
        self.link.send(mtype, cmd_id=cmd, **fields)
        return self.wait_frame("result", lambda m: m["cmd_id"] == cmd, after=mark)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.link.close()
