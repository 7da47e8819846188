"""The daemon's HTTP API against its own OpenAPI document, on a live floor.

Schemathesis sends generated requests to every operation of
`/api/v1/openapi.json` (as a supervisor) and checks each response's status,
content type and body against the document.  Then, by hand: every mutating
route refuses a caller who is not a supervisor, a supervisor's actions
reach the desk, the live stream carries a press within a second, and a
floor without --web-public shows nothing to a stranger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from deskline.openapi import document
from hypothesis import HealthCheck, given, settings
from livefloor import PASSWORD, LiveFloor, wait
from schemathesis.checks import positive_data_acceptance

# Routes any caller may POST to, each with its own check: a login, a logout,
# and the client's callbacks (signed with the account's webhook secret).
OPEN_POSTS = {"/api/v1/login", "/api/v1/logout", "/api/v1/callbacks"}


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFloor]:
    with LiveFloor(tmp_path_factory.mktemp("api"), consoles=2) as lf:
        vc = lf.vcs[0]
        vc.hook(True)
        vc.press("ESC", ms=150)  # an open escalation for the API to list
        wait(lambda: _open(lf), 20, "the escalation")
        yield lf


def _open(lf: LiveFloor) -> list[dict[str, Any]]:
    r = httpx.get(lf.url + "/api/v1/escalations?open=true")
    rows: list[dict[str, Any]] = r.json()["escalations"]
    return [e for e in rows if e["kind"] == "client"]


def test_every_response_matches_the_document(floor: LiveFloor) -> None:
    # Driven by hand rather than by schemathesis's pytest plugin (which this
    # pytest outgrew): each operation's generated cases, a few each.
    schema = schemathesis.openapi.from_url(floor.url + "/api/v1/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/v1/stream":  # endless; its own test below
            continue
        _checker(op, floor)()
        checked.append(f"{op.method.upper()} {op.path}")
    assert len(checked) >= 18, checked


def _checker(op: Any, floor: LiveFloor) -> Any:
    # A report's period can be well-formed and still refused (a 13th month,
    # --to before --from, a zone that does not exist): 422 is the answer.
    skip = [positive_data_acceptance] if op.path == "/api/v1/reports/{account}" else []

    @given(case=op.as_strategy())
    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(headers=floor.auth(), timeout=10, excluded_checks=skip)

    return check


def _states(lf: LiveFloor) -> list[tuple[Any, ...]]:
    return [(e["ext_id"], e["status"], e["acked"], e["resolved"]) for e in _open(lf)]


def _posts(lf: LiveFloor) -> list[str]:
    """Every mutating route of the document, its path filled with real names."""
    ext_id = _open(lf)[0]["ext_id"]
    out = []
    for path, ops in document()["paths"].items():
        if "post" in ops and path not in OPEN_POSTS:
            out.append(
                path.replace("{ext_id}", ext_id)
                .replace("{device_id}", "desk-02")
                .replace("{account}", "volt")
            )
    return out


def test_every_action_needs_a_supervisor(floor: LiveFloor) -> None:
    posts = _posts(floor)
    assert len(posts) == 5, posts
    before = _states(floor)
    with httpx.Client(base_url=floor.url) as anon:
        for path in posts:
            r = anon.post(path, json={})
            assert r.status_code == 401, (path, r.text)
            assert r.json()["code"] == "login_required"
            r = anon.post(path, json={}, headers={"Authorization": "Bearer dlt_nope_nope"})
            assert r.status_code == 401, (path, r.text)
    # A logged-in browser must send JSON: a form from another site cannot act.
    with httpx.Client(base_url=floor.url) as browser:
        r = browser.post("/api/v1/login", json={"user": "sam", "password": PASSWORD})
        assert r.status_code == 200, r.text
        for path in posts:
            r = browser.post(path, content=b"note=x", headers={"Content-Type": "text/plain"})
            assert r.status_code == 415, (path, r.text)
    assert _states(floor) == before  # nothing changed
    # Everything the document marks as needing a supervisor is a POST listed above.
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            if {} not in op["security"] and path not in OPEN_POSTS:
                assert method == "post", (path, method)


def test_the_stream_carries_a_press_within_a_second(floor: LiveFloor) -> None:
    vc = floor.vcs[1]
    with httpx.stream("GET", floor.url + "/api/v1/stream", timeout=10) as s:
        lines = s.iter_lines()
        event = ""
        for line in lines:
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            if line.startswith("data:"):
                assert event == "snapshot"
                snap = json.loads(line[5:])
                assert {d["console"] for d in snap["desks"]} >= {"desk-01", "desk-02"}
                break
        pressed = time.monotonic()
        vc.hook(True)
        for line in lines:
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            if line.startswith("data:") and event == "desks":
                desks = {d["console"]: d for d in json.loads(line[5:])["desks"]}
                if desks["desk-02"]["state"] == "on_call":
                    break
        took = time.monotonic() - pressed
    vc.hook(False)
    print(f"\nhandset lifted to the stream's on_call: {took * 1000:.0f} ms")
    assert took < 1.0


def test_a_supervisor_acknowledges_and_resolves_for_the_client(floor: LiveFloor) -> None:
    esc = _open(floor)[0]
    ext_id = esc["ext_id"]
    with httpx.Client(base_url=floor.url, headers=floor.auth()) as sup:
        r = sup.post(f"/api/v1/escalations/{ext_id}/acknowledge", json={"ticket": "PH-1"})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True
        assert floor.vcs[0].wait_display(f"E{esc['esc_seq']} ACK", 10), floor.log()
        r = sup.post(f"/api/v1/escalations/{ext_id}/resolve", json={"note": "called back"})
        assert r.status_code == 200, r.text
        dash = sup.get("/api/v1/dashboard").json()
        assert ext_id not in {e["ext_id"] for e in dash["escalations"]}
        r = sup.post(f"/api/v1/escalations/{ext_id}/resolve", json={})
        assert r.status_code == 200 and r.json()["changed"] is False  # twice is harmless
        r = sup.post("/api/v1/escalations/DL-nope/acknowledge", json={})
        assert r.status_code == 404
    assert "supervisor sam (dashboard): acknowledge " + ext_id in floor.log()


def test_reboot_and_config_push_reach_the_console(floor: LiveFloor) -> None:
    vc = floor.vcs[1]
    boots = vc.boots
    with httpx.Client(base_url=floor.url, headers=floor.auth(), timeout=20) as sup:
        r = sup.post("/api/v1/consoles/desk-02/config", json={})
        assert r.status_code == 200, r.text
        wait(lambda: "pushing config" in floor.log().split("desk-02")[-1], 10, "the config push")
        r = sup.post("/api/v1/consoles/desk-02/reboot", json={})
        assert r.status_code == 200, r.text
        wait(lambda: vc.boots > boots and vc.wait_display("READY", 0.1), 20, "the reboot")
        r = sup.post("/api/v1/consoles/desk-99/reboot", json={})
        assert r.status_code == 404 and "desk-99" in r.json()["error"]


def test_without_web_public_a_stranger_sees_nothing(tmp_path: Path) -> None:
    with LiveFloor(tmp_path, consoles=0, public=False) as lf, httpx.Client(base_url=lf.url) as c:
        for path in ("/api/v1/dashboard", "/api/v1/floor", "/api/v1/stream", "/metrics"):
            r = c.get(path)
            assert r.status_code == 401, (path, r.text)
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.get("/api/v1/health").status_code == 200
        assert c.get("/api/v1/dashboard", headers=lf.auth()).status_code == 200
        metrics = c.get("/metrics", headers=lf.auth())
        assert metrics.status_code == 200 and "deskline_" in metrics.text
