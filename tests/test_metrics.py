"""Prometheus metrics from the floor snapshot, and the Grafana dashboard over them."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

from deskline import metrics
from deskline.metrics import CONTENT_TYPE, METRICS, render
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "tools" / "grafana" / "deskline.json"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: bytes) -> tuple[Series, set[str]]:
    """The samples of a scrape by (name, labels), and its family names (HELP/TYPE lines)."""
    series: Series = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(body.decode("utf-8")):
        families.add(family.name)
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in series, f"duplicate series {key}"
            series[key] = sample.value
    return series, families


def value(series: Series, metric: str, /, **labels: str) -> float:
    return series[(metric, frozenset(labels.items()))]


def names(series: Series) -> set[str]:
    return {name for name, _ in series}


def sl_row(scope: str, key: str, account: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "scope": scope,
        "key": key,
        "name": key.title(),
        "account": account,
        "band": "green",
        "target_pct": 80,
        "threshold_s": 20,
        "variant": "short_excluded",
        "sl_interval": 83.3,
        "sl_today": 79.1,
        "offered_interval": 12,
        "offered_today": 311,
        "answered_today": 290,
        "abandoned_today": 21,
        "asa_interval_s": 9.5,
        "asa_today_s": 14.2,
        "abandon_rate_interval_pct": 4.0,
        "abandon_rate_today_pct": 6.8,
        "waiting": 3,
        "longest_waiting_s": 41.0,
    }
    row.update(over)
    return row


def escalation(ext_id: str, account: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ext_id": ext_id,
        "kind": "client",
        "severity": "high",
        "status": "acknowledged",
        "desk": "desk-03",
        "agent": "a03",
        "account": account,
        "account_name": account.title(),
        "queue": f"{account}-billing",
        "ticket": "",
        "raised": 1795399000.0,
        "age_s": 1000,
        "ack_due": 1795399600.0,
        "resolve_due": 1795406200.0,
        "acked": 1795399100.0,
        "deadline": 1795406200.0,
        "left_s": 6200,
        "breached": [],
        "urgency": "running",
    }
    row.update(over)
    return row


def health(device_id: str, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "device_id": device_id,
        "desk": device_id,
        "online": True,
        "last_heartbeat": 1795399998.0,
        "heartbeat_age_s": 2.0,
        "fw_version": "1.28.0",
        "app_version": "0.1.0",
        "app_slot": 1,
        "free_heap": 41000,
        "min_free_heap": 38000,
        "boots": 4,
        "last_reset_cause": 1,
        "reset_cause_name": "power on",
        "journal_depth": 0,
        "link_errors": 0,
        "rx_errors": 0,
        "reconnects": 0,
        "config_version": 3,
        "config_expected": 3,
    }
    row.update(over)
    return row


def desk(name: str, account: str, state: str | None, online: bool = True) -> dict[str, Any]:
    return {
        "desk": name,
        "console": name,
        "account": account,
        "account_name": account.title(),
        "agent": "a01",
        "agent_name": "Asha Patel",
        "row": 1,
        "col": 1,
        "on_floor": True,
        "online": online,
        "link": "online" if online else "offline",
        "since": None,
        "state": state,
        "leds": None,
        "top": 6,
        "display": ["", "", "", ""],
        "acw_left_s": None,
        "escalation": None,
        "band": "green",
    }


def floor_snapshot() -> dict[str, Any]:
    """A floor of two accounts as docs/dashboard.md describes it, with some nulls."""
    return {
        "version": 812,
        "generated": 1795400000.25,
        "floor": {
            "name": "Leeds floor 2",
            "errors": ["line 3: bad colour"],
            "rows": 4,
            "cols": 6,
            "accounts": [
                {
                    "key": "volt",
                    "name": "Volt Energy",
                    "target_pct": 80,
                    "threshold_s": 20,
                    "variant": "short_excluded",
                },
                {
                    "key": "aqua",
                    "name": "Aqua Water",
                    "target_pct": 90,
                    "threshold_s": 30,
                    "variant": "answered",
                },
            ],
        },
        "desks": [
            desk("desk-01", "volt", "on_call"),
            desk("desk-02", "volt", "ready"),
            desk("desk-03", "volt", None, online=False),
            desk("desk-04", "aqua", "wrap_up"),
            {**desk("loose-1", "", None), "on_floor": False},
        ],
        "service": {
            "acd": True,
            "interval_min": 15,
            "interval_start": 1795399500.0,
            "accounts": [
                sl_row("account", "volt", "volt"),
                sl_row(
                    "account",
                    "aqua",
                    "aqua",
                    band="red",
                    target_pct=90,
                    sl_interval=None,
                    sl_today=None,
                    asa_interval_s=None,
                    asa_today_s=None,
                    abandon_rate_interval_pct=None,
                    abandon_rate_today_pct=None,
                    waiting=0,
                    longest_waiting_s=None,
                    offered_interval=0,
                ),
            ],
            "queues": [
                sl_row("queue", "volt-billing", "volt", band="amber", sl_interval=72.5),
                sl_row("queue", "volt-moves", "volt", waiting=1, longest_waiting_s=7.5),
            ],
        },
        "escalations": [
            escalation(
                "DL-desk-03-1-57",
                "volt",
                status="breached",
                breached=["ack"],
                urgency="breached",
                severity="urgent",
                age_s=1800,
                left_s=-400,
            ),
            escalation("DL-desk-01-1-58", "volt"),
            escalation(
                "DL-desk-04-1-12",
                "aqua",
                kind="floor_help",
                severity="normal",
                status="raised",
                ack_due=None,
                resolve_due=None,
                deadline=None,
                left_s=None,
                urgency="no_deadline",
                age_s=60,
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
                    {
                        "code": 7,
                        "label": "Confusing bill",
                        "contacts": 30,
                        "share_pct": 25.0,
                        "cumulative_pct": 25.0,
                        "failure_demand": True,
                    },
                    {
                        "code": 2,
                        "label": "New supply",
                        "contacts": 20,
                        "share_pct": 16.7,
                        "cumulative_pct": 41.7,
                        "failure_demand": False,
                    },
                ],
            },
        ],
        "health": [
            health("desk-01"),
            health(
                "desk-03",
                online=False,
                last_heartbeat=None,
                heartbeat_age_s=None,
                fw_version=None,
                app_version=None,
                app_slot=None,
                free_heap=None,
                min_free_heap=None,
                boots=None,
                last_reset_cause=None,
                reset_cause_name=None,
                journal_depth=None,
                rx_errors=None,
                config_version=None,
                link_errors=5,
                reconnects=2,
            ),
        ],
        "daemon": {
            "started": 1795390000.0,
            "uptime_s": 10000.0,
            "events_per_s": 2.5,
            "committed_events": 40211,
            "store_failures": 1,
            "ports": 24,
            "online": 23,
            "link_errors": 5,
        },
    }


def test_service_level_per_account_and_queue_as_ratios() -> None:
    series, _ = parse(render(floor_snapshot()))
    volt = {"scope": "account", "key": "volt", "account": "volt"}
    assert value(series, "deskline_service_level_ratio", **volt, window="interval") == 0.833
    assert value(series, "deskline_service_level_ratio", **volt, window="today") == 0.791
    assert value(series, "deskline_service_level_target_ratio", **volt) == 0.8
    assert value(series, "deskline_service_level_threshold_seconds", **volt) == 20
    assert value(series, "deskline_service_level_band", **volt) == 1
    assert value(series, "deskline_calls_waiting", **volt) == 3
    assert value(series, "deskline_calls_longest_wait_seconds", **volt) == 41
    assert value(series, "deskline_calls_offered", **volt, window="interval") == 12
    assert value(series, "deskline_calls_offered", **volt, window="today") == 311
    assert value(series, "deskline_calls_answered", **volt, window="today") == 290
    assert value(series, "deskline_calls_abandoned", **volt, window="today") == 21
    assert value(series, "deskline_calls_answer_delay_seconds", **volt, window="today") == 14.2
    assert math.isclose(
        value(series, "deskline_calls_abandon_ratio", **volt, window="interval"), 0.04
    )
    billing = {"scope": "queue", "key": "volt-billing", "account": "volt"}
    assert value(series, "deskline_service_level_ratio", **billing, window="interval") == 0.725
    assert value(series, "deskline_service_level_band", **billing) == 2
    states = {
        band: value(series, "deskline_service_level_band_state", **billing, band=band)
        for band in ("unknown", "green", "amber", "red")
    }
    assert states == {"unknown": 0, "green": 0, "amber": 1, "red": 0}
    assert value(series, "deskline_acd_followed") == 1
    assert value(series, "deskline_service_interval_seconds") == 900
    assert value(series, "deskline_service_interval_start_timestamp_seconds") == 1795399500.0


def test_nulls_are_left_out_not_nan() -> None:
    body = render(floor_snapshot())
    assert b"NaN" not in body
    series, families = parse(body)
    aqua = {"scope": "account", "key": "aqua", "account": "aqua"}
    for window in ("interval", "today"):
        for name in (
            "deskline_service_level_ratio",
            "deskline_calls_answer_delay_seconds",
            "deskline_calls_abandon_ratio",
        ):
            assert (name, frozenset({**aqua, "window": window}.items())) not in series
    # The contract's null for the longest wait means nobody waits: 0 s.
    assert value(series, "deskline_calls_longest_wait_seconds", **aqua) == 0
    assert value(series, "deskline_service_level_band", **aqua) == 3
    never = frozenset({"console": "desk-03"}.items())
    assert ("deskline_console_heartbeat_age_seconds", never) not in series
    assert ("deskline_console_free_heap_bytes", never) not in series
    assert value(series, "deskline_console_online", console="desk-03") == 0
    assert value(series, "deskline_console_link_errors_total", console="desk-03") == 5
    # A family with no samples still documents itself.
    assert "deskline_console_heartbeat_age_seconds" in families


def test_escalations_open_breached_and_zero_for_quiet_accounts() -> None:
    series, _ = parse(render(floor_snapshot()))
    open_volt = {
        labels: v
        for (name, labels), v in series.items()
        if name == "deskline_escalations_open" and ("account", "volt") in labels
    }
    assert sum(open_volt.values()) == 2
    # Every kind x severity x status is present for every account on the floor.
    assert len(open_volt) == 2 * 4 * 4
    lab = {"account": "volt", "kind": "client", "severity": "urgent"}
    assert value(series, "deskline_escalations_open", **lab, status="breached") == 1
    assert value(series, "deskline_escalations_breached", **lab) == 1
    assert value(series, "deskline_escalations_breached", **{**lab, "severity": "high"}) == 0
    assert value(series, "deskline_escalations_by_urgency", account="volt", urgency="breached") == 1
    assert (
        value(series, "deskline_escalations_by_urgency", account="aqua", urgency="no_deadline") == 1
    )
    assert value(series, "deskline_escalation_oldest_open_age_seconds", account="volt") == 1800
    assert value(series, "deskline_escalation_oldest_open_age_seconds", account="aqua") == 60

    quiet = floor_snapshot()
    quiet["escalations"] = []
    series, _ = parse(render(quiet))
    assert value(series, "deskline_escalations_breached", **lab) == 0
    assert value(series, "deskline_escalation_oldest_open_age_seconds", account="volt") == 0


def test_consoles_daemon_floor_and_demand() -> None:
    series, _ = parse(render(floor_snapshot()))
    one = {"console": "desk-01"}
    assert value(series, "deskline_console_online", **one) == 1
    assert value(series, "deskline_console_heartbeat_age_seconds", **one) == 2
    assert value(series, "deskline_console_last_heartbeat_timestamp_seconds", **one) == 1795399998
    assert value(series, "deskline_console_free_heap_bytes", **one) == 41000
    assert value(series, "deskline_console_min_free_heap_bytes", **one) == 38000
    assert value(series, "deskline_console_journal_depth", **one) == 0
    assert value(series, "deskline_console_boots_total", **one) == 4
    assert value(series, "deskline_console_rx_errors_total", **one) == 0
    assert value(series, "deskline_console_reconnects_total", **one) == 0
    assert value(series, "deskline_console_config_version", **one) == 3
    assert value(series, "deskline_console_config_expected_version", **one) == 3
    info = {
        "console": "desk-01",
        "desk": "desk-01",
        "fw_version": "1.28.0",
        "app_version": "0.1.0",
        "app_slot": "1",
        "reset_cause": "power on",
    }
    assert value(series, "deskline_console_info", **info) == 1
    assert value(series, "deskline_daemon_ingest_events_per_second") == 2.5
    assert value(series, "deskline_daemon_committed_events_total") == 40211
    assert value(series, "deskline_daemon_store_failures_total") == 1
    assert value(series, "deskline_daemon_link_errors_total") == 5
    assert value(series, "deskline_daemon_ports") == 24
    assert value(series, "deskline_daemon_consoles_online") == 23
    assert value(series, "deskline_daemon_uptime_seconds") == 10000
    assert value(series, "deskline_daemon_start_time_seconds") == 1795390000
    assert value(series, "deskline_snapshot_generated_timestamp_seconds") == 1795400000.25
    assert value(series, "deskline_floor_info", floor="Leeds floor 2") == 1
    assert value(series, "deskline_floor_config_errors") == 1
    assert (
        value(
            series, "deskline_account_info", account="aqua", name="Aqua Water", variant="answered"
        )
        == 1
    )
    assert value(series, "deskline_desks", account="volt", state="on_call") == 1
    assert value(series, "deskline_desks", account="volt", state="offline") == 1
    assert value(series, "deskline_desks", account="aqua", state="ready") == 0
    assert ("deskline_desks", frozenset({"account": "", "state": "offline"}.items())) not in series
    assert value(series, "deskline_demand_contacts", account="volt") == 120
    assert value(series, "deskline_failure_demand_contacts", account="volt") == 43
    assert value(series, "deskline_failure_demand_ratio", account="volt") == 0.358
    # No contact yet today: counted as 0, the share left undefined.
    assert value(series, "deskline_demand_contacts", account="aqua") == 0
    assert ("deskline_failure_demand_ratio", frozenset({"account": "aqua"}.items())) not in series
    code = {"account": "volt", "code": "7", "name": "Confusing bill", "failure_demand": "true"}
    assert value(series, "deskline_wrapup_contacts", **code) == 30


def test_odd_label_text_round_trips() -> None:
    odd = 'Sø "quoted"\nline \\ back ✓ 日本'
    snap = floor_snapshot()
    snap["floor"]["name"] = odd
    snap["floor"]["accounts"][0]["name"] = odd
    snap["health"][0]["desk"] = odd
    snap["health"][0]["fw_version"] = "1.28.0\x00"
    snap["demand"][0]["codes"][0]["label"] = odd
    snap["service"]["queues"][0]["key"] = odd
    series, _ = parse(render(snap))
    assert value(series, "deskline_floor_info", floor=odd) == 1
    assert (
        value(series, "deskline_account_info", account="volt", name=odd, variant="short_excluded")
        == 1
    )
    infos = [dict(labels) for name, labels in series if name == "deskline_console_info"]
    assert {"desk": odd, "fw_version": "1.28.0\x00"}.items() <= next(
        i for i in infos if i["console"] == "desk-01"
    ).items()
    code = {"account": "volt", "code": "7", "name": odd, "failure_demand": "true"}
    assert value(series, "deskline_wrapup_contacts", **code) == 30
    assert value(series, "deskline_calls_waiting", scope="queue", key=odd, account="volt") == 3


def test_a_render_holds_no_state_and_no_process_metrics() -> None:
    first = render(floor_snapshot())
    other = floor_snapshot()
    other["floor"]["accounts"] = [{"key": "gas", "name": "Gas Co", "variant": "answered"}]
    other["health"] = []
    second, _ = parse(render(other))
    assert not any(("console", "desk-01") in labels for _, labels in second)
    assert render(floor_snapshot()) == first
    assert all(name.startswith("deskline_") for name in names(second))
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_empty_and_partial_snapshots_render() -> None:
    series, families = parse(render({}))
    assert series == {}
    assert {s.name.removesuffix("_total") for s in METRICS} == families
    no_acd = {"acd": False, "interval_min": 0, "interval_start": None, "accounts": [], "queues": []}
    series, _ = parse(render({"service": no_acd}))
    assert series == {("deskline_acd_followed", frozenset()): 0.0}


def test_the_dashboard_fixture_fills_every_metric() -> None:
    # The snapshot the web tests share (floorview's shape): a renamed field shows here.
    fixture = REPO / "tests" / "fixtures" / "dashboard" / "snapshot.json"
    series, _ = parse(render(json.loads(fixture.read_text(encoding="utf-8"))))
    assert {s.name for s in METRICS} == names(series)


def test_duplicate_rows_never_make_duplicate_series() -> None:
    snap = floor_snapshot()
    snap["health"].append(health("desk-01", free_heap=1))
    snap["service"]["queues"].append(sl_row("queue", "volt-moves", "volt", waiting=9))
    series, _ = parse(render(snap))  # parse() fails on a duplicate
    assert value(series, "deskline_console_free_heap_bytes", console="desk-01") == 41000


# --- any snapshot shaped as the contract says renders and parses back --------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
_count = st.none() | st.integers(0, 10**9)
_seconds = st.none() | st.floats(0, 1e10, allow_nan=False)
_pct = st.none() | st.floats(0, 100)


def _sl_rows(scope: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries(
        {
            "scope": st.just(scope),
            "key": _text,
            "name": _text,
            "account": _text,
            "band": st.sampled_from(["green", "amber", "red", "unknown"]),
            "target_pct": _pct,
            "threshold_s": _count,
            "variant": _text,
            "sl_interval": _pct,
            "sl_today": _pct,
            "offered_interval": _count,
            "offered_today": _count,
            "answered_today": _count,
            "abandoned_today": _count,
            "asa_interval_s": _seconds,
            "asa_today_s": _seconds,
            "abandon_rate_interval_pct": _pct,
            "abandon_rate_today_pct": _pct,
            "waiting": _count,
            "longest_waiting_s": _seconds,
        }
    )
    return st.lists(row, max_size=3)


_snapshots = st.fixed_dictionaries(
    {
        "version": st.integers(0, 10**6),
        "generated": st.floats(0, 2e9),
        "floor": st.fixed_dictionaries(
            {
                "name": _text,
                "errors": st.lists(_text, max_size=2),
                "rows": st.integers(0, 9),
                "cols": st.integers(0, 9),
                "accounts": st.lists(
                    st.fixed_dictionaries(
                        {
                            "key": _text,
                            "name": _text,
                            "target_pct": _pct,
                            "threshold_s": _count,
                            "variant": _text,
                        }
                    ),
                    max_size=3,
                ),
            }
        ),
        "desks": st.lists(
            st.fixed_dictionaries(
                {
                    "desk": _text,
                    "console": _text,
                    "account": _text,
                    "on_floor": st.booleans(),
                    "online": st.booleans(),
                    "state": st.sampled_from([None, "ready", "on_call", "wrap_up"]),
                }
            ),
            max_size=4,
        ),
        "service": st.fixed_dictionaries(
            {
                "acd": st.booleans(),
                "interval_min": st.sampled_from([15, 30, 60]),
                "interval_start": _seconds,
                "accounts": _sl_rows("account"),
                "queues": _sl_rows("queue"),
            }
        ),
        "escalations": st.lists(
            st.fixed_dictionaries(
                {
                    "ext_id": _text,
                    "kind": st.sampled_from(["client", "floor_help"]),
                    "severity": st.sampled_from(["urgent", "high", "normal", "low"]),
                    "status": st.sampled_from(["raised", "delivered", "acknowledged", "breached"]),
                    "account": _text,
                    "age_s": _seconds,
                    "left_s": _seconds,
                    "breached": st.lists(st.sampled_from(["ack", "resolve"]), max_size=2),
                    "urgency": st.sampled_from(["breached", "due_soon", "running", "no_deadline"]),
                }
            ),
            max_size=4,
        ),
        "demand": st.lists(
            st.fixed_dictionaries(
                {
                    "account": _text,
                    "contacts": _count,
                    "failure_demand": _count,
                    "failure_demand_pct": _pct,
                    "codes": st.lists(
                        st.fixed_dictionaries(
                            {
                                "code": st.integers(0, 99),
                                "label": _text,
                                "contacts": _count,
                                "failure_demand": st.booleans(),
                            }
                        ),
                        max_size=3,
                    ),
                }
            ),
            max_size=3,
        ),
        "health": st.lists(
            st.fixed_dictionaries(
                {
                    "device_id": _text,
                    "desk": st.none() | _text,
                    "online": st.booleans(),
                    "last_heartbeat": _seconds,
                    "heartbeat_age_s": _seconds,
                    "fw_version": st.none() | _text,
                    "app_version": st.none() | _text,
                    "app_slot": st.none() | st.integers(0, 1),
                    "free_heap": _count,
                    "min_free_heap": _count,
                    "boots": _count,
                    "reset_cause_name": st.none() | _text,
                    "journal_depth": _count,
                    "link_errors": _count,
                    "rx_errors": _count,
                    "reconnects": _count,
                    "config_version": _count,
                    "config_expected": _count,
                }
            ),
            max_size=4,
        ),
        "daemon": st.fixed_dictionaries(
            {
                "started": _seconds,
                "uptime_s": _seconds,
                "events_per_s": _seconds,
                "committed_events": _count,
                "store_failures": _count,
                "ports": _count,
                "online": _count,
                "link_errors": _count,
            }
        ),
    }
)


# Big nested examples are slow to draw on a busy 2-core box: that is not a failure.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshots)
def test_any_contract_snapshot_renders_and_parses(snapshot: dict[str, Any]) -> None:
    before = copy.deepcopy(snapshot)
    series, families = parse(render(snapshot))  # no duplicate series, valid text
    assert snapshot == before
    known = {s.name for s in METRICS}
    for name, labels in series:
        assert name in known, name
        assert len(labels) == len(metrics._SPECS[name].labels)
    assert not any(math.isnan(v) for v in series.values())
    assert len(families) == len(METRICS)


# --- the Grafana dashboard -----------------------------------------------------------

_METRIC = re.compile(r"\bdeskline_[a-zA-Z0-9_]+")
_SELECTOR = re.compile(r"\b(deskline_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_grafana_dashboard_is_valid_and_consistent() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        here = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not here & cells, f"{panel['title']} overlaps another panel"
        cells |= here
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == ds, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == ds, panel["title"]
            for var in re.findall(r"\$(\w+)", t["expr"]):
                assert var in variables, f"{panel['title']}: ${var} is not a variable"
    for name in ("account", "console"):
        assert variables[name]["datasource"] == ds


def test_every_metric_a_dashboard_query_uses_is_rendered() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    series, _ = parse(render(floor_snapshot()))
    labels_of: dict[str, set[str]] = {}
    for name, labels in series:
        labels_of.setdefault(name, set()).update(k for k, _ in labels)
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert exprs
    used = set()
    for expr in exprs:
        found = _METRIC.findall(expr)
        assert found, f"{expr!r} uses no deskline metric"
        for name in found:
            assert name in labels_of, f"{expr!r}: render() emits no {name}"
            used.add(name)
        for name, matchers in _SELECTOR.findall(expr):
            for label in _MATCHER.findall(matchers):
                assert label in labels_of[name], f"{expr!r}: {name} has no label {label}"
        available = set().union(*(labels_of[n] for n in found))
        for group in _GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in available, f"{expr!r}: no metric in it has label {label}"
        for name, label in re.findall(r"label_values\((\w+),\s*(\w+)\)", expr):
            assert label in labels_of[name]
    # The panels the issue asks for are there.
    assert {
        "deskline_service_level_ratio",
        "deskline_service_level_target_ratio",
        "deskline_calls_waiting",
        "deskline_calls_longest_wait_seconds",
        "deskline_escalations_open",
        "deskline_escalations_breached",
        "deskline_console_heartbeat_age_seconds",
        "deskline_daemon_consoles_online",
        "deskline_daemon_ingest_events_per_second",
        "deskline_daemon_link_errors_total",
        "deskline_failure_demand_ratio",
    } <= used


def test_docs_list_every_metric() -> None:
    text = (REPO / "docs" / "dashboard.md").read_text(encoding="utf-8")
    section = text.split("\n## Prometheus", 1)[1]
    documented = set(re.findall(r"`(deskline_[a-z0-9_]+)`", section))
    assert documented == {s.name for s in METRICS}
