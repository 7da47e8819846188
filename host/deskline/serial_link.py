"""A blocking link to one console over a serial port, for tools and tests.

The daemon has its own asyncio sessions; this is the plain, threaded view a
technician's command (`deskline monitor`) or a test needs.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable

import serial

from deskline.errors import DesklineError
from deskline.wire import Message, StreamDecoder, WireError, codec, decode, encode


def open_port(port: str, baud: int = 115200) -> serial.Serial:
    """Opens a console's port exclusively, with a hint when that fails."""
    try:
        ser = serial.Serial()
        ser.port = port
        ser.baudrate = baud
        ser.timeout = 0.05
        ser.exclusive = True
        # Keep DTR/RTS released so opening the port does not reset an ESP32.
        ser.dtr = False
        ser.rts = False
        ser.open()
        return ser
    except serial.SerialException as e:
        text = str(e)
        if "busy" in text.lower() or "lock" in text.lower():
            raise DesklineError(
                f"port busy: {port} is held by another program (the daemon?): "
                "stop it or ask it to hand the port over"
            ) from e
        if "ermission" in text:
            raise DesklineError(
                f"permission denied on {port}: add yourself to the dialout group "
                "or install hardware/99-deskline.rules"
            ) from e
        raise DesklineError(f"cannot open {port}: {text}") from e


class ConsoleLink:
    """Frames from a console arrive on a queue; commands go out by name."""

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.ser = open_port(port, baud)
        self.decoder = StreamDecoder()
        self.messages: queue.Queue[Message] = queue.Queue()
        self.bad_frames = 0
        self._stop = False
        self._cmd = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"link:{port}")
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self.ser.read(4096)
            except (serial.SerialException, OSError, TypeError):
                if self._stop:
                    return
                time.sleep(0.05)
                continue
            for body in self.decoder.feed(data):
                try:
                    self.messages.put(decode(body))
                except WireError:
                    self.bad_frames += 1

    def send(self, mtype: int, **fields: object) -> None:
        frame = encode(mtype, **fields)
        with self._lock:
            self.ser.write(frame)

    def next_cmd(self) -> int:
        self._cmd = (self._cmd + 1) & 0xFFFF
        return self._cmd

    def recv(self, timeout: float = 1.0) -> Message | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect(
        self,
        name: str,
        timeout: float = 5.0,
        pred: Callable[[Message], bool] | None = None,
        keep: list[Message] | None = None,
    ) -> Message:
        """The next message called name (matching pred); others go to keep."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} within {timeout} s")
            msg = self.recv(left)
            if msg is None:
                continue
            if msg.name == name and (pred is None or pred(msg)):
                return msg
            if keep is not None:
                keep.append(msg)

    def command(self, mtype: int, timeout: float = 5.0, **fields: object) -> Message:
        """Sends a command with a fresh cmd_id and returns the console's RESULT."""
        cmd = self.next_cmd()
        self.send(mtype, cmd_id=cmd, **fields)
        return self.expect("result", timeout, lambda m: m["cmd_id"] == cmd)

    def push_config(self, raw: bytes, xfer_id: int = 1, chunk: int = 512) -> Message:
        """Sends an account config (JSON bytes); returns the console's RESULT."""
        begin = self.command(
            codec.XFER_BEGIN,
            xfer_id=xfer_id,
            kind=codec.XFER_CONFIG,
            size=len(raw),
            sha256=hashlib.sha256(raw).digest(),
            name="config.json",
        )
        if begin["status"] != codec.OK:
            return begin
        off = 0
        while off < len(raw):
            end = min(off + chunk, len(raw))
            self.send(codec.XFER_DATA, xfer_id=xfer_id, offset=off, data=raw[off:end])
            ack = self.expect("xfer_ack", 5.0, lambda m: m["xfer_id"] == xfer_id)
            if ack["status"] != codec.OK:
                raise DesklineError(f"config transfer refused at byte {off}")
            off = ack["offset"]  # the console's contiguous offset: resend from there
        return self.command(codec.XFER_END, xfer_id=xfer_id)

    def close(self) -> None:
        self._stop = True
        try:
            self.ser.close()
        except (serial.SerialException, OSError):
            pass
        self._thread.join(timeout=1)

    def __enter__(self) -> ConsoleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
