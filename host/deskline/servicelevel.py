"""Service level from the ACD's queue_log, kept up to date one record at a time.

Per queue and per client account: every wall-clock interval of the day,
a rolling 5 minutes and today, each with the figures of docs/metrics.md and
the service level in each contract variant.  A call counts in the interval
of its answer (CONNECT) or of its leaving the queue unanswered (ABANDON,
EXIT*, WITHDRAW); what is learnt later (talk time, after-call work) is added
to that same interval.  feed() also says what happened to each call (it
entered, an agent answered, it ended) for the store and the consoles.

Work per record is O(1) (a few dictionary and counter updates); snapshot()
re-reads only the accumulators that changed, plus the calls of the rolling
window for its longest wait.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from typing import TYPE_CHECKING, NamedTuple

from deskline.queuelog import (
    Complete,
    Connect,
    EnterQueue,
    Exit,
    QueueStart,
    Record,
    Transfer,
    agent_id,
)

if TYPE_CHECKING:
    from deskline.floormodel import Floor

# The contract's service-level formulas (docs/metrics.md), by the names the
# floor configuration's sl.variant uses.
VARIANTS = (
    "answered",  # A_in / A                   Asterisk SL (ServiceLevelPerf)
    "abandons_negative",  # A_in / (A + B)
    "abandons_ignored",  # A_in / (offered - B_in)
    "short_excluded",  # A_in / (A + B - S)
    "abandons_positive",  # (A_in + B_in) / (A + B)  Asterisk SL2 (ServiceLevelPerf2)
)
DEFAULT_VARIANT = "short_excluded"
QUEUE = "queue"
ACCOUNT = "account"
# Why a call was closed out without its exit line (CallOutcome.flagged).
CLOSED_QUEUESTART = "queuestart"  # Asterisk restarted: the call is gone
CLOSED_REENTERED = "reentered"  # its uniqueid entered a queue again
CLOSED_STALE = "stale"  # nothing heard of it for max_age_s


@dataclass(frozen=True)
class Thresholds:
    """An account's service-level thresholds, seconds."""

    answer_s: int = 20  # answered (or abandoned) within this, inclusive, counts "in SL"
    short_abandon_s: int = 5  # abandoned within this, inclusive, is short; 0: none is


class Scope(NamedTuple):
    kind: str  # QUEUE or ACCOUNT
    name: str


# --- what feed() reports ----------------------------------------------------------------


@dataclass(frozen=True)
class CallOutcome:
    """A finished call, as the store's acd_calls row holds it."""

    uniqueid: str
    queue: str
    account: str | None
    callerid: str
    entered: int
    connected: int | None
    ended: int
    # completed | transferred | abandoned | timeout | empty | withdrawn | key | closed-out
    outcome: str
    agent: str | None  # the agent id of an Agent/<id> member
    member: str  # the member as logged ("" when never answered)
    hold_s: int | None  # waiting before the answer, or before leaving unanswered
    talk_s: int | None
    origposition: int | None
    flagged: str = ""  # why it was closed out: queuestart | reentered | stale
    ended_by: str = ""  # completed: agent | caller


@dataclass(frozen=True)
class Entered:
    """A caller joined a queue."""

    uniqueid: str
    queue: str
    account: str | None
    callerid: str
    at: int
    origposition: int


@dataclass(frozen=True)
class Connected:
    """An agent answered: tell that agent's console its call started."""

    uniqueid: str
    queue: str
    account: str | None
    callerid: str
    entered: int
    at: int
    agent: str | None
    member: str
    hold_s: int


@dataclass(frozen=True)
class Ended:
    """The call is over for the queue; call.agent's console (if any) has its call end."""

    call: CallOutcome


@dataclass(frozen=True)
class Ignored:
    """A record that changed nothing, and why (late, for an unknown call, out of order)."""

    record: Record
    reason: str


Happening = Entered | Connected | Ended | Ignored


# --- figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """The figures of one window (interval, rolling, day) of one queue or account.

    Durations are seconds; percentages are 0..100; None where a figure has
    no calls to be computed from.
    """

    start: float
    end: float
    offered: int  # answered + abandoned
    answered: int  # A
    answered_in: int  # A_in: hold <= answer_s
    abandoned: int  # B: left unanswered, any way (hung up, timeout, empty, key, withdrawn)
    abandoned_in: int  # B_in: wait <= answer_s
    short_abandons: int  # S: hung up (ABANDON) after <= short_abandon_s
    timeouts: int  # of B: EXITWITHTIMEOUT
    exits_empty: int  # of B: EXITEMPTY
    exits_key: int  # of B: EXITWITHKEY
    withdrawn: int  # of B: WITHDRAW
    transferred: int  # of the handled: ended by a transfer
    handled: int  # answered calls whose end is logged
    closed_out: int  # calls closed out here without their exit line
    wait_answered_s: int  # sum of hold of the answered
    longest_wait_s: int | None  # of the calls answered or abandoned here
    talk_s: int  # sum of talk of the handled
    acw_s: float  # after-call work reported for calls of this window
    acw_count: int
    acw_handled_s: float  # the part of acw_s on handled calls (AHT's share)
    acw_by_agent: tuple[tuple[str, float, int], ...]  # (agent, seconds, reports)

    @property
    def hung_up(self) -> int:
        """Abandoned by the caller hanging up (ABANDON)."""
        return self.abandoned - self.timeouts - self.exits_empty - self.exits_key - self.withdrawn

    def sl(self, variant: str = DEFAULT_VARIANT) -> float | None:
        """The service level in percent by the named formula; None when its denominator is 0."""
        num, den = self.sl_terms(variant)
        return 100.0 * num / den if den > 0 else None

    def sl_terms(self, variant: str = DEFAULT_VARIANT) -> tuple[int, int]:
        """The named formula's numerator and denominator (the calls it judges by)."""
        a, a_in, b, b_in, s = (
            self.answered,
            self.answered_in,
            self.abandoned,
            self.abandoned_in,
            self.short_abandons,
        )
        if variant == "answered":
            return a_in, a
        if variant == "abandons_negative":
            return a_in, a + b
        if variant == "abandons_ignored":
            return a_in, self.offered - b_in
        if variant == "short_excluded":
            return a_in, a + b - s
        if variant == "abandons_positive":
            return a_in + b_in, a + b
        raise ValueError(f"service level variant {variant!r} is not one of {', '.join(VARIANTS)}")

    @property
    def asa_s(self) -> float | None:
        """Average speed of answer: mean hold of the answered calls."""
        return self.wait_answered_s / self.answered if self.answered else None

    @property
    def aht_s(self) -> float | None:
        """Average handle time: (talk + after-call work) per handled call."""
        return (self.talk_s + self.acw_handled_s) / self.handled if self.handled else None

    @property
    def abandon_rate_pct(self) -> float | None:
        return _pct(self.abandoned, self.offered)

    def acw_per_agent(self) -> dict[str, float]:
        """Mean after-call work per report, by agent."""
        return {agent: total / n for agent, total, n in self.acw_by_agent if n}

    def to_dict(self) -> dict[str, object]:
        """Every figure, derived one and variant, for JSON."""
        d: dict[str, object] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k != "acw_by_agent"
        }
        d["acw_by_agent"] = {a: {"acw_s": s, "count": n} for a, s, n in self.acw_by_agent}
        d["hung_up"] = self.hung_up
        d["asa_s"] = self.asa_s
        d["aht_s"] = self.aht_s
        d["abandon_rate_pct"] = self.abandon_rate_pct
        d["sl"] = {v: self.sl(v) for v in VARIANTS}
        return d


def _pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den > 0 else None


@dataclass(frozen=True)
class ScopeView:
    """One queue or account now."""

    scope: Scope
    thresholds: Thresholds
    current: Stats  # the wall-clock interval holding `now`
    rolling: Stats  # the last rolling_s seconds, by event time
    today: Stats  # since local midnight
    intervals: tuple[Stats, ...]  # today's intervals before the current one, oldest first
    waiting: int  # callers in the queue now
    longest_waiting_s: float | None  # the longest of them, so far
    talking: int  # answered calls not yet ended


@dataclass(frozen=True)
class Snapshot:
    now: float
    interval_min: int
    queues: dict[str, ScopeView]
    accounts: dict[str, ScopeView]


# --- accumulators -----------------------------------------------------------------------


class _Call:
    __slots__ = (
        "account",
        "accs",
        "acw",
        "acw_total",
        "callerid",
        "connected",
        "ended",
        "ended_by",
        "entered",
        "exit",
        "flagged",
        "handled",
        "hold",
        "in_rolling",
        "member",
        "origpos",
        "outcome",
        "queue",
        "scopes",
        "sl_at",
        "talk",
        "th",
        "transferred",
        "uid",
    )

    def __init__(
        self,
        uid: str,
        queue: str,
        account: str | None,
        callerid: str,
        entered: int,
        origpos: int | None,
        scopes: tuple[_ScopeState, ...],
        th: Thresholds,
    ) -> None:
        self.uid = uid
        self.queue = queue
        self.account = account
        self.callerid = callerid
        self.entered = entered
        self.origpos = origpos
        self.scopes = scopes
        self.th = th
        self.member = ""
        self.connected: int | None = None
        self.hold: int | None = None  # hold when answered, wait when left unanswered
        self.exit = ""  # the outcome of an unanswered exit
        self.sl_at: int | None = None
        self.accs: list[_Acc] = []  # interval and day accumulators it counts in
        self.in_rolling = False
        self.handled = False
        self.transferred = False
        self.talk: int | None = None
        self.ended: int | None = None
        self.ended_by = ""
        self.outcome = ""
        self.flagged = ""
        self.acw: list[tuple[str, float]] = []
        self.acw_total = 0.0

    def result(self) -> CallOutcome:
        assert self.ended is not None
        return CallOutcome(
            uniqueid=self.uid,
            queue=self.queue,
            account=self.account,
            callerid=self.callerid,
            entered=self.entered,
            connected=self.connected,
            ended=self.ended,
            outcome=self.outcome,
            agent=agent_id(self.member),
            member=self.member,
            hold_s=self.hold,
            talk_s=self.talk,
            origposition=self.origpos,
            flagged=self.flagged,
            ended_by=self.ended_by,
        )


class _Acc:
    """Running sums of one window of one scope."""

    __slots__ = (
        "abandoned",
        "abandoned_in",
        "acw",
        "acw_handled",
        "acw_n",
        "agents",
        "answered",
        "answered_in",
        "closed_out",
        "empty",
        "end",
        "frozen",
        "handled",
        "key",
        "longest",
        "short",
        "start",
        "talk",
        "timeouts",
        "transferred",
        "wait_answered",
        "withdrawn",
    )

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.answered = self.answered_in = self.abandoned = self.abandoned_in = 0
        self.short = self.timeouts = self.empty = self.key = self.withdrawn = 0
        self.transferred = self.handled = self.closed_out = 0
        self.wait_answered = self.talk = 0
        self.longest: int | None = None
        self.acw = self.acw_handled = 0.0
        self.acw_n = 0
        self.agents: dict[str, list[float]] = {}  # agent -> [seconds, reports]
        self.frozen: Stats | None = None

    def sl_event(self, c: _Call, sign: int) -> None:
        self.frozen = None
        hold = c.hold or 0
        th = c.th
        if c.connected is not None:
            self.answered += sign
            if hold <= th.answer_s:
                self.answered_in += sign
            self.wait_answered += sign * hold
            if c.handled:
                self._handled(c, sign)
        else:
            self.abandoned += sign
            if hold <= th.answer_s:
                self.abandoned_in += sign
            if c.exit == "abandoned":
                if 0 < th.short_abandon_s and hold <= th.short_abandon_s:
                    self.short += sign
            elif c.exit == "timeout":
                self.timeouts += sign
            elif c.exit == "empty":
                self.empty += sign
            elif c.exit == "key":
                self.key += sign
            elif c.exit == "withdrawn":
                self.withdrawn += sign
        if sign > 0 and (self.longest is None or hold > self.longest):
            self.longest = hold
        for agent, seconds in c.acw:
            self.add_acw(agent, seconds, c.handled, sign)

    def ended(self, c: _Call, sign: int) -> None:
        """The call, counted here already, is now handled."""
        self.frozen = None
        self._handled(c, sign)
        self.acw_handled += sign * c.acw_total

    def _handled(self, c: _Call, sign: int) -> None:
        self.handled += sign
        self.talk += sign * (c.talk or 0)
        if c.transferred:
            self.transferred += sign

    def add_acw(self, agent: str, seconds: float, handled: bool, sign: int) -> None:
        self.frozen = None
        self.acw += sign * seconds
        self.acw_n += sign
        if handled:
            self.acw_handled += sign * seconds
        row = self.agents.setdefault(agent, [0.0, 0.0])
        row[0] += sign * seconds
        row[1] += sign
        if row[1] == 0:
            del self.agents[agent]

    def closed(self, sign: int) -> None:
        self.frozen = None
        self.closed_out += sign

    def stats(self) -> Stats:
        if self.frozen is None:
            self.frozen = self.build(self.start, self.end, self.longest)
        return self.frozen

    def build(self, start: float, end: float, longest: int | None) -> Stats:
        return Stats(
            start=start,
            end=end,
            offered=self.answered + self.abandoned,
            answered=self.answered,
            answered_in=self.answered_in,
            abandoned=self.abandoned,
            abandoned_in=self.abandoned_in,
            short_abandons=self.short,
            timeouts=self.timeouts,
            exits_empty=self.empty,
            exits_key=self.key,
            withdrawn=self.withdrawn,
            transferred=self.transferred,
            handled=self.handled,
            closed_out=self.closed_out,
            wait_answered_s=self.wait_answered,
            longest_wait_s=longest,
            talk_s=self.talk,
            acw_s=self.acw,
            acw_count=self.acw_n,
            acw_handled_s=self.acw_handled,
            acw_by_agent=tuple((a, row[0], int(row[1])) for a, row in sorted(self.agents.items())),
        )


class _ScopeState:
    __slots__ = ("buckets", "days", "rolling", "scope", "talking", "waiting")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.buckets: dict[int, _Acc] = {}
        self.days: dict[int, _Acc] = {}
        self.rolling = _Acc(0, 0)
        self.waiting: dict[str, int] = {}  # uniqueid -> entered
        self.talking: set[str] = set()


class _Clock:
    """Wall-clock interval and day boundaries as epoch seconds, in one time zone."""

    def __init__(self, interval_s: int, tz: tzinfo | None) -> None:
        self.interval_s = interval_s
        self.tz = tz
        self._offsets: dict[int, int] = {}
        self._days: dict[int, tuple[int, int]] = {}

    def offset(self, t: int) -> int:
        # UTC offsets change on quarter hours in every zone there is.
        q = t // 900
        off = self._offsets.get(q)
        if off is None:
            if len(self._offsets) > 4096:
                self._offsets.clear()
            utc = datetime.fromtimestamp(q * 900, UTC)
            local = utc.astimezone(self.tz) if self.tz is not None else utc.astimezone()
            delta = local.utcoffset()
            off = self._offsets[q] = int(delta.total_seconds()) if delta is not None else 0
        return off

    def bucket(self, t: float) -> int:
        ti = math.floor(t)
        return ti - (ti + self.offset(ti)) % self.interval_s

    def day(self, t: float) -> tuple[int, int]:
        """Local midnight before t, and the next one (days are 23 or 25 h at DST changes)."""
        ti = math.floor(t)
        key = (ti + self.offset(ti)) // 86400
        got = self._days.get(key)
        if got is None:
            if len(self._days) > 1024:
                self._days.clear()
            got = self._days[key] = (self._midnight(key), self._midnight(key + 1))
        return got

    def _midnight(self, local_day: int) -> int:
        date = datetime.fromtimestamp(local_day * 86400, UTC).date()
        if self.tz is None:
            return int(datetime.combine(date, time(0)).timestamp())
        return int(datetime.combine(date, time(0), tzinfo=self.tz).timestamp())

    def label(self, t: float) -> str:
        local = datetime.fromtimestamp(t, self.tz) if self.tz else datetime.fromtimestamp(t)
        return local.strftime("%Y-%m-%d %H:%M")


class _RollItem(NamedTuple):
    at: float
    call: _Call | None  # an answered or abandoned call
    scopes: tuple[_ScopeState, ...]
    agent: str  # after-call work with no call: who
    acw: float  # and how much; 0 for a closed-out call


# --- the engine -------------------------------------------------------------------------


class ServiceLevel:
    """Service level per queue and account, fed queue_log records in file order."""

    def __init__(
        self,
        *,
        interval_min: int = 30,
        tz: tzinfo | None = None,
        accounts: Mapping[str, str] | None = None,
        thresholds: Mapping[str, Thresholds] | None = None,
        default: Thresholds | None = None,
        rolling_s: int = 300,
        max_age_s: int = 4 * 3600,
        keep_days: int | None = 2,
        retain_s: int = 86400,
    ) -> None:
        """accounts maps queue -> account key; thresholds are per account key.

        tz None is the machine's local time.  A call with nothing heard for
        max_age_s is closed out by close_stale().  keep_days (None: all)
        bounds the days of intervals kept; an ended call is remembered for
        retain_s (its after-call work and late lines find it).
        """
        if interval_min <= 0 or 1440 % interval_min:
            raise ValueError(f"interval of {interval_min} min does not divide a day (15, 30, 60)")
        self.interval_min = interval_min
        self.rolling_s = rolling_s
        self.max_age_s = max_age_s
        self.keep_days = keep_days
        self.retain_s = retain_s
        self.clock = _Clock(interval_min * 60, tz)
        self.unattributed_acw: dict[str, list[float]] = {}  # agent -> [seconds, reports]
        self._accounts: dict[str, str] = {}
        self._thresholds: dict[str, Thresholds] = {}
        self._default = Thresholds()
        self._scopes: dict[Scope, _ScopeState] = {}
        self._open: dict[str, _Call] = {}
        self._ended: dict[tuple[str, str], _Call] = {}  # (uniqueid, queue), oldest first
        self._ended_uid: dict[str, _Call] = {}  # the last call of each uniqueid to end
        self._agent_last: dict[str, _Call] = {}  # each agent's last answered call that ended
        self._rolling: deque[_RollItem] = deque()
        self._roll_floor = -math.inf  # items at or before this have left the window
        self._latest = 0  # the latest record time seen
        self._pruned_day = 0
        self._empty: dict[int, Stats] = {}
        self.configure(accounts or {}, thresholds or {}, default)

    # -- configuration

    def configure(
        self,
        accounts: Mapping[str, str],
        thresholds: Mapping[str, Thresholds],
        default: Thresholds | None = None,
    ) -> None:
        """New queue -> account map and thresholds (floor reload); calls already in keep theirs."""
        self._accounts = dict(accounts)
        self._thresholds = dict(thresholds)
        if default is not None:
            self._default = default
        for q, a in self._accounts.items():
            self._scope(QUEUE, q)
            self._scope(ACCOUNT, a)
        for a in self._thresholds:
            self._scope(ACCOUNT, a)

    def thresholds_of(self, scope: Scope) -> Thresholds:
        account = scope.name if scope.kind == ACCOUNT else self._accounts.get(scope.name)
        return self._thresholds.get(account, self._default) if account else self._default

    def _scopes_of(self, queue: str, account: str | None) -> tuple[_ScopeState, ...]:
        if account is None:
            return (self._scope(QUEUE, queue),)
        return (self._scope(QUEUE, queue), self._scope(ACCOUNT, account))

    def _scope(self, kind: str, name: str) -> _ScopeState:
        key = Scope(kind, name)
        st = self._scopes.get(key)
        if st is None:
            st = self._scopes[key] = _ScopeState(key)
        return st

    # -- feeding

    def feed(self, rec: Record) -> list[Happening]:
        """Applies one record; returns what happened to calls because of it."""
        out: list[Happening] = []
        if rec.at > self._latest:
            self._latest = rec.at
            self._expire(rec.at)
            self._prune(rec.at)
        if isinstance(rec, EnterQueue):
            self._enter(rec, out)
        elif isinstance(rec, Connect):
            self._connect(rec, out)
        elif isinstance(rec, Complete | Transfer):
            self._complete(rec, out)
        elif isinstance(rec, Exit):
            self._exit(rec, out)
        elif isinstance(rec, QueueStart):
            for call in list(self._open.values()):
                self._close(call, rec.at, CLOSED_QUEUESTART, out)
        return out

    def feed_all(self, records: Iterable[Record]) -> list[Happening]:
        out: list[Happening] = []
        for rec in records:
            out.extend(self.feed(rec))
        return out

    def _enter(self, rec: EnterQueue, out: list[Happening]) -> None:
        old = self._open.get(rec.uniqueid)
        if old is not None:
            self._close(old, rec.at, CLOSED_REENTERED, out)
        account = self._accounts.get(rec.queue)
        scopes = self._scopes_of(rec.queue, account)
        th = self._thresholds.get(account, self._default) if account else self._default
        call = _Call(
            rec.uniqueid, rec.queue, account, rec.callerid, rec.at, rec.origposition, scopes, th
        )
        self._open[rec.uniqueid] = call
        for st in scopes:
            st.waiting[call.uid] = call.entered
        out.append(
            Entered(rec.uniqueid, rec.queue, account, rec.callerid, rec.at, rec.origposition)
        )

    def _find(self, rec: Record, out: list[Happening]) -> _Call | None:
        call = self._open.get(rec.uniqueid)
        if call is not None and call.queue == rec.queue:
            return call
        if call is not None:
            why = f"call {rec.uniqueid} is in queue {call.queue}, not {rec.queue}"
        elif (rec.uniqueid, rec.queue) in self._ended:
            done = self._ended[rec.uniqueid, rec.queue]
            how = f"closed out ({done.flagged})" if done.flagged else done.outcome
            why = f"call {rec.uniqueid} already ended: {how}"
        else:
            why = f"no ENTERQUEUE for call {rec.uniqueid} (it began before the log did?)"
        out.append(Ignored(rec, why))
        return None

    def _connect(self, rec: Connect, out: list[Happening]) -> None:
        call = self._find(rec, out)
        if call is None:
            return
        if call.connected is not None:
            out.append(Ignored(rec, f"call {call.uid} was already answered at {call.connected}"))
            return
        call.connected = rec.at
        call.hold = rec.hold_s
        call.member = rec.member
        call.outcome = "answered"
        for st in call.scopes:
            st.waiting.pop(call.uid, None)
            st.talking.add(call.uid)
        self._sl_event(call, rec.at)
        out.append(
            Connected(
                call.uid,
                call.queue,
                call.account,
                call.callerid,
                call.entered,
                rec.at,
                rec.agent,
                rec.member,
                rec.hold_s,
            )
        )

    def _complete(self, rec: Complete | Transfer, out: list[Happening]) -> None:
        call = self._find(rec, out)
        if call is None:
            return
        if call.connected is None:
            out.append(Ignored(rec, f"{rec.event} for call {call.uid}, never answered"))
            return
        call.talk = rec.talk_s
        call.handled = True
        if isinstance(rec, Transfer):
            call.transferred = True
            outcome = "transferred"
        else:
            outcome = "completed"
            call.ended_by = rec.ended_by
        for acc in self._accs_of(call):
            acc.ended(call, 1)
        self._end(call, rec.at, outcome, out)

    def _exit(self, rec: Exit, out: list[Happening]) -> None:
        call = self._find(rec, out)
        if call is None:
            return
        if call.connected is not None:
            out.append(Ignored(rec, f"{rec.event} for call {call.uid}, answered already"))
            return
        call.hold = rec.wait_s if rec.wait_s is not None else max(0, rec.at - call.entered)
        call.exit = rec.outcome
        for st in call.scopes:
            st.waiting.pop(call.uid, None)
        self._sl_event(call, rec.at)
        self._end(call, rec.at, rec.outcome, out)

    def _sl_event(self, call: _Call, at: int) -> None:
        call.sl_at = at
        if call.account is not None:
            call.th = self._thresholds.get(call.account, self._default)
        else:
            call.th = self._default
        start = self.clock.bucket(at)
        day, next_day = self.clock.day(at)
        end = start + self.clock.interval_s
        for st in call.scopes:
            acc = st.buckets.get(start)
            if acc is None:
                acc = st.buckets[start] = _Acc(start, end)
            dacc = st.days.get(day)
            if dacc is None:
                dacc = st.days[day] = _Acc(day, next_day)
            call.accs.append(acc)
            call.accs.append(dacc)
            acc.sl_event(call, 1)
            dacc.sl_event(call, 1)
        if at > self._roll_floor:
            call.in_rolling = True
            for st in call.scopes:
                st.rolling.sl_event(call, 1)
            self._roll_push(_RollItem(at, call, call.scopes, "", 0.0))

    def _accs_of(self, call: _Call) -> list[_Acc]:
        if call.in_rolling:
            return call.accs + [st.rolling for st in call.scopes]
        return call.accs

    def _end(self, call: _Call, at: int, outcome: str, out: list[Happening]) -> None:
        call.ended = at
        call.outcome = outcome
        del self._open[call.uid]
        for st in call.scopes:
            st.talking.discard(call.uid)
        key = (call.uid, call.queue)
        self._ended.pop(key, None)
        self._ended[key] = call
        self._ended_uid[call.uid] = call
        agent = agent_id(call.member)
        if call.connected is not None and agent is not None:
            self._agent_last[agent] = call
        out.append(Ended(call.result()))

    def _close(self, call: _Call, at: int, why: str, out: list[Happening]) -> None:
        call.flagged = why
        for st in call.scopes:
            st.waiting.pop(call.uid, None)
        self._count_closed(call.scopes, at)
        self._end(call, at, "closed-out", out)

    def _count_closed(self, scopes: tuple[_ScopeState, ...], at: float) -> None:
        for acc in self._window_accs(scopes, at):
            acc.closed(1)
        if at > self._roll_floor:
            for st in scopes:
                st.rolling.closed(1)
            self._roll_push(_RollItem(at, None, scopes, "", 0.0))

    def _window_accs(self, scopes: tuple[_ScopeState, ...], at: float) -> list[_Acc]:
        start = self.clock.bucket(at)
        day, next_day = self.clock.day(at)
        accs = []
        for st in scopes:
            acc = st.buckets.get(start)
            if acc is None:
                acc = st.buckets[start] = _Acc(start, start + self.clock.interval_s)
            dacc = st.days.get(day)
            if dacc is None:
                dacc = st.days[day] = _Acc(day, next_day)
            accs += [acc, dacc]
        return accs

    def _roll_push(self, item: _RollItem) -> None:
        q = self._rolling
        if not q or q[-1].at <= item.at:
            q.append(item)
            return
        # queue_log times can step back a second between Asterisk's threads.
        i = len(q)
        while i > 0 and q[i - 1].at > item.at:
            i -= 1
        q.insert(i, item)

    # -- after-call work

    def add_acw(
        self,
        agent_id: str,
        seconds: float,
        at: float,
        queue: str | None = None,
        uniqueid: str | None = None,
    ) -> None:
        """After-call work an agent's console reported.

        It counts with its call: the one named by uniqueid, else the agent's
        last answered call if that has no ACW yet.  Failing both, it counts in
        `queue` at time `at`; with no queue either, in unattributed_acw.
        """
        call: _Call | None = None
        if uniqueid is not None:
            call = self._open.get(uniqueid) or self._ended_uid.get(uniqueid)
        if call is None:
            last = self._agent_last.get(agent_id)
            if last is not None and not last.acw:
                call = last
        if call is not None and call.accs:
            call.acw.append((agent_id, seconds))
            call.acw_total += seconds
            for acc in self._accs_of(call):
                acc.add_acw(agent_id, seconds, call.handled, 1)
            return
        if call is not None:
            queue = call.queue
        if queue is None:
            row = self.unattributed_acw.setdefault(agent_id, [0.0, 0.0])
            row[0] += seconds
            row[1] += 1
            return
        account = self._accounts.get(queue)
        scopes = self._scopes_of(queue, account)
        for acc in self._window_accs(scopes, at):
            acc.add_acw(agent_id, seconds, False, 1)
        if at > self._roll_floor:
            for st in scopes:
                st.rolling.add_acw(agent_id, seconds, False, 1)
            self._roll_push(_RollItem(at, None, scopes, agent_id, seconds))

    # -- time passing

    def close_stale(self, now: float) -> list[Happening]:
        """Closes out calls with nothing heard for max_age_s (their exit line was lost)."""
        out: list[Happening] = []
        for call in list(self._open.values()):
            last = call.connected if call.connected is not None else call.entered
            if now - last > self.max_age_s:
                self._close(call, math.floor(now), CLOSED_STALE, out)
        self._prune(now)
        return out

    def _expire(self, now: float) -> None:
        floor = now - self.rolling_s
        if floor <= self._roll_floor:
            return
        self._roll_floor = floor
        q = self._rolling
        while q and q[0].at <= floor:
            item = q.popleft()
            if item.call is not None:
                item.call.in_rolling = False
                for st in item.scopes:
                    st.rolling.sl_event(item.call, -1)
            elif item.agent:
                for st in item.scopes:
                    st.rolling.add_acw(item.agent, item.acw, False, -1)
            else:
                for st in item.scopes:
                    st.rolling.closed(-1)

    def _prune(self, now: float) -> None:
        # Ended calls are remembered for late lines and after-call work.
        ended = self._ended
        while ended:
            key = next(iter(ended))
            c = ended[key]
            if c.ended is not None and c.ended >= now - self.retain_s:
                break
            del ended[key]
            if self._ended_uid.get(c.uid) is c:
                del self._ended_uid[c.uid]
            agent = agent_id(c.member)
            if agent is not None and self._agent_last.get(agent) is c:
                del self._agent_last[agent]
        if self.keep_days is None:
            return
        day, _ = self.clock.day(now)
        if day == self._pruned_day:
            return
        self._pruned_day = day
        cutoff = day - (self.keep_days - 1) * 86400 - 7200  # a day may be 25 h
        for st in self._scopes.values():
            for table in (st.buckets, st.days):
                for start in [s for s in table if s < cutoff]:
                    del table[start]

    # -- reading

    def scopes(self) -> list[Scope]:
        return sorted(self._scopes)

    def snapshot(self, now: float, history: bool = True) -> Snapshot:
        """Every queue and account at `now` (which must not go back between calls)."""
        self._expire(now)
        longest = self._rolling_longest()
        start = self.clock.bucket(now)
        day, next_day = self.clock.day(now)
        L = self.clock.interval_s
        starts: list[int] = []
        if history:
            t = day
            while t < start:
                s = self.clock.bucket(t)
                starts.append(s)
                t = s + L
        if len(self._empty) > 4 * len(starts) + 16:
            self._empty.clear()
        queues: dict[str, ScopeView] = {}
        accounts: dict[str, ScopeView] = {}
        for key, st in self._scopes.items():
            view = self._view(st, now, start, day, next_day, longest.get(key), starts)
            (queues if key.kind == QUEUE else accounts)[key.name] = view
        return Snapshot(now, self.interval_min, queues, accounts)

    def _view(
        self,
        st: _ScopeState,
        now: float,
        start: int,
        day: int,
        next_day: int,
        rolling_longest: int | None,
        starts: list[int],
    ) -> ScopeView:
        L = self.clock.interval_s
        buckets = st.buckets
        waiting = st.waiting
        return ScopeView(
            scope=st.scope,
            thresholds=self.thresholds_of(st.scope),
            current=self._stats(buckets.get(start), start, start + L),
            rolling=st.rolling.build(now - self.rolling_s, now, rolling_longest),
            today=self._stats(st.days.get(day), day, next_day),
            intervals=tuple(self._stats(buckets.get(s), s, s + L) for s in starts),
            waiting=len(waiting),
            longest_waiting_s=max(0.0, now - min(waiting.values())) if waiting else None,
            talking=len(st.talking),
        )

    def _rolling_longest(self) -> dict[Scope, int]:
        out: dict[Scope, int] = {}
        for item in self._rolling:
            c = item.call
            if c is None or c.hold is None:
                continue
            for st in item.scopes:
                if out.get(st.scope, -1) < c.hold:
                    out[st.scope] = c.hold
        return out

    def _stats(self, acc: _Acc | None, start: int, end: int) -> Stats:
        if acc is not None:
            return acc.stats()
        # Most intervals of most queues are empty: one shared Stats each.
        s = self._empty.get(start)
        if s is None or s.end != end:
            s = self._empty[start] = _Acc(start, end).stats()
        return s

    def history(self, scope: Scope) -> list[Stats]:
        """Every interval kept for a scope that has calls, oldest first."""
        st = self._scopes.get(scope)
        return [st.buckets[s].stats() for s in sorted(st.buckets)] if st else []

    def days(self, scope: Scope) -> list[Stats]:
        """Every day kept for a scope that has calls, oldest first."""
        st = self._scopes.get(scope)
        return [st.days[s].stats() for s in sorted(st.days)] if st else []

    def open_calls(self) -> int:
        return len(self._open)


def floor_settings(floor: Floor) -> tuple[dict[str, str], dict[str, Thresholds]]:
    """The queue -> account map and per-account thresholds of a floor configuration."""
    accounts = {q.name: q.account for q in floor.queues.values()}
    thresholds = {
        a.key: Thresholds(a.sl_threshold_s, a.short_abandon_s) for a in floor.accounts.values()
    }
    return accounts, thresholds
