"""The supervisors' REST/JSON API, the live stream and `/metrics` (docs/dashboard.md).

Reads come from the live floor snapshot (`livefeed.py`), so the API, the
stream, the dashboard and Prometheus agree; reports are read from the store
on a read-only connection in a thread, never on the writer.  Every action
(`POST`) names a supervisor (`webauth.py`) and is logged with who did it,
and refreshes the section it changed so the dashboard shows it at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from deskline import metrics, report
from deskline.errors import DesklineError
from deskline.escalations import EscalationError
from deskline.livefeed import LiveFeed
from deskline.openapi import document
from deskline.report_export import demand_json, report_json
from deskline.web import MAX_BODY, error
from deskline.webauth import AuthError, WebAuth

if TYPE_CHECKING:
    from deskline.daemon import Daemon

log = logging.getLogger("deskline.web")
_NOBODY = {"console": "-", "port": "-"}
KEEPALIVE_S = 15.0

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(DesklineError):
    def __init__(self, http: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http = http
        self.code = code


def _guarded(fn: Handler) -> Handler:
    """Maps the errors a handler may raise to the API's JSON errors."""

    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except AuthError as e:  # with its Retry-After or WWW-Authenticate
            return e.response()
        except (ApiError, EscalationError) as e:
            return error(e.http, e.code, str(e))
        except DesklineError as e:
            return error(422, "refused", str(e))

    return handler


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ApiError(422, "bad_query", f"{name}={value!r}: give true or false")
    return value in ("true", "1", "yes")


async def _body(request: Request) -> dict[str, str]:
    """An action's optional JSON body: short strings only (a note, a ticket)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"a body is at most {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        fields = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, "bad_json", f"the body is not JSON: {e}") from e
    if not isinstance(fields, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    out = {}
    for key in ("ticket", "note"):
        if key in fields:
            if not isinstance(fields[key], str):
                raise ApiError(400, "bad_json", f'"{key}" must be a string')
            out[key] = fields[key][:500]
    return out


def api_routes(daemon: Daemon, feed: LiveFeed, auth: WebAuth) -> list[BaseRoute]:
    """Reads (login or --web-public), actions (a supervisor), the stream, /metrics."""

    async def dashboard(request: Request) -> Response:
        auth.check_read(request)
        return JSONResponse({"ok": True, **await feed.snapshot()})

    async def floor(request: Request) -> Response:
        auth.check_read(request)
        snap = await feed.snapshot()
        return JSONResponse({"ok": True, "floor": snap["floor"], "desks": snap["desks"]})

    async def consoles(request: Request) -> Response:
        auth.check_read(request)
        return JSONResponse({"ok": True, "consoles": await feed.section("health")})

    async def console(request: Request) -> Response:
        auth.check_read(request)
        device = request.path_params["device_id"]
        snap = await feed.snapshot()
        health = next((c for c in snap["health"] if c["device_id"] == device), None)
        desk = next((d for d in snap["desks"] if d["console"] == device), None)
        if health is None and desk is None:
            raise ApiError(404, "unknown_console", f"no console {device!r} on this floor")
        return JSONResponse({"ok": True, "device_id": device, "desk": desk, "health": health})

    async def queues(request: Request) -> Response:
        auth.check_read(request)
        return JSONResponse({"ok": True, **await feed.section("service")})

    async def escalations(request: Request) -> Response:
        auth.check_read(request)
        open_only = _flag(request, "open")
        svc = daemon.escalations
        rows = await svc.listing(open_only=open_only) if svc else []
        return JSONResponse({"ok": True, "escalations": rows})

    async def report_today(request: Request) -> Response:
        auth.check_read(request)
        account = _account(request.query_params.get("account", ""))
        d = await asyncio.to_thread(_read, lambda db: report.today(db, account))
        return JSONResponse({"ok": True, "report": demand_json(d)})

    async def report_period(request: Request) -> Response:
        auth.check_read(request)
        account = _account(request.path_params["account"])
        q = request.query_params
        tz = q.get("tz") or None
        start = report.parse_when(q.get("from", "today"), tz)
        end = report.parse_when(q["to"], tz) if q.get("to") else None
        period = report.make_period(start, end, tz=tz, interval=q.get("interval") or None)
        r = await asyncio.to_thread(_read, lambda db: report.build_report(db, account, period))
        return JSONResponse({"ok": True, "report": report_json(r)})

    def _account(key: str) -> str:
        f = daemon.floor
        if not key:
            raise ApiError(422, "bad_query", "name the account: ?account=KEY")
        if f is None or key not in f.accounts:
            known = ", ".join(sorted(f.accounts)) if f else "none: no floor config"
            raise ApiError(404, "unknown_account", f"no account {key!r} (accounts: {known})")
        return key

    def _online(device: str) -> str:
        worker = daemon.by_device.get(device)
        if worker is None:
            raise ApiError(404, "unknown_console", f"no console {device!r} has said hello")
        if not worker.online:
            raise ApiError(409, "offline", f"console {device} is offline ({worker.state})")
        return device

    def _read(fn: Callable[[Any], Any]) -> Any:
        db = report.open_readonly(daemon.opts.db)
        try:
            return fn(db)
        finally:
            db.close()

    async def stream(request: Request) -> Response:
        auth.check_read(request)
        return StreamingResponse(
            _events(feed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def metrics_page(request: Request) -> Response:
        auth.check_read(request)
        body = metrics.render(await feed.snapshot())
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    # --- actions ----------------------------------------------------------------------
    def answer(action: str) -> Handler:
        async def handler(request: Request) -> Response:
            who = auth.check_action(request)
            body = await _body(request)
            ext_id = request.path_params["ext_id"]
            svc = daemon.escalations
            if svc is None:
                raise ApiError(503, "unavailable", "the escalation service is not running")
            result = await svc.answer(
                ext_id,
                action,
                via=f"supervisor {who.user} (dashboard)",
                ticket=body.get("ticket", ""),
                note=body.get("note", ""),
            )
            _audit(who.user, f"{action} {ext_id}")
            await feed.refresh("escalations")
            return JSONResponse({"ok": True, **result})

        return handler

    async def reboot(request: Request) -> Response:
        who = auth.check_action(request)
        await _body(request)
        device = _online(request.path_params["device_id"])
        _audit(who.user, f"reboot {device}")
        reply = await daemon.reboot_console(device)
        if not reply["ok"]:
            raise ApiError(409, "refused", f"console {device} did not reboot: {reply['text']}")
        return JSONResponse(reply)

    async def push_config(request: Request) -> Response:
        who = auth.check_action(request)
        await _body(request)
        device = _online(request.path_params["device_id"])
        _audit(who.user, f"push config to {device}")
        return JSONResponse({"ok": True, **await daemon.push_config(device)})

    async def reload_floor(request: Request) -> Response:
        who = auth.check_action(request)
        await _body(request)
        _audit(who.user, "reload the floor file")
        errors = await daemon.reload_floor()
        await feed.refresh("floor", "desks")
        if errors:
            return JSONResponse(
                {"ok": False, "code": "floor_errors", "error": errors[0], "errors": errors},
                status_code=422,
            )
        return JSONResponse({"ok": True, "errors": []})

    def get(path: str, fn: Handler) -> Route:
        return Route(path, _guarded(fn), methods=["GET"])

    def post(path: str, fn: Handler) -> Route:
        return Route(path, _guarded(fn), methods=["POST"])

    return [
        get("/api/v1/openapi.json", openapi),
        get("/api/v1/dashboard", dashboard),
        get("/api/v1/stream", stream),
        get("/api/v1/floor", floor),
        get("/api/v1/consoles", consoles),
        get("/api/v1/consoles/{device_id}", console),
        get("/api/v1/queues", queues),
        get("/api/v1/escalations", escalations),
        get("/api/v1/reports/today", report_today),
        get("/api/v1/reports/{account}", report_period),
        get("/metrics", metrics_page),
        post("/api/v1/escalations/{ext_id}/acknowledge", answer("acknowledge")),
        post("/api/v1/escalations/{ext_id}/resolve", answer("resolve")),
        post("/api/v1/consoles/{device_id}/reboot", reboot),
        post("/api/v1/consoles/{device_id}/config", push_config),
        post("/api/v1/floor/reload", reload_floor),
    ]


def _audit(user: str, what: str) -> None:
    log.info("supervisor %s (dashboard): %s", user, what, extra=_NOBODY)


async def _events(feed: LiveFeed) -> AsyncIterator[bytes]:
    """Server-sent events: the snapshot, then each changed section; a comment
    every KEEPALIVE_S so proxies and the browser keep the line."""
    stream = feed.watch()
    queue: asyncio.Queue[tuple[str, int, dict[str, Any]] | None] = asyncio.Queue(maxsize=64)

    async def pump() -> None:
        try:
            async for item in stream:
                await queue.put(item)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                return
            name, version, data = item
            text = feed.event_text(name, version) or json.dumps(data, separators=(",", ":"))
            yield f"event: {name}\nid: {version}\ndata: {text}\n\n".encode()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()
