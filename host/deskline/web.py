"""The daemon's HTTP side: a Starlette app served by uvicorn inside the daemon's loop.

`create_app` builds the app from route lists (the client's escalation
callbacks now; the supervisors' dashboard later), with JSON errors
throughout: a client's system reads `{"ok": false, "code": ..., "error":
...}`, never an HTML page.  `WebServer` runs it on the daemon's own event
loop, so a handler reaches the store writer and the consoles directly; it
binds its socket before it reports started (port 0 picks a free one) and
leaves the process's signals to the daemon.

The callback endpoint (`escalation_routes`), PagerDuty-like:

    POST /api/v1/callbacks
    Deskline-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">
    {"ext_id": "DL-desk-03-1-57", "action": "acknowledge",
     "ticket": "INC0042", "note": "calling the customer back", "by": "j.smith"}

signed with the account's webhook secret within `webhook.TOLERANCE_S` of
the daemon's clock.  The body names the escalation and the action, so a
signature covers both; an exact replay inside the window is refused, and
answering twice is harmless (`changed: false`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from deskline import webhook
from deskline.errors import DesklineError
from deskline.escalations import ACTIONS, CALLBACK_PATH, EscalationError, EscalationService

log = logging.getLogger("deskline.web")
MAX_BODY = 64 * 1024


def error(http: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "code": code, "error": message}, status_code=http)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(exc.status_code, code, str(exc.detail))


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("web: %s %s failed: %r", request.method, request.url.path, exc)
    return error(500, "internal_error", "internal error: see the daemon's log")


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True, "service": "deskline"})


def create_app(routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The daemon's app: a health check and the routes given, JSON errors."""
    return Starlette(
        routes=[Route("/api/v1/health", _health, methods=["GET"]), *routes],
        exception_handlers={HTTPException: _http_error, Exception: _internal},
    )


class _Replays:
    """Signatures already applied inside the tolerance window: a replay is refused."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}

    def seen(self, signature: str) -> bool:
        return self._seen.get(signature, 0.0) > time.time()

    def add(self, signature: str) -> None:
        now = time.time()
        if len(self._seen) > 1000:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
        self._seen[signature] = now + 2 * self.window_s


def escalation_routes(
    service: EscalationService, tolerance_s: float = webhook.TOLERANCE_S
) -> list[BaseRoute]:
    """The client's signed acknowledge/resolve callbacks."""
    replays = _Replays(tolerance_s)

    async def callback(request: Request) -> Response:
        size = request.headers.get("content-length", "0")
        if not size.isdigit() or int(size) > MAX_BODY:
            return error(413, "too_large", f"a callback body is at most {MAX_BODY} bytes")
        body = await request.body()
        header = request.headers.get(webhook.SIGNATURE_HEADER)
        try:
            fields = _fields(body)
            ext_id, action = fields["ext_id"], fields["action"]
            secret = await service.secret_for(ext_id)
            webhook.verify(secret, header, body, tolerance_s=tolerance_s)
            if replays.seen(str(header)):
                raise EscalationError(
                    "replayed", 409, "this exact signed request was already applied"
                )
            who = fields.get("by", "").strip()[:80]
            result = await service.answer(
                ext_id,
                action,
                via=f"the client ({who})" if who else "the client",
                ticket=fields.get("ticket", ""),
                note=fields.get("note", ""),
            )
        except EscalationError as e:
            return error(e.http, e.code, str(e))
        except webhook.SignatureError as e:
            return error(401, e.code, str(e))
        replays.add(str(header))
        return JSONResponse({"ok": True, **result})

    return [Route(CALLBACK_PATH, callback, methods=["POST"])]


def _fields(body: bytes) -> dict[str, str]:
    """The callback's JSON: ext_id and action required, ticket, note and by optional."""
    try:
        fields = json.loads(body)
    except ValueError as e:
        raise EscalationError("bad_json", 400, f"the body is not JSON: {e}") from e
    if not isinstance(fields, dict):
        raise EscalationError("bad_json", 400, "the body must be a JSON object")
    for key in ("ext_id", "action", "ticket", "note", "by"):
        if key in fields and not isinstance(fields[key], str):
            raise EscalationError("bad_json", 400, f'"{key}" must be a string')
    if not fields.get("ext_id"):
        raise EscalationError("bad_json", 400, '"ext_id" is missing: which escalation?')
    if fields.get("action") not in ACTIONS:
        raise EscalationError("bad_action", 400, f'"action" must be one of {", ".join(ACTIONS)}')
    return {k: v for k, v in fields.items() if isinstance(v, str)}


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        # SIGINT/SIGTERM belong to the daemon, which stops this server in order.
        yield


class WebServer:
    """uvicorn serving an app on the running loop; start() then stop()."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Binds (DesklineError naming the address if it cannot) and serves."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family = infos[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as e:
            raise DesklineError(f"cannot serve HTTP on {self.host}:{self.port}: {e}") from e
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(128)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise DesklineError(
                f"cannot serve HTTP on {self.host}:{self.port}: {e.strerror or e} "
                "(another program on that port? pick another with --http HOST:PORT)"
            ) from e
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        deadline = time.monotonic() + 5
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise DesklineError(f"the HTTP server on {self.url} stopped at start")
            if time.monotonic() > deadline:
                raise DesklineError(f"the HTTP server on {self.url} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = None
        self._task = None


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT (or :PORT, PORT, [v6]:PORT) for --http; localhost when no host."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "", text.strip()
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise DesklineError(f"--http {text!r}: give HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any)")
    return host, int(port)
