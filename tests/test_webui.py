"""The dashboard page's routes, headers and static files, and the promises its script
keeps: the DOM hooks the browser tests rely on, and snapshot text never parsed as markup.
(The page in a real browser: test_dashboard_browser.py.)"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asgiclient import AsgiClient
from conftest import REPO
from deskline import webui
from deskline.webauth import AuthError
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

STATIC = REPO / "host" / "deskline" / "dashboard" / "static"
TEMPLATES = REPO / "host" / "deskline" / "dashboard" / "templates"
FIXTURE = REPO / "tests" / "fixtures" / "dashboard" / "snapshot.json"
JS = (STATIC / "dashboard.js").read_text()
PAGES = "".join(p.read_text() for p in sorted(TEMPLATES.glob("*.html")))


class StubAuth:
    """WebAuth's check_read: a public floor, a login needed, or the auth file unreadable."""

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.asked = 0

    def check_read(self, request: HTTPConnection) -> None:
        self.asked += 1
        if self.refuse:
            raise AuthError(self.refuse, "login_required", "log in as a supervisor")


def client(auth: StubAuth) -> AsgiClient:
    return AsgiClient(Starlette(routes=webui.ui_routes(auth)))


def test_the_dashboard_renders_when_reading_is_allowed() -> None:
    auth = StubAuth()
    with client(auth) as c:
        r = c.get("/")
    assert r.status_code == 200 and auth.asked == 1
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    for hook in (
        'id="live"',
        'data-state="connecting"',
        'id="notice"',
        'aria-live="polite"',
        'id="whoami"',
        'id="floor-map"',
        'id="esc-list"',
        'id="sl-rows"',
    ):
        assert hook in page, hook
    assert 'class="wall"' not in page
    # Assets by content hash, so a new daemon's files are fetched at once.
    js_hash = hashlib.sha256((STATIC / "dashboard.js").read_bytes()).hexdigest()[:12]
    assert f'/static/dashboard.js?v={js_hash}"' in page
    assert "<script>" not in page  # no inline script: the CSP would refuse it


def test_wall_mode_is_a_query_away() -> None:
    with client(StubAuth()) as c:
        assert 'class="wall"' in c.get("/?wall=1").text


@pytest.mark.parametrize(
    ("path", "to"),
    [("/", "/login?next=/"), ("/?wall=1", "/login?next=/%3Fwall%3D1")],
)
def test_a_login_is_asked_for_when_reading_needs_one(path: str, to: str) -> None:
    with client(StubAuth(refuse=401)) as c:
        r = c.get(path)
    assert r.status_code == 303
    assert r.headers["location"] == to


def test_other_auth_failures_answer_as_json() -> None:
    with client(StubAuth(refuse=503)) as c:
        r = c.get("/")
    assert r.status_code == 503
    assert r.json()["ok"] is False


def test_the_login_page_renders_without_asking_auth() -> None:
    auth = StubAuth(refuse=401)
    with client(auth) as c:
        r = c.get("/login?next=/%3Fwall%3D1")
    assert r.status_code == 200 and auth.asked == 0
    assert 'data-next="/?wall=1"' in r.text
    assert 'type="password"' in r.text and 'autocomplete="current-password"' in r.text
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/", "/"),
        ("/?wall=1", "/?wall=1"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("dashboard", "/"),
    ],
)
def test_after_a_login_the_page_returns_only_to_a_local_path(given: str | None, kept: str) -> None:
    assert webui.safe_next(given) == kept


def test_the_templates_escape_what_they_are_given() -> None:
    with client(StubAuth()) as c:
        r = c.get("/login", params={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;alert(1)" in r.text
    env = webui._environment()
    assert env.from_string("{{ x }}").render(x="<script>") == "&lt;script&gt;"
    assert "|safe" not in PAGES.replace(" ", "") and "autoescape false" not in PAGES


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_are_served_with_their_types(name: str, kind: str) -> None:
    with client(StubAuth(refuse=401)) as c:
        plain = c.get(f"/static/{name}")
        hashed = c.get(f"/static/{name}?v={webui.asset_version(name)}")
        again = c.get(f"/static/{name}", headers={"if-none-match": plain.headers["etag"]})
    assert plain.status_code == 200
    assert plain.headers["content-type"].split(";")[0] == kind
    assert plain.content == (STATIC / name).read_bytes()
    assert plain.headers["cache-control"] == "no-cache"
    assert "immutable" in hashed.headers["cache-control"]
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert again.status_code == 304


def test_nothing_but_the_static_folder_is_served() -> None:
    with client(StubAuth()) as c:
        assert c.get("/static/missing.js").status_code == 404
        assert c.get("/static/../webui.py").status_code == 404
        assert c.get("/static/%2e%2e/templates/base.html").status_code == 404


def test_everything_the_page_loads_comes_from_the_daemon() -> None:
    for text in (JS, PAGES, (STATIC / "dashboard.css").read_text()):
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
        assert "@import" not in text


def test_the_script_never_parses_data_as_markup() -> None:
    # Snapshot text (a desk called <script>, an agent's name) reaches the page only
    # through textContent and attributes.
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style"',
        ".srcdoc",
    ):
        assert sink not in JS, sink
    assert JS.count("textContent") >= 2


# The DOM contract of docs (brief): the browser tests select by these.
CONTRACT = [
    "data-desk",
    "data-console",
    "data-state",
    "data-online",
    '"oled',
    "data-led-name",
    "dataset.led = layer",
    '"floor", "personal", "escalation"',
    '"data-sl", `${r.scope}:${r.key}`',
    '"data-band"',
    '"data-esc"',
    '"data-urgency"',
    'dataset.action = "acknowledge"',
    'dataset.action = "resolve"',
    '"data-demand"',
    '"data-health"',
    '"data-version"',
    '"data-kind"',
    "Log in as a supervisor to",
    '"connecting"',
    '"live"',
    '"reconnecting"',
    "#whoami",
    "#notice",
    "#live",
    "/api/v1",
    "/dashboard",
    "/stream",
    "/whoami",
    "/login",
    "/logout",
    "/escalations/",
    "/consoles/",
    'credentials: "same-origin"',
    "new EventSource",
]


@pytest.mark.parametrize("hook", CONTRACT)
def test_the_script_builds_every_dom_contract_hook(hook: str) -> None:
    assert hook in JS, hook


@pytest.mark.parametrize(
    "hook",
    [
        'data-action="reboot"',
        'data-action="config"',
        'data-device=""',
        'id="live"',
        'data-version="0"',
        'id="notice"',
        'id="whoami"',
        'href="/login?next=/"',
    ],
)
def test_the_page_carries_its_static_hooks(hook: str) -> None:
    assert hook in PAGES, hook


def test_the_script_follows_every_section_of_the_stream() -> None:
    sections = re.search(r"const SECTIONS = \[([^\]]*)\]", JS)
    assert sections is not None
    named = set(re.findall(r'"(\w+)"', sections.group(1)))
    assert named == {"floor", "desks", "service", "escalations", "demand", "health", "daemon"}
    assert 'addEventListener("snapshot"' in JS


def _fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def test_the_fixture_snapshot_is_a_floor_worth_looking_at() -> None:
    """The shape of docs/dashboard.md, and every case the page must draw."""
    snap = _fixture()
    assert set(snap) >= {
        "version",
        "generated",
        "floor",
        "desks",
        "service",
        "escalations",
        "demand",
        "health",
        "daemon",
    }
    assert len(snap["floor"]["accounts"]) == 3
    placed = [d for d in snap["desks"] if d["on_floor"] and d["row"]]
    assert len(placed) == 24
    assert len({(d["row"], d["col"]) for d in placed}) == 24
    assert any(not d["online"] for d in snap["desks"])
    assert any(not d["on_floor"] for d in snap["desks"])
    assert {d["state"] for d in snap["desks"]} >= {"ready", "on_call", "wrap_up", None}
    urgencies = {e["urgency"] for e in snap["escalations"]}
    assert urgencies == {"breached", "due_soon", "running", "no_deadline"}
    assert any(e["kind"] == "floor_help" for e in snap["escalations"])
    assert {r["band"] for r in snap["service"]["queues"]} == {"green", "amber", "red", "unknown"}
    for d in snap["desks"]:
        assert set(d) == set(snap["desks"][0]), d["console"]


def test_the_page_is_well_formed_javascript() -> None:
    node = next((p for p in (Path("/usr/bin/node"), Path("/usr/bin/nodejs")) if p.exists()), None)
    if node is None:
        pytest.skip("no node to check the script's syntax")
    proc = subprocess.run(
        [str(node), "--check", str(STATIC / "dashboard.js")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
