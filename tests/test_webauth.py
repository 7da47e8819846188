"""Web auth as a browser and a script meet it: login, the session cookie,
bearer tokens, the read and action rules, and the login throttle."""

from __future__ import annotations

import base64
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiclient import AsgiClient
from deskline.supervisors import ScryptParams
from deskline.webauth import (
    COOKIE,
    SESSION_S,
    AuthError,
    WebAuth,
    auth_error_handler,
    auth_routes,
    load_secret,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAST = ScryptParams(n=16, r=1, p=1)
PASSWORD = "open sesame 1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_400_000.0

    def __call__(self) -> float:
        return self.now


def make_app(auth: WebAuth) -> Starlette:
    """A tiny daemon: a floor read, an action, and the auth routes."""

    async def floor(request: Request) -> Response:
        who = auth.check_read(request)
        return JSONResponse({"ok": True, "who": who.user if who else None})

    async def reboot(request: Request) -> Response:
        who = auth.check_action(request)
        return JSONResponse({"ok": True, "by": who.user, "via": who.via})

    return Starlette(
        routes=[
            Route("/api/v1/floor", floor, methods=["GET"]),
            Route("/api/v1/consoles/{id}/reboot", reboot, methods=["POST"]),
            *auth_routes(auth),
        ],
        exception_handlers={AuthError: auth_error_handler},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(tmp_path: Path, clock: Clock) -> WebAuth:
    a = WebAuth(tmp_path, public_read=False, scrypt=FAST, clock=clock)
    a.supervisors.add("ann", PASSWORD)
    return a


@pytest.fixture
def client(auth: WebAuth) -> Iterator[AsgiClient]:
    with AsgiClient(make_app(auth)) as c:
        yield c


def login(client: AsgiClient, user: str = "ann", password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/login", json={"user": user, "password": password})


def test_the_web_secret_is_made_once_and_private(tmp_path: Path) -> None:
    secret = load_secret(tmp_path)
    assert len(secret) == 32 and load_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / "web-secret").stat().st_mode) == 0o600
    (tmp_path / "web-secret").write_bytes(b"short")
    with pytest.raises(Exception, match=r"not a web secret.*remove it"):
        load_secret(tmp_path)


def test_login_sets_a_strict_httponly_session_cookie(client: AsgiClient) -> None:
    r = client.get("/api/v1/whoami")
    assert r.json() == {
        "ok": True,
        "user": None,
        "via": None,
        "expires": None,
        "public_read": False,
        "can_act": False,
    }
    r = login(client)
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["user"] == "ann"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={SESSION_S}"):
        assert attribute.lower() in cookie.lower()
    who = client.get("/api/v1/whoami").json()
    assert who["user"] == "ann" and who["via"] == "cookie" and who["can_act"] is True
    r = client.post("/api/v1/logout")
    assert r.status_code == 200 and "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/api/v1/whoami").json()["user"] is None


def test_a_wrong_password_and_an_unknown_user_read_the_same(
    client: AsgiClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="deskline.web"):
        wrong = login(client, password="not it at all")
        unknown = login(client, user="zed")
        good = login(client)
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "ok": False,
            "code": "bad_login",
            "error": "unknown supervisor or wrong password",
        }
    )
    assert "set-cookie" not in wrong.headers
    assert good.status_code == 200
    text = caplog.text
    assert "failed login as 'ann'" in text and "failed login as 'zed'" in text
    assert "supervisor ann logged in" in text and PASSWORD not in text


def test_login_wants_json(client: AsgiClient) -> None:
    r = client.post("/api/v1/login", data={"user": "ann", "password": PASSWORD})
    assert r.status_code == 415 and r.json()["code"] == "json_required"
    r = client.post("/api/v1/login", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "bad_json"
    r = client.post(
        "/api/v1/login", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_actions_need_a_supervisor(client: AsgiClient, auth: WebAuth) -> None:
    r = client.post("/api/v1/consoles/desk-01/reboot", json={})
    assert r.status_code == 401 and r.json()["code"] == "login_required"
    assert "log in as a supervisor" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")

    login(client)
    r = client.post("/api/v1/consoles/desk-01/reboot", data={"a": "b"})  # a form: CSRF
    assert r.status_code == 415 and r.json()["code"] == "json_required"
    r = client.post("/api/v1/consoles/desk-01/reboot", content=b"{}")  # no content type
    assert r.status_code == 415
    r = client.post("/api/v1/consoles/desk-01/reboot", json={})
    assert r.status_code == 200 and r.json() == {"ok": True, "by": "ann", "via": "cookie"}

    _, token = auth.supervisors.issue_token("ann", "script")
    client.cookies.clear()
    r = client.post("/api/v1/consoles/desk-01/reboot", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["via"] == "token"  # a script needs no JSON
    for bad in (f"Bearer {token}x", "Bearer dlt_00000000_" + "x" * 43, f"Basic {token}", "Bearer"):
        r = client.post("/api/v1/consoles/desk-01/reboot", headers={"authorization": bad})
        assert r.status_code == 401 and r.json()["code"] == "bad_token", bad
    auth.supervisors.revoke(token)
    r = client.post("/api/v1/consoles/desk-01/reboot", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_with_no_supervisors_the_refusal_says_how_to_add_one(tmp_path: Path) -> None:
    auth = WebAuth(tmp_path, public_read=True, scrypt=FAST)
    with AsgiClient(make_app(auth)) as client:
        r = client.post("/api/v1/consoles/desk-01/reboot", json={})
    assert r.status_code == 401 and "deskline supervisor add NAME" in r.json()["error"]


@pytest.mark.parametrize("public", [False, True])
def test_read_rules(tmp_path: Path, public: bool) -> None:
    auth = WebAuth(tmp_path, public_read=public, scrypt=FAST)
    auth.supervisors.add("ann", PASSWORD)
    _, token = auth.supervisors.issue_token("ann")
    with AsgiClient(make_app(auth)) as client:
        r = client.get("/api/v1/floor")
        if public:
            assert r.status_code == 200 and r.json()["who"] is None
        else:
            assert r.status_code == 401 and r.json()["code"] == "login_required"
        assert client.get("/api/v1/whoami").json()["public_read"] is public
        r = client.get("/api/v1/floor", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["who"] == "ann"
        r = client.get("/api/v1/floor", headers={"authorization": "Bearer nope"})
        assert r.status_code == 401  # a wrong token is said so, even on a public view
        login(client)
        assert client.get("/api/v1/floor").json()["who"] == "ann"
        # Reading is open on a wall screen, acting never is.
        client.cookies.clear()
        assert client.post("/api/v1/consoles/d/reboot", json={}).status_code == 401


def session_of(client: AsgiClient) -> str:
    value = client.cookies.get(COOKIE)
    assert value
    return value


def test_a_tampered_cookie_is_nobody(client: AsgiClient, auth: WebAuth) -> None:
    login(client)
    value = session_of(client)
    body, mac = value.split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    forged = payload.replace(b"ann|", b"bob|")
    auth.supervisors.add("bob", "password-2")
    forged_value = base64.urlsafe_b64encode(forged).decode().rstrip("=") + "." + mac
    for bad in (forged_value, value[:-2], value + "x", "garbage", "a.b", ""):
        assert auth.session(bad) is None, bad
    assert auth.session(value) is not None
    client.cookies.set(COOKIE, forged_value)
    r = client.post("/api/v1/consoles/d/reboot", json={})
    assert r.status_code == 401 and "session has ended" in r.json()["error"]


def test_a_session_lasts_a_shift(client: AsgiClient, auth: WebAuth, clock: Clock) -> None:
    login(client)
    value = session_of(client)
    clock.now += SESSION_S - 1
    assert auth.session(value) is not None
    clock.now += 1
    assert auth.session(value) is None
    who = client.get("/api/v1/whoami")
    assert who.json()["user"] is None and "Max-Age=0" in who.headers["set-cookie"]


def test_a_new_password_or_removal_ends_sessions(client: AsgiClient, auth: WebAuth) -> None:
    login(client)
    value = session_of(client)
    auth.supervisors.set_password("ann", "another password")
    assert auth.session(value) is None
    assert login(client, password="another password").status_code == 200
    value = session_of(client)
    auth.supervisors.remove("ann")
    assert auth.session(value) is None
    auth.supervisors.add("ann", "another password")  # same name again, a new person maybe
    assert auth.session(value) is None


def test_a_supervisor_added_meanwhile_can_log_in(client: AsgiClient, tmp_path: Path) -> None:
    from deskline.supervisors import Supervisors

    assert login(client, user="bob", password="password-2").status_code == 401
    Supervisors(tmp_path / "supervisors.json", FAST).add("bob", "password-2")  # the CLI's side
    assert login(client, user="bob", password="password-2").status_code == 200


def test_guessing_is_throttled_but_a_supervisor_is_only_delayed(
    client: AsgiClient, auth: WebAuth, clock: Clock
) -> None:
    for _ in range(5):
        assert login(client, password="guess").status_code == 401
    r = login(client)  # even the right password waits now
    assert r.status_code == 429 and r.json()["code"] == "throttled"
    assert r.headers["retry-after"] == "1"
    clock.now += 1
    assert login(client, password="guess").status_code == 401
    r = login(client, password="guess")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"  # doubling
    for _ in range(12):  # a slow, steady attack
        clock.now += 301
        assert login(client, password="guess").status_code == 401
    # At the cap a supervisor waits a minute for their name, five for an address.
    assert auth.by_user.wait("ann") == 60 and auth.by_address.wait("127.0.0.1") == 300
    clock.now += 301
    assert login(client).status_code == 200
    assert auth.by_user.wait("ann") == 0 and auth.by_user.failures("ann") == 0


def test_the_throttle_counts_per_address_and_per_name(clock: Clock) -> None:
    from deskline.webauth import Throttle

    t = Throttle(cap_s=60, clock=clock)
    for _ in range(4):
        t.failed("a")
    assert t.wait("a") == 0 and t.wait("b") == 0
    t.failed("a")
    assert t.wait("a") == 1 and t.wait("b") == 0
    for _ in range(20):
        t.failed("a")
    assert t.wait("a") == 60
    t.clear("a")
    assert t.wait("a") == 0 and t.failures("a") == 0
    for _ in range(5):
        t.failed("b")
    clock.now += 900  # a quiet quarter hour: forgotten
    t.failed("b")
    assert t.failures("b") == 1 and t.wait("b") == 0


def test_a_broken_supervisors_file_lets_nobody_in(
    client: AsgiClient, auth: WebAuth, caplog: pytest.LogCaptureFixture
) -> None:
    login(client)
    _, token = auth.supervisors.issue_token("ann")
    auth.supervisors.path.write_text("{broken")
    with caplog.at_level(logging.ERROR, logger="deskline.web"):
        r = client.post("/api/v1/consoles/d/reboot", json={})
        assert r.status_code == 401  # the session no longer counts
        r = client.get("/api/v1/floor", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.json()["code"] == "auth_unavailable"
        assert login(client).status_code == 503
    assert caplog.text.count("supervisors.json") == 1  # said once, not per request
