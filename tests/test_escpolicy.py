"""Escalation SLA policies: the TOML tables, their problems by key path, and working time."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from deskline import escpolicy
from deskline.escpolicy import Deadlines, Hours, Secret, check_account, check_help
from deskline.floorconfig import FloorConfigError, demo_floor_toml, parse_floor
from hypothesis import given, settings
from hypothesis import strategies as st

LONDON = ZoneInfo("Europe/London")
WEEKDAYS_8_18 = Hours(always=False, zone="Europe/London")


def at(text: str, tz: ZoneInfo = LONDON) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def local(t: float, tz: ZoneInfo = LONDON) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%a %Y-%m-%d %H:%M")


def problems(table: str) -> list[str]:
    try:
        parse_floor(demo_floor_toml(1) + table, "floor.toml")
    except FloorConfigError as e:
        return list(e.problems)
    return []


def test_defaults_are_zendesks_example_24_7_without_a_webhook() -> None:
    policy, found = check_account({}, "accounts.volt.escalation")
    assert found == []
    assert policy.deadlines[1] == Deadlines(600, 7200)  # urgent: 10 min / 2 h
    assert policy.deadlines[2] == Deadlines(1800, 28800)  # high: 30 min / 8 h
    assert policy.hours.always and policy.webhook is None and policy.repeat_days == 7
    assert policy.due(1, 1000.0) == (1600.0, 8200.0)


def test_a_full_table_reads_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {
        "url": "https://hotline.volt.example/deskline",
        "secret_env": "VOLT_SECRET",
        "timeout_s": 5,
        "retry_base_s": 1.5,
        "retry_cap_s": 60,
        "give_up_s": 3600,
        "hours": "business",
        "timezone": "Europe/London",
        "days": ["mon", "tue", "wed", "thu", "fri", "Saturday"],
        "open": "08:30",
        "close": "17:00",
        "holidays": [date(2025, 12, 25)],
        "deadlines": {"urgent": {"ack": "5m", "resolve": "1h30m"}, "low": {"ack": 3600}},
        "repeat_days": 3,
    }
    policy, found = check_account(raw, "accounts.volt.escalation")
    assert found == []
    assert policy.deadlines[1] == Deadlines(300, 5400)
    assert policy.deadlines[4] == Deadlines(3600, 72 * 3600)  # resolve left at its default
    assert policy.hours == Hours(
        False, "Europe/London", frozenset(range(6)), 510, 1020, frozenset({date(2025, 12, 25)})
    )
    assert policy.webhook is not None and policy.webhook.timeout_s == 5
    assert policy.retry.base_s == 1.5 and policy.retry.give_up_s == 3600
    monkeypatch.setenv("VOLT_SECRET", "abc")
    assert policy.webhook.secret.read() == b"abc"
    assert policy.hours.describe() == (
        "business hours mon,tue,wed,thu,fri,sat 08:30-17:00 Europe/London, 1 holidays"
    )


def test_floor_check_reports_policy_problems_with_key_paths() -> None:
    found = problems(
        """
[accounts.volt.escalation]
url = "ftp://x"
secret = "abc"
hours = "office"
timezone = "Europe/Londn"
repeat_days = 0
retry_base_s = 10
retry_cap_s = 5
reapeat_days = 3

[accounts.volt.escalation.deadlines]
urgent = { ack = "2h", resolve = "1h" }
high = { ack = "ten minutes" }
critical = { ack = "1m" }

[help]
ack = "0s"
days = ["mon"]
"""
    )
    at_ = "floor.toml: accounts.volt.escalation."
    assert [p.removeprefix(at_) for p in found] == [
        'reapeat_days: unknown key (did you mean "repeat_days"?)',
        "deadlines.critical: unknown key (keys: urgent, high, normal, low)",
        "deadlines.urgent: ack (2h) is later than resolve (1h): an escalation is acked first",
        'deadlines.high.ack: "ten minutes" is not a duration like "10m", "2h", "1h30m" or "45s"',
        'timezone: unknown time zone "Europe/Londn" (did you mean "Europe/London"?)',
        'hours: must be "24/7" or "business", not "office"',
        'url: must be an http:// or https:// address, not "ftp://x"',
        "retry_cap_s: 5 s is less than retry_base_s (10 s)",
        "repeat_days: must be 1..365, not 0",
        "floor.toml: help.ack: must be 1 s..30 days, not 0 s",
        'floor.toml: help.days: only counts with hours = "business"',
    ]


def test_secrets_come_from_the_environment_or_a_file_and_a_clear_one_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = {"url": "http://127.0.0.1:9000/h"}
    _, found = check_account(url, "e")
    assert [str(f) for f in found] == [
        (
            'e.url: no secret: a webhook is signed with one secret: give secret_env = "NAME" '
            '(an environment variable) or secret_file = "/path"'
        )
    ]
    _, found = check_account({**url, "secret_env": "A", "secret_file": "/x"}, "e")
    assert found[0].path == "e.secret_file" and "secret_env and secret_file" in found[0].message
    policy, found = check_account({**url, "secret": "abc"}, "e")
    assert len(found) == 1 and found[0].warning and "in clear" in found[0].message
    assert policy.webhook is not None and policy.webhook.secret.read() == b"abc"
    assert problems('[accounts.volt.escalation]\nurl = "http://h/x"\nsecret = "abc"\n') == []
    # Read at each use: unset, missing and loose files are named.
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    with pytest.raises(escpolicy.DesklineError, match="NO_SUCH_SECRET is not set"):
        Secret("env", "NO_SUCH_SECRET").read()
    path = tmp_path / "volt.secret"
    with pytest.raises(escpolicy.DesklineError, match="cannot read"):
        Secret("file", str(path)).read()
    path.write_text("s3cret\n")
    path.chmod(0o644)
    assert Secret("file", str(path)).read() == b"s3cret"
    policy, _ = check_account({**url, "secret_file": str(path)}, "e")
    [loose] = escpolicy.secret_findings(policy, "e")
    assert loose.warning and "chmod 600" in loose.message
    path.chmod(0o600)
    assert escpolicy.secret_findings(policy, "e") == []


def test_help_has_one_pair_of_deadlines_and_repeat_days_feed_the_acd() -> None:
    policy, found = check_help({"ack": "1m", "resolve": "20m"})
    assert found == [] and set(policy.deadlines.values()) == {Deadlines(60, 1200)}
    floor = parse_floor(
        demo_floor_toml(3) + '[accounts.volt.escalation]\nrepeat_days = 3\n[help]\nack = "1m"\n'
    )
    assert floor.extra == {"help": {"ack": "1m"}}
    assert escpolicy.help_policy(floor).deadlines[2] == Deadlines(60, 900)
    assert escpolicy.repeat_days(floor) == {"volt": 3, "northwind": 7, "harbour": 7}


def test_durations() -> None:
    assert [escpolicy.parse_duration(v) for v in ("45s", "10m", "2h", "1h30m", "1d", 90)] == [
        45,
        600,
        7200,
        5400,
        86400,
        90,
    ]
    for bad in ("", "10", "m", "1.5h", "-1m", 0, True, "31d"):
        with pytest.raises(ValueError):
            escpolicy.parse_duration(bad)
    assert escpolicy.format_duration(5400) == "1h30m"


# --- working time -------------------------------------------------------------------


def test_a_friday_evening_escalation_is_due_on_monday() -> None:
    h = WEEKDAYS_8_18
    assert local(h.add(at("2025-03-07T17:55"), 600)) == "Mon 2025-03-10 08:05"
    assert local(h.add(at("2025-03-08T12:00"), 0)) == "Mon 2025-03-10 08:00"
    assert local(h.add(at("2025-03-10T07:00"), 7200)) == "Mon 2025-03-10 10:00"
    # 8 h of a 10 h day: from 14:00 it runs into the next morning.
    assert local(h.add(at("2025-03-11T14:00"), 8 * 3600)) == "Wed 2025-03-12 12:00"
    assert h.between(at("2025-03-07T17:00"), at("2025-03-10T09:00")) == 7200


def test_holidays_and_daylight_saving_days() -> None:
    h = Hours(
        False,
        "Europe/London",
        frozenset(range(5)),
        8 * 60,
        18 * 60,
        frozenset({date(2025, 12, 25), date(2025, 12, 26)}),
    )
    assert local(h.add(at("2025-12-24T17:30"), 3600)) == "Mon 2025-12-29 08:30"
    # The clocks go forward on Sunday 30 March: 08:00 is still 08:00 on Monday.
    monday = h.add(at("2025-03-28T17:00"), 7200)
    assert local(monday) == "Mon 2025-03-31 09:00"
    assert monday - at("2025-03-28T17:00") == 64 * 3600 - 3600  # a wall-clock hour shorter
    ny = Hours(False, "America/New_York", frozenset(range(5)), 9 * 60, 17 * 60)
    t = ny.add(at("2025-11-03T08:00", ZoneInfo("America/New_York")), 60)
    assert local(t, ZoneInfo("America/New_York")) == "Mon 2025-11-03 09:01"


ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


@st.composite
def business(draw: st.DrawFn) -> Hours:
    opens = draw(st.integers(0, 22 * 60))
    closes = draw(st.integers(opens + 60, 24 * 60))
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
    holidays = frozenset(draw(st.sets(st.dates(date(2024, 1, 1), date(2026, 12, 31)), max_size=20)))
    return Hours(False, draw(st.sampled_from(ZONES)), days, opens, closes, holidays)


START = st.integers(int(at("2024-01-01T00:00")), int(at("2026-06-30T00:00")))
SPAN = st.integers(0, 20 * 86400)


@settings(max_examples=120, deadline=None)
@given(business(), START, SPAN, SPAN)
def test_working_time_adds_up(h: Hours, start: int, a: int, b: int) -> None:
    end = h.add(start, a)
    assert end >= start
    assert h.between(start, end) == pytest.approx(a, abs=1e-6)
    assert h.add(start, a + b) == pytest.approx(h.add(end, b), abs=1e-6)
    if a <= b:
        assert end <= h.add(start, b)
    assert h.between(start, start + b) <= b
    if a > 0:  # the clock only runs inside a business window
        tz = ZoneInfo(h.zone)
        moment = datetime.fromtimestamp(end - 1e-3, tz)
        assert moment.weekday() in h.days and moment.date() not in h.holidays
        minute = moment.hour * 60 + moment.minute
        assert h.open_min - 60 <= minute <= h.close_min + 60  # DST days shift a window by 1 h


@settings(max_examples=40, deadline=None)
@given(START, SPAN)
def test_around_the_clock_is_plain_addition(start: int, a: int) -> None:
    assert Hours().add(start, a) == start + a
    assert Hours().between(start, start + a) == a
