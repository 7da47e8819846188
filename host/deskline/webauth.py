"""Who a web request is, and whether it may read the floor or act on it.

A supervisor is someone in the supervisors file (`supervisors.py`, set with
`deskline supervisor ...`).  A browser proves it with a session cookie it
got at POST /api/v1/login; a script with `Authorization: Bearer <token>`.

The cookie is `<payload>.<HMAC-SHA256>`, payload `user|issued|expiry|nonce|stamp`,
signed with a key from `<state>/web-secret` (32 random bytes made on first
use).  It lasts a shift (12 h) and holds no secret: the stamp comes from
the user's password hash, so changing the password, or removing the
supervisor, ends every session of theirs.  HttpOnly keeps it from scripts,
SameSite=Strict from other sites' requests; and an action by cookie must
be JSON, which a form on another site cannot send without the browser
asking the daemon first (CORS preflight), which it refuses.

Failed logins are throttled by the name tried and by the client's address:
five free, then a doubling wait, capped (a minute per name, five per
address), forgotten after a quiet quarter hour, so guessing is slow while
an attacker can only ever delay a real supervisor, not lock them out.
The client's address is the TCP peer: behind a reverse proxy that is the
proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from deskline.errors import DesklineError
from deskline.supervisors import (
    DEFAULT_SCRYPT,
    NAME_RE,
    Roster,
    ScryptParams,
    Supervisors,
    SupervisorsError,
    path_in,
)
from deskline.web import error

log = logging.getLogger("deskline.web")

COOKIE = "deskline_session"
SESSION_S = 12 * 3600
SECRET_FILE = "web-secret"
LOGIN_PATH = "/api/v1/login"
LOGOUT_PATH = "/api/v1/logout"
WHOAMI_PATH = "/api/v1/whoami"
LOGIN_PAGE = "/login"
MAX_LOGIN_BODY = 4096
FREE_FAILURES = 5
USER_CAP_S = 60.0
ADDRESS_CAP_S = 300.0
FORGET_S = 900.0

_LOG_IN = f"log in as a supervisor at {LOGIN_PAGE}, or send Authorization: Bearer <token>"


class AuthError(DesklineError):
    """A request the auth rules refuse: `http` and `code` for the JSON reply
    (login_required 401, bad_token 401, bad_login 401, json_required 415,
    throttled 429 with `retry_after`, auth_unavailable 503)."""

    def __init__(
        self, http: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.http = http
        self.code = code
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        """The house JSON error, with Retry-After or WWW-Authenticate as HTTP asks."""
        reply = error(self.http, self.code, str(self))
        if self.retry_after is not None:
            reply.headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.http == 401:
            reply.headers["WWW-Authenticate"] = 'Bearer realm="deskline"'
        return reply


async def auth_error_handler(request: Request, exc: Exception) -> Response:
    """For Starlette's exception_handlers: a route may just let AuthError rise."""
    assert isinstance(exc, AuthError)
    return exc.response()


@dataclass(frozen=True)
class Principal:
    """The supervisor a request speaks for."""

    user: str
    via: Literal["cookie", "token"]
    token_id: str | None = None  # which token, for the log
    expires: float | None = None  # when the session ends (cookie only)


def load_secret(state_dir: Path) -> bytes:
    """The cookie-signing secret, made (0600) on first use.  Removing the file
    and restarting the daemon logs every browser out."""
    path = state_dir / SECRET_FILE
    try:
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, secrets.token_bytes(32))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # never replaces a secret another process just made
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        data = path.read_bytes()
    except OSError as e:
        raise DesklineError(f"cannot read or make the web secret {path}: {e.strerror or e}") from e
    if len(data) != 32:
        raise DesklineError(
            f"{path} is not a web secret (32 bytes, it has {len(data)}): remove it and start "
            "the daemon again (browsers then log in again)"
        )
    return data


class Throttle:
    """Failed attempts per key: `free` of them, then a doubling wait up to
    `cap_s`; a key quiet for `forget_s` starts afresh."""

    MAX_KEYS = 10_000

    def __init__(
        self,
        cap_s: float,
        free: int = FREE_FAILURES,
        forget_s: float = FORGET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap_s = cap_s
        self.free = free
        self.forget_s = forget_s
        self.clock = clock
        self._keys: dict[str, tuple[int, float, float]] = {}  # failures, last, until

    def wait(self, key: str) -> float:
        """Seconds before `key` may try again; 0 now."""
        entry = self._keys.get(key)
        return max(0.0, entry[2] - self.clock()) if entry else 0.0

    def failures(self, key: str) -> int:
        entry = self._keys.get(key)
        return entry[0] if entry and self.clock() - entry[1] < self.forget_s else 0

    def failed(self, key: str) -> None:
        now = self.clock()
        count = self.failures(key) + 1
        until = now + min(self.cap_s, 2.0 ** (count - self.free)) if count >= self.free else 0.0
        self._keys[key] = (count, now, until)
        if len(self._keys) > self.MAX_KEYS:
            self._prune(now)

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def _prune(self, now: float) -> None:
        self._keys = {k: e for k, e in self._keys.items() if now - e[1] < self.forget_s}
        if len(self._keys) > self.MAX_KEYS // 2:  # a flood of names: keep the newest
            newest = sorted(self._keys.items(), key=lambda kv: kv[1][1])[-self.MAX_KEYS // 2 :]
            self._keys = dict(newest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_json(request: HTTPConnection) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json"


def _client(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


class WebAuth:
    """The auth rules of the daemon's web side (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        public_read: bool,
        *,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
        clock: Callable[[], float] = time.time,
        session_s: float = SESSION_S,
    ) -> None:
        self.public_read = public_read
        self.supervisors = Supervisors(path_in(state_dir), scrypt)
        self.clock = clock
        self.session_s = session_s
        self._key = hmac.digest(load_secret(state_dir), b"deskline session cookie", "sha256")
        self.by_user = Throttle(USER_CAP_S, clock=clock)
        self.by_address = Throttle(ADDRESS_CAP_S, clock=clock)
        self._scrypt_slots = threading.BoundedSemaphore(2)  # scrypt's RAM, per login
        self._broken = ""

    # -- who is asking -------------------------------------------------------

    def principal(self, request: HTTPConnection) -> Principal | None:
        """The supervisor behind a bearer token or a session cookie; None for
        nobody (no credentials, or a session that ended).  A bearer token
        that is not valid raises AuthError (401 bad_token): a script should
        hear its token is wrong rather than be served as nobody."""
        header = request.headers.get("authorization")
        if header is not None:
            return self._bearer(header)
        cookie = request.cookies.get(COOKIE)
        return self.session(cookie) if cookie else None

    def check_read(self, request: HTTPConnection) -> Principal | None:
        """May this request read the floor?  Raises AuthError 401 unless the
        view is public or a supervisor asks; returns the supervisor, if any."""
        who = self.principal(request)
        if who is None and not self.public_read:
            raise AuthError(401, "login_required", f"to see the floor, {_LOG_IN}")
        return who

    def check_action(self, request: HTTPConnection) -> Principal:
        """May this request act?  Only a supervisor, always; by cookie only
        with a JSON body (AuthError 415 otherwise)."""
        who = self.principal(request)
        if who is None:
            if request.cookies.get(COOKIE):
                raise AuthError(
                    401,
                    "login_required",
                    "your session has ended (after 12 h, or the password changed): "
                    f"log in again at {LOGIN_PAGE}",
                )
            raise AuthError(401, "login_required", f"to do this, {_LOG_IN}{self._none_yet()}")
        if who.via == "cookie" and not _is_json(request):
            raise AuthError(
                415,
                "json_required",
                "an action from a browser session must send Content-Type: application/json",
            )
        return who

    def _bearer(self, header: str) -> Principal:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                401,
                "bad_token",
                "send the token as `Authorization: Bearer <token>` "
                "(`deskline supervisor token NAME` makes one)",
            )
        with self._file():
            found = self.supervisors.check_token(token.strip())
        if found is None:
            raise AuthError(
                401,
                "bad_token",
                "this API token is unknown or revoked: make a new one with "
                "`deskline supervisor token NAME`",
            )
        user, entry = found
        return Principal(user.name, "token", token_id=entry.id)

    def _none_yet(self) -> str:
        try:
            if self.supervisors.roster().users:
                return ""
        except SupervisorsError:
            return ""
        return " (no supervisor is set up yet: `deskline supervisor add NAME` on the daemon's host)"

    @contextlib.contextmanager
    def _file(self) -> Iterator[None]:
        """Fail closed when the supervisors file is broken, and say so once in the log."""
        try:
            yield
        except SupervisorsError as e:
            self._log_broken(e)
            raise AuthError(
                503, "auth_unavailable", "the supervisors file cannot be read: see the daemon's log"
            ) from e

    def _log_broken(self, e: SupervisorsError) -> None:
        if str(e) != self._broken:
            log.error("web auth: %s", e)
            self._broken = str(e)

    # -- sessions ------------------------------------------------------------

    def _roster(self) -> Roster:
        with self._file():
            return self.supervisors.roster()

    def issue_session(self, user: str) -> tuple[str, float]:
        """A signed session cookie value for `user`, and when it expires."""
        entry = self._roster().users.get(user)
        if entry is None:
            raise AuthError(401, "bad_login", f"no supervisor {user!r}")
        issued = int(self.clock())
        expiry = issued + int(self.session_s)
        payload = f"{user}|{issued}|{expiry}|{secrets.token_hex(8)}|{entry.stamp}".encode()
        mac = hmac.digest(self._key, payload, "sha256")
        return f"{_b64(payload)}.{_b64(mac)}", float(expiry)

    def session(self, value: str) -> Principal | None:
        """The supervisor of a genuine, unexpired session cookie whose user
        still exists with the same password; None otherwise."""
        try:
            body, mac = value.split(".")
            payload = _unb64(body)
            good = hmac.compare_digest(_unb64(mac), hmac.digest(self._key, payload, "sha256"))
            if not good:
                return None
            user, issued, expiry, _nonce, stamp = payload.decode().split("|")
            issued_at, expires = int(issued), int(expiry)
        except (ValueError, UnicodeDecodeError):
            return None
        now = self.clock()
        if not issued_at - 300 <= now < expires:  # a few minutes of clock step are fine
            return None
        try:
            entry = self.supervisors.roster().users.get(user)
        except SupervisorsError as e:
            self._log_broken(e)
            entry = None
        if entry is None or not hmac.compare_digest(entry.stamp, stamp):
            return None
        return Principal(user, "cookie", expires=float(expires))

    # -- logging in ----------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """POST /api/v1/login {"user", "password"}: a session cookie, or why not."""
        if not _is_json(request):
            raise AuthError(
                415, "json_required", "send the login as Content-Type: application/json"
            )
        user, password = _credentials(await _body(request, MAX_LOGIN_BODY))
        address = _client(request)
        name_key = user[:64]
        wait = max(self.by_user.wait(name_key), self.by_address.wait(address))
        if wait > 0:
            log.warning(
                "login as %r from %s refused: too many failures, %.0f s to wait",
                name_key,
                address,
                wait,
            )
            raise AuthError(
                429,
                "throttled",
                f"too many failed logins: try again in {math.ceil(wait)} s",
                retry_after=wait,
            )
        # Counted before the check, so a burst of parallel guesses meets the
        # throttle too; a good password clears it again.
        self.by_user.failed(name_key)
        self.by_address.failed(address)
        ok = NAME_RE.fullmatch(user) is not None and await asyncio.to_thread(
            self._check_password, user, password
        )
        if not ok:
            log.warning(
                "failed login as %r from %s (%d failures)",
                name_key,
                address,
                self.by_user.failures(name_key),
            )
            raise AuthError(401, "bad_login", "unknown supervisor or wrong password")
        self.by_user.clear(name_key)
        self.by_address.clear(address)
        value, expires = self.issue_session(user)
        log.info("supervisor %s logged in from %s", user, address)
        reply = JSONResponse({"ok": True, "user": user, "expires": expires})
        reply.set_cookie(
            COOKIE,
            value,
            max_age=int(expires - self.clock()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return reply

    def _check_password(self, user: str, password: str) -> bool:
        with self._scrypt_slots, self._file():
            return self.supervisors.check_password(user, password) is not None

    def whoami(self, request: HTTPConnection) -> dict[str, Any]:
        """GET /api/v1/whoami: who this is and what they may do (for the page's header)."""
        who = self.principal(request)
        return {
            "ok": True,
            "user": who.user if who else None,
            "via": who.via if who else None,
            "expires": who.expires if who else None,
            "public_read": self.public_read,
            "can_act": who is not None,
        }


async def _body(request: Request, limit: int) -> bytes:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > limit):
        raise AuthError(413, "too_large", f"a login is at most {limit} bytes")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise AuthError(413, "too_large", f"a login is at most {limit} bytes")
    return data


def _credentials(body: bytes) -> tuple[str, str]:
    try:
        fields = json.loads(body)
    except ValueError as e:
        raise AuthError(400, "bad_json", f"the body is not JSON: {e}") from e
    if (
        not isinstance(fields, dict)
        or not isinstance(fields.get("user"), str)
        or not isinstance(fields.get("password"), str)
    ):
        raise AuthError(400, "bad_json", 'send {"user": "...", "password": "..."}')
    return fields["user"].strip(), fields["password"]


def auth_routes(auth: WebAuth) -> list[BaseRoute]:
    """POST /api/v1/login, POST /api/v1/logout, GET /api/v1/whoami."""

    async def login(request: Request) -> Response:
        try:
            return await auth.login(request)
        except AuthError as e:
            return e.response()

    async def logout(request: Request) -> Response:
        who = auth.session(request.cookies.get(COOKIE, ""))
        if who:
            log.info("supervisor %s logged out from %s", who.user, _client(request))
        reply = JSONResponse({"ok": True})
        reply.delete_cookie(
            COOKIE,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return reply

    async def whoami(request: Request) -> Response:
        try:
            info = auth.whoami(request)
        except AuthError as e:
            return e.response()
        reply = JSONResponse(info)
        if request.cookies.get(COOKIE) and info["via"] != "cookie":  # an ended session
            reply.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return reply

    return [
        Route(LOGIN_PATH, login, methods=["POST"]),
        Route(LOGOUT_PATH, logout, methods=["POST"]),
        Route(WHOAMI_PATH, whoami, methods=["GET"]),
    ]
