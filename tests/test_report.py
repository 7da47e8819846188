"""deskline report: failure demand, escalation SLA, CSV/JSON/SVG, the CLI.

The store is built with its real API (a demo floor synced, EVENT batches
applied); the escalation service's SLA columns are written directly, as
that service will.  Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from deskline import cli
from deskline.chart import report_svg
from deskline.errors import DesklineError
from deskline.floorconfig import demo_floor_toml, parse_floor
from deskline.report import (
    build_report,
    demand_report,
    escalation_sla,
    make_period,
    open_readonly,
    parse_when,
    pct,
    quantile,
    shares,
    today,
)
from deskline.report_export import csv_sections, report_csv, report_json, report_text
from deskline.store import Batch, EventRow, Store, migrate
from deskline.wire import codec as E
from hypothesis import given, settings
from hypothesis import strategies as st

LONDON = ZoneInfo("Europe/London")
SVG = "{http://www.w3.org/2000/svg}"


def at(text: str) -> int:
    """Epoch seconds of a London wall-clock time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=LONDON).timestamp())


class Console:
    """Plays one desk's console: its events, numbered as its journal does."""

    def __init__(self, store: Store, device: str) -> None:
        self.store = store
        self.device = device
        self.seq = 0
        store.hello(device, {"next_seq": 1, "first_unacked": 1}, "sim", at("2025-03-01T00:00"))

    def emit(self, kind: int, when: int, a: int = 0, b: int = 0, c: int = 0, ref: int = 0) -> int:
        self.seq += 1
        row = EventRow(self.device, self.seq, self.seq, when, kind, a, b, c, ref, "", float(when))
        assert self.store.apply(Batch(events=[row])) == {self.device: self.seq}
        return self.seq

    def call(
        self, start: str | int, code: int | None, how: int = E.HOW_CODE, talk: int = 60
    ) -> int:
        t = at(start) if isinstance(start, str) else start
        call = self.emit(E.EV_CALL_START, t, a=1)
        self.emit(E.EV_CALL_END, t + talk, a=1, b=talk, ref=call)
        if code is not None:
            self.emit(E.EV_WRAPUP, t + talk + 10, a=code, b=10, c=how, ref=call)
        return call

    def escalate(self, when: str, severity: int, kind: int = 0) -> int:
        return self.emit(E.EV_ESC_RAISE, at(when), a=severity, c=kind)

    def cancel(self, when: str, esc: int) -> None:
        self.emit(E.EV_ESC_CANCEL, at(when), ref=esc)


def sla_columns(store: Store, device: str, esc: int, **cols: Any) -> None:
    """What the escalation service writes: SLA clocks, times, breach marks."""
    if not cols:
        return
    sets = ", ".join(f"{k} = ?" for k in cols)
    with store.transaction() as cur:
        cur.execute(
            f"UPDATE escalations SET {sets} WHERE seq = ? AND console_id = "
            "(SELECT id FROM consoles WHERE device_id = ?)",
            (*cols.values(), esc, device),
        )


def floor_store(path: str | Path = ":memory:", toml: str | None = None) -> Store:
    store = Store(path, synchronous="OFF")  # no fsync: nothing here is about durability
    store.sync_floor(parse_floor(toml or demo_floor_toml(6)))  # desk-01/02 volt, 03/04 northwind
    return store


def shift(store: Store) -> None:
    """Monday 3 March 2025 for Volt Energy (London is on GMT that day)."""
    d1, d2, nw = Console(store, "desk-01"), Console(store, "desk-02"), Console(store, "desk-03")
    # Volt's codes: 1 Billing query (failure), 2 Meter reading, 3 Payment plan,
    # 5 Smart meter fault (failure), 7 Confusing bill (failure), 99 ACW timeout.
    d1.call("2025-03-03T09:05", 1)
    d1.call("2025-03-03T09:20", 1)
    d1.call("2025-03-03T09:40", 2)
    d1.call("2025-03-03T10:10", 5)
    d1.call("2025-03-03T10:30", 99, E.HOW_TIMEOUT)
    d1.call("2025-03-03T10:50", 0, E.HOW_SKIPPED)
    d1.call("2025-03-03T11:00", None)  # no wrap-up yet
    d2.call("2025-03-02T23:59:30", 1)  # answered the day before: wrapped after midnight
    d2.call("2025-03-03T09:10", 7)
    d2.call("2025-03-03T09:50", 1)
    d2.call("2025-03-03T10:20", 3)
    d2.call("2025-03-03T11:59:50", 1)  # wrapped at 12:01: counts at 11:00, its answer
    d2.call("2025-03-03T23:59", 2)  # wrapped on the 4th: still the 3rd's
    nw.call("2025-03-03T09:30", 1)  # another client

    # Escalations to Volt, as the escalation service would have clocked them.
    def esc(when: str, sev: int, **cols: str | int | None) -> int:
        seq = d1.escalate(when, sev)
        vals = {
            k: (at(v) if isinstance(v, str) and k != "breached" else v) for k, v in cols.items()
        }
        sla_columns(store, "desk-01", seq, **vals)
        return seq

    t = "2025-03-03T"
    esc(
        t + "09:00",
        1,
        delivered=t + "09:00:05",
        ack_due=t + "09:10",
        resolve_due=t + "11:00",
        acked=t + "09:05",
        resolved=t + "10:00",
    )  # E1: both in time
    esc(
        t + "09:30",
        1,
        delivered=t + "09:30:05",
        ack_due=t + "09:40",
        resolve_due=t + "11:30",
        acked=t + "09:45",
        resolved=t + "13:00",
        breached="ack,resolve",
    )  # E2: both late
    esc(
        t + "10:00",
        2,
        delivered=t + "10:00:05",
        ack_due=t + "10:10",
        resolve_due=t + "18:00",
        acked=t + "10:10",
    )  # E3: acked on the deadline (in time), resolve pending
    esc(
        t + "11:00",
        2,
        delivered=t + "11:00:05",
        ack_due=t + "11:10",
        resolve_due=t + "19:00",
        breached="ack",
    )  # E4: the service marked the missed ack
    esc(
        t + "12:00", 3, delivered=t + "12:00:05", ack_due=t + "12:30", resolve_due=t + "20:00"
    )  # E5: ack overdue, unmarked (the service was down)
    e6 = esc(t + "13:00", 3, delivered=t + "13:00:05", ack_due=t + "13:30")
    d1.cancel(t + "13:02", e6)  # E6: cancelled before any deadline
    sla_columns(store, "desk-01", e6, cancelled=at(t + "13:02"))
    e7 = esc(t + "14:00", 4, delivered=t + "14:00:05", ack_due=t + "14:10")
    d1.cancel(t + "14:20", e7)  # E7: cancelled after the ack deadline passed
    sla_columns(store, "desk-01", e7, cancelled=at(t + "14:20"))
    esc(
        t + "15:00",
        1,
        delivered=t + "15:00:05",
        ack_due=t + "15:10",
        resolve_due=t + "17:00",
        resolved=t + "15:04",
    )  # E8: resolved outright: that acknowledges it too
    esc(t + "16:00", 2, status=E.ESC_FAILED)  # E9: delivery gave up, no clocks
    esc("2025-03-04T09:00", 1)  # the next day: not in the report
    # Floor help: H1 answered in time, H2 cancelled.
    h1 = d1.escalate(t + "09:15", 2, kind=1)
    sla_columns(
        store,
        "desk-01",
        h1,
        ack_due=at(t + "09:20"),
        resolve_due=at(t + "10:15"),
        acked=at(t + "09:17"),
        resolved=at(t + "09:30"),
    )
    h2 = d1.escalate(t + "10:45", 2, kind=1)
    d1.cancel(t + "10:46", h2)
    # The ACD's calls: two of Volt's four are repeats, one about an open escalation.
    with store.transaction() as cur:
        cur.executemany(
            "INSERT INTO acd_calls (uniqueid, queue, account, callerid, entered, outcome, "
            "repeat_count, escalation) VALUES (?, ?, ?, ?, ?, 'completed', ?, ?)",
            [
                ("u1", "volt-billing", "volt", "0700", at(t + "09:04"), 0, None),
                ("u2", "volt-billing", "volt", "0700", at(t + "09:19"), 1, None),
                ("u3", "volt-smart", "volt", "0711", at(t + "10:09"), 0, None),
                ("u4", "volt-smart", "volt", "0711", at(t + "11:05"), 2, "ESC-4"),
                ("u5", "nw-tech", "northwind", "0722", at(t + "09:29"), 1, None),
                ("u6", "volt-billing", "volt", "0700", at("2025-03-04T09:00"), 3, None),
            ],
        )


NOW = at("2025-03-03T17:00")


@pytest.fixture(scope="module")
def store() -> Any:
    s = floor_store()
    shift(s)
    yield s
    s.close()


@pytest.fixture(scope="module")
def monday() -> Any:
    return make_period(datetime(2025, 3, 3), tz="Europe/London")


@pytest.fixture(scope="module")
def report(store: Store, monday: Any) -> Any:
    return build_report(store, "volt", monday, now=NOW)


# --- failure demand ----------------------------------------------------------------
def test_contacts_by_code_is_a_pareto_with_shares_adding_up(report: Any) -> None:
    d = report.demand
    # 11 contacts: 1 x4, 2 x2, then one each of 0 (skipped), 3, 5, 7, 99.
    # 4/11 = 36.36, 2/11 = 18.18, 1/11 = 9.09: rounded to tenths by largest
    # remainder (the 1s' remainder is the largest), so they add up to 100.0.
    assert [(c.code, c.demand, c.contacts, c.share_pct, c.cumulative_pct) for c in d.codes] == [
        (1, "failure", 4, 36.3, 36.3),
        (2, "value", 2, 18.2, 54.5),
        (0, "none", 1, 9.1, 63.6),
        (3, "value", 1, 9.1, 72.7),
        (5, "failure", 1, 9.1, 81.8),
        (7, "failure", 1, 9.1, 90.9),
        (99, "value", 1, 9.1, 100.0),
    ]
    labels = {c.code: c.label for c in d.codes}
    assert labels[1] == "Billing query" and labels[0] == "No code (skipped)"
    by = {c.code: (c.keyed, c.fallback) for c in d.codes}
    assert by[99] == (0, 1) and by[1] == (4, 0) and by[0] == (0, 0)
    # Failure demand by cause: 4, 1, 1 of 6 -> 66.7, 16.7, 16.6 (ties go to the earlier row).
    assert [(c.code, c.contacts, c.share_pct, c.share_of_failure_pct) for c in d.causes] == [
        (1, 4, 36.3, 66.7),
        (5, 1, 9.1, 16.7),
        (7, 1, 9.1, 16.6),
    ]


def test_summary_counts_failure_demand_of_all_and_of_coded_contacts(report: Any) -> None:
    s = report.demand.summary
    assert (s.contacts, s.failure, s.value, s.unclassified) == (11, 6, 4, 1)
    assert s.failure_pct == 54.5  # 6/11
    assert s.coded == 9  # not the timeout, not the skipped one
    assert s.failure_of_coded_pct == 66.7  # 6/9
    assert s.by_how == {"code": 9, "timeout": 1, "skipped": 1, "forced": 0, "interrupted": 0}
    assert s.calls_without_wrapup == 1
    # Repeat contacts: u2 and u4 of u1..u4; u4 is about an open escalation.
    assert (s.acd_contacts, s.repeat_contacts, s.repeat_pct) == (4, 2, 50.0)
    assert s.repeats_about_open_escalation == 1


def test_contacts_count_in_the_interval_their_call_was_answered(report: Any) -> None:
    rows = {r.label: r for r in report.demand.intervals}
    assert len(report.demand.intervals) == 24
    assert (rows["09:00"].contacts, rows["09:00"].failure, rows["09:00"].failure_pct) == (
        5,
        4,
        80.0,
    )
    assert (rows["10:00"].contacts, rows["10:00"].failure, rows["10:00"].unclassified) == (4, 1, 1)
    assert rows["10:00"].failure_pct == 25.0
    assert (rows["11:00"].contacts, rows["11:00"].failure_pct) == (1, 100.0)  # wrapped at 12:01
    assert (rows["12:00"].contacts, rows["12:00"].failure_pct) == (0, None)
    assert (rows["23:00"].contacts, rows["23:00"].failure_pct) == (1, 0.0)  # wrapped on the 4th
    assert rows["00:00"].contacts == 0  # the call answered on the 2nd is not here
    assert sum(r.contacts for r in report.demand.intervals) == 11
    assert [rows[h].escalations for h in ("09:00", "10:00", "13:00", "16:00")] == [2, 1, 1, 1]
    assert (rows["09:00"].floor_help, rows["10:00"].floor_help) == (1, 1)
    assert (rows["09:00"].acd_contacts, rows["09:00"].repeat_contacts) == (2, 1)


def test_today_is_the_dashboard_view(store: Store) -> None:
    d = today(store, "volt", tz="Europe/London", now=at("2025-03-03T12:00"))
    assert d.period.start == datetime(2025, 3, 3, tzinfo=LONDON)
    assert d.summary.contacts == 11 and d.codes[0].code == 1
    other = today(store, "northwind", tz="Europe/London", now=at("2025-03-03T12:00"))
    assert [(c.code, c.contacts, c.demand) for c in other.codes] == [(1, 1, "failure")]


# --- escalation SLA ------------------------------------------------------------------
def test_client_escalation_sla_overall(report: Any) -> None:
    o = report.client.overall
    # E1..E9; E6 and E7 cancelled (E7 after its ack deadline); E9 never delivered.
    assert (o.raised, o.delivered, o.failed, o.cancelled, o.cancelled_after_breach) == (
        9,
        8,
        1,
        2,
        1,
    )
    assert o.open == 4  # E3, E4, E5, E9
    # Ack: met E1, E3 (on the deadline), E8 (resolved); breached E2, E4 (mark), E5 (overdue).
    assert (o.ack_met, o.ack_breached, o.ack_pending, o.ack_no_deadline) == (3, 3, 0, 1)
    assert o.ack_compliance_pct == 50.0
    # Resolve: met E1, E8; breached E2; pending E3, E4, E5 (deadline after 17:00).
    assert (o.resolve_met, o.resolve_breached, o.resolve_pending, o.resolve_no_deadline) == (
        2,
        1,
        3,
        1,
    )
    assert o.resolve_compliance_pct == 66.7
    # To ack: 240, 300, 600, 900 s -> median 450, p90 at rank 2.7: 600 + 0.7 * 300.
    assert (o.ack_median_s, o.ack_p90_s) == (450.0, 810.0)
    # To resolve: 240, 3600, 12600 -> median 3600, p90 at rank 1.8: 3600 + 0.8 * 9000.
    assert (o.resolve_median_s, o.resolve_p90_s) == (3600.0, 10800.0)


def test_client_escalation_sla_by_severity(report: Any) -> None:
    s1, s2, s3, s4 = report.client.by_severity
    assert [f.severity for f in report.client.by_severity] == [1, 2, 3, 4]
    assert (s1.raised, s1.ack_met, s1.ack_breached, s1.ack_compliance_pct) == (3, 2, 1, 66.7)
    assert (s1.resolve_compliance_pct, s1.open, s1.ack_median_s) == (66.7, 0, 300.0)
    assert (s2.raised, s2.ack_compliance_pct, s2.resolve_compliance_pct) == (3, 50.0, None)
    assert (s2.resolve_pending, s2.ack_no_deadline, s2.failed, s2.open) == (2, 1, 1, 3)
    assert (s3.raised, s3.cancelled, s3.ack_compliance_pct, s3.open) == (2, 1, 0.0, 1)
    assert (s4.raised, s4.cancelled, s4.cancelled_after_breach) == (1, 1, 1)
    assert s4.ack_compliance_pct is None and s4.ack_median_s is None
    assert sum(f.raised for f in report.client.by_severity) == report.client.overall.raised


def test_floor_help_is_reported_apart(report: Any) -> None:
    h = report.floor_help.overall
    assert (h.raised, h.cancelled, h.ack_met, h.resolve_met, h.open) == (2, 1, 1, 1, 0)
    assert (h.ack_compliance_pct, h.ack_median_s) == (100.0, 120.0)


def test_an_open_escalation_breaches_once_its_deadline_passes(store: Store, monday: Any) -> None:
    later, _ = escalation_sla(store, "volt", monday, now=at("2025-03-03T23:00"))
    # E3, E4, E5 are past their resolve deadlines now: 2 met of 6 decided.
    assert (later.overall.resolve_breached, later.overall.resolve_pending) == (4, 0)
    assert later.overall.resolve_compliance_pct == 33.3


def test_as_of_an_earlier_time_later_events_have_not_happened(store: Store, monday: Any) -> None:
    client, help_ = escalation_sla(store, "volt", monday, now=at("2025-03-03T09:50"))
    o = client.overall
    # E1 (acked 09:05, resolved at 10:00: not yet) and E2 (acked 09:45, after 09:40).
    assert (o.raised, o.open, o.ack_met, o.ack_breached, o.ack_compliance_pct) == (2, 2, 1, 1, 50.0)
    assert (o.resolve_pending, o.resolve_compliance_pct, o.resolve_median_s) == (2, None, None)
    # H1 was resolved at 09:30; H2 (10:45) had not been raised.
    assert (help_.overall.raised, help_.overall.resolve_met) == (1, 1)


# --- arithmetic ----------------------------------------------------------------------
def test_rounding_helpers() -> None:
    assert shares([1, 1, 1]) == [33.4, 33.3, 33.3]
    assert shares([]) == [] and shares([0, 0]) == [0.0, 0.0]
    assert (pct(1, 8), pct(1, 3), pct(2, 3), pct(0, 5), pct(1, 0)) == (12.5, 33.3, 66.7, 0.0, None)
    assert pct(1, 2000) == 0.1  # 0.05 % rounds half up
    assert quantile([5.0], 0.9) == 5.0 and quantile([], 0.5) is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


@pytest.fixture(scope="module")
def scratch() -> Any:
    """One store for every hypothesis example; each example takes a day of its own."""
    s = floor_store()
    yield Console(s, "desk-01"), itertools.count()
    s.close()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 3, 5, 7, 8, 42, 99]),  # 42: not Volt's
            st.sampled_from([E.HOW_CODE, E.HOW_TIMEOUT, E.HOW_SKIPPED, E.HOW_FORCED]),
            st.integers(0, 86399),
        ),
        max_size=40,
    ),
    st.sampled_from(["15", "60", "day"]),
)
def test_shares_add_up_over_random_wrapups(
    scratch: tuple[Console, Any], wraps: list[tuple[int, int, int]], interval: str
) -> None:
    console, days = scratch
    day = at("2026-01-01T00:00") + 86400 * next(days)
    for code, how, second in wraps:
        console.call(day + second, code, how, talk=0)
    start = datetime.fromtimestamp(day, LONDON)
    d = demand_report(console.store, "volt", make_period(start, tz=LONDON, interval=interval))
    s = d.summary
    assert s.contacts == len(wraps)
    assert sum(c.contacts for c in d.codes) == s.contacts
    assert s.failure + s.value + s.unclassified == s.contacts
    assert sum(i.contacts for i in d.intervals) == s.contacts
    assert sum(i.failure for i in d.intervals) == s.failure
    if wraps:
        assert sum(round(c.share_pct * 10) for c in d.codes) == 1000
        assert d.codes[-1].cumulative_pct == 100.0
        assert [c.contacts for c in d.codes] == sorted((c.contacts for c in d.codes), reverse=True)
    if s.failure:
        assert sum(round(c.share_of_failure_pct * 10) for c in d.causes) == 1000
    for v in (s.failure_pct, s.failure_of_coded_pct, *(i.failure_pct for i in d.intervals)):
        assert v is None or 0 <= v <= 100


# --- time ----------------------------------------------------------------------------
def test_intervals_follow_the_clock_changes() -> None:
    spring = make_period(datetime(2025, 3, 30), tz="Europe/London", interval="15")
    s = Store(":memory:")
    try:
        s.sync_floor(parse_floor(demo_floor_toml(2)))
        rows = demand_report(s, "volt", spring).intervals
        assert len(rows) == 92  # 23 hours
        assert [r.label for r in rows[3:5]] == ["00:45", "02:00"]
        autumn = make_period(datetime(2025, 10, 26), tz="Europe/London", interval="60")
        labels = [r.label for r in demand_report(s, "volt", autumn).intervals]
        assert len(labels) == 25 and labels[1:3] == ["01:00", "01:00"]
        days = make_period(datetime(2025, 3, 29), datetime(2025, 4, 1), tz="Europe/London")
        rows = demand_report(s, "volt", days).intervals
        assert days.interval == "day" and [r.label for r in rows] == [
            "Sat 29 Mar",
            "Sun 30 Mar",
            "Mon 31 Mar",
        ]
        assert rows[1].end.timestamp() - rows[1].start.timestamp() == 23 * 3600
        # A start inside an interval gives a short first interval, then the clock's.
        odd = make_period(
            datetime(2025, 3, 3, 9, 10), datetime(2025, 3, 3, 10), tz=LONDON, interval="30"
        )
        assert [r.label for r in demand_report(s, "volt", odd).intervals] == ["09:10", "09:30"]
    finally:
        s.close()


def test_times_and_periods_are_checked() -> None:
    assert parse_when("2025-03-03T09:30", "Europe/London").utcoffset().total_seconds() == 0
    assert parse_when("yesterday", "Europe/London", now=at("2025-03-03T12:00")) == datetime(
        2025, 3, 2, tzinfo=LONDON
    )
    with pytest.raises(DesklineError, match="YYYY-MM-DD"):
        parse_when("3/3/2025")
    with pytest.raises(DesklineError, match="time zone"):
        parse_when("2025-03-03", "Mars/Olympus")
    with pytest.raises(DesklineError, match="empty"):
        make_period(datetime(2025, 3, 3), datetime(2025, 3, 3))
    with pytest.raises(DesklineError, match="interval"):
        make_period(datetime(2025, 3, 3), interval="45")
    with pytest.raises(DesklineError, match="longer --interval"):
        make_period(datetime(2025, 1, 1), datetime(2026, 1, 1), tz=LONDON, interval="15")


# --- output --------------------------------------------------------------------------
def test_csv_parses_back_to_the_figures(report: Any) -> None:
    sections = csv_sections(report_csv(report))
    assert list(sections) == ["summary", "codes", "failure_causes", "intervals", "escalations"]
    summary = {r["metric"]: r["value"] for r in sections["summary"]}
    assert (summary["contacts"], summary["failure_pct"], summary["how_timeout"]) == (
        "11",
        "54.5",
        "1",
    )
    assert summary["account_name"] == "Volt Energy" and summary["tz"] == "Europe/London"
    codes = sections["codes"]
    assert [(r["code"], r["contacts"], r["share_pct"]) for r in codes[:2]] == [
        ("1", "4", "36.3"),
        ("2", "2", "18.2"),
    ]
    assert sum(int(r["contacts"]) for r in codes) == 11
    assert len(sections["intervals"]) == 24 and sections["intervals"][12]["failure_pct"] == ""
    esc = {(r["kind"], r["severity"]): r for r in sections["escalations"]}
    assert esc[("client", "all")]["ack_compliance_pct"] == "50.0"
    assert esc[("floor_help", "all")]["raised"] == "2"
    assert len(esc) == 10


# The JSON's shape is an interface (dashboard, client scripts): fields may be
# added, never renamed or dropped without a new schema string.
JSON_KEYS = {
    "": [
        "account",
        "as_of",
        "codes",
        "contacts",
        "escalations",
        "failure_causes",
        "intervals",
        "period",
        "schema",
    ],
    "period": ["from", "interval", "to", "tz"],
    "contacts": [
        "acd_contacts",
        "by_how",
        "calls_without_wrapup",
        "coded",
        "contacts",
        "failure",
        "failure_of_coded_pct",
        "failure_pct",
        "repeat_contacts",
        "repeat_pct",
        "repeats_about_open_escalation",
        "unclassified",
        "value",
    ],
    "codes": [
        "code",
        "contacts",
        "cumulative_pct",
        "demand",
        "fallback",
        "keyed",
        "label",
        "share_pct",
    ],
    "failure_causes": ["code", "contacts", "label", "share_of_failure_pct", "share_pct"],
    "intervals": [
        "acd_contacts",
        "end",
        "escalations",
        "failure",
        "failure_pct",
        "floor_help",
        "label",
        "repeat_contacts",
        "start",
        "unclassified",
        "contacts",
        "value",
    ],
    "sla": [
        "ack_breached",
        "ack_compliance_pct",
        "ack_median_s",
        "ack_met",
        "ack_no_deadline",
        "ack_p90_s",
        "ack_pending",
        "cancelled",
        "cancelled_after_breach",
        "delivered",
        "failed",
        "open",
        "raised",
        "resolve_breached",
        "resolve_compliance_pct",
        "resolve_median_s",
        "resolve_met",
        "resolve_no_deadline",
        "resolve_p90_s",
        "resolve_pending",
        "severity",
    ],
}


def test_json_schema_is_stable(report: Any) -> None:
    doc = json.loads(json.dumps(report_json(report)))
    assert doc["schema"] == "deskline.report/1"
    assert sorted(doc) == sorted(JSON_KEYS[""])
    for key in ("period", "contacts"):
        assert sorted(doc[key]) == sorted(JSON_KEYS[key])
    for key in ("codes", "failure_causes", "intervals"):
        assert doc[key] and all(sorted(r) == sorted(JSON_KEYS[key]) for r in doc[key])
    for kind in ("client", "floor_help"):
        e = doc["escalations"][kind]
        assert sorted(e) == ["by_severity", "overall"]
        for f in (e["overall"], *e["by_severity"]):
            assert sorted(f) == sorted(JSON_KEYS["sla"])
    assert doc["period"]["from"] == "2025-03-03T00:00:00+00:00"
    assert doc["intervals"][9]["start"] == "2025-03-03T09:00:00+00:00"
    assert doc["escalations"]["client"]["overall"]["severity"] is None


def test_text_table_names_the_figures(report: Any) -> None:
    text = report_text(report)
    assert "Volt Energy (volt)" in text and "54.5 %" in text and "Billing query" in text
    assert "2 cancelled at the desk" in text and "7 m 30 s" in text  # median ack 450 s


def _svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    return "\n".join("".join(t.itertext()) for t in root.iter(SVG + "text"))


def test_svg_is_well_formed_and_shows_codes_and_shares(report: Any) -> None:
    svg = report_svg(report)
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg" and root.get("viewBox") == "0 0 1000 1414"
    assert root.findtext(SVG + "title") == "Volt Energy: failure demand and escalations"
    text = _svg_text(svg)
    for shown in (
        "1 Billing query",
        "5 Smart meter fault",
        "36.3 %",
        "54.5 %",
        "Severity 1",
        "3 of 6 (50.0 %)",
        "Mon 03 Mar 2025 00:00",
    ):
        assert shown in text, shown
    assert report_svg(report) == svg  # deterministic


def test_svg_escapes_what_the_floor_config_lets_through(monday: Any) -> None:
    toml = (
        demo_floor_toml(2)
        .replace('label = "Billing query"', 'label = "Bills <late> & \\"wrong\\""')
        .replace('name = "Volt Energy"', 'name = "Volt & <Co>"')
    )
    s = floor_store(toml=toml)
    try:
        Console(s, "desk-01").call("2025-03-03T09:05", 1)
        r = build_report(s, "volt", monday, now=NOW)
        svg = report_svg(r)
        text = _svg_text(svg)
        assert '1 Bills <late> & "wrong"' in text and "Volt & <Co>" in text
        assert "<late>" not in svg
    finally:
        s.close()


def test_a_long_tail_of_codes_and_intervals_still_fits_the_page() -> None:
    s = floor_store()
    try:
        console = Console(s, "desk-01")
        t0 = at("2025-03-03T08:00")
        for code in range(10, 40):  # 30 codes Volt's table does not hold
            console.call(t0 + 600 * code, code)
        period = make_period(datetime(2025, 3, 3), datetime(2025, 3, 6), tz=LONDON, interval="15")
        svg = report_svg(build_report(s, "volt", period, now=NOW))
        root = ET.fromstring(svg)
        assert root.get("viewBox") == "0 0 1000 1414"
        text = _svg_text(svg)
        assert "Not shown: 6 more codes with 6 contacts." in text
        assert "03 Mar 00:00" in text  # a multi-day axis names the day
    finally:
        s.close()


def test_empty_period_still_draws_a_page(store: Store) -> None:
    r = build_report(store, "harbour", make_period(datetime(2025, 3, 3), tz=LONDON), now=NOW)
    assert r.demand.summary.contacts == 0 and r.demand.summary.failure_pct is None
    text = _svg_text(report_svg(r))
    assert "No contacts in this period" in text
    assert "No escalations to the client were raised in this period." in text
    assert csv_sections(report_csv(r))["codes"] == []


# --- the database and the command ----------------------------------------------------
@pytest.fixture
def db_file(tmp_path: Path) -> Any:
    path = tmp_path / "state" / "deskline.db"
    path.parent.mkdir()
    s = floor_store(path)
    shift(s)
    yield path, s  # left open: the daemon may be running while a report reads
    s.close()


def test_read_only_connection_refuses_writes_and_foreign_files(
    db_file: tuple[Path, Store], tmp_path: Path
) -> None:
    db = open_readonly(db_file[0])
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db.execute("DELETE FROM wrapups")
        r = build_report(db, "volt", make_period(datetime(2025, 3, 3), tz=LONDON), now=NOW)
        assert r.demand.summary.contacts == 11
    finally:
        db.close()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    c.close()
    with pytest.raises(DesklineError, match="not a deskline database"):
        open_readonly(other)
    old = tmp_path / "old.db"
    c = sqlite3.connect(old, isolation_level=None)
    migrate(c, target=2)
    c.close()
    with pytest.raises(DesklineError, match="schema v2"):
        open_readonly(old)


def test_cli_report_json_and_chart(
    db_file: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "volt.svg"
    args = [
        "report",
        "--account",
        "volt",
        "--from",
        "2025-03-03",
        "--to",
        "2025-03-04",
        "--tz",
        "Europe/London",
        "--db",
        str(db_file[0]),
    ]
    assert cli.main([*args, "--json", "--chart", str(chart)]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["contacts"]["contacts"] == 11 and doc["period"]["interval"] == "60"
    assert f"chart: {chart}" in out.err
    assert "Billing query" in _svg_text(chart.read_text())
    assert cli.main([*args, "--format", "csv", "--interval", "day"]) == 0
    sections = csv_sections(capsys.readouterr().out)
    assert len(sections["intervals"]) == 1


def test_cli_finds_the_daemons_store_under_the_state_dir(
    db_file: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESKLINE_STATE", str(db_file[0].parent))
    assert (
        cli.main(["report", "--account", "volt", "--from", "2025-03-03", "--tz", "Europe/London"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Failure demand 6 (54.5 %)" in out
    # Judged as of 17:00 (the test's NOW): 3 resolve deadlines still ahead, 2 of 3 met.
    assert "2 of 6  33.3 %" in out  # as of now, long after: every deadline has passed
    assert (
        cli.main(
            [
                "report",
                "--account",
                "volt",
                "--from",
                "2025-03-03",
                "--tz",
                "Europe/London",
                "--as-of",
                "2025-03-03T17:00",
            ]
        )
        == 0
    )
    assert "2 of 3  66.7 %" in capsys.readouterr().out


def test_cli_errors_say_what_to_do(
    db_file: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["report", "--from", "2025-03-03", "--db"]
    assert cli.main([*base, str(db_file[0]), "--account", "acme"]) == 1
    err = capsys.readouterr().err
    assert "no account 'acme'" in err and "volt (Volt Energy)" in err and "harbour" in err
    assert cli.main([*base, str(tmp_path / "missing.db"), "--account", "volt"]) == 1
    assert "no database at" in capsys.readouterr().err
    assert cli.main([*base, str(db_file[0]), "--account", "volt", "--chart", "x.png"]) == 1
    assert "FILE.svg" in capsys.readouterr().err
