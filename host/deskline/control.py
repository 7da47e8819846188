"""The daemon's control socket: one JSON object per line, each way.

A UNIX socket beside the database, so only users who may read the floor's
data may steer it (file permissions do the access control), and so CLI
commands (`deskline devices`, `status`, `console reboot`, the flasher's port
hand-over) reach the process that owns the serial ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from deskline.errors import DesklineError

log = logging.getLogger("deskline.control")
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_LINE = 1 << 20


async def serve(path: Path, handler: Handler) -> asyncio.AbstractServer:
    """Listens on path (replacing a stale socket of a dead daemon)."""
    if path.exists() or path.is_symlink():
        if listening(path):
            raise DesklineError(f"another daemon already listens on {path}")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("request must be a JSON object")
                    reply = await handler(req)
                except (ValueError, KeyError, TypeError) as e:
                    reply = {"ok": False, "error": f"bad request: {e}"}
                except DesklineError as e:
                    reply = {"ok": False, "error": str(e)}
                except Exception as e:  # a control bug must not take the floor down
                    log.exception("control request failed")
                    reply = {"ok": False, "error": f"internal error: {e}"}
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_unix_server(client, path=str(path), limit=MAX_LINE)
    os.chmod(path, 0o660)
    return server


def listening(path: Path) -> bool:
    """A daemon answers on this control socket (not a stale file of a dead one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def request(path: Path, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request to the daemon; DesklineError when it is not running."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise DesklineError(
                f"the daemon is not running (no control socket at {path}); "
                "start it with `deskline daemon` or pass --control"
            ) from e
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except TimeoutError as e:
                raise DesklineError(f"the daemon did not answer within {timeout} s") from e
            if not chunk:
                raise DesklineError("the daemon closed the connection")
            buf += chunk
    reply = json.loads(buf)
    if not isinstance(reply, dict):
        raise DesklineError("the daemon sent a malformed reply")
    return reply
