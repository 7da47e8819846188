"""Failure demand and escalation SLA figures for one client account.

What `deskline report` prints and the dashboard shows: contacts by wrap-up
code (a Pareto), the share of failure demand by cause and by interval, the
client's escalation-SLA compliance, repeat contacts.  Pure functions over a
`Store` (its read-only `query`) or a read-only sqlite3 connection to the
daemon's database; nothing here writes.

Time: a period is [start, end) in local wall-clock time of a zone; intervals
(15, 30, 60 min or a day) are aligned to that zone's clock.  A contact
belongs to the interval its call was answered in (the call's start at the
desk), the same rule as the service-level figures; a wrap-up whose call the
store does not hold falls back to the time it was keyed.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from deskline.errors import DesklineError
from deskline.store import APPLICATION_ID
from deskline.wire import codec

SCHEMA = "deskline.report/1"
INTERVALS = ("15", "30", "60", "day")
MAX_INTERVALS = 5000  # a year of days, or seven weeks of 15 min
SEVERITIES = (1, 2, 3, 4)
NEEDS_SCHEMA = 3  # escalation SLA clocks and acd_calls
# How a contact's code was filed (firmware/wire.py HOW_*).
HOW_NAMES = {
    codec.HOW_CODE: "code",
    codec.HOW_TIMEOUT: "timeout",
    codec.HOW_SKIPPED: "skipped",
    codec.HOW_FORCED: "forced",
    codec.HOW_INTERRUPTED: "interrupted",
}
# A contact's demand class: the account flags each code as failure demand or
# not; a code the account's table does not hold (or no code at all) says
# nothing about the cause.
Demand = Literal["failure", "value", "unknown", "none"]
# The store keeps a wrap-up's call by seq; its answer time may be up to this
# long before the wrap-up (a bound for the index, not a rule of the report).
_CALL_SLACK_S = 86400.0


class Queryable(Protocol):
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


Source = Queryable | sqlite3.Connection


# --- the figures --------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """[start, end) in local time; `interval` is "15", "30", "60" or "day"."""

    start: datetime  # aware
    end: datetime  # aware
    tz: str  # the zone's name, as given or the system's
    interval: str

    @property
    def zone(self) -> tzinfo:
        assert self.start.tzinfo is not None
        return self.start.tzinfo

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()


@dataclass(frozen=True)
class CodeRow:
    """One wrap-up code's contacts (a Pareto bar)."""

    code: int
    label: str
    demand: Demand
    contacts: int
    share_pct: float  # of all contacts; the rows add up to exactly 100.0
    cumulative_pct: float  # in Pareto order
    keyed: int  # the agent keyed it (HOW_CODE)
    fallback: int  # filed by the console: timeout, forced, interrupted


@dataclass(frozen=True)
class CauseRow:
    """One failure-demand code: what the client's failures cost, by cause."""

    code: int
    label: str
    contacts: int
    share_pct: float  # of all contacts, as in the code table
    share_of_failure_pct: float  # of failure-demand contacts; adds up to 100.0


@dataclass(frozen=True)
class IntervalRow:
    start: datetime
    end: datetime
    label: str  # "09:30" or "Mon 03 Mar"
    contacts: int
    failure: int
    value: int
    unclassified: int  # no code, or a code the account does not know
    failure_pct: float | None  # of contacts; None with no contacts
    escalations: int  # client escalations raised
    floor_help: int
    acd_contacts: int
    repeat_contacts: int


@dataclass(frozen=True)
class DemandSummary:
    contacts: int  # wrap-ups filed for calls in the period
    failure: int
    value: int
    unclassified: int
    failure_pct: float | None  # failure / contacts
    coded: int  # the agent keyed a code the account knows
    failure_of_coded_pct: float | None  # keyed failure codes / coded
    by_how: dict[str, int]  # code, timeout, skipped, forced, interrupted
    calls_without_wrapup: int  # calls of the period still waiting for a code
    acd_contacts: int  # the ACD's calls for the account (queue_log)
    repeat_contacts: int  # of those, the caller's repeat within the window
    repeat_pct: float | None
    repeats_about_open_escalation: int


@dataclass(frozen=True)
class DemandReport:
    """The failure-demand part: what the dashboard shows for an account."""

    account: str
    account_name: str
    period: Period
    summary: DemandSummary
    codes: tuple[CodeRow, ...]  # Pareto order: most contacts first
    causes: tuple[CauseRow, ...]  # failure-demand codes only, same order
    intervals: tuple[IntervalRow, ...]


@dataclass(frozen=True)
class SlaFigures:
    """The client's escalation SLA for one severity (None: all of them)."""

    severity: int | None
    raised: int
    delivered: int
    failed: int  # delivery gave up (ESC_FAILED)
    cancelled: int  # at the desk: out of the compliance figures
    cancelled_after_breach: int  # of those, a deadline had already been missed
    open: int  # neither resolved nor cancelled (as of the report)
    ack_met: int
    ack_breached: int
    ack_pending: int  # still inside its deadline
    ack_no_deadline: int
    ack_compliance_pct: float | None  # met / (met + breached)
    resolve_met: int
    resolve_breached: int
    resolve_pending: int
    resolve_no_deadline: int
    resolve_compliance_pct: float | None
    ack_median_s: float | None  # from raised at the desk
    ack_p90_s: float | None
    resolve_median_s: float | None
    resolve_p90_s: float | None


@dataclass(frozen=True)
class EscalationSla:
    kind: Literal["client", "floor_help"]
    overall: SlaFigures
    by_severity: tuple[SlaFigures, ...]  # severities 1..4, always all four


@dataclass(frozen=True)
class Report:
    demand: DemandReport
    client: EscalationSla
    floor_help: EscalationSla
    as_of: datetime  # the moment open escalations were judged at

    @property
    def account(self) -> str:
        return self.demand.account

    @property
    def account_name(self) -> str:
        return self.demand.account_name

    @property
    def period(self) -> Period:
        return self.demand.period


# --- reading the database -------------------------------------------------------------
def _query(src: Source, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    if isinstance(src, sqlite3.Connection):
        cur = src.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return src.query(sql, params)


@contextlib.contextmanager
def _snapshot(src: Source) -> Iterator[None]:
    """One read transaction over a connection, so the figures agree with each
    other while the daemon writes; a Store's query takes its own lock."""
    if not isinstance(src, sqlite3.Connection) or src.in_transaction:
        yield
        return
    src.execute("BEGIN")
    try:
        yield
    finally:
        src.execute("ROLLBACK")


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """The daemon's database for reading only (it may be live, in WAL mode).

    DesklineError when the file is missing, not a deskline database, or of a
    schema older than the report needs (the daemon upgrades it when it opens
    it; this connection never writes).
    """
    p = Path(path)
    if not p.is_file():
        raise DesklineError(
            f"no database at {p}: the daemon keeps it at <state>/deskline.db "
            "(give --db PATH, or --state DIR / $DESKLINE_STATE)"
        )
    try:
        db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as err:
        raise DesklineError(f"cannot open the database {p}: {err}") from err
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        app = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as err:
        db.close()
        raise DesklineError(f"cannot read the database {p}: {err}") from err
    if app != APPLICATION_ID:
        db.close()
        raise DesklineError(f"{p} is not a deskline database: give the daemon's --db file")
    if version < NEEDS_SCHEMA:
        db.close()
        raise DesklineError(
            f"{p} has schema v{version}; the report needs v{NEEDS_SCHEMA}: start this "
            "version's daemon on it once (it upgrades the file), then report again"
        )
    return db


def known_accounts(src: Source) -> dict[str, str]:
    """Account key -> name: the floor's accounts, then those only the history still names."""
    out = {r["key"]: r["name"] for r in _query(src, "SELECT key, name FROM accounts ORDER BY key")}
    for r in _query(
        src,
        "SELECT DISTINCT account FROM wrapups WHERE account IS NOT NULL "
        "UNION SELECT DISTINCT account FROM escalations WHERE account IS NOT NULL "
        "ORDER BY 1",
    ):
        out.setdefault(r["account"], r["account"])
    return out


def _account(src: Source, account: str) -> tuple[str, dict[int, tuple[str, bool]]]:
    """(name, code table) of the account; DesklineError listing the known ones."""
    rows = _query(src, "SELECT name, codes FROM accounts WHERE key = ?", (account,))
    if rows:
        codes = {int(c): (str(lbl), bool(fd)) for c, lbl, fd in json.loads(rows[0]["codes"])}
        return str(rows[0]["name"]), codes
    known = known_accounts(src)
    if account in known:  # no longer on the floor, but its history is here
        return account, {}
    listed = ", ".join(f"{k} ({n})" if n != k else k for k, n in known.items())
    raise DesklineError(
        f"no account {account!r} in the database: "
        + (f"known accounts are {listed}" if listed else "it has no accounts yet (no floor synced)")
    )


# --- time ---------------------------------------------------------------------------
def zone(name: str | tzinfo | None) -> tuple[tzinfo, str]:
    """(tzinfo, its name); None is the system's zone ($TZ, /etc/localtime)."""
    if isinstance(name, tzinfo):
        return name, str(name)
    if not name:
        return _system_zone()
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise DesklineError(
            f"unknown time zone {name!r}: give an IANA name such as Europe/London"
        ) from err


def _system_zone() -> tuple[tzinfo, str]:
    # A named zone keeps its clock changes; a fixed offset (the last resort)
    # would put every interval after a change an hour out.
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(name), name
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local, str(local)


def _aware(dt: datetime, tz: tzinfo) -> datetime:
    # A naive time is wall-clock time in tz.
    return dt.astimezone(tz) if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def _local(ts: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def parse_when(text: str, tz: str | tzinfo | None = None, *, now: float | None = None) -> datetime:
    """YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS], "today" or "yesterday", as an aware local time."""
    tzi, _ = zone(tz)
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        day = _local(time.time() if now is None else now, tzi).date()
        if word == "yesterday":
            day -= timedelta(days=1)
        return _midnight(day, tzi)
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise DesklineError(
            f"cannot read the time {text!r}: give YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time)"
        ) from err
    return _aware(dt, tzi)


def _midnight(day: date, tz: tzinfo) -> datetime:
    return _aware(datetime(day.year, day.month, day.day), tz)


def make_period(
    start: datetime,
    end: datetime | None = None,
    *,
    tz: str | tzinfo | None = None,
    interval: str | int | None = None,
) -> Period:
    """The period [start, end); naive times are wall-clock times in tz.

    end defaults to the next midnight after start; interval to 60 min for up
    to two days, a day beyond.
    """
    tzi, name = zone(tz)
    s = _aware(start, tzi)
    e = _aware(end, tzi) if end is not None else _midnight(s.date() + timedelta(days=1), tzi)
    if e <= s:
        raise DesklineError(
            f"the period is empty: --to ({e.isoformat()}) must be after --from "
            f"({s.isoformat()}); a date means its midnight, and --to is not included"
        )
    if interval is None:
        interval = "60" if e.timestamp() - s.timestamp() <= 2 * 86400 else "day"
    iv = str(interval)
    if iv not in INTERVALS:
        raise DesklineError(f"interval {iv!r}: use one of {', '.join(INTERVALS)}")
    step = 86400 if iv == "day" else int(iv) * 60
    if (e.timestamp() - s.timestamp()) / step > MAX_INTERVALS:
        raise DesklineError(
            f"{s:%Y-%m-%d} to {e:%Y-%m-%d} in {iv if iv == 'day' else iv + '-minute'} "
            f"intervals is over {MAX_INTERVALS} of them: use a longer --interval (e.g. day)"
        )
    return Period(s, e, name, iv)


def boundaries(period: Period) -> list[float]:
    """The intervals' edges (epoch s), aligned to the local clock and clipped to the period.

    Sub-day intervals step in absolute time from an aligned start, so the
    hour a clock change repeats is two intervals, not one twice as full.
    """
    tzi = period.zone
    s, e = period.start_ts, period.end_ts
    edges = [s]
    if period.interval == "day":
        day = _local(s, tzi).date() + timedelta(days=1)
        while (t := _midnight(day, tzi).timestamp()) < e and len(edges) <= MAX_INTERVALS:
            edges.append(t)
            day += timedelta(days=1)
    else:
        minutes = int(period.interval)
        loc = _local(s, tzi)
        first = loc.replace(minute=loc.minute // minutes * minutes, second=0, microsecond=0)
        t = first.timestamp() + minutes * 60
        while t < e and len(edges) <= MAX_INTERVALS:
            edges.append(t)
            t += minutes * 60
    if len(edges) > MAX_INTERVALS:
        raise DesklineError(
            f"{period.start:%Y-%m-%d} to {period.end:%Y-%m-%d} in {period.interval}-minute "
            f"intervals is over {MAX_INTERVALS} of them: use a longer --interval (e.g. day)"
        )
    edges.append(e)
    return edges


def _label(start: datetime, interval: str) -> str:
    return f"{start:%a %d %b}" if interval == "day" else f"{start:%H:%M}"


# --- arithmetic ---------------------------------------------------------------------
def pct(n: int, d: int) -> float | None:
    """n/d as a percentage to 0.1, halves rounded up (exact, no float ties)."""
    if d <= 0:
        return None
    return ((2000 * n + d) // (2 * d)) / 10


def shares(counts: Sequence[int]) -> list[float]:
    """Percentages to 0.1 that add up to exactly 100.0 (largest remainder).

    Ties in the remainder go to the earlier count, so the result is the same
    for the same input order.
    """
    total = sum(counts)
    if total <= 0:
        return [0.0 for _ in counts]
    tenths = [1000 * c // total for c in counts]
    rest = [1000 * c % total for c in counts]
    order = sorted(range(len(counts)), key=lambda i: (-rest[i], i))
    for i in order[: 1000 - sum(tenths)]:
        tenths[i] += 1
    return [t / 10 for t in tenths]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile, linear between the closest ranks (a spreadsheet's PERCENTILE.INC)."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    # To 0.1 s: timestamps differ in float noise, a report should not.
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 1)


# --- failure demand -----------------------------------------------------------------
def _demand_of(code: int, fd: int | None, how: int) -> Demand:
    if fd is None:
        return "none" if code == 0 or how == codec.HOW_SKIPPED else "unknown"
    return "failure" if fd else "value"


def _code_label(code: int, demand: Demand, stored: str, table: dict[int, tuple[str, bool]]) -> str:
    if demand == "none":
        return "No code (skipped)"
    if stored:
        return stored
    if code in table:
        return table[code][0]
    return "(not in the account's codes)"


def demand_report(src: Source, account: str, period: Period) -> DemandReport:
    """Contacts by wrap-up code, failure demand by cause and by interval, repeat contacts."""
    with _snapshot(src):
        name, table = _account(src, account)
        s, e = period.start_ts, period.end_ts
        wraps = _query(
            src,
            """SELECT w.code, w.failure_demand AS fd, w.how, w.label,
                coalesce(c.started, w.at) AS t
            FROM wrapups w
            LEFT JOIN calls c ON c.console_id = w.console_id
                AND c.journal_epoch = w.journal_epoch AND c.seq = w.call_seq
            WHERE w.account = ? AND w.at >= ? AND w.at < ?
                AND coalesce(c.started, w.at) >= ? AND coalesce(c.started, w.at) < ?
            ORDER BY w.at, w.console_id, w.journal_epoch, w.seq""",
            (account, s - _CALL_SLACK_S, e + _CALL_SLACK_S, s, e),
        )
        waiting = _query(
            src,
            "SELECT count(*) AS n FROM calls WHERE account = ? AND started >= ? AND started < ? "
            "AND wrapup_seq IS NULL",
            (account, s, e),
        )[0]["n"]
        acd = _query(
            src,
            "SELECT entered, repeat_count, escalation FROM acd_calls "
            "WHERE account = ? AND entered >= ? AND entered < ?",
            (account, s, e),
        )
        escs = _query(
            src,
            "SELECT kind, raised FROM escalations WHERE account = ? AND raised >= ? AND raised < ?",
            (account, s, e),
        )
    return _demand(account, name, table, period, wraps, int(waiting), acd, escs)


def _demand(
    account: str,
    name: str,
    table: dict[int, tuple[str, bool]],
    period: Period,
    wraps: list[dict[str, Any]],
    waiting: int,
    acd: list[dict[str, Any]],
    escs: list[dict[str, Any]],
) -> DemandReport:
    # Per (code, demand): the flag is the one stored with each wrap-up, so a
    # code the account re-flagged mid-period shows as two rows, each true.
    groups: dict[tuple[int, Demand], list[int]] = {}  # contacts, keyed, fallback
    labels: dict[tuple[int, Demand], str] = {}
    by_how = dict.fromkeys(HOW_NAMES.values(), 0)
    edges = boundaries(period)
    n = len(edges) - 1
    iv = {k: [0] * n for k in ("failure", "value", "unclassified", "esc", "help", "acd", "rep")}
    coded = keyed_failure = 0
    for w in wraps:
        code, fd, how = int(w["code"]), w["fd"], int(w["how"])
        demand = _demand_of(code, fd, how)
        key = (code, demand)
        g = groups.setdefault(key, [0, 0, 0])
        g[0] += 1
        if how == codec.HOW_CODE:
            g[1] += 1
            if fd is not None:
                coded += 1
                keyed_failure += bool(fd)
        elif how != codec.HOW_SKIPPED:
            g[2] += 1
        if w["label"]:
            labels[key] = str(w["label"])  # the latest wins
        hname = HOW_NAMES.get(how, f"how_{how}")
        by_how[hname] = by_how.get(hname, 0) + 1
        i = _bucket(edges, float(w["t"]))
        iv["failure" if demand == "failure" else "value" if demand == "value" else "unclassified"][
            i
        ] += 1
    for r in acd:
        i = _bucket(edges, float(r["entered"]))
        iv["acd"][i] += 1
        iv["rep"][i] += r["repeat_count"] > 0
    for r in escs:
        iv["help" if r["kind"] == 1 else "esc"][_bucket(edges, float(r["raised"]))] += 1

    order = sorted(groups, key=lambda k: (-groups[k][0], k[0], k[1]))
    counts = [groups[k][0] for k in order]
    share = shares(counts)
    codes: list[CodeRow] = []
    run = 0
    for k, sh in zip(order, share, strict=True):
        run += round(sh * 10)
        c, k_, f = groups[k]
        codes.append(
            CodeRow(
                k[0],
                _code_label(k[0], k[1], labels.get(k, ""), table),
                k[1],
                c,
                sh,
                run / 10,
                k_,
                f,
            )
        )
    failure_rows = [r for r in codes if r.demand == "failure"]
    fshare = shares([r.contacts for r in failure_rows])
    causes = tuple(
        CauseRow(r.code, r.label, r.contacts, r.share_pct, fs)
        for r, fs in zip(failure_rows, fshare, strict=True)
    )
    total = len(wraps)
    failure = sum(r.contacts for r in failure_rows)
    value = sum(r.contacts for r in codes if r.demand == "value")
    repeats = sum(1 for r in acd if r["repeat_count"] > 0)
    summary = DemandSummary(
        contacts=total,
        failure=failure,
        value=value,
        unclassified=total - failure - value,
        failure_pct=pct(failure, total),
        coded=coded,
        failure_of_coded_pct=pct(keyed_failure, coded),
        by_how=by_how,
        calls_without_wrapup=waiting,
        acd_contacts=len(acd),
        repeat_contacts=repeats,
        repeat_pct=pct(repeats, len(acd)),
        repeats_about_open_escalation=sum(
            1 for r in acd if r["repeat_count"] > 0 and r["escalation"]
        ),
    )
    tzi = period.zone
    rows = []
    for i in range(n):
        start = _local(edges[i], tzi)
        contacts = iv["failure"][i] + iv["value"][i] + iv["unclassified"][i]
        rows.append(
            IntervalRow(
                start=start,
                end=_local(edges[i + 1], tzi),
                label=_label(start, period.interval),
                contacts=contacts,
                failure=iv["failure"][i],
                value=iv["value"][i],
                unclassified=iv["unclassified"][i],
                failure_pct=pct(iv["failure"][i], contacts),
                escalations=iv["esc"][i],
                floor_help=iv["help"][i],
                acd_contacts=iv["acd"][i],
                repeat_contacts=iv["rep"][i],
            )
        )
    return DemandReport(account, name, period, summary, tuple(codes), causes, tuple(rows))


def _bucket(edges: list[float], t: float) -> int:
    return min(max(bisect.bisect_right(edges, t) - 1, 0), len(edges) - 2)


# --- escalation SLA -----------------------------------------------------------------
_ESC_COLS = (
    "kind, severity, status, raised, updated, delivered, acked, resolved, cancelled, "
    "ack_due, resolve_due, breached"
)


def escalation_sla(
    src: Source, account: str, period: Period, *, now: float | None = None
) -> tuple[EscalationSla, EscalationSla]:
    """(client escalations, floor help) raised in the period, judged as of `now`."""
    with _snapshot(src):
        _account(src, account)
        rows = _query(
            src,
            f"SELECT {_ESC_COLS} FROM escalations WHERE account = ? AND raised >= ? AND raised < ?",
            (account, period.start_ts, period.end_ts),
        )
    at = time.time() if now is None else now
    rows = [r for r in rows if r["raised"] <= at]  # not yet raised as of `now`
    return (
        _sla("client", [r for r in rows if r["kind"] != 1], at),
        _sla("floor_help", [r for r in rows if r["kind"] == 1], at),
    )


def _sla(
    kind: Literal["client", "floor_help"], rows: list[dict[str, Any]], now: float
) -> EscalationSla:
    return EscalationSla(
        kind,
        _figures(None, rows, now),
        tuple(_figures(s, [r for r in rows if r["severity"] == s], now) for s in SEVERITIES),
    )


def _deadline(
    done: float | None, due: float | None, flagged: bool, now: float
) -> Literal["met", "breached", "pending", "none"]:
    """One deadline's outcome.  The escalation service's breach mark wins; a
    time past the deadline counts as a breach even without it (the service
    was down when the deadline passed).  Within is inclusive, as SL is."""
    if flagged:
        return "breached"
    if due is None:
        return "none"
    if done is not None:
        return "met" if done <= due else "breached"
    return "breached" if now > due else "pending"


_REACHED = (codec.ESC_DELIVERED, codec.ESC_ACKED, codec.ESC_RESOLVED, codec.ESC_BREACHED)


@dataclass(frozen=True)
class _EscAsOf:
    """An escalation as it stood at `now`: what happened later has not
    happened yet, and its status counts only if it was set by then."""

    status: int
    delivered: float | None
    acked: float | None  # or resolved: resolving acknowledges
    resolved: float | None
    cancelled_at: float | None
    cancelled: bool
    marks: frozenset[str]
    known: bool  # the row's status and marks were written by `now`

    @classmethod
    def of(cls, r: dict[str, Any], now: float) -> _EscAsOf:
        def seen(col: str) -> float | None:
            t = r[col]
            return float(t) if t is not None and t <= now else None

        known = r["updated"] <= now
        status = r["status"] if known else codec.ESC_RAISED
        resolved = seen("resolved")
        acked = seen("acked")
        return cls(
            status=status,
            delivered=seen("delivered"),
            acked=resolved if acked is None else acked,
            resolved=resolved,
            cancelled_at=seen("cancelled"),
            cancelled=seen("cancelled") is not None or status == codec.ESC_CANCELLED,
            marks=frozenset(filter(None, (r["breached"] or "").split(","))),
            known=known,
        )

    def flagged(self, deadline: str, due: float | None, at: float) -> bool:
        """The service's breach mark, once its deadline had passed at `at`."""
        if deadline not in self.marks:
            return False
        return self.known if due is None else at > due


def _figures(severity: int | None, rows: list[dict[str, Any]], now: float) -> SlaFigures:
    out = dict.fromkeys(("delivered", "failed", "cancelled", "cancelled_after_breach", "open"), 0)
    outcome = {
        d: dict.fromkeys(("met", "breached", "pending", "none"), 0) for d in ("ack", "resolve")
    }
    times: dict[str, list[float]] = {"ack": [], "resolve": []}
    for r in rows:
        v = _EscAsOf.of(r, now)
        clocks = (("ack", v.acked, r["ack_due"]), ("resolve", v.resolved, r["resolve_due"]))
        if v.delivered is not None or v.acked is not None or v.status in _REACHED:
            out["delivered"] += 1
        out["failed"] += v.status == codec.ESC_FAILED
        if v.cancelled:
            out["cancelled"] += 1
            end = v.cancelled_at or now
            out["cancelled_after_breach"] += any(
                _deadline(done, due, v.flagged(d, due, end), end) == "breached"
                for d, done, due in clocks
            )
            continue
        if v.resolved is None and v.status != codec.ESC_RESOLVED:
            out["open"] += 1
        for d, done, due in clocks:
            outcome[d][_deadline(done, due, v.flagged(d, due, now), now)] += 1
            if done is not None:
                times[d].append(done - float(r["raised"]))
    ack, res = outcome["ack"], outcome["resolve"]
    return SlaFigures(
        severity=severity,
        raised=len(rows),
        delivered=out["delivered"],
        failed=out["failed"],
        cancelled=out["cancelled"],
        cancelled_after_breach=out["cancelled_after_breach"],
        open=out["open"],
        ack_met=ack["met"],
        ack_breached=ack["breached"],
        ack_pending=ack["pending"],
        ack_no_deadline=ack["none"],
        ack_compliance_pct=pct(ack["met"], ack["met"] + ack["breached"]),
        resolve_met=res["met"],
        resolve_breached=res["breached"],
        resolve_pending=res["pending"],
        resolve_no_deadline=res["none"],
        resolve_compliance_pct=pct(res["met"], res["met"] + res["breached"]),
        ack_median_s=quantile(times["ack"], 0.5),
        ack_p90_s=quantile(times["ack"], 0.9),
        resolve_median_s=quantile(times["resolve"], 0.5),
        resolve_p90_s=quantile(times["resolve"], 0.9),
    )


# --- the whole report ---------------------------------------------------------------
def build_report(src: Source, account: str, period: Period, *, now: float | None = None) -> Report:
    """Everything `deskline report` shows, read in one snapshot."""
    at = time.time() if now is None else now
    with _snapshot(src):
        demand = demand_report(src, account, period)
        client, floor_help = escalation_sla(src, account, period, now=at)
    return Report(demand, client, floor_help, _local(at, period.zone))


def today(
    src: Source,
    account: str,
    *,
    tz: str | tzinfo | None = None,
    now: float | None = None,
    interval: str | int = "60",
) -> DemandReport:
    """Today's wrap-up Pareto and failure-demand share per interval (the dashboard's call)."""
    start = parse_when("today", tz, now=now)
    return demand_report(src, account, make_period(start, tz=tz, interval=interval))
