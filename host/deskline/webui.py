"""The supervisors' dashboard page: HTML shells, the login page and their static files.

The page is a shell: `dashboard.js` fetches the floor snapshot
(docs/dashboard.md) and follows the live stream, so no floor data passes
through a template and nothing a console reports can become markup on the
server.  The templates still autoescape, for the few values they do carry
(the login page's `next`).  Asset URLs carry a hash of the file, so a
browser may keep them for long and still picks up a new daemon's files at
once; the pages themselves are never cached, since they depend on who asks.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

import jinja2
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from deskline.webauth import AuthError

HERE = Path(__file__).parent / "dashboard"
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Scripts and styles only from the daemon itself: an injected tag, if one ever
# slipped through, could neither run inline nor load from elsewhere.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


class ReadAuth(Protocol):
    """What the page needs of the daemon's web auth (webauth.WebAuth)."""

    def check_read(self, request: HTTPConnection) -> object:
        """The supervisor, or None on a public floor; AuthError 401 when a login is needed."""


def safe_next(target: str | None) -> str:
    """A local path to return to after logging in; anything else goes to the dashboard."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def asset_version(name: str) -> str:
    """A short hash of a static file, appended to its URL as `?v=`."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def render(template: str, **values: object) -> HTMLResponse:
    page = _environment().get_template(template).render(asset=asset_version, **values)
    return HTMLResponse(page, headers=_PAGE_HEADERS)


class _Static(StaticFiles):
    """The package's static files; hashed URLs are cached for good, others revalidate."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = _IMMUTABLE if versioned else "no-cache"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def ui_routes(auth: ReadAuth) -> list[BaseRoute]:
    """GET / (the dashboard), GET /login and /static, for the daemon's web app."""

    async def dashboard(request: Request) -> Response:
        try:
            auth.check_read(request)
        except AuthError as e:
            if e.http != 401:
                return e.response()
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)
        return render("dashboard.html", wall=request.query_params.get("wall") == "1")

    async def login(request: Request) -> Response:
        return render("login.html", next=safe_next(request.query_params.get("next")))

    return [
        Route("/", dashboard, methods=["GET"]),
        Route("/login", login, methods=["GET"]),
        Mount("/static", app=_Static(directory=STATIC), name="static"),
    ]
