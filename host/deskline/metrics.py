"""Prometheus metrics, rendered from one floor snapshot at scrape time.

`/metrics` reads the same snapshot as the dashboard and `deskline status`
(docs/dashboard.md), so a graph never disagrees with the wall screen.  Each
render builds its families afresh from the snapshot it is given: no global
registry, no process metrics, nothing that leaks between two daemons in one
test process.

Conventions (docs/dashboard.md, "Prometheus"): shares are ratios 0-1 (the
snapshot's percentages divided by 100), times are seconds, memory is bytes;
"today" figures that reset at midnight are gauges, not counters, so they are
read as they are rather than rate()d.  A value the snapshot gives as null
(no calls yet, never heard from) is left out rather than exported as NaN.
Counts that can be zero (escalations, desks by state, contacts) are exported
as 0 for every account on the floor, so a sum over them never turns into
"no data" when the last escalation closes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

# Text format 0.0.4: what docs/dashboard.md promises and every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its exposed name, type, label names and HELP."""

    name: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str


_SL = ("scope", "key", "account")
_ESC = ("account", "kind", "severity", "status")

# Band codes as the consoles get them on the wire (deskline.slband): higher is worse.
BAND_CODES = {"unknown": 0, "green": 1, "amber": 2, "red": 3}
DESK_STATES = ("ready", "on_call", "wrap_up", "offline")
ESCALATION_KINDS = ("client", "floor_help")
SEVERITIES = ("urgent", "high", "normal", "low")
STATUSES = ("raised", "delivered", "acknowledged", "breached")
URGENCIES = ("breached", "due_soon", "running", "no_deadline")


METRICS: tuple[MetricSpec, ...] = (
    # The snapshot and the floor.
    MetricSpec(
        "deskline_snapshot_generated_timestamp_seconds",
        "gauge",
        (),
        "When the daemon built the floor snapshot this scrape read (unix s); "
        "far behind time() means the floor view has stopped moving.",
    ),
    MetricSpec(
        "deskline_floor_info",
        "gauge",
        ("floor",),
        "Always 1; the floor's name from the floor file.",
    ),
    MetricSpec(
        "deskline_floor_config_errors",
        "gauge",
        (),
        "Errors in the floor file (as `deskline floor check` prints them); above 0 the "
        "floor runs on its last good configuration.",
    ),
    MetricSpec(
        "deskline_account_info",
        "gauge",
        ("account", "name", "variant"),
        "Always 1 for each client account on the floor: its display name and "
        "service-level formula variant.",
    ),
    MetricSpec(
        "deskline_desks",
        "gauge",
        ("account", "state"),
        "Desks on the floor plan by account and what their console shows: ready, "
        "on_call, wrap_up, or offline (console not connected).",
    ),
    # Service level, per account and per queue (service.accounts / service.queues).
    MetricSpec(
        "deskline_acd_followed",
        "gauge",
        (),
        "1 when the daemon follows the ACD's queue_log; 0 means no service-level "
        "figures (the deskline_service_* and deskline_calls_* metrics are absent).",
    ),
    MetricSpec(
        "deskline_service_interval_seconds",
        "gauge",
        (),
        'Length of a service-level interval; window="interval" figures cover the current one.',
    ),
    MetricSpec(
        "deskline_service_interval_start_timestamp_seconds",
        "gauge",
        (),
        "When the current service-level interval began (unix s).",
    ),
    MetricSpec(
        "deskline_service_level_ratio",
        "gauge",
        (*_SL, "window"),
        "Service level (0-1) by the account's formula variant (docs/metrics.md), for the "
        "current interval or today; absent while there are no calls to judge.",
    ),
    MetricSpec(
        "deskline_service_level_target_ratio",
        "gauge",
        _SL,
        "The client's service-level target (0-1): at or above it the floor light is green.",
    ),
    MetricSpec(
        "deskline_service_level_threshold_seconds",
        "gauge",
        _SL,
        "The answer-within time the service level counts against (the 20 of 80/20).",
    ),
    MetricSpec(
        "deskline_service_level_band",
        "gauge",
        _SL,
        "The floor light the daemon shows for this account or queue: "
        "0 unknown, 1 green, 2 amber, 3 red (higher is worse; max() gives the worst).",
    ),
    MetricSpec(
        "deskline_service_level_band_state",
        "gauge",
        (*_SL, "band"),
        "The same floor light as a state set: 1 for the band shown now, 0 for the others.",
    ),
    MetricSpec("deskline_calls_waiting", "gauge", _SL, "Callers waiting in the queue now."),
    MetricSpec(
        "deskline_calls_longest_wait_seconds",
        "gauge",
        _SL,
        "How long the longest-waiting caller has waited; 0 when nobody waits.",
    ),
    MetricSpec(
        "deskline_calls_offered",
        "gauge",
        (*_SL, "window"),
        "Calls that reached an outcome (answered, or left the queue unanswered) in the "
        "current interval or today; resets with the window.",
    ),
    MetricSpec(
        "deskline_calls_answered",
        "gauge",
        (*_SL, "window"),
        "Calls answered today (resets at midnight).",
    ),
    MetricSpec(
        "deskline_calls_abandoned",
        "gauge",
        (*_SL, "window"),
        "Calls that left the queue unanswered today (hung up, timed out, exited); resets "
        "at midnight.",
    ),
    MetricSpec(
        "deskline_calls_answer_delay_seconds",
        "gauge",
        (*_SL, "window"),
        "Average speed of answer (ASA): mean wait of answered calls, in the current "
        "interval or today; absent while none were answered.",
    ),
    MetricSpec(
        "deskline_calls_abandon_ratio",
        "gauge",
        (*_SL, "window"),
        "Abandoned calls' share of offered calls (0-1), in the current interval or today.",
    ),
    # Escalations: open ones only, as the snapshot lists them.
    MetricSpec(
        "deskline_escalations_open",
        "gauge",
        _ESC,
        "Open escalations and floor-help requests by account, kind, severity and status.",
    ),
    MetricSpec(
        "deskline_escalations_breached",
        "gauge",
        ("account", "kind", "severity"),
        "Open escalations that have missed a client deadline (to acknowledge or to resolve).",
    ),
    MetricSpec(
        "deskline_escalations_by_urgency",
        "gauge",
        ("account", "urgency"),
        "Open escalations by urgency: breached, due_soon (a quarter of the allowance "
        "or 5 min left), running, no_deadline.",
    ),
    MetricSpec(
        "deskline_escalation_oldest_open_age_seconds",
        "gauge",
        ("account",),
        "Age of the account's oldest open escalation; 0 when none is open.",
    ),
    # Failure demand today (demand).
    MetricSpec(
        "deskline_demand_contacts",
        "gauge",
        ("account",),
        "Contacts wrapped up today with a code (resets at midnight).",
    ),
    MetricSpec(
        "deskline_failure_demand_contacts",
        "gauge",
        ("account",),
        "Contacts today whose wrap-up code marks failure demand: the customer calls "
        "because something was not done, or not done right.",
    ),
    MetricSpec(
        "deskline_failure_demand_ratio",
        "gauge",
        ("account",),
        "Failure demand's share of today's contacts (0-1); absent before the first contact.",
    ),
    MetricSpec(
        "deskline_wrapup_contacts",
        "gauge",
        ("account", "code", "name", "failure_demand"),
        'Contacts today per wrap-up code (the Pareto), failure_demand="true" for '
        "codes that count as failure demand.",
    ),
    # Console health (health), one series per console.
    MetricSpec(
        "deskline_console_info",
        "gauge",
        ("console", "desk", "fw_version", "app_version", "app_slot", "reset_cause"),
        "Always 1: a console's desk, firmware and app version, app slot and last reset cause.",
    ),
    MetricSpec(
        "deskline_console_online",
        "gauge",
        ("console",),
        "1 when the daemon is connected to the console, else 0.",
    ),
    MetricSpec(
        "deskline_console_heartbeat_age_seconds",
        "gauge",
        ("console",),
        "Seconds since the console's last heartbeat; over 30 it is stuck or cut off. "
        "Absent for a console never heard from.",
    ),
    MetricSpec(
        "deskline_console_last_heartbeat_timestamp_seconds",
        "gauge",
        ("console",),
        "When the console's last heartbeat arrived (unix s).",
    ),
    MetricSpec(
        "deskline_console_free_heap_bytes",
        "gauge",
        ("console",),
        "Free memory on the console at its last heartbeat.",
    ),
    MetricSpec(
        "deskline_console_min_free_heap_bytes",
        "gauge",
        ("console",),
        "Lowest free memory the console has seen since it booted; near 0 it will crash.",
    ),
    MetricSpec(
        "deskline_console_journal_depth",
        "gauge",
        ("console",),
        "Events the console holds in its journal, not yet confirmed stored by the daemon.",
    ),
    MetricSpec(
        "deskline_console_boots_total",
        "counter",
        ("console",),
        "Times the console has booted, as it reports; a rise is a reboot or a crash.",
    ),
    MetricSpec(
        "deskline_console_link_errors_total",
        "counter",
        ("console",),
        "Bad frames (CRC, schema) the daemon received from the console since it started.",
    ),
    MetricSpec(
        "deskline_console_rx_errors_total",
        "counter",
        ("console",),
        "Frames from the daemon the console could not read, as its heartbeat reports.",
    ),
    MetricSpec(
        "deskline_console_reconnects_total",
        "counter",
        ("console",),
        "Times the daemon has reconnected to the console since it started.",
    ),
    MetricSpec(
        "deskline_console_config_version",
        "gauge",
        ("console",),
        "Account configuration version the console runs.",
    ),
    MetricSpec(
        "deskline_console_config_expected_version",
        "gauge",
        ("console",),
        "Account configuration version the console should run; differing means a push is due.",
    ),
    # The daemon itself.
    MetricSpec(
        "deskline_daemon_start_time_seconds", "gauge", (), "When the daemon started (unix s)."
    ),
    MetricSpec("deskline_daemon_uptime_seconds", "gauge", (), "Seconds since the daemon started."),
    MetricSpec(
        "deskline_daemon_ingest_events_per_second",
        "gauge",
        (),
        "Console events the daemon is storing per second, recently.",
    ),
    MetricSpec(
        "deskline_daemon_committed_events_total",
        "counter",
        (),
        "Console events stored since the daemon started.",
    ),
    MetricSpec(
        "deskline_daemon_store_failures_total",
        "counter",
        (),
        "Failed writes to the store since the daemon started; any is worth a look.",
    ),
    MetricSpec("deskline_daemon_ports", "gauge", (), "Serial ports the daemon is watching."),
    MetricSpec("deskline_daemon_consoles_online", "gauge", (), "Consoles connected now."),
    MetricSpec(
        "deskline_daemon_link_errors_total",
        "counter",
        (),
        "Bad frames (CRC, schema) from all consoles since the daemon started.",
    ),
)

_SPECS = {spec.name: spec for spec in METRICS}


def render(snapshot: Mapping[str, Any]) -> bytes:
    """The snapshot as Prometheus text (format 0.0.4, UTF-8); serve with CONTENT_TYPE."""
    return generate_latest(SnapshotCollector(snapshot))


class SnapshotCollector:
    """A prometheus_client collector over one floor snapshot."""

    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        samples = _Samples()
        snap = self.snapshot
        accounts = _floor(samples, snap)
        _desks(samples, snap, accounts)
        _service(samples, _section(snap, "service"))
        _escalations(samples, _rows(snap.get("escalations")), accounts)
        _demand(samples, _rows(snap.get("demand")), accounts)
        _health(samples, _rows(snap.get("health")))
        _daemon(samples, _section(snap, "daemon"))
        yield from samples.families()


_Series = dict[tuple[str, ...], float]


class _Samples:
    """The values of one render, keyed by metric and label values."""

    def __init__(self) -> None:
        self._values: dict[str, _Series] = {s.name: {} for s in METRICS}

    def _series(self, name: str, labels: tuple[object, ...]) -> tuple[_Series, tuple[str, ...]]:
        assert len(labels) == len(_SPECS[name].labels), name
        return self._values[name], tuple(_label(v) for v in labels)

    def set(self, name: str, value: object, *labels: object) -> None:
        """Set a series unless the value is null; the first row wins, so a duplicate
        row in the snapshot cannot make a scrape Prometheus rejects."""
        number = _number(value)
        if number is not None:
            series, key = self._series(name, labels)
            series.setdefault(key, number)

    def add(self, name: str, value: float, *labels: object) -> None:
        series, key = self._series(name, labels)
        series[key] = series.get(key, 0.0) + value

    def maximum(self, name: str, value: object, *labels: object) -> None:
        number = _number(value)
        if number is not None:
            series, key = self._series(name, labels)
            series[key] = max(series.get(key, number), number)

    def families(self) -> Iterator[Metric]:
        for spec in METRICS:
            family: GaugeMetricFamily | CounterMetricFamily
            if spec.kind == "counter":
                family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            else:
                family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in self._values[spec.name].items():
                family.add_metric(labels, value)
            yield family


def _number(value: object) -> float | None:
    """A sample's value, or None to leave it out (null, NaN, not a number)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
        return None if math.isnan(number) else number
    return None


def _ratio(percent: object) -> float | None:
    # Rounded so 79.1 % reads 0.791, not 0.7909999999999999 (a millionth is far below noise).
    number = _number(percent)
    return None if number is None else round(number / 100.0, 6)


def _label(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _section(snapshot: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = snapshot.get(key)
    return value if isinstance(value, Mapping) else {}


def _rows(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [row for row in value if isinstance(row, Mapping)]


def _floor(samples: _Samples, snap: Mapping[str, Any]) -> list[str]:
    """Floor figures; returns the account keys to export zero counts for."""
    samples.set("deskline_snapshot_generated_timestamp_seconds", snap.get("generated"))
    floor = _section(snap, "floor")
    if floor:
        samples.set("deskline_floor_info", 1, floor.get("name"))
        errors = floor.get("errors")
        samples.set("deskline_floor_config_errors", len(errors) if isinstance(errors, list) else 0)
    accounts: list[str] = []
    for account in _rows(floor.get("accounts")):
        key = _label(account.get("key"))
        accounts.append(key)
        samples.set("deskline_account_info", 1, key, account.get("name"), account.get("variant"))
    return accounts


def _zeros(samples: _Samples, name: str, *dimensions: Iterable[str]) -> None:
    """Export 0 for every combination, so a count is present before anything happens."""
    combos: list[tuple[str, ...]] = [()]
    for values in dimensions:
        combos = [(*combo, value) for combo in combos for value in values]
    for combo in combos:
        samples.add(name, 0.0, *combo)


def _union(known: Iterable[str], seen: Iterable[object]) -> list[str]:
    return list(dict.fromkeys([*known, *(_label(v) for v in seen)]))


def _desks(samples: _Samples, snap: Mapping[str, Any], accounts: list[str]) -> None:
    desks = [d for d in _rows(snap.get("desks")) if d.get("on_floor", True)]
    states = [_desk_state(d) for d in desks]
    _zeros(
        samples,
        "deskline_desks",
        _union(accounts, (d.get("account") for d in desks)),
        _union(DESK_STATES, states),
    )
    for desk, state in zip(desks, states, strict=True):
        samples.add("deskline_desks", 1.0, desk.get("account"), state)


def _desk_state(desk: Mapping[str, Any]) -> str:
    state = desk.get("state")
    return "offline" if not desk.get("online") or state is None else _label(state)


def _service(samples: _Samples, service: Mapping[str, Any]) -> None:
    if not service:
        return
    samples.set("deskline_acd_followed", bool(service.get("acd")))
    if not service.get("acd"):
        return  # no queue_log: the interval fields are placeholders, the rows empty
    minutes = _number(service.get("interval_min"))
    samples.set("deskline_service_interval_seconds", None if minutes is None else minutes * 60)
    samples.set("deskline_service_interval_start_timestamp_seconds", service.get("interval_start"))
    # The list a row sits in decides its scope: two lists cannot collide on one series.
    for scope, key in (("account", "accounts"), ("queue", "queues")):
        for row in _rows(service.get(key)):
            _service_row(samples, scope, row)


def _service_row(samples: _Samples, scope: str, row: Mapping[str, Any]) -> None:
    key = row.get("key")
    ids = (scope, key, row.get("account") or (key if scope == "account" else ""))
    for window in ("interval", "today"):
        samples.set("deskline_service_level_ratio", _ratio(row.get(f"sl_{window}")), *ids, window)
        samples.set("deskline_calls_offered", row.get(f"offered_{window}"), *ids, window)
        samples.set("deskline_calls_answer_delay_seconds", row.get(f"asa_{window}_s"), *ids, window)
        samples.set(
            "deskline_calls_abandon_ratio",
            _ratio(row.get(f"abandon_rate_{window}_pct")),
            *ids,
            window,
        )
    samples.set("deskline_calls_answered", row.get("answered_today"), *ids, "today")
    samples.set("deskline_calls_abandoned", row.get("abandoned_today"), *ids, "today")
    samples.set("deskline_service_level_target_ratio", _ratio(row.get("target_pct")), *ids)
    samples.set("deskline_service_level_threshold_seconds", row.get("threshold_s"), *ids)
    band = _label(row.get("band"))
    band = band if band in BAND_CODES else "unknown"
    samples.set("deskline_service_level_band", BAND_CODES[band], *ids)
    for name in BAND_CODES:
        samples.set("deskline_service_level_band_state", name == band, *ids, name)
    samples.set("deskline_calls_waiting", row.get("waiting"), *ids)
    # The contract's null here means "nobody waits": 0 s, so the graph returns to 0.
    if "longest_waiting_s" in row:
        longest = row.get("longest_waiting_s")
        samples.set("deskline_calls_longest_wait_seconds", 0 if longest is None else longest, *ids)


def _escalations(samples: _Samples, rows: list[Mapping[str, Any]], accounts: list[str]) -> None:
    every = _union(accounts, (r.get("account") for r in rows))
    kinds = _union(ESCALATION_KINDS, (r.get("kind") for r in rows))
    severities = _union(SEVERITIES, (r.get("severity") for r in rows))
    _zeros(
        samples,
        "deskline_escalations_open",
        every,
        kinds,
        severities,
        _union(STATUSES, (r.get("status") for r in rows)),
    )
    _zeros(samples, "deskline_escalations_breached", every, kinds, severities)
    _zeros(
        samples,
        "deskline_escalations_by_urgency",
        every,
        _union(URGENCIES, (r.get("urgency") for r in rows)),
    )
    _zeros(samples, "deskline_escalation_oldest_open_age_seconds", every)
    for row in rows:
        account, kind, severity = row.get("account"), row.get("kind"), row.get("severity")
        samples.add("deskline_escalations_open", 1.0, account, kind, severity, row.get("status"))
        if row.get("breached") or row.get("status") == "breached":
            samples.add("deskline_escalations_breached", 1.0, account, kind, severity)
        samples.add("deskline_escalations_by_urgency", 1.0, account, row.get("urgency"))
        samples.maximum("deskline_escalation_oldest_open_age_seconds", row.get("age_s"), account)


def _demand(samples: _Samples, rows: list[Mapping[str, Any]], accounts: list[str]) -> None:
    for row in rows:
        account = row.get("account")
        samples.set("deskline_demand_contacts", row.get("contacts"), account)
        samples.set("deskline_failure_demand_contacts", row.get("failure_demand"), account)
        samples.set("deskline_failure_demand_ratio", _ratio(row.get("failure_demand_pct")), account)
        for code in _rows(row.get("codes")):
            samples.set(
                "deskline_wrapup_contacts",
                code.get("contacts"),
                account,
                code.get("code"),
                code.get("label"),
                bool(code.get("failure_demand")),
            )
    # An account with no contact yet today is 0, not missing (its share stays undefined).
    for account in accounts:
        samples.set("deskline_demand_contacts", 0, account)
        samples.set("deskline_failure_demand_contacts", 0, account)


def _health(samples: _Samples, rows: list[Mapping[str, Any]]) -> None:
    for row in rows:
        console = row.get("device_id")
        samples.set(
            "deskline_console_info",
            1,
            console,
            row.get("desk"),
            row.get("fw_version"),
            row.get("app_version"),
            row.get("app_slot"),
            row.get("reset_cause_name"),
        )
        samples.set("deskline_console_online", bool(row.get("online")), console)
        for name, field in (
            ("deskline_console_heartbeat_age_seconds", "heartbeat_age_s"),
            ("deskline_console_last_heartbeat_timestamp_seconds", "last_heartbeat"),
            ("deskline_console_free_heap_bytes", "free_heap"),
            ("deskline_console_min_free_heap_bytes", "min_free_heap"),
            ("deskline_console_journal_depth", "journal_depth"),
            ("deskline_console_boots_total", "boots"),
            ("deskline_console_link_errors_total", "link_errors"),
            ("deskline_console_rx_errors_total", "rx_errors"),
            ("deskline_console_reconnects_total", "reconnects"),
            ("deskline_console_config_version", "config_version"),
            ("deskline_console_config_expected_version", "config_expected"),
        ):
            samples.set(name, row.get(field), console)


def _daemon(samples: _Samples, daemon: Mapping[str, Any]) -> None:
    for name, field in (
        ("deskline_daemon_start_time_seconds", "started"),
        ("deskline_daemon_uptime_seconds", "uptime_s"),
        ("deskline_daemon_ingest_events_per_second", "events_per_s"),
        ("deskline_daemon_committed_events_total", "committed_events"),
        ("deskline_daemon_store_failures_total", "store_failures"),
        ("deskline_daemon_ports", "ports"),
        ("deskline_daemon_consoles_online", "online"),
        ("deskline_daemon_link_errors_total", "link_errors"),
    ):
        samples.set(name, daemon.get(field))
