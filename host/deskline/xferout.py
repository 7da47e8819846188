"""One file streamed to a console by XFER (app files, firmware images).

Sans-IO like `Session`, which owns it: frames go out through the `send`
callable, answers come in through `on_result` / `on_ack`, time through
`tick`.  A window of chunks stays in flight so the line stays busy, small
enough that an ACK queued behind it still reaches the console promptly:
presses keep flowing while a bundle goes over.  The first window follows
XFER_BEGIN without waiting for its answer (the console takes frames in
order, so a refused or `present` file just drops them): a file costs one
round trip, not two.  The console acks the contiguous offset it holds; a
lost or damaged chunk shows as an ack that does not move, and the window
goes back to it (go-back-N), at once on the second such ack and after
`STALL_S` otherwise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deskline.wire import codec

CHUNK = 512
WINDOW = 4  # chunks in flight: ~180 ms of a 115200-baud line
STALL_S = 0.5  # no progress for this long: resend from the acked offset
ANSWER_S = 2.0  # BEGIN: the console answers at once
CHECK_S = 10.0  # END: it may check a signature or read an image back (seconds on an ESP32)
RETRIES = 5

Send = Callable[..., None]


@dataclass
class FileSend:
    """A file on its way; `status` is set once it is done (-1: no answer)."""

    kind: int
    name: str
    data: bytes
    xfer_id: int
    begin_cmd: int
    end_cmd: int
    on_done: Callable[[FileSend], None] | None = None
    on_progress: Callable[[int, int], None] | None = None
    stage: str = "queued"  # queued -> begin -> data -> end -> done
    acked: int = 0
    sent: int = 0
    present: bool = False  # the console already held this exact file
    status: int | None = None
    text: str = ""
    tries: int = 0
    resends: int = 0
    deadline: float = 0.0
    last_progress: float = 0.0
    _dup_acks: int = 0
    sha256: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.data).digest()

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def size(self) -> int:
        return len(self.data)

    def start(self, now: float, send: Send) -> None:
        self.stage = "begin"
        self._begin(now, send)

    # --- answers ----------------------------------------------------------------------
    def on_result(self, f: dict[str, Any], now: float, send: Send) -> bool:
        """A RESULT; True when it was this transfer's."""
        cmd, status, text = f["cmd_id"], f["status"], f["text"]
        if self.stage == "begin" and cmd == self.begin_cmd:
            if status != codec.OK:
                self.finish(status, text or f"{self.name} refused")
                return True
            self.tries = 0
            if text == "present":
                self.present = True
                self.acked = self.sent = self.size
                self._progress()
                self._end(now, send)
            else:
                self.stage = "data"
                self.last_progress = now
                if self.acked >= self.size:
                    self._end(now, send)
                else:
                    self._fill(now, send)
            return True
        if self.stage == "end" and cmd == self.end_cmd:
            again = status == codec.E_STATE and self.tries
            short = status == codec.E_BAD_REQUEST and text.startswith("got ")
            if again or short:
                # An END sent again after its answer was lost (the console
                # had ended the transfer), or one that overtook a lost chunk:
                # the file goes again (whole on the console: "present").
                self.resends += 1
                self.finish(-1, f"{self.name}: {text or 'ended twice'}, to send again")
                return True
            self.finish(status, text)
            return True
        return cmd in (self.begin_cmd, self.end_cmd)

    def on_ack(self, f: dict[str, Any], now: float, send: Send) -> None:
        if self.stage == "begin":
            # The first window, ahead of BEGIN's answer: note progress only
            # (a refusal or a lost BEGIN is BEGIN's business).
            if f["status"] == codec.OK and self.acked < f["offset"] <= self.sent:
                self.acked = f["offset"]
                self._progress()
            return
        if self.stage != "data":
            return
        if f["status"] != codec.OK:
            why = "console out of flash" if f["status"] == codec.E_NO_SPACE else "refused"
            self.finish(f["status"], f"{self.name}: {why} at byte {f['offset']}")
            return
        offset = min(f["offset"], self.size)
        if offset > self.acked:
            self.acked = offset
            self.sent = max(self.sent, offset)
            self.last_progress = now
            self.tries = 0
            self._dup_acks = 0
            self._progress()
        elif self.sent > self.acked:
            # The console holds no more than before: a chunk went missing.
            self._dup_acks += 1
            if self._dup_acks == 2:
                self._rewind(now)
        if self.acked >= self.size:
            self._end(now, send)
        else:
            self._fill(now, send)

    def tick(self, now: float, send: Send) -> None:
        if self.done or self.stage == "queued":
            return
        if self.stage == "data":
            if now - self.last_progress >= STALL_S:
                self.tries += 1
                if self.tries > RETRIES:
                    self.finish(-1, f"{self.name}: no progress from the console")
                    return
                self._rewind(now)
                self._fill(now, send)
            return
        if now >= self.deadline:
            self.tries += 1
            if self.tries > RETRIES:
                self.finish(-1, f"{self.name}: no answer from the console")
            elif self.stage == "begin":
                self._begin(now, send)
            else:
                self._end(now, send)

    def finish(self, status: int, text: str) -> None:
        if self.done:
            return
        self.stage = "done"
        self.status = status
        self.text = text
        if self.on_done is not None:
            self.on_done(self)

    # --- frames -------------------------------------------------------------------------
    def _begin(self, now: float, send: Send) -> None:
        # (Again, after a lost answer: the console starts the file afresh.)
        self.deadline = now + ANSWER_S
        self.acked = self.sent = 0
        send(
            codec.XFER_BEGIN,
            cmd_id=self.begin_cmd,
            xfer_id=self.xfer_id,
            kind=self.kind,
            size=self.size,
            sha256=self.sha256,
            name=self.name,
        )
        self._fill(now, send)

    def _end(self, now: float, send: Send) -> None:
        self.stage = "end"
        self.deadline = now + CHECK_S
        send(codec.XFER_END, cmd_id=self.end_cmd, xfer_id=self.xfer_id)

    def _fill(self, now: float, send: Send) -> None:
        while self.sent < self.size and self.sent - self.acked < WINDOW * CHUNK:
            end = min(self.sent + CHUNK, self.size)
            send(
                codec.XFER_DATA,
                xfer_id=self.xfer_id,
                offset=self.sent,
                data=self.data[self.sent : end],
            )
            self.sent = end
            if end == self.size and self.stage == "data":
                # END right behind the last chunk, not after its ack: the
                # console takes frames in order.
                self._end(now, send)

    def _rewind(self, now: float) -> None:
        if self.sent > self.acked:
            self.resends += 1
        self.sent = self.acked
        self.last_progress = now
        self._dup_acks = -WINDOW  # the rest of the old window's acks are expected

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.acked, self.size)
