"""The escalation SLA a client signs up to, and the floor's own for help requests.

An account's `[accounts.<key>.escalation]` table (docs/escalations.md) says
how soon the client must acknowledge and resolve an escalation of each
severity, whether that clock runs 24/7 or in business hours of a time zone,
and where the escalation is delivered (a webhook, signed with a secret that
never sits in the floor file in clear).  The floor's `[help]` table says the
same for supervisor-help requests, toward the floor supervisors.

`check_account` / `check_help` turn the raw TOML table into a `Policy` and
findings naming the key path, so `deskline floor check` reports a wrong
deadline the way it reports a wrong wrap-up code.  Working time is counted
here (`Hours.add`, `Hours.between`): a 2 h deadline raised at 17:30 on a
Friday of a 08:00-18:00 weekday contract falls at 09:30 on Monday.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from deskline import tomlkind
from deskline.errors import DesklineError
from deskline.floormodel import Account, Floor
from deskline.outbox import Retry

# Severity as keyed at the desk (a digit before ESCALATE, or the account's
# default): 1 is the most severe, as ITIL's P1 and Zendesk's "urgent".
SEVERITIES: dict[int, str] = {1: "urgent", 2: "high", 3: "normal", 4: "low"}
_BY_NAME = {name: level for level, name in SEVERITIES.items()}
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Deadlines:
    """How long the client has, from the moment the desk raised it."""

    ack_s: int
    resolve_s: int


# Zendesk's example SLA (urgent 10 min / 2 h, high 30 min / 8 h) and two
# gentler steps below it.
DEFAULT_DEADLINES: dict[int, Deadlines] = {
    1: Deadlines(10 * 60, 2 * 3600),
    2: Deadlines(30 * 60, 8 * 3600),
    3: Deadlines(2 * 3600, 24 * 3600),
    4: Deadlines(8 * 3600, 72 * 3600),
}
# A supervisor walks over within minutes, whatever the severity.
DEFAULT_HELP = Deadlines(2 * 60, 15 * 60)
DEFAULT_REPEAT_DAYS = 7
DEFAULT_HISTORY_DAYS = 30
MAX_DURATION_S = 30 * 86400
MIN_WINDOW_MIN = 60  # a business day of less than an hour is a typo
_SEARCH_DAYS = 3660  # working time is looked for this far ahead at most

ACCOUNT_KEYS = (
    "url",
    "secret_env",
    "secret_file",
    "secret",
    "timeout_s",
    "retry_base_s",
    "retry_cap_s",
    "give_up_s",
    "hours",
    "timezone",
    "days",
    "open",
    "close",
    "holidays",
    "deadlines",
    "repeat_days",
    "history_days",
)
# The floor's [help] table: one pair of deadlines for every help request.
HELP_KEYS = (
    *(k for k in ACCOUNT_KEYS if k not in ("deadlines", "repeat_days", "history_days")),
    "ack",
    "resolve",
)
DEADLINE_KEYS = ("ack", "resolve")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- working time ---------------------------------------------------------------


@dataclass(frozen=True)
class Hours:
    """When an SLA clock runs: always, or in business hours of a time zone.

    Business hours are one window a day (`open` to `close`, local time, no
    window across midnight) on the listed weekdays, except holidays.  Local
    times go through zoneinfo, so a window keeps its wall-clock hours across
    a daylight-saving change (that day is an hour shorter or longer).
    """

    always: bool = True
    zone: str = "UTC"
    days: frozenset[int] = frozenset(range(5))  # Monday is 0
    open_min: int = 8 * 60
    close_min: int = 18 * 60
    holidays: frozenset[date] = frozenset()

    def add(self, start: float, seconds: float) -> float:
        """The moment `seconds` of working time after `start` (epoch seconds)."""
        if seconds < 0:
            raise ValueError(f"working time cannot be negative ({seconds})")
        if self.always:
            return start + seconds
        tz = ZoneInfo(self.zone)
        day = datetime.fromtimestamp(start, tz).date()
        left = seconds
        for _ in range(_SEARCH_DAYS):
            window = self._window(day, tz)
            if window is not None:
                begin, end = max(window[0], start), window[1]
                if begin <= end:
                    if left <= end - begin:
                        return begin + left
                    left -= end - begin
            day += timedelta(days=1)
        raise DesklineError(f"no business hours within {_SEARCH_DAYS} days of {start}")

    def between(self, start: float, end: float) -> float:
        """Working seconds from start to end (0 when end is not after start)."""
        if end <= start:
            return 0.0
        if self.always:
            return end - start
        tz = ZoneInfo(self.zone)
        day = datetime.fromtimestamp(start, tz).date()
        last = datetime.fromtimestamp(end, tz).date()
        total = 0.0
        while day <= last:
            window = self._window(day, tz)
            if window is not None:
                total += max(0.0, min(end, window[1]) - max(start, window[0]))
            day += timedelta(days=1)
        return total

    def _window(self, day: date, tz: ZoneInfo) -> tuple[float, float] | None:
        if day.weekday() not in self.days or day in self.holidays:
            return None
        begin = _local(day, self.open_min, tz)
        end = _local(day, self.close_min, tz)
        return (begin, end) if end > begin else None

    def describe(self) -> str:
        if self.always:
            return "24/7"
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        span = f"{_hhmm(self.open_min)}-{_hhmm(self.close_min)}"
        extra = f", {len(self.holidays)} holidays" if self.holidays else ""
        return f"business hours {days} {span} {self.zone}{extra}"


def _local(day: date, minute: int, tz: ZoneInfo) -> float:
    if minute >= 24 * 60:  # "24:00": the end of the day
        day, minute = day + timedelta(days=1), minute - 24 * 60
    t = time(minute // 60, minute % 60)
    return datetime.combine(day, t, tzinfo=tz).timestamp()


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --- delivery --------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """Where the webhook's shared secret is: an environment variable, a file, or
    (warned against) the floor file itself.  Read at each use, so a rotated
    secret takes effect without a reload."""

    source: str  # "env" | "file" | "literal"
    value: str = field(repr=False)

    def read(self) -> bytes:
        """The secret's bytes; DesklineError saying how to provide it."""
        if self.source == "env":
            got = os.environ.get(self.value)
            if not got:
                raise DesklineError(
                    f"the webhook secret's environment variable {self.value} is not set "
                    "in the daemon's environment: set it and restart the daemon"
                )
            return got.encode()
        if self.source == "file":
            try:
                got = Path(self.value).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise DesklineError(
                    f"cannot read the webhook secret file {self.value}: "
                    f"{(e.strerror or str(e)).lower()}"
                ) from e
            if not got:
                raise DesklineError(f"the webhook secret file {self.value} is empty")
            return got.encode()
        return self.value.encode()

    def describe(self) -> str:
        return {"env": f"${self.value}", "file": self.value}.get(self.source, "(in the floor file)")


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: Secret
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Policy:
    """One account's escalation SLA and delivery, or the floor's help policy."""

    deadlines: Mapping[int, Deadlines] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    hours: Hours = field(default_factory=Hours)
    webhook: Webhook | None = None
    retry: Retry = field(default_factory=Retry)
    repeat_days: int = DEFAULT_REPEAT_DAYS
    history_days: int = DEFAULT_HISTORY_DAYS

    def due(self, severity: int, raised: float) -> tuple[float, float]:
        """(acknowledge by, resolve by) for an escalation raised at `raised`."""
        d = self.deadlines.get(severity) or self.deadlines.get(2) or DEFAULT_DEADLINES[2]
        return self.hours.add(raised, d.ack_s), self.hours.add(raised, d.resolve_s)


HELP_POLICY = Policy(deadlines=dict.fromkeys(SEVERITIES, DEFAULT_HELP))


@dataclass(frozen=True)
class Finding:
    """A problem (or, with warning, a risk) in the floor file, at a TOML key path."""

    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --- reading the TOML tables -----------------------------------------------------


def check_account(raw: Mapping[str, Any], where: str) -> tuple[Policy, list[Finding]]:
    """The policy in an `[accounts.<key>.escalation]` table, and what is wrong with it."""
    c = _Checker(where)
    c.keys(raw, ACCOUNT_KEYS, where)
    deadlines = _deadlines(raw.get("deadlines"), c)
    policy = Policy(
        deadlines=deadlines,
        hours=_hours(raw, c),
        webhook=_webhook(raw, c),
        retry=_retry(raw, c),
        repeat_days=c.integer(raw, "repeat_days", DEFAULT_REPEAT_DAYS, (1, 365)),
        history_days=c.integer(raw, "history_days", DEFAULT_HISTORY_DAYS, (0, 365)),
    )
    return policy, c.findings


def check_help(raw: Mapping[str, Any], where: str = "help") -> tuple[Policy, list[Finding]]:
    """The floor's `[help]` table: deadlines for supervisor-help requests."""
    c = _Checker(where)
    c.keys(raw, HELP_KEYS, where)
    pair = _pair(raw, where, DEFAULT_HELP, c)
    policy = Policy(
        deadlines=dict.fromkeys(SEVERITIES, pair),
        hours=_hours(raw, c),
        webhook=_webhook(raw, c),
        retry=_retry(raw, c),
    )
    return policy, c.findings


def policy_for(account: Account | None) -> Policy:
    """The account's policy; the defaults (24/7, no webhook) without a table."""
    raw = account.extra.get("escalation") if account is not None else None
    if not isinstance(raw, Mapping):
        return Policy()
    return check_account(raw, f"accounts.{account.key if account else '?'}.escalation")[0]


def help_policy(floor: Floor | None) -> Policy:
    raw = getattr(floor, "extra", {}).get("help") if floor is not None else None
    if not isinstance(raw, Mapping):
        return HELP_POLICY
    return check_help(raw)[0]


def repeat_days(floor: Floor | None) -> dict[str, int]:
    """Each account's repeat-contact window in days (for the ACD feed)."""
    if floor is None:
        return {}
    return {key: policy_for(acct).repeat_days for key, acct in floor.accounts.items()}


def secret_findings(policy: Policy, where: str) -> list[Finding]:
    """What is wrong with the policy's secret here and now (unset variable,
    unreadable or world-readable file): for the daemon's log at load."""
    hook = policy.webhook
    if hook is None:
        return []
    s = hook.secret
    key = {"env": "secret_env", "file": "secret_file"}.get(s.source, "secret")
    out: list[Finding] = []
    try:
        s.read()
    except DesklineError as e:
        out.append(Finding(f"{where}.{key}", str(e)))
        return out
    if s.source == "file":
        mode = os.stat(s.value).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            out.append(
                Finding(
                    f"{where}.{key}",
                    f"{s.value} can be read by other users (mode {stat.S_IMODE(mode):o}): "
                    f"chmod 600 {s.value}",
                    warning=True,
                )
            )
    return out


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where
        self.findings: list[Finding] = []

    def add(self, path: str, message: str, warning: bool = False) -> None:
        self.findings.append(Finding(path, message, warning))

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def keys(self, tbl: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in tbl:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"keys: {', '.join(allowed)}"
                self.add(f"{where}.{key}", f"unknown key ({hint})")

    def string(self, tbl: Mapping[str, Any], key: str, default: str) -> str:
        value = tbl.get(key, default)
        if not isinstance(value, str):
            self.add(self.path(key), f"must be a string in quotes, not {tomlkind.kind(value)}")
            return default
        return value

    def integer(self, tbl: Mapping[str, Any], key: str, default: int, span: tuple[int, int]) -> int:
        value = tbl.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(self.path(key), f"must be a whole number, not {tomlkind.kind(value)}")
            return default
        if not span[0] <= value <= span[1]:
            self.add(self.path(key), f"must be {span[0]}..{span[1]}, not {value}")
            return default
        return value

    def seconds(
        self, tbl: Mapping[str, Any], key: str, default: float, span: tuple[float, float]
    ) -> float:
        value = tbl.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(self.path(key), f"must be a number of seconds, not {tomlkind.kind(value)}")
            return default
        if not span[0] <= value <= span[1]:
            self.add(self.path(key), f"must be {span[0]:g}..{span[1]:g} s, not {value:g}")
            return default
        return float(value)


def parse_duration(value: Any) -> int:
    """Seconds from "10m", "2h", "1h30m", "45s", "2d" or a whole number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is not true/false")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if not value.strip() or m is None:
            raise ValueError(f'"{value}" is not a duration like "10m", "2h", "1h30m" or "45s"')
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    else:
        raise ValueError(
            f'a duration is "10m", "2h" or a number of seconds, not {tomlkind.kind(value)}'
        )
    if not 1 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"must be 1 s..30 days, not {seconds} s")
    return seconds


def format_duration(seconds: int) -> str:
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


def _pair(tbl: Mapping[str, Any], where: str, default: Deadlines, c: _Checker) -> Deadlines:
    values = {"ack": default.ack_s, "resolve": default.resolve_s}
    for key in DEADLINE_KEYS:
        if key in tbl:
            try:
                values[key] = parse_duration(tbl[key])
            except ValueError as e:
                c.add(f"{where}.{key}", str(e))
    if values["ack"] > values["resolve"]:
        c.add(
            where,
            f"ack ({format_duration(values['ack'])}) is later than resolve "
            f"({format_duration(values['resolve'])}): an escalation is acked first",
        )
        return default
    return Deadlines(values["ack"], values["resolve"])


def _deadlines(value: Any, c: _Checker) -> dict[int, Deadlines]:
    out = dict(DEFAULT_DEADLINES)
    where = c.path("deadlines")
    if value is None:
        return out
    if not isinstance(value, dict):
        c.add(where, f"must be a table ([{where}]), not {tomlkind.kind(value)}")
        return out
    c.keys(value, tuple(_BY_NAME), where)
    for name, level in _BY_NAME.items():
        inner = value.get(name)
        if inner is None:
            continue
        path = f"{where}.{name}"
        if not isinstance(inner, dict):
            c.add(
                path,
                'must be a table like { ack = "10m", resolve = "2h" }, '
                f"not {tomlkind.kind(inner)}",
            )
            continue
        c.keys(inner, DEADLINE_KEYS, path)
        out[level] = _pair(inner, path, DEFAULT_DEADLINES[level], c)
    return out


def _hours(tbl: Mapping[str, Any], c: _Checker) -> Hours:
    mode = c.string(tbl, "hours", "24/7")
    zone = c.string(tbl, "timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(zone, _zones(), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ' (an IANA name like "Europe/London")'
        c.add(c.path("timezone"), f'unknown time zone "{zone}"{hint}')
        zone = "UTC"
    if mode not in ("24/7", "business"):
        c.add(c.path("hours"), f'must be "24/7" or "business", not "{mode}"')
        mode = "24/7"
    business = ("days", "open", "close", "holidays")
    if mode == "24/7":
        for key in business:
            if key in tbl:
                c.add(c.path(key), 'only counts with hours = "business"')
        return Hours(always=True, zone=zone)
    days = _days(tbl, c)
    opens = _clock(tbl, "open", 8 * 60, c)
    closes = _clock(tbl, "close", 18 * 60, c)
    if closes - opens < MIN_WINDOW_MIN:
        c.add(
            c.path("close"),
            f"{_hhmm(closes)} is not at least an hour after open ({_hhmm(opens)}); "
            "business hours across midnight are not supported",
        )
        opens, closes = 8 * 60, 18 * 60
    return Hours(False, zone, days, opens, closes, _holidays(tbl, c))


def _zones() -> list[str]:
    return sorted(available_timezones())


def _days(tbl: Mapping[str, Any], c: _Checker) -> frozenset[int]:
    value = tbl.get("days", list(DAY_NAMES[:5]))
    if not isinstance(value, list) or not value:
        c.add(c.path("days"), 'must be a list of weekdays, e.g. ["mon", "tue", "wed"]')
        return frozenset(range(5))
    out: set[int] = set()
    for i, day in enumerate(value):
        name = day.lower()[:3] if isinstance(day, str) else ""
        if name not in DAY_NAMES:
            c.add(f"{c.path('days')}[{i}]", f"{day!r} is not a weekday ({', '.join(DAY_NAMES)})")
            continue
        out.add(DAY_NAMES.index(name))
    return frozenset(out) or frozenset(range(5))


def _clock(tbl: Mapping[str, Any], key: str, default: int, c: _Checker) -> int:
    value = tbl.get(key)
    if value is None:
        return default
    text = value if isinstance(value, str) else ""
    if isinstance(value, time):  # TOML local time: open = 08:00:00
        return value.hour * 60 + value.minute
    m = _CLOCK.fullmatch(text.strip())
    if m is None or int(m[1]) > 24 or int(m[2]) > 59 or (int(m[1]) == 24 and int(m[2])):
        c.add(c.path(key), f'must be a time of day like "08:00" (up to "24:00"), not {value!r}')
        return default
    return int(m[1]) * 60 + int(m[2])


def _holidays(tbl: Mapping[str, Any], c: _Checker) -> frozenset[date]:
    value = tbl.get("holidays", [])
    if not isinstance(value, list):
        c.add(c.path("holidays"), "must be a list of dates, e.g. [2025-12-25, 2025-12-26]")
        return frozenset()
    out: set[date] = set()
    for i, day in enumerate(value):
        if isinstance(day, date) and not isinstance(day, datetime):
            out.add(day)
            continue
        try:
            out.add(date.fromisoformat(str(day)))
        except ValueError:
            c.add(f"{c.path('holidays')}[{i}]", f"{day!r} is not a date like 2025-12-25")
    return frozenset(out)


def _webhook(tbl: Mapping[str, Any], c: _Checker) -> Webhook | None:
    sources = [k for k in ("secret_env", "secret_file", "secret") if k in tbl]
    if "url" not in tbl:
        for key in sources + [k for k in ("timeout_s",) if k in tbl]:
            c.add(c.path(key), "only counts with a url to deliver to")
        return None
    url = c.string(tbl, "url", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        c.add(c.path("url"), f'must be an http:// or https:// address, not "{url}"')
        return None
    timeout = c.seconds(tbl, "timeout_s", 10.0, (0.1, 120.0))
    if len(sources) != 1:
        what = "no secret" if not sources else f"{' and '.join(sources)}"
        c.add(
            c.path("url") if not sources else c.path(sources[1]),
            f"{what}: a webhook is signed with one secret: give secret_env = "
            '"NAME" (an environment variable) or secret_file = "/path"',
        )
        return None
    key = sources[0]
    value = c.string(tbl, key, "")
    if not value.strip():
        c.add(c.path(key), "must not be empty")
        return None
    if key == "secret_env" and not _ENV_NAME.fullmatch(value):
        c.add(c.path(key), f'"{value}" is not an environment variable name')
        return None
    if key == "secret":
        c.add(
            c.path(key),
            "the webhook secret is in the floor file in clear: anyone who can read the "
            "file can sign callbacks; move it to secret_env or secret_file",
            warning=True,
        )
    source = {"secret_env": "env", "secret_file": "file", "secret": "literal"}[key]
    return Webhook(url, Secret(source, value), timeout)


def _retry(tbl: Mapping[str, Any], c: _Checker) -> Retry:
    base = c.seconds(tbl, "retry_base_s", Retry.base_s, (0.05, 3600.0))
    cap = c.seconds(tbl, "retry_cap_s", Retry.cap_s, (0.05, 86400.0))
    give_up = c.seconds(tbl, "give_up_s", Retry.give_up_s, (1.0, 30 * 86400.0))
    if cap < base:
        c.add(c.path("retry_cap_s"), f"{cap:g} s is less than retry_base_s ({base:g} s)")
        cap = base
    return Retry(base, cap, give_up)
