"""`deskline status`: the floor snapshot (docs/dashboard.md) drawn in a terminal.

The snapshots here are made by hand after the contract, so the view is
tested against the document, not against whatever the daemon happens to send.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from deskline import cli, control, statusview
from deskline.statusview import floor_view
from rich.console import Console

NOW = 1795400000.25
# The plan of examples/floor.toml: row 1 Volt, row 2 Volt then Northwind,
# row 3 Northwind then Harbour, row 4 Harbour; desk-08 is spare.
ACCOUNTS = {
    "volt": "Volt Energy",
    "north": "Northwind Mobile",
    "harbour": "Harbour Bank",
}
OFFLINE = {"desk-05": "offline", "desk-20": "absent"}


def _account_at(row: int, col: int) -> str:
    if row == 1 or (row == 2 and col <= 2):
        return "volt"
    if row == 4 or (row == 3 and col >= 5):
        return "harbour"
    return "north"


def _led(i: int, name: str, colour: str) -> dict[str, Any]:
    return {"id": i, "name": name, "colour": colour}


def _desk(n: int) -> dict[str, Any]:
    row, col = (n - 1) // 6 + 1, (n - 1) % 6 + 1
    name = f"desk-{n:02d}"
    account = _account_at(row, col)
    spare = name == "desk-08"
    online = name not in OFFLINE
    state = ("ready", "on_call", "wrap_up")[n % 3] if online else None
    personal = {"ready": _led(5, "ready", "green"), "on_call": _led(6, "on call", "blue")}.get(
        str(state), _led(7, "wrap due", "amber")
    )
    return {
        "desk": name,
        "console": name,
        "account": account,
        "account_name": ACCOUNTS[account],
        "agent": None if spare else f"a{n:02d}",
        "agent_name": None if spare else f"Agent {n:02d}",
        "row": row,
        "col": col,
        "on_floor": True,
        "online": online,
        "link": "online" if online else OFFLINE[name],
        "since": NOW - 185 if name == "desk-05" else (None if not online else NOW - 3600),
        "state": state,
        "leds": {
            "floor": _led(1, "SL green", "green"),
            "personal": personal,
            "escalation": _led(13, "esc BREACHED", "red")
            if name == "desk-03"
            else _led(10, "none", "off"),
        }
        if online
        else None,
        "top": 13 if name == "desk-03" else 6,
        "display": [ACCOUNTS[account], f"line of {name}", "", ""] if online else [],
        "acw_left_s": 12 if state == "wrap_up" else None,
        "escalation": None,
        "band": "green",
    }


def _sl_row(scope: str, key: str, name: str, account: str, band: str) -> dict[str, Any]:
    return {
        "scope": scope, "key": key, "name": name, "account": account, "band": band,
        "target_pct": 80, "threshold_s": 20, "variant": "short_excluded",
        "sl_interval": 83.3, "sl_today": 79.1, "offered_interval": 12, "offered_today": 311,
        "answered_today": 290, "abandoned_today": 21, "asa_interval_s": 9.5,
        "asa_today_s": 14.2, "abandon_rate_interval_pct": 4.0, "abandon_rate_today_pct": 6.8,
        "waiting": 3, "longest_waiting_s": 41.0,
    }  # fmt: skip


def _escalation(ext_id: str, urgency: str, left: float | None, **kw: Any) -> dict[str, Any]:
    base = {
        "ext_id": ext_id, "kind": "client", "severity": "high", "status": "delivered",
        "desk": "desk-03", "agent": "a03", "account": "volt", "account_name": "Volt Energy",
        "queue": "volt-billing", "ticket": "", "raised": NOW - 1000, "age_s": 1000,
        "ack_due": NOW + (left or 0), "resolve_due": NOW + 7200, "acked": None,
        "deadline": None if left is None else NOW + left, "left_s": left,
        "breached": [], "urgency": urgency,
    }  # fmt: skip
    return base | kw


def _health(n: int) -> dict[str, Any]:
    name = f"desk-{n:02d}"
    return {
        "device_id": name, "desk": name, "online": name not in OFFLINE,
        "last_heartbeat": NOW - 2, "heartbeat_age_s": 2.0, "fw_version": "1.28.0",
        "app_version": "0.1.0", "app_slot": 1, "free_heap": 41000, "min_free_heap": 38000,
        "boots": 4, "last_reset_cause": 1, "reset_cause_name": "power on", "journal_depth": 0,
        "link_errors": 0, "rx_errors": 0, "reconnects": 0,
        "config_version": 3, "config_expected": 3,
    }  # fmt: skip


def _code(
    code: int, label: str, contacts: int, share: float, cumulative: float, failure: bool
) -> dict[str, Any]:
    return {
        "code": code, "label": label, "contacts": contacts, "share_pct": share,
        "cumulative_pct": cumulative, "failure_demand": failure,
    }  # fmt: skip


def floor_snapshot() -> dict[str, Any]:
    """24 desks on a 4x6 plan, two offline, a desk off the plan, a stray console,
    three escalations (one breached), an ACD feed, and consoles with problems."""
    desks = [_desk(n) for n in range(1, 25)]
    off_plan = _desk(1) | {"desk": "desk-25", "console": "desk-25", "row": 0, "col": 0}
    stray = _desk(2) | {
        "desk": "", "console": "spare-c3", "account": "", "account_name": "", "agent": None,
        "agent_name": None, "row": 0, "col": 0, "on_floor": False, "online": False,
        "link": "connecting", "since": None, "state": None, "leds": None, "display": [],
    }  # fmt: skip
    health = [_health(n) for n in range(1, 25)]
    health[4] |= {"heartbeat_age_s": 185.0, "last_heartbeat": NOW - 185}
    health[6] |= {"link_errors": 3, "reset_cause_name": "watchdog", "last_reset_cause": 3}
    health[9] |= {"config_version": 2}
    return {
        "version": 812,
        "generated": NOW,
        "floor": {
            "name": "Leeds floor 2",
            "errors": [],
            "rows": 4,
            "cols": 6,
            "accounts": [
                dict(key=k, name=v, target_pct=80, threshold_s=20, variant="short_excluded")
                for k, v in ACCOUNTS.items()
            ],
        },
        "desks": [*desks, off_plan, stray],
        "service": {
            "acd": True,
            "interval_min": 15,
            "interval_start": NOW - 500,
            "accounts": [
                _sl_row("account", "volt", "Volt Energy", "volt", "green"),
                _sl_row("account", "north", "Northwind Mobile", "north", "red"),
            ],
            "queues": [
                _sl_row("queue", "volt-billing", "volt-billing", "volt", "amber"),
                _sl_row("queue", "north-sales", "north-sales", "north", "unknown"),
            ],
        },
        "escalations": [
            _escalation(
                "DL-desk-03-1-57",
                "breached",
                -400,
                status="breached",
                breached=["ack"],
                severity="urgent",
            ),
            _escalation("DL-desk-11-1-9", "due_soon", 120, desk="desk-11"),
            _escalation(
                "DL-desk-14-2-3",
                "no_deadline",
                None,
                kind="floor_help",
                desk="desk-14",
                status="raised",
                severity="normal",
            ),
        ],
        "demand": [
            {
                "account": "volt",
                "account_name": "Volt Energy",
                "contacts": 120,
                "failure_demand": 43,
                "failure_demand_pct": 35.8,
                "codes": [
                    _code(7, "Confusing bill", 30, 25.0, 25.0, True),
                    _code(2, "Meter reading", 20, 16.7, 41.7, False),
                    _code(1, "Billing query", 13, 10.8, 52.5, True),
                    _code(4, "Moving home", 5, 4.2, 56.7, False),
                ],
            },
        ],
        "health": health,
        "daemon": {
            "started": NOW - 10000,
            "uptime_s": 10000.0,
            "events_per_s": 2.5,
            "committed_events": 40211,
            "store_failures": 0,
            "ports": 24,
            "online": 22,
            "link_errors": 3,
        },
    }


def quiet_snapshot() -> dict[str, Any]:
    """No ACD feed, no plan, nothing open, a floor file with an error, a failing store."""
    snap = floor_snapshot()
    snap["floor"] |= {"rows": 0, "cols": 0, "errors": ["floor.toml: desk-09: unknown agent 'a99'"]}
    for d in snap["desks"]:
        d |= {"row": 0, "col": 0}
    snap["service"] = {"acd": False, "interval_min": 0, "interval_start": None,
                       "accounts": [], "queues": []}  # fmt: skip
    snap["escalations"] = []
    snap["demand"] = []
    snap["health"] = [_health(1)]
    snap["daemon"]["store_failures"] = 2
    return snap


def render(snap: dict[str, Any], width: int, health: bool = False, styles: bool = False) -> str:
    out = Console(record=True, width=width, file=io.StringIO(), color_system="standard")
    out.print(floor_view(snap, health))
    return out.export_text(styles=styles)


def lines_with(text: str, word: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if word in line]


# --- the map (wide) and the table (narrow) ---------------------------------------------


def test_wide_terminal_draws_the_plan_with_row_1_at_the_bottom() -> None:
    text = render(floor_snapshot(), 160)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 160
    # Each row of the plan shares one line of panel titles, left to right.
    for row in range(1, 5):
        names = [f"desk-{(row - 1) * 6 + c:02d}" for c in range(1, 7)]
        (title,) = lines_with(text, names[0])[:1]
        cols = [lines[title].index(n) for n in names]
        assert cols == sorted(cols), (row, lines[title])
    # The furthest row is drawn first, row 1 nearest the bench last.
    tops = [lines_with(text, f"desk-{(row - 1) * 6 + 1:02d}")[0] for row in (4, 3, 2, 1)]
    assert tops == sorted(tops)
    assert "row 1 nearest the supervisors' bench" in text


def test_wide_map_cells_show_agent_state_lights_and_oled() -> None:
    text = render(floor_snapshot(), 160)
    lines = text.splitlines()
    title = lines_with(text, "desk-01")[0]
    x = lines[title].index("desk-01")
    cell = [line[x - 2 : x + 20] for line in lines[title : title + 6]]
    body = "\n".join(cell)
    # desk-01: n % 3 == 1 → on call; floor green steady, personal on call steady, no escalation.
    assert "Agent 01" in body and "ON CALL" in body
    assert "●G ●C ○-" in body
    assert "Volt Energy" in body
    # A spare desk says so.
    assert "spare desk" in text
    # desk-03's escalation light: breached, fast blink, letter B.
    assert "✱B" in text


def test_offline_desks_say_so_in_words_on_the_map() -> None:
    text = render(floor_snapshot(), 160)
    lines = text.splitlines()
    for desk, link in (("desk-05", "offline 3m05s"), ("desk-20", "absent")):
        title = lines_with(text, desk)[0]
        x = lines[title].index(desk)
        cell = "\n".join(line[x - 2 : x + 20] for line in lines[title : title + 5])
        assert "OFFLINE" in cell and link in cell, cell
    # Two desks on the plan, and the stray console in the list under it.
    assert text.count("OFFLINE") == 3


def test_narrow_terminal_gets_a_table_in_map_order() -> None:
    text = render(floor_snapshot(), 80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    # One desk a line: no two desks share one.
    assert not any("desk-01" in line and "desk-02" in line for line in lines)
    order = [lines_with(text, f"desk-{n:02d}")[0] for n in (19, 24, 13, 7, 1, 6)]
    assert order == sorted(order)
    row = lines[lines_with(text, "desk-05")[0]]
    assert "OFFLINE" in row and "offline 3m05s" in row and "1·5" in row
    assert "●G ●C ○-" in lines[lines_with(text, "desk-01")[0]]


def test_desks_off_the_plan_are_listed_under_the_floor() -> None:
    for width in (80, 160):
        text = render(floor_snapshot(), width)
        listed = lines_with(text, "not on the floor plan")[0]
        assert lines_with(text, "desk-25")[0] > listed
        stray = text.splitlines()[lines_with(text, "spare-c3")[0]]
        assert "—" in stray and "OFFLINE" in stray and "connecting" in stray


def test_a_legend_says_what_each_letter_and_glyph_means() -> None:
    text = render(floor_snapshot(), 80)
    assert "B BREACHED" in text and "✱ fast" in text and "● steady" in text


# --- service, escalations, demand, health ------------------------------------------------


@pytest.mark.parametrize("width", [80, 160])
def test_service_level_rows_carry_a_word_with_the_colour(width: int) -> None:
    text = render(floor_snapshot(), width)
    lines = text.splitlines()
    volt = lines_with(text, "Volt Energy")
    account = next(i for i in volt if "GREEN" in lines[i])
    assert "● GREEN" in lines[account] and "83.3/79.1" in lines[account]
    # The account's queue sits right under it, indented.
    assert "volt-billing" in lines[account + 1] and "▲ AMBER" in lines[account + 1]
    assert "✖ RED" in text and "○ no data" in text
    assert "80%/20s" in text and "3 · 41s" in text


@pytest.mark.parametrize("width", [80, 160])
def test_breached_escalation_comes_first_in_bold_red(width: int) -> None:
    snap = floor_snapshot()
    text = render(snap, width)
    ids = [lines_with(text, e["ext_id"])[0] for e in snap["escalations"]]
    assert ids == sorted(ids)
    first = text.splitlines()[ids[0]]
    assert "BREACHED" in first and "ack 6m40s OVERDUE" in first
    assert "2m00s left" in text.splitlines()[ids[1]]
    styled = render(snap, width, styles=True).splitlines()
    assert re.search(r"\x1b\[1;31m[^\x1b]*BREACHED", styled[ids[0]])


def test_demand_shows_the_share_and_the_three_biggest_codes() -> None:
    text = render(floor_snapshot(), 160)
    line = text.splitlines()[lines_with(text, "35.8%")[0]]
    assert "43 · 35.8%" in line
    assert line.index("Confusing bill") < line.index("Meter reading") < line.index("Billing")
    assert "Moving home" not in text
    assert "✱7 Confusing bill" in line


def test_health_lists_problems_only_unless_asked_for_all() -> None:
    snap = floor_snapshot()
    text = render(snap, 160)
    assert "console health: 3 of 24 need a look" in text
    assert "desk-05: heartbeat 3m05s ago" in text
    assert "desk-07: last reset: watchdog (boot 4) · 3 bad frames" in text
    assert "desk-10: config v2 behind v3" in text
    assert "1.28.0" not in text
    full = render(snap, 160, health=True)
    assert full.count("1.28.0/0.1.0") == 24
    assert "40/37" in full and "v2→v3" in full


def test_a_quiet_floor_without_acd_or_plan() -> None:
    for width in (80, 160):
        text = render(quiet_snapshot(), width)
        assert "no ACD feed" in text
        assert "no open escalations" in text
        assert "no coded contacts yet today" in text
        assert "all 1 consoles fine" in text
        assert "floor config errors (1)" in text and "unknown agent 'a99'" in text
        assert "2 store failures" in text
        # Without a plan every desk is listed, one a line, under one title.
        assert "furthest row first" not in text and "places none on a plan" in text
        assert len(lines_with(text, "desk-")) >= 25


def test_header_counts_desks_online_and_the_daemon_figures() -> None:
    text = render(floor_snapshot(), 80)
    head = text.splitlines()[0]
    assert "Leeds floor 2" in head and "23/26 online" in head
    assert "2.5 events/s" in head and "40211 stored" in head and "0 store failures" in head


# --- the command ---------------------------------------------------------------------


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """control.request answering op "dashboard" with the fixture snapshot; the requests seen."""
    seen: list[dict[str, Any]] = []
    snap = floor_snapshot()

    def request(path: Path, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        seen.append(req)
        if req["op"] != "dashboard":
            return {"ok": False, "error": f"unknown op {req['op']!r}"}
        return {"ok": True, **copy.deepcopy(snap)}

    monkeypatch.setattr(control, "request", request)
    return seen


def test_status_json_prints_the_snapshot(
    daemon: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["status", "--json", "--control", str(tmp_path / "s.sock")]) == 0
    assert json.loads(capsys.readouterr().out) == floor_snapshot()
    assert daemon == [{"op": "dashboard"}]


def test_status_prints_the_floor_once(
    daemon: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["status", "--control", str(tmp_path / "s.sock")]) == 0
    out = capsys.readouterr().out
    assert "Leeds floor 2" in out and "desk-24" in out and "BREACHED" in out
    assert "1.28.0" not in out
    assert cli.main(["status", "--once", "--health", "--control", str(tmp_path / "s.sock")]) == 0
    assert "1.28.0" in capsys.readouterr().out


def test_an_older_daemon_without_the_dashboard_op_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def request(path: Path, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        return {"ok": False, "error": f"unknown op {req['op']!r}"}

    monkeypatch.setattr(control, "request", request)
    assert cli.main(["status", "--json", "--control", str(tmp_path / "s.sock")]) == 1
    err = capsys.readouterr().err
    assert "older than this deskline" in err and "dashboard" in err
    assert "retrying" in str(statusview.live_view(tmp_path / "s.sock"))


def test_status_needs_a_running_daemon(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["status", "--control", str(tmp_path / "none.sock")]) == 1
    assert "daemon is not running" in capsys.readouterr().err
