"""The floor snapshot's builders (floorview.py): what a supervisor sees of each desk
and each open escalation, from a fake daemon with a fixed clock.

The floor is the demo's three desks (desk-01 Volt, desk-02 Northwind,
desk-03 Harbour); consoles are fake port workers whose sessions hold the
STATUS fields a console last sent, as the real session mirrors them.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from deskline.escalations import ACKED, NO_DEADLINE, RAISED
from deskline.floorconfig import demo_floor_toml, parse_floor
from deskline.floorview import FloorView
from deskline.session import AWAIT_HELLO, ONLINE, FloorLight
from deskline.wire import codec
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1795400000.0
FLOOR = parse_floor(demo_floor_toml(3))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def status(
    state: int = 0,
    leds: tuple[int, int, int] = (1, 5, 10),
    lines: tuple[str, str, str, str] = ("Volt Energy", "Ready", "", ""),
    **more: Any,
) -> dict[str, Any]:
    """A console's STATUS frame as the session mirrors it (docs/protocol.md)."""
    return {
        "state": state,
        "top": leds[1],
        "led_floor": leds[0],
        "led_personal": leds[1],
        "led_escalation": leds[2],
        "acw_left": 0,
        "typed": 0,
        "esc_id": 0,
        "esc_status": 0,
        "esc_left": NO_DEADLINE,
        **{f"line{i}": text for i, text in enumerate(lines)},
        **more,
    }


def console(link: str = "online", mirror: dict[str, Any] | None = None) -> SimpleNamespace:
    """A port worker whose console is `link`: online, connecting, offline or released."""
    session = SimpleNamespace(
        state=ONLINE if link == "online" else AWAIT_HELLO,
        status_mirror=mirror if mirror is not None else status(),
    )
    return SimpleNamespace(
        state="open" if link in ("online", "connecting") else "waiting",
        released=link == "released",
        session=session if link != "offline" else None,
        online=link == "online",  # PortWorker.online: open, and its console said hello
    )


def daemon(
    consoles: dict[str, SimpleNamespace] | None = None,
    escalations: list[dict[str, Any]] | None = None,
) -> SimpleNamespace:
    lights = {"desk-01": FloorLight(band=codec.BAND_GREEN)}

    async def listing(open_only: bool = False) -> list[dict[str, Any]]:
        assert open_only, "the floor view lists the open escalations only"
        return list(escalations or [])

    return SimpleNamespace(
        floor=FLOOR,
        floor_errors=[],
        by_device=consoles or {},
        acd=None,
        escalations=SimpleNamespace(listing=listing),
        floor_light_for=lambda device_id: lights.get(device_id, FloorLight()),
    )


def by_desk(view: FloorView) -> dict[str, dict[str, Any]]:
    return {d["desk"] or d["console"]: d for d in view.desks()}


# --- desks ----------------------------------------------------------------------------
def test_a_desk_shows_its_console_leds_display_and_people() -> None:
    on_call = status(1, leds=(1, 6, 10), lines=("Volt Energy", "On call 01:12", "", ""))
    desk = by_desk(FloorView(daemon({"desk-01": console(mirror=on_call)}), Clock()))["desk-01"]
    assert desk == {
        "desk": "desk-01",
        "console": "desk-01",
        "account": "volt",
        "account_name": "Volt Energy",
        "agent": "ag-01",
        "agent_name": "Priya Shah",
        "row": 1,
        "col": 1,
        "on_floor": True,
        "online": True,
        "link": "online",
        "since": NOW,
        "state": "on_call",
        "leds": {
            "floor": {"id": 1, "name": "SL green", "colour": "green"},
            "personal": {"id": 6, "name": "on call", "colour": "blue"},
            "escalation": {"id": 10, "name": "none", "colour": "off"},
        },
        "top": 6,
        "display": ["Volt Energy", "On call 01:12", "", ""],
        "acw_left_s": None,
        "escalation": None,
        "band": "green",
    }


def test_wrap_up_time_shows_only_while_wrapping_up() -> None:
    consoles = {
        "desk-01": console(mirror=status(0, acw_left=30)),  # a stale count on a ready desk
        "desk-02": console(mirror=status(2, leds=(2, 7, 10), acw_left=12)),
    }
    desks = by_desk(FloorView(daemon(consoles), Clock()))
    assert (desks["desk-01"]["state"], desks["desk-01"]["acw_left_s"]) == ("ready", None)
    assert (desks["desk-02"]["state"], desks["desk-02"]["acw_left_s"]) == ("wrap_up", 12)
    assert desks["desk-02"]["leds"]["personal"]["name"] == "wrap due"
    assert desks["desk-02"]["band"] == "unknown"  # no light set for Northwind


def test_an_escalation_on_the_console_shows_as_a_badge() -> None:
    consoles = {
        "desk-01": console(
            mirror=status(1, leds=(1, 6, 12), esc_id=3, esc_status=ACKED, esc_left=540)
        ),
        "desk-02": console(mirror=status(1, leds=(1, 6, 14), esc_id=4, esc_status=RAISED)),
    }
    desks = by_desk(FloorView(daemon(consoles), Clock()))
    assert desks["desk-01"]["escalation"] == {"id": 3, "status": "acknowledged", "left_s": 540}
    assert desks["desk-01"]["leds"]["escalation"]["name"] == "esc acked"
    assert desks["desk-02"]["escalation"] == {"id": 4, "status": "raised", "left_s": None}
    assert desks["desk-02"]["leds"]["escalation"]["name"] == "help"


@pytest.mark.parametrize(
    ("link", "worker"),
    [
        ("offline", console("offline")),
        ("connecting", console("connecting")),
        ("released", console("released")),
        ("absent", None),
    ],
)
def test_a_desk_not_online_shows_nothing_it_cannot_know(
    link: str, worker: SimpleNamespace | None
) -> None:
    consoles = {"desk-03": worker} if worker is not None else {}
    desk = by_desk(FloorView(daemon(consoles), Clock()))["desk-03"]
    assert desk["link"] == link
    assert not desk["online"]
    assert desk["since"] is None  # never seen online since the daemon started
    assert desk["state"] is desk["leds"] is desk["top"] is desk["escalation"] is None
    assert desk["display"] == []
    assert desk["acw_left_s"] is None


def test_since_moves_only_when_a_desk_goes_online_or_offline() -> None:
    clock = Clock()
    d = daemon({"desk-01": console(), "desk-02": console("offline")})
    view = FloorView(d, clock)

    def since() -> tuple[float | None, float | None]:
        desks = by_desk(view)
        return desks["desk-01"]["since"], desks["desk-02"]["since"]

    assert since() == (NOW, None)
    clock.now = NOW + 10
    d.by_device["desk-01"].session.status_mirror = status(1, leds=(1, 6, 10))  # a press
    assert since() == (NOW, None), "a change on an online desk keeps its since"

    clock.now = NOW + 20
    d.by_device["desk-01"] = console("offline")
    d.by_device["desk-02"] = console()
    assert since() == (NOW + 20, NOW + 20)

    clock.now = NOW + 30
    d.by_device["desk-01"] = console("connecting")  # still not online
    assert since() == (NOW + 20, NOW + 20)
    assert by_desk(view)["desk-01"]["link"] == "connecting"


def test_a_console_no_desk_names_is_listed_off_the_floor() -> None:
    consoles = {"bench-2": console(), "desk-01": console(), "bench-1": console("offline")}
    desks = FloorView(daemon(consoles), Clock()).desks()
    assert [(d["console"], d["on_floor"]) for d in desks] == [
        ("desk-01", True),
        ("desk-02", True),
        ("desk-03", True),
        ("bench-1", False),
        ("bench-2", False),
    ]
    bench = desks[-1]
    where = {k: bench[k] for k in ("desk", "account", "agent", "row", "col")}
    assert where == {"desk": "", "account": "", "agent": None, "row": 0, "col": 0}
    assert (bench["online"], bench["state"]) == (True, "ready")


def test_service_without_an_acd_is_empty() -> None:
    assert FloorView(daemon(), Clock()).service() == {
        "acd": False,
        "interval_min": 0,
        "interval_start": None,
        "accounts": [],
        "queues": [],
    }


# --- escalations --------------------------------------------------------------------------
def escalation(
    ext_id: str,
    *,
    age_s: float = 600,
    left_s: float | None = None,
    status: str = "raised",
    breached: tuple[str, ...] = (),
    kind: str = "client",
) -> dict[str, Any]:
    """An open escalation as EscalationService.listing gives it (escalations._public)."""
    deadline = None if left_s is None else NOW + left_s
    return {
        "ext_id": ext_id,
        "severity": 2,
        "ticket": "",
        "raised": NOW - age_s,
        "updated": NOW - age_s,
        "desk": "desk-01",
        "agent": "ag-01",
        "account": "volt",
        "queue": "volt-billing",
        "acd_call_id": None,
        "callerid": "",
        "repeat_count": 0,
        "ack_due": deadline,
        "resolve_due": None,
        "delivered": None,
        "acked": None,
        "resolved": None,
        "cancelled": None,
        "device_id": "desk-01",
        "esc_seq": 1,
        "status": status,
        "kind": kind,
        "breached": list(breached),
        "deadline": deadline,
        "left_s": None if left_s is None else round(left_s),
    }


def open_escalations(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    return asyncio.run(FloorView(daemon(escalations=list(rows)), Clock()).escalations())


def test_an_open_escalation_as_the_floor_sees_it() -> None:
    (row,) = open_escalations(
        escalation("DL-desk-01-1-57", age_s=1000, left_s=-400, status="breached", breached=("ack",))
    )
    assert row == {
        "ext_id": "DL-desk-01-1-57",
        "kind": "client",
        "severity": "high",
        "status": "breached",
        "desk": "desk-01",
        "agent": "ag-01",
        "account": "volt",
        "account_name": "Volt Energy",
        "queue": "volt-billing",
        "ticket": "",
        "raised": NOW - 1000,
        "age_s": 1000,
        "ack_due": NOW - 400,
        "resolve_due": None,
        "acked": None,
        "deadline": NOW - 400,
        "left_s": -400,
        "breached": ["ack"],
        "urgency": "breached",
    }


@pytest.mark.parametrize(
    ("urgency", "row"),
    [
        ("breached", escalation("e", left_s=5000, status="acknowledged", breached=("ack",))),
        ("breached", escalation("e", left_s=-3, status="breached")),
        ("no_deadline", escalation("e", kind="floor_help")),
        ("due_soon", escalation("e", age_s=10_000, left_s=300)),  # 5 minutes left
        ("running", escalation("e", age_s=60, left_s=301)),
        ("due_soon", escalation("e", age_s=3000, left_s=1000)),  # a quarter of 4000 s left
        ("running", escalation("e", age_s=2990, left_s=1010)),
    ],
)
def test_urgency_labels(urgency: str, row: dict[str, Any]) -> None:
    assert open_escalations(row)[0]["urgency"] == urgency


@st.composite
def open_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 12))):
        left = draw(st.none() | st.integers(-20_000, 20_000))
        late = draw(st.sampled_from([(), ("ack",), ("resolve",), ("ack", "resolve")]))
        status = (
            "breached"
            if late and draw(st.booleans())
            else draw(st.sampled_from(["raised", "delivered", "acknowledged"]))
        )
        rows.append(
            escalation(
                f"DL-{i}",
                age_s=draw(st.integers(0, 50_000)),
                left_s=left,
                status=status,
                breached=late,
            )
        )
    return rows


@settings(max_examples=30, deadline=None)
@given(rows=open_rows())
def test_most_urgent_first(rows: list[dict[str, Any]]) -> None:
    """Breached first, most overdue first; then running deadlines by the least
    time left; then those without a deadline, oldest first (_urgency_key)."""
    out = open_escalations(*rows)
    assert sorted(e["ext_id"] for e in out) == sorted(r["ext_id"] for r in rows)
    rank = {"breached": 0, "due_soon": 1, "running": 1, "no_deadline": 2}
    assert [rank[e["urgency"]] for e in out] == sorted(rank[e["urgency"]] for e in out)

    def overdue(e: dict[str, Any]) -> float:
        return -e["left_s"] if e["left_s"] is not None else e["age_s"]

    breached = [overdue(e) for e in out if e["urgency"] == "breached"]
    running = [e["left_s"] for e in out if rank[e["urgency"]] == 1]
    waiting = [e["age_s"] for e in out if e["urgency"] == "no_deadline"]
    assert breached == sorted(breached, reverse=True)
    assert running == sorted(running)
    assert waiting == sorted(waiting, reverse=True)
